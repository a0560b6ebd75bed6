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
  log_std), each b_i estimated leave-one-out from the other S-1 samples so the estimate stays
  unbiased (needs S >= 2).

Shapes: z [S, *value], f(z) and log p(z) [S, *b]; scores [S, *param_shape].

[1] Williams, Simple Statistical Gradient-Following Algorithms for Connectionist
    Reinforcement Learning, Machine Learning 1992.
[2] Mnih & Rezende, Variational Inference for Monte Carlo Objectives (VIMCO), ICML 2016.
[3] Kool, van Hoof & Welling, Buy 4 REINFORCE Samples, Get a Baseline for Free!, 2019.
[4] Greensmith, Bartlett & Baxter, Variance Reduction Techniques for Gradient Estimates in
    Reinforcement Learning, JMLR 2004; Weaver & Tao 2001.
"""
from __future__ import annotations

from gradest.estimator import GradientEstimator, linear_surrogate, magic_box, no_state
from gradest.registry import register_estimator

BASELINES = ("none", "moving_average", "loo", "optimal")


def leave_one_out_mean(B, x):
    """[S, ...] -> [S, ...]: the mean of the other S-1 entries along axis 0."""
    S = x.shape[0]
    return (B.sum(x, axis=0, keepdims=True) - x) / (S - 1)


def _expand_to(B, x, ndim: int):
    """Append singleton axes to ``x`` until it has ``ndim`` axes."""
    while x.ndim < ndim:
        x = B.expand_dims(x, -1)
    return x


@register_estimator("reinforce")
def reinforce(baseline: str = "none", decay: float = 0.9) -> GradientEstimator:
    """Score-function (REINFORCE) estimator; baseline none | moving_average | loo | optimal."""
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r} for reinforce; valid baselines: {', '.join(BASELINES)}")
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay!r}")

    def init(dist):
        if baseline != "moving_average":
            return {}
        B = dist.backend
        return {"average": B.zeros(()), "steps": B.zeros(())}

    def surrogate(f, dist, noise, state):
        B = dist.backend
        z = dist.sample(noise["sample"])  # [S, *value]
        fz = f(z)  # [S, *b]
        S = fz.shape[0]
        if baseline == "optimal":
            return _optimal_surrogate(B, dist, z, fz), state
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

    return GradientEstimator(
        init=init if baseline == "moving_average" else no_state,
        surrogate=surrogate,
        supports=frozenset({"categorical", "bernoulli", "normal"}),
        unbiased=True,
        name="reinforce",
        options={"baseline": baseline},
        min_samples=2 if baseline in ("loo", "optimal") else 1,
        update_state=baseline == "moving_average",
    )


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
