"""`llmarch plan`: the fastest parallel configurations of a training workload, with step-time breakdowns."""

from enum import StrEnum
from typing import Annotated, Any

import typer

from llmarch.cli._app import (
    EXIT_USER_ERROR,
    CatalogOption,
    FormatOption,
    OutputFormat,
    OutputOption,
    RecomputeChoice,
    WorkloadOption,
    app,
    handle_errors,
    render,
)


class PlanDtype(StrEnum):
    bf16 = "bf16"
    fp16 = "fp16"
    fp8 = "fp8"


_COLUMNS = ("rank", "tp", "pp", "dp", "cp", "ep", "micro_batch", "virtual_stages", "recompute", "zero",
            "sequence_parallel", "grad_accum", "step_time", "tokens/s/GPU", "mfu", "mfu_palm", "memory/GPU",
            "fits")  # fmt: skip


def _rows(plans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plan records as table cells (seconds, fractions as percent, sizes with binary prefixes)."""
    from llmarch.report.format import format_bytes

    rows = []
    for rank, plan in enumerate(plans, start=1):
        row = {k: plan[k] for k in _COLUMNS if k in plan}
        row.update({
            "rank": rank, "step_time": f"{plan['step_time_s']:.3g} s",
            "tokens/s/GPU": f"{plan['tokens_per_s_per_gpu']:,.0f}", "mfu": f"{plan['mfu']:.1%}",
            "mfu_palm": f"{plan['mfu_palm']:.1%}", "memory/GPU": format_bytes(plan["memory_per_gpu_bytes"]),
        })  # fmt: skip
        rows.append(row)
    return rows


def _print_table(record: dict[str, Any], notes: list[str], fmt: OutputFormat, output: str | None) -> None:
    rows = _rows(record["plans"])
    title = (
        f"{record['name']} on {record['n_gpus']} x {record['gpu']}: global batch {record['global_batch']} x "
        f"{record['seq_len']} tokens, {record['dtype']}; {record['n_fitting']} of {record['n_candidates']} "
        "configurations fit; mfu = llmarch causal FLOPs, mfu_palm = 6N + 12LHQT"
    )
    if fmt is OutputFormat.csv:
        render(record["plans"], [], fmt=fmt, output=output, json_key="plans")
        return
    render(rows, list(_COLUMNS), fmt=fmt, output=output, json_key="plans", title=title)
    if fmt is OutputFormat.table and output is None and notes:
        best = record["plans"][0]["breakdown"]
        parts = ", ".join(f"{k.replace('_', ' ')} {v:.3g} s" for k, v in best.items() if v > 0)
        typer.echo(f"#1 step: {parts}")
        for line in notes:
            typer.echo(line)


@app.command(
    "plan",
    epilog=(
        "Examples: llmarch plan llama-3.1-405b --gpu h100-sxm --n-gpus 16384 --global-batch 2048 --seq-len 8192 · "
        "llmarch plan llama-2-70b --gpu a100-80gb --n-gpus 64 --global-batch 512 --tp 8 --zero 1 --format json"
    ),
)
@handle_errors
def plan_command(
    model: Annotated[
        str | None, typer.Argument(metavar="MODEL", help="A preset name, preset file, config.json or overrides.")
    ] = None,
    gpu: Annotated[str | None, typer.Option(help="GPU from 'llmarch gpus', e.g. h100-sxm (required).")] = None,
    n_gpus: Annotated[int | None, typer.Option(help="GPUs in all (= tp x cp x pp x dp; required).")] = None,
    global_batch: Annotated[int | None, typer.Option(help="Sequences per optimizer step (required).")] = None,
    seq_len: Annotated[
        int | None, typer.Option(help="Tokens per sequence; default: the preset's training length.")
    ] = None,
    tp: Annotated[int | None, typer.Option(help="Fix tensor parallelism (searched when absent).")] = None,
    pp: Annotated[int | None, typer.Option(help="Fix pipeline stages.")] = None,
    cp: Annotated[int | None, typer.Option(help="Fix context parallelism.")] = None,
    ep: Annotated[int | None, typer.Option(help="Fix expert parallelism (MoE).")] = None,
    virtual_stages: Annotated[int | None, typer.Option(help="Fix interleaved model chunks per stage.")] = None,
    micro_batch: Annotated[int | None, typer.Option(help="Fix sequences per micro-batch.")] = None,
    recompute: Annotated[RecomputeChoice | None, typer.Option(help="Fix activation recomputation.")] = None,
    zero: Annotated[int | None, typer.Option(help="Fix the ZeRO stage 0-3 (3 = FSDP).")] = None,
    sequence_parallel: Annotated[
        bool | None, typer.Option("--sequence-parallel/--no-sequence-parallel", help="Fix sequence parallelism.")
    ] = None,
    dtype: Annotated[PlanDtype, typer.Option(help="GEMM precision.")] = PlanDtype.bf16,
    gpus_per_node: Annotated[int | None, typer.Option(help="GPUs per NVLink node; default: the catalog's.")] = None,
    top: Annotated[int, typer.Option(help="How many plans to show.")] = 5,
    flash: Annotated[bool, typer.Option(help="FlashAttention (off: materialised S x S scores).")] = True,
    dropout: Annotated[bool, typer.Option(help="Training with dropout.")] = False,
    grad_dtype: Annotated[str, typer.Option(help="Gradient dtype: fp32 (Megatron main grads) or bf16.")] = "fp32",
    reserve_fraction: Annotated[float, typer.Option(help="Fraction of GPU memory kept free.")] = 0.1,
    plot: Annotated[
        str | None, typer.Option(metavar="FILE.png", help="Also draw the step-time breakdown of the top plans.")
    ] = None,
    workload: WorkloadOption = None,
    catalog: CatalogOption = None,
    fmt: FormatOption = OutputFormat.table,
    output: OutputOption = None,
) -> None:
    """Search tensor/pipeline/data/context/expert parallelism, micro-batch, interleaving, recomputation, ZeRO and
    sequence parallelism for the fastest configurations that fit; fixed knobs stay fixed. Each plan has its step
    time and breakdown, tokens/s per GPU, MFU (llmarch's causal and PaLM conventions), HFU and memory per GPU."""
    from llmarch.calc.plan import explain, plan_training
    from llmarch.catalog import presets
    from llmarch.report.format import format_bytes

    given = {"MODEL": model, "--gpu": gpu, "--n-gpus": n_gpus, "--global-batch": global_batch}
    missing = [name for name, value in given.items() if value is None]
    if missing:
        raise typer.BadParameter(f"pass {', '.join(missing)} (on the command line or in a --workload file)")
    config = presets.load_many([model])[0]  # type: ignore[list-item]
    result = plan_training(
        config, gpu=gpu, n_gpus=n_gpus, global_batch=global_batch, seq_len=seq_len, tp=tp, pp=pp, cp=cp, ep=ep,
        virtual_stages=virtual_stages, micro_batch=micro_batch,
        recompute=None if recompute is None else recompute.value,
        zero=zero, sequence_parallel=sequence_parallel, dtype=dtype.value, gpus_per_node=gpus_per_node, top=top,
        flash=flash, dropout=dropout, grad_dtype=grad_dtype, reserve_fraction=reserve_fraction,
    )  # fmt: skip
    record = result.to_record()
    if fmt is OutputFormat.json:
        from llmarch.report import tables as report

        extra = {k: v for k, v in record.items() if k != "plans"}
        report.emit(report.to_json(report.envelope("plans", record["plans"], plan=extra)), output)
    elif record["plans"]:
        _print_table(record, explain(result), fmt, output)
    if plot is not None and record["plans"]:
        from llmarch.report import plots

        plots.plot_plan_breakdown(record["plans"], plot, title=f"{record['name']} on {n_gpus} x {record['gpu']}")
    if result.closest is not None:
        c = result.closest
        usable = result.accelerator_memory_bytes * (1 - result.reserve_fraction)
        typer.echo(
            f"error: nothing fits {format_bytes(usable)} per GPU; the closest plan (tp {c.tp}, pp {c.pp}, dp {c.dp}, "
            f"cp {c.cp}, ep {c.ep}, zero {c.zero}, recompute {c.recompute}, micro_batch {c.micro_batch}) needs "
            f"{format_bytes(c.memory_per_gpu_bytes)}, {format_bytes(-c.headroom_bytes)} more; add GPUs or fix "
            "fewer knobs",
            err=True,
        )
        raise typer.Exit(EXIT_USER_ERROR)
