"""`llmarch report`: one Markdown or HTML document of the comparison, memory, serving, cost and benchmark."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmarch.cli._app import (
    EXIT_THRESHOLD,
    AllPresetsOption,
    CatalogOption,
    GpuBandwidthOverride,
    GpuMemoryOverride,
    GpuPeakOverride,
    PresetOverridesArgument,
    WorkloadOption,
    amount_option,
    app,
    count_option,
    handle_errors,
    resolve_specs,
)
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


# Settings of one side of the report (training or serving); the shared options apply to both.
_TrainGpus = Annotated[int | None, count_option("--train-n-gpus", minimum=1, help="Training GPUs in all (data x "
                       "tensor x pipeline). Default --n-gpus (cost: 1).")]  # fmt: skip
_ServeGpus = Annotated[int | None, count_option("--serve-n-gpus", minimum=1, help="Serving GPUs in all (replicas "
                       "x --serve-tp). Default --n-gpus.")]  # fmt: skip
_ServeTp = Annotated[int | None, count_option("--serve-tp", minimum=1, help="Serving tensor-parallel GPUs. "
                     "Default --tp.")]  # fmt: skip
_Pp = Annotated[int | None, count_option("--pp", minimum=1, help="Training pipeline stages.")]
_MicroBatch = Annotated[int | None, count_option("--micro-batch", minimum=1, help="Training sequences per "
                        "micro-batch.")]  # fmt: skip
_Recompute = Annotated[str | None, typer.Option(help="Training activation recomputation: none, selective, full.")]
_Mfu = Annotated[float | None, typer.Option(help="Training model FLOPs utilisation, a fraction in (0, 1].")]
_Region = Annotated[str | None, typer.Option(help="Training grid region (see 'llmarch regions').")]
_Intensity = Annotated[float | None, typer.Option(help="Training grid intensity, kg CO2e per kWh.")]
_Pue = Annotated[float | None, typer.Option(help="Data-centre power usage effectiveness.")]
_Price = Annotated[float | None, amount_option("--price-per-gpu-hour", help="USD per GPU-hour (training and "
                   "serving).")]  # fmt: skip
_PowerW = Annotated[float | None, typer.Option(help="Training power per GPU in W.")]

#: Report options that belong to one side: option name -> (side, keyword of that side's calculators).
_SIDE_OPTIONS = {"train_n_gpus": ("training", "n_gpus"), "pp": ("training", "pp"),
                 "micro_batch": ("training", "micro_batch"), "recompute": ("training", "recompute"),
                 "mfu": ("training", "mfu"), "region": ("training", "region"),
                 "grid_intensity": ("training", "grid_intensity"), "pue": ("training", "pue"),
                 "power_w": ("training", "power_w"), "serve_n_gpus": ("serving", "n_gpus"),
                 "serve_tp": ("serving", "tp")}  # fmt: skip
#: Keys of a workload's `serving:` section that estimate_inference takes (besides the report's own options).
_SERVING_KEYS = ("n_gpus", "tp", "pp", "kv_dtype", "compute_dtype", "beam_width", "prefill_chunk",
                 "flop_efficiency", "bandwidth_efficiency", "reserve_fraction")  # fmt: skip
_TRAINING_KEYS = ("n_gpus", "tp", "pp", "zero", "micro_batch", "recompute", "sequence_parallel", "dropout",
                  "tokens", "seq_len", "mfu", "dtype", "flops_method", "price_per_gpu_hour", "power_w", "pue",
                  "region", "grid_intensity", "node_overhead_w")  # fmt: skip


def _sides(workload: str | None, given: dict[str, object]) -> dict[str, dict[str, object]]:
    """Training and serving settings: the workload's `training:` / `serving:` sections, then the side options
    given here (which win); the price applies to both sides."""
    from llmarch.catalog.workload import read_workload

    sides: dict[str, dict[str, object]] = {"training": {}, "serving": {}}
    if workload:
        w = read_workload(workload)
        sides["training"] = {k: v for k, v in w.sections.get("training", {}).items() if k in _TRAINING_KEYS}
        sides["serving"] = {k: v for k, v in w.sections.get("serving", {}).items() if k in _SERVING_KEYS}
    for name, (side, key) in _SIDE_OPTIONS.items():
        if given.get(name) is not None:
            sides[side][key] = given[name]
    price = given.get("price_per_gpu_hour")
    if price is not None:
        sides["training"]["price_per_gpu_hour"] = price
        sides["serving"]["usd_per_gpu_hour"] = price
    return sides


def _serving_lengths(workload: str | None, prompt_len: int, generate_len: int) -> tuple[int, int]:
    """Prompt and generated lengths: a workload's `serving:` section over its top level, unless given here."""
    from llmarch.catalog.workload import read_workload
    from llmarch.cli._app import _click_context, _given_on_command_line

    if not workload:
        return prompt_len, generate_len
    serving, ctx = read_workload(workload).sections.get("serving", {}), _click_context()
    if "prompt_len" in serving and not _given_on_command_line(ctx, "prompt_len"):
        prompt_len = serving["prompt_len"]
    if "generate_len" in serving and not _given_on_command_line(ctx, "generate_len"):
        generate_len = serving["generate_len"]
    return prompt_len, generate_len


# -- options of `report_command` (Typer reads the help texts from these annotations) --

_OutputOption = Annotated[
    str,
    typer.Option(
        "--output",
        "-o",
        metavar="FILE",
        help="FILE.md (plots written to FILE_assets/ beside it), FILE.html (self-contained) or FILE.json; "
        "written atomically.",
    ),
]
_BenchOption = Annotated[
    str | None,
    typer.Option(metavar="BENCH.json", help="A 'llmarch bench --format json' file: its table and curves."),
]
_GpuOption = Annotated[str, typer.Option(help="Accelerator from 'llmarch gpus' for memory, serving and cost.")]
_NGpusOption = Annotated[
    int | None,
    typer.Option(help="GPUs in all, both sides unless --train-n-gpus / --serve-n-gpus. Default --tp; cost 1."),
]
_TokensOption = Annotated[
    str | None,
    typer.Option(help="Training tokens (2T, 1.4e12) or 'chinchilla'. Default: each preset's published count."),
]
_SeqLenOption = Annotated[
    int | None,
    typer.Option(
        help=f"Context of the comparison and memory (default {defaults.DEFAULT_SEQ_LEN}); training cost: the preset's."
    ),
]
_BatchOption = Annotated[
    int | None,
    typer.Option(
        help=f"Sequences in the KV cache and served together. Default {defaults.DEFAULT_BATCH}; serving: the "
        "largest that fits."
    ),
]
_DtypeOption = Annotated[str, typer.Option(help="Weight (and KV-cache) dtype: fp32, bf16, fp16, fp8, int8, int4.")]
_GenerateLenOption = Annotated[int, typer.Option(help="Serving: generated tokens per request.")]
_MaxDaysOption = Annotated[float | None, typer.Option(help="Training budget in wall-clock days: exit 3 when exceeded.")]
_IncludeEnvironmentOption = Annotated[
    bool,
    typer.Option(
        "--include-environment",
        help="Add the Python, platform and package versions (the file then differs between machines).",
    ),
]
_FmtOption = Annotated[
    ReportFormat | None, typer.Option("--format", "-f", help="Default: from the --output extension.")
]


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
    presets_: PresetOverridesArgument = None,
    output: _OutputOption = ...,  # type: ignore[assignment]
    all_presets: AllPresetsOption = False,
    bench: _BenchOption = None,
    gpu: _GpuOption = defaults.DEFAULT_REPORT_GPU,
    n_gpus: _NGpusOption = None,
    tp: Annotated[int, typer.Option(help="Tensor-parallel GPUs (must divide n_heads).")] = 1,
    tokens: _TokensOption = None,
    seq_len: _SeqLenOption = None,
    batch: _BatchOption = None,
    dtype: _DtypeOption = defaults.DEFAULT_DTYPE,
    prompt_len: Annotated[int, typer.Option(help="Serving: prompt tokens per request.")] = defaults.DEFAULT_PROMPT_LEN,
    generate_len: _GenerateLenOption = defaults.DEFAULT_GENERATE_LEN,
    flash: Annotated[bool, typer.Option(help="Fused attention (no seq x seq scores in memory).")] = True,
    zero: Annotated[int, typer.Option(help="Training memory: ZeRO stage 0-3.")] = 0,
    max_cost: Annotated[float | None, typer.Option(help="Training budget in USD: exit 3 when exceeded.")] = None,
    max_co2e: Annotated[float | None, typer.Option(help="Training budget in kg CO2e: exit 3 when exceeded.")] = None,
    max_days: _MaxDaysOption = None,
    no_images: Annotated[bool, typer.Option("--no-images", help="Leave the plots out (no matplotlib).")] = False,
    include_environment: _IncludeEnvironmentOption = False,
    train_n_gpus: _TrainGpus = None,
    pp: _Pp = None,
    micro_batch: _MicroBatch = None,
    recompute: _Recompute = None,
    mfu: _Mfu = None,
    region: _Region = None,
    grid_intensity: _Intensity = None,
    pue: _Pue = None,
    power_w: _PowerW = None,
    price_per_gpu_hour: _Price = None,
    serve_n_gpus: _ServeGpus = None,
    serve_tp: _ServeTp = None,
    workload: WorkloadOption = None,
    catalog: CatalogOption = None,
    gpu_memory: GpuMemoryOverride = None,
    gpu_bandwidth: GpuBandwidthOverride = None,
    gpu_peak: GpuPeakOverride = None,
    fmt: _FmtOption = None,
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
    prompt_len, generate_len = _serving_lengths(workload, prompt_len, generate_len)
    options = document.ReportOptions(
        gpu=gpu, n_gpus=n_gpus, tp=tp, tokens=tokens, seq_len=seq_len, batch=batch, dtype=dtype,
        prompt_len=prompt_len, generate_len=generate_len, flash=flash, zero=zero,
        max_cost_usd=max_cost, max_co2e_kg=max_co2e, max_days=max_days,
        **_sides(workload, {name: value for name, value in locals().items() if name in _SIDE_OPTIONS
                            or name == "price_per_gpu_hour"}),
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
