#!/usr/bin/env bash
# Set everything up (first run only) and run the whole test suite plus the linter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check llmarch tests scripts
exec .venv/bin/python -m pytest "$@"
