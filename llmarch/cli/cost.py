"""Commands about training cost: `llmarch estimate-cost`, `llmarch gpus`, `llmarch regions`."""

from enum import StrEnum
from typing import Annotated, Any

import typer

from llmarch.cli._app import (
    EXIT_THRESHOLD,
    CatalogOption,
    FormatOption,
    GpuBandwidthOverride,
    GpuMemoryOverride,
    GpuPeakOverride,
    OutputFormat,
    OutputOption,
    PricePerGpuHourOption,
    RecomputeChoice,
    WorkloadOption,
    app,
    handle_errors,
    render,
    resolve_specs,
)
from llmarch.core.defaults import DEFAULT_DTYPE, DEFAULT_MFU, DEFAULT_N_GPUS, DEFAULT_PUE, DEFAULT_REGION


class FlopsMethod(StrEnum):
    exact = "exact"
    six_nd = "6nd"


def _share(value: float | None) -> str | None:
    return None if value is None else f"{value:.3f}"


def _estimate_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table cells for people: counts with suffixes, tonnes for CO2e (JSON and CSV keep raw numbers)."""
    from llmarch.report.format import format_co2e, format_count, format_flops, format_kwh, format_usd

    rows = []
    for record in records:
        a = record["assumptions"]
        rows.append(
            {
                "name": record["name"],
                "tokens": format_count(a.get("tokens")),
                "gpu": a.get("gpu"),
                "n_gpus": a.get("n_gpus"),
                "mfu": _share(a.get("mfu", a.get("implied_mfu"))),
                "hfu": _share(a.get("hfu", a.get("implied_hfu"))),
                "training_flops": format_flops(record["training_flops"]),
                "gpu_hours": format_count(record["gpu_hours"]),
                "days": format_count(record["wall_clock_days"]),
                "cost": format_usd(record["cost_usd"]),
                "energy": format_kwh(record["energy_kwh"]),
                "co2e": format_co2e(record["co2e_kg"]),
                "region": a.get("grid_region"),
                "kg CO2e/kWh": a.get("grid_kg_co2e_per_kwh"),
            }
        )
    return rows


def _price_hints(records: list[dict[str, Any]]) -> list[str]:
    """One line per GPU the catalog has no price for, saying how to give one."""
    missing = sorted({r["assumptions"].get("gpu") or "?" for r in records if r.get("cost_usd") is None})
    return [
        f"note: no default price for {gpu}: pass --price-per-gpu-hour USD (or a 'prices' row in --catalog)"
        for gpu in missing
    ]


_TokensOption = Annotated[
    str | None,
    typer.Option(
        help="Training tokens (2T, 1.4e12) or 'chinchilla' (20 per parameter). Default: the preset's published count."
    ),
]
_PresetsArgument = Annotated[
    list[str] | None, typer.Argument(metavar="PRESET...", help="Preset names or files to estimate side by side.")
]


@app.command(
    "estimate-cost",
    epilog=(
        "Examples: llmarch estimate-cost llama-2-70b --gpu a100-80gb --n-gpus 2048 --mfu 0.4 · "
        "llmarch estimate-cost llama-3-8b --tokens chinchilla --gpu h100-sxm --max-cost 1e6 · "
        "llmarch estimate-cost --all --gpu h100-sxm --format csv -o costs.csv · "
        "llmarch estimate-cost --gpu-hours 1022362 --power-w 400 --pue 1.1 --grid-intensity 0.385"
    ),
)
@handle_errors
def estimate_cost_command(
    presets_: _PresetsArgument = None,
    all_presets: Annotated[
        bool, typer.Option("--all", help="Every preset with published training tokens (all of them with --tokens).")
    ] = False,
    tokens: _TokensOption = None,
    gpu: Annotated[str | None, typer.Option(help="Accelerator from 'llmarch gpus', e.g. a100-80gb, h100-sxm.")] = None,
    n_gpus: Annotated[
        int | None, typer.Option(help=f"Number of devices (wall-clock only). Default {DEFAULT_N_GPUS}.")
    ] = None,
    mfu: Annotated[
        float | None, typer.Option(help=f"Model FLOPs utilisation, a fraction in (0, 1]. Default {DEFAULT_MFU}.")
    ] = None,
    price_per_gpu_hour: PricePerGpuHourOption = None,
    pue: Annotated[
        float | None, typer.Option(help=f"Data-centre power usage effectiveness. Default {DEFAULT_PUE}.")
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            help="Grid region: ISO-3 country (fra), US state (us-ca), cloud region (gcp:us-central1), "
            f"or us/world. Default {DEFAULT_REGION} (the US average). See 'llmarch regions'."
        ),
    ] = None,
    grid_intensity: Annotated[
        float | None, typer.Option(help="Grid carbon intensity in kg CO2e per kWh (instead of --region).")
    ] = None,
    seq_len: Annotated[
        int | None, typer.Option(help="Training context length. Default: the preset's training or max context.")
    ] = None,
    recompute: Annotated[
        RecomputeChoice, typer.Option(help="Activation recomputation counted in the FLOPs.")
    ] = RecomputeChoice.none,
    flops_method: Annotated[
        FlopsMethod, typer.Option(help="exact (llmarch's per-token count) or 6nd (6 x params x tokens).")
    ] = FlopsMethod.exact,
    dtype: Annotated[
        str | None, typer.Option(help=f"Compute dtype whose dense peak is used. Default {DEFAULT_DTYPE}.")
    ] = None,
    power_w: Annotated[
        float | None, typer.Option(help="Power per device in W. Default: the catalog's (usually the TDP).")
    ] = None,
    node_overhead_w: Annotated[
        float | None,
        typer.Option(
            help="Server power per GPU beyond the GPU (CPUs, NICs, fans), added to --power-w: e.g. 575 for a "
            "DGX H100 (10.2 kW max for 8 x 700 W GPUs). Default: none (GPU power x PUE only)."
        ),
    ] = None,
    gpu_hours: Annotated[
        float | None,
        typer.Option(
            help="Measured GPU-hours: a footprint (with --power-w or --gpu, --pue, --region or --grid-intensity); "
            "with presets and --gpu, also the MFU and HFU the GPU-hours imply."
        ),
    ] = None,
    global_batch: Annotated[
        int | None, typer.Option(help="Sequences per step: estimate throughput with the plan's step-time model.")
    ] = None,
    tp: Annotated[int | None, typer.Option(help="Tensor parallelism of the plan (others searched).")] = None,
    pp: Annotated[int | None, typer.Option(help="Pipeline stages of the plan.")] = None,
    cp: Annotated[int | None, typer.Option(help="Context parallelism of the plan.")] = None,
    ep: Annotated[int | None, typer.Option(help="Expert parallelism of the plan.")] = None,
    zero: Annotated[int | None, typer.Option(help="ZeRO stage of the plan.")] = None,
    micro_batch: Annotated[int | None, typer.Option(help="Micro-batch of the plan.")] = None,
    max_cost: Annotated[float | None, typer.Option(help="Budget in USD: exit 3 when exceeded.")] = None,
    max_co2e: Annotated[float | None, typer.Option(help="Budget in kg CO2e: exit 3 when exceeded.")] = None,
    max_days: Annotated[float | None, typer.Option(help="Budget in wall-clock days: exit 3 when exceeded.")] = None,
    workload: WorkloadOption = None,
    catalog: CatalogOption = None,
    gpu_memory: GpuMemoryOverride = None,
    gpu_bandwidth: GpuBandwidthOverride = None,
    gpu_peak: GpuPeakOverride = None,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
) -> None:
    """Estimate training time, cost, energy and CO2e of presets on an accelerator (or of measured GPU-hours).
    With a parallel configuration (--global-batch, --tp, --pp, ...) and no --mfu, throughput comes from
    the step-time model of 'llmarch plan'."""
    site = {"power_w": power_w, "pue": pue, "region": region, "grid_kg_co2e_per_kwh": grid_intensity,
            "usd_per_gpu_hour": price_per_gpu_hour, "node_overhead_w": node_overhead_w}  # fmt: skip
    if all_presets:
        presets_ = _every_preset(presets_, tokens)
    if gpu_hours is not None:
        estimates = _footprints(presets_, gpu_hours, gpu=gpu, n_gpus=n_gpus, tokens=tokens, seq_len=seq_len,
                                recompute=recompute, dtype=dtype, mfu=mfu, flops_method=flops_method,
                                site=site)  # fmt: skip
    else:
        parallel = {k: v for k, v in {"tp": tp, "pp": pp, "cp": cp, "ep": ep, "zero": zero,
                                      "micro_batch": micro_batch}.items() if v is not None}  # fmt: skip
        estimates = _estimates(presets_, gpu, tokens=tokens, n_gpus=n_gpus, mfu=mfu, dtype=dtype, seq_len=seq_len,
                               recompute=recompute, flops_method=flops_method, global_batch=global_batch,
                               parallel=parallel, site=site)  # fmt: skip
    _emit(estimates, fmt=fmt, output=output, budgets={"max_cost_usd": max_cost, "max_co2e_kg": max_co2e,
                                                       "max_days": max_days})  # fmt: skip


def _every_preset(named: list[str] | None, tokens: str | None) -> list[str]:
    """--all: every preset; without --tokens only those with published training tokens (the rest named in a
    note on stderr, since their cost needs a token count)."""
    from llmarch.catalog import presets

    names = resolve_specs(named, True)
    if tokens is not None:
        return names
    configs = presets.load_many(names)
    kept = [c.name for c in configs if c.training.tokens is not None]
    left = [c.name for c in configs if c.training.tokens is None]
    if left:
        typer.echo(
            f"note: {len(left)} presets have no published training tokens and are left out (pass --tokens, e.g. "
            f"2T or chinchilla, to include them): {', '.join(left)}",
            err=True,
        )
    return kept


def _emit(estimates: list[Any], *, fmt: OutputFormat, output: str | None, budgets: dict[str, float | None]) -> None:
    """Render the estimates, then one line per exceeded budget on stderr (exit 3 when any)."""
    from llmarch.calc import cost
    from llmarch.report.tables import budget_line

    exceeded = cost.check_budgets(estimates, **budgets)
    records = [e.to_record() for e in estimates]
    if fmt in (OutputFormat.json, OutputFormat.csv):
        render(records, [], fmt=fmt, output=output, json_key="estimates")
    else:
        rows = _estimate_rows(records)
        render(rows, list(rows[0]), fmt=fmt, output=output, json_key="estimates", title="training cost estimate")
    for hint in _price_hints(records):
        typer.echo(hint, err=True)
    for over in exceeded:
        typer.echo(budget_line(over.name, over.option, over.value, over.limit), err=True)
    if exceeded:
        raise typer.Exit(EXIT_THRESHOLD)


def _footprints(presets_: list[str] | None, gpu_hours: float, *, gpu: str | None, n_gpus: int | None,
                tokens: str | None, seq_len: int | None, recompute: RecomputeChoice, dtype: str | None,
                mfu: float | None, flops_method: FlopsMethod, site: dict[str, Any]) -> list[Any]:  # fmt: skip
    """--gpu-hours: a footprint of measured GPU-hours; with presets (and --gpu) also the utilisation they imply."""
    from llmarch.calc import cost
    from llmarch.catalog import presets

    given = {"--mfu": mfu, "--flops-method": None if flops_method is FlopsMethod.exact else flops_method}
    if not presets_:
        given |= {"--tokens": tokens, "--seq-len": seq_len, "--dtype": dtype,
                  "--recompute": None if recompute is RecomputeChoice.none else recompute}  # fmt: skip
    unused = [option for option, value in given.items() if value is not None]
    if unused:
        raise typer.BadParameter(f"{', '.join(unused)} only apply to presets, not to --gpu-hours")
    if not presets_:
        return [cost.footprint(gpu_hours, gpu=gpu, n_gpus=n_gpus, **site)]
    if gpu is None:
        raise typer.BadParameter("pass --gpu: the implied MFU needs the accelerator's peak")
    return [
        cost.footprint(gpu_hours, gpu=gpu, n_gpus=n_gpus, name=config.name, **site,
                       utilization=cost.implied_utilization(config, gpu, gpu_hours=gpu_hours, tokens=tokens,
                                                            seq_len=seq_len, recompute=recompute.value, dtype=dtype))
        for config in presets.load_many(presets_)
    ]  # fmt: skip


def _estimates(presets_: list[str] | None, gpu: str | None, *, recompute: RecomputeChoice, flops_method: FlopsMethod,
               site: dict[str, Any], **options: Any) -> list[Any]:  # fmt: skip
    """Presets on an accelerator: FLOPs at an MFU, or the plan's throughput with a parallel configuration."""
    from llmarch.calc import cost
    from llmarch.catalog import presets

    if not presets_:
        raise typer.BadParameter("name at least one preset (see 'llmarch presets'), or pass --gpu-hours")
    if gpu is None:
        raise typer.BadParameter("pass --gpu (see 'llmarch gpus')")
    return [
        cost.estimate_training_cost(config, gpu, recompute=recompute.value, flops_method=flops_method.value,  # type: ignore[arg-type]
                                    **options, **site)
        for config in presets.load_many(presets_)
    ]  # fmt: skip


@app.command("gpus", epilog="Example: llmarch gpus --format json")
@handle_errors
def gpus_command(
    catalog: CatalogOption = None, fmt: FormatOption = OutputFormat.table, output: OutputOption = None
) -> None:
    """List the accelerator catalog: dense peak FLOP/s per dtype, memory, power, default price and source."""
    from llmarch.catalog.hardware import catalog_records

    records = catalog_records()
    if fmt in (OutputFormat.json, OutputFormat.csv):
        render(records, [], fmt=fmt, output=output, json_key="gpus")
        return
    rows = [
        {
            "gpu": r["name"],
            "model": r["display_name"],
            "bf16 TFLOP/s": _tflops(r["peak_flop_per_s"].get("bf16")),
            "fp16": _tflops(r["peak_flop_per_s"].get("fp16")),
            "fp8": _tflops(r["peak_flop_per_s"].get("fp8")),
            "memory": f"{r['memory_bytes'] / 2**30:g} GB",  # as marketed (JEDEC binary GB)
            "mem. TB/s": _tb_per_s(r["memory_bandwidth_bytes_per_s"]),
            "GPU link GB/s": _gb_per_s(r["interconnect_bytes_per_s"]),
            "power W": r["power_w"],
            "$/GPU-h": None if r["usd_per_gpu_hour"] is None else f"{r['usd_per_gpu_hour']:g} ({r['price_as_of']})",
            "source": r["source"],
        }
        for r in records
    ]
    title = f"{len(rows)} accelerators (dense peaks, never 2:4-sparse; no price: pass --price-per-gpu-hour)"
    render(rows, list(rows[0]), fmt=fmt, output=output, json_key="gpus", title=title)


def _tb_per_s(value: float | None) -> str | None:
    return None if value is None else f"{value / 1e12:g}"


def _gb_per_s(value: float | None) -> str | None:
    return None if value is None else f"{value / 1e9:g}"


def _tflops(value: float | None) -> str | None:
    return None if value is None else f"{value / 1e12:g}"


@app.command("regions", epilog="Example: llmarch regions --format csv -o regions.csv")
@handle_errors
def regions_command(
    kind: Annotated[
        str | None, typer.Option(help="Only this kind: country, us-state, cloud-region, bidding-zone, alias.")
    ] = None,
    catalog: CatalogOption = None,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
) -> None:
    """List the grid carbon intensities --region accepts, with year and source."""
    from llmarch.catalog.hardware import region_records

    records = region_records(kind=kind)
    if fmt in (OutputFormat.json, OutputFormat.csv):
        render(records, [], fmt=fmt, output=output, json_key="regions")
        return
    keys = {"region": "region", "kind": "kind", "description": "name", "kg CO2e/kWh": "kg_co2e_per_kwh",
            "year": "year", "source": "source"}  # fmt: skip
    rows = [{label: r[key] for label, key in keys.items()} for r in records]
    render(rows, list(keys), fmt=fmt, output=output, json_key="regions", title=f"{len(rows)} grid regions")
