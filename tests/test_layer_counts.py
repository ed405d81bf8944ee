"""The closed-form layer counts of ArchConfig equal the per-layer predicates they summarise."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from llmarch.catalog.presets import load

BASE = load("llama-2-7b")


@given(
    n_layers=st.integers(1, 200),
    n_experts=st.none() | st.integers(2, 64),
    n_dense=st.integers(0, 199),
    moe_every=st.integers(1, 8),
)
def test_moe_layer_count_matches_the_per_layer_rule(
    n_layers: int, n_experts: int | None, n_dense: int, moe_every: int
) -> None:
    config = dataclasses.replace(
        BASE, n_layers=n_layers, n_experts=n_experts, n_dense_layers=n_dense if n_experts else 0,
        moe_every=moe_every if n_experts else 1,
    )  # fmt: skip
    assert config.n_moe_layers == sum(config.layer_is_moe(i) for i in range(n_layers))


@given(
    n_layers=st.integers(1, 200),
    window=st.none() | st.integers(1, 4096),
    global_every=st.none() | st.integers(1, 12),
)
def test_local_layer_count_matches_the_per_layer_rule(
    n_layers: int, window: int | None, global_every: int | None
) -> None:
    config = dataclasses.replace(
        BASE, n_layers=n_layers, sliding_window=window, global_every=global_every if window else None
    )
    assert config.n_local_layers == sum(config.layer_is_local(i) for i in range(n_layers))


def test_published_patterns() -> None:
    """Gemma 3 27B: 62 layers, every 6th global (52 local); DeepSeek-V3: 61 layers, the first 3 dense (58 MoE);
    Llama 4 Maverick: 48 layers, every 2nd MoE (24)."""
    assert load("gemma-3-27b").n_local_layers == 62 - 62 // 6
    assert load("deepseek-v3").n_moe_layers == 58
    assert load("llama-4-maverick").n_moe_layers == 24
