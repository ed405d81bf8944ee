"""Workload files: one file of option values read by every workload-aware command, flags winning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmarch.catalog.workload import WORKLOAD_KEYS, parse_workload, read_workload
from llmarch.cli import app
from llmarch.core.errors import InvalidValueError

runner = CliRunner()

WORKLOAD = """\
presets: [llama-3-8b, mistral-7b]
seq_len: 32k
dtype: bf16
gpu: h100-sxm
training:
  n_gpus: 256
  tp: 4
  tokens: 2T
  recompute: selective
  mfu: 0.4
serving:
  prompt: 4k
  generate_len: 512
"""


@pytest.fixture
def workload(tmp_path: Path) -> Path:
    path = tmp_path / "w.yaml"
    path.write_text(WORKLOAD)
    return path


def _json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_read_normalises_lengths_and_aliases_and_keeps_sections(workload: Path) -> None:
    w = read_workload(workload)
    assert w.shared["seq_len"] == 32768 and w.shared["presets"] == ["llama-3-8b", "mistral-7b"]
    assert w.sections["serving"] == {"prompt_len": 4096, "generate_len": 512}
    assert w.settings_for("memory")["n_gpus"] == 256 and "prompt_len" not in w.settings_for("memory")
    assert w.settings_for("estimate-inference")["prompt_len"] == 4096 and "n_gpus" not in w.settings_for("compare")
    assert w.section("training")["seq_len"] == 32768  # the top level is shared by both sections


@pytest.mark.parametrize(
    ("data", "message"),
    [({"seqlen": 4096}, "unknown key 'seqlen'; did you mean 'seq_len'"),
     ({"seq-len": 4096}, "snake_case: 'seq_len'"),
     ({"training": {"n_gpu": 8}}, "training: unknown key 'n_gpu'; did you mean 'n_gpus'"),
     ({"seq_len": "4.5k"}, None), ({"seq_len": 0.5}, "whole number"), ({"flash": "yes"}, "true or false"),
     ({"training": [1]}, "'training' must be a mapping"), ({"prompt": 1, "prompt_len": 2}, "given twice"),
     ({"presets": []}, "preset name")],
)  # fmt: skip
def test_bad_workloads_name_the_key_and_the_fix(data: dict, message: str | None) -> None:
    if message is None:  # 4.5k = 4608 tokens: a whole number, accepted
        assert parse_workload(data, source="w.yaml").shared["seq_len"] == 4608
        return
    with pytest.raises(InvalidValueError, match=message):
        parse_workload(data, source="w.yaml")


def test_every_key_is_documented() -> None:
    assert all(kind in {"length", "count", "number", "text", "flag", "names"} and text for kind, text in
               WORKLOAD_KEYS.values())  # fmt: skip


def test_compare_from_the_file_equals_the_same_flags(workload: Path) -> None:
    from_file = _json("compare", "--workload", str(workload))
    by_hand = _json("compare", "llama-3-8b", "mistral-7b", "--seq-len", "32768", "--dtype", "bf16")
    assert from_file["results"] == by_hand["results"]
    assert from_file["results"][0]["kv_cache_bytes"] == 32768 * 131072  # 32 layers x 8 kv heads x 128 x 2 x 2 B


def test_a_flag_on_the_command_line_wins_even_when_it_equals_the_default(workload: Path) -> None:
    rows = _json("compare", "gpt-2", "--workload", str(workload), "--seq-len", "2048")["results"]
    assert [r["name"] for r in rows] == ["gpt-2"] and rows[0]["seq_len"] == 2048


def test_memory_and_compare_answer_the_same_kv_question_from_one_file(workload: Path) -> None:
    compare = _json("compare", "--workload", str(workload))["results"][0]
    memory = _json("memory", "--workload", str(workload))["results"][0]
    assert memory["inference"]["kv_cache_bytes"] * 4 == compare["kv_cache_bytes"]  # per GPU under the file's tp 4
    training = memory["assumptions"]
    assert training["n_gpus"] == 256 and training["tp"] == 4 and training["recompute"] == "selective"


def test_estimate_cost_reads_the_training_section(workload: Path) -> None:
    row = _json("estimate-cost", "llama-3-8b", "--workload", str(workload))["results"][0]
    assert row["assumptions"]["tokens"] == 2e12 and row["assumptions"]["n_gpus"] == 256
    assert row["assumptions"]["gpu"] == "h100-sxm" and row["assumptions"]["seq_len"] == 32768


def test_an_unknown_key_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("seqlen: 4096\n")
    result = runner.invoke(app, ["compare", "gpt-2", "--workload", str(path)])
    assert result.exit_code == 1 and "did you mean 'seq_len'" in result.stderr
    result = runner.invoke(app, ["compare", "gpt-2", "--workload", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 1 and "cannot read" in result.stderr


def _report(tmp_path: Path, *args: str) -> dict:
    target = tmp_path / "r.json"
    result = runner.invoke(app, ["report", *args, "-o", str(target)])
    assert result.exit_code == 0, result.output
    return json.loads(target.read_text())["results"][0]


def test_report_keeps_training_and_serving_apart(tmp_path: Path, workload: Path) -> None:
    """256 training GPUs stay a training cluster; serving runs on its own 8 GPUs (tp 8, one replica)."""
    (tmp_path / "w2.yaml").write_text(WORKLOAD.replace("serving:\n", "serving:\n  n_gpus: 8\n  tp: 8\n"))
    data = _report(tmp_path, "--workload", str(tmp_path / "w2.yaml"))
    assert [m["name"] for m in data["models"]] == ["llama-3-8b", "mistral-7b"] and data["seq_len"] == 32768
    cost = data["training"][0]["assumptions"]
    assert (cost["n_gpus"], cost["tokens"], cost["recompute"]) == (256, 2e12, "selective")
    serving = data["serving"][0]
    assert (serving["n_gpus"], serving["tp"], serving["replicas"], serving["prompt_len"]) == (8, 8, 1, 4096)
    memory = data["memory"][0]["assumptions"]
    assert (memory["n_gpus"], memory["tp"], memory["recompute"]) == (256, 4, "selective")
    # a side option on the command line wins over the file's section
    flagged = _report(tmp_path, "--workload", str(tmp_path / "w2.yaml"), "--train-n-gpus", "512", "--mfu", "0.5")
    given = flagged["training"][0]["assumptions"]
    assert given["n_gpus"] == 512 and given["mfu"] == 0.5
    assert flagged["training"][0]["gpu_hours"] == pytest.approx(data["training"][0]["gpu_hours"] * 0.4 / 0.5)


def test_the_same_serving_question_gets_the_same_answer_from_estimate_inference_and_report(tmp_path: Path) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text("presets: [llama-3-8b]\ngpu: H100-SXM\nserving:\n  prompt_len: 4k\n  tp: 2\n  n_gpus: 4\n")
    single = _json("estimate-inference", "--workload", str(path))["results"][0]
    assert (single["prompt_len"], single["tp"], single["replicas"]) == (4096, 2, 2)
    assert _report(tmp_path, "--workload", str(path))["serving"][0] == single


def test_plan_reads_its_model_and_training_knobs_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("presets: [llama-2-7b]\ngpu: a100-80gb\nseq_len: 4k\n"
                    "training: {n_gpus: 16, global_batch: 64, tp: 2, zero: 1}\n")  # fmt: skip
    from_file = _json("plan", "--workload", str(path), "--top", "2")["results"]
    by_hand = _json("plan", "llama-2-7b", "--gpu", "a100-80gb", "--seq-len", "4096", "--n-gpus", "16",
                    "--global-batch", "64", "--tp", "2", "--zero", "1", "--top", "2")["results"]  # fmt: skip
    assert from_file == by_hand and all((r["tp"], r["zero"]) == (2, 1) for r in from_file)
    result = runner.invoke(app, ["plan", "llama-2-7b"])
    assert result.exit_code == 2 and "--gpu, --n-gpus, --global-batch" in result.output
