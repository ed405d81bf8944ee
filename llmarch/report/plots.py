"""Plots (matplotlib, Agg backend, imported lazily): pictures of numbers the calculators already computed.

Every function takes plain records (what the JSON carries), draws, and writes a PNG atomically. The
PNG carries no timestamp or software tag, so the same inputs give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmarch.core.io import write_atomic

#: Parameter groups in stacking order, with the breakdown groups each one sums.
PARAM_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("embedding", ("embedding",)),
    ("attention", ("attention", "cross_attention")),
    ("MLP / experts", ("mlp", "moe")),
    ("norms", ("norm",)),
    ("LM head", ("lm_head",)),
)
_COLOURS = ("#8c8c8c", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    return plt


def save_png(figure: Any, path: str | Path) -> None:
    """Write a figure as PNG, atomically and without run-dependent metadata."""
    write_atomic(path, png_bytes(figure), what="--plot")


def draw_param_shares(axis: Any, records: Sequence[dict[str, Any]]) -> None:
    """Horizontal 100% stacked bars: each model's parameters by component, its total at the bar's end."""
    from llmarch.report.format import format_count

    names = [r["name"] for r in records]
    left = [0.0] * len(records)
    for (label, groups), colour in zip(PARAM_GROUPS, _COLOURS, strict=True):
        shares = [sum(r["groups"].get(g, 0) for g in groups) / r["params_total"] for r in records]
        axis.barh(names, shares, left=left, label=label, color=colour)
        left = [a + b for a, b in zip(left, shares, strict=True)]
    for i, record in enumerate(records):
        total = format_count(record["params_total"])
        active = record["params_active"]
        text = total if active == record["params_total"] else f"{total} ({format_count(active)} active)"
        axis.text(1.01, i, text, va="center", fontsize=8)
    axis.set_xlim(0, 1)
    axis.invert_yaxis()
    axis.set_xlabel("share of parameters")
    axis.set_title("Parameters by component")
    axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(PARAM_GROUPS), fontsize=8, frameon=False)


def draw_kv_curves(axis: Any, curves: Sequence[dict[str, Any]], *, batch: int, dtype: str) -> None:
    """KV-cache bytes against context length, one line per model (log-log), ending at its context."""
    for curve in curves:
        seq_lens = [p["seq_len"] for p in curve["points"]]
        gib = [p["kv_cache_bytes"] / 2**30 for p in curve["points"]]
        axis.plot(seq_lens, gib, marker="o", markersize=3, label=f"{curve['name']} ({curve['attention']})")
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.set_xlabel("context length (tokens)")
    axis.set_ylabel(f"KV cache (GiB), batch {batch}, {dtype}")
    axis.set_title("KV cache vs context")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7)


def plot_compare(
    records: Sequence[dict[str, Any]], curves: Sequence[dict[str, Any]], path: str | Path, *, batch: int, dtype: str
) -> None:
    """`llmarch compare --plot`: parameter shares by component beside KV cache against context length."""
    plt = _pyplot()
    height = max(3.5, 0.35 * len(records) + 1.5)
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, height), gridspec_kw={"width_ratios": [1.1, 1]})
    draw_param_shares(left, records)
    draw_kv_curves(right, curves, batch=batch, dtype=dtype)
    figure.tight_layout()
    save_png(figure, path)


# -- `llmarch report`: figures as PNG bytes (embedded in HTML, or written beside the Markdown) ---------------

_LINESTYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D")


def png_bytes(figure: Any) -> bytes:
    """A figure as PNG bytes without run-dependent metadata (no timestamp, no software tag), and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(figure)
    return buffer.getvalue()


def param_shares_png(records: Sequence[dict[str, Any]]) -> bytes:
    """Parameters by component (`draw_param_shares`) on its own, as PNG bytes."""
    from matplotlib.transforms import offset_copy

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, max(2.5, 0.4 * len(records) + 1.5)))
    draw_param_shares(axis, records)
    # Hang the legend a fixed 0.5 inch below the axis, clear of the x label at any figure height.
    legend = axis.get_legend()
    legend.set_bbox_to_anchor((0.5, 0.0), transform=offset_copy(axis.transAxes, figure, y=-0.5, units="inches"))
    figure.tight_layout()
    return png_bytes(figure)


def kv_curves_png(curves: Sequence[dict[str, Any]], *, batch: int, dtype: str) -> bytes:
    """KV cache against context length (`draw_kv_curves`) on its own, as PNG bytes."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 4.5))
    draw_kv_curves(axis, curves, batch=batch, dtype=dtype)
    # Models with the same KV shape draw the same line: vary the style so that none hides another.
    for index, line in enumerate(axis.get_lines()):
        line.set_linestyle(_LINESTYLES[index % len(_LINESTYLES)])
    axis.legend(fontsize=7)
    figure.tight_layout()
    return png_bytes(figure)


def draw_bench_curves(latency_axis: Any, throughput_axis: Any, rows: Sequence[dict[str, Any]], *, phase: str) -> None:
    """One benchmark phase: median latency (left) and achieved throughput (right) against sequence length.

    `rows` are bench results (the keys of `llmarch bench --format json`); rows of other phases, skipped rows
    and rows without a median are left out. Throughput is the achieved TFLOP/s, or for decode, which is bound
    by memory bandwidth, the achieved GB/s. One colour per variant, one line style and marker per
    implementation; the batch is named in the label when the rows have several.
    """
    from matplotlib.ticker import FuncFormatter, LogFormatter

    class PlainLogFormatter(LogFormatter):
        """LogFormatter's choice of which ticks to label, written as plain numbers (0.6, not 6e-01)."""

        def __call__(self, x: float, pos: int | None = None) -> str:
            return f"{x:g}" if super().__call__(x, pos) else ""

    rows = [r for r in rows if r.get("phase") == phase and r.get("median_s") and r.get("seq_len")]
    rate_key, rate_scale, rate_label = (
        ("achieved_bytes_per_s", 1e9, "achieved GB/s (memory-bound)")
        if phase == "decode"
        else ("achieved_flop_per_s", 1e12, "achieved TFLOP/s")
    )
    variants = list(dict.fromkeys(r.get("variant") for r in rows))
    impls = list(dict.fromkeys(r.get("impl") for r in rows))
    several_batches = len({r.get("batch") for r in rows}) > 1
    lines: dict[tuple[Any, Any, Any], list[dict[str, Any]]] = {}
    for row in rows:
        lines.setdefault((row.get("variant"), row.get("impl"), row.get("batch")), []).append(row)
    for (variant, impl, batch), points in lines.items():
        points = sorted(points, key=lambda r: r["seq_len"])
        style = {
            "color": f"C{variants.index(variant) % 10}",
            "linestyle": _LINESTYLES[impls.index(impl) % len(_LINESTYLES)],
            "marker": _MARKERS[impls.index(impl) % len(_MARKERS)],
            "markersize": 4,
            "label": f"{variant}/{impl}" + (f" B={batch}" if several_batches else ""),
        }
        latency_axis.plot([p["seq_len"] for p in points], [p["median_s"] * 1e3 for p in points], **style)
        rated = [p for p in points if p.get(rate_key)]
        if rated:
            throughput_axis.plot([p["seq_len"] for p in rated], [p[rate_key] / rate_scale for p in rated], **style)
    for axis in (latency_axis, throughput_axis):
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1024:g}k" if x >= 1024 else f"{x:g}"))
        axis.yaxis.set_major_formatter(PlainLogFormatter())
        axis.yaxis.set_minor_formatter(PlainLogFormatter(minor_thresholds=(2, 0.5)))
        axis.set_xlabel("sequence length (tokens)" if phase != "decode" else "context length (tokens)")
        axis.grid(True, which="both", alpha=0.3)
        if axis.lines:
            axis.legend(fontsize=7)
    latency_axis.set_ylabel("median latency (ms)")
    latency_axis.set_title(f"{phase}: latency")
    throughput_axis.set_ylabel(rate_label)
    throughput_axis.set_title(f"{phase}: throughput")


def bench_png(rows: Sequence[dict[str, Any]]) -> bytes | None:
    """Latency and throughput against sequence length (`draw_bench_curves`), one row of panels per phase, as PNG
    bytes (None: no row with a median to draw)."""
    phases = list(dict.fromkeys(r["phase"] for r in rows if r.get("phase") and r.get("median_s") and r.get("seq_len")))
    if not phases:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(len(phases), 2, figsize=(13, 4 * len(phases)), squeeze=False)
    for (left, right), phase in zip(axes, phases, strict=True):
        draw_bench_curves(left, right, rows, phase=phase)
    figure.tight_layout()
    return png_bytes(figure)
