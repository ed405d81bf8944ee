"""`compare --plot` data and layout: distinct styles, active-parameter bars for MoE, byte ticks, legend
outside the data."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmarch import load
from llmarch.calc import comparison
from llmarch.report import plots

pytest.importorskip("matplotlib")


def test_every_kv_curve_of_all_presets_has_its_own_style() -> None:
    styles = [tuple(sorted((k, str(v)) for k, v in plots.kv_style(i).items())) for i in range(160)]
    assert len(set(styles)) == 160
    # neighbours (the same KV shape is often listed side by side) differ in colour, dashes and marker
    for i in range(20):
        a, b = plots.kv_style(i), plots.kv_style(i + 1)
        assert a["color"] != b["color"] and a["linestyle"] != b["linestyle"] and a["marker"] != b["marker"]


def test_moe_models_get_an_active_bar_that_sums_to_the_active_count() -> None:
    records = comparison.compare_records([load("llama-2-7b"), load("mixtral-8x7b")])
    rows = plots._share_rows(records)
    assert [label for label, _, _ in rows] == ["llama-2-7b", "mixtral-8x7b", "mixtral-8x7b (active)"]
    for _, groups, total in rows:
        assert sum(groups.values()) == total
    _, groups, total = rows[2]
    assert total == 12_879_925_248  # Mixtral-8x7B: 12.9B active of 46.7B (Jiang et al. 2024, arXiv:2401.04088)
    assert groups["attention"] == records[1]["groups"]["attention"] and groups["moe"] < records[1]["groups"]["moe"]


def test_kv_axis_is_labelled_in_binary_bytes_and_the_legend_sits_outside() -> None:
    plt = plots._pyplot()
    configs = [load(n) for n in ("llama-3-8b", "mistral-7b", "mixtral-8x7b", "llama-2-7b")]
    curves = [comparison.kv_cache_curve(c) for c in configs]
    figure, axis = plt.subplots()
    plots.draw_kv_curves(axis, curves, batch=1, dtype="bf16")
    figure.canvas.draw()
    labels = [t.get_text() for t in axis.get_yticklabels() if t.get_text()]
    assert "1 GiB" in labels and "256 MiB" in labels and all(text.endswith(("iB", " B")) for text in labels)
    assert {t.get_text() for t in axis.get_xticklabels()} >= {"1k", "4k"}
    legend = axis.get_legend().get_window_extent()
    assert legend.x0 > axis.get_window_extent().x1  # right of the plotting area, never over a line
    lines = axis.get_lines()
    assert len({(line.get_color(), str(line.get_linestyle()), line.get_marker()) for line in lines}) == 4
    plt.close(figure)


def test_plot_compare_writes_a_png(tmp_path: Path) -> None:
    configs = [load("llama-2-7b"), load("deepseek-v2-lite")]
    records = comparison.compare_records(configs)
    target = tmp_path / "c.png"
    plots.plot_compare(records, [comparison.kv_cache_curve(c) for c in configs], target, batch=1, dtype="bf16")
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plots.bytes_label(2**30) == "1 GiB" and plots.bytes_label(2**29) == "512 MiB"
