#!/usr/bin/env bash
# Set everything up (first run only) and run the whole test suite (slow tests included) plus the linter,
# the formatter check and mypy.
# A bare `pytest` is the fast loop: it leaves out the tests marked slow.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check llmarch tests scripts
.venv/bin/ruff format --check llmarch tests scripts
.venv/bin/python -m mypy  # the torch-free packages ([tool.mypy] in pyproject.toml)
exec .venv/bin/python -m pytest -m "slow or not slow" "$@"
