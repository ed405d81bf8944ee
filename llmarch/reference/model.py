"""Reference PyTorch model built from any ArchConfig, for counting and for checking the calculators.

One readable implementation of every layout a preset can describe: decoder-only and encoder-decoder
stacks; learned (with `position_offset` extra rows), sinusoidal, rotary (full or partial), ALiBi, T5
relative-bias and no positions; MHA/GQA/MQA and multi-head latent attention (MLA); sliding-window and
local/global layers; sequential or parallel blocks, pre- or post-norm, LayerNorm or RMSNorm; plain and
gated MLPs; top-k mixture of experts with shared experts and dense first layers; a tied or untied head.

Three uses, each checked by the tests against the calculators:
- `build_model(config, device="meta")` allocates nothing, so `sum(p.numel())` of any preset (even
  DeepSeek-V3) equals `params.count_params(config).total`, and `param_breakdown` maps every parameter
  name to a key of `ParamCount.breakdown` (names are chosen so the mapping is obvious).
- `scaled_down(config)` is a tiny copy with the same structure for real CPU forward passes; its matmul
  FLOPs, measured by fvcore and by torch's FlopCounterMode, equal `flops.forward_flops`.
- `model.init_cache(...)` + `model.decode_step(...)` decode incrementally with a KV cache of real,
  preallocated tensors (a rolling buffer of `sliding_window` positions on local layers, the latent and
  the rotary key for MLA, a static cross-attention cache for encoder-decoders): their bytes equal
  `memory.kv_cache`, and the logits equal a full forward pass.

Attention is written with explicit matmuls (no fused scaled_dot_product_attention) so that FLOP
counters see every multiply-add. `forward(..., exact_attention=True)` computes causal attention one
query row at a time over only the keys it attends to, so the counted Q K^T and A V FLOPs are exactly
the causal (and windowed) convention of `flops.mean_attended_keys`; the default path multiplies the
full square and masks it (the same result, faster).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmarch.core.config import ArchConfig
from llmarch.core.errors import InvalidValueError

#: Positions in a T5 relative bias table when the config does not say (T5's relative_attention_max_distance).
DEFAULT_RELATIVE_MAX_DISTANCE = 128
#: Rotary base when the config does not say (Su et al. 2021, arXiv:2104.09864).
DEFAULT_ROPE_THETA = 10000.0

#: Signature of a position-bias function: (q_start, n_queries, k_start, n_keys) -> (1, heads, q, k) or None.
BiasFn = Callable[[int, int, int, int], Tensor | None]


# -- small pieces ---------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    """Root-mean-square norm with a scale and no shift (Zhang and Sennrich 2019, arXiv:1910.07467)."""

    def __init__(self, width: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def make_norm(config: ArchConfig, width: int) -> nn.Module:
    """The config's norm over `width` channels: LayerNorm (shift only with norm_bias), RMSNorm, or a
    LayerNorm without scale or shift (nonparametric, OLMo 1)."""
    if config.norm == "nonparametric":
        return nn.LayerNorm(width, elementwise_affine=False)
    if config.norm == "layernorm":
        return nn.LayerNorm(width, bias=config.norm_bias)
    return RMSNorm(width)


class QKNorm(nn.Module):
    """A query/key norm: the config's norm kind with a scale and no shift, over `shape`'s trailing axes.

    Shape (d_head,): one scale shared by all heads ("head"); (heads, d_head): statistics per head with a
    scale per head ("per-head", Cohere and StableLM 2); (heads x d_head,) on the flattened projection
    ("full", OLMo 2). A nonparametric config has no scale.
    """

    def __init__(self, config: ArchConfig, shape: tuple[int, ...], eps: float = 1e-6):
        super().__init__()
        self.rms, self.eps = config.norm == "rmsnorm", eps
        self.weight = nn.Parameter(torch.ones(shape)) if config.norm != "nonparametric" else None

    def forward(self, x: Tensor) -> Tensor:  # x: (..., d_head) or (..., heads x d_head)
        if not self.rms:
            x = x - x.mean(-1, keepdim=True)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return x * self.weight if self.weight is not None else x


def weightless_rms(x: Tensor, eps: float = 1e-6) -> Tensor:
    """x / rms(x) over the last axis with no learned scale (Llama 4's L2 query/key norm)."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swiglu": F.silu,  # SwiGLU: silu(gate) * up (Shazeer 2020, arXiv:2002.05202)
    "geglu": F.gelu,  # GeGLU: gelu(gate) * up
}


class MLP(nn.Module):
    """Feed-forward network: down(act(up(x))), or down(act(gate(x)) * up(x)) when gated."""

    def __init__(self, config: ArchConfig, d_ff: int):
        super().__init__()
        d, bias = config.d_model, config.mlp_bias
        self.act = _ACTIVATIONS[config.mlp]
        self.gate = nn.Linear(d, d_ff, bias=bias) if config.gated_mlp else None
        self.up = nn.Linear(d, d_ff, bias=bias)
        self.down = nn.Linear(d_ff, d, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.up(x)
        h = self.act(self.gate(x)) * h if self.gate is not None else self.act(h)
        return self.down(h)


class Experts(nn.Module):
    """`n` MLPs of one shape stored as stacked weights (n, d_in, d_out), as grouped-GEMM MoE kernels keep them.

    One tensor per matrix keeps a 256-expert layer to a handful of parameters to build (fast on the meta
    device) while counting exactly n separate MLPs.
    """

    def __init__(self, config: ArchConfig, n: int, d_ff: int):
        super().__init__()
        d = config.d_model
        self.act = _ACTIVATIONS[config.mlp]
        self.gate = _stacked(n, d, d_ff) if config.gated_mlp else None
        self.up = _stacked(n, d, d_ff)
        self.down = _stacked(n, d_ff, d)
        self.gate_bias = _stacked_bias(n, d_ff) if config.mlp_bias and config.gated_mlp else None
        self.up_bias = _stacked_bias(n, d_ff) if config.mlp_bias else None
        self.down_bias = _stacked_bias(n, d) if config.mlp_bias else None

    def run(self, e: int, x: Tensor) -> Tensor:
        """Expert `e` on tokens x (n_tokens, d_model)."""
        up = _affine(x, self.up[e], self.up_bias, e)
        h = self.act(_affine(x, self.gate[e], self.gate_bias, e)) * up if self.gate is not None else self.act(up)
        return _affine(h, self.down[e], self.down_bias, e)


def _stacked(n: int, d_in: int, d_out: int) -> nn.Parameter:
    bound = 1 / math.sqrt(d_in)  # nn.Linear's default range
    return nn.Parameter(torch.empty(n, d_in, d_out).uniform_(-bound, bound))


def _stacked_bias(n: int, width: int) -> nn.Parameter:
    return nn.Parameter(torch.zeros(n, width))


def _affine(x: Tensor, weight: Tensor, bias: nn.Parameter | None, e: int) -> Tensor:
    y = x @ weight  # (tokens, d_in) @ (d_in, d_out)
    return y + bias[e] if bias is not None else y


class MoE(nn.Module):
    """Top-k mixture of experts with optional always-on shared experts (Shazeer et al. 2017; Fedus et al.
    2021; DeepSeekMoE, Dai et al. 2024, arXiv:2401.06066).

    The router's softmax probabilities pick k experts per token, weighted by those probabilities; every
    token also passes through each shared expert (scaled by a sigmoid gate with `shared_expert_gate`).
    Each routed expert multiplies only its own tokens, so the matmul FLOPs are exactly k (+ shared)
    expert MLPs per token.
    """

    def __init__(self, config: ArchConfig):
        super().__init__()
        assert config.n_experts is not None and config.n_experts_per_token is not None
        self.top_k = config.n_experts_per_token
        self.router = nn.Linear(config.d_model, config.n_experts, bias=config.router_bias)
        self.experts = Experts(config, config.n_experts, config.expert_d_ff)
        n_shared = config.n_shared_experts
        self.shared_experts = Experts(config, n_shared, config.shared_expert_d_ff) if n_shared else None
        # Qwen2-MoE scales the shared experts' output by sigmoid(x . w), w a d_model vector.
        self.shared_gate = nn.Linear(config.d_model, 1, bias=False) if config.shared_expert_gate else None

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(-1, x.shape[-1])  # (tokens, d_model)
        probs = self.router(flat).softmax(dim=-1)  # (tokens, n_experts)
        weight, chosen = probs.topk(self.top_k, dim=-1)  # (tokens, k)
        out = torch.zeros_like(flat)
        for e in range(self.experts.up.shape[0]):
            token, slot = torch.where(chosen == e)
            y = self.experts.run(e, flat[token]) * weight[token, slot].unsqueeze(-1)
            out = out.index_add(0, token, y)
        if self.shared_experts is not None:
            shared = torch.zeros_like(flat)
            for e in range(self.shared_experts.up.shape[0]):
                shared = shared + self.shared_experts.run(e, flat)
            if self.shared_gate is not None:
                shared = shared * torch.sigmoid(self.shared_gate(flat))
            out = out + shared
        return out.view_as(x)


# -- positions ----------------------------------------------------------------------------------------------
class Rotary:
    """Rotary position embedding (Su et al. 2021, arXiv:2104.09864) on the first `dim` channels of a head.

    GPT-NeoX layout (rotate_half over the rotated slice); partial rotary (Phi, GPT-NeoX) leaves the
    remaining channels as they are. No parameters, no buffers: the angles are computed on the fly.
    """

    def __init__(self, dim: int, theta: float):
        self.dim = dim - dim % 2  # channels rotate in pairs; an odd last channel (odd d_head) stays as it is
        self.theta = theta

    def __call__(self, x: Tensor, start: int) -> Tensor:
        """x: (batch, seq, heads, width >= dim), positions start .. start + seq - 1."""
        half = self.dim // 2
        inv_freq = self.theta ** (-torch.arange(half, dtype=torch.float64, device=x.device) / half)
        pos = torch.arange(start, start + x.shape[1], dtype=torch.float64, device=x.device)
        angle = (pos[:, None] * inv_freq[None, :]).to(x.dtype)  # (seq, dim / 2)
        cos = torch.cat((angle.cos(), angle.cos()), dim=-1)[None, :, None, :]
        sin = torch.cat((angle.sin(), angle.sin()), dim=-1)[None, :, None, :]
        rot, rest = x[..., : self.dim], x[..., self.dim :]
        rotated = torch.cat((-rot[..., half:], rot[..., :half]), dim=-1)
        return torch.cat((rot * cos + rotated * sin, rest), dim=-1)


def sinusoidal_positions(start: int, length: int, width: int, *, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Sinusoidal encodings (Vaswani et al. 2017, section 3.5): sin on even channels, cos on odd; (length, width)."""
    pos = torch.arange(start, start + length, dtype=torch.float64, device=device)[:, None]
    inv_freq = 10000.0 ** (-torch.arange(0, width, 2, dtype=torch.float64, device=device) / width)
    angle = pos * inv_freq[None, :]
    out = torch.zeros(length, width, dtype=torch.float64, device=device)
    out[:, 0::2] = angle.sin()
    out[:, 1::2] = angle.cos()[:, : width // 2]
    return out.to(dtype)


def alibi_slopes(n_heads: int) -> list[float]:
    """Per-head ALiBi slopes (Press et al. 2022, arXiv:2108.12409, section 3): 2^(-8 i / n) for n a power of
    two; otherwise those of the nearest lower power of two, then every other slope of the next one."""

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_heads).is_integer():
        return power_of_two(n_heads)
    closest = 2 ** math.floor(math.log2(n_heads))
    return power_of_two(closest) + power_of_two(2 * closest)[0::2][: n_heads - closest]


def relative_position_bucket(relative: Tensor, *, bidirectional: bool, n_buckets: int, max_distance: int) -> Tensor:
    """T5's bucket of each key-minus-query offset (Raffel et al. 2020, section 2.1; transformers' T5Attention).

    Half the buckets are exact small offsets, the rest logarithmically wider up to max_distance; a
    bidirectional (encoder) table spends half its buckets on keys after the query.
    """
    buckets = torch.zeros_like(relative)
    if bidirectional:
        n_buckets //= 2
        buckets = buckets + (relative > 0).long() * n_buckets
        distance = relative.abs()
    else:
        distance = -torch.clamp(relative, max=0)
    max_exact = n_buckets // 2
    scaled = torch.log(distance.clamp(min=1).double() / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + (scaled * (n_buckets - max_exact)).long()
    large = torch.clamp(large, max=n_buckets - 1)
    return buckets + torch.where(distance < max_exact, distance, large)


# -- attention ----------------------------------------------------------------------------------------------
def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    q_start: int,
    k_start: int,
    causal: bool,
    window: int | None,
    bias_fn: BiasFn | None,
    exact: bool = False,
    chunk: int | None = None,
    sinks: Tensor | None = None,
    softcap: float | None = None,
    scale: float | None = None,
) -> Tensor:
    """Scaled dot-product attention with explicit matmuls; returns (batch, q_len, heads, d_v).

    q (batch, q_len, heads, d_head) at positions q_start..; k (batch, k_len, kv_heads, d_head) and
    v (batch, k_len, kv_heads, d_v) at consecutive positions k_start... Grouped KV heads are repeated to
    the query heads (head h reads KV head h // group; Ainslie et al. 2023, arXiv:2305.13245). Causal
    query p sees keys p - window + 1 .. p (the window counts the query itself, as the rolling buffer of
    Mistral, Jiang et al. 2023); under `chunk` C it sees only keys of its own chunk, floor(p / C) C .. p
    (Llama 4). `sinks` (heads,) are learned logits that join each softmax and take probability mass but
    carry no value (gpt-oss; Xiao et al. 2023, arXiv:2309.17453). `softcap` caps scores at c tanh(s / c)
    (Gemma 2); `scale` replaces 1 / sqrt(d_head). `exact` loops over query rows and multiplies only the
    attended keys, so a FLOP counter sees exactly the causal convention; otherwise the full square is
    computed and masked.
    """
    _, q_len, n_heads, d_head = q.shape
    k_len, n_kv = k.shape[1], k.shape[2]
    q = q.transpose(1, 2)  # (batch, heads, q_len, d_head)
    k = k.transpose(1, 2).repeat_interleave(n_heads // n_kv, dim=1)  # (batch, heads, k_len, d_head)
    v = v.transpose(1, 2).repeat_interleave(n_heads // n_kv, dim=1)  # (batch, heads, k_len, d_v)
    scale = 1.0 / math.sqrt(d_head) if scale is None else scale
    bias = bias_fn(q_start, q_len, k_start, k_len) if bias_fn is not None else None  # (1, heads, q, k)

    def capped(scores: Tensor) -> Tensor:  # before any bias or mask: a masked -inf must stay -inf
        return softcap * torch.tanh(scores / softcap) if softcap is not None else scores

    def weights(scores: Tensor) -> Tensor:  # softmax, with the sinks as extra columns
        if sinks is None:
            return scores.softmax(dim=-1)
        sink = sinks.view(1, -1, 1, 1).expand(*scores.shape[:-1], 1).to(scores.dtype)
        return torch.cat((scores, sink), dim=-1).softmax(dim=-1)[..., :-1]

    if exact and causal:
        rows = []
        for i in range(q_len):
            p = q_start + i
            lo = max(k_start, p - window + 1) if window is not None else k_start
            lo = max(lo, p - p % chunk) if chunk is not None else lo
            a, b = lo - k_start, p + 1 - k_start
            scores = capped((q[:, :, i : i + 1] @ k[:, :, a:b].transpose(-1, -2)) * scale)  # (batch, heads, 1, b - a)
            if bias is not None:
                scores = scores + bias[:, :, i : i + 1, a:b]
            rows.append(weights(scores) @ v[:, :, a:b])
        out = torch.cat(rows, dim=2)
    else:
        scores = capped((q @ k.transpose(-1, -2)) * scale)  # (batch, heads, q_len, k_len)
        if bias is not None:
            scores = scores + bias
        if causal:
            qp = torch.arange(q_start, q_start + q_len, device=q.device)[:, None]
            kp = torch.arange(k_start, k_start + k_len, device=q.device)[None, :]
            allowed = kp <= qp
            if window is not None:
                allowed = allowed & (qp - kp < window)
            if chunk is not None:
                allowed = allowed & (qp // chunk == kp // chunk)
            scores = scores.masked_fill(~allowed, float("-inf"))
        out = weights(scores) @ v  # (batch, heads, q_len, d_v)
    return out.transpose(1, 2)


@dataclass
class Step:
    """What every attention layer of one stack needs to know about the current call."""

    start: int  # position of the first input token
    causal: bool
    rope: Rotary | None
    bias_fn: BiasFn | None
    exact: bool


class Attention(nn.Module):
    """Multi-head attention with n_kv_heads key/value heads (MHA, GQA, MQA): projections q, k, v, o.

    Options: query/key norms (`qk_norm`: q_head_norm and k_head_norm, applied before RoPE), one learned
    sink logit per head (`sinks`), score softcapping and a score scale (`attention_multiplier`).
    """

    def __init__(self, config: ArchConfig, *, relative_bias: bool = False):
        super().__init__()
        d, h, hkv = config.d_model, config.n_heads, config.n_kv_heads
        self.n_heads, self.n_kv_heads, self.d_head, self.d_v = h, hkv, config.d_head, config.v_head_dim
        self.q = nn.Linear(d, h * self.d_head, bias=config.qkv_bias)
        self.k = nn.Linear(d, hkv * self.d_head, bias=config.qkv_bias)
        self.v = nn.Linear(d, hkv * self.d_v, bias=config.qkv_bias)
        self.o = nn.Linear(h * self.d_v, d, bias=config.attn_out_bias)
        if relative_bias:  # T5: one (buckets x heads) table in the first layer of a stack, shared by its layers
            assert config.relative_attention_buckets is not None
            self.relative_bias = nn.Embedding(config.relative_attention_buckets, h)
        self.qk_norm = config.qk_norm
        if config.qk_norm == "head":  # one d_head norm shared by all heads (Qwen3, Gemma 3)
            self.q_head_norm, self.k_head_norm = QKNorm(config, (self.d_head,)), QKNorm(config, (self.d_head,))
        elif config.qk_norm == "full":  # one norm over the whole projection (OLMo 2)
            self.q_head_norm = QKNorm(config, (h * self.d_head,))
            self.k_head_norm = QKNorm(config, (hkv * self.d_head,))
        elif config.qk_norm == "per-head":
            self.q_head_norm = QKNorm(config, (h, self.d_head))
            self.k_head_norm = QKNorm(config, (hkv, self.d_head))
        self.sinks = nn.Parameter(torch.zeros(h)) if config.attention_sinks else None
        self.softcap, self.scale = config.attn_logit_softcap, config.attention_multiplier

    def norm_qk(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """Query/key norms on q (batch, t, heads, d_head) and k (batch, t, kv_heads, d_head)."""
        if self.qk_norm is None:
            return q, k
        if self.qk_norm == "l2":
            return weightless_rms(q), weightless_rms(k)
        if self.qk_norm == "full":
            return self.q_head_norm(q.flatten(2)).view_as(q), self.k_head_norm(k.flatten(2)).view_as(k)
        return self.q_head_norm(q), self.k_head_norm(k)

    def cache_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-position shapes this layer caches: keys and values of every KV head."""
        return {"k": (self.n_kv_heads, self.d_head), "v": (self.n_kv_heads, self.d_v)}

    def project_kv(self, memory: Tensor) -> dict[str, Tensor]:
        """Keys and values of `memory` (batch, len, d_model): the static cross-attention cache."""
        b, n, _ = memory.shape
        k = self.k(memory).view(b, n, self.n_kv_heads, self.d_head)
        v = self.v(memory).view(b, n, self.n_kv_heads, self.d_v)
        return {"k": k, "v": v}

    def forward(self, x: Tensor, step: Step, *, window: int | None, cache: LayerCache | None,
                chunk: int | None = None) -> Tensor:  # fmt: skip
        b, t, _ = x.shape
        q = self.q(x).view(b, t, self.n_heads, self.d_head)
        kv = self.project_kv(x)
        q, kv["k"] = self.norm_qk(q, kv["k"])
        if step.rope is not None:
            q, kv["k"] = step.rope(q, step.start), step.rope(kv["k"], step.start)
        k_start = step.start
        if cache is not None:
            kv, k_start = cache.update(kv, step.start)
        out = attend(q, kv["k"], kv["v"], q_start=step.start, k_start=k_start, causal=step.causal, window=window,
                     bias_fn=step.bias_fn, exact=step.exact, chunk=chunk, sinks=self.sinks, softcap=self.softcap,
                     scale=self.scale)  # fmt: skip
        return self.o(out.reshape(b, t, self.n_heads * self.d_v))

    def cross(self, x: Tensor, memory_kv: dict[str, Tensor]) -> Tensor:
        """Cross-attention of x (batch, len, d_model) over the encoder's keys and values (no mask, no bias)."""
        b, t, _ = x.shape
        q = self.q(x).view(b, t, self.n_heads, self.d_head)
        out = attend(q, memory_kv["k"], memory_kv["v"], q_start=0, k_start=0, causal=False, window=None,
                     bias_fn=None)  # fmt: skip
        return self.o(out.reshape(b, t, self.n_heads * self.d_v))


class LatentAttention(nn.Module):
    """Multi-head latent attention (DeepSeek-AI 2024, arXiv:2405.04434, section 2.1).

    Query: full projection `q`, or q_down -> RMSNorm q_norm -> q_up when mla_q_rank is set. Keys and
    values: kv_down to a latent of mla_kv_rank plus one decoupled rotary key of mla_rope_dim shared by
    all heads; RMSNorm kv_norm over the latent; kv_up expands it to per-head non-rotary keys
    (d_head - rope_dim) and values (d_v). The cache holds only the normed latent and the rotated key; the
    latent is expanded again at every step (the naive form; absorbing kv_up into q and o saves FLOPs but
    not cache).
    """

    def __init__(self, config: ArchConfig):
        super().__init__()
        assert config.mla_kv_rank is not None and config.mla_rope_dim is not None
        d, h = config.d_model, config.n_heads
        self.n_heads, self.d_head, self.d_v = h, config.d_head, config.v_head_dim
        self.rank, self.rope_dim = config.mla_kv_rank, config.mla_rope_dim
        self.nope = config.d_head - config.mla_rope_dim
        self.q_compressed = config.mla_q_rank is not None
        if config.mla_q_rank is None:
            self.q = nn.Linear(d, h * self.d_head, bias=config.qkv_bias)
        else:
            self.q_down = nn.Linear(d, config.mla_q_rank, bias=config.qkv_bias)
            self.q_norm = RMSNorm(config.mla_q_rank)
            self.q_up = nn.Linear(config.mla_q_rank, h * self.d_head, bias=False)
        self.kv_down = nn.Linear(d, self.rank + self.rope_dim, bias=config.qkv_bias)
        self.kv_norm = RMSNorm(self.rank)
        self.kv_up = nn.Linear(self.rank, h * (self.nope + self.d_v), bias=False)
        self.o = nn.Linear(h * self.d_v, d, bias=config.attn_out_bias)

    def cache_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"latent": (self.rank,), "rope_key": (self.rope_dim,)}

    def forward(self, x: Tensor, step: Step, *, window: int | None, cache: LayerCache | None,
                chunk: int | None = None) -> Tensor:  # fmt: skip
        b, t, _ = x.shape
        h = self.n_heads
        q = self.q_up(self.q_norm(self.q_down(x))) if self.q_compressed else self.q(x)
        q_nope, q_rope = q.view(b, t, h, self.d_head).split([self.nope, self.rope_dim], dim=-1)
        latent, rope_key = self.kv_down(x).split([self.rank, self.rope_dim], dim=-1)
        new = {"latent": self.kv_norm(latent), "rope_key": rope_key}
        assert step.rope is not None
        q_rope = step.rope(q_rope, step.start)
        new["rope_key"] = step.rope(rope_key.unsqueeze(2), step.start).squeeze(2)  # (batch, t, rope_dim)
        k_start = step.start
        if cache is not None:
            new, k_start = cache.update(new, step.start)
        n = new["latent"].shape[1]
        k_nope, v = self.kv_up(new["latent"]).view(b, n, h, self.nope + self.d_v).split([self.nope, self.d_v], -1)
        k = torch.cat((k_nope, new["rope_key"].unsqueeze(2).expand(b, n, h, self.rope_dim)), dim=-1)
        q = torch.cat((q_nope, q_rope), dim=-1)
        out = attend(q, k, v, q_start=step.start, k_start=k_start, causal=step.causal, window=window,
                     bias_fn=step.bias_fn, exact=step.exact, chunk=chunk)  # fmt: skip
        return self.o(out.reshape(b, t, h * self.d_v))


# -- the KV cache -------------------------------------------------------------------------------------------
class LayerCache:
    """One layer's self-attention cache: preallocated tensors (batch, slots, ...) used as a ring buffer.

    A global layer has one slot per position up to the cache's max_len; a sliding-window layer has
    min(max_len, window) slots and position p lives in slot p mod slots (the rolling buffer of Mistral,
    Jiang et al. 2023, arXiv:2310.06825, section 2).
    """

    def __init__(self, shapes: dict[str, tuple[int, ...]], *, batch: int, slots: int, dtype: torch.dtype,
                 device: torch.device | str):  # fmt: skip
        self.slots = slots
        self.tensors = {name: torch.zeros(batch, slots, *shape, dtype=dtype, device=device)
                        for name, shape in shapes.items()}  # fmt: skip

    def update(self, new: dict[str, Tensor], start: int) -> tuple[dict[str, Tensor], int]:
        """Store positions start.. of `new`; return the cached positions still held followed by `new`,
        and the position of the first of them (the keys a query at `start` or later may attend to)."""
        t = next(iter(new.values())).shape[1]
        held = min(start, self.slots)
        device = next(iter(self.tensors.values())).device
        old = torch.arange(start - held, start, device=device) % self.slots
        out = {name: torch.cat((self.tensors[name][:, old], new[name]), dim=1) for name in new}
        keep = min(t, self.slots)  # a chunk longer than the ring leaves only its last `slots` positions
        slots = torch.arange(start + t - keep, start + t, device=device) % self.slots
        for name, value in new.items():
            self.tensors[name][:, slots] = value[:, t - keep :].to(self.tensors[name].dtype)
        return out, start - held


@dataclass
class KVCache:
    """Everything an incremental decoder keeps between steps: real tensors, so `nbytes` is what it costs."""

    layers: list[LayerCache]
    cross: list[dict[str, Tensor]]  # encoder-decoder: each decoder layer's keys and values of the encoder output
    max_len: int
    pos: int = 0  # tokens decoded so far
    encoder_len: int = 0

    def tensors(self) -> list[Tensor]:
        out = [t for layer in self.layers for t in layer.tensors.values()]
        return out + [t for kv in self.cross for t in kv.values()]

    @property
    def nbytes(self) -> int:
        """Bytes of every cache tensor (self-attention buffers and the static cross-attention keys/values)."""
        return sum(t.nbytes for t in self.tensors())


# -- blocks and stacks --------------------------------------------------------------------------------------
class Block(nn.Module):
    """One transformer layer: self-attention, cross-attention (decoder of an encoder-decoder), MLP or MoE.

    Pre-norm: x + f(norm(x)) per sub-layer (Xiong et al. 2020); post-norm: norm(x + f(x)) (Vaswani et al.
    2017); sandwich: x + post_norm(f(norm(x))) (Gemma 2/3); branch-post: x + norm(f(x)) (OLMo 2).
    `residual_multiplier` scales each sequential branch before the add (Granite). Parallel (GPT-J,
    Falcon, Phi, Cohere): x + attn(n1(x)) + mlp(n2(x)), with one shared input norm or two; as a post-norm
    layout (no published model) the shared norm takes the sum and two norms each take their branch.
    A local layer attends within its sliding window or chunk; a NoPE global layer (Llama 4) skips the
    rotation; local layers may rotate with their own base (Gemma 3's rope_local_theta).
    """

    def __init__(self, config: ArchConfig, layer: int, *, decoder: bool, cross: bool, relative_bias: bool):
        super().__init__()
        self.layout = "parallel" if config.parallel_block else config.norm_position
        self.pre_norm = config.norm_position == "pre"
        local = decoder and config.layer_is_local(layer)
        self.window = config.sliding_window if local else None
        self.chunk = config.attention_chunk if local else None
        self.span = config.local_span if local else None  # cache slots this layer needs at most
        self.rope_mode = "stack"
        if decoder and config.position == "rope" and not config.layer_uses_rope(layer):
            self.rope_mode = "none"
        elif local and config.rope_local_theta is not None and config.rotary_dim:
            self.rope_mode, self.local_rope = "local", Rotary(config.rotary_dim, config.rope_local_theta)
        self.residual_scale = config.residual_multiplier if config.residual_multiplier is not None else 1.0
        if config.mla_kv_rank is not None:
            self.self_attn: nn.Module = LatentAttention(config)
        else:
            self.self_attn = Attention(config, relative_bias=relative_bias)
        self.cross_attn = Attention(config) if cross else None
        if decoder and config.layer_is_moe(layer):
            self.moe: MoE | None = MoE(config)
            self.mlp: MLP | None = None
        else:
            self.moe, self.mlp = None, MLP(config, config.d_ff)
        d = config.d_model
        self.shared_norm = self.parallel and config.parallel_block_shared_norm
        if self.shared_norm:
            self.norm = make_norm(config, d)
        else:
            self.attn_norm = make_norm(config, d)
            self.mlp_norm = make_norm(config, d)
        if self.layout == "sandwich":
            self.post_attn_norm, self.post_mlp_norm = make_norm(config, d), make_norm(config, d)
        self.cross_norm = make_norm(config, d) if cross else None

    @property
    def parallel(self) -> bool:
        return self.layout == "parallel"

    def feed_forward(self, x: Tensor) -> Tensor:
        return self.moe(x) if self.moe is not None else self.mlp(x)  # type: ignore[misc]

    def forward(self, x: Tensor, step: Step, *, cache: LayerCache | None = None,
                memory_kv: dict[str, Tensor] | None = None) -> Tensor:  # fmt: skip
        if self.rope_mode != "stack":
            step = dataclasses.replace(step, rope=self.local_rope if self.rope_mode == "local" else None)

        def attn(h: Tensor) -> Tensor:
            return self.self_attn(h, step, window=self.window, cache=cache, chunk=self.chunk)

        if self.parallel:
            shared = self.shared_norm
            if self.pre_norm:
                h_attn = self.norm(x) if shared else self.attn_norm(x)
                h_mlp = h_attn if shared else self.mlp_norm(x)
                return x + attn(h_attn) + self.feed_forward(h_mlp)
            if shared:
                return self.norm(x + attn(x) + self.feed_forward(x))
            return x + self.attn_norm(attn(x)) + self.mlp_norm(self.feed_forward(x))
        r = self.residual_scale
        if self.layout == "sandwich":
            x = x + r * self.post_attn_norm(attn(self.attn_norm(x)))
            return x + r * self.post_mlp_norm(self.feed_forward(self.mlp_norm(x)))
        if self.layout == "branch-post":
            x = x + r * self.attn_norm(attn(x))
            return x + r * self.mlp_norm(self.feed_forward(x))
        if self.pre_norm:
            x = x + r * attn(self.attn_norm(x))
            if self.cross_attn is not None and self.cross_norm is not None and memory_kv is not None:
                x = x + self.cross_attn.cross(self.cross_norm(x), memory_kv)
            return x + r * self.feed_forward(self.mlp_norm(x))
        x = self.attn_norm(x + attn(x))
        if self.cross_attn is not None and self.cross_norm is not None and memory_kv is not None:
            x = self.cross_norm(x + self.cross_attn.cross(x, memory_kv))
        return self.mlp_norm(x + self.feed_forward(x))


class Stack(nn.Module):
    """A stack of blocks with its own positions (learned table, relative bias in layer 0) and final norm."""

    def __init__(self, config: ArchConfig, n_layers: int, *, decoder: bool, cross: bool):
        super().__init__()
        self.config = config
        self.causal = decoder
        if config.position == "learned":
            self.position_embedding = nn.Embedding(config.max_seq_len + config.position_offset, config.d_model)
        relative = config.position == "relative"
        self.layers = nn.ModuleList(
            Block(config, i, decoder=decoder, cross=cross, relative_bias=relative and i == 0) for i in range(n_layers)
        )
        self.final_norm = make_norm(config, config.d_model) if config.final_norm else None
        rotary_dim = config.rotary_dim
        theta = config.rope_theta if config.rope_theta is not None else DEFAULT_ROPE_THETA
        self.rope = Rotary(rotary_dim, theta) if rotary_dim else None

    def add_positions(self, x: Tensor, start: int) -> Tensor:
        """Add absolute position information (learned or sinusoidal) to embedded tokens x (batch, seq, d)."""
        config, t = self.config, x.shape[1]
        if config.position == "learned":
            rows = config.max_seq_len + config.position_offset
            if start + t + config.position_offset > rows:
                raise InvalidValueError(
                    f"{config.name}: position {start + t - 1} is past the learned table of {config.max_seq_len}"
                )
            pos = torch.arange(start, start + t, device=x.device) + config.position_offset  # OPT's offset rows
            return x + self.position_embedding(pos)[None]
        if config.position == "sinusoidal":
            return x + sinusoidal_positions(start, t, config.d_model, dtype=x.dtype, device=x.device)[None]
        return x

    def bias_fn(self) -> BiasFn | None:
        """The additive attention bias of this stack's position scheme (ALiBi, T5 relative), or None."""
        config, causal = self.config, self.causal
        if config.position == "alibi":
            n_heads = config.n_heads

            def alibi(q_start: int, q_len: int, k_start: int, k_len: int) -> Tensor:
                device = self.layers[0].self_attn.o.weight.device
                dtype = self.layers[0].self_attn.o.weight.dtype
                slopes = torch.tensor(alibi_slopes(n_heads), dtype=dtype, device=device)[:, None, None]
                qp = torch.arange(q_start, q_start + q_len, device=device)[:, None]
                kp = torch.arange(k_start, k_start + k_len, device=device)[None, :]
                distance = (qp - kp).abs().to(dtype)  # causal: the keys attended are at or before the query
                return -(slopes * distance)[None]

            return alibi
        if config.position == "relative":
            table: nn.Embedding = self.layers[0].self_attn.relative_bias
            assert config.relative_attention_buckets is not None
            n_buckets = config.relative_attention_buckets
            max_distance = config.relative_attention_max_distance or DEFAULT_RELATIVE_MAX_DISTANCE

            def relative(q_start: int, q_len: int, k_start: int, k_len: int) -> Tensor:
                device = table.weight.device
                qp = torch.arange(q_start, q_start + q_len, device=device)[:, None]
                kp = torch.arange(k_start, k_start + k_len, device=device)[None, :]
                bucket = relative_position_bucket(kp - qp, bidirectional=not causal, n_buckets=n_buckets,
                                                  max_distance=max_distance)  # fmt: skip
                return table(bucket).permute(2, 0, 1)[None]  # (1, heads, q_len, k_len)

            return relative
        return None

    def forward(self, x: Tensor, *, start: int = 0, caches: list[LayerCache] | None = None,
                memory_kv: list[dict[str, Tensor]] | None = None, exact: bool = False) -> Tensor:  # fmt: skip
        step = Step(start=start, causal=self.causal, rope=self.rope, bias_fn=self.bias_fn(), exact=exact)
        for i, layer in enumerate(self.layers):
            x = layer(x, step, cache=caches[i] if caches is not None else None,
                      memory_kv=memory_kv[i] if memory_kv is not None else None)  # fmt: skip
        return self.final_norm(x) if self.final_norm is not None else x


class LMHead(nn.Module):
    """Output projection to the vocabulary: its own weight, or the token embedding when tied; optional bias."""

    def __init__(self, config: ArchConfig):
        super().__init__()
        v, d = config.vocab_size, config.d_model
        self.weight = None if config.tie_embeddings else nn.Parameter(torch.empty(v, d).normal_(0, d**-0.5))
        self.bias = nn.Parameter(torch.zeros(v)) if config.lm_head_bias else None
        self.scale, self.softcap = config.logit_scale, config.final_logit_softcap

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        logits = F.linear(x, self.weight if self.weight is not None else embedding, self.bias)
        if self.scale is not None:  # Cohere's logit_scale; Granite divides by logits_scaling
            logits = logits * self.scale
        if self.softcap is not None:  # Gemma 2: cap * tanh(logits / cap)
            logits = self.softcap * torch.tanh(logits / self.softcap)
        return logits


class TransformerModel(nn.Module):
    """A decoder-only or encoder-decoder transformer exactly as `config` describes it.

    Parameter names mirror `ParamCount.breakdown` (see `param_breakdown`): token_embedding,
    {encoder,decoder}.position_embedding, embedding_norm, {encoder,decoder}.layers.N.{self_attn,
    cross_attn}.{q,k,v,o,q_down,q_up,kv_down,kv_up,relative_bias,q_norm,kv_norm}, ...layers.N.mlp,
    ...layers.N.moe.{router,experts,shared_experts}, ...layers.N.*norm, {encoder,decoder}.final_norm,
    lm_head.{weight,bias}.
    """

    def __init__(self, config: ArchConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.embedding_norm = make_norm(config, config.d_model) if config.embedding_norm else None
        if config.is_encoder_decoder:
            self.encoder: Stack | None = Stack(config, config.n_encoder_layers, decoder=False, cross=False)
        else:
            self.encoder = None
        self.decoder = Stack(config, config.n_layers, decoder=True, cross=config.is_encoder_decoder)
        self.lm_head = LMHead(config)

    def embed(self, tokens: Tensor, stack: Stack, start: int) -> Tensor:
        x = self.token_embedding(tokens)
        if self.config.embedding_multiplier is not None:  # Granite
            x = x * self.config.embedding_multiplier
        x = stack.add_positions(x, start)
        return self.embedding_norm(x) if self.embedding_norm is not None else x

    def encode(self, encoder_tokens: Tensor, *, exact_attention: bool = False) -> Tensor:
        """Encoder output (batch, src_len, d_model) of an encoder-decoder."""
        if self.encoder is None:
            raise InvalidValueError(f"{self.config.name} is decoder-only; it has no encoder")
        return self.encoder(self.embed(encoder_tokens, self.encoder, 0), exact=exact_attention)

    def forward(self, tokens: Tensor, encoder_tokens: Tensor | None = None, *, exact_attention: bool = False) -> Tensor:
        """Logits (batch, seq, vocab) of every position of `tokens` (batch, seq); for an encoder-decoder,
        `tokens` are the decoder's (target) tokens and `encoder_tokens` the source."""
        memory_kv = None
        if self.encoder is not None:
            if encoder_tokens is None:
                raise InvalidValueError(f"{self.config.name} is an encoder-decoder: pass encoder_tokens")
            memory = self.encode(encoder_tokens, exact_attention=exact_attention)
            memory_kv = [layer.cross_attn.project_kv(memory) for layer in self.decoder.layers]
        h = self.decoder(self.embed(tokens, self.decoder, 0), memory_kv=memory_kv, exact=exact_attention)
        return self.lm_head(h, self.token_embedding.weight)

    # -- incremental decoding ---------------------------------------------------------------------------
    def init_cache(self, *, batch: int = 1, max_len: int, encoder_output: Tensor | None = None,
                   dtype: torch.dtype | None = None) -> KVCache:  # fmt: skip
        """Allocate the KV cache for `batch` sequences of up to `max_len` decoded tokens.

        Global layers get max_len slots, sliding-window layers min(max_len, window) (a rolling buffer).
        For an encoder-decoder, pass `encoder_output` (from `encode`): each decoder layer's cross-attention
        keys and values over it are computed once and kept for the whole decode.
        """
        if max_len < 1 or batch < 1:
            raise InvalidValueError(f"batch and max_len must be positive, got {batch} and {max_len}")
        weight = self.token_embedding.weight
        dtype = dtype or weight.dtype
        layers = []
        for block in self.decoder.layers:
            slots = max_len if block.span is None else min(max_len, block.span)
            layers.append(LayerCache(block.self_attn.cache_shapes(), batch=batch, slots=slots, dtype=dtype,
                                     device=weight.device))  # fmt: skip
        cross: list[dict[str, Tensor]] = []
        encoder_len = 0
        if self.encoder is not None:
            if encoder_output is None:
                raise InvalidValueError(f"{self.config.name} is an encoder-decoder: pass encoder_output")
            encoder_len = encoder_output.shape[1]
            for block in self.decoder.layers:
                kv = block.cross_attn.project_kv(encoder_output)
                cross.append({name: t.to(dtype).contiguous() for name, t in kv.items()})
        return KVCache(layers=layers, cross=cross, max_len=max_len, encoder_len=encoder_len)

    def decode_step(self, tokens: Tensor, cache: KVCache) -> Tensor:
        """Logits (batch, t, vocab) for the next `t` tokens (batch, t), reading and extending `cache`.

        A prompt can go in as one chunk (prefill) and generation one token at a time; the result equals
        the matching rows of a full forward pass.
        """
        t = tokens.shape[1]
        if cache.pos + t > cache.max_len:
            raise InvalidValueError(f"cache holds {cache.max_len} positions; cannot add {t} after {cache.pos}")
        x = self.embed(tokens, self.decoder, cache.pos)
        h = self.decoder(x, start=cache.pos, caches=cache.layers, memory_kv=cache.cross or None)
        cache.pos += t
        return self.lm_head(h, self.token_embedding.weight)


# -- construction -------------------------------------------------------------------------------------------
def build_model(config: ArchConfig, *, device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32) -> TransformerModel:  # fmt: skip
    """The reference model of `config` on `device` ("meta" allocates no memory: use it to count any size)."""
    with torch.device(device):
        model = TransformerModel(config)
    return model.to(dtype=dtype)


def param_breakdown(model: nn.Module) -> dict[str, int]:
    """The model's parameters by `ParamCount.breakdown` key (tied weights once, as named_parameters gives)."""
    parts: dict[str, int] = {}
    for name, p in model.named_parameters():
        key = _breakdown_key(name)
        parts[key] = parts.get(key, 0) + p.numel()
    return parts


def _breakdown_key(name: str) -> str:
    parts = name.split(".")
    if parts[0] == "token_embedding":
        return "embedding.token"
    if parts[0] == "embedding_norm":
        return "norm.embedding"
    if parts[0] == "lm_head":
        return f"lm_head.{parts[1]}"
    if parts[1] == "position_embedding":
        return "embedding.position"
    if parts[1] == "final_norm":
        return "norm.final"
    sub = parts[3]  # {encoder,decoder}.layers.N.<sub>
    if sub in ("self_attn", "cross_attn"):
        proj = parts[4]
        if proj.endswith("head_norm"):
            return "norm.qk"
        if proj.endswith("norm"):
            return "norm.blocks"  # MLA latent norms
        return f"{'attention' if sub == 'self_attn' else 'cross_attention'}.{proj}"
    if sub == "mlp":
        return "mlp.dense"
    if sub == "moe":
        return f"moe.{parts[4]}"
    if sub.endswith("norm"):
        return "norm.blocks"
    raise AssertionError(f"parameter {name!r} has no breakdown key")


def scaled_down(config: ArchConfig, *, d_head: int = 16, vocab_size: int = 128, max_seq_len: int = 64,
                window: int = 4) -> ArchConfig:  # fmt: skip
    """A tiny copy of `config` with the same structure, for real forward passes on a CPU.

    Kept: the attention kind (MHA/GQA/MQA/MLA, with a query-to-KV group of up to 3), whether d_head x
    n_heads equals d_model, the rotary fraction, the position scheme, norms, biases, block layout, tied
    head, local/global pattern (a window or chunk of `window` tokens and at least one global layer), MoE
    with top-k below the expert count, shared experts (and their width and gate), a dense first layer and
    interleaved MoE layers, MLA's query compression, q/k norms, sinks and the metadata. Shrunk: two
    layers per stack (plus a dense one, or up to the global period), at most 4 query heads, d_head ~16,
    d_ff at most 4 x d_model, at most 4 experts, a small vocabulary and context.
    """
    attention = config.attention
    n_heads = min(config.n_heads, 4)
    if attention == "gqa":
        n_kv = 2
        n_heads = 2 * min(config.n_heads // config.n_kv_heads, 3)
    elif attention == "mqa":
        n_kv = 1
    else:
        n_kv = n_heads
    changes: dict[str, object] = {}
    if config.mla_kv_rank is not None:
        assert config.mla_rope_dim is not None
        rope_dim = 8
        changes.update(mla_kv_rank=32, mla_rope_dim=rope_dim, d_head_v=16)
        if config.mla_q_rank is not None:
            changes["mla_q_rank"] = 48
        head = d_head + rope_dim
    else:
        head = d_head
        if config.rope_fraction is not None:  # the rotated part must stay an even number of channels
            while not (head * config.rope_fraction).is_integer() or int(head * config.rope_fraction) % 2:
                head += 2
        if config.d_head_v is not None:
            changes["d_head_v"] = head // 2
    d_model = n_heads * head if config.n_heads * config.d_head == config.d_model else n_heads * head + 16
    n_layers = 2
    if config.is_moe:
        n_dense = min(config.n_dense_layers, 1)
        n_layers += n_dense
        assert config.n_experts is not None and config.n_experts_per_token is not None
        n_experts = min(config.n_experts, 4)
        top_k = min(config.n_experts_per_token, max(1, n_experts // 2))
        moe_every = min(config.moe_every, 2)
        n_layers = max(n_layers, n_dense + 2 * moe_every)  # dense and MoE layers both present when mixed
        changes.update(n_experts=n_experts, n_experts_per_token=top_k, n_dense_layers=n_dense, moe_every=moe_every,
                       n_shared_experts=min(config.n_shared_experts, 2))  # fmt: skip
        if config.d_ff_expert is not None:
            changes["d_ff_expert"] = _width(d_model, config.d_ff_expert / config.d_model)
        if config.d_ff_shared is not None:
            changes["d_ff_shared"] = _width(d_model, config.d_ff_shared / config.d_model)
    if config.local_span is not None:
        changes["sliding_window" if config.sliding_window is not None else "attention_chunk"] = window
        if config.global_every is not None:
            changes["global_every"] = min(config.global_every, 3)
            n_layers = max(n_layers, changes["global_every"])  # type: ignore[call-overload]
    if config.relative_attention_buckets is not None:
        changes["relative_attention_buckets"] = min(config.relative_attention_buckets, 8)
        changes["relative_attention_max_distance"] = 16
    changes.update(
        name=f"{config.name}-scaled-down",
        n_layers=n_layers,
        n_encoder_layers=2 if config.is_encoder_decoder else 0,
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        d_head=head,
        d_ff=_width(d_model, config.d_ff / config.d_model),
        vocab_size=vocab_size,
        max_seq_len=max_seq_len,
        rope_original_max_seq_len=None if config.rope_original_max_seq_len is None else max_seq_len // 2,
        hf_id=None,
        reference_params=None,
        reference_exact=False,
    )
    return config.replace(**changes)


def _width(d_model: int, ratio: float) -> int:
    """A hidden width near ratio x d_model (ratio capped at 4), a multiple of 8."""
    return max(8, round(d_model * min(ratio, 4.0) / 8) * 8)
