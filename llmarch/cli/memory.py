"""`llmarch memory`: inference, training and checkpoint memory per GPU, and whether it fits."""

from typing import Annotated, Any

import typer

from llmarch.cli._app import (
    AllPresetsOption,
    CatalogOption,
    FormatOption,
    OutputFormat,
    OutputOption,
    PresetsArgument,
    WorkloadOption,
    app,
    handle_errors,
    render,
    resolve_specs,
)
from llmarch.core.defaults import (
    DEFAULT_BATCH,
    DEFAULT_DTYPE,
    DEFAULT_GPU_MEMORY,
    DEFAULT_MEMORY_N_GPUS,
    DEFAULT_RESERVE_FRACTION,
)

#: Table columns: (header, section of the record, key in that section).
_TABLE_COLUMNS = (
    ("infer. weights", "inference", "weights_bytes"),
    ("KV cache", "inference", "kv_cache_bytes"),
    ("infer. workspace", "inference", "activation_bytes"),
    ("inference", "inference", "total_bytes"),
    ("weights", "training", "weights_bytes"),
    ("grads", "training", "gradients_bytes"),
    ("optimizer", "training", "optimizer_bytes"),
    ("activations", "training", "activations_bytes"),
    ("training", "training", "total_bytes"),
    ("checkpoint", "checkpoint", "total_bytes"),
)


def _table_rows(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Records as display rows (sizes with binary prefixes, fit as yes/no) and their column order."""
    from llmarch.report.format import format_bytes

    rows = []
    for record in records:
        row: dict[str, Any] = {"name": record["name"], "params_total": record["params_total"]}
        for header, section, key in _TABLE_COLUMNS:
            row[header] = format_bytes(record[section][key])
            if header in ("inference", "training"):
                fit = record[section]["fit"]
                row[f"{header} fits"] = None if fit is None else fit["fits"]
        rows.append(row)
    return rows, list(rows[0]) if rows else []


@app.command(
    "memory",
    epilog=(
        "Examples: llmarch memory llama-2-7b · "
        "llmarch memory llama-2-70b --n-gpus 64 --zero 3 --tp 8 --recompute selective --gpu h100-sxm"
    ),
)
@handle_errors
def memory_command(
    presets_: PresetsArgument = None,
    all_presets: AllPresetsOption = False,
    batch: Annotated[int, typer.Option(help="Inference: sequences decoded together.")] = DEFAULT_BATCH,
    seq_len: Annotated[
        int | None,
        typer.Option(
            help="Tokens per sequence (inference context and training length); default: the preset's training length."
        ),
    ] = None,
    dtype: Annotated[
        str, typer.Option(help="Inference weights: fp32, bf16, fp16, fp8, int8, w8a8, int4, mxfp4, nvfp4.")
    ] = DEFAULT_DTYPE,
    kv_dtype: Annotated[
        str | None, typer.Option(help="KV-cache dtype. Default: as deployed with --dtype (16-bit; fp8 for fp8).")
    ] = None,
    micro_batch: Annotated[int, typer.Option(help="Training: sequences per micro-batch on one GPU.")] = 1,
    n_gpus: Annotated[
        int, typer.Option(help="Training: GPUs in all (= data x tensor x pipeline parallel).")
    ] = DEFAULT_MEMORY_N_GPUS,
    zero: Annotated[
        int, typer.Option(help="ZeRO stage 0-3: shard optimizer states (1), + grads (2), + weights (3).")
    ] = 0,
    tp: Annotated[int, typer.Option(help="Tensor-parallel GPUs (training and inference).")] = 1,
    pp: Annotated[int, typer.Option(help="Pipeline-parallel stages (training, 1F1B schedule).")] = 1,
    sequence_parallel: Annotated[
        bool, typer.Option(help="Megatron sequence parallelism: split norm and dropout activations over tp.")
    ] = False,
    recompute: Annotated[str, typer.Option(help="Activation recomputation: none, selective or full.")] = "none",
    cp: Annotated[int, typer.Option(help="Context-parallel GPUs (training): split each sequence.")] = 1,
    ep: Annotated[int, typer.Option(help="Expert-parallel GPUs (training, MoE): split the experts.")] = 1,
    virtual_stages: Annotated[int, typer.Option(help="Interleaved pipeline: model chunks per stage.")] = 1,
    grad_dtype: Annotated[
        str, typer.Option(help="Gradient dtype: fp32 (Megatron-LM's main grads, default) or bf16 (FSDP/DeepSpeed).")
    ] = "fp32",
    flash: Annotated[bool, typer.Option(help="FlashAttention: no s x s attention matrices are stored.")] = True,
    dropout: Annotated[bool, typer.Option(help="Training with dropout (its masks are stored).")] = False,
    checkpoint_dtype: Annotated[str, typer.Option(help="Dtype the checkpoint saves the weights in.")] = DEFAULT_DTYPE,
    gpu: Annotated[
        str | None, typer.Option(help="GPU from 'llmarch gpus' whose memory to fit in, e.g. h100-sxm.")
    ] = None,
    gpu_memory: Annotated[
        str | None, typer.Option(help=f"Memory of one GPU, e.g. 80GiB or 141GB (default {DEFAULT_GPU_MEMORY}).")
    ] = None,
    reserve_fraction: Annotated[
        float, typer.Option(help="Fraction of GPU memory kept free (CUDA context, fragmentation) when fitting.")
    ] = DEFAULT_RESERVE_FRACTION,
    workload: WorkloadOption = None,
    catalog: CatalogOption = None,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
) -> None:
    """Memory per GPU: inference (weights, KV cache, workspace), training (weights, gradients, AdamW states,
    activations under ZeRO/tensor/pipeline parallelism and recomputation), checkpoint size, and whether
    each fits the GPU."""
    from llmarch.calc import training_memory as memory_plan
    from llmarch.catalog import presets
    from llmarch.core.errors import InvalidValueError
    from llmarch.core.units import parse_bytes
    from llmarch.report.format import format_bytes

    specs = resolve_specs(presets_, all_presets)
    if gpu is not None and gpu_memory is not None:
        raise InvalidValueError("give --gpu or --gpu-memory, not both")
    if gpu is not None:
        from llmarch.catalog.hardware import accelerator

        gpu_bytes = accelerator(gpu).memory_bytes
    else:
        gpu_bytes = parse_bytes(gpu_memory or DEFAULT_GPU_MEMORY, what="--gpu-memory")
    from llmarch.calc.quant import default_kv_dtype

    options = {
        "batch": batch, "dtype": dtype, "kv_dtype": kv_dtype or default_kv_dtype(dtype), "micro_batch": micro_batch,
        "n_gpus": n_gpus, "zero": zero, "tp": tp, "pp": pp, "cp": cp, "ep": ep, "virtual_stages": virtual_stages,
        "grad_dtype": grad_dtype, "sequence_parallel": sequence_parallel, "recompute": recompute, "flash": flash,
        "dropout": dropout, "checkpoint_dtype": checkpoint_dtype, "accelerator_memory_bytes": gpu_bytes,
        "reserve_fraction": reserve_fraction,
    }  # fmt: skip
    records = [
        memory_plan.memory_estimate(config, seq_len=seq_len, **options).to_record()
        for config in presets.load_many(specs)
    ]
    if fmt in (OutputFormat.json, OutputFormat.csv):
        render(records, [], fmt=fmt, output=output, json_key="memory")
        return
    rows, columns = _table_rows(records)
    length = "preset length" if seq_len is None else seq_len
    title = (
        f"memory per GPU ({gpu + ', ' if gpu else ''}{format_bytes(gpu_bytes)}, {reserve_fraction:.0%} reserved): "
        f"inference batch {batch} x {length} tokens in {dtype}; "
        f"training micro-batch {micro_batch} x {length}, {n_gpus} GPUs, ZeRO-{zero}, "
        f"tp {tp}, pp {pp}, recompute {recompute}, flash {'on' if flash else 'off'}"
    )
    render(rows, columns, fmt=fmt, output=output, json_key="memory", title=title)
