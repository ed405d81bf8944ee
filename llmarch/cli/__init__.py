"""Command-line interface: parse arguments, call the library, render. No arithmetic here.

One module per command group; each registers its commands on the shared Typer `app` when imported.
"""

from llmarch.cli import (  # noqa: F401  (each module registers its commands)
    architectures,
    cost,
    memory,
)
from llmarch.cli._app import app, main

__all__ = ["app", "main"]
