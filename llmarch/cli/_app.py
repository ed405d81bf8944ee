"""Command-line interface: parse arguments, call the library, render. No arithmetic here.

Exit codes: 0 ok, 1 user error (unknown preset, invalid file or value), 2 usage error (bad option),
3 a budget or regression threshold exceeded, 4 a regression gate with nothing to compare (bench --baseline),
128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM).
"""

from __future__ import annotations

import functools
import inspect
import re
import sys
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer

from llmarch.core.errors import LlmarchError

app = typer.Typer(
    name="llmarch",
    help="Compare large-language-model architectures: exact parameter counts, FLOPs, memory and cost.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        from llmarch._version import __version__

        typer.echo(f"llmarch {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Compare large-language-model architectures: exact parameter counts, FLOPs, memory, cost and attention
    benchmarks. Colours are off when output is not a terminal or NO_COLOR is set."""


EXIT_USER_ERROR = 1
EXIT_THRESHOLD = 3
EXIT_NOTHING_COMPARED = 4
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


#: Library keywords whose CLI option has another name; every other option is the keyword's kebab-case mirror
#: (seq_len -> --seq-len).
KEYWORD_OPTIONS: dict[str, str] = {
    "usd_per_gpu_hour": "price_per_gpu_hour",
    "grid_kg_co2e_per_kwh": "grid_intensity",
    "link_bandwidth_bytes_per_s": "link_bandwidth",
    "allreduce_latency_s": "allreduce_latency",
    "accelerator_memory_bytes": "gpu_memory",
    "max_cost_usd": "max_cost",
    "max_co2e_kg": "max_co2e",
    "min_pass_s": "min_time",
}


def flag(keyword: str) -> str:
    """The CLI option of a library keyword: 'seq_len' -> '--seq-len', 'usd_per_gpu_hour' -> '--price-per-gpu-hour'."""
    return "--" + KEYWORD_OPTIONS.get(keyword, keyword).replace("_", "-")


#: A keyword in a message: `quoted`, or a bare identifier; never part of a dotted name, a flag or `name=value`.
#: (A pattern, compiled on the first error: the successful run does not pay for it.)
_KEYWORD = r"`(\w+)`|(?<![\w.\-'\"])([a-z][a-z0-9]*(?:_[a-z0-9]+)*)(?![\w.=(\-'\"])"


def keywords_to_flags(message: str, options: Iterable[str]) -> str:
    """An error message of the library with the keywords it names written as the command's flags.

    `options` are the parameter names of the running command (`seq_len`, `price_per_gpu_hour`, ...). A keyword is
    rewritten when it is `quoted`, contains an underscore, or opens the message ("mfu must be ..."), and the
    command has its option; other words are left alone, so "training tokens" stays prose.
    """
    known = set(options)

    def replace(match: re.Match[str]) -> str:
        quoted, bare = match.group(1), match.group(2)
        keyword = quoted or bare
        if KEYWORD_OPTIONS.get(keyword, keyword) not in known:
            return quoted if quoted else bare
        if quoted or "_" in keyword or match.start() == 0:
            return flag(keyword)
        return bare

    return re.sub(_KEYWORD, replace, message)


def _fail(message: str, code: int = EXIT_USER_ERROR) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def handle_errors(func: F) -> F:
    """Turn domain errors into one line on stderr and exit code 1; Ctrl-C into exit code 130."""

    kind = func.__name__.removesuffix("_command").replace("_", "-")  # estimate_cost_command -> estimate-cost
    options = tuple(inspect.signature(func).parameters)  # the command's options, as Python names

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from llmarch.report.tables import current_kind

        token = current_kind.set(kind)
        try:
            return func(*args, **kwargs)
        except LlmarchError as exc:
            raise _fail(keywords_to_flags(str(exc), options), exc.exit_code) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            sys.stderr.close()  # a closed pipe (| head) is not an error worth a traceback
            raise typer.Exit(0) from None
        finally:
            current_kind.reset(token)

    return wrapper  # type: ignore[return-value]


def render(
    records: list[dict[str, Any]],
    columns: list[str],
    *,
    fmt: OutputFormat,
    output: str | None,
    json_key: str,
    title: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    from llmarch.report import tables as report

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
            report.print_rich(table)


def resolve_specs(specs: list[str] | None, all_presets: bool) -> list[str]:
    from llmarch.catalog.presets import preset_names

    if all_presets:
        if specs:
            raise typer.BadParameter("give preset names or --all, not both")
        return preset_names()
    if not specs:
        raise typer.BadParameter("name at least one preset (see 'llmarch presets'), or pass --all")
    return specs


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
