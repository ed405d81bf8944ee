"""Command-line conventions: names ignore case, counts are written for people, regions say where they are,
and every command's help reads at 80 columns."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from llmarch.catalog import hardware, presets
from llmarch.cli import COMMAND_MODULES, app
from llmarch.cli._app import parse_human_int
from llmarch.core.errors import InvalidValueError

runner = CliRunner()


def _json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- names ---------------------------------------------------------------------------------------------------
def test_preset_names_and_gpu_ids_ignore_case() -> None:
    assert presets.load("llama-3-8B").name == "llama-3-8b"
    assert presets.load("Mixtral-8x7B") == presets.load("mixtral-8x7b")
    assert hardware.accelerator("H100-SXM") is hardware.accelerator("h100-sxm")
    row = _json("estimate-cost", "LLAMA-3-8B", "--gpu", "H100-SXM")["results"][0]
    assert row["name"] == "llama-3-8b" and row["assumptions"]["gpu"] == "h100-sxm"


def test_case_folding_never_guesses_between_two_presets() -> None:
    assert presets.canonical_preset_name("abc", ["ABC", "abc"]) == "abc"
    assert presets.canonical_preset_name("Abc", ["ABC", "abc"]) is None
    assert presets.canonical_preset_name("llama-2-7B", ["llama-2-7b", "llama-2-70b"]) == "llama-2-7b"


# -- human numbers -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "length", "expected"),
    [("4096", True, 4096), ("32k", True, 32768), ("128K", True, 131072), ("1M", True, 2**20), ("1.5k", True, 1536),
     ("2k", False, 2000), ("2_048", False, 2048), ("1e3", False, 1000), ("4M", False, 4_000_000)],
)  # fmt: skip
def test_parse_human_int(text: str, length: bool, expected: int) -> None:
    assert parse_human_int(text, length=length) == expected


@pytest.mark.parametrize("text", ["0.5", "-3", "abc", "1.0001k"])
def test_parse_human_int_refuses_fractions_negatives_and_words(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_human_int(text, minimum=1)


def test_seq_len_32k_on_the_command_line_is_32768_tokens() -> None:
    short, long = (_json("compare", "llama-3-8b", "--seq-len", n)["results"][0] for n in ("4096", "32k"))
    assert long["seq_len"] == 32768
    assert long["kv_cache_bytes"] == 8 * short["kv_cache_bytes"] == 32768 * 131072  # 32 layers x 8 kv x 128 x 2 x 2 B
    result = runner.invoke(app, ["compare", "gpt-2", "--seq-len", "0"])
    assert result.exit_code == 2 and "at least 1" in result.output


def test_every_commands_counts_take_human_numbers() -> None:
    memory = _json("memory", "llama-2-7b", "--seq-len", "8k", "--n-gpus", "1k", "--tp", "8")["results"][0]
    assert (memory["assumptions"]["seq_len"], memory["assumptions"]["n_gpus"]) == (8192, 1000)
    serving = _json("estimate-inference", "llama-3-8b", "--gpu", "h100-sxm", "--prompt", "4k", "--generate-len", "1k")
    assert (serving["results"][0]["prompt_len"], serving["results"][0]["generate_len"]) == (4096, 1024)
    cost = _json("estimate-cost", "llama-2-7b", "--gpu", "a100-80gb", "--n-gpus", "2k", "--max-cost", "10M")
    assert cost["results"][0]["assumptions"]["n_gpus"] == 2000
    bad = runner.invoke(app, ["memory", "llama-2-7b", "--zero", "4"])
    assert bad.exit_code in (1, 2) and "4" in bad.output


# -- regions -------------------------------------------------------------------------------------------------
def test_aws_and_azure_regions_are_where_their_data_centres_are() -> None:
    virginia = hardware.grid_intensity("us-va")
    for region in ("aws:us-east-1", "azure:eastus", "azure:eastus2"):
        g = hardware.grid_intensity(region)
        assert g.kg_co2e_per_kwh == virginia.kg_co2e_per_kwh == 0.2448 and g.year == 2023  # eGRID2023 Virginia
        assert "docs.aws.amazon.com" in g.source or "learn.microsoft.com" in g.source
    assert hardware.grid_intensity("aws:eu-west-3").kg_co2e_per_kwh == hardware.grid_intensity("fra").kg_co2e_per_kwh


@pytest.mark.parametrize(("typed", "suggested"), [("us-east-1", "aws:us-east-1"), ("us-east1", "gcp:us-east1"),
                                                  ("eastus", "azure:eastus")])  # fmt: skip
def test_a_bare_cloud_code_suggests_its_own_provider(typed: str, suggested: str) -> None:
    with pytest.raises(InvalidValueError, match=rf"did you mean '{suggested}'\?"):
        hardware.grid_intensity(typed)


# -- help ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", sorted(COMMAND_MODULES))
def test_help_reads_at_80_columns(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], terminal_width=80)
    assert result.exit_code == 0
    text = result.stdout.split("Examples:")[0]
    assert "…" not in result.stdout
    assert max(len(line) for line in text.splitlines()) <= 80
    for option in ("--format", "--output") if command not in ("report", "bench") else ():
        assert option in text


# -- the preset schema -----------------------------------------------------------------------------------------
def test_schema_lists_every_preset_field_with_a_meaning() -> None:
    import dataclasses

    from llmarch.core.config import ArchConfig, TrainingMeta
    from llmarch.core.fields import preset_fields

    document = _json("schema")
    assert document["results"] == [dict(r) for r in preset_fields()]
    fields = {r["field"]: r for r in document["results"]}
    expected = {f.name for f in dataclasses.fields(ArchConfig)} - {"training"}
    expected |= {f"training.{f.name}" for f in dataclasses.fields(TrainingMeta)}
    assert set(fields) == expected
    assert all(r["meaning"] for r in fields.values()), [k for k, r in fields.items() if not r["meaning"]]
    assert fields["n_kv_heads"]["meaning"].startswith("Key/value heads") and not fields["n_kv_heads"]["required"]
    assert fields["d_model"]["required"] and fields["n_shared_experts"]["default"] == 0
    assert _json("schema", "--section", "training")["results"][0]["field"] == "training.tokens"


def test_an_unknown_field_points_to_the_schema_command() -> None:
    result = runner.invoke(app, ["show", "llama-2-7b:colour=red"])
    assert result.exit_code == 1 and "llmarch schema" in result.stderr


# -- columns -------------------------------------------------------------------------------------------------
def test_custom_columns_keep_the_model_name_and_the_training_set_replaces_course() -> None:
    result = runner.invoke(app, ["compare", "llama-7b", "mistral-7b", "--columns", "params_total,n_kv_heads",
                                 "--format", "markdown"])  # fmt: skip
    header = result.stdout.splitlines()[0]
    assert result.exit_code == 0 and header == "| model | params | kv heads |"
    assert "| mistral-7b | 7.24B | 8 |" in result.stdout
    training = runner.invoke(app, ["compare", "llama-65b", "--columns", "training", "-f", "markdown"]).stdout
    assert training == runner.invoke(app, ["compare", "llama-65b", "--columns", "course", "-f", "markdown"]).stdout
    assert "1.4T" in training and "course" not in runner.invoke(app, ["compare", "--help"]).stdout


def test_help_texts_interpolate_numeric_defaults_from_core_defaults() -> None:
    """A help text never writes a default number as a literal ('Default 512.'): it interpolates the named
    default (llmarch.core.defaults), so help and behaviour cannot drift apart."""
    import ast
    import re
    from pathlib import Path

    import llmarch.cli

    literal_default = re.compile(r"\b[Dd]efault:? -?\d")
    found = []
    for path in sorted(Path(llmarch.cli.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and literal_default.search(node.value):
                found.append(f"{path.name}:{node.lineno}: {node.value[:60]!r}")
    assert found == []


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["bench"], ["Default 512.", "Default 5 (quick 3).", "Default 0.1 (quick 0.02).", "Default: 80% of"]),
        (["estimate-inference"], ["(vLLM's). Default 0.9.", "accepted. Default 0.7."]),
        (["design"], ["Default 1.", "Default 0.4."]),
    ],
)
def test_help_shows_the_named_defaults(command: list[str], expected: list[str]) -> None:
    from llmarch.core import defaults

    assert (defaults.DEFAULT_BENCH_CHUNK_SIZE, defaults.DEFAULT_GPU_MEMORY_UTILIZATION, defaults.DEFAULT_MFU) == (
        512, 0.9, 0.4,
    )  # fmt: skip
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=400)
    text = " ".join(result.output.split())
    for piece in expected:
        assert piece in text
