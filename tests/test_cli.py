"""The command line: JSON equals the library, formats, exit codes, atomic output, lazy imports."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmarch import __version__, load, preset_names
from llmarch.calc import comparison
from llmarch.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_compare_json_equals_library() -> None:
    specs = ["llama-2-7b", "mixtral-8x7b", "t5-base", "llama-2-7b:n_kv_heads=8"]
    code, out, _ = invoke("compare", *specs, "--format", "json")
    assert code == 0
    document = json.loads(out)
    assert document["schema_version"] == 1 and document["llmarch_version"] == __version__
    assert document["models"] == comparison.compare_records([load(s) for s in specs])
    required = {"name", "params_total", "params_embedding", "params_non_embedding", "params_lm_head",
                "params_active", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "d_ff", "vocab_size",
                "max_seq_len", "attention", "position", "breakdown"}  # fmt: skip
    assert required <= document["models"][0].keys()
    mixtral = document["models"][1]
    assert (mixtral["params_total"], mixtral["params_active"]) == (46_702_792_704, 12_879_925_248)
    assert document["models"][3]["attention"] == "gqa"


def test_compare_all_covers_every_preset() -> None:
    code, out, _ = invoke("compare", "--all", "--format", "json")
    assert code == 0
    assert [m["name"] for m in json.loads(out)["models"]] == preset_names()


def test_compare_table_and_course_columns() -> None:
    code, out, _ = invoke("compare", "llama-7b", "llama-65b", "--columns", "course")
    assert code == 0
    for text in ("llama-65b", "1.4T", "rope", "swiglu", "1.5e-04"):
        assert text in out


def test_compare_markdown_and_csv(tmp_path: Path) -> None:
    code, out, _ = invoke("compare", "gpt-2", "llama-2-7b", "--format", "markdown")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith("| model |") and len(lines) == 4
    assert "| gpt-2 | 124M |" in lines[2]
    target = tmp_path / "out.csv"
    code, out, _ = invoke("compare", "gpt-2", "llama-2-7b", "--format", "csv", "--output", str(target))
    assert code == 0 and out == ""
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [int(r["params_total"]) for r in rows] == [124_439_808, 6_738_415_616]
    assert int(rows[1]["breakdown.attention.q"]) == 32 * 4096 * 4096


def test_output_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old content")
    code, _, _ = invoke("compare", "gpt-2", "--format", "json", "--output", str(target))
    assert code == 0
    assert json.loads(target.read_text())["models"][0]["name"] == "gpt-2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    # A failing command never touches an existing output file.
    code, _, _ = invoke("compare", "nope", "--format", "json", "--output", str(target))
    assert code == 1 and json.loads(target.read_text())["models"][0]["name"] == "gpt-2"


def test_output_into_missing_folder_is_a_user_error(tmp_path: Path) -> None:
    code, _, err = invoke("compare", "gpt-2", "--output", str(tmp_path / "no" / "x.json"))
    assert code == 1 and "does not exist" in err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["compare", "llama2-7b"], 1, "did you mean 'llama-2-7b'"),
        (["compare", "llama-2-7b:n_kv_heads=7"], 1, "field 'n_kv_heads'"),
        (["compare", "llama-2-7b", "--columns", "nope"], 1, "unknown column 'nope'"),
        (["show", "gpt-5"], 1, "unknown preset 'gpt-5'"),
        (["presets", "--family", "nope"], 1, "no preset of family"),
        (["compare"], 2, "name at least one preset"),
        (["compare", "--format", "xml", "gpt-2"], 2, ""),
        (["compare", "--bogus"], 2, ""),
    ],
)
def test_errors_are_one_line_with_exit_codes(args: list[str], code: int, message: str) -> None:
    exit_code, _, err = invoke(*args)
    assert exit_code == code
    assert message in err
    assert "Traceback" not in err
    if code == 1:
        assert err.count("\n") == 1 and err.startswith("error: ")


def test_show_json_and_tree() -> None:
    code, out, _ = invoke("show", "mixtral-8x7b", "--format", "json")
    assert code == 0
    preset = json.loads(out)["preset"]
    assert preset["params"]["total"] == 46_702_792_704
    assert preset["config"]["n_experts"] == 8 and preset["derived"]["attention"] == "gqa"
    code, out, _ = invoke("show", "mixtral-8x7b")
    assert code == 0
    assert "46,702,792,704" in out and "experts" in out and "router" in out


def test_presets_listing_and_filters() -> None:
    code, out, _ = invoke("presets", "--format", "json")
    assert code == 0
    rows = json.loads(out)["presets"]
    assert [r["name"] for r in rows] == preset_names()
    assert all(r["source"] for r in rows)
    code, out, _ = invoke("presets", "--attention", "mqa", "--format", "json")
    assert {r["name"] for r in json.loads(out)["presets"]} >= {"falcon-7b", "starcoder"}
    assert all(r["attention"] == "mqa" for r in json.loads(out)["presets"])
    code, out, _ = invoke("presets", "--family", "llama-2", "--format", "json")
    assert {r["name"] for r in json.loads(out)["presets"]} == {"llama-2-7b", "llama-2-13b", "llama-2-70b"}
    code, out, _ = invoke("presets", "--year", "2025", "--family", "qwen3", "--format", "json")
    assert code == 0 and {r["name"] for r in json.loads(out)["presets"]} >= {"qwen3-8b", "qwen3-235b-a22b"}
    assert all(r["year"] == 2025 and r["family"] == "qwen3" for r in json.loads(out)["presets"])
    code, _, err = invoke("presets", "--year", "1999")
    assert code == 1 and "no preset from 1999" in err


def test_compare_never_imports_torch_or_pandas() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from llmarch.cli import app\n"
        "r = CliRunner().invoke(app, ['compare', '--all', '--format', 'json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(app, ['compare', '--all'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in ('torch', 'pandas', 'fvcore', 'matplotlib', 'numpy') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_python_dash_m_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llmarch", "compare", "gpt-2", "--format", "json"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert json.loads(result.stdout)["models"][0]["params_total"] == 124_439_808


def test_every_command_is_mapped_to_its_module() -> None:
    """The console script loads only the invoked command's module: the map must list every command."""
    from llmarch.cli import COMMAND_MODULES

    registered = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert registered == set(COMMAND_MODULES)


def test_version_and_lazy_console_entry() -> None:
    code, out, _ = invoke("--version")
    assert code == 0 and out.strip() == f"llmarch {__version__}"
    script = "import sys; from llmarch.cli import main; sys.argv = ['llmarch', 'gpus', '--format', 'json']; main()"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0 and len(json.loads(result.stdout)["gpus"]) >= 21
    # `llmarch --version` (-V) builds no command at all; `llmarch compare` only compare.
    probe = (
        "import sys; from llmarch import cli; sys.argv = ['llmarch', *sys.argv[1:]]\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "loaded = [m.rpartition('.')[2] for m in sys.modules if m.startswith('llmarch.cli.')]\n"
        "print(sorted(m for m in loaded if m != '_app'))"
    )
    for args, modules in ((["-V"], "[]"), (["compare", "gpt-2", "-f", "json"], "['architectures']")):
        result = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True)
        assert result.returncode == 0 and result.stdout.strip().splitlines()[-1] == modules
    assert result.stdout.count('"name": "gpt-2"') == 2  # under results and its deprecated alias


def test_compare_plot_is_written_and_deterministic(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    args = ["compare", "llama-2-7b", "mistral-7b", "mixtral-8x7b", "--format", "json"]
    assert invoke(*args, "--plot", str(first))[0] == 0
    assert invoke(*args, "--plot", str(second))[0] == 0
    assert first.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and first.stat().st_size > 20_000
    assert first.read_bytes() == second.read_bytes()


def test_kv_cache_curve_follows_the_rolling_buffer() -> None:
    curve = comparison.kv_cache_curve(load("mistral-7b"))
    points = {p["seq_len"]: p["kv_cache_bytes"] for p in curve["points"]}
    assert max(points) == 32768  # up to the model's context
    assert points[4096] == points[32768] == 32 * 4096 * 8 * 128 * 2 * 2  # capped at the 4096-token window
    assert points[2048] == points[4096] / 2


def test_python_api_dataframe_matches_records() -> None:
    pytest.importorskip("pandas")
    import llmarch

    frame = llmarch.compare(["mistral-7b", load("llama-2-7b:n_kv_heads=8")], seq_len=8192)
    records = comparison.compare_records([load("mistral-7b"), load("llama-2-7b:n_kv_heads=8")], seq_len=8192)
    assert list(frame["name"]) == [r["name"] for r in records]
    assert list(frame["params_total"]) == [r["params_total"] for r in records]
    assert list(frame["kv_cache_bytes"]) == [r["kv_cache_bytes"] for r in records]
    assert frame["breakdown.attention.k"].iloc[1] == records[1]["breakdown"]["attention.k"]


def test_every_command_has_help_with_an_example() -> None:
    for command in app.registered_commands:
        assert command.epilog and f"llmarch {command.name}" in command.epilog, command.name
        code, out, _ = invoke(command.name, "--help")
        assert code == 0 and "Example" in out


def test_output_file_gets_the_usual_permissions(tmp_path: Path) -> None:
    import os

    target = tmp_path / "out.json"
    assert invoke("compare", "gpt-2", "--format", "json", "--output", str(target))[0] == 0
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_library_errors_name_the_keyword_and_the_cli_the_flag() -> None:
    from llmarch.calc.comparison import preset_rows
    from llmarch.cli._app import flag, keywords_to_flags
    from llmarch.core.errors import InvalidValueError

    with pytest.raises(InvalidValueError, match=r"^`family`: no preset of family 'nope'"):
        preset_rows(family="nope")
    code, _, err = invoke("presets", "--family", "nope")
    assert code == 1 and err.startswith("error: --family: no preset of family 'nope'")
    assert flag("seq_len") == "--seq-len" and flag("usd_per_gpu_hour") == "--price-per-gpu-hour"
    options = ["seq_len", "mfu", "tokens", "price_per_gpu_hour"]
    assert (
        keywords_to_flags("mfu must be a fraction in (0, 1], got 2", options)
        == "--mfu must be a fraction in (0, 1], got 2"
    )
    assert (
        keywords_to_flags("seq_len 0; usd_per_gpu_hour unknown", options) == "--seq-len 0; --price-per-gpu-hour unknown"
    )
    # Prose, dotted fields, overrides and options the command lacks stay as they are.
    text = "no published training tokens: pass `tokens`; training.seq_len=4 for n_heads"
    assert (
        keywords_to_flags(text, options)
        == "no published training tokens: pass --tokens; training.seq_len=4 for n_heads"
    )
