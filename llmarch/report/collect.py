"""The numbers of a report: run the calculators behind each section (no arithmetic here), and read a bench JSON.

`collect(configs, options, bench=...)` returns a ReportData of the calculators' plain records; `read_bench` reduces a
`llmarch bench --format json` document to the keys the report shows, defensively.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import field
from typing import Any

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
from llmarch.core.frozen import frozen_dataclass

# -- reading a bench JSON, defensively (the schema and reader: llmarch.catalog.bench_results) -------------------

#: The keys of a bench result the report shows.
_BENCH_KEYS = ("variant", "impl", "phase", "dtype", "device", "skipped_reason", "batch", "seq_len", "n_heads",
               "n_kv_heads", "d_head", "window", "peak_memory_bytes", "median_s", "iqr_s", "achieved_flop_per_s",
               "achieved_bytes_per_s", "roofline_fraction", "predicted_s", "max_abs_error")  # fmt: skip


@frozen_dataclass
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


@frozen_dataclass
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


@frozen_dataclass
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


#: The options of a report nobody tuned (frozen, so one shared default is safe).
DEFAULT_OPTIONS = ReportOptions()


def collect(
    configs: Sequence[ArchConfig],
    options: ReportOptions = DEFAULT_OPTIONS,
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
    estimates; a budget with a preset that has no estimate is an InvalidValueError asking for `tokens`.
    """
    from llmarch.calc import comparison
    from llmarch.catalog.hardware import accelerator

    if not configs:
        raise InvalidValueError("configs: name at least one preset")
    acc = accelerator(options.gpu)
    seq_len = DEFAULT_SEQ_LEN if options.seq_len is None else options.seq_len
    batch = DEFAULT_BATCH if options.batch is None else options.batch
    models = comparison.compare_records(list(configs), seq_len=seq_len, batch=batch, dtype=options.dtype)
    curves = [comparison.kv_cache_curve(c, batch=batch, dtype=models[0]["dtype"]) for c in configs]
    serving, serving_notes, memory = _serving_and_memory(configs, options, acc, seq_len=seq_len, batch=batch)
    training, training_notes, exceeded = _training(configs, options, acc)
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
        budgets_exceeded=exceeded,
        bench=bench,
        environment=environment,
    )


def _serving_and_memory(
    configs: Sequence[ArchConfig], options: ReportOptions, acc: Any, *, seq_len: int, batch: int
) -> tuple[list[dict[str, Any]], list[str], list[dict[str, Any]]]:
    """The serving estimate of each model (and a note when it does not fit or exceeds the model's context), and
    its memory estimate, whose KV cache is in the dtype serving chose."""
    from llmarch.calc import training_memory as memory_plan
    from llmarch.serving import estimate as inference

    n_gpus = options.tp if options.n_gpus is None else options.n_gpus
    train = dict(options.training)
    serve = {"tp": options.tp, "n_gpus": n_gpus, "batch": options.batch, **options.serving}
    serving, notes, memory = [], [], []
    for config in configs:
        estimate = inference.estimate_inference(
            config, acc, prompt_len=options.prompt_len, generate_len=options.generate_len, dtype=options.dtype,
            flash=options.flash, **serve,
        )  # fmt: skip
        serving.append(estimate.to_record())
        if not estimate.fits:
            notes.append(estimate.fit_message())
        if estimate.exceeds_max_seq_len:
            notes.append(
                f"{config.name}: {options.prompt_len} + {options.generate_len} tokens is beyond its context "
                f"({config.max_seq_len})"
            )
        plan = memory_plan.memory_estimate(
            config, batch=batch, seq_len=train.get("seq_len", seq_len), dtype=options.dtype,
            kv_dtype=estimate.kv_dtype, flash=options.flash, accelerator_memory_bytes=acc.memory_bytes,
            **{"n_gpus": n_gpus, "zero": options.zero, "tp": options.tp, **_memory_keywords(train)},
        )  # fmt: skip
        memory.append(plan.to_record())
    return serving, notes, memory


def _training(
    configs: Sequence[ArchConfig], options: ReportOptions, acc: Any
) -> tuple[list[dict[str, Any] | None], list[str], list[dict[str, Any]]]:
    """The training-cost estimate of each model (None, with a note, for a preset without published tokens when
    none are given) and the budgets they exceed."""
    from llmarch.calc import cost

    estimates: list[Any] = []
    training: list[dict[str, Any] | None] = []
    notes = []
    train = dict(options.training)
    keywords = {"tokens": options.tokens, "n_gpus": options.n_gpus, "seq_len": options.seq_len,
                **_cost_keywords(train)}  # fmt: skip
    for config in configs:
        if keywords["tokens"] is None and config.training.tokens is None:
            training.append(None)
            notes.append(f"{config.name}: no published training tokens; pass --tokens (2T, or chinchilla)")
            continue
        estimate = cost.estimate_training_cost(config, acc, **keywords)
        estimates.append(estimate)
        training.append(estimate.to_record())
    budgets = options.budgets
    if budgets and len(estimates) < len(configs):
        missing = [c.name for c, t in zip(configs, training, strict=True) if t is None]
        raise InvalidValueError(
            f"{', '.join(budgets)} needs a training estimate for every preset; {', '.join(missing)} "
            f"{'has' if len(missing) == 1 else 'have'} no published training tokens: pass `tokens`"
        )
    exceeded = cost.check_budgets(
        estimates, max_cost_usd=options.max_cost_usd, max_co2e_kg=options.max_co2e_kg, max_days=options.max_days
    )
    return training, notes, [dataclasses.asdict(e) for e in exceeded]


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
