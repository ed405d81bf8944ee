"""Serving memory per GPU: weights, KV cache and activation workspace of requests in flight (one function).

Both `llmarch memory` (its inference section) and `llmarch estimate-inference` size serving memory here, so
they agree on the same workload. A serving engine reserves a fraction of the GPU (vLLM's
`gpu_memory_utilization`, TensorRT-LLM's `kv_cache_free_gpu_mem_fraction`, default 0.9) for
weights + workspace + KV cache:

    per GPU = weights / (tp x pp) + KV of the requests in flight x kv_share / pp + workspace of one step

KV occupancy: `occupancy="full"` holds every request at its full context (prompt + generation: a static
batch at its last step, or an engine that reserves the whole request up front); `occupancy="mean"` holds
each at its mean context over its life (prompt + generate/2), which is what continuous batching with
paged KV blocks holds on average when requests are at different points of their lives (Kwon et al. 2023,
vLLM, arXiv:2309.06180, section 4). The workspace scales with the tokens of one engine step (at most the
chunked-prefill token budget): `inference_workspace_bytes` at `step_tokens`, plus fp32 logits for every
sequence that samples in the step.
"""

from __future__ import annotations

from typing import Literal

from llmarch.calc.memory import kv_cache, weights_bytes
from llmarch.calc.quant import canonical_weight_dtype, check_kv_dtype
from llmarch.calc.training_memory import FP32_BYTES, inference_workspace_bytes
from llmarch.core.checks import positive_int
from llmarch.core.config import ArchConfig
from llmarch.core.frozen import frozen_dataclass

Occupancy = Literal["full", "mean"]


def kv_tp_share(config: ArchConfig, tp: int) -> float:
    """Fraction of the KV cache each of `tp` tensor-parallel GPUs holds: 1 / min(tp, n_kv_heads); 1 for MLA.

    KV heads are split over the GPUs; beyond n_kv_heads GPUs each head is replicated (MQA's single head is on
    every GPU), as vLLM and TensorRT-LLM shard it. An MLA latent serves all heads, so every GPU keeps all of
    it (DeepSeek-AI 2024, arXiv:2405.04434). tp x share is the number of copies the replica holds.
    """
    if config.mla_kv_rank is not None:
        return 1.0
    return 1.0 / min(tp, config.n_kv_heads)


def request_kv_bytes(
    config: ArchConfig, *, prompt_len: int, generate_len: int, kv_dtype: str, beam_width: int = 1,
    occupancy: Occupancy = "full",
) -> float:  # fmt: skip
    """KV-cache bytes of one request (all its beams, whole replica): at full or at mean context.

    Decoder: prompt_len + generate_len positions (full) or prompt_len + generate_len / 2 (mean), each capped
    by a sliding window (`kv_cache`). Encoder-decoder: generate_len (or half of it) decoder positions plus the
    prompt_len encoder positions of cross-attention, which are cached at once.
    """
    kv_dtype = check_kv_dtype(kv_dtype)
    generated = generate_len if occupancy == "full" else generate_len // 2
    if config.is_encoder_decoder:
        cache = kv_cache(config, seq_len=generated, dtype=kv_dtype, beam_width=beam_width, encoder_len=prompt_len)
    else:
        cache = kv_cache(config, seq_len=prompt_len + generated, dtype=kv_dtype, beam_width=beam_width)
    return cache.total_bytes


@frozen_dataclass
class ServingMemory:
    """Serving memory of one GPU of a replica, in bytes."""

    concurrency: int  # requests in flight
    prompt_len: int
    generate_len: int
    dtype: str
    kv_dtype: str
    tp: int
    pp: int
    occupancy: str
    step_tokens: int  # tokens of the largest engine step (sizes the workspace)
    weights_bytes: float
    kv_cache_bytes: float
    kv_cache_bytes_per_request: float  # this GPU's share
    workspace_bytes: float
    total_bytes: float

    def max_concurrency(self, usable_bytes: float) -> int:
        """Requests in flight that fit `usable_bytes` at this workload (0: not even one)."""
        free = usable_bytes - self.weights_bytes - self.workspace_bytes
        return max(0, int(free // self.kv_cache_bytes_per_request)) if free > 0 else 0


def serving_memory(
    config: ArchConfig,
    *,
    concurrency: int = 1,
    prompt_len: int,
    generate_len: int,
    dtype: str = "bf16",
    kv_dtype: str = "bf16",
    tp: int = 1,
    pp: int = 1,
    beam_width: int = 1,
    occupancy: Occupancy = "full",
    step_tokens: int | None = None,
    flash: bool = True,
) -> ServingMemory:
    """Memory per GPU of `concurrency` requests in flight (see the module docstring for the model).

    step_tokens None: one step prefills every prompt at once (concurrency x prompt_len tokens).
    """
    concurrency = positive_int("concurrency", concurrency)
    dtype = canonical_weight_dtype(dtype)
    kv_dtype = check_kv_dtype(kv_dtype)
    per_request = request_kv_bytes(config, prompt_len=prompt_len, generate_len=generate_len, kv_dtype=kv_dtype,
                                   beam_width=beam_width, occupancy=occupancy)  # fmt: skip
    per_request *= kv_tp_share(config, tp) / pp
    tokens = concurrency * prompt_len if step_tokens is None else positive_int("step_tokens", step_tokens)
    act_dtype = "fp32" if dtype == "fp32" else "bf16"
    workspace = inference_workspace_bytes(config, batch=1, seq_len=tokens, dtype=act_dtype, tp=tp, flash=flash)
    # fp32 logits of every sequence that samples in a step (the function above counts one).
    sampling = min(concurrency * beam_width, tokens)
    workspace += FP32_BYTES * (sampling - 1) * config.vocab_size / tp
    weights = weights_bytes(config, dtype) / (tp * pp)
    kv = concurrency * per_request
    return ServingMemory(
        concurrency=concurrency,
        prompt_len=prompt_len,
        generate_len=generate_len,
        dtype=dtype,
        kv_dtype=kv_dtype,
        tp=tp,
        pp=pp,
        occupancy=occupancy,
        step_tokens=tokens,
        weights_bytes=weights,
        kv_cache_bytes=kv,
        kv_cache_bytes_per_request=per_request,
        workspace_bytes=workspace,
        total_bytes=weights + kv + workspace,
    )
