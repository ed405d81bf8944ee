"""Time the full `llmarch plan` search for Llama 3.1 405B on 16,384 H100s (global batch 2048 x 8192 tokens).

    python scripts/bench_plan.py [--repeat 5]

Issue 12's budget: under two seconds on one core. Prints the best of `--repeat` runs (after one warm-up
that also pays the imports), the number of configurations evaluated and the winner.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmarch.calc.plan import plan_training
from llmarch.catalog.presets import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    start = time.perf_counter()
    config = load("llama-3.1-405b")
    result = plan_training(config, gpu="h100-sxm", n_gpus=16384, global_batch=2048, seq_len=8192)
    first = time.perf_counter() - start
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = plan_training(config, gpu="h100-sxm", n_gpus=16384, global_batch=2048, seq_len=8192)
        times.append(time.perf_counter() - start)
    best = result.best
    assert best is not None
    print(f"llama-3.1-405b on 16384 x h100-sxm, global batch 2048 x 8192: {result.n_candidates} configurations, "
          f"{result.n_fitting} fit")  # fmt: skip
    print(f"search time: best {min(times):.3f} s, median {sorted(times)[len(times) // 2]:.3f} s of {args.repeat} "
          f"(first run with imports and preset loading: {first:.3f} s); budget 2 s")  # fmt: skip
    print(f"winner: tp {best.tp} pp {best.pp} dp {best.dp} cp {best.cp} micro_batch {best.micro_batch} "
          f"v {best.virtual_stages} recompute {best.recompute} zero {best.zero} sp {best.sequence_parallel}: "
          f"{best.step_time_s:.2f} s/step, {best.tokens_per_s_per_gpu:.0f} tokens/s/GPU, "
          f"MFU {best.mfu:.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
