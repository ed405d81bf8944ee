"""Presentation: number formatting (the one place), table views (rich, Markdown, CSV, JSON envelopes), plots
(matplotlib, lazily) and the report document (Markdown and HTML).

May import: `llmarch.core`, `llmarch.catalog`, `llmarch.calc`, `llmarch.serving` (and rich/matplotlib lazily).
Never torch at module level, never typer or `llmarch.cli`.
"""
