"""`llmarch report`: byte-identical output, Markdown and HTML structure, plots, budgets, bad inputs, and the
numbers in the document equal to the library's."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmarch import load, load_all
from llmarch.calc import comparison, cost
from llmarch.cli import app
from llmarch.report import document
from llmarch.report import format as fmt
from llmarch.serving import estimate as inference

runner = CliRunner()

PRESETS = ["llama-2-7b", "mistral-7b", "mixtral-8x7b"]
SETUP = ["--gpu", "h100-sxm", "--n-gpus", "8"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SECTIONS = ("Summary", "Architectures", "Memory per GPU", "Serving on h100-sxm", "Training cost",
            "Attention benchmark")  # fmt: skip


def bench_document() -> dict[str, Any]:
    """A synthetic `llmarch bench --format json` document: two variants, two implementations, two phases, plus a
    skipped case, a case with mistyped fields, an entry that is not an object and keys the report does not know."""
    results: list[Any] = []
    for phase in ("prefill", "decode"):
        for variant, n_kv_heads in (("mha", 32), ("gqa", 8)):
            for impl in ("eager", "sdpa"):
                for seq_len in (256, 512, 1024, 2048):
                    # Prefill grows with seq_len^2 and decode with seq_len (reading 4x less K/V under GQA).
                    speed = (1.5 if impl == "eager" else 1.0) * (0.9 if variant == "gqa" else 1.0)
                    if phase == "prefill":
                        median = 2e-5 * speed * (seq_len / 256) ** 2
                        flops, traffic = 4.0 * 32 * 128 * seq_len * seq_len / 2, 2.0 * 4 * 32 * 128 * seq_len
                    else:
                        median = 1e-5 * speed * (seq_len / 256) * n_kv_heads / 32 + 5e-6
                        flops, traffic = 4.0 * 32 * 128 * seq_len, 2.0 * 2 * n_kv_heads * 128 * seq_len
                    results.append(
                        {
                            "variant": variant, "impl": impl, "phase": phase, "batch": 1, "seq_len": seq_len,
                            "n_heads": 32, "n_kv_heads": n_kv_heads, "d_head": 128, "window": None, "dtype": "bf16",
                            "device": "cuda", "median_s": median, "iqr_s": median / 20,
                            "achieved_flop_per_s": flops / median, "achieved_bytes_per_s": traffic / median,
                            "roofline_fraction": 0.5, "predicted_s": median / 2, "peak_memory_bytes": 2**20 * seq_len,
                            "max_abs_error": 1e-3, "skipped_reason": None, "cv": 0.01, "noisy": False,
                        }
                    )  # fmt: skip
    results.append({"variant": "mha", "impl": "flash", "phase": "prefill", "batch": 1, "seq_len": 4096,
                    "median_s": None, "skipped_reason": "flash-attn is not installed"})  # fmt: skip
    results.append({"variant": "gqa", "impl": "sdpa", "phase": "prefill", "seq_len": "long", "batch": True,
                    "median_s": "fast", "achieved_flop_per_s": -1})  # fmt: skip
    results.append("not a result")
    return {
        "schema_version": 1,
        "llmarch_version": "0.1.0",
        "environment": {
            "device_name": "NVIDIA H100 80GB HBM3",
            "torch": "2.5.1",
            "cuda": "12.4",
            "dtype": "bf16",
            "measured_peaks": {"matmul_flop_per_s": 7.1e14, "copy_bytes_per_s": 2.9e12},
            "hostname": "ci-runner-42",
        },
        "results": results,
    }


@pytest.fixture(scope="module")
def bench_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    path.write_text(json.dumps(bench_document()), encoding="utf-8")
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["report", *args])
    return result.exit_code, result.stdout, result.stderr


def make(folder: Path, name: str, bench: Path | None, *extra: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    args = [*PRESETS, *SETUP, "--output", str(target), *extra]
    if bench is not None:
        args += ["--bench", str(bench)]
    code, _, err = invoke(*args)
    assert code == 0, err
    return target


@pytest.fixture(scope="module")
def markdown(tmp_path_factory: pytest.TempPathFactory, bench_file: Path) -> Path:
    return make(tmp_path_factory.mktemp("md"), "report.md", bench_file)


@pytest.fixture(scope="module")
def html_report(tmp_path_factory: pytest.TempPathFactory, bench_file: Path) -> Path:
    return make(tmp_path_factory.mktemp("html"), "report.html", bench_file)


# -- determinism -------------------------------------------------------------------------------------------


def test_markdown_is_byte_identical_across_runs_and_folders(markdown: Path, tmp_path: Path, bench_file: Path) -> None:
    again = make(tmp_path / "elsewhere", "report.md", bench_file)
    assert again.read_bytes() == markdown.read_bytes()
    first, second = markdown.parent / "report_assets", again.parent / "report_assets"
    assert sorted(p.name for p in first.iterdir()) == ["bench.png", "kv_cache.png", "params.png"]
    for png in first.iterdir():
        assert (second / png.name).read_bytes() == png.read_bytes(), png.name


def test_html_is_byte_identical_across_runs_and_folders(html_report: Path, tmp_path: Path, bench_file: Path) -> None:
    again = make(tmp_path / "elsewhere", "report.html", bench_file)
    assert again.read_bytes() == html_report.read_bytes()
    assert sorted(p.name for p in tmp_path.joinpath("elsewhere").iterdir()) == ["report.html"]  # no assets, no temp


def test_no_timestamps_or_environment_unless_asked(markdown: Path, tmp_path: Path) -> None:
    import platform

    text = markdown.read_text(encoding="utf-8")
    assert not re.search(r"20\d\d-\d\d-\d\d[T ]\d\d:\d\d", text)
    assert platform.python_version() not in text and "ci-runner-42" not in text
    assert str(markdown.parent) not in text  # no absolute paths
    with_env = make(tmp_path, "env.md", None, "--include-environment", "--no-images")
    assert "## Environment" in with_env.read_text(encoding="utf-8")
    assert platform.python_version() in with_env.read_text(encoding="utf-8")


# -- HTML ------------------------------------------------------------------------------------------------------


class Outline(HTMLParser):
    """Tags, headings, image sources, links, and whether every element closes in order."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.headings: dict[str, list[str]] = {}
        self.srcs: list[str] = []
        self.hrefs: list[str] = []
        self.unbalanced: list[str] = []
        self._heading: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if "src" in values:
            self.srcs.append(values["src"] or "")
        if "href" in values:
            self.hrefs.append(values["href"] or "")
        if tag in ("h1", "h2", "h3"):
            self._heading = tag
            self.headings.setdefault(tag, []).append("")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.unbalanced.append(tag)
        if tag == self._heading:
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._heading:
            self.headings[self._heading][-1] += data


def test_html_structure(html_report: Path) -> None:
    text = html_report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    outline = Outline()
    outline.feed(text)
    outline.close()
    assert not outline.unbalanced and not outline.stack
    assert outline.headings["h1"] == ["llmarch report: " + ", ".join(PRESETS)]
    assert set(SECTIONS) <= set(outline.headings["h2"])
    assert {"script", "link", "iframe", "object"}.isdisjoint(outline.tags)
    assert "style" in outline.tags and outline.tags.count("details") >= 5
    # Images: the three plots, inline; nothing loaded from elsewhere.
    assert len(outline.srcs) == 3
    for src in outline.srcs:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(PNG_SIGNATURE) and len(png) > 5000
    # The only links are the presets' documented sources.
    sources = {load(p).source for p in PRESETS}
    assert outline.hrefs and set(outline.hrefs) <= sources
    assert "url(" not in text and "@import" not in text


def test_html_escapes_text(tmp_path: Path, bench_file: Path) -> None:
    odd = tmp_path / 'a<b>&"c.json'
    odd.write_bytes(bench_file.read_bytes())
    target = tmp_path / "r.html"
    code, _, err = invoke("llama-2-7b", "--bench", str(odd), "--no-images", "--output", str(target))
    assert code == 0, err
    text = target.read_text(encoding="utf-8")
    assert "a&lt;b&gt;&amp;&quot;c.json" in text and "<b>" not in text
    blocks = [document.Heading(2, "<i>&"), document.Table(("x",), (("a|b<c",),), (False,))]
    assert '<h2 id="i">&lt;i&gt;&amp;</h2>' in document.render_html(blocks)
    assert "a\\|b&lt;c" in document.render_markdown(blocks)  # "<" as an entity: never raw HTML


# -- Markdown --------------------------------------------------------------------------------------------------


def _cells(line: str) -> list[str]:
    """The cells of a Markdown table row (pipes escaped with a backslash are inside a cell)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def _tables(text: str) -> list[list[str]]:
    tables: list[list[str]] = []
    current: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def test_markdown_tables_are_well_formed(markdown: Path) -> None:
    text = markdown.read_text(encoding="utf-8")
    tables = _tables(text)
    assert len(tables) >= 10
    for lines in tables:
        width = len(_cells(lines[0]))
        assert re.fullmatch(r"\|(---:?\|)+", lines[1]) and len(_cells(lines[1])) == width, lines[:2]
        assert all(len(_cells(line)) == width for line in lines), lines[0]
        assert len(lines) >= 3
    for section in SECTIONS:
        assert f"\n## {section}\n" in text
    assert text.count("<details>") == text.count("</details>") >= 5
    assert "data:" not in text  # job summaries do not render data URIs


def test_markdown_images_are_files_beside_it(markdown: Path) -> None:
    text = markdown.read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links == ["report_assets/params.png", "report_assets/kv_cache.png", "report_assets/bench.png"]
    for link in links:
        assert "://" not in link and not link.startswith("/")
        png = (markdown.parent / link).read_bytes()
        assert png.startswith(PNG_SIGNATURE) and len(png) > 5000


def test_no_images(tmp_path: Path, bench_file: Path) -> None:
    target = make(tmp_path, "plain.md", bench_file, "--no-images")
    assert "![" not in target.read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.md"]
    html_target = make(tmp_path, "plain.html", bench_file, "--no-images")
    assert "<img" not in html_target.read_text(encoding="utf-8")


def test_bench_section_reads_defensively(markdown: Path) -> None:
    text = markdown.read_text(encoding="utf-8")
    section = text.split("## Attention benchmark", 1)[1]
    assert "34 result(s) from bench.json, measured on NVIDIA H100 80GB HBM3 (1 skipped); 1 unreadable entry" in section
    assert "skipped: flash-attn is not installed" in section
    assert "ci-runner-42" not in text  # unknown environment keys are not shown
    data = document.read_bench(bench_document(), source="b.json")
    odd = data.rows[-1]
    assert (odd["seq_len"], odd["batch"], odd["median_s"], odd["achieved_flop_per_s"]) == (None, None, None, None)
    assert data.n_unreadable == 1 and data.environment["device_name"] == "NVIDIA H100 80GB HBM3"


# -- budgets and bad inputs ------------------------------------------------------------------------------------


def test_budget_gate_exits_3_and_still_writes(tmp_path: Path) -> None:
    target = tmp_path / "r.md"
    code, _, err = invoke("llama-2-7b", "llama-2-13b", *SETUP, "--max-cost", "1000", "--max-days", "1e6",
                          "--no-images", "--output", str(target))  # fmt: skip
    assert code == 3
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("budget exceeded: llama-2-") for line in lines)
    assert "> --max-cost $1k" in lines[0]
    text = target.read_text(encoding="utf-8")
    assert "### Budgets" in text and "| exceeded |" in text and "| ok |" in text
    code, _, err = invoke("llama-2-7b", *SETUP, "--max-cost", "1e9", "--no-images", "--output", str(target))
    assert code == 0 and err == ""


def test_budget_needs_tokens_for_every_preset(tmp_path: Path) -> None:
    target = tmp_path / "r.md"
    code, _, err = invoke("llama-2-7b", "mistral-7b", "--max-cost", "1", "--no-images", "--output", str(target))
    assert code == 1 and len(err.strip().splitlines()) == 1 and "mistral-7b" in err and "--tokens" in err
    assert not target.exists()
    code, _, _ = invoke("llama-2-7b", "mistral-7b", "--tokens", "1T", "--max-cost", "1e9", "--no-images",
                        "--output", str(target))  # fmt: skip
    assert code == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"schema_version": 2, "results": []}', "unsupported schema_version 2"),
        ('{"schema_version": 1, "results": {}}', "no 'results' list"),
    ],
)
def test_malformed_bench_is_one_line(tmp_path: Path, content: str, message: str) -> None:
    bench = tmp_path / "bench.json"
    bench.write_text(content, encoding="utf-8")
    target = tmp_path / "r.md"
    code, _, err = invoke("llama-2-7b", "--bench", str(bench), "--no-images", "--output", str(target))
    assert code == 1 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not target.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["llama-2-7", "--output", "{dir}/r.md"], "unknown preset 'llama-2-7'"),
        (["llama-2-7b", "--output", "{dir}/r.txt"], "name it .md, .html or .json"),
        (["llama-2-7b", "--output", "{dir}/missing/r.md"], "does not exist"),
        (["llama-2-7b", "--gpu", "h100", "--output", "{dir}/r.md"], "unknown GPU 'h100'"),
        (["llama-2-7b", "--bench", "{dir}/none.json", "--output", "{dir}/r.md"], "cannot read"),
        (["llama-2-7b", "--tokens", "lots", "--output", "{dir}/r.md"], "--tokens"),
    ],
)
def test_bad_inputs_exit_1_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    code, _, err = invoke(*[a.format(dir=tmp_path) for a in args], "--no-images")
    assert code == 1, err
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")
    assert list(tmp_path.iterdir()) == []


# -- the document says what the library says ---------------------------------------------------------------------


def test_json_equals_library(tmp_path: Path, bench_file: Path) -> None:
    target = tmp_path / "r.json"
    code, _, err = invoke(*PRESETS, *SETUP, "--tokens", "1T", "--bench", str(bench_file), "--output", str(target))
    assert code == 0, err
    got = json.loads(target.read_text(encoding="utf-8"))["report"]
    configs = [load(p) for p in PRESETS]
    assert got["models"] == comparison.compare_records(configs)
    assert got["serving"] == [
        json.loads(json.dumps(inference.estimate_inference(c, "h100-sxm", n_gpus=8).to_record())) for c in configs
    ]
    assert got["training"] == [
        json.loads(json.dumps(cost.estimate_training_cost(c, "h100-sxm", tokens="1T", n_gpus=8).to_record()))
        for c in configs
    ]
    options = document.ReportOptions(gpu="h100-sxm", n_gpus=8, tokens="1T")
    bench = document.read_bench(bench_document(), source="bench.json")
    assert got == json.loads(json.dumps(document.collect(configs, options, bench=bench).to_record()))


def _row(text: str, heading: str, model: str) -> dict[str, str]:
    """The row of `model` in the first table after `heading`, as header -> cell."""
    lines = _tables(text.split(heading, 1)[1])[0]
    headers = _cells(lines[0])
    row = next(_cells(line) for line in lines[2:] if _cells(line)[0] == model)
    return dict(zip(headers, row, strict=True))


def test_markdown_numbers_equal_library(markdown: Path) -> None:
    text = markdown.read_text(encoding="utf-8")
    for name in PRESETS:
        config = load(name)
        record = comparison.compare_records([config])[0]
        groups = _row(text, "### Parameters by component", name)
        assert groups["total"] == f"{record['params_total']:,}" and groups["active"] == f"{record['params_active']:,}"
        serving = inference.estimate_inference(config, "h100-sxm", n_gpus=8)
        row = _row(text, "## Serving on h100-sxm", name)
        assert row["fits"] == ("yes" if serving.fits else "no")
        assert row["max batch"] == str(serving.max_batch)
        assert row["TTFT"] == fmt.format_seconds(serving.ttft_s)
        assert row["TPOT"] == fmt.format_seconds(serving.tpot_s)
        assert row["\\$/M tok"] == document.md_escape(fmt.format_usd(serving.usd_per_million_tokens))
    estimate = cost.estimate_training_cost(load("llama-2-7b"), "h100-sxm", n_gpus=8)
    row = _row(text, "## Training cost", "llama-2-7b")
    assert row["GPU-hours"] == fmt.format_count(estimate.gpu_hours)
    assert row["cost"] == document.md_escape(fmt.format_usd(estimate.cost_usd))
    assert row["CO2e"] == fmt.format_co2e(estimate.co2e_kg)


def test_every_preset_builds(tmp_path: Path) -> None:
    configs = load_all()
    data = document.collect(configs, document.ReportOptions(tokens="chinchilla"))
    text = document.render_markdown(document.build(data))
    assert all(f"| {c.name} |" in text for c in configs)


# -- start-up ----------------------------------------------------------------------------------------------------


def test_report_never_imports_torch(tmp_path: Path, bench_file: Path) -> None:
    script = (
        "import sys\n"
        "from llmarch.cli import main\n"
        f"sys.argv = ['llmarch', 'report', 'llama-2-7b', '--bench', {str(bench_file)!r}, "
        f"'--output', {str(tmp_path / 'r.html')!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
    assert (tmp_path / "r.html").stat().st_size > 10000
