"""llmarch.report.format: the one number formatter of the CLI tables and the report."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from llmarch.cli import app
from llmarch.report import format as fmt


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (1.87, "1.87 s"), (0.0261, "26.1 ms"), (45.6e-6, "45.6 µs"), (8.2e-7, "820 ns"), (1234.5, "1,234 s")],
)
def test_format_seconds(value: float | None, text: str) -> None:
    assert fmt.format_seconds(value) == text


@pytest.mark.parametrize(
    ("value", "unit", "scale", "text"),
    [
        (3.58e12, "FLOP/s", None, "3.58 TFLOP/s"),
        (1.234e12, "B/s", 1e9, "1,234 GB/s"),  # a fixed column unit: never 1.23e+03
        (2.5e8, "FLOP/s", 1e12, "0.00025 TFLOP/s"),
        (512.0, "B/s", None, "512 B/s"),
        (None, "B/s", None, "-"),
    ],
)
def test_format_rate(value: float | None, unit: str, scale: float | None, text: str) -> None:
    assert fmt.format_rate(value, unit, scale=scale) == text


def test_format_co2e_tonnes_at_three_figures_never_scientific() -> None:
    # Touvron et al. 2023, Table 15: LLaMA-65B 173,188 kg (printed 173 tCO2eq).
    assert fmt.format_co2e(173_188.1228) == "173 t"
    assert fmt.format_co2e(12_345_678.0) == "12,346 t"
    assert fmt.format_co2e(540.0) == "0.54 t"
    assert fmt.format_co2e(None) == "-"


def test_counts_money_shares() -> None:
    assert fmt.format_usd(1_234_567) == "$1.23M"
    assert fmt.format_kwh(449_839.28) == "450k kWh"
    assert fmt.format_share(0.1234) == "12.3%"
    assert fmt.format_exact(6_738_415_616) == "6,738,415,616"
    assert fmt.format_flops(8.4e23) == "8.4e+23"


def test_format_value_by_unit_of_key() -> None:
    assert fmt.format_value(2**30, "workspace_bytes") == "1 GiB"
    assert fmt.format_value(450e9, "link_bandwidth_bytes_per_s") == "450 GB/s"
    assert fmt.format_value(989.5e12, "peak_flop_per_s") == "989.5 TFLOP/s"
    assert fmt.format_value(1e-5, "allreduce_latency_s") == "10 µs"
    assert fmt.format_value(["pue", "mfu"]) == "pue, mfu"
    assert fmt.format_value(True) == "true"


def test_cli_cost_table_and_report_show_the_same_co2e(tmp_path) -> None:
    """The CO2e of one estimate reads the same in `estimate-cost`'s table and in the report."""
    runner = CliRunner()
    args = ["llama-2-7b", "--gpu", "a100-80gb"]
    data = json.loads(runner.invoke(app, ["estimate-cost", *args, "-f", "json"]).output)
    text = fmt.format_co2e(data["estimates"][0]["co2e_kg"])
    table = runner.invoke(app, ["estimate-cost", *args, "-f", "markdown"]).output
    assert f"| {text} |" in table
    out = tmp_path / "r.md"
    result = runner.invoke(app, ["report", "llama-2-7b", "--gpu", "a100-80gb", "--no-images", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"| {text} |" in out.read_text()


def test_to_json_encodes_a_shared_payload_once_and_writes_what_json_dumps_writes() -> None:
    from llmarch.report import tables

    records = [{"name": "a\nb", "params_total": 7, "nested": {"x": [1.5, None, {}], "y": []}}]
    document = tables.envelope("models", records, kind="compare")
    assert document["results"] is document["models"]
    assert tables.to_json(document) == json.dumps(document, indent=2, allow_nan=False) + "\n"
    for other in ({}, [1, {"a": 2}], {"a": {}}):
        assert tables.to_json(other) == json.dumps(other, indent=2) + "\n"
    with pytest.raises(ValueError):
        tables.to_json({"x": float("nan")})
