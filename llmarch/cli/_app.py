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
from enum import Enum, StrEnum
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
    rich_markup_mode=None,
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


class RecomputeChoice(StrEnum):
    """Activation recomputation, the choices of `--recompute` (estimate-cost, plan)."""

    none = "none"
    selective = "selective"
    full = "full"


FormatOption = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", help="Output format: a terminal table, or json/csv/markdown for machines and CI."),
]
OutputOption = Annotated[
    str | None,
    typer.Option("--output", "-o", help="Write to FILE (atomically) instead of standard output.", metavar="FILE"),
]

# Options and arguments several commands declare alike.
PresetsArgument = Annotated[
    list[str] | None,
    typer.Argument(metavar="PRESET...", help="Preset names, preset files, config.json files, or overrides."),
]
PresetOverridesArgument = Annotated[
    list[str] | None,
    typer.Argument(metavar="PRESET...", help="Preset names, files or overrides (llama-2-70b:n_kv_heads=64)."),
]
AllPresetsOption = Annotated[bool, typer.Option("--all", help="Every preset.")]
PricePerGpuHourOption = Annotated[
    float | None, typer.Option(help="USD per GPU-hour. Default: the catalog's dated on-demand price, if any.")
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
                if kwargs.get("workload"):
                    apply_workload(func, kind, kwargs)
                if kwargs.get("catalog"):
                    from llmarch.catalog.hardware import use_catalogs

                    use_catalogs([kwargs["catalog"]])
                apply_gpu_overrides(kwargs)
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
                if kwargs.get("catalog") or "gpu_peak" in kwargs:
                    from llmarch.catalog.hardware import clear_gpu_overrides, use_catalogs

                    use_catalogs([])
                    clear_gpu_overrides()

    return wrapper  # type: ignore[return-value]


# -- workload files -------------------------------------------------------------------------------------

WorkloadOption = Annotated[
    str | None,
    typer.Option(
        "--workload",
        metavar="FILE",
        help="A YAML/JSON file of option values (keys: option names in snake_case, e.g. seq_len); "
        "options given on the command line win.",
    ),
]


CatalogOption = Annotated[
    str | None,
    typer.Option(
        "--catalog",
        metavar="FILE",
        help="A user catalog (JSON/YAML with 'accelerators', 'regions' or 'prices' lists in the shipped "
        "format) adding to or overriding the shipped rows by name; also LLMARCH_CATALOG.",
    ),
]


GpuMemoryOverride = Annotated[
    str | None, typer.Option("--gpu-memory", metavar="SIZE", help="Memory of one --gpu, e.g. 96GiB (over the catalog).")
]
GpuBandwidthOverride = Annotated[
    str | None,
    typer.Option("--gpu-bandwidth", metavar="RATE", help="Memory bandwidth of one --gpu, e.g. 3.35TB/s."),
]
GpuPeakOverride = Annotated[
    str | None,
    typer.Option(
        "--gpu-peak",
        metavar="FLOP/S",
        help="Dense peak of one --gpu, e.g. 989T (bf16 and fp16) or fp8=1979T,bf16=989T. With --gpu-memory, "
        "a --gpu no catalog has becomes a GPU of its own.",
    ),
]


def parse_peaks(text: str) -> dict[str, float]:
    """'989T' -> {bf16, fp16: 989e12}; 'fp8=1979T,bf16=989T' -> per dtype (FLOP/s; 'TFLOP/s' suffixes allowed)."""
    from llmarch.catalog.hardware import canonical_peak_dtype
    from llmarch.core.units import parse_count

    def rate(value: str) -> float:
        cleaned = value.strip().lower().removesuffix("/s").removesuffix("flop").removesuffix("flops")
        return parse_count(cleaned, what="--gpu-peak")

    if "=" not in text:
        return {"bf16": rate(text), "fp16": rate(text)}
    peaks = {}
    for item in text.split(","):
        dtype, _, value = item.partition("=")
        peaks[canonical_peak_dtype(dtype)] = rate(value)
    return peaks


def apply_gpu_overrides(kwargs: dict[str, Any]) -> None:
    """--gpu-memory / --gpu-bandwidth / --gpu-peak of a command that declares all three: override its --gpu
    for this run (llmarch.catalog.hardware.use_gpu_overrides)."""
    if "gpu_peak" not in kwargs or not any(kwargs.get(k) for k in ("gpu_memory", "gpu_bandwidth", "gpu_peak")):
        return
    from llmarch.catalog.hardware import use_gpu_overrides
    from llmarch.core.errors import InvalidValueError
    from llmarch.core.units import parse_bytes

    if not kwargs.get("gpu"):
        raise InvalidValueError("--gpu-memory, --gpu-bandwidth and --gpu-peak describe a --gpu: pass --gpu NAME")
    memory, bandwidth, peak = kwargs.get("gpu_memory"), kwargs.get("gpu_bandwidth"), kwargs.get("gpu_peak")
    use_gpu_overrides(
        kwargs["gpu"],
        memory_bytes=None if memory is None else parse_bytes(memory, what="--gpu-memory"),
        bandwidth_bytes_per_s=None if bandwidth is None else parse_bytes(
            str(bandwidth).strip().removesuffix("/s"), what="--gpu-bandwidth"),
        peak_flop_per_s=None if peak is None else parse_peaks(peak),
    )  # fmt: skip


def _click_context() -> Any:
    """The click context of the command being run (typer vendors click from 0.2x on)."""
    try:
        from typer._click.globals import get_current_context
    except ImportError:  # typer that uses click itself
        from click import get_current_context
    return get_current_context(silent=True)


def _given_on_command_line(ctx: Any, name: str) -> bool:
    source = ctx.get_parameter_source(name) if ctx is not None else None
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT", "PROMPT")


def _coerce(ctx: Any, func: Callable[..., Any], name: str, value: Any) -> Any:
    """A workload value converted as the command line would convert it for parameter `name` of `func`."""
    import typing

    param = next((p for p in ctx.command.params if p.name == name), None) if ctx is not None else None
    text = str(value).lower() if isinstance(value, bool) else str(value)
    converted = param.type_cast_value(ctx, text) if param is not None else value
    hint = typing.get_type_hints(func).get(name)
    for option in typing.get_args(hint) or (hint,):
        if isinstance(option, type) and issubclass(option, Enum):
            return option(converted)
    return converted


def apply_workload(func: Callable[..., Any], kind: str, kwargs: dict[str, Any]) -> None:
    """Fill `kwargs` of command `kind` from its --workload file: every key the command has an option for,
    unless that option was given on the command line; `presets` when no preset was named."""
    from llmarch.catalog.workload import read_workload
    from llmarch.core.errors import InvalidValueError

    workload = read_workload(kwargs["workload"])
    ctx = _click_context()
    for key, value in workload.settings_for(kind).items():
        name = next((n for n in ("presets_", "model") if n in kwargs), key) if key == "presets" else key
        if name not in kwargs or _given_on_command_line(ctx, name):
            continue
        if name == "model":  # a command of one preset (plan)
            if len(value) != 1:
                raise InvalidValueError(f"--workload {workload.source}: presets: {kind} takes one preset, not {value}")
            kwargs[name] = kwargs[name] or value[0]
            continue
        if key == "presets":
            if not kwargs[name] and not kwargs.get("all_presets"):
                kwargs[name] = list(value)
            continue
        try:
            kwargs[name] = _coerce(ctx, func, name, value)
        except (typer.BadParameter, ValueError) as exc:
            raise InvalidValueError(f"--workload {workload.source}: {key}: {exc}") from None


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

    if fmt is OutputFormat.json:
        try:  # the JSON encoder refuses a non-finite number itself; check_finite then names where it is
            text = report.to_json(report.envelope(json_key, records, **(extra or {})))
        except ValueError:
            report.check_finite(records)
            raise
        report.emit(text, output)
        return
    report.check_finite(records)
    if fmt is OutputFormat.csv:
        report.emit(report.to_csv(records), output)
    elif fmt is OutputFormat.markdown:
        report.emit(report.to_markdown(records, columns, title=title), output)
    else:
        table = report.rich_table(records, columns, title=title)
        if output is not None:
            report.emit(report.render_text(table), output)
        else:
            report.print_rich(table)


# -- human numbers ------------------------------------------------------------------------------------------


def parse_human_int(
    text: str | int, *, option: str = "value", minimum: int = 0, length: bool = False, maximum: int | None = None
) -> int:
    """A whole number written for people: 4096, 32k, 2M, 1.5e3, 2_048. Lengths in tokens (`length`) take
    binary k/M (32k = 32768, as context windows are quoted); other counts decimal ones (2k GPUs = 2000).
    Raises typer.BadParameter (a usage error naming `option`) for anything else or below `minimum`."""
    from llmarch.core.errors import InvalidValueError
    from llmarch.core.units import parse_count, parse_length

    raw = str(text).strip().replace("_", "")
    if raw.isdigit():  # a plain integer stays exact at any size: the library bounds it (one line, exit 1)
        whole = int(raw)
        if whole < minimum:
            raise typer.BadParameter(f"must be at least {minimum}, got {text!r}")
        if maximum is not None and whole > maximum:
            raise typer.BadParameter(f"must be at most {maximum}, got {text!r}")
        return whole
    try:
        value = (parse_length if length else parse_count)(raw, what=option)
    except InvalidValueError as exc:
        raise typer.BadParameter(str(exc).removeprefix(f"{option}: ")) from None
    if not value.is_integer():
        raise typer.BadParameter(f"{text!r} is not a whole number")
    if value < minimum:
        raise typer.BadParameter(f"must be at least {minimum}, got {text!r}")
    if maximum is not None and value > maximum:
        raise typer.BadParameter(f"must be at most {maximum}, got {text!r}")
    return int(value)


def parse_human_float(text: str | float, *, option: str = "value") -> float:
    """A non-negative number written for people: 1e6, 1M, 2.5k, 1_000 (decimal suffixes)."""
    from llmarch.core.errors import InvalidValueError
    from llmarch.core.units import parse_count

    try:
        return parse_count(text if isinstance(text, (int, float)) else str(text), what=option)
    except InvalidValueError as exc:
        raise typer.BadParameter(str(exc).removeprefix(f"{option}: ")) from None


def count_option(*decls: str, help: str, minimum: int = 0, length: bool = False, **kwargs: Any) -> Any:
    """A typer.Option for a whole number that accepts 32k, 2M, 1e3 (see parse_human_int): the one type of
    every count option. `length=True` for token lengths (binary k: 32k = 32768)."""
    parser = functools.partial(parse_human_int, option=decls[0] if decls else "value", minimum=minimum, length=length)
    return typer.Option(*decls, parser=parser, metavar="N", help=help, **kwargs)


def amount_option(*decls: str, help: str, **kwargs: Any) -> Any:
    """A typer.Option for a non-negative real amount that accepts 1M, 2.5k, 1e6 (dollars, GPU-hours, kg)."""
    parser = functools.partial(parse_human_float, option=decls[0] if decls else "value")
    return typer.Option(*decls, parser=parser, metavar="X", help=help, **kwargs)


#: Whole-number options that are lengths in tokens (binary k: 32k = 32768); other whole numbers are counts.
LENGTH_OPTIONS = frozenset({"seq_len", "prompt_len", "generate_len", "context", "context_len", "prefill_chunk",
                            "window", "chunk_size", "max_seq_len", "sliding_window"})  # fmt: skip
#: Real-valued options written as amounts (1M dollars, 1.02M GPU-hours) and parsed as human numbers.
AMOUNT_OPTIONS = frozenset({"max_cost", "max_co2e", "gpu_hours", "budget_usd", "price_per_gpu_hour"})


def _option_info(hint: Any) -> tuple[tuple[Any, ...], Any] | None:
    """(the non-None types of the annotation, its typer.OptionInfo) for an `Annotated[..., typer.Option()]`."""
    import typing

    from typer.models import OptionInfo

    if typing.get_origin(hint) is not Annotated:
        return None
    base, *extras = typing.get_args(hint)
    info = next((e for e in extras if isinstance(e, OptionInfo)), None)
    kinds = tuple(t for t in (typing.get_args(base) or (base,)) if t is not type(None))
    return (kinds, info) if info is not None else None


def commands_named(names: list[str] | None) -> list[Any]:
    """The registered commands called `names` (every registered command when None)."""
    return [c for c in app.registered_commands if names is None or c.name in names]


def humanize_counts(commands: list[Any] | None = None) -> None:
    """Give every whole-number option of `commands` (default: all registered) the human-number parser (32k,
    2M, 1e3), and the amount options (AMOUNT_OPTIONS) theirs: one type for every count option, whichever
    module declares it. Options with a parser or click type of their own are left alone; `min`/`max` move
    into the parser. Idempotent: a command already converted is left as it is."""
    import typing

    for command in app.registered_commands if commands is None else commands:
        callback = command.callback
        hints = typing.get_type_hints(callback, include_extras=True) if callback else {}
        for name, hint in hints.items():
            found = _option_info(hint)
            if found is None or found[1].parser is not None or found[1].click_type is not None:
                continue
            kinds, info = found
            option = f"--{name.replace('_', '-')}"
            if kinds == (int,):
                info.parser = functools.partial(
                    parse_human_int, option=option, minimum=int(info.min or 0), length=name in LENGTH_OPTIONS,
                    maximum=None if info.max is None else int(info.max),
                )  # fmt: skip
                info.min = info.max = None
                info.metavar = info.metavar or "N"
            elif kinds == (float,) and name in AMOUNT_OPTIONS:
                info.parser = functools.partial(parse_human_float, option=option)
                info.metavar = info.metavar or "X"
            else:
                continue
            # Under `from __future__ import annotations` each evaluation builds a new OptionInfo: store the
            # evaluated annotation so that typer reads this one.
            for function in (callback, getattr(callback, "__wrapped__", None)):
                if function is not None:
                    function.__annotations__[name] = hint


def tidy_epilogs(commands: list[Any] | None = None) -> None:
    """Each 'Examples: a · b' epilog of `commands` (default: all registered) as one example per line, kept
    unwrapped (click's \\b marker)."""
    for info in app.registered_commands if commands is None else commands:
        epilog = info.epilog
        if isinstance(epilog, str) and " · " in epilog and not epilog.startswith("\b"):
            head, _, rest = epilog.partition(": ")
            info.epilog = "\b\n" + head + ":\n" + "\n".join(f"  {e.strip()}" for e in rest.split(" · "))


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


def _run() -> int:
    """Run the app; usage errors, interrupts and output failures become an exit code (and one line)."""
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
    except OSError as exc:  # writing help or the final flush to a full disk or a closed stream
        if _debug():
            raise
        _silence_stdout()
        _say(f"error: cannot write to standard output: {exc.strerror or exc}")
        code = EXIT_USER_ERROR
    return code if isinstance(code, int) else 0


def main(only: str | None = None) -> None:
    """Console-script entry point: usage errors and output failures (disk full, closed stdout) are one line.

    `only` names the one command being run: Typer then builds that command's options alone (building every
    command registered beside it costs more than running `llmarch compare`)."""
    _prepare_streams()
    registered = app.registered_commands
    if only is not None:
        app.registered_commands = commands_named([only])
    try:
        code = _run()
    finally:
        app.registered_commands = registered
    sys.exit(code)
