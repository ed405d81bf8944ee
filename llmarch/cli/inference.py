"""`llmarch estimate-inference`: what each architecture costs to serve on a GPU, and why."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from llmarch.cli._app import FormatOption, OutputFormat, OutputOption, app, handle_errors, resolve_specs
from llmarch.core.defaults import (
    DEFAULT_ALLREDUCE_LATENCY_S,
    DEFAULT_BANDWIDTH_EFFICIENCY,
    DEFAULT_DTYPE,
    DEFAULT_FLOP_EFFICIENCY,
    DEFAULT_GENERATE_LEN,
    DEFAULT_PREFILL_CHUNK,
    DEFAULT_PROMPT_LEN,
    DEFAULT_RESERVE_FRACTION,
)
from llmarch.report.format import format_bytes, format_count, format_seconds, format_usd, format_value

#: Context lengths (prompt + generated tokens) the --plot sweep evaluates.
PLOT_CONTEXTS = tuple(2**i for i in range(10, 18))  # 1k .. 128k


def _phase_cell(phase: dict[str, Any] | None) -> str | None:
    """'memory 7.9<259': the bound, and the arithmetic intensity against the ridge point (FLOP/byte)."""
    if phase is None:
        return None
    intensity, ridge = phase["arithmetic_intensity_flop_per_byte"], phase["ridge_flop_per_byte"]
    return f"{phase['bound']} {_flop_per_byte(intensity)}{'>' if intensity > ridge else '<'}{_flop_per_byte(ridge)}"


def _flop_per_byte(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _table_rows(records: list[dict[str, Any]], *, calibrated: bool) -> list[dict[str, Any]]:
    """Display rows: sizes with binary prefixes, times in s/ms/µs, rates rounded (JSON keeps raw SI numbers)."""
    rows = []
    for r in records:
        ttft, tpot = format_seconds(r["ttft_s"]), format_seconds(r["tpot_s"])
        if calibrated and r["ttft_default_s"] is not None:
            ttft = f"{ttft} (default {format_seconds(r['ttft_default_s'])})"
            tpot = f"{tpot} (default {format_seconds(r['tpot_default_s'])})"
        max_context = r["max_context_len"]
        rows.append(
            {
                "name": r["name"],
                "fits": r["fits"],
                "batch": r["batch"],
                "max batch": r["max_batch"],
                "max context": "unbounded" if max_context is None else format_count(max_context),
                "weights": format_bytes(r["weights_bytes"]),
                "KV cache": format_bytes(r["kv_cache_bytes"]),
                "KV/seq": format_bytes(r["kv_cache_bytes_per_sequence"]),
                "workspace": format_bytes(r["workspace_bytes"]),
                "per GPU": format_bytes(r["total_bytes"]),
                "TTFT": ttft,
                "TPOT": tpot,
                "prefill I<>ridge": _phase_cell(r["prefill"]),
                "decode I<>ridge": _phase_cell(r["decode"]),
                "tok/s/GPU": format_count(r["tokens_per_s_per_gpu"]),
                "tok/s": format_count(r["tokens_per_s"]),
                "$/M tok": format_usd(r["usd_per_million_tokens"]),
            }
        )
    return rows


#: Assumptions shown once under the table (per-model ones are shown per model when they differ).
_SKIP_ASSUMPTIONS = ("defaults",)


def _assumption_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every assumption as (key, value); a value that differs between models is listed per model."""
    keys: list[str] = []
    for record in records:
        keys.extend(k for k in record["assumptions"] if k not in keys and k not in _SKIP_ASSUMPTIONS)
    rows = []
    for key in keys:
        values = [(r["name"], r["assumptions"].get(key)) for r in records]
        if all(v is None for _, v in values):
            continue
        if all(v == values[0][1] for _, v in values):
            text = format_value(values[0][1], key)
        else:
            text = "; ".join(f"{name}: {format_value(v, key)}" for name, v in values)
        rows.append({"assumption": key, "value": text})
    defaults = records[0]["assumptions"].get("defaults") or []
    rows.append({"assumption": "defaults used", "value": ", ".join(defaults) or "none"})
    return rows


def _render(
    records: list[dict[str, Any]], *, fmt: OutputFormat, output: str | None, title: str, calibrated: bool
) -> None:
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
    if fmt is OutputFormat.markdown:
        text = report.to_markdown(rows, columns, title=title) + "\n"
        text += report.to_markdown(assumptions, ["assumption", "value"], title="assumptions")
        report.emit(text, output)
        return
    from rich.console import Group

    tables = Group(
        report.rich_table(rows, columns, title=title),
        report.rich_table(assumptions, ["assumption", "value"], title="assumptions"),
    )
    if output is not None:
        report.emit(report.render_text(tables), output)
    else:
        report.print_rich(tables)


def _plot(curves: list[dict[str, Any]], path: str, *, title: str, batch_label: str) -> None:
    """Max batch (left) and output tokens/s per GPU (right) against context length, one line per model;
    dashed beyond the context the model supports."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    from llmarch.report.plots import save_png

    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    for index, curve in enumerate(curves):
        colour = f"C{index % 10}"
        points = [p for p in curve["points"] if p["fits"]]
        inside = [p for p in points if p["context_len"] <= curve["max_seq_len"]]
        beyond = [p for p in points if p["context_len"] >= (inside[-1]["context_len"] if inside else 0)]
        for axis, key in ((left, "max_batch"), (right, "tokens_per_s_per_gpu")):
            if inside:
                axis.plot([p["context_len"] for p in inside], [p[key] for p in inside], marker="o", markersize=3,
                          color=colour, label=curve["name"])  # fmt: skip
            if len(beyond) > 1:
                axis.plot([p["context_len"] for p in beyond], [p[key] for p in beyond], marker="o", markersize=3,
                          color=colour, linestyle="--", label=None if inside else curve["name"])  # fmt: skip
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1024:g}k" if x >= 1024 else f"{x:g}"))
        axis.set_xlabel("context length (prompt + generated tokens); dashed: beyond the model's context")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    left.set_ylabel("largest batch that fits")
    left.set_title("Max batch vs context")
    right.set_ylabel(f"output tokens/s per GPU ({batch_label})")
    right.set_title("Throughput vs context (prefill included)")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    save_png(figure, path)


@app.command(
    "estimate-inference",
    epilog=(
        "Examples: llmarch estimate-inference llama-2-70b llama-2-70b:n_kv_heads=64 --gpu h100-sxm --tp 4 --n-gpus 4 · "
        "llmarch estimate-inference mistral-7b --gpu a100-80gb --prompt 16384 --generate 512 --plot serve.png"
    ),
)
@handle_errors
def estimate_inference_command(
    presets_: Annotated[
        list[str] | None,
        typer.Argument(metavar="PRESET...", help="Preset names, files or overrides (llama-2-70b:n_kv_heads=64)."),
    ] = None,
    all_presets: Annotated[bool, typer.Option("--all", help="Every preset.")] = False,
    gpu: Annotated[str | None, typer.Option(help="Accelerator from 'llmarch gpus', e.g. h100-sxm (required).")] = None,
    tp: Annotated[int, typer.Option(help="Tensor-parallel GPUs per replica (must divide n_heads).")] = 1,
    n_gpus: Annotated[
        int | None, typer.Option(help="GPUs in all, a multiple of --tp (n_gpus / tp replicas). Default --tp.")
    ] = None,
    dtype: Annotated[str, typer.Option(help="Weight dtype: fp32, bf16, fp16, fp8, int8, int4.")] = DEFAULT_DTYPE,
    kv_dtype: Annotated[
        str | None,
        typer.Option(
            help="KV-cache dtype (bf16, fp16, fp8, int8). Default: the weight dtype, "
            f"{DEFAULT_DTYPE} under fp8/int8/int4."
        ),
    ] = None,
    compute_dtype: Annotated[
        str | None,
        typer.Option(
            help="Dtype whose peak FLOP/s the matmuls run at. Default: the weight dtype; 16-bit for int8/int4."
        ),
    ] = None,
    prompt_len: Annotated[
        int, typer.Option("--prompt-len", "--prompt", help="Prompt tokens per request.")
    ] = DEFAULT_PROMPT_LEN,
    generate_len: Annotated[
        int, typer.Option("--generate-len", "--generate", help="Generated tokens per request.")
    ] = DEFAULT_GENERATE_LEN,
    batch: Annotated[int | None, typer.Option(help="Requests served together. Default: the largest that fits.")] = None,
    max_batch: Annotated[
        bool, typer.Option("--max-batch", help="Serve the largest batch that fits (the default without --batch).")
    ] = False,
    beam_width: Annotated[int, typer.Option(help="Beam search width: one KV cache per beam.")] = 1,
    flop_efficiency: Annotated[
        float | None,
        typer.Option(help=f"Achievable fraction of the dense peak FLOP/s. Default {DEFAULT_FLOP_EFFICIENCY}."),
    ] = None,
    bandwidth_efficiency: Annotated[
        float | None,
        typer.Option(help=f"Achievable fraction of the peak memory bandwidth. Default {DEFAULT_BANDWIDTH_EFFICIENCY}."),
    ] = None,
    link_bandwidth: Annotated[
        str | None,
        typer.Option(
            help="Per-GPU, one-direction tensor-parallel link bandwidth per second, e.g. 450GB (NVLink 4), 300GB "
            "(A100 NVLink 3), 32GB (PCIe 4.0 x16). Default: half the catalog's both-ways interconnect of --gpu "
            "(see 'llmarch gpus')."
        ),
    ] = None,
    allreduce_latency: Annotated[
        float | None, typer.Option(help=f"Seconds of fixed cost per all-reduce. Default {DEFAULT_ALLREDUCE_LATENCY_S}.")
    ] = None,
    prefill_chunk: Annotated[
        int,
        typer.Option(help="Tokens per prefill pass (chunked prefill); 0 prefills every prompt of the batch at once."),
    ] = DEFAULT_PREFILL_CHUNK,
    flash: Annotated[bool, typer.Option(help="Fused attention (no seq x seq score matrix in the workspace).")] = True,
    reserve_fraction: Annotated[
        float | None,
        typer.Option(
            help=f"Fraction of GPU memory kept free (CUDA context, fragmentation). Default {DEFAULT_RESERVE_FRACTION}."
        ),
    ] = None,
    price_per_gpu_hour: Annotated[
        float | None, typer.Option(help="USD per GPU-hour. Default: the catalog's dated on-demand price, if any.")
    ] = None,
    calibrate: Annotated[
        str | None,
        typer.Option(
            metavar="BENCH.json",
            help="A 'llmarch bench --format json' file from the same GPU model: time attention at its measured rates "
            "(the default-rate times are shown beside).",
        ),
    ] = None,
    plot: Annotated[
        str | None,
        typer.Option(
            metavar="FILE.png",
            help="Also draw max batch and tokens/s per GPU against context length (needs matplotlib).",
        ),
    ] = None,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
) -> None:
    """Serving estimates per preset on a GPU: weights, KV cache and workspace per GPU and whether they fit; the
    largest batch and context; prefill (TTFT) and decode (TPOT) on the roofline, with the bound and the arithmetic
    intensity against the ridge point; tokens/s per GPU and in all; USD per million output tokens. Every
    assumption is printed. One preset that does not fit is an error (exit 1) saying what would fit; with several,
    its row shows fits = no and a note goes to stderr."""
    from llmarch.catalog import presets
    from llmarch.core.errors import InvalidValueError
    from llmarch.core.units import parse_bytes
    from llmarch.serving import estimate as inference

    specs = resolve_specs(presets_, all_presets)
    if gpu is None:
        raise typer.BadParameter("pass --gpu (see 'llmarch gpus')")
    if max_batch and batch is not None:
        raise typer.BadParameter("give --batch or --max-batch, not both")
    calibration = None
    if calibrate is not None:
        from llmarch.core.io import read_json_file

        bench_json = read_json_file(calibrate, what="--calibrate")
        calibration = inference.parse_bench(bench_json, source=Path(calibrate).name)
    options: dict[str, Any] = {
        "generate_len": generate_len,
        "batch": batch,
        "beam_width": beam_width,
        "dtype": dtype,
        "kv_dtype": kv_dtype,
        "compute_dtype": compute_dtype,
        "tp": tp,
        "n_gpus": n_gpus,
        "flop_efficiency": flop_efficiency,
        "bandwidth_efficiency": bandwidth_efficiency,
        "link_bandwidth_bytes_per_s": None
        if link_bandwidth is None
        else parse_bytes(link_bandwidth, what="--link-bandwidth"),
        "allreduce_latency_s": allreduce_latency,
        "prefill_chunk": prefill_chunk or None,
        "flash": flash,
        "reserve_fraction": reserve_fraction,
        "usd_per_gpu_hour": price_per_gpu_hour,
        "calibration": calibration,
    }
    if prefill_chunk < 0:
        raise InvalidValueError(f"--prefill-chunk must be a positive number of tokens, or 0; got {prefill_chunk}")
    configs = presets.load_many(specs)
    estimates = [inference.estimate_inference(config, gpu, prompt_len=prompt_len, **options) for config in configs]
    if len(estimates) == 1 and not estimates[0].fits:
        raise InvalidValueError(estimates[0].fit_message())
    records = [e.to_record() for e in estimates]
    first = estimates[0]
    title = (
        f"serving estimate: {first.n_gpus} x {first.gpu} (tp {first.tp}), {first.dtype} weights, {first.kv_dtype} KV, "
        f"{prompt_len} prompt + {generate_len} generated tokens"
        + (f", beam {beam_width}" if beam_width > 1 else "")
        + ("" if batch is not None else ", largest batch that fits")
    )
    _render(records, fmt=fmt, output=output, title=title, calibrated=calibration is not None)
    for estimate in estimates:
        if not estimate.fits:
            typer.echo(f"note: {estimate.fit_message()}", err=True)
        if estimate.exceeds_max_seq_len:
            typer.echo(
                f"note: {estimate.name}: {prompt_len} + {generate_len} tokens is beyond its context "
                f"({configs[estimates.index(estimate)].max_seq_len})",
                err=True,
            )
    if plot is not None:
        curves = []
        for config in configs:
            sweep = inference.context_sweep(config, gpu, list(PLOT_CONTEXTS), **options)
            points = [
                {
                    "context_len": e.prompt_len + e.generate_len,
                    "fits": e.fits,
                    "max_batch": e.max_batch,
                    "tokens_per_s_per_gpu": e.tokens_per_s_per_gpu,
                }
                for e in sweep
            ]
            curves.append({"name": config.name, "max_seq_len": config.max_seq_len, "points": points})
        batch_label = f"batch {batch}" if batch is not None else "at the largest batch"
        _plot(curves, plot, title=title.replace(f"{prompt_len} prompt + ", ""), batch_label=batch_label)
