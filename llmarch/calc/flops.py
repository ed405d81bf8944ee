"""FLOP counts of the forward pass, training and inference phases, from the architecture alone.

Convention: one multiply-add = 2 FLOPs (the convention of Kaplan et al. 2020 and of torch's
FlopCounterMode; fvcore counts one multiply-add as 1 flop, so its numbers are half of these). Only
matrix multiplications are counted: the weight matmuls (2 FLOPs per weight a token multiplies) and the
two attention matmuls (Q K^T and A V). Norms, activations, softmax, rotary embeddings, biases and
residual adds are left out: together they are below 1% of the total for every shipped preset. Token
and position embeddings are lookups (no FLOPs); the output head is a matmul whether tied or not.
"""

from __future__ import annotations

from typing import Literal

from llmarch.calc.params import attention_params, count_params, mlp_params
from llmarch.core.checks import positive_int
from llmarch.core.config import ArchConfig
from llmarch.core.errors import InvalidValueError
from llmarch.core.frozen import frozen_dataclass

Recompute = Literal["none", "selective", "full"]
RECOMPUTE_MODES: tuple[str, ...] = ("none", "selective", "full")


def _check_seq_len(seq_len: int) -> None:
    positive_int("seq_len", seq_len)


def mean_attended_keys(seq_len: int, *, window: int | None = None, causal: bool = True) -> float:
    """Mean number of keys each query of a length-`seq_len` sequence attends to.

    Causal: query i (1-based) sees min(i, window) keys, so the mean is (S + 1) / 2 without a window and
    [W (W + 1) / 2 + (S - W) W] / S with a window W < S (Beltagy et al. 2020, arXiv:2004.05150; Jiang
    et al. 2023, arXiv:2310.06825). Non-causal: every query sees all S keys (min(S, W) with a window).
    """
    _check_seq_len(seq_len)
    if not causal:
        return float(seq_len if window is None else min(seq_len, window))
    if window is None or window >= seq_len:
        return (seq_len + 1) / 2
    return (window * (window + 1) / 2 + (seq_len - window) * window) / seq_len


def mean_chunk_keys(seq_len: int, chunk: int, *, causal: bool = True) -> float:
    """Mean keys per query under chunked attention (Llama 4's local layers, Meta 2025 model card).

    The sequence is cut into chunks of C tokens and a query attends only within its own chunk. Causal:
    query p (0-based) sees the (p mod C) + 1 keys of its chunk, so S = q C + r gives
    [q C (C + 1) / 2 + r (r + 1) / 2] / S. Non-causal: every query sees its whole chunk, (q C^2 + r^2) / S.
    """
    _check_seq_len(seq_len)
    positive_int("chunk", chunk)
    full, rest = divmod(seq_len, chunk)
    if not causal:
        return (full * chunk * chunk + rest * rest) / seq_len
    return (full * chunk * (chunk + 1) / 2 + rest * (rest + 1) / 2) / seq_len


def weight_flops_per_token(config: ArchConfig) -> dict[str, float]:
    """Forward FLOPs per token of the weight matmuls, by part: 2 x the weights one token multiplies.

    Attention projections, the MLP (dense layers; under MoE the router, the top-k routed experts and the
    shared experts), and the output head (vocab x d_model). For an encoder-decoder the encoder and
    decoder each see their own tokens: the numbers are per token of one stack (see forward_flops).
    """
    attn = sum(attention_params(config, bias=False).values())
    out: dict[str, float] = {"attention_proj": 2.0 * attn * config.n_layers}
    n_dense = config.n_layers - config.n_moe_layers
    out["mlp"] = 2.0 * n_dense * mlp_params(config, config.d_ff, bias=False)
    if config.is_moe:
        assert config.n_experts is not None and config.n_experts_per_token is not None
        expert = mlp_params(config, config.expert_d_ff, bias=False)
        shared = config.n_shared_experts * mlp_params(config, config.shared_expert_d_ff, bias=False)
        gate = config.d_model if config.shared_expert_gate else 0  # the shared experts' d -> 1 gate
        per_layer = config.n_experts * config.d_model + config.n_experts_per_token * expert + shared + gate
        out["mlp"] += 2.0 * config.n_moe_layers * per_layer
    out["lm_head"] = 2.0 * config.vocab_size * config.d_model
    return out


def attention_flops_per_token(config: ArchConfig, seq_len: int, *, causal: bool = True) -> float:
    """Forward FLOPs per token of the attention matmuls, averaged over a sequence of `seq_len` tokens.

    Per layer and query: Q K^T costs 2 H d_head k and A V costs 2 H d_v k, where k is the number of keys
    the query attends to (`mean_attended_keys`; local layers cap it at the sliding window, or keep the
    query's own chunk under chunked attention, `mean_chunk_keys`; sink logits add no matmul). This is the
    2 n_layer n_ctx d_attn term of Kaplan et al. 2020 (arXiv:2001.08361, Table 1), halved on average by
    the causal mask.
    """
    per_key = 2.0 * config.n_heads * (config.d_head + config.v_head_dim)
    n_local = config.n_local_layers
    n_global = config.n_layers - n_local
    keys = n_global * mean_attended_keys(seq_len, causal=causal)
    if n_local and config.attention_chunk is not None:
        keys += n_local * mean_chunk_keys(seq_len, config.attention_chunk, causal=causal)
    elif n_local:
        keys += n_local * mean_attended_keys(seq_len, window=config.sliding_window, causal=causal)
    return per_key * keys


@frozen_dataclass
class ForwardFlops:
    """Forward FLOPs per token at a context length, with its parts (2 FLOPs per multiply-add)."""

    seq_len: int
    causal: bool
    weights: float  # weight matmuls: attention projections + MLP/experts (+ cross-attention projections)
    attention: float  # Q K^T and A V (self- and cross-attention)
    lm_head: float
    total: float


def forward_flops(config: ArchConfig, seq_len: int, *, causal: bool = True) -> ForwardFlops:
    """Forward FLOPs per token at context `seq_len`: 2 x active matmul weights + the attention term.

    Decoder-only: the sum of `weight_flops_per_token` and `attention_flops_per_token`. Encoder-decoder
    (T5, the 2017 Transformer) is reported per token of a source and target of `seq_len` tokens each,
    averaged: an encoder token pays the encoder stack (bidirectional attention over S keys); a decoder
    token pays the decoder stack (causal self-attention, cross-attention over S encoder keys, the head).
    """
    _check_seq_len(seq_len)
    parts = weight_flops_per_token(config)
    if not config.is_encoder_decoder:
        weights = parts["attention_proj"] + parts["mlp"]
        attention = attention_flops_per_token(config, seq_len, causal=causal)
        lm_head = parts["lm_head"]
    else:
        attn_proj = 2.0 * sum(attention_params(config, bias=False).values())
        mlp = 2.0 * mlp_params(config, config.d_ff, bias=False)
        per_key = 2.0 * config.n_heads * (config.d_head + config.v_head_dim)
        encoder_token = config.n_encoder_layers * (attn_proj + mlp + per_key * seq_len)
        self_keys = mean_attended_keys(seq_len, causal=causal)
        decoder_weights = config.n_layers * (2 * attn_proj + mlp)  # self- and cross-attention projections
        decoder_attention = config.n_layers * per_key * (self_keys + seq_len)
        # Averaged over the 2S tokens (S source, S target); the head runs on target tokens only.
        weights = (config.n_encoder_layers * (attn_proj + mlp) + decoder_weights) / 2
        attention = (encoder_token - config.n_encoder_layers * (attn_proj + mlp) + decoder_attention) / 2
        lm_head = parts["lm_head"] / 2
    return ForwardFlops(seq_len, causal, weights, attention, lm_head, weights + attention + lm_head)


def training_seq_len(config: ArchConfig) -> int:
    """The sequence length a preset was trained at: training.seq_len where published, else the context
    before a RoPE extension (rope_original_max_seq_len), else max_seq_len.

    A checkpoint whose context was extended by RoPE scaling was pre-trained at the original length and
    extended only in a short final stage (Llama 3.1: 8K sequences, 128K for the last ~800B of 15.6T tokens;
    Llama Team 2024, arXiv:2407.21783, sections 3.4.1-3.4.2), so its max_seq_len would overstate the
    attention FLOPs of pre-training many times over (Llama 4 Scout: 10M against 8K).
    The default of every training calculator (`llmarch memory`, `plan`, `estimate-cost`, `report`).
    """
    return config.training.seq_len or config.rope_original_max_seq_len or config.max_seq_len


def training_seq_len_source(config: ArchConfig) -> str:
    """Which preset field `training_seq_len` took its value from, for assumptions records."""
    if config.training.seq_len:
        return "preset training.seq_len"
    return "preset rope_original_max_seq_len" if config.rope_original_max_seq_len else "preset max_seq_len"


def training_flops_per_token(config: ArchConfig, seq_len: int, *, recompute: Recompute = "none") -> float:
    """Training FLOPs per token: forward + backward (= 2 x forward) + any recomputation.

    3 x forward (the backward pass costs twice the forward: gradients with respect to activations and
    to weights; Kaplan et al. 2020, section 2.1). Full activation recomputation runs the forward once
    more (4 x forward); selective recomputation (Korthikanti et al. 2022, arXiv:2205.05198, section 5)
    recomputes only the attention core, adding the attention term once more.
    """
    if recompute not in RECOMPUTE_MODES:
        raise InvalidValueError(f"recompute must be one of {', '.join(RECOMPUTE_MODES)}, got {recompute!r}")
    fwd = forward_flops(config, seq_len)
    extra = {"none": 0.0, "selective": fwd.attention, "full": fwd.total}[recompute]
    return 3.0 * fwd.total + extra


def six_nd(n_params: float, tokens: float) -> float:
    """Training FLOPs ~ 6 N D (Kaplan et al. 2020, arXiv:2001.08361, eq. 2.1; Hoffmann et al. 2022).

    N parameters (non-embedding in Kaplan; total in most later work), D training tokens: 2 N per token
    forward, 4 N backward; the attention term and recomputation are left out.
    """
    return 6.0 * n_params * tokens


def megatron_flops_per_token(config: ArchConfig, seq_len: int) -> float:
    """Training FLOPs per token by the Megatron closed form, with full recomputation.

    96 l h^2 (1 + s / (6 h) + V / (16 l h)) per token (Narayanan et al. 2021, arXiv:2104.04473, eq. 3;
    per iteration it is multiplied by B s). Assumes a GPT block: MHA with d_head x n_heads = h, a plain
    4h MLP and non-causal attention; other shapes are approximated, which is why it is a comparison only.
    """
    _check_seq_len(seq_len)
    h, n_layers, vocab = config.d_model, config.n_layers + config.n_encoder_layers, config.vocab_size
    return 96.0 * n_layers * h * h * (1 + seq_len / (6 * h) + vocab / (16 * n_layers * h))


def chinchilla_tokens(config: ArchConfig, tokens_per_param: float = 20.0) -> float:
    """Compute-optimal training tokens ~ 20 per parameter (Hoffmann et al. 2022, arXiv:2203.15556,
    Table 3: 1.4T tokens for 70B). Uses the total parameter count (active parameters for MoE are a
    different question the paper does not answer)."""
    return tokens_per_param * count_params(config).total


def model_flops_utilization(flops_per_token: float, tokens_per_s: float, peak_flop_per_s: float) -> float:
    """MFU: achieved model FLOP/s over the hardware peak (Chowdhery et al. 2022, arXiv:2204.02311, App. B).

    `flops_per_token` should be the training FLOPs without recomputation (MFU never credits it);
    tokens_per_s is the measured throughput of all devices together, peak_flop_per_s their summed peak.
    """
    for name, value in (("flops_per_token", flops_per_token), ("tokens_per_s", tokens_per_s),
                        ("peak_flop_per_s", peak_flop_per_s)):  # fmt: skip
        if not value > 0:
            raise InvalidValueError(f"{name} must be positive, got {value!r}")
    return flops_per_token * tokens_per_s / peak_flop_per_s
