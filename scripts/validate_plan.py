"""Check llmarch's training step-time model against published runs; print the error distribution.

    python scripts/validate_plan.py            # Korthikanti et al. 2022 Table 5 and tests/data/training_runs.json

Error = predicted / measured tokens per second per GPU - 1. Each run is predicted with the knobs its
source publishes fixed; the others are searched (the planner's fastest choice).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmarch.calc.plan import check_run  # noqa: E402
from llmarch.catalog.presets import load  # noqa: E402
from llmarch.core.config import ArchConfig  # noqa: E402

# The team's reference facts live in ../shared beside the checkout (a worktree may sit one folder deeper).
_ANCHOR = Path("shared", "reference", "training_anchor_korthikanti2022.json")
KORTHIKANTI = next(
    (p / _ANCHOR for p in (ROOT.parent, ROOT.parent.parent) if (p / _ANCHOR).exists()), ROOT.parent / _ANCHOR
)


def korthikanti_runs(path: Path) -> list[tuple[dict, ArchConfig]]:
    """The eight Korthikanti et al. 2022 runs as (run record, GPT config) pairs."""
    out = []
    for row in json.loads(path.read_text())["runs"]:
        config = ArchConfig.from_dict({
            "name": row["name"], "source": "arXiv:2205.05198 Table 3", "architecture": "decoder",
            "n_layers": row["n_layers"], "d_model": row["d_model"], "n_heads": row["n_heads"], "d_ff": row["d_ff"],
            "vocab_size": row["vocab_size"], "max_seq_len": row["seq_len"], "position": "learned", "norm": "layernorm",
            "norm_bias": True, "norm_position": "pre", "final_norm": True, "mlp": "gelu", "tie_embeddings": True,
            "qkv_bias": True, "attn_out_bias": True, "mlp_bias": True,
        })  # fmt: skip
        knobs = {k: row[k] for k in ("tp", "pp", "virtual_stages", "sequence_parallel", "micro_batch", "recompute")}
        run = {"name": row["name"], "gpu": row["gpu"], "n_gpus": row["n_gpus"],
               "global_batch": row["global_batch_seqs"],
               "seq_len": row["seq_len"], "knobs": {**knobs, "cp": 1, "zero": 0},
               "options": {"flash": False, "dropout": True},
               "measured_tokens_per_s_per_gpu": row["tokens_per_s_per_gpu"]}  # fmt: skip
        out.append((run, config))
    return out


def published_runs(path: Path) -> list[tuple[dict, ArchConfig]]:
    """tests/data/training_runs.json as (run record, config) pairs."""
    out = []
    for run in json.loads(path.read_text())["runs"]:
        config = load(run["preset"]) if "preset" in run else ArchConfig.from_dict(run["arch"])
        out.append((run, config))
    return out


def report(label: str, pairs: list[tuple[dict, ArchConfig]]) -> list[float]:
    errors = []
    print(f"\n{label}: {len(pairs)} runs")
    print(f"{'run':48s} {'measured':>10s} {'predicted':>10s} {'error':>7s}")
    for run, config in pairs:
        check = check_run(run, config)
        errors.append(check.error)
        print(f"{check.name:48s} {check.measured_tokens_per_s_per_gpu:10.1f} "
              f"{check.predicted_tokens_per_s_per_gpu:10.1f} {check.error:+7.1%}")  # fmt: skip
    absolute = [abs(e) for e in errors]
    within = sum(a <= 0.2 for a in absolute) / len(absolute)
    print(f"mean |error| {statistics.mean(absolute):.1%}, median |error| {statistics.median(absolute):.1%}, "
          f"within +-20%: {within:.0%}, mean error {statistics.mean(errors):+.1%}")  # fmt: skip
    return errors


def main() -> None:
    report("Korthikanti et al. 2022, Table 5", korthikanti_runs(KORTHIKANTI))
    report(
        "Published runs (tests/data/training_runs.json)", published_runs(ROOT / "tests" / "data" / "training_runs.json")
    )


if __name__ == "__main__":
    main()
