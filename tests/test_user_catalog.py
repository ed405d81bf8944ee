"""User catalogs: GPUs, grid regions and prices added to or overriding the shipped rows by name, from
--catalog FILE or LLMARCH_CATALOG, and seen by every command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmarch.catalog import hardware
from llmarch.cli import app
from llmarch.core.errors import InvalidValueError

runner = CliRunner()

#: An H20 as a user would write it (figures from NVIDIA's H20 product brief as commonly quoted: 148 dense
#: bf16 TFLOP/s, 96 GB HBM3 at 4.0 TB/s, 400 W); test data for the mechanism, not a catalog claim.
USER_CATALOG = """\
accelerators:
  - name: H20
    display_name: NVIDIA H20
    peak_tflop_per_s: {bf16: 148, fp8: 296}
    memory_gb: 96
    memory_bandwidth_tb_per_s: 4.0
    power_w: 400
  - name: h100-sxm
    memory_gb: 94
regions:
  - region: My-DC
    kg_co2e_per_kwh: 0.12
    year: 2025
prices:
  - {accelerator: h20, usd_per_gpu_hour: 1.2, as_of: 2026-01, basis: contract, source: internal}
"""


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "gpus.yaml"
    path.write_text(USER_CATALOG)
    return path


def _json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_env_catalog_adds_a_gpu_overrides_a_field_and_keeps_the_rest(
    catalog: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = hardware.accelerator("h100-sxm")
    monkeypatch.setenv(hardware.CATALOG_ENV, str(catalog))
    h20 = hardware.accelerator("h20")
    assert h20.memory_bytes == 96 * 2**30 and h20.peak("bf16") == 148e12 and h20.memory_bandwidth_bytes_per_s == 4e12
    assert h20.source == f"user catalog {catalog}" and h20.power_w == 400
    h100 = hardware.accelerator("H100-SXM")
    assert h100.memory_bytes == 94 * 2**30 and h100.peak("bf16") == shipped.peak("bf16") == 989.5e12
    assert "over the catalog row" in h100.source
    assert hardware.grid_intensity("my-dc").kg_co2e_per_kwh == 0.12
    price = hardware.default_price("H20")
    assert price is not None and price.usd_per_gpu_hour == 1.2
    monkeypatch.delenv(hardware.CATALOG_ENV)
    assert hardware.accelerator("h100-sxm").memory_bytes == 80 * 2**30
    with pytest.raises(InvalidValueError, match="unknown GPU 'h20'"):
        hardware.accelerator("h20")


def test_catalog_option_reaches_gpus_cost_and_memory(catalog: Path) -> None:
    gpus = {g["name"]: g for g in _json("gpus", "--catalog", str(catalog))["results"]}
    assert gpus["H20"]["memory_bandwidth_bytes_per_s"] == 4_000_000_000_000
    row = _json("estimate-cost", "llama-2-7b", "--gpu", "h20", "--region", "my-dc", "--catalog", str(catalog))
    a = row["results"][0]["assumptions"]
    assert a["peak_flop_per_s"] == 148e12 and a["grid_kg_co2e_per_kwh"] == 0.12 and a["usd_per_gpu_hour"] == 1.2
    # GPU-hours = FLOPs / (peak x MFU) / 3600, the same formula as for a shipped GPU
    assert row["results"][0]["gpu_hours"] == pytest.approx(row["results"][0]["training_flops"] / (148e12 * 0.4) / 3600)
    memory = _json("memory", "llama-2-7b", "--gpu", "h20", "--catalog", str(catalog))["results"][0]
    assert memory["assumptions"]["accelerator_memory_bytes"] == 96 * 2**30
    assert "H20" not in {g["name"] for g in _json("gpus")["results"]}  # --catalog lasts one command


def test_gpus_table_shows_memory_bandwidth() -> None:
    result = runner.invoke(app, ["gpus"])
    line = next(row for row in result.stdout.splitlines() if "h100-sxm" in row)
    assert "mem. TB/s" in result.stdout and "3.35" in line


def test_cost_table_has_region_and_intensity_and_a_price_hint() -> None:
    result = runner.invoke(app, ["estimate-cost", "llama-2-7b", "--gpu", "l4", "--region", "aws:us-east-1"])
    assert result.exit_code == 0
    assert "aws:us-east-1" in result.stdout and "0.2448" in result.stdout
    assert "no default price for l4: pass --price-per-gpu-hour" in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [("gpus: []\n", "expected a mapping with 'accelerators'"),
     ("accelerators: {name: x}\n", "must be a list of mappings"),
     ("accelerators:\n  - {name: x, memory_gb: 8}\n", "peak_tflop_per_s"),
     ("accelerators:\n  - {name: x, memory_gb: -8, peak_tflop_per_s: {bf16: 1}}\n", "memory_gb: must be a positive"),
     ("accelerators:\n  - {name: x, memory_gb: 8, peak_tflop_per_s: {bf16: 1}, colour: red}\n", "unknown field")],
)  # fmt: skip
def test_bad_user_catalogs_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["gpus", "--catalog", str(path)])
    assert result.exit_code == 1 and message in result.stderr, result.output


def test_node_overhead_adds_the_rest_of_the_server_to_each_gpu() -> None:
    """DGX H100: ~10.2 kW maximum for 8 GPUs of 700 W, so ~575 W of CPUs, NICs and fans per GPU."""
    plain = _json("estimate-cost", "--gpu-hours", "1000", "--gpu", "h100-sxm", "--pue", "1.1")["results"][0]
    node = _json("estimate-cost", "--gpu-hours", "1000", "--gpu", "h100-sxm", "--pue", "1.1",
                 "--node-overhead-w", "575")["results"][0]  # fmt: skip
    assert plain["energy_kwh"] == pytest.approx(1000 * 700 / 1000 * 1.1)
    assert node["energy_kwh"] == pytest.approx(1000 * (700 + 575) / 1000 * 1.1)
    assert node["assumptions"]["power_w"] == 1275 and "575 W node overhead" in node["assumptions"]["power_source"]


def test_flags_override_a_gpu_or_define_one_for_one_command() -> None:
    base = _json("estimate-cost", "llama-2-7b", "--gpu", "h100-sxm")["results"][0]
    slower = _json("estimate-cost", "llama-2-7b", "--gpu", "H100-SXM", "--gpu-peak", "494.75T")["results"][0]
    assert slower["assumptions"]["peak_flop_per_s"] == 494.75e12
    assert slower["gpu_hours"] == pytest.approx(2 * base["gpu_hours"])  # half the peak, twice the GPU-hours
    assert hardware.accelerator("h100-sxm").peak("bf16") == 989.5e12  # the override lasted one command
    h20 = _json("estimate-inference", "llama-3-8b", "--gpu", "h20", "--gpu-memory", "96GiB", "--gpu-peak",
                "fp8=296T,bf16=148T", "--gpu-bandwidth", "4TB/s")["results"][0]  # fmt: skip
    assert h20["gpu"] == "h20" and h20["usable_bytes"] < 96 * 2**30 < h20["usable_bytes"] / 0.8
    result = runner.invoke(app, ["estimate-inference", "llama-3-8b", "--gpu", "h20", "--gpu-memory", "96GiB"])
    assert result.exit_code == 1 and "give --gpu-memory and --gpu-peak" in result.stderr
