"""Published training-token counts of presets that lacked one, and the cost estimates they now default to.

`llmarch estimate-cost` (and `report`, `design`) cost a preset's pre-training from `training.tokens`; these
presets had none, so every estimate needed --tokens. Each count below is the one the cited paper or model
card publishes; the preset's `training.source` names it.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from llmarch import load
from llmarch.calc import cost
from llmarch.calc.flops import six_nd, training_flops_per_token, training_seq_len
from llmarch.calc.params import count_params
from llmarch.cli import app

# (preset, published training tokens, text the preset's training.source must contain)
PUBLISHED = [
    # OLMo Team 2024, 2 OLMo 2 Furious (arXiv:2501.00656), section 2.3 ("Overall"): 4.05T tokens in all for 7B
    # (3.90T in pretraining stage 1 plus three souped 50B-token mid-training runs), 5.6T for 13B (5T + 3 x 100B +
    # 300B), 6.6T for 32B (6.06T + 3 x 100B + 300B). Mid-training is counted: it is training compute.
    ("olmo-2-7b", 4.05e12, "arXiv:2501.00656"),
    ("olmo-2-13b", 5.6e12, "arXiv:2501.00656"),
    ("olmo-2-32b", 6.6e12, "arXiv:2501.00656"),
    # OPT-175B: the authors' final training update (facebookresearch/metaseq, projects/OPT/chronicles/
    # final_update.md, 7 January 2022): the run completed on 300B tokens, over a corpus of 180B tokens (Zhang et
    # al. 2022, arXiv:2205.01068, section 2.3; 180B is the corpus, not the tokens trained on).
    ("opt-175b", 3.0e11, "chronicles/final_update.md"),
    # microsoft/phi-4 model card: training data 9.8T tokens (Abdin et al. 2024, arXiv:2412.08905, section 3:
    # about 10T).
    ("phi-4", 9.8e12, "microsoft/phi-4 model card"),
    # microsoft/Phi-4-mini-instruct model card: training data totaling 5 trillion tokens.
    ("phi-4-mini", 5.0e12, "Phi-4-mini-instruct model card"),
    # microsoft/Phi-3.5-MoE-instruct model card: trained on an offline dataset of 4.9T tokens.
    ("phi-3.5-moe", 4.9e12, "Phi-3.5-MoE-instruct model card"),
    # Granite-3.0-8B-Base model card: 12T tokens (10T stage 1 + 2T stage 2); Granite-3.1-8B-Base model card: a
    # long-context stage of about 500B tokens on top of it.
    ("granite-3.1-8b", 1.25e13, "Granite-3.1-8B-Base model card"),
]

# Fine-tunes whose base's pre-training is not their own (no inherit_training); models whose makers published
# no token count (Mistral AI, Cohere; OpenAI says only "trillions" for gpt-oss); OPT-6.7B, whose run length is
# published only as its LR schedule's (300B tokens), and whose 180B corpus is not the count it was trained on.
NOT_PUBLISHED = [
    "vicuna-7b",
    "zephyr-7b",
    "deepseek-r1",
    "opt-6.7b",
    "mistral-7b",
    "mistral-7b-v0.3",
    "mistral-nemo-12b",
    "mistral-small-24b",
    "mistral-large-2",
    "mixtral-8x7b",
    "mixtral-8x22b",
    "command-r",
    "gpt-oss-20b",
    "gpt-oss-120b",
]


@pytest.mark.parametrize(("name", "tokens", "cited"), PUBLISHED, ids=[row[0] for row in PUBLISHED])
def test_published_training_tokens(name: str, tokens: float, cited: str) -> None:
    config = load(name)
    assert config.training.tokens == tokens
    assert cited in (config.training.source or "")  # the preset names where the number comes from
    assert cost.resolve_tokens(config, None) == (tokens, f"preset training.tokens: {config.training.source}")


@pytest.mark.parametrize("name", NOT_PUBLISHED)
def test_no_count_is_invented(name: str) -> None:
    assert load(name).training.tokens is None


# OLMo 2 paper, Table 6: training FLOPs (x 1e23, 6 x tokens x parameters, Kaplan et al. 2020) printed to one
# decimal, with section 2.3's stage-1 counts. The printed FLOPs match the totals that include mid-training
# (within 2%: rounding and the paper's parameter counts), not the stage-1 counts (5-11% short).
OLMO_TABLE_6 = [("olmo-2-7b", 1.8, 3.90e12), ("olmo-2-13b", 4.6, 5.0e12), ("olmo-2-32b", 13.0, 6.06e12)]


@pytest.mark.parametrize(("name", "flops_e23", "stage_1"), OLMO_TABLE_6, ids=[row[0] for row in OLMO_TABLE_6])
def test_olmo_2_tokens_reproduce_the_papers_flops(name: str, flops_e23: float, stage_1: float) -> None:
    config = load(name)
    active = count_params(config).active
    assert six_nd(active, config.training.tokens or 0.0) / 1e23 == pytest.approx(flops_e23, rel=0.02)
    assert six_nd(active, stage_1) / 1e23 < 0.95 * flops_e23


def test_estimate_cost_needs_no_tokens_for_olmo_2() -> None:
    config = load("olmo-2-7b")
    estimate = cost.estimate_training_cost(config, "h100-sxm")
    assert estimate.assumptions["tokens"] == 4.05e12 and "tokens" in estimate.assumptions["defaults"]
    assert estimate.assumptions["tokens_source"] == f"preset training.tokens: {config.training.source}"
    # Same count given explicitly: the same estimate.
    given = cost.estimate_training_cost(config, "h100-sxm", tokens=4.05e12)
    assert estimate.gpu_hours == pytest.approx(given.gpu_hours, rel=1e-12)
    per_token = training_flops_per_token(config, training_seq_len(config))
    assert estimate.training_flops == pytest.approx(per_token * 4.05e12, rel=1e-12)

    result = CliRunner().invoke(app, ["estimate-cost", "olmo-2-7b", "--gpu", "h100-sxm", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    row = json.loads(result.stdout)["results"][0]
    assert row["assumptions"]["tokens"] == 4.05e12
    assert row["gpu_hours"] == pytest.approx(estimate.gpu_hours, rel=1e-12)
    assert row["training_flops"] == pytest.approx(estimate.training_flops, rel=1e-12)
