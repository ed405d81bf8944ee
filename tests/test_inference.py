"""Serving estimates: each formula by hand, a published anchor, the architecture effects, bad inputs, the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmarch import load
from llmarch.calc.flops import attention_flops_per_token, forward_flops
from llmarch.calc.params import count_params
from llmarch.catalog.hardware import accelerator
from llmarch.cli import app
from llmarch.core.errors import InvalidValueError
from llmarch.serving import estimate as inference

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


# -- each formula, worked by hand ---------------------------------------------------------------------------


def test_roofline_and_ridge_by_hand() -> None:
    # 1e12 FLOPs and 1e9 bytes at 100 TFLOP/s and 1 TB/s: 10 ms of compute, 1 ms of traffic -> 10 ms.
    assert inference.roofline_time_s(1e12, 1e9, 1e14, 1e12) == pytest.approx(0.01)
    assert inference.roofline_time_s(1e9, 1e12, 1e14, 1e12) == pytest.approx(1.0)  # memory-bound
    # The H100 SXM's dense bf16 ridge point: 989.5 TFLOP/s / 3.35 TB/s = 295 FLOP/byte (the module docstring).
    h100 = accelerator("h100-sxm")
    assert h100.memory_bandwidth_bytes_per_s is not None
    assert inference.ridge_point(h100.peak("bf16"), h100.memory_bandwidth_bytes_per_s) == pytest.approx(
        295.37, abs=0.01
    )


def test_expected_active_experts_by_hand() -> None:
    # Mixtral, top-2 of 8: one token reads 2 experts; two tokens 8 (1 - 0.75^2) = 3.5; a prefill reads all 8.
    assert inference.expected_active_experts(8, 2, 1) == pytest.approx(2.0)
    assert inference.expected_active_experts(8, 2, 2) == pytest.approx(3.5)
    assert inference.expected_active_experts(8, 2, 4096) == pytest.approx(8.0)
    # DeepSeek-V2-Lite, top-6 of 64, a batch of 16 tokens: 64 (1 - (58/64)^16) = 51.6 experts per layer.
    assert inference.expected_active_experts(64, 6, 16) == pytest.approx(64 * (1 - (58 / 64) ** 16))


def test_allreduce_by_hand() -> None:
    assert inference.allreduce_time_s(1e6, 1, 1e11, 1e-5) == 0.0  # no tensor parallelism, no all-reduce
    # Ring over 4 GPUs: 2 x 3/4 x 1 MB / 100 GB/s = 15 us, + 10 us latency.
    assert inference.allreduce_time_s(1e6, 4, 1e11, 1e-5) == pytest.approx(25e-6)
    assert inference.allreduces_per_layer(load("llama-2-7b")) == 2
    assert inference.allreduces_per_layer(load("falcon-7b")) == 1  # parallel attention + MLP block
    assert inference.allreduces_per_layer(load("t5-small"), cross_attention=True) == 3


def test_decode_attention_and_kv_traffic_by_hand() -> None:
    llama = load("llama-2-7b")  # 32 layers, 32 heads of 128: 2 x 32 x (128 + 128) = 16,384 FLOPs per key and layer
    per_key = 16_384 * 32
    # The query at position c attends c keys in every layer.
    step = inference.cumulative_attention_flops(llama, 1000) - inference.cumulative_attention_flops(llama, 999)
    assert step == pytest.approx(per_key * 1000)
    assert inference.cumulative_attention_flops(llama, 0) == 0.0
    # MHA in bf16 caches 32 layers x 32 heads x 256 x 2 bytes = 524,288 bytes per token: 1 byte per FLOP.
    assert inference.kv_bytes_per_attention_flop(llama, "bf16") == pytest.approx(1.0)
    # GQA-8 reads 8x fewer bytes for the same FLOPs.
    assert inference.kv_bytes_per_attention_flop(load("llama-2-70b"), "bf16") == pytest.approx(1 / 8)
    # Mistral: the query at position 10,000 attends only the 4,096-token window.
    mistral = load("mistral-7b")
    step = inference.cumulative_attention_flops(mistral, 10_000) - inference.cumulative_attention_flops(mistral, 9_999)
    assert step == pytest.approx(2 * 32 * 256 * 32 * 4096)


def test_weights_read_by_hand() -> None:
    llama = load("llama-2-7b")  # 6,738,415,616 parameters; the untied 32,000 x 4,096 input table is only looked up
    assert inference.weights_read_bytes(llama, "bf16", n_tokens=1) == 2 * (6_738_415_616 - 32_000 * 4096)
    mixtral = load("mixtral-8x7b")
    counts = count_params(mixtral)
    routed = counts.breakdown["moe.experts"]
    unused_table = counts.breakdown["embedding.token"]
    # One token reads 2 of 8 routed experts per layer.
    expected = 2 * (counts.total - unused_table - routed * (1 - 2 / 8))
    assert inference.weights_read_bytes(mixtral, "bf16", n_tokens=1) == pytest.approx(expected)
    # A long prefill reads every expert.
    assert inference.weights_read_bytes(mixtral, "bf16", n_tokens=8192, phase="prefill") == pytest.approx(
        2 * (counts.total - unused_table)
    )


def test_prefill_roofline_by_hand() -> None:
    llama = load("llama-2-7b")
    e = inference.estimate_inference(
        llama, "a100-80gb", prompt_len=2048, generate_len=2, batch=1, flop_efficiency=0.5, bandwidth_efficiency=1.0
    )
    assert e.prefill is not None
    # Weight matmuls per token: 2 x (6,738,415,616 - 2 x 32,000 x 4,096 embedding and head - 266,240 norm weights),
    # plus the head once (only the last position's logits are needed).
    per_token = 2 * (6_738_415_616 - 2 * 32_000 * 4096 - 266_240)
    matmul_flops = 2048 * per_token + 2 * 32_000 * 4096
    assert e.prefill.matmul_flops == pytest.approx(matmul_flops)
    # Causal attention: 16,384 FLOPs per key, layer and query; 2,049 / 2 keys per query on average.
    attention_flops = 2048 * 16_384 * 32 * 2049 / 2
    assert e.prefill.attention_flops == pytest.approx(attention_flops)
    assert e.prefill.attention_flops == pytest.approx(2048 * forward_flops(llama, 2048).attention)
    # Both operators are compute-bound at 156 TFLOP/s: the time is FLOPs / rate (about 88 ms).
    rate = 312e12 * 0.5
    assert e.prefill.time_s == pytest.approx((matmul_flops + attention_flops) / rate)
    assert e.prefill.bound == "compute"
    assert (
        e.prefill.arithmetic_intensity_flop_per_byte > e.prefill.ridge_flop_per_byte == pytest.approx(rate / 2.039e12)
    )
    assert e.ttft_s == e.prefill.time_s


def test_decode_of_a_7b_model_on_an_a100_is_weights_over_bandwidth() -> None:
    # Published anchor (Pope et al. 2022, section 2; the memory-bandwidth argument of every serving guide):
    # at batch 1 decode reads all weights once per token: Llama 2 7B in bf16 is 13.5 GB, the A100-80GB
    # streams 2.039 TB/s, so a token takes about 13.5 / 2039 s = 6.6 ms at 100% of the bandwidth.
    llama = load("llama-2-7b")
    e = inference.estimate_inference(
        llama, "a100-80gb", prompt_len=128, generate_len=2, batch=1, bandwidth_efficiency=1
    )
    assert e.decode is not None and e.tpot_s is not None
    assert 13.4e9 < 2 * count_params(llama).total < 13.5e9
    assert e.tpot_s == pytest.approx(13.48e9 / 2.039e12, rel=0.03)
    assert e.decode.bound == "memory" and e.decode.arithmetic_intensity_flop_per_byte == pytest.approx(1.0, rel=0.02)
    # Exactly: weights read (no input table) + the KV cache of the 129-position context, at 2.039 TB/s.
    read = 2 * (6_738_415_616 - 32_000 * 4096) + 129 * 524_288
    assert e.tpot_s == pytest.approx(read / 2.039e12)
    # At 80% of the bandwidth (the default) it is 1.25x slower.
    default = inference.estimate_inference(llama, "a100-80gb", prompt_len=128, generate_len=2, batch=1)
    assert default.tpot_s == pytest.approx(e.tpot_s / 0.8)


def test_decode_is_memory_bound_until_the_batch_reaches_the_ridge() -> None:
    llama = load("llama-2-7b")
    small = inference.estimate_inference(llama, "h100-sxm", prompt_len=16, generate_len=2, batch=8)
    large = inference.estimate_inference(llama, "h100-sxm", prompt_len=16, generate_len=2, batch=512)
    assert small.decode is not None and large.decode is not None
    assert small.decode.bound == "memory" and large.decode.bound == "compute"
    # Weight matmuls: intensity ~ 2 x batch FLOPs per 2-byte weight = batch.
    assert small.decode.matmul_flops / small.decode.matmul_bytes == pytest.approx(8, rel=0.05)


def test_tp_communication_by_hand() -> None:
    llama = load("llama-2-70b")  # 80 layers, d_model 8192
    e = inference.estimate_inference(llama, "h100-sxm", tp=2, batch=1, prompt_len=128, generate_len=2)
    assert e.decode is not None
    # 2 all-reduces per layer of 1 token x 8,192 x 2 bytes over 2 GPUs at 450 GB/s, + 10 us each.
    assert e.decode.comm_s == pytest.approx(160 * (10e-6 + 2 * 0.5 * 8192 * 2 / 450e9))
    single = inference.estimate_inference(load("llama-2-7b"), "h100-sxm", batch=1)
    assert single.decode is not None and single.decode.comm_s == 0.0


def test_throughput_and_cost_by_hand() -> None:
    e = inference.estimate_inference(load("llama-2-7b"), "h100-sxm", batch=16, tp=2, n_gpus=8, usd_per_gpu_hour=2.0)
    assert e.ttft_s is not None and e.tpot_s is not None and e.tokens_per_s is not None
    latency = e.ttft_s + 511 * e.tpot_s
    assert e.request_latency_s == pytest.approx(latency)
    assert e.tokens_per_s_per_replica == pytest.approx(16 * 512 / latency)
    assert e.replicas == 4 and e.tokens_per_s == pytest.approx(4 * 16 * 512 / latency)
    assert e.tokens_per_s_per_gpu == pytest.approx(16 * 512 / latency / 2)
    # 8 GPUs at $2/h = $16/h for tokens_per_s x 3600 tokens.
    assert e.usd_per_million_tokens == pytest.approx(16 / 3600 / e.tokens_per_s * 1e6)
    # The catalog default price, or none.
    assert inference.estimate_inference(load("gpt-2"), "h100-sxm").assumptions["usd_per_gpu_hour"] == 3.0
    no_price = inference.estimate_inference(load("gpt-2"), "l4")
    assert no_price.usd_per_million_tokens is None and "price-per-gpu-hour" in no_price.assumptions["price_source"]


def test_prefill_chunks_reread_the_weights() -> None:
    llama = load("llama-2-7b")
    e = inference.estimate_inference(llama, "h100-sxm", batch=4, prompt_len=3000, generate_len=2)
    one = inference.estimate_inference(llama, "h100-sxm", batch=4, prompt_len=3000, generate_len=2, prefill_chunk=None)
    assert e.prefill is not None and one.prefill is not None
    assert e.prefill.n_passes == 2 and one.prefill.n_passes == 1  # ceil(12,000 / 8,192)
    assert e.prefill.matmul_bytes == pytest.approx(2 * one.prefill.matmul_bytes)
    assert e.prefill.flops == pytest.approx(one.prefill.flops)
    # Without chunking the workspace grows with the batch; with it, one chunk's workspace whatever the batch.
    assert one.workspace_bytes > e.workspace_bytes


# -- architecture effects --------------------------------------------------------------------------------------


def test_gqa_vs_mha_max_batch_follows_the_kv_head_ratio() -> None:
    gqa = inference.estimate_inference(load("llama-2-70b"), "h100-sxm", tp=8)
    mha = inference.estimate_inference(load("llama-2-70b:n_kv_heads=64"), "h100-sxm", tp=8)
    # Per sequence, the MHA twin caches 64 / 8 = 8x more.
    assert mha.kv_cache_bytes_per_sequence == pytest.approx(8 * gqa.kv_cache_bytes_per_sequence)
    assert mha.bytes_per_sequence == mha.kv_cache_bytes_per_sequence  # chunked prefill: nothing else per request
    # Its 64 KV heads also add 9.4B parameters, so compare the memory left for the cache (the KV budget).
    budget_gqa = gqa.usable_bytes - gqa.fixed_bytes
    budget_mha = mha.usable_bytes - mha.fixed_bytes
    assert gqa.max_batch == math.floor(budget_gqa / gqa.kv_cache_bytes_per_sequence)
    assert mha.max_batch == math.floor(budget_mha / mha.kv_cache_bytes_per_sequence)
    assert gqa.max_batch / mha.max_batch == pytest.approx(8 * budget_gqa / budget_mha, rel=1 / mha.max_batch)
    # One more request would not fit.
    for estimate, name in ((gqa, "llama-2-70b"), (mha, "llama-2-70b:n_kv_heads=64")):
        over = inference.estimate_inference(load(name), "h100-sxm", tp=8, batch=estimate.max_batch + 1)
        assert not over.fits and "the largest batch that fits is" in over.fit_message()
    # Decode is memory-bound for both; GQA serves over twice the tokens per GPU.
    assert gqa.decode is not None and mha.decode is not None
    assert gqa.decode.bound == mha.decode.bound == "memory"
    assert gqa.tokens_per_s_per_gpu is not None and mha.tokens_per_s_per_gpu is not None
    assert gqa.tokens_per_s_per_gpu > 2 * mha.tokens_per_s_per_gpu


def test_mistral_rolling_buffer_caps_the_cache_at_long_context() -> None:
    mistral, llama = load("mistral-7b"), load("llama-2-7b")
    # 32 layers x 4,096 window x 8 KV heads x 256 x 2 bytes = 512 MiB per sequence, from 4k tokens on.
    for context in (4096, 8192, 32768):
        e = inference.estimate_inference(mistral, "h100-sxm", prompt_len=context - 512)
        assert e.kv_cache_bytes_per_sequence == 32 * 4096 * 8 * 256 * 2 == 2**29
    short = inference.estimate_inference(mistral, "h100-sxm", prompt_len=2048 - 512)
    assert short.kv_cache_bytes_per_sequence == 2**28
    long = inference.estimate_inference(mistral, "h100-sxm", prompt_len=32768 - 512)
    assert long.max_batch == inference.estimate_inference(mistral, "h100-sxm", prompt_len=4096 - 512).max_batch
    assert long.max_context_len is None  # a rolling buffer on every layer: no context is too long
    # Without chunked prefill the workspace still grows with the prompt.
    unchunked = inference.estimate_inference(mistral, "h100-sxm", prefill_chunk=None, batch=1)
    assert unchunked.max_context_len is not None and unchunked.max_context_len > 32768
    # Llama 2 7B (no window, MHA) caches 16 GiB per sequence at 32k and fits 3.
    dense = inference.estimate_inference(llama, "h100-sxm", prompt_len=32768 - 512)
    assert dense.kv_cache_bytes_per_sequence == 32 * 32768 * 32 * 256 * 2 == 16 * 2**30
    assert dense.max_batch < long.max_batch / 30
    assert dense.exceeds_max_seq_len and not long.exceeds_max_seq_len


def test_deepseek_v2_lite_caches_the_mla_latent() -> None:
    deepseek = load("deepseek-v2-lite")
    e = inference.estimate_inference(deepseek, "h100-sxm", prompt_len=2048, generate_len=512)
    # 27 layers x (512 latent + 64 rotary key) x 2 bytes = 31,104 bytes per token; 2,560 tokens.
    assert e.kv_cache_bytes_per_sequence == 27 * (512 + 64) * 2 * 2560
    # The same heads as MHA would cache 16 x (192 + 128) per layer: 8.9x more.
    mha_per_token = 27 * 16 * (192 + 128) * 2
    assert mha_per_token / (27 * 576 * 2) == pytest.approx(8.89, abs=0.01)
    # The latent serves every head: tensor parallelism replicates it rather than splitting it.
    assert inference.kv_cache_share(deepseek, tp=2) == 1.0
    tp2 = inference.estimate_inference(deepseek, "h100-sxm", tp=2)
    assert tp2.kv_cache_bytes_per_sequence == e.kv_cache_bytes_per_sequence
    assert "replicated" in tp2.assumptions["kv_placement"] and tp2.assumptions["kv_copies"] == 2
    # MoE decode reads only the routed experts the batch uses: at batch 1, 6 of 64 per layer; at the largest
    # batch (hundreds of tokens a step) all of them.
    one = inference.estimate_inference(deepseek, "h100-sxm", batch=1)
    every_expert = inference.weights_read_bytes(deepseek, "bf16", n_tokens=1e6)
    assert one.decode is not None and one.decode.matmul_bytes < every_expert / 3
    assert e.decode is not None and e.decode.matmul_bytes == pytest.approx(every_expert)


def test_kv_head_split_and_replication() -> None:
    gqa = load("llama-2-70b")  # 8 KV heads
    assert inference.kv_cache_share(gqa, tp=4) == pytest.approx(1 / 4)
    assert inference.kv_cache_share(gqa, tp=16) == pytest.approx(1 / 8)  # 2 copies of each KV head
    mqa = load("llama-2-7b:n_kv_heads=1")
    assert inference.kv_cache_share(mqa, tp=4) == 1.0  # the single KV head is on every GPU
    e = inference.estimate_inference(mqa, "h100-sxm", tp=4)
    assert "replicated 4x" in e.assumptions["kv_placement"]


def test_beams_kv_dtype_and_quantised_weights() -> None:
    llama = load("llama-2-7b")
    one = inference.estimate_inference(llama, "h100-sxm")
    beams = inference.estimate_inference(llama, "h100-sxm", beam_width=4)
    assert beams.kv_cache_bytes_per_sequence == 4 * one.kv_cache_bytes_per_sequence
    fp8_kv = inference.estimate_inference(llama, "h100-sxm", kv_dtype="fp8")
    assert fp8_kv.kv_cache_bytes_per_sequence == one.kv_cache_bytes_per_sequence / 2
    int4 = inference.estimate_inference(llama, "h100-sxm", dtype="int4")
    assert int4.kv_dtype == "bf16" and int4.compute_dtype == "bf16"  # weight-only quantisation
    assert int4.weights_bytes == pytest.approx(one.weights_bytes * (0.5 + 2 / 128) / 2)
    fp8 = inference.estimate_inference(llama, "h100-sxm", dtype="fp8")
    assert fp8.compute_dtype == "fp8" and fp8.assumptions["peak_flop_per_s"] == 1979e12
    a100 = inference.estimate_inference(llama, "a100-80gb", dtype="fp8")
    assert a100.compute_dtype == "bf16" and "upcast" in a100.assumptions["compute_dtype_source"]


def test_encoder_decoder() -> None:
    t5 = load("t5-3b")
    e = inference.estimate_inference(t5, "a100-80gb", prompt_len=512, generate_len=128, batch=4)
    assert e.fits and e.prefill is not None and e.decode is not None and e.ttft_s is not None
    # The first token needs the encoder pass and the first decoder step.
    assert e.ttft_s == pytest.approx(e.prefill.time_s + e.decode.time_s)
    # Decoder self-attention over 128 positions and cross-attention over 512 encoder positions, per layer.
    per_position = t5.n_kv_heads * (t5.d_head + t5.v_head_dim) * 2
    assert e.kv_cache_bytes_per_sequence == t5.n_layers * (128 + 512) * per_position
    # Decode reads the decoder and the head, not the encoder: less than all the weights.
    assert e.decode.matmul_bytes < 2 * count_params(t5).total


@pytest.mark.parametrize(
    ("name", "tp"),
    [("gpt-2", 1), ("llama-3-8b", 1), ("mixtral-8x7b", 2), ("falcon-7b", 1), ("t5-small", 2), ("gemma-2b", 1)],
)
def test_estimates_are_consistent(name: str, tp: int) -> None:
    e = inference.estimate_inference(load(name), "h100-sxm", tp=tp)
    assert e.fits and e.max_batch >= 1 and e.batch == e.max_batch
    assert e.total_bytes <= e.usable_bytes < e.fixed_bytes + (e.batch + 1) * e.bytes_per_sequence
    assert e.total_bytes == pytest.approx(e.weights_bytes + e.kv_cache_bytes + e.workspace_bytes)
    assert e.prefill is not None and e.decode is not None
    for phase in (e.prefill, e.decode):
        assert phase.time_s >= max(phase.compute_s, phase.memory_s) * (1 - 1e-12)
        assert phase.time_s == phase.matmul_s + phase.attention_s + phase.comm_s
    assert e.bound in ("compute", "memory")
    assert attention_flops_per_token(load(name), 1) > 0


# -- bad inputs ----------------------------------------------------------------------------------------------


def test_a_model_that_does_not_fit_says_what_would() -> None:
    e = inference.estimate_inference(load("llama-2-70b"), "h100-sxm")
    assert not e.fits and e.max_batch == 0 and e.ttft_s is None and e.tokens_per_s is None
    assert e.suggestions == ("--tp 2", "--dtype fp8")
    message = e.fit_message()
    assert message.startswith("llama-2-70b does not fit one h100-sxm even at batch 1")
    assert message.endswith("it would fit with --tp 2 or --dtype fp8")
    code, _, err = invoke("estimate-inference", "llama-2-70b", "--gpu", "h100-sxm")
    assert code == 1 and err.strip() == f"error: {message}"
    # With several presets the row says fits = no, a note goes to stderr, and the others are estimated.
    code, out, err = invoke("estimate-inference", "llama-2-70b", "llama-2-7b", "--gpu", "h100-sxm", "-f", "json")
    assert code == 0 and f"note: {message}" in err
    rows = json.loads(out)["estimates"]
    assert [r["fits"] for r in rows] == [False, True] and rows[0]["ttft_s"] is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tp": 3}, "must divide llama-2-7b's n_heads"),
        ({"tp": 2, "n_gpus": 3}, "must be a multiple of --tp"),
        ({"prompt_len": 0}, "prompt_len must be a positive integer"),
        ({"batch": 0}, "batch must be a positive integer"),
        ({"flop_efficiency": 1.5}, "flop_efficiency must be a fraction in"),
        ({"bandwidth_efficiency": 0}, "bandwidth_efficiency must be a fraction in"),
        ({"link_bandwidth_bytes_per_s": -1}, "must be positive"),
        ({"reserve_fraction": 1}, "reserve_fraction must be in"),
        ({"kv_dtype": "int4"}, "not modelled"),
        ({"compute_dtype": "fp4"}, "no fp4 peak"),
        ({"dtype": "fp12"}, "unknown dtype"),
    ],
)
def test_bad_inputs(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        inference.estimate_inference(load("llama-2-7b"), "h100-sxm", **kwargs)


def test_bad_cli_inputs() -> None:
    code, _, err = invoke("estimate-inference", "llama-2-7b", "--gpu", "h100")
    assert code == 1 and "unknown GPU 'h100'; did you mean" in err
    code, _, err = invoke("estimate-inference", "llama-2-7b")
    assert code == 2 and "--gpu" in err
    code, _, err = invoke("estimate-inference", "llama-2-7b", "--gpu", "h100-sxm", "--batch", "2", "--max-batch")
    assert code == 2 and "not both" in err
    code, _, err = invoke("estimate-inference", "llama-2-7b", "--gpu", "h100-sxm", "--link-bandwidth", "fast")
    assert code == 1 and "--link-bandwidth" in err


# -- calibration ---------------------------------------------------------------------------------------------

BENCH = {
    "schema_version": 1,
    "environment": {"torch": "2.5.1", "device_name": "NVIDIA H100 80GB HBM3", "threads": 16},
    "results": [
        {"variant": "gqa", "impl": "sdpa-flash", "phase": "prefill", "batch": 1, "seq_len": 2048, "n_heads": 64,
         "n_kv_heads": 8, "d_head": 128, "dtype": "bf16", "median_s": 1e-3, "achieved_flop_per_s": 4e14,
         "achieved_bytes_per_s": 1e11},
        {"variant": "gqa", "impl": "eager", "phase": "decode", "batch": 64, "seq_len": 2048, "n_heads": 64,
         "n_kv_heads": 8, "d_head": 128, "dtype": "bf16", "median_s": 1e-4, "achieved_flop_per_s": 5e12,
         "achieved_bytes_per_s": 8e11},
        {"variant": "gqa", "impl": "sdpa-flash", "phase": "decode", "batch": 64, "seq_len": 2048, "n_heads": 64,
         "n_kv_heads": 8, "d_head": 128, "dtype": "bf16", "median_s": 1e-4, "achieved_flop_per_s": 1e13,
         "achieved_bytes_per_s": 1.5e12},
        {"variant": "mha", "impl": "sdpa-flash", "phase": "decode", "batch": 64, "seq_len": 2048, "n_heads": 64,
         "n_kv_heads": 64, "d_head": 128, "dtype": "bf16", "achieved_flop_per_s": 2e13, "achieved_bytes_per_s": 3e12},
        {"variant": "mha", "impl": "flex", "phase": "decode", "skipped_reason": "flex attention unavailable"},
        {"variant": "mha", "impl": "eager", "phase": "decode", "batch": "many", "seq_len": 2048},
        "not a result",
    ],
}  # fmt: skip


def test_parse_bench_is_defensive() -> None:
    bench = inference.parse_bench(BENCH, source="h100.json")
    assert bench.device == "NVIDIA H100 80GB HBM3" and len(bench.rows) == 4 and bench.n_ignored == 3
    assert inference.bench_device_matches(bench, accelerator("h100-sxm")) is True
    assert inference.bench_device_matches(bench, accelerator("a100-80gb")) is False
    for document, message in (
        ([], "expected a JSON object"),
        ({"schema_version": 2, "results": []}, "unsupported schema_version 2"),
        ({"schema_version": 1}, "no 'results' list"),
        ({"schema_version": 1, "results": [{"phase": "decode"}]}, r"no usable attention measurement .*1 result"),
    ):
        with pytest.raises(InvalidValueError, match=message):
            inference.parse_bench(document, source="x.json")
    # No device in the environment: the device named in a result, unless it is only "cuda".
    nameless = {"schema_version": 1, "results": [dict(BENCH["results"][0], device="cuda")]}  # type: ignore[call-overload]
    assert inference.parse_bench(nameless).device is None
    named = {"schema_version": 1, "results": [dict(BENCH["results"][0], device="NVIDIA A100-SXM4-80GB")]}  # type: ignore[call-overload]
    assert inference.parse_bench(named).device == "NVIDIA A100-SXM4-80GB"


def test_calibration_times_attention_at_the_measured_rates() -> None:
    bench = inference.parse_bench(BENCH, source="h100.json")
    llama = load("llama-2-70b")
    row = inference.select_bench_row(bench, llama, phase="decode", batch=64, seq_len=2300, dtype="bf16")
    assert row is not None and row.impl == "sdpa-flash" and row.n_kv_heads == 8  # same shape, then the fastest
    e = inference.estimate_inference(llama, "h100-sxm", tp=4, batch=64, calibration=bench)
    plain = inference.estimate_inference(llama, "h100-sxm", tp=4, batch=64)
    assert e.decode is not None and plain.decode is not None and e.prefill is not None
    expected = max(e.decode.attention_flops / 1e13, e.decode.attention_bytes / 1.5e12)
    assert e.decode.attention_s == pytest.approx(expected)
    assert e.decode.attention_default_s == pytest.approx(plain.decode.attention_s)
    assert e.tpot_default_s == pytest.approx(plain.tpot_s) and e.ttft_default_s == pytest.approx(plain.ttft_s)
    assert e.tpot_s == pytest.approx(plain.tpot_s - plain.decode.attention_s + expected)
    calibration = e.assumptions["calibration"]
    assert calibration["decode_bytes_per_s"] == 1.5e12 and calibration["prefill_flop_per_s"] == 4e14
    assert calibration["device_check"] == "same model"
    with pytest.raises(InvalidValueError, match="measured on 'NVIDIA H100 80GB HBM3', not on NVIDIA A100"):
        inference.estimate_inference(llama, "a100-80gb", tp=4, calibration=bench)


def test_calibrate_cli_prints_both(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(BENCH))
    code, out, _ = invoke("estimate-inference", "llama-2-70b", "--gpu", "h100-sxm", "--tp", "4", "--batch", "64",
                          "--calibrate", str(path), "-f", "markdown")  # fmt: skip
    assert code == 0 and "(default " in out and "device_check=same model" in out
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = invoke("estimate-inference", "llama-2-7b", "--gpu", "h100-sxm", "--calibrate", str(bad))
    assert code == 1 and "is not JSON" in err
    code, _, err = invoke("estimate-inference", "llama-2-7b", "--gpu", "h100-sxm", "--calibrate", str(tmp_path / "no"))
    assert code == 1 and "cannot read" in err


# -- the CLI ---------------------------------------------------------------------------------------------------


def test_cli_json_equals_the_library() -> None:
    args = ["llama-2-70b", "llama-2-70b:n_kv_heads=64", "mistral-7b", "deepseek-v2-lite"]
    code, out, _ = invoke("estimate-inference", *args, "--gpu", "h100-sxm", "--tp", "4", "--kv-dtype", "fp8",
                          "--prompt", "4096", "--generate", "256", "--format", "json")  # fmt: skip
    assert code == 0
    document = json.loads(out)
    expected = [
        inference.estimate_inference(load(a), "h100-sxm", tp=4, kv_dtype="fp8", prompt_len=4096, generate_len=256)
        for a in args
    ]
    assert document["estimates"] == [json.loads(json.dumps(e.to_record())) for e in expected]
    required = {"name", "gpu", "fits", "weights_bytes", "kv_cache_bytes", "max_batch", "ttft_s", "tpot_s",
                "tokens_per_s", "usd_per_million_tokens", "bound", "assumptions"}  # fmt: skip
    assert required <= set(document["estimates"][0])
    assert document["schema_version"] == 1


def test_cli_table_shows_the_assumptions() -> None:
    code, out, _ = invoke("estimate-inference", "mistral-7b", "--gpu", "h100-sxm", "--batch", "8")
    assert code == 0
    for text in ("mistral-7b", "TTFT", "TPOT", "memory", "flop_efficiency", "bandwidth_efficiency",
                 "link_bandwidth_bytes_per_s", "price_source", "defaults used"):  # fmt: skip
        assert text in out
    code, out, _ = invoke("estimate-inference", "mistral-7b", "--gpu", "h100-sxm", "-f", "csv")
    assert code == 0 and out.splitlines()[0].startswith("name,gpu,")


def test_cli_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "serving.png"
    code, _, err = invoke("estimate-inference", "mistral-7b", "llama-2-7b", "--gpu", "h100-sxm", "--plot", str(path))
    assert code == 0, err
    assert path.read_bytes().startswith(b"\x89PNG")


def test_estimate_inference_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from llmarch.cli import app\n"
        "r = CliRunner().invoke(app, ['estimate-inference', 'llama-2-70b', 'mistral-7b', '--gpu', 'h100-sxm',\n"
        "                             '--tp', '4', '-f', 'json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(app, ['estimate-inference', 'mistral-7b', '--gpu', 'h100-sxm'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in ('torch', 'pandas', 'fvcore', 'numpy', 'matplotlib') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_tensor_parallel_link_comes_from_the_catalog() -> None:
    from llmarch.core.errors import InvalidValueError
    from llmarch.serving.estimate import estimate_inference

    a100 = estimate_inference(load("llama-2-13b"), gpu="a100-80gb", tp=2, batch=1)
    h100 = estimate_inference(load("llama-2-13b"), gpu="h100-sxm", tp=2, batch=1)
    # One direction is half the quoted NVLink total: 300 GB/s on A100, 450 GB/s on H100.
    assert a100.to_record()["assumptions"]["link_bandwidth_bytes_per_s"] == 300e9
    assert h100.to_record()["assumptions"]["link_bandwidth_bytes_per_s"] == 450e9
    with pytest.raises(InvalidValueError, match="--link-bandwidth"):
        estimate_inference(load("llama-2-13b"), gpu="mi300x", tp=2, batch=1)
    single = estimate_inference(load("llama-2-7b"), gpu="mi300x", tp=1, batch=1)
    assert single.to_record()["assumptions"]["link_bandwidth_bytes_per_s"] is None
