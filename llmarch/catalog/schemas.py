"""JSON Schemas shipped with the package: the document every command writes with `--format json`."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

ENVELOPE_SCHEMA_PATH = Path(__file__).resolve().parent / "data" / "envelope.schema.json"


@functools.cache
def envelope_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of llmarch's JSON documents (`schema_version`, `kind`, `results`, ...)."""
    return json.loads(ENVELOPE_SCHEMA_PATH.read_text(encoding="utf-8"))
