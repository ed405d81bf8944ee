"""Accelerator catalog, grid carbon intensity and default prices: data files with a source on every row.

The numbers live in `llmarch/catalog/data/` (accelerators.json, grid_intensity.json, prices.json), never in code.
This module is the only reader: it loads each file once, checks every row strictly (a source on every
row, a year on every intensity, positive values, known dtypes) and looks names up exactly, with
close-match suggestions for a mistyped one.

Peak throughput is always the dense figure. Since Ampere, NVIDIA's datasheets headline tensor throughput
with 2:4 structured sparsity (footnoted "with sparsity"); the catalog stores half of that, the rate dense
training can reach (for example the H100 SXM's BF16 peak is 989.5 TFLOP/s, not the 1,979 of its datasheet).
"""

from __future__ import annotations

import difflib
import functools
import json
import math
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from llmarch.core.errors import InvalidValueError
from llmarch.core.frozen import frozen_dataclass
from llmarch.core.units import canonical_dtype

DATA_DIR = Path(__file__).resolve().parent / "data"

#: Dtypes a peak may be given for: the storage dtypes of llmarch.core.units, plus fp4 (Blackwell).
PEAK_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "fp4", "int8")


def canonical_peak_dtype(name: str) -> str:
    """The canonical name of a compute dtype ("bfloat16" -> "bf16"); fp4 is accepted beside units' dtypes."""
    key = name.strip().lower()
    if key == "fp4":
        return key
    dtype = canonical_dtype(key)
    if dtype not in PEAK_DTYPES:
        raise InvalidValueError(
            f"no peak throughput is catalogued for dtype {name!r}; use one of {', '.join(PEAK_DTYPES)}"
        )
    return dtype


# -- user catalogs ------------------------------------------------------------------------------------------

#: Environment variable naming user catalog files (several separated by the path separator, ':' on Unix).
CATALOG_ENV = "LLMARCH_CATALOG"
_given_catalogs: list[str] = []

#: The shipped file of each list a user catalog may hold, and the key naming a row in it.
_CATALOG_LISTS = {"accelerators": ("accelerators.json", "name"), "regions": ("grid_intensity.json", "region"),
                  "prices": ("prices.json", "accelerator")}  # fmt: skip


_flag_rows: list[dict[str, Any]] = []


def use_gpu_overrides(
    name: str,
    *,
    memory_bytes: float | None = None,
    bandwidth_bytes_per_s: float | None = None,
    peak_flop_per_s: Mapping[str, float] | None = None,
) -> None:
    """Override the memory, memory bandwidth or dense peaks of GPU `name` from now on (the CLI's --gpu-memory,
    --gpu-bandwidth, --gpu-peak), over the catalogs; a name no catalog has becomes a GPU of its own when the
    memory and a peak are given. `clear_gpu_overrides()` forgets them."""
    row: dict[str, Any] = {"name": name.strip()}
    if memory_bytes is not None:
        row["memory_gb"] = memory_bytes / 2**30  # the catalogs' GB are JEDEC GiB
    if bandwidth_bytes_per_s is not None:
        row["memory_bandwidth_tb_per_s"] = bandwidth_bytes_per_s / 1e12
    if peak_flop_per_s:
        row["peak_tflop_per_s"] = {dtype: value / 1e12 for dtype, value in peak_flop_per_s.items()}
    _flag_rows.append(row)


def clear_gpu_overrides() -> None:
    _flag_rows.clear()


def use_catalogs(paths: list[str] | tuple[str, ...]) -> None:
    """Read these user catalog files (after those of LLMARCH_CATALOG) from now on; [] forgets them."""
    _given_catalogs[:] = [str(p) for p in paths]


def user_catalogs() -> tuple[str, ...]:
    """The user catalog files in force: LLMARCH_CATALOG's, then those given to use_catalogs (later wins)."""
    import os

    from_env = [p for p in os.environ.get(CATALOG_ENV, "").split(os.pathsep) if p.strip()]
    flags = ["=" + json.dumps({"accelerators": _flag_rows}, sort_keys=True)] if _flag_rows else []
    return tuple(dict.fromkeys([*from_env, *_given_catalogs, *flags]))


@functools.lru_cache(maxsize=16)
def _read_user_catalog(path: str) -> dict[str, Any]:
    """A user catalog: a JSON or YAML mapping with any of the lists `accelerators`, `regions`, `prices`, whose
    rows have the shipped files' fields. Unknown top-level keys are errors (a misspelt list would vanish)."""
    import yaml

    if path.startswith("="):  # overrides given as flags (use_gpu_overrides), not a file
        return json.loads(path[1:])
    try:
        data = yaml.safe_load(Path(path).expanduser().read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidValueError(f"--catalog: cannot read {path!r}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise InvalidValueError(f"--catalog {path!r}: not YAML or JSON: {exc}".splitlines()[0]) from None
    allowed = {*_CATALOG_LISTS, "schema_version", "description", "units", "currency", "unit"}
    if not isinstance(data, dict) or not set(data) & set(_CATALOG_LISTS) or set(data) - allowed:
        unknown = sorted(set(data) - allowed) if isinstance(data, dict) else []
        extra = f" (unknown key {unknown[0]!r})" if unknown else ""
        raise InvalidValueError(f"--catalog {path!r}: expected a mapping with 'accelerators', 'regions' or 'prices' "
                                f"lists in the format of llmarch/catalog/data/*.json{extra}")  # fmt: skip
    for key in _CATALOG_LISTS:
        if key in data and not (isinstance(data[key], list) and all(isinstance(r, dict) for r in data[key])):
            raise InvalidValueError(f"--catalog {path!r}: {key!r} must be a list of mappings")
    return data


def _user_row(row: dict[str, Any], shipped: dict[str, Any] | None, *, kind: str, path: str) -> dict[str, Any]:
    """A user row over the shipped row of the same name (fields not given keep the shipped values), with the
    fields a user need not write filled in: the source is the user's file."""
    merged = {**(shipped or {}), **row}
    if isinstance((shipped or {}).get("peak_tflop_per_s"), dict) and isinstance(row.get("peak_tflop_per_s"), dict):
        merged["peak_tflop_per_s"] = {**shipped["peak_tflop_per_s"], **row["peak_tflop_per_s"]}  # type: ignore[index]
    required = {"accelerators": ("name", "peak_tflop_per_s", "memory_gb"), "regions": ("region", "kg_co2e_per_kwh",
                "year"), "prices": ("accelerator", "usd_per_gpu_hour", "as_of", "basis", "source")}[kind]  # fmt: skip
    missing = [key for key in required if key not in merged]
    if missing and path.startswith("="):
        raise InvalidValueError(f"unknown GPU {row.get('name')!r}: to define it by flags, give --gpu-memory and "
                                "--gpu-peak (and --gpu-bandwidth), or add it to a --catalog file")  # fmt: skip
    if missing:
        raise InvalidValueError(f"--catalog {path}: {kind} row {row.get(required[0], '?')!r}: missing {missing[0]!r}")
    origin = "--gpu-memory/--gpu-bandwidth/--gpu-peak" if path.startswith("=") else f"user catalog {path}"
    origin += " (over the catalog row)" if shipped else ""
    merged["source"] = row.get("source") or origin
    if kind == "accelerators":
        name = str(row.get("name", ""))
        for key, value in (("display_name", name), ("vendor", "user"), ("power_w", None),
                           ("power_basis", "not given"), ("memory_bandwidth_tb_per_s", None)):  # fmt: skip
            merged.setdefault(key, value)
        merged["source_read"] = row.get("source_read") or "as written in the user catalog"
    elif kind == "regions":
        merged["region"] = str(merged.get("region", "")).strip().lower()
        merged.setdefault("kind", "user")
        merged.setdefault("name", merged["region"])
    return merged


def _catalog_rows(kind: str, user: tuple[str, ...]) -> list[tuple[dict[str, Any], str]]:
    """(row, file) pairs of one list: the shipped rows, each user catalog's rows replacing or extending them
    by name (case ignored), in order."""
    file, key = _CATALOG_LISTS[kind]
    rows: dict[str, tuple[dict[str, Any], str]] = {}
    for row in _load_json(file)[kind]:
        name = str(row.get(key, ""))
        rows[name.casefold() if name.casefold() not in rows else f"{name}\0{len(rows)}"] = (row, file)
    for path in user:
        for row in _read_user_catalog(path).get(kind, []):
            name = str(row.get(key, "")).strip().casefold()
            shipped = rows.get(name)
            rows[name] = (_user_row(row, shipped[0] if shipped else None, kind=kind, path=path), path)
    return list(rows.values())


# -- accelerators ------------------------------------------------------------------------------------------


@frozen_dataclass
class Accelerator:
    """One accelerator of the catalog, in SI units (FLOP/s, bytes, bytes/s, W)."""

    name: str  # lookup key, e.g. "h100-sxm"
    display_name: str
    vendor: str
    peak_flop_per_s: Mapping[str, float]  # dtype -> dense peak FLOP/s per device (fp32: non-tensor rate)
    memory_bytes: float
    memory_bandwidth_bytes_per_s: float | None
    power_w: float | None  # TDP unless power_basis says otherwise; None where nothing is published
    power_basis: str
    source: str  # URL(s) of the vendor document(s)
    source_read: str  # how the source was read (directly, in a transcription, via secondary quotes)
    notes: tuple[str, ...] = ()
    # GPU-to-GPU bandwidth per device, both directions together (as NVLink is quoted); None: not catalogued
    interconnect_bytes_per_s: float | None = None
    interconnect: str = ""
    interconnect_source: str | None = None
    # Inter-node network per GPU, one direction (a node's NICs / its GPUs); None: not catalogued
    network_bytes_per_s: float | None = None
    network: str = ""
    network_source: str | None = None
    gpus_per_node: int | None = None  # GPUs in one NVLink domain of the reference server

    def peak(self, dtype: str) -> float:
        """Dense peak FLOP/s for `dtype`; InvalidValueError naming the dtypes it has when there is none."""
        key = canonical_peak_dtype(dtype)
        if key not in self.peak_flop_per_s:
            have = ", ".join(d for d in PEAK_DTYPES if d in self.peak_flop_per_s)
            raise InvalidValueError(f"{self.name} has no {key} peak in the catalog; use `dtype` with one of: {have}")
        return self.peak_flop_per_s[key]


def _gb(value: float | None) -> float | None:
    return None if value is None else value * 1e9


def _gbit(value: float | None) -> float | None:
    return None if value is None else value * 1e9 / 8


def _count(value: Any, *, file: str, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(file, where, f"must be a positive integer, got {value!r}")
    return value


def _fail(file: str, where: str, message: str) -> InvalidValueError:
    return InvalidValueError(f"{file}: {where}: {message}")


def _positive(value: Any, *, file: str, where: str, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise _fail(file, where, f"must be a positive number, got {value!r}")
    return float(value)


def _text(row: dict[str, Any], key: str, *, file: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _fail(file, where, f"field '{key}' must be a non-empty string")
    return value


def _row_key(row: dict[str, Any], key: str, *, allowed: set[str], file: str, what: str) -> tuple[str, str]:
    """(a catalog row's `key` text, its place in messages: `<what> 'name'`), after refusing fields not `allowed`."""
    value = _text(row, key, file=file, where="row")
    where = f"{what} {value!r}"
    unknown = set(row) - allowed
    if unknown:
        raise _fail(file, where, f"unknown field {sorted(unknown)[0]!r}")
    return value, where


def _load_json(name: str) -> dict[str, Any]:
    path = DATA_DIR / name
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("schema_version") != 1:
        raise _fail(name, "top level", "expected a mapping with schema_version 1")
    return data


_ACCELERATOR_KEYS = {"name", "display_name", "vendor", "peak_tflop_per_s", "memory_gb", "memory_bandwidth_tb_per_s",
                     "power_w", "power_basis", "source", "source_read", "notes", "interconnect_gb_per_s",
                     "interconnect", "interconnect_source", "network_gbit_per_s", "network", "network_source",
                     "gpus_per_node"}  # fmt: skip


@functools.cache
def _accelerators(user: tuple[str, ...] = ()) -> dict[str, Accelerator]:
    out: dict[str, Accelerator] = {}
    for row, file in _catalog_rows("accelerators", user):
        name, where = _row_key(row, "name", allowed=_ACCELERATOR_KEYS, file=file, what="accelerator")
        if name in out:
            raise _fail(file, where, "listed twice")
        peaks: dict[str, float] = {}
        for dtype, tflops in row["peak_tflop_per_s"].items():
            if dtype not in PEAK_DTYPES:
                raise _fail(file, where, f"unknown dtype {dtype!r} in peak_tflop_per_s")
            value = _positive(tflops, file=file, where=f"{where} peak {dtype}")
            assert value is not None
            peaks[dtype] = value * 1e12
        bandwidth = _positive(row["memory_bandwidth_tb_per_s"], file=file, where=where, allow_none=True)
        memory = _positive(row["memory_gb"], file=file, where=f"{where} memory_gb")
        assert memory is not None
        out[name] = Accelerator(
            name=name,
            display_name=_text(row, "display_name", file=file, where=where),
            vendor=_text(row, "vendor", file=file, where=where),
            peak_flop_per_s=MappingProxyType(peaks),
            # Memory capacities are marketed in JEDEC units: an "80GB" A100 holds 80 x 2^30 bytes (nvidia-smi
            # shows 81,920 MiB less a few hundred MiB reserved), so 2^30, not 10^9 (which would be 7% short).
            memory_bytes=memory * 2**30,
            memory_bandwidth_bytes_per_s=None if bandwidth is None else bandwidth * 1e12,
            power_w=_positive(row["power_w"], file=file, where=f"{where} power_w", allow_none=True),
            power_basis=_text(row, "power_basis", file=file, where=where),
            source=_text(row, "source", file=file, where=where),
            source_read=_text(row, "source_read", file=file, where=where),
            interconnect_bytes_per_s=_gb(
                _positive(
                    row.get("interconnect_gb_per_s"), file=file, where=f"{where} interconnect_gb_per_s", allow_none=True
                )
            ),
            interconnect=str(row.get("interconnect") or ""),
            interconnect_source=row.get("interconnect_source"),
            network_bytes_per_s=_gbit(
                _positive(
                    row.get("network_gbit_per_s"), file=file, where=f"{where} network_gbit_per_s", allow_none=True
                )
            ),
            network=str(row.get("network") or ""),
            network_source=row.get("network_source"),
            gpus_per_node=_count(row.get("gpus_per_node"), file=file, where=f"{where} gpus_per_node"),
            notes=tuple(row.get("notes", ())),
        )
    return out


def accelerator_names() -> list[str]:
    """Catalog names, in catalog order (by vendor and generation)."""
    return list(_accelerators(user_catalogs()))


def accelerators() -> list[Accelerator]:
    return list(_accelerators(user_catalogs()).values())


def _suggest(name: str, names: list[str]) -> list[str]:
    """Close matches for a mistyped name, ignoring case and punctuation ("H100" -> "h100-sxm", ...)."""

    def squash(s: str) -> str:
        return "".join(ch for ch in s.lower() if ch.isalnum())

    squashed = {squash(n): n for n in names}
    starts = [n for s, n in squashed.items() if squash(name) and s.startswith(squash(name))]
    close = difflib.get_close_matches(squash(name), list(squashed), n=3, cutoff=0.6)
    return list(dict.fromkeys(starts[:3] + [squashed[c] for c in close]))[:4]


def accelerator(name: str) -> Accelerator:
    """The catalog row named `name` (case ignored); InvalidValueError with suggestions otherwise."""
    table = _accelerators(user_catalogs())
    if name in table:
        return table[name]
    folded = {key.casefold(): key for key in table}
    if name.strip().casefold() in folded:  # GPU ids ignore case: "H100-SXM" is "h100-sxm"
        return table[folded[name.strip().casefold()]]
    close = _suggest(name, list(table))
    hint = "; did you mean " + ", ".join(repr(c) for c in close) + "?" if close else ""
    raise InvalidValueError(f"unknown GPU {name!r}{hint} (run 'llmarch gpus' for the catalog)")


# -- training efficiency (achievable fractions of the peaks, from public microbenchmarks) ------------------


@frozen_dataclass
class TrainingEfficiency:
    """Achievable fractions of one GPU type's peaks, each from a public microbenchmark (never a training run).

    Read by llmarch.calc.step_time; see data/training_efficiency.json for the units and the sources.
    """

    gpu: str  # the catalog name this row was looked up for
    row: str  # the data row used: a GPU name, or "generic" for a GPU without its own row
    gemm_fraction: Mapping[str, float]  # dtype -> large-GEMM FLOP/s / dense peak
    gemm_half_dim: float  # GEMM dimension scaling the efficiency by x / (x + gemm_half_dim)
    attention_fraction: float  # FlashAttention forward+backward FLOP/s / bf16 peak, long sequences
    attention_half_seq: float  # sequence length at half the long-sequence attention efficiency
    hbm_fraction: float  # element-wise kernels: achieved / catalog HBM bandwidth
    nvlink_busbw_bytes_per_s: float  # nccl-tests all_reduce bus bandwidth within a node
    network_fraction: float  # nccl-tests bus bandwidth across nodes / per-GPU line rate x GPUs per node
    intra_node_latency_s: float
    inter_node_latency_s: float
    step_overhead_s: float
    comm_sm_fraction: float  # share of SMs NCCL kernels occupy while overlapping compute
    sources: Mapping[str, str]

    def gemm(self, dtype: str) -> float:
        """Large-GEMM fraction of the dense peak for `dtype` (falls back to bf16's for a dtype without one)."""
        return self.gemm_fraction.get(canonical_peak_dtype(dtype), self.gemm_fraction["bf16"])


_EFFICIENCY_FIELDS = ("gpu", "gemm_fraction", "gemm_half_dim", "gemm_source", "attention_fraction",
                      "attention_half_seq", "attention_source", "hbm_fraction", "hbm_source", "nvlink_busbw_gb_per_s",
                      "network_fraction", "latency_us", "collective_source", "step_overhead_s",
                      "comm_sm_fraction")  # fmt: skip


@functools.cache
def _efficiency_rows() -> dict[str, dict[str, Any]]:
    file = "training_efficiency.json"
    out: dict[str, dict[str, Any]] = {}
    for row in _load_json(file)["rows"]:
        names = row.get("gpu")
        where = f"row {names!r}"
        if set(row) != set(_EFFICIENCY_FIELDS):
            raise _fail(file, where, f"fields must be exactly {', '.join(_EFFICIENCY_FIELDS)}")
        for key in ("gemm_half_dim", "attention_half_seq", "nvlink_busbw_gb_per_s", "step_overhead_s"):
            _positive(row[key], file=file, where=f"{where} {key}")
        for key in (
            "attention_fraction",
            "hbm_fraction",
            "network_fraction",
            "comm_sm_fraction",
            *row["gemm_fraction"].values(),
        ):
            value = row[key] if isinstance(key, str) else key
            if not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise _fail(file, where, f"fractions must be in (0, 1], got {value!r}")
        for source in ("gemm_source", "attention_source", "hbm_source", "collective_source"):
            _text(row, source, file=file, where=where)
        for name in names:
            if name != "generic" and name not in _accelerators():
                raise _fail(file, where, f"names no catalogued accelerator: {name!r}")
            out[name] = row
    if "generic" not in out:
        raise _fail(file, "rows", "a 'generic' row is required")
    return out


def training_efficiency(gpu: str | Accelerator) -> TrainingEfficiency:
    """The efficiency row of `gpu` (catalog name or Accelerator); the 'generic' row when it has none."""
    name = gpu.name if isinstance(gpu, Accelerator) else accelerator(gpu).name
    rows = _efficiency_rows()
    key = name if name in rows else "generic"
    row = rows[key]
    intra, inter = row["latency_us"]
    return TrainingEfficiency(
        gpu=name,
        row=key,
        gemm_fraction=MappingProxyType({canonical_peak_dtype(k): float(v) for k, v in row["gemm_fraction"].items()}),
        gemm_half_dim=float(row["gemm_half_dim"]),
        attention_fraction=float(row["attention_fraction"]),
        attention_half_seq=float(row["attention_half_seq"]),
        hbm_fraction=float(row["hbm_fraction"]),
        nvlink_busbw_bytes_per_s=float(row["nvlink_busbw_gb_per_s"]) * 1e9,
        network_fraction=float(row["network_fraction"]),
        intra_node_latency_s=float(intra) * 1e-6,
        inter_node_latency_s=float(inter) * 1e-6,
        step_overhead_s=float(row["step_overhead_s"]),
        comm_sm_fraction=float(row["comm_sm_fraction"]),
        sources=MappingProxyType(
            {k: row[k] for k in ("gemm_source", "attention_source", "hbm_source", "collective_source")}
        ),
    )


# -- grid carbon intensity ------------------------------------------------------------------------------


@frozen_dataclass
class GridIntensity:
    """Carbon intensity of the electricity in one region (location-based annual average)."""

    region: str  # lookup key: "fra", "us-ca", "gcp:us-central1", "nordic:se3", or an alias ("us", "world")
    kind: str  # country, us-state, cloud-region, bidding-zone, alias
    name: str
    kg_co2e_per_kwh: float
    year: int  # year of the data (for aliases taken from a paper: see note)
    source: str
    note: str = ""


_GRID_KEYS = {"region", "kind", "name", "kg_co2e_per_kwh", "year", "source", "note"}


@functools.cache
def _grid(user: tuple[str, ...] = ()) -> dict[str, GridIntensity]:
    out: dict[str, GridIntensity] = {}
    for row, file in _catalog_rows("regions", user):
        region, where = _row_key(row, "region", allowed=_GRID_KEYS, file=file, what="region")
        if region in out or region != region.lower():  # user rows are lower-cased when read
            raise _fail(file, where, "keys must be unique and lower case")
        intensity = row["kg_co2e_per_kwh"]
        if isinstance(intensity, bool) or not isinstance(intensity, (int, float)) or not 0 <= intensity < 2:
            raise _fail(file, where, f"kg_co2e_per_kwh must be in [0, 2), got {intensity!r}")
        year = row.get("year")
        if isinstance(year, bool) or not isinstance(year, int) or not 1990 <= year <= 2100:
            raise _fail(file, where, f"year must be a calendar year, got {year!r}")
        out[region] = GridIntensity(
            region=region,
            kind=_text(row, "kind", file=file, where=where),
            name=_text(row, "name", file=file, where=where),
            kg_co2e_per_kwh=float(intensity),
            year=year,
            source=_text(row, "source", file=file, where=where),
            note=row.get("note", ""),
        )
    return out


def grid_regions() -> list[GridIntensity]:
    return list(_grid(user_catalogs()).values())


def grid_intensity(region: str) -> GridIntensity:
    """Grid intensity of `region` (case-insensitive key); InvalidValueError with suggestions otherwise.

    Keys: ISO-3 country codes ("fra"), US states ("us-ca"), cloud regions ("gcp:us-central1", "aws:us-east-1",
    "azure:eastus"),
    Nordic bidding zones ("nordic:se3"), and aliases: "us" (0.385, the US average LLaMA and Llama 2
    used), "us-egrid" (eGRID2023), "world", "paper:bloom", "paper:palm", "paper:gpt-3".
    """
    table = _grid(user_catalogs())
    key = region.strip().lower()
    if key in table:
        return table[key]
    by_name = [g.region for g in table.values() if g.name.lower() == key]
    close = by_name or _cloud_matches(key, list(table)) or _suggest(key, list(table))
    hint = "; did you mean " + ", ".join(repr(c) for c in close) + "?" if close else ""
    raise InvalidValueError(
        f"unknown region {region!r}{hint} (ISO-3 country like 'fra', US state like 'us-ca', cloud region like "
        "'aws:us-east-1'; run 'llmarch regions' for the list, or pass `grid_kg_co2e_per_kwh`)"
    )


def _cloud_matches(key: str, regions: list[str]) -> list[str]:
    """Cloud regions whose own code is `key` ("us-east-1" -> "aws:us-east-1", "eastus" -> "azure:eastus"):
    the provider's code spelled exactly, never a look-alike of another provider's (gcp:us-east1 is South
    Carolina, AWS us-east-1 Virginia)."""
    return [r for r in regions if ":" in r and r.split(":", 1)[1] == key]


# -- prices -------------------------------------------------------------------------------------------------


@frozen_dataclass
class GpuPrice:
    """A default on-demand price: typical, dated and always overridable (not a fact about the hardware)."""

    accelerator: str
    usd_per_gpu_hour: float
    as_of: str  # "YYYY-MM"
    basis: str
    source: str


@functools.cache
def _prices(user: tuple[str, ...] = ()) -> dict[str, GpuPrice]:
    out: dict[str, GpuPrice] = {}
    for row, file in _catalog_rows("prices", user):
        name = _text(row, "accelerator", file=file, where="row")
        where = f"price of {name!r}"
        if name.casefold() not in {a.casefold() for a in _accelerators(user)}:
            raise _fail(file, where, "names no catalogued accelerator")
        value = _positive(row["usd_per_gpu_hour"], file=file, where=where)
        assert value is not None
        out[name.casefold()] = GpuPrice(
            accelerator=name,
            usd_per_gpu_hour=value,
            as_of=_text(row, "as_of", file=file, where=where),
            basis=_text(row, "basis", file=file, where=where),
            source=_text(row, "source", file=file, where=where),
        )
    return out


def default_price(accelerator_name: str) -> GpuPrice | None:
    """The default price of an accelerator, or None when the catalog has none (pass a price instead)."""
    return _prices(user_catalogs()).get(accelerator_name.casefold())


# -- plain-data views (for `llmarch gpus` and `llmarch regions`) ----------------------------------------------


def catalog_records() -> list[dict[str, Any]]:
    """Every accelerator as plain data in SI units, with its default price (None where there is none)."""
    records = []
    for acc in accelerators():
        price = default_price(acc.name)
        records.append(
            {
                "name": acc.name,
                "display_name": acc.display_name,
                "vendor": acc.vendor,
                "peak_flop_per_s": dict(acc.peak_flop_per_s),
                "memory_bytes": acc.memory_bytes,
                "memory_bandwidth_bytes_per_s": acc.memory_bandwidth_bytes_per_s,
                "interconnect_bytes_per_s": acc.interconnect_bytes_per_s,
                "interconnect": acc.interconnect,
                "power_w": acc.power_w,
                "power_basis": acc.power_basis,
                "usd_per_gpu_hour": None if price is None else price.usd_per_gpu_hour,
                "price_as_of": None if price is None else price.as_of,
                "price_source": None if price is None else price.source,
                "source": acc.source,
                "source_read": acc.source_read,
                "notes": list(acc.notes),
            }
        )
    return records


def region_records(*, kind: str | None = None) -> list[dict[str, Any]]:
    """Every grid region as plain data, optionally only one kind (country, us-state, cloud-region, ...)."""
    regions = grid_regions()
    kinds = sorted({g.kind for g in regions})
    if kind is not None and kind not in kinds:
        raise InvalidValueError(f"unknown region kind {kind!r}; use one of {', '.join(kinds)}")
    return [
        {
            "region": g.region,
            "kind": g.kind,
            "name": g.name,
            "kg_co2e_per_kwh": g.kg_co2e_per_kwh,
            "year": g.year,
            "source": g.source,
            "note": g.note,
        }
        for g in regions
        if kind is None or g.kind == kind
    ]
