"""`llmarch design`: the vectorised sweep equals count_params, presets round-trip, and every candidate's numbers
equal what `compare`, `estimate-cost` and `estimate-inference` give for that shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from llmarch.calc import design as shapes
from llmarch.calc.flops import training_flops_per_token
from llmarch.calc.memory import kv_cache
from llmarch.calc.params import count_params
from llmarch.catalog import presets
from llmarch.catalog.hardware import accelerator
from llmarch.cli import app
from llmarch.core.errors import InvalidValueError
from llmarch.serving import design as pipeline

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@st.composite
def shape_and_space(draw: Any) -> tuple[dict[str, Any], shapes.ShapeSpace]:
    """A random shape of the sweep's family (any attention layout, dense or MoE) and its conventions."""
    d_head = draw(st.sampled_from([16, 32, 64, 128]))
    n_heads = draw(st.integers(1, 24))
    kind = draw(st.sampled_from([0, 1]))
    kv = n_heads if kind == 1 else draw(st.sampled_from([k for k in range(1, n_heads + 1) if n_heads % k == 0]))
    window = draw(st.sampled_from([0, 0, 64, 4096]))
    moe = draw(st.sampled_from([None, None, (8, 2), (64, 6)]))
    space = shapes.ShapeSpace(
        vocab_size=draw(st.integers(1, 70000)), tie_embeddings=draw(st.booleans()), moe=moe,
        mla_rope_dim=draw(st.sampled_from([8, 64])), context=draw(st.sampled_from([100, 2048, 8192])),
        seq_len=draw(st.sampled_from([1, 512, 4096])), kv_dtype=draw(st.sampled_from(["bf16", "fp8"])),
    )  # fmt: skip
    shape = {
        "d_model": d_head * n_heads, "n_layers": draw(st.integers(1, 12)), "d_ff": draw(st.integers(1, 64)) * 64,
        "d_head": d_head, "n_heads": n_heads, "n_kv_heads": kv, "kind": kind,
        "mla_kv_rank": draw(st.sampled_from([32, 512])) if kind == 1 else 0,
        "window": 0 if kind == 1 else window, "global_every": draw(st.sampled_from([0, 2, 6])) if window else 0,
    }  # fmt: skip
    return shape, space


@settings(max_examples=300, deadline=None)
@given(shape_and_space())
def test_vectorised_counts_equal_the_library(case: tuple[dict[str, Any], shapes.ShapeSpace]) -> None:
    """Parameters (total, active), training FLOPs per token and KV bytes per token of the numpy formulas equal
    count_params, training_flops_per_token and kv_cache of the same shape built as an ArchConfig."""
    shape, space = case
    arrays = {k: np.array([v], dtype=np.int64) for k, v in shape.items()}
    total, active = shapes.shape_params(arrays, space)
    config = shapes.shape_config(shape, space, name="x", source="test")
    counts = count_params(config)
    assert (int(total[0]), int(active[0])) == (counts.total, counts.active)
    flops = shapes.shape_training_flops_per_token(arrays, space)[0]
    assert flops == pytest.approx(training_flops_per_token(config, space.seq_len), rel=1e-12)
    kv = kv_cache(config, seq_len=space.context, dtype=space.kv_dtype).total_bytes / space.context
    assert shapes.shape_kv_bytes_per_token(arrays, space)[0] == pytest.approx(kv, rel=1e-12)


@pytest.mark.parametrize("moe", [None, (8, 2)])
def test_sweep_keeps_the_band_and_counts_exactly(moe: tuple[int, int] | None) -> None:
    space = shapes.ShapeSpace(moe=moe, max_kv_bytes_per_token=100_000)
    found = shapes.sweep(7e9, space)
    assert found.n_evaluated > len(found) > 100
    size = found.shapes["params_active"] if moe else found.shapes["params_total"]
    assert np.all(np.abs(size / 7e9 - 1) <= space.tolerance)
    assert np.all(found.shapes["kv_bytes_per_token"] <= 100_000)
    aspect = found.shapes["d_model"] / found.shapes["n_layers"]
    assert np.all((aspect >= 64) & (aspect <= 128))
    assert np.all(found.shapes["n_heads"] % 8 == 0) and np.all(found.shapes["d_ff"] % 256 == 0)
    if moe:
        assert np.all(found.shapes["params_total"] > 3 * found.shapes["params_active"])
    for index in np.random.default_rng(0).choice(len(found), 50):
        shapes.checked_config(shapes.row(found.shapes, int(index)), space, name="x", source="test")


def test_pruning_keeps_exactly_the_same_shapes() -> None:
    keys = ["d_model", "n_layers", "d_ff", "d_head", "n_kv_heads", "kind", "mla_kv_rank", "window", "global_every"]
    for space in (shapes.ShapeSpace(), shapes.ShapeSpace(moe=(16, 2), d_heads=(128,))):
        pruned, full = shapes.sweep(3e9, space), shapes.sweep(3e9, space, prune=False)
        assert full.n_evaluated > pruned.n_evaluated
        assert full.n_considered == full.n_evaluated == pruned.n_considered
        assert sorted(zip(*[pruned.shapes[k].tolist() for k in keys], strict=True)) == sorted(
            zip(*[full.shapes[k].tolist() for k in keys], strict=True)
        )


def test_budgets_convert_gpu_time_at_the_mfu() -> None:
    peak = accelerator("h100-sxm").peak("bf16")
    by_hours = shapes.resolve_budget(gpu_hours=1e5, gpu="h100-sxm", mfu=0.5)
    assert by_hours.compute_flops == pytest.approx(1e5 * 3600 * peak * 0.5)
    by_days = shapes.resolve_budget(days=10, gpu="h100-sxm", n_gpus=100, mfu=0.5)
    assert by_days.gpu_hours == pytest.approx(24_000)
    by_usd = shapes.resolve_budget(budget_usd=3e5, gpu="h100-sxm", usd_per_gpu_hour=3.0)
    assert by_usd.gpu_hours == pytest.approx(1e5)
    with pytest.raises(InvalidValueError, match="exactly one budget"):
        shapes.resolve_budget(compute_flops=1e20, gpu_hours=5)
    with pytest.raises(InvalidValueError, match="n_gpus"):
        shapes.resolve_budget(days=3, gpu="h100-sxm")


def _design_json(*args: str) -> dict[str, Any]:
    code, out, err = invoke("design", *args, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_design_reproduces_table3_and_costs_match_the_other_commands(tmp_path: Path) -> None:
    """The 1B row of Chinchilla Table 3; the written preset reloads with the same exact count, and the best
    candidate's numbers equal `compare`, `estimate-cost` and `estimate-inference` for that preset."""
    preset = tmp_path / "tiny-chinchilla.yaml"
    doc = _design_json("--compute", "1.21e20", "--gpu", "h100-sxm", "--n-gpus", "8", "--mfu", "0.45",
                       "--output-preset", str(preset), "--top", "3")  # fmt: skip
    assert doc["compute_optimal"]["params"] == pytest.approx(1e9, rel=0.05)
    assert doc["compute_optimal"]["tokens"] == pytest.approx(20.2e9, rel=0.05)
    best = doc["designs"][0]
    assert len(doc["designs"]) == 3 and best["rank"] == 1
    assert best["params_total"] == pytest.approx(1e9, rel=0.05)
    assert best["tokens"] == pytest.approx(20.2e9, rel=0.05)
    config = presets.load(str(preset))
    assert count_params(config).total == best["params_total"]
    assert config.name == "tiny-chinchilla" and "designed by llmarch" in config.source

    compare = json.loads(invoke("compare", str(preset), "--format", "json")[1])["models"][0]
    for key in ("params_total", "params_active", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "d_ff"):
        assert compare[key] == best[key], key
    tokens = repr(best["tokens"])
    cost_args = ["--gpu", "h100-sxm", "--n-gpus", "8", "--mfu", "0.45", "--tokens", tokens, "--seq-len", "4096"]
    cost = json.loads(invoke("estimate-cost", str(preset), *cost_args, "--format", "json")[1])["estimates"][0]
    assert cost["gpu_hours"] == pytest.approx(best["training_gpu_hours"], rel=1e-12)
    assert cost["cost_usd"] == pytest.approx(best["training_usd"], rel=1e-12)
    assert cost["training_flops"] == pytest.approx(best["training_flops"], rel=1e-12)
    serve = json.loads(
        invoke(
            "estimate-inference",
            str(preset),
            "--gpu",
            "h100-sxm",
            "--tp",
            str(best["serving_tp"]),
            "--prompt-len",
            str(8192 - 512),
            "--generate-len",
            "512",
            "--format",
            "json",
        )[1]
    )
    row = serve["estimates"][0]
    assert row["usd_per_million_tokens"] == pytest.approx(best["serving_usd_per_million_tokens"], rel=1e-12)
    assert row["total_bytes"] == pytest.approx(best["serving_memory_per_gpu_bytes"], rel=1e-12)


def test_written_preset_loads_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = pipeline.design(shapes.resolve_budget(compute_flops=1e21), top=1, name="mine")
    (tmp_path / "mine.yaml").write_text(pipeline.preset_yaml(result.designs[0], name="mine"))
    monkeypatch.setenv(presets.PRESET_PATH_ENV, str(tmp_path))
    presets._index_cached.cache_clear()
    loaded = presets.load("mine")
    assert count_params(loaded).total == result.designs[0].shape["params_total"]
    assert loaded.training.tokens == pytest.approx(result.target_tokens, abs=1)


def test_more_inference_demand_designs_smaller_models() -> None:
    sizes = []
    for tokens in ("0", "1e12", "1e13"):
        doc = _design_json("--compute", "1e23", "--inference-tokens", tokens, "--top", "1")
        sizes.append((doc["target_params"], doc["target_tokens"], doc["designs"][0]["params_total"]))
    assert sizes[0][0] > sizes[1][0] > sizes[2][0]
    assert sizes[0][1] < sizes[1][1] < sizes[2][1]
    assert sizes[0][2] > sizes[1][2] > sizes[2][2]


def test_kv_budget_and_moe_in_the_designs() -> None:
    doc = _design_json("--compute", "1e22", "--max-kv-per-token", "16KiB", "--context", "32768", "--moe", "8/2")
    for design in doc["designs"]:
        assert design["kv_bytes_per_token"] <= 16 * 1024
        assert design["params_total"] > design["params_active"] and design["n_experts"] == 8
        assert design["params_active"] == pytest.approx(doc["target_params"], rel=0.02)


def test_plot_writes_a_png(tmp_path: Path) -> None:
    path = tmp_path / "pareto.png"
    code, _, err = invoke("design", "--compute", "1e21", "--plot", str(path))
    assert code == 0, err
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_impossible_constraints_are_one_line_errors() -> None:
    code, _, err = invoke("design", "--compute", "1e22", "--max-kv-per-token", "1")
    assert code == 1 and "no shape within" in err
    code, _, err = invoke("design", "--gpu-hours", "100", "--compute", "1e20")
    assert code == 1 and "exactly one budget" in err
    code, _, err = invoke("design", "--compute", "1e40")
    assert code == 1 and "d_model values" in err


def test_json_equals_the_library() -> None:
    from llmarch.report.tables import plain

    doc = _design_json("--compute", "3e21", "--inference-tokens", "1e11", "--top", "2")
    result = pipeline.design(
        shapes.resolve_budget(compute_flops=3e21), inference_tokens=1e11, top=2,
        source=pipeline.design_source(shapes.resolve_budget(compute_flops=3e21), law="chinchilla-1",
                                      inference_tokens="1e11"),
    )  # fmt: skip
    assert doc["results"] == plain(result.records())
    assert doc["kind"] == "design" and doc["designs"] == doc["results"]
    assert doc["inference_aware"]["params"] == pytest.approx(result.inference_aware.params)
    assert doc["shapes_evaluated"] == result.n_evaluated


def test_planner_costs_the_best_candidates_like_llmarch_plan(tmp_path: Path) -> None:
    """With --n-gpus and the training planner installed, a design's training GPU-hours are its tokens at the
    tokens/s per GPU of the fastest plan `llmarch plan` finds for that preset (same GPUs, batch, context)."""
    pytest.importorskip("llmarch.calc.plan")
    preset = tmp_path / "planned.yaml"
    doc = _design_json("--compute", "1.21e20", "--n-gpus", "8", "--top", "2", "--output-preset", str(preset))
    best = doc["designs"][0]
    assert best["training_cost_model"] == "plan"
    code, out, err = invoke("plan", str(preset), "--gpu", "h100-sxm", "--n-gpus", "8", "--global-batch", "1024",
                            "--seq-len", "4096", "--format", "json")  # fmt: skip
    assert code == 0, err
    plan = json.loads(out)["results"][0]
    assert best["training_plan"]["tp"] == plan["tp"] and best["training_plan"]["pp"] == plan["pp"]
    assert best["training_tokens_per_s_per_gpu"] == pytest.approx(plan["tokens_per_s_per_gpu"], rel=1e-9)
    assert best["training_gpu_hours"] == pytest.approx(best["tokens"] / plan["tokens_per_s_per_gpu"] / 3600, rel=1e-9)
