"""The serving estimate: memory per GPU, the load served, per-request latency, throughput and cost.

What one replica (tp x pp GPUs) needs and does serving requests of `prompt_len` prompt and `generate_len`
generated tokens, as engines run it (vLLM, TensorRT-LLM, SGLang):

    memory per GPU  = weights + KV cache of the requests in flight + one step's workspace
                      <= gpu_memory_utilization (0.9) x GPU memory           (llmarch.calc.serving_memory)
    load            = `batch` requests in flight; else the largest load meeting `max_ttft_s`/`max_tpot_s`;
                      else the one for `request_rate`; else the maximum-throughput load (the most that fit)
    TTFT, TPOT      = continuous batching with chunked prefill, or a static batch (llmarch.serving.batching)
                      on the step model (llmarch.serving.step) with per-GPU constants (llmarch.catalog)
    request latency = TTFT + (generate_len - 1) x TPOT
    tokens/s        = requests in flight x generate_len / request latency (per replica; x replicas)
    USD / M tokens  = GPU-hour price x GPUs / 3600 / tokens/s x 10^6, split into input (prefill time) and
                      output (the rest), and blended over all tokens

All numbers are SI (bytes, FLOPs, seconds, USD); every default used is listed in `assumptions`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from llmarch.calc.memory import weights_bytes
from llmarch.calc.serving_memory import Occupancy, ServingMemory, serving_memory
from llmarch.catalog.hardware import Accelerator
from llmarch.core.config import ArchConfig
from llmarch.core.defaults import (
    DEFAULT_DRAFT_LEN,
    DEFAULT_DTYPE,
    DEFAULT_GENERATE_LEN,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_PROMPT_LEN,
    DEFAULT_TOKEN_BUDGET,
)
from llmarch.core.errors import InvalidValueError
from llmarch.core.frozen import frozen_dataclass
from llmarch.core.units import format_bytes
from llmarch.serving.batching import LoadPoint, load_point
from llmarch.serving.calibration import BenchCalibration, bench_device_matches, select_bench_row
from llmarch.serving.setup import (
    SECONDS_PER_HOUR,
    ServingSetup,
    resolve_setup,
)


@frozen_dataclass
class CurvePoint:
    """One load of the throughput-vs-latency curve (times in s; throughput over all GPUs)."""

    concurrency: int
    ttft_s: float
    tpot_s: float
    request_latency_s: float
    tokens_per_s: float
    tokens_per_s_per_gpu: float


@frozen_dataclass
class InferenceEstimate:
    """Serving estimate of one architecture on one GPU type (see the module docstring for the model)."""

    name: str
    gpu: str
    n_gpus: int
    tp: int
    pp: int
    replicas: int
    dtype: str  # weight scheme (llmarch.calc.quant)
    kv_dtype: str
    compute_dtype: str  # whose peak FLOP/s the weight matmuls run at
    prompt_len: int
    generate_len: int
    beam_width: int
    batching: str  # "continuous" or "static"
    batch: int  # requests in flight per replica (the load served)
    batch_given: bool
    load_source: str  # "given", "max throughput", "latency targets", "request rate"
    fits: bool
    # memory per GPU at `batch`, bytes
    weights_bytes: float
    kv_cache_bytes: float
    workspace_bytes: float
    total_bytes: float
    usable_bytes: float  # GPU memory x gpu_memory_utilization
    kv_cache_bytes_per_sequence: float  # one request's share on this GPU (mean occupancy under continuous batching)
    max_batch: int  # most requests in flight that fit (0: not even one)
    max_context_len: int | None  # longest prompt + generation that fits at `batch`, capped at the model's context
    max_context_limited_by: str | None  # "memory", "model" (its max_seq_len) or None (unbounded)
    context_len: int  # positions the workload needs
    max_seq_len: int  # the model's context
    exceeds_max_seq_len: bool  # the workload is beyond the model's context (flagged, still estimated)
    # times (None when it does not fit)
    ttft_s: float | None
    tpot_s: float | None
    request_latency_s: float | None
    running_requests: int | None  # requests in flight at once (fewer than `batch` when the KV cache is full)
    tokens_per_s: float | None  # output tokens/s of all n_gpus
    tokens_per_s_per_replica: float | None
    tokens_per_s_per_gpu: float | None
    input_tokens_per_s: float | None  # prompt tokens/s of all n_gpus
    requests_per_s: float | None  # all n_gpus
    usd_per_million_tokens: float | None  # per million output tokens, all GPU time (prefill included)
    usd_per_million_input_tokens: float | None
    usd_per_million_output_tokens: float | None  # decode time only
    usd_per_million_tokens_blended: float | None  # all GPU time over prompt + output tokens
    meets_targets: bool | None  # with max_ttft_s / max_tpot_s (or request_rate): whether the load meets them
    ttft_default_s: float | None  # with a bench calibration: the same at the catalogued attention rates
    tpot_default_s: float | None
    bound: str | None  # the roof the decode step's weight matmuls sit on
    decode_step: Mapping[str, Any] | None
    prefill_step: Mapping[str, Any] | None
    curve: tuple[CurvePoint, ...]
    suggestions: tuple[str, ...]  # options under which one request would fit (when none does)
    assumptions: Mapping[str, Any]

    @property
    def max_concurrency(self) -> int:
        return self.max_batch

    def fit_message(self) -> str:
        """One line saying why this estimate does not fit and what would ('' when it fits)."""
        if self.fits:
            return ""
        gpus = self.tp * self.pp
        where = f"{gpus} x {self.gpu}" if gpus > 1 else f"one {self.gpu}"
        need = (
            f"{format_bytes(self.weights_bytes)} weights + {format_bytes(self.kv_cache_bytes)} KV cache + "
            f"{format_bytes(self.workspace_bytes)} workspace = {format_bytes(self.total_bytes)} per GPU"
        )
        usable = f"{format_bytes(self.usable_bytes)} usable"
        if self.max_batch >= 1:
            return (
                f"{self.name}: batch {self.batch} does not fit {where} at {self.prompt_len}+{self.generate_len} "
                f"tokens ({need} > {usable}); the largest batch that fits is {self.max_batch}"
            )
        hint = "; it would fit with " + " or ".join(self.suggestions) if self.suggestions else ""
        if self.batch > 1:  # `need` is at the requested batch; say so, and that batch 1 fails too
            return (
                f"{self.name}: batch {self.batch} does not fit {where} at {self.prompt_len}+{self.generate_len} "
                f"tokens ({need} > {usable}), nor does batch 1{hint}"
            )
        return (
            f"{self.name} does not fit {where} even at batch 1 and {self.prompt_len}+{self.generate_len} tokens "
            f"({need} > {usable}){hint}"
        )

    def context_message(self) -> str:
        """One line when the workload is beyond the model's context ('' otherwise)."""
        if not self.exceeds_max_seq_len:
            return ""
        return (
            f"{self.name}: {self.prompt_len} + {self.generate_len} tokens is beyond its context ({self.max_seq_len}); "
            "estimated as if the model supported it"
        )

    def to_record(self) -> dict[str, Any]:
        """Plain-data view: the `estimates` rows of `llmarch estimate-inference --format json`."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        record["decode_step"] = None if self.decode_step is None else dict(self.decode_step)
        record["prefill_step"] = None if self.prefill_step is None else dict(self.prefill_step)
        record["curve"] = [dataclasses.asdict(p) for p in self.curve]
        record["suggestions"] = list(self.suggestions)
        record["assumptions"] = dict(self.assumptions)
        record["context_note"] = self.context_message() or None
        return record


# -- memory and fit ------------------------------------------------------------------------------------------


def memory_at(setup: ServingSetup, concurrency: int, *, prompt_len: int | None = None) -> ServingMemory:
    """Memory per GPU with `concurrency` requests in flight (the draft model's weights and cache included)."""
    wl = setup.workload
    prompt = wl.prompt_len if prompt_len is None else prompt_len
    static = wl.static
    step_tokens = min(wl.token_budget, concurrency * prompt if static else concurrency + prompt)
    occupancy: Occupancy = "full" if static else "mean"

    def memory_of(config: ArchConfig, tokens: int) -> ServingMemory:
        return serving_memory(config, concurrency=concurrency, prompt_len=prompt, generate_len=wl.generate_len,
                              dtype=setup.dtype, kv_dtype=setup.kv_dtype, tp=wl.tp, pp=wl.pp,
                              beam_width=setup.beam_width, occupancy=occupancy, step_tokens=tokens,
                              flash=setup.flash)  # fmt: skip

    memory = memory_of(setup.config, step_tokens)
    if setup.draft is None:
        return memory
    draft = memory_of(setup.draft, 1)
    return dataclasses.replace(
        memory,
        weights_bytes=memory.weights_bytes + draft.weights_bytes,
        kv_cache_bytes=memory.kv_cache_bytes + draft.kv_cache_bytes,
        kv_cache_bytes_per_request=memory.kv_cache_bytes_per_request + draft.kv_cache_bytes_per_request,
        total_bytes=memory.total_bytes + draft.weights_bytes + draft.kv_cache_bytes,
    )


def largest_load(setup: ServingSetup, *, prompt_len: int | None = None) -> int:
    """Most requests in flight whose memory per GPU fits (0: not even one); memory grows with the load."""

    def fits(n: int) -> bool:
        return memory_at(setup, n, prompt_len=prompt_len).total_bytes <= setup.usable_bytes

    if not fits(1):
        return 0
    low, high = 1, 2
    while high <= 2**24 and fits(high):
        low, high = high, high * 2
    while high - low > 1:  # fits(low), not fits(high)
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def max_context_len(setup: ServingSetup, concurrency: int) -> tuple[int | None, str | None]:
    """Longest prompt + generate_len that fits at `concurrency`, capped at the model's context, and what limits it.

    Memory never falls as the prompt grows, so a binary search over the prompt finds it; with a sliding
    window on every layer memory stops growing and only the model's context limits it.
    """
    limit = setup.config.max_seq_len
    g = setup.workload.generate_len

    def fits(prompt: int) -> bool:
        return memory_at(setup, concurrency, prompt_len=prompt).total_bytes <= setup.usable_bytes

    if not fits(1):
        return 0, "memory"
    top = max(limit - g, 1)
    if fits(top):
        return (limit, "model") if limit > g else (1 + g, "model")
    low, high = 1, top
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low + g, "memory"


def _suggest(setup: ServingSetup) -> tuple[str, ...]:
    """Options under which one request fits: the smallest larger tp (a power of two where one works, as
    GPUs come in nodes of 2, 4 and 8), else the fewest pipeline stages over the widest such tp within a node
    of 8 (Llama 4 Maverick's 40 heads allow tp 8 at most), and the widest smaller weight dtype."""
    config, out = setup.config, []
    tp = setup.tp
    powers = [t for t in range(1, min(config.n_heads, 64) + 1) if config.n_heads % t == 0 and t & (t - 1) == 0]
    for t in (t for t in powers if t > tp):
        trial = resolve_setup(config, setup.gpu, **_keywords(setup, tp=t, n_gpus=None))
        if memory_at(trial, 1).total_bytes <= trial.usable_bytes:
            out.append(f"`tp` {t}")
            break
    else:
        node_tp = max(max(t for t in powers if t <= 8), tp)
        for pp in (p for p in (2, 4, 8, 16, 32) if setup.workload.pp < p <= config.n_layers):
            trial = resolve_setup(config, setup.gpu, **_keywords(setup, tp=node_tp, pp=pp, n_gpus=None))
            if memory_at(trial, 1).total_bytes <= trial.usable_bytes:
                out.append(f"`tp` {node_tp} `pp` {pp}")
                break
    width = weights_bytes(config, setup.dtype)
    for smaller in ("fp8", "int8", "int4"):
        if weights_bytes(config, smaller) >= width:
            continue
        trial = resolve_setup(config, setup.gpu, **_keywords(setup, dtype=smaller, kv_dtype=None))
        if memory_at(trial, 1).total_bytes <= trial.usable_bytes:
            out.append(f"`dtype` {smaller}" + (f" at `tp` {tp}" if tp > 1 else ""))
            break
    return tuple(out)


def _keywords(setup: ServingSetup, **changes: Any) -> dict[str, Any]:
    """`resolve_setup` keywords reproducing `setup`, with `changes`."""
    wl = setup.workload
    keywords = {
        "prompt_len": wl.prompt_len, "generate_len": wl.generate_len, "batch": setup.batch,
        "request_rate": setup.request_rate, "beam_width": setup.beam_width, "dtype": setup.dtype,
        "kv_dtype": setup.kv_dtype, "compute_dtype": None, "tp": wl.tp, "pp": wl.pp, "n_gpus": setup.n_gpus,
        "expert_parallel": setup.work.expert_parallel, "batching": "static" if wl.static else "continuous",
        "prefill_chunk": wl.token_budget, "gpu_memory_utilization": setup.gpu_memory_utilization,
        "reserve_fraction": None, "flop_efficiency": None, "bandwidth_efficiency": None,
        "link_bandwidth_bytes_per_s": setup.link_bandwidth_bytes_per_s, "allreduce_latency_s": None,
        "max_ttft_s": None, "max_tpot_s": None, "max_concurrency": setup.max_concurrency_cap,
        "prefix_hit_rate": wl.prefix_hit_rate, "draft": setup.draft, "draft_len": wl.draft_len,
        "acceptance_rate": wl.acceptance_rate, "usd_per_gpu_hour": setup.usd_per_gpu_hour, "flash": setup.flash,
    }  # fmt: skip
    return {**keywords, **changes}


# -- the load served -----------------------------------------------------------------------------------------


def _point(setup: ServingSetup, concurrency: int) -> LoadPoint:
    return load_point(setup.work, setup.hardware, setup.workload, concurrency)


def _meets(setup: ServingSetup, point: LoadPoint) -> bool:
    ttft_ok = setup.max_ttft_s is None or point.ttft_s <= setup.max_ttft_s
    return ttft_ok and (setup.max_tpot_s is None or point.tpot_s <= setup.max_tpot_s)


def _largest(setup: ServingSetup, top: int, accept: Any) -> int:
    """Largest load in [1, top] that `accept`s (latency grows with the load); 1 when none does."""
    if accept(top):
        return top
    low, high = 1, top
    if not accept(low):
        return 1
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if accept(middle) else (low, middle)
    return low


def choose_load(setup: ServingSetup, largest: int) -> tuple[int, str]:
    """Requests in flight per replica, and why: given; the largest meeting the latency targets; the load that
    serves `request_rate` (Little's law: in flight = rate per replica x request latency); else the
    maximum-throughput load, the most that fit up to the engine's cap on running sequences."""
    if setup.batch is not None:
        return setup.batch, "given"
    top = max(1, min(largest, setup.max_concurrency_cap))
    if setup.max_ttft_s is not None or setup.max_tpot_s is not None:
        return _largest(setup, top, lambda n: _meets(setup, _point(setup, n))), "latency targets"
    if setup.request_rate is not None:
        rate = setup.request_rate / setup.replicas

        def short_of_rate(n: int) -> bool:
            point = _point(setup, n)
            return n / point.request_latency_s < rate

        return min(top, _largest(setup, top, short_of_rate) + 1) if short_of_rate(1) else 1, "request rate"
    return top, "max throughput"


def curve(setup: ServingSetup, largest: int) -> tuple[CurvePoint, ...]:
    """Throughput against latency at 1, 2, 4, ... requests in flight up to the largest that fits."""
    if largest < 1:
        return ()
    loads = sorted({2**i for i in range(0, 20) if 2**i <= largest} | {largest})
    gpus = setup.gpus_per_replica
    out = []
    for n in loads:
        p = _point(setup, n)
        total = p.tokens_per_s * setup.replicas
        out.append(CurvePoint(n, p.ttft_s, p.tpot_s, p.request_latency_s, total, p.tokens_per_s / gpus))
    return tuple(out)


def costs(setup: ServingSetup, point: LoadPoint) -> dict[str, float | None]:
    """USD per million tokens: output (all GPU time), input (prefill time), output (decode time), blended.

    A replica of g GPUs costs g x price / 3600 USD per second. Per request it spends latency / in-flight
    seconds; the prefill share is the time its prompt's chunks add to the steps (`LoadPoint`).
    """
    names = ("usd_per_million_tokens", "usd_per_million_input_tokens", "usd_per_million_output_tokens",
             "usd_per_million_tokens_blended")  # fmt: skip
    if setup.usd_per_gpu_hour is None:
        return dict.fromkeys(names)
    usd_per_s = setup.usd_per_gpu_hour * setup.gpus_per_replica / SECONDS_PER_HOUR
    wl = setup.workload
    per_request_s = point.request_latency_s / point.concurrency
    prefill_s = min(point.prefill_seconds_per_request, per_request_s)
    return {
        names[0]: usd_per_s * per_request_s / wl.generate_len * 1e6,
        names[1]: usd_per_s * prefill_s / wl.prompt_len * 1e6,
        names[2]: usd_per_s * (per_request_s - prefill_s) / wl.generate_len * 1e6,
        names[3]: usd_per_s * per_request_s / (wl.prompt_len + wl.generate_len) * 1e6,
    }


def _step_record(point: LoadPoint, which: str) -> dict[str, Any]:
    return dataclasses.asdict(point.decode_step if which == "decode" else point.prefill_step)


# -- calibration from a bench JSON ---------------------------------------------------------------------------


def calibrate(setup: ServingSetup, calibration: BenchCalibration) -> tuple[ServingSetup, dict[str, Any]]:
    """`setup` with the attention rates a bench measured on the same GPU model, and what was used."""
    match = bench_device_matches(calibration, setup.gpu)
    if match is False:
        raise InvalidValueError(
            f"{calibration.source} was measured on {calibration.device!r}, not on {setup.gpu.display_name}: "
            "calibrate with a bench run on the same GPU model"
        )
    info: dict[str, Any] = {
        "source": calibration.source,
        "device": calibration.device,
        "device_check": "same model" if match else "bench names no device: assumed to be the same",
        "results_used": len(calibration.rows),
        "results_ignored": calibration.n_ignored,
    }
    wl, hw = setup.workload, setup.hardware
    changes: dict[str, float] = {}
    for phase, batch, seq in (("prefill", 1, wl.prompt_len), ("decode", 64, wl.prompt_len + wl.generate_len // 2)):
        dtype = setup.kv_dtype if phase == "decode" else setup.compute_dtype
        row = select_bench_row(calibration, setup.config, phase=phase, batch=batch, seq_len=seq, dtype=dtype)
        info[f"{phase}_result"] = None if row is None else row.describe()
        if row is None:
            continue
        info[f"{phase}_flop_per_s"], info[f"{phase}_bytes_per_s"] = row.achieved_flop_per_s, row.achieved_bytes_per_s
        if phase == "prefill":
            changes["attention_flop_fraction"] = row.achieved_flop_per_s / hw.attention_peak_flop_per_s
        else:
            changes["attention_bytes_per_s"] = row.achieved_bytes_per_s
    return dataclasses.replace(setup, hardware=dataclasses.replace(hw, **changes)), info


# -- assumptions ---------------------------------------------------------------------------------------------


def assumptions(setup: ServingSetup, load_source: str, calibration: dict[str, Any] | None) -> dict[str, Any]:
    """Every input and modelling choice behind an estimate, as plain data."""
    acc, eff, hw, wl, config = setup.gpu, setup.efficiency, setup.hardware, setup.workload, setup.config
    share = setup.work.kv_share
    if config.mla_kv_rank is not None:
        placement = f"MLA latent replicated on all {wl.tp} GPUs" if wl.tp > 1 else "MLA latent on one GPU"
    elif wl.tp == 1:
        placement = f"{config.n_kv_heads} KV heads on one GPU"
    else:
        placement = f"{config.n_kv_heads} KV heads split over {min(wl.tp, config.n_kv_heads)} GPUs"
        if wl.tp * share > 1:
            placement += f", each replicated {wl.tp * share:g}x (tp {wl.tp} > n_kv_heads)"
    return {
        "gpu": acc.name, "gpu_name": acc.display_name, "memory_bytes": acc.memory_bytes,
        "gpu_memory_utilization": setup.gpu_memory_utilization,
        "peak_flop_per_s": hw.matmul_peak_flop_per_s, "compute_dtype": setup.compute_dtype,
        "compute_dtype_source": setup.compute_source, "memory_bandwidth_bytes_per_s": acc.memory_bandwidth_bytes_per_s,
        "hardware_source": acc.source, "efficiency_row": eff.gpu, "efficiency_sources": list(eff.sources),
        "flop_efficiency": setup.flop_fraction, "gemm_m_half": hw.gemm_m_half,
        "bandwidth_efficiency": setup.hbm_fraction, "attention_flop_fraction": hw.attention_flop_fraction,
        "attention_bytes_per_s": hw.attention_bytes_per_s, "layer_overhead_s": hw.layer_overhead_s,
        "step_overhead_s": hw.step_overhead_s, "achievable_bytes_per_s": hw.bytes_per_s,
        "tp": wl.tp, "pp": wl.pp, "n_gpus": setup.n_gpus, "replicas": setup.replicas,
        "expert_parallel": setup.work.expert_parallel, "kv_placement": placement, "kv_copies": wl.tp * share,
        "link_bandwidth_bytes_per_s": setup.link_bandwidth_bytes_per_s,
        "allreduce_latency_s": hw.allreduce_latency_s, "allreduce_bus_fraction": eff.allreduce_bus_fraction,
        "batching": "static: the batch is prefilled, then decoded together" if wl.static else
        "continuous with chunked prefill (steady state at the load; closed loop)",
        "prefill_chunk": wl.token_budget, "load": load_source, "max_concurrency_cap": setup.max_concurrency_cap,
        "max_ttft_s": setup.max_ttft_s, "max_tpot_s": setup.max_tpot_s, "request_rate": setup.request_rate,
        "prefix_hit_rate": wl.prefix_hit_rate,
        "speculative": None if setup.draft is None else
        f"draft {setup.draft.name}, {wl.draft_len} tokens, acceptance {wl.acceptance_rate:g}",
        "kv_occupancy": "full context per request" if wl.static else "mean context per request (prompt + generate/2)",
        "moe_routing": "uniform: a step of T tokens reads n (1 - (1 - k/n)^T) of n routed experts per layer"
        if config.is_moe else None,
        "usd_per_gpu_hour": setup.usd_per_gpu_hour, "price_source": setup.price_source,
        "calibration": calibration, "flash": setup.flash,
        "left_off": "request-length variance, queueing beyond the closed loop, prefill/decode disaggregation, "
        "compute-communication overlap, paged-KV block rounding, CUDA-graph padding, preemption",
        "defaults": list(setup.defaults),
    }  # fmt: skip


# -- the estimate --------------------------------------------------------------------------------------------


def _queued(point: LoadPoint, load: int) -> LoadPoint:
    """`point` (at the most requests the memory holds) seen by `load` > that many closed-loop clients: the
    throughput stays, each request waits for a slot first (Little's law: latency = clients / request rate)."""
    latency = point.request_latency_s * load / point.concurrency
    wait = latency - point.request_latency_s
    return dataclasses.replace(point, ttft_s=point.ttft_s + wait, request_latency_s=latency)


def _timed(setup: ServingSetup, load: int, running: int) -> dict[str, Any]:
    """Times, throughput and cost with `load` requests per replica, `running` of them in flight at once."""
    point = _point(setup, running)
    if load > running:
        point = _queued(point, load)
    gpus = setup.gpus_per_replica
    out: dict[str, Any] = {
        "ttft_s": point.ttft_s, "tpot_s": point.tpot_s, "request_latency_s": point.request_latency_s,
        "tokens_per_s": point.tokens_per_s * setup.replicas, "tokens_per_s_per_replica": point.tokens_per_s,
        "tokens_per_s_per_gpu": point.tokens_per_s / gpus, "input_tokens_per_s": point.input_tokens_per_s *
        setup.replicas, "requests_per_s": load / point.request_latency_s * setup.replicas,
        "running_requests": running, "bound": point.decode_step.bound,
        "decode_step": MappingProxyType(_step_record(point, "decode")),
        "prefill_step": MappingProxyType(_step_record(point, "prefill")),
        "meets_targets": None if setup.max_ttft_s is None and setup.max_tpot_s is None else _meets(setup, point),
    }  # fmt: skip
    if setup.request_rate is not None and out["meets_targets"] is None:
        out["meets_targets"] = out["requests_per_s"] >= setup.request_rate * (1 - 1e-9)  # False: overloaded
    out.update(costs(setup, point))
    return out


_UNTIMED = dict.fromkeys(
    ("ttft_s", "tpot_s", "request_latency_s", "running_requests", "tokens_per_s", "tokens_per_s_per_replica",
     "tokens_per_s_per_gpu",
     "input_tokens_per_s", "requests_per_s", "bound", "decode_step", "prefill_step", "meets_targets",
     "usd_per_million_tokens", "usd_per_million_input_tokens", "usd_per_million_output_tokens",
     "usd_per_million_tokens_blended")
)  # fmt: skip


def estimate_inference(
    config: ArchConfig,
    gpu: str | Accelerator,
    *,
    prompt_len: int = DEFAULT_PROMPT_LEN,
    generate_len: int = DEFAULT_GENERATE_LEN,
    batch: int | None = None,
    request_rate: float | None = None,
    max_ttft_s: float | None = None,
    max_tpot_s: float | None = None,
    batching: str = "continuous",
    beam_width: int = 1,
    dtype: str = DEFAULT_DTYPE,
    kv_dtype: str | None = None,
    compute_dtype: str | None = None,
    tp: int = 1,
    pp: int = 1,
    n_gpus: int | None = None,
    expert_parallel: bool = False,
    prefill_chunk: int | None = DEFAULT_TOKEN_BUDGET,
    gpu_memory_utilization: float | None = None,
    reserve_fraction: float | None = None,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    prefix_hit_rate: float | None = None,
    draft: ArchConfig | None = None,
    draft_len: int = DEFAULT_DRAFT_LEN,
    acceptance_rate: float | None = None,
    flop_efficiency: float | None = None,
    bandwidth_efficiency: float | None = None,
    link_bandwidth_bytes_per_s: float | None = None,
    allreduce_latency_s: float | None = None,
    flash: bool = True,
    usd_per_gpu_hour: float | None = None,
    calibration: BenchCalibration | None = None,
) -> InferenceEstimate:
    """Estimate serving `config` on `gpu` (see the module docstring): memory and fit, the load, TTFT, TPOT,
    latency, tokens/s and cost per million input, output and blended tokens.

    batch: requests in flight per replica (default: chosen, see `choose_load`). batching "continuous"
    (chunked prefill in steps of `prefill_chunk` tokens; None: one step per prompt set) or "static".
    n_gpus (default tp x pp) must be a multiple of tp x pp; the replicas serve independently. kv_dtype
    defaults to the weights' for fp32/bf16/fp16 and to bf16 under a quantised scheme. draft: a draft model
    for speculative decoding (draft_len tokens, acceptance_rate). With `calibration` (a parsed bench JSON of
    the same GPU model) attention runs at the measured rates; the catalogued-rate times are kept beside.
    """
    keywords = {k: v for k, v in locals().items() if k not in ("config", "gpu", "calibration")}
    setup = resolve_setup(config, gpu, **keywords)
    plain = setup
    calibration_info = None
    if calibration is not None:
        setup, calibration_info = calibrate(setup, calibration)
    largest = largest_load(setup)
    load, source = choose_load(setup, largest)
    # Continuous batching admits what the KV cache holds and queues the rest; a static batch must fit whole.
    running = load if setup.workload.static else max(1, min(load, largest))
    memory = memory_at(setup, running)
    fits = memory.total_bytes <= setup.usable_bytes
    # A static batch beyond the memory is still timed (flagged fits=False): engines that allocate exactly what
    # the batch needs run batches a 0.9 utilisation would refuse; nothing is timed when one request cannot fit.
    timed = _timed(setup, load, running) if largest >= 1 else dict(_UNTIMED)
    default_times: tuple[float | None, float | None] = (None, None)
    if fits and calibration is not None:
        base = _point(plain, load)
        default_times = (base.ttft_s, base.tpot_s)
    context_len, limited = max_context_len(setup, load if setup.batch is not None else 1)
    wl = setup.workload
    needed = max(wl.prompt_len, wl.generate_len) if config.is_encoder_decoder else wl.prompt_len + wl.generate_len
    return InferenceEstimate(
        name=config.name, gpu=setup.gpu.name, n_gpus=setup.n_gpus, tp=wl.tp, pp=wl.pp, replicas=setup.replicas,
        dtype=setup.dtype, kv_dtype=setup.kv_dtype, compute_dtype=setup.compute_dtype, prompt_len=wl.prompt_len,
        generate_len=wl.generate_len, beam_width=setup.beam_width, batching="static" if wl.static else "continuous",
        batch=load, batch_given=setup.batch is not None, load_source=source, fits=fits,
        weights_bytes=memory.weights_bytes, kv_cache_bytes=memory.kv_cache_bytes,
        workspace_bytes=memory.workspace_bytes, total_bytes=memory.total_bytes, usable_bytes=setup.usable_bytes,
        kv_cache_bytes_per_sequence=memory.kv_cache_bytes_per_request, max_batch=largest,
        max_context_len=context_len, max_context_limited_by=limited, context_len=needed,
        max_seq_len=config.max_seq_len, exceeds_max_seq_len=needed > config.max_seq_len,
        ttft_default_s=default_times[0], tpot_default_s=default_times[1],
        curve=curve(setup, min(largest, setup.max_concurrency_cap)) if fits else (),
        suggestions=() if largest >= 1 else _suggest(setup),
        assumptions=MappingProxyType(assumptions(setup, source, calibration_info)), **timed,
    )  # fmt: skip


def context_sweep(
    config: ArchConfig, gpu: str | Accelerator, context_lens: list[int], **options: Any
) -> list[InferenceEstimate]:
    """`estimate_inference` at each total context length (prompt_len = context - generate_len), for plots.

    Contexts not longer than generate_len are skipped. `options` are estimate_inference's keywords.
    """
    generate = options.get("generate_len", DEFAULT_GENERATE_LEN)
    options = {k: v for k, v in options.items() if k != "prompt_len"}
    return [estimate_inference(config, gpu, prompt_len=n - generate, **options) for n in context_lens if n > generate]
