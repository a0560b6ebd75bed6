"""``disarm``: DisARM [1], ARM with the augmentation variable integrated out.

With the antithetic pair of ARM [2] from one uniform u per variable (the shared noise),
b = 1[u < σ(α)] and b̃ = 1[1 - u < σ(α)]:

    ĝ_i = ½ (f(b) - f(b̃)) (-1)^{b̃_i} 1[b_i ≠ b̃_i] σ(|α_i|)
        = ½ (f(b) - f(b̃)) (b_i - b̃_i) σ(|α_i|)

is the conditional expectation of the (symmetrized) ARM estimate given (b, b̃) [1, eq. 5],
so it is unbiased and its variance is never above ARM's (Rao-Blackwellization). Coordinates
where the pair agrees contribute nothing. At α = 0 with one variable it is exact (ĝ = ∇L).

``num_samples`` S is the number of antithetic pairs (2S evaluations of f, declared as
``evaluations``); the per-sample
value is (f(b) + f(b̃)) / 2. Batch and event axes as for `arm`. Shapes: noise["sample"]
[S, *value]; per-sample surrogate [S, *b].

[1] Dong, Mnih & Tucker, DisARM: An Antithetic Gradient Estimator for Binary Latent
    Variables, NeurIPS 2020.
[2] Yin & Zhou, ARM: Augment-REINFORCE-Merge Gradient for Stochastic Binary Networks,
    ICLR 2019.
"""
from __future__ import annotations

from gradest.estimator import GradientEstimator, linear_surrogate, no_state
from gradest.estimators.arm import antithetic_pair, expand_to, pair_evaluations
from gradest.registry import register_estimator


@register_estimator("disarm", core=True)
def disarm() -> GradientEstimator:
    """DisARM: ARM Rao-Blackwellized over the augmentation (Bernoulli; unbiased, <= ARM's variance)."""

    def surrogate(f, dist, noise, state):
        B = dist.backend
        u = noise["sample"]  # [S, *value]
        b, b_anti = antithetic_pair(dist, u)  # [S, *value] each
        f_b, f_anti = f(b), f(b_anti)  # [S, *b] each
        diff = expand_to(B, B.stop_gradient(f_b - f_anti), u.ndim)  # [S, *b, 1...]
        weight = B.sigmoid(B.abs(B.stop_gradient(dist.logits)))  # [*value]
        signal = 0.5 * diff * (b - b_anti) * weight  # [S, *value]
        value = 0.5 * (f_b + f_anti)  # [S, *b]
        return linear_surrogate(B, value, dist.params, {"logits": signal},
                                batch_ndim=len(dist.batch_shape)), state

    return GradientEstimator(init=no_state, surrogate=surrogate, supports=frozenset({"bernoulli"}),
                             unbiased=True, name="disarm", options={}, evaluations=pair_evaluations)
