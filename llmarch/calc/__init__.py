"""Calculators: pure functions of a frozen ArchConfig (and a workload) returning frozen dataclasses of raw SI
numbers: parameters, FLOPs, memory (weights, KV cache), training memory, training cost, comparison records.

May import: `llmarch.core`, `llmarch.catalog` and the standard library. Never torch, rich, typer, pandas (except
lazily in a DataFrame convenience) or matplotlib.
"""
