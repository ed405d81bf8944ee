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


def _share_rows(records: Sequence[dict[str, Any]]) -> list[tuple[str, dict[str, int], int]]:
    """(label, parameters by breakdown group, total) per bar: every model, and under each MoE model a bar of
    what one token uses. Only routed experts are ever inactive (llmarch.calc.params), so the active bar is
    the total bar with the `moe` group less the inactive experts."""
    rows = []
    for r in records:
        rows.append((r["name"], r["groups"], r["params_total"]))
        inactive = r["params_total"] - r["params_active"]
        if inactive > 0:
            rows.append((f"{r['name']} (active)", {**r["groups"], "moe": r["groups"].get("moe", 0) - inactive},
                         r["params_active"]))  # fmt: skip
    return rows


def draw_param_shares(axis: Any, records: Sequence[dict[str, Any]]) -> None:
    """Horizontal 100% stacked bars: each model's parameters by component, its total at the bar's end; a
    mixture-of-experts model gets a second, hatched bar of the parameters one token uses (its active view)."""
    from llmarch.report.format import format_count

    rows = _share_rows(records)
    names = [label for label, _, _ in rows]
    hatch = ["//" if label.endswith(" (active)") else "" for label in names]
    left = [0.0] * len(rows)
    for (label, groups), colour in zip(PARAM_GROUPS, _COLOURS, strict=True):
        shares = [sum(g.get(k, 0) for k in groups) / total for _, g, total in rows]
        bars = axis.barh(names, shares, left=left, label=label, color=colour, edgecolor="white", linewidth=0.5)
        for bar, pattern in zip(bars, hatch, strict=True):
            bar.set_hatch(pattern)
        left = [a + b for a, b in zip(left, shares, strict=True)]
    for i, (_, _, total) in enumerate(rows):
        axis.text(1.01, i, format_count(total), va="center", fontsize=8)
    axis.set_xlim(0, 1)
    axis.invert_yaxis()
    axis.set_xlabel("share of parameters (hatched: active per token, MoE)")
    axis.set_title("Parameters by component")
    axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(PARAM_GROUPS), fontsize=8, frameon=False)


#: Line styles and markers of the KV curves. Models with the same KV shape draw the same line (Llama-3-8B,
#: Mistral-7B and Mixtral-8x7B), so neighbours differ in colour, dash pattern and marker: a dashed line over
#: a solid one, and different markers, show both.
_KV_STYLES = ("-", (0, (5, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2)))
_KV_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def kv_style(index: int) -> dict[str, Any]:
    """Colour, line style and marker of the `index`-th KV curve: (colour, style) repeats every 20 curves and
    the marker changes every 20, so the triple is distinct for the first 160."""
    return {"color": f"C{index % 10}", "linestyle": _KV_STYLES[index % len(_KV_STYLES)],
            "marker": _KV_MARKERS[(index + index // 20) % len(_KV_MARKERS)]}  # fmt: skip


def bytes_label(value: float) -> str:
    """A tick label for a byte count with binary prefixes: 2**30 -> "1 GiB", 2**29 -> "512 MiB"."""
    from llmarch.core.units import format_bytes

    return format_bytes(value)


def draw_kv_curves(axis: Any, curves: Sequence[dict[str, Any]], *, batch: int, dtype: str) -> None:
    """KV-cache bytes against context length, one line per model (log-log), ending at its context: each line
    its own colour, style and marker; ticks in tokens (2k, 32k) and binary bytes (512 MiB, 4 GiB); the
    legend outside the plot, at the right."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for index, curve in enumerate(curves):
        seq_lens = [p["seq_len"] for p in curve["points"]]
        sizes = [p["kv_cache_bytes"] for p in curve["points"]]
        axis.plot(seq_lens, sizes, markersize=3.5, linewidth=1.3, label=f"{curve['name']} ({curve['attention']})",
                  **kv_style(index))  # fmt: skip
    axis.set_xscale("log", base=2)
    axis.set_yscale("log", base=2)
    axis.xaxis.set_major_formatter(FuncFormatter(lambda x, _: tokens_label(x)))
    axis.yaxis.set_major_locator(LogLocator(base=2, numticks=12))
    axis.yaxis.set_major_formatter(FuncFormatter(lambda y, _: bytes_label(y)))
    axis.yaxis.set_minor_formatter(NullFormatter())
    axis.set_xlabel("context length (tokens)")
    axis.set_ylabel(f"KV cache, batch {batch}, {dtype}")
    axis.set_title("KV cache vs context")
    axis.grid(True, which="major", alpha=0.3)
    columns = 1 if len(curves) <= 20 else 2
    axis.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, ncol=columns, frameon=False)


def plot_compare(
    records: Sequence[dict[str, Any]], curves: Sequence[dict[str, Any]], path: str | Path, *, batch: int, dtype: str
) -> None:
    """`llmarch compare --plot`: parameter shares by component beside KV cache against context length."""
    plt = _pyplot()
    bars = len(_share_rows(records))
    height = max(4.0, 0.3 * bars + 1.8, 0.16 * len(curves) / (1 if len(curves) <= 20 else 2) + 1.5)
    figure, (left, right) = plt.subplots(1, 2, figsize=(16, height), gridspec_kw={"width_ratios": [1.1, 1]})
    draw_param_shares(left, records)
    _hang_legend(figure, left)
    draw_kv_curves(right, curves, batch=batch, dtype=dtype)
    figure.tight_layout()
    save_png(figure, path)


def _hang_legend(figure: Any, axis: Any) -> None:
    """Hang the axis' legend a fixed 0.5 inch below it, clear of the x label at any figure height."""
    from matplotlib.transforms import offset_copy

    legend = axis.get_legend()
    legend.set_bbox_to_anchor((0.5, 0.0), transform=offset_copy(axis.transAxes, figure, y=-0.5, units="inches"))


# -- `llmarch report`: figures as PNG bytes (embedded in HTML, or written beside the Markdown) ---------------


def png_bytes(figure: Any) -> bytes:
    """A figure as PNG bytes without run-dependent metadata (no timestamp, no software tag), and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(figure)
    return buffer.getvalue()


def param_shares_png(records: Sequence[dict[str, Any]]) -> bytes:
    """Parameters by component (`draw_param_shares`) on its own, as PNG bytes."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, max(2.5, 0.4 * len(_share_rows(records)) + 1.5)))
    draw_param_shares(axis, records)
    _hang_legend(figure, axis)
    figure.tight_layout()
    return png_bytes(figure)


def kv_curves_png(curves: Sequence[dict[str, Any]], *, batch: int, dtype: str) -> bytes:
    """KV cache against context length (`draw_kv_curves`) on its own, as PNG bytes."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 4.5))
    draw_kv_curves(axis, curves, batch=batch, dtype=dtype)
    figure.tight_layout()
    return png_bytes(figure)


# -- `llmarch bench --plot` and the report's benchmark figure ----------------------------------------------------

_BENCH_STYLES: tuple[Any, ...] = ("-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 3)))
_BENCH_MARKERS = "osD^vP*Xh<"


def si_seconds(value: float) -> str:
    """A tick label for seconds in plain numbers with an SI unit: 0.0004 -> "400 µs", 2.5 -> "2.5 s"."""
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if value >= scale * 0.9995:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def tokens_label(value: float) -> str:
    """A sequence-length tick: 512 -> "512", 2048 -> "2k", 32768 -> "32k"."""
    return f"{value / 1024:g}k" if value >= 1024 else f"{value:g}"


def _log_seconds_axis(axis: Any, values: Sequence[float]) -> None:
    """A log axis of seconds labelled in plain numbers and SI units, ticks at 1-2-5 over a short span."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    positive = [v for v in values if v > 0]
    span = math.log10(max(positive) / min(positive)) if positive else 0.0
    axis.set_yscale("log")
    axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if span < 2.5 else (1.0,)))
    axis.yaxis.set_major_formatter(FuncFormatter(lambda y, _: si_seconds(y)))
    axis.yaxis.set_minor_formatter(NullFormatter())


Series = dict[tuple[Any, Any], list[dict[str, Any]]]


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _plottable(row: dict[str, Any]) -> bool:
    """A row with a phase, a positive median and sequence length (anything else is left out of plots)."""
    return bool(row.get("phase")) and _positive(row.get("median_s")) and _positive(row.get("seq_len"))


def _bench_series(rows: Sequence[dict[str, Any]], phase: str, batch: Any) -> Series:
    series: Series = {}
    for row in rows:
        if row.get("phase") == phase and row.get("batch") == batch and _plottable(row):
            series.setdefault((row.get("variant"), row.get("impl")), []).append(row)
    return {key: sorted(points, key=lambda r: r["seq_len"]) for key, points in series.items()}


def _spread(points: Sequence[dict[str, Any]], scale: Any) -> list[list[float]]:
    """Error bars [below, above] of `scale(row, time)` between the quartiles (median +- IQR/2 without them)."""
    below, above = [], []
    for p in points:
        median = p["median_s"]
        half = (p.get("iqr_s") or 0.0) / 2
        q1, q3 = p.get("q1_s") or max(median - half, median * 1e-3), p.get("q3_s") or median + half
        values = sorted((scale(p, q1), scale(p, q3)))
        centre = scale(p, median)
        below.append(max(0.0, centre - values[0]))
        above.append(max(0.0, values[1] - centre))
    return [below, above]


def draw_bench_curves(
    latency_axis: Any, roofline_axis: Any, rows: Sequence[dict[str, Any]], *, phase: str, batch: Any = 1,
    variants: Sequence[Any] | None = None, impls: Sequence[Any] | None = None,
) -> None:  # fmt: skip
    """One benchmark phase and batch: median latency with IQR bars (left) and the share of the measured
    roofline reached, predicted_s / median_s, with its 100% line (right), against sequence length.

    `rows` are bench results (the keys of `llmarch bench --format json`); rows of other phases or batches,
    skipped rows and rows without a median are left out. One colour per variant, one line style and marker
    per implementation (`variants`, `impls`: their order, shared across panels). A share above 100% is
    circled in red: a measurement problem (a cache-resident working set, a roofline measured in a slow
    spell), not a result; a latency out of order with the same case at other lengths (`non_monotone`) is boxed.
    Rows without a roofline share show achieved TFLOP/s (GB/s for decode) instead.
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    series = _bench_series(rows, phase, batch)
    variants = list(variants or dict.fromkeys(k[0] for k in series))
    impls = list(impls or dict.fromkeys(k[1] for k in series))
    shares = any(_positive(p.get("roofline_fraction")) for points in series.values() for p in points)
    rate_key, rate_scale = ("achieved_bytes_per_s", 1e9) if phase == "decode" else ("achieved_flop_per_s", 1e12)
    highest = 100.0
    for (variant, impl), points in series.items():
        style = {"color": f"C{variants.index(variant) % 10}", "linestyle": _BENCH_STYLES[impls.index(impl) % 7],
                 "marker": _BENCH_MARKERS[impls.index(impl) % 10], "markersize": 4, "linewidth": 1.3,
                 "capsize": 2, "elinewidth": 0.8}  # fmt: skip
        x = [p["seq_len"] for p in points]
        latency_axis.errorbar(x, [p["median_s"] for p in points], yerr=_spread(points, lambda p, t: t), **style)
        unordered = [(p["seq_len"], p["median_s"]) for p in points if p.get("non_monotone")]
        if unordered:
            latency_axis.plot(*zip(*unordered, strict=True), linestyle="none", marker="s", markersize=10,
                              markerfacecolor="none", markeredgecolor="0.2", markeredgewidth=1.0)  # fmt: skip
        if shares:
            shown = [p for p in points if _positive(p.get("roofline_fraction"))]
            y = [100 * p["roofline_fraction"] for p in shown]
            share = lambda p, t: 100 * p["roofline_fraction"] * p["median_s"] / t  # noqa: E731
            roofline_axis.errorbar([p["seq_len"] for p in shown], y, yerr=_spread(shown, share), **style)
            over = [(p["seq_len"], v) for p, v in zip(shown, y, strict=True) if v > 100]
            if over:
                roofline_axis.plot(*zip(*over, strict=True), linestyle="none", marker="o", markersize=11,
                                   markerfacecolor="none", markeredgecolor="red", markeredgewidth=1.5)  # fmt: skip
            highest = max([highest, *y])
        else:
            rated = [p for p in points if _positive(p.get(rate_key))]
            roofline_axis.plot([p["seq_len"] for p in rated], [p[rate_key] / rate_scale for p in rated],
                               **{k: v for k, v in style.items() if k not in ("capsize", "elinewidth")})  # fmt: skip
    seq_lens = sorted({p["seq_len"] for points in series.values() for p in points})
    for axis in (latency_axis, roofline_axis):
        axis.set_xscale("log", base=2)
        axis.xaxis.set_major_locator(FixedLocator(seq_lens))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda x, _: tokens_label(x)))
        axis.xaxis.set_minor_locator(NullLocator())
        axis.set_xlabel("context length (tokens)" if phase == "decode" else "sequence length (tokens)")
        axis.grid(True, which="major", alpha=0.3)
    _log_seconds_axis(latency_axis, [p["median_s"] for points in series.values() for p in points])
    latency_axis.set_ylabel("median latency (bars: IQR)")
    latency_axis.set_title(f"{phase}, batch {batch}: latency", fontsize=10)
    if shares:
        roofline_axis.axhline(100, color="black", linestyle="--", linewidth=1.2)
        roofline_axis.set_ylim(0, max(110.0, 1.08 * highest))
        roofline_axis.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}%"))
        roofline_axis.set_ylabel("share of the measured roofline")
        roofline_axis.set_title(f"{phase}, batch {batch}: roofline share", fontsize=10)
    else:
        roofline_axis.set_yscale("log")
        roofline_axis.set_ylabel("achieved GB/s" if phase == "decode" else "achieved TFLOP/s")
        roofline_axis.set_title(f"{phase}, batch {batch}: throughput", fontsize=10)


def _bench_legend(figure: Any, variants: Sequence[Any], impls: Sequence[Any]) -> None:
    """One legend outside the panels, at the right: variants (colours), implementations (line styles), and
    the two roofline marks."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=f"C{i % 10}", linewidth=2.5, label=str(v)) for i, v in enumerate(variants)]
    handles += [Line2D([], [], color="0.35", linestyle=_BENCH_STYLES[i % 7], marker=_BENCH_MARKERS[i % 10],
                       label=str(m)) for i, m in enumerate(impls)]  # fmt: skip
    handles += [
        Line2D([], [], color="black", linestyle="--", label="measured roofline (100%)"),
        Line2D([], [], linestyle="none", marker="o", markersize=9, markerfacecolor="none", markeredgecolor="red",
               label="above 100%: measurement problem"),
        Line2D([], [], linestyle="none", marker="s", markersize=9, markerfacecolor="none", markeredgecolor="0.2",
               label="non-monotone in S: noise"),
    ]  # fmt: skip
    figure.legend(handles=handles, loc="outside right upper", fontsize=8, title="variant / impl", title_fontsize=8)


def bench_png(rows: Sequence[dict[str, Any]], *, title: str | None = None) -> bytes | None:
    """The benchmark figure as PNG bytes (None: no row with a median to draw): one row of panels per phase
    and batch, latency with IQR bars beside the roofline share (`draw_bench_curves`), one legend outside."""
    drawn = [r for r in rows if _plottable(r)]
    if not drawn:
        return None
    order = {"prefill": 0, "decode": 1, "chunked_prefill": 2}
    panels = sorted(
        {(r["phase"], r.get("batch")) for r in drawn},
        key=lambda pb: (order.get(pb[0], 3), str(pb[0]), pb[1] if isinstance(pb[1], int) else 0),
    )
    variants = list(dict.fromkeys(r.get("variant") for r in drawn))
    impls = list(dict.fromkeys(r.get("impl") for r in drawn))
    plt = _pyplot()
    figure, axes = plt.subplots(len(panels), 2, figsize=(12.5, 3.6 * len(panels) + (0.8 if title else 0.3)),
                                squeeze=False, layout="constrained")  # fmt: skip
    for (left, right), (phase, batch) in zip(axes, panels, strict=True):
        draw_bench_curves(left, right, drawn, phase=phase, batch=batch, variants=variants, impls=impls)
    _bench_legend(figure, variants, impls)
    if title:
        figure.suptitle(title.replace("; ", "\n"), fontsize=9)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


# -- `llmarch plan --plot`: where the step time of the top plans goes -------------------------------------------

_PLAN_PART_COLOURS = ("#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#9467bd",
                      "#8c564b", "#7f7f7f")  # fmt: skip


def plot_plan_breakdown(plans: Sequence[dict[str, Any]], path: str | Path, *, title: str) -> None:
    """`llmarch plan --plot`: one stacked bar per plan, seconds per step by part of its `breakdown`."""
    plt = _pyplot()
    parts = list(plans[0]["breakdown"])
    figure, axis = plt.subplots(figsize=(10, max(3.0, 0.5 * len(plans) + 1.5)))
    labels = [f"#{i} tp{p['tp']} pp{p['pp']} v{p['virtual_stages']} dp{p['dp']} cp{p['cp']} ep{p['ep']} "
              f"zero{p['zero']}{' sp' if p['sequence_parallel'] else ''} mb{p['micro_batch']} {p['recompute']}"
              for i, p in enumerate(plans, start=1)]  # fmt: skip
    left = [0.0] * len(plans)
    for part, colour in zip(parts, _PLAN_PART_COLOURS, strict=False):
        widths = [p["breakdown"][part] for p in plans]
        axis.barh(labels, widths, left=left, color=colour, label=part.replace("_", " "))
        left = [a + b for a, b in zip(left, widths, strict=True)]
    axis.invert_yaxis()
    axis.set_xlabel("seconds per step")
    axis.set_title(title)
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)  # clear of the bars
    figure.tight_layout()
    save_png(figure, path)


def plain_log_ticks(axis: Any) -> None:
    """Label both log axes with plain numbers (2, 5, 10, 2k ...) instead of matplotlib's "2x10^3"."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    def plain(value: float, _: Any) -> str:
        return f"{value / 1e3:g}k" if value >= 1e4 else f"{value:g}"

    for sub in (axis.xaxis, axis.yaxis):
        sub.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        sub.set_major_formatter(FuncFormatter(plain))
        sub.set_minor_formatter(FuncFormatter(lambda _v, _p: ""))


def plot_serving_curves(records: Sequence[dict[str, Any]], path: str | Path, *, title: str) -> None:
    """`llmarch estimate-inference --plot`: output tokens/s per GPU against TPOT (left) and against request
    latency (right), one curve per model, one point per load (requests in flight); the load served is ringed."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    for index, r in enumerate(records):
        points = r["curve"]
        if not points:
            continue
        colour = f"C{index % 10}"
        for axis, key in ((left, "tpot_s"), (right, "request_latency_s")):
            axis.plot([p[key] * 1e3 for p in points], [p["tokens_per_s_per_gpu"] for p in points], marker="o",
                      markersize=3, color=colour, label=r["name"])  # fmt: skip
            for p in points:
                if p["concurrency"] in (1, points[-1]["concurrency"]):
                    axis.annotate(str(p["concurrency"]), (p[key] * 1e3, p["tokens_per_s_per_gpu"]), fontsize=7)
            if r["tpot_s"] is not None:
                served = r["tpot_s"] if key == "tpot_s" else r["request_latency_s"]
                axis.scatter([served * 1e3], [r["tokens_per_s_per_gpu"]], s=80, facecolors="none", edgecolors=colour)
    for axis, label in ((left, "time per output token (ms)"), (right, "request latency (ms)")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        plain_log_ticks(axis)
        axis.set_xlabel(label)
        axis.set_ylabel("output tokens/s per GPU")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    left.set_title("Throughput vs TPOT (labels: requests in flight)")
    right.set_title("Throughput vs request latency")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    save_png(figure, path)
