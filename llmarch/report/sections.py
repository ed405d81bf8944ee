"""The report's sections: ReportData -> a list of blocks (title, summary, architectures, memory, serving, training
cost, benchmark), each section with the assumptions behind its numbers; and the report's figures as PNG bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llmarch.core.errors import InvalidValueError
from llmarch.report.blocks import FIGURES, Block, Bullets, Details, Figure, Heading, Link, Paragraph, Table, table
from llmarch.report.collect import BenchData, ReportData
from llmarch.report.format import (
    assumption_rows,
    format_bytes,
    format_co2e,
    format_count,
    format_exact,
    format_flops,
    format_kwh,
    format_rate,
    format_seconds,
    format_share,
    format_usd,
    format_value,
    format_yes,
)


def _assumptions(named: Sequence[tuple[str, Mapping[str, Any]]], *, skip: Sequence[str] = ()) -> Table:
    """Assumptions as (assumption, value) rows; a value that differs between models is listed per model."""
    return table(("assumption", "value"), assumption_rows(named, skip=skip))


def _defaults_line(named: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    used = list(dict.fromkeys(d for _, a in named for d in a.get("defaults") or ()))
    return "Defaults used (not given): " + (", ".join(used) if used else "none") + "."


def _title(data: ReportData) -> list[Block]:
    o = data.options
    names = [m["name"] for m in data.models]
    n_gpus = o.tp if o.n_gpus is None else o.n_gpus
    setup = (
        f"{data.gpu['display_name']} ({data.gpu['name']}, {format_bytes(data.gpu['memory_bytes'])}), "
        f"{n_gpus} GPU{'s' if n_gpus > 1 else ''}, tensor parallel {o.tp}; weights in {data.models[0]['dtype']}; "
        f"context {data.seq_len} tokens, batch {data.batch} for the comparison and memory; serving "
        f"{o.prompt_len} prompt + {o.generate_len} generated tokens"
        + (f" at batch {o.batch}" if o.batch is not None else " at the largest batch that fits")
        + "."
    )
    return [Heading(1, "llmarch report: " + ", ".join(names)), Paragraph(setup)]


def _summary(data: ReportData) -> list[Block]:
    rows = []
    for model, mem, serve, train in zip(data.models, data.memory, data.serving, data.training, strict=True):
        training_fit = mem["training"]["fit"]
        rows.append(
            (
                model["name"],
                format_count(model["params_total"]),
                format_count(model["params_active"]),
                format_bytes(model["kv_cache_bytes_per_token"]),
                format_yes(serve["fits"]),
                str(serve["max_batch"]),
                format_seconds(serve["tpot_s"]),
                None if serve["tokens_per_s"] is None else format_count(serve["tokens_per_s"]),
                format_usd(serve["usd_per_million_tokens"]),
                format_yes(None if training_fit is None else training_fit["fits"]),
                None if train is None else format_usd(train["cost_usd"]),
                None if train is None else format_count(train["wall_clock_days"]),
                None if train is None else format_co2e(train["co2e_kg"]),
            )
        )
    headers = ("model", "params", "active", "KV/token", "serving fits", "max batch", "TPOT", "tok/s",
               "$/M tok", "training fits", "training cost", "days", "CO2e")  # fmt: skip
    return [
        Heading(2, "Summary"),
        table(headers, rows, (False, True, True, True, False, True, True, True, True, False, True, True, True)),
        Paragraph(
            "Serving: per GPU of a replica, on the section's workload; tok/s and $/M tok for all GPUs. "
            "Training: memory per GPU at the memory section's workload; cost, days and CO2e of the whole run."
        ),
    ]


def _parameter_tables(records: Sequence[Mapping[str, Any]]) -> tuple[Table, Table]:
    """Parameters by group (exact, with the share of each model's total) and by component (exact)."""
    # Groups no model has (cross-attention in a decoder-only comparison) are left out of the table.
    groups = [
        g for g in dict.fromkeys(g for r in records for g in r["groups"]) if any(r["groups"].get(g) for r in records)
    ]
    group_rows = []
    for r in records:
        total = r["params_total"]
        cells = [
            f"{format_exact(r['groups'].get(g, 0))} ({format_share(r['groups'].get(g, 0) / total)})" for g in groups
        ]
        group_rows.append((r["name"], *cells, format_exact(total), format_exact(r["params_active"])))
    by_group = table(("model", *groups, "total", "active"), group_rows, (False,) + (True,) * (len(groups) + 2))
    leaves = list(dict.fromkeys(k for r in records for k in r["breakdown"]))
    breakdown = table(
        ("component", *(r["name"] for r in records)),
        [(leaf, *(format_exact(r["breakdown"].get(leaf, 0)) for r in records)) for leaf in leaves],
        (False,) + (True,) * len(records),
    )
    return by_group, breakdown


def _comparison(data: ReportData) -> list[Block]:
    from llmarch.calc.comparison import COLUMN_SETS
    from llmarch.report.format import format_cell
    from llmarch.report.tables import LABELS

    records = data.models
    shape_cols = COLUMN_SETS["default"]
    shapes = table(
        [LABELS.get(c, c) for c in shape_cols],
        [[format_cell(c, r.get(c)) for c in shape_cols] for r in records],
        [all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool) for r in records)
         for c in shape_cols],
    )  # fmt: skip
    dtype = records[0]["dtype"]
    per_token = table(
        ("model", "FLOPs/token", "KV/token", f"KV cache ({data.batch} x {data.seq_len})", f"weights ({dtype})"),
        [
            (
                r["name"],
                format_cell("flops_per_token", r["flops_per_token"]),
                format_bytes(r["kv_cache_bytes_per_token"]),
                format_bytes(r["kv_cache_bytes"]),
                format_bytes(r["weights_bytes"]),
            )
            for r in records
        ],
        (False, True, True, True, True),
    )
    by_group, breakdown = _parameter_tables(records)
    sources = table(
        ("model", "source"),
        [
            (r["name"], Link(s, s) if s.startswith("https://") and not any(ch.isspace() for ch in s) else s)
            for r, s in zip(records, data.sources, strict=True)
        ],
    )
    assumptions = Bullets(
        (
            "Parameters are exact counts of every weight tensor (llmarch.calc.params.count_params); 'active' counts "
            "what one token uses: for mixture-of-experts models the routed experts it is sent to plus the "
            "shared ones, for dense models the total.",
            f"FLOPs/token: the causal forward pass at a context of {data.seq_len} tokens, 2 FLOPs per "
            "multiply-add, weight matmuls plus the attention term plus the LM head (llmarch.calc.flops); training "
            "is about 3x that.",
            f"KV cache: keys and values of every layer for {data.batch} sequence(s) of {data.seq_len} tokens in "
            f"{dtype}; a sliding window caps it at the window, MLA caches the latent (llmarch.calc.memory).",
            f"Weights: parameters x bytes per parameter in {dtype}.",
        )
    )
    return [
        Heading(2, "Architectures"),
        shapes,
        Heading(3, f"Per token at {data.seq_len} tokens ({dtype})"),
        per_token,
        Heading(3, "Parameters by component"),
        by_group,
        Figure("params", FIGURES["params"]),
        Details("Per-component breakdown (exact counts)", (breakdown,)),
        Heading(3, "KV cache vs context"),
        Figure("kv_cache", f"{FIGURES['kv_cache']} (batch {data.batch}, {dtype}), up to each model's context"),
        Details("Assumptions: comparison", (assumptions, sources)),
    ]


def _memory(data: ReportData) -> list[Block]:
    rows = []
    for r in data.memory:
        inf, trn = r["inference"], r["training"]
        rows.append(
            (
                r["name"],
                format_bytes(inf["weights_bytes"]),
                format_bytes(inf["kv_cache_bytes"]),
                format_bytes(inf["activation_bytes"]),
                format_bytes(inf["total_bytes"]),
                format_yes(None if inf["fit"] is None else inf["fit"]["fits"]),
                format_bytes(trn["weights_bytes"] + trn["gradients_bytes"] + trn["optimizer_bytes"]),
                format_bytes(trn["activations_bytes"]),
                format_bytes(trn["total_bytes"]),
                format_yes(None if trn["fit"] is None else trn["fit"]["fits"]),
                format_bytes(r["checkpoint"]["total_bytes"]),
            )
        )
    headers = ("model", "inference weights", "KV cache", "workspace", "inference", "fits", "training states",
               "activations", "training", "fits", "checkpoint")  # fmt: skip
    first = data.memory[0]["assumptions"]
    usable = data.gpu["memory_bytes"] * (1 - first["reserve_fraction"])
    intro = Paragraph(
        f"Bytes per GPU on {data.gpu['name']} ({format_bytes(data.gpu['memory_bytes'])}, "
        f"{format_bytes(usable)} usable after a {first['reserve_fraction']:.0%} reserve). Inference: batch "
        f"{first['batch']} x {first['seq_len']} tokens. Training: micro-batch {first['micro_batch']} x "
        f"{first['seq_len']} tokens on {first['n_gpus']} GPUs (dp {first['dp']}, tp {first['tp']}, pp "
        f"{first['pp']}, ZeRO-{first['zero']}); training states are 16-bit weights and gradients plus fp32 AdamW "
        "state. Checkpoint: on disk, with the optimizer state."
    )
    named = [(r["name"], r["assumptions"]) for r in data.memory]
    return [
        Heading(2, "Memory per GPU"),
        intro,
        table(headers, rows, (False, True, True, True, True, False, True, True, True, False, True)),
        Details("Assumptions: memory", (_assumptions(named),)),
    ]


def _serving(data: ReportData) -> list[Block]:
    rows = []
    for r in data.serving:
        max_context = r["max_context_len"]
        rows.append(
            (
                r["name"],
                format_yes(r["fits"]),
                str(r["batch"]),
                str(r["max_batch"]),
                "unbounded" if max_context is None else format_count(max_context),
                format_bytes(r["total_bytes"]),
                format_seconds(r["ttft_s"]),
                format_seconds(r["tpot_s"]),
                None if r["tokens_per_s_per_gpu"] is None else format_count(r["tokens_per_s_per_gpu"]),
                None if r["tokens_per_s"] is None else format_count(r["tokens_per_s"]),
                format_usd(r["usd_per_million_tokens"]),
                r["bound"],
            )
        )
    headers = ("model", "fits", "batch", "max batch", "max context", "per GPU", "TTFT", "TPOT", "tok/s/GPU",
               "tok/s", "$/M tok", "bound")  # fmt: skip
    first = data.serving[0]
    intro = Paragraph(
        f"{first['n_gpus']} x {data.gpu['name']} as {first['replicas']} replica(s) of tensor parallel {first['tp']}; "
        f"{first['dtype']} weights, {first['kv_dtype']} KV cache; requests of {first['prompt_len']} prompt + "
        f"{first['generate_len']} generated tokens, served with {first['batching']} batching at the load shown "
        "(requests in flight per replica). TTFT and TPOT: per request at that load; tok/s: output tokens of all "
        "GPUs; $/M tok: per million output tokens at the GPU-hour price (prefill time included)."
    )
    blocks: list[Block] = [
        Heading(2, f"Serving on {data.gpu['name']}"),
        intro,
        table(headers, rows, (False, False, True, True, True, True, True, True, True, True, True, False)),
    ]
    if data.serving_notes:
        blocks.append(Bullets(tuple(data.serving_notes)))
    named = [(r["name"], r["assumptions"]) for r in data.serving]
    blocks.append(
        Details("Assumptions: serving", (_assumptions(named, skip=("defaults",)), Paragraph(_defaults_line(named))))
    )
    return blocks


def _training(data: ReportData) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Training cost")]
    estimated = [r for r in data.training if r is not None]
    if estimated:
        rows = [
            (
                r["name"],
                format_count(r["assumptions"]["tokens"]),
                format_flops(r["training_flops"]),
                format_count(r["gpu_hours"]),
                format_count(r["wall_clock_days"]),
                format_usd(r["cost_usd"]),
                format_kwh(r["energy_kwh"]),
                format_co2e(r["co2e_kg"]),
            )
            for r in estimated
        ]
        first = estimated[0]["assumptions"]
        blocks += [
            Paragraph(
                f"Training on {first['n_gpus']} x {data.gpu['name']} at MFU {first['mfu']:g} of the dense "
                f"{first['dtype']} peak; energy at the GPU's power x PUE {first['pue']:g}, CO2e at "
                f"{first['grid_kg_co2e_per_kwh']:g} kg/kWh. Days assume perfect scaling."
            ),
            table(
                ("model", "tokens", "FLOPs", "GPU-hours", "days", "cost", "energy", "CO2e"),
                rows,
                (False, True, True, True, True, True, True, True),
            ),
        ]
    else:
        blocks.append(Paragraph("No training estimate: no preset has published training tokens; pass --tokens."))
    if data.training_notes:
        blocks.append(Bullets(tuple(data.training_notes)))
    budgets = data.options.budgets
    if budgets:
        over = {(e["name"], e["option"]) for e in data.budgets_exceeded}
        attribute = {"--max-cost": "cost_usd", "--max-co2e": "co2e_kg", "--max-days": "wall_clock_days"}
        shown = {"--max-cost": format_usd, "--max-co2e": lambda v: f"{format_count(v)} kg", "--max-days": format_count}
        budget_rows = [
            (
                option,
                shown[option](limit),
                r["name"],
                shown[option](r[attribute[option]]),
                "exceeded" if (r["name"], option) in over else "ok",
            )
            for option, limit in budgets.items()
            for r in estimated
        ]
        budget_table = table(
            ("budget", "limit", "model", "estimate", "status"), budget_rows, (False, True, False, True, False)
        )
        blocks += [Heading(3, "Budgets"), budget_table]
    if estimated:
        named = [(r["name"], r["assumptions"]) for r in estimated]
        blocks.append(
            Details(
                "Assumptions: training cost",
                (_assumptions(named, skip=("defaults",)), Paragraph(_defaults_line(named))),
            )
        )
    return blocks


def _bench(bench: BenchData) -> list[Block]:
    rows = []
    for r in bench.rows:
        heads = "/".join("?" if r[k] is None else str(r[k]) for k in ("n_heads", "n_kv_heads", "d_head"))
        rows.append(
            (
                r["variant"],
                r["impl"],
                r["phase"],
                None if r["batch"] is None else str(r["batch"]),
                None if r["seq_len"] is None else str(r["seq_len"]),
                heads,
                None if r["window"] is None else str(r["window"]),
                r["dtype"],
                format_seconds(r["median_s"]),
                format_seconds(r["iqr_s"]),
                format_rate(r["achieved_flop_per_s"], "FLOP/s", scale=1e12),
                format_rate(r["achieved_bytes_per_s"], "B/s", scale=1e9),
                format_share(r["roofline_fraction"]),
                format_seconds(r["predicted_s"]),
                None if r["peak_memory_bytes"] is None else format_bytes(r["peak_memory_bytes"]),
                None if r["max_abs_error"] is None else f"{r['max_abs_error']:.2g}",
                f"skipped: {r['skipped_reason']}" if r["skipped_reason"] else "ok",
            )
        )
    headers = ("variant", "impl", "phase", "batch", "seq_len", "heads/kv/d_head", "window", "dtype", "median",
               "IQR", "achieved", "bandwidth", "roofline", "predicted", "peak memory", "max abs error",
               "status")  # fmt: skip
    numeric = (False, False, False, True, True, False, True, False, True, True, True, True, True, True, True, True,
               False)  # fmt: skip
    env = bench.environment
    device = env.get("device_name") or env.get("device") or "an unnamed device"
    n_skipped = sum(1 for r in bench.rows if r["skipped_reason"])
    intro = Paragraph(
        f"{len(bench.rows)} result(s) from {bench.source}, measured on {device}"
        + (f" ({n_skipped} skipped)" if n_skipped else "")
        + (f"; {bench.n_unreadable} unreadable {'entry' if bench.n_unreadable == 1 else 'entries'} left out"
           if bench.n_unreadable else "")
        + "."
    )  # fmt: skip
    assumptions = Bullets(
        (
            "median and IQR: of the timed samples of each case (llmarch bench); achieved: the analytic FLOPs "
            "and bytes of the case over the median time.",
            "predicted: the roofline time at the peaks measured on the device; roofline: predicted over "
            "median, the fraction of the roofline the kernel reaches.",
            "max abs error: against the reference attention in fp32. Skipped cases keep their reason.",
        )
    )
    env_rows = [(k, format_value(v, k)) for k, v in env.items()]
    env_rows += [(f"measured_peaks.{k}", format_value(v, k)) for k, v in bench.measured_peaks.items()]
    details: tuple[Block, ...] = (assumptions,) + ((table(("environment", "value"), env_rows),) if env_rows else ())
    blocks: list[Block] = [Heading(2, "Attention benchmark"), intro]
    if rows:
        blocks.append(table(headers, rows, numeric))
        blocks.append(Figure("bench", FIGURES["bench"]))
    blocks.append(Details("Assumptions: benchmark", details))
    return blocks


def build(data: ReportData) -> list[Block]:
    """The report's outline: title, summary, then one section per subject, each with its assumptions."""
    blocks = _title(data) + _summary(data) + _comparison(data) + _memory(data) + _serving(data) + _training(data)
    if data.bench is not None:
        blocks += _bench(data.bench)
    if data.environment is not None:
        blocks += [
            Heading(2, "Environment"),
            table(("what", "value"), [(k, format_value(v, k)) for k, v in data.environment.items()]),
        ]
    from llmarch._version import __version__

    blocks.append(
        Paragraph(
            f"Made by llmarch {__version__}. Every number is an estimate from the formulas the assumptions "
            "name; the same inputs give the same file."
        )
    )
    return blocks


def figures(data: ReportData) -> dict[str, bytes]:
    """The report's plots as PNG bytes, by FIGURES key (needs matplotlib)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InvalidValueError("plots need matplotlib (pip install 'llmarch[plot]'); or pass --no-images") from None
    from llmarch.report import plots

    images = {
        "params": plots.param_shares_png(data.models),
        "kv_cache": plots.kv_curves_png(data.kv_curves, batch=data.batch, dtype=data.models[0]["dtype"]),
    }
    if data.bench is not None:
        bench = plots.bench_png(data.bench.rows)
        if bench is not None:
            images["bench"] = bench
    return images
