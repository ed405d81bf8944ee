"""Concrete architectures near a target size: a vectorised sweep of shapes, exact counts, training cost.

`llmarch design` turns a budget into a target (parameters N and tokens D, `llmarch.calc.scaling`) and
this module into shapes. The sweep follows the conventions of current decoder-only models, each of them
an option (`ShapeSpace`):

- pre-norm RMSNorm, RoPE, SwiGLU, no biases (LLaMA; Touvron et al. 2023, arXiv:2302.13971);
- head width `d_heads` (128 in LLaMA, Mistral, Qwen2, DeepSeek; 64 in GPT-2/3 and Pythia), with n_heads
  a multiple of `heads_multiple` (8, so that tensor parallelism over a node of 8 GPUs divides it); d_model
  a multiple of 128 and d_ff a multiple of 256, so that every GEMM dimension tiles tensor cores; the
  vocabulary padded up to a multiple of 128 (Megatron-LM pads to 128 x TP; Shoeybi et al. 2019, arXiv:1909.08053);
- depth-to-width: d_model / n_layers within `aspect_ratio`. Kaplan et al. 2020 (arXiv:2001.08361,
  section 3.1, Fig. 5) find the loss within a few percent over aspect ratios of about 20 to 200 at
  fixed N; Levine et al. 2020 (arXiv:2006.12467) show that the depth worth having grows only
  logarithmically with width, so that large models should be wider than GPT-3 (aspect 128) rather than
  deeper. The default range, 64-128, is where published models sit (GPT-3 6.7B-175B 128; LLaMA-2 7B 128,
  70B 102; Chinchilla 102; Mistral 7B 128); costs alone would always pick the widest, shallowest shape;
- attention: GQA/MQA/MHA (every `kv_heads` value dividing n_heads; Ainslie et al. 2023,
  arXiv:2305.13245), MLA (DeepSeek-AI 2024, arXiv:2405.04434: latent `mla_kv_ranks`, decoupled rotary
  key of `mla_rope_dim`, full-rank queries), and sliding windows with every `global_every`-th layer global
  (Gemma 2: 1 of 2, Gemma 3: 1 of 6), to meet a KV-cache budget per token at a target context;
- dense or MoE (`moe` = (experts, top-k), every layer routed, no shared experts); the size band applies
  to the active parameters, the compute a token costs.

The sweep is numpy throughout: `sweep` evaluates every combination of d_model, n_layers, d_ff, head
layout and attention variant in blocks, with parameter counts, KV bytes and training FLOPs per token
that equal `count_params`, `kv_cache` and `training_flops_per_token` of the same shape exactly (tests
check it with hypothesis); the shortlist is then built as ArchConfigs and counted again by
`count_params`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmarch.calc.params import count_params
from llmarch.core.checks import positive, positive_int
from llmarch.core.config import ArchConfig
from llmarch.core.errors import InvalidValueError
from llmarch.core.frozen import frozen_dataclass
from llmarch.core.units import dtype_bytes

if TYPE_CHECKING:
    import numpy

#: Defaults of the shape conventions (each a `llmarch design` option).
DEFAULT_D_HEADS = (64, 128)
DEFAULT_HEADS_MULTIPLE = 8  # n_heads divisible by 8: tensor parallelism over a node of 8 GPUs
DEFAULT_KV_HEADS = (1, 2, 4, 8, 16, 32)
DEFAULT_ASPECT_RATIO = (64.0, 128.0)
DEFAULT_FF_RATIO = (2.5, 4.0)
DEFAULT_D_MODEL_MULTIPLE = 128
DEFAULT_D_FF_MULTIPLE = 256
DEFAULT_VOCAB_SIZE = 32000  # Chinchilla's and LLaMA's SentencePiece vocabulary
DEFAULT_VOCAB_MULTIPLE = 128
DEFAULT_CONTEXT = 8192
DEFAULT_SEQ_LEN = 4096  # training context (LLaMA 2: 4096)
DEFAULT_SLIDING_WINDOW = 4096
DEFAULT_GLOBAL_EVERY = (2, 6)
DEFAULT_MLA_KV_RANKS = (512,)
DEFAULT_MLA_ROPE_DIM = 64
DEFAULT_TOLERANCE = 0.02
DEFAULT_TOP = 5
DEFAULT_GLOBAL_BATCH_TOKENS = 4 * 2**20  # tokens per optimizer step for the planner (Llama 2: "4M", 1024 x 4096)
ATTENTION_KINDS = ("gqa", "mla", "swa")
#: Most d_model values one sweep tries: 10T parameters (Chinchilla Table 3's largest row) need 596 at multiples of
#: 128 and under 1 GB of memory; 27T would need 834 and 2 GB.
MAX_WIDTHS = 720

# Attention variant codes in the sweep's arrays.
_GQA, _MLA = 0, 1


@frozen_dataclass
class ShapeSpace:
    """The conventions the sweep follows; see the module docstring for where each default comes from."""

    d_heads: tuple[int, ...] = DEFAULT_D_HEADS
    heads_multiple: int = DEFAULT_HEADS_MULTIPLE
    kv_heads: tuple[int, ...] = DEFAULT_KV_HEADS  # GQA groups tried (and MHA: n_kv_heads = n_heads)
    attention: tuple[str, ...] = ATTENTION_KINDS
    aspect_ratio: tuple[float, float] = DEFAULT_ASPECT_RATIO  # d_model / n_layers, inclusive
    ff_ratio: tuple[float, float] = DEFAULT_FF_RATIO  # d_ff / d_model (of one expert under MoE)
    d_model_multiple: int = DEFAULT_D_MODEL_MULTIPLE
    d_ff_multiple: int = DEFAULT_D_FF_MULTIPLE
    vocab_size: int = DEFAULT_VOCAB_SIZE  # before padding
    vocab_multiple: int = DEFAULT_VOCAB_MULTIPLE
    tie_embeddings: bool = False
    sliding_window: int = DEFAULT_SLIDING_WINDOW
    global_every: tuple[int, ...] = DEFAULT_GLOBAL_EVERY
    mla_kv_ranks: tuple[int, ...] = DEFAULT_MLA_KV_RANKS
    mla_rope_dim: int = DEFAULT_MLA_ROPE_DIM
    moe: tuple[int, int] | None = None  # (routed experts, top-k)
    context: int = DEFAULT_CONTEXT  # target serving context: max_seq_len and the KV budget's length
    seq_len: int = DEFAULT_SEQ_LEN  # training context (FLOPs per token)
    max_kv_bytes_per_token: float | None = None  # at `context`, in `kv_dtype`
    kv_dtype: str = "bf16"
    tolerance: float = DEFAULT_TOLERANCE  # size band: |N / N_target - 1| <= tolerance

    @property
    def padded_vocab(self) -> int:
        return -(-self.vocab_size // self.vocab_multiple) * self.vocab_multiple

    def check(self) -> ShapeSpace:
        """Raise InvalidValueError naming the first option that cannot work."""
        for name in ("heads_multiple", "d_model_multiple", "d_ff_multiple", "vocab_size", "vocab_multiple",
                     "sliding_window", "mla_rope_dim", "context", "seq_len"):  # fmt: skip
            positive_int(name, getattr(self, name))
        # Named as the `llmarch design` options that set them (--d-head 64,128).
        for name, values in (("d_head", self.d_heads), ("kv_heads", self.kv_heads),
                             ("global_every", self.global_every), ("mla_kv_rank", self.mla_kv_ranks)):  # fmt: skip
            if not values:
                raise InvalidValueError(f"{name} must list at least one value")
            for value in values:
                positive_int(name, value)
        unknown = [a for a in self.attention if a not in ATTENTION_KINDS]
        if unknown or not self.attention:
            raise InvalidValueError(f"attention must name some of {', '.join(ATTENTION_KINDS)}, got {unknown or '[]'}")
        for name in ("aspect_ratio", "ff_ratio"):
            low, high = getattr(self, name)
            if not 0 < positive(name, low) <= positive(name, high):
                raise InvalidValueError(f"{name} must be a range low:high with 0 < low <= high, got {low}:{high}")
        if self.moe is not None:
            experts, top_k = self.moe
            positive_int("moe experts", experts)
            if not 1 <= positive_int("moe top-k", top_k) <= experts:
                raise InvalidValueError(f"moe top-k must be between 1 and the experts ({experts}), got {top_k}")
        if self.max_kv_bytes_per_token is not None:
            positive("max_kv_bytes_per_token", self.max_kv_bytes_per_token)
        if not 0 < self.tolerance < 1:
            raise InvalidValueError(f"tolerance must be a fraction in (0, 1), got {self.tolerance!r}")
        dtype_bytes(self.kv_dtype)
        if "mla" in self.attention and min(self.d_heads) <= 0:
            raise InvalidValueError("d_heads must be positive")
        return self


# -- the vectorised formulas ---------------------------------------------------------------------------------


def shape_params(s: dict[str, Any], space: ShapeSpace) -> tuple[numpy.ndarray, numpy.ndarray]:
    """(total, active) parameter counts of the shapes in `s`, exactly as `count_params` counts them.

    Per layer: attention (GQA: q and o d x H d_h, k and v d x H_kv d_h; MLA: q d x H (d_h + r_rope), the
    KV down-projection d x (r_kv + r_rope), its up-projection r_kv x H (d_h + d_v) and the latent's RMSNorm),
    two RMSNorms of d, and the SwiGLU MLP 3 d d_ff (MoE: a router d x E and E experts of 3 d d_ff, of which
    top-k are active). Plus the token table V d, the untied head V d, and the final norm d.
    """
    import numpy as np

    d, n_layers, ff, h, hkv, dh = s["d_model"], s["n_layers"], s["d_ff"], s["n_heads"], s["n_kv_heads"], s["d_head"]
    mla = s["kind"] == _MLA
    rank, rope = s["mla_kv_rank"], space.mla_rope_dim
    attn_gqa = 2 * d * h * dh + 2 * d * hkv * dh
    attn_mla = d * h * (dh + rope) + d * (rank + rope) + rank * h * (2 * dh) + h * dh * d + rank
    per_layer = np.where(mla, attn_mla, attn_gqa) + 2 * d
    expert = 3 * d * ff
    if space.moe is None:
        mlp_total = mlp_active = expert
    else:
        experts, top_k = space.moe
        mlp_total = experts * d + experts * expert
        mlp_active = experts * d + top_k * expert
    vocab = space.padded_vocab
    outside = vocab * d * (1 if space.tie_embeddings else 2) + d
    return outside + n_layers * (per_layer + mlp_total), outside + n_layers * (per_layer + mlp_active)


def _mean_keys(seq_len: int, window: numpy.ndarray) -> numpy.ndarray:
    """Mean keys per causal query at `seq_len` (llmarch.calc.flops.mean_attended_keys), window 0 = none."""
    import numpy as np

    w = np.where(window > 0, np.minimum(window, seq_len), seq_len).astype(np.float64)
    capped = (w * (w + 1) / 2 + (seq_len - w) * w) / seq_len
    return np.where(w >= seq_len, (seq_len + 1) / 2, capped)


def _n_local(s: dict[str, Any]) -> numpy.ndarray:
    import numpy as np

    every, n_layers = s["global_every"], s["n_layers"]
    local = np.where(every > 0, n_layers - n_layers // np.maximum(every, 1), n_layers)  # every 0: all local
    return np.where(s["window"] > 0, local, 0)


def shape_training_flops_per_token(s: dict[str, Any], space: ShapeSpace) -> numpy.ndarray:
    """Training FLOPs per token at space.seq_len, as llmarch.calc.flops.training_flops_per_token (no
    recomputation): 3 x (2 x the matmul weights a token multiplies + the causal attention term)."""
    d, n_layers, h, hkv, dh = s["d_model"], s["n_layers"], s["n_heads"], s["n_kv_heads"], s["d_head"]
    mla = s["kind"] == _MLA
    rank, rope = s["mla_kv_rank"], space.mla_rope_dim
    import numpy as np

    proj_gqa = 2 * d * h * dh + 2 * d * hkv * dh
    proj_mla = d * h * (dh + rope) + d * (rank + rope) + rank * h * (2 * dh) + h * dh * d
    expert = 3 * d * s["d_ff"]
    mlp = expert if space.moe is None else space.moe[0] * d + space.moe[1] * expert
    weights = 2.0 * n_layers * (np.where(mla, proj_mla, proj_gqa) + mlp) + 2.0 * space.padded_vocab * d
    per_key = 2.0 * h * np.where(mla, 2 * dh + rope, 2 * dh)
    n_local = _n_local(s)
    seq = space.seq_len
    keys = (n_layers - n_local) * (seq + 1) / 2 + n_local * _mean_keys(seq, s["window"])
    return 3.0 * (weights + per_key * keys)


def shape_kv_bytes_per_token(s: dict[str, Any], space: ShapeSpace) -> numpy.ndarray:
    """KV-cache bytes per token of one sequence of space.context tokens: kv_cache(config,
    seq_len=context).total_bytes / context (local layers keep a window-long rolling buffer)."""
    import numpy as np

    ctx = space.context
    per_position = np.where(s["kind"] == _MLA, s["mla_kv_rank"] + space.mla_rope_dim, s["n_kv_heads"] * 2 * s["d_head"])
    n_local = _n_local(s)
    positions = (s["n_layers"] - n_local) * ctx + n_local * np.minimum(ctx, np.where(s["window"] > 0, s["window"], ctx))
    return per_position * positions * dtype_bytes(space.kv_dtype) / ctx


# -- the sweep -----------------------------------------------------------------------------------------------


def _variants(space: ShapeSpace) -> list[tuple[int, int, int, int]]:
    """Attention variants (kind, kv heads or 0 = MHA, window, global_every) the sweep tries."""
    out: list[tuple[int, int, int, int]] = []
    heads = [0, *sorted(set(space.kv_heads))]
    if "gqa" in space.attention:
        out += [(_GQA, k, 0, 0) for k in heads]
    if "swa" in space.attention:
        out += [(_GQA, k, space.sliding_window, g) for k in heads for g in sorted(set(space.global_every))]
    if "mla" in space.attention:
        out += [(_MLA, r, 0, 0) for r in sorted(set(space.mla_kv_ranks))]
    return out


def _d_model_range(target: float, space: ShapeSpace) -> range:
    """d_model values worth trying: N ~ 12 d^3 / aspect (12 d^2 per layer) bounds d from both sides, widened
    by a factor of 2 (embeddings, MoE and odd MLP ratios move it); multiples of d_model_multiple."""
    low = (target * space.aspect_ratio[0] / 12 / (space.moe[0] if space.moe else 1)) ** (1 / 3) / 2
    high = (target * space.aspect_ratio[1] / 12) ** (1 / 3) * 2
    m = space.d_model_multiple
    return range(max(m, int(low // m) * m), int(high // m + 1) * m + 1, m)


def _variant_rows(d_model: int, space: ShapeSpace) -> list[tuple[int, int, int, int, int]]:
    """(kind, kv heads or MLA rank, window, global_every, d_head) of every attention layout for d_model."""
    heads = [dh for dh in space.d_heads if d_model % dh == 0 and (d_model // dh) % space.heads_multiple == 0]
    return [(kind, kv, w, g, dh) for dh in heads for kind, kv, w, g in _variants(space)
            if kind == _MLA or kv == 0 or ((d_model // dh) % kv == 0 and kv < d_model // dh)]  # fmt: skip


def _product(d_model: int, layers: Any, ffs: Any, rows: list[tuple[int, int, int, int, int]]) -> dict[str, Any]:
    """The product n_layers x d_ff x attention layout for one d_model, as flat numpy arrays."""
    import numpy as np

    variant = np.array(rows, dtype=np.int64)
    li, fi, vi = (a.ravel() for a in np.meshgrid(np.arange(len(layers)), np.arange(len(ffs)), np.arange(len(rows)),
                                                indexing="ij"))  # fmt: skip
    v = variant[vi]
    n_heads = d_model // v[:, 4]
    return {
        "d_model": np.full(len(li), d_model, dtype=np.int64),
        "n_layers": np.asarray(layers, dtype=np.int64)[li],
        "d_ff": np.asarray(ffs, dtype=np.int64)[fi],
        "d_head": v[:, 4],
        "n_heads": n_heads,
        "n_kv_heads": np.where((v[:, 0] == _MLA) | (v[:, 1] == 0), n_heads, v[:, 1]),
        "kind": v[:, 0],
        "mla_kv_rank": np.where(v[:, 0] == _MLA, v[:, 1], 0),
        "kv_code": v[:, 1],  # the variant's KV heads (0 = MHA) or MLA rank: the layout, whatever the width
        "window": v[:, 2],
        "global_every": v[:, 3],
    }


def _block(d_model: int, target: float, space: ShapeSpace, *, prune: bool = True) -> tuple[dict[str, Any] | None, int]:
    """The shapes with this d_model that can land in the size band, as flat numpy arrays (None if none), and
    the size of the unpruned product they stand for.

    n_layers is limited by the aspect ratio and by the band: with the smallest and largest layer the
    variants and d_ff range allow, layers outside [(N_low - outside) / largest, (N_high - outside) /
    smallest] cannot reach the band whatever the rest. Without `prune` the block is the full product of
    those layers, every d_ff of the MLP ratio, head width and attention variant; with it, d_ff is limited
    for each (layers, variant) to the multiples the band allows (the count is linear in d_ff).
    """
    import numpy as np

    m = space.d_ff_multiple
    ffs = np.arange(int(np.ceil(space.ff_ratio[0] * d_model / m)) * m, int(space.ff_ratio[1] * d_model // m) * m + 1, m)
    rows = _variant_rows(d_model, space)
    if not len(ffs) or not rows:
        return None, 0
    probe = _product(d_model, [0, 1], ffs[[0, -1]], rows)  # zero and one layer, smallest and largest d_ff
    size = _size(probe, space)
    one = probe["n_layers"] == 1
    outside, per_layer = size[~one][0], size[one] - size[~one][0]
    n_low, n_high = target * (1 - space.tolerance), target * (1 + space.tolerance)
    low = max(np.ceil(d_model / space.aspect_ratio[1]), np.ceil((n_low - outside) / per_layer.max()), 1)
    high = min(d_model // space.aspect_ratio[0], np.floor((n_high - outside) / per_layer.min()))
    if high < low:
        return None, 0
    layers = np.arange(int(low), int(high) + 1)
    considered = len(layers) * len(ffs) * len(rows)
    if not prune:
        return _product(d_model, layers, ffs, rows), considered
    base = _product(d_model, layers, ffs[:1], rows)  # every (layers, variant) at the smallest d_ff
    size0 = _size(base, space)
    step = _size({**base, "d_ff": base["d_ff"] + m}, space) - size0  # exact: the count is linear in d_ff
    k_low = np.maximum(np.ceil((n_low - size0) / step), 0).astype(np.int64)
    k_high = np.minimum(np.floor((n_high - size0) / step), len(ffs) - 1).astype(np.int64)
    count = np.maximum(k_high - k_low + 1, 0)
    if not count.any():
        return None, considered
    which = np.repeat(np.arange(len(count)), count)
    offset = np.arange(len(which)) - np.repeat(np.cumsum(count) - count, count)
    block = {k: v[which] for k, v in base.items()}
    block["d_ff"] = ffs[0] + m * (k_low[which] + offset)
    return block, considered


def _size(s: dict[str, Any], space: ShapeSpace) -> numpy.ndarray:
    """The parameters the size band applies to: active under MoE, else total."""
    total, active = shape_params(s, space)
    return active if space.moe is not None else total


def iter_blocks(
    target_params: float, space: ShapeSpace, *, prune: bool = True
) -> Iterator[tuple[dict[str, Any] | None, int]]:
    """The sweep, one block per d_model: a dict of equal-length numpy arrays or None, and the size of the
    unpruned product it stands for (see `_block`)."""
    for d_model in _d_model_range(target_params, space):
        yield _block(d_model, target_params, space, prune=prune)


@frozen_dataclass
class Sweep:
    """The shapes within the size band (and KV budget), as arrays, and how many were evaluated in all."""

    n_evaluated: int
    n_considered: int  # the product the sweep stands for: every d_ff of the MLP ratio (pruning skips most)
    shapes: dict[str, Any]  # field -> numpy array, plus params_total, params_active, kv_bytes_per_token, ...

    def __len__(self) -> int:
        return len(self.shapes["d_model"]) if self.shapes else 0


def sweep(target_params: float, space: ShapeSpace, *, prune: bool = True) -> Sweep:
    """Evaluate every shape of the space near `target_params` (vectorised) and keep those within the band:
    |params / target - 1| <= tolerance (active parameters under MoE), within the KV budget if one is set.

    `prune` (the default) skips the d_ff values that cannot reach the band (see `_block`): the same shapes
    are kept, fewer are evaluated; without it every d_ff of the MLP ratio is evaluated (the benchmark).
    """
    import numpy as np

    space.check()
    target = positive("target_params", target_params)
    widths = len(_d_model_range(target, space))
    if widths > MAX_WIDTHS:
        raise InvalidValueError(
            f"target_params {target:.3g} needs {widths:,} d_model values at d_model_multiple {space.d_model_multiple}"
            f" (at most {MAX_WIDTHS:,}); pass a larger d_model_multiple or a smaller budget"
        )
    kept: list[dict[str, Any]] = []
    n = considered = 0
    for block, product in iter_blocks(target, space, prune=prune):
        considered += product
        if block is None:
            continue
        n += len(block["d_model"])
        total, active = shape_params(block, space)
        size = active if space.moe is not None else total
        keep = np.abs(size / target - 1) <= space.tolerance
        if space.max_kv_bytes_per_token is not None:
            keep &= shape_kv_bytes_per_token(block, space) <= space.max_kv_bytes_per_token
        if keep.any():
            part = {k: v[keep] for k, v in block.items()}
            part["params_total"], part["params_active"] = total[keep], active[keep]
            kept.append(part)
    if not kept:
        return Sweep(n, considered, {})
    shapes = {k: np.concatenate([p[k] for p in kept]) for k in kept[0]}
    shapes["kv_bytes_per_token"] = shape_kv_bytes_per_token(shapes, space)
    shapes["training_flops_per_token"] = shape_training_flops_per_token(shapes, space)
    return Sweep(n, considered, shapes)


# -- from a row of the sweep to an ArchConfig ------------------------------------------------------------------


def shape_config(shape: dict[str, Any], space: ShapeSpace, *, name: str, source: str, **extra: Any) -> ArchConfig:
    """The ArchConfig of one swept shape (a dict of scalars), validated like any preset."""
    d_head = int(shape["d_head"])
    mla = int(shape["kind"]) == _MLA
    data: dict[str, Any] = {
        "name": name,
        "source": source,
        "architecture": "decoder",
        "n_layers": int(shape["n_layers"]),
        "d_model": int(shape["d_model"]),
        "n_heads": int(shape["n_heads"]),
        "n_kv_heads": int(shape["n_kv_heads"]),
        "d_head": d_head + space.mla_rope_dim if mla else d_head,
        "d_ff": int(shape["d_ff"]),
        "vocab_size": space.padded_vocab,
        "max_seq_len": max(space.context, space.seq_len),
        "position": "rope",
        "norm": "rmsnorm",
        "norm_position": "pre",
        "final_norm": True,
        "mlp": "swiglu",
        "tie_embeddings": space.tie_embeddings,
    }
    if mla:
        data.update(d_head_v=d_head, mla_kv_rank=int(shape["mla_kv_rank"]), mla_rope_dim=space.mla_rope_dim)
    if int(shape["window"]) > 0:
        data["sliding_window"] = int(shape["window"])
        if int(shape["global_every"]) > 0:
            data["global_every"] = int(shape["global_every"])
    if space.moe is not None:
        data.update(n_experts=space.moe[0], n_experts_per_token=space.moe[1], d_ff_expert=int(shape["d_ff"]))
    data.update(extra)
    return ArchConfig.from_dict(data, origin=name)


def row(shapes: dict[str, Any], index: int) -> dict[str, Any]:
    """Row `index` of the sweep's arrays as plain Python scalars."""
    return {k: v[index].item() for k, v in shapes.items()}


def checked_config(shape: dict[str, Any], space: ShapeSpace, **kwargs: Any) -> ArchConfig:
    """`shape_config`, with the sweep's counts checked against count_params (an internal error otherwise)."""
    config = shape_config(shape, space, **kwargs)
    counts = count_params(config)
    if (counts.total, counts.active) != (shape["params_total"], shape["params_active"]):
        raise AssertionError(
            f"vectorised count {shape['params_total']}/{shape['params_active']} != count_params "
            f"{counts.total}/{counts.active} for {config.name}"
        )
    return config


def attention_label(shape: dict[str, Any]) -> str:
    """A short name of a shape's attention: 'gqa-8', 'mha', 'mqa', 'mla-512', 'swa4096/2-gqa-8'."""
    if int(shape["kind"]) == _MLA:
        return f"mla-{int(shape['mla_kv_rank'])}"
    kv, heads = int(shape["n_kv_heads"]), int(shape["n_heads"])
    base = "mha" if kv == heads else "mqa" if kv == 1 else f"gqa-{kv}"
    if int(shape["window"]) > 0:
        every = int(shape["global_every"])
        return f"swa{int(shape['window'])}/{every}-{base}" if every else f"swa{int(shape['window'])}-{base}"
    return base


# -- budgets -----------------------------------------------------------------------------------------------


@frozen_dataclass
class Budget:
    """A training budget in FLOPs (6 N D convention) and how it was derived."""

    compute_flops: float
    source: str  # "compute", "gpu_hours", "budget_usd" or "days"
    gpu_hours: float | None
    details: dict[str, Any]


def resolve_budget(
    *,
    compute_flops: float | None = None,
    gpu_hours: float | None = None,
    budget_usd: float | None = None,
    days: float | None = None,
    gpu: str | None = None,
    n_gpus: int | None = None,
    mfu: float | None = None,
    usd_per_gpu_hour: float | None = None,
    dtype: str = "bf16",
) -> Budget:
    """The training FLOPs of exactly one of: `compute_flops`; `gpu_hours` on `gpu`; `budget_usd` at the GPU's
    price per hour; `days` on `n_gpus` x `gpu`. GPU time becomes FLOPs at `mfu` of the dense `dtype` peak
    (llmarch.calc.scaling.compute_from_gpu_hours; MFU default that of llmarch.calc.cost)."""
    from llmarch.calc.cost import DEFAULT_MFU
    from llmarch.calc.scaling import compute_from_gpu_hours
    from llmarch.catalog.hardware import accelerator, canonical_peak_dtype, default_price

    given = {k: v for k, v in (("compute", compute_flops), ("gpu_hours", gpu_hours), ("budget_usd", budget_usd),
                               ("days", days)) if v is not None}  # fmt: skip
    if len(given) != 1:
        raise InvalidValueError("give exactly one budget: compute, gpu_hours, budget_usd or days")
    ((source, value),) = given.items()
    value = positive(source, value)
    if source == "compute":
        return Budget(value, source, None, {"compute_flops": value})
    if gpu is None:
        raise InvalidValueError(f"{source} needs gpu (the accelerator the budget buys; see 'llmarch gpus')")
    acc = accelerator(gpu)
    mfu = DEFAULT_MFU if mfu is None else mfu
    details: dict[str, Any] = {"gpu": acc.name, "mfu": mfu, "dtype": canonical_peak_dtype(dtype)}
    if source == "gpu_hours":
        hours = value
    elif source == "budget_usd":
        price = usd_per_gpu_hour
        if price is None:
            catalogued = default_price(acc.name)
            if catalogued is None:
                raise InvalidValueError(f"no default price for {acc.name}: pass usd_per_gpu_hour")
            price = catalogued.usd_per_gpu_hour
        hours = value / positive("usd_per_gpu_hour", price)
        details.update(budget_usd=value, usd_per_gpu_hour=price)
    else:
        if n_gpus is None:
            raise InvalidValueError("days needs n_gpus (the size of the cluster)")
        hours = value * 24.0 * positive_int("n_gpus", n_gpus)
        details.update(days=value, n_gpus=n_gpus)
    details["gpu_hours"] = hours
    flops = compute_from_gpu_hours(hours, acc.peak(details["dtype"]), mfu)
    details["compute_flops"] = flops
    return Budget(flops, source, hours, details)


# -- the shortlist ---------------------------------------------------------------------------------------------


def shortlist(found: Sweep, *, tokens: float, inference_tokens: float, n_best: int, per_group: int = 1) -> list[int]:
    """Indices of the swept shapes worth costing in full, cheapest first by the FLOPs proxy.

    Proxy: training FLOPs (llmarch's per-token count x tokens) + 2 x active parameters per served token. Shapes
    that differ only in d_ff are near-duplicates: one per (d_model, n_layers, attention layout) is kept. The
    `per_group` cheapest of every attention layout are kept (so that the serving estimate sees each KV-cache
    size), plus the `n_best` cheapest overall.
    """
    import numpy as np

    if not len(found):
        return []
    s = found.shapes
    proxy = s["training_flops_per_token"] * tokens + 2.0 * s["params_active"] * inference_tokens
    order = np.argsort(proxy, kind="stable")
    layout = _codes(s, ("kind", "kv_code", "window", "global_every", "d_head"))
    shape = (layout * (int(s["d_model"].max()) + 1) + s["d_model"]) * (int(s["n_layers"].max()) + 1) + s["n_layers"]
    _, first = np.unique(shape[order], return_index=True)
    kept = order[np.sort(first)]  # the cheapest d_ff of each (d_model, n_layers, layout), cheapest first
    groups = layout[kept]
    by_group = np.argsort(groups, kind="stable")
    starts = np.searchsorted(groups[by_group], groups[by_group])  # first position of each group
    rank_in_group = np.empty(len(kept), dtype=np.int64)
    rank_in_group[by_group] = np.arange(len(kept)) - starts
    chosen = (rank_in_group < per_group) | (np.arange(len(kept)) < n_best)
    return kept[chosen].tolist()


def _codes(arrays: dict[str, Any], keys: tuple[str, ...]) -> numpy.ndarray:
    """One int64 code per row for the combination of the columns `keys` (equal rows, equal codes); the
    columns hold few distinct values, found on a sample-free pass of np.unique over each (small) set."""
    import numpy as np

    code = np.zeros(len(arrays[keys[0]]), dtype=np.int64)
    for key in keys:
        column = arrays[key]
        values = np.unique(column[np.r_[0 : len(column) : max(1, len(column) // 4096)]])
        index = np.searchsorted(values, column)
        missing = (index >= len(values)) | (values[np.minimum(index, len(values) - 1)] != column)
        if missing.any():  # a value the stride skipped: fall back to the exact set
            values = np.unique(column)
            index = np.searchsorted(values, column)
        code = code * len(values) + index
    return code
