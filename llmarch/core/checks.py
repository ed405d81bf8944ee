"""Checks of user-supplied numbers: each raises InvalidValueError with one line naming the value.

Shared by the calculators so that "mfu must be a fraction in (0, 1]" reads the same everywhere. `name` is the
keyword argument (`mfu`, `seq_len`); the CLI rewrites it into its flag (llmarch.cli._app.keywords_to_flags).
"""

from __future__ import annotations

import math
from typing import Any

from llmarch.core.errors import InvalidValueError


def finite_number(name: str, value: Any) -> float:
    """`value` as a float if it is a finite real number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def positive(name: str, value: Any) -> float:
    number = finite_number(name, value)
    if number <= 0:
        raise InvalidValueError(f"{name} must be positive, got {value!r}")
    return number


def non_negative(name: str, value: Any) -> float:
    number = finite_number(name, value)
    if number < 0:
        raise InvalidValueError(f"{name} must not be negative, got {value!r}")
    return number


def fraction(name: str, value: Any, *, example: str = "0.4 = 40%") -> float:
    """A fraction in (0, 1]; ratios are fractions in llmarch, never percents."""
    number = finite_number(name, value)
    if not 0 < number <= 1:
        raise InvalidValueError(f"{name} must be a fraction in (0, 1] ({example}), got {value!r}")
    return number


#: Largest count accepted anywhere (2**53: exact as a float, so no result overflows to inf).
MAX_COUNT = 2**53


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValueError(f"{name} must be a positive integer, got {value!r}")
    if value > MAX_COUNT:
        digits = int(value.bit_length() * 0.30103) + 1
        raise InvalidValueError(f"{name} must be at most 2**53 = {MAX_COUNT}, got about {digits} digits")
    return value
