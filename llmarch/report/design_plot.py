"""The `llmarch design --plot` picture: training cost against serving cost, coloured by predicted loss."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmarch.report.plots import _pyplot, png_bytes


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both coordinates (lower is better), by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front: list[int] = []
    best_y = float("inf")
    for i in order:
        if points[i][1] < best_y:
            front.append(i)
            best_y = points[i][1]
    return front


def pareto_png(records: Sequence[dict[str, Any]], *, ranked_by: str, top: int) -> bytes:
    """Scatter of every costed design: x the training cost (USD, or GPU-hours without a price), y the serving
    USD per million tokens (GPU-hours' stand-in: tokens per GPU-second inverted), colour the predicted loss;
    the Pareto front is joined and the first `top` designs are labelled with their rank."""
    plt = _pyplot()
    use_usd = ranked_by == "total_usd"
    points, losses, labels = [], [], []
    for r in records:
        x = r["training_usd"] if use_usd else r["training_gpu_hours"]
        y = r["serving_usd_per_million_tokens"]
        if y is None and r["serving_tokens_per_s"]:
            y = 1e6 / r["serving_tokens_per_s"] / 3600.0  # GPU-hours per million tokens
        if x is None or y is None:
            continue
        points.append((x, y))
        losses.append(r["predicted_loss"])
        labels.append((r["rank"], r["attention"], r["n_layers"], r["d_model"]))
    figure, axis = plt.subplots(figsize=(8, 5.5))
    if points:
        xs, ys = zip(*points, strict=True)
        dots = axis.scatter(xs, ys, c=losses, cmap="viridis", s=36, edgecolors="black", linewidths=0.4)
        figure.colorbar(dots, ax=axis, label="predicted loss (nats/token)", format="%.5f")
        front = pareto_front(points)
        axis.plot([xs[i] for i in front], [ys[i] for i in front], color="#d62728", lw=1, label="Pareto front")
        best = sorted((label[0], i) for i, label in enumerate(labels) if label[0] <= top)
        for step, (rank, i) in enumerate(best):
            axis.annotate(f"#{rank}", points[i], fontsize=8, fontweight="bold", xytext=(6, 6 + 9 * step),
                          textcoords="offset points", arrowprops={"arrowstyle": "-", "lw": 0.5})  # fmt: skip
        key = "\n".join(f"#{labels[i][0]} {labels[i][1]}, {labels[i][2]} x {labels[i][3]}" for _, i in best)
        axis.text(0.98, 0.55, key, transform=axis.transAxes, ha="right", va="center", fontsize=7,
                  bbox={"boxstyle": "round", "fc": "white", "alpha": 0.8})  # fmt: skip
        axis.legend(loc="upper right", fontsize=8)
        axis.ticklabel_format(axis="x", useOffset=False, style="sci", scilimits=(0, 0))
    axis.set_xlabel("training cost (USD)" if use_usd else "training GPU-hours")
    axis.set_ylabel("serving cost (USD per million output tokens)")
    axis.set_title("llmarch design: training vs serving cost")
    axis.grid(True, alpha=0.3)
    figure.tight_layout()
    return png_bytes(figure)
