"""Scaling laws: compute-optimal parameters and tokens, predicted loss, and inference-aware sizing.

Three named laws (`LAWS`), all for dense decoder-only transformers trained once over fresh data:

- "chinchilla-1" (default): Hoffmann et al. 2022 (arXiv:2203.15556), Approach 1 (training-curve
  envelopes): N_opt = k_N C^a and D_opt = k_D C^b, two separate power laws (Table 2: a = b = 0.50). The
  paper publishes the exponents but not the coefficients; both are taken from the paper's own projection,
  Table 3, by a minimax fit in log space (every row within 0.8% in parameters and 3.1% in tokens; the
  Gopher-budget row, 5.76e23 FLOPs -> 67B and 1.5T, is the one 6ND does not reproduce: 6 x 67e9 x 1.5e12 =
  6.0e23). Approach 1 predicts no loss: its `predicted_loss` and its iso-loss curves are those of the
  Besiroglu et al. 2024 fit below, whose optimum agrees with Approach 1 (72B and 1.33T at 5.76e23 FLOPs,
  against Approach 1's 67B and 1.5T; Approach 3's published fit gives 32B and 3.0T).
- "chinchilla-3": Approach 3, the parametric loss L(N, D) = E + A / N^alpha + B / D^beta with E = 1.69,
  A = 406.4, B = 410.7, alpha = 0.34, beta = 0.28 (section 3.3, eq. 10), minimised under C = 6 N D.
- "besiroglu": the same form refitted by Besiroglu et al. 2024, "Chinchilla Scaling: A replication
  attempt" (arXiv:2404.10102, Table 1): E = 1.8172, A = 482.01, B = 2085.43, alpha = 0.3478,
  beta = 0.3658, whose optimum agrees with Approaches 1 and 2 (about 20 tokens per parameter).

Conventions. N counts every parameter, embeddings included (Chinchilla's convention; Kaplan et al. 2020
counted non-embedding parameters only, which is most of why their exponents differ: Pearce and Song 2024,
arXiv:2406.12907). C is training FLOPs counted as 6 N D (Kaplan et al. 2020, arXiv:2001.08361, section
2.1): 2 N per token forward, 4 N backward. llmarch's own count (llmarch.calc.flops.training_flops_per_token)
is 3 x the forward pass, the forward pass being 2 FLOPs per matmul weight a token multiplies (the
embedding table is a lookup and costs nothing; the output head costs 2 V d) plus the attention matmuls
(2 n_layers H (d_head + d_v) per attended key). So llmarch's count per token is 6 N - 6 V d (no lookup)
+ the attention term: within a few percent of 6 N for large models at 2-8k context, larger for small
models with big vocabularies or long contexts. `llmarch design` reports both for every candidate.

Inference-aware sizing (Sardana et al. 2024, "Beyond Chinchilla-Optimal", arXiv:2401.00448, section 2):
a model that will serve T tokens over its life should minimise training plus inference FLOPs,
6 N D_train + 2 N T, at the loss the compute-optimal model would reach, which gives a smaller model
trained on more tokens. The iso-loss curve comes from the law's parametric fit (Besiroglu et al.'s for
"chinchilla-1"); for "chinchilla-1" the ratios N/N_opt and D/D_opt found on that curve, with T
expressed relative to the training tokens, are applied to Approach 1's optimum, so that T = 0 returns
Approach 1's answer exactly.
"""

from __future__ import annotations

import math
from typing import Any

from llmarch.core.checks import non_negative, positive
from llmarch.core.errors import InvalidValueError
from llmarch.core.frozen import frozen_dataclass

#: FLOPs per parameter per training token (forward 2 + backward 4; Kaplan et al. 2020).
TRAINING_FLOPS_PER_PARAM_TOKEN = 6.0
#: FLOPs per parameter per inference token (one forward pass; Sardana et al. 2024, eq. 2).
INFERENCE_FLOPS_PER_PARAM_TOKEN = 2.0


@frozen_dataclass
class ParametricLoss:
    """L(N, D) = E + A / N^alpha + B / D^beta in nats per token (Hoffmann et al. 2022, eq. 2)."""

    name: str
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    source: str

    def loss(self, n_params: Any, tokens: Any) -> Any:
        """Predicted final training loss of N parameters trained on D tokens (floats or numpy arrays)."""
        return self.E + self.A / n_params**self.alpha + self.B / tokens**self.beta

    def tokens_for_loss(self, n_params: float, loss: float) -> float:
        """Tokens D at which N parameters reach `loss`: (B / (loss - E - A / N^alpha))^(1 / beta); inf if never."""
        excess = loss - self.E - self.A / n_params**self.alpha
        return math.inf if excess <= 0 else (self.B / excess) ** (1.0 / self.beta)

    def min_params_for_loss(self, loss: float) -> float:
        """The size below which `loss` is out of reach at any token count: (A / (loss - E))^(1 / alpha)."""
        if loss <= self.E:
            raise InvalidValueError(f"loss must exceed the irreducible loss E = {self.E} of {self.name}, got {loss}")
        return (self.A / (loss - self.E)) ** (1.0 / self.alpha)

    def compute_optimal(self, compute_flops: float) -> tuple[float, float]:
        """(N, D) minimising L under 6 N D = C (Hoffmann et al. 2022, eq. 4, derived in appendix D.2).

        N_opt = G (C / 6)^a, D_opt = G^-1 (C / 6)^b, with G = (alpha A / (beta B))^(1 / (alpha + beta)),
        a = beta / (alpha + beta), b = alpha / (alpha + beta).
        """
        s = self.alpha + self.beta
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / s)
        per = compute_flops / TRAINING_FLOPS_PER_PARAM_TOKEN
        return g * per ** (self.beta / s), per ** (self.alpha / s) / g


@frozen_dataclass
class PowerLawAllocation:
    """N_opt = n_coefficient x C^n_exponent and D_opt = d_coefficient x C^d_exponent (C in FLOPs)."""

    n_coefficient: float
    n_exponent: float
    d_coefficient: float
    d_exponent: float
    source: str

    def compute_optimal(self, compute_flops: float) -> tuple[float, float]:
        return (
            self.n_coefficient * compute_flops**self.n_exponent,
            self.d_coefficient * compute_flops**self.d_exponent,
        )


CHINCHILLA_APPROACH_3 = ParametricLoss(
    "chinchilla-3", E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28,
    source="Hoffmann et al. 2022 (arXiv:2203.15556), Approach 3, section 3.3, eq. 10",
)  # fmt: skip
BESIROGLU_2024 = ParametricLoss(
    "besiroglu", E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658,
    source="Besiroglu et al. 2024, Chinchilla Scaling: A replication attempt (arXiv:2404.10102), Table 1",
)  # fmt: skip
#: Approach 1's coefficients: the minimax (Chebyshev) fit in log space of the paper's Table 3, which
#: projects Approach 1; exponents 0.4982 and 0.5019 against the paper's rounded 0.50 and 0.50 (Table 2).
CHINCHILLA_APPROACH_1 = PowerLawAllocation(
    n_coefficient=0.098171, n_exponent=0.498195, d_coefficient=1.732152, d_exponent=0.501862,
    source="Hoffmann et al. 2022 (arXiv:2203.15556), Approach 1 (Table 2: a = b = 0.50); coefficients "
    "fitted to the paper's Table 3",
)  # fmt: skip


@frozen_dataclass
class ScalingLaw:
    """A named law: how to split compute into N and D, and the parametric fit that predicts loss."""

    name: str
    description: str
    loss_fit: ParametricLoss
    allocation: PowerLawAllocation | None = None  # None: the loss fit's own compute-optimal split

    def compute_optimal(self, compute_flops: float) -> tuple[float, float]:
        if self.allocation is not None:
            return self.allocation.compute_optimal(compute_flops)
        return self.loss_fit.compute_optimal(compute_flops)

    @property
    def source(self) -> str:
        if self.allocation is None:
            return self.loss_fit.source
        return f"{self.allocation.source}; loss from {self.loss_fit.source}"


LAWS: dict[str, ScalingLaw] = {
    "chinchilla-1": ScalingLaw(
        "chinchilla-1", "Chinchilla Approach 1: N and D as power laws of C", BESIROGLU_2024, CHINCHILLA_APPROACH_1
    ),
    "chinchilla-3": ScalingLaw("chinchilla-3", "Chinchilla Approach 3: parametric L(N, D)", CHINCHILLA_APPROACH_3),
    "besiroglu": ScalingLaw("besiroglu", "Besiroglu et al. 2024 refit of Approach 3", BESIROGLU_2024),
}
DEFAULT_LAW = "chinchilla-1"


def scaling_law(name: str) -> ScalingLaw:
    """The law called `name` (one of LAWS), or InvalidValueError listing them."""
    if name not in LAWS:
        raise InvalidValueError(f"law must be one of {', '.join(LAWS)}, got {name!r}")
    return LAWS[name]


@frozen_dataclass
class ComputeOptimal:
    """The compute-optimal allocation of `compute_flops` under one law."""

    law: str
    compute_flops: float
    params: float
    tokens: float
    tokens_per_param: float
    predicted_loss: float  # nats per token, from the law's parametric fit
    six_nd_flops: float  # 6 N D of the result (equals compute_flops except under Approach 1's separate fits)
    source: str


def compute_optimal(compute_flops: float, *, law: str = DEFAULT_LAW) -> ComputeOptimal:
    """Compute-optimal parameters and tokens for a training budget of `compute_flops` (6 N D FLOPs).

    Chinchilla Table 3 (Approach 1): 1.21e20 -> 1.0B and 20.2B tokens; 5.76e23 -> 67B and 1.5T.
    """
    compute_flops = positive("compute_flops", compute_flops)
    chosen = scaling_law(law)
    n, d = chosen.compute_optimal(compute_flops)
    return ComputeOptimal(
        law=chosen.name,
        compute_flops=compute_flops,
        params=n,
        tokens=d,
        tokens_per_param=d / n,
        predicted_loss=float(chosen.loss_fit.loss(n, d)),
        six_nd_flops=TRAINING_FLOPS_PER_PARAM_TOKEN * n * d,
        source=chosen.source,
    )


@frozen_dataclass
class InferenceAware:
    """Size and training tokens minimising training + inference FLOPs at the compute-optimal loss."""

    law: str
    compute_flops: float  # the training budget that defines the target loss
    inference_tokens: float  # tokens served over the model's life
    compute_optimal: ComputeOptimal  # the reference (T = 0) allocation
    params: float
    tokens: float
    tokens_per_param: float
    predicted_loss: float  # the fit's L(N, D): the compute-optimal loss (close to it under chinchilla-1's ratios)
    params_ratio: float  # params / compute-optimal params (<= 1)
    tokens_ratio: float  # tokens / compute-optimal tokens (>= 1)
    training_flops: float  # 6 N D
    inference_flops: float  # 2 N T
    total_flops: float
    compute_optimal_total_flops: float  # the compute-optimal model's 6 N D + 2 N T
    total_flops_saving: float  # fraction of compute_optimal_total_flops saved (>= 0)
    source: str


def _iso_loss_minimum(fit: ParametricLoss, loss: float, n_max: float, inference_tokens: float) -> float:
    """N in (N_min, n_max] minimising 6 N D(N) + 2 N T on the iso-loss curve L(N, D(N)) = loss.

    The objective tends to infinity at N_min (D diverges) and, with T >= 0, rises beyond the compute-optimal
    size n_max; a log-spaced grid finds the basin, a golden-section search on log N refines it.
    """

    def total(log_n: float) -> float:
        n = math.exp(log_n)
        return n * (TRAINING_FLOPS_PER_PARAM_TOKEN * fit.tokens_for_loss(n, loss) + 2.0 * inference_tokens)

    low = math.log(fit.min_params_for_loss(loss)) + 1e-9
    high = math.log(n_max)
    if high <= low:
        return n_max
    steps = 400
    grid = [low + (high - low) * i / steps for i in range(steps + 1)]
    values = [total(u) for u in grid]
    best = min(range(len(grid)), key=values.__getitem__)
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, steps)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(100):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if total(c) <= total(d):
            b = d
        else:
            a = c
    return math.exp((a + b) / 2)


def inference_aware(compute_flops: float, inference_tokens: float, *, law: str = DEFAULT_LAW) -> InferenceAware:
    """Sardana et al. 2024 (arXiv:2401.00448, eq. 2): minimise 6 N D + 2 N T subject to L(N, D) = the loss of
    the compute-optimal model for `compute_flops`. T = 0 returns the compute-optimal allocation.

    The search runs on the law's parametric fit, with T scaled by the fit's optimal tokens over the law's
    (so that serving T tokens means the same multiple of the training set), and its ratios N/N_opt and
    D/D_opt are applied to the law's own optimum (the module docstring says why).
    """
    inference_tokens = non_negative("inference_tokens", inference_tokens)
    reference = compute_optimal(compute_flops, law=law)
    chosen = scaling_law(law)
    fit = chosen.loss_fit
    n_fit, d_fit = fit.compute_optimal(compute_flops)
    target = float(fit.loss(n_fit, d_fit))
    t_fit = inference_tokens * d_fit / reference.tokens
    if inference_tokens == 0:
        n_ratio = d_ratio = 1.0
    else:
        n_star = _iso_loss_minimum(fit, target, n_fit, t_fit)
        n_ratio, d_ratio = n_star / n_fit, fit.tokens_for_loss(n_star, target) / d_fit
    n, d = reference.params * n_ratio, reference.tokens * d_ratio
    training = TRAINING_FLOPS_PER_PARAM_TOKEN * n * d
    inference = INFERENCE_FLOPS_PER_PARAM_TOKEN * n * inference_tokens
    reference_total = reference.six_nd_flops + INFERENCE_FLOPS_PER_PARAM_TOKEN * reference.params * inference_tokens
    return InferenceAware(
        law=chosen.name,
        compute_flops=reference.compute_flops,
        inference_tokens=inference_tokens,
        compute_optimal=reference,
        params=n,
        tokens=d,
        tokens_per_param=d / n,
        predicted_loss=float(fit.loss(n, d)),
        params_ratio=n_ratio,
        tokens_ratio=d_ratio,
        training_flops=training,
        inference_flops=inference,
        total_flops=training + inference,
        compute_optimal_total_flops=reference_total,
        total_flops_saving=max(0.0, 1.0 - (training + inference) / reference_total),
        source=f"Sardana et al. 2024 (arXiv:2401.00448) on {chosen.source}",
    )


def compute_from_gpu_hours(gpu_hours: float, peak_flop_per_s: float, mfu: float) -> float:
    """Training FLOPs that `gpu_hours` deliver at utilisation `mfu` of a peak: hours x 3600 x peak x MFU.

    The inverse of llmarch.calc.cost.gpu_hours_from_flops (the same MFU convention).
    """
    positive("gpu_hours", gpu_hours)
    positive("peak_flop_per_s", peak_flop_per_s)
    if not 0 < mfu <= 1:
        raise InvalidValueError(f"mfu must be a fraction in (0, 1] (0.4 = 40%), got {mfu!r}")
    return gpu_hours * 3600.0 * peak_flop_per_s * mfu
