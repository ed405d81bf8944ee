"""[torch] Attention as the benchmark runs it: variants, a registry of implementations, and the three phases.

Layout everywhere (scaled_dot_product_attention's): q (batch, n_heads, n_queries, d_head); k and v
(batch, n_kv_heads, n_keys, d_head); the output (batch, n_heads, n_queries, d_head). Query head h reads KV
head h // group, group = n_heads / n_kv_heads (Ainslie et al. 2023, arXiv:2305.13245), as `model.attend`
and `enable_gqa` do. Queries sit at positions q_start.., keys at k_start.. (contiguous). Key position kp
is visible to query position qp when kp <= qp (causal) and qp - kp < window (sliding window, counting the
query itself, as Mistral's rolling buffer; Jiang et al. 2023, arXiv:2310.06825). ALiBi adds
-slope_h |qp - kp| to the scores (Press et al. 2022, arXiv:2108.12409), with `model.alibi_slopes`.

Implementations (the registry `IMPLEMENTATIONS`): `eager`, the plain reference (matmul, mask, softmax,
matmul) with K/V repeated to every query head; `sdpa`, torch's fused scaled_dot_product_attention with
the default backend choice and native GQA (`enable_gqa`); `sdpa_<backend>` forcing one backend through
`torch.nn.attention.sdpa_kernel` (flash, efficient, cudnn, math); `flex`, FlexAttention with a block mask
and an ALiBi score_mod, compiled. GQA can be fed three ways, and the costs differ a lot: natively
(`enable_gqa`), by repeating K/V to every head (`*_repeat_kv`, `eager`), or by folding the query heads
of a group into the query rows so that one matmul serves the group and K/V are read once
(`*_grouped`): the grouped matmul is what makes decode with few KV heads fast on a CPU.

Decode is one query against the whole cache: no mask at all, since `is_causal=True` aligns the causal
mask top-left and would let a single query see only the first key.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from llmarch.bench.counts import PHASES, cache_slots, chunk_spans
from llmarch.core.errors import InvalidValueError
from llmarch.core.frozen import frozen_dataclass
from llmarch.reference.model import alibi_slopes

VARIANT_NAMES: tuple[str, ...] = ("mha", "gqa", "mqa", "sliding_window", "alibi")

Kernel = Callable[[Tensor, Tensor, Tensor], Tensor]


class UnsupportedCase(Exception):
    """A (variant, implementation, phase) this build, device or shape cannot run; the message says why."""


# -- variants ---------------------------------------------------------------------------------------------------
@frozen_dataclass
class Variant:
    """One attention variant resolved to numbers; `unavailable` says why it cannot be built for this shape."""

    name: str  # one of VARIANT_NAMES
    n_heads: int
    n_kv_heads: int
    d_head: int
    window: int | None = None  # sliding window in tokens (sliding_window only)
    alibi: bool = False
    causal: bool = True  # prefill mask; decode and chunked prefill are causal by construction
    unavailable: str | None = None

    @property
    def group_size(self) -> int:
        """Query heads per KV head."""
        return self.n_heads // self.n_kv_heads


def default_gqa_kv_heads(n_heads: int) -> int | None:
    """KV heads of the `gqa` variant when the shape has none between MQA and MHA: groups of 8 where n_heads
    allows it (Llama-2-70B, Llama-3), else the most KV heads that still share (the largest divisor < n_heads).
    None when n_heads has no divisor strictly between 1 and n_heads."""
    if n_heads % 8 == 0 and n_heads // 8 > 1:
        return n_heads // 8
    divisors = [d for d in range(2, n_heads) if n_heads % d == 0]
    return max(divisors) if divisors else None


def make_variant(
    spec: str, *, n_heads: int, n_kv_heads: int, d_head: int, window: int | None, causal: bool = True
) -> Variant:
    """Resolve a variant name (or `gqa:N`, N KV heads) against a shape.

    mha: n_kv_heads = n_heads; mqa: 1; gqa: N, else the shape's n_kv_heads when it lies strictly between,
    else `default_gqa_kv_heads`; sliding_window and alibi keep the shape's n_kv_heads. Only sliding_window
    has a window, and it stays causal under causal=False.
    """
    name, _, arg = spec.strip().partition(":")
    if name not in VARIANT_NAMES:
        import difflib

        close = difflib.get_close_matches(name, VARIANT_NAMES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InvalidValueError(f"unknown variant {spec!r}{hint} (choose from {', '.join(VARIANT_NAMES)}, gqa:N)")
    if arg and name != "gqa":
        raise InvalidValueError(f"variant {spec!r}: only gqa takes a KV-head count (gqa:N)")
    for label, value in (("n_heads", n_heads), ("n_kv_heads", n_kv_heads), ("d_head", d_head)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidValueError(f"{label} must be a positive integer, got {value!r}")
    if n_heads % n_kv_heads:
        raise InvalidValueError(f"n_kv_heads ({n_kv_heads}) must divide n_heads ({n_heads})")
    base = Variant(name, n_heads, n_kv_heads, d_head, causal=causal)
    if name == "mha":
        return replace(base, n_kv_heads=n_heads)
    if name == "mqa":
        return replace(base, n_kv_heads=1)
    if name == "gqa":
        if arg:
            try:
                kv = int(arg)
            except ValueError:
                raise InvalidValueError(f"variant {spec!r}: N in gqa:N must be an integer") from None
            if kv < 1 or n_heads % kv:
                raise InvalidValueError(f"variant {spec!r}: {kv} KV heads must divide n_heads ({n_heads})")
            return replace(base, n_kv_heads=kv)
        if 1 < n_kv_heads < n_heads:
            return base
        kv_default = default_gqa_kv_heads(n_heads)
        if kv_default is None:
            return replace(base, unavailable=f"n_heads={n_heads} has no group count between MQA and MHA")
        return replace(base, n_kv_heads=kv_default)
    if name == "alibi":
        return replace(base, alibi=True)
    if window is None:
        raise InvalidValueError("the sliding_window variant needs a window (--window or a preset with one)")
    if window < 1:
        raise InvalidValueError(f"window must be a positive number of tokens, got {window}")
    return replace(base, window=window, causal=True)


# -- implementations --------------------------------------------------------------------------------------------
GqaFeed = Literal["native", "repeat_kv", "grouped"]


@frozen_dataclass
class Implementation:
    """One way to compute attention: a kernel family, how GQA is fed to it, and an optional forced backend."""

    name: str
    kind: Literal["eager", "sdpa", "flex"]
    gqa_feed: GqaFeed
    backend: str | None = None  # torch.nn.attention.SDPBackend member forced with sdpa_kernel
    gqa_alternative: bool = False  # a way of feeding GQA: only planned where KV heads are shared
    description: str = ""


IMPLEMENTATIONS: dict[str, Implementation] = {
    impl.name: impl
    for impl in (
        Implementation("eager", "eager", "repeat_kv", description="matmul, mask, softmax, matmul; K/V repeated"),
        Implementation("eager_grouped", "eager", "grouped", gqa_alternative=True,
                       description="eager with a group's query heads as query rows: K/V read once per group"),
        Implementation("sdpa", "sdpa", "native", description="scaled_dot_product_attention, default backend"),
        Implementation("sdpa_repeat_kv", "sdpa", "repeat_kv", gqa_alternative=True,
                       description="SDPA after repeating K/V to every query head"),
        Implementation("sdpa_grouped", "sdpa", "grouped", gqa_alternative=True,
                       description="SDPA with a group's query heads as query rows"),
        Implementation("sdpa_flash", "sdpa", "native", "FLASH_ATTENTION", description="SDPA, flash backend"),
        Implementation("sdpa_efficient", "sdpa", "native", "EFFICIENT_ATTENTION",
                       description="SDPA, memory-efficient backend"),
        Implementation("sdpa_cudnn", "sdpa", "native", "CUDNN_ATTENTION", description="SDPA, cuDNN backend"),
        Implementation("sdpa_math", "sdpa", "native", "MATH", description="SDPA, math fallback"),
        Implementation("flex", "flex", "native", description="FlexAttention block mask + score_mod, compiled"),
    )
}  # fmt: skip


def implementation(name: str) -> Implementation:
    """The registry entry named exactly `name`; InvalidValueError with a suggestion otherwise."""
    if name in IMPLEMENTATIONS:
        return IMPLEMENTATIONS[name]
    import difflib

    close = difflib.get_close_matches(name, list(IMPLEMENTATIONS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise InvalidValueError(f"unknown implementation {name!r}{hint} (choose from {', '.join(IMPLEMENTATIONS)})")


def flex_unavailable_reason() -> str | None:
    """Why this torch build has no FlexAttention, or None when it has one."""
    try:
        from torch.nn.attention import flex_attention  # noqa: F401
    except ImportError:
        return f"torch {torch.__version__} has no FlexAttention (added in 2.5)"
    return None


@functools.cache
def _compiled_flex() -> Callable[..., Tensor]:
    """flex_attention compiled once; every new shape recompiles, so the sweep raises dynamo's limit."""
    import torch._dynamo
    from torch.nn.attention.flex_attention import flex_attention

    config = torch._dynamo.config
    for knob in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, knob):
            setattr(config, knob, max(getattr(config, knob), 1024))
    return torch.compile(flex_attention, dynamic=False)


# -- geometry of one call ---------------------------------------------------------------------------------------
@frozen_dataclass
class Geometry:
    """One attention call: q_len queries from position q_start, k_len keys from k_start, and the mask rule."""

    q_start: int
    q_len: int
    k_start: int
    k_len: int
    causal: bool = True
    window: int | None = None  # only with causal

    @property
    def all_visible(self) -> bool:
        """Every query sees every key: no mask is needed (decode against a cache, full attention)."""
        last_q, last_k = self.q_start + self.q_len - 1, self.k_start + self.k_len - 1
        if not self.causal:
            return True
        return last_k <= self.q_start and (self.window is None or last_q - self.k_start < self.window)

    @property
    def window_binds(self) -> bool:
        return self.causal and self.window is not None and self.q_start + self.q_len - 1 - self.k_start >= self.window

    @property
    def top_left_causal(self) -> bool:
        """The square causal mask `is_causal=True` means: queries and keys start at the same position."""
        return self.causal and not self.window_binds and self.q_start == self.k_start and self.q_len == self.k_len

    @property
    def lower_right_causal(self) -> bool:
        """Causal with the last query on the last key (queries appended after a cache), no binding window."""
        return self.causal and not self.window_binds and self.q_start + self.q_len == self.k_start + self.k_len

    def relative(self, device: torch.device) -> Tensor:
        """qp - kp for every (query, key) pair: (q_len, k_len), int64."""
        qp = torch.arange(self.q_start, self.q_start + self.q_len, device=device)
        kp = torch.arange(self.k_start, self.k_start + self.k_len, device=device)
        return qp[:, None] - kp[None, :]

    def mask(self, device: torch.device) -> Tensor | None:
        """Boolean (q_len, k_len), True where the key is visible; None when every key is."""
        if self.all_visible:
            return None
        return _visible(self.relative(device), self.causal, self.window)


def _visible(relative: Tensor, causal: bool, window: int | None) -> Tensor:
    visible = relative >= 0 if causal else torch.ones_like(relative, dtype=torch.bool)
    if causal and window is not None:
        visible = visible & (relative < window)
    return visible


def _alibi_bias(slopes: Tensor, relative: Tensor, dtype: torch.dtype) -> Tensor:
    """ALiBi's additive bias -slope_h |qp - kp|: (heads, q_len, k_len)."""
    return (-(slopes[:, None, None] * relative.abs().to(slopes.dtype))).to(dtype)


def _slopes(variant: Variant, device: torch.device) -> Tensor | None:
    if not variant.alibi:
        return None
    return torch.tensor(alibi_slopes(variant.n_heads), dtype=torch.float64, device=device)


# -- kernels ----------------------------------------------------------------------------------------------------
def _eager(q: Tensor, k: Tensor, v: Tensor, *, hidden: Tensor | None, bias: Tensor | None, grouped: bool) -> Tensor:
    """Matmul, mask, softmax, matmul. `hidden` is the complement of the visibility mask."""
    b, h, lq, d = q.shape
    hkv, lk = k.shape[1], k.shape[2]
    g = h // hkv
    scale = 1.0 / math.sqrt(d)
    if grouped and g > 1:
        # (b, hkv, g lq, d) @ (b, hkv, d, lk): the group's query rows share one read of K
        scores = (q.reshape(b, hkv, g * lq, d) @ k.transpose(-1, -2)).view(b, h, lq, lk)
    else:
        if g > 1:
            k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)  # (b, h, lk, d)
        scores = q @ k.transpose(-1, -2)  # (b, h, lq, lk)
    scores = scores * scale
    if bias is not None:
        scores = scores + bias
    if hidden is not None:
        scores = scores.masked_fill(hidden, float("-inf"))
    # Half-precision scores are normalised in fp32, as Hugging Face's eager attention does.
    upcast = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else None
    probs = scores.softmax(dim=-1, dtype=upcast).to(v.dtype)
    if grouped and g > 1:
        return (probs.view(b, hkv, g * lq, lk) @ v).view(b, h, lq, v.shape[-1])
    return probs @ v  # (b, h, lq, d_v)


def build_kernel(
    impl: Implementation | str,
    geom: Geometry,
    *,
    n_heads: int,
    n_kv_heads: int,
    slopes: Tensor | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    compiled: bool = True,
) -> Kernel:
    """A callable (q, k, v) -> output for one call geometry; masks, biases and block masks are built here,
    once, so that timing the callable times the attention alone."""
    impl = implementation(impl) if isinstance(impl, str) else impl
    device = torch.device(device)
    g = n_heads // n_kv_heads
    feed: GqaFeed = impl.gqa_feed if g > 1 else "native"
    relative = geom.relative(device) if (slopes is not None or not geom.all_visible) else None
    mask = geom.mask(device)
    bias = _alibi_bias(slopes, relative, dtype) if slopes is not None and relative is not None else None

    if impl.kind == "eager":
        hidden = None if mask is None else ~mask
        grouped = feed == "grouped"
        return lambda q, k, v: _eager(q, k, v, hidden=hidden, bias=bias, grouped=grouped)
    if impl.kind == "flex":
        return _flex_kernel(geom, g=g, slopes=slopes, device=device, compiled=compiled)
    return _sdpa_kernel(impl, geom, g=g, feed=feed, mask=mask, bias=bias)


def _sdpa_kernel(
    impl: Implementation, geom: Geometry, *, g: int, feed: GqaFeed, mask: Tensor | None, bias: Tensor | None
) -> Kernel:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    attn_mask: object = None
    is_causal = False
    if bias is not None:  # ALiBi: one additive float mask carries the bias and the -inf of hidden keys
        # (1, heads, q, k): the fused CPU kernels accept a per-head mask only in 4-d
        attn_mask = (bias if mask is None else bias.masked_fill(~mask, float("-inf")))[None]
    elif mask is not None:
        if geom.top_left_causal and feed != "grouped":
            is_causal = True  # lets the fused kernels skip the blocks above the diagonal
        elif geom.lower_right_causal and feed != "grouped":
            from torch.nn.attention.bias import causal_lower_right

            attn_mask = causal_lower_right(geom.q_len, geom.k_len)
        else:
            attn_mask = mask
    if feed == "grouped" and isinstance(attn_mask, Tensor):
        # Query rows are (group member, position): tile a (q, k) mask g times; split a per-head bias by group.
        if attn_mask.dim() == 2:
            attn_mask = attn_mask.repeat(g, 1)  # (g q, k)
        else:
            attn_mask = attn_mask.reshape(1, -1, g * geom.q_len, geom.k_len)  # (1, kv heads, g q, k)
    context: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext
    if impl.backend is not None:
        if not hasattr(SDPBackend, impl.backend):
            raise UnsupportedCase(f"torch {torch.__version__} has no SDPA backend {impl.backend}")
        context = functools.partial(sdpa_kernel, [getattr(SDPBackend, impl.backend)])

    def run(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        with context():
            if feed == "grouped":
                b, h, lq, d = q.shape
                hkv = k.shape[1]
                out = F.scaled_dot_product_attention(q.reshape(b, hkv, g * lq, d), k, v, attn_mask=attn_mask)
                return out.view(b, h, lq, v.shape[-1])
            if feed == "repeat_kv":
                k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, is_causal=is_causal, enable_gqa=feed == "native" and g > 1
            )

    return run


def _flex_kernel(geom: Geometry, *, g: int, slopes: Tensor | None, device: torch.device, compiled: bool) -> Kernel:
    reason = flex_unavailable_reason()
    if reason:
        raise UnsupportedCase(reason)
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    q_start, k_start, causal, window = geom.q_start, geom.k_start, geom.causal, geom.window

    def mask_mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        relative = (q_idx + q_start) - (kv_idx + k_start)
        visible = relative >= 0 if causal else relative == relative
        if causal and window is not None:
            visible = visible & (relative < window)
        return visible

    block_mask = None
    if not geom.all_visible:
        block_mask = create_block_mask(mask_mod, None, None, geom.q_len, geom.k_len, device=str(device))
    score_mod = None
    if slopes is not None:
        slopes32 = slopes.to(torch.float32)

        def score_mod(score: Tensor, b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            return score - slopes32[h] * ((q_idx + q_start) - (kv_idx + k_start)).abs()

    fn = _compiled_flex() if compiled else flex_attention

    def run(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the uncompiled path warns that it is unfused: we know
            return fn(q, k, v, score_mod=score_mod, block_mask=block_mask, enable_gqa=g > 1)

    return run


# -- phases -----------------------------------------------------------------------------------------------------
@dataclass
class PhaseInputs:
    """Random inputs of one phase: q (b, h, n_q, d) at q_start..; k, v (b, h_kv, n_k, d) at k_start..."""

    q: Tensor
    k: Tensor
    v: Tensor
    q_start: int
    k_start: int

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.q, self.k, self.v))


def phase_lengths(variant: Variant, phase: str, seq_len: int) -> tuple[int, int, int, int]:
    """(q_start, n_queries, k_start, n_keys) of a phase: prefill and chunked prefill see the whole sequence;
    decode is the token at position S - 1 against the cache (the last min(S, W) keys, itself included)."""
    if phase not in PHASES:
        raise InvalidValueError(f"unknown phase {phase!r}; use one of {', '.join(PHASES)}")
    if phase == "decode":
        n_keys = cache_slots(seq_len, variant.window)
        return seq_len - 1, 1, seq_len - n_keys, n_keys
    return 0, seq_len, 0, seq_len


def make_inputs(
    variant: Variant,
    phase: str,
    *,
    batch: int,
    seq_len: int,
    dtype: torch.dtype,
    device: torch.device | str,
    generator: torch.Generator | None = None,
) -> PhaseInputs:
    """Fresh standard-normal q, k, v (never zeros, never an untouched torch.empty)."""
    q_start, n_q, k_start, n_k = phase_lengths(variant, phase, seq_len)
    h, hkv, d = variant.n_heads, variant.n_kv_heads, variant.d_head

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator, device=device, dtype=dtype)

    return PhaseInputs(randn(batch, h, n_q, d), randn(batch, hkv, n_k, d), randn(batch, hkv, n_k, d), q_start, k_start)


def build_phase(
    impl: Implementation | str,
    variant: Variant,
    phase: str,
    inputs: PhaseInputs,
    *,
    chunk_size: int | None = None,
    compiled: bool = True,
) -> Callable[[], Tensor]:
    """A zero-argument callable running one phase with one implementation; it returns the output
    (b, h, n_queries, d). Raises UnsupportedCase for combinations that cannot run."""
    impl = implementation(impl) if isinstance(impl, str) else impl
    if variant.unavailable:
        raise UnsupportedCase(variant.unavailable)
    q, k, v = inputs.q, inputs.k, inputs.v
    device, dtype = q.device, q.dtype
    slopes = _slopes(variant, device)
    kernel_args = {"n_heads": variant.n_heads, "n_kv_heads": variant.n_kv_heads, "slopes": slopes,
                   "device": device, "dtype": dtype, "compiled": compiled}  # fmt: skip
    if phase in ("prefill", "decode"):
        causal = variant.causal if phase == "prefill" else True
        window = variant.window if causal else None
        geom = Geometry(inputs.q_start, q.shape[2], inputs.k_start, k.shape[2], causal, window)
        kernel = build_kernel(impl, geom, **kernel_args)
        return lambda: kernel(q, k, v)
    if phase != "chunked_prefill":
        raise InvalidValueError(f"unknown phase {phase!r}; use one of {', '.join(PHASES)}")
    if impl.kind == "flex":
        raise UnsupportedCase("flex: chunked_prefill would compile one kernel per chunk geometry; not benchmarked")
    if chunk_size is None or chunk_size < 1:
        raise InvalidValueError("chunked_prefill needs a positive chunk_size")
    return _chunked_prefill(variant, inputs, chunk_size, kernel_args, impl)


def _slot_pieces(start: int, end: int, slots: int) -> list[tuple[int, int, int]]:
    """Positions [start, end) (end - start <= slots) of a rolling buffer as contiguous pieces
    (first position, last position + 1, first slot); position p lives in slot p mod slots."""
    pieces = []
    p = start
    while p < end:
        slot = p % slots
        n = min(end - p, slots - slot)
        pieces.append((p, p + n, slot))
        p += n
    return pieces


def _chunked_prefill(
    variant: Variant, inputs: PhaseInputs, chunk_size: int, kernel_args: dict[str, object], impl: Implementation
) -> Callable[[], Tensor]:
    """The prompt in chunks into a KV cache; the output of every chunk lands in one (b, h, S, d) tensor.

    Without a binding window the cache holds every position: a chunk is written first, then its queries
    attend to cache[:end] (lower-right causal). Under a window W < S the cache is Mistral's rolling buffer of
    W slots: each chunk attends to the cached keys in position order concatenated with its own keys (the
    reference implementation's unrotate-and-concatenate), then its last keys overwrite the oldest slots.
    """
    q, k, v = inputs.q, inputs.k, inputs.v
    b, _, seq_len, _ = q.shape
    hkv, d = k.shape[1], k.shape[3]
    window = variant.window
    rolling = window is not None and window < seq_len
    slots = cache_slots(seq_len, window) if rolling else seq_len
    # Written (zero_ touches every page) before any timing: never read from an untouched buffer.
    cache_k = torch.zeros(b, hkv, slots, d, dtype=k.dtype, device=k.device)
    cache_v = torch.zeros_like(cache_k)
    out = torch.zeros_like(q)
    steps = []
    for start, end in chunk_spans(seq_len, chunk_size):
        if rolling:
            assert window is not None
            n_cached = min(start, window)
            geom = Geometry(start, end - start, start - n_cached, n_cached + end - start, True, window)
            reads = [(slot, slot + (p1 - p0)) for p0, p1, slot in _slot_pieces(start - n_cached, start, slots)]
            writes = _slot_pieces(max(start, end - slots), end, slots)
        else:
            geom = Geometry(start, end - start, 0, end, True, window)
            reads, writes = [], []
        steps.append((start, end, reads, writes, build_kernel(impl, geom, **kernel_args)))  # type: ignore[arg-type]

    def run() -> Tensor:
        for start, end, reads, writes, kernel in steps:
            if rolling:
                kc = torch.cat([cache_k[:, :, a:z] for a, z in reads] + [k[:, :, start:end]], dim=2)
                vc = torch.cat([cache_v[:, :, a:z] for a, z in reads] + [v[:, :, start:end]], dim=2)
                out[:, :, start:end] = kernel(q[:, :, start:end], kc, vc)
                for p0, p1, slot in writes:
                    cache_k[:, :, slot : slot + p1 - p0] = k[:, :, p0:p1]
                    cache_v[:, :, slot : slot + p1 - p0] = v[:, :, p0:p1]
            else:
                cache_k[:, :, start:end] = k[:, :, start:end]
                cache_v[:, :, start:end] = v[:, :, start:end]
                out[:, :, start:end] = kernel(q[:, :, start:end], cache_k[:, :, :end], cache_v[:, :, :end])
        return out

    return run


# -- the float64 reference --------------------------------------------------------------------------------------
def reference_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    q_positions: Tensor,
    k_positions: Tensor,
    causal: bool,
    window: int | None,
    slopes: Tensor | None = None,
) -> Tensor:
    """Attention in float64, the plainest way: q (..., h, n_q, d) at `q_positions` (any order), k and v
    (..., h_kv, n_k, d) at `k_positions`; K/V repeated to every head; returns float64 (..., h, n_q, d)."""
    q, k, v = q.double(), k.double(), v.double()
    g = q.shape[-3] // k.shape[-3]
    k, v = k.repeat_interleave(g, dim=-3), v.repeat_interleave(g, dim=-3)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    relative = q_positions[:, None] - k_positions[None, :]
    if slopes is not None:
        scores = scores + _alibi_bias(slopes.double(), relative, torch.float64)
    scores = scores.masked_fill(~_visible(relative, causal, window), float("-inf"))
    return scores.softmax(dim=-1) @ v


@frozen_dataclass
class Error:
    """How far an output is from the float64 reference, on the rows and heads checked."""

    max_abs_error: float
    rel_error: float  # ||out - ref||_2 / ||ref||_2


def reference_error(output: Tensor, inputs: PhaseInputs, variant: Variant, phase: str, *, max_rows: int = 256) -> Error:
    """Compare `output` of a phase with float64 eager attention on the same inputs.

    Checked: the last sequence of the batch, the query heads of the first and the last KV head, and up to
    `max_rows` query rows evenly spread (the first and the last included), each against all its keys: the
    reference costs O(rows x keys) whatever the shape, and a wrong mask, bias, head mapping or batch
    offset still shows.
    """
    q, k, v = inputs.q, inputs.k, inputs.v
    n_q = q.shape[2]
    g = variant.group_size
    kv_heads = sorted({0, variant.n_kv_heads - 1})
    heads = [kv * g + i for kv in kv_heads for i in range(g)]
    rows = torch.linspace(0, n_q - 1, min(n_q, max_rows), device=q.device).round().long().unique()
    causal = variant.causal if phase == "prefill" else True
    device = q.device
    ref = reference_attention(
        q[-1, heads][:, rows],
        k[-1, kv_heads],
        v[-1, kv_heads],
        q_positions=inputs.q_start + rows,
        k_positions=torch.arange(inputs.k_start, inputs.k_start + k.shape[2], device=device),
        causal=causal,
        window=variant.window if causal else None,
        slopes=None if (s := _slopes(variant, device)) is None else s[heads],
    )
    got = output[-1, heads][:, rows].double()
    diff = got - ref
    ref_norm = ref.norm().item()
    return Error(diff.abs().max().item(), diff.norm().item() / ref_norm if ref_norm else math.inf)
