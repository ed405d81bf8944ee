"""Attention variants and implementations: every one against float64 eager, and against the reference model."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from llmarch.bench import kernels as A  # noqa: E402
from llmarch.core.errors import InvalidValueError  # noqa: E402

# Small shapes: 4 query heads on 2 KV heads, 40 tokens, a window of 12 and chunks of 16 (so the rolling
# buffer wraps and the last chunk is short).
SHAPE = {"n_heads": 4, "n_kv_heads": 2, "d_head": 16, "window": 12}
SEQ_LEN, BATCH, CHUNK = 40, 2, 16
CPU_IMPLS = [name for name in A.IMPLEMENTATIONS if name not in ("sdpa_efficient", "sdpa_cudnn")]


def _inputs(variant: A.Variant, phase: str, seq_len: int = SEQ_LEN, dtype: torch.dtype = torch.float32):
    generator = torch.Generator().manual_seed(0)
    return A.make_inputs(variant, phase, batch=BATCH, seq_len=seq_len, dtype=dtype, device="cpu", generator=generator)


@pytest.mark.parametrize("phase", A.PHASES)
@pytest.mark.parametrize("impl", CPU_IMPLS)
@pytest.mark.parametrize("name", A.VARIANT_NAMES)
def test_every_variant_and_implementation_matches_float64_eager(name: str, impl: str, phase: str) -> None:
    variant = A.make_variant(name, **SHAPE)
    inputs = _inputs(variant, phase)
    try:
        run = A.build_phase(impl, variant, phase, inputs, chunk_size=CHUNK, compiled=False)
    except A.UnsupportedCase as exc:
        assert impl == "flex" and phase == "chunked_prefill", exc
        return
    out = run()
    assert out.shape == inputs.q.shape
    error = A.reference_error(out, inputs, variant, phase)
    assert error.rel_error < 1e-5 and error.max_abs_error < 1e-5
    # A second call (the timed ones) gives the same result: the chunked cache is rebuilt each time.
    torch.testing.assert_close(run(), out)


@pytest.mark.parametrize("impl", ["eager", "eager_grouped", "sdpa", "sdpa_grouped", "sdpa_math", "flex"])
@pytest.mark.parametrize("name", ["mha", "gqa", "alibi"])
def test_full_attention_prefill(name: str, impl: str) -> None:
    variant = A.make_variant(name, **SHAPE, causal=False)
    inputs = _inputs(variant, "prefill")
    out = A.build_phase(impl, variant, "prefill", inputs, compiled=False)()
    assert A.reference_error(out, inputs, variant, "prefill").rel_error < 1e-5
    # Not causal: the first query sees the last key, so the causal output differs.
    causal = A.build_phase("eager", A.make_variant(name, **SHAPE), "prefill", inputs)()
    assert not torch.allclose(out[:, :, 0], causal[:, :, 0])


@pytest.mark.parametrize("chunk_size", [5, 12, 13, 40, 64])
@pytest.mark.parametrize("impl", ["eager", "sdpa", "sdpa_grouped"])
def test_chunked_prefill_into_a_rolling_buffer_equals_a_windowed_prefill(impl: str, chunk_size: int) -> None:
    variant = A.make_variant("sliding_window", **SHAPE)
    inputs = _inputs(variant, "chunked_prefill")
    chunked = A.build_phase(impl, variant, "chunked_prefill", inputs, chunk_size=chunk_size)()
    whole = A.build_phase("eager", variant, "prefill", inputs)()
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)


def test_decode_sees_the_whole_cache_not_a_top_left_causal_mask() -> None:
    """`is_causal=True` with one query would show it only the first key: decode must pass no mask."""
    variant = A.make_variant("gqa", **SHAPE)
    inputs = _inputs(variant, "decode")
    assert (inputs.q.shape[2], inputs.k.shape[2], inputs.q_start, inputs.k_start) == (1, SEQ_LEN, SEQ_LEN - 1, 0)
    geometry = A.Geometry(inputs.q_start, 1, inputs.k_start, SEQ_LEN, causal=True)
    assert geometry.all_visible and geometry.mask(torch.device("cpu")) is None
    out = A.build_phase("sdpa", variant, "decode", inputs)()
    top_left = torch.nn.functional.scaled_dot_product_attention(
        inputs.q, inputs.k, inputs.v, is_causal=True, enable_gqa=True
    )
    torch.testing.assert_close(top_left, inputs.v.repeat_interleave(2, dim=1)[:, :, :1])  # only the first key
    assert not torch.allclose(out, top_left)
    # Under a window the cache is the last W keys, the token itself included.
    windowed = A.make_variant("sliding_window", **SHAPE)
    assert A.phase_lengths(windowed, "decode", SEQ_LEN) == (SEQ_LEN - 1, 1, SEQ_LEN - 12, 12)
    assert A.phase_lengths(windowed, "decode", 8) == (7, 1, 0, 8)


def test_geometry_masks() -> None:
    cpu = torch.device("cpu")
    square = A.Geometry(0, 4, 0, 4)
    assert square.top_left_causal and not square.all_visible
    assert square.mask(cpu).tolist() == [[j <= i for j in range(4)] for i in range(4)]
    appended = A.Geometry(6, 2, 0, 8)  # two queries after a cache of six
    assert appended.lower_right_causal and not appended.top_left_causal
    assert appended.mask(cpu).tolist() == [[j <= 6 for j in range(8)], [True] * 8]
    windowed = A.Geometry(0, 5, 0, 5, window=2)
    assert not windowed.top_left_causal and windowed.window_binds
    assert windowed.mask(cpu)[4].tolist() == [False, False, False, True, True]
    assert A.Geometry(0, 5, 0, 5, causal=False).all_visible


def test_alibi_slopes_and_bias_follow_press_et_al() -> None:
    variant = A.make_variant("alibi", n_heads=8, n_kv_heads=8, d_head=4, window=None)
    slopes = A._slopes(variant, torch.device("cpu"))
    assert slopes.tolist() == [2.0 ** -(i + 1) for i in range(8)]  # 2^(-8 i / n), n = 8
    bias = A._alibi_bias(slopes, A.Geometry(0, 3, 0, 3).relative(torch.device("cpu")), torch.float64)
    assert bias[0].tolist() == [[0.0, -0.5, -1.0], [-0.5, 0.0, -0.5], [-1.0, -0.5, 0.0]]


def test_variants_resolve_against_a_shape() -> None:
    shape = {"n_heads": 32, "n_kv_heads": 8, "d_head": 128, "window": 4096}
    assert A.make_variant("mha", **shape).n_kv_heads == 32
    assert A.make_variant("mqa", **shape).n_kv_heads == 1
    assert A.make_variant("gqa", **shape).n_kv_heads == 8  # the shape's own grouping
    assert A.make_variant("gqa:4", **shape).n_kv_heads == 4
    window = A.make_variant("sliding_window", **shape, causal=False)
    assert (window.window, window.causal, window.n_kv_heads) == (4096, True, 8)  # a window stays causal
    assert A.make_variant("alibi", **shape).alibi
    # An MHA shape: gqa picks groups of 8 where possible, else the largest divisor below n_heads.
    assert A.make_variant("gqa", n_heads=32, n_kv_heads=32, d_head=64, window=None).n_kv_heads == 4
    assert A.make_variant("gqa", n_heads=12, n_kv_heads=12, d_head=64, window=None).n_kv_heads == 6
    lonely = A.make_variant("gqa", n_heads=2, n_kv_heads=2, d_head=64, window=None)
    assert lonely.unavailable and "between MQA and MHA" in lonely.unavailable
    with pytest.raises(A.UnsupportedCase, match="between MQA and MHA"):
        A.build_phase("eager", lonely, "prefill", _inputs(A.make_variant("mha", **SHAPE), "prefill"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [("gqa:3", "must divide"), ("gqa:x", "integer"), ("mha:2", "only gqa"), ("slidng_window", "did you mean")],
)
def test_bad_variant_specs(spec: str, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        A.make_variant(spec, n_heads=8, n_kv_heads=2, d_head=16, window=4)


def test_unknown_implementation_suggests() -> None:
    with pytest.raises(InvalidValueError, match="did you mean 'sdpa_flash'"):
        A.implementation("sdpa_flsh")


def test_unavailable_backend_raises_with_torchs_reason() -> None:
    if torch.cuda.is_available():
        pytest.skip("the CPU has no memory-efficient SDPA backend; a CUDA device may")
    variant = A.make_variant("mha", **SHAPE)
    inputs = _inputs(variant, "prefill")
    with pytest.raises(RuntimeError, match=r"No viable backend|No available kernel"):
        A.build_phase("sdpa_efficient", variant, "prefill", inputs)()


def test_reference_error_catches_a_wrong_output() -> None:
    variant = A.make_variant("gqa", **SHAPE)
    inputs = _inputs(variant, "prefill")
    out = A.build_phase("eager", variant, "prefill", inputs)()
    assert A.reference_error(out, inputs, variant, "prefill").rel_error < 1e-6
    out[-1, -1, -1] += 1.0  # the last row of the last head of the last sequence
    assert A.reference_error(out, inputs, variant, "prefill").max_abs_error == pytest.approx(1.0, abs=1e-5)
    shifted = A.build_phase("eager", A.make_variant("sliding_window", **SHAPE), "prefill", inputs)()
    assert A.reference_error(shifted, inputs, variant, "prefill").rel_error > 0.05  # a window where none is


# -- against the reference model's attention --------------------------------------------------------------------
def _model():
    model = pytest.importorskip("llmarch.reference.model")
    if not hasattr(model, "attend"):
        pytest.skip("llmarch.reference.model has no attend()")
    return model


@pytest.mark.parametrize("name", ["mha", "gqa", "mqa", "sliding_window"])
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_matches_the_reference_models_attention(name: str, phase: str) -> None:
    model = _model()
    variant = A.make_variant(name, **SHAPE)
    inputs = _inputs(variant, phase)
    for impl in ("eager", "eager_grouped", "sdpa", "sdpa_grouped"):
        ours = A.build_phase(impl, variant, phase, inputs)()
        # model.attend takes and returns (batch, positions, heads, d_head)
        theirs = model.attend(
            inputs.q.transpose(1, 2), inputs.k.transpose(1, 2), inputs.v.transpose(1, 2),
            q_start=inputs.q_start, k_start=inputs.k_start, causal=True, window=variant.window, bias_fn=None,
        ).transpose(1, 2)  # fmt: skip
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_alibi_matches_the_reference_models_bias(phase: str) -> None:
    model = _model()
    from llmarch import load

    config = load("mpt-7b").replace(n_layers=1, d_model=64, n_heads=4, n_kv_heads=4, d_head=16, d_ff=128)
    bias_fn = model.Stack(config, 1, decoder=True, cross=False).bias_fn()
    variant = A.make_variant("alibi", n_heads=4, n_kv_heads=4, d_head=16, window=None)
    inputs = _inputs(variant, phase)
    ours = A.build_phase("sdpa", variant, phase, inputs)()
    theirs = model.attend(
        inputs.q.transpose(1, 2), inputs.k.transpose(1, 2), inputs.v.transpose(1, 2),
        q_start=inputs.q_start, k_start=inputs.k_start, causal=True, window=None, bias_fn=bias_fn,
    ).transpose(1, 2)  # fmt: skip
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


# -- compiled FlexAttention and CUDA ------------------------------------------------------------------------------
@pytest.mark.slow
def test_compiled_flex_on_a_sliding_window() -> None:
    if A.flex_unavailable_reason():
        pytest.skip(A.flex_unavailable_reason())
    variant = A.make_variant("sliding_window", **SHAPE)
    inputs = _inputs(variant, "prefill", seq_len=64)
    try:
        out = A.build_phase("flex", variant, "prefill", inputs, compiled=True)()
    except RuntimeError as exc:  # no C++ compiler for inductor, for example
        pytest.skip(f"FlexAttention does not compile here: {str(exc).splitlines()[0]}")
    assert A.reference_error(out, inputs, variant, "prefill").rel_error < 1e-5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("impl", list(A.IMPLEMENTATIONS))
@pytest.mark.parametrize("name", A.VARIANT_NAMES)
def test_cuda_bf16_implementations_match_float64_or_say_why_not(name: str, impl: str) -> None:
    variant = A.make_variant(name, n_heads=8, n_kv_heads=2, d_head=64, window=128)
    for phase in ("prefill", "decode"):
        generator = torch.Generator("cuda").manual_seed(0)
        inputs = A.make_inputs(variant, phase, batch=2, seq_len=512, dtype=torch.bfloat16, device="cuda",
                               generator=generator)  # fmt: skip
        try:
            out = A.build_phase(impl, variant, phase, inputs)()
        except RuntimeError as exc:  # a backend that does not support this shape, mask or dtype
            assert str(exc)
            continue
        assert A.reference_error(out, inputs, variant, phase).rel_error < 3e-2
