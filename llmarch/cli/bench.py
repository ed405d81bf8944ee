"""`llmarch bench`: micro-benchmarks of attention variants and kernels on the GPU or CPU at hand.

torch is imported only inside the command (through llmarch.bench.harness): the other commands never load it.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmarch.cli._app import (
    EXIT_INTERRUPTED,
    EXIT_THRESHOLD,
    FormatOption,
    OutputFormat,
    app,
    handle_errors,
)
from llmarch.core.io import write_atomic

if TYPE_CHECKING:
    from llmarch.bench.harness import BenchRun, Change


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def _names(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise typer.BadParameter(f"expected a comma-separated list, got {text!r}")
    return names


def _ints(text: str | None, option: str) -> tuple[int, ...] | None:
    names = _names(text)
    if names is None:
        return None
    try:
        return tuple(int(n) for n in names)
    except ValueError:
        raise typer.BadParameter(f"{option}: expected comma-separated integers, got {text!r}") from None


# -- presentation -------------------------------------------------------------------------------------------
def _seconds(value: float | None) -> str | None:
    if value is None:
        return None
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def _rate(value: float | None) -> str | None:
    if value is None:
        return None
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M")):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}"
    return f"{value:.3g} "


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{100 * value:.3g}%"


def table_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records as display rows: times in s/ms/µs, rates with SI prefixes, the roofline as a percentage."""
    from llmarch.report.format import format_bytes

    rows = []
    for r in records:
        reason = r["skipped_reason"]
        if reason:  # the first sentence; JSON and CSV keep all of it
            reason = reason.split(". ")[0]
            reason = reason if len(reason) <= 70 else reason[:69] + "…"
        note = reason or (f"noisy (CV {_percent(r['cv'])})" if r.get("noisy") else "")
        rows.append(
            {
                "variant": r["variant"] + (f" W={r['window']}" if r["window"] is not None else ""),
                "impl": r["impl"],
                "phase": r["phase"],
                "B": r["batch"],
                "S": r["seq_len"],
                "kv": r["n_kv_heads"],
                "median": _seconds(r["median_s"]),
                "IQR": _seconds(r["iqr_s"]),
                "FLOP/s": _rate(r["achieved_flop_per_s"]),
                "bytes/s": _rate(r["achieved_bytes_per_s"]),
                "roofline": _percent(r["roofline_fraction"]),
                "predicted": _seconds(r["predicted_s"]),
                "peak mem": None if r["peak_memory_bytes"] is None else format_bytes(r["peak_memory_bytes"]),
                "rel. error": None if r["rel_error"] is None else f"{r['rel_error']:.1e}",
                "note": note,
            }
        )
    if any(r.get("roofline_fraction_catalog") is not None for r in records):
        for row, r in zip(rows, records, strict=True):
            row["datasheet"] = _percent(r.get("roofline_fraction_catalog"))
    return rows


def _title(run: BenchRun) -> str:
    s, env = run.settings, run.environment
    shape = f"{s.shape_source}: {s.n_heads} heads, {s.n_kv_heads} KV heads, d_head {s.d_head}, window {s.window}"
    where = f"{s.dtype} on {env.get('device_name')} ({s.threads} threads)"
    peaks = env.get("measured_peaks")
    roof = ""
    if peaks:
        n, low_flops, low_bytes = len(peaks["matmul_samples"]), min(peaks["matmul_samples"]), min(peaks["copy_samples"])
        roof = (
            f"; roofline, best of {n} measurements: {_rate(peaks['matmul_flop_per_s'])}FLOP/s (lowest "
            f"{_rate(low_flops)}), {_rate(peaks['copy_bytes_per_s'])}B/s (lowest {_rate(low_bytes)})"
        )
        if peaks.get("catalog_gpu"):
            roof += f"; datasheet ({peaks['catalog_gpu']}) {_rate(peaks['catalog_flop_per_s'])}FLOP/s"
    return f"attention benchmark, {shape}; {where}{roof}"


def document(run: BenchRun, changes: list[Change] | None = None, max_regression: float | None = None) -> dict[str, Any]:
    """The JSON document: the report envelope, the environment with torch, device and measured peaks."""
    from llmarch.report import tables as report

    extra: dict[str, Any] = {
        "environment": {**report.environment(), **run.environment},
        "settings": run.settings.to_record(),
        "complete": run.complete,
        "interrupted": run.interrupted,
    }
    if changes is not None:
        extra["baseline"] = {"max_regression": max_regression, "changes": [c.to_record() for c in changes]}
    return report.envelope("results", run.records, **extra)


def _text(run: BenchRun, fmt: OutputFormat, changes: list[Change] | None, max_regression: float | None) -> str:
    from llmarch.report import tables as report

    if fmt is OutputFormat.csv:
        return report.to_csv(run.records) if run.records else ""
    if fmt is OutputFormat.markdown:
        rows = table_rows(run.records)
        return report.to_markdown(rows, list(rows[0]) if rows else [], title=_title(run))
    return report.to_json(document(run, changes, max_regression))


def change_rows(changes: list[Change]) -> list[dict[str, Any]]:
    return [
        {
            "variant": c.key["variant"],
            "impl": c.key["impl"],
            "phase": c.key["phase"],
            "B": c.key["batch"],
            "S": c.key["seq_len"],
            "old": _seconds(c.old_s),
            "new": _seconds(c.new_s),
            "measured": None if c.raw_change is None else f"{100 * c.raw_change:+.1f}%",
            "vs drift": None if c.change is None else f"{100 * c.change:+.1f}%",
            "noise": _percent(c.noise),
            "verdict": c.verdict,
        }
        for c in changes
    ]


def plot_results(records: list[dict[str, Any]], path: str | Path, *, title: str = "") -> None:
    """Latency and fraction of the measured roofline against sequence length: a row per phase, a pair of
    panels per batch size, a colour per variant and a line style per implementation (matplotlib, Agg)."""
    import io

    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    done = [r for r in records if r["median_s"] is not None]
    phases = [p for p in ("prefill", "decode", "chunked_prefill") if any(r["phase"] == p for r in done)]
    batches = sorted({r["batch"] for r in done})
    seq_lens = sorted({r["seq_len"] for r in done})
    variants = list(dict.fromkeys(r["variant"] for r in done))
    impls = list(dict.fromkeys(r["impl"] for r in done))
    colors = {v: f"C{i % 10}" for i, v in enumerate(variants)}
    styles = ["-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 3))]
    markers = "osD^vP*Xh<"
    style = {m: (styles[i % len(styles)], markers[i % len(markers)]) for i, m in enumerate(impls)}
    n_rows, n_cols = max(1, len(phases)), max(1, 2 * len(batches))
    fig = Figure(figsize=(4.2 * n_cols, 3.3 * n_rows + 1.2), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for i, phase in enumerate(phases):
        for j, batch in enumerate(batches):
            lat, roof = axes[i][2 * j], axes[i][2 * j + 1]
            for variant in variants:
                for impl in impls:
                    points = sorted(
                        (r["seq_len"], r["median_s"], r["roofline_fraction"])
                        for r in done
                        if (r["phase"], r["batch"], r["variant"], r["impl"]) == (phase, batch, variant, impl)
                    )
                    if not points:
                        continue
                    x = [p[0] for p in points]
                    kw = {"color": colors[variant], "linestyle": style[impl][0], "marker": style[impl][1],
                          "markersize": 4, "linewidth": 1.3}  # fmt: skip
                    lat.plot(x, [1e3 * p[1] for p in points], **kw)
                    roof.plot(x, [100 * p[2] for p in points], **kw)
            for ax in (lat, roof):
                ax.set_xscale("log", base=2)
                ax.set_xticks(seq_lens, [str(s) for s in seq_lens])
                ax.minorticks_off()
                ax.grid(True, which="both", alpha=0.3)
                ax.set_xlabel("sequence length S (decode: KV cache)")
            lat.set_yscale("log")
            lat.set_ylabel("median latency (ms)")
            roof.set_ylabel("% of measured roofline")
            roof.set_ylim(bottom=0)
            lat.set_title(f"{phase}, batch {batch}: latency", fontsize=10)
            roof.set_title(f"{phase}, batch {batch}: roofline", fontsize=10)
    # Two legend rows, variants (colours) above implementations (line styles); a legend fills columns first.
    width = max(len(variants), len(impls))
    blank = Line2D([], [], linestyle="none", label=" ")
    top = [Line2D([], [], color=colors[v], linewidth=2, label=v) for v in variants]
    bottom = [Line2D([], [], color="0.3", linestyle=style[m][0], marker=style[m][1], label=m) for m in impls]
    top += [blank] * (width - len(top))
    bottom += [blank] * (width - len(bottom))
    handles = [h for pair in zip(top, bottom, strict=True) for h in pair]
    fig.legend(handles=handles, loc="outside lower center", ncol=width, fontsize=8, handlelength=3)
    if title:
        fig.suptitle(title.replace("; ", "\n"), fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    write_atomic(path, buffer.getvalue(), what="--plot")


# -- the command ----------------------------------------------------------------------------------------------
@app.command(
    "bench",
    epilog=(
        "Examples: llmarch bench --quick · "
        "llmarch bench --preset mistral-7b --plot bench.png -o bench.json · "
        "llmarch bench --preset llama-2-70b --phases decode --seq-lens 4096,32768 --batch 1,8 · "
        "llmarch bench --baseline old.json --max-regression 0.10"
    ),
)
@handle_errors
def bench_command(
    preset: Annotated[
        str | None,
        typer.Option(help="Take heads, KV heads, head width and window from a preset (name, file or overrides)."),
    ] = None,
    n_heads: Annotated[int | None, typer.Option(help="Query heads (instead of or over --preset).")] = None,
    n_kv_heads: Annotated[int | None, typer.Option(help="KV heads of the shape (default: --n-heads).")] = None,
    d_head: Annotated[int | None, typer.Option(help="Head width.")] = None,
    window: Annotated[
        int | None,
        typer.Option(
            help="Window of the sliding_window variant. Default: the preset's, else a quarter of the "
            "longest --seq-lens."
        ),
    ] = None,
    seq_lens: Annotated[
        str | None, typer.Option(help="Sequence lengths (KV-cache length for decode), e.g. 512,1024,2048.")
    ] = None,
    batch: Annotated[str | None, typer.Option(help="Batch sizes, e.g. 1,8. Default 1.")] = None,
    variants: Annotated[
        str | None, typer.Option(help="Variants: mha, gqa (or gqa:N for N KV heads), mqa, sliding_window, alibi.")
    ] = None,
    impls: Annotated[
        str | None,
        typer.Option(
            help="Implementations: eager, eager_grouped, sdpa, sdpa_repeat_kv, sdpa_grouped, sdpa_flash, "
            "sdpa_efficient, sdpa_cudnn, sdpa_math, flex. Default: all on CUDA; on CPU the eager and "
            "SDPA ones without forced backends (flex compiles for seconds per shape: ask for it)."
        ),
    ] = None,
    phases: Annotated[str | None, typer.Option(help="Phases: prefill, decode, chunked_prefill.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Non-causal prefill (a sliding window stays causal).")] = False,
    chunk_size: Annotated[int | None, typer.Option(help="Tokens per chunk of chunked_prefill. Default 512.")] = None,
    dtype: Annotated[str | None, typer.Option(help="fp32, bf16 or fp16. Default: bf16 on CUDA, fp32 on CPU.")] = None,
    device: Annotated[Device, typer.Option(help="Where to run: auto (CUDA when present), cpu, cuda.")] = Device.auto,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads for torch and the timer. Default: the process's thread count.")
    ] = None,
    repeats: Annotated[
        int | None, typer.Option(help="Interleaved timing passes over the cases of a shape. Default 5 (quick 3).")
    ] = None,
    min_time: Annotated[
        float | None, typer.Option(help="Seconds of timing per case and pass. Default 0.1 (quick 0.02).")
    ] = None,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="A short sweep: every variant x {eager, sdpa} x {prefill, decode} at S=128, 512."),
    ] = False,
    flush_l2: Annotated[
        bool, typer.Option("--flush-l2", help="CUDA: overwrite the L2 cache before each call.")
    ] = False,
    max_memory: Annotated[
        str | None,
        typer.Option(help="Skip cases whose estimated memory exceeds this (e.g. 8GiB). Default: 80% of free memory."),
    ] = None,
    gpu: Annotated[
        str | None, typer.Option(help="Catalog GPU for the datasheet peaks when the device name is not recognised.")
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(help="An earlier JSON result: compare medians of matching records; exit 3 on a regression."),
    ] = None,
    max_regression: Annotated[
        float,
        typer.Option(help="Slowdown (a fraction) beyond which a change counts, when it also exceeds the noise."),
    ] = 0.10,
    drift_correction: Annotated[
        bool | None,
        typer.Option(
            "--drift-correction/--no-drift-correction",
            help="Measure each change against the run-wide drift (the median change of all matched records), so "
            "a shared machine that is uniformly slower today does not fail the gate; the drift itself is "
            "printed. Default: on for CPU runs, off for CUDA (a dedicated GPU does not drift; a uniform "
            "slowdown there is a real one).",
        ),
    ] = None,
    plot: Annotated[
        str | None, typer.Option(help="Write a PNG of latency and roofline fraction against sequence length.")
    ] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Progress bar (default: on a terminal).")
    ] = None,
    fmt: FormatOption = OutputFormat.table,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Save results to FILE after every shape (atomically): JSON, or CSV/Markdown with --format; "
            "with the default table format the table is still printed.",
        ),
    ] = None,
) -> None:
    """Time attention variants (MHA, GQA, MQA, sliding window, ALiBi) and kernels (eager, SDPA and its backends,
    FlexAttention) in prefill, decode and chunked prefill, checked against float64 and set against the
    device's measured roofline."""
    from llmarch.bench import harness as bench
    from llmarch.core.units import parse_bytes
    from llmarch.report import tables as report

    settings = bench.resolve_settings(
        preset=preset, n_heads=n_heads, n_kv_heads=n_kv_heads, d_head=d_head, window=window,
        seq_lens=_ints(seq_lens, "--seq-lens"), batches=_ints(batch, "--batch"), variants=_names(variants),
        impls=_names(impls), phases=_names(phases), dtype=dtype, device=device.value, threads=threads,
        repeats=repeats, min_pass_s=min_time, chunk_size=chunk_size, causal=not full, quick=quick, flush_l2=flush_l2,
        memory_budget_bytes=None if max_memory is None else parse_bytes(max_memory, what="--max-memory"), gpu=gpu,
    )  # fmt: skip
    old = bench.load_baseline(baseline) if baseline is not None else None
    if old is not None and not max_regression >= 0:
        raise typer.BadParameter("--max-regression must be a non-negative fraction")
    file_fmt = OutputFormat.json if fmt is OutputFormat.table else fmt

    def save(run: BenchRun, changes: list[Change] | None = None) -> None:
        if output is not None:
            write_atomic(output, _text(run, file_fmt, changes, max_regression if changes is not None else None))

    show_progress = sys.stderr.isatty() if progress is None else progress
    result = bench.run(settings, on_update=save, progress=show_progress)
    changes = None
    if old is not None:
        correct = settings.device == "cpu" if drift_correction is None else drift_correction
        changes, retimed = bench.confirm_regressions(
            result, old, max_regression=max_regression, correct_drift=correct, progress=show_progress
        )
        if retimed:
            confirmed = len(bench.regressions(changes))
            typer.echo(f"re-timed {retimed} suspected regression(s): {confirmed} reproduced", err=True)
        save(result, changes)
    if fmt is OutputFormat.table:
        rows = table_rows(result.records)
        if rows:
            report.print_rich(report.rich_table(rows, list(rows[0]), title=_title(result)))
    elif output is None:
        sys.stdout.write(_text(result, fmt, changes, max_regression if changes is not None else None))
    if plot is not None and result.records:
        plot_results(result.records, plot, title=_title(result))
    if changes is not None:
        _print_changes(changes, max_regression)
    if result.interrupted:
        where = f"; saved to {output}" if output else ""
        typer.echo(f"interrupted: {len(result.records)} finished results kept{where}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    if changes is not None and bench.regressions(changes):
        raise typer.Exit(EXIT_THRESHOLD)


def _print_changes(changes: list[Change], max_regression: float) -> None:
    from rich.console import Console

    from llmarch.report import tables as report

    rows = change_rows(changes)
    slower = [c for c in changes if c.verdict == "slower"]
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
    title = f"against the baseline (regression: slower by > {100 * max_regression:g}% and beyond the noise)"
    if rows:
        console.print(report.rich_table(rows, list(rows[0]), title=title))
    summary = f"{len(slower)} regression(s)" if slower else "no regression"
    console.print(f"{summary} among {sum(c.old_s is not None and c.new_s is not None for c in changes)} compared")
    noises = sorted(c.noise for c in changes if c.noise is not None)
    if noises and noises[len(noises) // 2] > max_regression:
        console.print(
            f"the median noise of this comparison is {100 * noises[len(noises) // 2]:.0f}%, above the "
            f"{100 * max_regression:g}% threshold: smaller regressions cannot be told from noise on this machine "
            "(more --repeats, a longer --min-time or a quieter machine narrow it)"
        )
    drift = changes[0].drift if changes else 1.0
    if drift != 1.0:
        console.print(
            f"run-wide drift {100 * (drift - 1):+.1f}% (median change of all matched records; changes above are "
            "measured against it: use --no-drift-correction to gate on raw medians)"
        )
