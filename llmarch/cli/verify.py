"""`llmarch verify`: the calculators against the reference PyTorch model (needs torch and fvcore)."""

from typing import Annotated

import typer

from llmarch.cli._app import (
    EXIT_USER_ERROR,
    FormatOption,
    OutputFormat,
    OutputOption,
    PresetsArgument,
    app,
    handle_errors,
    render,
    resolve_specs,
)


@app.command(
    "verify",
    epilog=("Examples: llmarch verify llama-2-7b mixtral-8x7b · llmarch verify --all --format json -o verify.json"),
)
@handle_errors
def verify_command(
    presets_: PresetsArgument = None,
    all_presets: Annotated[bool, typer.Option("--all", help="Verify every preset.")] = False,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
) -> None:
    """Check parameter counts, forward FLOPs and KV-cache bytes against the reference PyTorch model.

    Parameters: the full-size model built on the meta device, exactly.

    FLOPs: a scaled-down copy's CPU forward pass, counted by fvcore (x2) and torch's FlopCounterMode.

    KV cache: the bytes of the tensors the scaled-down model allocates while decoding past its window.

    Exits 1, with one line per failing preset on stderr, when any disagree.
    """
    from llmarch.catalog import presets
    from llmarch.reference.verify import COLUMNS, FLOPS_RTOL, SEQ_LEN, verify

    specs = resolve_specs(presets_, all_presets)
    configs = presets.load_many(specs)
    results = [verify(config) for config in configs]
    records = [r.record() for r in results]
    failed = [r for r in results if not r.ok]
    title = f"{len(results) - len(failed)} of {len(results)} agree (FLOPs at {SEQ_LEN} tokens, rtol {FLOPS_RTOL:g})"
    render(records, list(COLUMNS), fmt=fmt, output=output, json_key="results", title=title)
    if failed:
        for result in failed:
            typer.echo(f"error: {result.name}: {'; '.join(result.problems())}", err=True)
        raise typer.Exit(EXIT_USER_ERROR)
