"""Parallelism planner: every valid (tp, pp, dp, cp, ep, micro-batch, virtual stages, recompute, ZeRO, SP)
configuration of a training workload, its step time (`llmarch.calc.step_time`) and memory per GPU
(`llmarch.calc.training_memory`), ranked.

Knobs the caller fixes stay fixed; the rest are searched over every combination that can exist:
tensor parallelism divides the query and KV heads and stays inside a node; context parallelism is a power
of two dividing the sequence into 2 cp chunks (load-balanced causal ring attention); pipeline stages may
hold unequal layer counts (the slowest stage sets the pace) and interleaving needs at least one layer per
chunk and at least pp micro-batches per step (Llama 3's relaxation of Megatron-LM's rules); expert
parallelism divides the experts and dp x cp; the global batch divides into dp x micro-batch x
accumulation steps. Configurations that do not fit the GPU's memory (less a reserve) are dropped.

`plan_training` is the library entry point (also what the design search calls); the whole grid is
evaluated in one vectorised numpy pass (numpy is imported lazily).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from types import MappingProxyType
from typing import Any

from llmarch.calc import step_time as st
from llmarch.calc import training_memory as tm
from llmarch.calc.flops import RECOMPUTE_MODES, Recompute, training_flops_per_token, training_seq_len
from llmarch.calc.params import count_params
from llmarch.catalog.hardware import Accelerator, accelerator, canonical_peak_dtype, training_efficiency
from llmarch.core.checks import positive_int
from llmarch.core.config import ArchConfig
from llmarch.core.errors import InvalidValueError
from llmarch.core.frozen import frozen_dataclass

PLAN_DTYPES = ("bf16", "fp16", "fp8")
#: Largest micro-batch, context-parallel size and interleaving depth the search tries.
MAX_MICRO_BATCH = 32
MAX_CP = 32
MAX_VIRTUAL_STAGES = 8
DEFAULT_TOP = 5
RECOMPUTE_NAMES = {code: name for name, code in st.RECOMPUTE_CODES.items()}


# ---------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------


@frozen_dataclass
class Plan:
    """One parallel configuration of a training workload, its step time, throughput and memory per GPU."""

    tp: int
    pp: int
    dp: int
    cp: int
    ep: int
    zero: int
    recompute: str
    micro_batch: int
    virtual_stages: int
    sequence_parallel: bool
    grad_accum: int  # micro-batches per step on each pipeline
    step_time_s: float
    tokens_per_s_per_gpu: float
    mfu: float  # llmarch's causal convention (attention FLOPs halved by the mask), no recomputation
    hfu: float  # causal convention, recomputed FLOPs included
    mfu_palm: float  # PaLM convention: 6 N + 12 L H Q T per token (Chowdhery et al. 2022, App. B)
    hfu_palm: float
    memory_per_gpu_bytes: float
    fits: bool
    headroom_bytes: float  # usable memory - required; negative when it does not fit
    breakdown: Mapping[str, float]  # seconds per step by part (step_time.BREAKDOWN_PARTS)

    def to_record(self) -> dict[str, Any]:
        record = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "breakdown"}
        record["breakdown"] = dict(self.breakdown)
        return record


@frozen_dataclass
class PlanResult:
    """The ranked plans of one workload (fitting ones only, fastest first), or the closest one when none fits."""

    name: str
    gpu: str
    n_gpus: int
    global_batch: int
    seq_len: int
    dtype: str
    gpus_per_node: int
    fixed: Mapping[str, Any]  # the knobs the caller fixed
    n_candidates: int  # valid configurations evaluated
    n_fitting: int
    plans: tuple[Plan, ...]
    closest: Plan | None  # when nothing fits: the configuration needing the least memory beyond the limit
    accelerator_memory_bytes: float
    reserve_fraction: float
    assumptions: Mapping[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> Plan | None:
        return self.plans[0] if self.plans else None

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "gpu": self.gpu,
            "n_gpus": self.n_gpus,
            "global_batch": self.global_batch,
            "seq_len": self.seq_len,
            "dtype": self.dtype,
            "gpus_per_node": self.gpus_per_node,
            "fixed": dict(self.fixed),
            "n_candidates": self.n_candidates,
            "n_fitting": self.n_fitting,
            "plans": [p.to_record() for p in self.plans],
            "closest": None if self.closest is None else self.closest.to_record(),
            "accelerator_memory_bytes": self.accelerator_memory_bytes,
            "reserve_fraction": self.reserve_fraction,
            "assumptions": dict(self.assumptions),
        }


# ---------------------------------------------------------------------------------------------------------
# The search space
# ---------------------------------------------------------------------------------------------------------


def _divisors(n: int, limit: int | None = None) -> list[int]:
    return [d for d in range(1, (n if limit is None else min(n, limit)) + 1) if n % d == 0]


def axis_values(
    config: ArchConfig, *, n_gpus: int, global_batch: int, seq_len: int, gpus_per_node: int, flash: bool = True
) -> dict[str, tuple[list[Any], str]]:
    """Each knob's individually valid values, with the rule behind them (for one-line error messages)."""
    n_layers = config.n_layers + config.n_encoder_layers
    heads_ok = [t for t in _divisors(n_gpus, gpus_per_node) if config.n_heads % t == 0
                and (config.n_kv_heads % t == 0 or t % config.n_kv_heads == 0)]  # fmt: skip
    cps = [c for c in _divisors(n_gpus, MAX_CP) if c & (c - 1) == 0 and (c == 1 or (flash and seq_len % (2 * c) == 0))]
    eps = [1]
    if config.is_moe:
        assert config.n_experts is not None
        eps = [e for e in _divisors(n_gpus) if config.n_experts % e == 0]
    return {
        "tp": (heads_ok, f"divides n_gpus, n_heads ({config.n_heads}) and n_kv_heads ({config.n_kv_heads}) "
               f"(or is a multiple of them), at most the {gpus_per_node} GPUs of a node"),
        "cp": (cps, "a power of two dividing n_gpus and seq_len / 2 (needs flash attention)"),
        "pp": (_divisors(n_gpus, n_layers), f"divides n_gpus / (tp x cp), at most the {n_layers} layers"),
        "ep": (eps, "divides the experts and dp x cp (1 for a dense model)"),
        "micro_batch": (_divisors(global_batch, MAX_MICRO_BATCH), "divides global_batch / dp"),
        "virtual_stages": (list(range(1, MAX_VIRTUAL_STAGES + 1)),
                           "1, or with pp > 1 at most layers / pp, with at least pp micro-batches per step"),
        "recompute": (list(RECOMPUTE_MODES), "none, selective or full"),
        "zero": ([0, 1, 2, 3], "0, 1, 2 or 3"),
        "sequence_parallel": ([False, True], "true only with tp > 1"),
    }  # fmt: skip


def _joint_mask(g: dict[str, Any], *, n_layers: int, global_batch: int, n_gpus: int) -> Any:
    """Which combinations of the grid `g` (arrays, dp and grad_accum filled in) can exist together."""
    np = st._np()
    ok = n_gpus % (g["tp"] * g["cp"] * g["pp"]) == 0
    ok &= global_batch % np.maximum(g["dp"] * g["micro_batch"], 1) == 0
    ok &= ((g["dp"] * g["cp"]) % g["ep"]) == 0
    ok &= ~(g["sequence_parallel"] & (g["tp"] == 1))
    v = g["virtual_stages"]
    interleaved_ok = (g["pp"] > 1) & (g["pp"] * v <= n_layers) & (g["grad_accum"] >= g["pp"])
    ok &= (v == 1) | interleaved_ok
    return ok


def candidate_grid(
    config: ArchConfig, *, n_gpus: int, global_batch: int, seq_len: int, gpus_per_node: int, flash: bool,
    fixed: Mapping[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Every valid configuration as numpy arrays (one entry per configuration), fixed knobs held.

    Raises InvalidValueError naming a fixed knob whose value cannot exist, or the constraint that leaves
    no configuration at all.
    """
    np = st._np()
    axes = axis_values(config, n_gpus=n_gpus, global_batch=global_batch, seq_len=seq_len,
                       gpus_per_node=gpus_per_node, flash=flash)  # fmt: skip
    values: dict[str, list[Any]] = {}
    for name, (valid, rule) in axes.items():
        if fixed.get(name) is None:
            values[name] = valid
        elif fixed[name] in valid:
            values[name] = [fixed[name]]
        else:
            shown = ", ".join(str(v).lower() for v in valid)
            raise InvalidValueError(f"{name} ({fixed[name]}) cannot be used here: {name} {rule}; valid: {shown}")
    codes = {"recompute": [st.RECOMPUTE_CODES[r] for r in values["recompute"]]}
    names = list(values)
    grids = np.meshgrid(*[np.asarray(codes.get(n, values[n])) for n in names], indexing="ij")
    g = {n: a.ravel() for n, a in zip(names, grids, strict=True)}
    g["sequence_parallel"] = g["sequence_parallel"].astype(bool)
    g["dp"] = n_gpus // (g["tp"] * g["cp"] * g["pp"])
    g["grad_accum"] = global_batch // np.maximum(g["dp"] * g["micro_batch"], 1)
    n_layers = config.n_layers + config.n_encoder_layers
    mask = _joint_mask(g, n_layers=n_layers, global_batch=global_batch, n_gpus=n_gpus)
    if not mask.any():
        raise InvalidValueError(
            f"no configuration of {config.name} on {n_gpus} GPUs can run global_batch {global_batch}: "
            "n_gpus must equal tp x cp x pp x dp, global_batch must be a multiple of dp x micro_batch, and ep "
            "must divide dp x cp; change n_gpus, global_batch or the fixed knobs"
        )
    return {n: a[mask] for n, a in g.items()}


# ---------------------------------------------------------------------------------------------------------
# Memory per GPU over the grid (the same formulas as llmarch.calc.training_memory, vectorised)
# ---------------------------------------------------------------------------------------------------------


def _activation_table(
    config: ArchConfig, g: dict[str, Any], *, seq_len: int, flash: bool, dropout: bool
) -> dict[str, Any]:
    """Per-configuration activation terms at micro-batch 1, from `training_memory.layer_activations`.

    For each distinct (tp, sp, recompute, cp): prefix sums of the stored bytes of the layers in execution
    order (so a stage of n layers is prefix[n]), and the largest layer / attention core (recompute transient).
    """
    np = st._np()
    kinds = tm._layer_kinds(config)
    n = len(g["tp"])
    out = {"prefix": np.zeros((n, len(kinds) + 1)), "full": np.zeros(n), "core": np.zeros(n)}
    keys = np.stack([g["tp"], g["sequence_parallel"].astype(int), g["recompute"], g["cp"]], axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    for row, (tp, sp, rc, cp) in enumerate(unique.tolist()):
        common = {"seq_len": seq_len // cp, "tp": tp, "sequence_parallel": bool(sp), "flash": flash, "dropout": dropout}
        stored = {k: tm.layer_activations(config, recompute=RECOMPUTE_NAMES[rc], moe=k[0], cross_attention=k[1],
                                          **common).total_bytes for k in set(kinds)}  # fmt: skip
        full = [tm.layer_activations(config, moe=k[0], cross_attention=k[1], **common) for k in set(kinds)]
        sel = inverse.ravel() == row
        out["prefix"][sel] = np.concatenate([[0.0], np.cumsum([stored[k] for k in kinds])])
        out["full"][sel] = max(layer.total_bytes for layer in full) if rc == 2 else 0.0
        out["core"][sel] = max(layer.attention_core_bytes for layer in full) if rc == 1 else 0.0
    return out


def grid_memory(
    config: ArchConfig, g: dict[str, Any], *, seq_len: int, flash: bool, dropout: bool, grad_dtype: str
) -> Any:
    """Training bytes per GPU of every configuration in `g`: `training_memory.training_memory`, vectorised."""
    np = st._np()
    table = _activation_table(config, g, seq_len=seq_len, flash=flash, dropout=dropout)
    n_layers = config.n_layers + config.n_encoder_layers
    tp, pp, cp, mb, v = g["tp"], g["pp"], g["cp"], g["micro_batch"], g["virtual_stages"]
    interleave = np.where(v > 1, 1 + (pp - 1) / (pp * v), 1.0)
    in_flight = np.minimum(pp, g["grad_accum"]) * interleave
    base, extra = n_layers // pp, n_layers % pp  # training_memory._peak_stage: longer stages last
    prefix = table["prefix"]
    first = in_flight * np.take_along_axis(prefix, base[:, None], axis=1)[:, 0]
    start = base * (pp - extra)
    end = np.minimum(start + base + 1, n_layers)
    longer = (
        np.minimum(extra, g["grad_accum"])
        * interleave
        * (
            np.take_along_axis(prefix, end[:, None], axis=1)[:, 0]
            - np.take_along_axis(prefix, start[:, None], axis=1)[:, 0]
        )
    )
    layers = np.where(extra > 0, np.maximum(first, longer), first)
    s, d = seq_len // cp, config.d_model
    replicated = np.where(g["sequence_parallel"], 1 / tp, 1.0)
    embedding = in_flight * tm.MASK_BYTES * s * d * replicated if dropout else 0.0
    n_inputs = 2 if config.final_norm else 1
    output = np.where(pp == 1, n_inputs * tm.ACTIVATION_BYTES * s * d * replicated
                      + tm.FP32_BYTES * s * config.vocab_size / tp, 0.0)  # fmt: skip
    activations = mb * (layers + embedding + output + table["full"] + table["core"])

    n_params = count_params(config).total
    experts = tm.expert_param_count(config)
    dense, expert = (n_params - experts) / (tp * pp), experts / (tp * pp * g["ep"])
    dpc, zero = g["dp"] * cp, g["zero"]
    expert_dp = np.maximum(dpc / g["ep"], 1.0)

    def shard(stage: int) -> Any:
        return dense / np.where(zero >= stage, dpc, 1) + expert / np.where(zero >= stage, expert_dp, 1)

    per_layer = (n_params - experts) / n_layers + experts / g["ep"] / max(config.n_moe_layers, 1)
    gathered = np.where(zero >= 3, 2 * per_layer / tp, 0.0)
    states = (tm.WEIGHT_BYTES_PER_PARAM * (shard(3) + gathered) + tm.GRADIENT_BYTES[grad_dtype] * shard(2)
              + tm.OPTIMIZER_BYTES_PER_PARAM * shard(1))  # fmt: skip
    return states + activations


# ---------------------------------------------------------------------------------------------------------
# FLOPs conventions
# ---------------------------------------------------------------------------------------------------------


def palm_flops_per_token(config: ArchConfig, seq_len: int, *, recompute: str = "none") -> float:
    """Training FLOPs per token in the PaLM convention: 6 N + 12 L H Q T (Chowdhery et al. 2022,
    arXiv:2204.02311, Appendix B), N the active parameters, L layers, H heads, Q head width, T the sequence
    length (attention not halved by the causal mask). Recomputation adds a forward (2 N + 4 L H Q T,
    full) or its attention part (4 L H Q T, selective), for HFU."""
    n = count_params(config).active
    attention = 12.0 * (config.n_layers + config.n_encoder_layers) * config.n_heads * config.d_head * seq_len
    extra = {"none": 0.0, "selective": attention / 3, "full": (6.0 * n + attention) / 3}[recompute]
    return 6.0 * n + attention + extra


def causal_flops_per_position(config: ArchConfig, seq_len: int, *, recompute: Recompute = "none") -> float:
    """Training FLOPs per sequence position in llmarch's causal convention, the unit of the plan's tokens.

    Decoder-only: `training_flops_per_token`. An encoder-decoder sequence of `seq_len` positions is a source
    and a target of `seq_len` tokens each (the plan runs every position through both stacks), while
    `training_flops_per_token` averages over those 2 x seq_len tokens: twice that per position.
    """
    tokens_per_position = 2.0 if config.is_encoder_decoder else 1.0
    return tokens_per_position * training_flops_per_token(config, seq_len, recompute=recompute)


def _flops_table(config: ArchConfig, seq_len: int) -> dict[str, tuple[float, float]]:
    """recompute -> (causal FLOPs per position, PaLM FLOPs per position)."""
    modes: tuple[Recompute, ...] = ("none", "selective", "full")
    return {
        r: (causal_flops_per_position(config, seq_len, recompute=r), palm_flops_per_token(config, seq_len, recompute=r))
        for r in modes
    }


# ---------------------------------------------------------------------------------------------------------
# The search
# ---------------------------------------------------------------------------------------------------------


def _check_inputs(config: ArchConfig, n_gpus: int, global_batch: int, seq_len: int, dtype: str, top: int) -> str:
    for name, value in (("n_gpus", n_gpus), ("global_batch", global_batch), ("seq_len", seq_len), ("top", top)):
        positive_int(name, value)
    dtype = canonical_peak_dtype(dtype)
    if dtype not in PLAN_DTYPES:
        raise InvalidValueError(f"dtype ({dtype}) must be one of {', '.join(PLAN_DTYPES)}")
    return dtype


def _evaluate(
    config: ArchConfig, r: st.Rates, g: dict[str, Any], *, seq_len: int, global_batch: int, n_gpus: int,
    flash: bool, dropout: bool, grad_dtype: str,
) -> dict[str, Any]:  # fmt: skip
    """Step-time breakdown, throughput, utilisation and memory of every configuration in the grid."""
    np = st._np()
    shape = st.model_shape(config, seq_len=seq_len)
    knobs = st.Knobs(**{k: g[k] for k in ("tp", "pp", "dp", "cp", "ep", "micro_batch", "virtual_stages",
                                           "sequence_parallel", "recompute", "zero", "grad_accum")})  # fmt: skip
    grad_bytes = float(tm.GRADIENT_BYTES[grad_dtype])
    out = st.step_breakdown(shape, r, knobs, seq_len=seq_len, flash=flash, dropout=dropout, grad_bytes=grad_bytes)
    out["tokens_per_s_per_gpu"] = global_batch * seq_len / (out["step_time_s"] * n_gpus)
    flops = _flops_table(config, seq_len)
    rate = out["tokens_per_s_per_gpu"] / r.peak_flop_per_s
    codes = g["recompute"]
    out["mfu"] = rate * flops["none"][0]
    out["mfu_palm"] = rate * flops["none"][1]
    out["hfu"] = rate * np.choose(codes, [flops[RECOMPUTE_NAMES[c]][0] for c in range(3)])
    out["hfu_palm"] = rate * np.choose(codes, [flops[RECOMPUTE_NAMES[c]][1] for c in range(3)])
    out["memory"] = grid_memory(config, g, seq_len=seq_len, flash=flash, dropout=dropout, grad_dtype=grad_dtype)
    return out


def _plan_at(g: dict[str, Any], ev: dict[str, Any], i: int, usable: float) -> Plan:
    memory = float(ev["memory"][i])
    return Plan(
        tp=int(g["tp"][i]), pp=int(g["pp"][i]), dp=int(g["dp"][i]), cp=int(g["cp"][i]), ep=int(g["ep"][i]),
        zero=int(g["zero"][i]), recompute=RECOMPUTE_NAMES[int(g["recompute"][i])],
        micro_batch=int(g["micro_batch"][i]), virtual_stages=int(g["virtual_stages"][i]),
        sequence_parallel=bool(g["sequence_parallel"][i]), grad_accum=int(g["grad_accum"][i]),
        step_time_s=float(ev["step_time_s"][i]), tokens_per_s_per_gpu=float(ev["tokens_per_s_per_gpu"][i]),
        mfu=float(ev["mfu"][i]), hfu=float(ev["hfu"][i]), mfu_palm=float(ev["mfu_palm"][i]),
        hfu_palm=float(ev["hfu_palm"][i]), memory_per_gpu_bytes=memory, fits=memory <= usable,
        headroom_bytes=usable - memory,
        breakdown=MappingProxyType({p: float(ev[p][i]) for p in st.BREAKDOWN_PARTS}),
    )  # fmt: skip


def plan_training(
    config: ArchConfig,
    *,
    gpu: str | Accelerator,
    n_gpus: int,
    global_batch: int,
    seq_len: int | None = None,
    tp: int | None = None,
    pp: int | None = None,
    cp: int | None = None,
    ep: int | None = None,
    virtual_stages: int | None = None,
    micro_batch: int | None = None,
    recompute: str | None = None,
    zero: int | None = None,
    sequence_parallel: bool | None = None,
    dtype: str = "bf16",
    gpus_per_node: int | None = None,
    top: int = DEFAULT_TOP,
    flash: bool = True,
    dropout: bool = False,
    grad_dtype: str = tm.DEFAULT_GRAD_DTYPE,
    reserve_fraction: float = tm.DEFAULT_RESERVE_FRACTION,
) -> PlanResult:
    """The fastest parallel configurations of training `config` on n_gpus x `gpu`, fixed knobs held.

    global_batch is in sequences of seq_len tokens (default: the preset's training length). Every valid
    configuration (`candidate_grid`) gets a step time (`step_time.step_breakdown`) and a memory per GPU
    (`grid_memory`, equal to `training_memory.training_memory`); those that fit accelerator memory x
    (1 - reserve_fraction) are ranked by step time and the `top` fastest returned. When none fits, `plans`
    is empty and `closest` is the configuration needing the least memory.
    """
    acc = gpu if isinstance(gpu, Accelerator) else accelerator(gpu)
    seq_len = training_seq_len(config) if seq_len is None else seq_len
    dtype = _check_inputs(config, n_gpus, global_batch, seq_len, dtype, top)
    tm._check_grad_dtype(grad_dtype)
    tm._check_reserve(reserve_fraction)
    if gpus_per_node is not None:
        positive_int("gpus_per_node", gpus_per_node)
    if recompute is not None:
        tm._check_recompute(recompute)
    r = st.rates(acc, training_efficiency(acc), dtype=dtype, gpus_per_node=gpus_per_node)
    fixed = {"tp": tp, "pp": pp, "cp": cp, "ep": ep, "virtual_stages": virtual_stages, "micro_batch": micro_batch,
             "recompute": recompute, "zero": zero, "sequence_parallel": sequence_parallel}  # fmt: skip
    g = candidate_grid(config, n_gpus=n_gpus, global_batch=global_batch, seq_len=seq_len,
                       gpus_per_node=r.gpus_per_node, flash=flash, fixed=fixed)  # fmt: skip
    ev = _evaluate(config, r, g, seq_len=seq_len, global_batch=global_batch, n_gpus=n_gpus, flash=flash,
                   dropout=dropout, grad_dtype=grad_dtype)  # fmt: skip
    np = st._np()
    usable = acc.memory_bytes * (1 - reserve_fraction)
    fitting = np.flatnonzero(ev["memory"] <= usable)
    order = fitting[np.lexsort((ev["memory"][fitting], ev["step_time_s"][fitting]))][:top]
    closest = None if len(fitting) else _plan_at(g, ev, int(np.argmin(ev["memory"])), usable)
    return PlanResult(
        name=config.name, gpu=acc.name, n_gpus=n_gpus, global_batch=global_batch, seq_len=seq_len, dtype=dtype,
        gpus_per_node=r.gpus_per_node, fixed=MappingProxyType({k: v for k, v in fixed.items() if v is not None}),
        n_candidates=len(g["tp"]), n_fitting=len(fitting), plans=tuple(_plan_at(g, ev, int(i), usable) for i in order),
        closest=closest, accelerator_memory_bytes=acc.memory_bytes, reserve_fraction=reserve_fraction,
        assumptions=MappingProxyType(_assumptions(r, acc, flash=flash, dropout=dropout, grad_dtype=grad_dtype)),
    )  # fmt: skip


def _assumptions(r: st.Rates, acc: Accelerator, *, flash: bool, dropout: bool, grad_dtype: str) -> dict[str, Any]:
    eff = training_efficiency(acc)
    return {
        "efficiency_row": eff.row,
        "peak_flop_per_s": r.peak_flop_per_s,
        "gemm_fraction": r.gemm_fraction,
        "attention_fraction": r.attention_fraction,
        "hbm_bytes_per_s": r.hbm_bytes_per_s,
        "nvlink_busbw_bytes_per_s": r.nvlink_busbw_bytes_per_s,
        "network_busbw_bytes_per_s": r.network_busbw_bytes_per_s,
        "flash": flash,
        "dropout": dropout,
        "grad_dtype": grad_dtype,
        "mfu": "llmarch causal convention: training_flops_per_token (attention halved by the causal mask) x "
        "tokens/s / dense peak of dtype; mfu_palm: 6 N + 12 L H Q T (Chowdhery et al. 2022, App. B)",
        "sources": dict(eff.sources),
        "not_modelled": "stragglers and jitter, failures and restarts, network congestion beyond nccl-tests "
        "bandwidth, tensor-parallel communication overlap, load imbalance of MoE routing, data loading stalls",
    }


def evaluate_plan(config: ArchConfig, *, gpu: str | Accelerator, n_gpus: int, global_batch: int, **knobs: Any) -> Plan:
    """One fully or partly fixed configuration: the best plan with these knobs, fitting or not.

    The same keywords as `plan_training`; knobs left out are searched. Unlike `plan_training` it returns
    the fastest configuration even when it does not fit (its `fits` says so): for validation against
    published runs, whose memory may exceed this model's estimate.
    """
    result = plan_training(config, gpu=gpu, n_gpus=n_gpus, global_batch=global_batch, top=1,
                           reserve_fraction=knobs.pop("reserve_fraction", 0.0), **knobs)  # fmt: skip
    if result.best is not None:
        return result.best
    assert result.closest is not None
    return result.closest


# ---------------------------------------------------------------------------------------------------------
# Validation against a published run
# ---------------------------------------------------------------------------------------------------------


@frozen_dataclass
class RunCheck:
    """A published run, its measured throughput and this model's prediction for the knobs it publishes."""

    name: str
    measured_tokens_per_s_per_gpu: float
    predicted_tokens_per_s_per_gpu: float
    plan: Plan

    @property
    def error(self) -> float:
        """Relative error of the prediction: predicted / measured - 1."""
        return self.predicted_tokens_per_s_per_gpu / self.measured_tokens_per_s_per_gpu - 1


def check_run(run: Mapping[str, Any], config: ArchConfig) -> RunCheck:
    """Predict one published run (a record of tests/data/training_runs.json) as `llmarch plan` would.

    The record gives gpu, n_gpus, global_batch, seq_len, `knobs` (fixed; the rest searched) and `options`
    (flash, dropout, grad_dtype, dtype); the prediction is the fastest plan that fits (the closest one
    when none does, as the run did fit). The measurement is measured_tokens_per_s_per_gpu, or measured_mfu
    in llmarch's causal convention.
    """
    result = plan_training(config, gpu=run["gpu"], n_gpus=run["n_gpus"], global_batch=run["global_batch"],
                           seq_len=run["seq_len"], top=1, **run.get("knobs", {}), **run.get("options", {}))  # fmt: skip
    plan = result.best or result.closest
    assert plan is not None
    measured = run.get("measured_tokens_per_s_per_gpu")
    if measured is None:
        peak = accelerator(run["gpu"]).peak(run.get("options", {}).get("dtype", "bf16"))
        measured = run["measured_mfu"] * peak / causal_flops_per_position(config, run["seq_len"])
    return RunCheck(run["name"], float(measured), plan.tokens_per_s_per_gpu, plan)


# ---------------------------------------------------------------------------------------------------------
# Why the winner wins
# ---------------------------------------------------------------------------------------------------------

#: Knobs in the order a comparison names them.
KNOB_NAMES = ("tp", "pp", "dp", "cp", "ep", "micro_batch", "virtual_stages", "recompute", "zero", "sequence_parallel")


def explain(result: PlanResult, *, max_parts: int = 2) -> list[str]:
    """One sentence per runner-up: how much slower it is than the winner, the knobs that differ and the
    parts of the step (`step_time.BREAKDOWN_PARTS`) that account for most of the difference."""
    best = result.best
    if best is None:
        return []
    lines = []
    for rank, other in enumerate(result.plans[1:], start=2):
        knobs = [f"{k} {getattr(other, k)} (vs {getattr(best, k)})" for k in KNOB_NAMES
                 if getattr(other, k) != getattr(best, k)]  # fmt: skip
        deltas = sorted(((other.breakdown[p] - best.breakdown[p], p) for p in st.BREAKDOWN_PARTS), reverse=True)
        parts = [f"{p.replace('_', ' ')} +{d:.3g} s" for d, p in deltas[:max_parts] if d > 0]
        gains = [f"{p.replace('_', ' ')} {d:.3g} s" for d, p in deltas[-1:] if d < 0]
        slower = other.step_time_s / best.step_time_s - 1
        memory = other.memory_per_gpu_bytes - best.memory_per_gpu_bytes
        text = f"#{rank} is {slower:.1%} slower"
        if knobs:
            text += " with " + ", ".join(knobs)
        if parts:
            text += ": " + ", ".join(parts)
        if gains:
            text += "; saves " + ", ".join(gains)
        text += f"; memory {'+' if memory >= 0 else '-'}{abs(memory) / 2**30:.1f} GiB per GPU"
        lines.append(text)
    return lines
