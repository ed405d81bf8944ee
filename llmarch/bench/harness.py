"""[torch] The attention benchmark: plan a sweep, check every case against float64, time it, compare runs.

Method (the field's practice, adapted to a noisy machine):
1. The device's roofline is measured once per run, before the sweep: a square matmul in the benchmark
   dtype (FLOP/s) and a large tensor copy (bytes/s, read + write). On a GPU the catalog knows by name,
   its dense datasheet peaks are reported too (`hardware.py`).
2. Cases are grouped by (sequence length, batch, phase). For each case of a group: fresh random inputs;
   one call checked against float64 eager attention (`attention.reference_error`), a case whose error
   exceeds the dtype's tolerance is reported and not timed; a warm-up call, which also sizes the timing
   blocks; one call that measures peak memory.
3. Then `repeats` passes, each timing every case of the group in turn (the order rotated each pass), so
   that a slow spell of the machine spreads over all cases instead of hitting one. Each pass runs blocks
   of calls with `torch.utils.benchmark.Timer` (which synchronises the device) at the process's thread
   count (the Timer defaults to one thread), or, with an L2 flush on CUDA, CUDA events around each call.
4. A case reports the median and IQR of its per-call times over all passes, a robust coefficient of
   variation (IQR / 1.349 / median) flagged above 10%, the analytic FLOPs and bytes (`bench_math`), the
   achieved FLOP/s and bytes/s, the roofline time they predict and the fraction of it reached. The copy
   measures main-memory bandwidth: a working set that fits in a cache (short decodes) can beat it, and
   its fraction then exceeds 1.

A case that does not fit in memory (by estimate, or by an out-of-memory error) or that the build or
device cannot run is reported with `skipped_reason`. Ctrl-C stops the sweep and keeps every finished case;
`on_update` is called after each group so that the caller can save as results arrive.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from llmarch.bench import counts as bench_math
from llmarch.bench.kernels import (
    IMPLEMENTATIONS,
    VARIANT_NAMES,
    Implementation,
    PhaseInputs,
    UnsupportedCase,
    Variant,
    build_phase,
    flex_unavailable_reason,
    implementation,
    make_inputs,
    make_variant,
    phase_lengths,
    reference_error,
)
from llmarch.core.errors import InvalidValueError

#: Shape used when neither --preset nor --n-heads is given: GQA with a sliding window, so that every
#: variant has something to show.
DEFAULT_PRESET = "mistral-7b"
DEFAULT_SEQ_LENS = (512, 1024, 2048)
DEFAULT_BATCHES = (1,)
#: Chunk of a chunked prefill. Mistral chunks by the window (Jiang et al. 2023, section 2); 512 keeps
#: several chunks at benchmark lengths.
DEFAULT_CHUNK_SIZE = 512
DEFAULT_REPEATS = 5
DEFAULT_MIN_PASS_S = 0.1
CPU_IMPLS = ("eager", "eager_grouped", "sdpa", "sdpa_repeat_kv", "sdpa_grouped")
CUDA_IMPLS = (*CPU_IMPLS, "sdpa_flash", "sdpa_efficient", "sdpa_cudnn", "sdpa_math", "flex")
QUICK = {"seq_lens": (128, 512), "batches": (1,), "impls": ("eager", "sdpa"), "phases": ("prefill", "decode"),
         "repeats": 3, "min_pass_s": 0.02}  # fmt: skip
#: Largest relative error (||out - ref|| / ||ref||) accepted before timing, by dtype. Mask, bias or head
#: mapping mistakes give errors of order 0.1 to 1.
TOLERANCE = {"fp32": 1e-3, "bf16": 3e-2, "fp16": 1e-2}
TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: Robust coefficient of variation above which a measurement is flagged noisy.
NOISY_CV = 0.10
#: Fraction of the free memory a case may plan to use (the rest is the allocator's and the reference's).
MEMORY_HEADROOM = 0.8
#: CUDA device-name patterns -> catalog rows (first match wins); `--gpu` overrides.
GPU_NAME_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"GB200", "gb200"), (r"B200", "b200"), (r"H200", "h200"), (r"H100.*NVL", "h100-nvl"),
    (r"H100.*PCIe", "h100-pcie"), (r"H100", "h100-sxm"), (r"A100.*SXM4.*40GB", "a100-40gb"),
    (r"A100.*SXM4.*80GB", "a100-80gb"), (r"A100 80GB PCIe", "a100-80gb-pcie"), (r"A10G", "a10g"),
    (r"L40S", "l40s"), (r"\bL4\b", "l4"), (r"RTX 4090", "rtx-4090"), (r"V100", "v100"),
    (r"MI300X", "mi300x"), (r"MI250X", "mi250x"),
)  # fmt: skip


# -- settings -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
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
    memory_budget_bytes: float | None = None  # None: a fraction of the free memory
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
    """Fill every default: the shape from `preset` (default mistral-7b when no --n-heads is given) with
    explicit values taking precedence; the sliding window from --window, else the preset's, else a quarter
    of the longest sequence; bf16 on CUDA and fp32 on CPU; `quick` shrinks the sweep to every variant x
    {eager, sdpa} x {prefill, decode} at two short lengths."""
    from llmarch.catalog import presets
    from llmarch.core.units import canonical_dtype

    source = "custom"
    if preset is not None or n_heads is None:
        config = presets.load(preset or DEFAULT_PRESET)
        source = preset or DEFAULT_PRESET
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
    seq_lens = _positive_ints("--seq-lens", seq_lens or (QUICK["seq_lens"] if quick else DEFAULT_SEQ_LENS))
    batches = _positive_ints("--batch", batches or (QUICK["batches"] if quick else DEFAULT_BATCHES))
    if window is None:
        window = max(1, max(seq_lens) // 4)
    if window < 1:
        raise InvalidValueError(f"--window must be positive, got {window}")
    device = resolve_device(device)
    dtype = canonical_dtype(dtype) if dtype is not None else ("bf16" if device == "cuda" else "fp32")
    if dtype not in TORCH_DTYPES:
        raise InvalidValueError(f"--dtype {dtype}: the benchmark runs in {', '.join(TORCH_DTYPES)}")
    variants = tuple(dict.fromkeys(variants or VARIANT_NAMES))
    for spec in variants:  # validates names and gqa:N against the shape
        make_variant(spec, n_heads=n_heads, n_kv_heads=n_kv_heads, d_head=d_head, window=window)
    impls = tuple(dict.fromkeys(impls or (QUICK["impls"] if quick else CUDA_IMPLS if device == "cuda" else CPU_IMPLS)))
    for name in impls:
        implementation(name)
    phases = tuple(dict.fromkeys(phases or (QUICK["phases"] if quick else bench_math.PHASES)))
    for phase in phases:
        if phase not in bench_math.PHASES:
            raise InvalidValueError(f"unknown phase {phase!r}; use one of {', '.join(bench_math.PHASES)}")
    threads = threads if threads is not None else torch.get_num_threads()
    repeats = repeats if repeats is not None else (QUICK["repeats"] if quick else DEFAULT_REPEATS)
    min_pass_s = min_pass_s if min_pass_s is not None else (QUICK["min_pass_s"] if quick else DEFAULT_MIN_PASS_S)
    chunk_size = chunk_size if chunk_size is not None else DEFAULT_CHUNK_SIZE
    for label, value in (("--threads", threads), ("--repeats", repeats), ("--chunk-size", chunk_size)):
        if value < 1:
            raise InvalidValueError(f"{label} must be positive, got {value}")
    if min_pass_s <= 0:
        raise InvalidValueError(f"the time per pass must be positive, got {min_pass_s}")
    if flush_l2 and device != "cuda":
        raise InvalidValueError("--flush-l2 only applies to CUDA")
    if gpu is not None:
        from llmarch.catalog.hardware import accelerator

        accelerator(gpu)
    return BenchSettings(
        shape_source=source, n_heads=n_heads, n_kv_heads=n_kv_heads, d_head=d_head, window=window,
        seq_lens=seq_lens, batches=batches, variants=variants, impls=impls, phases=phases, dtype=dtype,
        device=device, threads=threads, repeats=repeats, min_pass_s=min_pass_s, chunk_size=chunk_size,
        causal=causal, flush_l2=flush_l2, memory_budget_bytes=memory_budget_bytes, gpu=gpu, quick=quick, seed=seed,
    )  # fmt: skip


# -- the plan ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
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


def free_memory_bytes(device: str) -> float | None:
    """Free memory now: the CUDA allocator's view of the GPU, or the kernel's MemAvailable on Linux."""
    if device == "cuda":  # free on the device, plus what torch's caching allocator holds but does not use
        return float(torch.cuda.mem_get_info()[0] + torch.cuda.memory_reserved() - torch.cuda.memory_allocated())
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


# -- measuring ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Peaks:
    """The device's roofline, measured in this run, and the catalog's datasheet peaks where known.

    The measured peaks are the best of every measurement of the run (one before the sweep, one after
    each group): on a shared machine the rate wanders (77 to 179 GFLOP/s for the same matmul over 40
    minutes on a 2-core CI runner), and the roofline is what the device can do, not what it did once.
    """

    matmul_flop_per_s: float
    matmul_n: int
    copy_bytes_per_s: float
    copy_bytes: float  # bytes moved by one copy (read + write)
    catalog_gpu: str | None = None
    catalog_flop_per_s: float | None = None
    catalog_bytes_per_s: float | None = None
    matmul_samples: tuple[float, ...] = ()  # every measurement of the run, FLOP/s
    copy_samples: tuple[float, ...] = ()  # bytes/s

    def combined(self, other: Peaks) -> Peaks:
        """The best of two measurements, keeping every sample."""
        return replace(
            self,
            matmul_flop_per_s=max(self.matmul_flop_per_s, other.matmul_flop_per_s),
            copy_bytes_per_s=max(self.copy_bytes_per_s, other.copy_bytes_per_s),
            matmul_samples=self.matmul_samples + other.matmul_samples,
            copy_samples=self.copy_samples + other.copy_samples,
        )

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


def catalog_gpu_for(device_name: str) -> str | None:
    """The catalog row of a CUDA device name ("NVIDIA H100 80GB HBM3" -> "h100-sxm"), or None."""
    for pattern, name in GPU_NAME_PATTERNS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return name
    return None


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure_pass(
    fn: Callable[[], Any], *, number: int, min_time_s: float, threads: int, flush: torch.Tensor | None = None
) -> list[float]:
    """Per-call seconds of blocks of `number` calls, block after block until `min_time_s` has passed.

    Each block is timed by the standard library's timeit (garbage collection off) with a clock that first
    synchronises the device, as torch.utils.benchmark's does, at `threads` threads (its Timer defaults to
    one). The Timer itself is not used: its timeit adds two untimed warm-up calls to every block, which
    triples the cost of a slow case timed one call per pass; cases are warmed up once, before the passes.
    With an L2 flush buffer (CUDA), each call is timed alone with CUDA events after overwriting the
    buffer, so that no call finds its inputs in the L2 cache.
    """
    import timeit

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    samples: list[float] = []
    start = time.perf_counter()
    if flush is not None:
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        while True:
            flush.zero_()
            begin.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(begin.elapsed_time(end) / 1e3)
            if time.perf_counter() - start >= min_time_s:
                return samples
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()

    def clock() -> float:
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    timer = timeit.Timer(fn, timer=clock)
    while True:
        samples.append(timer.timeit(number) / number)
        if time.perf_counter() - start >= min_time_s:
            return samples


def _time_once(fn: Callable[[], Any], device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def measure_peaks(settings: BenchSettings, *, quick: bool | None = None, budget_s: float | None = None) -> Peaks:
    """Matmul FLOP/s (an n x n matmul in the benchmark dtype, 2 n^3 FLOPs) and copy bytes/s (a copy of a
    large tensor: its bytes read plus written), medians of blocks timed like the cases; plus the catalog's
    dense peak and memory bandwidth for a known GPU."""
    quick = settings.quick if quick is None else quick
    dtype, device = TORCH_DTYPES[settings.dtype], settings.device
    cuda = device == "cuda"
    n = (4096 if quick else 8192) if cuda else (1024 if quick else 2048)
    copy_bytes = (2**28 if quick else 2**30) if cuda else (2**26 if quick else 2**28)
    budget = budget_s if budget_s is not None else (0.2 if quick else 0.6)
    gen = torch.Generator(device).manual_seed(settings.seed)
    matmul_s = _matmul_seconds(n, gen, dtype, device, settings.threads, budget)
    copy_s, moved = _copy_seconds(copy_bytes, gen, dtype, device, settings.threads, budget)
    catalog_gpu = settings.gpu or (catalog_gpu_for(torch.cuda.get_device_name()) if cuda else None)
    catalog_flops = catalog_bw = None
    if catalog_gpu is not None:
        from llmarch.catalog.hardware import accelerator

        row = accelerator(catalog_gpu)
        catalog_flops = row.peak_flop_per_s.get(settings.dtype)
        catalog_bw = row.memory_bandwidth_bytes_per_s
    flop_per_s, bytes_per_s = 2.0 * n**3 / matmul_s, moved / copy_s
    return Peaks(
        flop_per_s, n, bytes_per_s, moved, catalog_gpu, catalog_flops, catalog_bw, (flop_per_s,), (bytes_per_s,)
    )


def _matmul_seconds(
    n: int, gen: torch.Generator, dtype: torch.dtype, device: str, threads: int, budget: float
) -> float:
    a = torch.randn(n, n, generator=gen, device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen, device=device, dtype=dtype)
    return _median_time(lambda: a @ b, device, threads, budget)


def _copy_seconds(
    copy_bytes: int, gen: torch.Generator, dtype: torch.dtype, device: str, threads: int, budget: float
) -> tuple[float, float]:
    """Median seconds of one copy and the bytes it moves (read + write)."""
    element = torch.finfo(dtype).bits // 8
    src = torch.randn(copy_bytes // element, generator=gen, device=device, dtype=dtype)
    dst = torch.zeros_like(src)  # written, so its pages are real before the copy is timed
    return _median_time(lambda: dst.copy_(src), device, threads, budget), 2.0 * src.numel() * element


def _median_time(fn: Callable[[], Any], device: str, threads: int, budget_s: float) -> float:
    fn()  # warm-up
    once = _time_once(fn, device)
    number = max(1, int(budget_s / 8 / max(once, 1e-9)))
    return statistics.median(measure_pass(fn, number=number, min_time_s=budget_s, threads=threads))


def peak_memory_bytes(fn: Callable[[], Any], device: str) -> int | None:
    """Memory one call needs beyond what was allocated before it (workspace and output).

    CUDA: the allocator's peak during the call. CPU: the rise of the process's peak resident set during
    the call (Linux: VmHWM, reset through /proc/self/clear_refs), an approximation: memory the allocator
    keeps from earlier calls is not counted again. None where neither is available.
    """
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        out = fn()
        torch.cuda.synchronize()
        del out
        return int(torch.cuda.max_memory_allocated() - before)
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")  # reset the peak resident set size to the current one
        before = _proc_status_bytes("VmRSS")
        out = fn()
        peak = _proc_status_bytes("VmHWM")
        del out
    except OSError:
        return None
    if before is None or peak is None:
        return None
    return max(0, peak - before)


def _proc_status_bytes(key: str) -> int | None:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return None


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower()
    )


def _reason(exc: BaseException, caught: list[warnings.WarningMessage] | None = None) -> str:
    """One line saying why a case did not run: the error's first line, plus torch's own explanation."""
    if _is_oom(exc):
        return "out of memory: " + str(exc).strip().splitlines()[0][:160]
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}" if not isinstance(exc, UnsupportedCase) else str(exc)
    details = []
    for w in caught or []:
        message = str(w.message).split("(Triggered internally")[0].strip()
        if message and not message.endswith(":"):  # skip headers such as "Flash attention kernel not used because:"
            details.append(message)
    if details:
        text += " (" + "; ".join(dict.fromkeys(details))[:300] + ")"
    return text[:400]


# -- results ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchResult:
    """One case: what was run, how long it took, how close to the roofline, how accurate."""

    variant: str
    impl: str
    phase: str
    batch: int
    seq_len: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    window: int | None
    causal: bool
    chunk_size: int | None
    gqa_feed: str | None
    dtype: str
    device: str
    median_s: float | None = None
    iqr_s: float | None = None
    cv: float | None = None  # robust coefficient of variation: IQR / 1.349 / median
    noisy: bool | None = None  # cv above NOISY_CV
    n_samples: int = 0
    passes: int = 0
    analytic_flops: float = 0.0
    analytic_bytes: float = 0.0
    achieved_flop_per_s: float | None = None
    achieved_bytes_per_s: float | None = None
    predicted_s: float | None = None  # roofline time at the measured peaks
    roofline_fraction: float | None = None  # predicted_s / median_s
    predicted_catalog_s: float | None = None  # roofline time at the catalog's datasheet peaks
    roofline_fraction_catalog: float | None = None
    peak_memory_bytes: int | None = None
    max_abs_error: float | None = None
    rel_error: float | None = None
    skipped_reason: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


@dataclass
class BenchRun:
    """A sweep in progress or finished: settings, environment, results so far."""

    settings: BenchSettings
    environment: dict[str, Any]
    results: list[BenchResult] = field(default_factory=list)
    peaks: Peaks | None = None
    complete: bool = False
    interrupted: bool = False

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r.to_record() for r in self.results]


def _base_result(case: Case, settings: BenchSettings) -> BenchResult:
    v = case.variant
    causal = v.causal if case.phase == "prefill" else True
    element = torch.finfo(TORCH_DTYPES[settings.dtype]).bits / 8
    pairs = bench_math.attended_pairs(case.phase, case.seq_len, window=v.window, causal=causal)
    chunk = settings.chunk_size if case.phase == "chunked_prefill" else None
    return BenchResult(
        variant=v.name, impl=case.impl.name, phase=case.phase, batch=case.batch, seq_len=case.seq_len,
        n_heads=v.n_heads, n_kv_heads=v.n_kv_heads, d_head=v.d_head, window=v.window, causal=causal,
        chunk_size=chunk, gqa_feed=case.gqa_feed, dtype=settings.dtype, device=settings.device,
        analytic_flops=bench_math.attention_flops(case.batch, v.n_heads, v.d_head, pairs),
        analytic_bytes=bench_math.attention_bytes(
            case.phase, batch=case.batch, n_heads=v.n_heads, n_kv_heads=v.n_kv_heads, d_head=v.d_head,
            seq_len=case.seq_len, bytes_per_element=element, window=v.window, chunk_size=chunk,
        ),
    )  # fmt: skip


def _finish(base: BenchResult, samples: list[float], passes: int, peaks: Peaks) -> BenchResult:
    q1, median, q3 = statistics.quantiles(samples, n=4, method="inclusive") if len(samples) > 1 else samples * 3
    cv = (q3 - q1) / 1.349 / median
    timed = _replace(
        base, median_s=median, iqr_s=q3 - q1, cv=cv, noisy=cv > NOISY_CV, n_samples=len(samples), passes=passes,
        achieved_flop_per_s=base.analytic_flops / median, achieved_bytes_per_s=base.analytic_bytes / median,
    )  # fmt: skip
    return _with_roofline(timed, peaks)


def _with_roofline(result: BenchResult, peaks: Peaks) -> BenchResult:
    """The roofline time of a result's analytic FLOPs and bytes at `peaks`, and the fraction reached."""
    assert result.median_s is not None
    flops, moved = result.analytic_flops, result.analytic_bytes
    predicted = bench_math.roofline_time_s(flops, moved, peaks.matmul_flop_per_s, peaks.copy_bytes_per_s)
    catalog = None
    if peaks.catalog_flop_per_s and peaks.catalog_bytes_per_s:
        catalog = bench_math.roofline_time_s(flops, moved, peaks.catalog_flop_per_s, peaks.catalog_bytes_per_s)
    return _replace(
        result, predicted_s=predicted, roofline_fraction=predicted / result.median_s, predicted_catalog_s=catalog,
        roofline_fraction_catalog=None if catalog is None else catalog / result.median_s,
    )  # fmt: skip


def _replace(result: BenchResult, **changes: Any) -> BenchResult:
    return replace(result, **changes)


# -- the sweep ----------------------------------------------------------------------------------------------------
def environment(settings: BenchSettings, peaks: Peaks | None) -> dict[str, Any]:
    """torch, device, CPU, threads and the measured peaks (merged into the JSON document's environment)."""
    device_name = torch.cuda.get_device_name() if settings.device == "cuda" else _cpu_name()
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": settings.device,
        "device_name": device_name,
        "cpu": _cpu_name(),
        "threads": settings.threads,
        "dtype": settings.dtype,
        "measured_peaks": None if peaks is None else peaks.to_record(),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


@dataclass
class _Live:
    """A case being measured: its callable, block size and samples so far."""

    case: Case
    base: BenchResult
    fn: Callable[[], Any]
    number: int
    samples: list[float] = field(default_factory=list)
    passes: int = 0


@contextlib.contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[str | None, int], None]]:
    """A rich progress bar on stderr with ETA; yields update(description or None to keep it, steps done)."""
    if not enabled:
        yield lambda description, advance: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task("bench", total=total)

        def update(description: str | None, advance: int) -> None:
            if description is None:
                progress.update(task, advance=advance)
            else:
                progress.update(task, description=description, advance=advance)

        yield update


def run(
    settings: BenchSettings,
    *,
    on_update: Callable[[BenchRun], None] | None = None,
    progress: bool = False,
    peaks: Peaks | None = None,
) -> BenchRun:
    """Run the sweep. Ctrl-C stops it: the run comes back with `interrupted` set and every finished case
    (a case interrupted after at least one full pass is kept with the passes it has)."""
    groups = plan(settings)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    bench_run = BenchRun(settings, environment(settings, None))
    total = sum(len(g) * (1 + settings.repeats) for g in groups) + 1
    try:
        with _progress(progress, total) as advance:
            try:
                advance("measuring the roofline", 0)
                bench_run.peaks = peaks or measure_peaks(settings)
                bench_run.environment = environment(settings, bench_run.peaks)
                advance("roofline measured", 1)
                for group in groups:
                    _run_group(group, settings, bench_run, advance)
                    if peaks is None:  # measure again: the roofline is the best the device did in this run
                        advance("measuring the roofline again", 0)
                        again = measure_peaks(settings, budget_s=0.1)
                        _set_peaks(bench_run, bench_run.peaks.combined(again))
                    if on_update is not None:
                        on_update(bench_run)
                bench_run.complete = True
                advance("finished", 0)
            except KeyboardInterrupt:
                bench_run.interrupted = True
    finally:
        torch.set_num_threads(previous_threads)
    if on_update is not None:
        on_update(bench_run)
    return bench_run


def _set_peaks(bench_run: BenchRun, peaks: Peaks) -> None:
    """Adopt new peaks: the environment and every finished result's roofline follow them."""
    bench_run.peaks = peaks
    bench_run.environment = environment(bench_run.settings, peaks)
    bench_run.results = [_with_roofline(r, peaks) if r.median_s is not None else r for r in bench_run.results]


def _run_group(group: list[Case], settings: BenchSettings, bench_run: BenchRun, advance: Any) -> None:
    peaks = bench_run.peaks
    assert peaks is not None
    dtype, device = TORCH_DTYPES[settings.dtype], settings.device
    element = torch.finfo(dtype).bits / 8
    budget = settings.memory_budget_bytes
    if budget is None:
        free = free_memory_bytes(device)
        budget = None if free is None else MEMORY_HEADROOM * free
    generator = torch.Generator(device).manual_seed(settings.seed)
    flush = None
    if settings.flush_l2:
        flush = torch.empty(2**28, dtype=torch.uint8, device=device)  # 256 MiB: above any GPU's L2
    inputs: dict[Variant, PhaseInputs] = {}
    live: list[_Live] = []
    finished: dict[int, BenchResult] = {}
    try:
        for index, case in enumerate(group):
            label = f"{case.phase} S={case.seq_len} B={case.batch} {case.variant.name} {case.impl.name}"
            advance(f"checking {label}", 0)
            base = _base_result(case, settings)
            result = _prepare(case, base, settings, inputs, generator, budget, element, live)
            if result is not None:
                finished[index] = result
            advance(f"checked {label}", 1 + (settings.repeats if result is not None else 0))
        for p in range(settings.repeats):
            order = live[p % len(live) :] + live[: p % len(live)] if live else []
            for item in order:
                advance(f"pass {p + 1}/{settings.repeats} {item.case.phase} S={item.case.seq_len} "
                        f"B={item.case.batch} {item.case.variant.name} {item.case.impl.name}", 0)  # fmt: skip
                try:
                    item.samples += measure_pass(
                        item.fn, number=item.number, min_time_s=settings.min_pass_s, threads=settings.threads,
                        flush=flush,
                    )  # fmt: skip
                except (RuntimeError, MemoryError) as exc:
                    finished[group.index(item.case)] = _replace(item.base, skipped_reason=_reason(exc))
                    live.remove(item)
                else:
                    item.passes += 1
                advance(None, 1)
    finally:
        for item in live:
            index = group.index(item.case)
            if index not in finished and item.passes:
                finished[index] = _finish(item.base, item.samples, item.passes, peaks)
        bench_run.results.extend(finished[i] for i in sorted(finished))
        inputs.clear()
        live.clear()


def _prepare(
    case: Case,
    base: BenchResult,
    settings: BenchSettings,
    inputs: dict[Variant, PhaseInputs],
    generator: torch.Generator,
    budget: float | None,
    element: float,
    live: list[_Live],
) -> BenchResult | None:
    """Build, check, warm up and size one case; a finished (skipped) result, or None when it joins `live`."""
    if case.impl.kind == "flex" and (reason := flex_unavailable_reason()):
        return _replace(base, skipped_reason=reason)
    needed = estimate_bytes(case, element_bytes=element, chunk_size=settings.chunk_size)
    if budget is not None and needed > budget:
        from llmarch.core.units import format_bytes

        return _replace(
            base, skipped_reason=f"too big: needs about {format_bytes(needed)}, budget {format_bytes(budget)}"
        )
    dtype, device = TORCH_DTYPES[settings.dtype], settings.device
    caught: list[warnings.WarningMessage] | None = []
    try:
        if case.variant not in inputs:  # a group shares phase, batch and length: one input set per variant
            inputs[case.variant] = make_inputs(
                case.variant, case.phase, batch=case.batch, seq_len=case.seq_len, dtype=dtype, device=device,
                generator=generator,
            )  # fmt: skip
        phase_inputs = inputs[case.variant]
        with warnings.catch_warnings(record=True) as caught:  # torch explains a refused backend in warnings
            warnings.simplefilter("always")
            fn, out, base = _build_and_call(case, base, phase_inputs, settings)
        error = reference_error(out, phase_inputs, case.variant, case.phase)
        del out
        checked = _replace(base, max_abs_error=error.max_abs_error, rel_error=error.rel_error)
        tolerance = TOLERANCE[settings.dtype]
        if not error.rel_error <= tolerance:
            return _replace(
                checked, skipped_reason=f"wrong result: relative error {error.rel_error:.3g} > {tolerance:g}"
            )
        # The second call warms up, measures peak memory and sizes the timing blocks.
        start = time.perf_counter()
        peak = peak_memory_bytes(fn, device)
        _sync(device)
        once = time.perf_counter() - start
    except (UnsupportedCase, RuntimeError, MemoryError, NotImplementedError) as exc:
        # torch answers an unsupported backend, shape or dtype with RuntimeError (compile failures included)
        if device == "cuda" and _is_oom(exc):
            torch.cuda.empty_cache()  # give the cached blocks back before the next case
        return _replace(base, skipped_reason=_reason(exc, caught))
    number = max(1, int(settings.min_pass_s / 4 / max(once, 1e-9)))
    live.append(_Live(case, _replace(checked, peak_memory_bytes=peak), fn, number))
    return None


def _build_and_call(
    case: Case, base: BenchResult, inputs: PhaseInputs, settings: BenchSettings
) -> tuple[Callable[[], torch.Tensor], torch.Tensor, BenchResult]:
    """Build a case and make its first call. A forced SDPA backend that refuses native GQA (`enable_gqa`) is
    tried again with K/V repeated to every head, and the record says so in `gqa_feed`."""

    def build(impl: Implementation) -> tuple[Callable[[], torch.Tensor], torch.Tensor]:
        fn = build_phase(impl, case.variant, case.phase, inputs, chunk_size=settings.chunk_size,
                         compiled=settings.compiled_flex)  # fmt: skip
        out = fn()
        _sync(settings.device)
        return fn, out

    try:
        return (*build(case.impl), base)
    except RuntimeError as exc:
        if case.impl.backend is None or case.gqa_feed != "native" or _is_oom(exc):
            raise
    return (*build(replace(case.impl, gqa_feed="repeat_kv")), replace(base, gqa_feed="repeat_kv"))


# -- baselines ----------------------------------------------------------------------------------------------------
#: Fields that identify a measurement across runs.
MATCH_KEYS = ("variant", "impl", "phase", "batch", "seq_len", "n_heads", "n_kv_heads", "d_head", "window",
              "causal", "chunk_size", "dtype", "device")  # fmt: skip


@dataclass(frozen=True)
class Change:
    """One record of this run against the baseline's matching record."""

    key: dict[str, Any]
    old_s: float | None
    new_s: float | None
    change: float | None  # new / (old x drift) - 1: the change beyond the run-wide drift
    noise: float | None  # sqrt(IQR_old^2 + IQR_new^2) / old
    verdict: str  # slower (a regression), faster, noise, same, new, gone, skipped
    raw_change: float | None = None  # new / old - 1
    drift: float = 1.0  # the run-wide speed factor the change is measured against (1 = none)

    def to_record(self) -> dict[str, Any]:
        return {**self.key, "old_s": self.old_s, "new_s": self.new_s, "change": self.change, "noise": self.noise,
                "verdict": self.verdict, "raw_change": self.raw_change, "drift": self.drift}  # fmt: skip


def load_baseline(path: str) -> list[dict[str, Any]]:
    """The results of an earlier `llmarch bench --format json` (or --output) file."""
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            document = json.load(fh)
    except FileNotFoundError:
        raise InvalidValueError(f"--baseline: no such file {path!r}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidValueError(f"--baseline {path}: not a JSON file ({exc})") from None
    if (
        not isinstance(document, dict)
        or document.get("schema_version") != 1
        or not isinstance(document.get("results"), list)
    ):
        raise InvalidValueError(f"--baseline {path}: not an llmarch bench document (schema_version 1, results)")
    return document["results"]


#: Matched records needed before a run-wide drift is estimated (fewer: compared as measured).
MIN_RECORDS_FOR_DRIFT = 8


def run_drift(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> float:
    """The factor by which a whole run is slower (> 1) or faster than the baseline: the median of
    new/old over every matched record, or 1.0 with fewer than MIN_RECORDS_FOR_DRIFT matches.

    On a shared CPU the same kernel's time moves by 10-20% between runs, and every kernel moves together
    (the machine, not the code, changed speed). A regression of one kernel shows as an outlier against
    that common factor; a change that slows every kernel alike shows as the drift itself, which the CLI
    reports beside the table.
    """
    return run_spread(old, new)[0]


#: A kernel is set apart from the run-to-run scatter of all kernels only beyond this many robust sigmas:
#: 4, not 3, because timings on a shared machine are heavy-tailed (run-to-run CV 5% median, 26% at p90),
#: and with 3 one of four identical --quick runs here still failed the gate.
SCATTER_SIGMAS = 4.0


def run_spread(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> tuple[float, float]:
    """(drift, scatter): the median of new/old over matched records (see `run_drift`) and the robust
    spread of log(new/old) around it, 1.4826 x the median absolute deviation (a normal sigma).

    The scatter is the run-to-run noise the two runs actually showed, kernel by kernel: within-run IQRs
    miss it, because a shared machine's speed changes between and during runs (here: a 5% median and
    26% p90 coefficient of variation from run to run). Both are (1.0, 0.0) with fewer than
    MIN_RECORDS_FOR_DRIFT matched records.
    """
    old_by_key = {_match_key(r): r for r in old}
    log_ratios = []
    for record in new:
        before = old_by_key.get(_match_key(record))
        old_s, new_s = (before or {}).get("median_s"), record.get("median_s")
        if before is not None and old_s and new_s:
            log_ratios.append(math.log(new_s / old_s))
    if len(log_ratios) < MIN_RECORDS_FOR_DRIFT:
        return 1.0, 0.0
    median = statistics.median(log_ratios)
    mad = statistics.median(abs(x - median) for x in log_ratios)
    return math.exp(median), 1.4826 * mad


def _match_key(record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(record.get(k) for k in MATCH_KEYS)


def compare_runs(
    old: list[dict[str, Any]], new: list[dict[str, Any]], *, max_regression: float, correct_drift: bool = True
) -> list[Change]:
    """Match records on MATCH_KEYS and compare their medians.

    Each new median is set against the old one scaled by the run-wide drift (`run_spread`; 1 when
    `correct_drift` is off). A change is a regression ("slower") only when it exceeds `max_regression`
    (a fraction) both as measured and against the drift, and the time difference exceeds the noise: the
    two runs' spreads combined, sqrt(IQR_old^2 + IQR_new^2), or SCATTER_SIGMAS robust sigmas of the
    run-to-run scatter of all kernels, whichever is larger. On a machine whose timings wander by 5 to 25%
    from run to run, a threshold alone would fire on noise. "faster" is the mirror image; "noise" is a change
    beyond the threshold but within the spread.
    """
    if not max_regression >= 0:
        raise InvalidValueError(f"--max-regression must be a non-negative fraction, got {max_regression}")
    drift, scatter = run_spread(old, new) if correct_drift else (1.0, 0.0)
    old_by_key = {_match_key(r): r for r in old}
    changes = []
    seen = set()
    for record in new:
        k = _match_key(record)
        seen.add(k)
        ident = {name: record.get(name) for name in MATCH_KEYS}
        before = old_by_key.get(k)
        if before is None:
            changes.append(Change(ident, None, record.get("median_s"), None, None, "new", drift=drift))
            continue
        old_s, new_s = before.get("median_s"), record.get("median_s")
        if not old_s or not new_s:
            changes.append(Change(ident, old_s, new_s, None, None, "skipped", drift=drift))
            continue
        raw_change = new_s / old_s - 1
        expected_s = old_s * drift
        change = new_s / expected_s - 1
        noise_s = max(
            math.hypot(before.get("iqr_s") or 0.0, record.get("iqr_s") or 0.0),
            expected_s * math.expm1(SCATTER_SIGMAS * scatter),
        )
        delta = new_s - expected_s
        beyond = abs(change) > max_regression and abs(raw_change) > max_regression and change * raw_change > 0
        if not beyond:
            verdict = "same"
        elif abs(delta) <= noise_s:
            verdict = "noise"
        else:
            verdict = "slower" if delta > 0 else "faster"
        changes.append(Change(ident, old_s, new_s, change, noise_s / old_s, verdict, raw_change, drift))
    for record in old:
        if _match_key(record) not in seen:
            ident = {name: record.get(name) for name in MATCH_KEYS}
            changes.append(Change(ident, record.get("median_s"), None, None, None, "gone", drift=drift))
    return changes


def confirm_regressions(
    bench_run: BenchRun,
    old: list[dict[str, Any]],
    *,
    max_regression: float,
    correct_drift: bool,
    progress: bool = False,
) -> tuple[list[Change], int]:
    """Re-time the cases that compare as regressions and keep, for each, the faster of the two medians.

    A slowdown must reproduce to count: one noisy burst on a shared machine can slow a kernel by 50% for
    a few seconds. Only the suspected cases run again (at the run's roofline, not re-measured), and the
    run's results are updated in place. Returns the new comparison and how many cases were re-timed.
    """
    changes = compare_runs(old, bench_run.records, max_regression=max_regression, correct_drift=correct_drift)
    suspects = regressions(changes)
    if not suspects or bench_run.interrupted:
        return changes, 0
    wanted = {tuple(c.key[k] for k in MATCH_KEYS) for c in suspects}
    s = bench_run.settings

    def keep(values: tuple[Any, ...], field_name: str) -> tuple[Any, ...]:
        chosen = {c.key[field_name] for c in suspects}
        return tuple(v for v in values if v in chosen) or values

    narrow = replace(
        s,
        seq_lens=keep(s.seq_lens, "seq_len"),
        batches=keep(s.batches, "batch"),
        phases=keep(s.phases, "phase"),
        impls=keep(s.impls, "impl"),
        variants=keep(s.variants, "variant"),
    )
    again = run(narrow, progress=progress, peaks=bench_run.peaks)
    retimed = {_match_key(r.to_record()): r for r in again.results}
    for i, result in enumerate(bench_run.results):
        k = _match_key(result.to_record())
        second = retimed.get(k)
        if k not in wanted or second is None or second.median_s is None or result.median_s is None:
            continue
        if second.median_s < result.median_s:
            bench_run.results[i] = second
    changes = compare_runs(old, bench_run.records, max_regression=max_regression, correct_drift=correct_drift)
    return changes, len(wanted)


def regressions(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.verdict == "slower"]
