"""The only code that opens data files: presets (YAML, with `extends` and overrides), Hugging Face config import,
the hardware/grid/price catalogs, and the bench-results schema and reader.

May import: `llmarch.core` and the standard library (pyyaml lazily). Never torch, rich, typer or matplotlib.
"""
