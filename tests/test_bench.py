"""`llmarch bench`: FLOP and byte accounting by hand, the sweep's skip and interrupt paths, baselines, the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmarch.bench import counts as M
from llmarch.core.errors import InvalidValueError

runner = CliRunner()


# -- FLOPs and bytes, worked by hand (torch-free) -----------------------------------------------------------------
def test_attended_pairs_by_hand() -> None:
    # Four tokens, causal: 1 + 2 + 3 + 4 = 10 pairs; full: 16; a window of 2: 1 + 2 + 2 + 2 = 7.
    assert M.attended_pairs("prefill", 4) == 10
    assert M.attended_pairs("prefill", 4, causal=False) == 16
    assert M.attended_pairs("prefill", 4, window=2) == 7
    # Decode: the one new token sees the whole cache, itself included; a window caps the cache.
    assert M.attended_pairs("decode", 4096) == 4096
    assert M.attended_pairs("decode", 4096, window=1024) == 1024
    assert M.attended_pairs("decode", 512, window=1024) == 512
    # Chunking changes the order of the work, not the pairs.
    assert M.attended_pairs("chunked_prefill", 4, window=2) == 7
    assert M.attended_pairs("chunked_prefill", 4, causal=False) == 10


def test_causal_halves_the_score_flops() -> None:
    full = M.attention_flops(1, 32, 128, M.attended_pairs("prefill", 4096, causal=False))
    causal = M.attention_flops(1, 32, 128, M.attended_pairs("prefill", 4096))
    # FlashAttention-2's convention (Dao 2023, section 4.1): 4 x seqlen^2 x head dim x heads, halved for
    # causal; counting the diagonal exactly gives (S + 1) / (2 S) of it.
    assert full == 4 * 4096**2 * 128 * 32
    assert causal / full == pytest.approx((4096 + 1) / (2 * 4096))
    # One head, d = 1, 10 pairs: Q K^T and A V cost 2 FLOPs per pair each.
    assert M.attention_flops(1, 1, 1, 10) == 40
    assert M.attention_flops(2, 1, 3, 10, d_head_v=1) == 2 * 2 * (3 + 1) * 10


def test_window_caps_the_flops() -> None:
    # Mistral's window of 4096 over 32k tokens: each query sees at most 4096 keys.
    windowed = M.attended_pairs("prefill", 32768, window=4096)
    assert windowed == 4096 * 4097 / 2 + (32768 - 4096) * 4096
    assert windowed < 32768 * 4096


def test_bytes_by_hand() -> None:
    # Prefill, B=1, H=2, H_kv=1, d=4, S=8, fp32: Q and O (2 x 2 x 8 x 4) + K and V (2 x 1 x 8 x 4), 4 bytes each.
    assert M.attention_bytes("prefill", batch=1, n_heads=2, n_kv_heads=1, d_head=4, seq_len=8,
                             bytes_per_element=4) == 4 * 4 * (2 * 2 * 8 + 2 * 8)  # fmt: skip
    # Decode reads the whole KV cache: B=2, 32 heads on 8 KV heads, d=128, S=4096, fp16.
    decode = M.attention_bytes("decode", batch=2, n_heads=32, n_kv_heads=8, d_head=128, seq_len=4096,
                               bytes_per_element=2)  # fmt: skip
    kv_cache = 2 * 2 * 8 * 4096 * 128 * 2  # K and V, batch, KV heads, tokens, d_head, bytes
    assert decode == kv_cache + 2 * (2 * 32 * 128) * 2  # plus one query row and one output row per head
    assert decode == 33_587_200
    # ... and the window caps it; MQA divides it by the group.
    capped = M.attention_bytes("decode", batch=2, n_heads=32, n_kv_heads=8, d_head=128, seq_len=4096,
                               bytes_per_element=2, window=1024)  # fmt: skip
    assert capped == kv_cache / 4 + 2 * (2 * 32 * 128) * 2


def test_chunked_prefill_bytes_by_hand() -> None:
    # S=10 in chunks of 4 (4, 4, 2), one head, d=1, 1 byte: per chunk 2c (Q, O) + 2 (cached + c) (K, V read)
    # + 2 min(c, slots) (K, V written). No window: 24 + 32 + 28.
    args = {"batch": 1, "n_heads": 1, "n_kv_heads": 1, "d_head": 1, "seq_len": 10, "bytes_per_element": 1}
    assert M.attention_bytes("chunked_prefill", chunk_size=4, **args) == 24 + 32 + 28
    # A rolling buffer of 3 slots: chunks see at most 3 cached keys and write at most 3: 22 + 28 + 18.
    assert M.attention_bytes("chunked_prefill", chunk_size=4, window=3, **args) == 22 + 28 + 18
    assert M.chunk_spans(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert M.cache_slots(10, 3) == 3 and M.cache_slots(10, None) == 10
    with pytest.raises(InvalidValueError, match="chunk_size"):
        M.attention_bytes("chunked_prefill", **args)


def test_roofline_time_is_the_slower_of_compute_and_memory() -> None:
    # 1 TFLOP at 100 TFLOP/s = 10 ms; 1 GB at 2 TB/s = 0.5 ms: compute-bound.
    assert M.roofline_time_s(1e12, 1e9, 100e12, 2e12) == pytest.approx(0.01)
    # Decode of a 32k MHA cache: 1 GiB streamed at 2 TB/s dominates its 0.5 GFLOP.
    assert M.roofline_time_s(5e8, 2**30, 100e12, 2e12) == pytest.approx(2**30 / 2e12)
    assert M.arithmetic_intensity(1e12, 1e9) == 1000
    with pytest.raises(InvalidValueError):
        M.roofline_time_s(1, 1, 0, 1)
    with pytest.raises(InvalidValueError, match="unknown phase"):
        M.attended_pairs("training", 8)


# -- the regression gate's statistics (torch-free) -----------------------------------------------------------------
from llmarch.bench import baseline as gate  # noqa: E402
from llmarch.bench import checks  # noqa: E402
from llmarch.catalog.bench_results import BenchRow, MeasuredPeaks  # noqa: E402

SAME_MACHINE = MeasuredPeaks(matmul_flop_per_s=1e11, copy_bytes_per_s=1e10)


def _row(median: float | None, iqr: float | None, **key: object) -> BenchRow:
    base = {"variant": "gqa", "impl": "sdpa", "phase": "prefill", "batch": 1, "seq_len": 1024, "n_heads": 32,
            "n_kv_heads": 8, "d_head": 128, "window": None, "causal": True, "chunk_size": None, "dtype": "fp32",
            "device": "cpu", "analytic_flops": 1e9, "analytic_bytes": 1e6}  # fmt: skip
    return BenchRow(**{**base, **key, "median_s": median, "iqr_s": iqr})  # type: ignore[arg-type]


def test_regression_gate_needs_both_the_threshold_and_the_noise() -> None:
    old = [_row(1.00, 0.02, seq_len=s) for s in (1, 2, 3, 4, 5, 6)] + [_row(1.0, 0.0, seq_len=7)]
    new = [
        _row(1.05, 0.02, seq_len=1),  # +5%: within the 10% threshold
        _row(1.30, 0.02, seq_len=2),  # +30%, spread 0.028 s: a regression
        _row(1.30, 0.40, seq_len=3),  # +30% but the runs spread by 0.4 s: noise
        _row(0.70, 0.02, seq_len=4),  # faster
        _row(None, None, seq_len=5, skipped_reason="too big"),
        _row(1.00, 0.02, seq_len=8),  # not in the baseline
    ]
    result = gate.compare_runs(old, new, max_regression=0.10, old_peaks=SAME_MACHINE, new_peaks=SAME_MACHINE)
    verdicts = {c.key["seq_len"]: c.verdict for c in result.changes}
    assert verdicts == {1: "same", 2: "slower", 3: "noise", 4: "faster", 5: "skipped", 8: "new", 6: "gone", 7: "gone"}
    slow = next(c for c in result.changes if c.key["seq_len"] == 2)
    assert slow.change == pytest.approx(0.30) and slow.noise == pytest.approx((2 * 0.02**2) ** 0.5)
    assert [c.key["seq_len"] for c in result.regressions] == [2] and result.n_compared == 4
    # Records match on every identifying field: another dtype is another measurement, and nothing is compared.
    other = gate.compare_runs([_row(1.0, 0.0)], [_row(2.0, 0.0, dtype="bf16")], max_regression=0.1)
    assert [c.verdict for c in other.changes] == ["new", "gone"] and other.n_compared == 0
    with pytest.raises(InvalidValueError, match="max_regression"):
        gate.compare_runs(old, new, max_regression=-1)


def test_a_uniform_slowdown_on_the_same_machine_is_a_regression() -> None:
    """Issue 14.10: every kernel 2x slower while the reference kernels (matmul, copy) ran as fast as in the
    baseline is a regression of every kernel, not run-wide drift."""
    old = [_row(1.0, 0.01, seq_len=s) for s in range(1, 11)]
    new = [_row(2.0, 0.01, seq_len=s) for s in range(1, 11)]
    result = gate.compare_runs(old, new, max_regression=0.10, old_peaks=SAME_MACHINE, new_peaks=SAME_MACHINE)
    assert len(result.regressions) == 10 and result.machine == gate.MachineSpeed(1.0, 1.0)
    assert result.residual == pytest.approx(2.0)
    # The machine itself 2x slower (its matmul and copy at half the rate): no regression.
    slow_machine = MeasuredPeaks(matmul_flop_per_s=5e10, copy_bytes_per_s=5e9)
    result = gate.compare_runs(old, new, max_regression=0.10, old_peaks=SAME_MACHINE, new_peaks=slow_machine)
    assert not result.regressions and {c.verdict for c in result.changes} == {"same"}
    assert all(c.machine == 2.0 and c.change == pytest.approx(0.0) for c in result.changes)


def test_machine_speed_follows_the_bound_of_each_case() -> None:
    # The baseline's roofline: 1e11 FLOP/s and 1e10 B/s. A 1 GFLOP / 1 MB case is compute-bound (10 ms vs
    # 0.1 ms), a 1 MFLOP / 1 GB one memory-bound. Today the matmul runs at half speed, the copy at full.
    now = MeasuredPeaks(matmul_flop_per_s=5e10, copy_bytes_per_s=1e10)
    speed = gate.machine_speed(SAME_MACHINE, now)
    assert speed == gate.MachineSpeed(compute=2.0, memory=1.0)
    assert speed.factor_for(_row(1.0, 0.0), SAME_MACHINE) == 2.0
    assert speed.factor_for(_row(1.0, 0.0, analytic_flops=1e6, analytic_bytes=1e9), SAME_MACHINE) == 1.0
    assert speed.factor_for(_row(1.0, 0.0, analytic_flops=None), SAME_MACHINE) == pytest.approx(2**0.5)
    # The typical rate is the median of the run's samples, not the best one.
    sampled = MeasuredPeaks(matmul_flop_per_s=3e11, copy_bytes_per_s=1e10, matmul_samples=(1e11, 3e11, 1e11),
                            copy_samples=(1e10,))  # fmt: skip
    assert gate.machine_speed(SAME_MACHINE, sampled) == gate.MachineSpeed(1.0, 1.0)
    # A run without reference kernels: nothing to correct with, said in a note.
    result = gate.compare_runs([_row(1.0, 0.0)], [_row(2.0, 0.0)], max_regression=0.1, old_peaks=None)
    assert result.machine is None and result.notes and result.regressions


def test_scatter_of_the_kernels_widens_the_noise_but_does_not_absorb_a_shift() -> None:
    old = [_row(1.0, 0.0, seq_len=s) for s in range(1, 11)]
    # Kernels scatter by +-20% around +0%; one is 10x slower.
    factors = [1.2, 0.8, 1.2, 0.8, 1.2, 0.8, 1.2, 0.8, 1.0, 10.0]
    new = [_row(f, 0.0, seq_len=s) for s, f in zip(range(1, 11), factors, strict=True)]
    result = gate.compare_runs(old, new, max_regression=0.10, old_peaks=SAME_MACHINE, new_peaks=SAME_MACHINE)
    assert result.scatter > 0.1
    assert [c.key["seq_len"] for c in result.regressions] == [10]
    assert {c.verdict for c in result.changes if c.key["seq_len"] != 10} <= {"noise", "same"}


def test_matching_counts_planned_cases_with_a_timed_baseline_record() -> None:
    old = [_row(1.0, 0.0, seq_len=512), _row(None, None, seq_len=1024, skipped_reason="too big")]
    assert gate.matching(old, [_row(1.0, 0.0, seq_len=512).key, _row(1.0, 0.0, seq_len=1024).key]) == 1
    assert gate.matching(old, [_row(1.0, 0.0, seq_len=512, n_heads=4).key]) == 0
    assert "S=512" in gate.describe_shapes(old[:1]) and "32/8/128" in gate.describe_shapes(old[:1])


# -- honesty checks (torch-free) ---------------------------------------------------------------------------------------
def _timed(seq_len: int, median: float, **extra: object) -> dict[str, object]:
    # Decode of one head, d=1: the work grows with the cache.
    return {"variant": "mha", "impl": "sdpa", "phase": "decode", "batch": 1, "seq_len": seq_len, "median_s": median,
            "analytic_flops": 4.0 * seq_len, "analytic_bytes": 8.0 * seq_len, **extra}  # fmt: skip


def test_non_monotone_flags_a_shorter_case_slower_than_a_longer_one() -> None:
    # As seen on a shared CPU: decode at S=128 slower than at S=512.
    records = [_timed(128, 3e-5), _timed(512, 2e-5), _timed(2048, 9e-5), _timed(4096, None)]
    assert checks.non_monotone(records) == [True, True, False, None]
    # Equal work (a window caps decode) may take any order: no flag. Another implementation is another series.
    flat = [_timed(4096, 2e-5), {**_timed(8192, 1e-5), "analytic_flops": 4.0 * 4096, "analytic_bytes": 8.0 * 4096},
            _timed(128, 5e-5, impl="eager")]  # fmt: skip
    assert checks.non_monotone(flat) == [False, False, False]


def test_reference_drift_between_the_start_and_the_end_of_a_run() -> None:
    steady = checks.reference_drift([1e11, 1.2e11, 1.05e11], [1e10, 1e10])
    assert steady is not None and steady.matmul_change == pytest.approx(0.05) and not steady.flagged
    slowed = checks.reference_drift([1e11, 7e10], [1e10, 1e10])
    assert slowed is not None and slowed.matmul_change == pytest.approx(-0.3) and slowed.flagged
    assert slowed.to_record()["flagged"] is True
    assert checks.reference_drift([1e11], [1e10]) is None  # measured once: no drift to tell
    assert checks.above_roofline(1.22) is True and checks.above_roofline(0.5) is False
    assert checks.above_roofline(None) is None
    summary = checks.summary([{"above_roofline": True}, {"non_monotone": True}, {}], slowed)
    assert summary["above_roofline"] == 1 and summary["non_monotone"] == 1 and summary["reference_drift"]["flagged"]


# -- memory limits (torch-free) ------------------------------------------------------------------------------------
from llmarch.bench import limits  # noqa: E402

GIB = 2**30


def _fake_proc(tmp_path: Path, cgroup: str, status: str = "VmSize:\t1048576 kB\nVmData:\t 524288 kB\n") -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text(f"MemTotal: 67108864 kB\nMemAvailable: {8 * GIB // 1024} kB\n")
    (proc / "self" / "status").write_text(status)
    (proc / "self" / "cgroup").write_text(cgroup)
    return proc


def test_cgroup_v2_limit_less_usage_binds(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, "0::/ci/job\n")
    job = tmp_path / "cg" / "ci" / "job"
    job.mkdir(parents=True)
    (job / "memory.max").write_text(f"{2 * GIB}\n")
    (job / "memory.current").write_text(f"{GIB + GIB // 2}\n")
    (job / "memory.stat").write_text(f"anon 123\ninactive_file {GIB // 2}\n")  # page cache the kernel can drop
    (job.parent / "memory.max").write_text("max\n")
    found = limits.available_memory(proc=proc, cgroup_root=tmp_path / "cg")
    # 2 GiB - (1.5 GiB used - 0.5 GiB reclaimable) = 1 GiB, below the 8 GiB MemAvailable.
    assert found == limits.Available(float(GIB), "cgroup memory.max")
    # A parent's tighter limit binds the child.
    (job.parent / "memory.max").write_text(f"{GIB // 2}\n")
    (job.parent / "memory.current").write_text("0\n")
    assert limits.available_memory(proc=proc, cgroup_root=tmp_path / "cg").bytes == GIB // 2


def test_cgroup_v1_limit_and_its_unlimited_value(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, "12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n")
    group = tmp_path / "cg" / "memory" / "docker" / "abc"
    group.mkdir(parents=True)
    (group / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    assert limits.available_memory(proc=proc, cgroup_root=tmp_path / "cg") == limits.Available(
        8.0 * GIB, "MemAvailable"
    )
    (group / "memory.limit_in_bytes").write_text(f"{3 * GIB}\n")
    (group / "memory.usage_in_bytes").write_text(f"{GIB}\n")
    (group / "memory.stat").write_text("total_inactive_file 0\n")
    found = limits.available_memory(proc=proc, cgroup_root=tmp_path / "cg")
    assert found == limits.Available(2.0 * GIB, "cgroup memory.limit_in_bytes")


def test_rlimits_count_against_the_process_size(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path, "")
    # RLIMIT_AS 4 GiB with 1 GiB of address space taken; RLIMIT_DATA 2 GiB with 0.5 GiB of data.
    found = limits._rlimits(proc, {"RLIMIT_AS": 4.0 * GIB, "RLIMIT_DATA": 2.0 * GIB})
    assert found == [limits.Available(3.0 * GIB, "RLIMIT_AS"), limits.Available(1.5 * GIB, "RLIMIT_DATA")]
    assert limits._rlimits(proc, {"RLIMIT_AS": None}) == []


def test_a_real_ulimit_is_seen() -> None:
    """`ulimit -v` in a child process: the available memory is the limit less the child's own size."""
    code = (
        "import resource; resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30)); "
        "from llmarch.bench.limits import available_memory; a = available_memory(); print(a.limit, a.bytes)"
    )
    limit, available = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                      check=True).stdout.split()  # fmt: skip
    assert limit == "RLIMIT_AS" and 0 < float(available) < 2**30


# -- torch-side ----------------------------------------------------------------------------------------------------
torch = pytest.importorskip("torch")

from llmarch.bench import harness, timing  # noqa: E402
from llmarch.bench import kernels as A  # noqa: E402
from llmarch.bench import settings as S  # noqa: E402
from llmarch.cli import app  # noqa: E402

TINY = {"n_heads": 4, "n_kv_heads": 2, "d_head": 16, "window": 8, "seq_lens": (16, 32), "batches": (1,),
        "repeats": 2, "min_pass_s": 0.002, "device": "cpu"}  # fmt: skip


class FakeTimer:
    """A machine whose durations are decided, not measured: the reference matmul and copy run at
    `flop_per_s` and `bytes_per_s`, a case at half its roofline speed plus 1 µs (at 1e11 FLOP/s), times
    `slowdown`, times `per_case(record)`. The clock advances by what each call costs; no timed call is made for real."""

    def __init__(self, flop_per_s: float = 1e11, bytes_per_s: float = 1e10) -> None:
        self.flop_per_s, self.bytes_per_s = flop_per_s, bytes_per_s
        self.slowdown = 1.0
        self.per_case = lambda record: 1.0
        self.clock = 0.0

    def cost(self, key: object) -> float:
        if isinstance(key, tuple) and key[0] == "matmul":
            return 2.0 * key[1] ** 3 / self.flop_per_s
        if isinstance(key, tuple) and key[0] == "copy":
            return key[1] / self.bytes_per_s
        roofline = M.roofline_time_s(key.analytic_flops, key.analytic_bytes, self.flop_per_s, self.bytes_per_s)
        overhead = 1e-6 * 1e11 / self.flop_per_s  # 1 µs at the default rates; a slower machine stretches it too
        return (2 * roofline + overhead) * self.slowdown * self.per_case(key)

    def peaks(self) -> timing.Peaks:
        return timing.Peaks(self.flop_per_s, 1, self.bytes_per_s, 1.0, matmul_samples=(self.flop_per_s,),
                            copy_samples=(self.bytes_per_s,))  # fmt: skip

    def now(self) -> float:
        return self.clock

    def block_s(self, fn: object, number: int, *, key: object) -> float:
        spent = number * self.cost(key)
        self.clock += spent
        return spent

    def once_s(self, fn, *, key: object) -> tuple[float, object]:  # type: ignore[no-untyped-def]
        out = fn()
        self.clock += self.cost(key)
        return self.cost(key), out


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> FakeTimer:
    """Every run in the test uses a FakeTimer, and its roofline is the timer's rates (no matmul is timed)."""
    timer = FakeTimer()
    monkeypatch.setattr(timing, "default_timer", lambda: timer)
    monkeypatch.setattr(harness, "measure_peaks", lambda settings, **kwargs: timer.peaks())
    return timer


@pytest.mark.parametrize("phase", ["prefill", "decode"])
@pytest.mark.parametrize("causal", [True, False])
def test_analytic_flops_equal_torchs_count_of_the_eager_matmuls(phase: str, causal: bool) -> None:
    """The eager kernel multiplies the whole (masked) square: FlopCounterMode sees the full-attention count."""
    from torch.utils.flop_counter import FlopCounterMode

    variant = A.make_variant("gqa", n_heads=4, n_kv_heads=2, d_head=16, window=None, causal=causal)
    inputs = A.make_inputs(variant, phase, batch=2, seq_len=24, dtype=torch.float32, device="cpu")
    run = A.build_phase("eager", variant, phase, inputs)
    with FlopCounterMode(display=False) as counter:
        run()
    full = M.attention_flops(2, 4, 16, M.attended_pairs(phase, 24, causal=False))
    assert counter.get_total_flops() == full
    if phase == "prefill" and causal:
        assert M.attention_flops(2, 4, 16, M.attended_pairs(phase, 24)) == pytest.approx(full * 25 / 48)


def test_sweep_records_have_the_schema_and_the_analytic_numbers(machine: FakeTimer) -> None:
    from llmarch.catalog.bench_results import RESULT_FIELDS, BenchRow

    impls = ("eager", "sdpa", "sdpa_grouped")
    settings = S.resolve_settings(variants=("mha", "gqa"), impls=impls, phases=M.PHASES, chunk_size=8, **TINY)
    updates = []
    result = harness.run(settings, on_update=lambda r: updates.append(len(r.results)))
    assert result.complete and not result.interrupted
    records = result.records
    # sdpa_grouped only where KV heads are shared: gqa, not mha. 2 lengths x 3 phases x (2 + 3) cases.
    assert len(records) == 2 * 3 * 5
    assert not any(r["impl"] == "sdpa_grouped" and r["variant"] == "mha" for r in records)
    assert updates == [5, 10, 15, 20, 25, 30, 30]  # after every group, and once at the end
    assert list(records[0]) == list(RESULT_FIELDS) == [f.name for f in dataclasses.fields(BenchRow)]
    for r in records:
        assert r["skipped_reason"] is None, r
        assert r["rel_error"] < 1e-5 and r["passes"] == 2
        kv = 4 if r["variant"] == "mha" else 2
        assert r["n_kv_heads"] == kv
        pairs = M.attended_pairs(r["phase"], r["seq_len"])
        assert r["analytic_flops"] == M.attention_flops(1, 4, 16, pairs)
        chunk = 8 if r["phase"] == "chunked_prefill" else None
        assert r["chunk_size"] == chunk
        shape = {"batch": 1, "n_heads": 4, "n_kv_heads": kv, "d_head": 16, "seq_len": r["seq_len"]}
        assert r["analytic_bytes"] == M.attention_bytes(r["phase"], **shape, bytes_per_element=4, chunk_size=chunk)
        # The fake machine runs each case at half its roofline speed plus 1 µs, every call alike.
        predicted = M.roofline_time_s(r["analytic_flops"], r["analytic_bytes"], 1e11, 1e10)
        assert r["median_s"] == pytest.approx(2 * predicted + 1e-6)
        assert r["iqr_s"] == pytest.approx(0.0, abs=1e-15) and r["cv"] == pytest.approx(0.0, abs=1e-9)
        assert r["q1_s"] == pytest.approx(r["median_s"]) and r["q3_s"] == pytest.approx(r["median_s"])
        assert r["achieved_flop_per_s"] == pytest.approx(r["analytic_flops"] / r["median_s"])
        assert r["predicted_s"] == pytest.approx(predicted)
        assert r["roofline_fraction"] == pytest.approx(predicted / r["median_s"]) and r["above_roofline"] is False
        assert r["non_monotone"] is False
        assert r["gqa_feed"] == (None if kv == 4 else A.IMPLEMENTATIONS[r["impl"]].gqa_feed)
        # Blocks of calls fill each 2 ms pass: about 4 blocks a pass (`timing.block_size`), 2 passes.
        number = timing.block_size(r["median_s"], 0.002)
        assert r["n_samples"] == 2 * -(-0.002 // (number * r["median_s"]))


def test_statistics_of_uneven_samples(machine: FakeTimer) -> None:
    """Quartiles, IQR and the robust CV come from the samples the timer gave (here: a noisy case)."""
    costs = iter([1.0, 1.0, 2.0, 3.0, 4.0, 100.0] * 10)
    machine.block_s = lambda fn, number, *, key: next(costs) * 1e-3 * number  # type: ignore[method-assign]
    machine.now = lambda: machine.clock  # type: ignore[method-assign]
    samples = timing.measure_pass(lambda: None, number=2, min_time_s=0.0, timer=machine, key=None)
    assert samples == [pytest.approx(1e-3)]  # min_time 0: one block
    base = harness.BenchResult("mha", "sdpa", "decode", 1, 16, 4, 4, 16, None, True, None, None, "fp32", "cpu",
                               analytic_flops=1e6, analytic_bytes=1e6)  # fmt: skip
    done = harness._finish(base, [1e-3, 1e-3, 2e-3, 3e-3, 4e-3, 100e-3], 2, machine.peaks())
    # Inclusive quartiles of 1, 1, 2, 3, 4, 100 ms: 1.25, 2.5, 3.75 ms.
    assert (done.q1_s, done.median_s, done.q3_s) == pytest.approx((1.25e-3, 2.5e-3, 3.75e-3))
    assert done.iqr_s == pytest.approx(2.5e-3) and done.cv == pytest.approx(2.5 / 1.349 / 2.5) and done.noisy
    # 1 MFLOP and 1 MB at 1e11 FLOP/s and 1e10 B/s: 0.1 ms, 4% of the 2.5 ms median.
    assert done.roofline_fraction == pytest.approx(0.04)


def test_measure_peaks_times_the_reference_kernels_with_the_injected_timer() -> None:
    timer = FakeTimer(flop_per_s=3e10, bytes_per_s=5e9)
    settings = S.resolve_settings(quick=True, **TINY)
    peaks = timing.measure_peaks(settings, timer=timer, budget_s=0.01)
    # n = 1024 and a 64 MiB copy on the CPU in quick mode: the rates come back exactly.
    assert peaks.matmul_n == 1024 and peaks.copy_bytes == 2.0 * 2**26
    assert peaks.matmul_flop_per_s == pytest.approx(3e10) and peaks.copy_bytes_per_s == pytest.approx(5e9)
    assert peaks.catalog_gpu is None and peaks.matmul_samples == (peaks.matmul_flop_per_s,)


@pytest.mark.slow
def test_measured_peaks_on_this_machine_are_positive() -> None:
    """The real clock, once (a benchmark, not a unit test: no threshold on the rate)."""
    peaks = timing.measure_peaks(S.resolve_settings(**TINY), timer=timing.WallTimer(), quick=True, budget_s=0.05)
    assert peaks.matmul_flop_per_s > 0 and peaks.copy_bytes_per_s > 0


def test_the_roofline_is_the_best_measurement_of_the_run(machine: FakeTimer, monkeypatch: pytest.MonkeyPatch) -> None:
    rates = iter([5e10, 2e11, 1e11])  # before the sweep, after group 1, after group 2

    def measure(settings: S.BenchSettings, **kwargs: object) -> timing.Peaks:
        rate = next(rates)
        return timing.Peaks(rate, 1, 1e10, 1.0, matmul_samples=(rate,), copy_samples=(1e10,))

    monkeypatch.setattr(harness, "measure_peaks", measure)
    settings = S.resolve_settings(variants=("mha",), impls=("sdpa",), phases=("prefill",), **TINY)
    result = harness.run(settings)
    peaks = result.environment["measured_peaks"]
    assert peaks["matmul_flop_per_s"] == 2e11 and peaks["matmul_samples"] == (5e10, 2e11, 1e11)
    for r in result.records:  # the first group, finished at 5e10, follows the better peak
        assert r["predicted_s"] == pytest.approx(
            M.roofline_time_s(r["analytic_flops"], r["analytic_bytes"], 2e11, 1e10)
        )
    # The reference matmul ran 100% faster at the end than at the start: a run-wide drift, flagged.
    drift = result.checks_record()["reference_drift"]
    assert drift["matmul_change"] == pytest.approx(1.0) and drift["flagged"]


def test_shares_above_the_roofline_and_non_monotone_times_are_flagged(machine: FakeTimer) -> None:
    # Decode at S=16 runs in an eighth of the fake machine's time (about 4x faster than its roofline: a
    # cache-resident working set), S=32 in a hundredth (about 50x): both above 100%, and S=16, with half the
    # work, takes longer than S=32: the pair is out of order.
    machine.per_case = lambda r: {16: 0.125, 32: 0.01}[r.seq_len]
    settings = S.resolve_settings(variants=("mha",), impls=("sdpa",), phases=("decode",), **TINY)
    records = {r["seq_len"]: r for r in harness.run(settings).records}
    assert records[16]["roofline_fraction"] == pytest.approx(1 / (0.25 + 1e-6 / records[16]["predicted_s"] / 8))
    assert records[16]["above_roofline"] and records[32]["above_roofline"]
    assert records[16]["median_s"] > records[32]["median_s"]  # less work, more time
    assert records[16]["non_monotone"] and records[32]["non_monotone"]


def test_too_big_and_unavailable_cases_are_skipped_with_a_reason(machine: FakeTimer) -> None:
    settings = S.resolve_settings(variants=("mha",), impls=("eager", "sdpa", "sdpa_efficient"),
                                  phases=("prefill",), memory_budget_bytes=40_000, **TINY)  # fmt: skip
    records = {(r["seq_len"], r["impl"]): r for r in harness.run(settings).records}
    # S=32 eager holds three 4 x 32 x 32 fp32 score tensors (48 KiB): over a 40 kB budget; S=16 fits.
    assert records[(32, "eager")]["skipped_reason"].startswith("too big: needs about")
    assert records[(32, "eager")]["skipped_reason"].endswith("(--max-memory)")
    assert records[(16, "eager")]["skipped_reason"] is None and records[(16, "eager")]["median_s"] > 0
    if not torch.cuda.is_available():
        reason = records[(16, "sdpa_efficient")]["skipped_reason"]
        assert reason.startswith("RuntimeError") and "backend" in reason
        assert records[(16, "sdpa_efficient")]["median_s"] is None
    # A skipped record still carries the analytic numbers (what the shape would cost).
    assert records[(32, "eager")]["analytic_flops"] == M.attention_flops(1, 4, 16, M.attended_pairs("prefill", 32))


def test_the_memory_budget_follows_the_tightest_limit(machine: FakeTimer, monkeypatch: pytest.MonkeyPatch) -> None:
    # 50 kB left under the container's limit (80% of it: 40 kB): the budget and its source are in the reason.
    monkeypatch.setattr(harness, "free_memory_bytes", lambda device: (50_000.0, "cgroup memory.max"))
    settings = S.resolve_settings(variants=("mha",), impls=("eager",), phases=("prefill",), **TINY)
    records = {r["seq_len"]: r for r in harness.run(settings).records}
    assert records[16]["skipped_reason"] is None
    assert records[32]["skipped_reason"].endswith("(80% of cgroup memory.max)")


def test_out_of_memory_and_wrong_results_are_skipped(machine: FakeTimer, monkeypatch: pytest.MonkeyPatch) -> None:
    real_build = harness.build_phase

    def build(impl, variant, phase, inputs, **kwargs):
        if impl.name == "sdpa":
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
        run = real_build(impl, variant, phase, inputs, **kwargs)
        return lambda: run() * 1.5  # a wrong kernel

    monkeypatch.setattr(harness, "build_phase", build)
    settings = S.resolve_settings(variants=("gqa",), impls=("eager", "sdpa"), phases=("prefill",), **TINY)
    for r in harness.run(settings).records:
        if r["impl"] == "sdpa":
            assert r["skipped_reason"].startswith("out of memory")
        else:
            assert r["skipped_reason"].startswith("wrong result: relative error 0.5")
            assert r["rel_error"] == pytest.approx(0.5) and r["median_s"] is None


def test_interrupt_keeps_finished_groups(machine: FakeTimer, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = harness._run_group

    def run_group(group, *args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(group, *args)

    monkeypatch.setattr(harness, "_run_group", run_group)
    settings = S.resolve_settings(variants=("mha", "mqa"), impls=("sdpa",), phases=("prefill",), **TINY)
    result = harness.run(settings)
    assert result.interrupted and not result.complete and result.interrupted_by == "SIGINT"
    assert [(r["seq_len"], r["variant"]) for r in result.records] == [(16, "mha"), (16, "mqa")]


def test_interrupt_in_a_pass_keeps_cases_with_a_full_pass(machine: FakeTimer, monkeypatch: pytest.MonkeyPatch) -> None:
    real = harness.measure_pass
    calls = []

    def measure(fn, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # pass 2 of case 1 (cases: mha, mqa; passes interleave them)
            raise KeyboardInterrupt
        return real(fn, **kwargs)

    monkeypatch.setattr(harness, "measure_pass", measure)
    settings = S.resolve_settings(variants=("mha", "mqa"), impls=("sdpa",), phases=("prefill",), **TINY)
    result = harness.run(settings)
    assert result.interrupted
    assert [(r["variant"], r["passes"]) for r in result.records] == [("mha", 1), ("mqa", 1)]


def test_suspected_regressions_are_retimed_and_must_reproduce(machine: FakeTimer) -> None:
    settings = S.resolve_settings(variants=("mha", "gqa"), impls=("eager", "sdpa"), phases=("prefill",), **TINY)
    first = harness.run(settings)
    old, old_peaks = first.rows, first.measured_peaks
    # A burst: one case of this run reads 1000x slower than it is. Re-timing finds its usual speed.
    fresh = harness.run(settings)
    fresh.results[0] = dataclasses.replace(fresh.results[0], median_s=fresh.results[0].median_s * 1000)
    comparison, retimed = harness.confirm_regressions(fresh, old, old_peaks, max_regression=0.1)
    assert retimed == 1 and not comparison.regressions
    assert fresh.results[0].median_s == pytest.approx(old[0].median_s)
    # A real slowdown (the fake machine now runs one case 3x slower) reproduces when re-timed.
    slow_key = old[1].key
    machine.per_case = lambda r: 3.0 if r.to_row().key == slow_key else 1.0
    comparison, retimed = harness.confirm_regressions(harness.run(settings), old, old_peaks, max_regression=0.1)
    assert retimed == 1 and [tuple(c.key.values()) for c in comparison.regressions] == [slow_key]
    assert comparison.regressions[0].change == pytest.approx(2.0)


def test_settings_defaults_and_errors() -> None:
    s = S.resolve_settings(device="cpu")
    assert (s.shape_source, s.n_heads, s.n_kv_heads, s.d_head, s.window) == ("mistral-7b", 32, 8, 128, 4096)
    assert (s.dtype, s.seq_lens, s.phases, s.impls) == ("fp32", (512, 1024, 2048), M.PHASES, S.CPU_IMPLS)
    quick = S.resolve_settings(quick=True, device="cpu")
    assert quick.impls == ("eager", "sdpa") and quick.phases == ("prefill", "decode")
    assert set(quick.variants) == set(A.VARIANT_NAMES)
    # Explicit values win over the preset; no window anywhere: a quarter of the longest sequence.
    s = S.resolve_settings(preset="llama-2-70b", n_kv_heads=4, seq_lens=(256, 1024), device="cpu")
    assert (s.n_heads, s.n_kv_heads, s.d_head, s.window) == (64, 4, 128, 256)
    s = S.resolve_settings(n_heads=8, d_head=64, device="cpu")
    assert (s.shape_source, s.n_kv_heads) == ("custom", 8)
    for kwargs, message in [
        ({"n_heads": 8}, "--d-head"),
        ({"n_heads": 8, "n_kv_heads": 3, "d_head": 64}, "must divide"),
        ({"dtype": "int8"}, "the benchmark runs in"),
        ({"phases": ("prefil",)}, "unknown phase"),
        ({"impls": ("sdpa_flsh",)}, "did you mean"),
        ({"seq_lens": (0,)}, "positive"),
        ({"flush_l2": True}, "CUDA"),
        ({"preset": "deepseek-v3"}, "latent attention"),
        ({"min_pass_s": float("nan")}, "time per pass"),
    ]:
        with pytest.raises(InvalidValueError, match=message):
            S.resolve_settings(device="cpu", **kwargs)  # type: ignore[arg-type]
    if not torch.cuda.is_available():
        with pytest.raises(InvalidValueError, match="no CUDA device"):
            S.resolve_settings(device="cuda")


def test_catalog_gpu_from_the_device_name() -> None:
    assert S.catalog_gpu_for("NVIDIA H100 80GB HBM3") == "h100-sxm"
    assert S.catalog_gpu_for("NVIDIA H100 PCIe") == "h100-pcie"
    assert S.catalog_gpu_for("NVIDIA H200") == "h200"
    assert S.catalog_gpu_for("NVIDIA A100-SXM4-40GB") == "a100-40gb"
    assert S.catalog_gpu_for("NVIDIA L4") == "l4" and S.catalog_gpu_for("NVIDIA L40S") == "l40s"
    assert S.catalog_gpu_for("Intel(R) Xeon(R) Processor") is None


def test_planned_keys_match_the_records_of_the_run(machine: FakeTimer) -> None:
    settings = S.resolve_settings(variants=("mha", "gqa"), impls=("sdpa", "sdpa_grouped"), **TINY)
    assert harness.planned_keys(settings) == [r.key for r in harness.run(settings).rows]


# -- the command line ----------------------------------------------------------------------------------------------
CLI_TINY = ["--n-heads", "4", "--n-kv-heads", "2", "--d-head", "16", "--seq-lens", "16", "--min-time", "0.002"]


def test_cli_quick_json_covers_every_variant_eager_and_sdpa_prefill_and_decode(machine: FakeTimer) -> None:
    result = runner.invoke(app, ["bench", "--quick", *CLI_TINY, "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["schema_version"] == 1 and document["complete"] and not document["interrupted"]
    assert document["kind"] == "bench"
    jsonschema = pytest.importorskip("jsonschema")
    from llmarch.catalog.schemas import envelope_schema

    jsonschema.Draft202012Validator(envelope_schema()).validate(document)
    env = document["environment"]
    assert env["torch"] == torch.__version__ and env["device"] == "cpu" and env["threads"] >= 1
    assert env["device_name"] and env["cpu"] and env["measured_peaks"]["matmul_flop_per_s"] == 1e11
    cells = {(r["variant"], r["impl"], r["phase"]) for r in document["results"]}
    assert cells == {(v, i, p) for v in A.VARIANT_NAMES for i in ("eager", "sdpa") for p in ("prefill", "decode")}
    assert all(r["median_s"] > 0 and r["skipped_reason"] is None for r in document["results"])
    assert document["settings"]["quick"] and document["settings"]["repeats"] == 3
    checked = document["checks"]
    assert (checked["above_roofline"], checked["non_monotone"]) == (0, 0)
    # The fake machine's reference kernels run as fast at the end as at the start: no drift, not flagged.
    assert checked["reference_drift"]["matmul_change"] == 0.0 and not checked["reference_drift"]["flagged"]


GATE_ARGS = ["bench", *CLI_TINY, "--seq-lens", "16,32", "--variants", "mha,gqa", "--impls", "eager,sdpa",
             "--phases", "decode", "--repeats", "2"]  # fmt: skip


def test_cli_gate_trips_on_a_uniform_slowdown_of_the_same_machine(tmp_path: Path, machine: FakeTimer) -> None:
    """Issue 14.10, end to end: a baseline; every kernel 2x slower with the reference kernels as fast as
    before: exit 3; the whole machine 2x slower (reference kernels included): exit 0."""
    old = tmp_path / "old.json"
    assert runner.invoke(app, [*GATE_ARGS, "-o", str(old)]).exit_code == 0
    n = len(json.loads(old.read_text())["results"])
    assert n == 2 * 2 * 2
    machine.slowdown = 2.0
    result = runner.invoke(app, [*GATE_ARGS, "--format", "json", "--baseline", str(old)])
    assert result.exit_code == 3, result.output
    assert f"{n} regression(s) among {n} compared" in result.stderr
    gate_record = json.loads(result.stdout)["baseline"]
    assert gate_record["compared"] == n and gate_record["machine_slowdown"] == {"compute": 1.0, "memory": 1.0}
    assert {c["verdict"] for c in gate_record["changes"]} == {"slower"}
    assert all(c["change"] == pytest.approx(1.0) for c in gate_record["changes"])
    # The machine is 2x slower: its matmul and copy too. Kernels that are 2x slower are no regression.
    machine.flop_per_s, machine.bytes_per_s, machine.slowdown = 5e10, 5e9, 1.0
    result = runner.invoke(app, [*GATE_ARGS, "--format", "json", "--baseline", str(old)])
    assert result.exit_code == 0, result.output
    assert f"no regression among {n} compared" in result.stderr
    changes = json.loads(result.stdout)["baseline"]["changes"]
    assert all(c["raw_change"] == pytest.approx(1.0) and c["verdict"] == "same" for c in changes)
    # Gating on raw medians, the slower machine fails the gate.
    result = runner.invoke(app, [*GATE_ARGS, "--no-drift-correction", "--baseline", str(old)])
    assert result.exit_code == 3


def test_cli_gate_with_nothing_to_compare_fails_before_running(
    tmp_path: Path, machine: FakeTimer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmarch.cli._app import EXIT_NOTHING_COMPARED

    old = tmp_path / "old.json"
    assert runner.invoke(app, [*GATE_ARGS, "-o", str(old)]).exit_code == 0
    ran = []
    real_run = harness.run
    monkeypatch.setattr(harness, "run", lambda *a, **k: ran.append(1) or real_run(*a, **k))
    # Another shape (8 heads): no case of this run is in the baseline.
    other = [*GATE_ARGS, "--n-heads", "8", "--baseline", str(old)]
    result = runner.invoke(app, other)
    assert result.exit_code == EXIT_NOTHING_COMPARED == 4 and not ran
    assert result.stderr.count("\n") == 1 and "nothing to compare" in result.stderr and "4/2/16" in result.stderr
    # The shape matches but every case of this run is skipped (a 1 kB budget): 0 compared after the run.
    result = runner.invoke(app, [*GATE_ARGS, "--max-memory", "1kB", "--baseline", str(old)])
    assert result.exit_code == 4 and ran and "0 compared" in result.stderr


def test_cli_malformed_baseline_fails_before_running(
    tmp_path: Path, machine: FakeTimer, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = tmp_path / "old.json"
    assert runner.invoke(app, [*GATE_ARGS, "-o", str(old)]).exit_code == 0
    monkeypatch.setattr(harness, "run", lambda *a, **k: pytest.fail("the benchmark ran"))
    document = json.loads(old.read_text())
    for mutate, message in [
        (lambda d: d["results"][3].update(median_s="fast"), "results[3]: median_s = 'fast' is not a positive number"),
        (lambda d: d["results"][0].pop("impl"), "results[0]: no 'impl'"),
        (lambda d: d["results"].append("x"), "results[8] is not an object"),
        (lambda d: d["environment"]["measured_peaks"].update(copy_bytes_per_s=-1), "measured_peaks.copy_bytes_per_s"),
        (lambda d: d.update(schema_version=7), "unsupported schema_version 7"),
    ]:
        bad = json.loads(json.dumps(document))
        mutate(bad)
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(bad))
        result = runner.invoke(app, [*GATE_ARGS, "--baseline", str(path)])
        assert result.exit_code == 1 and message in result.stderr, result.stderr
        assert result.stderr.startswith("error: --baseline") and result.stderr.count("\n") == 1
    for content, message in [("{not json", "is not JSON"), (None, "cannot read")]:
        path = tmp_path / ("broken.json" if content else "missing.json")
        if content:
            path.write_text(content)
        result = runner.invoke(app, [*GATE_ARGS, "--baseline", str(path)])
        assert result.exit_code == 1 and message in result.stderr and result.stderr.count("\n") == 1


def test_cli_output_errors_are_one_line_and_come_first(
    tmp_path: Path, machine: FakeTimer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness, "run", lambda *a, **k: pytest.fail("the benchmark ran"))
    folder = tmp_path / "folder"
    folder.mkdir()
    for option, target, message in [
        ("-o", str(folder), "is a folder"),
        ("-o", "", "the file name is empty"),
        ("-o", str(tmp_path / "missing" / "x.json"), "does not exist"),
        ("--plot", str(folder), "is a folder"),
        ("--plot", str(tmp_path / "missing" / "x.png"), "does not exist"),
    ]:
        result = runner.invoke(app, [*GATE_ARGS, option, target])
        assert result.exit_code == 1 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]


def test_cli_table_output_file_and_plot(tmp_path: Path, machine: FakeTimer) -> None:
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    args = ["bench", *CLI_TINY, "--variants", "gqa,sliding_window", "--impls", "eager,sdpa_grouped",
            "--phases", "prefill,chunked_prefill", "--chunk-size", "8", "--window", "8", "--repeats", "2"]  # fmt: skip
    result = runner.invoke(app, [*args, "--output", str(out), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert (
        "sliding_window W=8" in result.stdout and "sdpa_grouped" in result.stdout and "chunked_prefill" in result.stdout
    )
    document = json.loads(out.read_text())
    assert len(document["results"]) == 8 and document["complete"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "bench.png"]  # no temporary files left
    umask = os.umask(0)
    os.umask(umask)
    assert png.stat().st_mode & 0o777 == out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_cli_marks_shares_above_the_roofline(machine: FakeTimer) -> None:
    machine.per_case = lambda r: 0.1  # 5x faster than the roofline allows
    result = runner.invoke(app, ["bench", *CLI_TINY, "--variants", "mha", "--impls", "sdpa", "--phases", "decode"])
    assert result.exit_code == 0, result.output
    assert "(!)" in result.stdout and "above roofline: measurement problem" in result.stdout
    assert "exceed 100% of the measured roofline: a measurement problem" in result.stderr


def _interrupting_group(signum: int) -> object:
    real = harness._run_group
    calls = []

    def run_group(group, *args):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signum)
        return real(group, *args)

    return run_group


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_cli_interrupt_by_signal_leaves_a_valid_json_file(
    tmp_path: Path, machine: FakeTimer, monkeypatch: pytest.MonkeyPatch, signum: int, code: int
) -> None:
    """Ctrl-C, and SIGTERM and SIGHUP (a CI job cancelled) alike: finished shapes saved, interrupted: true."""
    monkeypatch.setattr(harness, "_run_group", _interrupting_group(signum))
    # Whatever an earlier test or the embedding process did with SIGINT, the sweep installs Ctrl-C's own handler.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = tmp_path / "partial.json"
    try:
        result = runner.invoke(app, ["bench", *CLI_TINY, "--seq-lens", "8,16,32", "--variants", "mha", "--impls",
                                     "sdpa", "--phases", "decode", "--output", str(out)])  # fmt: skip
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # put back after the sweep
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.exit_code == code
    name = signal.Signals(signum).name
    assert f"interrupted ({name}): 2 finished results kept" in result.stderr
    document = json.loads(out.read_text())
    assert document["interrupted"] and not document["complete"] and document["interrupted_by"] == name
    assert [r["seq_len"] for r in document["results"]] == [8, 16]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are put back


def test_cli_errors_are_one_line() -> None:
    result = runner.invoke(app, ["bench", "--preset", "nope", "--device", "cpu"])
    assert result.exit_code == 1 and result.stderr.startswith("error: unknown preset 'nope'")
    result = runner.invoke(app, ["bench", "--seq-lens", "a,b", "--device", "cpu"])
    assert result.exit_code == 2


def test_the_cli_module_does_not_import_torch() -> None:
    code = ("import sys, llmarch.cli.bench, llmarch.bench.counts, llmarch.bench.baseline, llmarch.bench.checks, "
            "llmarch.bench.limits, llmarch.catalog.bench_results; print('torch' in sys.modules)")  # fmt: skip
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_sweep_reports_every_backend_or_why_not() -> None:
    settings = S.resolve_settings(n_heads=8, n_kv_heads=2, d_head=64, seq_lens=(256,), batches=(2,),
                                  repeats=2, min_pass_s=0.01, device="cuda")  # fmt: skip
    assert settings.dtype == "bf16" and "sdpa_flash" in settings.impls
    result = harness.run(settings)
    assert result.environment["measured_peaks"]["matmul_flop_per_s"] > 1e12
    for r in result.records:
        assert (r["median_s"] is None) == (r["skipped_reason"] is not None), r
        if r["median_s"] is not None:
            assert r["rel_error"] < 3e-2 and r["peak_memory_bytes"] is not None


# -- the plot -------------------------------------------------------------------------------------------------------
def _plot_rows() -> list[dict[str, object]]:
    rows = []
    for impl, speed in (("eager", 2.0), ("sdpa", 1.0)):
        for seq_len in (128, 512, 2048):
            median = 1e-5 * speed * seq_len / 128
            rows.append({"variant": "gqa", "impl": impl, "phase": "decode", "batch": 1, "seq_len": seq_len,
                         "median_s": median, "iqr_s": median / 5, "q1_s": 0.9 * median, "q3_s": 1.1 * median,
                         "roofline_fraction": 1.2 if (impl, seq_len) == ("sdpa", 128) else 0.4 / speed,
                         "non_monotone": (impl, seq_len) == ("eager", 512),
                         "achieved_bytes_per_s": 1e10})  # fmt: skip
    return rows


def test_bench_plot_has_the_roofline_line_iqr_bars_and_plain_ticks() -> None:
    from matplotlib.figure import Figure

    from llmarch.report.plots import bench_png, draw_bench_curves, si_seconds, tokens_label

    assert [si_seconds(v) for v in (4e-4, 2.5, 1e-3, 5e-8)] == ["400 µs", "2.5 s", "1 ms", "50 ns"]
    assert [tokens_label(v) for v in (128, 512, 2048, 32768)] == ["128", "512", "2k", "32k"]
    figure = Figure()
    latency, share = figure.subplots(1, 2)
    draw_bench_curves(latency, share, _plot_rows(), phase="decode")
    figure.canvas.draw()
    # The 100% roofline: a horizontal line at 100; the y range shows the 120% point above it.
    assert any(list(line.get_ydata()) == [100, 100] for line in share.get_lines())
    assert share.get_ylim()[1] >= 1.2 * 100
    # One red ring, on the share above 100% (sdpa at S=128).
    rings = [line for line in share.get_lines() if line.get_markeredgecolor() == "red"]
    assert len(rings) == 1 and list(rings[0].get_xdata()) == [128] and list(rings[0].get_ydata()) == [120.0]
    # The non-monotone point is boxed on the latency panel.
    boxes = [line for line in latency.get_lines() if line.get_marker() == "s" and line.get_linestyle() == "None"]
    assert len(boxes) == 1 and list(boxes[0].get_xdata()) == [512]
    # IQR bars: from q1 to q3 around the median (eager at S=128: 18 to 22 µs around 20).
    bars = latency.containers[0]
    segments = bars.lines[2][0].get_segments()
    assert segments[0][:, 1] == pytest.approx([1.8e-5, 2.2e-5])
    # Tick labels are plain numbers with units, never mathtext powers ("4x10^2").
    labels = [t.get_text() for axis in (latency, share) for t in axis.get_xticklabels() + axis.get_yticklabels()]
    assert "2k" in labels and "100%" in labels and any(label.endswith("µs") for label in labels)
    assert not any("$" in label or "10^" in label for label in labels)
    png = bench_png(_plot_rows(), title="t")
    assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n"
    assert bench_png([{"phase": "decode", "median_s": None, "seq_len": 128}]) is None


def test_bench_plot_legend_is_outside_the_panels() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmarch.report import plots

    captured = {}
    real_close = plt.close
    try:
        plt.close = lambda figure=None: captured.setdefault("figure", figure)  # type: ignore[assignment]
        plots.bench_png(_plot_rows())
    finally:
        plt.close = real_close
    figure = captured["figure"]
    figure.canvas.draw()  # lay out at the screen's dpi
    renderer = figure.canvas.get_renderer()
    legend = figure.legends[0].get_window_extent(renderer)
    for axis in figure.axes:
        assert not legend.overlaps(axis.get_window_extent(renderer))
    real_close(figure)


def test_a_roofline_that_cannot_be_allocated_is_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory\nmore")

    monkeypatch.setattr(timing, "_measure_peaks", refuse)
    with pytest.raises(InvalidValueError, match=r"^cannot measure the roofline \(\[enforce fail .*memory\); free"):
        timing.measure_peaks(S.resolve_settings(**TINY), timer=FakeTimer())
    # Little memory left (1 MiB x 8): the copy shrinks to an eighth of it instead of failing.
    monkeypatch.undo()
    monkeypatch.setattr(timing, "free_memory_bytes", lambda device: (8.0 * 2**20, "RLIMIT_AS"))
    peaks = timing.measure_peaks(S.resolve_settings(**TINY), timer=FakeTimer(), quick=True, budget_s=0.01)
    assert peaks.copy_bytes == 2.0 * 2**20
