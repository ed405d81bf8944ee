"""Hugging Face config.json mapping: exact counts per model_type, the real checkpoints' files, defaults, errors.

Nothing here imports transformers or torch. The expected totals were measured once, by a maintainer, with
`python scripts/hf_param_count.py FILE.json` (transformers 5.23.0, torch 2.13.0: the model built on the
meta device from exactly the dict shown, sum(p.numel()) with tied weights once) and are hard-coded below.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmarch.calc.params import count_params
from llmarch.catalog import presets
from llmarch.catalog.hf import SUPPORTED_MODEL_TYPES, config_from_hf
from llmarch.core.config import ArchConfig
from llmarch.core.errors import InvalidConfigError

HF_CONFIGS = Path(__file__).parent / "data" / "hf_configs"
PRESETS = Path(__file__).parent.parent / "presets"
V = 100  # vocabulary of the tiny configs

# fmt: off
# (id, config.json, transformers' sum(p.numel()) measured with scripts/hf_param_count.py on that dict)
TINY: list[tuple[str, dict[str, Any], int]] = [
    # Llama: omitted num_key_value_heads (= heads), tie_word_embeddings (false), biases (none).
    ("llama", {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
               "intermediate_size": 96, "vocab_size": V}, 82752),
    ("llama-gqa-bias-tied", {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
                             "num_attention_heads": 8, "num_key_value_heads": 2, "intermediate_size": 96,
                             "vocab_size": V, "attention_bias": True, "mlp_bias": True,
                             "tie_word_embeddings": True}, 64896),
    # Mistral: head_dim 24 != hidden_size / heads (16).
    ("mistral", {"model_type": "mistral", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "head_dim": 24, "intermediate_size": 96, "vocab_size": V}, 86848),
    ("mixtral", {"model_type": "mixtral", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "intermediate_size": 96, "vocab_size": V, "num_local_experts": 4,
                 "num_experts_per_tok": 2}, 185664),
    ("qwen2", {"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2, "intermediate_size": 96, "vocab_size": V, "tie_word_embeddings": True,
               "use_sliding_window": False, "sliding_window": 32}, 68416),
    # Gemma: omitted head_dim is 256 (GemmaConfig), not hidden_size / heads.
    ("gemma", {"model_type": "gemma", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 1, "intermediate_size": 96, "vocab_size": V}, 371264),
    ("gemma-head-dim", {"model_type": "gemma", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                        "num_key_value_heads": 4, "head_dim": 32, "intermediate_size": 96, "vocab_size": V,
                        "hidden_act": "gelu"}, 109120),
    ("phi3", {"model_type": "phi3", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "intermediate_size": 96, "vocab_size": V, "sliding_window": 48,
              "pad_token_id": 0, "eos_token_id": 1}, 74560),
    # GPT-2: n_inner null = 4 x n_embd.
    ("gpt2", {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 32, "vocab_size": V,
              "n_inner": None}, 108544),
    ("gpt2-inner-untied", {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 32,
                           "vocab_size": V, "n_inner": 80, "activation_function": "relu",
                           "tie_word_embeddings": False}, 69536),
    ("openai-gpt", {"model_type": "openai-gpt", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 32,
                    "vocab_size": V}, 108416),
    # GPT-BigCode: multi_query defaults to true.
    ("gpt-bigcode", {"model_type": "gpt_bigcode", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 32,
                     "vocab_size": V}, 96064),
    ("gpt-bigcode-mha", {"model_type": "gpt_bigcode", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 32,
                         "vocab_size": V, "multi_query": False, "n_inner": 72}, 61072),
    ("gpt-neox", {"model_type": "gpt_neox", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                  "intermediate_size": 96, "vocab_size": V, "max_position_embeddings": 32}, 71616),
    ("gpt-neox-sequential", {"model_type": "gpt_neox", "hidden_size": 64, "num_hidden_layers": 2,
                             "num_attention_heads": 4, "intermediate_size": 96, "vocab_size": V,
                             "use_parallel_residual": False, "attention_bias": False, "rotary_pct": 0.5,
                             "tie_word_embeddings": True}, 64704),
    ("gptj", {"model_type": "gptj", "n_embd": 64, "n_layer": 2, "n_head": 4, "rotary_dim": 8, "vocab_size": V,
              "n_positions": 32}, 112228),
    ("phi", {"model_type": "phi", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "intermediate_size": 96, "vocab_size": V, "partial_rotary_factor": 0.25}, 71460),
    ("phi-gqa-tied", {"model_type": "phi", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                      "num_key_value_heads": 2, "intermediate_size": 96, "vocab_size": V,
                      "tie_word_embeddings": True}, 56740),
    # Falcon-40B/180B style: GQA, parallel block with two norms (num_ln_in_parallel_attn defaults to 2).
    ("falcon-new", {"model_type": "falcon", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 8,
                    "num_kv_heads": 2, "new_decoder_architecture": True, "vocab_size": V,
                    "tie_word_embeddings": False}, 99456),
    # Falcon-7B style: the defaults (multi_query, parallel_attn with one shared norm, no bias, RoPE).
    ("falcon-mqa", {"model_type": "falcon", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                    "vocab_size": V}, 92800),
    # Falcon-RW style: ALiBi, biases, MHA, sequential block.
    ("falcon-rw-alibi", {"model_type": "falcon", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                         "vocab_size": V, "alibi": True, "bias": True, "multi_query": False,
                         "parallel_attn": False}, 106496),
    ("falcon-new-one-norm", {"model_type": "falcon", "hidden_size": 64, "num_hidden_layers": 2,
                             "num_attention_heads": 8, "num_kv_heads": 4, "new_decoder_architecture": True,
                             "num_ln_in_parallel_attn": 1, "ffn_hidden_size": 80, "vocab_size": V}, 51840),
    # MPT: ALiBi, so no position table even with learned_pos_emb true.
    ("mpt", {"model_type": "mpt", "d_model": 64, "n_layers": 2, "n_heads": 4, "vocab_size": V, "max_seq_len": 32,
             "attn_config": {"alibi": True, "attn_type": "multihead_attention"}, "learned_pos_emb": True,
             "no_bias": True, "expansion_ratio": 4}, 105024),
    ("t5", {"model_type": "t5", "d_model": 64, "d_kv": 16, "d_ff": 96, "num_layers": 2, "num_decoder_layers": 3,
            "num_heads": 4, "vocab_size": V}, 200128),
    # T5 defaults: d_kv 64, d_ff 2048, 32 buckets, num_decoder_layers = num_layers.
    ("t5-defaults", {"model_type": "t5", "d_model": 64, "num_layers": 1, "num_heads": 2, "vocab_size": V}, 629568),
    # T5 v1.1 / Flan-T5: hf_param_count.py measured 179456 because transformers 5 forces T5's head to be tied;
    # the checkpoints keep a separate lm_head (see llmarch/hf.py), so + V x d_model = 6400.
    ("t5-v1.1-untied", {"model_type": "t5", "d_model": 64, "d_kv": 16, "d_ff": 96, "num_layers": 2,
                        "num_heads": 4, "vocab_size": V, "feed_forward_proj": "gated-gelu",
                        "tie_word_embeddings": False}, 179456 + V * 64),
    ("opt", {"model_type": "opt", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "ffn_dim": 96,
             "vocab_size": V, "max_position_embeddings": 32, "word_embed_proj_dim": 64}, 67392),
    # OPT post-norm (do_layer_norm_before false) has no final norm.
    ("opt-post-nobias", {"model_type": "opt", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                         "ffn_dim": 96, "vocab_size": V, "max_position_embeddings": 32,
                         "do_layer_norm_before": False, "enable_bias": False, "tie_word_embeddings": False}, 72832),
    ("bloom", {"model_type": "bloom", "hidden_size": 64, "n_layer": 2, "n_head": 4, "vocab_size": V}, 106624),
    # DeepSeek-V2-Lite style: full-rank query, one dense layer then MoE with 2 shared experts.
    ("deepseek-v2", {"model_type": "deepseek_v2", "hidden_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
                     "intermediate_size": 96, "vocab_size": V, "q_lora_rank": None, "kv_lora_rank": 32,
                     "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 12, "n_routed_experts": 4,
                     "num_experts_per_tok": 2, "n_shared_experts": 2, "moe_intermediate_size": 24,
                     "first_k_dense_replace": 1, "moe_layer_freq": 1}, 133664),
    # DeepSeek-V3 style: compressed query, attention biases, two dense layers.
    ("deepseek-v3", {"model_type": "deepseek_v3", "hidden_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
                     "num_key_value_heads": 4, "intermediate_size": 96, "vocab_size": V, "q_lora_rank": 24,
                     "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16,
                     "n_routed_experts": 8, "num_experts_per_tok": 2, "n_shared_experts": 1,
                     "moe_intermediate_size": 24, "first_k_dense_replace": 2, "n_group": 2, "topk_group": 1,
                     "attention_bias": True}, 136424),
]

# Falcon's pre-transformers keys (RefinedWeb remote code). Each count was measured with hf_param_count.py on
# the same model written with today's keys (transformers no longer reads these files).
OLD_FALCON: list[tuple[str, dict[str, Any], int]] = [
    # = "falcon-mqa" above.
    ("RefinedWebModel-7b-style", {"model_type": "RefinedWebModel", "hidden_size": 64, "n_layer": 2, "n_head": 4,
                                  "vocab_size": V, "multi_query": True, "parallel_attn": True, "bias": False,
                                  "alibi": False}, 92800),
    # = "falcon-rw-alibi" above.
    ("RefinedWebModel-rw-style", {"model_type": "RefinedWebModel", "hidden_size": 64, "n_layer": 2, "n_head": 4,
                                  "vocab_size": V, "multi_query": False, "parallel_attn": False, "bias": True,
                                  "alibi": True}, 106496),
    # = {"model_type": "falcon", ..., "num_attention_heads": 8, "num_kv_heads": 2, "new_decoder_architecture": true}
    ("RefinedWeb-40b-style", {"model_type": "RefinedWeb", "hidden_size": 64, "n_layer": 2, "n_head": 8,
                              "n_head_kv": 2, "vocab_size": V, "parallel_attn": True, "bias": False,
                              "alibi": False}, 93056),
]
# fmt: on


# The 2024-2026 model types: tiny configs with their transformers counts, kept as data (long dicts).
TINY_2024 = json.loads((Path(__file__).parent / "data" / "hf_tiny_configs.json").read_text(encoding="utf-8"))["cases"]
# Every checkpoint fixture's measured count (and MoE active count by the README's definition). The Llama 4 files
# say attn_temperature_tuning true where Meta's say 4: transformers 5.24 refuses the integer (a runtime knob that
# builds no parameter).
FIXTURE_COUNTS = json.loads((Path(__file__).parent / "data" / "hf_config_counts.json").read_text(encoding="utf-8"))


def build(data: dict[str, Any]) -> ArchConfig:
    raw = config_from_hf(data, origin="config.json")
    return ArchConfig.from_dict({**raw, "name": "tiny", "source": "tests/test_hf.py"}, origin="config.json")


@pytest.mark.parametrize(("data", "expected"), [pytest.param(d, n, id=i) for i, d, n in TINY + OLD_FALCON])
def test_tiny_config_count_equals_transformers(data: dict[str, Any], expected: int) -> None:
    assert count_params(build(data)).total == expected


@pytest.mark.parametrize("case", TINY_2024, ids=[c["id"] for c in TINY_2024])
def test_tiny_2024_config_count_equals_transformers(case: dict[str, Any]) -> None:
    assert count_params(build(case["config"])).total == case["transformers_params"]


def test_every_supported_model_type_has_a_measured_tiny_config() -> None:
    measured = {d["model_type"] for _, d, _ in TINY + OLD_FALCON} | {c["config"]["model_type"] for c in TINY_2024}
    assert measured == set(SUPPORTED_MODEL_TYPES)


def test_old_falcon_keys_map_like_new_ones() -> None:
    old = config_from_hf(OLD_FALCON[0][1], origin="x")
    new = config_from_hf(tiny("falcon-mqa"), origin="x")
    assert old == new
    assert old["family"] == "falcon" and old["n_kv_heads"] == 1 and old["parallel_block_shared_norm"]
    # RWConfig (the remote code these files were written for) defaulted multi_query and parallel_attn to false.
    bare = {"model_type": "RefinedWebModel", "hidden_size": 64, "n_layer": 2, "n_head": 4, "vocab_size": V}
    explicit = {**bare, "model_type": "falcon", "multi_query": False, "parallel_attn": False}
    assert config_from_hf(bare, origin="x") == config_from_hf(explicit, origin="x")


# -- the real checkpoints' config.json files against the presets' exact counts ----------------------------------------
FIXTURES = sorted(HF_CONFIGS.glob("*.json"))
SHAPE_FIELDS = ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "d_ff", "vocab_size")


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_checkpoint_config_matches_preset(path: Path) -> None:
    if not (PRESETS / f"{path.stem}.yaml").is_file():
        pytest.skip(f"no preset {path.stem}.yaml")
    preset = presets.load(path.stem)
    if preset.reference_params is None or not preset.reference_exact:
        pytest.skip(f"{path.stem}: reference_params is not an exact checkpoint count")
    mapped = presets.load(str(path))
    assert count_params(mapped).total == preset.reference_params
    assert {f: getattr(mapped, f) for f in SHAPE_FIELDS} == {f: getattr(preset, f) for f in SHAPE_FIELDS}


def test_llama_2_7b_fixture_maps_every_field() -> None:
    config = presets.load(str(HF_CONFIGS / "llama-2-7b.json"))
    assert (config.architecture, config.position, config.norm, config.mlp, config.tie_embeddings) == (
        "decoder",
        "rope",
        "rmsnorm",
        "swiglu",
        False,
    )
    assert (config.rope_theta, config.max_seq_len, config.family, config.attention) == (10000.0, 4096, "llama", "mha")
    assert count_params(config).total == 6_738_415_616


# -- defaults and particular keys --------------------------------------------------------------------------------------
def tiny(name: str, **changes: Any) -> dict[str, Any]:
    data = dict(next(d for i, d, _ in TINY if i == name))
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


def test_transformers_defaults_fill_omitted_keys() -> None:
    llama = config_from_hf(tiny("llama"), origin="x")
    assert (llama["n_kv_heads"], llama["d_head"], llama["tie_embeddings"], llama["qkv_bias"]) == (4, 16, False, False)
    assert (llama["max_seq_len"], llama["rope_theta"]) == (2048, 10000.0)
    assert config_from_hf(tiny("llama", intermediate_size=...), origin="x")["d_ff"] == 11008
    assert config_from_hf(tiny("gpt2"), origin="x")["d_ff"] == 4 * 64  # n_inner null
    assert config_from_hf(tiny("mixtral"), origin="x")["rope_theta"] == 1e6
    gemma = config_from_hf(tiny("gemma", num_key_value_heads=...), origin="x")
    assert (gemma["n_kv_heads"], gemma["d_head"], gemma["tie_embeddings"]) == (16, 256, True)
    t5 = config_from_hf(tiny("t5-defaults"), origin="x")
    assert (t5["d_ff"], t5["d_head"], t5["relative_attention_buckets"], t5["n_layers"], t5["n_encoder_layers"]) == (
        2048,
        64,
        32,
        1,
        1,
    )
    assert t5["architecture"] == "encoder-decoder" and t5["mlp"] == "relu" and t5["tie_embeddings"]


def test_sliding_window_only_where_used() -> None:
    def window(data: dict[str, Any]) -> tuple[int | None, int | None]:
        config = build(data)
        return config.sliding_window, config.global_every

    assert window(tiny("mistral")) == (4096, None)  # MistralConfig default, as Mistral 7B v0.1
    assert window(tiny("mistral", sliding_window=4096)) == (4096, None)
    assert window(tiny("mistral", sliding_window=None)) == (None, None)  # v0.2 and later
    assert window(tiny("mixtral")) == (None, None)
    assert window(tiny("qwen2")) == (None, None)  # use_sliding_window false
    assert window(tiny("qwen2", use_sliding_window=True, max_window_layers=0)) == (32, None)
    assert window(tiny("qwen2", use_sliding_window=True, max_window_layers=2)) == (None, None)
    alternating = ["sliding_attention", "full_attention"]
    assert window(tiny("qwen2", use_sliding_window=True, layer_types=alternating)) == (32, 2)
    assert window(tiny("phi3")) == (48, None)


def test_rope_and_positions() -> None:
    assert build(tiny("llama", rope_parameters={"rope_type": "default", "rope_theta": 5e5})).rope_theta == 5e5
    scaled = build(tiny("llama", rope_theta=5e5, rope_scaling={"rope_type": "llama3", "factor": 8.0}))
    assert scaled.rope_theta == 5e5 and "llama3" in scaled.notes
    assert build(tiny("gpt-neox")).rotary_dim == 4  # rotary_pct 0.25 of d_head 16
    assert build(tiny("phi")).rotary_dim == 4
    assert build(tiny("gptj")).rotary_dim == 8
    assert build(tiny("bloom")).position == "alibi" and build(tiny("bloom")).embedding_norm
    assert build(tiny("falcon-rw-alibi")).position == "alibi"
    opt = build(tiny("opt"))
    assert (opt.position, opt.position_offset, opt.max_seq_len) == ("learned", 2, 32)
    assert build(tiny("opt-post-nobias")).norm_position == "post" and not build(tiny("opt-post-nobias")).final_norm


def test_mla_and_moe_fields() -> None:
    v3 = build(tiny("deepseek-v3"))
    assert (v3.attention, v3.d_head, v3.d_head_v, v3.mla_q_rank, v3.mla_kv_rank, v3.mla_rope_dim) == (
        "mla",
        24,
        16,
        24,
        32,
        8,
    )
    assert (v3.n_experts, v3.n_experts_per_token, v3.n_shared_experts, v3.d_ff_expert, v3.n_dense_layers) == (
        8,
        2,
        1,
        24,
        2,
    )
    assert build(tiny("deepseek-v2")).mla_q_rank is None
    dense = build(tiny("deepseek-v2", first_k_dense_replace=3))  # no layer left for experts
    assert not dense.is_moe and count_params(dense).total > 0
    mixtral = build(tiny("mixtral"))
    assert (mixtral.n_experts, mixtral.n_experts_per_token, mixtral.n_dense_layers) == (4, 2, 0)


def test_provenance_fields() -> None:
    # Fine-tunes name their base model in _name_or_path (zephyr's says Mistral-7B-v0.1): never taken as hf_id.
    assert "hf_id" not in config_from_hf(tiny("llama", _name_or_path="meta-llama/Llama-2-7b-hf"), origin="x")
    raw = config_from_hf(tiny("gpt-bigcode"), origin="x")
    assert raw["family"] == "gpt_bigcode" and "name" not in raw and "source" not in raw


def test_config_json_is_named_after_its_file_or_folder(tmp_path) -> None:
    from llmarch import load

    folder = tmp_path / "my-llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(tiny("llama")))
    (tmp_path / "other.json").write_text(json.dumps(tiny("llama")))
    assert load(str(folder / "config.json")).name == "my-llama"
    assert load(str(tmp_path / "other.json")).name == "other"
    assert load(str(folder / "config.json")).source == str(folder / "config.json")


# -- errors: one line, naming the file and the key; never a KeyError ---------------------------------------------------
def test_unknown_model_type_lists_supported_types_and_needed_fields() -> None:
    with pytest.raises(InvalidConfigError) as info:
        config_from_hf({"model_type": "brand_new_lm", "hidden_size": 64}, origin="cfg.json")
    message = str(info.value)
    assert info.value.field == "model_type" and "'brand_new_lm'" in message and "cfg.json" in message
    assert all(t in message for t in ("llama", "t5", "deepseek_v3", "falcon", "qwen3_moe", "gpt_oss"))
    assert all(f in message for f in ("n_layers", "d_model", "n_kv_heads", "d_head", "d_ff", "tie_embeddings"))
    assert "\n" not in message


@pytest.mark.parametrize("model_type", ["mamba", "falcon_mamba", "jamba", "rwkv", "recurrent_gemma", "xlstm", "zamba2"])
def test_non_transformers_are_refused_in_one_line(model_type: str) -> None:
    with pytest.raises(InvalidConfigError) as info:
        config_from_hf({"model_type": model_type, "hidden_size": 64, "num_hidden_layers": 2}, origin="cfg.json")
    message = str(info.value)
    assert "not a transformer this tool models" in message and repr(model_type) in message and "\n" not in message


def test_missing_model_type() -> None:
    with pytest.raises(InvalidConfigError) as info:
        config_from_hf({"hidden_size": 64}, origin="cfg.json")
    assert info.value.field == "model_type"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param(tiny("llama", hidden_size=...), "hidden_size", id="llama-hidden_size"),
        pytest.param(tiny("llama", vocab_size=None), "vocab_size", id="llama-null-vocab"),
        pytest.param(tiny("gpt2", n_layer=...), "n_layer", id="gpt2-n_layer"),
        pytest.param(tiny("t5", num_heads=...), "num_heads", id="t5-num_heads"),
        pytest.param(tiny("deepseek-v2", num_experts_per_tok=...), "num_experts_per_tok", id="v2-top-k"),
    ],
)
def test_missing_required_key_is_named(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidConfigError) as info:
        config_from_hf(data, origin="cfg.json")
    assert info.value.field == field and "required" in str(info.value)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param(tiny("llama", hidden_size="big"), "hidden_size", id="string-width"),
        pytest.param(tiny("llama", num_attention_heads=True), "num_attention_heads", id="bool-heads"),
        pytest.param(tiny("llama", num_hidden_layers=0), "num_hidden_layers", id="zero-layers"),
        pytest.param(tiny("llama", tie_word_embeddings="yes"), "tie_word_embeddings", id="string-bool"),
        pytest.param(tiny("llama", hidden_act="tanh"), "hidden_act", id="unknown-activation"),
        pytest.param(tiny("mpt", attn_config=[1]), "attn_config", id="mpt-attn-config-list"),
        pytest.param(tiny("t5", feed_forward_proj="gated-relu"), "feed_forward_proj", id="t5-reglu"),
    ],
)
def test_malformed_value_is_named(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidConfigError) as info:
        config_from_hf(data, origin="cfg.json")
    assert info.value.field == field


@pytest.mark.parametrize(
    ("data", "field"),
    [
        pytest.param(tiny("opt", word_embed_proj_dim=32), "word_embed_proj_dim", id="opt-350m-projection"),
        pytest.param(
            tiny("opt", layer_norm_elementwise_affine=False), "layer_norm_elementwise_affine", id="opt-affine"
        ),
        pytest.param(tiny("deepseek-v2", moe_layer_freq=2), "moe_layer_freq", id="deepseek-moe-freq"),
        pytest.param(tiny("deepseek-v2", attention_bias=True), "attention_bias", id="deepseek-bias-full-q"),
        pytest.param(tiny("deepseek-v3", mlp_bias=True), "mlp_bias", id="deepseek-mlp-bias"),
        pytest.param(tiny("phi", qk_layernorm=True), "qk_layernorm", id="phi-qk-norm"),
        pytest.param(tiny("gpt2", add_cross_attention=True), "add_cross_attention", id="gpt2-cross"),
        pytest.param(
            tiny("mpt", attn_config={"attn_type": "multiquery_attention"}), "attn_config.attn_type", id="mpt-mqa"
        ),
        pytest.param(tiny("mpt", attn_config={"alibi": False}), "attn_config.alibi", id="mpt-no-alibi"),
        pytest.param(tiny("falcon-new", parallel_attn=False), "parallel_attn", id="falcon-new-sequential"),
        pytest.param(
            tiny("qwen2", use_sliding_window=True, max_window_layers=1), "max_window_layers", id="qwen2-partial-window"
        ),
        pytest.param(tiny("llama", is_encoder_decoder=True), "is_encoder_decoder", id="encoder-decoder-llama"),
    ],
)
def test_unsupported_feature_is_refused(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidConfigError) as info:
        config_from_hf(data, origin="cfg.json")
    assert info.value.field == field and "not supported" in str(info.value)


def test_errors_through_preset_loading_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 2}), encoding="utf-8")
    with pytest.raises(InvalidConfigError) as info:
        presets.load(str(path))
    assert str(path) in str(info.value) and info.value.field == "hidden_size"
    path.write_text(json.dumps({"model_type": "bert", "hidden_size": 64}), encoding="utf-8")
    with pytest.raises(InvalidConfigError, match="unsupported model_type 'bert'"):
        presets.load(str(path))


# -- every checkpoint fixture, with or without a preset -----------------------------------------------------------
@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_checkpoint_fixture_counts_equal_transformers(path: Path) -> None:
    counts = count_params(presets.load(str(path)))
    expected = FIXTURE_COUNTS[path.stem]
    assert counts.total == expected["params_total"]
    assert counts.active == expected.get("params_active", expected["params_total"])


def test_every_fixture_has_a_measured_count() -> None:
    assert {p.stem for p in FIXTURES} == set(FIXTURE_COUNTS) - {"_about"}


def test_gpt_oss_20b_active_params_by_hand() -> None:
    # 24 layers x 32 experts, each a biased SwiGLU of 2880 -> 2880 -> 2880; a token uses 4 of the 32.
    config = presets.load(str(HF_CONFIGS / "gpt-oss-20b.json"))
    expert = 3 * 2880 * 2880 + 2 * 2880 + 2880
    routed = 24 * 32 * expert
    counts = count_params(config)
    assert counts.breakdown["moe.experts"] == routed
    assert counts.active == counts.total - routed + routed * 4 // 32 == 4_187_440_704
    assert counts.breakdown["attention.sinks"] == 24 * 64
    assert config.weight_dtypes == {"moe.experts": "mxfp4"}
    assert [config.layer_is_local(i) for i in range(4)] == [True, False, True, False] and config.sliding_window == 128


def test_modern_layouts_map_their_features() -> None:
    gemma3 = presets.load(str(HF_CONFIGS / "gemma-3-27b.json"))  # multimodal file: the text_config
    assert (gemma3.norm_position, gemma3.qk_norm, gemma3.sliding_window, gemma3.global_every) == (
        "sandwich",
        "head",
        1024,
        6,
    )
    assert (gemma3.rope_theta, gemma3.rope_local_theta, gemma3.rope_scaling, gemma3.rope_scaling_factor) == (
        1e6, 1e4, "linear", 8.0)  # fmt: skip
    assert gemma3.attention_multiplier == pytest.approx(168**-0.5) and "vision" in gemma3.notes
    gemma2 = presets.load(str(HF_CONFIGS / "gemma-2-9b.json"))
    assert (gemma2.attn_logit_softcap, gemma2.final_logit_softcap, gemma2.global_every) == (50.0, 30.0, 2)
    maverick = presets.load(str(HF_CONFIGS / "llama-4-maverick.json"))
    assert (maverick.attention_chunk, maverick.global_every, maverick.nope_global_layers) == (8192, 4, True)
    assert (maverick.moe_every, maverick.n_moe_layers, maverick.n_shared_experts, maverick.d_ff) == (2, 24, 1, 16384)
    assert maverick.qk_norm is None and presets.load(str(HF_CONFIGS / "llama-4-scout.json")).qk_norm == "l2"
    olmo2 = presets.load(str(HF_CONFIGS / "olmo-2-7b.json"))
    assert (olmo2.norm_position, olmo2.qk_norm) == ("branch-post", "full")
    qwen_moe = presets.load(str(HF_CONFIGS / "qwen1.5-moe-a2.7b.json"))
    assert (qwen_moe.d_ff_shared, qwen_moe.shared_expert_gate, qwen_moe.d_ff_expert) == (5632, True, 1408)
    cohere2 = presets.load(str(HF_CONFIGS / "command-r7b.json"))
    assert (cohere2.parallel_block_shared_norm, cohere2.global_every, cohere2.nope_global_layers) == (True, 4, True)
    granite = presets.load(str(HF_CONFIGS / "granite-3.1-8b.json"))
    assert (granite.embedding_multiplier, granite.residual_multiplier, granite.logit_scale) == (12.0, 0.22, 1 / 16)
    assert presets.load(str(HF_CONFIGS / "olmo-1b.json")).norm == "nonparametric"
    phi = presets.load(str(HF_CONFIGS / "phi-3.5-moe.json"))
    assert (phi.norm, phi.norm_bias, phi.qkv_bias, phi.lm_head_bias) == ("layernorm", True, True, True)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (
            {
                "model_type": "qwen3_moe",
                "hidden_size": 64,
                "num_hidden_layers": 3,
                "num_attention_heads": 4,
                "vocab_size": V,
                "mlp_only_layers": [2],
            },
            "mlp_only_layers",
        ),
        (
            {
                "model_type": "llama4_text",
                "hidden_size": 64,
                "num_hidden_layers": 4,
                "num_attention_heads": 4,
                "vocab_size": V,
                "interleave_moe_layer_step": 2,
                "moe_layers": [0, 1],
            },
            "moe_layers",
        ),
        (
            {
                "model_type": "gemma2",
                "num_hidden_layers": 3,
                "sliding_window": 8,
                "layer_types": ["sliding_attention", "full_attention", "full_attention"],
            },
            "layer_types",
        ),
        ({"model_type": "gemma3", "text_config": {"model_type": "llama"}}, "text_config.model_type"),
        (
            {
                "model_type": "exaone4",
                "hidden_size": 64,
                "num_hidden_layers": 4,
                "num_attention_heads": 4,
                "vocab_size": V,
                "sliding_window_pattern": "LLXG",
            },
            "sliding_window_pattern",
        ),
    ],
)
def test_2024_structures_beyond_the_schema_are_refused(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidConfigError) as info:
        config_from_hf(data, origin="cfg.json")
    assert info.value.field == field


def test_exaone4_letter_pattern_equals_the_period() -> None:
    base = {"model_type": "exaone4", "hidden_size": 64, "num_hidden_layers": 8, "num_attention_heads": 4,
            "vocab_size": V, "sliding_window": 16}  # fmt: skip
    letters = build({**base, "sliding_window_pattern": "LLLG"})
    assert (letters.sliding_window, letters.global_every, letters.nope_global_layers) == (16, 4, True)
    assert letters == build({**base, "sliding_window_pattern": 4})
