"""`llmarch design`: from a budget to ranked architectures with their training and serving cost.

The pipeline: budget -> training FLOPs (llmarch.calc.design.resolve_budget) -> target parameters and tokens
under a scaling law, inference-aware when a lifetime of served tokens is given (llmarch.calc.scaling) ->
a vectorised sweep of shapes within the size band (llmarch.calc.design.sweep) -> a shortlist, each built as
an ArchConfig and counted by count_params -> training cost (llmarch.calc.cost.estimate_training_cost, the
same call as `llmarch estimate-cost`) and serving cost (llmarch.serving.estimate.estimate_inference, the same
call as `llmarch estimate-inference`) -> ranked by total cost: training USD plus, with inference tokens, the
lifetime serving USD (GPU-hours where a price is missing).

Every candidate trains on the design's token count, so candidates differ in predicted loss only through their
size (all within the band, which the laws cannot tell apart) and in cost through their shape.
"""

from __future__ import annotations

from typing import Any

from llmarch.calc.cost import CostEstimate, estimate_training_cost
from llmarch.calc.design import (
    DEFAULT_GLOBAL_BATCH_TOKENS,
    DEFAULT_TOP,
    Budget,
    ShapeSpace,
    attention_label,
    checked_config,
    row,
    shortlist,
    sweep,
)
from llmarch.calc.scaling import DEFAULT_LAW, ComputeOptimal, InferenceAware, compute_optimal, inference_aware
from llmarch.core.config import ArchConfig
from llmarch.core.defaults import DEFAULT_DESIGN_GPU
from llmarch.core.errors import InvalidValueError
from llmarch.core.frozen import frozen_dataclass
from llmarch.serving.estimate import DEFAULT_GENERATE_LEN, InferenceEstimate, estimate_inference

#: Tensor-parallel degrees tried for serving, smallest first (GPUs come in nodes of 2, 4 and 8).
SERVING_TP = (1, 2, 4, 8)


@frozen_dataclass
class ServingOptions:
    """The serving workload each candidate is estimated on (estimate_inference's keywords)."""

    gpu: str | None = None  # default: the training GPU
    prompt_len: int | None = None  # default: the design's context less generate_len
    generate_len: int = DEFAULT_GENERATE_LEN
    dtype: str = "bf16"
    usd_per_gpu_hour: float | None = None


@frozen_dataclass
class TrainingOptions:
    """The training run each candidate is costed on (estimate_training_cost's and plan_training's keywords).

    With `n_gpus`, no `mfu` and the training planner (llmarch.calc.plan) available, the best candidates are
    costed at the throughput of their fastest parallel plan for `global_batch_tokens` per step; otherwise (and
    for the rest of the shortlist) at `mfu` (default: llmarch.calc.cost's).
    """

    gpu: str = DEFAULT_DESIGN_GPU
    n_gpus: int | None = None
    mfu: float | None = None
    usd_per_gpu_hour: float | None = None
    region: str | None = None
    global_batch_tokens: float = DEFAULT_GLOBAL_BATCH_TOKENS
    use_planner: bool = True


#: The `designs` columns read from the design's serving estimate (None when it was not served), by attribute.
_SERVING_COLUMNS = {
    "serving_gpu": "gpu",
    "serving_tp": "tp",
    "serving_batch": "batch",
    "serving_memory_per_gpu_bytes": "total_bytes",
    "serving_tokens_per_s": "tokens_per_s",
    "serving_usd_per_million_tokens": "usd_per_million_tokens",
}


@frozen_dataclass
class Candidate:
    """One concrete architecture with its size, predicted loss, training and serving cost."""

    config: ArchConfig
    shape: dict[str, Any]  # the sweep's row (plain scalars)
    tokens: float
    predicted_loss: float
    training: CostEstimate
    serving: InferenceEstimate | None  # None: it does not fit even at tensor parallelism 8
    total_usd: float | None
    total_gpu_hours: float | None
    seq_len: int = 0  # training context
    plan: Any = None  # the training planner's fastest Plan (llmarch.calc.plan), when it costed this candidate
    plan_note: str | None = None  # why the planner did not cost it (None when it did or was not asked)

    def to_record(self, rank: int, inference_tokens: float) -> dict[str, Any]:
        """The `designs` row of `llmarch design --format json`."""
        c, s, t, v = self.config, self.shape, self.training, self.serving
        six_n = 6.0 * s["params_active"]
        return {
            "rank": rank,
            "name": c.name,
            "params_total": s["params_total"],
            "params_active": s["params_active"],
            "tokens": self.tokens,
            "tokens_per_param": self.tokens / s["params_active"],
            "predicted_loss": self.predicted_loss,
            "n_layers": c.n_layers,
            "d_model": c.d_model,
            "n_heads": c.n_heads,
            "n_kv_heads": c.n_kv_heads,
            "d_head": c.d_head,
            "d_ff": c.d_ff,
            "vocab_size": c.vocab_size,
            "attention": attention_label(s),
            "sliding_window": c.sliding_window,
            "global_every": c.global_every,
            "mla_kv_rank": c.mla_kv_rank,
            "n_experts": c.n_experts,
            "n_experts_per_token": c.n_experts_per_token,
            "aspect_ratio": c.d_model / c.n_layers,
            "max_seq_len": c.max_seq_len,
            "kv_bytes_per_token": s["kv_bytes_per_token"],
            "training_flops_per_token": s["training_flops_per_token"],
            "six_n_flops_per_token": six_n,
            "flops_per_token_over_6n": s["training_flops_per_token"] / six_n,
            "training_flops": t.training_flops,
            "training_cost_model": "mfu" if self.plan is None else "plan",
            "training_mfu": t.assumptions.get("mfu") if self.plan is None else self.plan.mfu,
            "training_tokens_per_s_per_gpu": self.tokens / (t.gpu_hours * 3600.0),
            "training_plan": None if self.plan is None else _plan_knobs(self.plan),
            "training_plan_note": self.plan_note,
            "training_gpu_hours": t.gpu_hours,
            "training_days": t.wall_clock_days,
            "training_usd": t.cost_usd,
            "training_co2e_kg": t.co2e_kg,
            **{column: None if v is None else getattr(v, name) for column, name in _SERVING_COLUMNS.items()},
            "lifetime_serving_usd": _lifetime_usd(v, inference_tokens),
            "total_usd": self.total_usd,
            "total_gpu_hours": self.total_gpu_hours,
        }


def _lifetime_usd(serving: InferenceEstimate | None, inference_tokens: float) -> float | None:
    if serving is None or serving.usd_per_million_tokens is None:
        return None
    return serving.usd_per_million_tokens * inference_tokens / 1e6


@frozen_dataclass
class DesignResult:
    """What `llmarch design` reports: the target, the sweep's size, and the ranked candidates."""

    budget: Budget
    law: str
    compute_optimal: ComputeOptimal
    inference_aware: InferenceAware | None
    target_params: float
    target_tokens: float
    space: ShapeSpace
    n_evaluated: int
    n_considered: int
    n_in_band: int
    ranked_by: str  # "total_usd" or "total_gpu_hours"
    top: int
    candidates: tuple[Candidate, ...]  # every costed candidate, best first (the first `top` are the designs)

    @property
    def inference_tokens(self) -> float:
        return 0.0 if self.inference_aware is None else self.inference_aware.inference_tokens

    @property
    def designs(self) -> tuple[Candidate, ...]:
        return self.candidates[: self.top]

    def records(self, *, every: bool = False) -> list[dict[str, Any]]:
        """The `designs` rows (every costed candidate with every=True, for the Pareto plot)."""
        chosen = self.candidates if every else self.designs
        return [c.to_record(i + 1, self.inference_tokens) for i, c in enumerate(chosen)]


def serving_prompt_len(options: ServingOptions, space: ShapeSpace) -> int:
    """The prompt of the serving workload: given, or the design's context less the generated tokens."""
    if options.prompt_len is not None:
        return options.prompt_len
    if space.context <= options.generate_len:
        raise InvalidValueError(f"context ({space.context}) must exceed generate_len ({options.generate_len})")
    return space.context - options.generate_len


def serving_estimate(
    config: ArchConfig, options: ServingOptions, default_gpu: str, prompt_len: int
) -> InferenceEstimate | None:
    """estimate_inference at the smallest tensor-parallel degree (1, 2, 4, 8, dividing n_heads) where one request
    fits; None if none does."""
    gpu = options.gpu or default_gpu
    for tp in SERVING_TP:
        if config.n_heads % tp:
            continue
        estimate = estimate_inference(
            config, gpu, prompt_len=prompt_len, generate_len=options.generate_len, tp=tp,
            dtype=options.dtype, usd_per_gpu_hour=options.usd_per_gpu_hour,
        )  # fmt: skip
        if estimate.fits:
            return estimate
    return None


def _totals(
    cost: CostEstimate, served: InferenceEstimate | None, inference_tokens: float
) -> tuple[float | None, float | None]:
    """(total USD, total GPU-hours) of training plus serving `inference_tokens` (None where unknown)."""
    total_usd = None
    serving_usd = _lifetime_usd(served, inference_tokens) if inference_tokens else 0.0
    if cost.cost_usd is not None and serving_usd is not None:
        total_usd = cost.cost_usd + serving_usd
    total_hours = None
    if not inference_tokens:
        total_hours = cost.gpu_hours
    elif served is not None and served.tokens_per_s:
        total_hours = cost.gpu_hours + inference_tokens / served.tokens_per_s * served.n_gpus / 3600.0
    return total_usd, total_hours


def _costed(config: ArchConfig, shape: dict[str, Any], tokens: float, loss: float, inference_tokens: float,
            training: TrainingOptions, serving: ServingOptions, space: ShapeSpace) -> Candidate:  # fmt: skip
    """The candidate at the MFU model's training cost (estimate_training_cost) and its serving estimate."""
    cost = estimate_training_cost(
        config, training.gpu, tokens=tokens, n_gpus=training.n_gpus, mfu=training.mfu, seq_len=space.seq_len,
        usd_per_gpu_hour=training.usd_per_gpu_hour, region=training.region,
    )  # fmt: skip
    served = serving_estimate(config, serving, training.gpu, serving_prompt_len(serving, space))
    totals = _totals(cost, served, inference_tokens)
    return Candidate(config, shape, tokens, loss, cost, served, *totals, seq_len=space.seq_len)


def _plan_knobs(plan: Any) -> dict[str, Any]:
    keys = ("tp", "pp", "dp", "cp", "ep", "zero", "recompute", "micro_batch", "virtual_stages", "sequence_parallel",
            "grad_accum", "step_time_s", "mfu", "memory_per_gpu_bytes")  # fmt: skip
    return {k: getattr(plan, k) for k in keys}


def _planned(candidate: Candidate, training: TrainingOptions, space: ShapeSpace, inference_tokens: float) -> Candidate:
    """The candidate costed at its fastest parallel plan (llmarch.calc.plan.plan_training, as `llmarch plan`):
    GPU-hours = tokens / (tokens/s per GPU) / 3600, with cost, energy and CO2e from those GPU-hours
    (llmarch.calc.cost.footprint). Unchanged when the planner is missing, no cluster size is given, or no plan
    fits (then `plan_note` says why)."""
    import dataclasses

    from llmarch.calc.cost import footprint
    from llmarch.core.errors import LlmarchError

    if not training.use_planner or training.n_gpus is None or training.mfu is not None:
        return candidate  # an explicit MFU overrides the planner, as in `llmarch estimate-cost`
    try:
        from llmarch.calc.plan import plan_training
    except ImportError:  # the planner is not part of this installation
        return candidate
    sequences = max(1, round(training.global_batch_tokens / space.seq_len))
    try:
        result = plan_training(candidate.config, gpu=training.gpu, n_gpus=training.n_gpus, global_batch=sequences,
                               seq_len=space.seq_len, top=1)  # fmt: skip
    except LlmarchError as exc:
        return dataclasses.replace(candidate, plan_note=f"planner: {exc}")
    if not result.plans:
        return dataclasses.replace(candidate, plan_note=f"planner: no parallel plan fits {training.n_gpus} x "
                                   f"{training.gpu} at {sequences} x {space.seq_len} tokens per step")  # fmt: skip
    plan = result.plans[0]
    hours = candidate.tokens / plan.tokens_per_s_per_gpu / 3600.0
    cost = footprint(hours, gpu=training.gpu, n_gpus=training.n_gpus, usd_per_gpu_hour=training.usd_per_gpu_hour,
                     region=training.region, name=candidate.config.name)  # fmt: skip
    cost = dataclasses.replace(cost, training_flops=candidate.training.training_flops)
    total_usd, total_hours = _totals(cost, candidate.serving, inference_tokens)
    return dataclasses.replace(candidate, training=cost, plan=plan, total_usd=total_usd, total_gpu_hours=total_hours)


def design(
    budget: Budget,
    *,
    law: str = DEFAULT_LAW,
    inference_tokens: float = 0.0,
    space: ShapeSpace | None = None,
    training: TrainingOptions | None = None,
    serving: ServingOptions | None = None,
    top: int = DEFAULT_TOP,
    name: str = "design",
    source: str | None = None,
) -> DesignResult:
    """Design architectures for `budget` (see the module docstring); candidates are named `name`-1, -2, ...
    in rank order, and `source` (default: a line naming the law and budget) goes into each config."""
    from llmarch.calc.scaling import scaling_law

    space = (space or ShapeSpace()).check()
    training = training or TrainingOptions()
    serving = serving or ServingOptions()
    if top < 1:
        raise InvalidValueError(f"top must be a positive integer, got {top}")
    optimal = compute_optimal(budget.compute_flops, law=law)
    aware = inference_aware(budget.compute_flops, inference_tokens, law=law) if inference_tokens else None
    n_target, d_target = (aware.params, aware.tokens) if aware else (optimal.params, optimal.tokens)
    found = sweep(n_target, space)
    if not len(found):
        raise InvalidValueError(
            f"no shape within {space.tolerance:.0%} of {n_target:.3g} parameters fits the constraints"
            + (" (max_kv_bytes_per_token)" if space.max_kv_bytes_per_token else "")
            + "; widen tolerance, aspect_ratio or ff_ratio, or allow more attention kinds"
        )
    fit = scaling_law(law).loss_fit
    source = source or f"designed by llmarch design (law {law}, {budget.compute_flops:.3g} FLOPs)"
    costed = []
    for index in shortlist(found, tokens=d_target, inference_tokens=inference_tokens, n_best=2 * top):
        shape = row(found.shapes, index)
        config = checked_config(shape, space, name=name, source=source)
        loss = float(fit.loss(shape["params_active"], d_target))
        costed.append(_costed(config, shape, d_target, loss, inference_tokens, training, serving, space))
    ranked_by = "total_usd" if all(c.total_usd is not None for c in costed) else "total_gpu_hours"
    ranked = sorted(costed, key=lambda c: _rank_key(c, ranked_by))
    # The planner (seconds per candidate) re-costs the best 2 x top; they are re-ranked ahead of the rest.
    planned = [_planned(c, training, space, inference_tokens) for c in ranked[: 2 * top]]
    if any(c.plan is not None for c in planned):
        ranked_by = "total_usd" if all(c.total_usd is not None for c in planned) else "total_gpu_hours"
        ranked = sorted(planned, key=lambda c: _rank_key(c, ranked_by)) + ranked[2 * top :]
    ranked = [_renamed(c, f"{name}-{i + 1}" if top > 1 else name) for i, c in enumerate(ranked)]
    return DesignResult(
        budget=budget, law=law, compute_optimal=optimal, inference_aware=aware, target_params=n_target,
        target_tokens=d_target, space=space, n_evaluated=found.n_evaluated, n_considered=found.n_considered,
        n_in_band=len(found),
        ranked_by=ranked_by, top=top, candidates=tuple(ranked),
    )  # fmt: skip


#: Totals within this factor of each other count as equal when ranking (then serving cost decides).
RANK_RESOLUTION = 1.005


def _rank_key(candidate: Candidate, ranked_by: str) -> tuple[Any, ...]:
    """Sort key: the objective in 0.5% steps (the laws cannot tell such differences apart), then the serving
    cost per token, the predicted loss, and the simpler layout (a window the workload never fills is free)."""
    import math

    value = getattr(candidate, ranked_by)
    step = math.floor(math.log(value) / math.log(RANK_RESOLUTION)) if value else 0
    serving = candidate.serving.usd_per_million_tokens if candidate.serving is not None else None
    return (value is None, step, serving is None, serving or 0.0, candidate.predicted_loss,
            candidate.config.sliding_window is not None)  # fmt: skip


def _renamed(candidate: Candidate, name: str) -> Candidate:
    """The candidate with its config renamed (the name is the only field that changes)."""
    import dataclasses

    config = candidate.config.replace(name=name)
    training = dataclasses.replace(candidate.training, name=name)
    served = None if candidate.serving is None else dataclasses.replace(candidate.serving, name=name)
    return dataclasses.replace(candidate, config=config, training=training, serving=served)


def design_source(budget: Budget, *, law: str, inference_tokens: str | float | None = None) -> str:
    """The `source` of a designed preset: who designed it, from which budget, under which law."""
    from llmarch._version import __version__

    inputs = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in budget.details.items())
    served = f", inference tokens {inference_tokens}" if inference_tokens not in (None, 0, "0") else ""
    return f"designed by llmarch {__version__} (llmarch design: {inputs}; law {law}{served})"


def preset_yaml(candidate: Candidate, *, name: str | None = None) -> str:
    """A complete preset file for `candidate` (renamed `name`, which must be the file's stem for the preset to
    load by name): every non-default field, its training tokens and context, and a header naming its exact
    parameter count. Loading it gives the same config (and count) back."""
    import yaml

    from llmarch.calc.params import count_params

    config = candidate.config.replace(
        name=name or candidate.config.name,
        family="llmarch-design",
        description=f"Designed by llmarch design: {attention_label(candidate.shape)}, "
        f"{candidate.shape['params_total']:,} parameters ({candidate.shape['params_active']:,} active), "
        f"trained on {candidate.tokens:.4g} tokens, predicted loss {candidate.predicted_loss:.4f}.",
        training={"tokens": float(round(candidate.tokens)), "seq_len": candidate.seq_len,
                  "source": "llmarch design (scaling law target)"},
    )  # fmt: skip
    counts = count_params(config)
    data = config.to_dict(include_defaults=False)
    header = (
        f"# {config.name}: designed by llmarch design; exact parameter count {counts.total:,}"
        f" (active {counts.active:,}).\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
