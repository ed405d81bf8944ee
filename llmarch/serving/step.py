"""The step model: seconds of one engine step that decodes some sequences and prefills some prompt tokens.

One step is one forward pass of the replica over every token scheduled in it (continuous batching mixes
decode tokens with a chunk of prefill, Agrawal et al. 2023, SARATHI, arXiv:2308.16369). Per GPU of a
tensor-parallel group of `tp` (a pipeline stage holds n_layers / pp of the layers):

    linear    = max(weights read / achieved bandwidth, weight FLOPs / (peak x gemm_efficiency(tokens)))
    attention = decode: KV read / achieved paged-attention bandwidth; prefill: FLOPs / achieved FlashAttention rate
    comm      = all-reduces per layer x layers x (latency + 2 (tp-1)/tp x tokens x d_model x 2 bytes / link)
    overhead  = layers x layer_overhead + step_overhead
    step      = linear + attention + comm + overhead

Decode reads every weight once per step for a handful of tokens, so it is bound by memory bandwidth (Pope
et al. 2022, arXiv:2211.05102, section 2); prefill multiplies each weight by thousands of tokens and is
bound by compute. The achieved fractions and the fixed costs are per GPU type with their sources
(`llmarch.catalog.serving_efficiency`). MoE reads only the experts the step's tokens are routed to.
"""

from __future__ import annotations

from llmarch.calc.flops import attention_flops_per_token, weight_flops_per_token
from llmarch.calc.memory import kv_cache, weights_bytes
from llmarch.calc.params import attention_params, count_params, layer_norm_params, mlp_params
from llmarch.calc.serving_memory import kv_tp_share
from llmarch.calc.step_time import ring_traffic_fraction
from llmarch.core.config import ArchConfig
from llmarch.core.frozen import frozen_dataclass
from llmarch.serving.roofline import (
    allreduce_time_s,
    allreduces_per_layer,
    expected_active_experts,
    gemm_efficiency,
    ring_latency_s,
    roofline_time_s,
)

#: Bytes of one activation element all-reduced between tensor-parallel GPUs (16-bit hidden states).
ACTIVATION_BYTES = 2


@frozen_dataclass
class Hardware:
    """Achieved rates and fixed costs of one GPU of the replica (peaks x the catalogued fractions)."""

    matmul_peak_flop_per_s: float  # dense peak of the compute dtype
    attention_peak_flop_per_s: float  # 16-bit dense peak (attention runs in 16 bits)
    bytes_per_s: float  # achieved HBM bandwidth (peak x hbm_fraction)
    attention_bytes_per_s: float  # achieved paged decode-attention bandwidth
    gemm_fraction: float
    gemm_m_half: float
    attention_flop_fraction: float
    layer_overhead_s: float
    step_overhead_s: float
    request_overhead_s: float  # per request, before its first token (admission, prompt upload, first sampling)
    allreduce_latency_s: float  # small-message all-reduce on 2 GPUs
    allreduce_hop_latency_s: float  # added per extra ring step beyond 2 GPUs (`ring_latency_s`)
    link_bytes_per_s: float  # achieved one-direction all-reduce bandwidth per GPU (inf when tp = 1)


@frozen_dataclass
class ModelWork:
    """What the model costs per token and per step, for the whole replica (from the calc layer)."""

    config: ArchConfig
    dtype: str
    kv_dtype: str
    decode_flops_per_token: float  # weight matmuls a decoded token multiplies (no output head)
    prefill_flops_per_token: float  # the same for a prompt token (the encoder's for an encoder-decoder)
    head_flops: float  # output head of one sampled token
    decode_weight_bytes: float  # weights a decode step reads, routed experts excluded
    prefill_weight_bytes: float  # weights a prefill pass reads, routed experts excluded
    expert_bytes: float  # all routed experts (0 for a dense model)
    kv_share: float  # fraction of the KV cache each tensor-parallel GPU holds and reads
    expert_parallel: bool = False  # routed experts placed whole on the GPUs (all-to-all instead of all-reduce)


def _encoder_params(config: ArchConfig) -> int:
    per_layer = sum(attention_params(config).values()) + mlp_params(config, config.d_ff) + layer_norm_params(config)
    return config.n_encoder_layers * per_layer


def _cross_kv_params(config: ArchConfig) -> int:
    if not config.is_encoder_decoder:
        return 0
    attn = attention_params(config)
    return config.n_layers * (attn["k"] + attn["v"])


def model_work(config: ArchConfig, *, dtype: str, kv_dtype: str, tp: int, expert_parallel: bool = False) -> ModelWork:
    """Per-token FLOPs and per-step weight bytes of `config` stored as `dtype` (see `ModelWork`).

    Weights read per step: every weight a token multiplies, once per step whatever the number of tokens
    (Pope et al. 2022, section 2). Not read: the token and position tables of an untied model (a token only
    looks its row up). Bytes per weight are the average of `weights_bytes` (quantisation scales included).
    An encoder-decoder's prefill runs the encoder and the cross-attention key/value projections; its decode
    runs the decoder with cross-attention queries and outputs.
    """
    counts = count_params(config)
    per_param = weights_bytes(config, dtype) / counts.total
    parts = weight_flops_per_token(config)
    unused = counts.breakdown.get("embedding.position", 0)
    if not config.tie_embeddings:
        unused += counts.breakdown.get("embedding.token", 0)
    experts = counts.breakdown.get("moe.experts", 0) if config.is_moe else 0
    encoder, cross_kv = _encoder_params(config), _cross_kv_params(config)
    decoder_params = counts.total - unused - encoder - cross_kv - experts
    decode_flops = parts["attention_proj"] + parts["mlp"]
    prefill_flops = decode_flops
    if config.is_encoder_decoder:
        attn = attention_params(config)
        decode_flops += 2.0 * config.n_layers * (attn["q"] + attn["o"])
        scale = config.n_encoder_layers / config.n_layers
        prefill_flops = scale * (parts["attention_proj"] + parts["mlp"]) + 2.0 * cross_kv
        prefill_bytes = per_param * (encoder + cross_kv)
    else:
        prefill_bytes = per_param * decoder_params
    return ModelWork(
        config=config,
        dtype=dtype,
        kv_dtype=kv_dtype,
        decode_flops_per_token=decode_flops,
        prefill_flops_per_token=prefill_flops,
        head_flops=parts["lm_head"],
        decode_weight_bytes=per_param * decoder_params,
        prefill_weight_bytes=prefill_bytes,
        expert_bytes=per_param * experts,
        kv_share=kv_tp_share(config, tp),
        expert_parallel=expert_parallel and config.is_moe and tp > 1,
    )


@frozen_dataclass
class StepTime:
    """Seconds of one engine step on one GPU, by part."""

    decode_seqs: float
    prefill_tokens: float
    linear_s: float
    linear_compute_s: float
    linear_memory_s: float
    attention_s: float
    comm_s: float
    overhead_s: float
    total_s: float
    bound: str  # "compute" or "memory": which roof the weight matmuls sit on


def _expert_bytes_read(work: ModelWork, tokens: float) -> float:
    config = work.config
    if not config.is_moe or tokens <= 0:
        return 0.0
    assert config.n_experts is not None and config.n_experts_per_token is not None
    used = expected_active_experts(config.n_experts, config.n_experts_per_token, tokens)
    return work.expert_bytes * used / config.n_experts


def _expert_parallel_comm_s(work: ModelWork, hw: Hardware, *, tp: int, tokens: float, layer_share: float) -> float:
    """Extra seconds of expert parallelism over the replica's tp GPUs: per MoE layer, the MLP all-reduce is
    replaced by two all-to-alls (dispatch and combine) of tokens x top_k x d_model 16-bit activations, each
    GPU sending (t-1)/t of them (Lepikhin et al. 2020, GShard, arXiv:2006.16668, section 2.2)."""
    config = work.config
    assert config.n_experts_per_token is not None
    message = tokens * config.n_experts_per_token * config.d_model * ACTIVATION_BYTES
    latency = ring_latency_s(hw.allreduce_latency_s, hw.allreduce_hop_latency_s, tp)
    all_to_all = latency + ring_traffic_fraction("all_to_all", tp) * message / hw.link_bytes_per_s
    all_reduce = allreduce_time_s(tokens * config.d_model * ACTIVATION_BYTES, tp, hw.link_bytes_per_s, latency)
    return config.n_moe_layers * layer_share * (2 * all_to_all - all_reduce)


def decode_attention_bytes(work: ModelWork, context: float) -> float:
    """KV-cache bytes of self-attention one decoding sequence reads per step at `context` cached positions
    (whole replica). Sliding-window layers read at most the window (`kv_cache` caps the rolling buffer)."""
    return kv_cache(work.config, seq_len=max(1, round(context)), dtype=work.kv_dtype).self_attention_bytes


def step_time(
    work: ModelWork,
    hw: Hardware,
    *,
    tp: int,
    decode_seqs: float,
    decode_context: float,
    prefill_tokens: float = 0.0,
    prefill_context: float = 0.0,
    cross_len: int = 0,
    layer_share: float = 1.0,
) -> StepTime:
    """Seconds of one step decoding `decode_seqs` sequences at mean context `decode_context` and prefilling
    `prefill_tokens` prompt tokens whose queries attend to `prefill_context` keys on average.

    `layer_share` is the fraction of the layers on this GPU (1 / pp for a pipeline stage). `cross_len`: the
    encoder positions an encoder-decoder's decode steps attend to. See the module docstring for the terms.
    """
    config = work.config
    tokens = decode_seqs + prefill_tokens
    flops = decode_seqs * (work.decode_flops_per_token + work.head_flops)
    flops += prefill_tokens * work.prefill_flops_per_token + (work.head_flops if prefill_tokens else 0.0)
    weight_bytes = (work.decode_weight_bytes if decode_seqs else 0.0) + _expert_bytes_read(work, tokens)
    if prefill_tokens and (config.is_encoder_decoder or not decode_seqs):
        weight_bytes += work.prefill_weight_bytes
    rate = hw.matmul_peak_flop_per_s * gemm_efficiency(max(tokens, 1e-9), hw.gemm_fraction, hw.gemm_m_half)
    compute_s = flops * layer_share / tp / rate
    memory_s = weight_bytes * layer_share / tp / hw.bytes_per_s
    linear_s = max(compute_s, memory_s)
    attention_s = 0.0
    if decode_seqs:
        kv_bytes = decode_seqs * decode_attention_bytes(work, decode_context)
        if cross_len:
            kv_bytes += decode_seqs * kv_cache(config, seq_len=1, dtype=work.kv_dtype,
                                               encoder_len=cross_len).cross_attention_bytes  # fmt: skip
        attention_s += kv_bytes * work.kv_share * layer_share / hw.attention_bytes_per_s
    if prefill_tokens:
        causal = not config.is_encoder_decoder
        per_token = attention_flops_per_token(config, max(1, round(2 * prefill_context)), causal=causal)
        attn_rate = hw.attention_peak_flop_per_s * hw.attention_flop_fraction
        attention_s += roofline_time_s(prefill_tokens * per_token * layer_share / tp, 0.0, attn_rate, 1.0)
    layers = config.n_layers * layer_share
    message = tokens * config.d_model * ACTIVATION_BYTES
    per_layer = allreduces_per_layer(config, cross_attention=config.is_encoder_decoder)
    latency = ring_latency_s(hw.allreduce_latency_s, hw.allreduce_hop_latency_s, tp)
    comm_s = layers * per_layer * allreduce_time_s(message, tp, hw.link_bytes_per_s, latency)
    if work.expert_parallel:
        comm_s += _expert_parallel_comm_s(work, hw, tp=tp, tokens=tokens, layer_share=layer_share)
    overhead_s = layers * hw.layer_overhead_s + hw.step_overhead_s
    return StepTime(
        decode_seqs=decode_seqs,
        prefill_tokens=prefill_tokens,
        linear_s=linear_s,
        linear_compute_s=compute_s,
        linear_memory_s=memory_s,
        attention_s=attention_s,
        comm_s=comm_s,
        overhead_s=overhead_s,
        total_s=linear_s + attention_s + comm_s + overhead_s,
        bound="compute" if compute_s > memory_s else "memory",
    )
