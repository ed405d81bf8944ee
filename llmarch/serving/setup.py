"""The resolved serving workload: every input checked and every default filled once, with its source.

`resolve_setup` turns `estimate_inference`'s keywords into a frozen `ServingSetup` (the GPU row, the
efficiency constants, the step model's hardware rates and per-token work, prices, batching settings); the
estimate's steps then only compute. Errors name the keyword argument (the CLI maps keywords to flags).
"""

from __future__ import annotations

import math
from typing import Any

from llmarch.calc.quant import check_kv_dtype, default_kv_dtype, quant_scheme
from llmarch.catalog.hardware import Accelerator, accelerator, canonical_peak_dtype, default_price
from llmarch.catalog.serving_efficiency import ServingEfficiency, serving_efficiency
from llmarch.core.checks import fraction, non_negative, positive, positive_int
from llmarch.core.config import ArchConfig
from llmarch.core.defaults import DEFAULT_ACCEPTANCE_RATE, DEFAULT_GPU_MEMORY_UTILIZATION
from llmarch.core.errors import InvalidValueError
from llmarch.core.frozen import frozen_dataclass
from llmarch.serving.batching import Workload
from llmarch.serving.step import Hardware, ModelWork, model_work

SECONDS_PER_HOUR = 3600.0
BATCHING_MODES = ("continuous", "static")


@frozen_dataclass
class ServingSetup:
    """Everything an estimate needs, resolved (see the module docstring)."""

    config: ArchConfig
    gpu: Accelerator
    efficiency: ServingEfficiency
    hardware: Hardware
    work: ModelWork
    workload: Workload
    dtype: str
    kv_dtype: str
    compute_dtype: str
    compute_source: str
    beam_width: int
    n_gpus: int
    replicas: int
    batch: int | None  # requests in flight, when given
    request_rate: float | None  # requests per second over all replicas, when given
    max_ttft_s: float | None
    max_tpot_s: float | None
    max_concurrency_cap: int
    gpu_memory_utilization: float
    usable_bytes: float
    flash: bool
    draft: ArchConfig | None
    usd_per_gpu_hour: float | None
    price_source: str
    link_bandwidth_bytes_per_s: float | None  # one direction, per GPU, before the achieved fraction
    flop_fraction: float
    hbm_fraction: float
    defaults: tuple[str, ...]

    @property
    def tp(self) -> int:
        return self.workload.tp

    @property
    def pp(self) -> int:
        return self.workload.pp

    @property
    def gpus_per_replica(self) -> int:
        return self.workload.tp * self.workload.pp


def resolve_compute_dtype(gpu: Accelerator, dtype: str, compute_dtype: str | None) -> tuple[str, str]:
    """The dtype whose dense peak the weight matmuls run at, and why.

    Given: that dtype (the GPU must have a peak for it). Otherwise the scheme's (`llmarch.calc.quant`):
    fp32/bf16/fp16 in their own dtype, FP8 at the FP8 peak, W8A8 at the INT8 peak, MXFP4/NVFP4 at the FP4
    peak, each where the GPU has that peak and else dequantised to 16 bits (FP8 weights on an A100 run as
    weight-only, as vLLM's Marlin kernels do); weight-only int8/int4 in 16 bits. 16 bits is bf16, or fp16 on
    a GPU without bf16 (V100).
    """
    if compute_dtype is not None:
        key = canonical_peak_dtype(compute_dtype)
        gpu.peak(key)  # raises, naming the dtypes the GPU has, when it has no such peak
        return key, "given"
    sixteen = "bf16" if "bf16" in gpu.peak_flop_per_s else "fp16"
    scheme = quant_scheme(dtype)
    wanted = {"native": scheme.name, "fp8": "fp8", "int8": "int8", "fp4": "fp4", "16-bit": sixteen}[scheme.compute]
    if wanted in gpu.peak_flop_per_s:
        return wanted, "weights dtype" if wanted == scheme.name else f"{scheme.name}: matmuls at the {wanted} peak"
    if scheme.compute == "16-bit":
        return sixteen, f"{scheme.name} taken as weight-only quantisation: matmuls in {sixteen}"
    return sixteen, f"{gpu.name} has no {wanted} peak: {scheme.name} weights are dequantised to {sixteen}"


def _link(acc: Accelerator, tp: int, given: float | None, defaults: list[str]) -> float | None:
    """One-direction GPU-to-GPU bandwidth per GPU (the catalog quotes both directions together)."""
    if given is not None:
        return positive("link_bandwidth_bytes_per_s", given)
    if acc.interconnect_bytes_per_s is not None:
        defaults.append("link_bandwidth_bytes_per_s")
        return acc.interconnect_bytes_per_s / 2
    if tp > 1:
        raise InvalidValueError(
            f"the catalog has no GPU-to-GPU bandwidth for {acc.name}; pass `link_bandwidth_bytes_per_s` "
            "(one direction, per GPU, e.g. 64GB for 64 GB/s) to model tensor parallelism"
        )
    return None


def _price(acc: Accelerator, given: float | None, defaults: list[str]) -> tuple[float | None, str]:
    if given is not None:
        return non_negative("usd_per_gpu_hour", given), "given"
    defaults.append("usd_per_gpu_hour")
    catalogued = default_price(acc.name)
    if catalogued is None:
        return None, f"unknown (no default price for {acc.name}); pass `usd_per_gpu_hour`"
    return catalogued.usd_per_gpu_hour, f"default on-demand price as of {catalogued.as_of} ({catalogued.source}); " \
        "not a quote"  # fmt: skip


def _parallelism(config: ArchConfig, tp: int, pp: int, n_gpus: int | None, defaults: list[str]) -> tuple[int, int]:
    """(n_gpus, replicas) after checking that tp divides the heads and pp the layers."""
    tp, pp = positive_int("tp", tp), positive_int("pp", pp)
    if config.n_heads % tp:
        raise InvalidValueError(f"`tp` {tp} must divide {config.name}'s n_heads ({config.n_heads})")
    if pp > config.n_layers:
        raise InvalidValueError(f"`pp` {pp} must not exceed {config.name}'s n_layers ({config.n_layers})")
    if n_gpus is None:
        n_gpus = tp * pp
        defaults.append("n_gpus")
    n_gpus = positive_int("n_gpus", n_gpus)
    if n_gpus % (tp * pp):
        raise InvalidValueError(f"`n_gpus` ({n_gpus}) must be a multiple of `tp` x `pp` ({tp * pp})")
    return n_gpus, n_gpus // (tp * pp)


def _optional(name: str, value: float | None, check: Any) -> float | None:
    return None if value is None else check(name, value)


#: The `Hardware` fields the efficiency catalog gives as they are (the rest scale a peak or a bandwidth).
_CATALOG_CONSTANTS = ("gemm_m_half", "attention_flop_fraction", "layer_overhead_s", "step_overhead_s",
                      "request_overhead_s", "allreduce_latency_s", "allreduce_hop_latency_s")  # fmt: skip


def _hardware(acc: Accelerator, eff: ServingEfficiency, compute: str, flop: float, hbm: float,
              link: float | None) -> Hardware:  # fmt: skip
    assert acc.memory_bandwidth_bytes_per_s is not None
    sixteen = "bf16" if "bf16" in acc.peak_flop_per_s else "fp16"
    bandwidth = acc.memory_bandwidth_bytes_per_s
    return Hardware(
        matmul_peak_flop_per_s=acc.peak(compute),
        attention_peak_flop_per_s=acc.peak(sixteen if compute != "fp32" else "fp32"),
        bytes_per_s=bandwidth * hbm,
        attention_bytes_per_s=bandwidth * eff.attention_hbm_fraction * hbm / eff.hbm_fraction,
        gemm_fraction=flop,
        link_bytes_per_s=math.inf if link is None else link * eff.allreduce_bus_fraction,
        **{name: getattr(eff, name) for name in _CATALOG_CONSTANTS},
    )


def resolve_setup(config: ArchConfig, gpu: str | Accelerator, **kw: Any) -> ServingSetup:
    """Check `estimate_inference`'s keywords and fill the defaults (recorded in `defaults`)."""
    defaults: list[str] = []
    acc = gpu if isinstance(gpu, Accelerator) else accelerator(gpu)
    if acc.memory_bandwidth_bytes_per_s is None:
        raise InvalidValueError(f"the catalog has no memory bandwidth for {acc.name}; choose another `gpu`")
    eff = serving_efficiency(acc.name)
    n_gpus, replicas = _parallelism(config, kw["tp"], kw["pp"], kw["n_gpus"], defaults)
    dtype = quant_scheme(kw["dtype"]).name
    if kw["kv_dtype"] is None:
        defaults.append("kv_dtype")
    kv_dtype = check_kv_dtype(kw["kv_dtype"] or default_kv_dtype(dtype))
    compute, compute_source = resolve_compute_dtype(acc, dtype, kw["compute_dtype"])
    flop = kw["flop_efficiency"]
    flop = eff.gemm(compute) if flop is None else fraction("flop_efficiency", flop, example="0.7 = 70%")
    hbm = kw["bandwidth_efficiency"]
    hbm = eff.hbm_fraction if hbm is None else fraction("bandwidth_efficiency", hbm, example="0.85 = 85%")
    link = _link(acc, kw["tp"], kw["link_bandwidth_bytes_per_s"], defaults)
    hardware = _hardware(acc, eff, compute, flop, hbm, link)
    if kw["allreduce_latency_s"] is not None:
        latency = non_negative("allreduce_latency_s", kw["allreduce_latency_s"])
        hardware = _replace(hardware, allreduce_latency_s=latency)
    utilization = _utilization(kw["gpu_memory_utilization"], kw["reserve_fraction"], defaults)
    price, price_source = _price(acc, kw["usd_per_gpu_hour"], defaults)
    workload = _workload(config, kw, dtype, kv_dtype)
    batch = None if kw["batch"] is None else positive_int("batch", kw["batch"])
    return ServingSetup(
        config=config, gpu=acc, efficiency=eff, hardware=hardware,
        work=model_work(config, dtype=dtype, kv_dtype=kv_dtype, tp=workload.tp,
                        expert_parallel=kw["expert_parallel"]),
        workload=workload, dtype=dtype, kv_dtype=kv_dtype, compute_dtype=compute, compute_source=compute_source,
        beam_width=positive_int("beam_width", kw["beam_width"]), n_gpus=n_gpus, replicas=replicas, batch=batch,
        request_rate=_optional("request_rate", kw["request_rate"], positive),
        max_ttft_s=_optional("max_ttft_s", kw["max_ttft_s"], positive),
        max_tpot_s=_optional("max_tpot_s", kw["max_tpot_s"], positive),
        max_concurrency_cap=positive_int("max_concurrency", kw["max_concurrency"]),
        gpu_memory_utilization=utilization, usable_bytes=acc.memory_bytes * utilization, flash=kw["flash"],
        draft=kw["draft"], usd_per_gpu_hour=price, price_source=price_source, link_bandwidth_bytes_per_s=link,
        flop_fraction=flop, hbm_fraction=hbm, defaults=tuple(defaults),
    )  # fmt: skip


def _replace(hardware: Hardware, **changes: float) -> Hardware:
    import dataclasses

    return dataclasses.replace(hardware, **changes)


def _utilization(utilization: float | None, reserve: float | None, defaults: list[str]) -> float:
    """Fraction of GPU memory the engine may use: given, or 1 - reserve_fraction, or 0.9."""
    if utilization is not None and reserve is not None:
        raise InvalidValueError("give gpu_memory_utilization or reserve_fraction, not both")
    if reserve is not None:
        if isinstance(reserve, bool) or not isinstance(reserve, (int, float)) or not 0 <= reserve < 1:
            raise InvalidValueError(f"reserve_fraction must be in [0, 1), got {reserve!r}")
        return 1.0 - reserve
    if utilization is None:
        defaults.append("gpu_memory_utilization")
        return DEFAULT_GPU_MEMORY_UTILIZATION
    return fraction("gpu_memory_utilization", utilization, example="0.9 = 90%")


def _workload(config: ArchConfig, kw: dict[str, Any], dtype: str, kv_dtype: str) -> Workload:
    batching = kw["batching"]
    if batching not in BATCHING_MODES:
        raise InvalidValueError(f"batching must be one of {', '.join(BATCHING_MODES)}, got {batching!r}")
    budget = kw["prefill_chunk"]
    prompt_len = positive_int("prompt_len", kw["prompt_len"])
    generate_len = positive_int("generate_len", kw["generate_len"])
    budget = prompt_len * max(1, kw["batch"] or 1) if budget is None else positive_int("prefill_chunk", budget)
    hit = kw["prefix_hit_rate"]
    hit = 0.0 if hit is None else non_negative("prefix_hit_rate", hit)
    if hit >= 1:
        raise InvalidValueError(f"prefix_hit_rate must be in [0, 1), got {hit!r}")
    draft = None
    if kw["draft"] is not None:
        draft = model_work(kw["draft"], dtype=dtype, kv_dtype=kv_dtype, tp=kw["tp"], expert_parallel=False)
    rate = kw["acceptance_rate"]
    rate = DEFAULT_ACCEPTANCE_RATE if rate is None else fraction("acceptance_rate", rate, example="0.7 = 70%")
    return Workload(
        prompt_len=prompt_len,
        generate_len=generate_len,
        tp=kw["tp"],
        pp=kw["pp"],
        token_budget=budget,
        static=batching == "static",
        prefix_hit_rate=hit,
        beam_width=kw["beam_width"],
        draft=draft,
        draft_len=positive_int("draft_len", kw["draft_len"]),
        acceptance_rate=rate,
    )
