"""Analytic FLOPs: hand-worked values, conventions and published closed forms."""

from __future__ import annotations

import pytest

from llmarch import count_params, load
from llmarch.calc.flops import (
    attention_flops_per_token,
    chinchilla_tokens,
    forward_flops,
    mean_attended_keys,
    megatron_flops_per_token,
    model_flops_utilization,
    six_nd,
    training_flops_per_token,
)
from llmarch.core.errors import InvalidValueError


def test_mean_attended_keys_by_hand() -> None:
    assert mean_attended_keys(4) == 2.5  # (1 + 2 + 3 + 4) / 4
    assert mean_attended_keys(4, causal=False) == 4
    assert mean_attended_keys(6, window=2) == (1 + 2 + 2 + 2 + 2 + 2) / 6
    assert mean_attended_keys(6, window=10) == 3.5
    with pytest.raises(InvalidValueError):
        mean_attended_keys(0)


def test_llama_2_7b_forward_by_hand() -> None:
    config = load("llama-2-7b")
    s = 4096
    fwd = forward_flops(config, s)
    # 2 FLOPs per weight a token multiplies: 32 layers x (4 x 4096^2 attention + 3 x 4096 x 11008 MLP).
    assert fwd.weights == 2 * 32 * (4 * 4096**2 + 3 * 4096 * 11008)
    assert fwd.lm_head == 2 * 32000 * 4096
    # Q K^T and A V: 2 x 32 heads x (128 + 128) per key, (S + 1) / 2 keys on average, 32 layers.
    assert fwd.attention == 32 * 2 * 32 * 256 * (s + 1) / 2
    assert fwd.total == fwd.weights + fwd.attention + fwd.lm_head


def test_short_context_limit_is_2n() -> None:
    """At S = 1 the forward pass costs 2 FLOPs per non-embedding weight (+ the head) + one key per layer."""
    for name in ("llama-2-7b", "mistral-7b", "falcon-7b", "gemma-2b"):  # no biases: every weight is a matmul
        config = load(name)
        counts = count_params(config)
        fwd = forward_flops(config, 1)
        tied_head = config.vocab_size * config.d_model if config.tie_embeddings else 0
        matmul_params = counts.total - counts.embedding - counts.group("norm") + tied_head
        assert fwd.weights + fwd.lm_head == 2 * matmul_params
        assert fwd.attention == config.n_layers * 2 * config.n_heads * (config.d_head + config.v_head_dim)


def test_sliding_window_caps_attention() -> None:
    mistral = load("mistral-7b")
    at_window = attention_flops_per_token(mistral, 4096)
    long = attention_flops_per_token(mistral, 32768)
    full = attention_flops_per_token(load("mistral-7b:sliding_window=null"), 32768)
    assert long < 2 * at_window  # grows towards 2x the window's mean of (W+1)/2 keys, then flat
    assert full / long == pytest.approx((32768 + 1) / 2 / mean_attended_keys(32768, window=4096))


def test_moe_counts_only_active_experts() -> None:
    mixtral = load("mixtral-8x7b")
    fwd = forward_flops(mixtral, 1)
    counts = count_params(mixtral)
    active_matmul = counts.active - counts.embedding - counts.group("norm")
    assert fwd.weights + fwd.lm_head == 2 * active_matmul


def test_training_flops_and_recompute() -> None:
    config = load("llama-2-7b")
    fwd = forward_flops(config, 4096)
    assert training_flops_per_token(config, 4096) == 3 * fwd.total
    assert training_flops_per_token(config, 4096, recompute="full") == 4 * fwd.total
    assert training_flops_per_token(config, 4096, recompute="selective") == 3 * fwd.total + fwd.attention
    with pytest.raises(InvalidValueError, match="recompute"):
        training_flops_per_token(config, 4096, recompute="some")  # type: ignore[arg-type]


def test_six_nd_and_exact_agree_at_short_context() -> None:
    config = load("llama-2-7b")
    exact = training_flops_per_token(config, 2048) * 2e12
    approx = six_nd(count_params(config).total, 2e12)
    assert approx == 6 * 6_738_415_616 * 2e12
    assert 1.0 < exact / approx < 1.1  # the attention term adds a few percent at 2k


def test_megatron_closed_form_gpt3_175b() -> None:
    # Narayanan et al. 2021 eq. 3 (with recomputation) for GPT-3 175B: 96 x 96 x 12288^2 x (1 + 2048/(6 x 12288)
    # + 51200/(16 x 96 x 12288)) per token; the paper rounds the vocabulary to 51200, the preset has 50257.
    config = load("gpt-3-175b")
    h, layers, s, v = 12288, 96, 2048, 50257
    assert megatron_flops_per_token(config, s) == pytest.approx(
        96 * layers * h**2 * (1 + s / (6 * h) + v / (16 * layers * h))
    )
    # With recomputation it is 4 forward passes: within 3% of llmarch's exact count with recompute="full".
    exact = training_flops_per_token(config, s, recompute="full")
    assert megatron_flops_per_token(config, s) == pytest.approx(exact, rel=0.03)


def test_chinchilla_and_mfu() -> None:
    assert chinchilla_tokens(load("llama-2-7b")) == 20 * 6_738_415_616
    # 6.74B model at 3000 tokens/s/GPU on A100 (312 TFLOP/s): MFU = 6N x 3000 / 312e12.
    mfu = model_flops_utilization(6 * 6.74e9, 3000, 312e12)
    assert mfu == pytest.approx(0.3888, rel=1e-3)
    with pytest.raises(InvalidValueError):
        model_flops_utilization(1.0, 0, 1.0)


def test_biases_are_not_matmul_flops() -> None:
    # GPT-2: per layer c_attn 768x2304, attn c_proj 768x768, c_fc 768x3072, mlp c_proj 3072x768; the head is
    # the tied 50257x768 table. Biases are additions, not multiply-adds (fvcore and FlopCounterMode agree).
    fwd = forward_flops(load("gpt-2"), 1)
    assert fwd.weights == 2 * 12 * (768 * 2304 + 768 * 768 + 2 * 768 * 3072)
    assert fwd.lm_head == 2 * 50257 * 768
