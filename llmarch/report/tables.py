"""Presentation: JSON/CSV/Markdown/terminal tables from plain records, and atomic file output.

Nothing here computes a model quantity; it only formats what the calculators return.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from llmarch.core.errors import InvalidValueError
from llmarch.core.io import write_atomic
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


def plain(value: Any, key: str = "") -> Any:
    """`value` with integral quantities as integers: a float that is whole becomes an int (131072.0 -> 131072),
    and a byte count (a key ending in `_bytes`) is rounded up to whole bytes (half a byte of int4 still takes
    one). Mappings and lists are converted recursively; everything else is returned as it is."""
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
    alias) is encoded once: the text equals json.dumps(document, indent=2), in about half the time."""
    if not isinstance(document, dict) or not document or not all(isinstance(k, str) for k in document):
        return json.dumps(document, indent=2, allow_nan=False) + "\n"
    encoded: dict[int, str] = {}
    members = []
    for key, value in document.items():
        if id(value) not in encoded:
            # One level deeper: every line after the first gains the two spaces of the enclosing object (a
            # newline inside a string is escaped, so every literal newline is a line break).
            encoded[id(value)] = json.dumps(value, indent=2, allow_nan=False).replace("\n", "\n  ")
        members.append(f"  {json.dumps(key)}: {encoded[id(value)]}")
    return "{\n" + ",\n".join(members) + "\n}\n"


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


def to_markdown(records: Sequence[dict[str, Any]], columns: Sequence[str], *, title: str | None = None) -> str:
    """A GitHub-flavoured Markdown table (suitable for a CI job summary)."""
    header = [LABELS.get(c, c) for c in columns]
    lines = [f"### {title}", ""] if title else []
    lines.append("| " + " | ".join(header) + " |")
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in records) for c in columns]
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    for record in records:
        cells = [format_cell(c, record.get(c)).replace("|", "\\|") for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(records: Sequence[dict[str, Any]]) -> str:
    """CSV of the full records: nested objects flattened to 'breakdown.attention.q' style columns (the union
    of every record's keys, in order of appearance), whole numbers without '.0', lists as JSON, none empty."""
    import csv
    import io

    rows = [_flatten(plain(record)) for record in records]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
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
    return str(value)


def rich_table(records: Sequence[dict[str, Any]], columns: Sequence[str], *, title: str | None = None) -> Any:
    from rich.table import Table

    table = Table(title=title, header_style="bold", show_lines=False)
    for col in columns:
        numeric = any(isinstance(r.get(col), (int, float)) and not isinstance(r.get(col), bool) for r in records)
        table.add_column(
            LABELS.get(col, col), justify="right" if numeric else "left", no_wrap=col == "name", overflow="fold"
        )
    for record in records:
        table.add_row(*(format_cell(c, record.get(c)) for c in columns))
    return table


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
    fields = Table(title=record["name"], show_header=False, box=None, pad_edge=False)
    fields.add_column("field", style="bold")
    fields.add_column("value", overflow="fold")
    for key, value in config.items():
        if key == "training":
            continue
        if value in (None, "", False, 0) and key not in ("tie_embeddings", "final_norm"):
            continue  # feature absent: keep the view short; JSON has every field
        fields.add_row(key, format_cell(key, value))
    for key, value in record["derived"].items():
        if value not in (None, 0, False):
            fields.add_row(f"[dim]{key}[/dim]", format_cell(key, value))
    for key, value in config["training"].items():
        if value is not None:
            fields.add_row(f"training.{key}", format_cell(key if key != "tokens" else "training_tokens", value))

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
