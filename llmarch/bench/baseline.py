"""The regression gate's statistics: match this run's results with a baseline's, correct for the machine's
speed, and call each change a regression, an improvement, noise or the same. Torch-free.

The machine's speed is measured on something that is not under test: the reference kernels the run times
anyway for its roofline (a square matmul and a large copy, `timing.measure_peaks`), against the same
measurements stored in the baseline. A kernel's expected time today is its baseline time scaled by how
much slower the machine's matmul (for a compute-bound case) or copy (memory-bound) has become. A change of
every kernel alike is therefore a regression when the reference kernels did not change, and no regression
when they slowed down by as much. (The median change of the kernels themselves cannot serve: it absorbs a
uniform slowdown of the code under test.)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import field
from typing import Any

from llmarch.catalog.bench_results import IDENTITY_KEYS, BenchRow, MeasuredPeaks
from llmarch.core.errors import InvalidValueError
from llmarch.core.frozen import frozen_dataclass


class NothingComparedError(InvalidValueError):
    """A baseline that shares no measurement with this run: a gate that compares nothing must not pass."""

    exit_code = 4  # llmarch.cli._app.EXIT_NOTHING_COMPARED


#: Matched records needed before the kernels' run-to-run scatter is estimated (fewer: 0).
MIN_RECORDS_FOR_SCATTER = 8
#: A kernel is set apart from the run-to-run scatter of all kernels only beyond this many robust sigmas:
#: 4, not 3, because timings on a shared machine are heavy-tailed (run-to-run CV 5% median, 26% at p90).
SCATTER_SIGMAS = 4.0


@frozen_dataclass
class MachineSpeed:
    """How much longer the reference kernels take now than in the baseline (1 = the same machine speed):
    typical (median) baseline rate over typical rate now, for the matmul and for the copy."""

    compute: float
    memory: float

    def factor_for(self, row: BenchRow, old_peaks: MeasuredPeaks | None) -> float:
        """The factor for one case: the matmul's when its roofline is compute-bound at the baseline's peaks,
        the copy's when memory-bound, their geometric mean when the record does not say."""
        flops, moved = row.analytic_flops, row.analytic_bytes
        rate_f = old_peaks.typical_matmul_flop_per_s if old_peaks else None
        rate_b = old_peaks.typical_copy_bytes_per_s if old_peaks else None
        if not (flops and moved and rate_f and rate_b):
            return math.sqrt(self.compute * self.memory)
        return self.compute if flops / rate_f >= moved / rate_b else self.memory


def machine_speed(old: MeasuredPeaks | None, new: MeasuredPeaks | None) -> MachineSpeed | None:
    """The machine's slowdown since the baseline, from the reference kernels both runs measured (None when
    either run lacks them: then nothing is corrected)."""
    if old is None or new is None:
        return None
    rates = (old.typical_matmul_flop_per_s, new.typical_matmul_flop_per_s,
             old.typical_copy_bytes_per_s, new.typical_copy_bytes_per_s)  # fmt: skip
    if not all(rates):
        return None
    old_f, new_f, old_b, new_b = rates
    return MachineSpeed(compute=old_f / new_f, memory=old_b / new_b)  # type: ignore[operator]


@frozen_dataclass
class Change:
    """One record of this run against the baseline's matching record."""

    key: dict[str, Any]
    old_s: float | None
    new_s: float | None
    change: float | None  # new / (old x machine) - 1: the change beyond the machine's own change of speed
    noise: float | None  # the time difference that counts as noise, as a fraction of old_s
    verdict: str  # slower (a regression), faster, noise, same, new, gone, skipped
    raw_change: float | None = None  # new / old - 1
    machine: float = 1.0  # the machine's slowdown this case is measured against (1 = none)

    @property
    def compared(self) -> bool:
        return self.old_s is not None and self.new_s is not None

    def to_record(self) -> dict[str, Any]:
        return {**self.key, "old_s": self.old_s, "new_s": self.new_s, "change": self.change, "noise": self.noise,
                "verdict": self.verdict, "raw_change": self.raw_change, "machine": self.machine}  # fmt: skip


@frozen_dataclass
class Comparison:
    """Every change, and what the comparison was measured against."""

    changes: tuple[Change, ...]
    max_regression: float
    machine: MachineSpeed | None  # None: not corrected (switched off, or a run without reference kernels)
    scatter: float  # robust sigma of log(new / expected) over matched records (0 with fewer than 8)
    residual: float  # median of new / expected over matched records: how the code moved beyond the machine
    notes: tuple[str, ...] = field(default=())

    @property
    def n_compared(self) -> int:
        return sum(c.compared for c in self.changes)

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.verdict == "slower"]

    def to_record(self) -> dict[str, Any]:
        return {
            "max_regression": self.max_regression,
            "compared": self.n_compared,
            "regressions": len(self.regressions),
            "machine_slowdown": None if self.machine is None else
            {"compute": self.machine.compute, "memory": self.machine.memory},
            "scatter": self.scatter,
            "residual_change": self.residual - 1,
            "notes": list(self.notes),
            "changes": [c.to_record() for c in self.changes],
        }  # fmt: skip


def compare_runs(
    old: Sequence[BenchRow],
    new: Sequence[BenchRow],
    *,
    max_regression: float,
    old_peaks: MeasuredPeaks | None = None,
    new_peaks: MeasuredPeaks | None = None,
    correct_machine: bool = True,
) -> Comparison:
    """Match records on IDENTITY_KEYS and compare their medians.

    Each new median is set against the old one scaled by the machine's slowdown (`machine_speed`, from
    the reference kernels; 1 when `correct_machine` is off or a run lacks them). A change is a regression
    ("slower") only when it exceeds `max_regression` (a fraction) both as measured and against the machine,
    and the time difference exceeds the noise: the two runs' spreads combined, sqrt(IQR_old^2 + IQR_new^2),
    or SCATTER_SIGMAS robust sigmas of the run-to-run scatter of all kernels around their median change,
    whichever is larger. "faster" is the mirror image; "noise" a change beyond the threshold but within it.
    """
    if not max_regression >= 0:
        raise InvalidValueError(f"max_regression must be a non-negative fraction, got {max_regression}")
    machine = machine_speed(old_peaks, new_peaks) if correct_machine else None
    notes = []
    if correct_machine and machine is None:
        notes.append("no reference-kernel peaks in both runs: medians compared as measured")
    old_by_key = {r.key: r for r in old}
    factors = {r.key: machine.factor_for(r, old_peaks) if machine else 1.0 for r in new}
    residual, scatter = _spread(old_by_key, new, factors)
    changes = [_change(old_by_key.get(r.key), r, factors[r.key], scatter, max_regression) for r in new]
    seen = {r.key for r in new}
    changes += [Change(_ident(r), r.median_s, None, None, None, "gone") for r in old if r.key not in seen]
    return Comparison(tuple(changes), max_regression, machine, scatter, residual, tuple(notes))


def _ident(row: BenchRow) -> dict[str, Any]:
    return dict(zip(IDENTITY_KEYS, row.key, strict=True))


def _change(before: BenchRow | None, row: BenchRow, machine: float, scatter: float, threshold: float) -> Change:
    if before is None:
        return Change(_ident(row), None, row.median_s, None, None, "new", machine=machine)
    old_s, new_s = before.median_s, row.median_s
    if not old_s or not new_s:
        return Change(_ident(row), old_s, new_s, None, None, "skipped", machine=machine)
    raw_change = new_s / old_s - 1
    expected_s = old_s * machine
    change = new_s / expected_s - 1
    noise_s = max(math.hypot(before.iqr_s or 0.0, row.iqr_s or 0.0), expected_s * math.expm1(SCATTER_SIGMAS * scatter))
    delta = new_s - expected_s
    beyond = abs(change) > threshold and abs(raw_change) > threshold and change * raw_change > 0
    if not beyond:
        verdict = "same"
    elif abs(delta) <= noise_s:
        verdict = "noise"
    else:
        verdict = "slower" if delta > 0 else "faster"
    return Change(_ident(row), old_s, new_s, change, noise_s / old_s, verdict, raw_change, machine)


def _spread(
    old_by_key: dict[tuple[Any, ...], BenchRow], new: Iterable[BenchRow], factors: dict[tuple[Any, ...], float]
) -> tuple[float, float]:
    """(median, scatter) of new / expected over matched records: the typical change beyond the machine, and
    the robust spread around it, 1.4826 x the median absolute deviation of the logs (a normal sigma). The
    scatter is the run-to-run noise the runs actually showed, kernel by kernel: within-run IQRs miss it,
    because a shared machine's speed changes between and during runs. (1.0, 0.0) with fewer than
    MIN_RECORDS_FOR_SCATTER matched records."""
    logs = []
    for row in new:
        before = old_by_key.get(row.key)
        if before is not None and before.median_s and row.median_s:
            logs.append(math.log(row.median_s / (before.median_s * factors[row.key])))
    if len(logs) < MIN_RECORDS_FOR_SCATTER:
        return (math.exp(statistics.median(logs)) if logs else 1.0), 0.0
    median = statistics.median(logs)
    mad = statistics.median(abs(x - median) for x in logs)
    return math.exp(median), 1.4826 * mad


def matching(old: Iterable[BenchRow], keys: Iterable[tuple[Any, ...]]) -> int:
    """How many of `keys` (a run's planned cases) have a timed record in the baseline `old`."""
    timed = {r.key for r in old if r.timed}
    return sum(1 for k in set(keys) if k in timed)


def describe_shapes(rows: Iterable[BenchRow]) -> str:
    """A short account of what a set of records measured, for the message of an empty comparison."""
    rows = list(rows)
    if not rows:
        return "no results"
    heads = sorted({f"{r.n_heads}/{r.n_kv_heads}/{r.d_head}" for r in rows})
    lengths = sorted({r.seq_len for r in rows if r.seq_len is not None})
    dtypes = sorted({f"{r.dtype} on {r.device}" for r in rows})
    return (f"heads/KV heads/d_head {', '.join(heads[:3])}, S={','.join(str(s) for s in lengths[:6])}, "
            f"{', '.join(dtypes[:2])}")  # fmt: skip
