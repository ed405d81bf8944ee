"""Cross-check the calculators against the reference PyTorch model: parameters, FLOPs and KV-cache bytes.

For one architecture:
- parameters: `params.count_params(config).total` against `sum(p.numel())` of the full-size reference
  model built on the meta device (no memory is allocated, so DeepSeek-V3 costs the same as GPT-2);
- FLOPs: on the scaled-down copy (`model.scaled_down`), `flops.forward_flops(small, S).total` times the
  tokens of one forward pass (S, or 2 S for an encoder-decoder: S source and S target tokens) against two
  measurements of a real CPU forward pass of a length-S sequence, fvcore's FlopCountAnalysis and torch's
  FlopCounterMode;
- KV cache: `memory.kv_cache` of the scaled-down copy after decoding past its window (one sequence,
  fp32, the encoder length S for an encoder-decoder) against the bytes of the cache tensors the model
  actually allocated (`KVCache.nbytes`).

FLOP conventions, like with like: every column counts matrix multiplications only, 2 FLOPs per
multiply-add. fvcore counts one multiply-add as one flop, so its count is doubled here; its default
LayerNorm handle (2 flops per element) is replaced by zero, because norms, softmax, activations, rotary
and bias adds are counted by neither the analytic formula nor FlopCounterMode. The reference attention
is written with explicit matmuls (with torch 2.13 on CPU, fvcore lists `aten::scaled_dot_product_attention`
as unsupported and FlopCounterMode counts it as 0, causal or not) and, for this
measurement, runs causal attention one query row at a time over only the keys that row attends to
(`exact_attention=True`), so the measured Q K^T and A V FLOPs are the causal, windowed count of
`flops.mean_attended_keys` rather than the full square. With the same matmuls counted on both sides the
three numbers agree exactly up to float rounding; FLOPS_RTOL is that rounding margin.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from typing import Any

from llmarch.core.config import ArchConfig
from llmarch.core.errors import LlmarchError
from llmarch.core.frozen import frozen_dataclass

#: Forward-pass length of the FLOP measurement (tokens; source and target each for an encoder-decoder).
SEQ_LEN = 12
#: Tokens decoded after the length-SEQ_LEN prompt for the KV-cache check; SEQ_LEN + this exceeds the window.
DECODE_STEPS = 4
#: Relative tolerance of the FLOP comparison: float rounding only (every column counts the same matmuls).
FLOPS_RTOL = 1e-6
#: Element type of the scaled-down model and its cache, and its name for `memory.kv_cache`.
DTYPE_NAME = "fp32"

COLUMNS = ("name", "params_analytic", "params_module", "flops_analytic", "flops_fvcore", "flops_torch",
           "kv_bytes_analytic", "kv_bytes_module", "ok")  # fmt: skip


@frozen_dataclass
class VerifyResult:
    """One architecture's calculators against its reference model (counts, FLOPs, bytes)."""

    name: str
    params_analytic: int  # count_params(config).total
    params_module: int  # sum(p.numel()) of the full-size model on the meta device
    flops_analytic: float  # forward_flops(small, SEQ_LEN).total x tokens of the pass (2 FLOPs per multiply-add)
    flops_fvcore: float  # fvcore FlopCountAnalysis of that pass, x 2
    flops_torch: float  # torch.utils.flop_counter.FlopCounterMode of that pass
    kv_bytes_analytic: int  # memory.kv_cache(small, seq_len=SEQ_LEN + DECODE_STEPS, dtype=fp32).total_bytes
    kv_bytes_module: int  # bytes of the cache tensors the model allocated while decoding that far
    ok: bool

    def problems(self) -> list[str]:
        """One line per disagreement (empty when ok)."""
        out = []
        if self.params_module != self.params_analytic:
            out.append(f"params: module {self.params_module:,} != analytic {self.params_analytic:,}")
        for column in ("flops_fvcore", "flops_torch"):
            measured = getattr(self, column)
            if not _close(measured, self.flops_analytic):
                rel = (measured - self.flops_analytic) / self.flops_analytic
                out.append(f"{column} {measured:,.0f} != analytic {self.flops_analytic:,.0f} ({rel:+.3%})")
        if self.kv_bytes_module != self.kv_bytes_analytic:
            out.append(f"KV cache: module {self.kv_bytes_module:,} B != analytic {self.kv_bytes_analytic:,} B")
        return out

    def record(self) -> dict[str, Any]:
        """Plain-data view with the keys of COLUMNS (the JSON result)."""
        return {column: getattr(self, column) for column in COLUMNS}


def _close(measured: float, analytic: float) -> bool:
    return abs(measured - analytic) <= FLOPS_RTOL * abs(analytic)


def _require_torch() -> None:
    try:
        import fvcore  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise LlmarchError(
            f"verification needs PyTorch and fvcore ({exc.name} is missing): pip install 'llmarch[torch]'"
        ) from None


def verify(config: ArchConfig) -> VerifyResult:
    """Check `config`'s parameter count, forward FLOPs and KV-cache bytes against the reference model."""
    _require_torch()
    import torch

    from llmarch.calc.flops import forward_flops
    from llmarch.calc.memory import kv_cache
    from llmarch.calc.params import count_params
    from llmarch.reference.model import build_model, scaled_down

    params_analytic = count_params(config).total
    params_module = sum(p.numel() for p in build_model(config, device="meta").parameters())

    small = scaled_down(config)
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(small, dtype=torch.float32).eval()
    tokens = torch.randint(0, small.vocab_size, (1, SEQ_LEN + DECODE_STEPS), generator=generator)
    source = torch.randint(0, small.vocab_size, (1, SEQ_LEN), generator=generator)
    inputs = (tokens[:, :SEQ_LEN], source) if small.is_encoder_decoder else (tokens[:, :SEQ_LEN],)
    n_tokens = 2 * SEQ_LEN if small.is_encoder_decoder else SEQ_LEN
    flops_analytic = forward_flops(small, SEQ_LEN).total * n_tokens

    with torch.no_grad():
        flops_fvcore = 2.0 * _fvcore_macs(model, inputs)
        flops_torch = float(_torch_flops(model, inputs))
        # Prefill the prompt in one chunk, then decode one token at a time past the window.
        encoder_output = model.encode(source) if small.is_encoder_decoder else None
        cache = model.init_cache(batch=1, max_len=SEQ_LEN + DECODE_STEPS, encoder_output=encoder_output)
        model.decode_step(tokens[:, :SEQ_LEN], cache)
        for i in range(SEQ_LEN, SEQ_LEN + DECODE_STEPS):
            model.decode_step(tokens[:, i : i + 1], cache)
    kv = kv_cache(small, seq_len=SEQ_LEN + DECODE_STEPS, dtype=DTYPE_NAME, encoder_len=SEQ_LEN)
    result = VerifyResult(
        name=config.name,
        params_analytic=params_analytic,
        params_module=params_module,
        flops_analytic=flops_analytic,
        flops_fvcore=flops_fvcore,
        flops_torch=flops_torch,
        kv_bytes_analytic=int(kv.total_bytes),
        kv_bytes_module=cache.nbytes,
        ok=False,
    )
    return dataclasses.replace(result, ok=not result.problems())


def _fvcore_macs(model: Any, inputs: tuple[Any, ...]) -> int:
    """Multiply-adds fvcore counts in one exact-attention forward pass (norm handles set to zero)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fvcore imports torch.jit.script, deprecated in 2.13
        from fvcore.nn import FlopCountAnalysis

    class ExactAttention(torch.nn.Module):  # fvcore traces forward(*inputs): pass the keyword through
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return self.inner(*args, exact_attention=True)

    analysis = FlopCountAnalysis(ExactAttention(model), inputs)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    # fvcore 0.1.5 keeps a default handle even when set to None, so norms are zeroed with a handle instead.
    for op in ("aten::layer_norm", "aten::group_norm", "aten::batch_norm", "aten::instance_norm"):
        analysis.set_op_handle(op, lambda inputs, outputs: 0)
    logger = logging.getLogger("fvcore")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about data-dependent MoE routing
            return int(analysis.total())
    finally:
        logger.setLevel(level)


def _torch_flops(model: Any, inputs: tuple[Any, ...]) -> int:
    """FLOPs torch's FlopCounterMode counts in one exact-attention forward pass (2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        model(*inputs, exact_attention=True)
    return int(counter.get_total_flops())


def verify_many(configs: list[ArchConfig]) -> list[VerifyResult]:
    return [verify(c) for c in configs]
