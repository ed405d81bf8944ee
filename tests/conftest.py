"""Shared fixtures: the shipped presets and a clean preset search path."""

from __future__ import annotations

import pytest

from llmarch.catalog import presets


@pytest.fixture(autouse=True)
def _isolated_preset_path(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests see only the shipped presets unless they set LLMARCH_PRESET_PATH themselves, and parse
    preset files afresh into a per-session cache folder (never the user's)."""
    monkeypatch.delenv(presets.PRESET_PATH_ENV, raising=False)
    monkeypatch.delenv("LLMARCH_CATALOG", raising=False)  # only the shipped accelerators, regions and prices
    monkeypatch.setenv(presets.CACHE_ENV, str(tmp_path_factory.getbasetemp() / "llmarch-cache"))
    presets._cache.entries = None
    presets._validated_cache.entries = None
    presets._load_cached.cache_clear()
    presets._index_cached.cache_clear()
