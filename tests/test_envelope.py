"""One JSON document for every command: `kind` and `results`, integers for integral quantities, and the
JSON Schema shipped in the package validating each command's output."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from types import MappingProxyType

import pytest
from typer.testing import CliRunner

from llmarch import __version__
from llmarch.catalog.schemas import envelope_schema
from llmarch.cli import COMMAND_MODULES, app
from llmarch.core.errors import InvalidValueError
from llmarch.report.tables import check_finite, envelope, plain, to_csv

jsonschema = pytest.importorskip("jsonschema")
runner = CliRunner()

#: One invocation per command with --format json (bench needs torch: see test_bench's JSON test).
JSON_COMMANDS: dict[str, list[str]] = {
    "presets": ["presets", "--family", "llama-2"],
    "show": ["show", "mixtral-8x7b"],
    "schema": ["schema"],
    "plan": ["plan", "llama-2-7b", "--gpu", "a100-80gb", "--n-gpus", "8", "--global-batch", "32", "--top", "1"],
    "compare": ["compare", "llama-2-7b", "mixtral-8x7b", "t5-small", "--seq-len", "4096"],
    "memory": ["memory", "llama-2-7b", "--dtype", "int4"],
    "estimate-cost": ["estimate-cost", "llama-2-7b", "--gpu", "a100-80gb", "--region", "fra"],
    "gpus": ["gpus"],
    "regions": ["regions"],
    "estimate-inference": ["estimate-inference", "mistral-7b", "--gpu", "h100-sxm"],
    "verify": ["verify", "gpt-2"],
    "design": ["design", "--compute", "1e21", "--top", "2"],
}


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _validator() -> object:
    schema = envelope_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("command", sorted(JSON_COMMANDS))
def test_every_command_writes_the_envelope_and_it_validates(command: str) -> None:
    document = _json(JSON_COMMANDS[command])
    _validator().validate(document)
    assert document["kind"] == command and document["llmarch_version"] == __version__
    assert isinstance(document["results"], list) and document["results"]


def test_report_json_validates(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    result = runner.invoke(app, ["report", "llama-2-7b", "-o", str(target)])
    assert result.exit_code == 0, result.output
    document = json.loads(target.read_text())
    _validator().validate(document)
    assert document["kind"] == "report" and document["results"] == [document["report"]]


def test_every_command_with_json_is_covered() -> None:
    """A new command must be added to JSON_COMMANDS (or to the documented exceptions)."""
    exceptions = {"bench", "report"}  # torch; report writes JSON only to -o FILE (test above)
    assert set(COMMAND_MODULES) - exceptions <= set(JSON_COMMANDS)


def test_the_old_payload_key_is_kept_as_an_alias() -> None:
    document = _json(["compare", "gpt-2"])
    assert document["models"] == document["results"] and document["results"][0]["params_total"] == 124_439_808


def test_integral_quantities_are_integers_in_json() -> None:
    gpu = _json(["gpus"])["results"]
    h100 = next(g for g in gpu if g["name"] == "h100-sxm")
    assert h100["memory_bytes"] == 80 * 2**30 and isinstance(h100["memory_bytes"], int)
    memory = _json(["memory", "llama-2-7b"])["results"][0]
    assert all(isinstance(v, int) for k, v in memory["inference"].items() if k.endswith("_bytes"))


def test_a_schema_violation_is_caught() -> None:
    """The schema is not vacuous: a float byte count, a missing kind or a bare list fail."""
    validator = _validator()
    good = envelope("models", [{"name": "x", "weights_bytes": 2}], kind="compare")
    validator.validate(good)
    bad_bytes = {**good, "results": [{"name": "x", "weights_bytes": 2.5}]}
    no_kind = {k: v for k, v in good.items() if k != "kind"}
    for bad in (bad_bytes, no_kind, {**good, "results": {"name": "x"}}):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate(bad)


def test_plain_makes_whole_floats_integers_and_rounds_bytes_up() -> None:
    assert plain({"a_bytes": 131072.0, "mfu": 0.4, "n": [4096.0], "x": {"y_bytes": 3.5}}) == {
        "a_bytes": 131072, "mfu": 0.4, "n": [4096], "x": {"y_bytes": 4}
    }  # fmt: skip
    assert isinstance(plain(4096.0), int) and plain(float("inf")) == float("inf")


def test_csv_writes_whole_numbers_without_decimal_point_and_keeps_every_key() -> None:
    text = to_csv([{"name": "a", "seq_len": 4096.0, "fit": {"ok": True}}, {"name": "b", "seq_len": None, "z": [1, 2]}])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["name", "seq_len", "fit.ok", "z"]
    assert rows[0]["seq_len"] == "4096" and rows[1]["seq_len"] == "" and rows[1]["z"] == "[1, 2]"
    memory = runner.invoke(app, ["memory", "llama-2-7b", "--format", "csv"]).stdout
    assert ".0," not in memory and not memory.rstrip().endswith(".0")


@pytest.mark.parametrize(
    ("records", "named"),
    [
        ([{"name": "a", "x": 1.0}, {"name": "b", "flops": float("inf")}], "b: flops is inf"),
        ([{"name": "a", "breakdown": {"mlp.up": 3, "mlp.down": float("nan")}}], "a: mlp.down is nan"),
        ([{"name": "a", "points": [{"kv": 1}, {"kv": -float("inf")}]}], "a: kv is -inf"),
        ([{"name": "a", "view": MappingProxyType({"bytes": float("inf")})}], "a: bytes is inf"),
    ],
)
def test_check_finite_names_the_record_and_key_of_a_non_finite_number(records: list[dict], named: str) -> None:
    with pytest.raises(InvalidValueError, match=re.escape(named)):
        check_finite(records)


def test_check_finite_passes_finite_results_and_values_that_are_not_numbers() -> None:
    check_finite([{"name": "a", "x": 1e300, "n": 10**30, "path": Path("x"), "t": (1.0, 2), "s": "inf"}])


@pytest.mark.parametrize("fmt", ["json", "csv", "markdown", "table"])
def test_render_refuses_a_non_finite_result_in_every_format_and_names_it(fmt: str) -> None:
    from llmarch.cli._app import OutputFormat, render

    with pytest.raises(InvalidValueError, match=re.escape("big: flops_per_token is inf")):
        render([{"name": "big", "flops_per_token": float("inf")}], ["name"], fmt=OutputFormat(fmt), output=None,
               json_key="models")  # fmt: skip
