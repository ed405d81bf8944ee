"""The serving estimator against published serving measurements (tests/data/serving_measurements.json).

Every row is run with its own model, GPU, tensor parallelism, precision, lengths and load (batch 1, a
given concurrency, or the engine's maximum-throughput load). The fractions asserted are the ones the model
reaches today (a regression gate, not the goal): batch-1 TPOT within 15%, TTFT within 25%, throughput
within 25%. Run this file as a script for the full error distribution:

    python tests/test_serving_validation.py
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from llmarch import load
from llmarch.serving.estimate import estimate_inference

DATA = Path(__file__).parent / "data" / "serving_measurements.json"
ROWS: list[dict[str, Any]] = json.loads(DATA.read_text())["rows"]
#: (metric, band): batch-1 TPOT within +-15%, TTFT within +-25%, throughput within +-25% (the issue's goal).
BANDS = {"tpot_s": 0.15, "ttft_s": 0.25, "tokens_per_s": 0.25}


def predict(row: dict[str, Any]) -> dict[str, float | None]:
    """The estimate for one measurement row, with the row's own settings."""
    estimate = estimate_inference(
        load(row["model"]),
        row["gpu"],
        tp=row["tp"],
        dtype=row["dtype"],
        kv_dtype=row.get("kv_dtype"),
        prompt_len=row["prompt_len"],
        generate_len=row["generate_len"],
        batch=row["batch"],
        batching=row["batching"],
        usd_per_gpu_hour=1.0,
    )
    assert estimate.ttft_s is not None, f"{row['id']}: {estimate.fit_message()}"
    return {"tpot_s": estimate.tpot_s, "ttft_s": estimate.ttft_s, "tokens_per_s": estimate.tokens_per_s}


def judged(row: dict[str, Any], metric: str) -> bool:
    """Which published numbers a metric is judged on: TPOT at batch 1, TTFT at batch 1, throughput at load."""
    if row.get(metric) is None:
        return False
    if metric == "tokens_per_s":
        return row["batch"] is None or row["batch"] > 1
    return row["batch"] == 1


def errors() -> dict[str, list[tuple[str, float]]]:
    """Relative error (predicted / published - 1) per metric, over the judged rows."""
    out: dict[str, list[tuple[str, float]]] = {m: [] for m in BANDS}
    for row in ROWS:
        got = predict(row)
        for metric in BANDS:
            if judged(row, metric):
                value = got[metric]
                assert value is not None
                out[metric].append((row["id"], value / row[metric] - 1.0))
    return out


def summary(errs: dict[str, list[tuple[str, float]]]) -> dict[str, dict[str, float]]:
    return {
        metric: {
            "rows": len(values),
            "within": sum(abs(e) <= BANDS[metric] for _, e in values),
            "median_abs": statistics.median(abs(e) for _, e in values),
            "median_signed": statistics.median(e for _, e in values),
        }
        for metric, values in errs.items()
    }


def test_every_row_has_a_source_and_runs() -> None:
    sources = json.loads(DATA.read_text())["sources"]
    assert len(ROWS) >= 30
    gpus = {row["gpu"] for row in ROWS}
    assert {"a100-80gb", "h100-sxm", "h200"} <= gpus
    for row in ROWS:
        assert row["source"] in sources and sources[row["source"]]["url"].startswith("https://")
        got = predict(row)  # no crash on any row, and every judged number is positive
        assert all(v is None or v > 0 for v in got.values())


def test_error_distribution_meets_the_recorded_fractions() -> None:
    result = summary(errors())
    # What the model reaches on these rows (see the module docstring); fewer rows within band is a regression.
    # The goal: batch-1 TPOT 80% within 15%, TTFT 70% within 25%, throughput 70% within 25%.
    assert (result["tpot_s"]["rows"], result["tpot_s"]["within"]) == (9, 8)
    assert result["ttft_s"]["rows"] == 21 and result["ttft_s"]["within"] >= 17
    assert result["tokens_per_s"]["rows"] == 84 and result["tokens_per_s"]["within"] >= 74
    assert result["tpot_s"]["median_abs"] < 0.08 and result["ttft_s"]["median_abs"] < 0.1
    assert result["tokens_per_s"]["median_abs"] < 0.14


if __name__ == "__main__":
    errs = errors()
    for metric, values in errs.items():
        print(f"\n{metric}")
        for row_id, e in sorted(values, key=lambda x: x[1]):
            print(f"  {row_id:14s} {e:+.1%}")
    for metric, s in summary(errs).items():
        print(f"{metric}: {s['within']}/{s['rows']} within +-{BANDS[metric]:.0%}, median |error| "
              f"{s['median_abs']:.1%}, median signed {s['median_signed']:+.1%}")  # fmt: skip
