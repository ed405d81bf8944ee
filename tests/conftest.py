"""Shared fixtures: the shipped presets and a clean preset search path."""

from __future__ import annotations

import pytest

from llmarch import presets


@pytest.fixture(autouse=True)
def _isolated_preset_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the shipped presets unless they set LLMARCH_PRESET_PATH themselves."""
    monkeypatch.delenv(presets.PRESET_PATH_ENV, raising=False)
    presets._load_cached.cache_clear()
    presets._index_cached.cache_clear()
