"""Parameter counting: hand-worked values and properties over random valid configurations."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmarch import count_params, load
from llmarch.core.config import ArchConfig
from llmarch.core.errors import InvalidConfigError


def tiny(**changes: object) -> ArchConfig:
    base: dict[str, object] = dict(
        name="tiny", source="test", architecture="decoder", n_layers=2, d_model=64, n_heads=4, d_ff=256,
        vocab_size=100, max_seq_len=128, position="rope", norm="rmsnorm", norm_position="pre", final_norm=True,
        mlp="swiglu", tie_embeddings=False,
    )  # fmt: skip
    base.update(changes)
    return ArchConfig.from_dict(base)


def test_gpt2_by_hand() -> None:
    # Radford et al. 2019; HF GPT2LMHeadModel: wte 50257x768, wpe 1024x768, per layer c_attn 768x2304 + 2304,
    # c_proj 768x768 + 768, c_fc 768x3072 + 3072, mlp c_proj 3072x768 + 768, ln_1 and ln_2 2x768 each, ln_f.
    counts = count_params(load("gpt-2"))
    per_layer = (768 * 2304 + 2304) + (768 * 768 + 768) + (768 * 3072 + 3072) + (3072 * 768 + 768) + 2 * 2 * 768
    assert counts.total == 50257 * 768 + 1024 * 768 + 12 * per_layer + 2 * 768 == 124_439_808
    assert counts.lm_head == 0 and counts.embedding == 39_383_808


def test_mixtral_active_by_hand() -> None:
    counts = count_params(load("mixtral-8x7b"))
    expert = 3 * 4096 * 14336
    assert counts.breakdown["moe.experts"] == 32 * 8 * expert
    assert counts.breakdown["moe.router"] == 32 * 8 * 4096
    assert counts.total - counts.active == 32 * 6 * expert  # 6 of 8 experts idle per token


def test_t5_relative_bias_and_cross_attention() -> None:
    counts = count_params(load("t5-base"))
    assert counts.breakdown["attention.relative_bias"] == 2 * 32 * 12  # one table per stack
    assert counts.group("cross_attention") == 12 * 4 * 768 * 768
    assert counts.group("norm") == (12 * 2 + 1 + 12 * 3 + 1) * 768


def test_mla_projection_shapes() -> None:
    # DeepSeek-V3 (arXiv:2412.19437): q 7168->1536->128x192, kv 7168->(512+64), 512->128x(128+128), o 16384->7168
    attn = count_params(load("deepseek-v3")).breakdown
    n = 61
    assert attn["attention.q_down"] == n * 7168 * 1536
    assert attn["attention.q_up"] == n * 1536 * 128 * 192
    assert attn["attention.kv_down"] == n * 7168 * (512 + 64)
    assert attn["attention.kv_up"] == n * 512 * 128 * (128 + 128)
    assert attn["attention.o"] == n * 128 * 128 * 7168


def test_validation_messages() -> None:
    with pytest.raises(InvalidConfigError, match="field 'd_head': is required because d_model"):
        tiny(n_heads=3)
    with pytest.raises(InvalidConfigError, match="n_experts_per_token"):
        tiny(n_experts=8)
    with pytest.raises(InvalidConfigError, match="global_every"):
        tiny(global_every=2)
    with pytest.raises(InvalidConfigError, match="rope_fraction"):
        tiny(rope_fraction=0.3)
    with pytest.raises(InvalidConfigError, match="n_encoder_layers"):
        tiny(architecture="encoder-decoder")
    with pytest.raises(InvalidConfigError, match="relative_attention_buckets"):
        tiny(position="relative")


def test_local_global_layers() -> None:
    config = tiny(n_layers=6, sliding_window=32, global_every=2)
    assert [config.layer_is_local(i) for i in range(6)] == [True, False] * 3
    assert config.n_local_layers == 3
    assert tiny(sliding_window=32).n_local_layers == 2
    for n_layers in range(1, 9):
        for every in range(1, 5):
            config = tiny(n_layers=n_layers, sliding_window=8, global_every=every)
            assert config.n_local_layers == sum(config.layer_is_local(i) for i in range(n_layers))


# -- properties over random valid configurations -----------------------------------------------------------


@st.composite
def configs(draw: st.DrawFn) -> ArchConfig:
    n_kv_heads = draw(st.sampled_from([1, 2, 4]))
    n_heads = n_kv_heads * draw(st.integers(1, 4))
    d_head = draw(st.sampled_from([8, 16, 32]))
    d_model = draw(st.sampled_from([32, 48, 64, 128]))
    encdec = draw(st.booleans())
    position = draw(st.sampled_from(["learned", "sinusoidal", "rope", "alibi", "relative", "none"]))
    data: dict[str, object] = dict(
        name="random", source="hypothesis",
        architecture="encoder-decoder" if encdec else "decoder",
        n_layers=draw(st.integers(1, 6)), d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, d_head=d_head,
        d_ff=draw(st.integers(1, 512)), vocab_size=draw(st.integers(1, 5000)), max_seq_len=draw(st.integers(1, 4096)),
        position=position, norm=draw(st.sampled_from(["layernorm", "rmsnorm"])),
        norm_position=draw(st.sampled_from(["pre", "post"])), final_norm=draw(st.booleans()),
        mlp=draw(st.sampled_from(["gelu", "relu", "silu", "swiglu", "geglu"])), tie_embeddings=draw(st.booleans()),
        qkv_bias=draw(st.booleans()), attn_out_bias=draw(st.booleans()), mlp_bias=draw(st.booleans()),
        lm_head_bias=draw(st.booleans()), norm_bias=draw(st.booleans()), embedding_norm=draw(st.booleans()),
    )  # fmt: skip
    if encdec:
        data["n_encoder_layers"] = draw(st.integers(1, 6))
    else:
        data["parallel_block"] = draw(st.booleans())
        data["parallel_block_shared_norm"] = bool(data["parallel_block"]) and draw(st.booleans())
        if draw(st.booleans()):
            data["n_experts"] = draw(st.integers(1, 8))
            data["n_experts_per_token"] = draw(st.integers(1, data["n_experts"]))  # type: ignore[arg-type]
            data["n_shared_experts"] = draw(st.integers(0, 2))
            data["d_ff_expert"] = draw(st.integers(1, 256))
            data["n_dense_layers"] = draw(st.integers(0, data["n_layers"] - 1))  # type: ignore[operator]
    if position == "relative":
        data["relative_attention_buckets"] = draw(st.sampled_from([8, 32]))
    if position == "learned":
        data["position_offset"] = draw(st.integers(0, 2))
    return ArchConfig.from_dict(data)


@settings(max_examples=300, deadline=None)
@given(configs())
def test_breakdown_sums_to_total(config: ArchConfig) -> None:
    counts = count_params(config)
    assert sum(counts.breakdown.values()) == counts.total
    assert sum(counts.groups.values()) == counts.total
    assert counts.embedding + counts.non_embedding + counts.lm_head == counts.total
    assert 0 < counts.active <= counts.total
    assert all(v > 0 for v in counts.breakdown.values())


@settings(max_examples=200, deadline=None)
@given(configs())
def test_kv_heads_change_only_k_and_v(config: ArchConfig) -> None:
    mha = config.replace(n_kv_heads=config.n_heads)
    a, b = count_params(config).breakdown, count_params(mha).breakdown
    changed = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    assert changed <= {"attention.k", "attention.v", "cross_attention.k", "cross_attention.v"}
    n_attn = config.n_layers * (2 if config.is_encoder_decoder else 1) + config.n_encoder_layers
    per_head = config.d_model * config.d_head * 2 + (2 * config.d_head if config.qkv_bias else 0)
    diff = count_params(mha).total - count_params(config).total
    assert diff == n_attn * (config.n_heads - config.n_kv_heads) * per_head


@settings(max_examples=200, deadline=None)
@given(configs())
def test_untied_minus_tied_is_vocab_times_d_model(config: ArchConfig) -> None:
    tied = dataclasses.replace(config, tie_embeddings=True)
    untied = dataclasses.replace(config, tie_embeddings=False)
    assert count_params(untied).total - count_params(tied).total == config.vocab_size * config.d_model
    assert count_params(untied).lm_head - count_params(tied).lm_head == config.vocab_size * config.d_model


@settings(max_examples=200, deadline=None)
@given(configs())
def test_active_params_follow_top_k(config: ArchConfig) -> None:
    counts = count_params(config)
    if not config.is_moe:
        assert counts.active == counts.total
        return
    routed = counts.breakdown.get("moe.experts", 0)
    assert config.n_experts is not None and config.n_experts_per_token is not None
    assert counts.total - counts.active == routed - routed * config.n_experts_per_token // config.n_experts
    if config.n_experts_per_token == config.n_experts:
        assert counts.active == counts.total


@settings(max_examples=100, deadline=None)
@given(configs())
def test_from_dict_round_trip(config: ArchConfig) -> None:
    assert ArchConfig.from_dict(config.to_dict()) == config
    assert ArchConfig.from_dict(config.to_dict(include_defaults=False)) == config
