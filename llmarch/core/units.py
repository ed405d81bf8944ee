"""Units: dtype sizes, parsing human quantities ("7B", "2T", "80GiB") and formatting numbers for people."""

from __future__ import annotations

import math
import re

from llmarch.core.errors import InvalidValueError

#: Bytes per element of each storage dtype. int4 is half a byte per weight before its scales.
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "tf32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
}

_DTYPE_ALIASES = {
    "float32": "fp32",
    "float": "fp32",
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "float8": "fp8",
    "e4m3": "fp8",
    "e5m2": "fp8",
}


def canonical_dtype(name: str) -> str:
    """Return the canonical dtype name for `name` ("bfloat16" -> "bf16"), or raise InvalidValueError."""
    key = name.strip().lower()
    key = _DTYPE_ALIASES.get(key, key)
    if key not in DTYPE_BYTES:
        raise InvalidValueError(f"unknown dtype {name!r}; use one of {', '.join(DTYPE_BYTES)}")
    return key


def dtype_bytes(name: str) -> float:
    """Bytes per element of dtype `name`."""
    return DTYPE_BYTES[canonical_dtype(name)]


# Decimal multipliers for counts (tokens, parameters); "k" is 10^3 as in the papers' "4M tokens".
_COUNT_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12, "p": 1e15}
_BYTE_SUFFIX = {
    "b": 1,
    "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "pb": 1e15,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50,
}  # fmt: skip
#: Largest count or size parsed (10^50: far beyond any compute budget, yet products of a few stay finite).
MAX_QUANTITY = 1e50
_NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)"


def parse_count(text: str | int | float, *, what: str = "value") -> float:
    """Parse a count such as "7B", "2T", "1.4e12", "4M" or 300000 into a float (decimal suffixes).

    Raises InvalidValueError naming `what` for anything else, including negative numbers.
    """
    if isinstance(text, bool):
        raise InvalidValueError(f"{what}: expected a number, got {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = re.fullmatch(_NUMBER + r"\s*([kKmMbBgGtTpP]?)", text.strip().replace("_", "").replace(",", ""))
        if not match:
            raise InvalidValueError(f"{what}: cannot parse {text!r}; write a number like 7B, 2T, 1.4e12 or 300000")
        value = float(match.group(1)) * _COUNT_SUFFIX[match.group(2).lower()]
    if not math.isfinite(value) or value < 0:
        raise InvalidValueError(f"{what}: must be a finite, non-negative number, got {text!r}")
    if value > MAX_QUANTITY:
        raise InvalidValueError(f"{what}: {text!r} is larger than {MAX_QUANTITY:g}; results would overflow")
    return value


#: Suffixes of a length in tokens: context windows are quoted in powers of two ("32k" = 32,768, "128k").
_LENGTH_SUFFIX = {"k": 2**10, "m": 2**20}


def parse_length(text: str | int | float, *, what: str = "length") -> float:
    """Parse a length in tokens such as 4096, "32k" (32,768) or "128K" (131,072): binary k and M, as context
    windows are quoted; plain numbers and exponents as in parse_count ("1e3" is 1000)."""
    raw = text if isinstance(text, (int, float)) else str(text).strip().replace("_", "")
    if isinstance(raw, str) and raw[-1:].lower() in _LENGTH_SUFFIX:
        return parse_count(raw[:-1], what=what) * _LENGTH_SUFFIX[raw[-1].lower()]
    return parse_count(raw, what=what)


def parse_bytes(text: str | int | float, *, what: str = "size") -> float:
    """Parse a size such as "80GiB", "80GB", "512MiB" or 1024 (bytes) into bytes."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        match = re.fullmatch(_NUMBER + r"\s*([a-zA-Z]*)", str(text).strip())
        suffix = match.group(2).lower() if match else None
        if not match or (suffix and suffix not in _BYTE_SUFFIX):
            raise InvalidValueError(f"{what}: cannot parse {text!r}; write a size like 80GiB, 80GB or 512MiB")
        value = float(match.group(1)) * (_BYTE_SUFFIX[suffix] if suffix else 1)
    if not math.isfinite(value) or value < 0:
        raise InvalidValueError(f"{what}: must be a finite, non-negative size, got {text!r}")
    if value > MAX_QUANTITY:
        raise InvalidValueError(f"{what}: {text!r} is larger than {MAX_QUANTITY:g} bytes; results would overflow")
    return value


def _significant(value: float, digits: int) -> str:
    """`value` to `digits` significant figures, never in scientific notation (1023.7 -> "1024")."""
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def format_count(value: float | int | None, *, digits: int = 3) -> str:
    """Format a count for people: 6738415616 -> "6.74B", 131072000 -> "131M", 768 -> "768"."""
    if value is None:
        return "-"
    magnitude = abs(value)
    for threshold, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if magnitude >= threshold * (1 - 0.5 * 10**-digits):  # 999,999 reads "1M", not "1000k"
            return f"{_significant(value / threshold, digits)}{suffix}"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.{digits}g}"


def format_bytes(value: float | int | None, *, digits: int = 3) -> str:
    """Format bytes with binary prefixes: 2**30 -> "1 GiB", 1536 -> "1.5 KiB"."""
    if value is None:
        return "-"
    magnitude = abs(value)
    for threshold, suffix in ((2**50, "PiB"), (2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if magnitude >= threshold * (1 - 0.5 * 10**-digits):
            return f"{_significant(value / threshold, digits)} {suffix}"
    return f"{_significant(value, digits)} B"
