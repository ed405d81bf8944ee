"""`llmarch schema`: the fields a preset file may set, with their type, default and meaning."""

from typing import Annotated

import typer

from llmarch.cli._app import FormatOption, OutputFormat, OutputOption, app, handle_errors, render


@app.command(
    "schema",
    epilog="Examples: llmarch schema · llmarch schema --section training · llmarch schema --format json",
)
@handle_errors
def schema_command(
    section: Annotated[
        str | None, typer.Option(help="Only fields whose name or section contains this, e.g. training, experts.")
    ] = None,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
) -> None:
    """List the fields of a preset file (and of name:field=value overrides): type, default and meaning.
    Required fields have no default; optional ones default to the feature being absent."""
    from llmarch.core.errors import InvalidValueError
    from llmarch.core.fields import preset_fields

    rows = [dict(r) for r in preset_fields()]
    if section is not None:
        needle = section.strip().lower()
        rows = [r for r in rows if needle in r["field"].lower() or needle in r["section"].lower()]
        if not rows:
            raise InvalidValueError(f"--section {section!r} matches no field; run 'llmarch schema' for all of them")
    if fmt in (OutputFormat.json, OutputFormat.csv):
        render(rows, [], fmt=fmt, output=output, json_key="fields")
        return
    for row in rows:
        row["default"] = "(required)" if row["required"] else row["default"]
    columns = ["field", "type", "default", "meaning"]
    render(rows, columns, fmt=fmt, output=output, json_key="fields", title=f"{len(rows)} preset fields")
