"""`llmarch report`: one Markdown or HTML document of the comparison, memory, serving, cost and benchmark."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmarch.cli._app import EXIT_THRESHOLD, app, handle_errors, resolve_specs
from llmarch.core import defaults
from llmarch.core.io import ensure_folder, read_json_file, write_atomic, writes_through

if TYPE_CHECKING:
    from llmarch.report.collect import ReportData


class ReportFormat(StrEnum):
    markdown = "markdown"
    html = "html"
    json = "json"


#: Output file extensions and the format each implies when --format is not given.
_EXTENSIONS = {".md": ReportFormat.markdown, ".markdown": ReportFormat.markdown, ".html": ReportFormat.html,
               ".htm": ReportFormat.html, ".json": ReportFormat.json}  # fmt: skip


@app.command(
    "report",
    epilog=(
        "Examples: llmarch report llama-2-7b mistral-7b mixtral-8x7b --gpu h100-sxm --n-gpus 8 -o report.md · "
        "llmarch report llama-3-8b --bench bench.json --max-cost 1e6 -o report.html · "
        "llmarch report llama-2-7b --no-images -o summary.md && cat summary.md >> $GITHUB_STEP_SUMMARY"
    ),
)
@handle_errors
def report_command(
    presets_: Annotated[
        list[str] | None,
        typer.Argument(metavar="PRESET...", help="Preset names, files or overrides (llama-2-70b:n_kv_heads=64)."),
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="FILE.md (plots written to FILE_assets/ beside it), FILE.html (self-contained) or FILE.json; "
            "written atomically.",
        ),
    ] = ...,  # type: ignore[assignment]
    all_presets: Annotated[bool, typer.Option("--all", help="Every preset.")] = False,
    bench: Annotated[
        str | None,
        typer.Option(metavar="BENCH.json", help="A 'llmarch bench --format json' file: its table and curves."),
    ] = None,
    gpu: Annotated[
        str, typer.Option(help="Accelerator from 'llmarch gpus' for memory, serving and cost.")
    ] = defaults.DEFAULT_REPORT_GPU,
    n_gpus: Annotated[
        int | None,
        typer.Option(help="GPUs in all: training (data parallel) and serving (replicas). Default --tp; cost 1."),
    ] = None,
    tp: Annotated[int, typer.Option(help="Tensor-parallel GPUs (must divide n_heads).")] = 1,
    tokens: Annotated[
        str | None,
        typer.Option(help="Training tokens (2T, 1.4e12) or 'chinchilla'. Default: each preset's published count."),
    ] = None,
    seq_len: Annotated[
        int | None,
        typer.Option(
            help=f"Context of the comparison and memory (default {defaults.DEFAULT_SEQ_LEN}); training cost: the "
            "preset's."
        ),
    ] = None,
    batch: Annotated[
        int | None,
        typer.Option(
            help=f"Sequences in the KV cache and served together. Default {defaults.DEFAULT_BATCH}; serving: the "
            "largest that fits."
        ),
    ] = None,
    dtype: Annotated[
        str, typer.Option(help="Weight (and KV-cache) dtype: fp32, bf16, fp16, fp8, int8, int4.")
    ] = defaults.DEFAULT_DTYPE,
    prompt_len: Annotated[int, typer.Option(help="Serving: prompt tokens per request.")] = defaults.DEFAULT_PROMPT_LEN,
    generate_len: Annotated[
        int, typer.Option(help="Serving: generated tokens per request.")
    ] = defaults.DEFAULT_GENERATE_LEN,
    flash: Annotated[bool, typer.Option(help="Fused attention (no seq x seq scores in memory).")] = True,
    zero: Annotated[int, typer.Option(help="Training memory: ZeRO stage 0-3.")] = 0,
    max_cost: Annotated[float | None, typer.Option(help="Training budget in USD: exit 3 when exceeded.")] = None,
    max_co2e: Annotated[float | None, typer.Option(help="Training budget in kg CO2e: exit 3 when exceeded.")] = None,
    max_days: Annotated[
        float | None, typer.Option(help="Training budget in wall-clock days: exit 3 when exceeded.")
    ] = None,
    no_images: Annotated[bool, typer.Option("--no-images", help="Leave the plots out (no matplotlib).")] = False,
    include_environment: Annotated[
        bool,
        typer.Option(
            "--include-environment",
            help="Add the Python, platform and package versions (the file then differs between machines).",
        ),
    ] = False,
    fmt: Annotated[
        ReportFormat | None, typer.Option("--format", "-f", help="Default: from the --output extension.")
    ] = None,
) -> None:
    """One document combining the comparison (parameters by component, shapes, FLOPs, KV cache), memory per GPU,
    serving estimates, training cost and carbon, and a benchmark (with --bench), with plots and the assumptions of
    each section. The same inputs give a byte-identical file. Budgets exit 3 after writing it."""
    from llmarch.catalog import presets
    from llmarch.report import document

    target, fmt = _target(output, fmt)
    configs = presets.load_many(resolve_specs(presets_, all_presets))
    bench_data = None
    if bench is not None:
        bench_data = document.read_bench(read_json_file(bench, what="--bench"), source=Path(bench).name)
    options = document.ReportOptions(
        gpu=gpu, n_gpus=n_gpus, tp=tp, tokens=tokens, seq_len=seq_len, batch=batch, dtype=dtype,
        prompt_len=prompt_len, generate_len=generate_len, flash=flash, zero=zero,
        max_cost_usd=max_cost, max_co2e_kg=max_co2e, max_days=max_days,
    )  # fmt: skip
    environment = document.environment_record() if include_environment else None
    data = document.collect(configs, options, bench=bench_data, environment=environment)
    _write(data, target, fmt, images=not no_images)
    for line in document.budget_messages(data.budgets_exceeded):
        typer.echo(line, err=True)
    if data.budgets_exceeded:
        raise typer.Exit(EXIT_THRESHOLD)


def _target(output: str, fmt: ReportFormat | None) -> tuple[Path, ReportFormat]:
    """The output file and its format (given, or from the file's extension); its folder must exist."""
    from llmarch.core.errors import InvalidValueError

    target = Path(output)
    if fmt is None:
        fmt = _EXTENSIONS.get(target.suffix.lower())
        if fmt is None:
            raise InvalidValueError(f"--output {output!r}: name it .md, .html or .json, or pass --format")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidValueError(f"--output: folder {str(folder)!r} does not exist")
    return target, fmt


def _write(data: ReportData, target: Path, fmt: ReportFormat, *, images: bool) -> None:
    """Write the report atomically: JSON; one HTML file with its images inline; or Markdown with its images as
    PNG files in FILE_assets/ beside it."""
    from llmarch.report import document
    from llmarch.report import tables as report

    if fmt is ReportFormat.json:
        write_atomic(target, report.to_json(report.envelope("report", data.to_record())))
        return
    blocks = document.build(data)
    pngs = document.figures(data) if images else {}
    if fmt is ReportFormat.html:
        write_atomic(target, document.render_html(blocks, images=pngs))
        return
    folder = target.parent if str(target.parent) else Path(".")
    assets = f"{target.stem}_assets"
    paths = {}
    if pngs and not writes_through(target):  # -o /dev/stdout: no folder beside it for the images
        ensure_folder(folder / assets, what="--output assets")
        for name, png in pngs.items():
            write_atomic(folder / assets / f"{name}.png", png)
            paths[name] = f"{assets}/{name}.png"
    write_atomic(target, document.render_markdown(blocks, images=paths))
