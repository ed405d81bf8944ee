"""Library errors name keyword arguments (`mfu`), the CLI shows its flags (--mfu): issue 10 item 4."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmarch import load
from llmarch.calc import cost
from llmarch.cli import app
from llmarch.core.errors import InvalidValueError

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent / "llmarch"
LIBRARY_MODULES = ["calc/cost.py", "serving/estimate.py", "serving/setup.py"]


def _strings(path: Path) -> list[str]:
    """String literals of a module outside docstrings (f-strings included, by their literal parts)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


@pytest.mark.parametrize("module", LIBRARY_MODULES)
def test_library_messages_name_no_cli_flag(module: str) -> None:
    # A message names a flag; a bare "--max-cost" is data (BudgetExceeded.option, which the report keys on).
    flags = [s for s in _strings(ROOT / module) if " " in s.strip() and re.search(r"(?<![\w-])--[a-z]", s)]
    assert flags == []


@pytest.mark.parametrize(
    ("kwargs", "library", "cli_args", "shown"),
    [
        ({"mfu": 1.5}, "`mfu` must be a fraction", ["--mfu", "1.5"], "--mfu must be a fraction"),
        ({"pue": 0.5}, "`pue` is facility energy", ["--pue", "0.5"], "--pue is facility energy"),
        ({"power_w": -1.0}, "`power_w` must be positive", ["--power-w", "-1"], "--power-w must be positive"),
        ({"tokens": "-1T"}, "`tokens` must be positive", ["--tokens", "-1T"], "--tokens must be positive"),
        (
            {"flops_method": "6nd", "recompute": "full"},
            "`recompute` only applies to `flops_method` exact",
            ["--flops-method", "6nd", "--recompute", "full"],
            "--recompute only applies to --flops-method exact",
        ),
        (
            {"region": "fra", "grid_kg_co2e_per_kwh": 0.1},
            "give `region` or `grid_kg_co2e_per_kwh`, not both",
            ["--region", "fra", "--grid-intensity", "0.1"],
            "give --region or --grid-intensity, not both",
        ),
    ],
)
def test_cost_errors_name_the_keyword_and_the_cli_the_flag(
    kwargs: dict[str, object], library: str, cli_args: list[str], shown: str
) -> None:
    with pytest.raises(InvalidValueError, match=re.escape(library)):
        cost.estimate_training_cost(load("llama-2-7b"), "a100-80gb", **kwargs)  # type: ignore[arg-type]
    result = runner.invoke(app, ["estimate-cost", "llama-2-7b", "--gpu", "a100-80gb", *cli_args])
    assert result.exit_code == 1 and result.stderr.startswith(f"error: {shown}")


def test_budget_errors_name_the_keyword_and_the_cli_the_flag() -> None:
    estimate = cost.footprint(10, power_w=300)  # no price
    with pytest.raises(InvalidValueError, match=re.escape("`max_cost_usd` needs a price: pass `usd_per_gpu_hour`")):
        cost.check_budgets([estimate], max_cost_usd=1)
    result = runner.invoke(app, ["estimate-cost", "--gpu-hours", "10", "--power-w", "300", "--max-cost", "1"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: --max-cost needs a price: pass --price-per-gpu-hour")


def test_exceeded_budget_line_shows_the_flag() -> None:
    args = ["--gpu-hours", "1000", "--power-w", "400", "--price-per-gpu-hour", "2", "--max-cost", "1999"]
    result = runner.invoke(app, ["estimate-cost", *args])
    assert result.exit_code == 3 and result.stderr == "budget exceeded: measured: $2k > --max-cost $2k\n"
