"""Analytic FLOPs, bytes and roofline times of one attention call, as `llmarch bench` measures it (torch-free).

Convention (as flops.py): 2 FLOPs per multiply-add, and only the two attention matmuls are counted,
Q K^T (2 d_head FLOPs per attended query-key pair and head) and A V (2 d_head_v). Softmax, masking, the
ALiBi bias add and the scaling are elementwise and left out. A pair is counted only where the mask lets
the query see the key: causal attention counts S (S + 1) / 2 pairs, about half of the S^2 of full
attention, and a sliding window caps each query at W keys. This is FlashAttention's convention for
reporting achieved FLOP/s (Dao 2023, arXiv:2307.08691, section 4.1: 4 x seqlen^2 x head dim x heads per
forward, halved for causal), except that it counts the S extra diagonal pairs exactly. A kernel that
multiplies the whole square and masks it afterwards (the eager reference, SDPA with a boolean mask)
does more work than it is credited with: its achieved FLOP/s shows the waste.

Bytes are the compulsory memory traffic: every input element read once and every output element written
once (Q, K, V and O; for decode the whole KV cache, for chunked prefill the cache reads and writes of each
chunk). FlashAttention re-reads K and V once per query block (Dao et al. 2022, arXiv:2205.14135,
Theorem 2), so real traffic is higher; the compulsory count is the floor the roofline uses.
"""

from __future__ import annotations

import math

from llmarch.calc.flops import mean_attended_keys
from llmarch.core.errors import InvalidValueError

#: The phases `llmarch bench` times: a causal pass over a prompt, one decoded token against a KV cache of
#: S tokens, and the prompt fed in chunks into the cache (Mistral's rolling buffer under a window).
PHASES: tuple[str, ...] = ("prefill", "decode", "chunked_prefill")


def _check_phase(phase: str) -> None:
    if phase not in PHASES:
        raise InvalidValueError(f"unknown phase {phase!r}; use one of {', '.join(PHASES)}")


def _check_positive(name: str, value: int | None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValueError(f"{name} must be a positive integer, got {value!r}")


def cache_slots(seq_len: int, window: int | None) -> int:
    """KV entries a cache holds after `seq_len` tokens: all of them, or the last W under a sliding window.

    Mistral's rolling buffer keeps position i in slot i mod W (Jiang et al. 2023, arXiv:2310.06825, section 2).
    """
    _check_positive("seq_len", seq_len)
    _check_positive("window", window, allow_none=True)
    return seq_len if window is None else min(seq_len, window)


def chunk_spans(seq_len: int, chunk_size: int) -> list[tuple[int, int]]:
    """The (start, end) token ranges of a prompt of `seq_len` tokens fed in chunks of `chunk_size`."""
    _check_positive("seq_len", seq_len)
    _check_positive("chunk_size", chunk_size)
    return [(start, min(seq_len, start + chunk_size)) for start in range(0, seq_len, chunk_size)]


def attended_pairs(phase: str, seq_len: int, *, window: int | None = None, causal: bool = True) -> float:
    """Query-key pairs one head scores in a phase at context `seq_len` (a count, per head and sequence).

    prefill: S x mean_attended_keys(S) (flops.py): S (S + 1) / 2 causal, S^2 full, capped by the window.
    decode: the one new query sees every cached key: min(S, W) (the token itself included).
    chunked_prefill: the same pairs as a causal prefill; chunking changes the order, not the work
    (Jiang et al. 2023, arXiv:2310.06825, section 2, "pre-fill and chunking").
    """
    _check_phase(phase)
    _check_positive("seq_len", seq_len)
    _check_positive("window", window, allow_none=True)
    if phase == "decode":
        return float(cache_slots(seq_len, window))
    if phase == "chunked_prefill":
        causal = True
    return seq_len * mean_attended_keys(seq_len, window=window, causal=causal)


def attention_flops(batch: int, n_heads: int, d_head: int, pairs: float, *, d_head_v: int | None = None) -> float:
    """FLOPs of the two attention matmuls: 2 B H (d_head + d_head_v) x pairs.

    Q K^T costs 2 d_head FLOPs per pair and A V costs 2 d_head_v (one multiply-add = 2 FLOPs; Kaplan et al.
    2020, arXiv:2001.08361, Table 1; Dao 2023, arXiv:2307.08691, section 4.1). Softmax, masking and
    position biases are left out.
    """
    d_v = d_head if d_head_v is None else d_head_v
    return 2.0 * batch * n_heads * (d_head + d_v) * pairs


def attention_bytes(
    phase: str,
    *,
    batch: int,
    n_heads: int,
    n_kv_heads: int,
    d_head: int,
    seq_len: int,
    bytes_per_element: float,
    window: int | None = None,
    chunk_size: int | None = None,
) -> float:
    """Compulsory memory traffic of one phase in bytes: each input read once, each output written once.

    prefill: Q and O (B H S d each) and K and V (B H_kv S d each).
    decode: one query row and one output row per head, and the whole KV cache, 2 B H_kv min(S, W) d:
    decode is a stream through the cache, so grouped heads (H_kv < H) divide its bytes.
    chunked_prefill: per chunk of c tokens with n cached keys before it: Q and O (2 B H c d), K and V of
    the cache and the chunk (2 B H_kv (n + c) d), and the chunk's K and V written to the cache
    (2 B H_kv min(c, slots) d). The one new K/V row decode writes is left out.
    """
    _check_phase(phase)
    for name, value in (("batch", batch), ("n_heads", n_heads), ("n_kv_heads", n_kv_heads), ("d_head", d_head)):
        _check_positive(name, value)
    e = bytes_per_element
    if phase == "prefill":
        return e * batch * d_head * (2 * n_heads * seq_len + 2 * n_kv_heads * seq_len)
    if phase == "decode":
        return e * batch * d_head * (2 * n_heads + 2 * n_kv_heads * cache_slots(seq_len, window))
    if chunk_size is None:
        raise InvalidValueError("chunked_prefill needs a chunk_size")
    slots = cache_slots(seq_len, window)
    total = 0.0
    for start, end in chunk_spans(seq_len, chunk_size):
        c = end - start
        cached = start if window is None else min(start, window)
        total += 2 * n_heads * c + 2 * n_kv_heads * (cached + c) + 2 * n_kv_heads * min(c, slots)
    return e * batch * d_head * total


def roofline_time_s(flops: float, moved_bytes: float, peak_flop_per_s: float, peak_bytes_per_s: float) -> float:
    """Seconds the roofline model predicts: max(FLOPs / peak FLOP/s, bytes / peak bytes/s).

    A kernel is bound by whichever of compute and memory traffic takes longer at the device's peaks
    (Williams, Waterman and Patterson 2009, "Roofline", CACM 52(4)); overlap is assumed perfect, so the
    prediction is a lower bound on the time.
    """
    if peak_flop_per_s <= 0 or peak_bytes_per_s <= 0 or not math.isfinite(peak_flop_per_s + peak_bytes_per_s):
        raise InvalidValueError("roofline peaks must be positive and finite")
    return max(flops / peak_flop_per_s, moved_bytes / peak_bytes_per_s)


def arithmetic_intensity(flops: float, moved_bytes: float) -> float:
    """FLOPs per byte of compulsory traffic (the x axis of a roofline plot)."""
    return flops / moved_bytes if moved_bytes > 0 else math.inf
