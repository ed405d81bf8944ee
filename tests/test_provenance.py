"""Provenance through `extends` and overrides: a derived preset names its file and what it changed, and the
training facts say whose run they describe."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from llmarch import load
from llmarch.cli import app

runner = CliRunner()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_derived_file_is_its_own_source_and_named_by_its_file(tmp_path: Path) -> None:
    base = load("llama-2-7b")
    path = _write(tmp_path, "my-llama.yaml", "extends: llama-2-7b\nn_kv_heads: 8\n")
    mine = load(str(path))
    assert mine.name == "my-llama" and mine.n_kv_heads == 8
    assert mine.source == f"{path}: llama-2-7b changes n_kv_heads (shapes otherwise from llama-2-7b: {base.source})"
    assert mine.training.tokens is None and mine.training.source is None  # a base's run is not inherited
    inherit = _write(tmp_path, "inherits.yaml", "extends: llama-2-7b\ninherit_training: true\nn_kv_heads: 8\n")
    assert load(str(inherit)).training.tokens == base.training.tokens
    assert load(str(inherit)).training.source == (
        f"llama-2-7b's published run, not this variant's ({base.training.source})"
    )


def test_estimate_cost_labels_the_users_token_count_as_the_users(tmp_path: Path) -> None:
    path = _write(tmp_path, "mine.yaml", "extends: llama-2-7b\ntraining:\n  tokens: 1T\n")
    result = runner.invoke(app, ["estimate-cost", str(path), "--gpu", "a100-80gb", "--format", "json"])
    assert result.exit_code == 0, result.output
    a = json.loads(result.stdout)["results"][0]["assumptions"]
    assert a["tokens"] == 1e12
    assert a["tokens_source"] == f"preset training.tokens: set in {path}"
    assert "published (" not in a["tokens_source"]


def test_a_users_own_sources_are_kept(tmp_path: Path) -> None:
    text = "extends: llama-2-7b\nsource: my design doc\nn_layers: 16\ntraining:\n  tokens: 1T\n  source: my run\n"
    mine = load(str(_write(tmp_path, "own.yaml", text)))
    assert (mine.source, mine.training.source, mine.n_layers) == ("my design doc", "my run", 16)
