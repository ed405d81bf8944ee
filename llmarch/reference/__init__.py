"""[torch] The reference PyTorch model built from an ArchConfig, and `verify`, which cross-checks the calculators
against it (parameters, KV-cache bytes, FLOPs via fvcore and FlopCounterMode).

May import: torch, `llmarch.core`, `llmarch.catalog`, `llmarch.calc`. Nothing from bench, report or cli.
"""
