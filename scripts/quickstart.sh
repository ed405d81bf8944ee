#!/usr/bin/env bash
# Set everything up (first run only) and compare a few seed architectures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/llmarch compare gpt-3-175b llama-2-7b llama-2-70b llama-3-8b mistral-7b mixtral-8x7b falcon-7b t5-base "$@"
