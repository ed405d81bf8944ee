"""Serving efficiency per GPU type: achieved fractions of the catalogued peaks and fixed per-step costs.

Read from `llmarch/catalog/data/serving_efficiency.json`, one row per GPU type (a row may say `same_as`
another and override some fields), each naming the public measurements its constants come from (the file's
`sources`). GPUs without a row get the `default` row. Checked strictly: fractions in (0, 1], times >= 0.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from llmarch.core.errors import InvalidValueError
from llmarch.core.frozen import frozen_dataclass

_FILE = Path(__file__).resolve().parent / "data" / "serving_efficiency.json"
_FRACTIONS = ("hbm_fraction", "attention_flop_fraction", "attention_hbm_fraction", "allreduce_bus_fraction")
_TIMES = ("layer_overhead_s", "step_overhead_s", "request_overhead_s", "allreduce_latency_s", "allreduce_hop_latency_s")
_KEYS = {"gpu", "same_as", "gemm_fraction", "gemm_m_half", "sources", "note", *_FRACTIONS, *_TIMES}


@frozen_dataclass
class ServingEfficiency:
    """Constants of the serving step model for one GPU type (see the data file's `units`)."""

    gpu: str  # the row used ("default" when the GPU has none)
    hbm_fraction: float
    gemm_fraction: Mapping[str, float]  # compute dtype -> fraction of that dtype's dense peak
    gemm_m_half: float
    attention_flop_fraction: float
    attention_hbm_fraction: float
    layer_overhead_s: float
    step_overhead_s: float
    request_overhead_s: float
    allreduce_latency_s: float
    allreduce_hop_latency_s: float
    allreduce_bus_fraction: float
    sources: tuple[str, ...]  # the measurements behind the constants, as the data file words them

    def gemm(self, compute_dtype: str) -> float:
        """Large-GEMM fraction of the `compute_dtype` peak (16-bit's when the row has none for it)."""
        return self.gemm_fraction.get(compute_dtype, self.gemm_fraction.get("bf16", 0.7))


def _fail(where: str, message: str) -> InvalidValueError:
    return InvalidValueError(f"serving_efficiency.json: {where}: {message}")


def _check(row: dict[str, Any], where: str) -> None:
    unknown = set(row) - _KEYS
    if unknown:
        raise _fail(where, f"unknown field {sorted(unknown)[0]!r}")
    for key in _FRACTIONS:
        value = row.get(key)
        if value is not None and not (isinstance(value, (int, float)) and 0 < value <= 1):
            raise _fail(where, f"{key} must be in (0, 1], got {value!r}")
    for key in _TIMES:
        value = row.get(key)
        if value is not None and not (isinstance(value, (int, float)) and 0 <= value < 1):
            raise _fail(where, f"{key} must be seconds in [0, 1), got {value!r}")
    for dtype, value in (row.get("gemm_fraction") or {}).items():
        if not (isinstance(value, (int, float)) and 0 < value <= 1):
            raise _fail(where, f"gemm_fraction[{dtype}] must be in (0, 1], got {value!r}")


@functools.cache
def _rows() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    data = json.loads(_FILE.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("schema_version") != 1:
        raise _fail("top level", "expected a mapping with schema_version 1")
    sources: dict[str, str] = data["sources"]
    rows: dict[str, dict[str, Any]] = {}
    for row in data["gpus"]:
        name = row.get("gpu")
        where = f"gpu {name!r}"
        _check(row, where)
        if name in rows:
            raise _fail(where, "listed twice")
        missing = [s for s in row.get("sources", ()) if s not in sources]
        if missing or not row.get("sources"):
            raise _fail(where, f"every row names its sources from the file's 'sources' (bad: {missing})")
        base = rows.get(row["same_as"]) if "same_as" in row else {}
        if base is None:
            raise _fail(where, f"same_as {row['same_as']!r} must name an earlier row")
        rows[name] = {**base, **{k: v for k, v in row.items() if k != "same_as"}}
    return rows, sources


def serving_efficiency(gpu: str) -> ServingEfficiency:
    """The constants for catalog GPU `gpu` (its own row, else the `default` row)."""
    rows, sources = _rows()
    row = rows.get(gpu, rows["default"])
    return ServingEfficiency(
        gpu=row["gpu"],
        hbm_fraction=float(row["hbm_fraction"]),
        gemm_fraction=MappingProxyType({k: float(v) for k, v in row["gemm_fraction"].items()}),
        gemm_m_half=float(row["gemm_m_half"]),
        attention_flop_fraction=float(row["attention_flop_fraction"]),
        attention_hbm_fraction=float(row["attention_hbm_fraction"]),
        layer_overhead_s=float(row["layer_overhead_s"]),
        step_overhead_s=float(row["step_overhead_s"]),
        request_overhead_s=float(row["request_overhead_s"]),
        allreduce_latency_s=float(row["allreduce_latency_s"]),
        allreduce_hop_latency_s=float(row["allreduce_hop_latency_s"]),
        allreduce_bus_fraction=float(row["allreduce_bus_fraction"]),
        sources=tuple(sources[s] for s in row["sources"]),
    )
