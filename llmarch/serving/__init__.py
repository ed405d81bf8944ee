"""Inference calculators: roofline step model, batching, serving memory and the `estimate-inference` estimate.

May import: `llmarch.core`, `llmarch.catalog`, `llmarch.calc` and the standard library. Never torch, rich, typer
or matplotlib.
"""
