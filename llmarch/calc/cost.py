"""Training cost: FLOPs -> GPU-hours and wall-clock time -> dollars, energy and carbon.

Each formula is one small function with its source; `estimate_training_cost` chains them for one
architecture and `footprint` starts from measured GPU-hours instead. Both return a frozen
`CostEstimate` whose `assumptions` list every input and every default that was used, so that a reader
can redo the arithmetic. Hardware numbers come from the catalog (llmarch.catalog.hardware), never from here.

The chain (Patterson et al. 2021, arXiv:2104.10350, section 2; Touvron et al. 2023, arXiv:2302.13971,
section 6):

    training FLOPs  = FLOPs per token x tokens              (llmarch.calc.flops; or 6 N D)
    GPU-seconds     = training FLOPs / (peak FLOP/s x MFU)
    wall-clock s    = GPU-seconds / number of devices       (perfect scaling, no restarts)
    cost (USD)      = GPU-hours x price per GPU-hour
    energy (kWh)    = GPU-hours x power (kW) x PUE
    CO2e (kg)       = energy (kWh) x grid intensity (kg CO2e / kWh)

What is left out: failed runs, restarts, evaluation and checkpoint pauses (the published GPU-hours of
large runs include them, which is one reason a prediction at the run's MFU comes out low); CPU, network
and storage power beyond what the PUE covers; and the embodied carbon of making the hardware.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from llmarch.calc.flops import (
    RECOMPUTE_MODES,
    Recompute,
    chinchilla_tokens,
    six_nd,
    training_flops_per_token,
    training_seq_len,
    training_seq_len_source,
)
from llmarch.calc.params import count_params
from llmarch.catalog.hardware import (
    Accelerator,
    GridIntensity,
    accelerator,
    canonical_peak_dtype,
    default_price,
    grid_intensity,
)
from llmarch.core.checks import finite_number, fraction, non_negative, positive
from llmarch.core.config import ArchConfig
from llmarch.core.defaults import DEFAULT_DTYPE, DEFAULT_MFU, DEFAULT_N_GPUS, DEFAULT_PUE, DEFAULT_REGION
from llmarch.core.errors import InvalidValueError
from llmarch.core.frozen import frozen_dataclass
from llmarch.core.units import parse_count

FLOPS_METHODS: tuple[str, ...] = ("exact", "6nd")

SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86400.0


# -- input checks ------------------------------------------------------------------------------------------


def _check_mfu(mfu: float) -> float:
    return fraction("`mfu`", mfu)


def _check_pue(pue: float) -> float:
    value = finite_number("`pue`", pue)
    if value < 1:
        raise InvalidValueError(f"`pue` is facility energy over IT energy and cannot be below 1, got {pue!r}")
    return value


def _check_n_gpus(n_gpus: int) -> int:
    if isinstance(n_gpus, bool) or not isinstance(n_gpus, int) or n_gpus < 1:
        raise InvalidValueError(f"`n_gpus` must be a positive integer, got {n_gpus!r}")
    return n_gpus


# -- the formulas --------------------------------------------------------------------------------------------


def resolve_tokens(config: ArchConfig, tokens: str | float | None) -> tuple[float, str]:
    """Training tokens and where they come from: given, "chinchilla", or the preset's published count.

    "chinchilla" is ~20 tokens per parameter (Hoffmann et al. 2022, arXiv:2203.15556; llmarch.calc.flops.
    chinchilla_tokens). None means the preset's `training.tokens`; a preset without one is an error.
    """
    if tokens is None:
        if config.training.tokens is None:
            raise InvalidValueError(
                f"{config.name} has no published training tokens; pass `tokens` (a count like 2T, or chinchilla)"
            )
        return float(config.training.tokens), f"preset training.tokens: {config.training.source or 'no source given'}"
    if isinstance(tokens, str) and tokens.strip().lower() == "chinchilla":
        return chinchilla_tokens(config), "chinchilla (20 tokens per parameter, Hoffmann et al. 2022)"
    if isinstance(tokens, str) and tokens.strip().startswith("-"):
        raise InvalidValueError(f"`tokens` must be positive, got {tokens!r}")
    value = parse_count(tokens, what="`tokens`")
    if value <= 0:
        raise InvalidValueError(f"`tokens` must be positive, got {tokens!r}")
    return value, "given"


def training_flops(
    config: ArchConfig, tokens: float, *, seq_len: int, recompute: Recompute = "none", method: str = "exact"
) -> float:
    """Training FLOPs for `tokens` tokens at context `seq_len` (2 FLOPs per multiply-add).

    "exact": llmarch.calc.flops.training_flops_per_token x tokens (weight matmuls, the causal attention term
    and the LM head, x3 for forward + backward, plus the chosen recomputation). "6nd": 6 N D with N the
    active parameters per token (= total for dense models; Kaplan et al. 2020, arXiv:2001.08361), which
    leaves out attention and recomputation.
    """
    tokens = positive("`tokens`", tokens)
    if method == "exact":
        return training_flops_per_token(config, seq_len, recompute=recompute) * tokens
    if method == "6nd":
        if recompute != "none":
            raise InvalidValueError("`recompute` only applies to `flops_method` exact (6ND counts no recomputation)")
        return six_nd(count_params(config).active, tokens)
    raise InvalidValueError(f"`flops_method` must be one of {', '.join(FLOPS_METHODS)}, got {method!r}")


def gpu_hours_from_flops(flops: float, peak_flop_per_s: float, mfu: float) -> float:
    """Device-hours to execute `flops` at a utilisation `mfu` of a device's peak: F / (peak x MFU) / 3600.

    MFU is the fraction of the dense peak the run sustains (Chowdhery et al. 2022, arXiv:2204.02311,
    appendix B). The total does not depend on the number of devices (perfect scaling is assumed); this is
    how a published GPU-hours figure is predicted from FLOPs at the run's MFU.
    """
    return (
        non_negative("flops", flops) / (positive("peak FLOP/s", peak_flop_per_s) * _check_mfu(mfu)) / SECONDS_PER_HOUR
    )


def wall_clock_s(flops: float, n_gpus: int, peak_flop_per_s: float, mfu: float) -> float:
    """Wall-clock seconds on `n_gpus` devices: F / (n x peak x MFU), assuming perfect scaling."""
    return gpu_hours_from_flops(flops, peak_flop_per_s, mfu) * SECONDS_PER_HOUR / _check_n_gpus(n_gpus)


def energy_kwh(gpu_hours: float, power_w: float, pue: float) -> float:
    """Facility energy in kWh: GPU-hours x power (kW) x PUE.

    Power is per device, usually the TDP (an upper bound on what a busy device draws); PUE (power usage
    effectiveness) scales IT energy up to the whole facility. LLaMA's formula (Touvron et al. 2023,
    arXiv:2302.13971, section 6: Wh = GPU-h x GPU power x PUE, with 400 W per A100-80GB and PUE 1.1), after
    Wu et al. 2022 (arXiv:2111.00364).
    """
    return non_negative("`gpu_hours`", gpu_hours) * positive("`power_w`", power_w) / 1000.0 * _check_pue(pue)


def co2e_kg(energy: float, kg_co2e_per_kwh: float) -> float:
    """Operational emissions in kg CO2e: energy (kWh) x grid intensity (kg CO2e / kWh), location-based.

    LLaMA: tCO2eq = MWh x 0.385 (Touvron et al. 2023, arXiv:2302.13971, section 6 and Table 15).
    """
    return non_negative("energy", energy) * non_negative("`grid_kg_co2e_per_kwh`", kg_co2e_per_kwh)


def cost_usd(gpu_hours: float, usd_per_gpu_hour: float) -> float:
    """Rental cost in USD: GPU-hours x price per GPU-hour (on demand; no discounts, storage or egress)."""
    return non_negative("`gpu_hours`", gpu_hours) * non_negative("`usd_per_gpu_hour`", usd_per_gpu_hour)


# -- estimates ----------------------------------------------------------------------------------------------


@frozen_dataclass
class CostEstimate:
    """Cost, energy and carbon of one training run, in SI-style units (None = an input was missing).

    `assumptions` records every input and default used; `assumptions["defaults"]` names the ones that
    were defaults rather than given.
    """

    name: str
    training_flops: float | None  # None for a footprint from measured GPU-hours
    gpu_hours: float
    wall_clock_s: float | None  # None when the number of devices is unknown
    cost_usd: float | None  # None without a price
    energy_kwh: float | None  # None without a power figure
    co2e_kg: float | None
    assumptions: Mapping[str, Any]

    @property
    def wall_clock_days(self) -> float | None:
        return None if self.wall_clock_s is None else self.wall_clock_s / SECONDS_PER_DAY

    def to_record(self) -> dict[str, Any]:
        """Plain-data view: the `estimates` rows of `llmarch estimate-cost --format json`."""
        return {
            "name": self.name,
            "training_flops": self.training_flops,
            "gpu_hours": self.gpu_hours,
            "wall_clock_days": self.wall_clock_days,
            "cost_usd": self.cost_usd,
            "energy_kwh": self.energy_kwh,
            "co2e_kg": self.co2e_kg,
            "assumptions": dict(self.assumptions),
        }


def _resolve_grid(region: str | None, kg_co2e_per_kwh: float | None, defaults: list[str]) -> dict[str, Any]:
    if region is not None and kg_co2e_per_kwh is not None:
        raise InvalidValueError("give `region` or `grid_kg_co2e_per_kwh`, not both")
    if kg_co2e_per_kwh is not None:
        value = non_negative("`grid_kg_co2e_per_kwh`", kg_co2e_per_kwh)
        return {"grid_region": None, "grid_kg_co2e_per_kwh": value, "grid_year": None, "grid_source": "given"}
    if region is None:
        region = DEFAULT_REGION
        defaults.append("grid_region")
    grid: GridIntensity = grid_intensity(region)
    return {
        "grid_region": grid.region,
        "grid_kg_co2e_per_kwh": grid.kg_co2e_per_kwh,
        "grid_year": grid.year,
        "grid_source": grid.source,
    }


def _resolve_power(gpu: Accelerator | None, power_w: float | None) -> dict[str, Any]:
    if power_w is not None:
        return {"power_w": positive("`power_w`", power_w), "power_source": "given"}
    if gpu is not None and gpu.power_w is not None:
        return {"power_w": gpu.power_w, "power_source": f"catalog ({gpu.power_basis})"}
    missing = f"none published for {gpu.name}" if gpu is not None else "no `gpu`"
    return {"power_w": None, "power_source": f"unknown ({missing}); pass `power_w` for energy and CO2e"}


def with_node_overhead(power: dict[str, Any], node_overhead_w: float | None) -> dict[str, Any]:
    """Power per GPU with a share of the rest of its server added: CPUs, memory, NICs, switches and fans.

    A GPU's TDP is not what its node draws per GPU: NVIDIA's DGX H100 is specified at ~10.2 kW maximum for
    8 GPUs of 700 W (~1.27 kW per GPU, so ~575 W of overhead each), the DGX A100 at 6.5 kW for 8 GPUs of
    400 W (~410 W each). None or 0 leaves the power as it is (GPU power x PUE, as LLaMA and Llama 2 counted).
    """
    if not node_overhead_w or power["power_w"] is None:
        return power
    overhead = positive("`node_overhead_w`", node_overhead_w)
    return {"power_w": power["power_w"] + overhead,
            "power_source": f"{power['power_source']} + {overhead:g} W node overhead per GPU (given)"}  # fmt: skip


def _resolve_price(gpu: Accelerator | None, usd_per_gpu_hour: float | None) -> dict[str, Any]:
    if usd_per_gpu_hour is not None:
        price = non_negative("`usd_per_gpu_hour`", usd_per_gpu_hour)
        return {"usd_per_gpu_hour": price, "price_source": "given"}
    default = default_price(gpu.name) if gpu is not None else None
    if default is None:
        missing = f"no default price for {gpu.name}" if gpu is not None else "no `gpu`"
        return {"usd_per_gpu_hour": None, "price_source": f"unknown ({missing}); pass `usd_per_gpu_hour`"}
    return {
        "usd_per_gpu_hour": default.usd_per_gpu_hour,
        "price_source": f"default on-demand price as of {default.as_of} ({default.source}); not a quote",
    }


def _energy_and_carbon(gpu_hours: float, power: dict[str, Any], pue: float, grid: dict[str, Any]) -> tuple[Any, Any]:
    if power["power_w"] is None:
        return None, None
    energy = energy_kwh(gpu_hours, power["power_w"], pue)
    return energy, co2e_kg(energy, grid["grid_kg_co2e_per_kwh"])


def _resolve_site(
    acc: Accelerator | None,
    pue: float | None,
    region: str | None,
    grid_kg_co2e_per_kwh: float | None,
    power_w: float | None,
    usd_per_gpu_hour: float | None,
    defaults: list[str],
) -> tuple[float, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """PUE, grid intensity, power per device and price per GPU-hour (each with its source): given, or the
    defaults (each default used is appended to `defaults`, which the estimate's assumptions list)."""
    if pue is None:
        pue = DEFAULT_PUE
        defaults.append("pue")
    pue = _check_pue(pue)
    grid = _resolve_grid(region, grid_kg_co2e_per_kwh, defaults)
    if power_w is None:
        defaults.append("power_w")
    if usd_per_gpu_hour is None:
        defaults.append("usd_per_gpu_hour")
    return pue, grid, _resolve_power(acc, power_w), _resolve_price(acc, usd_per_gpu_hour)


def _resolve_global_batch(config: ArchConfig, global_batch: int | None, seq_len: int) -> tuple[int, str]:
    """Sequences per step for the planner: given, else the preset's published batch (sequences or tokens)."""
    if global_batch is not None:
        return global_batch, "given"
    if config.training.global_batch_seqs:
        return config.training.global_batch_seqs, "preset training.global_batch_seqs"
    if config.training.global_batch_tokens:
        return max(1, round(config.training.global_batch_tokens / seq_len)), "preset training.global_batch_tokens"
    raise InvalidValueError(
        f"{config.name} publishes no global batch; pass `global_batch` (sequences per step) with a parallel "
        "configuration"
    )


def planned_throughput(
    config: ArchConfig, acc: Accelerator, *, n_gpus: int, seq_len: int, dtype: str, global_batch: int | None,
    parallel: Mapping[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Tokens/s per GPU of the fastest fitting plan (llmarch.calc.plan) with the given knobs, and its details."""
    from llmarch.calc.plan import plan_training

    batch, batch_source = _resolve_global_batch(config, global_batch, seq_len)
    result = plan_training(config, gpu=acc, n_gpus=n_gpus, global_batch=batch, seq_len=seq_len, dtype=dtype, top=1,
                           **parallel)  # fmt: skip
    best = result.best
    if best is None:
        assert result.closest is not None
        raise InvalidValueError(
            f"no parallel configuration of {config.name} fits {n_gpus} x {acc.name} (the closest needs "
            f"{-result.closest.headroom_bytes / 2**30:.1f} GiB more per GPU); change `n_gpus` or the knobs, or pass "
            "`mfu`"
        )
    plan = {k: getattr(best, k) for k in ("tp", "pp", "dp", "cp", "ep", "zero", "recompute", "micro_batch",
                                          "virtual_stages", "sequence_parallel", "grad_accum")}  # fmt: skip
    return {"tokens_per_s_per_gpu": best.tokens_per_s_per_gpu, "mfu": best.mfu, "hfu": best.hfu,
            "mfu_palm": best.mfu_palm, "step_time_s": best.step_time_s, "global_batch": batch,
            "global_batch_source": batch_source, "plan": plan}  # fmt: skip


def estimate_training_cost(
    config: ArchConfig,
    gpu: str | Accelerator,
    *,
    tokens: str | float | None = None,
    n_gpus: int | None = None,
    mfu: float | None = None,
    dtype: str | None = None,
    seq_len: int | None = None,
    recompute: Recompute = "none",
    flops_method: str = "exact",
    usd_per_gpu_hour: float | None = None,
    power_w: float | None = None,
    pue: float | None = None,
    region: str | None = None,
    grid_kg_co2e_per_kwh: float | None = None,
    node_overhead_w: float | None = None,
    global_batch: int | None = None,
    parallel: Mapping[str, Any] | None = None,
) -> CostEstimate:
    """Estimate the cost of training `config` on `gpu`: FLOPs, GPU-hours, days, USD, kWh and kg CO2e.

    Throughput: with a parallel configuration (`parallel` knobs of llmarch.calc.plan.plan_training, or a
    `global_batch`) and no `mfu`, the planner's step-time model gives tokens/s per GPU (n_gpus is then
    required); otherwise model FLOPs / (peak x MFU). `mfu` is always model FLOPs utilisation: recomputed
    FLOPs are not counted in it (they appear in `hfu`, Chowdhery et al. 2022, App. B). Defaults (recorded
    in the assumptions): tokens = the preset's published count; one device; MFU 0.4; bf16; the preset's
    training context; PUE 1.1; region "us" (0.385 kg CO2e/kWh); the catalog's power and default price.
    """
    defaults: list[str] = []
    acc = gpu if isinstance(gpu, Accelerator) else accelerator(gpu)
    n_tokens, tokens_source = resolve_tokens(config, tokens)
    if tokens is None:
        defaults.append("tokens")
    use_plan = mfu is None and (global_batch is not None or bool(parallel))
    if use_plan and n_gpus is None:
        raise InvalidValueError("`n_gpus` is required with a parallel configuration (the plan depends on it)")
    if n_gpus is None:
        n_gpus = DEFAULT_N_GPUS
        defaults.append("n_gpus")
    n_gpus = _check_n_gpus(n_gpus)
    if dtype is None:
        defaults.append("dtype")
    dtype = canonical_peak_dtype(dtype or DEFAULT_DTYPE)
    peak = acc.peak(dtype)
    seq_source = "given" if seq_len is not None else training_seq_len_source(config)
    if seq_len is None:
        seq_len = training_seq_len(config)
        defaults.append("seq_len")
    if recompute not in RECOMPUTE_MODES:
        raise InvalidValueError(f"`recompute` must be one of {', '.join(RECOMPUTE_MODES)}, got {recompute!r}")
    if flops_method not in FLOPS_METHODS:
        raise InvalidValueError(f"`flops_method` must be one of {', '.join(FLOPS_METHODS)}, got {flops_method!r}")
    pue, grid, power, price = _resolve_site(acc, pue, region, grid_kg_co2e_per_kwh, power_w, usd_per_gpu_hour, defaults)
    power = with_node_overhead(power, node_overhead_w)
    hardware_flops = training_flops(config, n_tokens, seq_len=seq_len, recompute=recompute, method=flops_method)
    model_flops = training_flops(config, n_tokens, seq_len=seq_len, method=flops_method)
    planned: dict[str, Any] = {}
    if use_plan:
        knobs = {**(parallel or {}), **({"recompute": recompute} if recompute != "none" else {})}
        planned = planned_throughput(config, acc, n_gpus=n_gpus, seq_len=seq_len, dtype=dtype,
                                     global_batch=global_batch, parallel=knobs)  # fmt: skip
        hours = n_tokens / planned["tokens_per_s_per_gpu"] / SECONDS_PER_HOUR
        mfu = model_flops / (hours * SECONDS_PER_HOUR * peak)
    else:
        if mfu is None:
            mfu = DEFAULT_MFU
            defaults.append("mfu")
        hours = gpu_hours_from_flops(model_flops, peak, _check_mfu(mfu))
    energy, co2e = _energy_and_carbon(hours, power, pue, grid)
    assumptions: dict[str, Any] = {
        "tokens": n_tokens, "tokens_source": tokens_source, "flops_method": flops_method,
        "flops_per_token": hardware_flops / n_tokens, "seq_len": seq_len, "seq_len_source": seq_source,
        "recompute": recompute, "gpu": acc.name, "gpu_name": acc.display_name, "dtype": dtype, "peak_flop_per_s": peak,
        "peak_source": acc.source, "n_gpus": n_gpus, "mfu": mfu, "hfu": mfu * hardware_flops / model_flops,
        "mfu_source": "plan (llmarch.calc.plan step-time model)" if use_plan else "given or default",
        "utilization": "mfu (model FLOPs; recomputed FLOPs are in hfu)", **planned, **price, **power, "pue": pue,
        **grid, "scaling": "the plan's step time" if use_plan else "perfect (GPU-hours independent of n_gpus); "
        "no restarts, evaluation or checkpoint pauses", "defaults": defaults,
    }  # fmt: skip
    return CostEstimate(
        name=config.name,
        training_flops=hardware_flops,
        gpu_hours=hours,
        wall_clock_s=hours * SECONDS_PER_HOUR / n_gpus,
        cost_usd=None if price["usd_per_gpu_hour"] is None else cost_usd(hours, price["usd_per_gpu_hour"]),
        energy_kwh=energy,
        co2e_kg=co2e,
        assumptions=MappingProxyType(assumptions),
    )


def implied_utilization(
    config: ArchConfig, gpu: str | Accelerator, *, gpu_hours: float, tokens: str | float | None = None,
    seq_len: int | None = None, recompute: Recompute = "none", dtype: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The MFU and HFU a published run implies: training FLOPs / (GPU-hours x 3600 x dense peak).

    MFU counts model FLOPs only (llmarch's causal convention, and `mfu_palm` in the PaLM convention
    6 N + 12 L H Q T, Chowdhery et al. 2022, App. B); HFU adds the recomputed FLOPs of `recompute`.
    Published GPU-hours usually include restarts and evaluation, so these are lower bounds of the
    utilisation the run sustained.
    """
    from llmarch.calc.plan import palm_flops_per_token

    acc = gpu if isinstance(gpu, Accelerator) else accelerator(gpu)
    n_tokens, tokens_source = resolve_tokens(config, tokens)
    seq_len = seq_len or training_seq_len(config)
    peak = acc.peak(canonical_peak_dtype(dtype or DEFAULT_DTYPE))
    device_flops = positive("`gpu_hours`", gpu_hours) * SECONDS_PER_HOUR * peak
    model = training_flops(config, n_tokens, seq_len=seq_len)
    hardware = training_flops(config, n_tokens, seq_len=seq_len, recompute=recompute)
    palm = palm_flops_per_token(config, seq_len) * n_tokens
    return {"tokens": n_tokens, "tokens_source": tokens_source, "seq_len": seq_len, "training_flops": model,
            "implied_mfu": model / device_flops, "implied_hfu": hardware / device_flops,
            "implied_mfu_palm": palm / device_flops, "recompute": recompute}  # fmt: skip


def footprint(
    gpu_hours: float,
    *,
    power_w: float | None = None,
    pue: float | None = None,
    region: str | None = None,
    grid_kg_co2e_per_kwh: float | None = None,
    node_overhead_w: float | None = None,
    gpu: str | Accelerator | None = None,
    usd_per_gpu_hour: float | None = None,
    n_gpus: int | None = None,
    name: str = "measured",
    utilization: Mapping[str, Any] | None = None,
) -> CostEstimate:
    """Energy, carbon and cost from measured GPU-hours (no architecture, no FLOPs).

    The same energy and carbon formulas as `estimate_training_cost`, from a published or metered
    GPU-hours figure: how LLaMA's Table 15 and Llama 2's Table 2 footprints are computed. Power comes
    from `power_w`, else the catalog row of `gpu`; wall-clock time is given only with `n_gpus`.
    `utilization` (from `implied_utilization`, for a preset's published run) adds the MFU and HFU the
    GPU-hours imply, and the training FLOPs.
    """
    defaults: list[str] = []
    hours = positive("`gpu_hours`", gpu_hours)
    acc = None if gpu is None else (gpu if isinstance(gpu, Accelerator) else accelerator(gpu))
    pue, grid, power, price = _resolve_site(acc, pue, region, grid_kg_co2e_per_kwh, power_w, usd_per_gpu_hour, defaults)
    power = with_node_overhead(power, node_overhead_w)
    if n_gpus is not None:
        n_gpus = _check_n_gpus(n_gpus)
    energy, co2e = _energy_and_carbon(hours, power, pue, grid)
    assumptions: dict[str, Any] = {
        "gpu_hours_source": "given (measured or published)",
        "gpu": None if acc is None else acc.name,
        "n_gpus": n_gpus,
        **price,
        **power,
        "pue": pue,
        **grid,
        **(utilization or {}),
        "defaults": defaults,
    }
    return CostEstimate(
        name=name,
        training_flops=None if utilization is None else utilization["training_flops"],
        gpu_hours=hours,
        wall_clock_s=None if n_gpus is None else hours * SECONDS_PER_HOUR / n_gpus,
        cost_usd=None if price["usd_per_gpu_hour"] is None else cost_usd(hours, price["usd_per_gpu_hour"]),
        energy_kwh=energy,
        co2e_kg=co2e,
        assumptions=MappingProxyType(assumptions),
    )


# -- budget gates -------------------------------------------------------------------------------------------


@frozen_dataclass
class BudgetExceeded:
    """One estimate over one budget (the CLI prints one line per instance and exits with code 3)."""

    name: str  # the estimate's name
    option: str  # the budget's CLI option, "--max-cost", "--max-co2e" or "--max-days" (the report's key too)
    value: float  # the estimate, in the option's unit (USD, kg CO2e, days)
    limit: float


def check_budgets(
    estimates: Iterable[CostEstimate],
    *,
    max_cost_usd: float | None = None,
    max_co2e_kg: float | None = None,
    max_days: float | None = None,
) -> list[BudgetExceeded]:
    """The budgets each estimate exceeds, in order. A budget on a quantity that could not be estimated
    (no price, no power, no device count) is an InvalidValueError saying which input to add."""
    gates = [
        ("max_cost_usd", "--max-cost", max_cost_usd, "cost_usd", "a price: pass `usd_per_gpu_hour`"),
        ("max_co2e_kg", "--max-co2e", max_co2e_kg, "co2e_kg", "a power figure: pass `power_w`"),
        ("max_days", "--max-days", max_days, "wall_clock_days", "a device count: pass `n_gpus`"),
    ]
    for keyword, _, limit, _, _ in gates:
        if limit is not None:
            non_negative(f"`{keyword}`", limit)
    out: list[BudgetExceeded] = []
    for estimate in estimates:
        for keyword, option, limit, attribute, needs in gates:
            if limit is None:
                continue
            value = getattr(estimate, attribute)
            if value is None:
                raise InvalidValueError(f"`{keyword}` needs {needs} ({estimate.name} has none)")
            if value > limit:
                out.append(BudgetExceeded(estimate.name, option, value, limit))
    return out
