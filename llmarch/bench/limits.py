"""How much memory a benchmark may still use: the tightest of free RAM, the process's rlimits and its cgroup.

A CI job runs under limits free RAM does not show: `ulimit -v` (RLIMIT_AS, counted on the process's virtual
size), RLIMIT_DATA (its heap and anonymous mappings), and the memory controller of its container (cgroup v2
`memory.max`, v1 `memory.limit_in_bytes`), where going over the limit gets the process killed rather than an
error. Each is turned into "bytes still available"; the smallest wins and is named in skip reasons.

Torch-free (CUDA's free memory is asked of torch in the harness). Paths are parameters so tests can build
a fake /proc and /sys/fs/cgroup.
"""

from __future__ import annotations

import os
from pathlib import Path

from llmarch.core.frozen import frozen_dataclass

#: cgroup v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX x page size, about 2^63).
_V1_UNLIMITED = 2**60


@frozen_dataclass
class Available:
    """Bytes still available under one limit, and which limit it is."""

    bytes: float
    limit: str  # "MemAvailable", "RLIMIT_AS", "RLIMIT_DATA", "cgroup memory.max", "cgroup memory.limit_in_bytes"


def available_memory(*, proc: str | Path = "/proc", cgroup_root: str | Path = "/sys/fs/cgroup") -> Available | None:
    """The tightest of every limit that applies to this process (None when none can be read)."""
    proc = Path(proc)
    found = [
        *_meminfo(proc),
        *_rlimits(proc),
        *_cgroup(proc, Path(cgroup_root)),
    ]
    return min(found, key=lambda a: a.bytes) if found else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def _field_kib(text: str | None, key: str) -> float | None:
    """A "Key:   123 kB" line of /proc/meminfo or /proc/self/status, in bytes."""
    for line in (text or "").splitlines():
        if line.startswith(key + ":"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return float(parts[1]) * 1024
    return None


def _meminfo(proc: Path) -> list[Available]:
    free = _field_kib(_read(proc / "meminfo"), "MemAvailable")
    if free is None:  # no /proc/meminfo: the free pages the C library reports
        try:
            free = float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return []
    return [Available(free, "MemAvailable")]


def _rlimits(proc: Path, limits: dict[str, float | None] | None = None) -> list[Available]:
    """RLIMIT_AS less the virtual size (VmSize), RLIMIT_DATA less the data segment (VmData)."""
    limits = limits if limits is not None else rlimits()
    status = _read(proc / "self" / "status")
    found = []
    for name, used_key in (("RLIMIT_AS", "VmSize"), ("RLIMIT_DATA", "VmData")):
        limit = limits.get(name)
        if limit is None:
            continue
        used = _field_kib(status, used_key) or 0.0
        found.append(Available(max(0.0, limit - used), name))
    return found


def rlimits() -> dict[str, float | None]:
    """The soft RLIMIT_AS and RLIMIT_DATA of this process in bytes (None: unlimited or unknown)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return {}
    found: dict[str, float | None] = {}
    for name in ("RLIMIT_AS", "RLIMIT_DATA"):
        soft = resource.getrlimit(getattr(resource, name))[0]
        found[name] = None if soft == resource.RLIM_INFINITY or soft < 0 else float(soft)
    return found


def _cgroup(proc: Path, root: Path) -> list[Available]:
    """The memory controller's limit less usage (inactive page cache counted as free, as the kernel can
    drop it), for the process's cgroup and every ancestor: a parent's limit binds its children."""
    found = []
    for line in (_read(proc / "self" / "cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":  # v2: one unified hierarchy
            found += _walk(root, path, "memory.max", "memory.current", "inactive_file", "cgroup memory.max")
        elif "memory" in controllers.split(","):  # v1: the memory controller's own hierarchy
            found += _walk(root / "memory", path, "memory.limit_in_bytes", "memory.usage_in_bytes",
                           "total_inactive_file", "cgroup memory.limit_in_bytes")  # fmt: skip
    return found


def _walk(base: Path, path: str, limit_file: str, usage_file: str, inactive_key: str, label: str) -> list[Available]:
    found = []
    parts = [p for p in path.strip().split("/") if p and p not in (".", "..")]
    for depth in range(len(parts), -1, -1):
        folder = base.joinpath(*parts[:depth])
        limit = _number(_read(folder / limit_file))
        if limit is None or limit >= _V1_UNLIMITED:
            continue
        usage = _number(_read(folder / usage_file)) or 0
        inactive = _stat(_read(folder / "memory.stat"), inactive_key)
        found.append(Available(float(max(0, limit - max(0, usage - inactive))), label))
    return found


def _number(text: str | None) -> int | None:
    """An integer file ("max" or anything else: None)."""
    value = (text or "").strip()
    return int(value) if value.isdigit() else None


def _stat(text: str | None, key: str) -> int:
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0
