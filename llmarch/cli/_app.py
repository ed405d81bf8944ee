"""Command-line interface: parse arguments, call the library, render. No arithmetic here.

Exit codes: 0 ok, 1 user error (unknown preset, invalid file or value), 2 usage error (bad option),
3 a budget or regression threshold exceeded, 4 a regression gate with nothing to compare (bench --baseline),
128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import io
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer

try:  # typer >= 0.2x carries its own copy of click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

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


#: Set to 1 for a traceback instead of the one-line error (for reporting bugs).
DEBUG_ENV = "LLMARCH_DEBUG"

#: Errors from reading input or writing output (and the values read): one line and exit 1, never a traceback.
_INPUT_OUTPUT_ERRORS = (OSError, UnicodeError, ValueError, OverflowError, RecursionError, MemoryError)


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _say(line: str) -> None:
    """One line on stderr, with control characters made visible; silent if stderr itself is gone."""
    from llmarch.core.text import printable

    with contextlib.suppress(Exception):
        typer.echo(printable(line), err=True)


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
    _say(f"error: {message}")
    return typer.Exit(code)


def _describe(exc: BaseException) -> str:
    """A one-line description of an input/output error (no traceback, no Python jargon where avoidable)."""
    if isinstance(exc, OSError):
        where = f" {exc.filename!r}" if exc.filename is not None else ""
        return f"cannot access{where}: {exc.strerror or exc}" if where else f"{exc.strerror or exc}"
    if isinstance(exc, UnicodeEncodeError):
        shown = exc.object[exc.start : exc.end]
        return f"cannot encode {shown!r} for output in {exc.encoding}; set PYTHONIOENCODING=utf-8"
    if isinstance(exc, RecursionError):
        return "input nested too deeply"
    if isinstance(exc, MemoryError):
        return "out of memory; the input is too large"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    _say(f"warning: {message}")


def handle_errors(func: F) -> F:
    """The error boundary of every command: domain errors and any input/output error (OSError, UnicodeError,
    ValueError, OverflowError, RecursionError) become one line on stderr and exit code 1; Ctrl-C exit code 130.
    Anything else is a bug in llmarch: one line too, unless LLMARCH_DEBUG=1 asks for the traceback.
    Warnings (llmarch.core.errors.LlmarchWarning) are printed as one line each."""

    kind = func.__name__.removesuffix("_command").replace("_", "-")  # estimate_cost_command -> estimate-cost
    options = tuple(inspect.signature(func).parameters)  # the command's options, as Python names

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from llmarch.core.errors import LlmarchWarning
        from llmarch.report.tables import current_kind

        token = current_kind.set(kind)
        with warnings.catch_warnings():
            warnings.simplefilter("always", LlmarchWarning)
            warnings.showwarning = _show_warning
            try:
                return func(*args, **kwargs)
            except (typer.Exit, typer.Abort, click_exceptions.ClickException):
                raise
            except LlmarchError as exc:
                raise _fail(keywords_to_flags(str(exc), options), exc.exit_code) from None
            except KeyboardInterrupt:
                raise _fail("interrupted", EXIT_INTERRUPTED) from None
            except BrokenPipeError:
                _silence_stdout()  # a closed pipe (| head) is not an error worth a message
                raise typer.Exit(0) from None
            except _INPUT_OUTPUT_ERRORS as exc:
                if _debug():
                    raise
                raise _fail(_describe(exc)) from None
            except Exception as exc:
                if _debug():
                    raise
                raise _fail(
                    f"internal error ({type(exc).__name__}: {_describe(exc)}); rerun with {DEBUG_ENV}=1 for the "
                    "traceback and report it"
                ) from None
            finally:
                current_kind.reset(token)

    return wrapper  # type: ignore[return-value]


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again (Python docs, SIGPIPE)."""
    with contextlib.suppress(Exception):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


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

    report.check_finite(records)
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


class _ClosedStream(io.TextIOBase):
    """Stands in for a standard stream that was closed before llmarch started (`llmarch ... >&-`): writing
    to it is an OSError (one line, exit 1) instead of output silently going nowhere."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "standard output is closed")

    def isatty(self) -> bool:
        return False


def _prepare_streams() -> None:
    """Output that cannot be encoded (PYTHONIOENCODING=ascii) is escaped, not a crash; a closed stdout errs."""
    if sys.stdout is None:
        sys.stdout = _ClosedStream()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]


def _usage_error(exc: click_exceptions.ClickException) -> int:
    """A usage error as one line: 'error: Invalid value for '--batch': ... (see 'llmarch compare --help')'."""
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    _say(f"error: {exc.format_message()}{hint}")
    return exc.exit_code


def main() -> None:
    """Console-script entry point: usage errors and output failures (disk full, closed stdout) are one line."""
    _prepare_streams()
    try:
        try:
            code = app(standalone_mode=False)
        except click_exceptions.NoArgsIsHelpError as exc:
            typer.echo(exc.ctx.get_help())
            code = exc.exit_code
        except click_exceptions.ClickException as exc:
            code = _usage_error(exc)
        except typer.Abort:
            _say("error: aborted")
            code = EXIT_USER_ERROR
        sys.stdout.flush()
    except KeyboardInterrupt:
        _say("error: interrupted")
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        code = 0
    except OSError as exc:
        _silence_stdout()
        _say(f"error: cannot write to standard output: {exc.strerror or exc}")
        code = EXIT_USER_ERROR
    sys.exit(code if isinstance(code, int) else 0)
