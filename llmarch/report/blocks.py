"""The report's format-neutral outline: headings, paragraphs, bullet lists, tables, figures and collapsed details.

`llmarch.report.sections` builds a list of these blocks from a ReportData; `llmarch.report.render` writes them as
Markdown or HTML. A block holds text only: every number in it was formatted by `llmarch.report.format`.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmarch.core.frozen import frozen_dataclass

#: The figures a report can embed: file stem -> what it shows (also the image's alt text).
FIGURES: dict[str, str] = {
    "params": "Parameters by component, as shares of each model's total",
    "kv_cache": "KV cache against context length, one line per model",
    "bench": "Attention benchmark: median latency (IQR bars) and share of the measured roofline against sequence "
    "length, by phase",
}


@frozen_dataclass
class Link:
    """A table cell that links to a documented source (a preset's `source:` URL)."""

    text: str
    url: str


Cell = str | Link


@frozen_dataclass
class Heading:
    level: int  # 1 = the title
    text: str


@frozen_dataclass
class Paragraph:
    text: str


@frozen_dataclass
class Bullets:
    items: tuple[str, ...]


@frozen_dataclass
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    numeric: tuple[bool, ...]  # right-aligned columns


@frozen_dataclass
class Figure:
    name: str  # a key of FIGURES: the image file stem
    caption: str


@frozen_dataclass
class Details:
    """A collapsed section (<details>): the assumptions behind a section, long breakdowns."""

    summary: str
    blocks: tuple[Block, ...]


Block = Heading | Paragraph | Bullets | Table | Figure | Details


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell | None]], numeric: Sequence[bool] = ()) -> Table:
    """A Table with '-' for missing cells; `numeric` marks right-aligned columns (default: none)."""
    flags = tuple(numeric) + (False,) * (len(headers) - len(numeric))
    cells = tuple(tuple("-" if c is None else c for c in row) for row in rows)
    for row in cells:
        if len(row) != len(headers):
            raise ValueError(f"row of {len(row)} cells under {len(headers)} headers")
    return Table(tuple(headers), cells, flags[: len(headers)])
