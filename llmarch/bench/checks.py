"""Honesty checks of a finished run on a possibly noisy machine. Torch-free.

- A run-wide bias: the reference kernels (the roofline's matmul and copy) are timed before the sweep and
  again after each shape; if the last measurement differs from the first by more than DRIFT_THRESHOLD, the
  machine changed speed during the run and every comparison between its shapes carries that bias.
- A roofline share above 100% is not a result but a measurement problem: the working set fits in a cache
  the copy did not (short decodes), or the roofline was measured in a slow spell.
- Time that falls as the work grows: a case slower than the same case at a longer sequence with strictly
  more work (FLOPs and bytes) is flagged non-monotone, the pair being noise rather than a finding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmarch.core.frozen import frozen_dataclass

#: Relative change of a reference kernel's rate between the start and the end of a run that is flagged.
DRIFT_THRESHOLD = 0.10
#: Fields that make a series in which only the sequence length varies.
SERIES_KEYS = ("variant", "impl", "phase", "batch", "n_heads", "n_kv_heads", "d_head", "window", "causal",
               "chunk_size", "dtype", "device")  # fmt: skip


@frozen_dataclass
class ReferenceDrift:
    """The reference kernels' rates at the start and at the end of a run."""

    matmul_start_flop_per_s: float
    matmul_end_flop_per_s: float
    copy_start_bytes_per_s: float
    copy_end_bytes_per_s: float
    threshold: float = DRIFT_THRESHOLD

    @property
    def matmul_change(self) -> float:
        """end / start - 1 of the matmul rate (negative: the machine got slower during the run)."""
        return self.matmul_end_flop_per_s / self.matmul_start_flop_per_s - 1

    @property
    def copy_change(self) -> float:
        return self.copy_end_bytes_per_s / self.copy_start_bytes_per_s - 1

    @property
    def flagged(self) -> bool:
        return max(abs(self.matmul_change), abs(self.copy_change)) > self.threshold

    def to_record(self) -> dict[str, Any]:
        return {
            "matmul_start_flop_per_s": self.matmul_start_flop_per_s,
            "matmul_end_flop_per_s": self.matmul_end_flop_per_s,
            "matmul_change": self.matmul_change,
            "copy_start_bytes_per_s": self.copy_start_bytes_per_s,
            "copy_end_bytes_per_s": self.copy_end_bytes_per_s,
            "copy_change": self.copy_change,
            "threshold": self.threshold,
            "flagged": self.flagged,
        }


def reference_drift(
    matmul_samples: Sequence[float], copy_samples: Sequence[float], *, threshold: float = DRIFT_THRESHOLD
) -> ReferenceDrift | None:
    """The first and last reference measurements of a run (None with fewer than two of either)."""
    if len(matmul_samples) < 2 or len(copy_samples) < 2:
        return None
    return ReferenceDrift(matmul_samples[0], matmul_samples[-1], copy_samples[0], copy_samples[-1], threshold)


def above_roofline(fraction: float | None) -> bool | None:
    """Whether a roofline share exceeds 100% (None when there is no share)."""
    return None if fraction is None else fraction > 1.0


def non_monotone(records: Sequence[dict[str, Any]]) -> list[bool | None]:
    """For each record: whether it is out of order in its series (the same case at other sequence lengths):
    slower than a longer one with strictly more work, or faster than a shorter one with strictly less.
    None for records without a median."""
    flags: list[bool | None] = [None if r.get("median_s") is None else False for r in records]
    series: dict[tuple[Any, ...], list[int]] = {}
    for i, r in enumerate(records):
        if r.get("median_s") is not None:
            series.setdefault(tuple(r.get(k) for k in SERIES_KEYS), []).append(i)
    for members in series.values():
        for a in members:
            for b in members:
                ra, rb = records[a], records[b]
                if rb["seq_len"] > ra["seq_len"] and _more_work(ra, rb) and ra["median_s"] > rb["median_s"]:
                    flags[a] = flags[b] = True
    return flags


def _more_work(shorter: dict[str, Any], longer: dict[str, Any]) -> bool:
    """Whether `longer` does strictly more work: no fewer FLOPs and bytes, and more of one."""
    work_a = (shorter.get("analytic_flops") or 0.0, shorter.get("analytic_bytes") or 0.0)
    work_b = (longer.get("analytic_flops") or 0.0, longer.get("analytic_bytes") or 0.0)
    return work_b[0] >= work_a[0] and work_b[1] >= work_a[1] and work_b != work_a


def summary(records: Sequence[dict[str, Any]], drift: ReferenceDrift | None) -> dict[str, Any]:
    """The run-level record of the checks (the JSON document's `checks`)."""
    return {
        "reference_drift": None if drift is None else drift.to_record(),
        "above_roofline": sum(1 for r in records if r.get("above_roofline")),
        "non_monotone": sum(1 for r in records if r.get("non_monotone")),
    }
