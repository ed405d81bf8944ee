"""Workload files: one YAML or JSON document that writes a training or serving setup down once, read by
`compare`, `memory`, `plan`, `estimate-cost`, `estimate-inference` and `report` (`--workload FILE`).

Keys are the commands' option names in snake_case (`--seq-len` is `seq_len`). Keys at the top level are
shared by every command; a `training:` section applies to the training commands (memory, plan,
estimate-cost, and the training sections of report) and a `serving:` section to estimate-inference and the
serving sections of report, each over the top level. A key a command has no option for is ignored by that
command; a key no command knows is an error with a suggestion; an option given on the command line wins
over the file. Example::

    presets: [llama-3-8b, mistral-7b]
    gpu: h100-sxm
    seq_len: 8k          # lengths take binary k: 8k = 8192
    dtype: bf16
    training:
      n_gpus: 256
      tp: 4
      tokens: 2T
      region: aws:us-east-1
    serving:
      prompt_len: 32k
      generate_len: 512
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

from llmarch.core.errors import InvalidValueError
from llmarch.core.frozen import frozen_dataclass

#: The sections a workload may have beside its top-level keys, and the commands each applies to.
SECTIONS: dict[str, tuple[str, ...]] = {
    "training": ("memory", "plan", "estimate-cost", "report"),
    "serving": ("estimate-inference", "report"),
}

#: Every key a workload may hold: its kind (how a value is read) and what it means. Kinds: length (tokens,
#: binary k), count (decimal suffixes), number, text, flag (true/false), names (a list of preset names).
WORKLOAD_KEYS: dict[str, tuple[str, str]] = {
    "presets": ("names", "Preset names, files or overrides to run when none is given on the command line."),
    "gpu": ("text", "Accelerator from 'llmarch gpus' (or a user catalog)."),
    "catalog": ("text", "A user accelerator/region catalog file (see --catalog)."),
    "gpu_memory": ("text", "Memory of one GPU, e.g. 80GiB (overrides the catalog's)."),
    "gpu_bandwidth": ("text", "Memory bandwidth of one GPU, e.g. 3.35TB/s (overrides the catalog's)."),
    "gpu_peak": ("text", "Dense peak of one GPU in FLOP/s, e.g. 989T (overrides the catalog's)."),
    "n_gpus": ("count", "GPUs in all."),
    "tp": ("count", "Tensor-parallel GPUs."),
    "pp": ("count", "Pipeline-parallel stages."),
    "zero": ("count", "ZeRO stage 0-3."),
    "seq_len": ("length", "Tokens per sequence: training length, context of compare and memory."),
    "batch": ("count", "Sequences in the KV cache / served together."),
    "micro_batch": ("count", "Training sequences per micro-batch on one GPU."),
    "cp": ("count", "Context-parallel GPUs (plan)."),
    "ep": ("count", "Expert-parallel GPUs (plan)."),
    "virtual_stages": ("count", "Interleaved pipeline stages per GPU (plan)."),
    "gpus_per_node": ("count", "GPUs per node: the NVLink domain (plan)."),
    "grad_dtype": ("text", "Gradient dtype (plan)."),
    "global_batch": ("count", "Training sequences per optimizer step."),
    "tokens": ("text", "Training tokens (2T, 1.4e12) or 'chinchilla'."),
    "dtype": ("text", "Weight dtype: fp32, bf16, fp16, fp8, int8, int4."),
    "kv_dtype": ("text", "KV-cache dtype."),
    "compute_dtype": ("text", "Dtype whose peak FLOP/s the matmuls run at."),
    "checkpoint_dtype": ("text", "Dtype the checkpoint saves the weights in."),
    "recompute": ("text", "Activation recomputation: none, selective or full."),
    "sequence_parallel": ("flag", "Megatron sequence parallelism."),
    "flash": ("flag", "Fused attention (no seq x seq scores stored)."),
    "dropout": ("flag", "Training with dropout."),
    "mfu": ("number", "Model FLOPs utilisation, a fraction in (0, 1]."),
    "flops_method": ("text", "exact or 6nd."),
    "price_per_gpu_hour": ("number", "USD per GPU-hour."),
    "pue": ("number", "Data-centre power usage effectiveness."),
    "region": ("text", "Grid region from 'llmarch regions', e.g. aws:us-east-1, fra."),
    "grid_intensity": ("number", "Grid carbon intensity in kg CO2e per kWh."),
    "power_w": ("number", "Power per device in W."),
    "node_overhead_w": ("number", "Host, network and cooling-fan power per GPU in W, beyond the GPU itself."),
    "reserve_fraction": ("number", "Fraction of GPU memory kept free when fitting."),
    "prompt_len": ("length", "Serving: prompt tokens per request."),
    "generate_len": ("length", "Serving: generated tokens per request."),
    "beam_width": ("count", "Serving: beams per request."),
    "prefill_chunk": ("length", "Serving: tokens per prefill pass."),
    "flop_efficiency": ("number", "Serving: achievable fraction of the dense peak."),
    "bandwidth_efficiency": ("number", "Serving: achievable fraction of the memory bandwidth."),
    "max_cost": ("number", "Budget in USD: exit 3 when exceeded."),
    "max_co2e": ("number", "Budget in kg CO2e: exit 3 when exceeded."),
    "max_days": ("number", "Budget in wall-clock days: exit 3 when exceeded."),
}

#: Other spellings people write, and the key each means (the commands' short option aliases).
ALIASES = {"prompt": "prompt_len", "generate": "generate_len"}


@frozen_dataclass
class Workload:
    """A parsed workload file: top-level keys and the `training` / `serving` sections, values as written
    (already checked: lengths and counts are whole numbers, flags are booleans, numbers are numbers)."""

    source: str
    shared: Mapping[str, Any]
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def settings_for(self, command: str) -> dict[str, Any]:
        """The settings `command` reads: the top level, then each section that applies to it over it."""
        merged = dict(self.shared)
        for section, commands in SECTIONS.items():
            if command in commands and command != "report":
                merged.update(self.sections.get(section, {}))
        return merged

    def section(self, name: str) -> dict[str, Any]:
        """The top level with section `name` over it (what report's training or serving part reads)."""
        return {**self.shared, **self.sections.get(name, {})}

    def to_record(self) -> dict[str, Any]:
        return {"source": self.source, **dict(self.shared), **{k: dict(v) for k, v in self.sections.items()}}


def _suggestion(key: str) -> str:
    close = difflib.get_close_matches(key, [*WORKLOAD_KEYS, *SECTIONS, *ALIASES], n=1, cutoff=0.6)
    dashed = key.replace("-", "_")
    if dashed in WORKLOAD_KEYS:
        return f"; write option names in snake_case: {dashed!r}"
    return f"; did you mean {close[0]!r}?" if close else "; see the keys in 'llmarch.catalog.workload'"


def check_value(key: str, value: Any, *, where: str) -> Any:
    """`value` of workload key `key` checked and normalised ("32k" -> 32768 for lengths); InvalidValueError
    naming the file and key otherwise."""
    from llmarch.core.units import parse_count, parse_length

    kind = WORKLOAD_KEYS[key][0]
    what = f"{where}: {key}"
    if kind in ("length", "count"):
        number = (parse_length if kind == "length" else parse_count)(value, what=what)
        if not number.is_integer():
            raise InvalidValueError(f"{what}: must be a whole number, got {value!r}")
        return int(number)
    if kind == "number":
        return parse_count(value, what=what)
    if kind == "flag":
        if not isinstance(value, bool):
            raise InvalidValueError(f"{what}: must be true or false, got {value!r}")
        return value
    if kind == "names":
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise InvalidValueError(f"{what}: must be a preset name or a list of them, got {value!r}")
        return [n.strip() for n in names]
    if isinstance(value, (dict, list)) or value is None:
        raise InvalidValueError(f"{what}: must be a single value, got {value!r}")
    return str(value) if not isinstance(value, bool) else str(value).lower()


def _read_keys(data: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = ALIASES.get(str(raw_key), str(raw_key))
        if key not in WORKLOAD_KEYS:
            raise InvalidValueError(f"{where}: unknown key {raw_key!r}{_suggestion(str(raw_key))}")
        if key in out:
            raise InvalidValueError(f"{where}: {key!r} is given twice (once as {raw_key!r})")
        out[key] = check_value(key, value, where=where)
    return out


def parse_workload(data: Any, *, source: str) -> Workload:
    """A Workload from a parsed document (a mapping); InvalidValueError naming `source` otherwise."""
    if not isinstance(data, Mapping):
        raise InvalidValueError(f"--workload {source}: expected a mapping of option names to values")
    shared = {k: v for k, v in data.items() if k not in SECTIONS}
    sections: dict[str, dict[str, Any]] = {}
    for name in SECTIONS:
        if name in data:
            section = data[name]
            if not isinstance(section, Mapping):
                raise InvalidValueError(f"--workload {source}: {name!r} must be a mapping of option names to values")
            sections[name] = _read_keys(section, where=f"--workload {source}: {name}")
    return Workload(source=source, shared=_read_keys(shared, where=f"--workload {source}"), sections=sections)


def read_workload(path: str | Path) -> Workload:
    """Read a workload file (YAML or JSON); InvalidValueError naming the file and the problem."""
    import yaml

    target = Path(path).expanduser()
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidValueError(f"--workload: cannot read {str(path)!r}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidValueError(f"--workload {str(path)!r}: not YAML or JSON: {exc}".splitlines()[0]) from None
    return parse_workload(data, source=str(path))
