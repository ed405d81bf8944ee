"""Memory per GPU of a workload: training (activations, model states, ZeRO/TP/PP), checkpoints, inference.

All results are bytes. Training memory per GPU is model states (16-bit weights and gradients, fp32 AdamW
state: 16 bytes per parameter, Rajbhandari et al. 2020, arXiv:1910.02054) split by tensor and pipeline
parallelism and sharded by ZeRO, plus activations per Korthikanti et al. 2022 (arXiv:2205.05198),
generalised layer by layer to GQA/MLA, gated MLPs and mixture of experts. Inference memory is weights,
KV cache (llmarch.calc.memory) and a prefill workspace estimate; `memory_estimate` gathers all of it for
`llmarch memory`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from llmarch.calc.flops import RECOMPUTE_MODES, training_seq_len
from llmarch.calc.memory import weights_bytes
from llmarch.calc.params import count_params
from llmarch.core.checks import positive_int
from llmarch.core.config import ArchConfig
from llmarch.core.defaults import DEFAULT_DTYPE, DEFAULT_RESERVE_FRACTION
from llmarch.core.errors import InvalidValueError
from llmarch.core.frozen import frozen_dataclass
from llmarch.core.units import canonical_dtype

# ---------------------------------------------------------------------------------------------------------
# Training: activations (Korthikanti et al. 2022), model states (ZeRO), the per-GPU total and whether it fits
# ---------------------------------------------------------------------------------------------------------

#: Bytes of one stored activation element under 16-bit mixed precision (Korthikanti et al. 2022, section 4.1).
ACTIVATION_BYTES = 2
#: Bytes of one dropout-mask element (a torch.bool, as Korthikanti et al. count it).
MASK_BYTES = 1
#: Bytes of one element kept in fp32: FlashAttention's softmax log-sum-exp, and the cross-entropy logits.
FP32_BYTES = 4

#: Mixed-precision AdamW bytes per parameter (Rajbhandari et al. 2020, ZeRO, arXiv:1910.02054, section 3.1):
#: 16-bit weights (2) and K = 12 bytes of fp32 optimizer state: master weights, Adam's first moment m and
#: second moment v (4 + 4 + 4). Gradients are kept in GRADIENT_BYTES[grad_dtype]: Megatron-LM's bf16 default
#: accumulates and reduces fp32 "main" gradients (4 bytes; 18 bytes/param in all), FSDP / DeepSpeed mixed
#: precision keep 16-bit gradients (2 bytes; ZeRO's 16 bytes/param).
WEIGHT_BYTES_PER_PARAM = 2
OPTIMIZER_BYTES_PER_PARAM = 12
GRADIENT_BYTES: dict[str, int] = {"fp32": 4, "bf16": 2, "fp16": 2}
DEFAULT_GRAD_DTYPE = "fp32"

#: Per-rank random-number-generator state a resumable checkpoint saves, in bytes: torch's CPU generator
#: (torch.get_rng_state(), 5,056 bytes), the CUDA Philox seed and offset (16), NumPy's MT19937 (624 x 4 =
#: 2,496) and Python's `random` (625 32-bit words, 2,500).
RNG_STATE_BYTES_PER_RANK = 5056 + 16 + 2496 + 2500
#: The learning-rate scheduler's state dict plus the step and data-loader counters: a few scalars; 1 kB is
#: an upper bound, not a measurement.
SCHEDULER_STATE_BYTES = 1000

ZERO_STAGES: tuple[int, ...] = (0, 1, 2, 3)


def _check_recompute(recompute: str) -> None:
    if recompute not in RECOMPUTE_MODES:
        raise InvalidValueError(f"recompute must be one of {', '.join(RECOMPUTE_MODES)}, got {recompute!r}")


def _check_reserve(reserve_fraction: float) -> None:
    if isinstance(reserve_fraction, bool) or not isinstance(reserve_fraction, (int, float)):
        raise InvalidValueError(f"reserve_fraction must be a number in [0, 1), got {reserve_fraction!r}")
    if not 0 <= reserve_fraction < 1:
        raise InvalidValueError(f"reserve_fraction must be in [0, 1), got {reserve_fraction!r}")


def _check_tp(config: ArchConfig, tp: int) -> None:
    positive_int("tp", tp)
    if config.n_heads % tp:
        raise InvalidValueError(
            f"tp ({tp}) must divide {config.name}'s n_heads ({config.n_heads}): tensor parallelism splits heads"
        )


@frozen_dataclass
class LayerActivations:
    """Bytes one transformer layer stores for its backward pass, for one micro-batch on one GPU, by part.

    `attention_core_bytes` is the part quadratic in the sequence length (softmax output, its dropout mask
    and dropout output), or FlashAttention's log-sum-exp; `layer_input_bytes` is the only non-zero part
    under full recomputation.
    """

    norm_bytes: float  # inputs of the layer's norms
    attention_bytes: float  # attention block, linear in the sequence length (cross-attention included)
    attention_core_bytes: float  # 5 a s^2 b (Korthikanti et al.) or the flash log-sum-exp
    mlp_bytes: float  # MLP, or router + routed and shared experts
    layer_input_bytes: float  # full recomputation: the checkpointed layer input
    total_bytes: float


def layer_activations(
    config: ArchConfig,
    *,
    seq_len: int,
    micro_batch: int = 1,
    tp: int = 1,
    sequence_parallel: bool = False,
    recompute: str = "none",
    flash: bool = False,
    dropout: bool = True,
    moe: bool = False,
    cross_attention: bool = False,
) -> LayerActivations:
    """Activation bytes one layer keeps for backward, per micro-batch and GPU (Korthikanti et al. 2022).

    Korthikanti et al. 2022 (arXiv:2205.05198, section 4.1, eq. 1-4 and Table 2) count, for a GPT block
    with 16-bit activations (2 bytes; dropout masks 1 byte), s tokens, micro-batch b, width h, a heads:
    attention 11 s b h + 5 a s^2 b, MLP 19 s b h, two LayerNorms 4 s b h, so s b h (34 + 5 a s / h) per
    layer without parallelism. Tensor parallelism t splits everything but the norm inputs, the attention
    and MLP inputs and the two dropout masks: s b h (10 + 24/t + 5 a s / (h t)); sequence parallelism
    splits those too: s b h (34/t + 5 a s / (h t)). Selective recomputation drops the 5 a s^2 b term
    (recomputed in backward); full recomputation keeps only the 2 s b h layer input (divided by t under
    sequence parallelism, where the input is split along the sequence).

    Generalised term by term, each reducing to the paper's for a GPT block (h = n_heads d_head,
    d_ff = 4 h, one K/V head per query head):
      attention: 2 s b d (projection input) + 2 s b (H d_h + K d_h + K d_v) (Q, K, V kept for the two
        attention matmuls; K = n_kv_heads, at least t under tensor parallelism, as a KV head is replicated
        rather than split) + 2 s b H d_v (output-projection input) + s b d (output dropout mask).
        MLA also keeps its latents: the query latent and its norm input (2 x 2 s b q_rank), the
        down-projection output (2 s b (kv_rank + rope_dim)) and the normed KV latent (2 s b kv_rank);
        its keys and values are expanded to every head (K = H).
      attention core: (2 + 1 + 2) b H s^2 with dropout (softmax output, mask, dropout output), 2 b H s^2
        without (softmax output only). A sliding window still materialises the s x s matrix without flash.
        FlashAttention (Dao et al. 2022, arXiv:2205.14135) stores no s^2 tensor: only the fp32 log-sum-exp,
        4 b H s bytes, the output being the output-projection input already counted.
      MLP: 2 s b d (input) + 2 s b d_ff per stored hidden tensor + s b d (dropout mask). A plain MLP stores
        two hidden tensors (activation input, down-projection input: the paper's 8 + 8 s b h); a gated MLP
        three (gate and up outputs, which a fused SwiGLU/GeGLU keeps, and the down-projection input; an
        unfused eager implementation also keeps the activation output, a fourth, not counted).
      MoE layer: the router logits (2 s b n_experts) plus, per token, what a dense MLP of width d_ff_expert
        stores for each of its k routed experts (each with its own dispatched input copy) and each shared
        expert (reading the layer's input), assuming balanced routing with no dropped or padded tokens;
        the count per GPU is the same under expert parallelism.
      norms: 2 s b d per norm input: two per sequential block (three with cross-attention), one in a
        parallel block (GPT-J, Falcon), where attention and MLP also share their input when they share
        the norm.
      cross-attention (encoder-decoder): counted like a self-attention block over s keys; the encoder
        output it reads, one tensor shared by every decoder layer, is left out.
    Left out: norm statistics (fp32 mean/rstd, 4-8 s b bytes per norm), rotary tables, residual adds
    (they store nothing) and bias-gradient buffers.
    """
    positive_int("seq_len", seq_len)
    positive_int("micro_batch", micro_batch)
    _check_tp(config, tp)
    _check_recompute(recompute)
    s, b, d = seq_len, micro_batch, config.d_model
    tokens = s * b
    a, m = ACTIVATION_BYTES, MASK_BYTES
    replicated = 1 / tp if sequence_parallel else 1.0  # d-wide tensors: split only by sequence parallelism
    split = 1 / tp  # head- and d_ff-wide tensors: split by tensor parallelism
    h, dh, dv = config.n_heads, config.d_head, config.v_head_dim

    if recompute == "full":
        layer_input = a * tokens * d * replicated
        return LayerActivations(0.0, 0.0, 0.0, 0.0, layer_input, layer_input)

    def attention_block() -> tuple[float, float]:
        """(linear part, core part) of one attention block, in bytes."""
        rep = a * tokens * d + (m * tokens * d if dropout else 0)
        if config.mla_kv_rank is not None:
            assert config.mla_rope_dim is not None
            kv_heads = h
            rep += a * tokens * (config.mla_kv_rank + config.mla_rope_dim) + a * tokens * config.mla_kv_rank
            if config.mla_q_rank is not None:
                rep += 2 * a * tokens * config.mla_q_rank
        else:
            kv_heads = max(config.n_kv_heads, tp)  # per-rank K/V: a KV head is replicated, never split
        per_head = a * tokens * (h * dh + kv_heads * dh + kv_heads * dv + h * dv)
        # Flash: the fp32 log-sum-exp per query and head. Eager: softmax output (+ dropout mask and output).
        core = FP32_BYTES * b * h * s if flash else (a + ((m + a) if dropout else 0)) * b * h * s * s
        return rep * replicated + per_head * split, core * split

    n_norm_inputs = 1 if config.parallel_block else (3 if cross_attention else 2)
    norm = n_norm_inputs * a * tokens * d * replicated

    attention, core = attention_block()
    if cross_attention:
        cross, cross_core = attention_block()
        attention, core = attention + cross, core + cross_core

    mlp_rep, mlp_split = _mlp_activation_bytes(config, tokens, moe=moe, dropout=dropout)
    mlp = mlp_rep * replicated + mlp_split * split

    if recompute == "selective":
        core = 0.0
    return LayerActivations(norm, attention, core, mlp, 0.0, norm + attention + core + mlp)


def _mlp_activation_bytes(config: ArchConfig, tokens: int, *, moe: bool, dropout: bool) -> tuple[float, float]:
    """(d-wide bytes, d_ff-wide bytes) an MLP or MoE block stores for `tokens` tokens (see `layer_activations`)."""
    a, m, d = ACTIVATION_BYTES, MASK_BYTES, config.d_model
    n_hidden = 3 if config.gated_mlp else 2
    mlp_input_shared = config.parallel_block and config.parallel_block_shared_norm
    rep = (0 if mlp_input_shared else a * tokens * d) + (m * tokens * d if dropout else 0)
    if not moe:
        return rep, n_hidden * a * tokens * config.d_ff
    assert config.n_experts is not None and config.n_experts_per_token is not None
    k, n_shared = config.n_experts_per_token, config.n_shared_experts
    rep += a * tokens * config.n_experts + k * a * tokens * d  # router logits, dispatched copies
    hidden = k * config.expert_d_ff + n_shared * config.shared_expert_d_ff  # shared experts may be wider
    return rep, n_hidden * a * tokens * hidden


def _peak_stage(
    layer_bytes: list[float], pp: int, in_flight: float, n_micro_batches: int | None, interleave: float
) -> tuple[int, float]:
    """(layers, bytes) of the pipeline stage holding the most activations under 1F1B.

    Stage j holds min(pp - j, micro-batches) micro-batches in flight (Narayanan et al. 2021). When pp does
    not divide the L layers, the L mod pp stages with one more layer are placed last, where fewer
    micro-batches are in flight (as Llama 3 trims its first stage; Dubey et al. 2024, section 3.3.2): the
    peak is the first stage (floor(L / pp) layers, `in_flight`) or the first longer stage.
    """
    base, extra = divmod(len(layer_bytes), pp)
    first = in_flight * sum(layer_bytes[:base])
    if not extra:
        return base, first
    start = base * (pp - extra)
    later = min(extra, n_micro_batches if n_micro_batches is not None else extra) * interleave
    longer = later * sum(layer_bytes[start : start + base + 1])
    return (base, first) if first >= longer else (base + 1, longer)


def _layer_kinds(config: ArchConfig) -> list[tuple[bool, bool]]:
    """(moe, cross_attention) of every layer in execution order: encoder layers, then decoder layers."""
    kinds = [(False, False)] * config.n_encoder_layers
    for i in range(config.n_layers):
        kinds.append((config.is_moe and i >= config.n_dense_layers, config.is_encoder_decoder))
    return kinds


@frozen_dataclass
class ActivationMemory:
    """Activation bytes held on the first pipeline stage (the peak) of one GPU, with the parts."""

    seq_len: int
    micro_batch: int
    tp: int
    pp: int
    sequence_parallel: bool
    recompute: str
    flash: bool
    dropout: bool
    n_stage_layers: int  # layers on the pipeline stage holding the most activations
    in_flight_micro_batches: float  # micro-batches of the stage's layers held (1F1B: pp; interleaved: more)
    max_layer_bytes: float  # the largest layer's stored activations, one micro-batch
    layers_bytes: float  # all stage layers x in-flight micro-batches
    embedding_bytes: float  # embedding dropout mask per in-flight micro-batch
    output_bytes: float  # final norm and head inputs, fp32 logits (on the first stage only when pp = 1)
    recompute_bytes: float  # transient: one layer's recomputed activations during its backward
    total_bytes: float


def activation_memory(
    config: ArchConfig,
    *,
    seq_len: int,
    micro_batch: int = 1,
    tp: int = 1,
    pp: int = 1,
    sequence_parallel: bool = False,
    recompute: str = "none",
    flash: bool = False,
    dropout: bool = True,
    cp: int = 1,
    virtual_stages: int = 1,
    n_micro_batches: int | None = None,
) -> ActivationMemory:
    """Activation bytes per GPU on the first pipeline stage, summed over its layers and in-flight micro-batches.

    Korthikanti et al. 2022 (arXiv:2205.05198, section 4.2.3, eq. 5-6): under the 1F1B pipeline schedule
    (Narayanan et al. 2021, arXiv:2104.04473) the first stage holds the activations of pp micro-batches
    for its L/pp layers, so pipelining does not reduce the total, L x per-layer (eq. 5; 34 s b h L / t
    with sequence parallelism and selective recomputation, eq. 6). This assumes at least pp micro-batches
    per step. Layers come from `layer_activations`; when pp does not divide L the stage with the peak is
    found by `_peak_stage` (the first stage holds floor(L/pp) of them, encoder layers first). Outside the
    layers (section 4.3): the embedding dropout mask, s b h p / t
    bytes, and, only when pp = 1 (otherwise on the last stage, which holds fewer micro-batches), the final
    norm input and head input (2 + 2) s b h plus the fp32 logits 4 s b v, all divided by t under sequence
    parallelism (the logits always, the head being vocabulary-parallel): 4 s b h (1 + v / h) / t.

    With recomputation, one layer's activations are rebuilt during its backward pass: `recompute_bytes`
    adds the largest layer's full activations (full recomputation) or its attention core (selective), for
    one micro-batch, a transient the paper's totals leave out.

    Interleaved 1F1B with v virtual stages holds (1 + (pp - 1) / (pp v)) times more on the first stage
    (ibid., section 4.2.3); with fewer than pp micro-batches per step (`n_micro_batches`) only those are
    in flight. Context parallelism over cp GPUs splits the sequence: each GPU keeps seq_len / cp tokens.
    """
    for name, value in (("pp", pp), ("cp", cp), ("virtual_stages", virtual_stages)):
        positive_int(name, value)
    if seq_len % cp:
        raise InvalidValueError(f"cp ({cp}) must divide seq_len ({seq_len}): context parallelism splits the sequence")
    seq_len //= cp
    kinds = _layer_kinds(config)
    if pp > len(kinds):
        raise InvalidValueError(f"pp ({pp}) must not exceed {config.name}'s {len(kinds)} layers")
    common: dict[str, Any] = {"seq_len": seq_len, "micro_batch": micro_batch, "tp": tp,
                              "sequence_parallel": sequence_parallel, "flash": flash, "dropout": dropout}  # fmt: skip
    stored = {
        kind: layer_activations(config, recompute=recompute, moe=kind[0], cross_attention=kind[1], **common)
        for kind in set(kinds)
    }
    in_flight = float(pp if n_micro_batches is None else min(pp, n_micro_batches))
    interleave = 1 + (pp - 1) / (pp * virtual_stages) if virtual_stages > 1 else 1.0
    n_stage, layers = _peak_stage(
        [stored[kind].total_bytes for kind in kinds], pp, in_flight * interleave, n_micro_batches, interleave
    )
    max_layer = max(layer.total_bytes for layer in stored.values())

    s, b, d = seq_len, micro_batch, config.d_model
    replicated = 1 / tp if sequence_parallel else 1.0
    embedding = in_flight * MASK_BYTES * s * b * d * replicated if dropout else 0.0
    output = 0.0
    if pp == 1:
        n_inputs = 2 if config.final_norm else 1  # final norm input and head input
        output = n_inputs * ACTIVATION_BYTES * s * b * d * replicated + FP32_BYTES * s * b * config.vocab_size / tp

    recompute_bytes = 0.0
    if recompute != "none":
        full = [
            layer_activations(config, recompute="none", moe=kind[0], cross_attention=kind[1], **common)
            for kind in set(kinds)
        ]
        if recompute == "full":
            recompute_bytes = max(layer.total_bytes for layer in full)
        else:
            recompute_bytes = max(layer.attention_core_bytes for layer in full)

    total = layers + embedding + output + recompute_bytes
    return ActivationMemory(
        **common,
        pp=pp,
        recompute=recompute,
        n_stage_layers=n_stage,
        in_flight_micro_batches=in_flight,
        max_layer_bytes=max_layer,
        layers_bytes=layers,
        embedding_bytes=embedding,
        output_bytes=output,
        recompute_bytes=recompute_bytes,
        total_bytes=total,
    )


@frozen_dataclass
class ModelStates:
    """Bytes of weights, gradients and optimizer states on one GPU under mixed-precision AdamW."""

    weights_bytes: float  # 16-bit working weights (+ ZeRO-3's gathered layers)
    gradients_bytes: float  # gradients in grad_dtype
    optimizer_bytes: float  # fp32 master weights, Adam m and v
    total_bytes: float


def _check_grad_dtype(grad_dtype: str) -> int:
    if grad_dtype not in GRADIENT_BYTES:
        raise InvalidValueError(f"grad_dtype must be one of {', '.join(GRADIENT_BYTES)}, got {grad_dtype!r}")
    return GRADIENT_BYTES[grad_dtype]


def model_states(
    n_params: float,
    *,
    dp: int = 1,
    zero: int = 0,
    tp: int = 1,
    pp: int = 1,
    grad_dtype: str = DEFAULT_GRAD_DTYPE,
    n_expert_params: float = 0.0,
    ep: int = 1,
    gathered_params: float = 0.0,
) -> ModelStates:
    """Model-state bytes per GPU: (2 + g + 12) x n_params, split by model parallelism and ZeRO.

    Rajbhandari et al. 2020 (ZeRO, arXiv:1910.02054, section 3.1 and 5, Figure 1): mixed-precision Adam
    keeps 2 Psi bytes of 16-bit weights, g Psi of gradients and K Psi = 12 Psi of fp32 optimizer state
    (master weights, momentum, variance). g = 4 for fp32 gradients (Megatron-LM's bf16 default keeps fp32
    main_grad buffers: 18 bytes/param; Korthikanti et al. 2022 and llm-analysis count the same), 2 for
    16-bit gradients (ZeRO's 16 bytes/param). Tensor and pipeline parallelism divide every part by t x p
    (weights spread evenly); the `n_expert_params` of an MoE (included in n_params) are also split over
    the ep expert-parallel ranks. ZeRO then shards across the dp data-parallel ranks (for experts, dp / ep)
    the optimizer state (stage 1, P_os), also the gradients (stage 2, P_os+g) and also the weights (stage 3,
    P_os+g+p, FSDP), which then gathers `gathered_params` 16-bit parameters at a time (the layers being
    computed and prefetched). Left out: communication buckets and allocator fragmentation.
    """
    if isinstance(n_params, bool) or not isinstance(n_params, (int, float)) or n_params < 0:
        raise InvalidValueError(f"n_params must be a non-negative number, got {n_params!r}")
    for name, value in (("dp", dp), ("tp", tp), ("pp", pp), ("ep", ep)):
        positive_int(name, value)
    if isinstance(zero, bool) or not isinstance(zero, int) or zero not in ZERO_STAGES:
        raise InvalidValueError(f"zero must be one of 0, 1, 2, 3, got {zero!r}")
    grad_bytes = _check_grad_dtype(grad_dtype)
    dense = (n_params - n_expert_params) / (tp * pp)
    experts = n_expert_params / (tp * pp * ep)
    expert_dp = max(dp / ep, 1.0)

    def shard(stage: int) -> float:
        """Parameters per GPU of a state that ZeRO shards from `stage` on."""
        return dense / (dp if zero >= stage else 1) + experts / (expert_dp if zero >= stage else 1)

    weights = WEIGHT_BYTES_PER_PARAM * (shard(3) + (gathered_params if zero >= 3 else 0.0))
    gradients = grad_bytes * shard(2)
    optimizer = OPTIMIZER_BYTES_PER_PARAM * shard(1)
    return ModelStates(weights, gradients, optimizer, weights + gradients + optimizer)


@frozen_dataclass
class Fit:
    """Whether a memory requirement fits an accelerator once a reserve is kept free (truthy when it fits)."""

    required_bytes: float
    accelerator_memory_bytes: float
    reserve_fraction: float
    usable_bytes: float  # accelerator memory x (1 - reserve_fraction)
    headroom_bytes: float  # usable - required; negative when it does not fit
    fits: bool

    def __bool__(self) -> bool:
        return self.fits


def fit(
    required_bytes: float, accelerator_memory_bytes: float, *, reserve_fraction: float = DEFAULT_RESERVE_FRACTION
) -> Fit:
    """Whether `required_bytes` fits in accelerator_memory_bytes x (1 - reserve_fraction)."""
    if isinstance(accelerator_memory_bytes, bool) or not accelerator_memory_bytes > 0:
        raise InvalidValueError(
            f"accelerator memory must be a positive number of bytes, got {accelerator_memory_bytes!r}"
        )
    _check_reserve(reserve_fraction)
    usable = accelerator_memory_bytes * (1 - reserve_fraction)
    return Fit(
        required_bytes,
        accelerator_memory_bytes,
        reserve_fraction,
        usable,
        usable - required_bytes,
        required_bytes <= usable,
    )


@frozen_dataclass
class TrainingMemory:
    """Training memory of one GPU (the first pipeline stage) with mixed-precision AdamW, in bytes."""

    n_params: int
    n_gpus: int
    dp: int  # data-parallel ranks = n_gpus / (tp x pp x cp)
    tp: int
    pp: int
    zero: int
    weights_bytes: float
    gradients_bytes: float
    optimizer_bytes: float
    activations: ActivationMemory
    activations_bytes: float
    total_bytes: float
    cp: int = 1
    ep: int = 1
    grad_dtype: str = DEFAULT_GRAD_DTYPE

    def fits(self, accelerator_memory_bytes: float, *, reserve_fraction: float = DEFAULT_RESERVE_FRACTION) -> Fit:
        """Whether this fits one accelerator of `accelerator_memory_bytes` (see `fit`)."""
        return fit(self.total_bytes, accelerator_memory_bytes, reserve_fraction=reserve_fraction)


def expert_param_count(config: ArchConfig) -> int:
    """Parameters of all routed experts (what expert parallelism shards); 0 for a dense model."""
    if not config.is_moe:
        return 0
    from llmarch.calc.params import mlp_params

    assert config.n_experts is not None
    return config.n_moe_layers * config.n_experts * mlp_params(config, config.expert_d_ff)


def zero3_gathered_params(config: ArchConfig, *, tp: int = 1, ep: int = 1) -> float:
    """Parameters ZeRO-3 / FSDP holds unsharded at once per GPU: two layers (the one computed, the one prefetched)."""
    n_params = count_params(config).total
    layers = config.n_layers + config.n_encoder_layers
    per_layer = (n_params - expert_param_count(config)) / layers + expert_param_count(config) / ep / max(
        config.n_moe_layers, 1
    )
    return 2 * per_layer / tp


#: The keywords of `activation_memory` that a `TrainingLayout` sets.
_ACTIVATION_KEYWORDS = ("micro_batch", "tp", "pp", "sequence_parallel", "recompute", "flash", "dropout", "cp",
                        "virtual_stages", "n_micro_batches")  # fmt: skip


class TrainingLayout(NamedTuple):
    """How one training step is laid out: the keywords `training_memory` and `memory_estimate` take (immutable).

    The n_gpus GPUs form tp x cp x dp x pp (dp = n_gpus / (tp pp cp) data-parallel ranks; ZeRO shards over
    dp x cp, as Megatron-LM's distributed optimizer does; expert parallelism ep divides dp x cp). Defaults
    are what modern training runs: FlashAttention, no dropout, fp32 main gradients (Megatron-LM's bf16
    default). The values are checked by the calculators, which name the keyword.
    """

    micro_batch: int = 1
    n_gpus: int = 1
    zero: int = 0  # ZeRO stage
    tp: int = 1
    pp: int = 1
    sequence_parallel: bool = False
    recompute: str = "none"  # none, selective or full
    flash: bool = True
    dropout: bool = False
    cp: int = 1
    ep: int = 1
    virtual_stages: int = 1  # interleaved 1F1B: model chunks per pipeline rank
    grad_dtype: str = DEFAULT_GRAD_DTYPE
    n_micro_batches: int | None = None  # per step; None: at least pp (see `activation_memory`)

    def activation_keywords(self) -> dict[str, Any]:
        """The keywords `activation_memory` takes, from this layout."""
        return {name: getattr(self, name) for name in _ACTIVATION_KEYWORDS}


def training_memory(config: ArchConfig, *, seq_len: int, **layout: Any) -> TrainingMemory:
    """Training bytes per GPU: model states (`model_states`) + activations (`activation_memory`).

    `layout`: the fields of `TrainingLayout` by keyword (micro_batch, n_gpus, zero, tp, pp, sequence_parallel,
    recompute, flash, dropout, cp, ep, virtual_stages, grad_dtype, n_micro_batches), which says how the GPUs
    are split and what each default is. The activations are those of the first pipeline stage, the stage that
    holds the most.
    """
    knobs = TrainingLayout(**layout)
    n_gpus, zero, tp, pp, cp, ep = knobs.n_gpus, knobs.zero, knobs.tp, knobs.pp, knobs.cp, knobs.ep
    for name, value in (("n_gpus", n_gpus), ("tp", tp), ("pp", pp), ("cp", cp), ("ep", ep)):
        positive_int(name, value)
    if n_gpus % (tp * pp * cp):
        raise InvalidValueError(
            f"n_gpus ({n_gpus}) must be a multiple of tp x pp x cp ({tp} x {pp} x {cp} = {tp * pp * cp})"
        )
    dp = n_gpus // (tp * pp * cp)
    if ep > 1 and (not config.is_moe or (dp * cp) % ep or (config.n_experts or 0) % ep):
        raise InvalidValueError(
            f"ep ({ep}) must divide the experts ({config.n_experts or 0}) and dp x cp ({dp * cp}); 1 for a dense model"
        )
    n_params = count_params(config).total
    gathered = zero3_gathered_params(config, tp=tp, ep=ep) if zero >= 3 else 0.0
    states = model_states(
        n_params, dp=dp * cp, zero=zero, tp=tp, pp=pp, grad_dtype=knobs.grad_dtype,
        n_expert_params=expert_param_count(config), ep=ep, gathered_params=gathered,
    )  # fmt: skip
    acts = activation_memory(config, seq_len=seq_len, **knobs.activation_keywords())
    return TrainingMemory(
        n_params=n_params,
        n_gpus=n_gpus,
        dp=dp,
        tp=tp,
        pp=pp,
        zero=zero,
        weights_bytes=states.weights_bytes,
        gradients_bytes=states.gradients_bytes,
        optimizer_bytes=states.optimizer_bytes,
        activations=acts,
        activations_bytes=acts.total_bytes,
        total_bytes=states.total_bytes + acts.total_bytes,
        cp=cp,
        ep=ep,
        grad_dtype=knobs.grad_dtype,
    )


# ---------------------------------------------------------------------------------------------------------
# Checkpoints on disk
# ---------------------------------------------------------------------------------------------------------


@frozen_dataclass
class CheckpointSize:
    """Bytes of a checkpoint on disk, by part."""

    dtype: str  # dtype the weights are saved in
    weights_bytes: float
    optimizer_bytes: float  # fp32 master weights + Adam m + v (0 for a weights-only export)
    scheduler_bytes: float
    rng_bytes: float  # one RNG state per rank
    total_bytes: float


def checkpoint_size(
    config: ArchConfig, *, dtype: str = DEFAULT_DTYPE, optimizer: bool = True, n_ranks: int = 1
) -> CheckpointSize:
    """Bytes of a checkpoint for saving and resuming training: weights + optimizer + scheduler and RNG state.

    weights = parameters x bytes of `dtype` (`weights_bytes`); optimizer = 12 bytes/param, the fp32
    master weights, Adam m and v that mixed-precision training must restore to resume exactly (ZeRO's K = 12,
    Rajbhandari et al. 2020, arXiv:1910.02054, section 3.1; Megatron's distributed optimizer and DeepSpeed
    save them beside the 16-bit weights, so a bf16 checkpoint is 14 bytes/param). A pure-fp32 run has no
    separate master copy (4 bytes/param less); that case is not modelled. Scheduler and step counters
    (SCHEDULER_STATE_BYTES, about 1 kB) and one RNG state per rank (RNG_STATE_BYTES_PER_RANK, about 10 kB)
    are tiny. Left out: file-format headers and metadata (kilobytes), and duplicated tied embeddings on
    pipeline stages.
    """
    positive_int("n_ranks", n_ranks)
    n_params = count_params(config).total
    weights = weights_bytes(config, dtype)
    opt = float(OPTIMIZER_BYTES_PER_PARAM * n_params) if optimizer else 0.0
    scheduler = float(SCHEDULER_STATE_BYTES) if optimizer else 0.0
    rng = float(RNG_STATE_BYTES_PER_RANK * n_ranks) if optimizer else 0.0
    return CheckpointSize(canonical_dtype(dtype), weights, opt, scheduler, rng, weights + opt + scheduler + rng)


# ---------------------------------------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------------------------------------


def inference_workspace_bytes(
    config: ArchConfig, *, batch: int = 1, seq_len: int, dtype: str = DEFAULT_DTYPE, tp: int = 1, flash: bool = False
) -> float:
    """Peak activation workspace of a forward pass over a `batch` x `seq_len` prompt (prefill), in bytes.

    An estimate: a forward pass without gradients frees each layer's tensors before the next layer, so
    the peak is one layer's largest set of live tensors plus the logits:
      T = batch x seq_len tokens, e = 4 bytes for fp32 weights and 2 otherwise (quantised weights run
      16-bit activations),
      T e [2 d + max(H d_h + 2 K d_h + H d_v (Q, K, V, attention output), n_hidden d_ff_eff) / t]
        the residual stream and the normed input, then the larger of the attention and MLP working sets;
        n_hidden = 3 for a gated MLP (gate, up, product) and 2 otherwise; d_ff_eff = d_ff, or under MoE
        k x d_ff_expert + n_shared x d_ff_shared (each token visits k routed and the shared experts); K = n_kv_heads
        (n_heads for MLA, whose latent is expanded);
      + 2 e batch (H / t) seq_len^2 without FlashAttention: the score matrix and its softmax of one layer;
      + 4 batch vocab / t: fp32 logits of the last position (generation needs no others; an implementation
        that computes logits for every prompt position needs seq_len times more).
    Decoding one token at a time needs far less; the KV cache is counted separately (`kv_cache`).
    """
    positive_int("batch", batch)
    positive_int("seq_len", seq_len)
    _check_tp(config, tp)
    e = 4 if canonical_dtype(dtype) == "fp32" else ACTIVATION_BYTES
    tokens = batch * seq_len
    h, dh, dv = config.n_heads, config.d_head, config.v_head_dim
    kv_heads = h if config.mla_kv_rank is not None else config.n_kv_heads
    attention_width = h * dh + kv_heads * dh + kv_heads * dv + h * dv
    d_ff_eff = config.d_ff
    if config.is_moe:
        assert config.n_experts_per_token is not None
        moe_hidden = config.n_experts_per_token * config.expert_d_ff
        d_ff_eff = max(config.d_ff, moe_hidden + config.n_shared_experts * config.shared_expert_d_ff)
    mlp_width = (3 if config.gated_mlp else 2) * d_ff_eff
    workspace = tokens * e * (2 * config.d_model + max(attention_width, mlp_width) / tp)
    if not flash:
        workspace += 2 * e * batch * (h / tp) * seq_len * seq_len
    workspace += FP32_BYTES * batch * config.vocab_size / tp
    return workspace


@frozen_dataclass
class InferenceMemory:
    """Inference memory of one GPU (tensor parallelism over tp GPUs), in bytes."""

    batch: int
    seq_len: int
    dtype: str
    kv_dtype: str
    tp: int
    flash: bool
    weights_bytes: float
    kv_cache_bytes: float
    activation_bytes: float  # prefill workspace (`inference_workspace_bytes`)
    total_bytes: float

    def fits(self, accelerator_memory_bytes: float, *, reserve_fraction: float = DEFAULT_RESERVE_FRACTION) -> Fit:
        """Whether this fits one accelerator of `accelerator_memory_bytes` (see `fit`)."""
        return fit(self.total_bytes, accelerator_memory_bytes, reserve_fraction=reserve_fraction)


def inference_memory(
    config: ArchConfig,
    *,
    batch: int = 1,
    seq_len: int,
    dtype: str = DEFAULT_DTYPE,
    kv_dtype: str = DEFAULT_DTYPE,
    tp: int = 1,
    flash: bool = False,
) -> InferenceMemory:
    """Inference bytes per GPU: weights in `dtype` + KV cache for batch x seq_len + prefill workspace.

    Weights (`weights_bytes`) are split evenly over the tp GPUs. The KV cache (`kv_cache`) is split by KV
    head: over min(tp, n_kv_heads) GPUs, a KV head being replicated when tp exceeds n_kv_heads (as vLLM
    does); an MLA latent is shared by all heads, so every GPU holds all of it. The workspace is
    `inference_workspace_bytes`.
    """
    from llmarch.calc.serving_memory import serving_memory  # the one serving-memory model (imports this module)

    _check_tp(config, tp)
    # The workload as `estimate-inference` states it: seq_len cached positions per sequence (an
    # encoder-decoder: seq_len encoder and seq_len decoder positions), every prompt prefilled in one step.
    serving = serving_memory(
        config, concurrency=batch, prompt_len=seq_len, generate_len=seq_len if config.is_encoder_decoder else 0,
        dtype=dtype, kv_dtype=kv_dtype, tp=tp, step_tokens=None, flash=flash,
    )  # fmt: skip
    return InferenceMemory(
        batch=batch,
        seq_len=seq_len,
        dtype=serving.dtype,
        kv_dtype=serving.kv_dtype,
        tp=tp,
        flash=flash,
        weights_bytes=serving.weights_bytes,
        kv_cache_bytes=serving.kv_cache_bytes,
        activation_bytes=serving.workspace_bytes,
        total_bytes=serving.total_bytes,
    )


# ---------------------------------------------------------------------------------------------------------
# Everything for one architecture and workload (what `llmarch memory` shows)
# ---------------------------------------------------------------------------------------------------------


@frozen_dataclass
class MemoryEstimate:
    """Inference, training and checkpoint memory of one architecture under one workload."""

    name: str
    n_params: int
    inference: InferenceMemory
    training: TrainingMemory
    checkpoint: CheckpointSize
    accelerator_memory_bytes: float | None
    reserve_fraction: float
    inference_fit: Fit | None
    training_fit: Fit | None
    exceeds_max_seq_len: bool  # seq_len is beyond the context the checkpoint supports

    def assumptions(self) -> dict[str, object]:
        """The inputs and modelling choices behind the numbers, as plain data."""
        acts = self.training.activations
        return {
            "batch": self.inference.batch,
            "seq_len": self.inference.seq_len,
            "dtype": self.inference.dtype,
            "kv_dtype": self.inference.kv_dtype,
            "micro_batch": acts.micro_batch,
            "n_gpus": self.training.n_gpus,
            "dp": self.training.dp,
            "zero": self.training.zero,
            "tp": self.training.tp,
            "pp": self.training.pp,
            "sequence_parallel": acts.sequence_parallel,
            "recompute": acts.recompute,
            "flash": acts.flash,
            "dropout": acts.dropout,
            "checkpoint_dtype": self.checkpoint.dtype,
            "accelerator_memory_bytes": self.accelerator_memory_bytes,
            "reserve_fraction": self.reserve_fraction,
            "exceeds_max_seq_len": self.exceeds_max_seq_len,
            "cp": self.training.cp,
            "ep": self.training.ep,
            "grad_dtype": self.training.grad_dtype,
            "optimizer": f"mixed-precision AdamW: 2 (16-bit weights) + {GRADIENT_BYTES[self.training.grad_dtype]} "
            f"({self.training.grad_dtype} gradients) + 12 (fp32 master, m, v) bytes/param; Rajbhandari et al. "
            "2020, arXiv:1910.02054, section 3.1; fp32 gradients are Megatron-LM's bf16 default (main_grad)",
            "activations": "Korthikanti et al. 2022, arXiv:2205.05198, eq. 1-6 and Table 2, generalised per layer "
            f"(GQA/MLA, gated MLP, MoE); {ACTIVATION_BYTES}-byte activations, {MASK_BYTES}-byte dropout masks",
            "pipeline": "1F1B schedule: stage j holds pp - j micro-batches; the L mod pp longer stages come last",
            "parallelism": "n_gpus = dp x tp x pp x cp; weights, gradients and optimizer states split evenly "
            "over tp x pp (experts also over ep); ZeRO shards over dp x cp",
            "inference": "tensor parallel over tp GPUs (no pipeline); workspace = prefill of batch x seq_len "
            "tokens, one layer live at a time, fp32 logits of the last position",
            "checkpoint": f"weights in checkpoint_dtype + 12 bytes/param fp32 optimizer state + scheduler "
            f"({SCHEDULER_STATE_BYTES} B) + one RNG state per GPU ({RNG_STATE_BYTES_PER_RANK} B)",
            "reserve": "a workload fits when it needs at most accelerator memory x (1 - reserve_fraction)",
        }

    def to_record(self) -> dict[str, object]:
        """Plain-data view: every number by section, the fit decisions and the assumptions."""
        inference = dataclasses.asdict(self.inference)
        inference["fit"] = None if self.inference_fit is None else dataclasses.asdict(self.inference_fit)
        training = dataclasses.asdict(self.training)
        training["fit"] = None if self.training_fit is None else dataclasses.asdict(self.training_fit)
        return {
            "name": self.name,
            "params_total": self.n_params,
            "inference": inference,
            "training": training,
            "checkpoint": dataclasses.asdict(self.checkpoint),
            "assumptions": self.assumptions(),
        }


def memory_estimate(
    config: ArchConfig,
    *,
    batch: int = 1,
    seq_len: int | None,
    dtype: str = DEFAULT_DTYPE,
    kv_dtype: str = DEFAULT_DTYPE,
    checkpoint_dtype: str = DEFAULT_DTYPE,
    accelerator_memory_bytes: float | None = None,
    reserve_fraction: float = DEFAULT_RESERVE_FRACTION,
    **layout: Any,
) -> MemoryEstimate:
    """Inference (`inference_memory`), training (`training_memory`) and checkpoint (`checkpoint_size`) memory.

    `seq_len` None: the preset's training length (`llmarch.calc.flops.training_seq_len`). `layout`: the training
    keywords (`TrainingLayout`); inference runs on the same tp GPUs with the same attention kernel (flash).
    With `accelerator_memory_bytes`, also whether each fits one accelerator (`fit`). The checkpoint holds one
    RNG state per GPU (n_gpus ranks). Defaults are modern training's: FlashAttention, no dropout.
    """
    if seq_len is None:
        seq_len = training_seq_len(config)
    knobs = TrainingLayout(**layout)
    inference = inference_memory(
        config, batch=batch, seq_len=seq_len, dtype=dtype, kv_dtype=kv_dtype, tp=knobs.tp, flash=knobs.flash
    )
    training = training_memory(config, seq_len=seq_len, **layout)

    def fitted(required: InferenceMemory | TrainingMemory) -> Fit | None:
        """Whether `required` fits the accelerator, when one is given (the reserve is checked either way)."""
        if accelerator_memory_bytes is None:
            _check_reserve(reserve_fraction)
            return None
        return required.fits(accelerator_memory_bytes, reserve_fraction=reserve_fraction)

    return MemoryEstimate(
        name=config.name,
        n_params=training.n_params,
        inference=inference,
        training=training,
        checkpoint=checkpoint_size(config, dtype=checkpoint_dtype, n_ranks=knobs.n_gpus),
        accelerator_memory_bytes=accelerator_memory_bytes,
        reserve_fraction=reserve_fraction,
        inference_fit=fitted(inference),
        training_fit=fitted(training),
        exceeds_max_seq_len=seq_len > config.max_seq_len,
    )
