"""Plots (matplotlib, Agg backend, imported lazily): pictures of numbers the calculators already computed.

Every function takes plain records (what the JSON carries), draws, and writes a PNG atomically. The
PNG carries no timestamp or software tag, so the same inputs give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmarch.report import write_atomic

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
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(figure)
    write_atomic(path, buffer.getvalue(), what="--plot")


def draw_param_shares(axis: Any, records: Sequence[dict[str, Any]]) -> None:
    """Horizontal 100% stacked bars: each model's parameters by component, its total at the bar's end."""
    from llmarch.units import format_count

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
