"""Maintainer tool: count a Hugging Face config's parameters with the transformers implementation.

Builds the model on the meta device (no memory) from a local config.json and prints
sum(p.numel()) over unique parameters (tied weights once, buffers excluded): the convention of every
`reference_params` in presets/ marked `reference_exact: true`. Needs `pip install transformers torch`;
llmarch itself never imports transformers.

    python scripts/hf_param_count.py tests/data/hf_configs/llama-2-7b.json [...]

A multimodal config (Gemma 3, Llama 4, Mistral 3) is counted by its language model only, built from its
`text_config` (Gemma3ForCausalLM, Llama4ForCausalLM): what llmarch maps from such a file.
"""

from __future__ import annotations

import json
import sys

#: Multimodal model types whose language model (text_config) is what llmarch counts.
MULTIMODAL = ("gemma3", "llama4", "mistral3")


def hf_param_count(path: str) -> int:
    import torch
    import transformers

    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    config = transformers.AutoConfig.for_model(**data)
    if data.get("model_type") in MULTIMODAL:
        config = config.text_config
        if "tie_word_embeddings" in data and "tie_word_embeddings" not in data.get("text_config", {}):
            config.tie_word_embeddings = data["tie_word_embeddings"]
    with torch.device("meta"):
        model = (
            transformers.AutoModelForCausalLM.from_config(config)
            if not config.is_encoder_decoder
            else (transformers.AutoModelForSeq2SeqLM.from_config(config))
        )
    seen: set[int] = set()
    total = 0
    for param in model.parameters():  # parameters() already yields a tied tensor once
        if id(param) not in seen:
            seen.add(id(param))
            total += param.numel()
    return total


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"{hf_param_count(arg)}\t{arg}")
