"""Time of one training iteration under tensor, sequence, pipeline, data, context and expert parallelism.

A bottom-up model: every layer's GEMMs at an efficiency that depends on their shape, the attention
kernel, the memory-bound element-wise work, and the collectives each kind of parallelism adds, on the
link it runs over; then the pipeline schedule, the data-parallel gradient reduction, the optimizer step
and a fixed overhead. Every rate is a catalog peak times a fraction measured by a public microbenchmark
(llmarch/catalog/data/training_efficiency.json); nothing is fitted to a training run.

The functions take numbers or numpy arrays of the same shape for the parallel knobs (tp, pp, dp, ...),
so that `llmarch.calc.plan` evaluates every candidate configuration in one vectorised pass; numpy is
imported lazily. Times are seconds, sizes bytes, rates bytes/s or FLOP/s.

Knob conventions (Megatron-LM's; Narayanan et al. 2021, arXiv:2104.04473; Korthikanti et al. 2022,
arXiv:2205.05198): n_gpus = tp x cp x dp x pp; ranks are ordered tp, cp, dp, pp (tp fastest), so a
group is inside one node when the product of its size and the faster dimensions fits a node; expert
parallelism is carved out of dp x cp; global_batch sequences = dp x micro_batch x grad_accum.
"""

from __future__ import annotations

from typing import Any

from llmarch.calc.flops import forward_flops, mean_attended_keys
from llmarch.calc.params import attention_params, count_params, mlp_params
from llmarch.catalog.hardware import Accelerator, TrainingEfficiency, canonical_peak_dtype
from llmarch.core.config import ArchConfig
from llmarch.core.frozen import frozen_dataclass

#: Bytes of a 16-bit activation or gradient as it crosses a link.
ACT_BYTES = 2
#: Megatron-LM's default data-parallel bucket: 40 M parameters (the last one is never overlapped).
DP_BUCKET_PARAMS = 40e6
#: Adam step, bytes moved per parameter: read fp32 grad (4), read+write fp32 master, m, v (24), write the
#: 16-bit weight (2), plus the gradient-norm read for clipping (4) (Megatron-LM / apex fused Adam).
OPTIMIZER_BYTES_PER_PARAM = 34.0
#: FlashAttention backward does 2.5x the forward's matmul FLOPs (it recomputes Q K^T; Dao 2023, arXiv:2307.08691).
FLASH_BACKWARD_RATIO = 2.5
RECOMPUTE_CODES = {"none": 0, "selective": 1, "full": 2}


def _np() -> Any:
    import numpy

    return numpy


# ---------------------------------------------------------------------------------------------------------
# Hardware rates
# ---------------------------------------------------------------------------------------------------------


@frozen_dataclass
class Rates:
    """Achievable rates of one GPU type in one dtype: catalog peaks x microbenchmark fractions."""

    gpu: str
    dtype: str
    peak_flop_per_s: float  # dense peak of the GEMM dtype
    attention_peak_flop_per_s: float  # bf16/fp16 peak (attention runs in 16-bit even under fp8)
    gemm_fraction: float
    gemm_half_dim: float
    attention_fraction: float
    attention_half_seq: float
    hbm_bytes_per_s: float  # achieved element-wise bandwidth
    nvlink_busbw_bytes_per_s: float
    network_busbw_bytes_per_s: float  # per GPU, across nodes (one NIC's achieved bus bandwidth)
    intra_latency_s: float
    inter_latency_s: float
    gpus_per_node: int
    step_overhead_s: float
    memory_bytes: float
    gemm_input_bytes: int  # 1 under fp8, else 2
    comm_sm_fraction: float  # compute slowdown per second of overlapped communication


def rates(
    gpu: Accelerator, efficiency: TrainingEfficiency, *, dtype: str = "bf16", gpus_per_node: int | None = None
) -> Rates:
    """Rates for `gpu` in `dtype` from the catalog and its efficiency row; `gpus_per_node` overrides the server's."""
    dtype = canonical_peak_dtype(dtype)
    peak = gpu.peak(dtype)
    half = gpu.peak_flop_per_s.get("bf16") or gpu.peak_flop_per_s.get("fp16") or peak
    nvlink = efficiency.nvlink_busbw_bytes_per_s
    if efficiency.row == "generic" and gpu.interconnect_bytes_per_s:
        nvlink = 0.4 * gpu.interconnect_bytes_per_s  # see the generic row's collective_source
    network = (gpu.network_bytes_per_s or 25e9) * efficiency.network_fraction
    bandwidth = gpu.memory_bandwidth_bytes_per_s or 1e12
    return Rates(
        gpu=gpu.name,
        dtype=dtype,
        peak_flop_per_s=peak,
        attention_peak_flop_per_s=min(half, peak),
        gemm_fraction=efficiency.gemm(dtype),
        gemm_half_dim=efficiency.gemm_half_dim,
        attention_fraction=efficiency.attention_fraction,
        attention_half_seq=efficiency.attention_half_seq,
        hbm_bytes_per_s=bandwidth * efficiency.hbm_fraction,
        nvlink_busbw_bytes_per_s=nvlink,
        network_busbw_bytes_per_s=network,
        intra_latency_s=efficiency.intra_node_latency_s,
        inter_latency_s=efficiency.inter_node_latency_s,
        gpus_per_node=gpus_per_node or gpu.gpus_per_node or 8,
        step_overhead_s=efficiency.step_overhead_s,
        memory_bytes=gpu.memory_bytes,
        gemm_input_bytes=1 if dtype in ("fp8", "fp4") else 2,
        comm_sm_fraction=efficiency.comm_sm_fraction,
    )


# ---------------------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------------------


def gemm_time(m: Any, n: Any, k: Any, r: Rates, *, batch: Any = 1) -> Any:
    """Seconds for `batch` GEMMs (m x k) @ (k x n): a roofline with a shape-dependent compute efficiency.

    compute = 2 m n k batch / (peak x e), e = e_max x prod_{x in m,n,k} x / (x + x0): large GEMMs reach
    e_max (the measured large-GEMM fraction), a dimension near x0 halves it (tile and wave quantisation:
    NVIDIA 'Matrix Multiplication Background' guide; Anthony et al. 2024, arXiv:2401.14489). memory =
    bytes of A, B and C / achieved HBM bandwidth. The kernel takes the larger of the two.
    """
    x0 = r.gemm_half_dim
    eff = r.gemm_fraction * (m / (m + x0)) * (n / (n + x0)) * (k / (k + x0))
    compute = 2.0 * m * n * k * batch / (r.peak_flop_per_s * eff)
    memory = batch * (r.gemm_input_bytes * (m * k + k * n) + ACT_BYTES * m * n) / r.hbm_bytes_per_s
    return _np().maximum(compute, memory)


def linear_times(tokens: Any, k: Any, n: Any, r: Rates) -> tuple[Any, Any]:
    """(forward, backward) seconds of a linear layer y = x W, x (tokens x k), W (k x n).

    Backward = the input gradient (tokens x n) @ (n x k) and the weight gradient (k x tokens) @ (tokens x n).
    """
    fwd = gemm_time(tokens, n, k, r)
    bwd = gemm_time(tokens, k, n, r) + gemm_time(k, n, tokens, r)
    return fwd, bwd


def collective_time(kind: str, size_bytes: Any, n: Any, busbw: Any, latency: Any) -> Any:
    """Seconds of one ring collective of `size_bytes` (the full buffer) over n ranks at bus bandwidth busbw.

    nccl-tests conventions (NVIDIA nccl-tests, doc/PERFORMANCE.md): time = latency + size x f / busbw,
    f = 2 (n - 1) / n for all-reduce, (n - 1) / n for all-gather and reduce-scatter, (n - 1) / n for
    all-to-all (the share that leaves the GPU). Zero when n = 1.
    """
    np = _np()
    n = np.asarray(n, dtype=float)
    t = latency + size_bytes * ring_traffic_fraction(kind, np.maximum(n, 1)) / busbw
    return np.where(n > 1, t, 0.0)


#: Multiples of (n - 1) / n of the buffer that each rank sends in a ring collective (nccl-tests' bus factors).
RING_BUS_FACTOR = {"all_reduce": 2.0, "all_gather": 1.0, "reduce_scatter": 1.0, "all_to_all": 1.0}


def ring_traffic_fraction(kind: str, n: Any) -> Any:
    """Fraction of the full buffer each of n ranks sends in one ring collective: 2 (n - 1) / n for all-reduce,
    (n - 1) / n for all-gather, reduce-scatter and all-to-all (NVIDIA nccl-tests, doc/PERFORMANCE.md; Patarasuk
    and Yuan 2009). n >= 1; works on numbers and numpy arrays alike (training and serving share it)."""
    return RING_BUS_FACTOR[kind] * (n - 1) / n


def group_busbw(r: Rates, size: Any, inner: Any) -> tuple[Any, Any]:
    """(bus bandwidth, latency) of a group of `size` ranks spaced `inner` ranks apart (tp, cp, dp order).

    Inside one node (size x inner <= gpus_per_node) the NVLink bus bandwidth; across nodes each node's
    share of the group, k = max(1, gpus_per_node // inner) ranks, drives k NICs, so the ring's bus bandwidth
    is k x one NIC's achieved rate, at most the NVLink figure (NCCL rings: one channel per NIC).
    """
    np = _np()
    size = np.asarray(size, dtype=float)
    inner = np.asarray(inner, dtype=float)
    local = size * inner <= r.gpus_per_node
    k = np.clip(np.floor(r.gpus_per_node / inner), 1, None)
    k = np.minimum(k, size)
    across = np.minimum(k * r.network_busbw_bytes_per_s, r.nvlink_busbw_bytes_per_s)
    return np.where(local, r.nvlink_busbw_bytes_per_s, across), np.where(local, r.intra_latency_s, r.inter_latency_s)


def overlapped(comm: Any, window: Any, r: Rates, *, floor: Any = 0.0) -> Any:
    """Seconds a collective of `comm` seconds adds when it overlaps `window` seconds of compute.

    The part beyond the window is exposed (at least `floor`, e.g. the last bucket); the hidden part still
    slows the compute it overlaps by the share of SMs the NCCL kernels occupy (one CTA per channel, NCCL
    docs: NCCL_MIN_NCHANNELS / NCCL_MAX_NCHANNELS; `comm_sm_fraction` of the efficiency row).
    """
    np = _np()
    exposed = np.maximum(np.maximum(comm - window, 0.0), floor)
    return exposed + r.comm_sm_fraction * np.maximum(comm - exposed, 0.0)


def attention_times(
    shape: ModelShape, tokens: Any, seq_len: int, heads: Any, r: Rates, *, flash: bool, dropout: bool, ramp_len: Any
) -> tuple[Any, Any]:
    """(forward, backward) seconds of one layer's attention core (Q K^T, softmax, A V) on one GPU.

    FlashAttention (Dao 2023, arXiv:2307.08691): 2 heads (d_h + d_v) k FLOPs per query forward, k the mean
    attended keys (causal: (S + 1) / 2, blocks above the diagonal skipped), 2.5x that backward, at the
    measured attention fraction ramped by L / (L + S_half), L = `ramp_len` (the block a kernel sees: S, or
    S / cp under context parallelism). Without flash (Megatron-LM 2022): two batched
    GEMMs over the full S x S score matrix (masked afterwards), plus the fused scale-mask-softmax and the
    attention dropout, memory-bound: 4 bytes per score element forward for softmax (+5 for dropout: read,
    write, 1-byte mask), 6 (+5) backward.
    """
    np = _np()
    n_seq = tokens / seq_len
    if flash:
        keys = shape.attended_keys(seq_len)
        flops = 2.0 * tokens * heads * (shape.d_head + shape.d_head_v) * keys
        eff = r.attention_fraction * ramp_len / (ramp_len + r.attention_half_seq)
        fwd = flops / (r.attention_peak_flop_per_s * eff)
        return fwd, FLASH_BACKWARD_RATIO * fwd
    bmm = n_seq * heads
    qk = gemm_time(seq_len, seq_len, shape.d_head, r, batch=bmm)
    av = gemm_time(seq_len, shape.d_head_v, seq_len, r, batch=bmm)
    qk_b = gemm_time(seq_len, shape.d_head, seq_len, r, batch=bmm) + gemm_time(
        shape.d_head, seq_len, seq_len, r, batch=bmm
    )
    av_b = gemm_time(seq_len, seq_len, shape.d_head_v, r, batch=bmm) + gemm_time(
        seq_len, shape.d_head_v, seq_len, r, batch=bmm
    )
    elements = bmm * float(seq_len) * seq_len
    fwd_bytes = elements * (4 + (5 if dropout else 0))
    bwd_bytes = elements * (6 + (5 if dropout else 0))
    fwd = qk + av + fwd_bytes / r.hbm_bytes_per_s
    bwd = qk_b + av_b + bwd_bytes / r.hbm_bytes_per_s
    return np.asarray(fwd), np.asarray(bwd)


# ---------------------------------------------------------------------------------------------------------
# The architecture, reduced to what the step-time model needs
# ---------------------------------------------------------------------------------------------------------


@frozen_dataclass
class ModelShape:
    """Widths, layer counts and parameter counts of an architecture, as the step-time model reads them.

    An encoder-decoder is modelled as n_encoder_layers + n_layers layers of the decoder's cost (cross-
    attention projections folded in), an approximation.
    """

    name: str
    n_layers: int  # all transformer layers (encoder + decoder)
    n_moe_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_head_v: int
    d_ff: int
    gated: bool
    vocab_size: int
    parallel_block: bool
    rope: bool
    mla: bool
    n_experts: int  # 0 for a dense model
    n_experts_per_token: int
    n_shared_experts: int
    d_ff_expert: int
    d_ff_shared: int  # one shared expert's hidden width (d_ff_shared, else a routed expert's)
    attn_params: int  # weight-matrix parameters of one attention block
    mlp_params: int  # one dense MLP
    expert_params: int  # one routed expert
    params_total: int
    params_expert_total: int  # all routed experts of all layers
    mean_keys_fraction: float  # attended keys per query averaged over layers / the global-causal count

    def attended_keys(self, seq_len: int) -> float:
        """Mean keys a query attends to, averaged over layers (causal, sliding windows included)."""
        return mean_attended_keys(seq_len) * self.mean_keys_fraction


def model_shape(config: ArchConfig, *, seq_len: int) -> ModelShape:
    """The `ModelShape` of `config` (its attended-key fraction taken at `seq_len`)."""
    params = count_params(config)
    attn = sum(attention_params(config, bias=False).values())
    n_experts = config.n_experts or 0
    expert = mlp_params(config, config.expert_d_ff, bias=False) if config.is_moe else 0
    fwd = forward_flops(config, seq_len)
    per_key = 2.0 * config.n_heads * (config.d_head + config.v_head_dim)
    n_all = config.n_layers + config.n_encoder_layers
    global_keys = per_key * n_all * mean_attended_keys(seq_len)
    return ModelShape(
        name=config.name,
        n_layers=n_all,
        n_moe_layers=config.n_moe_layers,
        d_model=config.d_model,
        n_heads=config.n_heads,
        n_kv_heads=config.n_kv_heads if config.mla_kv_rank is None else config.n_heads,
        d_head=config.d_head,
        d_head_v=config.v_head_dim,
        d_ff=config.d_ff,
        gated=config.gated_mlp,
        vocab_size=config.vocab_size,
        parallel_block=config.parallel_block,
        rope=config.position == "rope",
        mla=config.mla_kv_rank is not None,
        n_experts=n_experts,
        n_experts_per_token=config.n_experts_per_token or 0,
        n_shared_experts=config.n_shared_experts,
        d_ff_expert=config.expert_d_ff,
        d_ff_shared=config.shared_expert_d_ff,
        attn_params=attn,
        mlp_params=mlp_params(config, config.d_ff, bias=False),
        expert_params=expert,
        params_total=params.total,
        params_expert_total=config.n_moe_layers * n_experts * expert,
        mean_keys_fraction=fwd.attention * (2 if config.is_encoder_decoder else 1) / global_keys
        if global_keys
        else 1.0,
    )


# ---------------------------------------------------------------------------------------------------------
# One layer, one micro-batch, one GPU
# ---------------------------------------------------------------------------------------------------------


@frozen_dataclass
class Knobs:
    """One configuration, or many as numpy arrays of one shape (the plan search)."""

    tp: Any
    pp: Any
    dp: Any
    cp: Any
    ep: Any
    micro_batch: Any
    virtual_stages: Any
    sequence_parallel: Any  # bool (array)
    recompute: Any  # 0 none, 1 selective, 2 full (RECOMPUTE_CODES)
    zero: Any
    grad_accum: Any  # micro-batches per step per pipeline = global_batch / (dp x micro_batch)


def _projection_times(shape: ModelShape, tokens: Any, tp: Any, r: Rates) -> tuple[Any, Any]:
    """(forward, backward) seconds of one attention block's projections, split by tensor parallelism.

    Q, K, V column-parallel (a KV head is replicated when tp exceeds the KV heads), output row-parallel
    (Shoeybi et al. 2019, arXiv:1909.08053). MLA is approximated by one column-parallel GEMM holding all
    its input-side projection weights.
    """
    np = _np()
    d, h = shape.d_model, shape.n_heads
    out_n = h * shape.d_head_v
    if shape.mla:
        in_n = (shape.attn_params - out_n * d) / d / tp
    else:
        in_n = h * shape.d_head / tp + np.maximum(shape.n_kv_heads / tp, 1.0) * (shape.d_head + shape.d_head_v)
    f1, b1 = linear_times(tokens, d, in_n, r)
    f2, b2 = linear_times(tokens, out_n / tp, d, r)
    return f1 + f2, b1 + b2


def _mlp_times(shape: ModelShape, tokens: Any, k: Any, tp: Any, ep: Any, moe: bool, r: Rates) -> tuple[Any, Any]:
    """(forward, backward) seconds of one MLP: dense, or router + routed experts (balanced) + shared experts.

    Routed experts: each GPU holds n_experts / ep experts and receives tokens x top-k x ep / n_experts
    tokens for each (balanced routing, no drops), each expert split over tp like a dense MLP.
    """
    n_in = 2 if shape.gated else 1
    if not moe:
        f1, b1 = linear_times(tokens, shape.d_model, n_in * shape.d_ff / tp, r)
        f2, b2 = linear_times(tokens, shape.d_ff / tp, shape.d_model, r)
        return f1 + f2, b1 + b2
    local = shape.n_experts / ep
    m_e = tokens * k * ep / shape.n_experts
    f1, b1 = linear_times(m_e, shape.d_model, n_in * shape.d_ff_expert / tp, r)
    f2, b2 = linear_times(m_e, shape.d_ff_expert / tp, shape.d_model, r)
    fr, br = linear_times(tokens, shape.d_model, float(shape.n_experts), r)
    fwd, bwd = local * (f1 + f2) + fr, local * (b1 + b2) + br
    if shape.n_shared_experts:
        width = shape.n_shared_experts * shape.d_ff_shared
        f3, b3 = linear_times(tokens, shape.d_model, n_in * width / tp, r)
        f4, b4 = linear_times(tokens, width / tp, shape.d_model, r)
        fwd, bwd = fwd + f3 + f4, bwd + b3 + b4
    return fwd, bwd


def _elementwise_bytes(shape: ModelShape, moe: bool, dropout: bool) -> tuple[Any, Any]:
    """(per-token bytes of d-wide element-wise work, per-token bytes of head/d_ff-wide work) of one layer forward.

    d-wide (split by tp only under sequence parallelism, else repeated on every tp rank): each norm reads
    and writes the residual stream (4 d bytes), each residual add (bias and dropout fused) reads two
    streams and writes one (6 d), and a dropout mask writes 1 d. Split by tp: the MLP activation reads
    and writes its hidden tensor (4 d_ff; gated 6 d_ff), rotary embedding reads and writes Q and K, and
    an MoE layer permutes each token to and from its k experts (8 k d). Backward moves about twice this.
    """
    d = shape.d_model
    n_norm = 1 if shape.parallel_block else 2
    rep = (
        n_norm * 4 * d + n_norm * 6 * d + (2 * d if dropout else 0) + (8 * shape.n_experts_per_token * d if moe else 0)
    )
    if moe:
        width = shape.n_experts_per_token * shape.d_ff_expert + shape.n_shared_experts * shape.d_ff_shared
    else:
        width = shape.d_ff
    split = (6 if shape.gated else 4) * width
    if shape.rope:
        split += 4 * (shape.n_heads + shape.n_kv_heads) * shape.d_head
    return rep, split


@frozen_dataclass
class LayerTimes:
    """Seconds one layer takes for one micro-batch on one GPU, by part (arrays under a search)."""

    compute_fwd: Any  # GEMMs, attention core, element-wise
    compute_bwd: Any
    recompute: Any  # extra forward work under selective / full recomputation (compute and its TP comm)
    tp_comm: Any  # forward + backward tensor-parallel collectives, exposed
    cp_comm: Any  # context-parallel K/V exchange not hidden behind the attention kernel
    ep_comm: Any  # expert-parallel all-to-alls (dispatch and combine, forward and backward)

    @property
    def total(self) -> Any:
        return self.compute_fwd + self.compute_bwd + self.recompute + self.tp_comm + self.cp_comm + self.ep_comm


def layer_times(
    shape: ModelShape, r: Rates, knobs: Knobs, *, seq_len: int, moe: bool, flash: bool = True, dropout: bool = False
) -> LayerTimes:
    """Seconds of one layer's forward, backward and recomputation for one micro-batch on one GPU.

    tokens = micro_batch x seq_len / cp per GPU. Compute: projections and MLP (`_projection_times`,
    `_mlp_times`), the attention core (`attention_times`), element-wise work (`_elementwise_bytes`) at the
    achieved HBM bandwidth. Tensor parallelism: two all-reduces of the tokens x d activations forward
    and two backward (one each in a parallel block); sequence parallelism replaces each by a reduce-
    scatter and an all-gather of the same bytes (Korthikanti et al. 2022, arXiv:2205.05198, section 4.2.2)
    and re-gathers the input in backward, never overlapped (Megatron-LM 2022). Recomputation (ibid.,
    section 5): full reruns the forward and its collectives; selective reruns the attention core.
    Context parallelism (ring attention; Liu et al. 2023, arXiv:2310.01889): cp - 1 K/V exchanges
    forward, twice that backward, hidden behind the attention kernel up to its length. Expert parallelism:
    an all-to-all dispatch and combine of the tokens x top-k x d activations forward and again backward
    (Lepikhin et al. 2020, arXiv:2006.16668).
    """
    np = _np()
    tp, cp = knobs.tp, knobs.cp
    tokens = knobs.micro_batch * seq_len / cp
    heads = shape.n_heads / tp
    pf, pb = _projection_times(shape, tokens, tp, r)
    mf, mb = _mlp_times(shape, tokens, shape.n_experts_per_token, tp, knobs.ep, moe, r)
    af, ab = attention_times(shape, tokens, seq_len, heads, r, flash=flash, dropout=dropout, ramp_len=seq_len / cp)
    rep, split = _elementwise_bytes(shape, moe, dropout)
    rep_tokens = np.where(knobs.sequence_parallel, tokens / tp, tokens)
    ew = (rep_tokens * rep + tokens * split / tp) / r.hbm_bytes_per_s
    fwd = pf + mf + af + ew
    bwd = pb + mb + ab + 2 * ew

    size = tokens * shape.d_model * ACT_BYTES
    bw, lat = group_busbw(r, tp, 1)
    n_coll = 1 if shape.parallel_block else 2
    ar = collective_time("all_reduce", size, tp, bw, lat)
    sp_pair = collective_time("all_gather", size, tp, bw, lat) + collective_time("reduce_scatter", size, tp, bw, lat)
    tp_fwd = n_coll * np.where(knobs.sequence_parallel, sp_pair, ar)
    # Sequence parallelism gathers each column-parallel layer's input again in backward for its weight
    # gradient; Megatron overlaps it with the input-gradient GEMM, but Korthikanti et al.'s Table 4 shows the
    # backward no faster with it than without, so it is counted exposed.
    tp_bwd = tp_fwd + n_coll * np.where(
        knobs.sequence_parallel, sp_pair - collective_time("reduce_scatter", size, tp, bw, lat), 0.0
    )

    kv_width = np.maximum(shape.n_kv_heads / tp, 1.0) * (shape.d_head + shape.d_head_v)
    cbw, clat = group_busbw(r, cp, tp)
    ring = (cp - 1) * (clat + tokens * kv_width * ACT_BYTES / cbw)
    cp_comm = overlapped(ring, af, r) + overlapped(2 * ring, ab, r)

    ep_comm = 0.0
    if moe:
        ep_tokens = np.where(knobs.sequence_parallel, tokens / tp, tokens)
        a2a = ep_tokens * shape.n_experts_per_token * shape.d_model * ACT_BYTES
        ebw, elat = group_busbw(r, knobs.ep, tp * cp)
        ebw = np.where(knobs.ep * tp * cp <= r.gpus_per_node, ebw, r.network_busbw_bytes_per_s)
        ep_comm = 4 * collective_time("all_to_all", a2a, knobs.ep, ebw, elat)

    recompute = np.where(knobs.recompute == 2, fwd + tp_fwd, np.where(knobs.recompute == 1, af, 0.0))
    return LayerTimes(fwd, bwd, recompute, tp_fwd + tp_bwd, cp_comm, ep_comm)


def head_times(shape: ModelShape, r: Rates, knobs: Knobs, *, seq_len: int) -> Any:
    """Seconds of the output head for one micro-batch (forward + backward), on the last pipeline stage.

    A vocabulary-parallel GEMM (tokens x d) @ (d x V / tp) and the fp32 cross-entropy over the logits,
    memory-bound: about 16 bytes per logit (write, read for the softmax, write and read the gradient).
    """
    tokens = knobs.micro_batch * seq_len / knobs.cp
    f, b = linear_times(tokens, shape.d_model, shape.vocab_size / knobs.tp, r)
    return f + b + 16.0 * tokens * shape.vocab_size / knobs.tp / r.hbm_bytes_per_s


# ---------------------------------------------------------------------------------------------------------
# One iteration
# ---------------------------------------------------------------------------------------------------------

#: Parts of a step, in the order `StepBreakdown` and the plan's `breakdown` list them.
BREAKDOWN_PARTS = ("compute", "recompute", "tp_comm", "cp_comm", "ep_comm", "pp_comm", "bubble", "dp_comm",
                   "optimizer", "overhead")  # fmt: skip


def _stage_times(shape: ModelShape, r: Rates, knobs: Knobs, seq_len: int, flash: bool, dropout: bool) -> dict[str, Any]:
    """Per-micro-batch seconds of the slowest pipeline stage, by part, and of the mean stage.

    Layers spread as evenly as possible: ceil(L / pp) on the fullest stage; the head sits on the last stage,
    which holds floor(L / pp) layers when pp does not divide L (Megatron-LM; Llama 3 trims the first and
    last stages the same way, Dubey et al. 2024, arXiv:2407.21783, section 3.3.2). The slowest stage
    sets the pace. An MoE model's layers are averaged (dense and MoE layers interleave across stages).
    Pipeline point-to-point: each micro-batch sends its activations forward and gradients backward once
    per model chunk (virtual stage), 1 / tp of them per rank (Megatron's scatter-gather), exposed.
    """
    np = _np()
    n_moe, n_dense = shape.n_moe_layers, shape.n_layers - shape.n_moe_layers
    parts = ("compute_fwd", "compute_bwd", "recompute", "tp_comm", "cp_comm", "ep_comm")
    per_layer = {p: 0.0 for p in parts}
    for moe, count in ((False, n_dense), (True, n_moe)):
        if count:
            lt = layer_times(shape, r, knobs, seq_len=seq_len, moe=moe, flash=flash, dropout=dropout)
            for p in parts:
                per_layer[p] = per_layer[p] + getattr(lt, p) * count / shape.n_layers
    layer_total = sum(per_layer.values())
    head = head_times(shape, r, knobs, seq_len=seq_len)
    pp = knobs.pp
    fullest = np.ceil(shape.n_layers / pp)
    last = np.where(pp > 1, np.floor(shape.n_layers / pp), shape.n_layers)
    head_stage_wins = last * layer_total + head >= fullest * layer_total
    n_slow = np.where(head_stage_wins, last, fullest)
    slow = {p: n_slow * per_layer[p] for p in parts}
    slow["compute_fwd"] = slow["compute_fwd"] + np.where(head_stage_wins, head, 0.0)

    tokens = knobs.micro_batch * seq_len / knobs.cp
    msg = tokens * shape.d_model * ACT_BYTES / knobs.tp
    inner = knobs.tp * knobs.cp * knobs.dp
    local = 2 * inner <= r.gpus_per_node
    bw = np.where(local, r.nvlink_busbw_bytes_per_s, r.network_busbw_bytes_per_s)
    lat = np.where(local, r.intra_latency_s, r.inter_latency_s)
    slow["pp_comm"] = np.where(pp > 1, 2 * knobs.virtual_stages * (lat + msg / bw), 0.0)
    mean = (shape.n_layers * layer_total + head) / pp + slow["pp_comm"]
    return {"slow": slow, "mean": mean, "per_layer": per_layer, "head": head, "n_slow": n_slow}


def _dp_times(shape: ModelShape, r: Rates, knobs: Knobs, stage: dict[str, Any], grad_bytes: float) -> tuple[Any, Any]:
    """(exposed data-parallel communication, optimizer step) seconds per iteration.

    Gradients of this GPU's parameters (non-expert: P / (tp pp) reduced over dp x cp; experts: / ep more,
    reduced over dp x cp / ep) in `grad_bytes` per value (4: Megatron-LM's fp32 main gradients). ZeRO 0:
    all-reduce; ZeRO 1/2: reduce-scatter, then an all-gather of the 16-bit weights after the step;
    ZeRO 3 (FSDP): every micro-batch all-gathers the weights forward and backward and reduce-scatters the
    gradients (Rajbhandari et al. 2020, arXiv:1910.02054, section 7). Overlap (Megatron-LM
    --overlap-grad-reduce, FSDP prefetch): the reduction hides behind one micro-batch's backward except the
    last 40M-parameter bucket; ZeRO-3 traffic hides behind the micro-batch's compute; the ZeRO-1/2
    all-gather behind the next step's first forward. Optimizer: `OPTIMIZER_BYTES_PER_PARAM` per parameter
    this GPU updates (ZeRO >= 1: its shard) at the achieved HBM bandwidth.
    """
    np = _np()
    dense_params = (shape.params_total - shape.params_expert_total) / (knobs.tp * knobs.pp)
    expert_params = shape.params_expert_total / (knobs.tp * knobs.pp * knobs.ep)
    exposed = 0.0
    optimizer = 0.0
    slow = stage["slow"]
    window_bwd = slow["compute_bwd"]
    window_all = slow["compute_fwd"] + slow["compute_bwd"] + slow["recompute"]
    for params, group, inner in ((dense_params, knobs.dp * knobs.cp, knobs.tp),
                                 (expert_params, knobs.dp * knobs.cp / knobs.ep, knobs.tp * knobs.ep)):  # fmt: skip
        if shape.params_expert_total == 0 and params is expert_params:
            continue
        bw, lat = group_busbw(r, group, inner)
        grads = params * grad_bytes
        all_reduce = collective_time("all_reduce", grads, group, bw, lat)
        scatter = collective_time("reduce_scatter", grads, group, bw, lat)
        gather = collective_time("all_gather", params * ACT_BYTES, group, bw, lat)
        bucket = np.minimum(params, DP_BUCKET_PARAMS) * grad_bytes
        last_ar = collective_time("all_reduce", bucket, group, bw, lat)
        last_rs = collective_time("reduce_scatter", bucket, group, bw, lat)
        zero0 = overlapped(all_reduce, window_bwd, r, floor=last_ar)
        zero12 = overlapped(scatter, window_bwd, r, floor=last_rs) + overlapped(gather, slow["compute_fwd"], r)
        zero3 = knobs.grad_accum * overlapped(2 * gather + scatter, window_all, r) + last_rs
        exposed = exposed + np.where(knobs.zero >= 3, zero3, np.where(knobs.zero >= 1, zero12, zero0))
        updated = params / np.where(knobs.zero >= 1, group, 1)
        optimizer = optimizer + updated * OPTIMIZER_BYTES_PER_PARAM / r.hbm_bytes_per_s
    return exposed, optimizer


def step_breakdown(
    shape: ModelShape,
    r: Rates,
    knobs: Knobs,
    *,
    seq_len: int,
    flash: bool = True,
    dropout: bool = False,
    grad_bytes: float = 4.0,
) -> dict[str, Any]:
    """Seconds of one training iteration by part (`BREAKDOWN_PARTS`) and in total ("step_time_s").

    Pipeline schedule (Narayanan et al. 2021, arXiv:2104.04473, section 2.2): with m = grad_accum micro-
    batches, the slowest stage works m x its per-micro-batch time, and the fill and drain add the
    bubble, (pp - 1) / v mean-stage times for v virtual stages (interleaved 1F1B; the bubble fraction
    (p - 1) / (v m)). Then the exposed data-parallel reduction, the optimizer step and a fixed overhead.
    """
    np = _np()
    stage = _stage_times(shape, r, knobs, seq_len, flash, dropout)
    slow, m = stage["slow"], knobs.grad_accum
    bubble = (knobs.pp - 1) / knobs.virtual_stages * stage["mean"]
    dp, optimizer = _dp_times(shape, r, knobs, stage, grad_bytes)
    out = {
        "compute": m * (slow["compute_fwd"] + slow["compute_bwd"]),
        "recompute": m * slow["recompute"],
        "tp_comm": m * slow["tp_comm"],
        "cp_comm": m * slow["cp_comm"],
        "ep_comm": m * slow["ep_comm"],
        "pp_comm": m * slow["pp_comm"],
        "bubble": bubble,
        "dp_comm": dp,
        "optimizer": optimizer,
        "overhead": np.full(np.shape(bubble), r.step_overhead_s) if np.ndim(bubble) else r.step_overhead_s,
    }
    out["step_time_s"] = sum(out[p] for p in BREAKDOWN_PARTS)
    return out
