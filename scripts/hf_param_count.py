"""Maintainer tool: count a Hugging Face config's parameters with the transformers implementation.

Builds the model on the meta device (no memory) from a local config.json and prints
sum(p.numel()) over unique parameters (tied weights once, buffers excluded): the convention of every
`reference_params` in presets/ marked `reference_exact: true`. Needs `pip install transformers torch`;
llmarch itself never imports transformers.

    python scripts/hf_param_count.py tests/data/hf_configs/llama-2-7b.json [...]
"""

from __future__ import annotations

import json
import sys


def hf_param_count(path: str) -> int:
    import torch
    import transformers

    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    config = transformers.AutoConfig.for_model(**data)
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
