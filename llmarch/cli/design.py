"""`llmarch design`: a new architecture from a budget (scaling law, shapes, training and serving cost)."""

from enum import StrEnum
from typing import Annotated, Any

import typer

from llmarch.calc import design as D
from llmarch.cli._app import (
    CatalogOption,
    FormatOption,
    OutputFormat,
    OutputOption,
    app,
    handle_errors,
    render,
)
from llmarch.core.defaults import DEFAULT_DESIGN_GPU, DEFAULT_GENERATE_LEN, DEFAULT_MFU, DEFAULT_N_GPUS


def _join(values: tuple[float, ...], sep: str = ",") -> str:
    """A default tuple as the option's text: (64, 128) -> "64,128"; (2.5, 4.0) -> "2.5:4"."""
    return sep.join(f"{v:g}" for v in values)


class Law(StrEnum):
    chinchilla_1 = "chinchilla-1"
    chinchilla_3 = "chinchilla-3"
    besiroglu = "besiroglu"


def _ints(text: str | None, option: str) -> tuple[int, ...] | None:
    from llmarch.core.errors import InvalidValueError

    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise InvalidValueError(f"{option} must be comma-separated integers, got {text!r}") from None
    return values


def _range(text: str | None, option: str) -> tuple[float, float] | None:
    from llmarch.core.errors import InvalidValueError

    if text is None:
        return None
    low, sep, high = text.partition(":")
    try:
        return (float(low), float(high)) if sep else (float(low), float(low))
    except ValueError:
        raise InvalidValueError(f"{option} must be LOW:HIGH, e.g. 64:128, got {text!r}") from None


def _moe(text: str | None) -> tuple[int, int] | None:
    from llmarch.core.errors import InvalidValueError

    if text is None:
        return None
    experts, _, top_k = text.partition("/")
    try:
        return int(experts), int(top_k)
    except ValueError:
        raise InvalidValueError(f"--moe must be EXPERTS/TOP_K, e.g. 64/8, got {text!r}") from None


def _table_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cells for people (JSON and CSV keep the raw records)."""
    from llmarch.report.format import format_bytes, format_count

    def count(value: float | None, prefix: str = "") -> str | None:
        return None if value is None else prefix + format_count(value)

    rows = []
    for r in records:
        rows.append({
            "#": r["rank"],
            "params": format_count(r["params_total"]),
            "active": format_count(r["params_active"]),
            "tokens": format_count(r["tokens"]),
            "loss": f"{r['predicted_loss']:.4f}",
            "layers": r["n_layers"],
            "d_model": r["d_model"],
            "heads": r["n_heads"],
            "d_head": r["d_head"],
            "d_ff": r["d_ff"],
            "attention": r["attention"],
            "KV/token": format_bytes(r["kv_bytes_per_token"]),
            "train MFU": None if r["training_mfu"] is None
            else f"{r['training_mfu']:.2f}" + (" plan" if r["training_cost_model"] == "plan" else ""),
            "train GPU-h": count(r["training_gpu_hours"]),
            "days": None if r["training_days"] is None else f"{r['training_days']:.3g}",
            "train $": count(r["training_usd"], "$"),
            "serve TP": r["serving_tp"],
            "$/M tokens": None if r["serving_usd_per_million_tokens"] is None
            else f"{r['serving_usd_per_million_tokens']:.3g}",
            "total $": count(r["total_usd"], "$"),
        })  # fmt: skip
    return rows


def _summary(result: Any) -> dict[str, Any]:
    """The target: the law's compute-optimal allocation, and the inference-aware one when asked for."""
    import dataclasses

    out: dict[str, Any] = {
        "law": result.law,
        "budget": {"source": result.budget.source, **result.budget.details},
        "compute_flops": result.budget.compute_flops,
        "compute_optimal": dataclasses.asdict(result.compute_optimal),
        "inference_aware": None,
        "target_params": result.target_params,
        "target_tokens": result.target_tokens,
        "shapes_considered": result.n_considered,
        "shapes_evaluated": result.n_evaluated,
        "shapes_in_band": result.n_in_band,
        "ranked_by": result.ranked_by,
        "space": dataclasses.asdict(result.space),
    }
    if result.inference_aware is not None:
        aware = dataclasses.asdict(result.inference_aware)
        aware.pop("compute_optimal")
        out["inference_aware"] = aware
    return out


def _headline(summary: dict[str, Any]) -> str:
    from llmarch.report.format import format_count

    optimal = summary["compute_optimal"]
    text = (
        f"{summary['law']}: {summary['compute_flops']:.3g} FLOPs -> {format_count(optimal['params'])} parameters, "
        f"{format_count(optimal['tokens'])} tokens ({optimal['tokens_per_param']:.1f}/param), "
        f"predicted loss {optimal['predicted_loss']:.4f}"
    )
    aware = summary["inference_aware"]
    if aware is not None:
        text += (
            f"\nserving {format_count(aware['inference_tokens'])} tokens: {format_count(aware['params'])} parameters "
            f"({aware['params_ratio']:.0%} of compute-optimal), {format_count(aware['tokens'])} tokens "
            f"({aware['tokens_per_param']:.0f}/param), {aware['total_flops_saving']:.1%} fewer total FLOPs"
        )
    text += (
        f"\n{summary['shapes_considered']:,} shapes near the target, {summary['shapes_evaluated']:,} evaluated "
        f"(d_ff pruned to the band), {summary['shapes_in_band']:,} within it"
    )
    return text


# -- options of `design_command` (Typer reads the help texts from these annotations) --

_NGpusOption = Annotated[
    int | None, typer.Option(help=f"Training cluster size (wall-clock). Default {DEFAULT_N_GPUS}.")
]
_MfuOption = Annotated[
    float | None, typer.Option(help=f"Model FLOPs utilisation of training. Default {DEFAULT_MFU:g}.")
]
_GlobalBatchTokensOption = Annotated[
    str, typer.Option(help="Tokens per optimizer step for the training planner (with --n-gpus).")
]
_InferenceTokensOption = Annotated[
    str | None, typer.Option(help="Tokens served over the model's life (Sardana et al. 2024 sizing), e.g. 1e13.")
]
_ContextOption = Annotated[
    int,
    typer.Option(help="Target context: max_seq_len, KV budget and serving length."),
]
_MaxKvPerTokenOption = Annotated[str | None, typer.Option(help="KV-cache budget per token at --context, e.g. 64KiB.")]
_HeadsMultipleOption = Annotated[int, typer.Option(help="n_heads is a multiple of this (tensor parallelism).")]
_VocabMultipleOption = Annotated[int, typer.Option(help="Pad the vocabulary up to a multiple of this.")]
_OutputPresetOption = Annotated[
    str | None, typer.Option(help="Write the best design as a preset YAML file.", metavar="FILE")
]


@app.command(
    "design",
    epilog=(
        "Examples: llmarch design --compute 5.76e23 · "
        "llmarch design --gpu-hours 1e6 --gpu h100-sxm --inference-tokens 1e13 --top 3 · "
        "llmarch design --days 30 --gpu h100-sxm --n-gpus 1024 --max-kv-per-token 64KiB --context 32768 "
        "--output-preset my-model.yaml"
    ),
)
@handle_errors
def design_command(
    compute: Annotated[str | None, typer.Option(help="Training budget in FLOPs (6ND), e.g. 5.76e23.")] = None,
    gpu_hours: Annotated[float | None, typer.Option(help="Budget in GPU-hours of --gpu (at --mfu).")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="Budget in USD at --gpu's price per hour.")] = None,
    days: Annotated[float | None, typer.Option(help="Budget in days of --n-gpus x --gpu.")] = None,
    gpu: Annotated[str, typer.Option(help="Training accelerator (see 'llmarch gpus').")] = DEFAULT_DESIGN_GPU,
    n_gpus: _NGpusOption = None,
    mfu: _MfuOption = None,
    price_per_gpu_hour: Annotated[float | None, typer.Option(help="USD per training GPU-hour.")] = None,
    global_batch_tokens: _GlobalBatchTokensOption = f"{D.DEFAULT_GLOBAL_BATCH_TOKENS:g}",
    law: Annotated[Law, typer.Option(help="Scaling law for the compute-optimal size.")] = Law.chinchilla_1,
    inference_tokens: _InferenceTokensOption = None,
    context: _ContextOption = D.DEFAULT_CONTEXT,
    seq_len: Annotated[int, typer.Option(help="Training context (FLOPs per token).")] = D.DEFAULT_SEQ_LEN,
    max_kv_per_token: _MaxKvPerTokenOption = None,
    attention: Annotated[str, typer.Option(help="Attention kinds to try: gqa, mla, swa (comma-separated).")] = (
        "gqa,mla,swa"
    ),
    d_head: Annotated[str, typer.Option(help="Head widths to try (comma-separated).")] = _join(D.DEFAULT_D_HEADS),
    kv_heads: Annotated[str, typer.Option(help="GQA KV-head counts to try, besides MHA.")] = _join(D.DEFAULT_KV_HEADS),
    aspect_ratio: Annotated[str, typer.Option(help="d_model / n_layers range LOW:HIGH.")] = _join(
        D.DEFAULT_ASPECT_RATIO, ":"
    ),
    ff_ratio: Annotated[str, typer.Option(help="d_ff / d_model range LOW:HIGH (one expert's under MoE).")] = _join(
        D.DEFAULT_FF_RATIO, ":"
    ),
    d_model_multiple: Annotated[int, typer.Option(help="d_model is a multiple of this.")] = D.DEFAULT_D_MODEL_MULTIPLE,
    d_ff_multiple: Annotated[int, typer.Option(help="d_ff is a multiple of this.")] = D.DEFAULT_D_FF_MULTIPLE,
    heads_multiple: _HeadsMultipleOption = D.DEFAULT_HEADS_MULTIPLE,
    vocab_size: Annotated[int, typer.Option(help="Vocabulary before padding.")] = D.DEFAULT_VOCAB_SIZE,
    vocab_multiple: _VocabMultipleOption = D.DEFAULT_VOCAB_MULTIPLE,
    tie_embeddings: Annotated[bool, typer.Option(help="Share the embedding and output matrices.")] = False,
    window: Annotated[int, typer.Option(help="Sliding window of local layers (swa).")] = D.DEFAULT_SLIDING_WINDOW,
    global_every: Annotated[str, typer.Option(help="Every Nth layer global under swa (comma-separated).")] = _join(
        D.DEFAULT_GLOBAL_EVERY
    ),
    moe: Annotated[str | None, typer.Option(help="Mixture of experts EXPERTS/TOP_K, e.g. 64/8.")] = None,
    tolerance: Annotated[float, typer.Option(help="Size band around the target, a fraction.")] = D.DEFAULT_TOLERANCE,
    serve_gpu: Annotated[str | None, typer.Option(help="Serving accelerator. Default --gpu.")] = None,
    generate_len: Annotated[int, typer.Option(help="Generated tokens per served request.")] = DEFAULT_GENERATE_LEN,
    serve_price_per_gpu_hour: Annotated[float | None, typer.Option(help="USD per serving GPU-hour.")] = None,
    top: Annotated[int, typer.Option(help="Designs to show.")] = D.DEFAULT_TOP,
    name: Annotated[str | None, typer.Option(help="Design name. Default: the --output-preset file name.")] = None,
    output_preset: _OutputPresetOption = None,
    plot: Annotated[str | None, typer.Option(help="Pareto plot PNG: training vs serving cost.", metavar="FILE")] = None,
    catalog: CatalogOption = None,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
) -> None:
    """Design a new architecture from a compute budget: compute-optimal size and tokens, concrete shapes, their
    training and serving cost, ranked; optionally written as a preset."""
    from pathlib import Path

    from llmarch.calc.design import resolve_budget
    from llmarch.core.units import parse_count
    from llmarch.serving import design as pipeline

    budget = resolve_budget(
        compute_flops=None if compute is None else parse_count(compute, what="--compute"),
        gpu_hours=gpu_hours, budget_usd=budget_usd, days=days, gpu=gpu, n_gpus=n_gpus, mfu=mfu,
        usd_per_gpu_hour=price_per_gpu_hour,
    )  # fmt: skip
    space = _shape_space(
        d_head=d_head, kv_heads=kv_heads, attention=attention, aspect_ratio=aspect_ratio, ff_ratio=ff_ratio,
        d_model_multiple=d_model_multiple, d_ff_multiple=d_ff_multiple, heads_multiple=heads_multiple,
        vocab_size=vocab_size, vocab_multiple=vocab_multiple, tie_embeddings=tie_embeddings, window=window,
        global_every=global_every, moe=moe, context=context, seq_len=seq_len, tolerance=tolerance,
        max_kv_per_token=max_kv_per_token,
    )  # fmt: skip
    design_name = name or (Path(output_preset).stem if output_preset else "design")
    source = pipeline.design_source(budget, law=law.value, inference_tokens=inference_tokens)
    result = pipeline.design(
        budget,
        law=law.value,
        inference_tokens=0.0 if inference_tokens is None else parse_count(inference_tokens, what="--inference-tokens"),
        space=space,
        training=pipeline.TrainingOptions(
            gpu=gpu, n_gpus=n_gpus, mfu=mfu, usd_per_gpu_hour=price_per_gpu_hour,
            global_batch_tokens=parse_count(global_batch_tokens, what="--global-batch-tokens"),
        ),
        serving=pipeline.ServingOptions(gpu=serve_gpu, generate_len=generate_len,
                                        usd_per_gpu_hour=serve_price_per_gpu_hour),
        top=top,
        name=design_name,
        source=source,
    )  # fmt: skip
    _write_files(result, output_preset=output_preset, plot=plot, top=top)
    records = result.records()
    summary = _summary(result)
    if fmt in (OutputFormat.json, OutputFormat.csv):
        render(records, [], fmt=fmt, output=output, json_key="designs", extra=summary)
        return
    rows = _table_rows(records)
    title = _headline(summary)
    render(rows, list(rows[0]), fmt=fmt, output=output, json_key="designs", title=title)
    if output_preset is not None and fmt is OutputFormat.table:
        typer.echo(f"wrote {output_preset} (design #1, {records[0]['params_total']:,} parameters)", err=True)


def _shape_space(
    *,
    d_head: str,
    kv_heads: str,
    attention: str,
    aspect_ratio: str,
    ff_ratio: str,
    window: int,
    global_every: str,
    moe: str | None,
    max_kv_per_token: str | None,
    **conventions: Any,
) -> Any:
    """The ShapeSpace the options describe (lists and ranges parsed; the rest passed as they are)."""
    from llmarch.calc.design import ShapeSpace
    from llmarch.core.units import parse_bytes

    return ShapeSpace(
        d_heads=_ints(d_head, "--d-head") or (),
        kv_heads=_ints(kv_heads, "--kv-heads") or (),
        attention=tuple(a.strip() for a in attention.split(",") if a.strip()),
        aspect_ratio=_range(aspect_ratio, "--aspect-ratio") or (0.0, 0.0),
        ff_ratio=_range(ff_ratio, "--ff-ratio") or (0.0, 0.0),
        sliding_window=window, global_every=_ints(global_every, "--global-every") or (), moe=_moe(moe),
        max_kv_bytes_per_token=None if max_kv_per_token is None else parse_bytes(max_kv_per_token,
                                                                                 what="--max-kv-per-token"),
        **conventions,
    )  # fmt: skip


def _write_files(result: Any, *, output_preset: str | None, plot: str | None, top: int) -> None:
    """--output-preset (the best design as a preset file) and --plot (the Pareto front), atomically."""
    from pathlib import Path

    from llmarch.core.io import write_atomic
    from llmarch.serving import design as pipeline

    if output_preset is not None:
        text = pipeline.preset_yaml(result.designs[0], name=Path(output_preset).stem)
        write_atomic(output_preset, text, what="--output-preset")
    if plot is not None:
        from llmarch.report.design_plot import pareto_png

        write_atomic(plot, pareto_png(result.records(every=True), ranked_by=result.ranked_by, top=top), what="--plot")
