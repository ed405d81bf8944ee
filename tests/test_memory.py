"""Training, checkpoint and inference memory: hand-worked numbers, published numbers, a PyTorch cross-check, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from llmarch import ArchConfig, InvalidValueError, count_params, load, preset_names
from llmarch.calc.memory import kv_cache
from llmarch.calc.training_memory import (
    RNG_STATE_BYTES_PER_RANK,
    SCHEDULER_STATE_BYTES,
    activation_memory,
    checkpoint_size,
    fit,
    inference_memory,
    inference_workspace_bytes,
    layer_activations,
    memory_estimate,
    model_states,
    training_memory,
    zero3_gathered_params,
)
from llmarch.cli import app

GiB = 2**30
runner = CliRunner()


def gpt(n_layers: int, d_model: int, n_heads: int, *, vocab_size: int = 51200, **extra: object) -> ArchConfig:
    """A GPT-3-style block as Korthikanti et al. 2022 count it: MHA, GeLU MLP of 4 d_model, LayerNorms."""
    fields = {
        "name": f"gpt-{n_layers}x{d_model}",
        "source": "test",
        "architecture": "decoder",
        "n_layers": n_layers,
        "d_model": d_model,
        "n_heads": n_heads,
        "d_ff": 4 * d_model,
        "vocab_size": vocab_size,
        "max_seq_len": 2048,
        "position": "learned",
        "norm": "layernorm",
        "norm_position": "pre",
        "final_norm": True,
        "mlp": "gelu",
        "tie_embeddings": True,
    }
    fields.update(extra)
    return ArchConfig.from_dict(fields)


# Korthikanti et al. 2022 (arXiv:2205.05198) Table 3: the four evaluated configurations, s = 2048, v = 51200,
# tensor-parallel size 8, with their pipeline-parallel sizes: (name, layers, hidden, heads, pipeline stages).
KORTHIKANTI_MODELS = [
    ("22B", 48, 6144, 64, 1),
    ("175B", 96, 12288, 96, 8),
    ("530B", 105, 20480, 128, 35),
    ("1T", 128, 25600, 160, 64),
]
S = 2048


@pytest.mark.parametrize(("label", "n_layers", "h", "a", "p"), KORTHIKANTI_MODELS)
def test_per_layer_activations_match_korthikanti_table_2(label: str, n_layers: int, h: int, a: int, p: int) -> None:
    config = gpt(n_layers, h, a)
    sbh = S * 1 * h
    t = 8

    def per_layer(**kwargs: object) -> float:
        return layer_activations(config, seq_len=S, **kwargs).total_bytes  # type: ignore[arg-type]

    # Table 2, row by row (bytes per layer, micro-batch 1).
    assert per_layer() == pytest.approx(sbh * (34 + 5 * a * S / h), rel=1e-12)  # eq. 1, no parallelism
    assert per_layer() == 34 * sbh + 5 * a * S * S  # the same in integers
    assert per_layer(tp=t) == pytest.approx(sbh * (10 + 24 / t + 5 * a * S / (h * t)), rel=1e-12)  # eq. 2
    assert per_layer(tp=t, sequence_parallel=True) == pytest.approx(sbh * (34 / t + 5 * a * S / (h * t)), rel=1e-12)
    assert per_layer(tp=t, recompute="selective") == pytest.approx(sbh * (10 + 24 / t), rel=1e-12)
    assert per_layer(tp=t, sequence_parallel=True, recompute="selective") == pytest.approx(sbh * 34 / t, rel=1e-12)
    assert per_layer(recompute="full") == sbh * 2
    # The breakdown of section 4.1: attention 11 sbh + 5 a s^2 b, MLP 19 sbh, LayerNorms 4 sbh.
    layer = layer_activations(config, seq_len=S)
    assert (layer.attention_bytes, layer.mlp_bytes, layer.norm_bytes) == (11 * sbh, 19 * sbh, 4 * sbh)
    assert layer.attention_core_bytes == 5 * a * S * S


def test_attention_share_matches_the_papers_numbers() -> None:
    # Section 5: 5as/h = 80 for GPT-3 and 64 for MT-NLG, so selective recomputation saves 70% and 65% of the
    # activation memory (the paper's numbers).
    for (_, n_layers, h, a, _), coefficient, saving in (
        (KORTHIKANTI_MODELS[1], 80, 0.70),
        (KORTHIKANTI_MODELS[2], 64, 0.65),
    ):
        config = gpt(n_layers, h, a)
        full = layer_activations(config, seq_len=S)
        assert full.attention_core_bytes / (S * h) == coefficient
        selective = layer_activations(config, seq_len=S, recompute="selective")
        assert round(1 - selective.total_bytes / full.total_bytes, 2) == saving


def test_sequence_parallelism_linear_term_ratio() -> None:
    # With t = 8 the linear coefficient drops from 10 + 24/8 = 13 to 34/8 = 4.25 (3.06x).
    config = gpt(1, 1024, 16)
    tp_only = layer_activations(config, seq_len=S, tp=8, recompute="selective").total_bytes
    with_sp = layer_activations(config, seq_len=S, tp=8, sequence_parallel=True, recompute="selective").total_bytes
    assert (tp_only / (S * 1024), with_sp / (S * 1024)) == (13, 4.25)


@pytest.mark.parametrize(("label", "n_layers", "h", "a", "p"), KORTHIKANTI_MODELS)
def test_first_stage_total_is_eq_6(label: str, n_layers: int, h: int, a: int, p: int) -> None:
    # Eq. 6: with sequence parallelism and selective recomputation the first stage holds 34 s b h L / t,
    # whatever p (p in-flight micro-batches of L/p layers); plus the embedding dropout mask s b h p / t and,
    # only when p = 1, the output layer 4 s b h (1 + v / h) / t (section 4.3).
    config = gpt(n_layers, h, a)
    acts = activation_memory(config, seq_len=S, tp=8, pp=p, sequence_parallel=True, recompute="selective", flash=True)
    sbh = S * h
    assert acts.n_stage_layers * p == n_layers and acts.in_flight_micro_batches == p
    assert acts.layers_bytes == pytest.approx(34 * sbh * n_layers / 8, rel=1e-12)
    assert acts.embedding_bytes == sbh * p / 8
    assert acts.output_bytes == (pytest.approx(4 * sbh * (1 + 51200 / h) / 8, rel=1e-12) if p == 1 else 0)
    assert acts.recompute_bytes == 4 * a * S / 8  # flash: one layer's log-sum-exp is all there is to recompute
    if label == "175B":
        assert acts.layers_bytes == 10_267_656_192  # 34 x 2048 x 12288 x 96 / 8 = 9.56 GiB


def test_generalisations_hand_worked() -> None:
    s, b = 1024, 2
    tokens = s * b
    # Mixtral-8x7B MoE layer: d 4096, 32 heads, 8 KV heads of 128, 8 experts of 14336 (SwiGLU), top-2.
    mixtral = load("mixtral-8x7b")
    layer = layer_activations(mixtral, seq_len=s, micro_batch=b, moe=True, flash=True, dropout=False)
    d = 4096
    assert layer.norm_bytes == 2 * 2 * tokens * d
    assert layer.attention_bytes == 2 * tokens * d + 2 * tokens * (4096 + 1024 + 1024 + 4096)
    assert layer.attention_core_bytes == 4 * b * 32 * s
    # input, router logits, two dispatched copies, then 3 hidden tensors of 14336 for each of 2 experts
    assert layer.mlp_bytes == 2 * tokens * d + 2 * tokens * 8 + 2 * 2 * tokens * d + 2 * 3 * 2 * tokens * 14336
    # MQA under tensor parallelism: the single KV head is replicated on every rank (falcon-7b: 71 heads x 64).
    falcon = gpt(1, 4544, 71, n_kv_heads=1, d_head=64)
    one = layer_activations(falcon, seq_len=s, flash=True, dropout=False)
    assert one.attention_bytes == 2 * s * 4544 + 2 * s * (71 * 64 + 64 + 64 + 71 * 64)
    # Parallel block with a shared norm: one norm input, and the MLP reads the attention's input.
    shared = gpt(1, 1024, 16, parallel_block=True, parallel_block_shared_norm=True)
    layer = layer_activations(shared, seq_len=s, dropout=False)
    assert layer.norm_bytes == 2 * s * 1024 and layer.mlp_bytes == 2 * 2 * s * 4096
    # Encoder-decoder: all encoder and decoder layers count; decoder layers add a cross-attention block.
    t5 = load("t5-base")
    acts = activation_memory(t5, seq_len=512, flash=True)
    assert acts.n_stage_layers == 24
    dec = layer_activations(t5, seq_len=512, flash=True, cross_attention=True)
    enc = layer_activations(t5, seq_len=512, flash=True)
    assert dec.norm_bytes == 1.5 * enc.norm_bytes and dec.attention_bytes == 2 * enc.attention_bytes
    # 32 layers over 3 stages: 10, 11, 11 with the longer stages last, where fewer micro-batches are in
    # flight; the first stage (10 layers x 3 micro-batches) beats the second (11 x 2).
    llama = load("llama-2-7b")
    acts = activation_memory(llama, seq_len=s, pp=3, flash=True)
    per_layer = layer_activations(llama, seq_len=s, flash=True).total_bytes
    assert (acts.n_stage_layers, acts.layers_bytes, acts.output_bytes) == (10, 3 * 10 * per_layer, 0)
    # 31 layers over 16 stages: 15 of 2 layers after one of 1; the first of them holds 15 micro-batches.
    acts = activation_memory(llama.replace(n_layers=31), seq_len=s, pp=16, flash=True)
    assert (acts.n_stage_layers, acts.layers_bytes) == (2, 15 * 2 * per_layer)
    # Full recomputation rebuilds one layer during its backward pass: a transient beside the stored inputs.
    acts = activation_memory(llama, seq_len=s, recompute="full", dropout=False)
    assert acts.layers_bytes == 32 * 2 * s * 4096
    assert acts.recompute_bytes == layer_activations(llama, seq_len=s, dropout=False).total_bytes


def test_activations_cross_checked_against_pytorch_saved_tensors() -> None:
    """The bytes autograd saves for a bf16 block equal the formula (norm statistics left out, as documented)."""
    torch = pytest.importorskip("torch")
    nn, functional = torch.nn, torch.nn.functional

    class FusedSwiGLU(torch.autograd.Function):
        """Keeps the gate and up outputs only, as a fused SwiGLU kernel (Megatron-LM's) does."""

        @staticmethod
        def forward(ctx, gate, up):  # type: ignore[no-untyped-def]
            ctx.save_for_backward(gate, up)
            return functional.silu(gate) * up

        @staticmethod
        def backward(ctx, grad):  # type: ignore[no-untyped-def]
            gate, up = ctx.saved_tensors
            sig = torch.sigmoid(gate)
            return grad * up * sig * (1 + gate * (1 - sig)), grad * gate * sig

    def dropout(x, p):  # type: ignore[no-untyped-def]
        # A bool keep-mask (1 byte per element), as the fused CUDA dropout keeps; CPU dropout keeps 2 bytes.
        return x if p == 0 else x * (torch.rand(x.shape) >= p) / (1 - p)

    class Block(nn.Module):
        def __init__(self, d: int, n_heads: int, n_kv_heads: int, d_ff: int, p: float, gated: bool):
            super().__init__()
            self.h, self.hkv, self.dh, self.p, self.gated = n_heads, n_kv_heads, d // n_heads, p, gated
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv = nn.Linear(d, (n_heads + 2 * n_kv_heads) * self.dh)
            self.o = nn.Linear(d, d)
            self.up = nn.Linear(d, d_ff * (2 if gated else 1))
            self.down = nn.Linear(d_ff, d)

        def forward(self, x, flash):  # type: ignore[no-untyped-def]
            b, s, d = x.shape
            q, k, v = self.qkv(self.ln1(x)).split([self.h * self.dh, self.hkv * self.dh, self.hkv * self.dh], -1)
            q = q.view(b, s, self.h, self.dh).transpose(1, 2)  # (batch, heads, seq, d_head)
            k = k.view(b, s, self.hkv, self.dh).transpose(1, 2)
            v = v.view(b, s, self.hkv, self.dh).transpose(1, 2)
            if flash:
                y = functional.scaled_dot_product_attention(q, k, v, enable_gqa=self.hkv != self.h)
            else:
                att = functional.softmax((q @ k.transpose(-2, -1)) / self.dh**0.5, -1)
                y = dropout(att, self.p) @ v
            x = x + dropout(self.o(y.transpose(1, 2).reshape(b, s, d)), self.p)
            u = self.up(self.ln2(x))
            hidden = FusedSwiGLU.apply(*u.chunk(2, -1)) if self.gated else functional.gelu(u)
            return x + dropout(self.down(hidden), self.p)

    def saved_bytes(block: nn.Module, x, flash: bool) -> int:  # type: ignore[no-untyped-def]
        params = {p.untyped_storage().data_ptr() for p in block.parameters()}
        seen: dict[int, int] = {}

        def pack(t):  # type: ignore[no-untyped-def]
            storage = t.untyped_storage()
            is_norm_stat = t.dim() == 3 and t.shape[-1] == 1  # LayerNorm mean / rstd, (batch, seq, 1)
            if storage.data_ptr() not in params and not is_norm_stat:
                seen[storage.data_ptr()] = storage.nbytes()  # views of one tensor count once
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            block(x, flash)
        return sum(seen.values())

    torch.manual_seed(0)
    s, b, d, n_heads = 64, 2, 32, 4
    x = torch.randn(b, s, d, dtype=torch.bfloat16, requires_grad=True)
    cases = [  # (n_kv_heads, d_ff, dropout p, gated, flash)
        (4, 128, 0.1, False, False),  # Korthikanti's GPT block: s b h (34 + 5 a s / h)
        (4, 128, 0.0, False, True),  # FlashAttention, no dropout
        (2, 48, 0.0, True, True),  # GQA and a fused SwiGLU
    ]
    for n_kv_heads, d_ff, p, gated, flash in cases:
        block = Block(d, n_heads, n_kv_heads, d_ff, p, gated).to(torch.bfloat16)
        config = gpt(1, d, n_heads, n_kv_heads=n_kv_heads, d_ff=d_ff, mlp="swiglu" if gated else "gelu")
        expected = layer_activations(config, seq_len=s, micro_batch=b, flash=flash, dropout=p > 0).total_bytes
        assert saved_bytes(block, x, flash) == expected, (n_kv_heads, d_ff, p, gated, flash)


def test_model_states_bytes_per_param() -> None:
    # Megatron-LM's bf16 default keeps fp32 main gradients: 2 + 4 + 12 = 18 bytes per parameter.
    seven_b = model_states(7e9)
    assert (seven_b.weights_bytes, seven_b.gradients_bytes, seven_b.optimizer_bytes) == (14e9, 28e9, 84e9)
    assert seven_b.total_bytes == 126e9
    # 16-bit gradients (FSDP / DeepSpeed mixed precision): ZeRO's 16 bytes per parameter.
    assert model_states(7e9, grad_dtype="bf16").total_bytes == 112e9
    assert model_states(7e9, dp=8, zero=3, grad_dtype="bf16").total_bytes == 14e9
    assert model_states(7e9, tp=2, pp=4, grad_dtype="bf16").total_bytes == 14e9
    # Rajbhandari et al. 2020 (arXiv:1910.02054) Figure 1: Psi = 7.5B, K = 12, N_d = 64 -> 120 GB, 31.4 GB,
    # 16.6 GB and 1.9 GB per device for the baseline, P_os, P_os+g and P_os+g+p (16-bit gradients).
    published = [120.0, 31.4, 16.6, 1.9]
    per_device = [model_states(7.5e9, dp=64, zero=z, grad_dtype="bf16").total_bytes / 1e9 for z in (0, 1, 2, 3)]
    assert [round(v, 1) for v in per_device] == published
    assert per_device[1] == 30 + 12 * 7.5 / 64  # 2 Psi + 2 Psi + K Psi / N_d
    # Experts: 1B of the 7B are experts, split over ep = 4 and sharded over dp / ep = 2 by ZeRO-1.
    moe = model_states(7e9, dp=8, zero=1, n_expert_params=1e9, ep=4)
    assert moe.optimizer_bytes == 12 * (6e9 / 8 + 1e9 / 4 / 2)
    assert moe.weights_bytes == 2 * (6e9 + 1e9 / 4)
    # ZeRO-3 holds its gathered layers unsharded on top of the shard.
    assert model_states(7e9, dp=8, zero=3, gathered_params=1e8).weights_bytes == 2 * (7e9 / 8 + 1e8)


def test_training_memory_per_gpu() -> None:
    llama = load("llama-2-7b")
    n = count_params(llama).total
    train = training_memory(llama, seq_len=4096, n_gpus=8, zero=3, grad_dtype="bf16")
    assert train.dp == 8 and train.n_params == n == 6_738_415_616
    gathered = zero3_gathered_params(llama)
    assert gathered == 2 * n / 32
    assert (train.weights_bytes, train.gradients_bytes, train.optimizer_bytes) == (
        2 * (n / 8 + gathered), 2 * n / 8, 12 * n / 8)  # fmt: skip
    assert train.activations == activation_memory(llama, seq_len=4096, flash=True, dropout=False)
    train = training_memory(llama, seq_len=4096, n_gpus=64, tp=4, pp=2, zero=1, flash=True, dropout=True)
    assert train.dp == 8
    assert train.optimizer_bytes == 12 * n / 8 / 8 and train.weights_bytes == 2 * n / 8
    assert train.gradients_bytes == 4 * n / 8  # fp32 main gradients
    assert train.total_bytes == 13_277_121_280 + 2 * n / 8  # 14.0 GiB: fits 16 GiB less 10%, not 12 GiB
    assert train.fits(16 * GiB) and not train.fits(12 * GiB)
    assert not train.fits(16 * GiB, reserve_fraction=0.5)


def test_llama_2_70b_on_64_gpus_matches_the_hand_count() -> None:
    # Issue 12: Llama-2-70B, 64 GPUs, TP 8, ZeRO-1 (distributed optimizer), selective recomputation, sequence
    # parallelism, 4096 tokens, micro-batch 1: a hand count (2 + 4 fp32 main grads + 12/8 bytes/param, plus
    # 34 s b h L / t of activations, Korthikanti et al. eq. 6) and llm-analysis both give ~71.0 GiB.
    config = load("llama-2-70b")
    n = count_params(config).total
    train = training_memory(
        config, seq_len=4096, n_gpus=64, tp=8, zero=1, recompute="selective", sequence_parallel=True
    )
    hand = n / 8 * (2 + 4 + 12 / 8) + 34 * 4096 * 8192 * 80 / 8
    assert train.total_bytes / GiB == pytest.approx(71.0, abs=0.6)
    assert train.total_bytes == pytest.approx(hand, rel=0.01)


def test_context_and_interleaving_activations() -> None:
    llama = load("llama-2-7b")
    base = activation_memory(llama, seq_len=8192, pp=4, flash=True, dropout=False)
    split = activation_memory(llama, seq_len=8192, pp=4, cp=2, flash=True, dropout=False)
    assert split.layers_bytes == pytest.approx(base.layers_bytes / 2)  # linear in tokens under flash
    interleaved = activation_memory(llama, seq_len=8192, pp=4, virtual_stages=2, flash=True, dropout=False)
    assert interleaved.layers_bytes == pytest.approx(base.layers_bytes * (1 + 3 / 8))  # Korthikanti sec. 4.2.3
    few = activation_memory(llama, seq_len=8192, pp=4, n_micro_batches=2, flash=True, dropout=False)
    assert few.layers_bytes == pytest.approx(base.layers_bytes / 2)


def test_fit_keeps_a_reserve() -> None:
    result = fit(72 * GiB, 80 * GiB)
    assert result and result.usable_bytes == 72 * GiB and result.headroom_bytes == 0
    tight = fit(72 * GiB + 1, 80 * GiB)
    assert not tight and tight.headroom_bytes == -1
    assert fit(79 * GiB, 80 * GiB, reserve_fraction=0.0)


def test_checkpoint_size() -> None:
    llama = load("llama-2-7b")
    n = 6_738_415_616
    ckpt = checkpoint_size(llama, n_ranks=8)
    assert (ckpt.weights_bytes, ckpt.optimizer_bytes) == (2 * n, 12 * n)
    assert ckpt.total_bytes == 14 * n + SCHEDULER_STATE_BYTES + 8 * RNG_STATE_BYTES_PER_RANK == 94_337_900_168
    assert checkpoint_size(llama, dtype="fp32", optimizer=False).total_bytes == 4 * n
    # BLOOM's model card: "Bf16 weights: 329GB; full checkpoint with optimizer states: 2.3TB". The card's
    # units read as binary (du -h): 2 x 176,247,271,424 bytes = 328.3 GiB; 14 bytes/param = 2.24 TiB, the rest
    # of the 2.3 being what the estimate leaves out (e.g. the tied embedding stored on two pipeline stages).
    bloom = checkpoint_size(load("bloom-176b"))
    assert bloom.weights_bytes / GiB == pytest.approx(329, rel=0.01)
    assert bloom.total_bytes / 2**40 == pytest.approx(2.3, rel=0.05)


def test_checkpoint_rng_state_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    assert torch.get_rng_state().numel() == 5056  # the CPU generator's share of RNG_STATE_BYTES_PER_RANK


def test_inference_memory_hand_worked() -> None:
    llama = load("llama-2-7b")  # d 4096, 32 layers, 32 heads of 128, SwiGLU 11008, vocab 32000
    n = 6_738_415_616
    inf = inference_memory(llama, seq_len=4096, flash=True)
    assert inf.weights_bytes == 2 * n
    assert inf.kv_cache_bytes == 32 * 2 * 32 * 128 * 2 * 4096 == 2 * GiB
    # 4096 tokens x 2 bytes x (2 x 4096 + max(4 x 4096, 3 x 11008)) + fp32 logits of the last position
    assert inf.activation_bytes == 4096 * 2 * (2 * 4096 + 3 * 11008) + 4 * 32000 == 337_769_472
    eager = inference_workspace_bytes(llama, seq_len=4096)
    assert eager - inf.activation_bytes == 2 * 2 * 32 * 4096**2  # one layer's scores and softmax
    assert inf.total_bytes == inf.weights_bytes + inf.kv_cache_bytes + inf.activation_bytes
    assert inf.fits(24 * GiB) and not inf.fits(16 * GiB)
    # int4 weights and an fp8 cache
    small = inference_memory(llama, seq_len=4096, dtype="int4", kv_dtype="fp8", flash=True)
    # AWQ/GPTQ as deployed: linear layers 0.5 + (2 + 0.5)/128 bytes (group scale and zero), embeddings, head
    # and norms 16-bit: llama-2-7b's 2 x 131,072,000 embedding/head and 266,240 norm parameters.
    other = 2 * 131_072_000 + 262_144 + 4096
    assert small.weights_bytes == (n - other) * (0.5 + 2.5 / 128) + 2 * other and small.kv_cache_bytes == GiB
    # Tensor parallelism: KV heads split over min(tp, n_kv_heads) GPUs; an MLA latent is on every GPU.
    llama3 = load("llama-3-8b")  # 32 query heads, 8 KV heads
    total = kv_cache(llama3, seq_len=4096).total_bytes
    assert inference_memory(llama3, seq_len=4096, tp=16).kv_cache_bytes == total / 8
    assert inference_memory(llama3, seq_len=4096, tp=4).kv_cache_bytes == total / 4
    mla = load("deepseek-v2-lite")
    assert inference_memory(mla, seq_len=4096, tp=2).kv_cache_bytes == kv_cache(mla, seq_len=4096).total_bytes


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_orders_as_expected(name: str) -> None:
    config = load(name)
    states = [training_memory(config, seq_len=1024, n_gpus=8, zero=z).total_bytes for z in (0, 1, 2, 3)]
    assert states == sorted(states, reverse=True) and states[0] > states[3]
    layers = [activation_memory(config, seq_len=1024, recompute=r).layers_bytes for r in ("none", "selective", "full")]
    assert layers[0] > layers[1] > layers[2] > 0
    assert (
        activation_memory(config, seq_len=1024, flash=True).total_bytes
        < activation_memory(config, seq_len=1024).total_bytes
    )
    record = memory_estimate(config, seq_len=1024, accelerator_memory_bytes=80 * GiB).to_record()
    json.dumps(record, allow_nan=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"zero": 4}, "zero must be one of"),
        ({"tp": 3}, "tp (3) must divide"),
        ({"n_gpus": 6, "tp": 4}, "multiple of tp x pp"),
        ({"recompute": "some"}, "recompute must be one of"),
        ({"seq_len": 0}, "seq_len must be a positive integer"),
        ({"micro_batch": 0}, "micro_batch must be a positive integer"),
        ({"pp": 64, "n_gpus": 64}, "pp (64) must not exceed"),
        ({"dtype": "fp7"}, "unknown dtype"),
        ({"accelerator_memory_bytes": 0}, "accelerator memory must be a positive"),
        ({"reserve_fraction": 1.0}, "reserve_fraction must be in"),
    ],
)
def test_bad_values_raise(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"seq_len": 128, **kwargs}
    with pytest.raises(InvalidValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        memory_estimate(load("llama-2-7b"), **arguments)  # type: ignore[arg-type]


# -- the command line ---------------------------------------------------------------------------------------


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_json_equals_library() -> None:
    specs = ["llama-2-7b", "mixtral-8x7b", "t5-base"]
    options = ["--seq-len", "2048", "--batch", "4", "--micro-batch", "2", "--n-gpus", "16", "--zero", "2",
               "--tp", "2", "--pp", "2", "--recompute", "selective", "--flash", "--sequence-parallel",
               "--no-dropout", "--dtype", "int8", "--kv-dtype", "fp8", "--gpu-memory", "141GB",
               "--reserve-fraction", "0.05"]  # fmt: skip
    code, out, err = invoke("memory", *specs, *options, "--format", "json")
    assert code == 0, err
    document = json.loads(out)
    expected = [
        memory_estimate(
            load(spec),
            seq_len=2048,
            batch=4,
            micro_batch=2,
            n_gpus=16,
            zero=2,
            tp=2,
            pp=2,
            recompute="selective",
            flash=True,
            sequence_parallel=True,
            dropout=False,
            dtype="int8",
            kv_dtype="fp8",
            accelerator_memory_bytes=141e9,
            reserve_fraction=0.05,
        ).to_record()
        for spec in specs
    ]
    assert document["memory"] == expected
    record = document["memory"][0]
    assert record["assumptions"]["dp"] == 4 and record["assumptions"]["recompute"] == "selective"
    assert record["training"]["fit"]["fits"] is True
    assert {"inference", "training", "checkpoint", "assumptions"} <= record.keys()


def test_cli_defaults_table_markdown_and_csv() -> None:
    code, out, _ = invoke("memory", "llama-2-7b", "--format", "json")
    assert code == 0
    record = json.loads(out)["memory"][0]
    assumptions = record["assumptions"]
    assert (assumptions["seq_len"], assumptions["n_gpus"], assumptions["zero"], assumptions["recompute"]) == (
        4096,  # the preset's training length
        8,
        0,
        "none",
    )
    assert (assumptions["flash"], assumptions["dropout"], assumptions["grad_dtype"]) == (True, False, "fp32")
    assert assumptions["accelerator_memory_bytes"] == 80 * GiB
    code, out, _ = invoke("memory", "llama-2-7b", "gpt-2", "--zero", "3", "--flash")
    assert code == 0
    for text in ("llama-2-7b", "6.74B", "12.6 GiB", "2 GiB", "yes", "KV cache", "checkpoint"):
        assert text in out
    code, out, _ = invoke("memory", "llama-2-7b", "--format", "markdown")
    assert code == 0 and out.count("\n| llama-2-7b |") == 1
    code, out, _ = invoke("memory", "llama-2-7b", "--format", "csv")
    assert code == 0 and "training.activations.layers_bytes" in out.splitlines()[0]


def test_cli_gpu_from_the_catalog() -> None:
    hardware = pytest.importorskip("llmarch.catalog.hardware")
    name = hardware.accelerator_names()[0]
    code, out, _ = invoke("memory", "gpt-2", "--gpu", name, "--format", "json")
    assert code == 0
    assert (
        json.loads(out)["memory"][0]["assumptions"]["accelerator_memory_bytes"]
        == hardware.accelerator(name).memory_bytes
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--zero", "4"], "zero must be one of"),
        (["--tp", "3"], "must divide"),
        (["--n-gpus", "6", "--tp", "4"], "multiple of tp x pp"),
        (["--recompute", "sometimes"], "recompute must be one of"),
        (["--dtype", "fp7"], "unknown dtype"),
        (["--gpu-memory", "80XB"], "cannot parse"),
        (["--gpu-memory", "0"], "positive"),
        (["--gpu-memory", "80GB", "--gpu", "h100-sxm"], "not both"),
        (["--reserve-fraction", "1.5"], "--reserve-fraction"),
        (["--seq-len", "0"], "--seq-len"),
        (["--pp", "100", "--n-gpus", "800"], "must not exceed"),
    ],
)
def test_cli_bad_values_are_one_line(args: list[str], message: str) -> None:
    code, _, err = invoke("memory", "llama-2-7b", *args)
    assert code == 1
    assert message in err and err.startswith("error: ") and err.count("\n") == 1


def test_memory_command_does_not_import_torch_or_pandas() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from llmarch.cli import app\n"
        "r = CliRunner().invoke(app, ['memory', 'llama-2-7b', 'mixtral-8x7b', '--format', 'json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(app, ['memory', 'llama-2-7b'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in ('torch', 'pandas', 'numpy') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_wider_shared_experts_store_wider_activations() -> None:
    """Qwen2-MoE's shared expert is wider than a routed one (d_ff_shared): its MLP activations grow with it."""
    import dataclasses

    from llmarch.calc import training_memory as tm

    base = load("deepseek-v2-lite")
    assert base.n_shared_experts == 2 and base.d_ff_shared is None
    wide = dataclasses.replace(base, d_ff_shared=4 * base.expert_d_ff)
    tokens = 1024
    _, narrow_ff = tm._mlp_activation_bytes(base, tokens, moe=True, dropout=False)
    _, wide_ff = tm._mlp_activation_bytes(wide, tokens, moe=True, dropout=False)
    # gated MLP: 3 stored d_ff-wide tensors per expert visited; 2 shared experts each 3 x d_ff_expert wider
    assert wide_ff - narrow_ff == 3 * tm.ACTIVATION_BYTES * tokens * 2 * 3 * base.expert_d_ff
