"""Side-by-side comparison records: one plain-data record per architecture (what `llmarch compare` shows)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmarch.calc.params import count_params
from llmarch.core.config import ArchConfig
from llmarch.core.defaults import DEFAULT_BATCH, DEFAULT_DTYPE, DEFAULT_SEQ_LEN

if TYPE_CHECKING:
    import pandas

SCHEMA_VERSION = 1

#: Named column sets for the table views; any record key may also be asked for directly.
COLUMN_SETS: dict[str, tuple[str, ...]] = {
    "default": (
        "name", "params_total", "params_active", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_head",
        "d_ff", "vocab_size", "max_seq_len", "attention", "position", "mlp",
    ),
    "inference": (
        "name", "params_total", "params_active", "attention", "seq_len", "flops_per_token",
        "kv_cache_bytes_per_token", "kv_cache_bytes", "weights_bytes",
    ),
    # Training recipes, laid out like Table 2 of the LLaMA paper (Touvron et al. 2023, arXiv:2302.13971):
    # sizes, tokens, context, global batch, position embedding, attention, dimension, heads, layers,
    # learning rate, optimizer, activation.
    "training": (
        "name", "params_total", "training_tokens", "max_seq_len", "global_batch_tokens", "position",
        "attention", "d_model", "n_heads", "n_layers", "learning_rate", "optimizer", "mlp",
    ),
    "params": (
        "name", "params_total", "params_embedding", "params_non_embedding", "params_lm_head", "params_active",
        "params_attention", "params_mlp", "params_norm", "reference_params", "reference_exact",
    ),
}  # fmt: skip

#: Names column sets had before, still accepted (not listed in help): "course" is now "training".
COLUMN_SET_ALIASES = {"course": "training"}


def model_record(
    config: ArchConfig, *, seq_len: int = DEFAULT_SEQ_LEN, batch: int = DEFAULT_BATCH, dtype: str = DEFAULT_DTYPE
) -> dict[str, Any]:
    """Every number `llmarch compare` shows for one architecture, as plain JSON-ready data.

    Parameter fields are exact counts (see `llmarch.calc.params.count_params`); `params_active` equals
    `params_total` for dense models. `breakdown` holds the per-component leaves, `groups` their sums.
    Workload fields: `flops_per_token` is the causal forward pass at `seq_len` (llmarch.calc.flops),
    `kv_cache_bytes` is for `batch` sequences of `seq_len` tokens in `kv_dtype` (the weight dtype for
    fp32/bf16/fp16, bf16 under a quantised scheme: `llmarch.calc.quant.default_kv_dtype`), `weights_bytes`
    the weights as the `dtype` scheme deploys them (llmarch.calc.memory.weights_bytes).
    """
    from llmarch.calc.flops import forward_flops
    from llmarch.calc.memory import kv_cache, kv_cache_bytes_per_token, weights_bytes
    from llmarch.calc.quant import canonical_weight_dtype, default_kv_dtype

    dtype = canonical_weight_dtype(dtype)
    kv_dtype = default_kv_dtype(dtype)  # quantised weights keep a 16-bit KV cache, as deployed
    counts = count_params(config)
    groups = counts.groups
    training = config.training
    return {
        "name": config.name,
        "family": config.family,
        "year": config.year,
        "architecture": config.architecture,
        "params_total": counts.total,
        "params_embedding": counts.embedding,
        "params_non_embedding": counts.non_embedding,
        "params_lm_head": counts.lm_head,
        "params_active": counts.active,
        "params_attention": groups["attention"] + groups["cross_attention"],
        "params_mlp": groups["mlp"] + groups["moe"],
        "params_norm": groups["norm"],
        "n_layers": config.n_layers,
        "n_encoder_layers": config.n_encoder_layers,
        "d_model": config.d_model,
        "n_heads": config.n_heads,
        "n_kv_heads": config.n_kv_heads,
        "d_head": config.d_head,
        "d_ff": config.d_ff,
        "vocab_size": config.vocab_size,
        "max_seq_len": config.max_seq_len,
        "attention": config.attention,
        "position": config.position,
        "norm": config.norm,
        "mlp": config.mlp,
        "tie_embeddings": config.tie_embeddings,
        "parallel_block": config.parallel_block,
        "sliding_window": config.sliding_window,
        "n_experts": config.n_experts,
        "n_experts_per_token": config.n_experts_per_token,
        "n_shared_experts": config.n_shared_experts,
        "d_ff_expert": config.d_ff_expert,
        "mla_kv_rank": config.mla_kv_rank,
        "seq_len": seq_len,
        "batch": batch,
        "dtype": dtype,
        "kv_dtype": kv_dtype,
        "flops_per_token": forward_flops(config, seq_len).total,
        "kv_cache_bytes_per_token": kv_cache_bytes_per_token(config, kv_dtype),
        "kv_cache_bytes": kv_cache(config, batch=batch, seq_len=seq_len, dtype=kv_dtype).total_bytes,
        "weights_bytes": weights_bytes(config, dtype),
        "training_tokens": training.tokens,
        "global_batch_tokens": training.global_batch_tokens,
        "learning_rate": training.learning_rate,
        "optimizer": training.optimizer,
        "reference_params": config.reference_params,
        "reference_exact": config.reference_exact,
        "source": config.source,
        "breakdown": dict(counts.breakdown),
        "groups": groups,
    }


def kv_cache_curve(
    config: ArchConfig, *, seq_lens: list[int] | None = None, batch: int = DEFAULT_BATCH, dtype: str = DEFAULT_DTYPE
) -> dict[str, Any]:
    """KV-cache bytes at each context length (default: powers of two from 512 to the model's context)."""
    from llmarch.calc.memory import kv_cache
    from llmarch.calc.quant import default_kv_dtype

    kv_dtype = default_kv_dtype(dtype)
    if seq_lens is None:
        seq_lens = [2**k for k in range(9, 21) if 2**k <= config.max_seq_len] or [config.max_seq_len]
        if seq_lens[-1] != config.max_seq_len:
            seq_lens.append(config.max_seq_len)
    points = [
        {"seq_len": s, "kv_cache_bytes": kv_cache(config, batch=batch, seq_len=s, dtype=kv_dtype).total_bytes}
        for s in seq_lens
    ]
    return {"name": config.name, "attention": config.attention, "batch": batch, "dtype": dtype, "points": points}


def compare_records(configs: list[ArchConfig], **workload: Any) -> list[dict[str, Any]]:
    """Comparison records for `configs`, in the order given (workload: seq_len, batch, dtype)."""
    return [model_record(c, **workload) for c in configs]


def compare_frame(configs: list[ArchConfig], **workload: Any) -> pandas.DataFrame:
    """The comparison as a pandas DataFrame, one row per model (nested breakdowns flattened)."""
    import pandas

    return pandas.json_normalize(compare_records(configs, **workload), sep=".")


def preset_rows(
    *, family: str | None = None, attention: str | None = None, year: int | None = None
) -> list[dict[str, Any]]:
    """One row per reachable preset (name, family, year, size, attention, position, source), filtered by
    family (exact), attention kind and release year."""
    from llmarch.catalog.presets import load_all
    from llmarch.core.errors import InvalidValueError

    if attention is not None and attention not in ("mha", "gqa", "mqa", "mla"):
        raise InvalidValueError(f"`attention`: unknown kind {attention!r}; use mha, gqa, mqa or mla")
    rows = []
    for config in load_all():
        if family is not None and config.family != family:
            continue
        if attention is not None and config.attention != attention:
            continue
        if year is not None and config.year != year:
            continue
        counts = count_params(config)
        rows.append(
            {
                "name": config.name,
                "family": config.family,
                "year": config.year,
                "params_total": counts.total,
                "params_active": counts.active,
                "attention": config.attention,
                "position": config.position,
                "description": config.description,
                "source": config.source,
            }
        )
    if family is not None and not rows:
        families = sorted({c.family for c in load_all()})
        raise InvalidValueError(f"`family`: no preset of family {family!r}; families: {', '.join(families)}")
    if year is not None and not rows:
        years = sorted({c.year for c in load_all() if c.year is not None})
        raise InvalidValueError(f"`year`: no preset from {year}; years: {', '.join(map(str, years))}")
    return rows


def show_record(config: ArchConfig) -> dict[str, Any]:
    """Everything `llmarch show` displays: every config field, derived shapes and the parameter counts."""
    counts = count_params(config)
    return {
        "name": config.name,
        "config": config.to_dict(),
        "derived": {
            "attention": config.attention,
            "gated_mlp": config.gated_mlp,
            "v_head_dim": config.v_head_dim,
            "rotary_dim": config.rotary_dim,
            "n_local_layers": config.n_local_layers,
            "n_moe_layers": config.n_moe_layers,
        },
        "params": {
            "total": counts.total,
            "embedding": counts.embedding,
            "non_embedding": counts.non_embedding,
            "lm_head": counts.lm_head,
            "active": counts.active,
            "groups": counts.groups,
            "breakdown": dict(counts.breakdown),
        },
    }
