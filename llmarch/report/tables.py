"""Presentation: JSON/CSV/Markdown/terminal tables from plain records, and atomic file output.

Nothing here computes a model quantity; it only formats what the calculators return.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from llmarch.core.errors import InvalidValueError
from llmarch.core.io import write_atomic
from llmarch.core.text import printable
from llmarch.report.format import format_cell, format_count

FORMATS = ("table", "json", "csv", "markdown")

#: Column headers for people; keys not listed are shown as they are.
LABELS: dict[str, str] = {
    "name": "model",
    "params_total": "params",
    "params_active": "active",
    "params_embedding": "embedding",
    "params_non_embedding": "non-emb.",
    "params_lm_head": "lm head",
    "params_attention": "attention",
    "params_mlp": "mlp",
    "params_norm": "norm",
    "n_layers": "layers",
    "d_model": "d_model",
    "n_heads": "heads",
    "n_kv_heads": "kv heads",
    "d_head": "d_head",
    "d_ff": "d_ff",
    "vocab_size": "vocab",
    "max_seq_len": "context",
    "training_tokens": "tokens",
    "global_batch_tokens": "batch (tokens)",
    "learning_rate": "LR",
    "reference_params": "published",
    "reference_exact": "exact ref.",
    "mlp": "activation",
    "flops_per_token": "FLOPs/token",
    "kv_cache_bytes_per_token": "KV/token",
    "kv_cache_bytes": "KV cache",
    "weights_bytes": "weights",
}


def environment() -> dict[str, str]:
    """Where a result was computed (carried by every JSON document)."""
    # os.uname, not platform.platform(): the latter runs `uname -p` in a subprocess on Linux.
    uname = os.uname()
    return {
        "python": "{}.{}.{}".format(*sys.version_info[:3]),
        "platform": f"{uname.sysname}-{uname.release}",
        "machine": uname.machine,
    }


#: Version of the JSON document every command writes (see catalog/data/envelope.schema.json). Within version 1,
#: llmarch 0.x added `kind` and `results` (additive); the payload is also kept under the command's older key
#: (`models`, `estimates`, ...), deprecated, until version 2 removes it.
SCHEMA_VERSION = 1


#: The command being run ("compare", "estimate-cost"), set by the CLI; a document's `kind` when none is given.
current_kind: ContextVar[str | None] = ContextVar("current_kind", default=None)


#: Types `plain` returns unchanged (bool is a subclass of int, but `type(True)` is bool).
_PLAIN_AS_IS = frozenset({str, int, bool, type(None)})


def plain(value: Any, key: str = "") -> Any:
    """`value` with integral quantities as integers: a float that is whole becomes an int (131072.0 -> 131072),
    and a byte count (a key ending in `_bytes`) is rounded up to whole bytes (half a byte of int4 still takes
    one). Mappings and lists are converted recursively; everything else is returned as it is."""
    if type(value) is dict:  # the common case, with its strings, integers and None passed through as they are
        return {k: v if type(v) in _PLAIN_AS_IS else plain(v, str(k)) for k, v in value.items()}
    if isinstance(value, Mapping):
        return {k: plain(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, key) for v in value]
    if isinstance(value, float) and math.isfinite(value) and abs(value) < 2**53:
        if key.endswith("_bytes") and not value.is_integer():
            return math.ceil(value)
        if value.is_integer():
            return int(value)
    return value


def envelope(key: str, records: Any, *, kind: str | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON document every command writes: `schema_version`, `llmarch_version`, `environment`, `kind` (the
    command, e.g. "compare"), any `extra` keys, and `results` (a list of records; a single record is listed).

    `key` is where earlier releases put the payload ("models", "estimates", ...): it is kept as an alias of
    `results` (deprecated; schema version 2 will drop it)."""
    from llmarch._version import __version__

    payload = plain(records)
    document = {
        "schema_version": SCHEMA_VERSION,
        "llmarch_version": __version__,
        "environment": environment(),
        "kind": kind or current_kind.get() or key,
        **plain(extra),
        "results": payload if isinstance(payload, list) else [payload],
    }
    if key != "results":
        document[key] = payload
    return document


def to_json(document: Any) -> str:
    """The document as indented JSON. A value that stands under two top-level keys (`results` and its deprecated
    alias) is encoded once: the text equals json.dumps(document, indent=2) (llmarch.report.encode writes it)."""
    from llmarch.report.encode import dumps_indented

    if not isinstance(document, dict) or not document or not all(isinstance(k, str) for k in document):
        return json.dumps(document, indent=2, allow_nan=False) + "\n"
    encoded: dict[int, str] = {}
    members = []
    for key, value in document.items():
        if id(value) not in encoded:
            # One level deeper: every line after the first gains the two spaces of the enclosing object (a
            # newline inside a string is escaped, so every literal newline is a line break).
            encoded[id(value)] = dumps_indented(value, 1)
        members.append(f"  {json.dumps(key)}: {encoded[id(value)]}")
    return "{\n" + ",\n".join(members) + "\n}\n"


def check_finite(records: Sequence[Mapping[str, Any]]) -> None:
    """Raise InvalidValueError if a result is infinite or NaN (an input so large that a float overflowed):
    a table must never show 'inf' as if it were a number.

    The C JSON encoder visits every value far faster than a Python walk and refuses a non-finite float, so it
    answers the common case; only when it refuses does the walk below run, to name the record and the key."""
    try:
        json.dumps(records, allow_nan=False, default=_as_container)
        return
    except (ValueError, TypeError, RecursionError):
        pass  # a non-finite float, or something the encoder cannot judge: walk it
    stack: list[tuple[str, Any]] = [(str(r.get("name", "")), r) for r in records]
    while stack:
        where, node = stack.pop()
        items = node.items() if isinstance(node, Mapping) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidValueError(f"{where}: {key} is {value}: an input is too large; use realistic values")
            if isinstance(value, (Mapping, list)):
                stack.append((where, value))


def _as_container(value: Any) -> Any:
    """For `check_finite`'s encoder: a mapping that is not a dict is looked into; anything else is not a number."""
    return dict(value) if isinstance(value, Mapping) else None


def select_columns(records: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    """Validate requested columns against the records' keys (raises InvalidValueError naming the bad one)."""
    if not records:
        return list(columns)
    known = records[0].keys()
    for col in columns:
        if col not in known:
            import difflib

            close = difflib.get_close_matches(col, list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; choose from {', '.join(known)}"
            raise InvalidValueError(f"unknown column {col!r}{hint}")
    return list(columns)


#: Characters that start inline Markdown (emphasis, code, links, images, raw HTML, tables, math, strikethrough,
#: entities; ">" only matters at the start of a line, see md_line): backslash-escaped wherever text is written.
_MD_SPECIAL = frozenset("\\`*_[]|$~&")
#: Every way to end a line (CR alone ends one for CommonMark; VT, FF, NEL and U+2028/9 for some renderers). Patterns
#: as text: `re` compiles each on first use (a JSON run never does).
_LINE_BREAKS = "\r\n|[\r\n\v\f\x85\u2028\u2029]"
#: What starts a block at the beginning of a line: heading, quote, list item, setext underline, ordered item.
_MD_BLOCK_START = r"^([#>+\-=]|\d+(?=[.)]))"


def md_escape(text: str) -> str:
    """Text as literal inline Markdown on one line: line breaks become spaces, control characters are made
    visible, and inline constructs (links, images, raw HTML, emphasis, code, table pipes) are backslash-escaped."""
    text = printable(re.sub(_LINE_BREAKS, " ", str(text)))
    out = []
    for i, ch in enumerate(text):
        # An underscore inside a word (device_check) never starts emphasis in GFM: left as it is, readable.
        intraword = ch == "_" and 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
        if ch == "<":
            out.append("&lt;")  # no raw HTML, and no "<tag" left in the file for a naive filter to miss
        elif ch == "(" and out and out[-1] == "\\]":
            out.append("\\(")  # "\](" could still read as a link target to a lenient renderer
        else:
            out.append("\\" + ch if ch in _MD_SPECIAL and not intraword else ch)
    return "".join(out)


def md_line(text: str) -> str:
    """`md_escape` for text that starts a line (a paragraph, list item or heading): a leading block marker
    ('#', '>', '-', '+', '=', '1.') is escaped too, and leading blanks (an indented code block) dropped."""
    escaped = md_escape(text).lstrip()
    match = re.match(_MD_BLOCK_START, escaped)
    if match is None:
        return escaped
    if match.group(1)[0].isdigit():
        end = match.end()
        return escaped[:end] + "\\" + escaped[end:]
    return "\\" + escaped


def to_markdown(records: Sequence[dict[str, Any]], columns: Sequence[str], *, title: str | None = None) -> str:
    """A GitHub-flavoured Markdown table (suitable for a CI job summary); every cell escaped (`md_escape`)."""
    header = [md_escape(LABELS.get(c, c)) for c in columns]
    lines = [f"### {md_line(title)}", ""] if title else []
    lines.append("| " + " | ".join(header) + " |")
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in records) for c in columns]
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    for record in records:
        cells = [md_escape(format_cell(c, record.get(c))) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: A cell starting with one of these is read as a formula by spreadsheets (OWASP "CSV injection").
_CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: a leading formula character gets a "'" before it, and
    control characters are made visible. Numbers pass unchanged (a negative number is not a formula)."""
    if not isinstance(value, str):
        return value
    if value.startswith(_CSV_FORMULA_START):
        value = "'" + value
    return printable(value)


def to_csv(records: Sequence[dict[str, Any]]) -> str:
    """CSV of the full records: nested objects flattened to 'breakdown.attention.q' style columns (the union
    of every record's keys, in order of appearance), whole numbers without '.0', lists as JSON, none empty.
    Text cells and headers pass through `csv_safe` (no formulas, no control characters)."""
    import csv
    import io

    rows = [_flatten(plain(record)) for record in records]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_safe(c) for c in columns])
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def _flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, Mapping)):
        return json.dumps(value)
    if isinstance(value, str):
        return csv_safe(value)
    return str(value)


def rich_table(records: Sequence[dict[str, Any]], columns: Sequence[str], *, title: str | None = None) -> Any:
    from rich.table import Table

    table = Table(title=rich_text(title) if title else None, header_style="bold", show_lines=False)
    for col in columns:
        numeric = any(isinstance(r.get(col), (int, float)) and not isinstance(r.get(col), bool) for r in records)
        table.add_column(
            rich_text(LABELS.get(col, col)),
            justify="right" if numeric else "left",
            no_wrap=col == "name",
            overflow="fold",
        )
    for record in records:
        table.add_row(*(rich_text(format_cell(c, record.get(c))) for c in columns))
    return table


def rich_text(value: Any, *, style: str = "") -> Any:
    """A rich Text that shows `value` literally: no markup ('[kv=8]' stays, '[/]' cannot raise), control
    characters made visible."""
    from rich.text import Text

    return Text(printable(str(value)), style=style)


def print_rich(renderable: Any) -> None:
    """Print to the terminal; when stdout is not a terminal, wide enough that no cell is cut."""
    from rich.console import Console

    console = Console() if sys.stdout.isatty() else Console(width=200)
    console.print(renderable)


def render_text(renderable: Any, *, width: int = 200) -> str:
    """Render a rich object to plain text (for --output of a table)."""
    from rich.console import Console

    console = Console(width=width, record=True, file=open(os.devnull, "w"), color_system=None)  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


_BUDGET_UNITS = {"--max-cost": ("$", ""), "--max-co2e": ("", " kg CO2e"), "--max-days": ("", " days")}


def budget_line(name: str, option: str, value: float, limit: float) -> str:
    """One line saying which budget a model exceeds: 'budget exceeded: x: $1.2M > --max-cost $1M'."""
    prefix, unit = _BUDGET_UNITS.get(option, ("", ""))
    return (
        f"budget exceeded: {name}: {prefix}{format_count(value)}{unit} > {option} {prefix}{format_count(limit)}{unit}"
    )


def emit(text: str, output: str | Path | None) -> None:
    """Send rendered text to --output (atomically) or stdout."""
    if output is not None:
        write_atomic(output, text)
    else:
        sys.stdout.write(text)


def iter_flat(tree: dict[str, int]) -> Iterable[tuple[str, str, int]]:
    """(group, part, value) triples of a dotted breakdown, in insertion order."""
    for key, value in tree.items():
        group, _, part = key.partition(".")
        yield group, part, value


def show_renderable(record: dict[str, Any]) -> Any:
    """`llmarch show`: a fields table beside a parameter tree (group -> component, with shares)."""
    from rich.console import Group
    from rich.table import Table
    from rich.tree import Tree

    config = record["config"]
    fields = Table(title=rich_text(record["name"]), show_header=False, box=None, pad_edge=False)
    fields.add_column("field", style="bold")
    fields.add_column("value", overflow="fold")
    for key, value in config.items():
        if key == "training":
            continue
        if value in (None, "", False, 0) and key not in ("tie_embeddings", "final_norm"):
            continue  # feature absent: keep the view short; JSON has every field
        fields.add_row(rich_text(key), rich_text(format_cell(key, value)))
    for key, value in record["derived"].items():
        if value not in (None, 0, False):
            fields.add_row(rich_text(key, style="dim"), rich_text(format_cell(key, value)))
    for key, value in config["training"].items():
        if value is not None:
            shown = format_cell(key if key != "tokens" else "training_tokens", value)
            fields.add_row(rich_text(f"training.{key}"), rich_text(shown))

    params = record["params"]
    total = params["total"]
    tree = Tree(f"[bold]parameters[/bold] {total:,} ({format_count(total)})")
    groups: dict[str, Any] = {}
    for group, part, value in iter_flat(params["breakdown"]):
        if group not in groups:
            group_total = params["groups"][group]
            groups[group] = tree.add(f"{group}  {group_total:,}  ({group_total / total:.1%})")
        groups[group].add(f"{part}  {value:,}")
    summary = Table(show_header=False, box=None, pad_edge=False)
    summary.add_column("what", style="bold")
    summary.add_column("count", justify="right")
    for key in ("embedding", "non_embedding", "lm_head", "active"):
        summary.add_row(key, f"{params[key]:,}")
    return Group(fields, "", tree, "", summary)
