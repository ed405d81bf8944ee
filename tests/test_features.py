"""The 2024-2026 architecture features: hand-worked counts, KV cache and FLOPs, validation, and random
configurations checked against the reference model (parameters by name, FLOPs measured, decode = forward)."""

from __future__ import annotations

import math
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from llmarch.calc.flops import attention_flops_per_token, forward_flops, mean_attended_keys, mean_chunk_keys  # noqa: E402
from llmarch.calc.memory import kv_cache  # noqa: E402
from llmarch.calc.params import count_params, qk_norm_params  # noqa: E402
from llmarch.core.config import ArchConfig  # noqa: E402
from llmarch.core.errors import InvalidConfigError  # noqa: E402
from llmarch.reference.model import build_model, param_breakdown  # noqa: E402
from llmarch.reference.verify import verify  # noqa: E402

# d 64, 4 heads of 16 with 2 KV heads, 2 layers, SwiGLU 128, vocabulary 100, untied: the plain count is
# embedding 6400 + head 6400 + final norm 64
# + per layer [q 4096 + k 2048 + v 2048 + o 4096 + MLP 3 x 8192 + 2 norms 128]
BASE: dict[str, Any] = dict(
    name="tiny", source="tests/test_features.py", architecture="decoder", n_layers=2, d_model=64, n_heads=4,
    n_kv_heads=2, d_head=16, d_ff=128, vocab_size=100, max_seq_len=64, position="rope", norm="rmsnorm",
    norm_position="pre", final_norm=True, mlp="swiglu", tie_embeddings=False,
)  # fmt: skip
PLAIN = 6400 + 6400 + 64 + 2 * (4096 + 2048 + 2048 + 4096 + 3 * 8192 + 128)


def tiny(**changes: Any) -> ArchConfig:
    return ArchConfig.from_dict({**BASE, **changes})


def test_plain_base_count() -> None:
    assert count_params(tiny()).total == PLAIN == 86848


@pytest.mark.parametrize(
    ("changes", "per_layer"),
    [
        ({"qk_norm": "head"}, 2 * 16),  # Qwen3 / Gemma 3: one d_head scale for queries, one for keys
        ({"qk_norm": "full"}, 4 * 16 + 2 * 16),  # OLMo 2: over H d_h and H_kv d_h
        ({"qk_norm": "per-head"}, 4 * 16 + 2 * 16),  # Cohere: a d_head scale per head
        ({"qk_norm": "per-head", "norm": "layernorm", "norm_bias": True}, 4 * 16 + 2 * 16),  # StableLM 2: no shift
        ({"qk_norm": "l2"}, 0),  # Llama 4: weightless
    ],
)
def test_qk_norm_counts(changes: dict[str, Any], per_layer: int) -> None:
    config = tiny(**changes)
    assert qk_norm_params(config) == per_layer
    extra = 0 if "norm_bias" not in changes else 2 * (2 * 64) + 64  # LayerNorm shifts of the block and final norms
    assert count_params(config).total == PLAIN + 2 * per_layer + extra
    assert count_params(config).breakdown.get("norm.qk", 0) == 2 * per_layer


def test_block_norm_layouts() -> None:
    assert count_params(tiny(norm_position="sandwich")).total == PLAIN + 2 * 2 * 64  # 4 norms a layer, not 2
    assert count_params(tiny(norm_position="branch-post")).total == PLAIN  # OLMo 2: 2 norms, moved
    # OLMo 1: LayerNorm without scale or shift: the 2 x 2 block norms and the final norm hold nothing.
    assert count_params(tiny(norm="layernorm", norm_position="pre")).total == PLAIN
    assert count_params(tiny(norm="nonparametric")).total == PLAIN - 5 * 64
    # Cohere: weight-only LayerNorm, one shared norm in a parallel block.
    cohere = tiny(norm="layernorm", parallel_block=True, parallel_block_shared_norm=True)
    assert count_params(cohere).total == PLAIN - 2 * 64


def test_attention_sinks_add_one_logit_per_head() -> None:
    counts = count_params(tiny(attention_sinks=True))
    assert counts.total == PLAIN + 2 * 4 and counts.breakdown["attention.sinks"] == 8


def test_moe_variants_by_hand() -> None:
    expert = 3 * 64 * 32  # SwiGLU expert of width 32
    # Qwen3-MoE: routed only; every layer MoE: router 4 x 64 + 4 experts.
    qwen3 = tiny(n_experts=4, n_experts_per_token=2, d_ff_expert=32)
    moe_layer = 4 * 64 + 4 * expert
    dense_part = PLAIN - 2 * 3 * 8192
    assert count_params(qwen3).total == dense_part + 2 * moe_layer
    assert count_params(qwen3).active == dense_part + 2 * (4 * 64 + 2 * expert)
    # Qwen2-MoE: + one shared expert of width 96 and its d -> 1 sigmoid gate.
    qwen2 = tiny(n_experts=4, n_experts_per_token=2, d_ff_expert=32, n_shared_experts=1, d_ff_shared=96,
                 shared_expert_gate=True)  # fmt: skip
    assert count_params(qwen2).total == dense_part + 2 * (moe_layer + 3 * 64 * 96 + 64)
    # gpt-oss: expert biases (2 x 32 + 64 each) and router biases (4).
    oss = tiny(n_experts=4, n_experts_per_token=2, d_ff_expert=32, mlp_bias=True, router_bias=True)
    assert count_params(oss).total == dense_part + 2 * (moe_layer + 4 * (2 * 32 + 64) + 4)
    # Llama 4 Maverick style: MoE on every 2nd layer (layer 1 of 0..1); layer 0 keeps its dense MLP.
    mixed = tiny(n_experts=4, n_experts_per_token=1, d_ff_expert=32, n_shared_experts=1, moe_every=2)
    assert [mixed.layer_is_moe(i) for i in range(2)] == [False, True] and mixed.n_moe_layers == 1
    assert count_params(mixed).total == dense_part + 3 * 8192 + (moe_layer + expert)
    assert count_params(mixed).active == count_params(mixed).total - 3 * expert


def test_metadata_changes_no_count() -> None:
    meta = tiny(attn_logit_softcap=50.0, final_logit_softcap=30.0, rope_scaling="yarn", rope_scaling_factor=4.0,
                rope_original_max_seq_len=16, embedding_multiplier=12.0, residual_multiplier=0.22,
                attention_multiplier=0.0078125, logit_scale=0.125, weight_dtypes={"moe": "mxfp4"})  # fmt: skip
    assert count_params(meta).total == PLAIN
    assert meta.rope_scaled_context == 64
    assert meta.weight_dtypes == {"moe": "mxfp4"}


def test_chunked_attention_keys_by_hand() -> None:
    # S = 10, C = 4: chunks of 4, 4, 2 keys; causal queries see 1..4, 1..4, 1..2 -> (10 + 10 + 3) / 10.
    assert mean_chunk_keys(10, 4) == pytest.approx(2.3)
    assert mean_chunk_keys(10, 4, causal=False) == pytest.approx((16 + 16 + 4) / 10)
    assert mean_chunk_keys(3, 8) == mean_attended_keys(3)  # one partial chunk: plain causal
    # Llama 4 layout: 3 chunked layers then one global NoPE layer.
    config = tiny(n_layers=4, attention_chunk=4, global_every=4, nope_global_layers=True)
    assert [config.layer_is_local(i) for i in range(4)] == [True, True, True, False]
    assert [config.layer_uses_rope(i) for i in range(4)] == [True, True, True, False]
    per_key = 2 * 4 * (16 + 16)
    assert attention_flops_per_token(config, 10) == pytest.approx(per_key * (3 * 2.3 + 5.5))


def test_kv_cache_of_local_patterns_by_hand() -> None:
    per_position = 2 * 2 * 16 * 2  # keys and values, 2 KV heads of 16, bf16
    # Gemma 3: five sliding-window layers to one global; 100 cached tokens, window 8.
    gemma3 = tiny(n_layers=12, sliding_window=8, global_every=6)
    assert kv_cache(gemma3, seq_len=100).total_bytes == (10 * 8 + 2 * 100) * per_position
    # gpt-oss: alternating 4-token windows; sinks cache nothing.
    oss = tiny(n_layers=4, sliding_window=4, global_every=2, attention_sinks=True)
    assert kv_cache(oss, seq_len=100).total_bytes == (2 * 4 + 2 * 100) * per_position
    # Llama 4: chunked layers keep at most one chunk.
    llama4 = tiny(n_layers=4, attention_chunk=16, global_every=4)
    assert kv_cache(llama4, seq_len=100).total_bytes == (3 * 16 + 100) * per_position


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"attention_chunk": 4, "sliding_window": 4}, "attention_chunk"),
        ({"global_every": 2}, "global_every"),
        ({"nope_global_layers": True}, "nope_global_layers"),
        ({"norm_position": "sandwich", "parallel_block": True}, "norm_position"),
        ({"qk_norm": "rms"}, "qk_norm"),
        ({"moe_every": 2}, "moe_every"),
        ({"n_experts": 4, "n_experts_per_token": 1, "moe_every": 3}, "moe_every"),  # 2 layers: none is MoE
        ({"n_experts": 4, "n_experts_per_token": 1, "shared_expert_gate": True}, "shared_expert_gate"),
        ({"n_experts": 4, "n_experts_per_token": 1, "d_ff_shared": 8}, "d_ff_shared"),
        ({"norm": "nonparametric", "norm_bias": True}, "norm_bias"),
        ({"attn_logit_softcap": 0.0}, "attn_logit_softcap"),
        ({"rope_local_theta": 1e4}, "rope_local_theta"),
        ({"weight_dtypes": {"mlp_experts": "mxfp4"}}, "weight_dtypes"),
        ({"weight_dtypes": {"moe.expert": "mxfp4"}}, "weight_dtypes"),
        ({"weight_dtypes": {"moe.experts": "fp6"}}, "weight_dtypes"),
        ({"weight_dtypes": ["mxfp4"]}, "weight_dtypes"),
    ],
)
def test_invalid_feature_values_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidConfigError) as excinfo:
        tiny(**changes)
    assert excinfo.value.field == field


def test_weight_dtypes_are_read_only_and_hashable() -> None:
    config = tiny(n_experts=4, n_experts_per_token=2, weight_dtypes={"moe.experts": "MXFP4", "embedding": "bfloat16"})
    assert config.weight_dtypes == {"moe.experts": "mxfp4", "embedding": "bf16"}
    assert hash(config) == hash(tiny(n_experts=4, n_experts_per_token=2,
                                     weight_dtypes={"embedding": "bf16", "moe.experts": "mxfp4"}))  # fmt: skip
    with pytest.raises(TypeError):
        config.weight_dtypes["lm_head"] = "fp8"  # type: ignore[index]
    assert type(config.to_dict()["weight_dtypes"]) is dict


# -- random configurations with the new features against the reference model ------------------------------------
@st.composite
def feature_configs(draw: st.DrawFn) -> ArchConfig:
    n_kv = draw(st.sampled_from([1, 2]))
    norm = draw(st.sampled_from(["layernorm", "rmsnorm", "nonparametric"]))
    data: dict[str, Any] = dict(
        BASE, n_layers=draw(st.integers(2, 6)), d_model=draw(st.sampled_from([16, 32])), n_kv_heads=n_kv,
        n_heads=n_kv * draw(st.integers(1, 3)), d_head=draw(st.sampled_from([8, 12])), d_ff=draw(st.integers(4, 40)),
        vocab_size=draw(st.integers(8, 48)), norm=norm, norm_bias=norm == "layernorm" and draw(st.booleans()),
        qk_norm=draw(st.sampled_from([None, "head", "per-head", "full", "l2"])), attention_sinks=draw(st.booleans()),
        qkv_bias=draw(st.booleans()), attn_out_bias=draw(st.booleans()), mlp_bias=draw(st.booleans()),
        mlp=draw(st.sampled_from(["swiglu", "geglu", "gelu"])), tie_embeddings=draw(st.booleans()),
        attn_logit_softcap=draw(st.sampled_from([None, 5.0])), final_logit_softcap=draw(st.sampled_from([None, 3.0])),
        embedding_multiplier=draw(st.sampled_from([None, 2.0])), logit_scale=draw(st.sampled_from([None, 0.25])),
        attention_multiplier=draw(st.sampled_from([None, 0.1])),
    )  # fmt: skip
    if draw(st.booleans()):
        data["parallel_block"] = True
        data["parallel_block_shared_norm"] = draw(st.booleans())
    else:
        data["norm_position"] = draw(st.sampled_from(["pre", "sandwich", "branch-post"]))
        data["residual_multiplier"] = draw(st.sampled_from([None, 0.5]))
    local = draw(st.sampled_from([None, "sliding_window", "attention_chunk"]))
    if local is not None:
        data[local] = draw(st.integers(1, 5))
        data["global_every"] = draw(st.sampled_from([None, 2, 3]))
        if data["global_every"] is not None:
            data["nope_global_layers"] = draw(st.booleans())
            data["rope_local_theta"] = draw(st.sampled_from([None, 100.0]))
    if draw(st.booleans()):
        n_experts = draw(st.integers(1, 4))
        shared = draw(st.integers(0, 1))
        data.update(n_experts=n_experts, n_experts_per_token=draw(st.integers(1, n_experts)), n_shared_experts=shared,
                    d_ff_expert=draw(st.integers(4, 24)), router_bias=draw(st.booleans()),
                    moe_every=draw(st.sampled_from([1, 2])), n_dense_layers=draw(st.integers(0, 1)))  # fmt: skip
        if shared:
            data.update(d_ff_shared=draw(st.sampled_from([None, 20])), shared_expert_gate=draw(st.booleans()))
    return ArchConfig.from_dict(data)


def _decode_equals_forward(config: ArchConfig, length: int = 9, prefill: int = 4) -> None:
    torch.manual_seed(0)
    model = build_model(config, dtype=torch.float64).eval()
    tokens = torch.randint(0, config.vocab_size, (2, length), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(tokens)
        exact = model(tokens, exact_attention=True)
        cache = model.init_cache(batch=2, max_len=length)
        steps = [model.decode_step(tokens[:, :prefill], cache)]
        steps += [model.decode_step(tokens[:, i : i + 1], cache) for i in range(prefill, length)]
        with FlopCounterMode(display=False) as counter:
            model(tokens[:1], exact_attention=True)
    torch.testing.assert_close(exact, full, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-10, atol=1e-10)
    assert cache.nbytes == 2 * kv_cache(config, batch=2, seq_len=length, dtype="fp32").total_bytes
    assert counter.get_total_flops() == pytest.approx(forward_flops(config, length).total * length, rel=1e-9)


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(feature_configs())
def test_random_feature_configs_count_flops_and_decode(config: ArchConfig) -> None:
    assert param_breakdown(build_model(config, device="meta")) == dict(count_params(config).breakdown)
    _decode_equals_forward(config)


@pytest.mark.slow
@pytest.mark.parametrize(
    "changes",
    [
        dict(
            n_layers=6,
            norm_position="sandwich",
            qk_norm="head",
            sliding_window=4,
            global_every=6,
            mlp="geglu",
            rope_local_theta=1e4,
            attn_logit_softcap=50.0,
            final_logit_softcap=30.0,
            tie_embeddings=True,
        ),
        dict(
            n_layers=4,
            attention_sinks=True,
            qkv_bias=True,
            attn_out_bias=True,
            sliding_window=4,
            global_every=2,
            n_experts=4,
            n_experts_per_token=2,
            mlp_bias=True,
            router_bias=True,
        ),
        dict(
            n_layers=4,
            attention_chunk=4,
            global_every=4,
            nope_global_layers=True,
            qk_norm="l2",
            n_experts=4,
            n_experts_per_token=1,
            n_shared_experts=1,
            moe_every=2,
            d_ff_expert=64,
        ),
        dict(
            qkv_bias=True,
            n_experts=4,
            n_experts_per_token=2,
            n_shared_experts=1,
            d_ff_shared=96,
            d_ff_expert=32,
            shared_expert_gate=True,
        ),
        dict(norm_position="branch-post", qk_norm="full"),
        dict(
            norm="layernorm",
            parallel_block=True,
            parallel_block_shared_norm=True,
            qk_norm="per-head",
            logit_scale=0.0625,
        ),
    ],
    ids=["gemma3", "gpt-oss", "llama4", "qwen2-moe", "olmo2", "cohere"],
)
def test_verify_agrees_on_each_new_layout(changes: dict[str, Any]) -> None:
    result = verify(tiny(**changes))
    assert result.ok, result.problems()


_GROUP_KEYS = [
    "embedding",
    "attention",
    "mlp",
    "moe",
    "norm",
    "lm_head",
    "moe.experts",
    "moe.router",
    "embedding.token",
]


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(_GROUP_KEYS), st.sampled_from(["fp32", "bf16", "fp16", "fp8", "int8", "int4", "mxfp4"])
    ),
    st.sampled_from(["weights", "mlp_experts", "", "Moe.experts", "moe.expert", "attention.z"]),
)
def test_weight_dtypes_accept_groups_and_refuse_other_keys(mapping: dict[str, str], bad_key: str) -> None:
    config = tiny(weight_dtypes=mapping)
    assert dict(config.weight_dtypes or {}) == mapping and count_params(config).total == PLAIN
    assert hash(config) == hash(tiny(weight_dtypes=dict(reversed(list(mapping.items())))))
    with pytest.raises(InvalidConfigError) as excinfo:
        tiny(weight_dtypes={**mapping, bad_key: "bf16"})
    assert excinfo.value.field == "weight_dtypes"


@pytest.mark.parametrize(
    ("base", "change"),
    [
        ({"n_layers": 4, "attention_chunk": 3, "global_every": 4}, {"nope_global_layers": True}),
        ({"n_layers": 4, "sliding_window": 3, "global_every": 2}, {"rope_local_theta": 100.0}),
        ({"attention_chunk": 3}, {"attention_chunk": None, "sliding_window": 3}),
        ({}, {"attention_multiplier": 0.05}),
        ({}, {"attn_logit_softcap": 0.5}),
        ({}, {"residual_multiplier": 0.5}),
    ],
    ids=["nope", "local-theta", "chunk-vs-window", "score-scale", "softcap", "residual-scale"],
)
def test_each_reference_feature_changes_the_computation(base: dict[str, Any], change: dict[str, Any]) -> None:
    """Same weights, one feature toggled: the logits differ past the first positions, so the reference model
    really applies it (a count-free field that the model ignored would pass every count test)."""
    tokens = torch.randint(0, 100, (1, 10), generator=torch.Generator().manual_seed(2))
    logits = []
    for changes in (base, {**base, **change}):
        torch.manual_seed(0)
        model = build_model(tiny(d_model=32, d_head=8, d_ff=48, **changes), dtype=torch.float64).eval()
        with torch.no_grad():
            logits.append(model(tokens))
    assert not torch.allclose(logits[0][:, 4:], logits[1][:, 4:])


def test_sinks_take_probability_mass() -> None:
    # One query, two equal keys: without a sink each gets 1/2; a sink logit of log(2) takes 1/2 of the mass.
    q = torch.ones(1, 1, 1, 4, dtype=torch.float64)
    k = torch.zeros(1, 2, 1, 4, dtype=torch.float64)
    v = torch.tensor([[[[1.0]], [[3.0]]]], dtype=torch.float64)  # (batch, keys, heads, d_v)
    from llmarch.reference.model import attend

    plain = attend(q, k, v, q_start=1, k_start=0, causal=True, window=None, bias_fn=None)
    sink = attend(q, k, v, q_start=1, k_start=0, causal=True, window=None, bias_fn=None,
                  sinks=torch.tensor([math.log(2.0)], dtype=torch.float64))  # fmt: skip
    assert plain.item() == pytest.approx(2.0) and sink.item() == pytest.approx(1.0)
