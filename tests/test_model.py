"""The reference PyTorch model: its parameters equal the analytic count, its KV cache equals memory.kv_cache,
and incremental decoding equals a full forward pass."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from llmarch import count_params, load, preset_names  # noqa: E402
from llmarch.calc.flops import forward_flops, training_flops_per_token  # noqa: E402
from llmarch.calc.memory import kv_cache  # noqa: E402
from llmarch.core.config import ArchConfig  # noqa: E402
from llmarch.reference.model import alibi_slopes, build_model, param_breakdown, scaled_down  # noqa: E402

GIB = 2**30
MIB = 2**20

#: One preset per structural feature the model implements.
REPRESENTATIVE = [
    "llama-2-7b",  # RoPE, SwiGLU, RMSNorm, untied
    "mistral-7b",  # GQA + sliding window (rolling buffer)
    "falcon-7b",  # MQA, parallel block with one shared LayerNorm
    "falcon-40b",  # parallel block with two LayerNorms
    "phi-2",  # partial rotary, biases everywhere, head bias
    "mpt-7b",  # ALiBi, LayerNorm without bias
    "bloom-176b",  # ALiBi with embedding LayerNorm
    "gemma-2b",  # MQA, GeGLU, tied
    "opt-6.7b",  # learned positions with 2 offset rows
    "gpt-1",  # post-norm, no final norm
    "mixtral-8x7b",  # top-2 of 8 experts
    "deepseek-v2-lite",  # MLA (full-rank query) + shared experts + a dense first layer
    "deepseek-v3",  # MLA with a compressed query
    "t5-small",  # encoder-decoder, relative position bias
    "transformer-base",  # encoder-decoder, sinusoidal, post-norm
    "gemma-3-4b",  # sandwich norms, d_head q/k norms, 5:1 local/global with a local RoPE base
    "gpt-oss-20b",  # attention sinks, alternating 128-token windows, biased experts and router
    "llama-4-maverick",  # chunked attention, NoPE global layers, MoE every 2nd layer + shared expert
    "olmo-2-7b",  # norms on sub-layer outputs, full-width q/k norms
    "command-r",  # weight-only LayerNorm, parallel block, logit scale
    "granite-3.1-8b",  # embedding/residual/attention/logit multipliers
]


# -- parameters: the model on the meta device against count_params ------------------------------------
@pytest.mark.parametrize("name", preset_names())
def test_meta_model_params_equal_analytic(name: str) -> None:
    config = load(name)
    model = build_model(config, device="meta")
    counts = count_params(config)
    assert all(p.is_meta for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == counts.total
    assert param_breakdown(model) == dict(counts.breakdown)


def test_tied_head_is_counted_once() -> None:
    model = build_model(load("gpt-2"), device="meta")
    assert model.lm_head.weight is None
    assert [n for n, _ in model.named_parameters() if "lm_head" in n] == []
    untied = build_model(load("gpt-2:tie_embeddings=true,lm_head_bias=true"), device="meta")
    assert untied.lm_head.bias.shape == (50257,)


# -- the scaled-down copy -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", preset_names())
def test_scaled_down_keeps_the_structure(name: str) -> None:
    config = load(name)
    small = scaled_down(config)
    for key in ("architecture", "attention", "position", "norm", "norm_position", "mlp", "tie_embeddings",
                "parallel_block", "parallel_block_shared_norm", "qkv_bias", "attn_out_bias", "mlp_bias",
                "lm_head_bias", "norm_bias", "embedding_norm", "final_norm", "is_moe", "rope_fraction",
                "position_offset"):  # fmt: skip
        assert getattr(small, key) == getattr(config, key), key
    assert (small.n_heads * small.d_head == small.d_model) == (config.n_heads * config.d_head == config.d_model)
    assert (small.sliding_window is None) == (config.sliding_window is None)
    assert (small.mla_q_rank is None) == (config.mla_q_rank is None)
    assert bool(small.n_shared_experts) == bool(config.n_shared_experts)
    assert bool(small.n_dense_layers) == bool(config.n_dense_layers)
    if config.is_moe:
        assert small.n_experts_per_token < small.n_experts or config.n_experts_per_token == config.n_experts
    assert count_params(small).total < 1_000_000


def _tokens(config: ArchConfig, batch: int, length: int, seed: int) -> torch.Tensor:
    return torch.randint(0, config.vocab_size, (batch, length), generator=torch.Generator().manual_seed(seed))


def _decode_matches_forward(config: ArchConfig, *, length: int = 14, prefill: int = 6) -> None:
    """Prefill `prefill` tokens as one chunk, then decode one at a time; every row equals the full forward."""
    torch.manual_seed(0)
    model = build_model(config, dtype=torch.float64).eval()
    tokens = _tokens(config, 2, length, 1)
    source = _tokens(config, 2, 9, 2) if config.is_encoder_decoder else None
    with torch.no_grad():
        full = model(tokens, source)
        exact = model(tokens, source, exact_attention=True)
        cache = model.init_cache(batch=2, max_len=length,
                                 encoder_output=model.encode(source) if source is not None else None)  # fmt: skip
        steps = [model.decode_step(tokens[:, :prefill], cache)]
        steps += [model.decode_step(tokens[:, i : i + 1], cache) for i in range(prefill, length)]
    assert full.shape == (2, length, config.vocab_size) and torch.isfinite(full).all()
    torch.testing.assert_close(exact, full, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-10, atol=1e-10)
    kv = kv_cache(config, batch=2, seq_len=length, dtype="fp32", encoder_len=9 if source is not None else None)
    assert cache.nbytes == 2 * kv.total_bytes  # float64 elements are twice fp32's


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_greedy_decode_with_kv_cache_equals_full_forward(name: str) -> None:
    config = scaled_down(load(name))
    _decode_matches_forward(config)
    # Greedy generation: the argmax of the decoded logits drives the next step, as generate() would.
    torch.manual_seed(0)
    model = build_model(config, dtype=torch.float64).eval()
    prompt = _tokens(config, 1, 5, 3)
    source = _tokens(config, 1, 7, 4) if config.is_encoder_decoder else None
    with torch.no_grad():
        memory = model.encode(source) if source is not None else None
        cache = model.init_cache(max_len=12, encoder_output=memory)
        logits = model.decode_step(prompt, cache)
        sequence = prompt
        for _ in range(7):
            sequence = torch.cat((sequence, logits[:, -1:].argmax(-1)), dim=1)
            logits = model.decode_step(sequence[:, -1:], cache)
        full = model(sequence, source)
    torch.testing.assert_close(logits[:, -1], full[:, -1], rtol=1e-10, atol=1e-10)


def test_sliding_window_is_a_rolling_buffer_and_changes_the_output() -> None:
    config = scaled_down(load("mistral-7b"))
    window = config.sliding_window
    assert window is not None and window < 14  # the decode below runs well past the window
    torch.manual_seed(0)
    model = build_model(config, dtype=torch.float64).eval()
    torch.manual_seed(0)
    unwindowed = build_model(config.replace(sliding_window=None), dtype=torch.float64).eval()
    tokens = _tokens(config, 1, 14, 5)
    with torch.no_grad():
        cache = model.init_cache(max_len=14)
        assert all(layer.slots == window for layer in cache.layers)
        windowed_logits, full_logits = model(tokens), unwindowed(tokens)
    # Within the window the two agree; beyond it the window drops keys and the logits differ.
    torch.testing.assert_close(windowed_logits[:, :window], full_logits[:, :window])
    assert not torch.allclose(windowed_logits[:, window:], full_logits[:, window:])
    _decode_matches_forward(config, length=14, prefill=9)  # a prefill chunk longer than the window


def test_local_global_layers_get_their_own_buffers() -> None:
    config = scaled_down(load("gpt-3-small:sliding_window=256,global_every=2"))
    assert [config.layer_is_local(i) for i in range(config.n_layers)] == [True, False]
    model = build_model(config, dtype=torch.float64)
    assert [layer.slots for layer in model.init_cache(max_len=20).layers] == [config.sliding_window, 20]
    _decode_matches_forward(config)


def test_alibi_slopes_follow_the_paper() -> None:
    # Press et al. 2022: 8 heads -> 1/2, 1/4, ..., 1/256; 12 heads -> the 8-head slopes + odd ones of 16.
    assert alibi_slopes(8) == [2.0**-i for i in range(1, 9)]
    assert alibi_slopes(12) == pytest.approx(alibi_slopes(8) + [2.0 ** -(i / 2) for i in (1, 3, 5, 7)], rel=1e-12)


# -- hand-worked KV caches, counted by the model at full size on the meta device ----------------------------
def _meta_cache_bytes(spec: str, tokens: int) -> int:
    model = build_model(load(spec), device="meta", dtype=torch.bfloat16)
    return model.init_cache(max_len=tokens).nbytes


def test_llama_3_8b_kv_cache_is_one_gib_at_8192_tokens() -> None:
    # 32 layers x 8 KV heads x (128 + 128) x 2 bytes = 128 KiB per token; x 8192 tokens = 1 GiB.
    assert kv_cache(load("llama-3-8b"), seq_len=8192, dtype="bf16").total_bytes == 1 * GIB
    assert _meta_cache_bytes("llama-3-8b", 8192) == 1 * GIB
    # The MHA twin keeps all 32 heads: 4x.
    assert kv_cache(load("llama-3-8b:n_kv_heads=32"), seq_len=8192, dtype="bf16").total_bytes == 4 * GIB
    assert _meta_cache_bytes("llama-3-8b:n_kv_heads=32", 8192) == 4 * GIB


def test_mistral_kv_cache_is_capped_at_its_window() -> None:
    # 32 layers x 8 KV heads x 256 x 2 bytes = 128 KiB per token, at most 4096 positions: 512 MiB.
    mistral = load("mistral-7b")
    for tokens in (4096, 32768):
        assert kv_cache(mistral, seq_len=tokens, dtype="bf16").total_bytes == 512 * MIB
    assert _meta_cache_bytes("mistral-7b", 32768) == 512 * MIB
    assert kv_cache(load("mistral-7b:sliding_window=null"), seq_len=32768, dtype="bf16").total_bytes == 4 * GIB


def test_falcon_7b_mqa_cache() -> None:
    # One KV head of 64: 32 layers x (64 + 64) x 2 bytes = 8 KiB per token; 2048 tokens = 16 MiB.
    assert kv_cache(load("falcon-7b"), seq_len=2048, dtype="bf16").total_bytes == 16 * MIB
    assert _meta_cache_bytes("falcon-7b", 2048) == 16 * MIB


def test_mla_caches_only_the_latent_and_the_rotary_key() -> None:
    # DeepSeek-V2-Lite: 27 layers x (512 + 64) x 2 bytes = 31104 bytes per token.
    assert kv_cache(load("deepseek-v2-lite"), seq_len=1000, dtype="bf16").total_bytes == 1000 * 31104
    assert _meta_cache_bytes("deepseek-v2-lite", 1000) == 1000 * 31104


# -- FLOPs: the short-context limit and the model's own count ----------------------------------------------
@pytest.mark.parametrize("name", [n for n in preset_names() if not load(n).is_encoder_decoder])
def test_short_context_forward_is_2n_and_training_6n(name: str) -> None:
    """At S = 1: 2 FLOPs per non-embedding weight a token uses, plus the head (Kaplan et al. 2020)."""
    config = load(name)
    counts = count_params(config)
    head = config.vocab_size * config.d_model  # a matmul whether tied or not
    n_matmul = counts.active - counts.embedding - counts.lm_head + head
    fwd = forward_flops(config, 1)
    assert fwd.total == pytest.approx(2 * n_matmul, rel=0.01)  # norms, biases, one attended key: < 1%
    assert training_flops_per_token(config, 1) == pytest.approx(6 * n_matmul, rel=0.01)


@pytest.mark.parametrize("name", ["llama-2-7b", "mixtral-8x7b", "deepseek-v3", "t5-small"])
def test_one_token_forward_flops_measured_by_torch(name: str) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    config = scaled_down(load(name))
    model = build_model(config).eval()
    args = (_tokens(config, 1, 1, 0),) + ((_tokens(config, 1, 1, 1),) if config.is_encoder_decoder else ())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*args)
    tokens = 2 if config.is_encoder_decoder else 1
    assert counter.get_total_flops() == forward_flops(config, 1).total * tokens


# -- random valid configurations ----------------------------------------------------------------------------
@st.composite
def small_configs(draw: st.DrawFn) -> ArchConfig:
    n_kv = draw(st.sampled_from([1, 2]))
    n_heads = n_kv * draw(st.integers(1, 3))
    mla = draw(st.booleans()) and draw(st.booleans())
    encdec = not mla and draw(st.booleans())
    position = "rope" if mla else draw(st.sampled_from(["learned", "sinusoidal", "rope", "alibi", "relative", "none"]))
    data: dict[str, object] = dict(
        name="random", source="hypothesis", architecture="encoder-decoder" if encdec else "decoder",
        n_layers=draw(st.integers(1, 3)), d_model=draw(st.sampled_from([16, 24, 32])), n_heads=n_heads,
        n_kv_heads=n_heads if mla else n_kv, d_head=draw(st.sampled_from([8, 12, 16])), d_ff=draw(st.integers(4, 48)),
        vocab_size=draw(st.integers(8, 64)), max_seq_len=32, position=position,
        norm=draw(st.sampled_from(["layernorm", "rmsnorm"])), norm_position=draw(st.sampled_from(["pre", "post"])),
        final_norm=draw(st.booleans()), mlp=draw(st.sampled_from(["gelu", "relu", "silu", "swiglu", "geglu"])),
        tie_embeddings=draw(st.booleans()), qkv_bias=draw(st.booleans()), attn_out_bias=draw(st.booleans()),
        mlp_bias=draw(st.booleans()), lm_head_bias=draw(st.booleans()), norm_bias=draw(st.booleans()),
        embedding_norm=draw(st.booleans()),
    )  # fmt: skip
    if encdec:
        data["n_encoder_layers"] = draw(st.integers(1, 2))
    else:
        data["parallel_block"] = draw(st.booleans())
        data["parallel_block_shared_norm"] = bool(data["parallel_block"]) and draw(st.booleans())
        if draw(st.booleans()):
            data["n_experts"] = draw(st.integers(1, 4))
            data["n_experts_per_token"] = draw(st.integers(1, data["n_experts"]))  # type: ignore[arg-type]
            data["n_shared_experts"] = draw(st.integers(0, 2))
            data["d_ff_expert"] = draw(st.integers(4, 32))
            data["n_dense_layers"] = draw(st.integers(0, data["n_layers"] - 1))  # type: ignore[operator]
            data["router_bias"] = draw(st.booleans())
    if draw(st.booleans()):
        data["sliding_window"] = draw(st.integers(1, 6))
        data["global_every"] = draw(st.sampled_from([None, 2]))
    if mla:
        data.update(mla_kv_rank=draw(st.sampled_from([8, 16])), mla_rope_dim=4, d_head_v=draw(st.sampled_from([8, 12])),
                    mla_q_rank=draw(st.sampled_from([None, 12])))  # fmt: skip
    elif position == "rope" and draw(st.booleans()):
        data["rope_fraction"] = 0.5
    if position == "relative":
        data["relative_attention_buckets"] = draw(st.sampled_from([4, 8]))
        data["relative_attention_max_distance"] = 16
    if position == "learned":
        data["position_offset"] = draw(st.integers(0, 2))
    return ArchConfig.from_dict(data)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_configs())
def test_random_configs_count_and_decode(config: ArchConfig) -> None:
    model = build_model(config, device="meta")
    assert param_breakdown(model) == dict(count_params(config).breakdown)
    _decode_matches_forward(config, length=10, prefill=3)
