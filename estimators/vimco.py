"""``vimco``: Variational Inference for Monte Carlo Objectives [1].

VIMCO optimizes the S-sample bound, not E[f]. When f(z) = -log w(z) is a negative log
importance weight (e.g. log q(z|x) - log p(x, z) in a VAE; the task capability
``"log_weight"``), the loss is

    L_S(θ) = E_{z_1..z_S ~ q_θ} [ L̂ ],   L̂ = -log (1/S) Σ_s w_s,   w_s = exp(-f(z_s)),

an upper bound of -log Σ_z p(x, z) that tightens as S grows (S = 1 gives E[f]). Its gradient is

    ∇L_S = E[ Σ_s (L̂ - b_s) ∇log q_θ(z_s) ] + E[ Σ_s w̃_s ∇_θ f(z_s) ],   w̃ = w / Σ w,

with the per-sample leave-one-out baseline of [1] (eq. 9): b_s is L̂ recomputed with log w_s
replaced by the mean of the other S-1 log weights (the geometric-mean replacement),

    b_s = -log (1/S) (Σ_{j≠s} w_j + exp(mean_{j≠s} log w_j)),

which depends on the other samples only, so the estimate stays unbiased for ∇L_S. Needs S >= 2.

Surrogate: its value is L̂ for every s (the bound; so training with ``vimco`` minimizes L_S
and its logged loss is the bound), and the gradient of its mean over s is the estimate above.

``unbiased`` is False: the estimate is unbiased for ∇L_S, which differs from ∇E[f] (the
quantity the harness's exact gradient and the conformance checks use) for S >= 2. The tests
check unbiasedness for ∇L_S against enumeration of S-tuples.

f-evaluations: S per estimate (the default ``evaluations``): the baselines reuse the S costs.

The bound L̂ (`multi_sample_bound`) is shared with the pathwise estimators of it,
``pathwise_iwae`` and ``dreg``; ``gaussian_vae(objective="iwae")`` is a task whose loss is L_S.

Shapes: z [S, *value]; f(z), log q(z), b [S, *b]; L̂ [*b].

[1] Mnih & Rezende, Variational Inference for Monte Carlo Objectives, ICML 2016.
[2] Burda, Grosse & Salakhutdinov, Importance Weighted Autoencoders, ICLR 2016.
"""
from __future__ import annotations

import math

import numpy as np

from gradest.estimator import GradientEstimator, no_state
from gradest.registry import register_estimator


def multi_sample_bound(B, neg_log_w):
    """L̂ = -log (1/S) Σ_s exp(-f_s): [S, *b] -> [*b]."""
    S = neg_log_w.shape[0]
    return math.log(S) - B.logsumexp(-neg_log_w, axis=0)


def leave_one_out_bounds(B, log_w):
    """b_s [S, *b]: L̂ with log w_s replaced by the mean of the other log weights [1, eq. 9]."""
    S = log_w.shape[0]
    rest = (B.sum(log_w, axis=0, keepdims=True) - log_w) / (S - 1)  # [S, *b]
    eye = np.eye(S, dtype=bool).reshape((S, S) + (1,) * (log_w.ndim - 1))
    # row s: the S log weights with entry s replaced by rest[s]
    rows = B.where(B.asarray(eye), B.expand_dims(rest, 1), B.expand_dims(log_w, 0))  # [S, S, *b]
    return math.log(S) - B.logsumexp(rows, axis=1)  # [S, *b]


@register_estimator("vimco")
def vimco() -> GradientEstimator:
    """VIMCO: the S-sample bound -log mean exp(-f) with leave-one-out baselines (needs S >= 2)."""

    def surrogate(f, dist, noise, state):
        B = dist.backend
        z = dist.sample(noise["sample"])  # [S, *value]
        fz = f(z)  # [S, *b]
        S = fz.shape[0]
        if S < 2:
            raise ValueError(f"vimco needs num_samples >= 2 (its baselines leave one sample out); got {S}")
        log_q = dist.log_prob(z)  # [S, *b]
        assert tuple(log_q.shape) == tuple(fz.shape), (
            f"f(z) has shape {tuple(fz.shape)} but log q(z) {tuple(log_q.shape)}; f must return [S, *batch_shape]")
        bound = multi_sample_bound(B, fz)  # [*b], carries ∇_θ f through the normalized weights
        baselines = leave_one_out_bounds(B, -B.stop_gradient(fz))  # [S, *b]
        signal = B.stop_gradient(bound) - baselines  # [S, *b]
        score_term = float(S) * B.stop_gradient(signal) * (log_q - B.stop_gradient(log_q))  # [S, *b]
        return B.expand_dims(bound, 0) + score_term, state  # [S, *b]

    return GradientEstimator(
        init=no_state, surrogate=surrogate,
        supports=frozenset({"categorical", "bernoulli", "normal"}), unbiased=False, name="vimco",
        options={}, min_samples=2, requires=frozenset({"log_weight"}))
