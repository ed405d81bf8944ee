#!/usr/bin/env bash
# Create .venv (if missing) and install llmarch with everything its tests and benchmarks use.
# Torch: an already-installed torch is kept; otherwise the CPU build named by LLMARCH_TORCH
# (default torch==2.13.0, the CPU wheel these machines carry). llmarch itself only asks torch>=2.5.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PY=.venv/bin/python
"$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip 2>/dev/null || true
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install --quiet --disable-pip-version-check "${LLMARCH_TORCH:-torch==2.13.0}" 2>&1 | grep -v "^WARNING: Location" || true
fi
"$PY" -m pip install --quiet --disable-pip-version-check -e ".[all,test]" 2>&1 | grep -v "^WARNING: Location" || true
"$PY" -c "import llmarch, torch, typer, rich, yaml, pandas, pytest, hypothesis" 
