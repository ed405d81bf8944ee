"""Serving estimates: memory per GPU, the largest batch that fits, and roofline times for prefill and decode.

What one replica (tp GPUs under tensor parallelism) needs and does when it serves `batch` requests of
`prompt_len` prompt tokens and `generate_len` generated tokens each, as a static batch:

    memory per GPU  = weights / tp + KV cache (split by KV head) + activation workspace   (llmarch.calc.training_memory)
    prefill (TTFT)  = every prompt through the model, in passes of at most `prefill_chunk` tokens
    decode (TPOT)   = one token for every sequence per step, averaged over the generation
    request latency = TTFT + (generate_len - 1) x TPOT           (the prefill yields the first token)
    tokens/s        = batch x generate_len / request latency      (per replica; x replicas for all GPUs)
    USD / M tokens  = price per GPU-hour x GPUs / 3600 / tokens/s x 10^6   (output tokens; prefill included)

Each phase is a roofline (Williams, Waterman and Patterson 2009, "Roofline: an insightful visual
performance model for multicore architectures", CACM 52(4)), applied per operator as LLM-Viewer does
(Yuan et al. 2024, arXiv:2402.16363): the weight matmuls and the attention core are each
timed as max(FLOPs / achievable FLOP/s, bytes / achievable bandwidth), then summed with the tensor-parallel
all-reduces. FLOPs are the analytic counts of llmarch.calc.flops; bytes are the weights a pass reads and the KV
cache it reads or writes. Decode re-reads every weight for a handful of tokens, so its arithmetic
intensity is about 2 x batch / bytes per weight, far below the GPU's ridge point: it is bound by memory
bandwidth (Pope et al. 2022, "Efficiently Scaling Transformer Inference", arXiv:2211.05102, section 2),
while prefill multiplies each weight by thousands of tokens and is bound by compute.

Architecture effects, each from the calculators below this layer: GQA/MQA shrink the KV cache by
n_heads / n_kv_heads (tensor parallelism splits KV heads over min(tp, n_kv_heads) GPUs and replicates
them beyond that, as vLLM does; an MLA latent is replicated on every GPU); a sliding window caps the cache
at the window (a rolling buffer) and the attended keys with it; MLA caches the latent and the rotary key
only; MoE decode reads only the experts the batch's tokens are routed to (`expected_active_experts`);
beam search keeps one cache per beam. Left out: activation reads and writes between kernels (they matter
only where prefill is already compute-bound), kernel launch overheads, the scheduler, paged-KV block
rounding (Kwon et al. 2023, vLLM, arXiv:2309.06180: under 4% waste), speculative decoding, prefix caching,
pipeline and expert parallelism, and overlap of communication with compute.

All numbers are SI (bytes, FLOPs, seconds, USD); every default that was used is listed in `assumptions`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from llmarch.calc.flops import attention_flops_per_token, forward_flops, weight_flops_per_token
from llmarch.calc.memory import kv_cache, kv_cache_bytes_per_token, weights_bytes
from llmarch.calc.params import attention_params, count_params, layer_norm_params, mlp_params
from llmarch.calc.training_memory import (
    ACTIVATION_BYTES,
    FP32_BYTES,
    inference_memory,
    inference_workspace_bytes,
)
from llmarch.catalog.hardware import Accelerator, accelerator, canonical_peak_dtype, default_price
from llmarch.core.checks import finite_number, fraction, non_negative, positive, positive_int
from llmarch.core.config import ArchConfig
from llmarch.core.defaults import (
    DEFAULT_ALLREDUCE_LATENCY_S,
    DEFAULT_BANDWIDTH_EFFICIENCY,
    DEFAULT_DTYPE,
    DEFAULT_FLOP_EFFICIENCY,
    DEFAULT_GENERATE_LEN,
    DEFAULT_PREFILL_CHUNK,
    DEFAULT_PROMPT_LEN,
    DEFAULT_RESERVE_FRACTION,
)
from llmarch.core.errors import InvalidValueError
from llmarch.core.units import canonical_dtype, format_bytes

Bound = Literal["compute", "memory"]

#: Weight dtypes whose matmuls run in that dtype; int8/int4 are treated as weight-only quantisation
#: (GPTQ/AWQ-style kernels dequantise to 16 bits), so their matmuls run at the 16-bit peak.
_NATIVE_COMPUTE_DTYPES = ("fp32", "bf16", "fp16", "fp8")

SECONDS_PER_HOUR = 3600.0


# -- input checks ------------------------------------------------------------------------------------------


# -- the formulas --------------------------------------------------------------------------------------------


def roofline_time_s(flops: float, traffic_bytes: float, flop_per_s: float, bytes_per_s: float) -> float:
    """Seconds an operator takes on the roofline: max(FLOPs / FLOP/s, bytes / bytes/s).

    Williams, Waterman and Patterson 2009 (CACM 52(4), "Roofline"): attainable performance is
    min(peak FLOP/s, intensity x bandwidth), so the time is whichever of compute and memory traffic takes
    longer, with nothing overlapping imperfectly. The rates are the achievable ones (peak x efficiency).
    """
    return max(flops / flop_per_s, traffic_bytes / bytes_per_s)


def ridge_point(flop_per_s: float, bytes_per_s: float) -> float:
    """The roofline's ridge point in FLOP/byte: FLOP/s over bytes/s (Williams et al. 2009).

    An operator whose arithmetic intensity (FLOPs per byte moved) is below it is memory-bound; above it,
    compute-bound. At the dense bf16 peak an H100 SXM's is 989.5e12 / 3.35e12 = 295 FLOP/byte.
    """
    return flop_per_s / bytes_per_s


def expected_active_experts(n_experts: int, top_k: int, n_tokens: float) -> float:
    """Expected number of distinct routed experts that `n_tokens` tokens use in one MoE layer.

    With uniform, independent top-k routing each token picks a given expert with probability k / n, so an
    expert is unused by all tokens with probability (1 - k/n)^tokens: n (1 - (1 - k/n)^tokens) experts are
    read. A balanced router is what the load-balancing loss aims at (Fedus et al. 2021, Switch
    Transformers, arXiv:2101.03961, section 2.2); real routing is skewed, which reads fewer experts.
    One token reads k; a prefill of thousands of tokens reads all n.
    """
    return n_experts * (1.0 - (1.0 - top_k / n_experts) ** n_tokens)


def allreduce_time_s(message_bytes: float, tp: int, link_bytes_per_s: float, latency_s: float) -> float:
    """Seconds of one ring all-reduce of `message_bytes` over `tp` GPUs: latency + 2 (t-1)/t x bytes / link.

    A ring all-reduce is a reduce-scatter and an all-gather; each GPU sends and receives 2 (t-1)/t of the
    message (Patarasuk and Yuan 2009, J. Parallel Distrib. Comput. 69(2); NCCL's "bus bandwidth"
    convention). `link_bytes_per_s` is one GPU's bandwidth in one direction. Zero for tp = 1.
    """
    if tp == 1:
        return 0.0
    return latency_s + 2.0 * (tp - 1) / tp * message_bytes / link_bytes_per_s


def allreduces_per_layer(config: ArchConfig, *, cross_attention: bool = False) -> int:
    """All-reduces per layer under Megatron tensor parallelism: one after attention, one after the MLP.

    Shoeybi et al. 2019 (Megatron-LM, arXiv:1909.08053, section 3, Figure 3): the column- then row-parallel
    split of each block needs one all-reduce of its output in the forward pass. A parallel block (GPT-J,
    Falcon) sums attention and MLP before a single all-reduce; a decoder layer with cross-attention adds one.
    """
    return (1 if config.parallel_block else 2) + (1 if cross_attention else 0)


def cumulative_attention_flops(config: ArchConfig, n_tokens: int) -> float:
    """Attention FLOPs of all queries of a causal sequence of `n_tokens` tokens: n x mean per token.

    From `attention_flops_per_token` (the mean over the sequence), so A(c + n) - A(c) is the attention
    work of the n queries at positions c+1 .. c+n, the decode steps after a context of c (each query attends
    to every earlier position, or to the last `sliding_window` of them on local layers).
    """
    return 0.0 if n_tokens == 0 else n_tokens * attention_flops_per_token(config, n_tokens)


def kv_bytes_per_attention_flop(config: ArchConfig, kv_dtype: str) -> float:
    """KV-cache bytes read per attention FLOP of a decode query (all decoder layers alike).

    A decode query reads each key and value it attends to exactly once, so bytes read = attended keys x
    bytes per cached position and layer, and FLOPs = attended keys x FLOPs per key and layer: their ratio is
    kv_cache_bytes_per_token / attention FLOPs of a one-token sequence (which attends to one key per layer).
    For MLA the cached position is the latent plus the rotary key; the FLOPs are those of the expanded heads.
    """
    return kv_cache_bytes_per_token(config, kv_dtype) / attention_flops_per_token(config, 1)


def kv_cache_share(config: ArchConfig, *, tp: int, kv_dtype: str = DEFAULT_DTYPE) -> float:
    """Fraction of the KV cache each of `tp` GPUs holds: 1 / min(tp, n_kv_heads), or 1 for MLA.

    Read off `llmarch.calc.training_memory.inference_memory`, which splits the cache by KV head and replicates a head
    when tp exceeds n_kv_heads (MQA's single head is on every GPU); an MLA latent serves all heads, so every
    GPU keeps all of it. tp x share is how many copies of the cache the replica holds.
    """
    per_gpu = inference_memory(config, batch=1, seq_len=1, kv_dtype=kv_dtype, tp=tp, flash=True).kv_cache_bytes
    return per_gpu / kv_cache(config, batch=1, seq_len=1, dtype=kv_dtype).total_bytes


def _encoder_params(config: ArchConfig) -> int:
    """Parameters of the encoder stack (self-attention, MLP, norms of each encoder layer); 0 for a decoder."""
    per_layer = sum(attention_params(config).values()) + mlp_params(config, config.d_ff) + layer_norm_params(config)
    return config.n_encoder_layers * per_layer


def _cross_kv_params(config: ArchConfig) -> int:
    """Parameters of the decoder's cross-attention key and value projections (applied to the encoder output)."""
    if not config.is_encoder_decoder:
        return 0
    attn = attention_params(config)
    return config.n_layers * (attn["k"] + attn["v"])


def weights_read_bytes(config: ArchConfig, dtype: str, *, n_tokens: float, phase: str = "decode") -> float:
    """Bytes of weights one forward pass over `n_tokens` tokens reads from memory (the whole replica).

    Every weight matrix the tokens multiply is read once per pass, whatever the number of tokens (Pope et
    al. 2022, section 2: why decode at small batch costs about weights / bandwidth). Not read: the input
    token and learned position tables when the head is untied (a token only looks its row up), and under
    MoE the routed experts no token of the pass is sent to (`expected_active_experts`, per layer). For an
    encoder-decoder, prefill reads the encoder and the cross-attention key/value projections, decode the
    rest. Bytes per weight are those of `weights_bytes` (int4 group scales included).
    """
    counts = count_params(config)
    per_param = weights_bytes(config, dtype) / counts.total
    breakdown = counts.breakdown
    if config.is_encoder_decoder and phase == "prefill":
        return per_param * (_encoder_params(config) + _cross_kv_params(config))
    unused = breakdown.get("embedding.position", 0)
    if not config.tie_embeddings:
        unused += breakdown.get("embedding.token", 0)
    params = counts.total - unused - _encoder_params(config) - _cross_kv_params(config)
    if config.is_moe:
        assert config.n_experts is not None and config.n_experts_per_token is not None
        routed = breakdown.get("moe.experts", 0)
        used = expected_active_experts(config.n_experts, config.n_experts_per_token, n_tokens) / config.n_experts
        params -= routed * (1.0 - used)
    return per_param * params


# -- phases --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseWork:
    """FLOPs and bytes of one phase for the whole replica (before dividing among the tp GPUs)."""

    matmul_flops: float  # weight matmuls: projections, MLP or experts, the output head
    matmul_bytes: float  # weights read (once per pass)
    attention_flops: float  # Q K^T and A V
    attention_bytes: float  # KV cache written (prefill) or read (decode), one copy; a GPU moves its share of it
    comm_tokens: float  # tokens whose hidden states are all-reduced, per all-reduce round
    n_passes: int  # forward passes (prefill chunks; 1 for a decode step)
    allreduces_per_pass: int  # all-reduces per forward pass


def prefill_work(
    config: ArchConfig,
    *,
    batch: int,
    prompt_len: int,
    dtype: str,
    kv_dtype: str,
    prefill_chunk: int | None,
) -> PhaseWork:
    """FLOPs and bytes of prefilling `batch` prompts of `prompt_len` tokens, in passes of `prefill_chunk`.

    Decoder: batch x (prompt_len x (weight + attention FLOPs per token) + one output-head matmul: only the
    last position's logits are needed), from `forward_flops`. Weights are read once per pass; each pass
    holds at most `prefill_chunk` tokens (None: one pass). Chunking leaves the causal attention FLOPs as
    they are (each query still attends to its whole prefix). The KV cache of each prompt is written once
    (beams start as copies of it). Encoder-decoder: the encoder over the prompt (bidirectional attention)
    and the decoder's cross-attention keys and values of it; the first decoder step is part of decode.
    """
    n_tokens = batch * prompt_len
    n_passes = 1 if prefill_chunk is None else math.ceil(n_tokens / prefill_chunk)
    tokens_per_pass = n_tokens / n_passes
    if not config.is_encoder_decoder:
        fwd = forward_flops(config, prompt_len)
        matmul_flops = batch * (prompt_len * fwd.weights + fwd.lm_head)
        attention_flops = n_tokens * fwd.attention
        kv_written = kv_cache(config, batch=batch, seq_len=prompt_len, dtype=kv_dtype).total_bytes
        layers = config.n_layers
    else:
        # The encoder's layers have the decoder's shapes, so its per-token weight FLOPs are the decoder
        # stack's scaled by n_encoder_layers / n_layers (T5 has no MoE and no sliding window).
        parts = weight_flops_per_token(config)
        scale = config.n_encoder_layers / config.n_layers
        encoder = scale * (parts["attention_proj"] + parts["mlp"])
        matmul_flops = n_tokens * (encoder + 2.0 * _cross_kv_params(config))
        attention_flops = n_tokens * scale * attention_flops_per_token(config, prompt_len, causal=False)
        cache = kv_cache(config, batch=batch, seq_len=1, dtype=kv_dtype, encoder_len=prompt_len)
        kv_written = cache.cross_attention_bytes
        layers = config.n_encoder_layers
    weights_per_pass = weights_read_bytes(config, dtype, n_tokens=tokens_per_pass, phase="prefill")
    return PhaseWork(
        matmul_flops=matmul_flops,
        matmul_bytes=n_passes * weights_per_pass,
        attention_flops=attention_flops,
        attention_bytes=kv_written,
        comm_tokens=tokens_per_pass,
        n_passes=n_passes,
        allreduces_per_pass=layers * allreduces_per_layer(config),
    )


def decode_work(
    config: ArchConfig, *, sequences: int, prompt_len: int, generate_len: int, dtype: str, kv_dtype: str
) -> PhaseWork:
    """FLOPs and bytes of one decode step for `sequences` sequences, averaged over the generation.

    Decoder: the generate_len - 1 steps after the prefill feed the tokens at positions prompt_len + 1 ..
    prompt_len + generate_len - 1 (one step when generate_len = 1); each sequence pays the weight FLOPs of
    one token and its query's attention, [A(P + n) - A(P)] / n on average (`cumulative_attention_flops`),
    and reads the KV cache it attends to (`kv_bytes_per_attention_flop`). The weights are read once per
    step for all sequences (under MoE only the experts the step's tokens use). Encoder-decoder: generate_len
    decoder steps at positions 1 .. generate_len, each also attending to (and reading) the prompt_len cached
    encoder keys and values of cross-attention. Writing the new token's KV is part of the read above.
    """
    parts = weight_flops_per_token(config)
    per_token_matmul = parts["attention_proj"] + parts["mlp"] + parts["lm_head"]
    if not config.is_encoder_decoder:
        n_steps = max(generate_len - 1, 1)
        start = prompt_len
        cross_flops = cross_bytes = 0.0
    else:
        n_steps, start = generate_len, 0
        attn = attention_params(config)
        per_token_matmul += 2.0 * config.n_layers * (attn["q"] + attn["o"])  # cross-attention q and o
        cross_flops = attention_flops_per_token(config, prompt_len, causal=False)
        cache = kv_cache(config, batch=1, seq_len=1, dtype=kv_dtype, encoder_len=prompt_len)
        cross_bytes = cache.cross_attention_bytes
    self_flops = cumulative_attention_flops(config, start + n_steps) - cumulative_attention_flops(config, start)
    self_flops /= n_steps
    self_bytes = self_flops * kv_bytes_per_attention_flop(config, kv_dtype)
    return PhaseWork(
        matmul_flops=sequences * per_token_matmul,
        matmul_bytes=weights_read_bytes(config, dtype, n_tokens=sequences, phase="decode"),
        attention_flops=sequences * (self_flops + cross_flops),
        attention_bytes=sequences * (self_bytes + cross_bytes),
        comm_tokens=sequences,
        n_passes=1,
        allreduces_per_pass=config.n_layers * allreduces_per_layer(config, cross_attention=config.is_encoder_decoder),
    )


@dataclass(frozen=True)
class Rates:
    """Achievable rates of one GPU: FLOP/s and bytes/s (peak x efficiency, or measured)."""

    flop_per_s: float
    bytes_per_s: float
    source: str


@dataclass(frozen=True)
class PhaseEstimate:
    """Roofline time of one phase on one GPU of the replica (prefill: all passes; decode: one mean step)."""

    phase: str  # "prefill" or "decode"
    flops: float  # per GPU
    traffic_bytes: float  # per GPU: weights read + KV cache read or written
    matmul_flops: float
    matmul_bytes: float
    attention_flops: float
    attention_bytes: float
    arithmetic_intensity_flop_per_byte: float  # flops / traffic_bytes
    ridge_flop_per_byte: float  # of the achievable default rates
    bound: Bound  # "compute" when the intensity is above the ridge point
    compute_s: float  # flops at the achievable FLOP/s
    memory_s: float  # traffic at the achievable bandwidth
    matmul_s: float
    attention_s: float  # at the calibrated attention rates where given, else the defaults
    attention_default_s: float  # at the default rates
    comm_s: float  # tensor-parallel all-reduces
    n_passes: int
    time_s: float  # matmul_s + attention_s + comm_s
    default_time_s: float  # matmul_s + attention_default_s + comm_s


def phase_estimate(
    phase: str,
    work: PhaseWork,
    *,
    tp: int,
    kv_share: float,
    rates: Rates,
    attention_rates: Rates | None,
    comm_message_bytes_per_token: float,
    link_bytes_per_s: float,
    allreduce_latency_s: float,
) -> PhaseEstimate:
    """Per-GPU roofline of a phase: matmuls and attention each on the roofline, plus the all-reduces.

    Tensor parallelism gives each GPU 1/tp of the matmul FLOPs and weights and of the attention heads;
    its KV traffic is its share of the cache (`kv_cache_share`: replicated KV heads are read on every GPU
    that holds them). The all-reduces of a pass move tokens x d_model activations each
    (`allreduce_time_s`). The bound is read off the whole phase's intensity against the ridge point.
    """
    matmul_flops, matmul_bytes = work.matmul_flops / tp, work.matmul_bytes / tp
    attention_flops, attention_bytes = work.attention_flops / tp, work.attention_bytes * kv_share
    flops, traffic = matmul_flops + attention_flops, matmul_bytes + attention_bytes
    matmul_s = roofline_time_s(matmul_flops, matmul_bytes, rates.flop_per_s, rates.bytes_per_s)
    attention_default_s = roofline_time_s(attention_flops, attention_bytes, rates.flop_per_s, rates.bytes_per_s)
    attention_s = attention_default_s
    if attention_rates is not None:
        attention_s = roofline_time_s(
            attention_flops, attention_bytes, attention_rates.flop_per_s, attention_rates.bytes_per_s
        )
    message = work.comm_tokens * comm_message_bytes_per_token
    comm_s = work.n_passes * work.allreduces_per_pass * allreduce_time_s(message, tp, link_bytes_per_s,
                                                                         allreduce_latency_s)  # fmt: skip
    intensity = flops / traffic
    ridge = ridge_point(rates.flop_per_s, rates.bytes_per_s)
    return PhaseEstimate(
        phase=phase,
        flops=flops,
        traffic_bytes=traffic,
        matmul_flops=matmul_flops,
        matmul_bytes=matmul_bytes,
        attention_flops=attention_flops,
        attention_bytes=attention_bytes,
        arithmetic_intensity_flop_per_byte=intensity,
        ridge_flop_per_byte=ridge,
        bound="compute" if intensity > ridge else "memory",
        compute_s=flops / rates.flop_per_s,
        memory_s=traffic / rates.bytes_per_s,
        matmul_s=matmul_s,
        attention_s=attention_s,
        attention_default_s=attention_default_s,
        comm_s=comm_s,
        n_passes=work.n_passes,
        time_s=matmul_s + attention_s + comm_s,
        default_time_s=matmul_s + attention_default_s + comm_s,
    )


# -- calibration from a bench JSON ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchRow:
    """One usable measurement of an attention kernel from a `llmarch bench` JSON."""

    phase: str
    batch: int
    seq_len: int
    achieved_flop_per_s: float
    achieved_bytes_per_s: float
    median_s: float | None = None
    variant: str | None = None
    impl: str | None = None
    n_heads: int | None = None
    n_kv_heads: int | None = None
    d_head: int | None = None
    window: int | None = None
    dtype: str | None = None

    def describe(self) -> str:
        shape = "x".join(str(v) for v in (self.n_heads, self.n_kv_heads, self.d_head) if v is not None)
        parts = [self.variant or "?", self.impl or "?", f"{self.phase} batch {self.batch} seq {self.seq_len}"]
        if shape:
            parts.append(f"heads/kv/d_head {shape}")
        if self.dtype:
            parts.append(self.dtype)
        return " ".join(parts)


@dataclass(frozen=True)
class BenchCalibration:
    """The usable attention measurements of a bench JSON and the device they were taken on."""

    source: str  # where the document came from (a file name)
    device: str | None  # device name the document gives, if any
    rows: tuple[BenchRow, ...]
    n_ignored: int  # results skipped: skipped_reason set, or fields missing or invalid


_DEVICE_KEYS = ("device_name", "gpu_name", "cuda_device_name", "gpu", "device")


def _opt_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value > 0 else None


def _opt_rate(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _opt_str(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def parse_bench(document: Any, *, source: str = "bench JSON") -> BenchCalibration:
    """Read the attention measurements of a `llmarch bench` JSON document (already parsed), defensively.

    Expects {"schema_version": 1, "environment": {...}, "results": [{"phase", "batch", "seq_len",
    "achieved_flop_per_s", "achieved_bytes_per_s", "variant", "impl", "n_heads", "n_kv_heads", "d_head",
    "window", "dtype", "median_s", "skipped_reason", ...}]}. Results that were skipped or lack a phase, a
    positive batch and sequence length or positive achieved rates are ignored (and counted); unknown keys
    are ignored. A document of another schema version, or with no usable result, is an InvalidValueError.
    """
    if not isinstance(document, dict):
        raise InvalidValueError(f"{source}: expected a JSON object from 'llmarch bench --format json'")
    version = document.get("schema_version")
    if version != 1:
        raise InvalidValueError(f"{source}: unsupported schema_version {version!r} (this llmarch reads 1)")
    results = document.get("results")
    if not isinstance(results, list):
        raise InvalidValueError(f"{source}: no 'results' list; is it the JSON of 'llmarch bench'?")
    rows: list[BenchRow] = []
    ignored = 0
    for item in results:
        if not isinstance(item, dict) or item.get("skipped_reason"):
            ignored += 1
            continue
        phase, batch, seq_len = _opt_str(item.get("phase")), _opt_int(item.get("batch")), _opt_int(item.get("seq_len"))
        flop_rate, byte_rate = _opt_rate(item.get("achieved_flop_per_s")), _opt_rate(item.get("achieved_bytes_per_s"))
        if phase is None or batch is None or seq_len is None or flop_rate is None or byte_rate is None:
            ignored += 1
            continue
        rows.append(
            BenchRow(
                phase=phase,
                batch=batch,
                seq_len=seq_len,
                achieved_flop_per_s=flop_rate,
                achieved_bytes_per_s=byte_rate,
                median_s=_opt_rate(item.get("median_s")),
                variant=_opt_str(item.get("variant")),
                impl=_opt_str(item.get("impl")),
                n_heads=_opt_int(item.get("n_heads")),
                n_kv_heads=_opt_int(item.get("n_kv_heads")),
                d_head=_opt_int(item.get("d_head")),
                window=_opt_int(item.get("window")),
                dtype=_opt_str(item.get("dtype")),
            )
        )
    if not rows:
        raise InvalidValueError(
            f"{source}: no usable attention measurement (each needs phase, batch, seq_len, achieved_flop_per_s "
            f"and achieved_bytes_per_s; {ignored} result(s) ignored)"
        )
    environment = document.get("environment")
    device = None
    if isinstance(environment, dict):
        device = next((_opt_str(environment.get(k)) for k in _DEVICE_KEYS if _opt_str(environment.get(k))), None)
    if device is None:
        named = [_opt_str(r.get("device")) for r in results if isinstance(r, dict)]
        device = next((d for d in named if d is not None and d.lower() not in ("cuda", "cpu", "mps")), None)
    return BenchCalibration(source=source, device=device, rows=tuple(rows), n_ignored=ignored)


def _squash(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def bench_device_matches(calibration: BenchCalibration, gpu: Accelerator) -> bool | None:
    """Whether the bench was measured on `gpu`'s model (None when the bench names no device).

    Compares the model number in the catalog name (the first dash-separated part with a digit: "h100",
    "a100", "mi300x", "4090") with the device name the bench recorded ("NVIDIA H100 80GB HBM3").
    Variants of one chip (H100 SXM and PCIe) are not told apart.
    """
    if calibration.device is None:
        return None
    keys = [part for part in gpu.name.split("-") if any(ch.isdigit() for ch in part)] or [gpu.name]
    return _squash(keys[0]) in _squash(calibration.device)


def select_bench_row(
    calibration: BenchCalibration, config: ArchConfig, *, phase: str, batch: int, seq_len: int, dtype: str
) -> BenchRow | None:
    """The measurement closest to a workload: same phase, then same head shape and dtype, then nearest
    batch and sequence length (in log2), then the fastest implementation. None when no row has the phase."""
    candidates = [r for r in calibration.rows if r.phase == phase]
    if not candidates:
        return None

    def mismatch(row: BenchRow) -> tuple[int, float, float]:
        shape = (config.n_heads, config.n_kv_heads, config.d_head)
        misses = sum(1 for got, want in zip((row.n_heads, row.n_kv_heads, row.d_head), shape, strict=True)
                     if got is not None and got != want)  # fmt: skip
        if row.dtype is not None:
            try:
                misses += canonical_dtype(row.dtype) != canonical_dtype(dtype)
            except InvalidValueError:
                misses += 1
        distance = abs(math.log2(row.seq_len / seq_len)) + abs(math.log2(row.batch / batch))
        return misses, distance, -row.achieved_flop_per_s

    return min(candidates, key=mismatch)


# -- the estimate --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InferenceEstimate:
    """Serving estimate of one architecture on one GPU type (see the module docstring for the model)."""

    name: str
    gpu: str
    n_gpus: int
    tp: int
    replicas: int
    dtype: str  # weights
    kv_dtype: str
    compute_dtype: str  # whose peak FLOP/s the matmuls run at
    prompt_len: int
    generate_len: int
    beam_width: int
    batch: int  # requests served together (the largest that fits unless given)
    batch_given: bool
    fits: bool
    # memory per GPU at `batch`, bytes
    weights_bytes: float
    kv_cache_bytes: float
    workspace_bytes: float
    total_bytes: float
    usable_bytes: float  # accelerator memory x (1 - reserve_fraction)
    fixed_bytes: float  # weights + the workspace that does not grow with the batch
    bytes_per_sequence: float  # KV cache (all beams) + per-request workspace
    kv_cache_bytes_per_sequence: float
    max_batch: int  # largest batch that fits at prompt_len + generate_len (0: not even one)
    max_context_len: int | None  # longest prompt + generate_len that fits at `batch` (0: none; None: unbounded)
    exceeds_max_seq_len: bool  # the context is beyond what the checkpoint supports
    # times (None when it does not fit)
    prefill: PhaseEstimate | None
    decode: PhaseEstimate | None
    ttft_s: float | None
    tpot_s: float | None
    request_latency_s: float | None  # ttft + (generate_len - 1) x tpot
    tokens_per_s: float | None  # output tokens/s of all n_gpus
    tokens_per_s_per_replica: float | None
    tokens_per_s_per_gpu: float | None
    decode_tokens_per_s_per_replica: float | None  # batch / tpot: the steady decode rate
    usd_per_million_tokens: float | None  # per million output tokens, prefill time included
    bound: Bound | None  # the bound of the phase that takes longer (usually decode)
    # the same at the default attention rates, when a bench calibrated them
    ttft_default_s: float | None
    tpot_default_s: float | None
    suggestions: tuple[str, ...]  # options under which batch 1 would fit (when it does not)
    assumptions: Mapping[str, Any]

    def fit_message(self) -> str:
        """One line saying why this estimate does not fit and what would ('' when it fits)."""
        if self.fits:
            return ""
        where = f"{self.tp} x {self.gpu}" if self.tp > 1 else f"one {self.gpu}"
        need = (
            f"{format_bytes(self.weights_bytes)} weights + {format_bytes(self.kv_cache_bytes)} KV cache + "
            f"{format_bytes(self.workspace_bytes)} workspace = {format_bytes(self.total_bytes)} per GPU"
        )
        usable = f"{format_bytes(self.usable_bytes)} usable"
        if self.max_batch >= 1:
            return (
                f"{self.name}: batch {self.batch} does not fit {where} at {self.prompt_len}+{self.generate_len} "
                f"tokens ({need} > {usable}); the largest batch that fits is {self.max_batch}"
            )
        hint = "; it would fit with " + " or ".join(self.suggestions) if self.suggestions else ""
        return (
            f"{self.name} does not fit {where} even at batch 1 and {self.prompt_len}+{self.generate_len} tokens "
            f"({need} > {usable}){hint}"
        )

    def to_record(self) -> dict[str, Any]:
        """Plain-data view: the `estimates` rows of `llmarch estimate-inference --format json`."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for phase in ("prefill", "decode"):
            value = record[phase]
            record[phase] = None if value is None else dataclasses.asdict(value)
        record["suggestions"] = list(self.suggestions)
        record["assumptions"] = dict(self.assumptions)
        return record


@dataclass(frozen=True)
class _Memory:
    """Memory per GPU as a function of the batch: fixed + batch x per_sequence (both in bytes)."""

    weights: float
    fixed_workspace: float
    kv_per_sequence: float
    workspace_per_sequence: float

    @property
    def fixed(self) -> float:
        return self.weights + self.fixed_workspace

    @property
    def per_sequence(self) -> float:
        return self.kv_per_sequence + self.workspace_per_sequence

    def total(self, batch: int) -> float:
        return self.fixed + batch * self.per_sequence

    def max_batch(self, usable: float) -> int:
        return max(0, math.floor((usable - self.fixed) / self.per_sequence)) if usable >= self.fixed else 0


def _memory(
    config: ArchConfig,
    *,
    prompt_len: int,
    generate_len: int,
    beam_width: int,
    dtype: str,
    kv_dtype: str,
    tp: int,
    flash: bool,
    prefill_chunk: int | None,
) -> _Memory:
    """Memory per GPU, split into what grows with the batch and what does not (both exact: all linear).

    KV cache: `kv_cache` for one request (its beams; the decoder's prompt_len + generate_len positions, or
    for an encoder-decoder generate_len decoder positions and prompt_len cross-attention positions) times
    this GPU's share (`kv_cache_share`). Workspace (`inference_workspace_bytes`): with chunked prefill, one
    pass of `prefill_chunk` tokens whatever the batch; without, the prefill of every prompt at once, per
    request.
    """
    if config.is_encoder_decoder:
        cache = kv_cache(config, seq_len=generate_len, dtype=kv_dtype, beam_width=beam_width, encoder_len=prompt_len)
    else:
        cache = kv_cache(config, seq_len=prompt_len + generate_len, dtype=kv_dtype, beam_width=beam_width)
    kv = cache.total_bytes * kv_cache_share(config, tp=tp, kv_dtype=kv_dtype)
    if prefill_chunk is None:
        fixed_ws = 0.0
        per_seq_ws = inference_workspace_bytes(config, batch=1, seq_len=prompt_len, dtype=dtype, tp=tp, flash=flash)
    else:
        fixed_ws = inference_workspace_bytes(config, batch=1, seq_len=prefill_chunk, dtype=dtype, tp=tp, flash=flash)
        per_seq_ws = 0.0
    return _Memory(weights_bytes(config, dtype) / tp, fixed_ws, kv, per_seq_ws)


def max_context_len(
    config: ArchConfig,
    *,
    batch: int,
    generate_len: int,
    usable_bytes: float,
    beam_width: int = 1,
    dtype: str = DEFAULT_DTYPE,
    kv_dtype: str = DEFAULT_DTYPE,
    tp: int = 1,
    flash: bool = True,
    prefill_chunk: int | None = DEFAULT_PREFILL_CHUNK,
) -> int | None:
    """Longest prompt_len + generate_len whose memory per GPU at `batch` fits `usable_bytes` (0: none).

    Memory never falls as the prompt grows, so a binary search over the prompt length finds it. With a
    sliding window on every layer (a rolling buffer) and chunked prefill, memory stops growing at the
    window: then no length is too long and the answer is None.
    """

    def fits(prompt_len: int) -> bool:
        memory = _memory(
            config,
            prompt_len=prompt_len,
            generate_len=generate_len,
            beam_width=beam_width,
            dtype=dtype,
            kv_dtype=kv_dtype,
            tp=tp,
            flash=flash,
            prefill_chunk=prefill_chunk,
        )
        return memory.total(batch) <= usable_bytes

    if not fits(1):
        return 0
    low, high = 1, 2
    while high < 2**40 and fits(high):
        low, high = high, high * 2
    if high >= 2**40 and fits(high):
        return None
    while high - low > 1:  # fits(low), not fits(high)
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low + generate_len


def resolve_compute_dtype(gpu: Accelerator, dtype: str, compute_dtype: str | None) -> tuple[str, str]:
    """The dtype whose dense peak the matmuls run at, and why.

    Given: that dtype (the GPU must have a peak for it). Otherwise fp32/bf16/fp16/fp8 weights compute in
    their own dtype where the GPU has a peak for it (fp8 weights on a GPU without fp8 units, like the A100,
    are upcast); int8 and int4 are taken as weight-only quantisation, computed in 16 bits. 16 bits means bf16,
    or fp16 on a GPU without bf16 (V100).
    """
    if compute_dtype is not None:
        key = canonical_peak_dtype(compute_dtype)
        gpu.peak(key)  # raises, naming the dtypes the GPU has, when it has no such peak
        return key, "given"
    sixteen = "bf16" if "bf16" in gpu.peak_flop_per_s else "fp16"
    if dtype in _NATIVE_COMPUTE_DTYPES and dtype in gpu.peak_flop_per_s:
        return dtype, "weights dtype"
    if dtype in _NATIVE_COMPUTE_DTYPES:
        return sixteen, f"{gpu.name} has no {dtype} peak: {dtype} weights are upcast to {sixteen}"
    return sixteen, f"{dtype} taken as weight-only quantisation: matmuls in {sixteen}"


def _suggest(
    config: ArchConfig,
    *,
    usable: float,
    tp: int,
    dtype: str,
    memory_args: dict[str, Any],
) -> tuple[str, ...]:
    """Options under which batch 1 fits: the smallest larger --tp at this dtype (a power of two where one
    works, as GPUs come in nodes of 2, 4 and 8), and the widest smaller weight dtype."""
    out: list[str] = []
    divisors = [t for t in range(tp + 1, min(config.n_heads, 64) + 1) if config.n_heads % t == 0]
    fitting = [t for t in divisors if _memory(config, dtype=dtype, tp=t, **memory_args).total(1) <= usable]
    if fitting:
        powers_of_two = [t for t in fitting if t & (t - 1) == 0]
        out.append(f"--tp {(powers_of_two or fitting)[0]}")
    width = weights_bytes(config, dtype)
    for smaller in ("fp8", "int8", "int4"):
        if (
            weights_bytes(config, smaller) < width
            and _memory(config, dtype=smaller, tp=tp, **memory_args).total(1) <= usable
        ):
            out.append(f"--dtype {smaller}" + (f" at --tp {tp}" if tp > 1 else ""))
            break
    return tuple(out)


def estimate_inference(
    config: ArchConfig,
    gpu: str | Accelerator,
    *,
    prompt_len: int = DEFAULT_PROMPT_LEN,
    generate_len: int = DEFAULT_GENERATE_LEN,
    batch: int | None = None,
    beam_width: int = 1,
    dtype: str = DEFAULT_DTYPE,
    kv_dtype: str | None = None,
    compute_dtype: str | None = None,
    tp: int = 1,
    n_gpus: int | None = None,
    flop_efficiency: float | None = None,
    bandwidth_efficiency: float | None = None,
    link_bandwidth_bytes_per_s: float | None = None,
    allreduce_latency_s: float | None = None,
    prefill_chunk: int | None = DEFAULT_PREFILL_CHUNK,
    flash: bool = True,
    reserve_fraction: float | None = None,
    usd_per_gpu_hour: float | None = None,
    calibration: BenchCalibration | None = None,
) -> InferenceEstimate:
    """Estimate serving `config` on `gpu`: memory per GPU and fit, max batch and context, TTFT, TPOT,
    tokens/s and USD per million output tokens (see the module docstring for the model).

    batch None serves the largest batch that fits. n_gpus (default tp) must be a multiple of tp; the
    n_gpus / tp replicas serve independently. kv_dtype defaults to the weights' dtype for fp32/bf16/fp16
    and to bf16 under fp8/int8/int4 weight quantisation. prefill_chunk None prefills every prompt in one
    pass. With `calibration` (a parsed bench JSON of the same GPU model), the attention core is timed at the
    rates the closest measurement achieved; the default-rate times are kept beside (`*_default_s`).
    A workload that does not fit is returned with fits=False and no times (see `fit_message`).
    """
    defaults: list[str] = []
    acc = gpu if isinstance(gpu, Accelerator) else accelerator(gpu)
    prompt_len = positive_int("prompt_len", prompt_len)
    generate_len = positive_int("generate_len", generate_len)
    beam_width = positive_int("beam_width", beam_width)
    tp = positive_int("tp", tp)
    if config.n_heads % tp:
        raise InvalidValueError(f"--tp {tp} must divide {config.name}'s n_heads ({config.n_heads})")
    if n_gpus is None:
        n_gpus = tp
        defaults.append("n_gpus")
    n_gpus = positive_int("n_gpus", n_gpus)
    if n_gpus % tp:
        raise InvalidValueError(f"--n-gpus ({n_gpus}) must be a multiple of --tp ({tp})")
    if batch is not None:
        batch = positive_int("batch", batch)
    if prefill_chunk is not None:
        prefill_chunk = positive_int("prefill_chunk", prefill_chunk)
    dtype = canonical_dtype(dtype)
    if kv_dtype is None:
        kv_dtype = dtype if dtype in ("fp32", "bf16", "fp16") else DEFAULT_DTYPE
        defaults.append("kv_dtype")
    kv_dtype = canonical_dtype(kv_dtype)
    if kv_dtype == "int4":
        raise InvalidValueError("--kv-dtype int4 is not modelled; use fp8 or int8 for a quantised KV cache")
    compute, compute_source = resolve_compute_dtype(acc, dtype, compute_dtype)
    if flop_efficiency is None:
        flop_efficiency = DEFAULT_FLOP_EFFICIENCY
        defaults.append("flop_efficiency")
    flop_efficiency = fraction("flop_efficiency", flop_efficiency, example="0.8 = 80%")
    if bandwidth_efficiency is None:
        bandwidth_efficiency = DEFAULT_BANDWIDTH_EFFICIENCY
        defaults.append("bandwidth_efficiency")
    bandwidth_efficiency = fraction("bandwidth_efficiency", bandwidth_efficiency, example="0.8 = 80%")
    if link_bandwidth_bytes_per_s is None:
        # The catalog quotes both directions together (as NVLink is marketed); a ring all-reduce moves
        # data one way per link at a time, so it gets half.
        if acc.interconnect_bytes_per_s is not None:
            link_bandwidth_bytes_per_s = acc.interconnect_bytes_per_s / 2
            defaults.append("link_bandwidth_bytes_per_s")
        elif tp > 1:
            raise InvalidValueError(
                f"the catalog has no GPU-to-GPU bandwidth for {acc.name}; pass --link-bandwidth (one direction, "
                "per GPU, e.g. 64GB for 64 GB/s) to model tensor parallelism"
            )
    else:
        link_bandwidth_bytes_per_s = positive("link_bandwidth_bytes_per_s", link_bandwidth_bytes_per_s)
    # None only with tp = 1 and no catalogued interconnect: nothing is communicated.
    if allreduce_latency_s is None:
        allreduce_latency_s = DEFAULT_ALLREDUCE_LATENCY_S
        defaults.append("allreduce_latency_s")
    allreduce_latency_s = non_negative("allreduce_latency_s", allreduce_latency_s)
    if reserve_fraction is None:
        reserve_fraction = DEFAULT_RESERVE_FRACTION
        defaults.append("reserve_fraction")
    reserve_fraction = finite_number("reserve_fraction", reserve_fraction)
    if not 0 <= reserve_fraction < 1:
        raise InvalidValueError(f"reserve_fraction must be in [0, 1), got {reserve_fraction!r}")
    if acc.memory_bandwidth_bytes_per_s is None:
        raise InvalidValueError(f"the catalog has no memory bandwidth for {acc.name}; choose another --gpu")
    if usd_per_gpu_hour is not None:
        price: float | None = non_negative("usd_per_gpu_hour", usd_per_gpu_hour)
        price_source = "given"
    else:
        catalogued = default_price(acc.name)
        price = None if catalogued is None else catalogued.usd_per_gpu_hour
        price_source = (
            f"unknown (no default price for {acc.name}); pass --price-per-gpu-hour"
            if catalogued is None
            else f"default on-demand price as of {catalogued.as_of} ({catalogued.source}); not a quote"
        )
        defaults.append("usd_per_gpu_hour")

    # -- memory and fit --------------------------------------------------------------------------------------
    usable = acc.memory_bytes * (1 - reserve_fraction)
    memory_args = {
        "prompt_len": prompt_len,
        "generate_len": generate_len,
        "beam_width": beam_width,
        "kv_dtype": kv_dtype,
        "flash": flash,
        "prefill_chunk": prefill_chunk,
    }
    memory = _memory(config, dtype=dtype, tp=tp, **memory_args)
    largest = memory.max_batch(usable)
    batch_given = batch is not None
    if batch is None:
        batch = max(largest, 1)
        defaults.append("batch")
    fits = memory.total(batch) <= usable
    context_batch = batch if batch_given else 1
    longest = max_context_len(
        config, batch=context_batch, generate_len=generate_len, usable_bytes=usable, dtype=dtype, tp=tp,
        **{k: v for k, v in memory_args.items() if k not in ("prompt_len", "generate_len")},
    )  # fmt: skip
    suggestions = () if largest >= 1 else _suggest(config, usable=usable, tp=tp, dtype=dtype, memory_args=memory_args)
    share = kv_cache_share(config, tp=tp, kv_dtype=kv_dtype)

    # -- roofline ----------------------------------------------------------------------------------------------
    rates = Rates(
        acc.peak(compute) * flop_efficiency,
        acc.memory_bandwidth_bytes_per_s * bandwidth_efficiency,
        f"{acc.name} dense {compute} peak x {flop_efficiency:g}; bandwidth x {bandwidth_efficiency:g}",
    )
    calibration_info: dict[str, Any] | None = None
    prefill = decode = None
    ttft = tpot = latency = None
    tps = tps_replica = tps_gpu = decode_tps = usd = None
    ttft_default = tpot_default = None
    bound: Bound | None = None
    sequences = batch * beam_width
    if calibration is not None:
        match = bench_device_matches(calibration, acc)
        if match is False:
            raise InvalidValueError(
                f"{calibration.source} was measured on {calibration.device!r}, not on {acc.display_name}: "
                "calibrate with a bench run on the same GPU model"
            )
        calibration_info = {
            "source": calibration.source,
            "device": calibration.device,
            "device_check": "same model" if match else "bench names no device: assumed to be the same",
            "results_used": len(calibration.rows),
            "results_ignored": calibration.n_ignored,
        }
    if fits:
        act_bytes = FP32_BYTES if dtype == "fp32" else ACTIVATION_BYTES  # hidden states all-reduced in 16 bits
        message_per_token = config.d_model * act_bytes
        decode_context = prompt_len + max(generate_len - 1, 1) // 2 if not config.is_encoder_decoder else prompt_len
        phase_inputs = {
            "prefill": (
                prefill_work(
                    config,
                    batch=batch,
                    prompt_len=prompt_len,
                    dtype=dtype,
                    kv_dtype=kv_dtype,
                    prefill_chunk=prefill_chunk,
                ),
                batch,
                prompt_len,
            ),
            "decode": (
                decode_work(
                    config,
                    sequences=sequences,
                    prompt_len=prompt_len,
                    generate_len=generate_len,
                    dtype=dtype,
                    kv_dtype=kv_dtype,
                ),
                sequences,
                decode_context,
            ),
        }
        phases: dict[str, PhaseEstimate] = {}
        for phase, (work, phase_batch, phase_seq) in phase_inputs.items():
            attention_rates = None
            if calibration is not None:
                row = select_bench_row(
                    calibration, config, phase=phase, batch=phase_batch, seq_len=phase_seq,
                    dtype=kv_dtype if phase == "decode" else compute,
                )  # fmt: skip
                assert calibration_info is not None
                calibration_info[f"{phase}_result"] = None if row is None else row.describe()
                if row is not None:
                    attention_rates = Rates(row.achieved_flop_per_s, row.achieved_bytes_per_s, row.describe())
                    calibration_info[f"{phase}_flop_per_s"] = row.achieved_flop_per_s
                    calibration_info[f"{phase}_bytes_per_s"] = row.achieved_bytes_per_s
            phases[phase] = phase_estimate(
                phase,
                work,
                tp=tp,
                kv_share=share,
                rates=rates,
                attention_rates=attention_rates,
                comm_message_bytes_per_token=message_per_token,
                link_bytes_per_s=link_bandwidth_bytes_per_s or math.inf,
                allreduce_latency_s=allreduce_latency_s,
            )
        prefill, decode = phases["prefill"], phases["decode"]
        # An encoder-decoder's first token needs its first decoder step too.
        first_step = 1 if config.is_encoder_decoder else 0
        ttft = prefill.time_s + first_step * decode.time_s
        tpot = decode.time_s
        latency = ttft + (generate_len - 1) * tpot
        tps_replica = batch * generate_len / latency
        tps = tps_replica * (n_gpus // tp)
        tps_gpu = tps_replica / tp
        decode_tps = batch / tpot
        usd = None if price is None else price * n_gpus / SECONDS_PER_HOUR / tps * 1e6
        bound = prefill.bound if ttft >= (generate_len - 1) * tpot else decode.bound
        if calibration is not None:
            ttft_default = prefill.default_time_s + first_step * decode.default_time_s
            tpot_default = decode.default_time_s

    replication = tp * share
    if config.mla_kv_rank is not None:
        placement = f"MLA latent replicated on all {tp} GPUs" if tp > 1 else "MLA latent on one GPU"
    elif tp == 1:
        placement = f"{config.n_kv_heads} KV heads on one GPU"
    else:
        split = min(tp, config.n_kv_heads)
        placement = f"{config.n_kv_heads} KV heads split over {split} GPUs"
        if replication > 1:
            placement += f", each replicated {replication:g}x (tp {tp} > n_kv_heads)"
    assumptions: dict[str, Any] = {
        "gpu": acc.name,
        "gpu_name": acc.display_name,
        "memory_bytes": acc.memory_bytes,
        "reserve_fraction": reserve_fraction,
        "peak_flop_per_s": acc.peak(compute),
        "compute_dtype": compute,
        "compute_dtype_source": compute_source,
        "memory_bandwidth_bytes_per_s": acc.memory_bandwidth_bytes_per_s,
        "hardware_source": acc.source,
        "flop_efficiency": flop_efficiency,
        "bandwidth_efficiency": bandwidth_efficiency,
        "achievable_flop_per_s": rates.flop_per_s,
        "achievable_bytes_per_s": rates.bytes_per_s,
        "ridge_flop_per_byte": ridge_point(rates.flop_per_s, rates.bytes_per_s),
        "tp": tp,
        "n_gpus": n_gpus,
        "replicas": n_gpus // tp,
        "kv_placement": placement,
        "kv_copies": replication,
        "weights_placement": f"split evenly over the {tp} tensor-parallel GPUs" if tp > 1 else "one GPU",
        "link_bandwidth_bytes_per_s": link_bandwidth_bytes_per_s,
        "allreduce_latency_s": allreduce_latency_s,
        "tp_communication": "per forward pass, all-reduces per layer (2; 1 for a parallel block; +1 for "
        "cross-attention) of tokens x d_model x 2 bytes, ring: latency + 2 (tp-1)/tp x bytes / link bandwidth; "
        "not overlapped with compute",
        "prefill_chunk": prefill_chunk,
        "flash": flash,
        "workspace": "every prompt prefilled at once" if prefill_chunk is None else "one pass of prefill_chunk tokens",
        "batching": "static: the batch is prefilled, then decoded together; TTFT is the whole batch's prefill",
        "decode_steps": "generate_len - 1 after the prefill's first token, averaged (context prompt_len + 1 ..)",
        "moe_routing": "uniform: a step of T tokens reads n (1 - (1 - k/n)^T) of n routed experts per layer"
        if config.is_moe
        else None,
        "max_context_batch": context_batch,
        "usd_per_gpu_hour": price,
        "price_source": price_source,
        "calibration": calibration_info,
        "roofline": "per operator (weight matmuls, attention core): max(FLOPs / achievable FLOP/s, bytes / "
        "achievable bandwidth), summed with the all-reduces; Williams et al. 2009, Yuan et al. 2024 "
        "(arXiv:2402.16363)",
        "left_out": "activation traffic between kernels, launch overheads, scheduling, paged-KV block rounding, "
        "speculative decoding, prefix caching, pipeline/expert parallelism, compute-communication overlap",
        "defaults": defaults,
    }
    total = memory.total(batch)
    # The positions the model must handle: the decoder's prompt + generation, or the longer of the two stacks.
    context = max(prompt_len, generate_len) if config.is_encoder_decoder else prompt_len + generate_len
    return InferenceEstimate(
        name=config.name,
        gpu=acc.name,
        n_gpus=n_gpus,
        tp=tp,
        replicas=n_gpus // tp,
        dtype=dtype,
        kv_dtype=kv_dtype,
        compute_dtype=compute,
        prompt_len=prompt_len,
        generate_len=generate_len,
        beam_width=beam_width,
        batch=batch,
        batch_given=batch_given,
        fits=fits,
        weights_bytes=memory.weights,
        kv_cache_bytes=batch * memory.kv_per_sequence,
        workspace_bytes=memory.fixed_workspace + batch * memory.workspace_per_sequence,
        total_bytes=total,
        usable_bytes=usable,
        fixed_bytes=memory.fixed,
        bytes_per_sequence=memory.per_sequence,
        kv_cache_bytes_per_sequence=memory.kv_per_sequence,
        max_batch=largest,
        max_context_len=longest,
        exceeds_max_seq_len=context > config.max_seq_len,
        prefill=prefill,
        decode=decode,
        ttft_s=ttft,
        tpot_s=tpot,
        request_latency_s=latency,
        tokens_per_s=tps,
        tokens_per_s_per_replica=tps_replica,
        tokens_per_s_per_gpu=tps_gpu,
        decode_tokens_per_s_per_replica=decode_tps,
        usd_per_million_tokens=usd,
        bound=bound,
        ttft_default_s=ttft_default,
        tpot_default_s=tpot_default,
        suggestions=suggestions,
        assumptions=MappingProxyType(assumptions),
    )


def context_sweep(
    config: ArchConfig, gpu: str | Accelerator, context_lens: list[int], **options: Any
) -> list[InferenceEstimate]:
    """`estimate_inference` at each total context length (prompt_len = context - generate_len), for plots.

    Contexts not longer than generate_len are skipped. `options` are estimate_inference's keywords.
    """
    generate = options.get("generate_len", DEFAULT_GENERATE_LEN)
    options = {k: v for k, v in options.items() if k != "prompt_len"}
    return [estimate_inference(config, gpu, prompt_len=n - generate, **options) for n in context_lens if n > generate]
