"""Batching: per-request TTFT, TPOT, end-to-end latency and throughput at a load, from the step model.

Continuous batching (the default; Yu et al. 2022, Orca, OSDI; Kwon et al. 2023, vLLM) with chunked
prefill (Agrawal et al. 2023, SARATHI, arXiv:2308.16369), in steady state with `concurrency` requests in
flight (a closed loop: a new request starts when one finishes), each of P prompt and G generated tokens:

    a request lives N steps: k prefill steps (its prompt in chunks of at most budget - decoding tokens),
    then G - 1 decode steps (the last prefill step yields the first token);
    per step, d = C (G - 1) / N sequences decode at mean context P + G / 2, and the prompts of the
    requests that arrive fill the rest of the step's token budget;
    when the prompts of C requests per N steps need more than the budget leaves, requests queue and N
    grows until C (P + G - 1) / N fits the budget;
    TTFT = the steps from arrival to the first token; TPOT = the mean step time a decoding request sees
    (decode-only steps and steps that also carry other requests' prefill chunks);
    latency = TTFT + (G - 1) TPOT; output tokens/s = C G / latency.

Static batching (`static=True`): the batch is prefilled (in chunks of the budget), then decoded together
until the longest request finishes; TTFT is the whole batch's prefill, as engines without continuous
batching (TensorRT-LLM's gptSessionBenchmark) measure it.

Pipeline parallelism (pp stages) splits the layers; the requests in flight form pp micro-batches that
keep every stage busy, so a step of one micro-batch takes pp stage times. Speculative decoding multiplies
the tokens a decode step yields (`speculative_tokens_per_step`) at the cost of the draft's steps and a
k+1-token verification. A prefix-cache hit rate h prefills only (1 - h) of each prompt.
"""

from __future__ import annotations

import math

from llmarch.core.frozen import frozen_dataclass
from llmarch.serving.roofline import speculative_tokens_per_step
from llmarch.serving.step import Hardware, ModelWork, StepTime, step_time


@frozen_dataclass
class Workload:
    """The request shape and engine settings a load point is computed at (resolved, validated)."""

    prompt_len: int
    generate_len: int
    tp: int
    pp: int
    token_budget: int  # tokens per engine step (max_num_batched_tokens / chunked prefill size)
    static: bool
    prefix_hit_rate: float
    beam_width: int
    draft: ModelWork | None  # speculative decoding's draft model (None: off)
    draft_len: int
    acceptance_rate: float


@frozen_dataclass
class LoadPoint:
    """Per-request latency and replica throughput at one load (concurrency = requests in flight)."""

    concurrency: int
    ttft_s: float
    tpot_s: float
    request_latency_s: float
    tokens_per_s: float  # output tokens/s of one replica
    input_tokens_per_s: float  # prompt tokens/s of one replica
    prefill_seconds_per_request: float  # replica time attributed to a request's prefill (for input cost)
    steps_per_request: float
    decode_step: StepTime  # a decode-only step at this load
    prefill_step: StepTime  # a step carrying a prefill chunk at this load


def _computed_prompt(wl: Workload) -> int:
    return max(1, math.ceil(wl.prompt_len * (1.0 - wl.prefix_hit_rate)))


def _decode_step(work: ModelWork, hw: Hardware, wl: Workload, seqs: float, context: float, chunk: float,
                 chunk_context: float) -> tuple[float, StepTime]:  # fmt: skip
    """(seconds per generated token of a sequence, the step) for `seqs` decoding sequences per micro-batch."""
    cross = wl.prompt_len if work.config.is_encoder_decoder else 0
    share = 1.0 / wl.pp
    if wl.draft is None:
        step = step_time(work, hw, tp=wl.tp, decode_seqs=seqs, decode_context=context, prefill_tokens=chunk,
                         prefill_context=chunk_context, cross_len=cross, layer_share=share)  # fmt: skip
        return step.total_s * wl.pp, step
    k = wl.draft_len
    verify = step_time(work, hw, tp=wl.tp, decode_seqs=seqs * (k + 1), decode_context=context, prefill_tokens=chunk,
                       prefill_context=chunk_context, cross_len=cross, layer_share=share)  # fmt: skip
    draft = step_time(wl.draft, hw, tp=wl.tp, decode_seqs=seqs, decode_context=context, cross_len=cross,
                      layer_share=share)  # fmt: skip
    per_token = (verify.total_s + k * draft.total_s) * wl.pp / speculative_tokens_per_step(k, wl.acceptance_rate)
    return per_token, verify


def continuous(work: ModelWork, hw: Hardware, wl: Workload, concurrency: int) -> LoadPoint:
    """The steady state of continuous batching with chunked prefill at `concurrency` (module docstring)."""
    c, p, g = concurrency, _computed_prompt(wl), wl.generate_len
    micro = c / wl.pp  # requests per pipeline micro-batch
    decodes = g - 1
    steps = float(decodes + math.ceil(p / wl.token_budget))
    k = 1
    for _ in range(50):  # fixed point: the decoding sequences per step set the room left for prefill
        room = max(wl.token_budget - micro * decodes / steps, 1.0)
        k = math.ceil(p / room)
        new = max(decodes + k, micro * (p + decodes) / wl.token_budget)  # the budget forces the second
        if abs(new - steps) < 1e-9:
            break
        steps = new
    saturated = steps > decodes + k + 1e-9  # prompts queue for room in the steps
    d = micro * decodes / steps
    carrying = min(1.0, micro * k / steps)  # share of steps that carry prefill tokens
    chunk = min(micro * p / steps / carrying, max(wl.token_budget - d, 1.0))  # prefill tokens in such a step
    chunk_context = wl.prompt_len * wl.prefix_hit_rate + min(chunk, p) / 2
    context = wl.prompt_len + g / 2
    per_token_0, s0 = _decode_step(work, hw, wl, d, context, 0.0, 0.0)
    per_token_p, sp = _decode_step(work, hw, wl, d, context, chunk, chunk_context)
    # Share of a decoding request's steps that also carry other requests' prefill chunks.
    mixed = 1.0 if saturated else min(1.0, max(micro - 1.0, 0.0) * k / steps)
    tpot = mixed * per_token_p + (1.0 - mixed) * per_token_0
    ttft = sp.total_s * wl.pp * (steps - decodes if saturated else k) + hw.request_overhead_s
    if work.config.is_encoder_decoder:
        ttft += per_token_0  # the first decoder step yields the first token
    latency = ttft + decodes * tpot
    # Replica time a request's prefill adds: its p prompt tokens at the marginal cost of a step's prefill tokens.
    prefill_s = p * max(sp.total_s - s0.total_s, 0.0) / chunk * wl.pp
    if micro <= 1.0:
        prefill_s = k * sp.total_s * wl.pp
    return LoadPoint(c, ttft, tpot, latency, c * g / latency, c * wl.prompt_len / latency, prefill_s, steps, s0, sp)


def static(work: ModelWork, hw: Hardware, wl: Workload, batch: int) -> LoadPoint:
    """A static batch: every prompt prefilled (chunks of the token budget), then all decoded together."""
    p, g = _computed_prompt(wl), wl.generate_len
    seqs = batch * wl.beam_width
    total = batch * p
    n_chunks = math.ceil(total / wl.token_budget)
    chunk_step = step_time(work, hw, tp=wl.tp, decode_seqs=0.0, decode_context=0.0, prefill_tokens=total / n_chunks,
                           prefill_context=min(p, wl.token_budget) / 2, layer_share=1.0 / wl.pp)  # fmt: skip
    prefill_s = (n_chunks + wl.pp - 1) * chunk_step.total_s  # chunks flow through the pp stages
    context = wl.prompt_len + g / 2
    per_token, s0 = _decode_step(work, hw, wl, seqs / wl.pp, context, 0.0, 0.0)
    ttft = prefill_s + (per_token if work.config.is_encoder_decoder else 0.0) + hw.request_overhead_s
    latency = ttft + (g - 1) * per_token
    return LoadPoint(batch, ttft, per_token, latency, batch * g / latency, batch * wl.prompt_len / latency,
                     prefill_s / batch, float(g), s0, chunk_step)  # fmt: skip


def load_point(work: ModelWork, hw: Hardware, wl: Workload, concurrency: int) -> LoadPoint:
    """`static` or `continuous` at `concurrency`, as the workload says."""
    return static(work, hw, wl, concurrency) if wl.static else continuous(work, hw, wl, concurrency)
