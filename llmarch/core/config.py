"""ArchConfig: the one frozen description of a transformer architecture, its validation and shape helpers.

Every field is architecture (or the provenance and training facts published with it); nothing here is a
runtime knob such as batch size or dtype. Optional fields default only to "feature absent" (no bias, no
sliding window, no experts). The two conveniences a preset file may omit, `n_kv_heads` (= `n_heads`,
plain multi-head attention) and `d_head` (= `d_model / n_heads`), are filled in by `ArchConfig.from_dict`,
the single place where a mapping becomes a config; the dataclass itself always holds explicit values.
"""

import dataclasses
import functools
import math
import types
import typing
from dataclasses import field
from typing import Any, Literal, get_args, get_origin

from llmarch.core.errors import InvalidConfigError
from llmarch.core.frozen import frozen_dataclass

Architecture = Literal["decoder", "encoder-decoder"]
Position = Literal["learned", "sinusoidal", "rope", "alibi", "relative", "none"]
Norm = Literal["layernorm", "rmsnorm", "nonparametric"]
NormPosition = Literal["pre", "post", "sandwich", "branch-post"]
QkNorm = Literal["head", "per-head", "full", "l2"]
Mlp = Literal["gelu", "relu", "silu", "swiglu", "geglu"]
AttentionKind = Literal["mha", "gqa", "mqa", "mla"]

GATED_MLPS = frozenset({"swiglu", "geglu"})

#: Coarse parameter groups of `calc.params.count_params` (breakdown keys are "<group>.<part>").
PARAM_GROUPS = ("embedding", "attention", "cross_attention", "mlp", "moe", "norm", "lm_head")
#: The parts of the parameter breakdown (keys "<group>.<part>"); a `weight_dtypes` key may name one alone.
PARAM_PARTS = ("token", "position", "q", "k", "v", "o", "q_down", "q_up", "kv_down", "kv_up", "relative_bias",
               "sinks", "dense", "router", "experts", "shared_experts", "shared_gate", "embedding", "blocks",
               "final", "qk", "weight", "bias")  # fmt: skip
#: Storage dtypes a `weight_dtypes` entry may name (MXFP4: 4-bit elements with one 8-bit scale per 32).
WEIGHT_DTYPES = ("fp32", "bf16", "fp16", "fp8", "int8", "int4", "mxfp4")


class DtypeMap(dict[str, str]):
    """A read-only, hashable mapping of parameter group (or breakdown key) -> dtype name (`weight_dtypes`)."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))

    def _readonly(self, *args: Any, **kwargs: Any) -> typing.NoReturn:
        raise TypeError("weight_dtypes is read-only; use ArchConfig.replace")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _readonly


@frozen_dataclass
class TrainingMeta:
    """Training facts as the paper or model card reports them (all optional; None = not published)."""

    tokens: float | None = None  # training tokens
    global_batch_tokens: float | None = None  # tokens per optimizer step
    global_batch_seqs: int | None = None  # sequences per optimizer step
    seq_len: int | None = None  # training context length, where it differs from max_seq_len
    steps: int | None = None
    learning_rate: float | None = None  # peak learning rate
    lr_schedule: str | None = None  # e.g. "cosine to 10%", "inverse_sqrt", "linear"
    warmup_steps: int | None = None
    optimizer: str | None = None  # e.g. "adamw", "adam", "adafactor"
    adam_beta1: float | None = None
    adam_beta2: float | None = None
    adam_eps: float | None = None
    weight_decay: float | None = None
    grad_clip: float | None = None
    dropout: float | None = None
    hardware: str | None = None  # as reported, e.g. "2048 A100-80GB"
    source: str | None = None  # where these facts come from (paper, section, table)


@frozen_dataclass
class ArchConfig:
    """One transformer architecture: decoder-only or encoder-decoder, dense or MoE, MHA/GQA/MQA/MLA."""

    # -- identity and provenance ------------------------------------------------------------------
    name: str
    source: str  # URL of the config.json or paper table the shape numbers come from
    # -- shape --------------------------------------------------------------------------------------
    architecture: Architecture
    n_layers: int  # decoder layers (the only stack of a decoder-only model)
    d_model: int
    n_heads: int  # query heads
    n_kv_heads: int  # key/value heads: n_heads = MHA, 1 = MQA, in between = GQA
    d_head: int  # query/key head width; need not equal d_model / n_heads (Gemma, T5)
    d_ff: int  # MLP hidden width (of each of gate and up for gated MLPs); dense layers under MoE
    vocab_size: int
    max_seq_len: int  # context length the checkpoint supports (rows of a learned position table)
    position: Position
    norm: Norm
    norm_position: NormPosition
    final_norm: bool  # a norm after the last block (per stack)
    mlp: Mlp  # activation; swiglu/geglu are gated (three matrices)
    tie_embeddings: bool  # output head shares the token embedding matrix
    # -- optional structure (defaults = feature absent) ----------------------------------------------
    n_encoder_layers: int = 0  # encoder stack depth, encoder-decoder only
    d_head_v: int | None = None  # value head width where it differs from d_head (MLA)
    qkv_bias: bool = False
    attn_out_bias: bool = False
    mlp_bias: bool = False
    lm_head_bias: bool = False
    norm_bias: bool = False  # LayerNorm with a bias (beta) vector
    embedding_norm: bool = False  # a norm right after the token embedding (BLOOM)
    parallel_block: bool = False  # attention and MLP read the same input and are summed (GPT-J, Falcon)
    parallel_block_shared_norm: bool = False  # the parallel block has one input norm, not two
    rope_fraction: float | None = None  # partial rotary: fraction of d_head rotated (Phi, GPT-NeoX)
    rope_theta: float | None = None
    position_offset: int = 0  # extra rows in a learned position table (OPT keeps 2)
    relative_attention_buckets: int | None = None  # T5 relative position bias buckets
    relative_attention_max_distance: int | None = None
    sliding_window: int | None = None  # local attention window in tokens (Mistral, GPT-3 sparse layers)
    attention_chunk: int | None = None  # chunked local attention: keys of the query's own chunk (Llama 4)
    global_every: int | None = None  # with a window or chunk: every Nth layer (1-based) attends globally
    nope_global_layers: bool = False  # the global layers of a local/global pattern use no positions (Llama 4)
    qk_norm: QkNorm | None = None  # norm on queries and keys (see calc.params.qk_norm_params)
    attention_sinks: bool = False  # one learned sink logit per head in each softmax (gpt-oss)
    # mixture of experts
    n_experts: int | None = None  # routed experts per MoE layer
    n_experts_per_token: int | None = None  # top-k
    n_shared_experts: int = 0  # always-on experts (DeepSeekMoE)
    d_ff_expert: int | None = None  # hidden width of one expert (gated like `mlp`)
    n_dense_layers: int = 0  # first layers that keep a dense MLP (DeepSeek's first_k_dense_replace)
    router_bias: bool = False
    moe_every: int = 1  # after the dense layers, layer i (0-based) is MoE when (i + 1) % moe_every == 0
    d_ff_shared: int | None = None  # hidden width of each shared expert where it differs from d_ff_expert
    shared_expert_gate: bool = False  # a d_model -> 1 sigmoid gate on the shared experts' output (Qwen2-MoE)
    # multi-head latent attention (DeepSeek-V2/V3)
    mla_q_rank: int | None = None  # low-rank query compression; None = full-rank query projection
    mla_kv_rank: int | None = None  # latent KV width; set = MLA
    mla_rope_dim: int | None = None  # decoupled rotary key width (shared across heads)
    # -- metadata that changes no count (shown to users; the reference model applies the softcaps) ----------
    attn_logit_softcap: float | None = None  # cap * tanh(score / cap) on attention scores (Gemma 2)
    final_logit_softcap: float | None = None  # the same on the output logits (Gemma 2)
    rope_scaling: str | None = None  # context extension type as config.json names it: linear, yarn, llama3, ...
    rope_scaling_factor: float | None = None
    rope_original_max_seq_len: int | None = None  # context before the extension
    rope_local_theta: float | None = None  # rotary base of the local layers where it differs (Gemma 3)
    embedding_multiplier: float | None = None  # embeddings scaled by this (Granite)
    residual_multiplier: float | None = None  # each branch output scaled by this before the residual add
    attention_multiplier: float | None = None  # attention score scale replacing 1 / sqrt(d_head)
    logit_scale: float | None = None  # output logits multiplied by this (Cohere; Granite's 1 / logits_scaling)
    weight_dtypes: DtypeMap | None = None  # parameter group or breakdown key -> stored dtype (gpt-oss: MXFP4)
    # -- provenance and published facts --------------------------------------------------------------
    family: str = ""
    year: int | None = None
    description: str = ""
    hf_id: str | None = None  # Hugging Face checkpoint the counts refer to
    reference_params: int | None = None  # the published or checkpoint parameter count
    reference_exact: bool = False  # True: reference_params is a checkpoint's exact sum(p.numel())
    reference_source: str = ""
    notes: str = ""
    training: TrainingMeta = field(default_factory=TrainingMeta)

    # -- derived shapes -------------------------------------------------------------------------------
    @property
    def attention(self) -> AttentionKind:
        """Attention kind: "mla" (latent KV), "mqa" (1 KV head), "mha" (KV heads = heads) or "gqa"."""
        if self.mla_kv_rank is not None:
            return "mla"
        if self.n_kv_heads == self.n_heads:
            return "mha"
        if self.n_kv_heads == 1:
            return "mqa"
        return "gqa"

    @property
    def is_encoder_decoder(self) -> bool:
        return self.architecture == "encoder-decoder"

    @property
    def is_moe(self) -> bool:
        return self.n_experts is not None

    @property
    def gated_mlp(self) -> bool:
        return self.mlp in GATED_MLPS

    @property
    def v_head_dim(self) -> int:
        """Value (and attention output) head width: d_head_v where given, else d_head."""
        return self.d_head_v if self.d_head_v is not None else self.d_head

    def layer_is_moe(self, layer: int) -> bool:
        """Whether decoder layer `layer` (0-based) has a mixture of experts rather than a dense MLP.

        The first n_dense_layers are dense (DeepSeek's first_k_dense_replace); after them every
        moe_every-th layer, counted 1-based, is MoE (Qwen2-MoE's decoder_sparse_step; Llama 4's
        interleave_moe_layer_step: 2 makes layers 1, 3, 5, ... MoE).
        """
        return self.is_moe and layer >= self.n_dense_layers and (layer + 1) % self.moe_every == 0

    @property
    def n_moe_layers(self) -> int:
        """Decoder layers with a mixture of experts: the layers `layer_is_moe` selects, counted in closed form
        (the multiples of moe_every among the 1-based layer numbers n_dense_layers+1 .. n_layers)."""
        if not self.is_moe:
            return 0
        dense = max(0, min(self.n_dense_layers, self.n_layers))
        return self.n_layers // self.moe_every - dense // self.moe_every

    @property
    def expert_d_ff(self) -> int:
        """Hidden width of one routed expert."""
        return self.d_ff_expert if self.d_ff_expert is not None else self.d_ff

    @property
    def shared_expert_d_ff(self) -> int:
        """Hidden width of one shared expert (d_ff_shared where given, else a routed expert's width)."""
        return self.d_ff_shared if self.d_ff_shared is not None else self.expert_d_ff

    @property
    def rotary_dim(self) -> int | None:
        """Number of rotated channels per head under RoPE (None for other position schemes)."""
        if self.position != "rope":
            return None
        if self.mla_rope_dim is not None:
            return self.mla_rope_dim
        return int(self.d_head * (self.rope_fraction if self.rope_fraction is not None else 1.0))

    @property
    def local_span(self) -> int | None:
        """Tokens a local layer keeps: the sliding window or the attention chunk (None: no local layers)."""
        return self.sliding_window if self.sliding_window is not None else self.attention_chunk

    def layer_is_local(self, layer: int) -> bool:
        """Whether decoder layer `layer` (0-based) uses the sliding window or chunk rather than global attention."""
        if self.local_span is None:
            return False
        if self.global_every is None:
            return True
        return (layer + 1) % self.global_every != 0

    def layer_uses_rope(self, layer: int) -> bool:
        """Whether decoder layer `layer` rotates queries and keys (False on NoPE global layers, Llama 4)."""
        return self.position == "rope" and not (self.nope_global_layers and not self.layer_is_local(layer))

    @property
    def n_local_layers(self) -> int:
        """Decoder layers that use the sliding window or chunk (the rest attend globally): the layers
        `layer_is_local` selects, counted in closed form (every global_every-th layer is global)."""
        if self.local_span is None:
            return 0
        if self.global_every is None:
            return self.n_layers
        return self.n_layers - self.n_layers // self.global_every

    @property
    def rope_scaled_context(self) -> int | None:
        """Context the RoPE scaling reaches: original length x factor (None unless both are given)."""
        if self.rope_original_max_seq_len is None or self.rope_scaling_factor is None:
            return None
        return int(self.rope_original_max_seq_len * self.rope_scaling_factor)

    # -- construction -----------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], *, origin: str | None = None) -> "ArchConfig":
        """Build and validate a config from a plain mapping (a preset file's content after `extends`).

        Fills the two documented conveniences (n_kv_heads = n_heads, d_head = d_model / n_heads),
        checks every key and type, and raises InvalidConfigError naming `origin` and the field.
        """
        data = dict(data)
        unknown = [k for k in data if k not in _FIELDS]
        if unknown:
            import difflib

            key = unknown[0]
            close = difflib.get_close_matches(key, list(_FIELDS), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else "; run 'llmarch schema' for the fields"
            raise InvalidConfigError(f"unknown field{hint}", origin=origin, field=key)
        training = data.pop("training", None)
        if training is None:
            training_meta = TrainingMeta()
        elif isinstance(training, TrainingMeta):
            training_meta = training
        elif isinstance(training, dict):
            training_meta = _build(TrainingMeta, training, origin=origin, prefix="training.")
        else:
            raise InvalidConfigError("must be a mapping of training facts", origin=origin, field="training")
        for required in ("n_heads", "d_model"):
            if required not in data:
                raise InvalidConfigError("is required", origin=origin, field=required)
        if data.get("n_kv_heads") is None:
            data["n_kv_heads"] = data["n_heads"]
        if data.get("d_head") is None:
            n_heads, d_model = data["n_heads"], data["d_model"]
            for name in ("d_model", "n_heads"):
                if isinstance(data[name], int) and not isinstance(data[name], bool) and data[name] <= 0:
                    raise InvalidConfigError(f"must be a positive integer, got {data[name]}", origin=origin, field=name)
            if isinstance(n_heads, int) and isinstance(d_model, int) and n_heads > 0 and d_model % n_heads == 0:
                data["d_head"] = d_model // n_heads
            else:
                raise InvalidConfigError(
                    f"is required because d_model ({d_model}) is not a multiple of n_heads ({n_heads})",
                    origin=origin,
                    field="d_head",
                )
        data["training"] = training_meta
        config = _build(cls, data, origin=origin)
        config.validate(origin=origin)
        return config

    def to_dict(self, *, include_defaults: bool = True) -> dict[str, Any]:
        """Plain-data view (the same field names as preset files); optionally only non-default fields."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "training":
                train = {k: v for k, v in dataclasses.asdict(value).items() if include_defaults or v is not None}
                if train or include_defaults:
                    out["training"] = train
                continue
            if not include_defaults and f.default is not dataclasses.MISSING and value == f.default:
                continue
            out[f.name] = dict(value) if isinstance(value, DtypeMap) else value
        return out

    def replace(self, **changes: Any) -> "ArchConfig":
        """A validated copy with `changes` applied (for API users deriving variants)."""
        data = self.to_dict()
        data.update(changes)
        return ArchConfig.from_dict(data, origin=changes.get("name", self.name))

    def validate(self, *, origin: str | None = None) -> None:
        """Check cross-field consistency; raise InvalidConfigError naming the field and the fix."""

        def fail(name: str, message: str) -> typing.NoReturn:
            raise InvalidConfigError(message, origin=origin or self.name, field=name)

        for name in ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "d_ff", "vocab_size", "max_seq_len"):
            if getattr(self, name) <= 0:
                fail(name, f"must be a positive integer, got {getattr(self, name)}")
        if not self.name.strip():
            fail("name", "must not be empty")
        if self.n_kv_heads > self.n_heads or self.n_heads % self.n_kv_heads:
            fail("n_kv_heads", f"must divide n_heads ({self.n_heads}); got {self.n_kv_heads}")
        if self.is_encoder_decoder and self.n_encoder_layers <= 0:
            fail("n_encoder_layers", "must be positive for an encoder-decoder architecture")
        if not self.is_encoder_decoder and self.n_encoder_layers:
            fail("n_encoder_layers", "is only for architecture: encoder-decoder; remove it or change architecture")
        if self.position == "relative" and not self.relative_attention_buckets:
            fail("relative_attention_buckets", "is required with position: relative (T5 uses 32)")
        if self.relative_attention_buckets is not None and self.position != "relative":
            fail("relative_attention_buckets", "only applies to position: relative")
        if self.rope_fraction is not None:
            if self.position != "rope":
                fail("rope_fraction", "only applies to position: rope")
            if not 0 < self.rope_fraction <= 1:
                fail("rope_fraction", f"must be in (0, 1], got {self.rope_fraction}")
            rotated = self.d_head * self.rope_fraction
            if not float(rotated).is_integer() or int(rotated) % 2:
                fail("rope_fraction", f"d_head x rope_fraction = {rotated:g} must be an even integer")
        if self.rope_theta is not None and (self.position != "rope" or self.rope_theta <= 0):
            fail("rope_theta", "must be positive and only applies to position: rope")
        if self.position_offset < 0 or (self.position_offset and self.position != "learned"):
            fail("position_offset", "must be >= 0 and only applies to position: learned")
        if self.parallel_block_shared_norm and not self.parallel_block:
            fail("parallel_block_shared_norm", "requires parallel_block: true")
        if self.parallel_block and self.is_encoder_decoder:
            fail("parallel_block", "is only supported for decoder-only architectures")
        if self.sliding_window is not None and self.sliding_window <= 0:
            fail("sliding_window", f"must be a positive number of tokens, got {self.sliding_window}")
        if self.attention_chunk is not None:
            if self.attention_chunk <= 0:
                fail("attention_chunk", f"must be a positive number of tokens, got {self.attention_chunk}")
            if self.sliding_window is not None:
                fail("attention_chunk", "excludes sliding_window: local layers use one or the other")
        if self.global_every is not None:
            if self.local_span is None:
                fail("global_every", "requires sliding_window or attention_chunk (what the local layers attend to)")
            if self.global_every <= 0:
                fail("global_every", f"must be a positive layer period, got {self.global_every}")
        if self.nope_global_layers and (self.global_every is None or self.position != "rope"):
            fail("nope_global_layers", "requires position: rope and a local/global pattern (global_every)")
        self._validate_block(fail)
        self._validate_metadata(fail)
        if self.d_head_v is not None and self.d_head_v <= 0:
            fail("d_head_v", f"must be positive, got {self.d_head_v}")
        self._validate_moe(fail)
        self._validate_mla(fail)
        _validate_limits_and_text(self, fail)
        _validate_training(self.training, fail)
        if self.reference_params is not None and self.reference_params <= 0:
            fail("reference_params", "must be a positive parameter count")

    def _validate_block(self, fail: typing.Callable[[str, str], typing.NoReturn]) -> None:
        if self.norm_position in ("sandwich", "branch-post"):
            if self.parallel_block:
                fail("norm_position", f"{self.norm_position} norms need a sequential block (parallel_block: false)")
            if self.is_encoder_decoder:
                fail("norm_position", f"{self.norm_position} is only supported for decoder-only architectures")
        if self.norm == "nonparametric" and self.norm_bias:
            fail("norm_bias", "a nonparametric norm has no bias; remove norm_bias")
        if self.qk_norm is not None:
            if self.mla_kv_rank is not None:
                fail("qk_norm", "is not supported with multi-head latent attention")
            if self.is_encoder_decoder:
                fail("qk_norm", "is only supported for decoder-only architectures")
        if self.attention_sinks and self.is_encoder_decoder:
            fail("attention_sinks", "is only supported for decoder-only architectures")

    def _validate_metadata(self, fail: typing.Callable[[str, str], typing.NoReturn]) -> None:
        for name in ("attn_logit_softcap", "final_logit_softcap", "rope_scaling_factor", "rope_local_theta",
                     "embedding_multiplier", "residual_multiplier", "attention_multiplier", "logit_scale"):  # fmt: skip
            value = getattr(self, name)
            if value is not None and not value > 0:
                fail(name, f"must be positive, got {value}")
        rope_only = ("rope_scaling", "rope_scaling_factor", "rope_original_max_seq_len", "rope_local_theta")
        for name in rope_only:
            if getattr(self, name) is not None and self.position != "rope":
                fail(name, "only applies to position: rope")
        if self.rope_original_max_seq_len is not None and self.rope_original_max_seq_len <= 0:
            fail("rope_original_max_seq_len", "must be a positive number of tokens")
        if self.rope_local_theta is not None and self.local_span is None:
            fail("rope_local_theta", "requires local layers (sliding_window or attention_chunk)")
        if self.weight_dtypes is not None:
            for key, dtype in self.weight_dtypes.items():
                group, _, part = key.partition(".")
                if not (group in PARAM_GROUPS and part in ("", *PARAM_PARTS)) and key not in PARAM_PARTS:
                    fail("weight_dtypes", f"key {key!r} is not a parameter group ({', '.join(PARAM_GROUPS)}), "
                         "a breakdown key such as 'moe.experts' or a part such as 'experts'")  # fmt: skip
                if dtype not in WEIGHT_DTYPES:
                    fail("weight_dtypes", f"dtype {dtype!r} of {key!r} is not one of {', '.join(WEIGHT_DTYPES)}")

    def _validate_moe(self, fail: typing.Callable[[str, str], typing.NoReturn]) -> None:
        moe_fields = ("n_experts_per_token", "d_ff_expert", "router_bias", "n_shared_experts", "n_dense_layers",
                      "d_ff_shared", "shared_expert_gate")  # fmt: skip
        if self.n_experts is None:
            for name in moe_fields:
                if getattr(self, name) not in (None, False, 0):
                    fail(name, "requires n_experts (the number of routed experts)")
            if self.moe_every != 1:
                fail("moe_every", "requires n_experts (the number of routed experts)")
            return
        if self.moe_every < 1:
            fail("moe_every", f"must be a positive layer period, got {self.moe_every}")
        if self.n_moe_layers == 0:
            fail("moe_every", f"leaves no MoE layer in {self.n_layers} layers after {self.n_dense_layers} dense ones")
        if self.d_ff_shared is not None and (self.d_ff_shared <= 0 or not self.n_shared_experts):
            fail("d_ff_shared", "must be positive and needs n_shared_experts >= 1")
        if self.shared_expert_gate and not self.n_shared_experts:
            fail("shared_expert_gate", "gates the shared experts; set n_shared_experts >= 1")
        if self.n_experts < 1:
            fail("n_experts", f"must be >= 1, got {self.n_experts}")
        if self.n_experts_per_token is None:
            fail("n_experts_per_token", "is required with n_experts (top-k routing, e.g. 2)")
        if not 1 <= self.n_experts_per_token <= self.n_experts:
            fail("n_experts_per_token", f"must be between 1 and n_experts ({self.n_experts})")
        if self.d_ff_expert is not None and self.d_ff_expert <= 0:
            fail("d_ff_expert", "must be positive")
        if self.n_shared_experts < 0:
            fail("n_shared_experts", "must be >= 0")
        if not 0 <= self.n_dense_layers < self.n_layers:
            fail("n_dense_layers", f"must be between 0 and n_layers - 1 ({self.n_layers - 1})")
        if self.is_encoder_decoder:
            fail("n_experts", "mixture of experts is only supported for decoder-only architectures")

    def _validate_mla(self, fail: typing.Callable[[str, str], typing.NoReturn]) -> None:
        if self.mla_kv_rank is None:
            for name in ("mla_q_rank", "mla_rope_dim"):
                if getattr(self, name) is not None:
                    fail(name, "requires mla_kv_rank (multi-head latent attention)")
            return
        for name in ("mla_kv_rank", "mla_rope_dim"):
            value = getattr(self, name)
            if value is None or value <= 0:
                fail(name, "must be a positive width for multi-head latent attention")
        if self.mla_q_rank is not None and self.mla_q_rank <= 0:
            fail("mla_q_rank", "must be positive (or absent for a full-rank query projection)")
        if self.position != "rope":
            fail("position", "multi-head latent attention uses decoupled RoPE; set position: rope")
        assert self.mla_rope_dim is not None
        if self.mla_rope_dim >= self.d_head:
            fail("mla_rope_dim", f"must be smaller than d_head ({self.d_head}), which includes it")
        if self.n_kv_heads != self.n_heads:
            fail("n_kv_heads", "multi-head latent attention expands the latent to every head; set n_kv_heads = n_heads")
        if self.is_encoder_decoder:
            fail("mla_kv_rank", "multi-head latent attention is only supported for decoder-only architectures")


#: Largest integer a field takes (2**53: every count stays exact as a float, and nothing overflows).
MAX_INT = 2**53
#: Largest magnitude of a real-valued field (a learning rate, rope_theta, training tokens).
MAX_REAL = 1e30
#: Most layers per stack: 10x DeepNet's 1000 (Wang et al. 2022, arXiv:2203.00555); calculators and verify walk them.
MAX_LAYERS = 10_000
#: Text fields shown as one line (in tables, headings, links): no control characters at all.
_ONE_LINE_FIELDS = frozenset({"name", "family", "source", "hf_id"})


def _validate_limits_and_text(config: "ArchConfig", fail: typing.Callable[[str, str], typing.NoReturn]) -> None:
    """Layer counts, years and distances in range; names and other text hold no control characters (escape
    sequences, carriage returns, bidi overrides); descriptions and notes may keep line breaks and tabs."""
    from llmarch.core.text import has_control

    for name in ("n_layers", "n_encoder_layers"):
        if getattr(config, name) > MAX_LAYERS:
            fail(name, f"must be at most {MAX_LAYERS}, got {getattr(config, name)}")
    if config.relative_attention_max_distance is not None and config.relative_attention_max_distance <= 0:
        fail(
            "relative_attention_max_distance",
            f"must be a positive distance, got {config.relative_attention_max_distance}",
        )
    if config.year is not None and not 1900 <= config.year <= 2200:
        fail("year", f"must be a year like 2023, got {config.year}")
    texts = [(name, getattr(config, name)) for name in FIELD_NAMES]
    texts += [(f"training.{name}", getattr(config.training, name)) for name in TRAINING_FIELD_NAMES]
    for name, value in texts:
        if not isinstance(value, str) or value.isprintable():  # isprintable: the fast common case
            continue
        checked = value if name in _ONE_LINE_FIELDS else value.replace("\n", " ").replace("\t", " ")
        if has_control(checked):
            fail(name, "must not contain control characters (escape sequences, carriage returns, line breaks)")


#: Training facts: (lowest allowed, whether the lowest is excluded, highest allowed or None).
_TRAINING_RANGES: dict[str, tuple[float, bool, float | None]] = {
    "tokens": (0, False, None),
    "global_batch_tokens": (0, True, None),
    "global_batch_seqs": (0, True, None),
    "seq_len": (0, True, None),
    "steps": (0, True, None),
    "learning_rate": (0, True, None),
    "warmup_steps": (0, False, None),
    "adam_beta1": (0, False, 1),
    "adam_beta2": (0, False, 1),
    "adam_eps": (0, True, None),
    "weight_decay": (0, False, None),
    "grad_clip": (0, True, None),
    "dropout": (0, False, 1),
}


def _validate_training(training: "TrainingMeta", fail: typing.Callable[[str, str], typing.NoReturn]) -> None:
    """Published training facts are in range: counts positive, betas and dropout in [0, 1)."""
    for name, (low, open_low, high) in _TRAINING_RANGES.items():
        value = getattr(training, name)
        if value is None:
            continue
        if value < low or (open_low and value == low) or (high is not None and value >= high):
            interval = f"{'(' if open_low else '['}{low}, {high if high is not None else 'inf'})"
            fail(f"training.{name}", f"must be in {interval}, got {value!r}")


_FIELDS = {f.name: f for f in dataclasses.fields(ArchConfig)}
FIELD_NAMES: tuple[str, ...] = tuple(_FIELDS)
TRAINING_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainingMeta))


def field_type(name: str) -> Any:
    """The annotated type of ArchConfig field `name` (or "training.<x>" for a training fact)."""
    if name.startswith("training."):
        return _hints(TrainingMeta)[name.removeprefix("training.")]
    return _hints(ArchConfig)[name]


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """Resolved field annotations of a dataclass (computed once: resolving them is slow)."""
    return typing.get_type_hints(cls)


def _check_value(value: Any, hint: Any) -> tuple[bool, Any]:
    """Whether `value` fits type `hint`; returns (ok, value converted where lossless, e.g. 2.0 -> 2)."""
    return _checker(hint)(value)


@functools.cache
def _checker(hint: Any) -> typing.Callable[[Any], tuple[bool, Any]]:
    """A checker for one annotated type, built once per type (preset loading checks thousands of values)."""
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [_checker(arg) for arg in get_args(hint)]

        def check_union(value: Any) -> tuple[bool, Any]:
            for check in options:
                ok, converted = check(value)
                if ok:
                    return True, converted
            return False, value

        return check_union
    if origin is Literal:
        allowed = get_args(hint)
        return lambda value: (isinstance(value, str) and value in allowed, value)
    if hint is type(None):
        return lambda value: (value is None, value)
    if hint is bool:
        return lambda value: (isinstance(value, bool), value)
    if hint in (int, float):
        return functools.partial(_check_number, integer=hint is int)
    if hint is str:
        return lambda value: (isinstance(value, str), value)
    if hint is DtypeMap:
        return _check_dtype_map
    return lambda value: (isinstance(value, hint) if isinstance(hint, type) else True, value)


def _check_dtype_map(value: Any) -> tuple[bool, Any]:
    """A mapping of str -> dtype name, made read-only; dtype aliases ("bfloat16") become canonical names."""
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return False, value
    aliases = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "float8": "fp8", "e4m3": "fp8"}
    return True, DtypeMap({k: aliases.get(v.strip().lower(), v.strip().lower()) for k, v in value.items()})


def _check_number(value: Any, *, integer: bool) -> tuple[bool, Any]:
    if isinstance(value, bool):
        return False, value
    if isinstance(value, str):
        # YAML 1.1 reads "2.0e12" (no exponent sign) as a string; human counts ("2T") are welcome too.
        from llmarch.core.errors import InvalidValueError
        from llmarch.core.units import parse_count

        try:
            value = parse_count(value)
        except InvalidValueError:
            return False, value
    if isinstance(value, int) and abs(value) > MAX_INT:
        return False, value
    if not isinstance(value, (int, float)) or not math.isfinite(value) or abs(value) > MAX_REAL:
        return False, value
    if integer:
        if isinstance(value, float):
            return (True, int(value)) if value.is_integer() else (False, value)
        return True, value
    return True, value


def describe_type(hint: Any) -> str:
    """A short human description of a field type: 'int', 'one of: rope, alibi', 'int or null'."""
    origin = get_origin(hint)
    if origin is Literal:
        return "one of: " + ", ".join(str(a) for a in get_args(hint))
    if origin in (typing.Union, types.UnionType):
        parts = [describe_type(a) for a in get_args(hint) if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in get_args(hint) else "")
    if hint is bool:
        return "true or false"
    if hint is DtypeMap:
        return "a mapping of parameter group to dtype"
    return getattr(hint, "__name__", str(hint))


def _range_note(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    limit = MAX_INT if isinstance(value, int) else MAX_REAL
    return f" of magnitude at most {limit:.4g}" if not abs(value) <= limit else ""


def _shown(value: Any) -> str:
    """repr() of a value for an error message, bounded (a 5000-digit integer has no repr in Python 3.11+)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 100:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _build(cls: type, data: dict[str, Any], *, origin: str | None, prefix: str = "") -> Any:
    hints = _hints(cls)
    names = hints.keys()
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            import difflib

            close = difflib.get_close_matches(key, list(names), n=1, cutoff=0.6)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            raise InvalidConfigError(f"unknown field{hint}", origin=origin, field=prefix + key)
        if key == "training" and cls is ArchConfig:
            kwargs[key] = value
            continue
        ok, converted = _check_value(value, hints[key])
        if not ok:
            raise InvalidConfigError(
                f"expected {describe_type(hints[key])}{_range_note(value)}, got {_shown(value)}",
                origin=origin,
                field=prefix + key,
            )
        kwargs[key] = converted
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise InvalidConfigError(
            f"is required ({describe_type(hints[missing[0]])})", origin=origin, field=prefix + missing[0]
        )
    return cls(**kwargs)
