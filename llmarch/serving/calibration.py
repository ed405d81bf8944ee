"""Calibration from a `llmarch bench` JSON: attention measured on the GPU at hand replaces the catalogued rates.

The document is read defensively (`parse_bench`); the measurement closest to a workload is chosen by
phase, head shape, dtype, then batch and sequence length (`select_bench_row`). Reading bench files will move
to the torch-free reader of `llmarch.catalog` when it lands; this module keeps the serving side's selection.
"""

from __future__ import annotations

import math
from typing import Any

from llmarch.catalog.hardware import Accelerator
from llmarch.core.config import ArchConfig
from llmarch.core.errors import InvalidValueError
from llmarch.core.frozen import frozen_dataclass
from llmarch.core.units import canonical_dtype


@frozen_dataclass
class BenchRow:
    """One usable measurement of an attention kernel from a `llmarch bench` JSON."""

    phase: str
    batch: int
    seq_len: int
    achieved_flop_per_s: float
    achieved_bytes_per_s: float
    median_s: float | None = None
    variant: str | None = None
    impl: str | None = None
    n_heads: int | None = None
    n_kv_heads: int | None = None
    d_head: int | None = None
    window: int | None = None
    dtype: str | None = None

    def describe(self) -> str:
        shape = "x".join(str(v) for v in (self.n_heads, self.n_kv_heads, self.d_head) if v is not None)
        parts = [self.variant or "?", self.impl or "?", f"{self.phase} batch {self.batch} seq {self.seq_len}"]
        if shape:
            parts.append(f"heads/kv/d_head {shape}")
        if self.dtype:
            parts.append(self.dtype)
        return " ".join(parts)


@frozen_dataclass
class BenchCalibration:
    """The usable attention measurements of a bench JSON and the device they were taken on."""

    source: str  # where the document came from (a file name)
    device: str | None  # device name the document gives, if any
    rows: tuple[BenchRow, ...]
    n_ignored: int  # results skipped: skipped_reason set, or fields missing or invalid


def parse_bench(document: Any, *, source: str = "bench JSON") -> BenchCalibration:
    """The attention measurements of a `llmarch bench` JSON document (already parsed) usable for calibration.

    Read with the one bench-results reader (`llmarch.catalog.bench_results.read_bench_results`, lenient):
    results that were skipped, or lack a phase, a positive batch and sequence length or positive achieved
    rates are ignored (and counted). A document with no usable result is an InvalidValueError.
    """
    from llmarch.catalog.bench_results import read_bench_results

    results = read_bench_results(document, source=source)
    rows: list[BenchRow] = []
    for r in results.rows:
        usable = (not r.skipped_reason and r.phase and r.batch and r.seq_len and r.achieved_flop_per_s
                  and r.achieved_bytes_per_s)  # fmt: skip
        if not usable:
            continue
        assert r.phase and r.batch and r.seq_len and r.achieved_flop_per_s and r.achieved_bytes_per_s
        rows.append(BenchRow(phase=r.phase, batch=r.batch, seq_len=r.seq_len, achieved_flop_per_s=r.achieved_flop_per_s,
                             achieved_bytes_per_s=r.achieved_bytes_per_s, median_s=r.median_s, variant=r.variant,
                             impl=r.impl, n_heads=r.n_heads, n_kv_heads=r.n_kv_heads, d_head=r.d_head,
                             window=r.window, dtype=r.dtype))  # fmt: skip
    ignored = len(results.rows) - len(rows) + results.n_unreadable
    if not rows:
        raise InvalidValueError(
            f"{source}: no usable attention measurement (each needs phase, batch, seq_len, achieved_flop_per_s "
            f"and achieved_bytes_per_s; {ignored} result(s) ignored)"
        )
    return BenchCalibration(source=source, device=results.measured_on, rows=tuple(rows), n_ignored=ignored)


def _squash(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def bench_device_matches(calibration: BenchCalibration, gpu: Accelerator) -> bool | None:
    """Whether the bench was measured on `gpu`'s model (None when the bench names no device).

    Compares the model number in the catalog name (the first dash-separated part with a digit: "h100",
    "a100", "mi300x", "4090") with the device name the bench recorded ("NVIDIA H100 80GB HBM3").
    Variants of one chip (H100 SXM and PCIe) are not told apart.
    """
    if calibration.device is None:
        return None
    keys = [part for part in gpu.name.split("-") if any(ch.isdigit() for ch in part)] or [gpu.name]
    return _squash(keys[0]) in _squash(calibration.device)


def select_bench_row(
    calibration: BenchCalibration, config: ArchConfig, *, phase: str, batch: int, seq_len: int, dtype: str
) -> BenchRow | None:
    """The measurement closest to a workload: same phase, then same head shape and dtype, then nearest
    batch and sequence length (in log2), then the fastest implementation. None when no row has the phase."""
    candidates = [r for r in calibration.rows if r.phase == phase]
    if not candidates:
        return None

    def mismatch(row: BenchRow) -> tuple[int, float, float]:
        shape = (config.n_heads, config.n_kv_heads, config.d_head)
        misses = sum(1 for got, want in zip((row.n_heads, row.n_kv_heads, row.d_head), shape, strict=True)
                     if got is not None and got != want)  # fmt: skip
        if row.dtype is not None:
            try:
                misses += canonical_dtype(row.dtype) != canonical_dtype(dtype)
            except InvalidValueError:
                misses += 1
        distance = abs(math.log2(row.seq_len / seq_len)) + abs(math.log2(row.batch / batch))
        return misses, distance, -row.achieved_flop_per_s

    return min(candidates, key=mismatch)
