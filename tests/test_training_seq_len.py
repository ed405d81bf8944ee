"""Pre-training sequence lengths of presets whose serving context is longer than the one they were pre-trained at.

training_seq_len (llmarch.calc.flops) is the default context of every training calculator; without
a published training.seq_len it falls back to max_seq_len, which for these models is the context of a short
final extension stage, not of the bulk of the pre-training tokens.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from llmarch import load
from llmarch.calc import cost
from llmarch.calc.flops import training_flops_per_token, training_seq_len, training_seq_len_source
from llmarch.cli import app

QWEN3_SIZES = ("0.6b", "1.7b", "4b", "8b", "14b", "32b", "30b-a3b", "235b-a22b")

# (preset, published pre-training sequence length, where it is published)
PUBLISHED = [
    # Qwen Team 2024, Qwen2 Technical Report (arXiv:2407.10671), section 3.2: 4,096, raised to 32,768 only in the
    # concluding phase of pre-training.
    ("qwen2-7b", 4096, "arXiv:2407.10671"),
    # Qwen Team 2024, Qwen2.5 Technical Report (arXiv:2412.15115), section 3.3: an initial 4,096-token phase, then
    # 32,768 in the final pre-training stage, for every open-weight size.
    *[(f"qwen2.5-{size}", 4096, "arXiv:2412.15115") for size in ("0.5b", "1.5b", "3b", "7b", "14b", "32b", "72b")],
    # Qwen Team 2025, Qwen3 Technical Report (arXiv:2505.09388), section 3.2: S1 (over 30T tokens) and S2 (about 5T)
    # at 4,096; only the long-context stage (hundreds of billions of tokens) at 32,768. Dense and MoE alike.
    *[(f"qwen3-{size}", 4096, "arXiv:2505.09388") for size in QWEN3_SIZES],
    # Gemma Team 2025, Gemma 3 Technical Report (arXiv:2503.19786), section 5.3: pre-trained with 32K sequences;
    # the 4B, 12B and 27B models are scaled to 128K (RoPE factor 8) at the end of pre-training.
    *[(f"gemma-3-{size}", 32768, "arXiv:2503.19786") for size in ("1b", "4b", "12b", "27b")],
    # Abdin et al. 2024, Phi-4 Technical Report (arXiv:2412.08905), section 3: 4,096 context for pre-training;
    # section 3.3: a 250B-token midtraining stage extends it to 16K.
    ("phi-4", 4096, "arXiv:2412.08905"),
    # Allal et al. 2025, SmolLM2 (arXiv:2502.02737), section 4.6: 2k context, extended to 8k from a checkpoint
    # taken before the final 75B tokens.
    ("smollm2-1.7b", 2048, "arXiv:2502.02737"),
    # Granite-3.0-8B-Base model card: sequence length 4096 (12T tokens); Granite-3.1-8B-Base model card: extended
    # from 4K to 128K in a long-context stage of about 500B tokens.
    ("granite-3.1-8b", 4096, "Granite-3.1-8B-Base model card"),
    # DeepSeek-R1 (arXiv:2501.12948) is DeepSeek-V3-Base after RL; V3 was pre-trained at 4K (arXiv:2412.19437,
    # section 4.2).
    ("deepseek-r1", 4096, "arXiv:2412.19437"),
]


@pytest.mark.parametrize(("name", "seq_len", "cited"), PUBLISHED, ids=[row[0] for row in PUBLISHED])
def test_published_pre_training_sequence_length(name: str, seq_len: int, cited: str) -> None:
    config = load(name)
    assert training_seq_len(config) == seq_len
    assert training_seq_len_source(config) == "preset training.seq_len"
    assert cited in (config.training.source or "")  # the preset names where the number comes from


def test_extended_context_stays_the_serving_context() -> None:
    # Only the training default moves: the checkpoints still serve their long context.
    assert load("qwen2.5-7b").max_seq_len == 131072 and load("gemma-3-27b").max_seq_len == 131072
    assert load("phi-4").max_seq_len == 16384 and load("qwen3-8b").max_seq_len == 40960


def test_derived_preset_takes_its_base_pre_training_length_but_not_its_tokens() -> None:
    # deepseek-r1 extends deepseek-v3 without inherit_training: it states the sequence length itself, and the
    # base's 14.8T pre-training tokens are still not shown as R1's own.
    r1, v3 = load("deepseek-r1"), load("deepseek-v3")
    assert training_seq_len(r1) == training_seq_len(v3) == 4096
    assert r1.max_seq_len == v3.max_seq_len == 163840
    assert r1.training.tokens is None and v3.training.tokens == 1.48e13


def test_estimate_cost_default_is_priced_at_the_pre_training_length() -> None:
    config = load("qwen2.5-7b")
    default = cost.estimate_training_cost(config, "h100-sxm")
    at_serving_context = cost.estimate_training_cost(config, "h100-sxm", seq_len=config.max_seq_len)
    assert default.assumptions["seq_len"] == 4096
    assert default.assumptions["seq_len_source"] == "preset training.seq_len"
    # Same tokens, same MFU: GPU-hours scale with training FLOPs per token, whose attention term grows with the
    # context: at 131072 tokens the attention matmuls cost about twice the weight matmuls, at 4096 about 1/16.
    ratio = training_flops_per_token(config, 4096) / training_flops_per_token(config, config.max_seq_len)
    assert default.gpu_hours == pytest.approx(at_serving_context.gpu_hours * ratio, rel=1e-12)
    assert ratio < 0.4  # 0.37: the default was overstated 2.7 times
    assert default.training_flops == pytest.approx(training_flops_per_token(config, 4096) * 1.8e13, rel=1e-12)


def test_cli_estimate_cost_json_reports_the_preset_length() -> None:
    result = CliRunner().invoke(app, ["estimate-cost", "gemma-3-27b", "--gpu", "h100-sxm", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    row = json.loads(result.stdout)["results"][0]
    assert (row["assumptions"]["seq_len"], row["assumptions"]["seq_len_source"]) == (32768, "preset training.seq_len")
    library = cost.estimate_training_cost(load("gemma-3-27b"), "h100-sxm")
    assert row["gpu_hours"] == pytest.approx(library.gpu_hours, rel=1e-12)
