"""Benchmark: wall time of `llmarch compare --all --format json` against `python -c "import typer, rich"`.

The target (issue 2) is under 1.5x the baseline: llmarch's own work (loading every preset, counting
parameters, rendering JSON) must cost less than half of what importing its CLI libraries costs.
Runs each command N times, interleaved, and reports medians and the ratio.

    python scripts/bench_startup.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import time


def time_command(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - start


# Compare like with like: typer and rich run from the bytecode pip compiled at install time, so llmarch
# must too (some environments set PYTHONDONTWRITEBYTECODE, which would make llmarch recompile each run).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    import llmarch

    compileall.compile_dir(os.path.dirname(llmarch.__file__), quiet=1)
    baseline_cmd = [sys.executable, "-c", "import typer, rich"]
    # The console script users run (python -m adds runpy's imports, about 6 ms, to every start).
    script = os.path.join(os.path.dirname(sys.executable), "llmarch")
    entry = [script] if os.path.exists(script) else [sys.executable, "-m", "llmarch"]
    llmarch_cmd = [*entry, "compare", "--all", "--format", "json"]
    table_cmd = [*entry, "compare", "--all"]
    for cmd in (baseline_cmd, llmarch_cmd, table_cmd):  # warm the file cache
        time_command(cmd)
    base, json_s, table_s = [], [], []
    for _ in range(args.repeats):
        base.append(time_command(baseline_cmd))
        json_s.append(time_command(llmarch_cmd))
        table_s.append(time_command(table_cmd))
    b, j, t = statistics.median(base), statistics.median(json_s), statistics.median(table_s)
    print(f"baseline  python -c 'import typer, rich'      median {b * 1000:7.1f} ms")
    print(f"llmarch   compare --all --format json         median {j * 1000:7.1f} ms  ratio {j / b:.2f}x")
    print(f"llmarch   compare --all (rich table)          median {t * 1000:7.1f} ms  ratio {t / b:.2f}x")
    print("target: ratio < 1.5x for the JSON command")


if __name__ == "__main__":
    main()
