"""Quantization schemes as deployed: what each stores per weight, which tensors stay 16-bit, what computes.

A scheme is named by the `dtype` the user passes (`--dtype`). Plain storage dtypes (fp32, bf16, fp16) store
every parameter in that dtype. The quantised schemes store the *linear layers* (attention and MLP/expert
projections) in fewer bits and keep the token embeddings, the output head and the norms in 16 bits, as
released checkpoints do (AutoAWQ/AutoGPTQ, NVIDIA ModelOpt FP8/NVFP4, OpenAI's MXFP4 gpt-oss):

- fp8: FP8 (E4M3) linear layers, one fp32 scale per tensor; W8A8 at the FP8 peak (Micikevicius et al. 2022,
  arXiv:2209.05433; NVIDIA ModelOpt FP8 checkpoints).
- int8: int8 weight-only, one fp16 scale per output channel, matmuls in 16 bits (Dettmers et al. 2022,
  arXiv:2208.07339).
- w8a8: int8 weights and activations at the INT8 peak (Xiao et al. 2023, SmoothQuant, arXiv:2211.10438).
- int4: 4 bits + an fp16 scale and a 4-bit zero point per group of 128, matmuls in 16 bits (Lin et al. 2023,
  AWQ, arXiv:2306.00978; Frantar et al. 2022, GPTQ, arXiv:2210.17323).
- mxfp4: 4-bit E2M1 + one 8-bit E8M0 scale per block of 32 (OCP Microscaling spec v1.0, 2023; Rouhani et al.
  2023, arXiv:2310.10537); FP4 compute where the GPU has it, else dequantised to 16 bits.
- nvfp4: 4-bit E2M1 + one FP8 scale per block of 16 (NVIDIA 2025, "Introducing NVFP4"); FP4 compute where
  the GPU has it, else dequantised to 16 bits.

"int4" is the AWQ/GPTQ layout (an asymmetric group scale and zero point; `int4-awq` and `int4-gptq` are
accepted as aliases). KV-cache dtypes are separate (`kv_dtype`): 16-bit, fp8 or int8; a 4-bit KV cache is
not modelled and is refused everywhere with the same message (`check_kv_dtype`).
"""

from __future__ import annotations

from llmarch.core.errors import InvalidValueError
from llmarch.core.frozen import frozen_dataclass

_SIXTEEN = 2.0


@frozen_dataclass
class QuantScheme:
    """How one weight dtype is stored and computed (bytes per weight include the scales)."""

    name: str
    linear_bytes_per_weight: float  # attention / MLP / expert projections, scales and zero points included
    other_bytes_per_weight: float  # embeddings, output head, norms, router, biases
    compute: str  # "native" (the dtype's own peak), "fp8", "int8", "fp4", or "16-bit" (weight-only)
    description: str

    @property
    def quantised(self) -> bool:
        return self.linear_bytes_per_weight < _SIXTEEN


def _scheme(name: str, linear: float, other: float, compute: str, description: str) -> QuantScheme:
    return QuantScheme(name, linear, other, compute, description)


#: The schemes, by the dtype name users pass. Scale overheads are per weight: e.g. int4 = 0.5 + (2 + 0.5) / 128.
SCHEMES: dict[str, QuantScheme] = {
    "fp32": _scheme("fp32", 4.0, 4.0, "native", "every parameter in fp32"),
    "bf16": _scheme("bf16", 2.0, 2.0, "native", "every parameter in bf16"),
    "fp16": _scheme("fp16", 2.0, 2.0, "native", "every parameter in fp16"),
    "fp8": _scheme(
        "fp8",
        1.0,
        _SIXTEEN,
        "fp8",
        "FP8 (E4M3) linear layers with per-tensor scales, W8A8 at the FP8 peak; embeddings, head and norms 16-bit",
    ),
    "int8": _scheme(
        "int8",
        1.0,
        _SIXTEEN,
        "16-bit",
        "int8 weight-only linear layers (per-channel scales), "
        "dequantised to 16 bits; embeddings, head and norms 16-bit",
    ),
    "w8a8": _scheme(
        "w8a8",
        1.0,
        _SIXTEEN,
        "int8",
        "int8 weights and activations (SmoothQuant) at the INT8 peak; embeddings, head and norms 16-bit",
    ),
    "int4": _scheme(
        "int4",
        0.5 + (2.0 + 0.5) / 128,
        _SIXTEEN,
        "16-bit",
        "int4 weight-only (AWQ/GPTQ, group "
        "128: fp16 scale + 4-bit zero per group), dequantised to 16 bits; embeddings, head, norms 16-bit",
    ),
    "mxfp4": _scheme(
        "mxfp4",
        0.5 + 1.0 / 32,
        _SIXTEEN,
        "fp4",
        "MXFP4 (E2M1, one E8M0 scale per 32) linear "
        "layers; FP4 compute where the GPU has it, else dequantised to 16 bits",
    ),
    "nvfp4": _scheme(
        "nvfp4",
        0.5 + 1.0 / 16,
        _SIXTEEN,
        "fp4",
        "NVFP4 (E2M1, one FP8 scale per 16) linear "
        "layers; FP4 compute where the GPU has it, else dequantised to 16 bits",
    ),
}

_ALIASES = {
    "float32": "fp32", "float": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16",
    "float8": "fp8", "e4m3": "fp8", "fp8-w8a8": "fp8", "int8-weight-only": "int8", "int8-w8a8": "w8a8",
    "int4-awq": "int4", "int4-gptq": "int4", "awq": "int4", "gptq": "int4", "w4a16": "int4", "fp4": "nvfp4",
}  # fmt: skip

#: KV-cache dtypes that are modelled, with bytes per element.
KV_DTYPES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0}


def quant_scheme(dtype: str) -> QuantScheme:
    """The scheme of weight dtype `dtype` (aliases accepted); InvalidValueError naming `dtype` otherwise."""
    key = str(dtype).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in SCHEMES:
        raise InvalidValueError(f"unknown dtype {dtype!r} for the weights (dtype); use one of {', '.join(SCHEMES)}")
    return SCHEMES[key]


def canonical_weight_dtype(dtype: str) -> str:
    """The canonical name of a weight dtype ("int4-awq" -> "int4")."""
    return quant_scheme(dtype).name


def check_kv_dtype(kv_dtype: str) -> str:
    """The canonical KV-cache dtype; 4-bit and unknown dtypes are refused (the same message everywhere)."""
    key = str(kv_dtype).strip().lower()
    key = _ALIASES.get(key, key)
    if key in ("int4", "nvfp4", "mxfp4"):
        raise InvalidValueError(f"kv_dtype: a {key} KV cache is not modelled; use fp8 or int8 for a quantised KV cache")
    if key not in KV_DTYPES:
        raise InvalidValueError(
            f"unknown dtype {kv_dtype!r} for the KV cache (kv_dtype); use one of {', '.join(KV_DTYPES)}"
        )
    return key


def default_kv_dtype(dtype: str) -> str:
    """The KV-cache dtype deployments pair with weight dtype `dtype`: its own for fp32/bf16/fp16 and fp8, else bf16.

    FP8 (W8A8) checkpoints are served with an FP8 KV cache by the engines whose FP8 recipe it is (NVIDIA
    ModelOpt checkpoints in TensorRT-LLM and NIM, `kv_cache_quant_algo: FP8`); weight-only schemes (AWQ,
    GPTQ, int8, MXFP4/NVFP4 weights) keep a 16-bit cache unless an FP8/INT8 one is asked for explicitly.
    """
    name = canonical_weight_dtype(dtype)
    return name if name in ("fp32", "bf16", "fp16", "fp8") else "bf16"


def kv_bytes_per_element(kv_dtype: str) -> float:
    """Bytes per cached key/value element of `kv_dtype` (checked with `check_kv_dtype`)."""
    return KV_DTYPES[check_kv_dtype(kv_dtype)]


def is_linear_group(group: str) -> bool:
    """Whether a `count_params` breakdown key names a linear projection that quantisation applies to.

    Attention q/k/v/o (self and cross), MLP and expert matrices, MLA projections; not embeddings, the head,
    norms, routers, biases or relative position tables.
    """
    head, _, tail = group.partition(".")
    if head in ("embedding", "lm_head", "norm") or "bias" in tail or tail in ("router", "relative_bias"):
        return False
    return head in ("attention", "cross_attention", "mlp", "moe", "mla")
