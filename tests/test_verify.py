"""`verify`: the calculators against the reference model for every preset, and the `llmarch verify` command."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("fvcore")

from typer.testing import CliRunner

from llmarch import __version__, load, preset_names
from llmarch.calc import flops
from llmarch.cli import app
from llmarch.core.errors import LlmarchError
from llmarch.reference.verify import COLUMNS, VerifyResult, verify

runner = CliRunner()


#: Presets cross-checked in the fast loop (one per layout: decoder MHA, GQA, MoE, encoder-decoder); every preset
#: is checked with the slow tests (CI).
FAST_PRESETS = ("gpt-2", "llama-2-7b", "mixtral-8x7b", "t5-small")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=() if n in FAST_PRESETS else pytest.mark.slow) for n in preset_names()]
)
def test_every_preset_agrees_with_its_reference_model(name: str) -> None:
    result = verify(load(name))
    assert result.problems() == []
    assert result.ok
    assert result.params_module == result.params_analytic
    assert result.flops_fvcore == result.flops_torch == pytest.approx(result.flops_analytic, rel=1e-9)
    assert result.kv_bytes_module == result.kv_bytes_analytic > 0


def test_mistral_cache_is_measured_past_its_window() -> None:
    from llmarch.reference.model import scaled_down
    from llmarch.reference.verify import DECODE_STEPS, SEQ_LEN

    small = scaled_down(load("mistral-7b"))
    assert small.sliding_window is not None and small.sliding_window < SEQ_LEN + DECODE_STEPS
    result = verify(load("mistral-7b"))
    # 2 layers x window positions x 2 KV heads x (d_head + d_head) x 4 bytes: capped at the window.
    assert result.kv_bytes_module == 2 * small.sliding_window * 2 * 2 * small.d_head * 4


def test_problems_name_each_disagreement() -> None:
    good = verify(load("llama-2-7b"))
    bad = dataclasses.replace(good, params_module=good.params_module + 1, flops_torch=good.flops_torch * 1.02,
                              kv_bytes_module=good.kv_bytes_module * 2)  # fmt: skip
    problems = bad.problems()
    assert len(problems) == 3
    assert problems[0].startswith("params: module")
    assert "flops_torch" in problems[1] and "+2.000%" in problems[1]
    assert problems[2].startswith("KV cache")
    assert list(good.record()) == list(COLUMNS)


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.slow
def test_cli_json_equals_library() -> None:
    specs = ["llama-2-7b", "mistral-7b", "deepseek-v2-lite", "t5-small"]
    code, out, _ = invoke("verify", *specs, "--format", "json")
    assert code == 0
    document = json.loads(out)
    assert document["schema_version"] == 1 and document["llmarch_version"] == __version__
    assert "environment" in document
    assert document["results"] == [verify(load(s)).record() for s in specs]
    assert set(document["results"][0]) == {"name", "params_analytic", "params_module", "flops_analytic",
                                            "flops_fvcore", "flops_torch", "kv_bytes_analytic", "kv_bytes_module",
                                            "ok"}  # fmt: skip


def test_cli_formats_and_output(tmp_path: Path) -> None:
    code, out, _ = invoke("verify", "falcon-7b")
    assert code == 0 and "falcon-7b" in out and "1 of 1 agree" in out
    code, out, _ = invoke("verify", "falcon-7b", "--format", "markdown")
    assert code == 0 and out.splitlines()[2].startswith("| model |")
    target = tmp_path / "verify.csv"
    code, out, _ = invoke("verify", "falcon-7b", "mpt-7b", "--format", "csv", "--output", str(target))
    assert code == 0 and out == ""
    lines = target.read_text().splitlines()
    assert lines[0].split(",") == list(COLUMNS) and len(lines) == 3


def test_cli_exits_1_with_one_line_per_failing_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    real = flops.forward_flops

    def off_by_5_percent(config, seq_len, **kwargs):  # type: ignore[no-untyped-def]
        fwd = real(config, seq_len, **kwargs)
        return dataclasses.replace(fwd, total=fwd.total * 1.05)

    monkeypatch.setattr(flops, "forward_flops", off_by_5_percent)
    code, out, err = invoke("verify", "llama-2-7b", "gemma-2b", "--format", "json")
    assert code == 1
    assert [r["ok"] for r in json.loads(out)["results"]] == [False, False]  # the report is still written
    lines = err.splitlines()
    assert len(lines) == 2 and "Traceback" not in err
    assert lines[0].startswith("error: llama-2-7b: flops_fvcore") and "-4.762%" in lines[0]
    assert lines[1].startswith("error: gemma-2b: ")


def test_cli_usage_errors() -> None:
    code, _, err = invoke("verify")
    assert code == 2 and "name at least one preset" in err
    code, _, err = invoke("verify", "llama2-7b")
    assert code == 1 and "did you mean 'llama-2-7b'" in err


def test_missing_torch_is_a_friendly_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fvcore", None)  # makes `import fvcore` raise ImportError
    with pytest.raises(LlmarchError, match=r"pip install 'llmarch\[torch\]'"):
        verify(load("gpt-2"))
    code, _, err = invoke("verify", "gpt-2")
    assert code == 1 and err.startswith("error: verification needs PyTorch and fvcore")


def test_result_is_frozen() -> None:
    result = verify(load("gpt-2"))
    assert isinstance(result, VerifyResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.ok = False  # type: ignore[misc]
