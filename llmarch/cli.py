"""Command-line interface: parse arguments, call the library, render. No arithmetic here.

Exit codes: 0 ok, 1 user error (unknown preset, invalid file or value), 2 usage error (bad option),
3 a budget or regression threshold exceeded, 130 interrupted.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer

from llmarch.errors import LlmarchError

app = typer.Typer(
    name="llmarch",
    help="Compare large-language-model architectures: exact parameter counts, FLOPs, memory and cost.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_USER_ERROR = 1
EXIT_THRESHOLD = 3
EXIT_INTERRUPTED = 130


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


FormatOption = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", help="Output format: a terminal table, or json/csv/markdown for machines and CI."),
]
OutputOption = Annotated[
    str | None,
    typer.Option("--output", "-o", help="Write to FILE (atomically) instead of standard output.", metavar="FILE"),
]

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int = EXIT_USER_ERROR) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def handle_errors(func: F) -> F:
    """Turn domain errors into one line on stderr and exit code 1; Ctrl-C into exit code 130."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LlmarchError as exc:
            raise _fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            sys.stderr.close()  # a closed pipe (| head) is not an error worth a traceback
            raise typer.Exit(0) from None

    return wrapper  # type: ignore[return-value]


def _render(
    records: list[dict[str, Any]],
    columns: list[str],
    *,
    fmt: OutputFormat,
    output: str | None,
    json_key: str,
    title: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    from llmarch import report

    if fmt is OutputFormat.json:
        report.emit(report.to_json(report.envelope(json_key, records, **(extra or {}))), output)
    elif fmt is OutputFormat.csv:
        report.emit(report.to_csv(records), output)
    elif fmt is OutputFormat.markdown:
        report.emit(report.to_markdown(records, columns, title=title), output)
    else:
        table = report.rich_table(records, columns, title=title)
        if output is not None:
            report.emit(report.render_text(table), output)
        else:
            from rich.console import Console

            Console().print(table)


def _resolve_specs(specs: list[str] | None, all_presets: bool) -> list[str]:
    from llmarch.presets import preset_names

    if all_presets:
        if specs:
            raise typer.BadParameter("give preset names or --all, not both")
        return preset_names()
    if not specs:
        raise typer.BadParameter("name at least one preset (see 'llmarch presets'), or pass --all")
    return specs


@app.command("presets")
@handle_errors
def presets_command(
    family: Annotated[str | None, typer.Option(help="Only presets of this family (exact, e.g. 'llama-2').")] = None,
    attention: Annotated[str | None, typer.Option(help="Only this attention kind: mha, gqa, mqa or mla.")] = None,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
) -> None:
    """List the presets: name, family, year, size and source."""
    from llmarch.compare import preset_rows

    rows = preset_rows(family=family, attention=attention)
    columns = ["name", "family", "year", "params_total", "attention", "position", "source"]
    _render(rows, columns, fmt=fmt, output=output, json_key="presets", title=f"{len(rows)} presets")


@app.command("show")
@handle_errors
def show_command(
    preset: Annotated[str, typer.Argument(help="Preset name, preset file, config.json, or name:field=value,...")],
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
) -> None:
    """Show every field of one architecture and its parameter breakdown as a tree."""
    from llmarch import presets, report
    from llmarch.compare import show_record

    config = presets.load(preset)
    record = show_record(config)
    if fmt is OutputFormat.json:
        report.emit(report.to_json(report.envelope("preset", record)), output)
        return
    if fmt in (OutputFormat.csv, OutputFormat.markdown):
        rows = [{"field": k, "value": v} for k, v in record["config"].items() if k != "training"]
        rows += [{"field": f"training.{k}", "value": v} for k, v in record["config"]["training"].items()]
        rows += [{"field": f"params.{k}", "value": v} for k, v in record["params"]["breakdown"].items()]
        if fmt is OutputFormat.csv:
            report.emit(report.to_csv(rows), output)
        else:
            report.emit(report.to_markdown(rows, ["field", "value"], title=config.name), output)
        return
    renderable = report.show_renderable(record)
    if output is not None:
        report.emit(report.render_text(renderable), output)
    else:
        from rich.console import Console

        Console().print(renderable)


@app.command("compare")
@handle_errors
def compare_command(
    presets_: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="PRESET...",
            help="Preset names, preset files, config.json files, or overrides like llama-2-7b:n_kv_heads=8.",
        ),
    ] = None,
    all_presets: Annotated[bool, typer.Option("--all", help="Compare every preset.")] = False,
    columns: Annotated[
        str,
        typer.Option(
            help="Table columns: a named set (default, course, params) or a comma list of record keys. "
            "JSON and CSV always carry every field."
        ),
    ] = "default",
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
) -> None:
    """Compare architectures side by side: parameters (exact, with breakdown), shapes and training facts."""
    from llmarch import compare, presets, report

    specs = _resolve_specs(presets_, all_presets)
    records = compare.compare(presets.load_many(specs))
    if columns in compare.COLUMN_SETS:
        cols = list(compare.COLUMN_SETS[columns])
    else:
        cols = report.select_columns(records, [c.strip() for c in columns.split(",") if c.strip()])
    _render(records, cols, fmt=fmt, output=output, json_key="models")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
