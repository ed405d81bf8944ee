"""Presets: every shipped file loads, is exact against its checkpoint, and the modify-a-preset workflows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llmarch import count_params, load, preset_names
from llmarch.catalog import presets
from llmarch.core.config import ArchConfig
from llmarch.core.errors import InvalidConfigError, UnknownPresetError

DATA = Path(__file__).parent / "data"

#: Every preset name MISSION.md section 1 asks for.
MISSION_PRESETS = (
    "transformer-base transformer-big gpt-1 gpt-2 gpt-2-medium gpt-2-large gpt-2-xl "
    "gpt-3-small gpt-3-medium gpt-3-large gpt-3-xl gpt-3-2.7b gpt-3-6.7b gpt-3-13b gpt-3-175b "
    "llama-7b llama-13b llama-33b llama-65b llama-2-7b llama-2-13b llama-2-70b "
    "llama-3-8b llama-3-70b llama-3.1-405b mistral-7b mixtral-8x7b mixtral-8x22b mpt-7b mpt-30b "
    "falcon-7b falcon-40b falcon-180b phi-1 phi-1.5 phi-2 t5-small t5-base t5-large t5-3b t5-11b "
    "gemma-2b gemma-7b yi-34b starcoder qwen2-7b opt-6.7b opt-175b bloom-176b "
    "deepseek-v2-lite deepseek-v3 code-llama-7b vicuna-7b zephyr-7b"
).split()

ALL = preset_names()


def test_every_mission_preset_is_shipped() -> None:
    missing = sorted(set(MISSION_PRESETS) - set(ALL))
    assert not missing, f"presets missing: {missing}"


@pytest.mark.parametrize("name", ALL)
def test_preset_loads_with_provenance(name: str) -> None:
    config = load(name)
    assert config.name == name
    assert "http" in config.source or "arXiv" in config.source, "source: a config URL or a paper table"
    assert config.family and config.year and config.description
    assert config.reference_params is not None, "every preset states the count it must reproduce"
    path = presets.preset_info(name).path
    assert path.stem == name


@pytest.mark.parametrize("name", ALL)
def test_preset_count_matches_reference(name: str) -> None:
    """Checkpoints: equal to sum(p.numel()) of the HF implementation. Paper-only models: within 2% (5% for
    the 2017 Transformer, whose paper rounds and does not give its exact vocabulary)."""
    config = load(name)
    total = count_params(config).total
    assert config.reference_params is not None
    if config.reference_exact:
        assert total == config.reference_params
    else:
        tolerance = 0.05 if config.family == "transformer" else 0.02
        assert abs(total - config.reference_params) / config.reference_params <= tolerance


# -- the five checkpoints of shared/reference/param_counts.json -------------------------------------------

REFERENCE = json.loads((DATA / "reference_param_counts.json").read_text())["models"]


@pytest.mark.parametrize("ref", REFERENCE, ids=[r["preset"] for r in REFERENCE])
def test_reference_counts_exact_with_split(ref: dict) -> None:
    counts = count_params(load(ref["preset"]))
    assert counts.total == ref["params_total"]
    assert counts.embedding == ref["params_embedding"]
    assert counts.lm_head == ref["params_lm_head"]
    assert counts.active == (ref["params_active"] or ref["params_total"])
    groups = counts.groups
    assert groups["attention"] + groups["cross_attention"] == ref["breakdown"]["attention"]
    assert groups["mlp"] + groups["moe"] == ref["breakdown"]["mlp"]
    assert groups["norm"] == ref["breakdown"]["norm"]


def test_gpt3_sizes_follow_table_2_1() -> None:
    table = {"small": 125e6, "medium": 350e6, "large": 760e6, "xl": 1.3e9, "2.7b": 2.7e9, "6.7b": 6.7e9,
             "13b": 13.0e9, "175b": 175.0e9}  # fmt: skip
    for size, published in table.items():
        total = count_params(load(f"gpt-3-{size}")).total
        assert abs(total - published) / published < 0.02, size


def test_llama_65b_follows_paper_not_course() -> None:
    # The course table gives 64 layers; the paper (Table 2) and the checkpoint have 80.
    assert load("llama-65b").n_layers == 80


def test_attention_kinds_of_seed_presets() -> None:
    assert load("llama-2-7b").attention == "mha"
    assert load("llama-2-70b").attention == "gqa"
    assert load("falcon-7b").attention == "mqa"
    assert load("starcoder").attention == "mqa"
    assert load("deepseek-v3").attention == "mla"
    assert load("mistral-7b").sliding_window == 4096
    assert load("mpt-7b").position == "alibi"
    assert load("t5-base").position == "relative"
    assert load("gemma-7b").d_head * load("gemma-7b").n_heads != load("gemma-7b").d_model


# -- extends, overrides, user folders ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["code-llama-7b", "vicuna-7b", "zephyr-7b"])
def test_derived_presets_extend_a_base(name: str) -> None:
    data = yaml.safe_load(presets.preset_info(name).path.read_text())
    assert "extends" in data
    base = load(data["extends"])
    derived = load(name)
    for key, value in data.items():
        if key in ("extends", "training") or key not in ArchConfig.__dataclass_fields__:
            continue
        assert getattr(derived, key) == value
    assert derived.n_layers == base.n_layers and derived.d_model == base.d_model


def test_inline_override_changes_only_named_fields() -> None:
    base = load("llama-2-7b")
    variant = load("llama-2-7b:n_kv_heads=8,sliding_window=4096")
    assert variant.name == "llama-2-7b:n_kv_heads=8,sliding_window=4096"
    assert (variant.n_kv_heads, variant.sliding_window, variant.attention) == (8, 4096, "gqa")
    assert variant.reference_params is None  # the checkpoint's count no longer applies
    provenance = {"source": base.source, "training": base.to_dict()["training"]}
    assert variant.to_dict() | {"n_kv_heads": 32, "sliding_window": None, "name": base.name, **provenance} == (
        base.to_dict() | {"reference_params": None, "reference_exact": False, "reference_source": "", "hf_id": None}
    )
    # The variant says what changed and quotes, not claims, the base's sources.
    assert variant.source.startswith("an inline override: llama-2-7b changes n_kv_heads, sliding_window (")
    assert variant.training.tokens == base.training.tokens and base.training.source
    assert variant.training.source == f"llama-2-7b's published run, not this variant's ({base.training.source})"
    # K and V shrink 4x; nothing else changes.
    delta = count_params(base).total - count_params(variant).total
    assert delta == 32 * 2 * 4096 * (32 - 8) * 128


def test_override_nested_training_field_and_human_count() -> None:
    variant = load("llama-2-7b:training.tokens=3T,name=my-llama")
    assert variant.training.tokens == 3e12
    assert variant.name == "my-llama"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("llama-2-7b:n_kv_heads=7", "n_kv_heads"),
        ("llama-2-7b:n_kv_heds=8", "n_kv_heds"),
        ("llama-2-7b:d_model=-1", "d_model"),
        ("llama-2-7b:position=spiral", "position"),
        ("llama-2-7b:tie_embeddings=maybe", "tie_embeddings"),
        ("llama-2-7b:training.tokns=1", "training.tokns"),
        ("llama-2-7b:n_experts_per_token=2", "n_experts_per_token"),
    ],
)
def test_bad_override_names_the_field(spec: str, field: str) -> None:
    with pytest.raises(InvalidConfigError) as err:
        load(spec)
    assert f"field '{field}'" in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_field_suggests_the_right_one() -> None:
    with pytest.raises(InvalidConfigError, match="did you mean 'n_kv_heads'"):
        load("llama-2-7b:n_kv_heds=8")


def test_unknown_preset_suggests_close_names() -> None:
    with pytest.raises(UnknownPresetError) as err:
        load("llama2-7b")
    assert err.value.suggestions == ["llama-2-7b"]
    with pytest.raises(UnknownPresetError, match="llmarch presets"):
        load("no-such-model-at-all")


def test_lookup_is_exact_not_substring() -> None:
    with pytest.raises(UnknownPresetError):
        load("llama")


def test_preset_file_path_and_extends(tmp_path: Path) -> None:
    path = tmp_path / "wide-llama.yaml"
    path.write_text("extends: llama-2-7b\nname: wide-llama\nd_ff: 16384\n")
    config = load(str(path))
    assert config.name == "wide-llama" and config.d_ff == 16384 and config.n_layers == 32
    assert count_params(config).total - count_params(load("llama-2-7b")).total == 32 * 3 * 4096 * (16384 - 11008)


def test_user_preset_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tiny.yaml").write_text(
        "name: tiny\nsource: test\narchitecture: decoder\nn_layers: 2\nd_model: 64\nn_heads: 4\nd_ff: 256\n"
        "vocab_size: 100\nmax_seq_len: 128\nposition: rope\nnorm: rmsnorm\nnorm_position: pre\n"
        "final_norm: true\nmlp: swiglu\ntie_embeddings: true\n"
    )
    monkeypatch.setenv(presets.PRESET_PATH_ENV, str(tmp_path))
    config = load("tiny")
    assert (config.n_kv_heads, config.d_head) == (4, 16)  # the two documented conveniences
    assert "tiny" in preset_names()
    # 100*64 embedding + 2 layers x (4*64*64 attention + 3*64*256 MLP + 2*64 norms) + 64 final norm
    assert count_params(config).total == 100 * 64 + 2 * (4 * 64 * 64 + 3 * 64 * 256 + 2 * 64) + 64


def test_python_yaml_tags_are_rejected_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(InvalidConfigError, match="invalid YAML"):
        load(str(path))
    assert not marker.exists()


def test_malformed_files_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(InvalidConfigError, match="invalid YAML at line"):
        load(str(bad))
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(InvalidConfigError, match="mapping"):
        load(str(listy))
    with pytest.raises(InvalidConfigError, match="no such file"):
        load(str(tmp_path / "missing.yaml"))
    cycle = tmp_path / "cycle.yaml"
    cycle.write_text(f"extends: {cycle}\n")
    with pytest.raises(InvalidConfigError, match="cycle"):
        load(str(cycle))


def test_missing_required_field_is_named(tmp_path: Path) -> None:
    path = tmp_path / "incomplete.yaml"
    path.write_text("name: incomplete\nsource: test\nn_heads: 4\nd_model: 64\n")
    with pytest.raises(InvalidConfigError, match="field 'architecture': is required"):
        load(str(path))


# -- family bases and inherited training facts ------------------------------------------------------------


@pytest.mark.parametrize("base", ["_gpt-3", "_t5", "_gpt-2", "_llama"])
def test_family_bases_are_extended_not_listed_nor_loaded(base: str) -> None:
    family = base.removeprefix("_")
    members = [c for c in presets.load_all() if c.family == family]
    assert len(members) >= 4 and base not in preset_names()
    for config in members:
        data = yaml.safe_load(presets.preset_info(config.name).path.read_text())
        assert data["extends"] == base and data["source"]  # every file keeps its own source
    with pytest.raises(InvalidConfigError, match="family base"):
        load(base)
    with pytest.raises(UnknownPresetError) as err:
        load(family + "-x")
    assert not any(s.startswith("_") for s in err.value.suggestions)


def test_gpt_3_members_state_only_what_differs() -> None:
    # Brown et al. 2020 (arXiv:2005.14165), Table 2.1: shapes, batch and learning rate differ; 300B tokens each.
    small, large = load("gpt-3-small"), load("gpt-3-175b")
    assert (small.training.tokens, large.training.tokens) == (3.0e11, 3.0e11)
    assert (small.training.learning_rate, large.training.learning_rate) == (6.0e-4, 0.6e-4)
    assert (small.training.global_batch_tokens, large.training.global_batch_tokens) == (0.5e6, 3.2e6)
    assert small.vocab_size == large.vocab_size == 50257 and small.max_seq_len == 2048


def test_extends_inherits_training_only_when_asked(tmp_path: Path) -> None:
    assert load("llama-2-7b").training.tokens == 2e12  # Touvron et al. 2023 (arXiv:2307.09288), Table 1
    for name in ("vicuna-7b", "zephyr-7b"):
        assert load(name).training.tokens is None  # a fine-tune does not show its base's pre-training as its own
    assert load("code-llama-7b").training.tokens == 5e11  # its own: 500B tokens of code (arXiv:2308.12950)
    asked = tmp_path / "asked.yaml"
    asked.write_text("extends: llama-2-7b\nname: asked\ninherit_training: true\ntraining:\n  learning_rate: 1.0e-4\n")
    config = load(str(asked))
    assert (config.training.tokens, config.training.learning_rate) == (2e12, 1e-4)
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: llama-2-7b\nname: bad\ninherit_training: maybe\n")
    with pytest.raises(InvalidConfigError, match="inherit_training"):
        load(str(bad))
