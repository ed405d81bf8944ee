"""The training step-time model (llmarch.calc.step_time): hand-worked pieces and published measurements."""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

import numpy as np
import pytest

from llmarch.calc import step_time as st
from llmarch.calc.plan import check_run
from llmarch.catalog.hardware import accelerator, training_efficiency
from llmarch.catalog.presets import load
from llmarch.core.config import ArchConfig

# The team's reference facts live in ../shared beside the checkout (a worktree may sit one folder deeper).
_ANCHOR = Path("shared", "reference", "training_anchor_korthikanti2022.json")
KORTHIKANTI = next(
    (p / _ANCHOR for p in Path(__file__).resolve().parents[1:4] if (p / _ANCHOR).exists()),
    Path("/work") / _ANCHOR,
)


def gpt(row: dict) -> ArchConfig:
    """A Megatron-LM GPT of Korthikanti et al. 2022 Table 3: learned positions, biased LayerNorm, 4h GELU MLP."""
    return ArchConfig.from_dict({
        "name": row["name"], "source": "arXiv:2205.05198 Table 3", "architecture": "decoder",
        "n_layers": row["n_layers"], "d_model": row["d_model"], "n_heads": row["n_heads"], "d_ff": row["d_ff"],
        "vocab_size": row["vocab_size"], "max_seq_len": row["seq_len"], "position": "learned", "norm": "layernorm",
        "norm_bias": True, "norm_position": "pre", "final_norm": True, "mlp": "gelu", "tie_embeddings": True,
        "qkv_bias": True, "attn_out_bias": True, "mlp_bias": True,
    })  # fmt: skip


def korthikanti_rows() -> list[dict]:
    return json.loads(KORTHIKANTI.read_text())["runs"]


def rates(gpu: str = "a100-80gb") -> st.Rates:
    acc = accelerator(gpu)
    return st.rates(acc, training_efficiency(acc))


def knobs(**kw: object) -> st.Knobs:
    base = {"tp": 1, "pp": 1, "dp": 1, "cp": 1, "ep": 1, "micro_batch": 1, "virtual_stages": 1,
            "sequence_parallel": False, "recompute": 0, "zero": 0, "grad_accum": 1}  # fmt: skip
    base.update(kw)
    return st.Knobs(**{k: np.asarray(v) for k, v in base.items()})


def test_korthikanti_table_5_mean_error_within_5_percent() -> None:
    # Korthikanti et al. 2022 (arXiv:2205.05198) Table 5: eight measured iterations, 22B to 1T on Selene A100s.
    errors = []
    for row in korthikanti_rows():
        run = {"name": row["name"], "gpu": row["gpu"], "n_gpus": row["n_gpus"],
               "global_batch": row["global_batch_seqs"],
               "seq_len": row["seq_len"], "measured_tokens_per_s_per_gpu": row["tokens_per_s_per_gpu"],
               "knobs": {k: row[k] for k in ("tp", "pp", "virtual_stages", "sequence_parallel", "micro_batch",
                                             "recompute")} | {"cp": 1, "zero": 0},
               "options": {"flash": False, "dropout": True}}  # fmt: skip
        check = check_run(run, gpt(row))
        assert (check.plan.tp, check.plan.pp, check.plan.dp) == (row["tp"], row["pp"], row["dp"])
        errors.append(check.error)
    assert statistics.mean(abs(e) for e in errors) <= 0.05
    assert max(abs(e) for e in errors) <= 0.10


def test_korthikanti_table_4_per_layer_times() -> None:
    # Korthikanti et al. 2022 Table 4: one 22B layer (s 2048, b 4, h 6144, t 8) forward / backward in ms:
    # baseline 7.7 / 11.9, sequence parallel 7.2 / 11.8, full recompute 7.7 / 19.5, selective 7.7 / 13.2,
    # selective + sequence parallel 7.2 / 13.1.
    row = korthikanti_rows()[1]
    shape = st.model_shape(gpt(row), seq_len=2048)
    published = {(False, 0): (7.7, 11.9), (True, 0): (7.2, 11.8), (False, 2): (7.7, 19.5), (False, 1): (7.7, 13.2),
                 (True, 1): (7.2, 13.1)}  # fmt: skip
    for (sp, rc), (fwd_ms, bwd_ms) in published.items():
        k = knobs(tp=8, micro_batch=4, sequence_parallel=sp, recompute=rc)
        lt = st.layer_times(shape, rates(), k, seq_len=2048, moe=False, flash=False, dropout=True)
        tp_fwd = lt.tp_comm / 2 if not sp else None
        total = float(lt.total) * 1e3
        assert total == pytest.approx(fwd_ms + bwd_ms, rel=0.12), (sp, rc)
        if tp_fwd is not None:
            assert float(lt.compute_fwd + tp_fwd) * 1e3 == pytest.approx(fwd_ms, rel=0.15)


def test_collective_time_hand_worked() -> None:
    # nccl-tests: an all-reduce moves 2 (n - 1) / n of the buffer at the bus bandwidth; 1 GB over 8 ranks at
    # 100 GB/s takes 17.5 ms plus the latency; one rank communicates nothing.
    assert float(st.collective_time("all_reduce", 1e9, 8, 100e9, 1e-5)) == pytest.approx(0.0175 + 1e-5)
    assert float(st.collective_time("all_gather", 1e9, 8, 100e9, 0.0)) == pytest.approx(0.00875)
    assert float(st.collective_time("all_reduce", 1e9, 1, 100e9, 1e-5)) == 0.0


def test_gemm_time_is_a_roofline_with_a_shape_ramp() -> None:
    r = rates()
    big = float(st.gemm_time(8192, 8192, 8192, r))
    efficiency = 2 * 8192**3 / big / r.peak_flop_per_s
    ramp = (8192 / (8192 + r.gemm_half_dim)) ** 3
    assert efficiency == pytest.approx(r.gemm_fraction * ramp)
    # A skinny GEMM (k = 16) is memory-bound: its time is the bytes moved over the achieved bandwidth.
    skinny = float(st.gemm_time(65536, 65536, 16, r))
    assert skinny == pytest.approx(2 * (65536 * 16 * 2 + 65536 * 65536) / r.hbm_bytes_per_s)


def test_pipeline_bubble_and_unequal_stages() -> None:
    # Narayanan et al. 2021: the bubble is (p - 1) / v mean-stage times; 126 layers on 16 stages leave a
    # fullest stage of 8 layers and a last stage of 7 layers plus the head (Llama 3's layout).
    config = load("llama-3.1-405b")
    shape = st.model_shape(config, seq_len=8192)
    r = rates("h100-sxm")
    k = knobs(tp=8, pp=16, dp=64, micro_batch=1, grad_accum=32, sequence_parallel=True)
    b1 = st.step_breakdown(shape, r, k, seq_len=8192)
    k2 = knobs(tp=8, pp=16, dp=64, micro_batch=1, grad_accum=32, sequence_parallel=True, virtual_stages=2)
    b2 = st.step_breakdown(shape, r, k2, seq_len=8192)
    assert float(b2["bubble"]) == pytest.approx(float(b1["bubble"]) / 2, rel=0.05)
    stage = st._stage_times(shape, r, k, 8192, True, False)
    assert float(stage["n_slow"]) in (7, 8)
    per_layer = sum(float(v) for v in stage["per_layer"].values())
    assert float(b1["bubble"]) == pytest.approx(15 * (126 * per_layer + float(stage["head"])) / 16 + 15 * float(
        stage["slow"]["pp_comm"]), rel=1e-6)  # fmt: skip


def test_full_recompute_adds_a_forward_and_selective_the_attention() -> None:
    shape = st.model_shape(load("llama-2-7b"), seq_len=4096)
    r = rates()
    none, selective, full = (
        st.layer_times(shape, r, knobs(tp=2, recompute=c), seq_len=4096, moe=False) for c in (0, 1, 2)
    )
    assert float(full.recompute) == pytest.approx(float(none.compute_fwd + none.tp_comm / 2))
    assert 0 < float(selective.recompute) < 0.2 * float(none.compute_fwd)
    assert float(none.recompute) == 0.0


def test_zero3_traffic_grows_with_micro_batches_and_hides_behind_compute() -> None:
    config = load("llama-2-7b")
    shape = st.model_shape(config, seq_len=4096)
    r = rates()
    one = st.step_breakdown(shape, r, knobs(dp=64, zero=3, grad_accum=1), seq_len=4096)
    zero1 = st.step_breakdown(shape, r, knobs(dp=64, zero=1, grad_accum=1), seq_len=4096)
    assert float(one["dp_comm"]) >= 0 and float(zero1["dp_comm"]) > 0
    # Across nodes (dp 64 = 8 nodes) the optimizer updates only 1/64 of the parameters under ZeRO >= 1.
    zero0 = st.step_breakdown(shape, r, knobs(dp=64, zero=0, grad_accum=1), seq_len=4096)
    assert float(zero0["optimizer"]) == pytest.approx(64 * float(zero1["optimizer"]))


def test_moe_all_to_all_and_experts() -> None:
    config = load("mixtral-8x7b")
    shape = st.model_shape(config, seq_len=4096)
    r = rates("h100-sxm")
    local = st.layer_times(shape, r, knobs(ep=8, dp=8), seq_len=4096, moe=True)
    across = st.layer_times(shape, r, knobs(tp=8, ep=8, dp=8), seq_len=4096, moe=True)
    assert float(local.ep_comm) > 0 and float(across.ep_comm) > 0
    dense = st.layer_times(shape, r, knobs(), seq_len=4096, moe=False)
    assert float(local.ep_comm) > float(dense.ep_comm) == 0.0


def test_overlapped_communication_costs_its_excess_and_a_share_of_the_rest() -> None:
    # 3 s of communication behind 2 s of compute: 1 s exposed, and the 2 s hidden slow the compute by the
    # share of SMs NCCL occupies; a floor (the last bucket) is always exposed.
    r = rates()
    assert float(st.overlapped(3.0, 2.0, r)) == pytest.approx(1.0 + 2.0 * r.comm_sm_fraction)
    assert float(st.overlapped(1.0, 2.0, r)) == pytest.approx(r.comm_sm_fraction)
    assert float(st.overlapped(1.0, 2.0, r, floor=0.25)) == pytest.approx(0.25 + 0.75 * r.comm_sm_fraction)
    assert 0 < r.comm_sm_fraction < 0.3


def test_ring_traffic_fraction_is_shared_by_training_and_serving() -> None:
    """One formula for ring collectives: 2 (n-1)/n of the buffer for all-reduce, (n-1)/n for the others."""
    import numpy as np

    from llmarch.calc.step_time import ring_traffic_fraction
    from llmarch.serving.roofline import allreduce_time_s

    assert ring_traffic_fraction("all_reduce", 8) == 1.75 and ring_traffic_fraction("all_to_all", 4) == 0.75
    assert ring_traffic_fraction("all_gather", 1) == 0.0
    assert list(ring_traffic_fraction("reduce_scatter", np.array([2.0, 8.0]))) == [0.5, 0.875]
    # serving's all-reduce: 10 us + 1.75 x 1 GB at 100 GB/s on 8 GPUs
    assert allreduce_time_s(1e9, 8, 1e11, 1e-5) == 1e-5 + 1.75 * 1e9 / 1e11


def test_shared_experts_are_timed_at_their_own_width() -> None:
    """One shared expert of 4 x the routed width (Qwen1.5-MoE-A2.7B: 5632 against 1408) costs what four of the
    routed width cost, and more than one of the routed width: the width is d_ff_shared, not d_ff_expert."""
    base = load("mixtral-8x7b")
    wide = dataclasses.replace(base, n_shared_experts=1, d_ff_shared=4 * base.expert_d_ff)
    four = dataclasses.replace(base, n_shared_experts=4)
    one = dataclasses.replace(base, n_shared_experts=1)
    r = rates("h100-sxm")

    def compute(config: ArchConfig) -> float:
        shape = st.model_shape(config, seq_len=4096)
        times = st.layer_times(shape, r, knobs(ep=8, dp=8), seq_len=4096, moe=True)
        return float(times.compute_fwd) + float(times.compute_bwd)

    assert compute(wide) == pytest.approx(compute(four), rel=1e-12)
    assert compute(wide) > compute(one) > compute(base)
