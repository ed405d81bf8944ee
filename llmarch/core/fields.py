"""The preset schema for people: every field of ArchConfig and TrainingMeta with its type, default and meaning.

The meanings are the comments written beside each field in llmarch/core/config.py (the one place they are
kept), read from the source; fields whose name says it all get a line here.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
from typing import Any

from llmarch.core.config import ArchConfig, TrainingMeta

#: Meanings of fields the config module leaves uncommented because the name is the documentation there.
_PLAIN_MEANINGS = {
    "name": "Preset name (the file name without .yaml).",
    "architecture": "decoder-only or encoder-decoder.",
    "position": "Position encoding: learned, sinusoidal, rope, alibi, relative (T5) or none.",
    "norm": "Normalisation: layernorm or rmsnorm.",
    "norm_position": "pre (before each sub-layer) or post (after the residual add).",
    "family": "Family the preset belongs to, e.g. llama-2.",
    "year": "Year of publication.",
    "description": "One line about the model.",
    "notes": "Free text: caveats and how the numbers were read.",
    "attn_out_bias": "Bias on the attention output projection.",
    "qkv_bias": "Bias on the query, key and value projections.",
    "mlp_bias": "Bias on the MLP projections.",
    "lm_head_bias": "Bias on the output projection.",
    "router_bias": "Bias on the MoE router.",
    "steps": "Optimizer steps of the published run.",
    "warmup_steps": "Learning-rate warm-up steps.",
    "adam_beta1": "AdamW beta1.",
    "adam_beta2": "AdamW beta2.",
    "adam_eps": "AdamW epsilon.",
    "weight_decay": "Weight decay.",
    "grad_clip": "Gradient-norm clipping threshold.",
    "dropout": "Dropout probability of the published run.",
    "training": "Training facts as published (see the training.* fields).",
    "d_model": "Width of the residual stream (hidden size).",
    "vocab_size": "Rows of the token embedding (padded vocabulary).",
    "rope_theta": "RoPE base frequency.",
    "rope_scaling_factor": "RoPE context-extension factor (with rope_scaling).",
    "relative_attention_max_distance": "T5 relative position bias: largest distance told apart.",
    "reference_source": "Where reference_params comes from.",
    "lr_schedule": "Learning-rate schedule",
    "optimizer": "Optimizer",
    "hardware": "Hardware of the published run",
}

_FIELD_LINE = re.compile(r"^\s+(\w+):\s*[^#]*?(?:#\s*(?P<comment>.*))?$")
_SECTION_LINE = re.compile(r"^\s+# -- (?P<section>.+?)(?: \(.*\))? -{3,}\s*$")


def _comments(cls: type) -> dict[str, tuple[str, str]]:
    """field -> (section, comment) read from the class body's source; empty when the source is unavailable."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):  # pragma: no cover - frozen or stripped installs
        return {}
    out: dict[str, tuple[str, str]] = {}
    section = ""
    for line in source.splitlines():
        heading = _SECTION_LINE.match(line)
        if heading:
            section = heading.group("section").strip()
            continue
        match = _FIELD_LINE.match(line)
        if match and match.group(1) not in out:
            out[match.group(1)] = (section, (match.group("comment") or "").strip())
    return out


def _type_name(annotation: Any) -> str:
    """'int', 'int | None', "Literal['pre', 'post']" as written in the dataclass."""
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return None


@functools.cache
def preset_fields() -> tuple[dict[str, Any], ...]:
    """Every preset field in file order: `field` (training facts as training.x), `type`, `required`,
    `default` (None where absent means "feature absent"), `section` and `meaning`."""
    rows: list[dict[str, Any]] = []
    for cls, prefix in ((ArchConfig, ""), (TrainingMeta, "training.")):
        comments = _comments(cls)
        for f in dataclasses.fields(cls):
            if f.name == "training":
                continue
            section, comment = comments.get(f.name, ("", ""))
            plain = _PLAIN_MEANINGS.get(f.name, "")
            meaning = (
                f"{plain}: {comment}"
                if plain and comment.lower().startswith(("e.g.", "as reported"))
                else (comment or plain)
            )
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            rows.append(
                {
                    "field": prefix + f.name,
                    "type": _type_name(f.type),
                    "required": required and f.name not in ("n_kv_heads", "d_head"),  # both are filled in
                    "default": None if required else _default(f),
                    "section": "training facts" if prefix else section,
                    "meaning": meaning[:1].upper() + meaning[1:] if meaning else "",
                }
            )
    return tuple(rows)
