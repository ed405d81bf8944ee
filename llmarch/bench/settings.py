"""[torch] What a sweep runs: its settings (every default resolved), the plan (groups of cases) and the
memory each case is estimated to need."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

import torch

from llmarch.bench import counts as bench_math
from llmarch.bench.kernels import (
    IMPLEMENTATIONS,
    VARIANT_NAMES,
    Implementation,
    Variant,
    implementation,
    make_variant,
    phase_lengths,
)
from llmarch.core import defaults
from llmarch.core.errors import InvalidValueError
from llmarch.core.frozen import frozen_dataclass

CPU_IMPLS = ("eager", "eager_grouped", "sdpa", "sdpa_repeat_kv", "sdpa_grouped")
CUDA_IMPLS = (*CPU_IMPLS, "sdpa_flash", "sdpa_efficient", "sdpa_cudnn", "sdpa_math", "flex")
# The default sweep, its numbers named in llmarch.core.defaults (where the CLI's help texts read them too; impls
# None: every implementation the device runs), and the --quick one.
FULL = {"seq_lens": defaults.DEFAULT_BENCH_SEQ_LENS, "batches": defaults.DEFAULT_BENCH_BATCHES, "impls": None,
        "phases": bench_math.PHASES, "repeats": defaults.DEFAULT_BENCH_REPEATS,
        "min_pass_s": defaults.DEFAULT_BENCH_MIN_PASS_S}  # fmt: skip
QUICK = {"seq_lens": (128, 512), "batches": (1,), "impls": ("eager", "sdpa"), "phases": ("prefill", "decode"),
         "repeats": defaults.QUICK_BENCH_REPEATS, "min_pass_s": defaults.QUICK_BENCH_MIN_PASS_S}  # fmt: skip
#: Largest relative error (||out - ref|| / ||ref||) accepted before timing, by dtype. Mask, bias or head
#: mapping mistakes give errors of order 0.1 to 1.
TOLERANCE = {"fp32": 1e-3, "bf16": 3e-2, "fp16": 1e-2}
TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: CUDA device-name patterns -> catalog rows (first match wins); `--gpu` overrides.
GPU_NAME_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"GB200", "gb200"), (r"B200", "b200"), (r"H200", "h200"), (r"H100.*NVL", "h100-nvl"),
    (r"H100.*PCIe", "h100-pcie"), (r"H100", "h100-sxm"), (r"A100.*SXM4.*40GB", "a100-40gb"),
    (r"A100.*SXM4.*80GB", "a100-80gb"), (r"A100 80GB PCIe", "a100-80gb-pcie"), (r"A10G", "a10g"),
    (r"L40S", "l40s"), (r"\bL4\b", "l4"), (r"RTX 4090", "rtx-4090"), (r"V100", "v100"),
    (r"MI300X", "mi300x"), (r"MI250X", "mi250x"),
)  # fmt: skip


@frozen_dataclass
class BenchSettings:
    """One sweep, fully resolved (no defaults left to guess)."""

    shape_source: str  # preset spec, or "custom"
    n_heads: int
    n_kv_heads: int
    d_head: int
    window: int  # of the sliding_window variant
    seq_lens: tuple[int, ...]
    batches: tuple[int, ...]
    variants: tuple[str, ...]
    impls: tuple[str, ...]
    phases: tuple[str, ...]
    dtype: str  # fp32, bf16, fp16
    device: str  # cpu or cuda
    threads: int
    repeats: int  # interleaved passes
    min_pass_s: float  # timing per case and pass
    chunk_size: int
    causal: bool
    flush_l2: bool = False
    memory_budget_bytes: float | None = None  # None: a fraction of the available memory
    gpu: str | None = None  # catalog row for the datasheet peaks (None: from the device name)
    quick: bool = False
    seed: int = 0
    compiled_flex: bool = True

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


def _positive_ints(name: str, values: tuple[int, ...]) -> tuple[int, ...]:
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise InvalidValueError(f"{name} must be positive integers, got {list(values)}")
    return tuple(values)


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda' without one is an error."""
    if device not in ("auto", "cpu", "cuda"):
        raise InvalidValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidValueError("--device cuda: this torch build sees no CUDA device")
    return device


@frozen_dataclass
class _Shape:
    source: str
    n_heads: int
    n_kv_heads: int
    d_head: int
    window: int | None


def _resolve_shape(
    preset: str | None, n_heads: int | None, n_kv_heads: int | None, d_head: int | None, window: int | None
) -> _Shape:
    """Heads, KV heads, head width and window from `preset` (default mistral-7b when no --n-heads is
    given), explicit values taking precedence."""
    source = "custom"
    if preset is not None or n_heads is None:
        from llmarch.catalog import presets

        source = preset or defaults.DEFAULT_BENCH_PRESET
        config = presets.load(source)
        if config.attention == "mla":
            raise InvalidValueError(f"{config.name}: multi-head latent attention is not benchmarked; pass the shape")
        n_kv_heads = n_kv_heads if n_kv_heads is not None else (config.n_kv_heads if n_heads is None else None)
        n_heads = n_heads if n_heads is not None else config.n_heads
        d_head = d_head if d_head is not None else config.d_head
        window = window if window is not None else config.sliding_window
    if d_head is None:
        raise InvalidValueError("--n-heads needs --d-head (or take the shape from --preset)")
    n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
    for label, value in (("--n-heads", n_heads), ("--n-kv-heads", n_kv_heads), ("--d-head", d_head)):
        if value < 1:
            raise InvalidValueError(f"{label} must be positive, got {value}")
    if n_heads % n_kv_heads:
        raise InvalidValueError(f"--n-kv-heads ({n_kv_heads}) must divide --n-heads ({n_heads})")
    return _Shape(source, n_heads, n_kv_heads, d_head, window)


def _names_or(values: tuple[str, ...] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values or default))


def resolve_settings(
    *,
    preset: str | None = None,
    n_heads: int | None = None,
    n_kv_heads: int | None = None,
    d_head: int | None = None,
    window: int | None = None,
    seq_lens: tuple[int, ...] | None = None,
    batches: tuple[int, ...] | None = None,
    variants: tuple[str, ...] | None = None,
    impls: tuple[str, ...] | None = None,
    phases: tuple[str, ...] | None = None,
    dtype: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    repeats: int | None = None,
    min_pass_s: float | None = None,
    chunk_size: int | None = None,
    causal: bool = True,
    quick: bool = False,
    flush_l2: bool = False,
    memory_budget_bytes: float | None = None,
    gpu: str | None = None,
    seed: int = 0,
) -> BenchSettings:
    """Fill every default: the shape (`_resolve_shape`); the sliding window from --window, else the preset's,
    else a quarter of the longest sequence; bf16 on CUDA and fp32 on CPU; `quick` shrinks the sweep to every
    variant x {eager, sdpa} x {prefill, decode} at two short lengths."""
    from llmarch.core.units import canonical_dtype

    shape = _resolve_shape(preset, n_heads, n_kv_heads, d_head, window)
    sweep = QUICK if quick else FULL
    seq_lens = _positive_ints("--seq-lens", seq_lens or sweep["seq_lens"])
    batches = _positive_ints("--batch", batches or sweep["batches"])
    window = shape.window if shape.window is not None else max(1, max(seq_lens) // 4)
    if window < 1:
        raise InvalidValueError(f"--window must be positive, got {window}")
    device = resolve_device(device)
    dtype = canonical_dtype(dtype) if dtype is not None else ("bf16" if device == "cuda" else "fp32")
    if dtype not in TORCH_DTYPES:
        raise InvalidValueError(f"--dtype {dtype}: the benchmark runs in {', '.join(TORCH_DTYPES)}")
    variants = _names_or(variants, VARIANT_NAMES)
    for spec in variants:  # validates names and gqa:N against the shape
        make_variant(spec, n_heads=shape.n_heads, n_kv_heads=shape.n_kv_heads, d_head=shape.d_head, window=window)
    impls = _names_or(impls, sweep["impls"] or (CUDA_IMPLS if device == "cuda" else CPU_IMPLS))
    for name in impls:
        implementation(name)
    phases = _names_or(phases, sweep["phases"])
    for phase in phases:
        if phase not in bench_math.PHASES:
            raise InvalidValueError(f"unknown phase {phase!r}; use one of {', '.join(bench_math.PHASES)}")
    threads = threads if threads is not None else torch.get_num_threads()
    repeats = repeats if repeats is not None else sweep["repeats"]
    min_pass_s = min_pass_s if min_pass_s is not None else sweep["min_pass_s"]
    chunk_size = chunk_size if chunk_size is not None else defaults.DEFAULT_BENCH_CHUNK_SIZE
    _check_knobs(threads=threads, repeats=repeats, chunk_size=chunk_size, min_pass_s=min_pass_s,
                 flush_l2=flush_l2, device=device, gpu=gpu)  # fmt: skip
    return BenchSettings(
        shape_source=shape.source, n_heads=shape.n_heads, n_kv_heads=shape.n_kv_heads, d_head=shape.d_head,
        window=window, seq_lens=seq_lens, batches=batches, variants=variants, impls=impls, phases=phases,
        dtype=dtype, device=device, threads=threads, repeats=repeats, min_pass_s=min_pass_s, chunk_size=chunk_size,
        causal=causal, flush_l2=flush_l2, memory_budget_bytes=memory_budget_bytes, gpu=gpu, quick=quick, seed=seed,
    )  # fmt: skip


def _check_knobs(
    *, threads: int, repeats: int, chunk_size: int, min_pass_s: float, flush_l2: bool, device: str, gpu: str | None
) -> None:
    for label, value in (("--threads", threads), ("--repeats", repeats), ("--chunk-size", chunk_size)):
        if value < 1:
            raise InvalidValueError(f"{label} must be positive, got {value}")
    if not min_pass_s > 0:
        raise InvalidValueError(f"the time per pass must be positive, got {min_pass_s}")
    if flush_l2 and device != "cuda":
        raise InvalidValueError("--flush-l2 only applies to CUDA")
    if gpu is not None:
        from llmarch.catalog.hardware import accelerator

        accelerator(gpu)


def catalog_gpu_for(device_name: str) -> str | None:
    """The catalog row of a CUDA device name ("NVIDIA H100 80GB HBM3" -> "h100-sxm"), or None."""
    for pattern, name in GPU_NAME_PATTERNS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return name
    return None


# -- the plan ---------------------------------------------------------------------------------------------------
@frozen_dataclass
class Case:
    """One cell of the sweep."""

    variant: Variant
    impl: Implementation
    phase: str
    batch: int
    seq_len: int

    @property
    def gqa_feed(self) -> str | None:
        return self.impl.gqa_feed if self.variant.group_size > 1 else None


def plan(settings: BenchSettings) -> list[list[Case]]:
    """The sweep as groups of cases sharing (sequence length, batch, phase), shortest first.

    GQA-feeding alternatives (eager_grouped, sdpa_repeat_kv, sdpa_grouped) are planned only for variants
    whose KV heads are shared: with one KV head per query head they are the plain kernels again.
    """
    variants = [
        make_variant(spec, n_heads=settings.n_heads, n_kv_heads=settings.n_kv_heads, d_head=settings.d_head,
                     window=settings.window, causal=settings.causal)
        for spec in settings.variants
    ]  # fmt: skip
    impls = [IMPLEMENTATIONS[name] for name in settings.impls]
    groups = []
    for seq_len in settings.seq_lens:
        for batch in settings.batches:
            for phase in settings.phases:
                cases = [
                    Case(variant, impl, phase, batch, seq_len)
                    for variant in variants
                    for impl in impls
                    if not impl.gqa_alternative or variant.group_size > 1
                ]
                groups.append(cases)
    return groups


def estimate_bytes(case: Case, *, element_bytes: float, chunk_size: int) -> float:
    """Rough memory a case needs: inputs, output, and the largest call's workspace.

    Kernels that materialise the scores (eager, SDPA's math backend, FlexAttention uncompiled) hold about
    three score-sized tensors at once (scores, masked scores, probabilities; the softmax of half-precision
    scores runs in fp32); repeating K/V adds a K and a V per query head; a mask adds one byte per pair.
    """
    v, b = case.variant, case.batch
    _, n_q, _, n_k = phase_lengths(v, case.phase, case.seq_len)
    e = element_bytes
    total = e * b * v.d_head * (2 * v.n_heads * n_q + 2 * v.n_kv_heads * n_k)  # q, k, v, output
    call_q, call_k = n_q, n_k
    if case.phase == "chunked_prefill":
        call_q = min(chunk_size, case.seq_len)
        call_k = min(case.seq_len, (v.window or case.seq_len) + call_q)
        total += 2 * e * b * v.n_kv_heads * (bench_math.cache_slots(case.seq_len, v.window) + call_k)  # cache, cat
    if case.gqa_feed == "repeat_kv":
        total += 2 * e * b * v.n_heads * call_k * v.d_head
    pairs = b * v.n_heads * call_q * call_k
    if case.impl.kind == "eager" or case.impl.backend == "MATH":
        total += 3 * max(e, 4.0) * pairs
    elif v.alibi:
        total += e * v.n_heads * call_q * call_k  # the bias as a float mask
    return total + call_q * call_k  # a boolean mask
