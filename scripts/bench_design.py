"""Benchmark: candidate shapes evaluated per second by `llmarch design`'s vectorised sweep (one core).

The target (issue 16) is at least 1e5 shapes per second. Each repeat runs `llmarch.calc.design.sweep` for
the budgets of Chinchilla's Table 3 up to 1T parameters with the default conventions, dense and MoE, without
pruning d_ff (every shape of the product is evaluated: parameter counts, KV bytes and training FLOPs per
token, and the size-band filter). `llmarch design` itself prunes the d_ff values that cannot reach the band
and evaluates far fewer shapes for the same result.
Reports the median rate over repeats. Pin it to one core with `taskset -c 0` for the per-core figure.

    python scripts/bench_design.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from llmarch.calc.design import ShapeSpace, sweep
from llmarch.calc.scaling import compute_optimal

BUDGETS = (1.92e19, 1.21e20, 1.23e22, 5.76e23, 3.85e24, 9.90e24, 3.43e25, 1.27e26)


def one_pass() -> tuple[int, float]:
    """Shapes evaluated and seconds taken for one sweep per budget and per dense/MoE space."""
    spaces = (ShapeSpace(), ShapeSpace(moe=(64, 8)))
    targets = [compute_optimal(c).params for c in BUDGETS]
    start = time.perf_counter()
    shapes = sum(sweep(target, space, prune=False).n_evaluated for target in targets for space in spaces)
    return shapes, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    one_pass()  # warm-up: numpy imports and caches
    rates, shapes = [], 0
    for _ in range(args.repeats):
        shapes, seconds = one_pass()
        rates.append(shapes / seconds)
    median = statistics.median(rates)
    print(
        f"{shapes:,} shapes per pass; median {median:,.0f} shapes/s over {args.repeats} repeats "
        f"(min {min(rates):,.0f}, max {max(rates):,.0f}); target >= 100,000: {'ok' if median >= 1e5 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
