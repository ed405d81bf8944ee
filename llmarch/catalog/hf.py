"""Hugging Face `config.json` -> raw llmarch preset mapping (ArchConfig field names).

`config_from_hf` reads an already parsed config.json and returns the plain mapping that
`ArchConfig.from_dict` validates; `llmarch.catalog.presets` calls it for any `.json` file (or YAML file) that carries
`model_type`. The caller sets `name` and `source`.

What the mapping promises: for every supported `model_type`, `count_params` of the result equals
`sum(p.numel())` of the transformers model built from the same file (tied weights once, buffers excluded),
checked by `tests/test_hf.py` against `scripts/hf_param_count.py`. Where a file asks for a structure that
ArchConfig cannot describe exactly (OPT-350m's embedding projections, Phi's qk_layernorm, DeepSeek's
moe_layer_freq > 1, ...), the mapping raises InvalidConfigError naming the key rather than return a near miss.
State-space, recurrent and hybrid models (NON_TRANSFORMER_MODEL_TYPES: mamba, jamba, rwkv, recurrent_gemma, ...)
are refused in one line: they are not transformers this tool models. A multimodal config (gemma3, llama4) maps to
its language model (`text_config`); the vision encoder is not counted.

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

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple, NoReturn

from llmarch.core.errors import InvalidConfigError

_MISSING = object()

# Activation names used by transformers' ACT2FN, by the llmarch `mlp` they give in a plain (two-matrix) MLP
# and in a gated (three-matrix) one.
_GELUS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu_accurate", "gelu_python", "bloom_gelu")
_PLAIN_MLP = {**{a: "gelu" for a in _GELUS}, "relu": "relu", "silu": "silu", "swish": "silu"}
_GATED_MLP = {**{a: "geglu" for a in _GELUS}, "silu": "swiglu", "swish": "swiglu"}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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

    def _checked(self, keys: tuple[str, ...], default: Any, ok: Callable[[Any], bool], expected: str) -> Any:
        """The value of the first of `keys` present (null counts as absent), else `default`; `ok` must accept it."""
        found = self._find(keys, True)
        if found is None:
            return default
        key, value = found
        if not ok(value):
            self.fail(key, f"expected {expected}, got {value!r}")
        return value

    def bool(self, *keys: str, default: bool) -> bool:
        return self._checked(keys, default, lambda v: isinstance(v, bool), "true or false")

    def float(self, *keys: str, default: float) -> float:
        return float(self._checked(keys, default, _is_number, "a number"))

    def str(self, *keys: str, default: str) -> str:
        return self._checked(keys, default, lambda v: isinstance(v, str), "a string")

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
        params = self._rope_params()
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

    def _rope_params(self) -> dict[str, Any]:
        """The global layers' rope parameters (transformers 5 nests them per layer type for Gemma 3)."""
        params = self.data.get("rope_parameters") or self.data.get("rope_scaling") or {}
        if not isinstance(params, dict):
            self.fail("rope_parameters", f"expected a mapping, got {params!r}")
        if isinstance(params.get("full_attention"), dict):
            return params["full_attention"]
        return params

    def rope_metadata(self) -> dict[str, Any]:
        """RoPE context extension as ArchConfig metadata: rope_scaling type, factor and original length."""
        scaling = self.data.get("rope_scaling") or self._rope_params()
        if not isinstance(scaling, dict):
            return {}
        kind = scaling.get("rope_type") or scaling.get("type")
        if not kind or kind == "default":
            return {}
        out: dict[str, Any] = {"rope_scaling": str(kind)}
        factor = scaling.get("factor")
        if isinstance(factor, (int, float)) and not isinstance(factor, bool) and factor > 0:
            out["rope_scaling_factor"] = float(factor)
        # Phi-3/Phi-4 (LongRoPE) may state the pre-extension length at the top level only (Phi-4-mini).
        original = scaling.get("original_max_position_embeddings", self.data.get("original_max_position_embeddings"))
        if isinstance(original, int) and not isinstance(original, bool) and original > 0:
            out["rope_original_max_seq_len"] = original
        return out

    def notes(self) -> str:
        """Facts of the file that ArchConfig does not model but a reader should see (context extension)."""
        scaling = self.data.get("rope_scaling") or (self.data.get("rope_parameters") or {})
        if isinstance(scaling, dict):
            kind = scaling.get("rope_type") or scaling.get("type")
            if kind and kind != "default":
                factor = scaling.get("factor")
                extra = f", factor {factor}" if factor is not None else ""
                return f"config.json rope scaling: {kind}{extra} (changes no count; rope_scaling fields)."
        return ""


#: The keys (aliases after the current name) of d_model, n_layers and n_heads.
_SizeKeys = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]
_COMMON_NAMES: _SizeKeys = (("hidden_size",), ("num_hidden_layers",), ("num_attention_heads",))
#: The families that name them otherwise: GPT-2's lineage, Falcon (transformers' names first, the RefinedWeb
#: remote code's after), BLOOM, MPT.
_NAMES: dict[str, _SizeKeys] = {
    "gpt2": (("n_embd", "hidden_size"), ("n_layer", "num_hidden_layers"), ("n_head", "num_attention_heads")),
    "falcon": (("hidden_size", "n_embed"), ("num_hidden_layers", "n_layer"), ("num_attention_heads", "n_head")),
    "bloom": (("hidden_size", "n_embed"), ("n_layer", "num_hidden_layers"), ("n_head", "num_attention_heads")),
    "mpt": (("d_model", "hidden_size"), ("n_layers", "num_hidden_layers"), ("n_heads", "num_attention_heads")),
}


class _Family(NamedTuple):
    """Where one family's config.json states the fields every decoder has, and what transformers' configuration
    class assumes for the keys a file omits. Key tuples list aliases after the current name."""

    max_seq_len: int  # when the positions key is absent
    act: str  # activation when its key is absent (an ACT2FN name); with act_key "", the llmarch mlp itself
    gated: bool = False  # a gated (three-matrix) MLP, else a plain two-matrix one
    tie: bool = True  # tie_word_embeddings when absent
    d_ff: int | None = None  # when the d_ff key is absent (or there is none); None: 4 x d_model
    norm: str = "layernorm"  # LayerNorm comes with a bias unless the mapper says otherwise
    kv_heads: bool = False  # reads num_key_value_heads and head_dim (Llama-style attention)
    kv_default: int | None = None  # num_key_value_heads when absent; None: as many as query heads
    head_dim_default: int | None = None  # head_dim when absent; None: d_model / n_heads
    names: _SizeKeys = _COMMON_NAMES  # the keys of d_model, n_layers and n_heads
    ffn: tuple[str, ...] = ("intermediate_size",)  # (): d_ff is not configurable
    positions: tuple[str, ...] = ("max_position_embeddings",)
    act_key: str = "hidden_act"  # "": the activation is fixed
    # d_model, n_layers, n_heads and vocab_size when absent; most classes have none, so the keys are required.
    sizes: Mapping[str, int] = MappingProxyType({})

    def size(self, name: str) -> Any:
        return self.sizes.get(name, _MISSING)


def _heads(r: _Reader, d_model: int, fam: _Family) -> dict[str, Any]:
    """n_heads, n_kv_heads and d_head of a Llama-style config (num_attention_heads, num_key_value_heads, head_dim)."""
    n_heads = r.int(*fam.names[2], default=fam.size("n_heads"))
    head_dim_default = fam.head_dim_default
    if head_dim_default is None:
        if d_model % n_heads and r.value("head_dim", default=None) is None:
            r.fail("head_dim", f"is required: hidden_size {d_model} is not a multiple of num_attention_heads {n_heads}")
        head_dim_default = d_model // n_heads
    return {
        "n_heads": n_heads,
        "n_kv_heads": r.int("num_key_value_heads", default=n_heads if fam.kv_default is None else fam.kv_default),
        "d_head": r.int("head_dim", default=head_dim_default),
    }


def _decoder(r: _Reader, fam: _Family, **fields: Any) -> dict[str, Any]:
    """A decoder-only mapping: the fields every family states, read where `fam` says, with `fields` on top."""
    width, layers, heads = fam.names
    d = r.int(*width, default=fam.size("d_model"))
    raw: dict[str, Any] = {"architecture": "decoder", "n_layers": r.int(*layers, default=fam.size("n_layers"))}
    raw["d_model"] = d
    raw.update(_heads(r, d, fam) if fam.kv_heads else {"n_heads": r.int(*heads, default=fam.size("n_heads"))})
    d_ff = 4 * d if fam.d_ff is None else fam.d_ff
    raw.update(
        d_ff=r.int(*fam.ffn, default=d_ff) if fam.ffn else d_ff,
        vocab_size=r.int("vocab_size", default=fam.size("vocab_size")),
        max_seq_len=r.int(*fam.positions, default=fam.max_seq_len),
        norm=fam.norm,
        norm_position="pre",
        final_norm=True,
        mlp=r.mlp(fam.act_key, gated=fam.gated, default=fam.act) if fam.act_key else fam.act,
        tie_embeddings=r.bool("tie_word_embeddings", default=fam.tie),
    )
    if fam.norm == "layernorm":
        raw["norm_bias"] = True
    raw.update(fields)
    if raw.get("position") == "rope":
        raw.update(r.rope_metadata())
    notes = r.notes()
    if notes:
        raw["notes"] = notes
    return raw


def _biases(bias: bool) -> dict[str, bool]:
    """q/k/v, attention-output and MLP biases, all present or all absent."""
    return {"qkv_bias": bias, "attn_out_bias": bias, "mlp_bias": bias}


#: One input norm feeding attention and MLP side by side (GPT-J, Phi, Cohere, StableLM 2 12B).
_PARALLEL_SHARED_NORM = {"parallel_block": True, "parallel_block_shared_norm": True}


def _sliding_window(r: _Reader, raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` with `sliding_window` from config.json's, when it gives one (Mistral-style: every layer slides)."""
    window = r.int("sliding_window", default=None)
    if window is not None:
        raw["sliding_window"] = window
    return raw


_LAYER_TYPES = ("sliding_attention", "full_attention", "chunked_attention")


def _window_from_layer_types(
    r: _Reader, layer_types: Any, window: int | None, *, key: str = "layer_types", field: str = "sliding_window"
) -> dict[str, Any]:
    """sliding_window (or attention_chunk) and global_every from a per-layer list of attention types."""
    if not isinstance(layer_types, list) or not all(t in _LAYER_TYPES for t in layer_types):
        r.fail(key, "expected a list of 'sliding_attention' / 'chunked_attention' / 'full_attention'")
    local = [t != "full_attention" for t in layer_types]
    if not any(local) or window is None:
        return {}
    if all(local):
        return {field: window}
    return {field: window, "global_every": _global_period(r, local, key)}


def _global_period(r: _Reader, local: list[bool], key: str) -> int:
    """N such that exactly every Nth layer (1-based) is global in the per-layer `local` flags, else refuse."""
    period = local.index(False) + 1  # first global layer, 1-based
    if all(is_local == ((i + 1) % period != 0) for i, is_local in enumerate(local)):
        return period
    r.unsupported(key, "this pattern of local and full attention layers (only every-Nth-global)")


def _layer_pattern(r: _Reader, n_layers: int, window: int | None, *, default_period: int | None) -> dict[str, Any]:
    """sliding_window/global_every from layer_types, or from a period key (sliding_window_pattern), or the
    config class's default period (None: every layer slides)."""
    if window is None:
        return {}
    layer_types = r.data.get("layer_types")
    if layer_types is not None:
        if isinstance(layer_types, list) and len(layer_types) != n_layers:
            r.fail("layer_types", f"has {len(layer_types)} entries for {n_layers} layers")
        return _window_from_layer_types(r, layer_types, window)
    period = r.int("sliding_window_pattern", "_sliding_window_pattern", default=default_period, minimum=1)
    if period is None:
        return {"sliding_window": window}
    if period == 1:
        return {}  # every layer global
    return {"sliding_window": window, "global_every": period}


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
    fam = _Family(max_seq_len=max_seq_len, act=act, gated=True, tie=tie, d_ff=d_ff, norm="rmsnorm", kv_heads=True,
                  kv_default=kv_default, head_dim_default=head_dim_default)  # fmt: skip
    return _decoder(r, fam, **r.rope(default_theta=theta), qkv_bias=qkv_bias, attn_out_bias=out_bias, mlp_bias=mlp_bias)


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
    return _sliding_window(r, raw)


def _qwen2(r: _Reader) -> dict[str, Any]:
    # Qwen2Attention: q/k/v with bias, o_proj without.
    raw = _llama_like(
        r, qkv_bias=True, out_bias=False, mlp_bias=False, tie=False, d_ff=22016, max_seq_len=32768, kv_default=32
    )
    _qwen_window(r, raw)
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
    return _sliding_window(r, raw)


def _deepseek(r: _Reader, *, v3: bool) -> dict[str, Any]:
    """DeepSeek-V2/V3: multi-head latent attention and DeepSeekMoE (arXiv:2405.04434, arXiv:2412.19437)."""
    rope_dim = r.int("qk_rope_head_dim", default=64)
    q_rank = r.int("q_lora_rank", default=1536, null_is_default=False)
    attention_bias = r.bool("attention_bias", default=False)
    if attention_bias and q_rank is None:
        # q_proj is bias-free even with attention_bias; llmarch's qkv_bias would add one.
        r.unsupported("attention_bias", "attention_bias with a full-rank query (q_lora_rank null)")
    fam = _Family(max_seq_len=4096 if v3 else 2048, act="silu", gated=True, tie=False, d_ff=18432 if v3 else 11008,
                  norm="rmsnorm")  # fmt: skip
    raw = _decoder(r, fam, **r.rope(), qkv_bias=attention_bias, attn_out_bias=attention_bias)
    n_layers = raw["n_layers"]
    raw.update(
        # MLA expands the latent to every head; num_key_value_heads plays no part in the weights.
        n_kv_heads=raw["n_heads"],
        d_head=r.int("qk_nope_head_dim", default=128) + rope_dim,
        d_head_v=r.int("v_head_dim", default=128),
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
_GPT2 = _Family(
    max_seq_len=1024,
    act="gelu_new",
    names=_NAMES["gpt2"],
    ffn=("n_inner",),
    positions=("n_positions", "max_position_embeddings"),
    act_key="activation_function",
)
_FALCON = _Family(max_seq_len=2048, act="gelu", names=_NAMES["falcon"], ffn=("ffn_hidden_size",), act_key="activation")
# No position table, so BLOOM's config.json states no length; it was trained on 2048-token sequences
# (arXiv:2211.05100, section 3.5). Its MLP is 4 d wide with a fixed GELU.
_BLOOM = _Family(
    max_seq_len=2048,
    act="gelu",
    names=_NAMES["bloom"],
    ffn=(),
    positions=("seq_length", "max_position_embeddings"),
    act_key="",
)
# MPT's MLP is expansion_ratio x d_model wide (set by _mpt) with a fixed GELU.
_MPT = _Family(max_seq_len=2048, act="gelu", names=_NAMES["mpt"], ffn=(), positions=("max_seq_len",), act_key="")


def _gpt2_like(r: _Reader, fam: _Family, *, n_kv_heads: int | None) -> dict[str, Any]:
    if r.bool("add_cross_attention", default=False):
        r.unsupported("add_cross_attention", "cross-attention in a decoder-only model")
    raw = _decoder(r, fam, position="learned", **_biases(True))
    raw["n_kv_heads"] = raw["n_heads"] if n_kv_heads is None else n_kv_heads
    return raw


def _gpt2(r: _Reader) -> dict[str, Any]:
    return _gpt2_like(r, _GPT2, n_kv_heads=None)


def _gpt_bigcode(r: _Reader) -> dict[str, Any]:
    # multi_query (default true): c_attn projects to d + 2 d_head, one key/value head (SantaCoder, StarCoder).
    n_kv = 1 if r.bool("multi_query", default=True) else None
    return _gpt2_like(r, _GPT2._replace(act="gelu_pytorch_tanh"), n_kv_heads=n_kv)


def _openai_gpt(r: _Reader) -> dict[str, Any]:
    # GPT-1 (Radford et al. 2018): post-norm blocks (ln_1(x + attn), ln_2(n + mlp)), no final norm, MLP 4 d.
    fam = _GPT2._replace(max_seq_len=512, act="gelu", ffn=(), act_key="afn")
    return _decoder(r, fam, position="learned", norm_position="post", final_norm=False, **_biases(True))


def _gptj(r: _Reader) -> dict[str, Any]:
    # GPT-J: one ln_1 feeds parallel attention (no biases) and MLP (biases); the output head has a bias.
    rotary_dim = r.int("rotary_dim", default=64, null_is_default=False)
    fam = _GPT2._replace(max_seq_len=2048, tie=False)
    parallel = _PARALLEL_SHARED_NORM
    raw = _decoder(r, fam, position="rope", rope_theta=10000.0, mlp_bias=True, lm_head_bias=True, **parallel)
    d_head = raw["d_head"] = raw["d_model"] // raw["n_heads"]
    if rotary_dim is not None and rotary_dim != d_head:
        raw["rope_fraction"] = rotary_dim / d_head
    return raw


def _gpt_neox(r: _Reader) -> dict[str, Any]:
    # GPT-NeoX / Pythia: parallel residual with two input norms (input_layernorm, post_attention_layernorm);
    # GPTNeoXAttention's fused qkv is 3 d wide, head width d / n_heads.
    bias = r.bool("attention_bias", default=True)
    rope = r.rope(default_fraction=0.25, theta_keys=("rotary_emb_base", "rope_theta"),
                  fraction_keys=("rotary_pct", "partial_rotary_factor"))  # fmt: skip
    parallel = r.bool("use_parallel_residual", default=True)
    fam = _Family(max_seq_len=2048, act="gelu", tie=False, d_ff=24576)
    return _decoder(r, fam, **rope, qkv_bias=bias, attn_out_bias=bias, mlp_bias=True, parallel_block=parallel)


def _phi(r: _Reader) -> dict[str, Any]:
    # Phi-1/1.5/2: one LayerNorm feeds parallel attention and MLP; biases everywhere, the head included.
    if r.bool("qk_layernorm", default=False):
        r.unsupported("qk_layernorm", "LayerNorm on queries and keys")
    fam = _Family(max_seq_len=2048, act="gelu_new", tie=False, d_ff=8192, kv_heads=True)
    return _decoder(r, fam, **r.rope(default_fraction=0.5), **_biases(True), lm_head_bias=True, **_PARALLEL_SHARED_NORM)


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
    return _decoder(r, _FALCON, n_kv_heads=n_kv, d_head=d // n_heads, **position, **_biases(bias),
                    parallel_block=parallel, parallel_block_shared_norm=parallel and n_ln == 1)  # fmt: skip


def _bloom(r: _Reader) -> dict[str, Any]:
    # BLOOM (BigScience 2022, arXiv:2211.05100): ALiBi, a LayerNorm right after the embedding, MLP 4 d, biases.
    return _decoder(r, _BLOOM, position="alibi", embedding_norm=True, **_biases(True))


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
    bias = not r.bool("no_bias", default=True)
    # With ALiBi, MPT drops the learned table whatever learned_pos_emb says.
    raw = _decoder(r, _MPT, position="alibi", norm_bias=bias, **_biases(bias))
    raw["d_ff"] = r.int("expansion_ratio", default=4) * raw["d_model"]
    return raw


def _opt(r: _Reader) -> dict[str, Any]:
    # OPT (Zhang et al. 2022, arXiv:2205.01068): learned positions with 2 extra rows, LayerNorm, ReLU MLP.
    d = r.int("hidden_size")
    proj = r.int("word_embed_proj_dim", default=d)
    if proj != d:
        r.unsupported("word_embed_proj_dim", f"word_embed_proj_dim {proj} != hidden_size {d} (project_in/out)")
    if not r.bool("layer_norm_elementwise_affine", default=True):
        r.unsupported("layer_norm_elementwise_affine", "LayerNorm without learnable parameters")
    pre = r.bool("do_layer_norm_before", default=True)
    fam = _Family(max_seq_len=2048, act="relu", d_ff=3072, ffn=("ffn_dim",), act_key="activation_function")
    return _decoder(
        r,
        fam,
        position="learned",
        position_offset=2,  # OPTLearnedPositionalEmbedding keeps 2 rows for its padding offset
        norm_position="pre" if pre else "post",
        final_norm=pre and not r.bool("_remove_final_layer_norm", default=False),
        **_biases(r.bool("enable_bias", default=True)),
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


# -- 2024-2026 decoders ---------------------------------------------------------------------------------------------
def _qwen_window(r: _Reader, raw: dict[str, Any]) -> None:
    """Qwen2/3 sliding window: only with use_sliding_window, on layers >= max_window_layers (or layer_types;
    Qwen2Config.__post_init__)."""
    if not r.bool("use_sliding_window", default=False):
        return
    window = r.int("sliding_window", default=4096, null_is_default=False)
    if "layer_types" in r.data and r.data["layer_types"] is not None:
        raw.update(_window_from_layer_types(r, r.data["layer_types"], window))
    elif window is not None:
        first_local = r.int("max_window_layers", default=28, minimum=0)
        if first_local == 0:
            raw["sliding_window"] = window
        elif first_local < raw["n_layers"]:
            r.unsupported("max_window_layers", "sliding attention in only the last layers")


def _sparse_layers(r: _Reader, raw: dict[str, Any]) -> None:
    """Qwen-MoE layer selection: MoE where (i + 1) % decoder_sparse_step == 0 and i not in mlp_only_layers."""
    raw["moe_every"] = r.int("decoder_sparse_step", default=1)
    only_dense = r.value("mlp_only_layers", default=[])
    if not isinstance(only_dense, list) or not all(isinstance(i, int) for i in only_dense):
        r.fail("mlp_only_layers", f"expected a list of layer indices, got {only_dense!r}")
    if sorted(only_dense) != list(range(len(only_dense))):
        r.unsupported("mlp_only_layers", "dense layers other than the first ones")
    raw["n_dense_layers"] = len(only_dense)


def _qwen3(r: _Reader) -> dict[str, Any]:
    # Qwen3 (Qwen Team 2025, arXiv:2505.09388): Qwen2 without QKV bias, with a d_head RMSNorm on queries and keys.
    # Qwen3Config's head_dim is 128 when omitted; Qwen3MoeConfig has none (hidden_size / heads).
    bias = r.bool("attention_bias", default=False)
    raw = _llama_like(r, qkv_bias=bias, out_bias=bias, mlp_bias=False, tie=False, d_ff=22016, max_seq_len=32768,
                      head_dim_default=128 if r.model_type == "qwen3" else None)  # fmt: skip
    raw["qk_norm"] = "head"
    _qwen_window(r, raw)
    return raw


def _qwen3_moe(r: _Reader) -> dict[str, Any]:
    # Qwen3-MoE: routed experts only (no shared expert), bias-free router, top-k of num_experts.
    raw = _qwen3(r)
    raw.update(
        n_experts=r.int("num_experts", "num_local_experts", default=128),
        n_experts_per_token=r.int("num_experts_per_tok", default=8),
        d_ff_expert=r.int("moe_intermediate_size", default=768),
    )
    _sparse_layers(r, raw)
    return raw


def _qwen2_moe(r: _Reader) -> dict[str, Any]:
    # Qwen1.5/2-MoE: Qwen2 attention (q/k/v bias), routed experts plus one shared expert of its own width whose
    # output is scaled by sigmoid(shared_expert_gate(x)), a d -> 1 projection.
    bias = r.bool("qkv_bias", default=True)
    raw = _llama_like(r, qkv_bias=bias, out_bias=False, mlp_bias=False, tie=False, d_ff=5632, max_seq_len=32768)
    shared = r.int("shared_expert_intermediate_size", default=5632)
    raw.update(
        n_experts=r.int("num_experts", "num_local_experts", default=60),
        n_experts_per_token=r.int("num_experts_per_tok", default=4),
        d_ff_expert=r.int("moe_intermediate_size", default=1408),
        n_shared_experts=1,
        d_ff_shared=shared,
        shared_expert_gate=True,
    )
    _sparse_layers(r, raw)
    _qwen_window(r, raw)
    return raw


def _gemma2_like(r: _Reader, *, gemma3: bool) -> dict[str, Any]:
    """Gemma 2 (arXiv:2408.00118) and Gemma 3 (arXiv:2503.19786): RMSNorm before and after attention and MLP,
    GeGLU, tied head, local/global layers (1:1 for Gemma 2, 5:1 for Gemma 3), Gemma 3's d_head q/k norms."""
    fam = _Family(
        max_seq_len=131072 if gemma3 else 8192,
        act="gelu_pytorch_tanh",
        gated=True,
        d_ff=9216,
        norm="rmsnorm",
        kv_heads=True,
        kv_default=4,
        head_dim_default=256,
        act_key="hidden_activation",
        sizes={"d_model": 2304, "n_layers": 26, "n_heads": 8, "vocab_size": 262208 if gemma3 else 256000},
    )
    bias = r.bool("attention_bias", default=False)
    rope = r.rope(default_theta=1e6 if gemma3 else 10000.0)
    raw = _decoder(r, fam, **rope, norm_position="sandwich", qkv_bias=bias, attn_out_bias=bias)
    n_layers, head_dim = raw["n_layers"], raw["d_head"]
    window = r.int("sliding_window", default=4096, null_is_default=False)
    raw.update(_layer_pattern(r, n_layers, window, default_period=6 if gemma3 else 2))
    scalar = r.float("query_pre_attn_scalar", default=float(head_dim))
    if scalar != head_dim:
        raw["attention_multiplier"] = scalar**-0.5
    # Gemma2Config caps attention scores at 50 and logits at 30 unless told otherwise; Gemma 3 caps neither.
    caps = (
        ("attn_logit_softcapping", "attn_logit_softcap", 50.0),
        ("final_logit_softcapping", "final_logit_softcap", 30.0),
    )
    for key, name, gemma2_default in caps:
        cap = r.value(key, default=None if gemma3 else gemma2_default, null_is_default=False)
        if cap is not None:
            raw[name] = r.float(key, default=gemma2_default)
    if gemma3:
        raw["qk_norm"] = "head"
        raw.update(_gemma3_local_theta(r, raw))
    return raw


def _gemma3_local_theta(r: _Reader, raw: dict[str, Any]) -> dict[str, Any]:
    """Gemma 3's local layers rotate with base 10000 (rope_local_base_freq) while global ones use rope_theta."""
    nested = r.data.get("rope_parameters")
    local = nested.get("sliding_attention") if isinstance(nested, dict) else None
    theta = local.get("rope_theta") if isinstance(local, dict) else r.float("rope_local_base_freq", default=10000.0)
    if raw.get("sliding_window") is None or theta is None or float(theta) == raw["rope_theta"]:
        return {}
    return {"rope_local_theta": float(theta)}


def _phimoe(r: _Reader) -> dict[str, Any]:
    # Phi-3.5-MoE: LayerNorm with bias, q/k/v/o biases under attention_bias, a biased head under lm_head_bias,
    # bias-free SwiGLU experts and router.
    bias = r.bool("attention_bias", default=False)
    raw = _llama_like(r, qkv_bias=bias, out_bias=bias, mlp_bias=False, tie=False, d_ff=6400, max_seq_len=131072,
                      theta=1e6, kv_default=8)  # fmt: skip
    raw.update(
        norm="layernorm",
        norm_bias=True,
        lm_head_bias=r.bool("lm_head_bias", default=False),
        n_experts=r.int("num_local_experts", default=16),
        n_experts_per_token=r.int("num_experts_per_tok", default=2),
        d_ff_expert=raw["d_ff"],
    )
    return _sliding_window(r, raw)


def _olmo(r: _Reader) -> dict[str, Any]:
    # OLMo 1 (Groeneveld et al. 2024, arXiv:2402.00838): LayerNorm without scale or shift, no biases.
    raw = _llama_like(r, qkv_bias=False, out_bias=False, mlp_bias=False, tie=False, d_ff=11008, max_seq_len=2048)
    bias = r.bool("attention_bias", default=False)
    raw.update(norm="nonparametric", qkv_bias=bias, attn_out_bias=bias)
    return raw


def _olmo2(r: _Reader) -> dict[str, Any]:
    # OLMo 2 (arXiv:2501.00656): RMSNorm on each sub-layer's output inside the residual, full-width q/k norms.
    bias = r.bool("attention_bias", default=False)
    raw = _llama_like(r, qkv_bias=bias, out_bias=bias, mlp_bias=False, tie=False, d_ff=11008, max_seq_len=2048)
    raw.update(norm_position="branch-post", qk_norm="full")
    return raw


def _olmo3(r: _Reader) -> dict[str, Any]:
    # OLMo 3: OLMo 2's block with three sliding-window layers to one global layer.
    raw = _olmo2(r)
    window = r.int("sliding_window", default=4096, null_is_default=False)
    raw.update(_layer_pattern(r, raw["n_layers"], window, default_period=4))
    return raw


def _stablelm(r: _Reader) -> dict[str, Any]:
    # StableLM 2: LayerNorm with bias, q/k/v bias (use_qkv_bias), partial rotary, optional per-head q/k
    # LayerNorms and a parallel block with one input norm (12B).
    fam = _Family(max_seq_len=4096, act="silu", gated=True, tie=False, d_ff=6912, kv_heads=True)
    raw = _decoder(r, fam, **r.rope(default_fraction=0.25), qkv_bias=r.bool("use_qkv_bias", default=False))
    if r.bool("qk_layernorm", default=False):
        raw["qk_norm"] = "per-head"
    if r.bool("use_parallel_residual", default=False):
        raw.update(_PARALLEL_SHARED_NORM)
    return raw


def _granite_meta(r: _Reader) -> dict[str, Any]:
    """Granite's multipliers (count-free): embeddings, residual branches, attention scores, 1 / logits_scaling."""
    out: dict[str, Any] = {}
    for key, name in (("embedding_multiplier", "embedding_multiplier"), ("residual_multiplier", "residual_multiplier"),
                       ("attention_multiplier", "attention_multiplier")):  # fmt: skip
        value = r.float(key, default=1.0)
        if value != 1.0:
            out[name] = value
    scaling = r.float("logits_scaling", default=1.0)
    if scaling != 1.0:
        out["logit_scale"] = 1.0 / scaling
    return out


def _granite(r: _Reader) -> dict[str, Any]:
    bias = r.bool("attention_bias", default=False)
    raw = _llama_like(r, qkv_bias=bias, out_bias=bias, mlp_bias=r.bool("mlp_bias", default=False), tie=False,
                      d_ff=11008, max_seq_len=2048)  # fmt: skip
    raw.update(_granite_meta(r))
    return raw


def _granitemoe(r: _Reader) -> dict[str, Any]:
    # Granite MoE: every layer MoE with bias-free experts of intermediate_size; granitemoeshared adds one shared
    # expert of shared_intermediate_size (0: none).
    bias = r.bool("attention_bias", default=False)
    raw = _llama_like(r, qkv_bias=bias, out_bias=bias, mlp_bias=False, tie=False, d_ff=11008, max_seq_len=2048)
    raw.update(_granite_meta(r))
    raw.update(
        n_experts=r.int("num_local_experts", default=8),
        n_experts_per_token=r.int("num_experts_per_tok", default=2),
        d_ff_expert=raw["d_ff"],
    )
    shared = r.int("shared_intermediate_size", default=0, minimum=0) if r.model_type == "granitemoeshared" else 0
    if shared:
        raw.update(n_shared_experts=1, d_ff_shared=shared)
    return raw


def _cohere(r: _Reader) -> dict[str, Any]:
    """Command R (cohere) and Command R7B / A (cohere2): one weight-only LayerNorm feeding parallel attention and
    SwiGLU MLP, a tied head with logit_scale; cohere's optional per-head q/k norms; cohere2's 3:1 sliding-window
    layers whose global layers use no positions."""
    bias = r.bool("attention_bias", default=False)
    raw = _llama_like(r, qkv_bias=bias, out_bias=bias, mlp_bias=False, tie=True, d_ff=22528, max_seq_len=8192,
                      kv_default=None)  # fmt: skip
    raw.update(norm="layernorm", norm_bias=False, parallel_block=True, parallel_block_shared_norm=True,
               logit_scale=r.float("logit_scale", default=0.0625))  # fmt: skip
    if r.model_type == "cohere" and r.bool("use_qk_norm", default=False):
        raw["qk_norm"] = "per-head"
    if r.model_type == "cohere2":
        window = r.int("sliding_window", default=4096, null_is_default=False)
        raw.update(_layer_pattern(r, raw["n_layers"], window, default_period=4))
        if raw.get("global_every"):
            raw["nope_global_layers"] = True
    return raw


def _gpt_oss(r: _Reader) -> dict[str, Any]:
    """gpt-oss (OpenAI 2025, arXiv:2508.10925): biased q/k/v/o, a learned sink logit per head, alternating
    128-token sliding and full layers, MoE with biased experts and router; MXFP4 experts as shipped."""
    bias = r.bool("attention_bias", default=True)
    raw = _llama_like(r, qkv_bias=bias, out_bias=bias, mlp_bias=False, tie=False, d_ff=2880, max_seq_len=131072,
                      theta=150000.0, head_dim_default=64)  # fmt: skip
    raw.update(
        attention_sinks=True,
        n_experts=r.int("num_local_experts", "num_experts", default=128),
        n_experts_per_token=r.int("num_experts_per_tok", "experts_per_token", default=4),
        d_ff_expert=raw["d_ff"],
        mlp_bias=True,  # experts' gate_up_proj_bias and down_proj_bias
        router_bias=True,
    )
    window = r.int("sliding_window", default=128, null_is_default=False)
    raw.update(_layer_pattern(r, raw["n_layers"], window, default_period=2))
    quant = r.data.get("quantization_config")
    if isinstance(quant, dict) and quant.get("quant_method") == "mxfp4":
        raw["weight_dtypes"] = {"moe.experts": "mxfp4"}
    return raw


def _llama4_text(r: _Reader) -> dict[str, Any]:
    """Llama 4 text model (Meta 2025): chunked local attention with every 4th layer global and without RoPE,
    weightless L2 q/k norms on the RoPE layers, MoE (top-k routed + one shared expert) every Nth layer and
    dense layers of intermediate_size_mlp between them."""
    bias = r.bool("attention_bias", default=False)
    raw = _llama_like(r, qkv_bias=bias, out_bias=bias, mlp_bias=False, tie=False, d_ff=16384, max_seq_len=131072,
                      theta=500000.0, kv_default=8, head_dim_default=128)  # fmt: skip
    n_layers = raw["n_layers"]
    raw["d_ff"] = r.int("intermediate_size_mlp", default=16384)
    if r.bool("use_qk_norm", default=True):
        raw["qk_norm"] = "l2"
    chunk = r.int("attention_chunk_size", default=8192, null_is_default=False)
    nope = r.value("no_rope_layers", default=None)
    if isinstance(nope, list) and nope:
        local = [bool(x) for x in nope]  # 1 = RoPE and chunked, 0 = NoPE and global
        if len(local) != n_layers:
            r.fail("no_rope_layers", f"has {len(local)} entries for {n_layers} layers")
        period = _global_period(r, local, "no_rope_layers") if not all(local) else None
    else:
        period = r.int("no_rope_layer_interval", default=4)
    if chunk is not None:
        raw["attention_chunk"] = chunk
        if period is not None:
            raw.update(global_every=period, nope_global_layers=True)
    step = r.int("interleave_moe_layer_step", default=1)
    raw.update(
        n_experts=r.int("num_local_experts", default=16),
        n_experts_per_token=r.int("num_experts_per_tok", default=1),
        d_ff_expert=r.int("intermediate_size", default=8192),
        n_shared_experts=1,
        moe_every=step,
    )
    moe_layers = r.value("moe_layers", default=None)
    if moe_layers is not None and moe_layers != list(range(step - 1, n_layers, step)):
        r.unsupported("moe_layers", "MoE layers other than every interleave_moe_layer_step-th")
    if step == 1:
        raw["d_ff"] = raw["d_ff_expert"]  # no dense layer: intermediate_size_mlp builds nothing (Scout)
    return raw


def _starcoder2(r: _Reader) -> dict[str, Any]:
    # StarCoder2 (Lozhkov et al. 2024, arXiv:2402.19173): GQA, LayerNorm with bias, biases everywhere (use_bias),
    # plain GELU MLP (c_fc, c_proj), RoPE, optional sliding window, tied head.
    fam = _Family(max_seq_len=4096, act="gelu_pytorch_tanh", d_ff=12288, kv_heads=True, kv_default=2)
    raw = _decoder(r, fam, **r.rope(), **_biases(r.bool("use_bias", default=True)))
    return _sliding_window(r, raw)


def _exaone4(r: _Reader) -> dict[str, Any]:
    """EXAONE 4.0 (LG AI Research 2025): OLMo 2's norms on sub-layer outputs with per-head q/k RMSNorms, three
    sliding-window layers to one global layer (sliding_window_pattern 4 or "LLLG"), global layers without RoPE."""
    raw = _llama_like(r, qkv_bias=False, out_bias=False, mlp_bias=False, tie=False, d_ff=16384, max_seq_len=2048)
    raw.update(norm_position="branch-post", qk_norm="head")
    window = r.int("sliding_window", default=4096, null_is_default=False)
    pattern = r.data.get("sliding_window_pattern")
    if window is not None and r.data.get("layer_types") is None and isinstance(pattern, str):
        if not pattern or set(pattern) - {"L", "G"}:
            r.fail("sliding_window_pattern", f"expected a string of L (local) and G (global), got {pattern!r}")
        local = [pattern[i % len(pattern)] == "L" for i in range(raw["n_layers"])]
        raw.update({"sliding_window": window, "global_every": _global_period(r, local, "sliding_window_pattern")}
                   if not all(local) else {"sliding_window": window})  # fmt: skip
    else:
        raw.update(_layer_pattern(r, raw["n_layers"], window, default_period=4))
    if raw.get("global_every"):
        raw["nope_global_layers"] = True
    return raw


def _glm4(r: _Reader) -> dict[str, Any]:
    # GLM-4 (0414): sandwich norms (post_self_attn_layernorm, post_mlp_layernorm), q/k/v biases without an output
    # bias, half the head rotated, a fused gate_up_proj (the same count as separate SwiGLU matrices).
    bias = r.bool("attention_bias", default=True)
    raw = _llama_like(r, qkv_bias=bias, out_bias=False, mlp_bias=False, tie=False, d_ff=13696, max_seq_len=32768)
    raw.update(norm_position="sandwich", **r.rope(default_fraction=0.5))
    return raw


def _olmoe(r: _Reader) -> dict[str, Any]:
    # OLMoE (Muennighoff et al. 2024, arXiv:2409.02060): full-width q/k RMSNorms, every layer MoE with bias-free
    # SwiGLU experts of intermediate_size, no shared expert.
    raw = _llama_like(r, qkv_bias=False, out_bias=False, mlp_bias=False, tie=False, d_ff=2048, max_seq_len=4096)
    raw.update(
        qk_norm="full",
        n_experts=r.int("num_experts", default=64),
        n_experts_per_token=r.int("num_experts_per_tok", default=8),
        d_ff_expert=raw["d_ff"],
    )
    return raw


def _smollm3(r: _Reader) -> dict[str, Any]:
    # SmolLM3: the Llama block with tied embeddings; every 4th layer skips RoPE (no_rope_layers), which changes no
    # count, KV cache or FLOPs and is recorded in notes only.
    raw = _llama_like(r, qkv_bias=False, out_bias=False, mlp_bias=r.bool("mlp_bias", default=False), tie=True,
                      d_ff=11008, max_seq_len=32768, theta=2e6)  # fmt: skip
    nope = r.value("no_rope_layers", default=None)
    if isinstance(nope, list) and not all(nope):
        note = f"Layers without RoPE (NoPE, not modelled): {[i for i, x in enumerate(nope) if not x]}."
        raw["notes"] = f"{raw['notes']} {note}" if raw.get("notes") else note
    return raw


def _multimodal(r: _Reader, text_type: str) -> dict[str, Any]:
    """The language model of a multimodal config (Gemma 3, Llama 4, Mistral 3): its text_config, vision tower left
    out."""
    text = r.dict("text_config")
    if not text and r.model_type in ("llama4", "mistral3"):
        r.fail("text_config", "is required: llmarch counts the language model of a multimodal config")
    text = {"model_type": text_type, **text}
    if text["model_type"] != text_type:
        r.fail("text_config.model_type", f"expected {text_type!r}, got {text['model_type']!r}")
    if "tie_word_embeddings" not in text and "tie_word_embeddings" in r.data:
        text["tie_word_embeddings"] = r.data["tie_word_embeddings"]
    raw = _MAPPERS[text_type](_Reader(text, origin=r.origin, model_type=text_type))
    note = f"The language model of a {r.model_type} config (text_config); the vision encoder is not counted."
    raw["notes"] = f"{raw['notes']} {note}" if raw.get("notes") else note
    return raw


_MAPPERS: dict[str, Callable[[_Reader], dict[str, Any]]] = {
    "bloom": _bloom,
    "cohere": _cohere,
    "cohere2": _cohere,
    "gemma2": lambda r: _gemma2_like(r, gemma3=False),
    "gemma3": lambda r: _multimodal(r, "gemma3_text"),
    "gemma3_text": lambda r: _gemma2_like(r, gemma3=True),
    "gpt_oss": _gpt_oss,
    "granite": _granite,
    "granitemoe": _granitemoe,
    "granitemoeshared": _granitemoe,
    "llama4": lambda r: _multimodal(r, "llama4_text"),
    "llama4_text": _llama4_text,
    "olmo": _olmo,
    "olmo2": _olmo2,
    "olmo3": _olmo3,
    "phimoe": _phimoe,
    "qwen2_moe": _qwen2_moe,
    "qwen3": _qwen3,
    "qwen3_moe": _qwen3_moe,
    "stablelm": _stablelm,
    "starcoder2": _starcoder2,
    "deepseek_v2": lambda r: _deepseek(r, v3=False),
    "deepseek_v3": lambda r: _deepseek(r, v3=True),
    "exaone4": _exaone4,
    "glm4": _glm4,
    "mistral3": lambda r: _multimodal(r, "mistral"),
    "olmoe": _olmoe,
    "smollm3": _smollm3,
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

#: Model types whose layers are not (all) attention blocks: state-space, recurrent and hybrid models.
NON_TRANSFORMER_MODEL_TYPES: frozenset[str] = frozenset({
    "mamba", "mamba2", "falcon_mamba", "falcon_h1", "jamba", "rwkv", "rwkv5", "rwkv6", "rwkv7", "recurrent_gemma",
    "xlstm", "zamba", "zamba2", "bamba", "nemotron_h", "granitemoehybrid", "lfm2", "lfm2_moe", "qwen3_next", "plamo2",
    "minimax", "hymba", "retnet", "hgrn", "hgrn2", "gla", "mamba_ssm", "striped_hyena", "kimi_linear",
})  # fmt: skip

#: The ArchConfig fields a preset for an unmapped transformer must give (the rest default to "absent").
_NEEDED_FIELDS = ("architecture", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "d_ff", "vocab_size",
                  "max_seq_len", "position", "norm", "norm_position", "final_norm", "mlp",
                  "tie_embeddings")  # fmt: skip


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
    if model_type in NON_TRANSFORMER_MODEL_TYPES:
        raise InvalidConfigError(
            f"{model_type!r} is not a transformer this tool models (state-space, recurrent or hybrid layers)",
            origin=origin,
            field="model_type",
        )
    mapper = _MAPPERS.get(model_type) if isinstance(model_type, str) else None
    if mapper is None:
        raise InvalidConfigError(
            f"unsupported model_type {model_type!r} (supported: {supported}); to describe another transformer, "
            f"write a preset YAML with the fields {', '.join(_NEEDED_FIELDS)} (see 'llmarch show --fields')",
            origin=origin,
            field="model_type",
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
