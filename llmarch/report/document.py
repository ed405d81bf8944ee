"""The `llmarch report` document: comparison, memory, serving, training cost and benchmark in one file.

Three steps, each a function of plain data:

    collect(configs, options, bench=...)  -> ReportData   every number, from the calculators (no arithmetic here)
    build(data)                            -> [Block]      a format-neutral outline: headings, tables, figures
    render_markdown(blocks, images=...)    -> str          GitHub-flavoured Markdown (CI job summaries)
    render_html(blocks, images=...)        -> str          one self-contained HTML file (images as data URIs)

`figures(data)` draws the plots as PNG bytes (llmarch.report.plots, matplotlib imported only there). Nothing in a
document depends on when or where it was made: no timestamps, no paths, no environment unless asked
(`environment_record`), so the same inputs give the same bytes and CI can diff the file.
"""

from __future__ import annotations

import base64
import dataclasses
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from llmarch.core.config import ArchConfig
from llmarch.core.defaults import (
    DEFAULT_BATCH,
    DEFAULT_DTYPE,
    DEFAULT_GENERATE_LEN,
    DEFAULT_PROMPT_LEN,
    DEFAULT_REPORT_GPU,
    DEFAULT_SEQ_LEN,
)
from llmarch.core.errors import InvalidValueError
from llmarch.report.format import (
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

#: The figures a report can embed: file stem -> what it shows (also the image's alt text).
FIGURES: dict[str, str] = {
    "params": "Parameters by component, as shares of each model's total",
    "kv_cache": "KV cache against context length, one line per model",
    "bench": "Attention benchmark: median latency (IQR bars) and share of the measured roofline against sequence "
    "length, by phase",
}


# -- the document outline ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """A table cell that links to a documented source (a preset's `source:` URL)."""

    text: str
    url: str


Cell = str | Link


@dataclass(frozen=True)
class Heading:
    level: int  # 1 = the title
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    numeric: tuple[bool, ...]  # right-aligned columns


@dataclass(frozen=True)
class Figure:
    name: str  # a key of FIGURES: the image file stem
    caption: str


@dataclass(frozen=True)
class Details:
    """A collapsed section (<details>): the assumptions behind a section, long breakdowns."""

    summary: str
    blocks: tuple[Block, ...]


Block = Heading | Paragraph | Bullets | Table | Figure | Details


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell | None]], numeric: Sequence[bool] = ()) -> Table:
    """A Table with '-' for missing cells; `numeric` marks right-aligned columns (default: none)."""
    flags = tuple(numeric) + (False,) * (len(headers) - len(numeric))
    cells = tuple(tuple("-" if c is None else c for c in row) for row in rows)
    for row in cells:
        if len(row) != len(headers):
            raise ValueError(f"row of {len(row)} cells under {len(headers)} headers")
    return Table(tuple(headers), cells, flags[: len(headers)])


# -- reading a bench JSON, defensively (the schema and reader: llmarch.catalog.bench_results) -------------------

#: The keys of a bench result the report shows.
_BENCH_KEYS = ("variant", "impl", "phase", "dtype", "device", "skipped_reason", "batch", "seq_len", "n_heads",
               "n_kv_heads", "d_head", "window", "peak_memory_bytes", "median_s", "iqr_s", "achieved_flop_per_s",
               "achieved_bytes_per_s", "roofline_fraction", "predicted_s", "max_abs_error")  # fmt: skip


@dataclass(frozen=True)
class BenchData:
    """The results of a `llmarch bench --format json` document, each reduced to the keys the report uses."""

    source: str  # the file's name (not its path: a path would differ from run to run)
    environment: dict[str, Any]  # scalar entries of the document's environment (bench_results.ENVIRONMENT_FIELDS)
    measured_peaks: dict[str, Any]
    rows: list[dict[str, Any]]
    n_unreadable: int  # results that were not objects

    def to_record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def read_bench(document: Any, *, source: str) -> BenchData:
    """The rows of a parsed bench JSON, read leniently by `bench_results.read_bench_results` (unknown keys
    ignored, missing or mistyped values None, skipped results kept with their `skipped_reason`). A document
    that is not a bench document is an InvalidValueError naming `source`."""
    from llmarch.catalog.bench_results import read_bench_results

    results = read_bench_results(document, source=f"--bench {source}")
    peaks = results.environment.measured_peaks
    rows = [{key: getattr(row, key) for key in _BENCH_KEYS} for row in results.rows]
    measured = {} if peaks is None else peaks.scalars()
    return BenchData(source, results.environment.scalars(), measured, rows, results.n_unreadable)


# -- collecting the numbers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportOptions:
    """The workload of a report; None means each calculator's documented default (recorded in its section)."""

    gpu: str = DEFAULT_REPORT_GPU
    n_gpus: int | None = None  # memory and serving: default tp; training cost: default 1 (estimate-cost's)
    tp: int = 1
    tokens: str | None = None  # training tokens ("2T", "chinchilla"); None: each preset's published count
    seq_len: int | None = None  # comparison and memory: DEFAULT_SEQ_LEN; training cost: default the preset's
    batch: int | None = None  # comparison and memory: DEFAULT_BATCH; serving: default the largest that fits
    dtype: str = DEFAULT_DTYPE  # weights (and KV cache) of the comparison, memory and serving
    prompt_len: int = DEFAULT_PROMPT_LEN
    generate_len: int = DEFAULT_GENERATE_LEN
    flash: bool = True
    zero: int = 0
    max_cost_usd: float | None = None
    max_co2e_kg: float | None = None
    max_days: float | None = None
    # Settings of one side only, over the shared ones above: keywords of cost.estimate_training_cost and of
    # the training part of training_memory.memory_estimate (n_gpus, tp, pp, zero, micro_batch, recompute, mfu,
    # region, pue, usd_per_gpu_hour, ...), and of serving.estimate.estimate_inference (n_gpus, tp, kv_dtype,
    # usd_per_gpu_hour, ...). Training n_gpus GPUs are a training cluster; serving n_gpus are replicas x tp.
    training: Mapping[str, Any] = field(default_factory=dict)
    serving: Mapping[str, Any] = field(default_factory=dict)

    @property
    def budgets(self) -> dict[str, float]:
        given = {"--max-cost": self.max_cost_usd, "--max-co2e": self.max_co2e_kg, "--max-days": self.max_days}
        return {option: limit for option, limit in given.items() if limit is not None}


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows, as the calculators' plain records (see `collect`)."""

    options: ReportOptions
    gpu: dict[str, Any]  # the accelerator: name, display_name, memory_bytes
    seq_len: int  # comparison and memory
    batch: int  # comparison and memory
    models: list[dict[str, Any]]  # comparison.compare_records
    kv_curves: list[dict[str, Any]]  # comparison.kv_cache_curve
    sources: list[str]  # each preset's `source:`
    memory: list[dict[str, Any]]  # memory_plan.memory_estimate(...).to_record()
    serving: list[dict[str, Any]]  # inference.estimate_inference(...).to_record()
    serving_notes: list[str]
    training: list[dict[str, Any] | None]  # cost.estimate_training_cost(...).to_record(); None: no tokens
    training_notes: list[str]
    budgets_exceeded: list[dict[str, Any]]  # cost.check_budgets, as records
    bench: BenchData | None = None
    environment: dict[str, Any] | None = None

    def to_record(self) -> dict[str, Any]:
        """Plain-data view (the payload of `llmarch report --format json`)."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        record["options"] = dataclasses.asdict(self.options)
        record["bench"] = None if self.bench is None else self.bench.to_record()
        return record


#: Training settings of a report and the keyword of each calculator that takes them.
_MEMORY_KEYS = ("n_gpus", "tp", "pp", "zero", "micro_batch", "recompute", "sequence_parallel", "dropout")
_COST_KEYS = {"tokens": "tokens", "n_gpus": "n_gpus", "seq_len": "seq_len", "mfu": "mfu", "dtype": "dtype",
              "recompute": "recompute", "flops_method": "flops_method", "price_per_gpu_hour": "usd_per_gpu_hour",
              "usd_per_gpu_hour": "usd_per_gpu_hour", "power_w": "power_w", "pue": "pue", "region": "region",
              "grid_intensity": "grid_kg_co2e_per_kwh", "grid_kg_co2e_per_kwh": "grid_kg_co2e_per_kwh",
              "node_overhead_w": "node_overhead_w"}  # fmt: skip


def _memory_keywords(train: Mapping[str, Any]) -> dict[str, Any]:
    """The training settings `memory_estimate` takes (the training part of the memory section)."""
    return {key: train[key] for key in _MEMORY_KEYS if train.get(key) is not None}


def _cost_keywords(train: Mapping[str, Any]) -> dict[str, Any]:
    """The training settings `estimate_training_cost` takes, under its keyword names."""
    return {_COST_KEYS[key]: value for key, value in train.items() if key in _COST_KEYS and value is not None}


def collect(
    configs: Sequence[ArchConfig],
    options: ReportOptions = ReportOptions(),  # frozen, so a shared default is safe
    *,
    bench: BenchData | None = None,
    environment: dict[str, Any] | None = None,
) -> ReportData:
    """Run the calculators behind each section for `configs` under `options`.

    comparison: compare_records and kv_cache_curve at seq_len (DEFAULT_SEQ_LEN), batch (DEFAULT_BATCH), dtype.
    memory: memory_estimate at the same seq_len and batch, on n_gpus (default tp) GPUs with ZeRO `zero`,
    fitted to the GPU's memory, the KV cache in the dtype serving uses. serving: estimate_inference of
    prompt_len + generate_len tokens at `batch` (default: the largest that fits). training cost:
    estimate_training_cost with `tokens` (default the preset's published count; a preset without one gets a
    note instead) and, when given, seq_len and n_gpus. Budgets (cost.check_budgets) apply to the training
    estimates; a budget with a preset that has no estimate is an InvalidValueError asking for --tokens.
    """
    from llmarch.calc import comparison, cost
    from llmarch.calc import training_memory as memory_plan
    from llmarch.catalog.hardware import accelerator
    from llmarch.serving import estimate as inference

    if not configs:
        raise InvalidValueError("name at least one preset")
    acc = accelerator(options.gpu)
    seq_len = DEFAULT_SEQ_LEN if options.seq_len is None else options.seq_len
    batch = DEFAULT_BATCH if options.batch is None else options.batch
    n_gpus = options.tp if options.n_gpus is None else options.n_gpus
    models = comparison.compare_records(list(configs), seq_len=seq_len, batch=batch, dtype=options.dtype)
    curves = [comparison.kv_cache_curve(c, batch=batch, dtype=models[0]["dtype"]) for c in configs]
    train = dict(options.training)
    serve = {"tp": options.tp, "n_gpus": n_gpus, "batch": options.batch, **options.serving}

    serving, serving_notes = [], []
    memory = []
    for config in configs:
        estimate = inference.estimate_inference(
            config, acc, prompt_len=options.prompt_len, generate_len=options.generate_len, dtype=options.dtype,
            flash=options.flash, **serve,
        )  # fmt: skip
        serving.append(estimate.to_record())
        if not estimate.fits:
            serving_notes.append(estimate.fit_message())
        if estimate.exceeds_max_seq_len:
            serving_notes.append(
                f"{config.name}: {options.prompt_len} + {options.generate_len} tokens is beyond its context "
                f"({config.max_seq_len})"
            )
        memory.append(
            memory_plan.memory_estimate(
                config, batch=batch, seq_len=train.get("seq_len", seq_len), dtype=options.dtype,
                kv_dtype=estimate.kv_dtype, flash=options.flash, accelerator_memory_bytes=acc.memory_bytes,
                **{"n_gpus": n_gpus, "zero": options.zero, "tp": options.tp, **_memory_keywords(train)},
            ).to_record()
        )  # fmt: skip

    estimates: list[Any] = []
    training: list[dict[str, Any] | None] = []
    training_notes = []
    cost_keywords = {"n_gpus": options.n_gpus, "seq_len": options.seq_len, **_cost_keywords(train)}
    for config in configs:
        if options.tokens is None and train.get("tokens") is None and config.training.tokens is None:
            training.append(None)
            training_notes.append(f"{config.name}: no published training tokens; pass --tokens (2T, or chinchilla)")
            continue
        estimate = cost.estimate_training_cost(config, acc, **{"tokens": options.tokens, **cost_keywords})
        estimates.append(estimate)
        training.append(estimate.to_record())
    budgets = options.budgets
    if budgets and len(estimates) < len(configs):
        missing = [c.name for c, t in zip(configs, training, strict=True) if t is None]
        raise InvalidValueError(
            f"{', '.join(budgets)} needs a training estimate for every preset; {', '.join(missing)} "
            f"{'has' if len(missing) == 1 else 'have'} no published training tokens: pass --tokens"
        )
    exceeded = cost.check_budgets(
        estimates, max_cost_usd=options.max_cost_usd, max_co2e_kg=options.max_co2e_kg, max_days=options.max_days
    )
    return ReportData(
        options=options,
        gpu={"name": acc.name, "display_name": acc.display_name, "memory_bytes": acc.memory_bytes},
        seq_len=seq_len,
        batch=batch,
        models=models,
        kv_curves=curves,
        sources=[c.source for c in configs],
        memory=memory,
        serving=serving,
        serving_notes=serving_notes,
        training=training,
        training_notes=training_notes,
        budgets_exceeded=[dataclasses.asdict(e) for e in exceeded],
        bench=bench,
        environment=environment,
    )


def environment_record() -> dict[str, Any]:
    """Where the report was made (only with --include-environment: it differs between machines)."""
    from importlib import metadata

    from llmarch._version import __version__
    from llmarch.report.tables import environment

    record: dict[str, Any] = {"llmarch": __version__, **environment()}
    for package in ("matplotlib", "numpy"):
        try:
            record[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            record[package] = None
    return record


def budget_messages(exceeded: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per exceeded budget, as `llmarch estimate-cost` prints them."""
    from llmarch.report.tables import budget_line

    return [budget_line(o["name"], o["option"], o["value"], o["limit"]) for o in exceeded]


# -- the outline ------------------------------------------------------------------------------------------


def _assumptions(named: Sequence[tuple[str, Mapping[str, Any]]], *, skip: Sequence[str] = ()) -> Table:
    """Assumptions as (assumption, value) rows; a value that differs between models is listed per model."""
    keys: list[str] = []
    for _, values in named:
        keys.extend(k for k in values if k not in keys and k not in skip)
    rows = []
    for key in keys:
        values = [(name, a.get(key)) for name, a in named]
        if all(v is None for _, v in values):
            continue
        if all(v == values[0][1] for _, v in values):
            text = format_value(values[0][1], key)
        else:
            text = "; ".join(f"{name}: {format_value(v, key)}" for name, v in values)
        rows.append((key, text))
    return table(("assumption", "value"), rows)


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
        rows = [
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
            ("budget", "limit", "model", "estimate", "status"), rows, (False, True, False, True, False)
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


# -- Markdown ---------------------------------------------------------------------------------------------

#: Characters that start inline Markdown constructs (emphasis, code, links, HTML, tables, math, strike-
#: through, entities); escaped with a backslash wherever text is written.
_MD_SPECIAL = set("\\`*_[]<>|$~&")


def md_escape(text: str) -> str:
    """Text as literal Markdown: special characters backslash-escaped, line breaks as spaces."""
    text = " ".join(text.split("\n"))
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)


def _md_cell(cell: Cell) -> str:
    if isinstance(cell, Link):
        return f"[{md_escape(cell.text)}](<{cell.url}>)"
    return md_escape(cell)


def _md_table(t: Table) -> str:
    lines = ["| " + " | ".join(md_escape(h) for h in t.headers) + " |"]
    lines.append("|" + "|".join("---:" if n else "---" for n in t.numeric) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines)


def _md_blocks(blocks: Sequence[Block], images: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append("#" * block.level + " " + md_escape(block.text))
        elif isinstance(block, Paragraph):
            out.append(md_escape(block.text))
        elif isinstance(block, Bullets):
            out.append("\n".join("- " + md_escape(item) for item in block.items))
        elif isinstance(block, Table):
            out.append(_md_table(block))
        elif isinstance(block, Figure):
            if block.name in images:
                out.append(f"![{md_escape(FIGURES[block.name])}]({quote(images[block.name])})")
                out.append("*" + md_escape(block.caption) + "*")
        elif isinstance(block, Details):
            # GitHub renders Markdown inside <details> when blank lines separate it from the tags.
            inner = _md_blocks(block.blocks, images)
            out.append(f"<details>\n<summary>{html.escape(block.summary)}</summary>\n\n" + "\n\n".join(inner)
                       + "\n\n</details>")  # fmt: skip
    return out


def render_markdown(blocks: Sequence[Block], *, images: Mapping[str, str] | None = None) -> str:
    """GitHub-flavoured Markdown for a CI job summary. `images` maps a figure name to the image's path relative
    to the Markdown file (figures without one are left out: job summaries do not render data URIs)."""
    return "\n\n".join(_md_blocks(blocks, images or {})) + "\n"


# -- HTML -------------------------------------------------------------------------------------------------

_CSS = """\
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;line-height:1.45;
max-width:80rem;margin:2rem auto;padding:0 1rem}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.88rem}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
details{margin:.5rem 0 1rem}summary{cursor:pointer;font-weight:600}
figure{margin:1rem 0}img{max-width:100%;height:auto}
figcaption{font-size:.85rem;color:#59636e}
"""


def _slug(text: str, used: set[str]) -> str:
    base = "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")
    base = "-".join(part for part in base.split("-") if part) or "section"
    slug, n = base, 1
    while slug in used:
        n += 1
        slug = f"{base}-{n}"
    used.add(slug)
    return slug


def _html_cell(cell: Cell) -> str:
    if isinstance(cell, Link):
        return f'<a href="{html.escape(cell.url, quote=True)}">{html.escape(cell.text)}</a>'
    return html.escape(cell)


def _html_table(t: Table) -> str:
    def cls(numeric: bool) -> str:
        return ' class="num"' if numeric else ""

    head = "".join(f"<th{cls(n)}>{html.escape(h)}</th>" for h, n in zip(t.headers, t.numeric, strict=True))
    body = "\n".join(
        "<tr>" + "".join(f"<td{cls(n)}>{_html_cell(c)}</td>" for c, n in zip(row, t.numeric, strict=True)) + "</tr>"
        for row in t.rows
    )
    return f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table></div>'


def _html_blocks(blocks: Sequence[Block], images: Mapping[str, bytes], used: set[str]) -> list[str]:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f'<h{block.level} id="{_slug(block.text, used)}">{html.escape(block.text)}</h{block.level}>')
        elif isinstance(block, Paragraph):
            out.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Bullets):
            out.append("<ul>\n" + "\n".join(f"<li>{html.escape(i)}</li>" for i in block.items) + "\n</ul>")
        elif isinstance(block, Table):
            out.append(_html_table(block))
        elif isinstance(block, Figure):
            if block.name in images:
                data = base64.b64encode(images[block.name]).decode("ascii")
                out.append(
                    f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(FIGURES[block.name])}">'
                    f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
                )
        elif isinstance(block, Details):
            inner = "\n".join(_html_blocks(block.blocks, images, used))
            out.append(f"<details>\n<summary>{html.escape(block.summary)}</summary>\n{inner}\n</details>")
    return out


def render_html(blocks: Sequence[Block], *, images: Mapping[str, bytes] | None = None) -> str:
    """One self-contained HTML page: inline CSS, images as base64 data URIs, no scripts, no external resources
    (the only links are the presets' documented sources)."""
    title = next((b.text for b in blocks if isinstance(b, Heading)), "llmarch report")
    body = "\n".join(_html_blocks(blocks, images or {}, set()))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>\n{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"{body}\n</main>\n</body>\n</html>\n"
    )


__all__ = [
    "FIGURES",
    "BenchData",
    "Block",
    "Bullets",
    "Details",
    "Figure",
    "Heading",
    "Link",
    "Paragraph",
    "ReportData",
    "ReportOptions",
    "Table",
    "budget_messages",
    "build",
    "collect",
    "environment_record",
    "figures",
    "read_bench",
    "render_html",
    "render_markdown",
]
