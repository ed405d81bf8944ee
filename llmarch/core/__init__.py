"""Pure foundations: errors, units (dtypes, parsing and formatting numbers), input checks, the ArchConfig schema,
named defaults and file I/O (the atomic writer).

May import: the standard library only (and other `llmarch.core` modules). Never torch, rich, typer, pandas or
matplotlib; never any other llmarch sub-package.
"""
