"""[torch] Attention micro-benchmarks: the kernels (eager, SDPA backends, FlexAttention), the timing harness and
the baseline comparison statistics. `counts` (FLOPs and bytes per case) is torch-free.

May import: torch, `llmarch.core`, `llmarch.catalog`, `llmarch.calc`, `llmarch.reference`. Nothing from report or
cli. Importing this package itself does not import torch.
"""
