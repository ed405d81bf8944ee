"""Pure foundations: errors, units (dtypes, parsing and formatting numbers), input checks, the ArchConfig schema,
named defaults, file I/O (the atomic writer) and `frozen_dataclass` (the decorator of every result record).

May import: the standard library only (and other `llmarch.core` modules). Never torch, rich, typer, pandas or
matplotlib; never any other llmarch sub-package.
"""
