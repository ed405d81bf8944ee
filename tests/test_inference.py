"""Serving estimates: each formula by hand, published anchors, batching, memory, quantisation, bad inputs, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmarch import load
from llmarch.calc.comparison import model_record
from llmarch.calc.memory import weights_bytes
from llmarch.calc.params import count_params
from llmarch.calc.serving_memory import kv_tp_share, serving_memory
from llmarch.calc.training_memory import memory_estimate
from llmarch.catalog.hardware import accelerator
from llmarch.catalog.serving_efficiency import serving_efficiency
from llmarch.cli import app
from llmarch.core.errors import InvalidValueError
from llmarch.serving import roofline
from llmarch.serving.calibration import bench_device_matches, parse_bench, select_bench_row
from llmarch.serving.estimate import estimate_inference

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


# -- each formula, worked by hand ---------------------------------------------------------------------------


def test_roofline_ridge_and_gemm_efficiency_by_hand() -> None:
    # 1e12 FLOPs and 1e9 bytes at 100 TFLOP/s and 1 TB/s: 10 ms of compute, 1 ms of traffic -> 10 ms.
    assert roofline.roofline_time_s(1e12, 1e9, 1e14, 1e12) == pytest.approx(0.01)
    assert roofline.roofline_time_s(1e9, 1e12, 1e14, 1e12) == pytest.approx(1.0)  # memory-bound
    # The H100 SXM's dense bf16 ridge point: 989.5 TFLOP/s / 3.35 TB/s = 295 FLOP/byte.
    h100 = accelerator("h100-sxm")
    assert h100.memory_bandwidth_bytes_per_s is not None
    assert roofline.ridge_point(h100.peak("bf16"), h100.memory_bandwidth_bytes_per_s) == pytest.approx(295.37, abs=0.01)
    # Half the large-M efficiency at M = m_half; 0.7 x 896 / (896 + 128) = 0.6125.
    assert roofline.gemm_efficiency(128, 0.7, 128) == pytest.approx(0.35)
    assert roofline.gemm_efficiency(896, 0.7, 128) == pytest.approx(0.6125)


def test_expected_active_experts_by_hand() -> None:
    # Mixtral, top-2 of 8: one token reads 2 experts; two tokens 8 (1 - 0.75^2) = 3.5; a prefill reads all 8.
    assert roofline.expected_active_experts(8, 2, 1) == pytest.approx(2.0)
    assert roofline.expected_active_experts(8, 2, 2) == pytest.approx(3.5)
    assert roofline.expected_active_experts(8, 2, 4096) == pytest.approx(8.0)


def test_allreduce_and_speculation_by_hand() -> None:
    assert roofline.allreduce_time_s(1e6, 1, 1e11, 1e-5) == 0.0  # no tensor parallelism, no all-reduce
    # Ring over 4 GPUs: 2 x 3/4 x 1 MB / 100 GB/s = 15 us, + 10 us latency.
    assert roofline.allreduce_time_s(1e6, 4, 1e11, 1e-5) == pytest.approx(25e-6)
    assert roofline.allreduces_per_layer(load("llama-2-7b")) == 2
    assert roofline.allreduces_per_layer(load("falcon-7b")) == 1  # parallel attention + MLP block
    assert roofline.allreduces_per_layer(load("t5-small"), cross_attention=True) == 3
    # Leviathan et al. 2023: k = 4 drafted tokens accepted with a = 0.8 yield (1 - 0.8^5) / 0.2 = 3.3616 tokens.
    assert roofline.speculative_tokens_per_step(4, 0.8) == pytest.approx(3.3616)
    assert roofline.speculative_tokens_per_step(4, 1.0) == 5.0


def test_efficiency_catalog_rows_have_sources() -> None:
    a100, h200, unknown = serving_efficiency("a100-80gb"), serving_efficiency("h200"), serving_efficiency("l4")
    assert a100.gpu == "a100-80gb" and unknown.gpu == "default"
    assert h200.gemm("fp8") == serving_efficiency("h100-sxm").gemm("fp8")  # same die as the H100 SXM
    assert h200.hbm_fraction < serving_efficiency("h100-sxm").hbm_fraction
    for row in (a100, h200, unknown):
        assert row.sources and all(len(s) > 40 for s in row.sources)
        assert 0 < row.hbm_fraction <= 1 and row.layer_overhead_s > 0


# -- the step model against a published anchor ----------------------------------------------------------------


def test_batch_one_decode_is_weights_over_achieved_bandwidth_plus_overheads() -> None:
    # Pope et al. 2022 (section 2): at batch 1 decode reads every weight once per token. Llama 2 7B in bf16
    # reads 2 x (6,738,415,616 - 32,000 x 4,096 input table) bytes plus its KV cache, at the A100's achieved
    # 0.85 x 2.039 TB/s (BabelStream-class streaming); 32 layers x 35 us + 0.5 ms of fixed per-step work.
    llama = load("llama-2-7b")
    e = estimate_inference(llama, "a100-80gb", prompt_len=128, generate_len=128, batch=1)
    assert e.decode_step is not None and e.tpot_s is not None
    weights = 2 * (6_738_415_616 - 32_000 * 4096)
    assert e.decode_step["linear_memory_s"] == pytest.approx(weights / (0.85 * 2.039e12), rel=1e-3)
    assert e.decode_step["overhead_s"] == pytest.approx(32 * 35e-6 + 0.5e-3)
    assert e.decode_step["bound"] == "memory" and e.bound == "memory"
    # Published: LMDeploy v0.1 on an A100-80GB measured 10 ms per token (tests/data/serving_measurements.json).
    assert e.tpot_s == pytest.approx(0.010, rel=0.15)


def test_decode_turns_compute_bound_at_large_batch() -> None:
    llama = load("llama-2-7b")
    small = estimate_inference(llama, "h100-sxm", prompt_len=128, generate_len=128, batch=8)
    large = estimate_inference(llama, "h100-sxm", prompt_len=128, generate_len=128, batch=1024)
    assert small.bound == "memory" and large.bound == "compute"
    assert large.tokens_per_s is not None and small.tokens_per_s is not None
    assert large.tokens_per_s > 5 * small.tokens_per_s


def test_tp_communication_by_hand() -> None:
    llama = load("llama-2-70b")  # 80 layers, d_model 8192
    e = estimate_inference(llama, "h100-sxm", tp=2, batch=1, prompt_len=128, generate_len=2)
    assert e.decode_step is not None
    # 2 all-reduces per layer of ~1 token x 8,192 x 2 bytes over 2 GPUs at 0.8 x 450 GB/s, + 8 us each.
    tokens = e.decode_step["decode_seqs"]
    per = 8e-6 + 2 * 0.5 * tokens * 8192 * 2 / (0.8 * 450e9)
    assert e.decode_step["comm_s"] == pytest.approx(160 * per)
    single = estimate_inference(load("llama-2-7b"), "h100-sxm", batch=1)
    assert single.decode_step is not None and single.decode_step["comm_s"] == 0.0


# -- batching, load and cost -----------------------------------------------------------------------------------


def test_throughput_and_cost_by_hand() -> None:
    e = estimate_inference(load("llama-2-7b"), "h100-sxm", batch=16, tp=2, n_gpus=8, usd_per_gpu_hour=2.0)
    assert e.ttft_s is not None and e.tpot_s is not None and e.tokens_per_s is not None
    latency = e.ttft_s + 511 * e.tpot_s
    assert e.request_latency_s == pytest.approx(latency)
    assert e.tokens_per_s_per_replica == pytest.approx(16 * 512 / latency)
    assert e.replicas == 4 and e.tokens_per_s == pytest.approx(4 * 16 * 512 / latency)
    assert e.tokens_per_s_per_gpu == pytest.approx(16 * 512 / latency / 2)
    assert e.input_tokens_per_s == pytest.approx(4 * 16 * 2048 / latency)
    # 8 GPUs at $2/h = $16/h for tokens_per_s x 3600 output tokens; blended over prompt + output tokens.
    assert e.usd_per_million_tokens == pytest.approx(16 / 3600 / e.tokens_per_s * 1e6)
    assert e.usd_per_million_tokens_blended == pytest.approx(16 / 3600 / (e.tokens_per_s * 2560 / 512) * 1e6)
    # Input and output split the same GPU time: 2048 input x $in + 512 output x $out = 512 x all-in output cost.
    assert e.usd_per_million_input_tokens is not None and e.usd_per_million_output_tokens is not None
    split = 2048 * e.usd_per_million_input_tokens + 512 * e.usd_per_million_output_tokens
    assert split == pytest.approx(512 * e.usd_per_million_tokens)
    assert 0 < e.usd_per_million_input_tokens < e.usd_per_million_output_tokens
    no_price = estimate_inference(load("gpt-2"), "l4")
    assert no_price.usd_per_million_tokens is None and "pass `usd_per_gpu_hour`" in no_price.assumptions["price_source"]


def test_continuous_batching_ttft_is_one_prefill_static_is_the_whole_batch() -> None:
    llama = load("llama-2-7b")
    one = estimate_inference(llama, "h100-sxm", batch=1)
    cont = estimate_inference(llama, "h100-sxm", batch=32)
    static = estimate_inference(llama, "h100-sxm", batch=32, batching="static")
    assert one.ttft_s is not None and cont.ttft_s is not None and static.ttft_s is not None
    # Continuous: a request's prompt is prefilled beside the decodes of the others (a few steps).
    assert cont.ttft_s < 3 * one.ttft_s
    # Static: 32 x 2048 tokens are prefilled before any first token: at least 25x one prompt's prefill.
    assert static.ttft_s > 25 * (one.ttft_s - 0.002)
    assert static.batching == "static" and cont.batching == "continuous"
    assert static.kv_cache_bytes > cont.kv_cache_bytes  # full context vs mean occupancy


def test_default_load_is_max_throughput_and_targets_choose_the_largest_meeting_them() -> None:
    llama = load("llama-2-7b")
    best = estimate_inference(llama, "a100-80gb")
    assert best.load_source == "max throughput" and best.batch == best.max_batch
    assert [p.concurrency for p in best.curve][:3] == [1, 2, 4] and best.curve[-1].concurrency == best.batch
    rates = [p.tokens_per_s for p in best.curve]
    assert rates == sorted(rates)  # throughput grows with the load, and so do the latencies
    assert [p.tpot_s for p in best.curve] == sorted(p.tpot_s for p in best.curve)
    slo = estimate_inference(llama, "a100-80gb", max_ttft_s=0.5, max_tpot_s=0.03)
    assert slo.load_source == "latency targets" and slo.meets_targets
    assert slo.tpot_s is not None and slo.tpot_s <= 0.03
    over = estimate_inference(llama, "a100-80gb", batch=slo.batch + 1)
    assert over.tpot_s is not None and over.tpot_s > 0.03  # one more request misses the target
    impossible = estimate_inference(llama, "a100-80gb", max_tpot_s=0.001)
    assert impossible.batch == 1 and impossible.meets_targets is False
    rate = estimate_inference(llama, "a100-80gb", request_rate=1.0)
    assert rate.load_source == "request rate" and rate.requests_per_s is not None and rate.requests_per_s >= 1.0
    assert rate.meets_targets is True
    overloaded = estimate_inference(llama, "a100-80gb", request_rate=1000.0)
    assert overloaded.meets_targets is False and overloaded.batch == overloaded.max_batch


def test_published_batch_sizes_fit_and_excess_requests_queue() -> None:
    llama = load("llama-2-7b")
    # LMDeploy and TensorRT-LLM ran Llama 2 7B fp16 at 256+ requests on one A100-80GB (short requests).
    e = estimate_inference(llama, "a100-80gb", dtype="fp16", prompt_len=128, generate_len=128, batch=256)
    assert e.fits and e.running_requests == 256 and e.max_batch > 256
    # 64 requests of 2048+128 tokens exceed the KV cache: the engine runs what fits and the rest wait.
    queued = estimate_inference(llama, "a100-80gb", dtype="fp16", prompt_len=2048, generate_len=128, batch=64)
    assert queued.fits and queued.running_requests == queued.max_batch < 64
    at_max = estimate_inference(llama, "a100-80gb", dtype="fp16", prompt_len=2048, generate_len=128,
                                batch=queued.max_batch)  # fmt: skip
    assert queued.tokens_per_s == pytest.approx(at_max.tokens_per_s)
    assert queued.ttft_s is not None and at_max.ttft_s is not None and queued.ttft_s > at_max.ttft_s


def test_pipeline_expert_parallel_speculation_and_prefix_cache() -> None:
    llama70, llama7 = load("llama-2-70b"), load("llama-2-7b")
    tp4 = estimate_inference(llama70, "h100-sxm", tp=4, batch=1)
    pp = estimate_inference(llama70, "h100-sxm", tp=2, pp=2, batch=1)
    assert pp.weights_bytes == pytest.approx(tp4.weights_bytes) and pp.n_gpus == 4
    assert pp.tpot_s is not None and tp4.tpot_s is not None and pp.tpot_s > tp4.tpot_s  # stages run in turn
    spec = estimate_inference(llama70, "h100-sxm", tp=4, batch=1, draft=llama7, draft_len=4, acceptance_rate=0.8)
    assert spec.tpot_s is not None and spec.tpot_s < tp4.tpot_s and spec.weights_bytes > tp4.weights_bytes
    cached = estimate_inference(llama7, "h100-sxm", batch=8, prefix_hit_rate=0.5)
    plain = estimate_inference(llama7, "h100-sxm", batch=8)
    assert cached.ttft_s is not None and plain.ttft_s is not None and cached.ttft_s < plain.ttft_s
    mixtral = load("mixtral-8x7b")
    ep = estimate_inference(mixtral, "h100-sxm", tp=2, batch=32, expert_parallel=True)
    assert ep.assumptions["expert_parallel"] is True and ep.weights_bytes == pytest.approx(
        estimate_inference(mixtral, "h100-sxm", tp=2, batch=32).weights_bytes
    )


# -- memory ------------------------------------------------------------------------------------------------------


def test_memory_and_estimate_inference_agree_on_the_same_workload() -> None:
    for name in ("llama-2-7b", "t5-base", "mistral-7b"):
        config = load(name)
        mem = memory_estimate(config, batch=4, seq_len=1024, flash=True).inference
        decoder_positions = 1024 if config.is_encoder_decoder else 0
        serving = serving_memory(config, concurrency=4, prompt_len=1024, generate_len=decoder_positions,
                                 step_tokens=None)  # fmt: skip
        assert mem.kv_cache_bytes == serving.kv_cache_bytes and mem.activation_bytes == serving.workspace_bytes
    # estimate-inference's static batch at full occupancy with one prefill step is the same workload.
    llama = load("llama-2-7b")
    e = estimate_inference(llama, "a100-80gb", prompt_len=1000, generate_len=24, batch=4, batching="static",
                           prefill_chunk=None)  # fmt: skip
    mem = memory_estimate(llama, batch=4, seq_len=1024, flash=True).inference
    assert e.kv_cache_bytes == mem.kv_cache_bytes and e.weights_bytes == mem.weights_bytes
    assert e.workspace_bytes == pytest.approx(
        serving_memory(llama, concurrency=4, prompt_len=1000, generate_len=24, step_tokens=4000).workspace_bytes
    )


def test_gqa_mha_rolling_buffer_mla_and_kv_sharding() -> None:
    gqa = estimate_inference(load("llama-2-70b"), "h100-sxm", tp=8, batch=1)
    mha = estimate_inference(load("llama-2-70b:n_kv_heads=64"), "h100-sxm", tp=8, batch=1)
    assert mha.kv_cache_bytes_per_sequence == pytest.approx(8 * gqa.kv_cache_bytes_per_sequence)
    assert gqa.max_batch > 4 * mha.max_batch
    # Mistral: a 4,096-position rolling buffer; continuous batching holds the mean context prompt + generate/2.
    mistral = load("mistral-7b")
    long = estimate_inference(mistral, "h100-sxm", prompt_len=32768 - 512, generate_len=512, batch=1)
    assert long.kv_cache_bytes_per_sequence == 32 * 4096 * 8 * 256 * 2
    assert long.exceeds_max_seq_len is False
    # MLA: the latent is replicated on every tensor-parallel GPU; GQA heads are split, MQA replicated.
    assert kv_tp_share(load("deepseek-v2-lite"), 2) == 1.0
    assert kv_tp_share(load("llama-2-70b"), 16) == pytest.approx(1 / 8)
    mqa = estimate_inference(load("llama-2-7b:n_kv_heads=1"), "h100-sxm", tp=4, batch=1)
    assert "replicated 4x" in mqa.assumptions["kv_placement"]


def test_context_limits_are_flagged_in_the_record() -> None:
    llama = load("llama-2-7b")  # 4,096 positions
    e = estimate_inference(llama, "h100-sxm", prompt_len=8000, generate_len=512)
    record = e.to_record()
    assert record["exceeds_max_seq_len"] and record["context_len"] == 8512 and record["max_seq_len"] == 4096
    assert "beyond its context (4096)" in record["context_note"]
    assert e.max_context_len == 4096 and e.max_context_limited_by == "model"  # never beyond without saying so
    inside = estimate_inference(llama, "h100-sxm", prompt_len=2048, generate_len=512)
    assert inside.to_record()["context_note"] is None
    code, out, err = invoke("estimate-inference", "llama-2-7b", "--gpu", "h100-sxm", "--prompt", "8000",
                            "--batch", "1", "-f", "markdown")  # fmt: skip
    assert code == 0 and "8.51k > 4.1k!" in out and "beyond its context" in err


# -- quantisation as deployed ----------------------------------------------------------------------------------------


def test_int4_keeps_embeddings_and_head_in_16_bits() -> None:
    llama3 = load("llama-3-8b")
    # A real AWQ Llama-3-8B checkpoint is ~5.7 GB: the 128k x 4096 embedding and head stay fp16.
    assert weights_bytes(llama3, "int4") == pytest.approx(5.73e9, rel=0.01)
    counts = count_params(llama3).breakdown
    other = counts["embedding.token"] + counts["lm_head.weight"] + counts["norm.blocks"] + counts["norm.final"]
    linear = count_params(llama3).total - other
    assert weights_bytes(llama3, "int4") == pytest.approx(linear * (0.5 + 2.5 / 128) + 2 * other)
    assert weights_bytes(llama3, "fp8") == pytest.approx(linear + 2 * other)
    assert weights_bytes(llama3, "mxfp4") == pytest.approx(linear * (0.5 + 1 / 32) + 2 * other)
    assert weights_bytes(llama3, "nvfp4") == pytest.approx(linear * (0.5 + 1 / 16) + 2 * other)


def test_compare_memory_and_estimate_agree_on_every_dtype() -> None:
    llama = load("llama-2-7b")
    for dtype in ("bf16", "fp16", "fp8", "int8", "w8a8", "int4", "mxfp4", "nvfp4"):
        record = model_record(llama, dtype=dtype)
        mem = memory_estimate(llama, seq_len=4096, dtype=dtype, kv_dtype=record["kv_dtype"]).inference
        e = estimate_inference(llama, "h100-sxm", dtype=dtype, batch=1)
        assert record["weights_bytes"] == mem.weights_bytes == e.weights_bytes
        assert record["kv_dtype"] == e.kv_dtype  # quantised weights keep a 16-bit KV cache unless asked
    # compute: FP8 at the FP8 peak on H100, dequantised on A100; W8A8 at the INT8 peak where the GPU has one.
    assert estimate_inference(llama, "h100-sxm", dtype="fp8", batch=1).compute_dtype == "fp8"
    a100 = estimate_inference(llama, "a100-80gb", dtype="fp8", batch=1)
    assert a100.compute_dtype == "bf16" and "dequantised" in a100.assumptions["compute_dtype_source"]
    assert estimate_inference(llama, "tpu-v5e", dtype="w8a8", batch=1).compute_dtype == "int8"
    assert estimate_inference(llama, "h100-sxm", dtype="int4", batch=1).compute_dtype == "bf16"


def test_a_4bit_kv_cache_is_refused_the_same_way_everywhere() -> None:
    llama = load("llama-2-7b")
    message = "kv_dtype: a int4 KV cache is not modelled"
    with pytest.raises(InvalidValueError, match=message):
        estimate_inference(llama, "h100-sxm", kv_dtype="int4")
    with pytest.raises(InvalidValueError, match=message):
        memory_estimate(llama, seq_len=128, kv_dtype="int4")
    for command in (["estimate-inference", "llama-2-7b", "--gpu", "h100-sxm", "--kv-dtype", "int4"],
                    ["memory", "llama-2-7b", "--kv-dtype", "int4"]):  # fmt: skip
        code, _, err = invoke(*command)
        assert code == 1 and message.replace("kv_dtype", "--kv-dtype") in err  # the CLI names its flag


# -- bad inputs ----------------------------------------------------------------------------------------------


def test_a_model_that_does_not_fit_says_what_would() -> None:
    e = estimate_inference(load("llama-2-70b"), "h100-sxm")
    assert not e.fits and e.max_batch == 0 and e.ttft_s is None and e.tokens_per_s is None
    assert e.suggestions == ("`tp` 2", "`dtype` fp8")
    message = e.fit_message()
    assert message.startswith("llama-2-70b does not fit one h100-sxm even at batch 1")
    assert message.endswith("it would fit with `tp` 2 or `dtype` fp8")
    code, _, err = invoke("estimate-inference", "llama-2-70b", "--gpu", "h100-sxm")
    shown = message.replace("`tp` 2", "--tp 2").replace("`dtype` fp8", "--dtype fp8")  # the CLI names its flags
    assert code == 1 and err.strip() == f"error: {shown}"
    code, out, err = invoke("estimate-inference", "llama-2-70b", "llama-2-7b", "--gpu", "h100-sxm", "-f", "json")
    assert code == 0 and f"note: {shown}" in err
    rows = json.loads(out)["estimates"]
    assert [r["fits"] for r in rows] == [False, True] and rows[0]["ttft_s"] is None


def test_a_model_whose_heads_stop_tensor_parallelism_at_a_node_is_told_pipeline_stages() -> None:
    """Llama 4 Maverick (40 heads: tp 8 at most within a node) holds 746 GiB of bf16 weights: no tp alone fits
    an 80 GB H100 (93 GiB at tp 8), so the suggestion adds two pipeline stages, and that setup then fits."""
    maverick = load("llama-4-maverick")
    e = estimate_inference(maverick, "h100-sxm")
    assert not e.fits and e.suggestions[0] == "`tp` 8 `pp` 2"
    assert estimate_inference(maverick, "h100-sxm", tp=8, pp=2).fits
    assert not estimate_inference(maverick, "h100-sxm", tp=8).fits
    code, _, err = invoke("estimate-inference", "llama-4-maverick", "--gpu", "h100-sxm")
    assert code == 1 and "it would fit with --tp 8 --pp 2" in err


def test_a_given_batch_that_does_not_fit_names_that_batch() -> None:
    # The sizes in the message are those of the requested batch, so the message must not say "at batch 1".
    e = estimate_inference(load("llama-2-70b"), "h100-sxm", batch=64, batching="static")
    assert not e.fits and e.max_batch == 0 and e.batch == 64
    message = e.fit_message()
    assert message.startswith("llama-2-70b: batch 64 does not fit one h100-sxm at 2048+512 tokens (")
    assert "even at batch 1" not in message and "nor does batch 1; it would fit with " in message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tp": 3}, "must divide llama-2-7b's n_heads"),
        ({"tp": 2, "n_gpus": 3}, "must be a multiple of `tp` x `pp`"),
        ({"prompt_len": 0}, "prompt_len must be a positive integer"),
        ({"batch": 0}, "batch must be a positive integer"),
        ({"flop_efficiency": 1.5}, "flop_efficiency must be a fraction in"),
        ({"bandwidth_efficiency": 0}, "bandwidth_efficiency must be a fraction in"),
        ({"link_bandwidth_bytes_per_s": -1}, "must be positive"),
        ({"reserve_fraction": 1}, "reserve_fraction must be in"),
        ({"gpu_memory_utilization": 1.2}, "gpu_memory_utilization must be a fraction"),
        ({"kv_dtype": "int4"}, "not modelled"),
        ({"compute_dtype": "fp4"}, "no fp4 peak"),
        ({"dtype": "fp12"}, "unknown dtype"),
        ({"batching": "dynamic"}, "batching must be one of"),
        ({"prefix_hit_rate": 1.0}, "prefix_hit_rate must be in"),
        ({"max_ttft_s": 0}, "max_ttft_s must be positive"),
        ({"pp": 100}, "must not exceed"),
    ],
)
def test_bad_inputs(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        estimate_inference(load("llama-2-7b"), "h100-sxm", **kwargs)


def test_bad_cli_inputs() -> None:
    code, _, err = invoke("estimate-inference", "llama-2-7b", "--gpu", "h100")
    assert code == 1 and "unknown GPU 'h100'; did you mean" in err
    code, _, err = invoke("estimate-inference", "llama-2-7b")
    assert code == 2 and "--gpu" in err
    code, _, err = invoke("estimate-inference", "llama-2-7b", "--gpu", "h100-sxm", "--batch", "2", "--max-batch")
    assert code == 2 and "not both" in err
    code, _, err = invoke("estimate-inference", "llama-2-7b", "--gpu", "h100-sxm", "--link-bandwidth", "fast")
    assert code == 1 and "--link-bandwidth" in err


def test_tensor_parallel_link_comes_from_the_catalog() -> None:
    a100 = estimate_inference(load("llama-2-13b"), gpu="a100-80gb", tp=2, batch=1)
    h100 = estimate_inference(load("llama-2-13b"), gpu="h100-sxm", tp=2, batch=1)
    # One direction is half the quoted NVLink total: 300 GB/s on A100, 450 GB/s on H100.
    assert a100.assumptions["link_bandwidth_bytes_per_s"] == 300e9
    assert h100.assumptions["link_bandwidth_bytes_per_s"] == 450e9
    with pytest.raises(InvalidValueError, match="pass `link_bandwidth_bytes_per_s`"):
        estimate_inference(load("llama-2-13b"), gpu="mi300x", tp=2, batch=1)
    code, _, err = invoke("estimate-inference", "llama-2-13b", "--gpu", "mi300x", "--tp", "2")
    assert code == 1 and "pass --link-bandwidth (one direction" in err
    single = estimate_inference(load("llama-2-7b"), gpu="mi300x", tp=1, batch=1)
    assert single.assumptions["link_bandwidth_bytes_per_s"] is None


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
    bench = parse_bench(BENCH, source="h100.json")
    assert bench.device == "NVIDIA H100 80GB HBM3" and len(bench.rows) == 4 and bench.n_ignored == 3
    assert bench_device_matches(bench, accelerator("h100-sxm")) is True
    assert bench_device_matches(bench, accelerator("a100-80gb")) is False
    for document, message in (
        ([], "expected a JSON object"),
        ({"schema_version": 2, "results": []}, "unsupported schema_version 2"),
        ({"schema_version": 1}, "no 'results' list"),
        ({"schema_version": 1, "results": [{"phase": "decode"}]}, r"no usable attention measurement .*1 result"),
    ):
        with pytest.raises(InvalidValueError, match=message):
            parse_bench(document, source="x.json")


def test_calibration_times_attention_at_the_measured_rates() -> None:
    bench = parse_bench(BENCH, source="h100.json")
    llama = load("llama-2-70b")
    row = select_bench_row(bench, llama, phase="decode", batch=64, seq_len=2300, dtype="bf16")
    assert row is not None and row.impl == "sdpa-flash" and row.n_kv_heads == 8  # same shape, then the fastest
    e = estimate_inference(llama, "h100-sxm", tp=4, batch=64, calibration=bench)
    plain = estimate_inference(llama, "h100-sxm", tp=4, batch=64)
    assert e.assumptions["attention_bytes_per_s"] == 1.5e12
    assert e.tpot_default_s == pytest.approx(plain.tpot_s) and e.ttft_default_s == pytest.approx(plain.ttft_s)
    assert e.tpot_s != plain.tpot_s
    calibration = e.assumptions["calibration"]
    assert calibration["decode_bytes_per_s"] == 1.5e12 and calibration["prefill_flop_per_s"] == 4e14
    with pytest.raises(InvalidValueError, match="measured on 'NVIDIA H100 80GB HBM3', not on NVIDIA A100"):
        estimate_inference(llama, "a100-80gb", tp=4, calibration=bench)


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


# -- the CLI ---------------------------------------------------------------------------------------------------


def test_cli_json_equals_the_library() -> None:
    args = ["llama-2-70b", "llama-2-70b:n_kv_heads=64", "mistral-7b", "deepseek-v2-lite"]
    flags = ["--tp", "4", "--kv-dtype", "fp8", "--prompt", "4096", "--generate", "256", "--max-tpot", "0.05"]
    code, out, _ = invoke("estimate-inference", *args, "--gpu", "h100-sxm", *flags, "--format", "json")
    assert code == 0
    document = json.loads(out)
    options = {"tp": 4, "kv_dtype": "fp8", "prompt_len": 4096, "generate_len": 256, "max_tpot_s": 0.05}
    expected = [estimate_inference(load(a), "h100-sxm", **options) for a in args]
    assert document["estimates"] == [json.loads(json.dumps(e.to_record())) for e in expected]
    required = {"name", "gpu", "fits", "weights_bytes", "kv_cache_bytes", "max_batch", "ttft_s", "tpot_s",
                "request_latency_s", "tokens_per_s", "tokens_per_s_per_gpu", "usd_per_million_tokens",
                "usd_per_million_input_tokens", "usd_per_million_output_tokens", "usd_per_million_tokens_blended",
                "curve", "exceeds_max_seq_len", "context_note", "bound", "assumptions"}  # fmt: skip
    assert required <= set(document["estimates"][0])
    assert document["schema_version"] == 1


def test_cli_table_shows_the_curve_and_the_assumptions() -> None:
    code, out, _ = invoke("estimate-inference", "mistral-7b", "--gpu", "h100-sxm", "--batch", "8", "--curve",
                          "-f", "markdown")  # fmt: skip
    assert code == 0
    for text in ("mistral-7b", "TTFT", "TPOT", "throughput vs latency", "flop_efficiency", "bandwidth_efficiency",
                 "link_bandwidth_bytes_per_s", "price_source", "defaults used", "$/M in", "$/M out"):  # fmt: skip
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
        "print(sorted(m for m in ('torch', 'pandas', 'fvcore', 'numpy', 'matplotlib') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_quant_schemes_aliases_and_refusals() -> None:
    from llmarch.calc.quant import canonical_weight_dtype, check_kv_dtype, default_kv_dtype, quant_scheme

    assert canonical_weight_dtype("int4-awq") == canonical_weight_dtype("GPTQ") == "int4"
    assert canonical_weight_dtype("bfloat16") == "bf16" and canonical_weight_dtype("fp4") == "nvfp4"
    # Bytes per linear weight, scales included: AWQ group 128 (fp16 scale + 4-bit zero), MXFP4 E8M0 per 32,
    # NVFP4 FP8 per 16 (the formats' published layouts).
    assert quant_scheme("int4").linear_bytes_per_weight == 0.5 + 2.5 / 128
    assert quant_scheme("mxfp4").linear_bytes_per_weight == 0.5 + 1 / 32
    assert quant_scheme("nvfp4").linear_bytes_per_weight == 0.5 + 1 / 16
    assert quant_scheme("fp8").compute == "fp8" and quant_scheme("int8").compute == "16-bit"
    assert [default_kv_dtype(d) for d in ("fp16", "fp8", "int4", "mxfp4")] == ["fp16", "fp8", "bf16", "bf16"]
    assert check_kv_dtype("float8") == "fp8"
    for bad in ("int4", "nvfp4"):
        with pytest.raises(InvalidValueError, match="KV cache is not modelled"):
            check_kv_dtype(bad)
    with pytest.raises(InvalidValueError, match="unknown dtype 'fp7' for the weights"):
        quant_scheme("fp7")


def test_weight_dtypes_override_a_parameter_group() -> None:
    mixtral = load("mixtral-8x7b")
    experts = count_params(mixtral).breakdown["moe.experts"]
    # gpt-oss stores its routed experts in MXFP4 (4.25 bits) and the rest in bf16.
    mxfp4 = mixtral.replace(weight_dtypes={"experts": "mxfp4"})
    saved = experts * (2 - (0.5 + 1 / 32))
    assert weights_bytes(mixtral, "bf16") - weights_bytes(mxfp4, "bf16") == pytest.approx(saved)
    e = estimate_inference(mxfp4, "h100-sxm", tp=2, batch=1)
    assert e.weights_bytes == pytest.approx(weights_bytes(mxfp4, "bf16") / 2)


def test_cli_new_flags_equal_the_library() -> None:
    flags = "--tp 2 --pp 2 --batch 8 --static --prefix-hit-rate 0.25 --draft llama-2-7b --draft-len 3".split()
    flags += "--acceptance-rate 0.6 --gpu-memory-utilization 0.85".split()
    code, out, err = invoke("estimate-inference", "llama-2-70b", "--gpu", "h100-sxm", *flags, "-f", "json")
    assert code == 0, err
    expected = estimate_inference(
        load("llama-2-70b"), "h100-sxm", tp=2, pp=2, batch=8, batching="static", prefix_hit_rate=0.25,
        draft=load("llama-2-7b"), draft_len=3, acceptance_rate=0.6, gpu_memory_utilization=0.85,
    )  # fmt: skip
    assert json.loads(out)["results"] == [json.loads(json.dumps(expected.to_record()))]
    assert expected.batching == "static" and expected.assumptions["speculative"].startswith("draft llama-2-7b")
    code, out, _ = invoke("estimate-inference", "llama-2-7b", "--gpu", "h100-sxm", "--request-rate", "2", "-f", "json")
    assert code == 0 and json.loads(out)["results"][0]["load_source"] == "request rate"


def test_serving_plot_log_axes_read_as_plain_numbers() -> None:
    """Issue 15: log ticks say 2000 and 20k, never matplotlib's 2x10^3."""
    pytest.importorskip("matplotlib")
    from llmarch.report.plots import _pyplot, plain_log_ticks

    figure, axis = _pyplot().subplots()
    axis.set_xscale("log")
    axis.set_yscale("log")
    plain_log_ticks(axis)
    formatter = axis.yaxis.get_major_formatter()
    assert [formatter(v, 0) for v in (2.0, 50.0, 2000.0, 20000.0)] == ["2", "50", "2000", "20k"]
    _pyplot().close(figure)
