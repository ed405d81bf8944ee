"""`llmarch estimate-inference`: what each architecture costs to serve on a GPU, and why."""

from pathlib import Path
from typing import Annotated, Any

import typer

from llmarch.cli._app import (
    AllPresetsOption,
    CatalogOption,
    FormatOption,
    GpuBandwidthOverride,
    GpuMemoryOverride,
    GpuPeakOverride,
    OutputFormat,
    OutputOption,
    PresetOverridesArgument,
    PricePerGpuHourOption,
    WorkloadOption,
    app,
    handle_errors,
    keywords_to_flags,
    resolve_specs,
)
from llmarch.core.defaults import (
    DEFAULT_ACCEPTANCE_RATE,
    DEFAULT_DRAFT_LEN,
    DEFAULT_DTYPE,
    DEFAULT_GENERATE_LEN,
    DEFAULT_GPU_MEMORY_UTILIZATION,
    DEFAULT_PREFILL_CHUNK,
    DEFAULT_PROMPT_LEN,
)
from llmarch.report.format import assumption_rows, format_bytes, format_count, format_seconds, format_usd


def _context_cell(r: dict[str, Any]) -> str:
    """'2.56k' or '10.2k > 4.1k!' when the workload is beyond the model's context."""
    text = format_count(r["context_len"])
    return f"{text} > {format_count(r['max_seq_len'])}!" if r["exceeds_max_seq_len"] else text


def _max_context_cell(r: dict[str, Any]) -> str | None:
    value = r["max_context_len"]
    if value is None:
        return "unbounded"
    return format_count(value) + (" (model)" if r["max_context_limited_by"] == "model" else "")


def _table_rows(records: list[dict[str, Any]], *, calibrated: bool) -> list[dict[str, Any]]:
    """Display rows: sizes with binary prefixes, times in s/ms/µs, rates rounded (JSON keeps raw SI numbers)."""
    rows = []
    for r in records:
        ttft, tpot = format_seconds(r["ttft_s"]), format_seconds(r["tpot_s"])
        if calibrated and r["ttft_default_s"] is not None:
            ttft = f"{ttft} (default {format_seconds(r['ttft_default_s'])})"
            tpot = f"{tpot} (default {format_seconds(r['tpot_default_s'])})"
        running = r["running_requests"]
        load = str(r["batch"]) + (f" ({running} running)" if running is not None and running < r["batch"] else "")
        rows.append(
            {
                "name": r["name"],
                "fits": r["fits"],
                "context": _context_cell(r),
                "load": f"{load} [{r['load_source']}]",
                "max batch": r["max_batch"],
                "max context": _max_context_cell(r),
                "weights": format_bytes(r["weights_bytes"]),
                "KV cache": format_bytes(r["kv_cache_bytes"]),
                "KV/seq": format_bytes(r["kv_cache_bytes_per_sequence"]),
                "workspace": format_bytes(r["workspace_bytes"]),
                "per GPU": format_bytes(r["total_bytes"]),
                "TTFT": ttft,
                "TPOT": tpot,
                "latency": format_seconds(r["request_latency_s"]),
                "decode bound": r["bound"],
                "tok/s/GPU": format_count(r["tokens_per_s_per_gpu"]),
                "tok/s": format_count(r["tokens_per_s"]),
                "$/M in": format_usd(r["usd_per_million_input_tokens"]),
                "$/M out": format_usd(r["usd_per_million_output_tokens"]),
                "$/M blended": format_usd(r["usd_per_million_tokens_blended"]),
            }
        )
    return rows


def _curve_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The throughput-vs-latency curve of every model, one row per load."""
    rows = []
    for r in records:
        for p in r["curve"]:
            rows.append(
                {
                    "name": r["name"],
                    "in flight": p["concurrency"],
                    "TTFT": format_seconds(p["ttft_s"]),
                    "TPOT": format_seconds(p["tpot_s"]),
                    "latency": format_seconds(p["request_latency_s"]),
                    "tok/s/GPU": format_count(p["tokens_per_s_per_gpu"]),
                    "tok/s": format_count(p["tokens_per_s"]),
                }
            )
    return rows


#: Assumptions shown once under the table (per-model ones are shown per model when they differ).
_SKIP_ASSUMPTIONS = ("defaults", "efficiency_sources")


def _flags(text: str) -> str:
    """Library text (which names keyword arguments) as this command's flags: `usd_per_gpu_hour` ->
    --price-per-gpu-hour."""
    import inspect

    return keywords_to_flags(text, inspect.signature(estimate_inference_command).parameters)


def _assumption_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every assumption as (key, value); a value that differs between models is listed per model."""
    named = [(r["name"], r["assumptions"]) for r in records]
    rows = [
        {"assumption": k, "value": _flags(v) if isinstance(v, str) else v}
        for k, v in assumption_rows(named, skip=_SKIP_ASSUMPTIONS)
    ]
    defaults = records[0]["assumptions"].get("defaults") or []
    rows.append({"assumption": "defaults used", "value": ", ".join(defaults) or "none"})
    return rows


def _render(
    records: list[dict[str, Any]], *, fmt: OutputFormat, output: str | None, title: str, calibrated: bool,
    show_curve: bool,
) -> None:  # fmt: skip
    from llmarch.report import tables as report

    if fmt is OutputFormat.json:
        report.emit(report.to_json(report.envelope("estimates", records)), output)
        return
    if fmt is OutputFormat.csv:
        report.emit(report.to_csv(records), output)
        return
    rows = _table_rows(records, calibrated=calibrated)
    columns = list(rows[0])
    assumptions = _assumption_rows(records)
    curve = _curve_rows(records) if show_curve else []
    curve_title = "throughput vs latency (requests in flight per replica)"
    if fmt is OutputFormat.markdown:
        text = report.to_markdown(rows, columns, title=title) + "\n"
        if curve:
            text += report.to_markdown(curve, list(curve[0]), title=curve_title) + "\n"
        text += report.to_markdown(assumptions, ["assumption", "value"], title="assumptions")
        report.emit(text, output)
        return
    from rich.console import Group

    parts = [report.rich_table(rows, columns, title=title)]
    if curve:
        parts.append(report.rich_table(curve, list(curve[0]), title=curve_title))
    parts.append(report.rich_table(assumptions, ["assumption", "value"], title="assumptions"))
    tables = Group(*parts)
    if output is not None:
        report.emit(report.render_text(tables), output)
    else:
        report.print_rich(tables)


def _read_calibration(path: str) -> Any:
    from llmarch.core.io import read_json_file
    from llmarch.serving.calibration import parse_bench

    return parse_bench(read_json_file(path, what="--calibrate"), source=Path(path).name)


def _title(first: Any) -> str:
    """The table title: GPUs, parallelism, dtypes, request shape and batching of the first estimate."""
    return (
        f"serving estimate: {first.n_gpus} x {first.gpu} (tp {first.tp}"
        + (f", pp {first.pp}" if first.pp > 1 else "")
        + f"), {first.dtype} weights, {first.kv_dtype} KV, {first.prompt_len} prompt + {first.generate_len} "
        + f"generated tokens, {first.batching} batching"
        + (f", beam {first.beam_width}" if first.beam_width > 1 else "")
    )


# -- options of estimate-inference (Typer reads the help texts from these annotations) --

_GpuOption = Annotated[str | None, typer.Option(help="Accelerator from 'llmarch gpus', e.g. h100-sxm (required).")]
_TpOption = Annotated[int, typer.Option(help="Tensor-parallel GPUs per replica (must divide n_heads).")]
_PpOption = Annotated[int, typer.Option(help="Pipeline stages per replica (layers split over them).")]
_NGpusOption = Annotated[
    int | None, typer.Option(help="GPUs in all, a multiple of tp x pp (the replicas serve independently).")
]
_ExpertParallelOption = Annotated[
    bool, typer.Option("--expert-parallel", help="MoE: place whole experts on the tp GPUs (all-to-all).")
]
_DtypeOption = Annotated[
    str, typer.Option(help="Weights: fp32, bf16, fp16, fp8 (W8A8), int8, w8a8, int4 (AWQ/GPTQ), mxfp4, nvfp4.")
]
_KvDtypeOption = Annotated[
    str | None,
    typer.Option(help="KV-cache dtype (bf16, fp16, fp8, int8). Default: as deployed (16-bit; fp8 with fp8 weights)."),
]
_ComputeDtypeOption = Annotated[
    str | None, typer.Option(help="Dtype whose peak FLOP/s the matmuls run at. Default: the scheme's.")
]
_PromptLenOption = Annotated[int, typer.Option("--prompt-len", "--prompt", help="Prompt tokens per request.")]
_GenerateLenOption = Annotated[int, typer.Option("--generate-len", "--generate", help="Generated tokens per request.")]
_BatchOption = Annotated[
    int | None,
    typer.Option(
        help="Requests in flight per replica. Default: the largest meeting --max-ttft/--max-tpot, "
        "else the load of --request-rate, else the maximum-throughput load."
    ),
]
_MaxBatchOption = Annotated[
    bool, typer.Option("--max-batch", help="Serve the maximum-throughput load (the default without --batch).")
]
_MaxTtftOption = Annotated[float | None, typer.Option(help="Target time to first token, seconds.")]
_MaxTpotOption = Annotated[float | None, typer.Option(help="Target time per output token, seconds.")]
_RequestRateOption = Annotated[float | None, typer.Option(help="Requests per second over all GPUs.")]
_StaticOption = Annotated[
    bool, typer.Option("--static", help="Static batching (prefill the batch, then decode it), not continuous.")
]
_BeamWidthOption = Annotated[int, typer.Option(help="Beam search width: one KV cache per beam.")]
_PrefillChunkOption = Annotated[
    int, typer.Option(help="Tokens per engine step (chunked prefill budget); 0: every prompt in one step.")
]
_GpuMemoryUtilizationOption = Annotated[
    float | None,
    typer.Option(help=f"Fraction of GPU memory the engine uses (vLLM's). Default {DEFAULT_GPU_MEMORY_UTILIZATION:g}."),
]
_ReserveFractionOption = Annotated[
    float | None, typer.Option(help="Fraction of GPU memory kept free (1 - --gpu-memory-utilization).")
]
_PrefixHitRateOption = Annotated[
    float | None, typer.Option(help="Fraction of each prompt found in the prefix cache (not prefilled).")
]
_DraftOption = Annotated[str | None, typer.Option(help="Draft model preset for speculative decoding.")]
_DraftLenOption = Annotated[int, typer.Option(help="Tokens the draft proposes per step.")]
_AcceptanceRateOption = Annotated[
    float | None, typer.Option(help=f"Probability a drafted token is accepted. Default {DEFAULT_ACCEPTANCE_RATE:g}.")
]
_FlopEfficiencyOption = Annotated[
    float | None, typer.Option(help="Large-GEMM fraction of the dense peak. Default: the efficiency catalog's.")
]
_BandwidthEfficiencyOption = Annotated[
    float | None, typer.Option(help="Achieved fraction of peak memory bandwidth. Default: the catalog's.")
]
_LinkBandwidthOption = Annotated[
    str | None,
    typer.Option(
        help="Per-GPU, one-direction tensor-parallel link bandwidth per second, e.g. 450GB (NVLink 4), 300GB "
        "(A100 NVLink 3), 32GB (PCIe 4.0 x16). Default: half the catalog's both-ways interconnect of --gpu."
    ),
]
_AllreduceLatencyOption = Annotated[
    float | None, typer.Option(help="Seconds of fixed cost per all-reduce. Default: the catalog's.")
]
_FlashOption = Annotated[bool, typer.Option(help="Fused attention (no seq x seq score matrix in the workspace).")]
_CalibrateOption = Annotated[
    str | None,
    typer.Option(
        metavar="BENCH.json",
        help="A 'llmarch bench --format json' file from the same GPU model: time attention at its measured rates "
        "(the default-rate times are shown beside).",
    ),
]
_ShowCurveOption = Annotated[
    bool, typer.Option("--curve", help="Also show the throughput-vs-latency curve (1, 2, 4, ... in flight).")
]
_PlotOption = Annotated[
    str | None,
    typer.Option(metavar="FILE.png", help="Also draw throughput per GPU against TPOT and latency (matplotlib)."),
]


@app.command(
    "estimate-inference",
    epilog=(
        "Examples: llmarch estimate-inference llama-2-70b --gpu h100-sxm --tp 4 --n-gpus 8 · "
        "llmarch estimate-inference llama-3-8b --gpu a100-80gb --max-ttft 0.5 --max-tpot 0.05 --curve · "
        "llmarch estimate-inference mistral-7b --gpu h100-sxm --dtype fp8 --batch 64 --plot serve.png"
    ),
)
@handle_errors
def estimate_inference_command(
    presets_: PresetOverridesArgument = None,
    all_presets: AllPresetsOption = False,
    gpu: _GpuOption = None,
    tp: _TpOption = 1,
    pp: _PpOption = 1,
    n_gpus: _NGpusOption = None,
    expert_parallel: _ExpertParallelOption = False,
    dtype: _DtypeOption = DEFAULT_DTYPE,
    kv_dtype: _KvDtypeOption = None,
    compute_dtype: _ComputeDtypeOption = None,
    prompt_len: _PromptLenOption = DEFAULT_PROMPT_LEN,
    generate_len: _GenerateLenOption = DEFAULT_GENERATE_LEN,
    batch: _BatchOption = None,
    max_batch: _MaxBatchOption = False,
    max_ttft: _MaxTtftOption = None,
    max_tpot: _MaxTpotOption = None,
    request_rate: _RequestRateOption = None,
    static: _StaticOption = False,
    beam_width: _BeamWidthOption = 1,
    prefill_chunk: _PrefillChunkOption = DEFAULT_PREFILL_CHUNK,
    gpu_memory_utilization: _GpuMemoryUtilizationOption = None,
    reserve_fraction: _ReserveFractionOption = None,
    prefix_hit_rate: _PrefixHitRateOption = None,
    draft: _DraftOption = None,
    draft_len: _DraftLenOption = DEFAULT_DRAFT_LEN,
    acceptance_rate: _AcceptanceRateOption = None,
    flop_efficiency: _FlopEfficiencyOption = None,
    bandwidth_efficiency: _BandwidthEfficiencyOption = None,
    link_bandwidth: _LinkBandwidthOption = None,
    allreduce_latency: _AllreduceLatencyOption = None,
    flash: _FlashOption = True,
    price_per_gpu_hour: PricePerGpuHourOption = None,
    calibrate: _CalibrateOption = None,
    show_curve: _ShowCurveOption = False,
    plot: _PlotOption = None,
    workload: WorkloadOption = None,
    catalog: CatalogOption = None,
    gpu_memory: GpuMemoryOverride = None,
    gpu_bandwidth: GpuBandwidthOverride = None,
    gpu_peak: GpuPeakOverride = None,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
) -> None:
    """Serving estimates per preset on a GPU, as engines run it (continuous batching with chunked prefill, or
    --static): weights, KV cache and workspace per GPU; the load (given, the largest meeting latency targets,
    or the maximum-throughput one); per-request TTFT, TPOT and latency; tokens/s per GPU and in all; USD per
    million input, output and blended tokens. A workload beyond a model's context is flagged in the table and
    the JSON. One preset that does not fit is an error (exit 1) saying what would fit."""
    from llmarch.catalog import presets
    from llmarch.core.errors import InvalidValueError
    from llmarch.core.units import parse_bytes
    from llmarch.serving import estimate as inference

    specs = resolve_specs(presets_, all_presets)
    if gpu is None:
        raise typer.BadParameter("pass --gpu (see 'llmarch gpus')")
    if max_batch and batch is not None:
        raise typer.BadParameter("give --batch or --max-batch, not both")
    if prefill_chunk < 0:
        raise InvalidValueError(f"--prefill-chunk must be a positive number of tokens, or 0; got {prefill_chunk}")
    calibration = None if calibrate is None else _read_calibration(calibrate)
    options: dict[str, Any] = {
        "generate_len": generate_len, "batch": batch, "request_rate": request_rate, "max_ttft_s": max_ttft,
        "max_tpot_s": max_tpot, "batching": "static" if static else "continuous", "beam_width": beam_width,
        "dtype": dtype, "kv_dtype": kv_dtype, "compute_dtype": compute_dtype, "tp": tp, "pp": pp, "n_gpus": n_gpus,
        "expert_parallel": expert_parallel, "prefill_chunk": prefill_chunk or None,
        "gpu_memory_utilization": gpu_memory_utilization, "reserve_fraction": reserve_fraction,
        "prefix_hit_rate": prefix_hit_rate, "draft": None if draft is None else presets.load(draft),
        "draft_len": draft_len, "acceptance_rate": acceptance_rate, "flop_efficiency": flop_efficiency,
        "bandwidth_efficiency": bandwidth_efficiency,
        "link_bandwidth_bytes_per_s": None if link_bandwidth is None else parse_bytes(link_bandwidth,
                                                                                      what="--link-bandwidth"),
        "allreduce_latency_s": allreduce_latency, "flash": flash, "usd_per_gpu_hour": price_per_gpu_hour,
        "calibration": calibration,
    }  # fmt: skip
    configs = presets.load_many(specs)
    estimates = [inference.estimate_inference(config, gpu, prompt_len=prompt_len, **options) for config in configs]
    if len(estimates) == 1 and estimates[0].ttft_s is None:
        raise InvalidValueError(estimates[0].fit_message())
    records = [e.to_record() for e in estimates]
    first = estimates[0]
    title = _title(first)
    _render(records, fmt=fmt, output=output, title=title, calibrated=calibration is not None, show_curve=show_curve)
    for estimate in estimates:
        for note in (estimate.fit_message(), estimate.context_message()):
            if note:
                typer.echo(f"note: {_flags(note)}", err=True)
    if plot is not None:
        from llmarch.report.plots import plot_serving_curves

        plot_serving_curves(records, plot, title=title)
