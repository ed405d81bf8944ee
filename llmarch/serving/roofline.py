"""Roofline formulas of the serving step model: operator times, GEMM efficiency, all-reduces, MoE routing.

Each is one cited formula on plain numbers; `llmarch.serving.step` combines them into the time of one
engine step.
"""

from __future__ import annotations

from llmarch.calc.step_time import ring_traffic_fraction
from llmarch.core.config import ArchConfig


def roofline_time_s(flops: float, traffic_bytes: float, flop_per_s: float, bytes_per_s: float) -> float:
    """Seconds an operator takes on the roofline: max(FLOPs / FLOP/s, bytes / bytes/s).

    Williams, Waterman and Patterson 2009 (CACM 52(4), "Roofline"): attainable performance is
    min(peak FLOP/s, intensity x bandwidth), so the time is whichever of compute and memory traffic takes
    longer. The rates are the achieved ones (peak x efficiency).
    """
    return max(flops / flop_per_s, traffic_bytes / bytes_per_s)


def ridge_point(flop_per_s: float, bytes_per_s: float) -> float:
    """The roofline's ridge point in FLOP/byte: FLOP/s over bytes/s (Williams et al. 2009).

    An operator whose arithmetic intensity is below it is memory-bound. At the dense bf16 peak an H100
    SXM's is 989.5e12 / 3.35e12 = 295 FLOP/byte.
    """
    return flop_per_s / bytes_per_s


def gemm_efficiency(tokens: float, large_fraction: float, m_half: float) -> float:
    """Achieved fraction of the dense peak of a weight GEMM whose M dimension is `tokens`.

    large_fraction x M / (M + m_half): a GEMM with few rows fills few output tiles, so part of the SMs
    idle (tile and wave quantization, NVIDIA "Matrix Multiplication Background User's Guide", 2023); it
    reaches half its large-M efficiency at M = m_half (a per-GPU constant of the efficiency catalog).
    """
    return large_fraction * tokens / (tokens + m_half)


def allreduce_time_s(message_bytes: float, tp: int, link_bytes_per_s: float, latency_s: float) -> float:
    """Seconds of one ring all-reduce of `message_bytes` over `tp` GPUs: latency + 2 (t-1)/t x bytes / link.

    A ring all-reduce is a reduce-scatter and an all-gather; each GPU sends and receives 2 (t-1)/t of the
    message (Patarasuk and Yuan 2009, J. Parallel Distrib. Comput. 69(2); NCCL's "bus bandwidth"
    convention). `link_bytes_per_s` is one GPU's achieved bandwidth in one direction. Zero for tp = 1.
    """
    if tp == 1:
        return 0.0
    return latency_s + ring_traffic_fraction("all_reduce", tp) * message_bytes / link_bytes_per_s


def ring_latency_s(two_gpu_latency_s: float, hop_latency_s: float, tp: int) -> float:
    """Fixed seconds of one small all-reduce over `tp` GPUs: the 2-GPU latency + a hop latency per extra step.

    A ring all-reduce runs 2 (t - 1) dependent steps (reduce-scatter then all-gather; Patarasuk and Yuan
    2009), each paying a link hop, so its small-message time grows with t: 2 (t - 2) more hops than on two
    GPUs (nccl-tests all_reduce_perf: ~8-10 us on 2 NVLink GPUs, ~20-30 us on 8).
    """
    return two_gpu_latency_s + hop_latency_s * 2 * max(tp - 2, 0)


def allreduces_per_layer(config: ArchConfig, *, cross_attention: bool = False) -> int:
    """All-reduces per layer under Megatron tensor parallelism: one after attention, one after the MLP.

    Shoeybi et al. 2019 (Megatron-LM, arXiv:1909.08053, section 3, Figure 3): the column- then row-parallel
    split of each block needs one all-reduce of its output in the forward pass. A parallel block (GPT-J,
    Falcon) sums attention and MLP before a single all-reduce; a decoder layer with cross-attention adds one.
    """
    return (1 if config.parallel_block else 2) + (1 if cross_attention else 0)


def expected_active_experts(n_experts: int, top_k: int, n_tokens: float) -> float:
    """Expected number of distinct routed experts that `n_tokens` tokens use in one MoE layer.

    With uniform, independent top-k routing each token picks a given expert with probability k / n, so an
    expert is unused by all tokens with probability (1 - k/n)^tokens: n (1 - (1 - k/n)^tokens) experts are
    read. A balanced router is what the load-balancing loss aims at (Fedus et al. 2021, Switch
    Transformers, arXiv:2101.03961, section 2.2). One token reads k; a prefill of thousands reads all n.
    """
    return n_experts * (1.0 - (1.0 - top_k / n_experts) ** n_tokens)


def speculative_tokens_per_step(draft_len: int, acceptance_rate: float) -> float:
    """Expected tokens a speculative-decoding step yields: (1 - a^(k+1)) / (1 - a); k + 1 when a = 1.

    Leviathan, Kalman and Matias 2023 ("Fast Inference from Transformers via Speculative Decoding",
    arXiv:2211.17192, eq. 1): with k drafted tokens each accepted independently with probability a, the
    target model's verification pass yields the accepted prefix plus one token of its own.
    """
    if acceptance_rate >= 1.0:
        return float(draft_len + 1)
    return (1.0 - acceptance_rate ** (draft_len + 1)) / (1.0 - acceptance_rate)
