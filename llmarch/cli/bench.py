"""`llmarch bench`: micro-benchmarks of attention variants and kernels on the GPU or CPU at hand.

torch is imported only inside the command (through llmarch.bench.harness): the other commands never load it.
Exit codes beyond the usual: 3 a regression against --baseline, 4 nothing to compare with --baseline,
128 + the signal number when interrupted (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
"""

from __future__ import annotations

import os
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmarch.cli._app import EXIT_THRESHOLD, FormatOption, OutputFormat, app, handle_errors
from llmarch.core import defaults as D
from llmarch.core.errors import InvalidValueError

if TYPE_CHECKING:
    from llmarch.bench.baseline import Change, Comparison
    from llmarch.bench.harness import BenchRun
    from llmarch.catalog.bench_results import BenchResults


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
def _seconds(value: float | None) -> str:
    from llmarch.report.format import format_seconds

    return format_seconds(value)


def _rate(value: float | None, unit: str) -> str:
    from llmarch.report.format import format_rate

    return format_rate(value, unit)


def _percent(value: float | None) -> str:
    from llmarch.report.format import format_share

    return format_share(value)


#: Marker of a roofline share above 100% in tables (a measurement problem, explained under the table).
ABOVE_ROOFLINE_MARK = " (!)"


def _note(r: dict[str, Any]) -> str:
    reason = r["skipped_reason"]
    if reason:  # the first sentence; JSON and CSV keep all of it
        reason = reason.split(". ")[0]
        return reason if len(reason) <= 70 else reason[:69] + "…"
    notes = []
    if r.get("noisy"):
        notes.append(f"noisy (CV {_percent(r['cv'])})")
    if r.get("above_roofline"):
        notes.append("above roofline: measurement problem")
    if r.get("non_monotone"):
        notes.append("non-monotone in S: noise")
    return "; ".join(notes)


def table_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records as display rows: times in s/ms/µs, rates with SI prefixes, the roofline as a percentage."""
    from llmarch.report.format import format_bytes

    rows = []
    for r in records:
        roofline = _percent(r["roofline_fraction"])
        if r.get("above_roofline"):
            roofline += ABOVE_ROOFLINE_MARK
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
                "FLOP/s": _rate(r["achieved_flop_per_s"], "FLOP/s"),
                "bytes/s": _rate(r["achieved_bytes_per_s"], "B/s"),
                "roofline": roofline,
                "predicted": _seconds(r["predicted_s"]),
                "peak mem": "-" if r["peak_memory_bytes"] is None else format_bytes(r["peak_memory_bytes"]),
                "rel. error": "-" if r["rel_error"] is None else f"{r['rel_error']:.1e}",
                "note": _note(r),
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
            f"; roofline, best of {n} measurements: {_rate(peaks['matmul_flop_per_s'], 'FLOP/s')} (lowest "
            f"{_rate(low_flops, 'FLOP/s')}), {_rate(peaks['copy_bytes_per_s'], 'B/s')} "
            f"(lowest {_rate(low_bytes, 'B/s')})"
        )
        if peaks.get("catalog_gpu"):
            roof += f"; datasheet ({peaks['catalog_gpu']}) {_rate(peaks['catalog_flop_per_s'], 'FLOP/s')}"
    return f"attention benchmark, {shape}; {where}{roof}"


def document(run: BenchRun, comparison: Comparison | None = None) -> dict[str, Any]:
    """The JSON document: the report envelope, the environment with torch, device and measured peaks, the
    honesty checks, and the comparison with a baseline when there is one."""
    from llmarch.report import tables as report

    extra: dict[str, Any] = {
        "environment": {**report.environment(), **run.environment},
        "settings": run.settings.to_record(),
        "complete": run.complete,
        "interrupted": run.interrupted,
        "interrupted_by": run.interrupted_by,
        "checks": run.checks_record(),
    }
    if comparison is not None:
        extra["baseline"] = comparison.to_record()
    return report.envelope("results", run.records, kind="bench", **extra)


def _text(run: BenchRun, fmt: OutputFormat, comparison: Comparison | None) -> str:
    from llmarch.report import tables as report

    if fmt is OutputFormat.csv:
        return report.to_csv(run.records) if run.records else ""
    if fmt is OutputFormat.markdown:
        rows = table_rows(run.records)
        return report.to_markdown(rows, list(rows[0]) if rows else [], title=_title(run))
    return report.to_json(document(run, comparison))


def change_rows(changes: tuple[Change, ...] | list[Change]) -> list[dict[str, Any]]:
    return [
        {
            "variant": c.key["variant"],
            "impl": c.key["impl"],
            "phase": c.key["phase"],
            "B": c.key["batch"],
            "S": c.key["seq_len"],
            "old": _seconds(c.old_s),
            "new": _seconds(c.new_s),
            "measured": "-" if c.raw_change is None else f"{100 * c.raw_change:+.1f}%",
            "vs machine": "-" if c.change is None else f"{100 * c.change:+.1f}%",
            "noise": _percent(c.noise),
            "verdict": c.verdict,
        }
        for c in changes
    ]


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def _print_changes(comparison: Comparison) -> None:
    from llmarch.report import tables as report

    console = _stderr_console()
    threshold = comparison.max_regression
    rows = change_rows(comparison.changes)
    title = f"against the baseline (regression: slower by > {100 * threshold:g}% and beyond the noise)"
    if rows:
        console.print(report.rich_table(rows, list(rows[0]), title=title))
    slower = comparison.regressions
    summary = f"{len(slower)} regression(s)" if slower else "no regression"
    console.print(f"{summary} among {comparison.n_compared} compared")
    noises = sorted(c.noise for c in comparison.changes if c.noise is not None)  # fractions of the old time
    if noises and noises[len(noises) // 2] > threshold:
        console.print(
            f"the median noise of this comparison is {100 * noises[len(noises) // 2]:.0f}%, above the "
            f"{100 * threshold:g}% threshold: smaller regressions cannot be told from noise on this machine "
            "(more --repeats, a longer --min-time or a quieter machine narrow it)"
        )
    machine = comparison.machine
    if machine is not None:
        console.print(
            f"machine speed against the baseline (reference matmul and copy, not under test): compute "
            f"{100 * (machine.compute - 1):+.1f}%, memory {100 * (machine.memory - 1):+.1f}% time; kernels "
            f"moved {100 * (comparison.residual - 1):+.1f}% (median) beyond that"
        )
    for note in comparison.notes:
        console.print(note)


def _print_checks(run: BenchRun) -> None:
    """Warn, on stderr, about what makes this run's numbers less trustworthy than they look."""
    console = _stderr_console()
    drift = run.drift
    if drift is not None and drift.flagged:
        console.print(
            f"run-wide drift: the reference matmul's rate changed {100 * drift.matmul_change:+.0f}% and the "
            f"copy's {100 * drift.copy_change:+.0f}% from the start to the end of the run (threshold "
            f"{100 * drift.threshold:g}%): the machine changed speed; shapes timed early and late are not comparable"
        )
    records = run.records
    above = sum(1 for r in records if r.get("above_roofline"))
    if above:
        console.print(
            f"{above} result(s) marked{ABOVE_ROOFLINE_MARK} exceed 100% of the measured roofline: a measurement "
            "problem (a working set that fits in cache, or a roofline measured in a slow spell), not a result"
        )
    unordered = sum(1 for r in records if r.get("non_monotone"))
    if unordered:
        console.print(f"{unordered} result(s) are non-monotone in S (slower with less work): noise, not a finding")


# -- the command's steps ------------------------------------------------------------------------------------------
def _check_target(path: str | None, what: str) -> None:
    """Refuse, before any work, an output that cannot be written: empty, a folder, a device or FIFO, a
    missing or read-only folder."""
    if path is None:
        return
    if not path.strip():
        raise InvalidValueError(f"{what}: the file name is empty")
    target = Path(path)
    if target.is_dir():
        raise InvalidValueError(f"{what} {path}: is a folder; give a file name")
    if target.exists() and not target.is_file():
        raise InvalidValueError(f"{what} {path}: not a regular file (a device or FIFO); give a file name")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidValueError(f"{what} {path}: folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise InvalidValueError(f"{what} {path}: folder {str(folder)!r} is not writable")


def _write(path: str, content: str | bytes, what: str) -> None:
    from llmarch.core.io import write_atomic

    try:
        write_atomic(path, content, what=what)
    except OSError as exc:
        raise InvalidValueError(f"{what} {path}: cannot write: {exc.strerror or exc}") from None


def _load_baseline(path: str, planned: list[tuple[Any, ...]], max_regression: float) -> BenchResults:
    """The baseline, read strictly and checked against this run's plan before anything is timed."""
    from llmarch.bench.baseline import NothingComparedError, describe_shapes, matching
    from llmarch.catalog.bench_results import load_bench_results

    if not max_regression >= 0:
        raise typer.BadParameter("--max-regression must be a non-negative fraction")
    old = load_bench_results(path, what="--baseline", strict=True)
    if not matching(old.rows, planned):
        raise NothingComparedError(
            f"--baseline {path}: none of its {len(old.timed_rows)} timed results matches a case of this run "
            f"(it measured {describe_shapes(old.timed_rows)}): nothing to compare; run the baseline's shape"
        )
    return old


def _gate(result: BenchRun, old: BenchResults, *, max_regression: float, correct: bool, progress: bool) -> Comparison:
    from llmarch.bench import harness

    comparison, retimed = harness.confirm_regressions(
        result, list(old.rows), old.environment.measured_peaks, max_regression=max_regression,
        correct_machine=correct, progress=progress,
    )  # fmt: skip
    if retimed:
        typer.echo(f"re-timed {retimed} suspected regression(s): {len(comparison.regressions)} reproduced", err=True)
    return comparison


def _show(result: BenchRun, fmt: OutputFormat, output: str | None, comparison: Comparison | None) -> None:
    from llmarch.report import tables as report

    if fmt is OutputFormat.table:
        rows = table_rows(result.records)
        if rows:
            report.print_rich(report.rich_table(rows, list(rows[0]), title=_title(result)))
    elif output is None:
        sys.stdout.write(_text(result, fmt, comparison))
    _print_checks(result)


def _finish(result: BenchRun, output: str | None, comparison: Comparison | None) -> None:
    """Print the comparison and leave with the exit code the run earned."""
    from llmarch.bench.baseline import NothingComparedError

    if comparison is not None:
        _print_changes(comparison)
    if result.interrupted:
        where = f"; saved to {output}" if output else ""
        typer.echo(f"interrupted ({result.interrupted_by}): {len(result.records)} finished results kept{where}",
                   err=True)  # fmt: skip
        raise typer.Exit(128 + signal.Signals[result.interrupted_by or "SIGINT"].value)
    if comparison is not None and comparison.n_compared == 0:
        raise NothingComparedError("--baseline: no result of this run could be compared (0 compared)")
    if comparison is not None and comparison.regressions:
        raise typer.Exit(EXIT_THRESHOLD)


# -- options --------------------------------------------------------------------------------------------------------
PresetOption = Annotated[
    str | None,
    typer.Option(
        help="Take heads, KV heads, head width and window from a preset (name, file or overrides). "
        f"Default {D.DEFAULT_BENCH_PRESET}, unless --n-heads is given."
    ),
]
WindowOption = Annotated[
    int | None,
    typer.Option(help="Window of the sliding_window variant. Default: the preset's, else a quarter of the longest "
                 "--seq-lens."),
]  # fmt: skip
SeqLensOption = Annotated[
    str | None,
    typer.Option(
        help="Sequence lengths (KV-cache length for decode), e.g. 4096,32768. Default "
        f"{','.join(map(str, D.DEFAULT_BENCH_SEQ_LENS))}."
    ),
]
BatchOption = Annotated[
    str | None, typer.Option(help=f"Batch sizes, e.g. 1,8. Default {','.join(map(str, D.DEFAULT_BENCH_BATCHES))}.")
]
ChunkSizeOption = Annotated[
    int | None, typer.Option(help=f"Tokens per chunk of chunked_prefill. Default {D.DEFAULT_BENCH_CHUNK_SIZE}.")
]
RepeatsOption = Annotated[
    int | None,
    typer.Option(help=f"Interleaved timing passes. Default {D.DEFAULT_BENCH_REPEATS} (quick {D.QUICK_BENCH_REPEATS})."),
]
MinTimeOption = Annotated[
    float | None,
    typer.Option(help=f"Seconds per case and pass. Default {D.DEFAULT_BENCH_MIN_PASS_S:g} "
                 f"(quick {D.QUICK_BENCH_MIN_PASS_S:g})."),
]  # fmt: skip
VariantsOption = Annotated[
    str | None, typer.Option(help="Variants: mha, gqa (or gqa:N for N KV heads), mqa, sliding_window, alibi.")
]
ImplsOption = Annotated[
    str | None,
    typer.Option(help="Implementations: eager, eager_grouped, sdpa, sdpa_repeat_kv, sdpa_grouped, sdpa_flash, "
                 "sdpa_efficient, sdpa_cudnn, sdpa_math, flex. Default: all on CUDA; on CPU the eager and SDPA ones "
                 "without forced backends (flex compiles for seconds per shape: ask for it)."),
]  # fmt: skip
QuickOption = Annotated[
    bool,
    typer.Option("--quick", help="A short sweep: every variant x {eager, sdpa} x {prefill, decode} at S=128, 512."),
]
MaxMemoryOption = Annotated[
    str | None,
    typer.Option(help="Skip cases whose estimated memory exceeds this (e.g. 8GiB). Default: "
                 f"{D.DEFAULT_BENCH_MEMORY_HEADROOM:.0%} of the tightest of "
                 "free memory, ulimit (RLIMIT_AS, RLIMIT_DATA) and the cgroup's memory limit."),
]  # fmt: skip
BaselineOption = Annotated[
    str | None,
    typer.Option(help="An earlier JSON result: compare medians of matching records; exit 3 on a regression, 4 when "
                 "nothing matches. Checked before the benchmark runs."),
]  # fmt: skip
MaxRegressionOption = Annotated[
    float, typer.Option(help="Slowdown (a fraction) beyond which a change counts, when it also exceeds the noise.")
]
MachineOption = Annotated[
    bool,
    typer.Option("--drift-correction/--no-drift-correction",
                 help="Measure each change against the machine's change of speed, taken from the reference matmul "
                 "and copy both runs time for their roofline (not from the kernels under test): a machine 2x "
                 "slower today is no regression, kernels 2x slower on the same machine are."),
]  # fmt: skip
PlotOption = Annotated[
    str | None, typer.Option(help="Write a PNG of latency (IQR bars) and roofline share against sequence length.")
]
FlushOption = Annotated[bool, typer.Option("--flush-l2", help="CUDA: overwrite the L2 cache before each call.")]
ProgressOption = Annotated[
    bool | None, typer.Option("--progress/--no-progress", help="Progress bar (default: on a terminal).")
]
OutputFileOption = Annotated[
    str | None,
    typer.Option("--output", "-o", metavar="FILE",
                 help="Save results to FILE after every shape (atomically): JSON, or CSV/Markdown with --format; "
                 "with the default table format the table is still printed."),
]  # fmt: skip


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
    preset: PresetOption = None,
    n_heads: Annotated[int | None, typer.Option(help="Query heads (instead of or over --preset).")] = None,
    n_kv_heads: Annotated[int | None, typer.Option(help="KV heads of the shape (default: --n-heads).")] = None,
    d_head: Annotated[int | None, typer.Option(help="Head width.")] = None,
    window: WindowOption = None,
    seq_lens: SeqLensOption = None,
    batch: BatchOption = None,
    variants: VariantsOption = None,
    impls: ImplsOption = None,
    phases: Annotated[str | None, typer.Option(help="Phases: prefill, decode, chunked_prefill.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Non-causal prefill (a sliding window stays causal).")] = False,
    chunk_size: ChunkSizeOption = None,
    dtype: Annotated[str | None, typer.Option(help="fp32, bf16 or fp16. Default: bf16 on CUDA, fp32 on CPU.")] = None,
    device: Annotated[Device, typer.Option(help="Where to run: auto (CUDA when present), cpu, cuda.")] = Device.auto,
    threads: Annotated[int | None, typer.Option(help="CPU threads. Default: the process's thread count.")] = None,
    repeats: RepeatsOption = None,
    min_time: MinTimeOption = None,
    quick: QuickOption = False,
    flush_l2: FlushOption = False,
    max_memory: MaxMemoryOption = None,
    gpu: Annotated[str | None, typer.Option(help="Catalog GPU for the datasheet peaks (unrecognised device).")] = None,
    baseline: BaselineOption = None,
    max_regression: MaxRegressionOption = D.DEFAULT_MAX_REGRESSION,
    drift_correction: MachineOption = True,
    plot: PlotOption = None,
    progress: ProgressOption = None,
    fmt: FormatOption = OutputFormat.table,
    output: OutputFileOption = None,
) -> None:
    """Time attention variants (MHA, GQA, MQA, sliding window, ALiBi) and kernels (eager, SDPA and its backends,
    FlexAttention) in prefill, decode and chunked prefill, checked against float64 and set against the
    device's measured roofline."""
    from llmarch.bench import harness
    from llmarch.bench.settings import resolve_settings
    from llmarch.core.units import parse_bytes

    settings = resolve_settings(
        preset=preset, n_heads=n_heads, n_kv_heads=n_kv_heads, d_head=d_head, window=window,
        seq_lens=_ints(seq_lens, "--seq-lens"), batches=_ints(batch, "--batch"), variants=_names(variants),
        impls=_names(impls), phases=_names(phases), dtype=dtype, device=device.value, threads=threads,
        repeats=repeats, min_pass_s=min_time, chunk_size=chunk_size, causal=not full, quick=quick, flush_l2=flush_l2,
        memory_budget_bytes=None if max_memory is None else parse_bytes(max_memory, what="--max-memory"), gpu=gpu,
    )  # fmt: skip
    _check_target(output, "--output")
    _check_target(plot, "--plot")
    old = _load_baseline(baseline, harness.planned_keys(settings), max_regression) if baseline else None
    file_fmt = OutputFormat.json if fmt is OutputFormat.table else fmt

    def save(run: BenchRun, comparison: Comparison | None = None) -> None:
        if output is not None:
            _write(output, _text(run, file_fmt, comparison), "--output")

    show_progress = sys.stderr.isatty() if progress is None else progress
    with harness.interrupt_on_signals():
        result = harness.run(settings, on_update=save, progress=show_progress)
        comparison = None
        if old is not None and not result.interrupted:
            comparison = _gate(result, old, max_regression=max_regression, correct=drift_correction,
                               progress=show_progress)  # fmt: skip
            save(result, comparison)
        _show(result, fmt, output, comparison)
        if plot is not None and result.records:
            from llmarch.report.plots import bench_png

            png = bench_png(result.records, title=_title(result))
            if png is not None:
                _write(plot, png, "--plot")
    _finish(result, output, comparison)
