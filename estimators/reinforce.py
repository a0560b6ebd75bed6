"""``reinforce``: the score-function estimator [1] with a choice of baseline.

    ∇L = E[(f(z) - b) ∇ log p_θ(z)] + E[∇f(z)]   (b independent of z: no bias)

The surrogate is the magic box f(z) + sg(f(z) - b) (log p(z) - sg(log p(z))), whose value is
f(z) and whose gradient is the estimate. Baselines (option ``baseline``):

* ``none``: b = 0.
* ``moving_average``: b is an exponential moving average (``decay``) of the mean cost over
  past steps, carried in ``state`` (bias-corrected as Adam's moments are; 0 before any step).
* ``loo``: leave-one-out over the S samples, b_s = mean of the other S-1 costs [2, 3]
  (needs S >= 2).
* ``optimal``: the per-coordinate variance-minimizing constant b*_i = E[f (∂_i log p)²] /
  E[(∂_i log p)²] [4], coordinates being the distribution's parameters (the logits; mean and
  log_std; the log parameters of gamma, beta and dirichlet), each b_i estimated leave-one-out from the other S-1 samples so the estimate stays
  unbiased (needs S >= 2).
* ``learned_optimal``: the same per-coordinate b*_i, learned instead of estimated: a network
  of the input (the distribution's parameters per batch element, as NVIL's baseline [5]) with
  2d outputs regressed by squared error on f·(∂_i log p)² and (∂_i log p)², their ratio the
  baseline b_i (`gradest.estimators._learned_baseline`; ``hidden`` tanh units, ``hidden=0``
  linear, first layer from the NumPy seed ``init_seed``). φ lives in ``state["phi"]`` and is
  trained by ``phi_loss`` in `gradest.train` (and by the φ warm-up of `gradient_samples`), as
  NVIL's. Unbiased for every φ: b is a function of φ and of the parameters only, never of the
  sample it weighs, and the score has mean zero. Works with S = 1.

The swept and benchmarked variants are `BASELINES`; ``learned_optimal`` (`LEARNED_BASELINES`)
is built on request.

Shapes: z [S, *value], f(z) and log p(z) [S, *b]; scores [S, *param_shape].

[1] Williams, Simple Statistical Gradient-Following Algorithms for Connectionist
    Reinforcement Learning, Machine Learning 1992.
[2] Mnih & Rezende, Variational Inference for Monte Carlo Objectives (VIMCO), ICML 2016.
[3] Kool, van Hoof & Welling, Buy 4 REINFORCE Samples, Get a Baseline for Free!, 2019.
[4] Greensmith, Bartlett & Baxter, Variance Reduction Techniques for Gradient Estimates in
    Reinforcement Learning, JMLR 2004; Weaver & Tao 2001.
[5] Mnih & Gregor, Neural Variational Inference and Learning in Belief Networks, ICML 2014.
"""
from __future__ import annotations

import numpy as np

from gradest.estimator import GradientEstimator, linear_surrogate, magic_box, no_state
from gradest.estimators import _learned_baseline as LB
from gradest.estimators.nvil import input_width
from gradest.registry import register_estimator

#: the baselines swept and benchmarked by default
BASELINES = ("none", "moving_average", "loo", "optimal")
#: baselines with trainable φ (built on request)
LEARNED_BASELINES = ("learned_optimal",)
ALL_BASELINES = BASELINES + LEARNED_BASELINES


def leave_one_out_mean(B, x):
    """[S, ...] -> [S, ...]: the mean of the other S-1 entries along axis 0."""
    S = x.shape[0]
    return (B.sum(x, axis=0, keepdims=True) - x) / (S - 1)


def _expand_to(B, x, ndim: int):
    """Append singleton axes to ``x`` until it has ``ndim`` axes."""
    while x.ndim < ndim:
        x = B.expand_dims(x, -1)
    return x


@register_estimator("reinforce", variants=[{"baseline": b} for b in BASELINES],
                    core=[{"baseline": "none"}, {"baseline": "loo"}])
def reinforce(baseline: str = "none", decay: float = 0.9, hidden: int = 16, init_seed: int = 0) -> GradientEstimator:
    """Score-function (REINFORCE) estimator; baseline none | moving_average | loo | optimal | learned_optimal."""
    if baseline not in ALL_BASELINES:
        raise ValueError(f"unknown baseline {baseline!r} for reinforce; valid baselines: {', '.join(ALL_BASELINES)}")
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay!r}")
    if isinstance(hidden, bool) or not isinstance(hidden, (int, np.integer)) or hidden < 0:
        raise ValueError(f"option 'hidden' of reinforce must be a non-negative integer (units of the learned "
                         f"baseline's network; 0 for a linear one), got {hidden!r}")
    if isinstance(init_seed, bool) or not isinstance(init_seed, (int, np.integer)):
        raise ValueError(f"option 'init_seed' of reinforce must be an integer, got {init_seed!r}")
    hidden, init_seed = int(hidden), int(init_seed)
    learned = baseline == "learned_optimal"

    def init(dist):
        B = dist.backend
        if learned:
            return {"phi": B.asarray(LB.net_init(input_width(dist), hidden, init_seed))}
        if baseline != "moving_average":
            return {}
        return {"average": B.zeros(()), "steps": B.zeros(())}

    def surrogate(f, dist, noise, state):
        B = dist.backend
        z = dist.sample(noise["sample"])  # [S, *value]
        fz = f(z)  # [S, *b]
        S = fz.shape[0]
        if baseline == "optimal":
            return _optimal_surrogate(B, dist, z, fz), state
        if learned:
            return _learned_surrogate(B, dist, z, fz, LB.baselines(B, state["phi"], dist, hidden)), state
        log_p = dist.log_prob(z)  # [S, *b]
        assert tuple(log_p.shape) == tuple(fz.shape), (
            f"f(z) has shape {tuple(fz.shape)} but log p(z) {tuple(log_p.shape)}; f must return [S, *batch_shape]")
        cost = B.stop_gradient(fz)
        if baseline == "none":
            weight = cost
        elif baseline == "loo":
            weight = cost - leave_one_out_mean(B, cost)
        else:  # moving_average
            steps = state["steps"]
            corrected = B.where(steps > 0, state["average"] / (1.0 - decay ** B.maximum(steps, 1.0)), 0.0)
            weight = cost - corrected
            state = {"average": decay * state["average"] + (1.0 - decay) * B.mean(cost),
                     "steps": steps + 1.0}
        del S
        return magic_box(B, fz, log_p, weight), state

    def phi_loss(phi, f, dist, noise, state):
        B = dist.backend
        z = dist.sample(noise["sample"])  # [S, *value]
        return LB.regression_loss(B, phi, dist, z, f(z), hidden)

    options = {"baseline": baseline}
    if learned:
        options.update(hidden=hidden, init_seed=init_seed)
    return GradientEstimator(
        init=init if baseline in ("moving_average", "learned_optimal") else no_state,
        surrogate=surrogate,
        supports=frozenset({"categorical", "bernoulli", "normal", "gamma", "beta", "dirichlet"}),
        unbiased=True,
        name="reinforce",
        options=options,
        min_samples=2 if baseline in ("loo", "optimal") else 1,
        update_state=baseline == "moving_average",
        phi_loss=phi_loss if learned else None,
    )


def _learned_surrogate(B, dist, z, fz, b):
    """Σ_i (f - b_i) s_i per coordinate, b {name: [*param_shape]} from the learned network."""
    cost = B.stop_gradient(fz)  # [S, *b]
    signal = {}
    for name, score in dist.score(z).items():  # [S, *param_shape]
        score = B.stop_gradient(score)
        signal[name] = (_expand_to(B, cost, score.ndim) - b[name]) * score
    return linear_surrogate(B, fz, dist.params, signal, batch_ndim=len(dist.batch_shape))


def _optimal_surrogate(B, dist, z, fz):
    cost = B.stop_gradient(fz)  # [S, *b]
    signal = {}
    for name, score in dist.score(z).items():  # [S, *param_shape]
        score = B.stop_gradient(score)
        f_wide = _expand_to(B, cost, score.ndim)
        sq = score * score
        numerator = leave_one_out_mean(B, f_wide * sq)
        denominator = leave_one_out_mean(B, sq)
        safe = denominator > 0
        b_star = B.where(safe, numerator / B.where(safe, denominator, 1.0), 0.0)
        signal[name] = (f_wide - b_star) * score
    return linear_surrogate(B, fz, dist.params, signal, batch_ndim=len(dist.batch_shape))
