"""Numbers for people: the one place that turns raw SI numbers into text (the JSON keeps the raw numbers).

The CLI tables (`llmarch.report.tables`, `llmarch.cli`) and the report document (`llmarch.report.sections`) format
through these functions only, so that a duration, a rate, a size or a mass of CO2e reads the same everywhere.
Every function takes None for "not available" and returns "-". Counts and sizes are `llmarch.core.units`'s
`format_count` and `format_bytes` (re-exported here), which library error messages use too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llmarch.core.units import format_bytes, format_count

#: Significant figures of every formatted measurement (times, rates, costs, masses).
DIGITS = 3

_SI_PREFIXES = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_PREFIX_OF_SCALE = {scale: prefix for scale, prefix in _SI_PREFIXES} | {1.0: ""}


def significant(value: float, digits: int = DIGITS) -> str:
    """`value` to `digits` significant figures, never in scientific notation at or above 1: 1234.5 -> "1,234"."""
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def format_exact(value: float | None) -> str:
    """An exact count with thousands separators: 6738415616 -> "6,738,415,616"."""
    return "-" if value is None else f"{int(value):,}"


def format_seconds(value: float | None) -> str:
    """A duration: "1.87 s", "26.1 ms", "45.6 µs", "820 ns"."""
    if value is None:
        return "-"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if value >= scale:
            return f"{significant(value / scale)} {unit}"
    return f"{significant(value / 1e-9)} ns"


def format_rate(value: float | None, unit: str, *, scale: float | None = None, digits: int = DIGITS) -> str:
    """A rate with an SI prefix: format_rate(3.58e12, "FLOP/s") -> "3.58 TFLOP/s".

    `scale` fixes the prefix (1e9 -> "G"), so that a column of a table shares one unit; without it the largest
    prefix not above the value is used.
    """
    if value is None:
        return "-"
    if scale is None:
        scale = next((s for s, _ in _SI_PREFIXES if abs(value) >= s), 1.0)
    return f"{significant(value / scale, digits)} {_PREFIX_OF_SCALE[scale]}{unit}"


def format_share(value: float | None) -> str:
    """A fraction as a percentage: 0.1234 -> "12.3%"."""
    return "-" if value is None else f"{value:.1%}"


def format_yes(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def format_usd(value: float | None) -> str:
    """Dollars as a count: 1.23e6 -> "$1.23M"."""
    return "-" if value is None else f"${format_count(value)}"


def format_co2e(kg: float | None) -> str:
    """A mass of CO2e in tonnes: 173188 kg -> "173 t"."""
    return "-" if kg is None else f"{significant(kg / 1000)} t"


def format_kwh(value: float | None) -> str:
    """Energy: 449839 -> "450k kWh"."""
    return "-" if value is None else f"{format_count(value)} kWh"


def format_flops(value: float | None) -> str:
    """A FLOP count of a whole run, in scientific notation: 8.4e23 -> "8.4e+23"."""
    return "-" if value is None else f"{value:.{DIGITS}g}"


def format_value(value: Any, key: str = "") -> str:
    """An assumption's value, by the unit its key names: bytes with binary prefixes, rates in GB/s and TFLOP/s,
    seconds, lists joined, mappings as key=value."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={format_value(v, str(k))}" for k, v in value.items() if v is not None) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value) or "none"
    if isinstance(value, (int, float)):
        if key.endswith("_bytes"):
            return format_bytes(value)
        if key.endswith("_bytes_per_s"):
            return format_rate(value, "B/s", scale=1e9, digits=4)
        if key.endswith("_flop_per_s"):
            return format_rate(value, "FLOP/s", scale=1e12, digits=4)
        if key.endswith("_s"):
            return format_seconds(value)
        if key == "tokens":
            return format_count(value)
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)
    return str(value)


def assumption_rows(
    named: Sequence[tuple[str, Mapping[str, Any]]], *, skip: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """(assumption, value) rows of several models' assumptions, each key once in order of appearance: one value
    when the models agree, else "model: value; ..." per model. Keys in `skip`, and keys no model sets, are left out.
    """
    keys: list[str] = []
    for _, assumptions in named:
        keys.extend(k for k in assumptions if k not in keys and k not in skip)
    rows = []
    for key in keys:
        values = [(name, a.get(key)) for name, a in named]
        if all(v is None for _, v in values):
            continue
        if all(v == values[0][1] for _, v in values):
            text = format_value(values[0][1], key)
        else:
            text = "; ".join(f"{name}: {format_value(v, key)}" for name, v in values)
        rows.append((key, text))
    return rows


#: Record keys shown as counts with suffixes (a prefix match).
_COUNT_KEYS = ("params_", "training_tokens", "global_batch_tokens", "reference_params", "vocab_size", "flops_")
#: Columns shown as exact integers (with thousands separators): where exactness is the point (verify).
EXACT_KEYS = frozenset({"params_analytic", "params_module", "kv_bytes_analytic", "kv_bytes_module"})


def format_cell(key: str, value: Any) -> str:
    """A record value as a table cell, by its key: counts with suffixes, sizes with binary prefixes, '-' for none."""
    if value is None:
        return "-"
    if key in EXACT_KEYS and isinstance(value, int) and not isinstance(value, bool):
        return format_exact(value)
    if isinstance(value, bool):
        return format_yes(value)
    if key == "learning_rate" and isinstance(value, (int, float)):
        return f"{value:.1e}"
    if isinstance(value, (int, float)) and key.endswith(("_bytes", "_bytes_per_token")):
        return format_bytes(value)
    if isinstance(value, (int, float)) and key.startswith(_COUNT_KEYS):
        return format_count(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"
    return str(value)


__all__ = [
    "DIGITS",
    "EXACT_KEYS",
    "assumption_rows",
    "format_bytes",
    "format_cell",
    "format_co2e",
    "format_count",
    "format_exact",
    "format_flops",
    "format_kwh",
    "format_rate",
    "format_seconds",
    "format_share",
    "format_usd",
    "format_value",
    "format_yes",
    "significant",
]
