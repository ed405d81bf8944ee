"""Memory a model stores: weights by dtype and the KV cache (per token, and for a batch and context).

All results are bytes. Per-GPU memory of a workload (activations, optimizer states under ZeRO/TP/PP,
checkpoints, inference totals) builds on these in `llmarch.calc.training_memory`.

The KV cache is what an incremental decoder keeps per layer: keys and values of every attended position
(MHA/GQA/MQA), capped at the window for sliding-window layers (a rolling buffer, Jiang et al. 2023,
arXiv:2310.06825, section 2), the compressed latent plus the decoupled rotary key for MLA (DeepSeek-AI
2024, arXiv:2405.04434, section 2.1.2), and for an encoder-decoder the decoder's self-attention cache plus
the static cross-attention keys and values of the encoder output.
"""

from __future__ import annotations

from llmarch.calc.params import count_params
from llmarch.calc.quant import is_linear_group, quant_scheme
from llmarch.core.checks import positive_int
from llmarch.core.config import ArchConfig
from llmarch.core.defaults import DEFAULT_DTYPE
from llmarch.core.frozen import frozen_dataclass
from llmarch.core.units import canonical_dtype, dtype_bytes


def weights_bytes(config: ArchConfig, dtype: str = DEFAULT_DTYPE) -> float:
    """Bytes of the weights stored as weight dtype `dtype`, as checkpoints of that scheme are deployed.

    Per `count_params` group: linear projections (attention, MLP, experts) at the scheme's bytes per weight,
    scales and zero points included; embeddings, the output head, norms and routers at the scheme's other
    width (16 bits under every quantised scheme). The schemes and their sources are in `llmarch.calc.quant`
    (e.g. int4 = AWQ/GPTQ group-128: 0.5 + 2.5/128 bytes per linear weight, Lin et al. 2023,
    arXiv:2306.00978). A config's `weight_dtypes` (group name such as "experts" -> dtype, e.g. gpt-oss's
    MXFP4 experts) overrides the scheme for those groups.
    """
    scheme = quant_scheme(dtype)
    overrides = dict(getattr(config, "weight_dtypes", None) or {})
    total = 0.0
    for group, n in count_params(config).breakdown.items():
        override = _group_override(group, overrides)
        if override is not None:
            total += n * quant_scheme(override).linear_bytes_per_weight
        elif is_linear_group(group):
            total += n * scheme.linear_bytes_per_weight
        else:
            total += n * scheme.other_bytes_per_weight
    return total


def _group_override(group: str, overrides: dict[str, str]) -> str | None:
    """The dtype `weight_dtypes` gives a breakdown group ("moe.experts" matches "moe.experts" or "experts")."""
    if not overrides:
        return None
    head, _, tail = group.partition(".")
    for key in (group, tail, head):
        if key in overrides:
            return str(overrides[key])
    return None


def kv_cache_elements_per_token(config: ArchConfig) -> int:
    """Cached elements per token across all decoder layers (uncapped by any window).

    MHA/GQA/MQA: 2 (keys and values) x n_kv_heads x d_head per layer (values use d_head_v where it
    differs). MLA: kv_rank + rope_dim per layer (the latent and one shared rotary key).
    """
    if config.mla_kv_rank is not None:
        assert config.mla_rope_dim is not None
        return config.n_layers * (config.mla_kv_rank + config.mla_rope_dim)
    return config.n_layers * config.n_kv_heads * (config.d_head + config.v_head_dim)


def kv_cache_bytes_per_token(config: ArchConfig, dtype: str = DEFAULT_DTYPE) -> float:
    """KV-cache bytes added per decoded token (all layers, one sequence), before any window cap."""
    return kv_cache_elements_per_token(config) * dtype_bytes(dtype)


@frozen_dataclass
class KVCache:
    """KV-cache size of one workload, in bytes, with the parts."""

    batch: int
    seq_len: int
    beam_width: int
    dtype: str
    self_attention_bytes: float  # decoder self-attention (rolling buffer on local layers)
    cross_attention_bytes: float  # encoder-decoder: keys/values of the encoder output, per decoder layer
    total_bytes: float


def kv_cache(
    config: ArchConfig,
    *,
    batch: int = 1,
    seq_len: int,
    dtype: str = DEFAULT_DTYPE,
    beam_width: int = 1,
    encoder_len: int | None = None,
) -> KVCache:
    """KV-cache bytes for `batch` sequences of `seq_len` cached tokens, each searched with `beam_width`.

    Per layer and sequence: positions x per-position elements x bytes, where positions = seq_len, or
    min(seq_len, sliding_window) on local layers (the rolling buffer; chunked layers, Llama 4, keep at most
    one chunk: min(seq_len, attention_chunk)). Beam search keeps one cache per
    beam. An encoder-decoder also caches cross-attention keys and values over `encoder_len` encoder
    positions (default seq_len) in every decoder layer, once per sequence and beam (as Hugging Face
    generate() expands them).
    """
    for name, value in (("batch", batch), ("seq_len", seq_len), ("beam_width", beam_width)):
        positive_int(name, value)
    dtype = canonical_dtype(dtype)
    per_elem = dtype_bytes(dtype)
    if config.mla_kv_rank is not None:
        assert config.mla_rope_dim is not None
        per_position_layer = config.mla_kv_rank + config.mla_rope_dim
    else:
        per_position_layer = config.n_kv_heads * (config.d_head + config.v_head_dim)
    n_local = config.n_local_layers
    # Summed over layers: global layers keep every position, local ones a rolling buffer of the window.
    positions = (config.n_layers - n_local) * seq_len
    if n_local:
        assert config.local_span is not None
        positions += n_local * min(seq_len, config.local_span)
    sequences = batch * beam_width
    self_bytes = sequences * positions * per_position_layer * per_elem
    cross_bytes = 0.0
    if config.is_encoder_decoder:
        enc = seq_len if encoder_len is None else encoder_len
        cross_bytes = sequences * config.n_layers * enc * config.n_kv_heads * (config.d_head + config.v_head_dim)
        cross_bytes *= per_elem
    return KVCache(batch, seq_len, beam_width, dtype, self_bytes, cross_bytes, self_bytes + cross_bytes)
