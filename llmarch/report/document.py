"""The `llmarch report` document: comparison, memory, serving, training cost and benchmark in one file.

Three steps, each a function of plain data, each in its own module (this one gathers them):

    collect(configs, options, bench=...)  -> ReportData   llmarch.report.collect: every number, from the calculators
    build(data)                            -> [Block]      llmarch.report.sections: a format-neutral outline
                                                           (llmarch.report.blocks): headings, tables, figures
    render_markdown(blocks, images=...)    -> str          llmarch.report.render: GitHub-flavoured Markdown
    render_html(blocks, images=...)        -> str          llmarch.report.render: one self-contained HTML file

`figures(data)` draws the plots as PNG bytes (llmarch.report.plots, matplotlib imported only there). Nothing in a
document depends on when or where it was made: no timestamps, no paths, no environment unless asked
(`environment_record`), so the same inputs give the same bytes and CI can diff the file.
"""

from __future__ import annotations

from llmarch.report.blocks import FIGURES, Block, Bullets, Details, Figure, Heading, Link, Paragraph, Table, table
from llmarch.report.collect import (
    BenchData,
    ReportData,
    ReportOptions,
    budget_messages,
    collect,
    environment_record,
    read_bench,
)
from llmarch.report.render import md_escape, render_html, render_markdown
from llmarch.report.sections import build, figures

__all__ = [
    "FIGURES",
    "BenchData",
    "Block",
    "Bullets",
    "Details",
    "Figure",
    "Heading",
    "Link",
    "Paragraph",
    "ReportData",
    "ReportOptions",
    "Table",
    "budget_messages",
    "build",
    "collect",
    "environment_record",
    "figures",
    "md_escape",
    "read_bench",
    "render_html",
    "render_markdown",
    "table",
]
