"""Parameter counts: exact, per component, as the Hugging Face implementations count them.

The count is the number of unique trainable parameters (`sum(p.numel())` with tied weights once and
buffers excluded), the convention of the published checkpoints. Every matrix and vector of every layer
is enumerated below; the breakdown's leaves sum to the total, and `tests/` checks the total against the
checkpoints' own counts and against the reference PyTorch model.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType

from llmarch.core.config import PARAM_GROUPS, ArchConfig
from llmarch.core.frozen import frozen_dataclass

#: Coarse groups of the breakdown, in display order. Each leaf key is "<group>.<part>".
GROUPS = PARAM_GROUPS


@frozen_dataclass
class ParamCount:
    """Parameter counts of one architecture (all plain ints).

    total = embedding + non_embedding + lm_head. `embedding` is the token table plus a learned position
    table; `lm_head` is the untied output projection (0 when tied; its bias, if any, counts here too);
    `non_embedding` is everything else: the blocks, their norms and the final norm (the N of Kaplan et
    al. 2020, arXiv:2001.08361, section 2.1). `active` is what one token uses under top-k routing.
    """

    total: int
    embedding: int
    non_embedding: int
    lm_head: int
    active: int
    breakdown: Mapping[str, int]  # leaf component -> count; leaves sum to total

    def group(self, name: str) -> int:
        """Sum of the breakdown leaves in group `name` (one of GROUPS)."""
        return sum(v for k, v in self.breakdown.items() if k.split(".", 1)[0] == name)

    @property
    def groups(self) -> dict[str, int]:
        """Every group of GROUPS (in that order) -> the sum of its leaves, in one pass over the breakdown."""
        sums = dict.fromkeys(GROUPS, 0)
        for key, value in self.breakdown.items():
            group = key.partition(".")[0]
            if group in sums:
                sums[group] += value
        return sums


def norm_params(config: ArchConfig, width: int) -> int:
    """Parameters of one normalisation layer over `width` channels: a scale, plus a shift if biased.

    A nonparametric LayerNorm (OLMo 1, Groeneveld et al. 2024, arXiv:2402.00838, section 2.1) has none.
    """
    if config.norm == "nonparametric":
        return 0
    return width * (2 if config.norm == "layernorm" and config.norm_bias else 1)


def qk_norm_params(config: ArchConfig) -> int:
    """Parameters of one layer's query and key norms (0 without `qk_norm`).

    "head": one norm over d_head shared by all heads, for queries and one for keys, 2 x d_head (Qwen3;
    Gemma 3; Dehghani et al. 2023, arXiv:2302.05442). "full": one norm over the whole query projection
    (H d_h) and one over the keys (H_kv d_h), as OLMo 2 (OLMo et al. 2024, arXiv:2501.00656, section
    3.2). "per-head": a separate d_head norm per head, the same count as "full" (Cohere; StableLM 2).
    "l2": a weightless L2 norm (Llama 4), 0. Each is the config's `norm` with a scale and no shift (every
    published q/k norm, StableLM 2's per-head LayerNorms included, is bias-free); none when nonparametric.
    """
    if config.qk_norm is None or config.qk_norm == "l2" or config.norm == "nonparametric":
        return 0
    if config.qk_norm == "head":
        return 2 * config.d_head
    return (config.n_heads + config.n_kv_heads) * config.d_head


def attention_params(config: ArchConfig, *, bias: bool = True) -> dict[str, int]:
    """Parameters of one self-attention layer, by projection.

    MHA/GQA/MQA (Vaswani et al. 2017; Shazeer 2019, arXiv:1911.02150; Ainslie et al. 2023,
    arXiv:2305.13245): q = d x (H d_h), k = d x (H_kv d_h), v = d x (H_kv d_v), o = (H d_v) x d, with the
    q/k/v biases under `qkv_bias` and the output bias under `attn_out_bias`.

    MLA (DeepSeek-AI 2024, arXiv:2405.04434, section 2.1): the query is either a full projection
    d x (H d_h) or a down-projection to `mla_q_rank`, an RMSNorm and an up-projection; keys and values
    share a down-projection d x (kv_rank + rope_dim) (the latent plus one decoupled rotary key), an RMSNorm
    over the latent, and an up-projection kv_rank x H (d_h - rope_dim + d_v). The latent norms are counted
    in the `norm` group by `layer_norm_params`. bias=False counts the weight matrices only (the matmul
    weights, which is what FLOP counts need).
    """
    d, h, hkv, dh, dv = config.d_model, config.n_heads, config.n_kv_heads, config.d_head, config.v_head_dim
    qkv_b, o_b = (config.qkv_bias, config.attn_out_bias) if bias else (False, False)
    if config.mla_kv_rank is not None:
        assert config.mla_rope_dim is not None
        kv_rank, rope = config.mla_kv_rank, config.mla_rope_dim
        out = {}
        if config.mla_q_rank is None:
            out["q"] = d * h * dh + (h * dh if qkv_b else 0)
        else:
            out["q_down"] = d * config.mla_q_rank + (config.mla_q_rank if qkv_b else 0)
            out["q_up"] = config.mla_q_rank * h * dh
        out["kv_down"] = d * (kv_rank + rope) + ((kv_rank + rope) if qkv_b else 0)
        out["kv_up"] = kv_rank * h * (dh - rope + dv)
        out["o"] = h * dv * d + (d if o_b else 0)
        return out
    return {
        "q": d * h * dh + (h * dh if qkv_b else 0),
        "k": d * hkv * dh + (hkv * dh if qkv_b else 0),
        "v": d * hkv * dv + (hkv * dv if qkv_b else 0),
        "o": h * dv * d + (d if o_b else 0),
    }


def mlp_params(config: ArchConfig, d_ff: int, *, bias: bool | None = None) -> int:
    """Parameters of one feed-forward network of hidden width `d_ff`.

    Plain (Vaswani et al. 2017): up d x d_ff and down d_ff x d. Gated, SwiGLU or GeGLU (Shazeer 2020,
    arXiv:2002.05202): gate and up d x d_ff each, down d_ff x d. Biases: one per hidden unit per input
    matrix and d for the output.
    """
    d = config.d_model
    n_in = 2 if config.gated_mlp else 1
    weights = (n_in + 1) * d * d_ff
    use_bias = config.mlp_bias if bias is None else bias
    return weights + ((n_in * d_ff + d) if use_bias else 0)


def layer_norm_params(config: ArchConfig, *, cross_attention: bool = False) -> int:
    """Normalisation parameters inside one block.

    A sequential block has one norm per sub-layer (two, or three with cross-attention), before it (pre),
    after the residual add (post) or on its output inside the residual (branch-post, OLMo 2); a sandwich
    block has two per sub-layer (Gemma 2/3). A parallel block (GPT-J; Falcon) has one shared input norm,
    or two (attention and MLP) as in GPT-NeoX and Falcon-40B. Query/key norms are `qk_norm_params`.
    MLA adds RMSNorms over the KV latent and, when the query is compressed, the query latent.
    """
    n_norms = 3 if cross_attention else 2
    if config.parallel_block and config.parallel_block_shared_norm:
        n_norms = 1
    if config.norm_position == "sandwich":
        n_norms = 4  # before and after attention and MLP (Gemma 2: Gemma Team 2024, arXiv:2408.00118, 2.2)
    total = n_norms * norm_params(config, config.d_model)
    if config.mla_kv_rank is not None:
        total += config.mla_kv_rank  # RMSNorm over the KV latent (scale only)
        if config.mla_q_rank is not None:
            total += config.mla_q_rank  # RMSNorm over the query latent
    return total


def moe_layer_params(config: ArchConfig) -> dict[str, int]:
    """Parameters of one MoE layer: router, routed experts, shared experts and the shared experts' gate.

    Router: d x n_experts (+ n_experts with router_bias, gpt-oss). Routed experts: n_experts MLPs of
    d_ff_expert (with their biases under mlp_bias, gpt-oss). Shared experts (DeepSeekMoE, Dai et al.
    2024, arXiv:2401.06066; Qwen2-MoE; Llama 4): n_shared_experts MLPs of d_ff_shared, optionally scaled
    by sigmoid(x w) with a d-wide gate vector w (Qwen2-MoE's shared_expert_gate).
    """
    assert config.n_experts is not None
    d = config.d_model
    return {
        "router": config.n_experts * d + (config.n_experts if config.router_bias else 0),
        "experts": config.n_experts * mlp_params(config, config.expert_d_ff),
        "shared_experts": config.n_shared_experts * mlp_params(config, config.shared_expert_d_ff),
        "shared_gate": d if config.shared_expert_gate else 0,
    }


@functools.lru_cache(maxsize=1024)
def count_params(config: ArchConfig) -> ParamCount:
    """Exact parameter counts of `config`, total and per component (see ParamCount)."""
    d, v = config.d_model, config.vocab_size
    parts: dict[str, int] = {}

    def add(key: str, value: int) -> None:
        if value:
            parts[key] = parts.get(key, 0) + value

    add("embedding.token", v * d)  # one table shared by encoder, decoder and (if tied) the head
    if config.position == "learned":
        stacks = 2 if config.is_encoder_decoder else 1
        add("embedding.position", stacks * (config.max_seq_len + config.position_offset) * d)
    if config.embedding_norm:
        add("norm.embedding", norm_params(config, d))

    attn = attention_params(config)
    n_self_attn = config.n_layers + config.n_encoder_layers
    for proj, count in attn.items():
        add(f"attention.{proj}", n_self_attn * count)
    if config.position == "relative":
        # T5: one (buckets x heads) bias table per stack, in the stack's first layer, shared by its layers.
        stacks = 2 if config.is_encoder_decoder else 1
        assert config.relative_attention_buckets is not None
        add("attention.relative_bias", stacks * config.relative_attention_buckets * config.n_heads)

    if config.is_encoder_decoder:
        for proj, count in attn.items():
            add(f"cross_attention.{proj}", config.n_layers * count)

    # Feed-forward: dense layers (all layers of a dense model; the first n_dense_layers of an MoE model).
    n_dense_mlp = config.n_layers + config.n_encoder_layers - config.n_moe_layers
    add("mlp.dense", n_dense_mlp * mlp_params(config, config.d_ff))
    if config.is_moe:
        for key, count in moe_layer_params(config).items():
            add(f"moe.{key}", config.n_moe_layers * count)

    if config.attention_sinks:
        add("attention.sinks", config.n_layers * config.n_heads)  # one sink logit per head (gpt-oss)
    add("norm.qk", config.n_layers * qk_norm_params(config))
    add("norm.blocks", config.n_layers * layer_norm_params(config, cross_attention=config.is_encoder_decoder))
    add("norm.blocks", config.n_encoder_layers * layer_norm_params(config))
    if config.final_norm:
        add("norm.final", (2 if config.is_encoder_decoder else 1) * norm_params(config, d))

    if not config.tie_embeddings:
        add("lm_head.weight", v * d)
    if config.lm_head_bias:
        add("lm_head.bias", v)

    total = sum(parts.values())
    embedding = parts.get("embedding.token", 0) + parts.get("embedding.position", 0)
    lm_head = parts.get("lm_head.weight", 0) + parts.get("lm_head.bias", 0)
    active = total
    if config.is_moe:
        assert config.n_experts is not None and config.n_experts_per_token is not None
        routed = parts.get("moe.experts", 0)
        # Top-k routing: each token passes through k of the n routed experts (shared experts always).
        active = total - routed + routed * config.n_experts_per_token // config.n_experts
    return ParamCount(
        total=total,
        embedding=embedding,
        non_embedding=total - embedding - lm_head,
        lm_head=lm_head,
        active=active,
        breakdown=MappingProxyType(parts),
    )
