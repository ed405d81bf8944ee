"""Benchmark: wall time of `llmarch compare --all --format json` against `python -c "import typer, rich"` and,
when given, against llm-analysis computing one configuration.

Targets (issue 10): at most 1.3x the bare import (llmarch's own work, loading every preset, counting parameters
and writing JSON, costs under a third of what importing its CLI libraries costs) and at most 0.25x llm-analysis
estimating one model (`python -m llm_analysis.analysis infer`, Llama 2 7B on an A100). The JSON command must not
import torch, pandas or matplotlib (tests/test_cli.py checks). Runs each command N times, interleaved, and reports
medians and the ratios.

    python scripts/bench_startup.py [--repeats 15] [--llm-analysis PYTHON]

PYTHON is an interpreter with llm-analysis installed (e.g. a separate venv: `pip install llm-analysis`).
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time


def time_command(argv: list[str], cwd: str | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=ENV, cwd=cwd)
    return time.perf_counter() - start


# Compare like with like: typer and rich run from the bytecode pip compiled at install time, so llmarch
# must too (some environments set PYTHONDONTWRITEBYTECODE, which would make llmarch recompile each run).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--llm-analysis", metavar="PYTHON", help="an interpreter with llm-analysis installed")
    args = parser.parse_args()
    import llmarch

    compileall.compile_dir(os.path.dirname(llmarch.__file__), quiet=1)
    baseline_cmd = [sys.executable, "-c", "import typer, rich"]
    # The console script users run (python -m adds runpy's imports, about 6 ms, to every start).
    script = os.path.join(os.path.dirname(sys.executable), "llmarch")
    entry = [script] if os.path.exists(script) else [sys.executable, "-m", "llmarch"]
    commands = {
        "baseline  python -c 'import typer, rich'": baseline_cmd,
        "llmarch   compare --all --format json    ": [*entry, "compare", "--all", "--format", "json"],
        "llmarch   compare --all (rich table)     ": [*entry, "compare", "--all"],
    }
    if args.llm_analysis:
        commands["llm-analysis infer (Llama 2 7B, A100)  "] = [
            args.llm_analysis, "-m", "llm_analysis.analysis", "infer", "--model_name=NousResearch_Llama-2-7b-hf",
            "--gpu_name=a100-sxm-80gb", "--log_level=ERROR",
        ]  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:  # llm-analysis may write files into its working directory
        # The parsed-preset cache of one installation (a shared ~/.cache may hold the presets of many checkouts).
        ENV["LLMARCH_CACHE_DIR"] = os.path.join(scratch, "cache")
        for cmd in commands.values():  # warm the file cache
            time_command(cmd, cwd=scratch)
        times: dict[str, list[float]] = {label: [] for label in commands}
        for _ in range(args.repeats):
            for label, cmd in commands.items():
                times[label].append(time_command(cmd, cwd=scratch))
    medians = {label: statistics.median(samples) for label, samples in times.items()}
    base = medians[next(iter(commands))]
    json_label = list(commands)[1]
    for label, median in medians.items():
        print(f"{label}  median {median * 1000:7.1f} ms  ratio to baseline {median / base:.2f}x")
    print(f"JSON command / bare import: {medians[json_label] / base:.2f}x (target <= 1.3x)")
    if args.llm_analysis:
        other = medians[list(commands)[3]]
        print(f"JSON command / llm-analysis: {medians[json_label] / other:.2f}x (target <= 0.25x)")


if __name__ == "__main__":
    main()
