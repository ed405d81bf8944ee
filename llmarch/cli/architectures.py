"""Commands about architectures: `llmarch presets`, `llmarch show`, `llmarch compare`."""

from typing import Annotated

import typer

from llmarch.cli._app import (
    FormatOption,
    OutputFormat,
    OutputOption,
    WorkloadOption,
    app,
    count_option,
    handle_errors,
    render,
    resolve_specs,
)
from llmarch.core.defaults import DEFAULT_BATCH, DEFAULT_DTYPE, DEFAULT_SEQ_LEN


@app.command(
    "presets",
    epilog=(
        "Examples: llmarch presets --family llama-2 · llmarch presets --year 2025 · "
        "llmarch presets --attention mqa --format json"
    ),
)
@handle_errors
def presets_command(
    family: Annotated[str | None, typer.Option(help="Only presets of this family (exact, e.g. 'llama-2').")] = None,
    attention: Annotated[str | None, typer.Option(help="Only this attention kind: mha, gqa, mqa or mla.")] = None,
    year: Annotated[int | None, typer.Option(help="Only presets released in this year (e.g. 2025).")] = None,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
) -> None:
    """List the presets: name, family, year, size and source."""
    from llmarch.calc.comparison import preset_rows

    rows = preset_rows(family=family, attention=attention, year=year)
    columns = ["name", "family", "year", "params_total", "attention", "position", "source"]
    render(rows, columns, fmt=fmt, output=output, json_key="presets", title=f"{len(rows)} presets")


@app.command(
    "show",
    epilog=(
        "Examples: llmarch show mixtral-8x7b · "
        "llmarch show llama-2-7b:n_kv_heads=8 --format json · "
        "llmarch show ./config.json"
    ),
)
@handle_errors
def show_command(
    preset: Annotated[str, typer.Argument(help="Preset name, preset file, config.json, or name:field=value,...")],
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
) -> None:
    """Show every field of one architecture and its parameter breakdown as a tree."""
    from llmarch.calc.comparison import show_record
    from llmarch.catalog import presets
    from llmarch.report import tables as report

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
        report.print_rich(renderable)


@app.command(
    "compare",
    epilog=(
        "Examples: llmarch compare llama-2-7b mistral-7b mixtral-8x7b · "
        "llmarch compare --all --format json -o all.json · "
        "llmarch compare llama-2-70b llama-2-70b:n_kv_heads=64 --columns inference --seq-len 32768 --plot kv.png"
    ),
)
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
            help="Table columns: a named set (default, training, params, inference) or a comma list of record "
            "keys (the model name is always first). JSON and CSV always carry every field."
        ),
    ] = "default",
    seq_len: Annotated[
        int,
        count_option(
            "--seq-len", minimum=1, length=True, help="Context length for flops_per_token and kv_cache_bytes (tokens)."
        ),
    ] = DEFAULT_SEQ_LEN,
    batch: Annotated[
        int, count_option("--batch", minimum=1, help="Sequences in the KV cache (kv_cache_bytes).")
    ] = DEFAULT_BATCH,
    dtype: Annotated[
        str, typer.Option(help="Storage dtype of weights and KV cache: fp32, bf16, fp8, int8, int4.")
    ] = DEFAULT_DTYPE,
    plot: Annotated[
        str | None,
        typer.Option(
            metavar="FILE.png", help="Also draw parameters by component and KV cache vs context (needs matplotlib)."
        ),
    ] = None,
    workload: WorkloadOption = None,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
) -> None:
    """Compare architectures side by side: parameters (exact, with breakdown), shapes, FLOPs, KV cache, training
    facts. Column sets: default, training (recipes as in the LLaMA paper's Table 2), params, inference."""
    from llmarch.calc import comparison
    from llmarch.catalog import presets
    from llmarch.report import tables as report

    specs = resolve_specs(presets_, all_presets)
    configs = presets.load_many(specs)
    records = comparison.compare_records(configs, seq_len=seq_len, batch=batch, dtype=dtype)
    named = comparison.COLUMN_SET_ALIASES.get(columns, columns)
    if named in comparison.COLUMN_SETS:
        cols = list(comparison.COLUMN_SETS[named])
    else:
        cols = report.select_columns(records, [c.strip() for c in columns.split(",") if c.strip()])
        cols = ["name", *(c for c in cols if c != "name")]  # a row says which model it is
    render(records, cols, fmt=fmt, output=output, json_key="models")
    if plot is not None:
        from llmarch.report import plots

        curves = [comparison.kv_cache_curve(c, batch=batch, dtype=dtype) for c in configs]
        plots.plot_compare(records, curves, plot, batch=batch, dtype=records[0]["dtype"])
