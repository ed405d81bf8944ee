"""Hugging Face `config.json` -> raw llmarch preset mapping (ArchConfig field names).

`config_from_hf` reads an already parsed config.json and returns the plain mapping that
`ArchConfig.from_dict` validates; `llmarch.catalog.presets` calls it for any `.json` file (or YAML file) that carries
`model_type`. The caller sets `name` and `source`.

What the mapping promises: for every supported `model_type`, `count_params` of the result equals
`sum(p.numel())` of the transformers model built from the same file (tied weights once, buffers excluded),
checked by `tests/test_hf.py` against `scripts/hf_param_count.py`. Where a file asks for a structure that
ArchConfig cannot describe exactly (OPT-350m's embedding projections, Phi's qk_layernorm, DeepSeek's
moe_layer_freq > 1, ...), the mapping raises InvalidConfigError naming the key rather than return a near miss.
Model types whose every block is beyond ArchConfig (gemma2's four norms per layer, qwen2_moe's shared-expert
gate, qwen3's query/key norms) are not in SUPPORTED_MODEL_TYPES.

Defaults: the four numbers every checkpoint's config.json states (width, depth, heads, vocabulary) are
required; any other key the file omits takes the default of transformers' own `configuration_<type>.py`
(llama: no biases, untied head, n_kv_heads = n_heads; gpt2: n_inner = 4 x n_embd; t5: d_ff 2048; ...), and a
key present with `null` means what transformers makes of `None` (usually the same default).

One deliberate departure from transformers 5.x: T5 with `tie_word_embeddings: false` (T5 v1.1, Flan-T5,
mT5) maps to an untied output head. transformers 5 forces T5's `tie_word_embeddings` to True and reuses the
flag for output scaling, so a model built from the config alone ties the head, but those checkpoints store a
separate `lm_head.weight` that `from_pretrained` keeps untied (google/flan-t5-small: 76,961,152 parameters
with the separate head, the size its model card reports as 77M).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from llmarch.core.errors import InvalidConfigError

_MISSING = object()

# Activation names used by transformers' ACT2FN, by the llmarch `mlp` they give in a plain (two-matrix) MLP
# and in a gated (three-matrix) one.
_GELUS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu_accurate", "gelu_python", "bloom_gelu")
_PLAIN_MLP = {**{a: "gelu" for a in _GELUS}, "relu": "relu", "silu": "silu", "swish": "silu"}
_GATED_MLP = {**{a: "geglu" for a in _GELUS}, "silu": "swiglu", "swish": "swiglu"}


class _Reader:
    """Typed access to one config.json's keys; every problem becomes an InvalidConfigError naming the key."""

    def __init__(self, data: dict[str, Any], *, origin: str, model_type: str):
        self.data = data
        self.origin = origin
        self.model_type = model_type

    def fail(self, key: str, message: str) -> NoReturn:
        raise InvalidConfigError(message, origin=self.origin, field=key)

    def unsupported(self, key: str, what: str) -> NoReturn:
        self.fail(key, f"{what} is not supported: llmarch cannot describe it exactly (model_type {self.model_type!r})")

    def _find(self, keys: tuple[str, ...], null_is_default: bool) -> tuple[str, Any] | None:
        """(key, value) of the first of `keys` present; a null value counts as absent if `null_is_default`."""
        for key in keys:
            if key in self.data and not (null_is_default and self.data[key] is None):
                return key, self.data[key]
        return None

    def _absent(self, keys: tuple[str, ...], default: Any) -> Any:
        if default is _MISSING:
            names = " or ".join(f"'{k}'" for k in keys)
            self.fail(keys[0], f"is required in a {self.model_type!r} config.json (looked for {names})")
        return default

    def value(self, *keys: str, default: Any = _MISSING, null_is_default: bool = True) -> Any:
        """The value of the first of `keys` present (aliases: current name first), else `default`.

        A key present with null counts as absent when `null_is_default` (transformers' `x if x is not None
        else default`); otherwise null is returned as None. No default: the key is required.
        """
        found = self._find(keys, null_is_default)
        return self._absent(keys, default) if found is None else found[1]

    def int(self, *keys: str, default: Any = _MISSING, null_is_default: bool = True, minimum: int = 1) -> Any:
        """An integer >= `minimum` (or `default`, which may be None; or None for a null kept as null)."""
        found = self._find(keys, null_is_default)
        if found is None:
            return self._absent(keys, default)
        key, value = found
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"expected an integer, got {value!r}")
        if value < minimum:
            self.fail(key, f"must be an integer >= {minimum}, got {value}")
        return value

    def bool(self, *keys: str, default: bool) -> bool:
        found = self._find(keys, True)
        if found is None:
            return default
        key, value = found
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, got {value!r}")
        return value

    def float(self, *keys: str, default: float) -> float:
        found = self._find(keys, True)
        if found is None:
            return default
        key, value = found
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(key, f"expected a number, got {value!r}")
        return float(value)

    def str(self, *keys: str, default: str) -> str:
        found = self._find(keys, True)
        if found is None:
            return default
        key, value = found
        if not isinstance(value, str):
            self.fail(key, f"expected a string, got {value!r}")
        return value

    def dict(self, key: str) -> dict[str, Any]:
        value = self.value(key, default={})
        if not isinstance(value, dict):
            self.fail(key, f"expected a mapping, got {value!r}")
        return value

    def mlp(self, key: str, *, gated: bool, default: str) -> str:
        """The llmarch `mlp` for activation key `key` in a gated or plain MLP."""
        act = self.str(key, default=default)
        table = _GATED_MLP if gated else _PLAIN_MLP
        if act not in table:
            kind = "gated" if gated else "plain"
            self.fail(key, f"activation {act!r} in a {kind} MLP is not supported; known: {', '.join(sorted(table))}")
        return table[act]

    def rope(
        self,
        *,
        default_theta: float = 10000.0,
        default_fraction: float = 1.0,
        theta_keys: tuple[str, ...] = ("rope_theta",),
        fraction_keys: tuple[str, ...] = ("partial_rotary_factor",),
    ) -> dict[str, Any]:
        """rope_theta and rope_fraction, from `rope_parameters` (transformers 5), `rope_scaling`, or top-level keys."""
        params = self.data.get("rope_parameters") or self.data.get("rope_scaling") or {}
        if not isinstance(params, dict):
            self.fail("rope_parameters", f"expected a mapping, got {params!r}")
        theta = params.get("rope_theta")
        if theta is None:
            theta = self.float(*theta_keys, default=default_theta)
        fraction = params.get("partial_rotary_factor")
        if fraction is None:
            fraction = self.float(*fraction_keys, default=default_fraction)
        out: dict[str, Any] = {"position": "rope", "rope_theta": float(theta)}
        if fraction != 1.0:
            out["rope_fraction"] = float(fraction)
        return out

    def notes(self) -> str:
        """Facts of the file that ArchConfig does not model but a reader should see (context extension)."""
        scaling = self.data.get("rope_scaling") or (self.data.get("rope_parameters") or {})
        if isinstance(scaling, dict):
            kind = scaling.get("rope_type") or scaling.get("type")
            if kind and kind != "default":
                factor = scaling.get("factor")
                extra = f", factor {factor}" if factor is not None else ""
                return f"config.json rope scaling: {kind}{extra} (not modelled by llmarch)."
        return ""


def _heads(
    r: _Reader, d_model: int, *, kv_default: int | None = None, head_dim_default: int | None = None
) -> dict[str, Any]:
    """n_heads, n_kv_heads and d_head of a Llama-style config (num_attention_heads, num_key_value_heads, head_dim).

    `kv_default`: the config class's default for num_key_value_heads (None: as many as query heads).
    """
    n_heads = r.int("num_attention_heads")
    if head_dim_default is None:
        if d_model % n_heads and r.value("head_dim", default=None) is None:
            r.fail("head_dim", f"is required: hidden_size {d_model} is not a multiple of num_attention_heads {n_heads}")
        head_dim_default = d_model // n_heads
    return {
        "n_heads": n_heads,
        "n_kv_heads": r.int("num_key_value_heads", default=n_heads if kv_default is None else kv_default),
        "d_head": r.int("head_dim", default=head_dim_default),
    }


def _decoder(r: _Reader, **fields: Any) -> dict[str, Any]:
    """The fields shared by decoder-only models, with `fields` on top."""
    base: dict[str, Any] = {"architecture": "decoder", "norm_position": "pre", "final_norm": True}
    base.update(fields)
    notes = r.notes()
    if notes:
        base["notes"] = notes
    return base


def _window_from_layer_types(r: _Reader, layer_types: Any, window: int | None) -> dict[str, Any]:
    """sliding_window/global_every from a per-layer list of "sliding_attention"/"full_attention"."""
    if not isinstance(layer_types, list) or not all(t in ("sliding_attention", "full_attention") for t in layer_types):
        r.fail("layer_types", "expected a list of 'sliding_attention' / 'full_attention'")
    local = [t == "sliding_attention" for t in layer_types]
    if not any(local) or window is None:
        return {}
    if all(local):
        return {"sliding_window": window}
    period = local.index(False) + 1  # first global layer, 1-based
    if all(is_local == ((i + 1) % period != 0) for i, is_local in enumerate(local)):
        return {"sliding_window": window, "global_every": period}
    r.unsupported("layer_types", "this pattern of sliding and full attention layers (only every-Nth-global)")


# -- Llama family -------------------------------------------------------------------------------------------------
def _llama_like(
    r: _Reader,
    *,
    qkv_bias: bool,
    out_bias: bool,
    mlp_bias: bool,
    tie: bool,
    d_ff: int,
    max_seq_len: int,
    theta: float = 10000.0,
    kv_default: int | None = None,
    head_dim_default: int | None = None,
    act: str = "silu",
) -> dict[str, Any]:
    d = r.int("hidden_size")
    return _decoder(
        r,
        n_layers=r.int("num_hidden_layers"),
        d_model=d,
        **_heads(r, d, kv_default=kv_default, head_dim_default=head_dim_default),
        d_ff=r.int("intermediate_size", default=d_ff),
        vocab_size=r.int("vocab_size"),
        max_seq_len=r.int("max_position_embeddings", default=max_seq_len),
        **r.rope(default_theta=theta),
        norm="rmsnorm",
        mlp=r.mlp("hidden_act", gated=True, default=act),
        tie_embeddings=r.bool("tie_word_embeddings", default=tie),
        qkv_bias=qkv_bias,
        attn_out_bias=out_bias,
        mlp_bias=mlp_bias,
    )


def _llama(r: _Reader) -> dict[str, Any]:
    # LlamaAttention: q/k/v/o all take `attention_bias`; LlamaMLP's three matrices take `mlp_bias`.
    bias = r.bool("attention_bias", default=False)
    return _llama_like(
        r,
        qkv_bias=bias,
        out_bias=bias,
        mlp_bias=r.bool("mlp_bias", default=False),
        tie=False,
        d_ff=11008,
        max_seq_len=2048,
    )


def _mistral(r: _Reader) -> dict[str, Any]:
    raw = _llama_like(
        r, qkv_bias=False, out_bias=False, mlp_bias=False, tie=False, d_ff=14336, max_seq_len=4096 * 32, kv_default=8
    )
    # MistralConfig's sliding_window defaults to 4096 when the key is absent; null (v0.2 and later) means none.
    window = r.int("sliding_window", default=4096, null_is_default=False)
    if window is not None:
        raw["sliding_window"] = window
    return raw


def _mixtral(r: _Reader) -> dict[str, Any]:
    raw = _llama_like(
        r,
        qkv_bias=False,
        out_bias=False,
        mlp_bias=False,
        tie=False,
        d_ff=14336,
        max_seq_len=4096 * 32,
        theta=1e6,
        kv_default=8,
    )
    # Every layer is MoE: a bias-free router (n_experts x d) and n_experts SwiGLU experts of intermediate_size.
    raw.update(
        n_experts=r.int("num_local_experts", "num_experts", default=8),
        n_experts_per_token=r.int("num_experts_per_tok", default=2),
        d_ff_expert=raw["d_ff"],
    )
    window = r.int("sliding_window", default=None)
    if window is not None:
        raw["sliding_window"] = window
    return raw


def _qwen2(r: _Reader) -> dict[str, Any]:
    # Qwen2Attention: q/k/v with bias, o_proj without.
    raw = _llama_like(
        r, qkv_bias=True, out_bias=False, mlp_bias=False, tie=False, d_ff=22016, max_seq_len=32768, kv_default=32
    )
    if r.bool("use_sliding_window", default=False):
        window = r.int("sliding_window", default=4096, null_is_default=False)
        n_layers = raw["n_layers"]
        if "layer_types" in r.data and r.data["layer_types"] is not None:
            raw.update(_window_from_layer_types(r, r.data["layer_types"], window))
        elif window is not None:
            # Layers i >= max_window_layers slide (Qwen2Config.__post_init__).
            first_local = r.int("max_window_layers", default=28, minimum=0)
            if first_local == 0:
                raw["sliding_window"] = window
            elif first_local < n_layers:
                r.unsupported("max_window_layers", "sliding attention in only the last layers")
    return raw


def _gemma(r: _Reader) -> dict[str, Any]:
    # GemmaConfig: head_dim 256 and 16 KV heads unless given, tied head, GeGLU (tanh GELU).
    bias = r.bool("attention_bias", default=False)
    return _llama_like(
        r,
        qkv_bias=bias,
        out_bias=bias,
        mlp_bias=False,
        tie=True,
        d_ff=24576,
        max_seq_len=8192,
        kv_default=16,
        head_dim_default=256,
        act="gelu_pytorch_tanh",
    )


def _phi3(r: _Reader) -> dict[str, Any]:
    # Phi3: fused qkv_proj and gate_up_proj without biases: the same counts as separate Llama matrices.
    raw = _llama_like(r, qkv_bias=False, out_bias=False, mlp_bias=False, tie=False, d_ff=8192, max_seq_len=4096)
    window = r.int("sliding_window", default=None)
    if window is not None:
        raw["sliding_window"] = window
    return raw


def _deepseek(r: _Reader, *, v3: bool) -> dict[str, Any]:
    """DeepSeek-V2/V3: multi-head latent attention and DeepSeekMoE (arXiv:2405.04434, arXiv:2412.19437)."""
    d = r.int("hidden_size")
    n_layers = r.int("num_hidden_layers")
    rope_dim = r.int("qk_rope_head_dim", default=64)
    q_rank = r.int("q_lora_rank", default=1536, null_is_default=False)
    attention_bias = r.bool("attention_bias", default=False)
    if attention_bias and q_rank is None:
        # q_proj is bias-free even with attention_bias; llmarch's qkv_bias would add one.
        r.unsupported("attention_bias", "attention_bias with a full-rank query (q_lora_rank null)")
    raw = _decoder(
        r,
        n_layers=n_layers,
        d_model=d,
        n_heads=r.int("num_attention_heads"),
        # MLA expands the latent to every head; num_key_value_heads plays no part in the weights.
        n_kv_heads=r.int("num_attention_heads"),
        d_head=r.int("qk_nope_head_dim", default=128) + rope_dim,
        d_head_v=r.int("v_head_dim", default=128),
        d_ff=r.int("intermediate_size", default=18432 if v3 else 11008),
        vocab_size=r.int("vocab_size"),
        max_seq_len=r.int("max_position_embeddings", default=4096 if v3 else 2048),
        **r.rope(),
        norm="rmsnorm",
        mlp=r.mlp("hidden_act", gated=True, default="silu"),
        tie_embeddings=r.bool("tie_word_embeddings", default=False),
        qkv_bias=attention_bias,
        attn_out_bias=attention_bias,
        mla_q_rank=q_rank,
        mla_kv_rank=r.int("kv_lora_rank", default=512),
        mla_rope_dim=rope_dim,
    )
    n_experts = r.int("n_routed_experts", default=256 if v3 else 64, null_is_default=False)
    first_dense = r.int("first_k_dense_replace", default=3 if v3 else 0, minimum=0)
    if n_experts is None or first_dense >= n_layers:
        return raw  # every layer keeps a dense MLP (DeepSeek's code reads null n_routed_experts as dense)
    if r.int("moe_layer_freq", default=1) != 1:
        r.unsupported("moe_layer_freq", "an MoE layer only every N layers (moe_layer_freq != 1)")
    if r.bool("mlp_bias", default=False):
        # The dense and shared MLPs would carry biases but the routed experts would not.
        r.unsupported("mlp_bias", "mlp_bias with mixture of experts")
    raw.update(
        n_experts=n_experts,
        n_experts_per_token=r.int("num_experts_per_tok", default=8 if v3 else _MISSING),
        # One shared MLP of moe_intermediate_size x n_shared_experts = n_shared_experts experts' weights (null: none).
        n_shared_experts=r.int("n_shared_experts", default=1 if v3 else 2, minimum=0, null_is_default=False) or 0,
        d_ff_expert=r.int("moe_intermediate_size", default=2048 if v3 else 1407),
        n_dense_layers=first_dense,
    )
    return raw


# -- GPT-2 lineage: learned positions, LayerNorm with bias, biases everywhere ------------------------------------------
def _gpt2_like(r: _Reader, *, n_kv_heads: int | None, positions: int, act: str) -> dict[str, Any]:
    if r.bool("add_cross_attention", default=False):
        r.unsupported("add_cross_attention", "cross-attention in a decoder-only model")
    d = r.int("n_embd", "hidden_size")
    n_heads = r.int("n_head", "num_attention_heads")
    return _decoder(
        r,
        n_layers=r.int("n_layer", "num_hidden_layers"),
        d_model=d,
        n_heads=n_heads,
        n_kv_heads=n_heads if n_kv_heads is None else n_kv_heads,
        d_ff=r.int("n_inner", default=4 * d),
        vocab_size=r.int("vocab_size"),
        max_seq_len=r.int("n_positions", "max_position_embeddings", default=positions),
        position="learned",
        norm="layernorm",
        norm_bias=True,
        mlp=r.mlp("activation_function", gated=False, default=act),
        tie_embeddings=r.bool("tie_word_embeddings", default=True),
        qkv_bias=True,
        attn_out_bias=True,
        mlp_bias=True,
    )


def _gpt2(r: _Reader) -> dict[str, Any]:
    return _gpt2_like(r, n_kv_heads=None, positions=1024, act="gelu_new")


def _gpt_bigcode(r: _Reader) -> dict[str, Any]:
    # multi_query (default true): c_attn projects to d + 2 d_head, one key/value head (SantaCoder, StarCoder).
    n_kv = 1 if r.bool("multi_query", default=True) else None
    return _gpt2_like(r, n_kv_heads=n_kv, positions=1024, act="gelu_pytorch_tanh")


def _openai_gpt(r: _Reader) -> dict[str, Any]:
    # GPT-1 (Radford et al. 2018): post-norm blocks (ln_1(x + attn), ln_2(n + mlp)), no final norm, MLP 4 d.
    d = r.int("n_embd", "hidden_size")
    return _decoder(
        r,
        n_layers=r.int("n_layer", "num_hidden_layers"),
        d_model=d,
        n_heads=r.int("n_head", "num_attention_heads"),
        d_ff=4 * d,
        vocab_size=r.int("vocab_size"),
        max_seq_len=r.int("n_positions", "max_position_embeddings", default=512),
        position="learned",
        norm="layernorm",
        norm_bias=True,
        norm_position="post",
        final_norm=False,
        mlp=r.mlp("afn", gated=False, default="gelu"),
        tie_embeddings=r.bool("tie_word_embeddings", default=True),
        qkv_bias=True,
        attn_out_bias=True,
        mlp_bias=True,
    )


def _gptj(r: _Reader) -> dict[str, Any]:
    # GPT-J: one ln_1 feeds parallel attention (no biases) and MLP (biases); the output head has a bias.
    d = r.int("n_embd", "hidden_size")
    n_heads = r.int("n_head", "num_attention_heads")
    d_head = d // n_heads
    rotary_dim = r.int("rotary_dim", default=64, null_is_default=False)
    raw = _decoder(
        r,
        n_layers=r.int("n_layer", "num_hidden_layers"),
        d_model=d,
        n_heads=n_heads,
        d_head=d_head,
        d_ff=r.int("n_inner", default=4 * d),
        vocab_size=r.int("vocab_size"),
        max_seq_len=r.int("n_positions", "max_position_embeddings", default=2048),
        position="rope",
        rope_theta=10000.0,
        norm="layernorm",
        norm_bias=True,
        mlp=r.mlp("activation_function", gated=False, default="gelu_new"),
        tie_embeddings=r.bool("tie_word_embeddings", default=False),
        mlp_bias=True,
        lm_head_bias=True,
        parallel_block=True,
        parallel_block_shared_norm=True,
    )
    if rotary_dim is not None and rotary_dim != d_head:
        raw["rope_fraction"] = rotary_dim / d_head
    return raw


def _gpt_neox(r: _Reader) -> dict[str, Any]:
    # GPT-NeoX / Pythia: parallel residual with two input norms (input_layernorm, post_attention_layernorm).
    d = r.int("hidden_size")
    bias = r.bool("attention_bias", default=True)
    return _decoder(
        r,
        n_layers=r.int("num_hidden_layers"),
        d_model=d,
        n_heads=r.int("num_attention_heads"),  # GPTNeoXAttention: 3 d fused qkv, head width d / n_heads
        d_ff=r.int("intermediate_size", default=24576),
        vocab_size=r.int("vocab_size"),
        max_seq_len=r.int("max_position_embeddings", default=2048),
        **r.rope(
            default_fraction=0.25,
            theta_keys=("rotary_emb_base", "rope_theta"),
            fraction_keys=("rotary_pct", "partial_rotary_factor"),
        ),
        norm="layernorm",
        norm_bias=True,
        mlp=r.mlp("hidden_act", gated=False, default="gelu"),
        tie_embeddings=r.bool("tie_word_embeddings", default=False),
        qkv_bias=bias,
        attn_out_bias=bias,
        mlp_bias=True,
        parallel_block=r.bool("use_parallel_residual", default=True),
    )


def _phi(r: _Reader) -> dict[str, Any]:
    # Phi-1/1.5/2: one LayerNorm feeds parallel attention and MLP; biases everywhere, the head included.
    if r.bool("qk_layernorm", default=False):
        r.unsupported("qk_layernorm", "LayerNorm on queries and keys")
    d = r.int("hidden_size")
    return _decoder(
        r,
        n_layers=r.int("num_hidden_layers"),
        d_model=d,
        **_heads(r, d),
        d_ff=r.int("intermediate_size", default=8192),
        vocab_size=r.int("vocab_size"),
        max_seq_len=r.int("max_position_embeddings", default=2048),
        **r.rope(default_fraction=0.5),
        norm="layernorm",
        norm_bias=True,
        mlp=r.mlp("hidden_act", gated=False, default="gelu_new"),
        tie_embeddings=r.bool("tie_word_embeddings", default=False),
        qkv_bias=True,
        attn_out_bias=True,
        mlp_bias=True,
        lm_head_bias=True,
        parallel_block=True,
        parallel_block_shared_norm=True,
    )


def _falcon(r: _Reader) -> dict[str, Any]:
    """Falcon, including the RefinedWeb ("RefinedWeb" = 40B-style, "RefinedWebModel" = 7B-style) remote-code keys."""
    d = r.int("hidden_size", "n_embed")
    n_heads = r.int("num_attention_heads", "n_head")
    # Old "RefinedWeb" files (Falcon-40B) predate the flag: that model type *is* the new decoder architecture.
    new_arch = r.bool("new_decoder_architecture", default=r.model_type == "RefinedWeb")
    # FalconConfig defaults multi_query and parallel_attn to true; the 7B-era remote code's RWConfig
    # ("RefinedWebModel") defaulted both to false.
    rw_7b_era = r.model_type == "RefinedWebModel"
    parallel = r.bool("parallel_attn", default=not rw_7b_era)
    if new_arch:
        if not parallel:
            r.unsupported("parallel_attn", "new_decoder_architecture with parallel_attn false")
        n_kv = r.int("num_kv_heads", "n_head_kv", default=n_heads)
    elif r.bool("multi_query", default=not rw_7b_era):
        n_kv = 1
    else:
        n_kv = n_heads  # query_key_value projects to 3 d whatever num_kv_heads says
    # FalconDecoderLayer: sequential -> input + post-attention norms; parallel -> ln_attn + ln_mlp when
    # num_ln_in_parallel_attn is 2 (the new architecture's default), else one shared input_layernorm.
    n_ln = r.int("num_ln_in_parallel_attn", default=2 if new_arch else 1)
    bias = r.bool("bias", default=False)
    position = {"position": "alibi"} if r.bool("alibi", default=False) else r.rope()
    return _decoder(
        r,
        n_layers=r.int("num_hidden_layers", "n_layer"),
        d_model=d,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        d_head=d // n_heads,
        d_ff=r.int("ffn_hidden_size", default=4 * d),
        vocab_size=r.int("vocab_size"),
        max_seq_len=r.int("max_position_embeddings", default=2048),
        **position,
        norm="layernorm",
        norm_bias=True,
        mlp=r.mlp("activation", gated=False, default="gelu"),
        tie_embeddings=r.bool("tie_word_embeddings", default=True),
        qkv_bias=bias,
        attn_out_bias=bias,
        mlp_bias=bias,
        parallel_block=parallel,
        parallel_block_shared_norm=parallel and n_ln == 1,
    )


def _bloom(r: _Reader) -> dict[str, Any]:
    # BLOOM (BigScience 2022, arXiv:2211.05100): ALiBi, a LayerNorm right after the embedding, MLP 4 d, biases.
    d = r.int("hidden_size", "n_embed")
    return _decoder(
        r,
        n_layers=r.int("n_layer", "num_hidden_layers"),
        d_model=d,
        n_heads=r.int("n_head", "num_attention_heads"),
        d_ff=4 * d,
        vocab_size=r.int("vocab_size"),
        # No position table, so config.json states no length; BLOOM was trained on 2048-token sequences
        # (arXiv:2211.05100, section 3.5).
        max_seq_len=r.int("seq_length", "max_position_embeddings", default=2048),
        position="alibi",
        norm="layernorm",
        norm_bias=True,
        embedding_norm=True,
        mlp="gelu",
        tie_embeddings=r.bool("tie_word_embeddings", default=True),
        qkv_bias=True,
        attn_out_bias=True,
        mlp_bias=True,
    )


def _mpt(r: _Reader) -> dict[str, Any]:
    """MPT (MosaicML 2023): ALiBi, LayerNorm, plain GELU MLP of expansion_ratio x d_model, no biases by default.

    transformers' MptForCausalLM implements only the released configuration (multi-head ALiBi attention, no
    biases, expansion ratio 4); llmarch follows MosaicML's meaning of `expansion_ratio` and `no_bias` and
    refuses the attention variants it cannot check.
    """
    attn = r.dict("attn_config")
    attn_reader = _Reader(attn, origin=r.origin, model_type=r.model_type)
    attn_type = attn_reader.str("attn_type", default="multihead_attention")
    if attn_type != "multihead_attention":
        r.unsupported("attn_config.attn_type", f"attn_type {attn_type!r} (only multihead_attention)")
    if not attn_reader.bool("alibi", default=True):
        r.unsupported("attn_config.alibi", "MPT without ALiBi")
    for key in ("qk_ln", "qk_gn", "rope"):
        if attn.get(key):
            r.unsupported(f"attn_config.{key}", f"attn_config {key}")
    d = r.int("d_model", "hidden_size")
    bias = not r.bool("no_bias", default=True)
    return _decoder(
        r,
        n_layers=r.int("n_layers", "num_hidden_layers"),
        d_model=d,
        n_heads=r.int("n_heads", "num_attention_heads"),
        d_ff=r.int("expansion_ratio", default=4) * d,
        vocab_size=r.int("vocab_size"),
        max_seq_len=r.int("max_seq_len", default=2048),
        position="alibi",  # with ALiBi, MPT drops the learned table whatever learned_pos_emb says
        norm="layernorm",
        norm_bias=bias,
        mlp="gelu",
        tie_embeddings=r.bool("tie_word_embeddings", default=True),
        qkv_bias=bias,
        attn_out_bias=bias,
        mlp_bias=bias,
    )


def _opt(r: _Reader) -> dict[str, Any]:
    # OPT (Zhang et al. 2022, arXiv:2205.01068): learned positions with 2 extra rows, LayerNorm, ReLU MLP.
    d = r.int("hidden_size")
    proj = r.int("word_embed_proj_dim", default=d)
    if proj != d:
        r.unsupported("word_embed_proj_dim", f"word_embed_proj_dim {proj} != hidden_size {d} (project_in/out)")
    if not r.bool("layer_norm_elementwise_affine", default=True):
        r.unsupported("layer_norm_elementwise_affine", "LayerNorm without learnable parameters")
    pre = r.bool("do_layer_norm_before", default=True)
    bias = r.bool("enable_bias", default=True)
    return _decoder(
        r,
        n_layers=r.int("num_hidden_layers"),
        d_model=d,
        n_heads=r.int("num_attention_heads"),
        d_ff=r.int("ffn_dim", default=3072),
        vocab_size=r.int("vocab_size"),
        max_seq_len=r.int("max_position_embeddings", default=2048),
        position="learned",
        position_offset=2,  # OPTLearnedPositionalEmbedding keeps 2 rows for its padding offset
        norm="layernorm",
        norm_bias=True,
        norm_position="pre" if pre else "post",
        final_norm=pre and not r.bool("_remove_final_layer_norm", default=False),
        mlp=r.mlp("activation_function", gated=False, default="relu"),
        tie_embeddings=r.bool("tie_word_embeddings", default=True),
        qkv_bias=bias,
        attn_out_bias=bias,
        mlp_bias=bias,
    )


def _t5(r: _Reader) -> dict[str, Any]:
    # T5 (Raffel et al. 2020, arXiv:1910.10683): RMS-style LayerNorm without bias, no biases, relative buckets.
    proj = r.str("feed_forward_proj", default="relu")
    gated, _, act = proj.rpartition("-")
    if gated not in ("", "gated"):
        r.fail("feed_forward_proj", f"expected 'ACT' or 'gated-ACT', got {proj!r}")
    table = _GATED_MLP if gated else _PLAIN_MLP
    if act not in table:
        r.fail("feed_forward_proj", f"activation {act!r} is not supported; known: {', '.join(sorted(table))}")
    n_encoder = r.int("num_layers", "num_hidden_layers")
    notes = r.notes()
    raw: dict[str, Any] = {
        "architecture": "encoder-decoder",
        "n_encoder_layers": n_encoder,
        "n_layers": r.int("num_decoder_layers", default=n_encoder),
        "d_model": r.int("d_model", "hidden_size"),
        "n_heads": r.int("num_heads", "num_attention_heads"),
        "d_head": r.int("d_kv", "head_dim", default=64),
        "d_ff": r.int("d_ff", default=2048),
        "vocab_size": r.int("vocab_size"),
        # Relative positions need no table; n_positions (512 in the released files) is the training length.
        "max_seq_len": r.int("n_positions", default=512),
        "position": "relative",
        "relative_attention_buckets": r.int("relative_attention_num_buckets", default=32),
        "relative_attention_max_distance": r.int("relative_attention_max_distance", default=128),
        "norm": "rmsnorm",
        "norm_position": "pre",
        "final_norm": True,
        "mlp": table[act],
        # See the module docstring: false means a separate lm_head, as in the v1.1 checkpoints.
        "tie_embeddings": r.bool("tie_word_embeddings", default=True),
    }
    if notes:
        raw["notes"] = notes
    return raw


_MAPPERS: dict[str, Callable[[_Reader], dict[str, Any]]] = {
    "bloom": _bloom,
    "deepseek_v2": lambda r: _deepseek(r, v3=False),
    "deepseek_v3": lambda r: _deepseek(r, v3=True),
    "falcon": _falcon,
    "RefinedWeb": _falcon,
    "RefinedWebModel": _falcon,
    "gemma": _gemma,
    "gpt2": _gpt2,
    "gpt_bigcode": _gpt_bigcode,
    "gpt_neox": _gpt_neox,
    "gptj": _gptj,
    "llama": _llama,
    "mistral": _mistral,
    "mixtral": _mixtral,
    "mpt": _mpt,
    "openai-gpt": _openai_gpt,
    "opt": _opt,
    "phi": _phi,
    "phi3": _phi3,
    "qwen2": _qwen2,
    "t5": _t5,
}

#: The `model_type` values `config_from_hf` maps (RefinedWeb* are Falcon's pre-transformers names).
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(_MAPPERS, key=str.lower))

_FAMILY = {"RefinedWeb": "falcon", "RefinedWebModel": "falcon"}


def config_from_hf(data: dict[str, Any], *, origin: str) -> dict[str, Any]:
    """A raw llmarch preset mapping (ArchConfig field names, before validation) from a parsed config.json.

    Sets every shape field and `family` (the model_type); leaves `name` and `source` to the caller. The
    file's `_name_or_path` is not taken as `hf_id`: fine-tunes carry their base model's name there.
    Raises InvalidConfigError naming `origin` and the
    key for an unknown model_type, a missing required key, a malformed value, or a structure llmarch cannot
    describe exactly.
    """
    if not isinstance(data, dict):
        raise InvalidConfigError("a config.json must be a JSON object", origin=origin)
    supported = ", ".join(SUPPORTED_MODEL_TYPES)
    model_type = data.get("model_type")
    if model_type is None:
        raise InvalidConfigError(
            f"is required to map a config.json; supported: {supported}", origin=origin, field="model_type"
        )
    mapper = _MAPPERS.get(model_type) if isinstance(model_type, str) else None
    if mapper is None:
        raise InvalidConfigError(
            f"unsupported model_type {model_type!r}; supported: {supported}", origin=origin, field="model_type"
        )
    if data.get("is_encoder_decoder") and model_type != "t5":
        raise InvalidConfigError(
            f"is_encoder_decoder is not supported for model_type {model_type!r}",
            origin=origin,
            field="is_encoder_decoder",
        )
    raw = mapper(_Reader(data, origin=origin, model_type=model_type))
    raw["family"] = _FAMILY.get(model_type, model_type)
    return raw
