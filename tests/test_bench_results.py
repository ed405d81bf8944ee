"""The bench-results schema and its one reader (`llmarch.catalog.bench_results`): lenient for reports and
calibration, strict for a baseline the regression gate trusts. Torch-free."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmarch.catalog import bench_results as R
from llmarch.core.errors import InvalidValueError


def _result(**changes: Any) -> dict[str, Any]:
    record = {"variant": "gqa", "impl": "sdpa", "phase": "decode", "batch": 1, "seq_len": 2048, "n_heads": 32,
              "n_kv_heads": 8, "d_head": 128, "window": None, "causal": True, "chunk_size": None, "gqa_feed": "native",
              "dtype": "bf16", "device": "cuda", "median_s": 2e-5, "iqr_s": 1e-6, "q1_s": 1.95e-5, "q3_s": 2.05e-5,
              "cv": 0.04, "noisy": False, "n_samples": 40, "passes": 5, "analytic_flops": 3.4e7,
              "analytic_bytes": 8.4e6, "achieved_flop_per_s": 1.7e12, "achieved_bytes_per_s": 4.2e11,
              "predicted_s": 3e-6, "roofline_fraction": 0.15, "predicted_catalog_s": None,
              "roofline_fraction_catalog": None, "above_roofline": False, "non_monotone": False,
              "peak_memory_bytes": 0, "max_abs_error": 1e-3, "rel_error": 4e-3, "skipped_reason": None}  # fmt: skip
    return {**record, **changes}


def _document(*results: Any, **changes: Any) -> dict[str, Any]:
    return {"schema_version": 1, "llmarch_version": "0.2.0",
            "environment": {"device_name": "NVIDIA H100 80GB HBM3", "device": "cuda", "torch": "2.5.1", "threads": 8,
                            "measured_peaks": {"matmul_flop_per_s": 7e14, "matmul_n": 8192, "copy_bytes_per_s": 2.9e12,
                                               "copy_bytes": 2**31, "matmul_samples": [6e14, 7e14, 6.5e14],
                                               "copy_samples": [2.9e12]}},
            "settings": {"repeats": 5}, "complete": True, "interrupted": False,
            "results": list(results), **changes}  # fmt: skip


def test_a_full_record_reads_back_unchanged() -> None:
    read = R.read_bench_results(_document(_result()), source="b.json", strict=True)
    assert [r.to_record() for r in read.rows] == [_result()]
    assert read.rows[0].key == ("gqa", "sdpa", "decode", 1, 2048, 32, 8, 128, None, True, None, "bf16", "cuda")
    env = read.environment
    assert env.scalars() == {"device_name": "NVIDIA H100 80GB HBM3", "device": "cuda", "torch": "2.5.1", "threads": 8}
    peaks = env.measured_peaks
    assert peaks is not None and peaks.matmul_samples == (6e14, 7e14, 6.5e14)
    assert peaks.typical_matmul_flop_per_s == 6.5e14 and peaks.typical_copy_bytes_per_s == 2.9e12
    assert peaks.scalars() == {"matmul_flop_per_s": 7e14, "matmul_n": 8192, "copy_bytes_per_s": 2.9e12,
                               "copy_bytes": 2**31}  # fmt: skip
    assert (read.complete, read.interrupted, read.settings, read.llmarch_version) == (
        True,
        False,
        {"repeats": 5},
        "0.2.0",
    )
    assert read.measured_on == "NVIDIA H100 80GB HBM3" and read.timed_rows == read.rows


def test_lenient_reading_keeps_what_it_can() -> None:
    odd = _result(seq_len="long", batch=True, median_s="fast", achieved_flop_per_s=-1, window=2.0, n_samples=1.5,
                  variant="gqa\x1b]0;owned\x07\r\n## fake", cv=float("nan"))  # fmt: skip
    read = R.read_bench_results(_document(odd, "not a result", _result(skipped_reason="too big", median_s=None)),
                                source="b.json")  # fmt: skip
    row = read.rows[0]
    assert (row.seq_len, row.batch, row.median_s, row.achieved_flop_per_s, row.cv) == (None, None, None, None, None)
    assert row.window == 2 and isinstance(row.window, int) and row.n_samples is None
    assert row.variant == "gqa ]0;owned   ## fake"  # control characters become spaces: no escape reaches a terminal
    assert read.n_unreadable == 1 and not row.timed and [r.timed for r in read.rows] == [False, False]
    # No device name in the environment: the first result naming more than "cuda".
    bare = R.read_bench_results({"schema_version": 1, "results": [_result(device="NVIDIA A100-SXM4-80GB")]},
                                source="x")  # fmt: skip
    assert bare.measured_on == "NVIDIA A100-SXM4-80GB" and bare.environment.measured_peaks is None
    assert R.read_bench_results({"schema_version": 1, "results": [_result()]}, source="x").measured_on is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "b.json: expected a JSON object"),
        ({"schema_version": 2, "results": []}, "unsupported schema_version 2"),
        ({"schema_version": True, "results": []}, "unsupported schema_version True"),
        ({"schema_version": 1}, "no 'results' list"),
        ({"schema_version": 1, "results": {}}, "no 'results' list"),
    ],
)
def test_a_document_that_is_not_a_bench_document_is_refused(document: Any, message: str) -> None:
    for strict in (False, True):
        with pytest.raises(InvalidValueError, match=message):
            R.read_bench_results(document, source="b.json", strict=strict)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"median_s": "fast"}, r"results\[0\]: median_s = 'fast' is not a positive number"),
        ({"median_s": 0}, "median_s = 0 is not a positive number"),
        ({"batch": True}, "batch = True is not a positive integer"),
        ({"seq_len": 2048.5}, "seq_len = 2048.5 is not a positive integer"),
        ({"variant": ""}, "variant = '' is not a non-empty string"),
        ({"causal": "yes"}, "causal = 'yes' is not true or false"),
        ({"causal": None}, "causal = None is not true or false"),
        ({"iqr_s": -1e-6}, "iqr_s = -1e-06 is not a non-negative number"),
    ],
)
def test_strict_reading_names_the_record_and_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        R.read_bench_results(_document(_result(**changes)), source="--baseline old.json", strict=True)
    R.read_bench_results(_document(_result(**changes)), source="x")  # lenient: read, the value as None


def test_strict_reading_needs_every_identity_key_and_valid_peaks() -> None:
    record = _result()
    del record["dtype"]
    with pytest.raises(InvalidValueError, match=r"results\[0\]: no 'dtype'; every result needs variant, impl"):
        R.read_bench_results(_document(record), source="b", strict=True)
    del record["gqa_feed"], record["q1_s"]  # measurement fields may be absent (an older document)
    record["dtype"] = "bf16"
    assert R.read_bench_results(_document(record), source="b", strict=True).rows[0].q1_s is None
    bad = _document(_result())
    bad["environment"]["measured_peaks"]["matmul_samples"] = [1e14, "x"]
    with pytest.raises(InvalidValueError, match=r"measured_peaks\.matmul_samples: expected a list of positive numbers"):
        R.read_bench_results(bad, source="b", strict=True)
    assert R.read_bench_results(bad, source="b").environment.measured_peaks.matmul_samples == ()  # type: ignore[union-attr]
    with pytest.raises(InvalidValueError, match=r"results\[1\] is not an object"):
        R.read_bench_results(_document(_result(), [1]), source="b", strict=True)


def test_load_bench_results_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(_document(_result())), encoding="utf-8")
    assert len(R.load_bench_results(path, what="--baseline", strict=True).rows) == 1
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(InvalidValueError, match=r"--baseline: .* is not JSON"):
        R.load_bench_results(path, what="--baseline")
    with pytest.raises(InvalidValueError, match="--baseline: cannot read"):
        R.load_bench_results(tmp_path / "missing.json", what="--baseline")


def test_the_reader_never_imports_torch() -> None:
    code = "import sys, llmarch.catalog.bench_results; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
