"""The bench-results document (`llmarch bench --format json`): its schema and its one reader.

A document is the report envelope with the sweep's records under `results`:

    {"schema_version": 1, "llmarch_version": ..., "environment": {..., "measured_peaks": {...}},
     "settings": {...}, "complete": bool, "interrupted": bool, "checks": {...}, "results": [{...}, ...]}

Each result carries the keys of `RESULT_FIELDS`; `IDENTITY_KEYS` name a measurement across runs. Readers:
the serving calibration, the report document and the bench baseline gate all call `read_bench_results`
(or `load_bench_results` for a file). Two modes:
- lenient (default): a value of the wrong type or range reads as None, an entry that is not an object is
  counted in `n_unreadable`, unknown keys are ignored; only a document that is not a bench document fails;
- strict (a baseline the gate will trust): any malformed record or environment entry is an
  InvalidValueError naming the record's index and the field, raised before anything else runs.

Torch-free and stdlib-only: what `llmarch.catalog` may import.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import asdict, field
from pathlib import Path
from typing import Any

from llmarch.core.errors import InvalidValueError
from llmarch.core.frozen import frozen_dataclass

#: Schema versions this reader understands.
SCHEMA_VERSIONS = (1,)

# Kinds of values: text, bool, a count >= 1, a count >= 0, a real > 0, a real >= 0.
TEXT, BOOL, COUNT, SIZE, POSITIVE, NONNEGATIVE = "text", "bool", "count", "size", "positive", "non-negative"

#: Every key of a result, with the kind of its value (None is always allowed: not measured, not applicable).
RESULT_FIELDS: dict[str, str] = {
    "variant": TEXT, "impl": TEXT, "phase": TEXT, "batch": COUNT, "seq_len": COUNT, "n_heads": COUNT,
    "n_kv_heads": COUNT, "d_head": COUNT, "window": COUNT, "causal": BOOL, "chunk_size": COUNT, "gqa_feed": TEXT,
    "dtype": TEXT, "device": TEXT,
    "median_s": POSITIVE, "iqr_s": NONNEGATIVE, "q1_s": POSITIVE, "q3_s": POSITIVE, "cv": NONNEGATIVE,
    "noisy": BOOL, "n_samples": SIZE, "passes": SIZE, "analytic_flops": NONNEGATIVE, "analytic_bytes": NONNEGATIVE,
    "achieved_flop_per_s": POSITIVE, "achieved_bytes_per_s": POSITIVE, "predicted_s": POSITIVE,
    "roofline_fraction": NONNEGATIVE, "predicted_catalog_s": POSITIVE, "roofline_fraction_catalog": NONNEGATIVE,
    "above_roofline": BOOL, "non_monotone": BOOL, "peak_memory_bytes": SIZE, "max_abs_error": NONNEGATIVE,
    "rel_error": NONNEGATIVE, "skipped_reason": TEXT,
}  # fmt: skip

#: Keys that identify a measurement across runs (the baseline gate matches records on them). A strict
#: reader requires every one to be present (window and chunk_size may be null).
IDENTITY_KEYS = ("variant", "impl", "phase", "batch", "seq_len", "n_heads", "n_kv_heads", "d_head", "window",
                 "causal", "chunk_size", "dtype", "device")  # fmt: skip
_NULLABLE_KEYS = frozenset({"window", "chunk_size"})

#: The device's roofline as `llmarch bench` measured it (environment.measured_peaks).
PEAK_FIELDS: dict[str, str] = {
    "matmul_flop_per_s": POSITIVE, "matmul_n": COUNT, "copy_bytes_per_s": POSITIVE, "copy_bytes": POSITIVE,
    "catalog_gpu": TEXT, "catalog_flop_per_s": POSITIVE, "catalog_bytes_per_s": POSITIVE,
}  # fmt: skip
#: Scalar environment keys, in the order a report shows them.
ENVIRONMENT_FIELDS: dict[str, str] = {
    "device_name": TEXT, "device": TEXT, "torch": TEXT, "cuda": TEXT, "dtype": TEXT, "threads": COUNT, "cpu": TEXT,
}  # fmt: skip


@frozen_dataclass
class BenchRow:
    """One result of a bench document, every value checked against `RESULT_FIELDS` (None: absent or invalid)."""

    variant: str | None = None
    impl: str | None = None
    phase: str | None = None
    batch: int | None = None
    seq_len: int | None = None
    n_heads: int | None = None
    n_kv_heads: int | None = None
    d_head: int | None = None
    window: int | None = None
    causal: bool | None = None
    chunk_size: int | None = None
    gqa_feed: str | None = None
    dtype: str | None = None
    device: str | None = None
    median_s: float | None = None
    iqr_s: float | None = None
    q1_s: float | None = None
    q3_s: float | None = None
    cv: float | None = None
    noisy: bool | None = None
    n_samples: int | None = None
    passes: int | None = None
    analytic_flops: float | None = None
    analytic_bytes: float | None = None
    achieved_flop_per_s: float | None = None
    achieved_bytes_per_s: float | None = None
    predicted_s: float | None = None
    roofline_fraction: float | None = None
    predicted_catalog_s: float | None = None
    roofline_fraction_catalog: float | None = None
    above_roofline: bool | None = None
    non_monotone: bool | None = None
    peak_memory_bytes: int | None = None
    max_abs_error: float | None = None
    rel_error: float | None = None
    skipped_reason: str | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        """The identity of the measurement (`IDENTITY_KEYS`), to match it across runs."""
        return tuple(getattr(self, k) for k in IDENTITY_KEYS)

    @property
    def timed(self) -> bool:
        return self.median_s is not None and not self.skipped_reason

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


@frozen_dataclass
class MeasuredPeaks:
    """The roofline a run measured: matmul FLOP/s and copy bytes/s (the best of the run, and every sample)."""

    matmul_flop_per_s: float | None = None
    matmul_n: int | None = None
    copy_bytes_per_s: float | None = None
    copy_bytes: float | None = None
    catalog_gpu: str | None = None
    catalog_flop_per_s: float | None = None
    catalog_bytes_per_s: float | None = None
    matmul_samples: tuple[float, ...] = ()  # FLOP/s, in the order measured (first: before the sweep)
    copy_samples: tuple[float, ...] = ()  # bytes/s

    def scalars(self) -> dict[str, Any]:
        """The values that are set, samples left out (what a report lists)."""
        return {k: v for k, v in asdict(self).items() if v is not None and not isinstance(v, (tuple, list))}

    @property
    def typical_matmul_flop_per_s(self) -> float | None:
        """The median of the run's matmul measurements (the best when no sample is recorded)."""
        return _median(self.matmul_samples) or self.matmul_flop_per_s

    @property
    def typical_copy_bytes_per_s(self) -> float | None:
        return _median(self.copy_samples) or self.copy_bytes_per_s


@frozen_dataclass
class BenchEnvironment:
    """Where a bench document was measured."""

    device_name: str | None = None
    device: str | None = None
    torch: str | None = None
    cuda: str | None = None
    dtype: str | None = None
    threads: int | None = None
    cpu: str | None = None
    measured_peaks: MeasuredPeaks | None = None

    def scalars(self) -> dict[str, Any]:
        """The scalar entries that are set, in `ENVIRONMENT_FIELDS` order."""
        return {k: getattr(self, k) for k in ENVIRONMENT_FIELDS if getattr(self, k) is not None}


@frozen_dataclass
class BenchResults:
    """A bench document as read: its environment, settings and rows."""

    source: str
    environment: BenchEnvironment
    rows: tuple[BenchRow, ...]
    n_unreadable: int = 0  # entries of `results` that were not objects (lenient reading)
    complete: bool | None = None
    interrupted: bool | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    llmarch_version: str | None = None

    @property
    def timed_rows(self) -> tuple[BenchRow, ...]:
        return tuple(r for r in self.rows if r.timed)

    @property
    def measured_on(self) -> str | None:
        """The device's name: the environment's, else the first result naming more than cpu/cuda/mps."""
        if self.environment.device_name:
            return self.environment.device_name
        named = (r.device for r in self.rows if r.device and r.device.lower() not in ("cpu", "cuda", "mps"))
        return next(named, None)


# -- reading -----------------------------------------------------------------------------------------------------
def read_bench_results(document: Any, *, source: str, strict: bool = False) -> BenchResults:
    """Read a parsed `llmarch bench --format json` document. `source` starts every error message (say
    which option and file: "--baseline old.json"). See the module docstring for lenient and strict."""
    if not isinstance(document, dict):
        raise InvalidValueError(f"{source}: expected a JSON object from 'llmarch bench --format json'")
    version = document.get("schema_version")
    if isinstance(version, bool) or version not in SCHEMA_VERSIONS:
        supported = ", ".join(str(v) for v in SCHEMA_VERSIONS)
        raise InvalidValueError(f"{source}: unsupported schema_version {version!r} (this llmarch reads {supported})")
    results = document.get("results")
    if not isinstance(results, list):
        raise InvalidValueError(f"{source}: no 'results' list; is it the JSON of 'llmarch bench'?")
    rows: list[BenchRow] = []
    unreadable = 0
    for index, item in enumerate(results):
        if not isinstance(item, dict):
            if strict:
                raise InvalidValueError(f"{source}: results[{index}] is not an object")
            unreadable += 1
            continue
        rows.append(_read_row(item, f"{source}: results[{index}]", strict))
    settings = document.get("settings")
    version_text = document.get("llmarch_version")
    return BenchResults(
        source=source,
        environment=_read_environment(document.get("environment"), source, strict),
        rows=tuple(rows),
        n_unreadable=unreadable,
        complete=_flag(document.get("complete")),
        interrupted=_flag(document.get("interrupted")),
        settings=dict(settings) if isinstance(settings, dict) else {},
        llmarch_version=version_text if isinstance(version_text, str) else None,
    )


def load_bench_results(path: str | Path, *, what: str, strict: bool = False) -> BenchResults:
    """Read a bench JSON file; `what` names the option it came from (errors say "--baseline FILE: ...")."""
    from llmarch.core.io import read_json_file

    return read_bench_results(read_json_file(path, what=what), source=f"{what} {path}", strict=strict)


def _read_row(item: dict[str, Any], where: str, strict: bool) -> BenchRow:
    values = {}
    for name, kind in RESULT_FIELDS.items():
        raw = item.get(name)
        value = _value(raw, kind)
        if strict:
            if name in IDENTITY_KEYS and name not in item:
                raise InvalidValueError(f"{where}: no {name!r}; every result needs {', '.join(IDENTITY_KEYS)}")
            missing_ok = raw is None and (name not in IDENTITY_KEYS or name in _NULLABLE_KEYS)
            if value is None and not missing_ok:
                raise InvalidValueError(f"{where}: {name} = {_shown(raw)} is not {_KIND_TEXT[kind]}")
        values[name] = value
    return BenchRow(**values)


def _read_environment(env: Any, source: str, strict: bool) -> BenchEnvironment:
    if not isinstance(env, dict):
        if strict and env is not None:
            raise InvalidValueError(f"{source}: environment is not an object")
        return BenchEnvironment()
    values = {name: _checked(env.get(name), kind, f"{source}: environment.{name}", strict)
              for name, kind in ENVIRONMENT_FIELDS.items()}  # fmt: skip
    peaks = env.get("measured_peaks")
    measured = None
    if isinstance(peaks, dict):
        where = f"{source}: environment.measured_peaks"
        scalars: dict[str, Any] = {name: _checked(peaks.get(name), kind, f"{where}.{name}", strict)
                   for name, kind in PEAK_FIELDS.items()}  # fmt: skip
        samples: dict[str, Any] = {name: _samples(peaks.get(name), f"{where}.{name}", strict)
                   for name in ("matmul_samples", "copy_samples")}  # fmt: skip
        measured = MeasuredPeaks(**scalars, **samples)
    elif strict and peaks is not None:
        raise InvalidValueError(f"{source}: environment.measured_peaks is not an object")
    return BenchEnvironment(**values, measured_peaks=measured)


def _checked(raw: Any, kind: str, where: str, strict: bool) -> Any:
    value = _value(raw, kind)
    if strict and value is None and raw is not None:
        raise InvalidValueError(f"{where} = {_shown(raw)} is not {_KIND_TEXT[kind]}")
    return value


def _samples(raw: Any, where: str, strict: bool) -> tuple[float, ...]:
    if raw is None:
        return ()
    values = [_value(v, POSITIVE) for v in raw] if isinstance(raw, list) else [None]
    if any(v is None for v in values):
        if strict:
            raise InvalidValueError(f"{where}: expected a list of positive numbers")
        return ()
    return tuple(v for v in values if v is not None)


_KIND_TEXT = {TEXT: "a non-empty string", BOOL: "true or false", COUNT: "a positive integer",
              SIZE: "a non-negative integer", POSITIVE: "a positive number",
              NONNEGATIVE: "a non-negative number"}  # fmt: skip


def _value(raw: Any, kind: str) -> Any:
    """`raw` if it is a valid value of `kind` (integral floats read as int), else None."""
    if kind == TEXT:
        return _text(raw)
    if kind == BOOL:
        return raw if isinstance(raw, bool) else None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        return None
    if kind in (COUNT, SIZE):
        if isinstance(raw, float):
            if not raw.is_integer():
                return None
            raw = int(raw)
        return raw if raw >= (1 if kind == COUNT else 0) else None
    value = float(raw)
    return value if (value > 0 if kind == POSITIVE else value >= 0) else None


def _text(raw: Any) -> str | None:
    """A stripped string with control characters (escape sequences, CR, LF) replaced by spaces."""
    if not isinstance(raw, str):
        return None
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in raw).strip()
    return text or None


def _flag(raw: Any) -> bool | None:
    return raw if isinstance(raw, bool) else None


def _shown(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 40 else text[:39] + "…"


def _median(values: tuple[float, ...]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


__all__ = [
    "IDENTITY_KEYS",
    "RESULT_FIELDS",
    "SCHEMA_VERSIONS",
    "BenchEnvironment",
    "BenchResults",
    "BenchRow",
    "MeasuredPeaks",
    "load_bench_results",
    "read_bench_results",
]
