"""Command-line interface: parse arguments, call the library, render. No arithmetic here.

One module per command group; each registers its commands on the shared Typer `app` when imported.
The console script imports only the module of the command it runs and has Typer build that one command
(Typer builds every registered command's options on each start, which for all of them costs more than
`llmarch compare` itself); `llmarch.cli.app` (for tests and embedding) has every command registered.
Command modules evaluate their annotations when they are defined (no `from __future__ import annotations`,
except where an annotation names a type imported only for type checking): Typer reads every option from
them on each start, and string annotations would be compiled anew each time.
"""

from __future__ import annotations

import gc
import importlib
import sys
from typing import Any

#: Command name -> the module of llmarch.cli that registers it (one module per command group).
COMMAND_MODULES: dict[str, str] = {
    "presets": "architectures",
    "show": "architectures",
    "schema": "schema",
    "compare": "architectures",
    "estimate-cost": "cost",
    "gpus": "cost",
    "regions": "cost",
    "memory": "memory",
    "plan": "plan",
    "estimate-inference": "inference",
    "verify": "verify",
    "bench": "bench",
    "report": "report",
    "design": "design",
}


def load_commands(names: list[str] | None = None) -> None:
    """Import the command modules for `names` (every command when None), registering them on the app."""
    modules = sorted(set(COMMAND_MODULES.values())) if names is None else [COMMAND_MODULES[n] for n in names]
    for module in modules:
        importlib.import_module(f"llmarch.cli.{module}")
    from llmarch.cli._app import commands_named, humanize_counts, tidy_epilogs

    commands = commands_named(names)
    tidy_epilogs(commands)
    humanize_counts(commands)


def main() -> None:
    """Console-script entry point: register only the command being run, unless it is help or unknown."""
    from llmarch.cli import _app

    args = sys.argv[1:]
    command = next((arg for arg in args if not arg.startswith("-")), None)
    version_only = bool(args) and set(args) <= {"--version", "-V"}  # the root callback answers it alone
    if not version_only:
        load_commands([command] if command in COMMAND_MODULES else None)
    # What the imports built (modules, functions, Typer's tables) lives until exit: frozen, the cyclic garbage
    # collector stops re-scanning it on every collection the command triggers (a few ms of each start).
    gc.freeze()
    _app.main(only=command if command in COMMAND_MODULES else None)


def __getattr__(name: str) -> Any:
    if name == "app":
        from llmarch.cli._app import app

        load_commands()
        return app
    raise AttributeError(f"module 'llmarch.cli' has no attribute {name!r}")


__all__ = ["COMMAND_MODULES", "app", "load_commands", "main"]
