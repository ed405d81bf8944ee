"""Units: parsing human quantities and formatting numbers for people."""

from __future__ import annotations

import pytest

from llmarch.core.errors import InvalidValueError
from llmarch.core.units import canonical_dtype, dtype_bytes, format_bytes, format_count, parse_bytes, parse_count


@pytest.mark.parametrize(
    ("text", "value"),
    [("7B", 7e9), ("2T", 2e12), ("1.4e12", 1.4e12), ("4M", 4e6), ("300000", 3e5), ("2.5k", 2500.0), (12, 12.0),
     ("1_000", 1000.0)],
)  # fmt: skip
def test_parse_count(text: str | int, value: float) -> None:
    assert parse_count(text) == value


@pytest.mark.parametrize("text", ["-1", "seven", "1e400", "2X", True, ""])
def test_parse_count_rejects(text: object) -> None:
    with pytest.raises(InvalidValueError):
        parse_count(text)  # type: ignore[arg-type]


def test_parse_bytes() -> None:
    assert parse_bytes("80GiB") == 80 * 2**30
    assert parse_bytes("80GB") == 80e9
    assert parse_bytes("512MiB") == 512 * 2**20
    assert parse_bytes(1024) == 1024
    with pytest.raises(InvalidValueError, match="cannot parse"):
        parse_bytes("80 gigs")


def test_dtypes() -> None:
    assert canonical_dtype("bfloat16") == "bf16" and dtype_bytes("int4") == 0.5 and dtype_bytes("fp8") == 1
    with pytest.raises(InvalidValueError, match="unknown dtype"):
        canonical_dtype("fp12")


@pytest.mark.parametrize(
    ("value", "text"),
    [(6_738_415_616, "6.74B"), (124_439_808, "124M"), (768, "768"), (999_999, "1M"), (999_000, "999k"),
     (12.5, "12.5"), (None, "-")],
)  # fmt: skip
def test_format_count(value: float | None, text: str) -> None:
    assert format_count(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(2**30, "1 GiB"), (1536, "1.5 KiB"), (2**30 - 2**20, "1023 MiB"), (2**30 - 2**10, "1 GiB"), (100, "100 B")],
)
def test_format_bytes_never_scientific(value: int, text: str) -> None:
    assert format_bytes(value) == text
