"""[torch] The attention benchmark sweep: check every case against float64, time it, set it against the roofline.

Method (the field's practice, adapted to a noisy machine):
1. The device's roofline is measured once per run, before the sweep: a square matmul in the benchmark
   dtype (FLOP/s) and a large tensor copy (bytes/s, read + write), and again after each group, the best
   measurement being the roofline (`timing.measure_peaks`). On a GPU the catalog knows by name, its dense
   datasheet peaks are reported too. The first and last measurements tell a run-wide drift (`checks`).
2. Cases are grouped by (sequence length, batch, phase). For each case of a group: fresh random inputs;
   one call checked against float64 eager attention (`kernels.reference_error`), a case whose error
   exceeds the dtype's tolerance is reported and not timed; a warm-up call, which also sizes the timing
   blocks and measures peak memory.
3. Then `repeats` passes, each timing every case of the group in turn (the order rotated each pass), so
   that a slow spell of the machine spreads over all cases instead of hitting one. Durations come from
   the injected `timing.Timer` (wall time by default).
4. A case reports the median, quartiles and IQR of its per-call times over all passes, a robust
   coefficient of variation (IQR / 1.349 / median) flagged above 10%, the analytic FLOPs and bytes
   (`counts`), the achieved FLOP/s and bytes/s, the roofline time they predict and the fraction of it
   reached. A fraction above 1 is flagged as a measurement problem (`checks.above_roofline`), as is a time
   that falls while the work grows (`checks.non_monotone`).

A case that does not fit in memory (by estimate against the tightest of free memory, rlimits and cgroup
limits, or by an out-of-memory error) or that the build or device cannot run is reported with
`skipped_reason`. Ctrl-C, SIGTERM and SIGHUP (`interrupt_on_signals`) stop the sweep and keep every finished
case; `on_update` is called after each group so that the caller can save as results arrive.
"""

from __future__ import annotations

import contextlib
import math
import signal
import statistics
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from llmarch.bench import checks
from llmarch.bench import counts as bench_math
from llmarch.bench.baseline import Comparison, compare_runs
from llmarch.bench.kernels import (
    Implementation,
    PhaseInputs,
    UnsupportedCase,
    Variant,
    build_phase,
    flex_unavailable_reason,
    make_inputs,
    reference_error,
)
from llmarch.bench.settings import TOLERANCE, TORCH_DTYPES, BenchSettings, Case, estimate_bytes, plan
from llmarch.bench.timing import (
    Peaks,
    Timer,
    WallTimer,
    block_size,
    free_memory_bytes,
    measure_pass,
    measure_peaks,
    peak_memory_bytes,
)
from llmarch.catalog.bench_results import BenchRow, MeasuredPeaks
from llmarch.core.defaults import DEFAULT_BENCH_MEMORY_HEADROOM
from llmarch.core.errors import InvalidValueError
from llmarch.core.frozen import frozen_dataclass

#: Robust coefficient of variation above which a measurement is flagged noisy.
NOISY_CV = 0.10
#: Fraction of the available memory a case may plan to use (named in llmarch.core.defaults).
MEMORY_HEADROOM = DEFAULT_BENCH_MEMORY_HEADROOM


# -- results ----------------------------------------------------------------------------------------------------
@frozen_dataclass
class BenchResult:
    """One case: what was run, how long it took, how close to the roofline, how accurate. Its fields are the
    bench-results schema (`llmarch.catalog.bench_results.RESULT_FIELDS`)."""

    variant: str
    impl: str
    phase: str
    batch: int
    seq_len: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    window: int | None
    causal: bool
    chunk_size: int | None
    gqa_feed: str | None
    dtype: str
    device: str
    median_s: float | None = None
    iqr_s: float | None = None
    q1_s: float | None = None  # first quartile of the per-call times
    q3_s: float | None = None
    cv: float | None = None  # robust coefficient of variation: IQR / 1.349 / median
    noisy: bool | None = None  # cv above NOISY_CV
    n_samples: int = 0
    passes: int = 0
    analytic_flops: float = 0.0
    analytic_bytes: float = 0.0
    achieved_flop_per_s: float | None = None
    achieved_bytes_per_s: float | None = None
    predicted_s: float | None = None  # roofline time at the measured peaks
    roofline_fraction: float | None = None  # predicted_s / median_s
    predicted_catalog_s: float | None = None  # roofline time at the catalog's datasheet peaks
    roofline_fraction_catalog: float | None = None
    above_roofline: bool | None = None  # roofline_fraction > 1: a measurement problem, not a result
    non_monotone: bool | None = None  # out of order with the same case at other sequence lengths
    peak_memory_bytes: int | None = None
    max_abs_error: float | None = None
    rel_error: float | None = None
    skipped_reason: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}

    def to_row(self) -> BenchRow:
        return BenchRow(**self.to_record())


@dataclass
class BenchRun:
    """A sweep in progress or finished: settings, environment, results so far."""

    settings: BenchSettings
    environment: dict[str, Any]
    results: list[BenchResult] = field(default_factory=list)
    peaks: Peaks | None = None
    complete: bool = False
    interrupted: bool = False
    interrupted_by: str | None = None  # SIGINT, SIGTERM or SIGHUP

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r.to_record() for r in self.results]

    @property
    def rows(self) -> list[BenchRow]:
        return [r.to_row() for r in self.results]

    @property
    def measured_peaks(self) -> MeasuredPeaks | None:
        return None if self.peaks is None else MeasuredPeaks(**self.peaks.to_record())

    @property
    def drift(self) -> checks.ReferenceDrift | None:
        """The reference kernels' change of speed from the start to the end of the run."""
        if self.peaks is None:
            return None
        return checks.reference_drift(self.peaks.matmul_samples, self.peaks.copy_samples)

    def checks_record(self) -> dict[str, Any]:
        return checks.summary(self.records, self.drift)


def _base_result(case: Case, settings: BenchSettings) -> BenchResult:
    v = case.variant
    causal = v.causal if case.phase == "prefill" else True
    element = torch.finfo(TORCH_DTYPES[settings.dtype]).bits / 8
    pairs = bench_math.attended_pairs(case.phase, case.seq_len, window=v.window, causal=causal)
    chunk = settings.chunk_size if case.phase == "chunked_prefill" else None
    return BenchResult(
        variant=v.name, impl=case.impl.name, phase=case.phase, batch=case.batch, seq_len=case.seq_len,
        n_heads=v.n_heads, n_kv_heads=v.n_kv_heads, d_head=v.d_head, window=v.window, causal=causal,
        chunk_size=chunk, gqa_feed=case.gqa_feed, dtype=settings.dtype, device=settings.device,
        analytic_flops=bench_math.attention_flops(case.batch, v.n_heads, v.d_head, pairs),
        analytic_bytes=bench_math.attention_bytes(
            case.phase, batch=case.batch, n_heads=v.n_heads, n_kv_heads=v.n_kv_heads, d_head=v.d_head,
            seq_len=case.seq_len, bytes_per_element=element, window=v.window, chunk_size=chunk,
        ),
    )  # fmt: skip


def planned_keys(settings: BenchSettings) -> list[tuple[Any, ...]]:
    """The identity (`bench_results.IDENTITY_KEYS`) of every case the sweep will run, before it runs."""
    return [_base_result(case, settings).to_row().key for group in plan(settings) for case in group]


def _finish(base: BenchResult, samples: list[float], passes: int, peaks: Peaks) -> BenchResult:
    q1, median, q3 = statistics.quantiles(samples, n=4, method="inclusive") if len(samples) > 1 else samples * 3
    cv = (q3 - q1) / 1.349 / median
    timed = replace(
        base, median_s=median, iqr_s=q3 - q1, q1_s=q1, q3_s=q3, cv=cv, noisy=cv > NOISY_CV,
        n_samples=len(samples), passes=passes, achieved_flop_per_s=base.analytic_flops / median,
        achieved_bytes_per_s=base.analytic_bytes / median,
    )  # fmt: skip
    return _with_roofline(timed, peaks)


def _with_roofline(result: BenchResult, peaks: Peaks) -> BenchResult:
    """The roofline time of a result's analytic FLOPs and bytes at `peaks`, and the fraction reached."""
    assert result.median_s is not None
    flops, moved = result.analytic_flops, result.analytic_bytes
    predicted = bench_math.roofline_time_s(flops, moved, peaks.matmul_flop_per_s, peaks.copy_bytes_per_s)
    catalog = None
    if peaks.catalog_flop_per_s and peaks.catalog_bytes_per_s:
        catalog = bench_math.roofline_time_s(flops, moved, peaks.catalog_flop_per_s, peaks.catalog_bytes_per_s)
    fraction = predicted / result.median_s
    return replace(
        result, predicted_s=predicted, roofline_fraction=fraction, predicted_catalog_s=catalog,
        roofline_fraction_catalog=None if catalog is None else catalog / result.median_s,
        above_roofline=checks.above_roofline(fraction),
    )  # fmt: skip


def _flag_order(bench_run: BenchRun) -> None:
    """Mark every result that is out of order with the same case at other sequence lengths."""
    flags = checks.non_monotone(bench_run.records)
    bench_run.results = [replace(r, non_monotone=f) for r, f in zip(bench_run.results, flags, strict=True)]


# -- the environment ------------------------------------------------------------------------------------------------
def environment(settings: BenchSettings, peaks: Peaks | None) -> dict[str, Any]:
    """torch, device, CPU, threads and the measured peaks (merged into the JSON document's environment)."""
    device_name = torch.cuda.get_device_name() if settings.device == "cuda" else _cpu_name()
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": settings.device,
        "device_name": device_name,
        "cpu": _cpu_name(),
        "threads": settings.threads,
        "dtype": settings.dtype,
        "measured_peaks": None if peaks is None else peaks.to_record(),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


# -- interruption ---------------------------------------------------------------------------------------------------
class Interrupted(KeyboardInterrupt):
    """A signal that stops the run as Ctrl-C does (SIGTERM: a CI job cancelled; SIGHUP: its terminal gone)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def interrupt_on_signals(signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise `Interrupted` (a KeyboardInterrupt) in the main thread, so
    the sweep stops and saves as on Ctrl-C. Later signals are ignored while the results are being saved.
    SIGINT gets Python's own Ctrl-C handler for the block, whatever the embedding process had installed (an
    ignored or replaced SIGINT would otherwise make Ctrl-C lose the sweep).
    Outside the main thread (where Python cannot set handlers) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        if len(received) == 1:
            raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in signums}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


# -- the sweep ----------------------------------------------------------------------------------------------------
@dataclass
class _Live:
    """A case being measured: its callable, block size and samples so far."""

    case: Case
    base: BenchResult
    fn: Callable[[], Any]
    number: int
    samples: list[float] = field(default_factory=list)
    passes: int = 0


@contextlib.contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[str | None, int], None]]:
    """A rich progress bar on stderr with ETA; yields update(description or None to keep it, steps done)."""
    if not enabled:
        yield lambda description, advance: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task("bench", total=total)

        def update(description: str | None, advance: int) -> None:
            if description is None:
                progress.update(task, advance=advance)
            else:
                progress.update(task, description=description, advance=advance)

        yield update


def run(
    settings: BenchSettings,
    *,
    on_update: Callable[[BenchRun], None] | None = None,
    progress: bool = False,
    peaks: Peaks | None = None,
    timer: Timer | None = None,
) -> BenchRun:
    """Run the sweep. Ctrl-C (or a signal under `interrupt_on_signals`) stops it: the run comes back with
    `interrupted` set and every finished case (a case interrupted after a full pass keeps the passes it has).
    `peaks` given: the roofline is not measured (nor re-measured). `timer`: where durations come from."""
    from llmarch.bench import timing

    timer = timer or (WallTimer() if settings.flush_l2 else timing.default_timer())
    groups = plan(settings)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    bench_run = BenchRun(settings, environment(settings, None))
    total = sum(len(g) * (1 + settings.repeats) for g in groups) + 1
    try:
        with _progress(progress, total) as advance:
            try:
                _sweep(groups, bench_run, advance, timer, peaks, on_update)
            except KeyboardInterrupt as exc:
                bench_run.interrupted = True
                bench_run.interrupted_by = signal.Signals(exc.signum).name if isinstance(exc, Interrupted) else "SIGINT"
    finally:
        torch.set_num_threads(previous_threads)
    _flag_order(bench_run)
    if on_update is not None:
        on_update(bench_run)
    return bench_run


def _sweep(
    groups: list[list[Case]],
    bench_run: BenchRun,
    advance: Callable[[str | None, int], None],
    timer: Timer,
    peaks: Peaks | None,
    on_update: Callable[[BenchRun], None] | None,
) -> None:
    settings = bench_run.settings
    advance("measuring the roofline", 0)
    _set_peaks(bench_run, peaks or measure_peaks(settings, timer=timer))
    advance("roofline measured", 1)
    for group in groups:
        _run_group(group, settings, bench_run, advance, timer)
        if peaks is None:  # measure again: the roofline is the best the device did in this run
            advance("measuring the roofline again", 0)
            assert bench_run.peaks is not None
            with contextlib.suppress(InvalidValueError):  # memory short now: keep the roofline measured so far
                _set_peaks(bench_run, bench_run.peaks.combined(measure_peaks(settings, timer=timer, budget_s=0.1)))
        _flag_order(bench_run)
        if on_update is not None:
            on_update(bench_run)
    bench_run.complete = True
    advance("finished", 0)


def _set_peaks(bench_run: BenchRun, peaks: Peaks) -> None:
    """Adopt new peaks: the environment and every finished result's roofline follow them."""
    bench_run.peaks = peaks
    bench_run.environment = environment(bench_run.settings, peaks)
    bench_run.results = [_with_roofline(r, peaks) if r.median_s is not None else r for r in bench_run.results]


def _memory_budget(settings: BenchSettings) -> tuple[float, str] | None:
    """Bytes a case may plan to use and what sets them (--max-memory, or a share of the tightest limit)."""
    if settings.memory_budget_bytes is not None:
        return settings.memory_budget_bytes, "--max-memory"
    found = free_memory_bytes(settings.device)
    return None if found is None else (MEMORY_HEADROOM * found[0], f"{MEMORY_HEADROOM:.0%} of {found[1]}")


def _run_group(group: list[Case], settings: BenchSettings, bench_run: BenchRun, advance: Any, timer: Timer) -> None:
    peaks = bench_run.peaks
    assert peaks is not None
    budget = _memory_budget(settings)
    generator = torch.Generator(settings.device).manual_seed(settings.seed)
    if settings.flush_l2 and isinstance(timer, WallTimer) and timer.flush is None:
        timer.flush = torch.empty(2**28, dtype=torch.uint8, device=settings.device)  # 256 MiB: above any L2
    inputs: dict[Variant, PhaseInputs] = {}
    live: list[_Live] = []
    finished: dict[int, BenchResult] = {}
    try:
        for index, case in enumerate(group):
            label = f"{case.phase} S={case.seq_len} B={case.batch} {case.variant.name} {case.impl.name}"
            advance(f"checking {label}", 0)
            result = _prepare(case, settings, inputs, generator, budget, live, timer)
            if result is not None:
                finished[index] = result
            advance(f"checked {label}", 1 + (settings.repeats if result is not None else 0))
        _passes(group, settings, live, finished, advance, timer)
    finally:
        for item in live:
            index = group.index(item.case)
            if index not in finished and item.passes:
                finished[index] = _finish(item.base, item.samples, item.passes, peaks)
        bench_run.results.extend(finished[i] for i in sorted(finished))
        inputs.clear()
        live.clear()


def _passes(
    group: list[Case],
    settings: BenchSettings,
    live: list[_Live],
    finished: dict[int, BenchResult],
    advance: Any,
    timer: Timer,
) -> None:
    """`repeats` passes over the live cases, the order rotated each pass."""
    for p in range(settings.repeats):
        order = live[p % len(live) :] + live[: p % len(live)] if live else []
        for item in order:
            c = item.case
            advance(f"pass {p + 1}/{settings.repeats} {c.phase} S={c.seq_len} B={c.batch} {c.variant.name} "
                    f"{c.impl.name}", 0)  # fmt: skip
            try:
                item.samples += measure_pass(
                    item.fn, number=item.number, min_time_s=settings.min_pass_s, timer=timer, key=item.base
                )
            except (RuntimeError, MemoryError) as exc:
                finished[group.index(item.case)] = replace(item.base, skipped_reason=_reason(exc))
                live.remove(item)
            else:
                item.passes += 1
            advance(None, 1)


def _prepare(
    case: Case,
    settings: BenchSettings,
    inputs: dict[Variant, PhaseInputs],
    generator: torch.Generator,
    budget: tuple[float, str] | None,
    live: list[_Live],
    timer: Timer,
) -> BenchResult | None:
    """Build, check, warm up and size one case; a finished (skipped) result, or None when it joins `live`."""
    base = _base_result(case, settings)
    if case.impl.kind == "flex" and (reason := flex_unavailable_reason()):
        return replace(base, skipped_reason=reason)
    element = torch.finfo(TORCH_DTYPES[settings.dtype]).bits / 8
    needed = estimate_bytes(case, element_bytes=element, chunk_size=settings.chunk_size)
    if budget is not None and needed > budget[0]:
        from llmarch.core.units import format_bytes

        return replace(base, skipped_reason=f"too big: needs about {format_bytes(needed)}, budget "
                                            f"{format_bytes(budget[0])} ({budget[1]})")  # fmt: skip
    caught: list[warnings.WarningMessage] | None = []
    try:
        if case.variant not in inputs:  # a group shares phase, batch and length: one input set per variant
            inputs[case.variant] = make_inputs(
                case.variant, case.phase, batch=case.batch, seq_len=case.seq_len, dtype=TORCH_DTYPES[settings.dtype],
                device=settings.device, generator=generator,
            )  # fmt: skip
        phase_inputs = inputs[case.variant]
        with warnings.catch_warnings(record=True) as caught:  # torch explains a refused backend in warnings
            warnings.simplefilter("always")
            fn, out, base = _build_and_call(case, base, phase_inputs, settings)
        error = reference_error(out, phase_inputs, case.variant, case.phase)
        del out
        checked = replace(base, max_abs_error=error.max_abs_error, rel_error=error.rel_error)
        tolerance = TOLERANCE[settings.dtype]
        if not error.rel_error <= tolerance:
            reason = f"wrong result: relative error {error.rel_error:.3g} > {tolerance:g}"
            return replace(checked, skipped_reason=reason)
        # The second call warms up, measures peak memory and sizes the timing blocks.
        once, peak = timer.once_s(lambda: peak_memory_bytes(fn, settings.device), key=base)
    except (UnsupportedCase, RuntimeError, MemoryError, NotImplementedError) as exc:
        # torch answers an unsupported backend, shape or dtype with RuntimeError (compile failures included)
        if settings.device == "cuda" and _is_oom(exc):
            torch.cuda.empty_cache()  # give the cached blocks back before the next case
        return replace(base, skipped_reason=_reason(exc, caught))
    number = 1 if settings.flush_l2 else block_size(once, settings.min_pass_s)
    live.append(_Live(case, replace(checked, peak_memory_bytes=peak), fn, number))
    return None


def _build_and_call(
    case: Case, base: BenchResult, inputs: PhaseInputs, settings: BenchSettings
) -> tuple[Callable[[], torch.Tensor], torch.Tensor, BenchResult]:
    """Build a case and make its first call. A forced SDPA backend that refuses native GQA (`enable_gqa`) is
    tried again with K/V repeated to every head, and the record says so in `gqa_feed`."""

    def build(impl: Implementation) -> tuple[Callable[[], torch.Tensor], torch.Tensor]:
        fn = build_phase(impl, case.variant, case.phase, inputs, chunk_size=settings.chunk_size,
                         compiled=settings.compiled_flex)  # fmt: skip
        out = fn()
        if settings.device == "cuda":
            torch.cuda.synchronize()
        return fn, out

    try:
        return (*build(case.impl), base)
    except RuntimeError as exc:
        if case.impl.backend is None or case.gqa_feed != "native" or _is_oom(exc):
            raise
    return (*build(replace(case.impl, gqa_feed="repeat_kv")), replace(base, gqa_feed="repeat_kv"))


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower()
    )


def _reason(exc: BaseException, caught: list[warnings.WarningMessage] | None = None) -> str:
    """One line saying why a case did not run: the error's first line, plus torch's own explanation."""
    if _is_oom(exc):
        return "out of memory: " + str(exc).strip().splitlines()[0][:160]
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}" if not isinstance(exc, UnsupportedCase) else str(exc)
    details = []
    for w in caught or []:
        message = str(w.message).split("(Triggered internally")[0].strip()
        if message and not message.endswith(":"):  # skip headers such as "Flash attention kernel not used because:"
            details.append(message)
    if details:
        text += " (" + "; ".join(dict.fromkeys(details))[:300] + ")"
    return text[:400]


# -- the gate ---------------------------------------------------------------------------------------------------
def compare_with(
    bench_run: BenchRun, baseline_rows: list[BenchRow], baseline_peaks: MeasuredPeaks | None, *,
    max_regression: float, correct_machine: bool = True,
) -> Comparison:  # fmt: skip
    """This run against a baseline (`baseline.compare_runs`), the machine's speed from both runs' peaks."""
    return compare_runs(
        baseline_rows, bench_run.rows, max_regression=max_regression, old_peaks=baseline_peaks,
        new_peaks=bench_run.measured_peaks, correct_machine=correct_machine,
    )  # fmt: skip


def confirm_regressions(
    bench_run: BenchRun,
    baseline_rows: list[BenchRow],
    baseline_peaks: MeasuredPeaks | None,
    *,
    max_regression: float,
    correct_machine: bool = True,
    progress: bool = False,
    timer: Timer | None = None,
) -> tuple[Comparison, int]:
    """Re-time the cases that compare as regressions and keep, for each, the faster of the two medians.

    A slowdown must reproduce to count: one noisy burst on a shared machine can slow a kernel by 50% for
    a few seconds. Only the suspected cases run again (at the run's roofline, not re-measured), and the
    run's results are updated in place. Returns the new comparison and how many cases were re-timed.
    """
    args = {"max_regression": max_regression, "correct_machine": correct_machine}
    comparison = compare_with(bench_run, baseline_rows, baseline_peaks, **args)
    suspects = comparison.regressions
    if not suspects or bench_run.interrupted:
        return comparison, 0
    wanted = {tuple(c.key.values()) for c in suspects}
    s = bench_run.settings

    def keep(values: tuple[Any, ...], field_name: str) -> tuple[Any, ...]:
        chosen = {c.key[field_name] for c in suspects}
        return tuple(v for v in values if v in chosen) or values

    narrow = replace(s, seq_lens=keep(s.seq_lens, "seq_len"), batches=keep(s.batches, "batch"),
                     phases=keep(s.phases, "phase"), impls=keep(s.impls, "impl"),
                     variants=keep(s.variants, "variant"))  # fmt: skip
    again = run(narrow, progress=progress, peaks=bench_run.peaks, timer=timer)
    retimed = {r.to_row().key: r for r in again.results}
    for i, result in enumerate(bench_run.results):
        k = result.to_row().key
        second = retimed.get(k)
        if k not in wanted or second is None or second.median_s is None or result.median_s is None:
            continue
        if second.median_s < result.median_s:
            bench_run.results[i] = second
    _flag_order(bench_run)
    if again.interrupted:
        bench_run.interrupted, bench_run.interrupted_by = True, again.interrupted_by
    return compare_with(bench_run, baseline_rows, baseline_peaks, **args), len(wanted)
