"""Presentation: number formatting (`format`, the one place), table views (`tables`: rich, Markdown, CSV, JSON
envelopes), plots (matplotlib, lazily) and the report document (`collect` -> `sections` of `blocks` -> `render`
as Markdown or HTML; `document` gathers them).

May import: `llmarch.core`, `llmarch.catalog`, `llmarch.calc`, `llmarch.serving` (and rich/matplotlib lazily).
Never torch at module level, never typer or `llmarch.cli`.
"""
