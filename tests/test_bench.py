"""`llmarch bench`: FLOP and byte accounting by hand, the sweep's skip and interrupt paths, baselines, the CLI."""

from __future__ import annotations

import dataclasses
import json
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


# -- torch-side ----------------------------------------------------------------------------------------------------
torch = pytest.importorskip("torch")

from llmarch.bench import harness as bench  # noqa: E402
from llmarch.bench import kernels as A  # noqa: E402
from llmarch.cli import app  # noqa: E402

FAKE_PEAKS = bench.Peaks(1e11, 1, 1e10, 1.0, matmul_samples=(1e11,), copy_samples=(1e10,))
TINY = {"n_heads": 4, "n_kv_heads": 2, "d_head": 16, "window": 8, "seq_lens": (16, 32), "batches": (1,),
        "repeats": 2, "min_pass_s": 0.002, "device": "cpu"}  # fmt: skip


@pytest.fixture
def fake_peaks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the roofline measurement (a second of matmuls and copies) where a test does not look at it."""
    monkeypatch.setattr(bench, "measure_peaks", lambda settings, **kwargs: FAKE_PEAKS)


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


def test_sweep_records_have_the_schema_and_the_analytic_numbers(fake_peaks: None) -> None:
    impls = ("eager", "sdpa", "sdpa_grouped")
    settings = bench.resolve_settings(variants=("mha", "gqa"), impls=impls, phases=M.PHASES, chunk_size=8, **TINY)
    updates = []
    result = bench.run(settings, on_update=lambda r: updates.append(len(r.results)))
    assert result.complete and not result.interrupted
    records = result.records
    # sdpa_grouped only where KV heads are shared: gqa, not mha. 2 lengths x 3 phases x (2 + 3) cases.
    assert len(records) == 2 * 3 * 5
    assert not any(r["impl"] == "sdpa_grouped" and r["variant"] == "mha" for r in records)
    assert updates == [5, 10, 15, 20, 25, 30, 30]  # after every group, and once at the end
    required = {"variant", "impl", "phase", "batch", "seq_len", "n_heads", "n_kv_heads", "d_head", "window",
                "dtype", "device", "median_s", "iqr_s", "achieved_flop_per_s", "achieved_bytes_per_s",
                "roofline_fraction", "predicted_s", "peak_memory_bytes", "max_abs_error", "skipped_reason"}  # fmt: skip
    for r in records:
        assert required <= r.keys()
        assert r["skipped_reason"] is None, r
        assert r["median_s"] > 0 and r["iqr_s"] >= 0 and r["n_samples"] >= 2 and r["passes"] == 2
        assert r["rel_error"] < 1e-5
        kv = 4 if r["variant"] == "mha" else 2
        assert r["n_kv_heads"] == kv
        pairs = M.attended_pairs(r["phase"], r["seq_len"])
        assert r["analytic_flops"] == M.attention_flops(1, 4, 16, pairs)
        chunk = 8 if r["phase"] == "chunked_prefill" else None
        assert r["chunk_size"] == chunk
        shape = {"batch": 1, "n_heads": 4, "n_kv_heads": kv, "d_head": 16, "seq_len": r["seq_len"]}
        assert r["analytic_bytes"] == M.attention_bytes(r["phase"], **shape, bytes_per_element=4, chunk_size=chunk)
        assert r["achieved_flop_per_s"] == pytest.approx(r["analytic_flops"] / r["median_s"])
        predicted = M.roofline_time_s(r["analytic_flops"], r["analytic_bytes"], 1e11, 1e10)
        assert r["predicted_s"] == pytest.approx(predicted)
        assert r["roofline_fraction"] == pytest.approx(predicted / r["median_s"])
        assert r["gqa_feed"] == (None if kv == 4 else A.IMPLEMENTATIONS[r["impl"]].gqa_feed)


def test_the_roofline_is_the_best_measurement_of_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    rates = iter([5e10, 2e11, 1e11])  # before the sweep, after group 1, after group 2

    def measure(settings: bench.BenchSettings, **kwargs: object) -> bench.Peaks:
        rate = next(rates)
        return bench.Peaks(rate, 1, 1e10, 1.0, matmul_samples=(rate,), copy_samples=(1e10,))

    monkeypatch.setattr(bench, "measure_peaks", measure)
    settings = bench.resolve_settings(variants=("mha",), impls=("sdpa",), phases=("prefill",), **TINY)
    result = bench.run(settings)
    peaks = result.environment["measured_peaks"]
    assert peaks["matmul_flop_per_s"] == 2e11 and peaks["matmul_samples"] == (5e10, 2e11, 1e11)
    for r in result.records:  # the first group, finished at 5e10, follows the better peak
        assert r["predicted_s"] == pytest.approx(
            M.roofline_time_s(r["analytic_flops"], r["analytic_bytes"], 2e11, 1e10)
        )


def test_too_big_and_unavailable_cases_are_skipped_with_a_reason(fake_peaks: None) -> None:
    settings = bench.resolve_settings(variants=("mha",), impls=("eager", "sdpa", "sdpa_efficient"),
                                      phases=("prefill",), memory_budget_bytes=40_000, **TINY)  # fmt: skip
    records = {(r["seq_len"], r["impl"]): r for r in bench.run(settings).records}
    # S=32 eager holds three 4 x 32 x 32 fp32 score tensors (48 KiB): over a 40 kB budget; S=16 fits.
    assert records[(32, "eager")]["skipped_reason"].startswith("too big: needs about")
    assert records[(16, "eager")]["skipped_reason"] is None and records[(16, "eager")]["median_s"] > 0
    if not torch.cuda.is_available():
        reason = records[(16, "sdpa_efficient")]["skipped_reason"]
        assert reason.startswith("RuntimeError") and "backend" in reason
        assert records[(16, "sdpa_efficient")]["median_s"] is None
    # A skipped record still carries the analytic numbers (what the shape would cost).
    assert records[(32, "eager")]["analytic_flops"] == M.attention_flops(1, 4, 16, M.attended_pairs("prefill", 32))


def test_out_of_memory_and_wrong_results_are_skipped(fake_peaks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    real_build = bench.build_phase

    def build(impl, variant, phase, inputs, **kwargs):
        if impl.name == "sdpa":
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
        run = real_build(impl, variant, phase, inputs, **kwargs)
        return lambda: run() * 1.5  # a wrong kernel

    monkeypatch.setattr(bench, "build_phase", build)
    settings = bench.resolve_settings(variants=("gqa",), impls=("eager", "sdpa"), phases=("prefill",), **TINY)
    for r in bench.run(settings).records:
        if r["impl"] == "sdpa":
            assert r["skipped_reason"].startswith("out of memory")
        else:
            assert r["skipped_reason"].startswith("wrong result: relative error 0.5")
            assert r["rel_error"] == pytest.approx(0.5) and r["median_s"] is None


def test_interrupt_keeps_finished_groups(fake_peaks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = bench._run_group

    def run_group(group, *args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(group, *args)

    monkeypatch.setattr(bench, "_run_group", run_group)
    settings = bench.resolve_settings(variants=("mha", "mqa"), impls=("sdpa",), phases=("prefill",), **TINY)
    result = bench.run(settings)
    assert result.interrupted and not result.complete
    assert [(r["seq_len"], r["variant"]) for r in result.records] == [(16, "mha"), (16, "mqa")]


def test_interrupt_in_a_pass_keeps_cases_with_a_full_pass(fake_peaks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    real = bench.measure_pass
    calls = []

    def measure(fn, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # pass 2 of case 1 (cases: mha, mqa; passes interleave them)
            raise KeyboardInterrupt
        return real(fn, **kwargs)

    monkeypatch.setattr(bench, "measure_pass", measure)
    settings = bench.resolve_settings(variants=("mha", "mqa"), impls=("sdpa",), phases=("prefill",), **TINY)
    result = bench.run(settings)
    assert result.interrupted
    assert [(r["variant"], r["passes"]) for r in result.records] == [("mha", 1), ("mqa", 1)]


# -- baselines ---------------------------------------------------------------------------------------------------
def _record(median: float, iqr: float, **key: object) -> dict[str, object]:
    base = {"variant": "gqa", "impl": "sdpa", "phase": "prefill", "batch": 1, "seq_len": 1024, "n_heads": 32,
            "n_kv_heads": 8, "d_head": 128, "window": None, "causal": True, "chunk_size": None, "dtype": "fp32",
            "device": "cpu"}  # fmt: skip
    return {**base, **key, "median_s": median, "iqr_s": iqr}


def test_regression_gate_needs_both_the_threshold_and_the_noise() -> None:
    old = [_record(1.00, 0.02, seq_len=s) for s in (1, 2, 3, 4, 5, 6)] + [_record(1.0, 0.0, seq_len=7)]
    new = [
        _record(1.05, 0.02, seq_len=1),  # +5%: within the 10% threshold
        _record(1.30, 0.02, seq_len=2),  # +30%, spread 0.028 s: a regression
        _record(1.30, 0.40, seq_len=3),  # +30% but the runs spread by 0.4 s: noise
        _record(0.70, 0.02, seq_len=4),  # faster
        _record(None, None, seq_len=5) | {"skipped_reason": "too big"},  # type: ignore[arg-type]
        _record(1.00, 0.02, seq_len=8),  # not in the baseline
    ]
    changes = bench.compare_runs(old, new, max_regression=0.10)
    verdicts = {c.key["seq_len"]: c.verdict for c in changes}
    assert verdicts == {1: "same", 2: "slower", 3: "noise", 4: "faster", 5: "skipped", 8: "new", 6: "gone", 7: "gone"}
    slow = next(c for c in changes if c.key["seq_len"] == 2)
    assert slow.change == pytest.approx(0.30) and slow.noise == pytest.approx((2 * 0.02**2) ** 0.5)
    assert [c.key["seq_len"] for c in bench.regressions(changes)] == [2]
    # Records match on every identifying field: another dtype is another measurement.
    assert bench.compare_runs([_record(1.0, 0.0)], [_record(2.0, 0.0, dtype="bf16")], max_regression=0.1)[
        0
    ].verdict == ("new")
    with pytest.raises(InvalidValueError):
        bench.compare_runs(old, new, max_regression=-1)


def test_uniform_machine_drift_is_not_a_regression_but_an_outlier_is() -> None:
    old = [_record(1.0, 0.01, seq_len=s) for s in range(1, 11)]
    # The whole machine is 15% slower today; one kernel is 60% slower on top of that.
    new = [_record(1.15, 0.01, seq_len=s) for s in range(1, 10)] + [_record(1.15 * 1.6, 0.01, seq_len=10)]
    assert bench.run_drift(old, new) == pytest.approx(1.15)
    changes = bench.compare_runs(old, new, max_regression=0.10)
    assert [c.key["seq_len"] for c in bench.regressions(changes)] == [10]
    outlier = next(c for c in changes if c.key["seq_len"] == 10)
    assert outlier.change == pytest.approx(0.6) and outlier.raw_change == pytest.approx(0.84)
    # Gating on raw medians, every record is a regression.
    raw = bench.compare_runs(old, new, max_regression=0.10, correct_drift=False)
    assert len(bench.regressions(raw)) == 10
    # Too few records to estimate a drift: compared as measured.
    assert bench.run_drift(old[:3], new[:3]) == 1.0


def test_suspected_regressions_are_retimed_and_must_reproduce(fake_peaks: None) -> None:
    settings = bench.resolve_settings(variants=("mha", "gqa"), impls=("eager", "sdpa"), phases=("prefill",), **TINY)
    baseline_run = bench.run(settings)
    old = baseline_run.records
    # A burst: one case of this run reads 1000x slower than it is. Re-timing finds its usual speed. (A 500%
    # threshold keeps the microsecond-scale noise of these tiny shapes out of the picture.)
    fresh = bench.run(settings)
    fresh.results[0] = dataclasses.replace(fresh.results[0], median_s=fresh.results[0].median_s * 1000)
    changes, retimed = bench.confirm_regressions(fresh, old, max_regression=5.0, correct_drift=False)
    assert retimed == 1 and not bench.regressions(changes)
    assert fresh.results[0].median_s < 1000 * old[0]["median_s"] / 10
    # A real slowdown (the baseline was 1000x faster for one case) reproduces when re-timed.
    fast = [dict(r) for r in old]
    fast[1]["median_s"] /= 1000
    changes, retimed = bench.confirm_regressions(bench.run(settings), fast, max_regression=5.0, correct_drift=False)
    assert retimed == 1 and [
        (c.key["seq_len"], c.key["variant"], c.key["impl"]) for c in bench.regressions(changes)
    ] == [(old[1]["seq_len"], old[1]["variant"], old[1]["impl"])]


def test_load_baseline_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidValueError, match="no such file"):
        bench.load_baseline(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidValueError, match="not a JSON file"):
        bench.load_baseline(str(bad))
    bad.write_text(json.dumps({"schema_version": 1, "models": []}))
    with pytest.raises(InvalidValueError, match="not an llmarch bench document"):
        bench.load_baseline(str(bad))


def test_settings_defaults_and_errors() -> None:
    s = bench.resolve_settings(device="cpu")
    assert (s.shape_source, s.n_heads, s.n_kv_heads, s.d_head, s.window) == ("mistral-7b", 32, 8, 128, 4096)
    assert (s.dtype, s.seq_lens, s.phases, s.impls) == ("fp32", (512, 1024, 2048), M.PHASES, bench.CPU_IMPLS)
    quick = bench.resolve_settings(quick=True, device="cpu")
    assert quick.impls == ("eager", "sdpa") and quick.phases == ("prefill", "decode")
    assert set(quick.variants) == set(A.VARIANT_NAMES)
    # Explicit values win over the preset; no window anywhere: a quarter of the longest sequence.
    s = bench.resolve_settings(preset="llama-2-70b", n_kv_heads=4, seq_lens=(256, 1024), device="cpu")
    assert (s.n_heads, s.n_kv_heads, s.d_head, s.window) == (64, 4, 128, 256)
    s = bench.resolve_settings(n_heads=8, d_head=64, device="cpu")
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
    ]:
        with pytest.raises(InvalidValueError, match=message):
            bench.resolve_settings(device="cpu", **kwargs)  # type: ignore[arg-type]
    if not torch.cuda.is_available():
        with pytest.raises(InvalidValueError, match="no CUDA device"):
            bench.resolve_settings(device="cuda")


def test_catalog_gpu_from_the_device_name() -> None:
    assert bench.catalog_gpu_for("NVIDIA H100 80GB HBM3") == "h100-sxm"
    assert bench.catalog_gpu_for("NVIDIA H100 PCIe") == "h100-pcie"
    assert bench.catalog_gpu_for("NVIDIA H200") == "h200"
    assert bench.catalog_gpu_for("NVIDIA A100-SXM4-40GB") == "a100-40gb"
    assert bench.catalog_gpu_for("NVIDIA L4") == "l4" and bench.catalog_gpu_for("NVIDIA L40S") == "l40s"
    assert bench.catalog_gpu_for("Intel(R) Xeon(R) Processor") is None


def test_measured_peaks_are_positive() -> None:
    settings = bench.resolve_settings(**TINY)
    peaks = bench.measure_peaks(settings, quick=True)
    assert peaks.matmul_flop_per_s > 1e8 and peaks.copy_bytes_per_s > 1e8 and peaks.catalog_gpu is None


# -- the command line ----------------------------------------------------------------------------------------------
CLI_TINY = ["--n-heads", "4", "--n-kv-heads", "2", "--d-head", "16", "--seq-lens", "16", "--min-time", "0.002"]


def test_cli_quick_json_covers_every_variant_eager_and_sdpa_prefill_and_decode(fake_peaks: None) -> None:
    result = runner.invoke(app, ["bench", "--quick", *CLI_TINY, "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["schema_version"] == 1 and document["complete"] and not document["interrupted"]
    env = document["environment"]
    assert env["torch"] == torch.__version__ and env["device"] == "cpu" and env["threads"] >= 1
    assert env["device_name"] and env["cpu"] and env["measured_peaks"]["matmul_flop_per_s"] == 1e11
    cells = {(r["variant"], r["impl"], r["phase"]) for r in document["results"]}
    assert cells == {(v, i, p) for v in A.VARIANT_NAMES for i in ("eager", "sdpa") for p in ("prefill", "decode")}
    assert all(r["median_s"] > 0 and r["skipped_reason"] is None for r in document["results"])
    assert document["settings"]["quick"] and document["settings"]["repeats"] == 3


def test_cli_table_output_file_plot_and_baseline(tmp_path: Path, fake_peaks: None) -> None:
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
    # Against a baseline 1000x slower: faster everywhere, exit 0; against one 1000x faster: exit 3.
    for name, factor in (("slow.json", 1000), ("fast.json", 1e-3)):
        shifted = {**document, "results": [{**r, "median_s": r["median_s"] * factor, "iqr_s": 0.0}
                                           for r in document["results"]]}  # fmt: skip
        (tmp_path / name).write_text(json.dumps(shifted))
    raw = [*args, "--no-drift-correction"]
    result = runner.invoke(app, [*raw, "--format", "json", "--baseline", str(tmp_path / "slow.json")])
    assert result.exit_code == 0, result.output
    assert {c["verdict"] for c in json.loads(result.stdout)["baseline"]["changes"]} == {"faster"}
    assert "no regression among 8 compared" in result.stderr
    baseline = tmp_path / "fast.json"
    result = runner.invoke(app, [*raw, "--baseline", str(baseline)])
    assert result.exit_code == 3
    assert "slower" in result.stderr and "8 regression(s) among 8 compared" in result.stderr
    # On CPU the default measures changes against the run-wide drift: the 1000x shift is seen as the
    # machine's (the fresh timings scatter around it; the verdicts are tested on fixed data above).
    result = runner.invoke(app, [*args, "--format", "json", "--baseline", str(baseline)])
    drift = json.loads(result.stdout)["baseline"]["changes"][0]["drift"]
    assert 300 < drift < 3000 and "run-wide drift" in result.stderr


def test_cli_interrupt_leaves_a_valid_json_file(
    tmp_path: Path, fake_peaks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = bench._run_group

    def run_group(group, *args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(group, *args)

    monkeypatch.setattr(bench, "_run_group", run_group)
    out = tmp_path / "partial.json"
    result = runner.invoke(app, ["bench", *CLI_TINY, "--seq-lens", "8,16,32", "--variants", "mha", "--impls",
                                 "sdpa", "--phases", "decode", "--output", str(out)])  # fmt: skip
    assert result.exit_code == 130
    assert "interrupted: 2 finished results kept" in result.stderr
    document = json.loads(out.read_text())
    assert document["interrupted"] and not document["complete"]
    assert [r["seq_len"] for r in document["results"]] == [8, 16]


def test_cli_errors_are_one_line() -> None:
    result = runner.invoke(app, ["bench", "--preset", "nope", "--device", "cpu"])
    assert result.exit_code == 1 and result.stderr.startswith("error: unknown preset 'nope'")
    result = runner.invoke(app, ["bench", "--seq-lens", "a,b", "--device", "cpu"])
    assert result.exit_code == 2


def test_the_cli_module_does_not_import_torch() -> None:
    code = "import sys, llmarch.cli.bench, llmarch.bench.counts; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_sweep_reports_every_backend_or_why_not() -> None:
    settings = bench.resolve_settings(n_heads=8, n_kv_heads=2, d_head=64, seq_lens=(256,), batches=(2,),
                                      repeats=2, min_pass_s=0.01, device="cuda")  # fmt: skip
    assert settings.dtype == "bf16" and "sdpa_flash" in settings.impls
    result = bench.run(settings)
    assert result.environment["measured_peaks"]["matmul_flop_per_s"] > 1e12
    for r in result.records:
        assert (r["median_s"] is None) == (r["skipped_reason"] is not None), r
        if r["median_s"] is not None:
            assert r["rel_error"] < 3e-2 and r["peak_memory_bytes"] is not None
