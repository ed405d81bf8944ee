"""Named defaults: every workload choice llmarch makes when the caller does not, in one place.

The calculators take these as keyword defaults (or resolve None to them and record the name in an estimate's
`defaults` assumption), and the CLI interpolates them into its help texts, so that a default is written once.
They are inputs, not facts: each says what it stands for and why that value.
"""

from __future__ import annotations

#: Storage and compute dtype of weights, KV cache and matmuls (16-bit brain float, what the presets train in).
DEFAULT_DTYPE = "bf16"

# -- comparison (`llmarch compare`, the report's comparison and memory sections) ----------------------------
#: Context length of flops_per_token and kv_cache_bytes: the context of GPT-3 and LLaMA-1 (2,048 tokens).
DEFAULT_SEQ_LEN = 2048
#: Sequences in the KV cache.
DEFAULT_BATCH = 1

# -- serving (`llmarch estimate-inference`, the report's serving section) -----------------------------------
#: Prompt tokens per request.
DEFAULT_PROMPT_LEN = 2048
#: Generated tokens per request.
DEFAULT_GENERATE_LEN = 512
#: Tokens per prefill pass (chunked prefill: Agrawal et al. 2023, SARATHI, arXiv:2308.16369): the order of
#: the per-step token budgets of serving engines (vLLM's max_num_batched_tokens and SGLang's
#: chunked_prefill_size default to 2k-16k, by version and GPU). The workspace is sized for one full
#: chunk, as vLLM sizes it by a profiling pass of that many tokens.
DEFAULT_PREFILL_CHUNK = 8192
#: Achievable fraction of the dense peak FLOP/s: large bf16 GEMMs reach roughly 0.6-0.8 of it on A100/H100.
DEFAULT_FLOP_EFFICIENCY = 0.7
#: Achievable fraction of the peak memory bandwidth: streaming kernels reach roughly 0.8-0.9 of it.
DEFAULT_BANDWIDTH_EFFICIENCY = 0.8
#: Fixed cost of one all-reduce (launch and synchronisation): small-message all-reduces within an NVLink
#: node take on the order of 10 microseconds. A rule of thumb; 0 gives the bandwidth-only model.
DEFAULT_ALLREDUCE_LATENCY_S = 10e-6

# -- memory (`llmarch memory`, training memory, serving memory) ---------------------------------------------
#: Share of the accelerator's memory kept free when deciding whether a workload fits: the CUDA context,
#: NCCL and cuBLAS workspaces, allocator fragmentation and short-lived buffers. A rule of thumb, not a
#: measurement; pass reserve_fraction to change it.
DEFAULT_RESERVE_FRACTION = 0.10
#: Tokens per sequence of `llmarch memory` (inference context and training length): Llama 2's context.
DEFAULT_MEMORY_SEQ_LEN = 4096
#: GPUs in all of `llmarch memory`'s training plan (one 8-GPU node).
DEFAULT_MEMORY_N_GPUS = 8
#: GPU memory fitted against when neither a catalog GPU nor a size is given (an A100/H100 80GB).
DEFAULT_GPU_MEMORY = "80GiB"

# -- training cost (`llmarch estimate-cost`, the report's training section) ---------------------------------
#: Model FLOPs utilisation: a well-tuned large dense run on A100/H100 reaches 0.4-0.5 (LLaMA-65B: ~0.48).
DEFAULT_MFU = 0.4
#: Data-centre power usage effectiveness: the PUE LLaMA and Llama 2 used (Touvron et al. 2023, Table 15).
DEFAULT_PUE = 1.1
#: Grid region of the carbon estimate: the US average (0.385 kg CO2e/kWh) LLaMA and Llama 2 used.
DEFAULT_REGION = "us"
#: Devices of a training run (wall-clock time only; GPU-hours do not depend on it).
DEFAULT_N_GPUS = 1

# -- the report ---------------------------------------------------------------------------------------------
#: Accelerator of the report's memory, serving and cost sections when none is given.
DEFAULT_REPORT_GPU = "h100-sxm"

# -- serving engine (`llmarch estimate-inference`) ----------------------------------------------------------
#: Tokens per engine step (chunked prefill): vLLM's max_num_batched_tokens and TensorRT-LLM's max_num_tokens
#: default to 8192 on current versions (SGLang's chunked_prefill_size 8192 on H100, 4096-8192 elsewhere).
DEFAULT_TOKEN_BUDGET = DEFAULT_PREFILL_CHUNK
#: Largest number of requests in flight the maximum-throughput search considers: TensorRT-LLM's trtllm-bench
#: runs up to max_batch_size 2048 and vLLM V1 schedules up to max_num_seqs 1024 on H100-class GPUs.
DEFAULT_MAX_CONCURRENCY = 1024
#: Speculative decoding defaults (Leviathan et al. 2023): draft length and per-token acceptance rate.
DEFAULT_DRAFT_LEN = 4
DEFAULT_ACCEPTANCE_RATE = 0.7
#: Fraction of GPU memory a serving engine may use (vLLM gpu_memory_utilization's default).
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9

# -- design (`llmarch design`) ------------------------------------------------------------------------------
#: The accelerator designs are costed on unless `gpu` says otherwise.
DEFAULT_DESIGN_GPU = "h100-sxm"

# -- attention benchmark (`llmarch bench`) ------------------------------------------------------------------
#: Shape used when neither --preset nor --n-heads is given: GQA with a sliding window, so that every
#: variant has something to show.
DEFAULT_BENCH_PRESET = "mistral-7b"
#: Sequence lengths (KV-cache lengths for decode) and batch sizes of a sweep.
DEFAULT_BENCH_SEQ_LENS = (512, 1024, 2048)
DEFAULT_BENCH_BATCHES = (1,)
#: Chunk of a chunked prefill. Mistral chunks by the window (Jiang et al. 2023, section 2); 512 keeps
#: several chunks at benchmark lengths.
DEFAULT_BENCH_CHUNK_SIZE = 512
#: Interleaved timing passes, and the seconds each case runs per pass (`--quick`: fewer and shorter).
DEFAULT_BENCH_REPEATS = 5
DEFAULT_BENCH_MIN_PASS_S = 0.1
QUICK_BENCH_REPEATS = 3
QUICK_BENCH_MIN_PASS_S = 0.02
#: Fraction of the available memory (free memory, ulimit, cgroup limit: the tightest) a benchmark case may
#: plan to use; the rest is the allocator's and the reference output's.
DEFAULT_BENCH_MEMORY_HEADROOM = 0.8
#: Slowdown of a kernel (a fraction) beyond which `--baseline` reports a regression, when it also exceeds
#: the run-to-run noise.
DEFAULT_MAX_REGRESSION = 0.10
