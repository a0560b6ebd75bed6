"""The learned per-coordinate optimal baseline of ``reinforce(baseline="learned_optimal")``
(private helper).

The variance-minimizing constant baseline of coordinate i of the score-function estimate
ĝ_i = (f(z) - b_i) s_i(z), s_i = ∂ log p_θ(z) / ∂η_i (η the distribution's parameters: logits,
or mean and log_std), is b*_i = E[f s_i²] / E[s_i²] [1, 2]. Here both moments are regressed on
the "input" x (the distribution's parameters of one batch element, without gradient, as NVIL's
baseline [3]: for a VAE, the encoder's output for one image) by one small network with 2d
outputs (d = the parameter entries of one batch element):

    (n_φ(x), c_φ(x)) = net_φ(x),   N_i = n_φ(x)_i ≈ E[f s_i² | x],   D_i = softplus(c_φ(x)_i) ≈ E[s_i² | x]
    b_i = N_i / max(D_i, 1e-6)

trained (``phi_loss``) by squared error towards the per-sample targets f(z) s_i(z)² and
s_i(z)²: mean over samples, batch elements and coordinates of (N_i - f s_i²)² + (D_i - s_i²)².
The regression's minimizers are the conditional moments, so at convergence b_i is b*_i(x). The
network (`gradest.estimators._mlp` with 2d outputs): ``hidden`` tanh units (x [*b, d] ->
tanh(x W1 + b1) [*b, H] -> [*b, 2d]), or linear for ``hidden=0``; φ = [W1 (d·H, row-major
[d, H]), b1 (H), W2 (H·2d, [H, 2d]), b2 (2d)] (hidden=0: [W (d·2d), b (2d)]). W1 ~ N(0, 1/d) from a fixed NumPy seed, output layer zero: N = 0
at ``init``, so the estimator starts as REINFORCE without a baseline.

Unbiased, for every φ: b depends on φ and on x = stop_gradient(params) only, not on the sample
z of the estimate, so E[(f - b_i) s_i] = E[f s_i] - b_i E[s_i] = E[f s_i], since the score has
mean zero, E[s_i] = Σ_z ∇p(z) = ∇ 1 = 0. A per-coordinate b is no obstacle: every coordinate
is its own unbiased estimate. In `gradest.train` the estimate of step t uses φ_t, fitted on
earlier steps' samples (φ is updated after the θ step), and `gradient_samples` trains φ on its
own noise stream (the φ warm-up): in both, φ is independent of the samples it weighs. What φ
changes is the variance only.

[1] Greensmith, Bartlett & Baxter, Variance Reduction Techniques for Gradient Estimates in
    Reinforcement Learning, JMLR 2004.
[2] Weaver & Tao, The Optimal Reward Baseline for Gradient-Based Reinforcement Learning,
    UAI 2001.
[3] Mnih & Gregor, Neural Variational Inference and Learning in Belief Networks, ICML 2014.
"""
from __future__ import annotations

import numpy as np

from gradest.estimators._mlp import mlp_apply, mlp_init, mlp_size
from gradest.estimators.nvil import _event_size, features, input_width

#: floor of the learned E[s²] in the ratio (numerical safety only: any b keeps the estimate unbiased)
MIN_DENOMINATOR = 1e-6


def net_size(d: int, hidden: int) -> int:
    """Entries of φ for input width d (outputs 2d)."""
    return mlp_size(d, hidden, outputs=2 * d)


def net_init(d: int, hidden: int, seed: int = 0) -> np.ndarray:
    """φ₀ (float64 NumPy): random first layer, zero output layer."""
    return mlp_init(d, hidden, seed, outputs=2 * d)


def net_apply(B, phi, x, d: int, hidden: int):
    """x [..., d] -> [..., 2d]."""
    return mlp_apply(B, phi, x, d, hidden, outputs=2 * d)


def moments(B, phi, dist, hidden: int) -> dict:
    """{name: (N [*param_shape], D [*param_shape])}: the learned E[f s²] and E[s²] per
    coordinate of each distribution parameter."""
    d = input_width(dist)
    out = net_apply(B, phi, features(dist), d, hidden)  # [*b, 2d]
    result, start = {}, 0
    for name in sorted(dist.params):
        size = _event_size(dist, name)
        shape = tuple(dist.params[name].shape)
        numerator = B.reshape(out[..., start:start + size], shape)
        denominator = B.softplus(B.reshape(out[..., d + start:d + start + size], shape))
        result[name] = (numerator, denominator)
        start += size
    return result


def baselines(B, phi, dist, hidden: int) -> dict:
    """{name: b [*param_shape]} = N / max(D, `MIN_DENOMINATOR`), without gradient."""
    return {name: B.stop_gradient(n / B.maximum(dn, MIN_DENOMINATOR))
            for name, (n, dn) in moments(B, phi, dist, hidden).items()}


def expand_to(B, x, ndim: int):
    while x.ndim < ndim:
        x = B.expand_dims(x, -1)
    return x


def regression_loss(B, phi, dist, z, fz, hidden: int):
    """Mean of (N - f s²)² + (D - s²)² over samples, batch elements and coordinates (targets
    without gradient); z [S, *value], fz [S, *b]."""
    cost = B.stop_gradient(fz)
    total, count = 0.0, 0
    fitted = moments(B, phi, dist, hidden)
    for name, score in dist.score(z).items():  # [S, *param_shape]
        sq = B.stop_gradient(score * score)
        numerator, denominator = fitted[name]
        f_wide = expand_to(B, cost, sq.ndim)
        total = total + B.sum((numerator - f_wide * sq) ** 2) + B.sum((denominator - sq) ** 2)
        count += int(np.prod(tuple(sq.shape)))
    return total / count
