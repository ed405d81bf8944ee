"""[torch] Timing: the clock (injected, so tests can replace wall time), timing passes, the measured roofline
and the memory one call needs.

Every duration the harness uses comes from a `Timer`: `WallTimer` (the default) times real calls, a test's
timer returns durations it decides, so the harness's logic (sizing blocks, passes, statistics, verdicts) is
tested without looking at the wall clock. Each timed call names what it times (`key`: a case's result
record, or ("matmul", n) and ("copy", bytes) for the roofline) so that a fake timer can price it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any, Protocol

import torch

from llmarch.bench.settings import TORCH_DTYPES, BenchSettings, catalog_gpu_for
from llmarch.core.frozen import frozen_dataclass


class Timer(Protocol):
    """Where durations come from."""

    def now(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    def block_s(self, fn: Callable[[], Any], number: int, *, key: Any) -> float:
        """Seconds taken by `number` back-to-back calls of `fn` (the device synchronised before and after)."""
        ...

    def once_s(self, fn: Callable[[], Any], *, key: Any) -> tuple[float, Any]:
        """Seconds of one synchronised call of `fn`, and what it returned."""
        ...


class WallTimer:
    """Real time: `time.perf_counter`, synchronising CUDA first when it is in use (as
    torch.utils.benchmark's timer does). Blocks run under the standard library's timeit (garbage collection
    off). With an L2 flush buffer (CUDA), each call is timed alone with CUDA events after overwriting it."""

    def __init__(self, flush: torch.Tensor | None = None):
        self.flush = flush

    @staticmethod
    def _sync() -> None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()

    def now(self) -> float:
        return time.perf_counter()

    def _clock(self) -> float:
        self._sync()
        return time.perf_counter()

    def block_s(self, fn: Callable[[], Any], number: int, *, key: Any) -> float:
        import timeit

        if self.flush is not None:
            total = 0.0
            for _ in range(number):
                total += self._flushed_call_s(fn)
            return total
        return timeit.Timer(fn, timer=self._clock).timeit(number)

    def _flushed_call_s(self, fn: Callable[[], Any]) -> float:
        assert self.flush is not None
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        self.flush.zero_()
        begin.record()
        fn()
        end.record()
        end.synchronize()
        return begin.elapsed_time(end) / 1e3

    def once_s(self, fn: Callable[[], Any], *, key: Any) -> tuple[float, Any]:
        start = self._clock()
        out = fn()
        return self._clock() - start, out


def default_timer() -> Timer:
    """The timer a run uses when none is given (tests replace this function)."""
    return WallTimer()


def measure_pass(fn: Callable[[], Any], *, number: int, min_time_s: float, timer: Timer, key: Any) -> list[float]:
    """Per-call seconds of blocks of `number` calls, block after block until `min_time_s` has passed.

    torch.utils.benchmark's Timer is not used: its timeit adds two untimed warm-up calls to every block, which
    triples the cost of a slow case timed one call per pass; cases are warmed up once, before the passes.
    """
    samples: list[float] = []
    start = timer.now()
    while True:
        samples.append(timer.block_s(fn, number, key=key) / number)
        if timer.now() - start >= min_time_s:
            return samples


def block_size(once_s: float, min_time_s: float, *, blocks: int = 4) -> int:
    """Calls per timed block so that a pass of `min_time_s` holds about `blocks` blocks."""
    return max(1, int(min_time_s / blocks / max(once_s, 1e-9)))


# -- the roofline -------------------------------------------------------------------------------------------------
@frozen_dataclass
class Peaks:
    """The device's roofline, measured in this run, and the catalog's datasheet peaks where known.

    The measured peaks are the best of every measurement of the run (one before the sweep, one after
    each group): on a shared machine the rate wanders (77 to 179 GFLOP/s for the same matmul over 40
    minutes on a 2-core CI runner), and the roofline is what the device can do, not what it did once. The
    samples, in order, are also the run's reference kernel: the first and the last tell a run-wide drift.
    """

    matmul_flop_per_s: float
    matmul_n: int
    copy_bytes_per_s: float
    copy_bytes: float  # bytes moved by one copy (read + write)
    catalog_gpu: str | None = None
    catalog_flop_per_s: float | None = None
    catalog_bytes_per_s: float | None = None
    matmul_samples: tuple[float, ...] = ()  # every measurement of the run, FLOP/s
    copy_samples: tuple[float, ...] = ()  # bytes/s

    def combined(self, other: Peaks) -> Peaks:
        """The best of two measurements, keeping every sample."""
        return replace(
            self,
            matmul_flop_per_s=max(self.matmul_flop_per_s, other.matmul_flop_per_s),
            copy_bytes_per_s=max(self.copy_bytes_per_s, other.copy_bytes_per_s),
            matmul_samples=self.matmul_samples + other.matmul_samples,
            copy_samples=self.copy_samples + other.copy_samples,
        )

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


def measure_peaks(
    settings: BenchSettings, *, timer: Timer, quick: bool | None = None, budget_s: float | None = None
) -> Peaks:
    """Matmul FLOP/s (an n x n matmul in the benchmark dtype, 2 n^3 FLOPs) and copy bytes/s (a copy of a
    large tensor: its bytes read plus written), medians of blocks timed like the cases; plus the catalog's
    dense peak and memory bandwidth for a known GPU."""
    quick = settings.quick if quick is None else quick
    device = settings.device
    cuda = device == "cuda"
    n = (4096 if quick else 8192) if cuda else (1024 if quick else 2048)
    copy_bytes = (2**28 if quick else 2**30) if cuda else (2**26 if quick else 2**28)
    budget = budget_s if budget_s is not None else (0.2 if quick else 0.6)
    found = free_memory_bytes(device)
    if found is not None and 4 * copy_bytes > found[0]:  # source and destination in a quarter of what is left
        copy_bytes = max(2**20, int(found[0] / 8))
    try:
        return _measure_peaks(settings, n, copy_bytes, timer, budget)
    except (RuntimeError, MemoryError) as exc:  # an allocation refused (an rlimit, a cgroup, the device)
        from llmarch.core.errors import InvalidValueError

        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InvalidValueError(f"cannot measure the roofline ({first}); free memory or raise the limit") from None


def _measure_peaks(settings: BenchSettings, n: int, copy_bytes: int, timer: Timer, budget: float) -> Peaks:
    dtype, device, cuda = TORCH_DTYPES[settings.dtype], settings.device, settings.device == "cuda"
    gen = torch.Generator(device).manual_seed(settings.seed)
    a = torch.randn(n, n, generator=gen, device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen, device=device, dtype=dtype)
    matmul_s = _median_time(lambda: a @ b, timer, budget, key=("matmul", n))
    element = torch.finfo(dtype).bits // 8
    src = torch.randn(copy_bytes // element, generator=gen, device=device, dtype=dtype)
    dst = torch.zeros_like(src)  # written, so its pages are real before the copy is timed
    moved = 2.0 * src.numel() * element
    copy_s = _median_time(lambda: dst.copy_(src), timer, budget, key=("copy", moved))
    catalog_gpu = settings.gpu or (catalog_gpu_for(torch.cuda.get_device_name()) if cuda else None)
    catalog_flops = catalog_bw = None
    if catalog_gpu is not None:
        from llmarch.catalog.hardware import accelerator

        row = accelerator(catalog_gpu)
        catalog_flops = row.peak_flop_per_s.get(settings.dtype)
        catalog_bw = row.memory_bandwidth_bytes_per_s
    flop_per_s, bytes_per_s = 2.0 * n**3 / matmul_s, moved / copy_s
    return Peaks(
        flop_per_s, n, bytes_per_s, moved, catalog_gpu, catalog_flops, catalog_bw, (flop_per_s,), (bytes_per_s,)
    )


def _median_time(fn: Callable[[], Any], timer: Timer, budget_s: float, *, key: Any) -> float:
    fn()  # warm-up
    once, _ = timer.once_s(fn, key=key)
    number = block_size(once, budget_s, blocks=8)
    return statistics.median(measure_pass(fn, number=number, min_time_s=budget_s, timer=timer, key=key))


# -- memory -------------------------------------------------------------------------------------------------------
def peak_memory_bytes(fn: Callable[[], Any], device: str) -> int | None:
    """Memory one call needs beyond what was allocated before it (workspace and output).

    CUDA: the allocator's peak during the call. CPU: the rise of the process's peak resident set during
    the call (Linux: VmHWM, reset through /proc/self/clear_refs), an approximation: memory the allocator
    keeps from earlier calls is not counted again. None where neither is available.
    """
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        out = fn()
        torch.cuda.synchronize()
        del out
        return int(torch.cuda.max_memory_allocated() - before)
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")  # reset the peak resident set size to the current one
        before = _proc_status_bytes("VmRSS")
        out = fn()
        peak = _proc_status_bytes("VmHWM")
        del out
    except OSError:
        return None
    if before is None or peak is None:
        return None
    return max(0, peak - before)


def _proc_status_bytes(key: str) -> int | None:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return None


def free_memory_bytes(device: str) -> tuple[float, str] | None:
    """Memory a run may still use and the limit that sets it: on CUDA, the device's free memory plus what
    torch's caching allocator holds unused; on the CPU, the tightest of free RAM, rlimits and cgroup
    (`limits.available_memory`)."""
    if device == "cuda":
        free = torch.cuda.mem_get_info()[0] + torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
        return float(free), "free GPU memory"
    from llmarch.bench.limits import available_memory

    found = available_memory()
    return None if found is None else (found.bytes, found.limit)
