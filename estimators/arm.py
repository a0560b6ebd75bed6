"""``arm``: the Augment-REINFORCE-Merge estimator [1] for Bernoulli variables.

With one uniform u per variable (the distribution's own noise, so b is the sample every
estimator shares) and its antithetic partner:

    b = 1[u < σ(α)],   b̃ = 1[1 - u < σ(α)] (= 1[u > σ(-α)]),
    ĝ_i = (f(b̃) - f(b)) (u_i - 1/2)

is an unbiased estimate of ∂ E[f(b)] / ∂α_i [1, Thm. 1]. f is evaluated on the whole vectors
b and b̃; the estimate for coordinate i uses that coordinate's u_i (so, for f with event axes,
the estimator is per coordinate with one shared pair of evaluations). With batch axes, f(b)
[S, *b] is the cost of each batch element, paired with the logits of that element.

``num_samples`` S is the number of antithetic pairs: f is evaluated 2S times (declared
``evaluations``: `pair_evaluations`). The
per-sample surrogate's value is (f(b) + f(b̃)) / 2 (an unbiased estimate of the loss, whose
gradient also carries ∇f where f depends on θ directly); its gradient is ĝ pulled back to θ
through the logits (`gradest.estimator.linear_surrogate`). Shapes: noise["sample"] [S, *value];
per-sample surrogate [S, *b].

[1] Yin & Zhou, ARM: Augment-REINFORCE-Merge Gradient for Stochastic Binary Networks,
    ICLR 2019.
"""
from __future__ import annotations

from gradest.estimator import GradientEstimator, linear_surrogate, no_state
from gradest.registry import register_estimator


def expand_to(B, x, ndim: int):
    """Append singleton axes to ``x`` until it has ``ndim`` axes ([S, *b] -> [S, *b, 1, ...])."""
    while x.ndim < ndim:
        x = B.expand_dims(x, -1)
    return x


def pair_evaluations(num_samples: int, dist=None) -> int:
    """2S: f at both members of each of the S antithetic pairs."""
    return 2 * num_samples


def antithetic_pair(dist, u):
    """(b, b̃): the sample 1[u < σ(α)] and its antithetic 1[1 - u < σ(α)], [S, *value]."""
    return dist.sample(u), dist.sample(1.0 - u)


@register_estimator("arm")
def arm() -> GradientEstimator:
    """ARM: antithetic Augment-REINFORCE-Merge for Bernoulli variables (unbiased)."""

    def surrogate(f, dist, noise, state):
        B = dist.backend
        u = noise["sample"]  # [S, *value]
        b, b_anti = antithetic_pair(dist, u)  # [S, *value] each
        f_b, f_anti = f(b), f(b_anti)  # [S, *b] each
        diff = expand_to(B, B.stop_gradient(f_anti - f_b), u.ndim)  # [S, *b, 1...]
        signal = diff * (u - 0.5)  # [S, *value]
        value = 0.5 * (f_b + f_anti)  # [S, *b]
        return linear_surrogate(B, value, dist.params, {"logits": signal},
                                batch_ndim=len(dist.batch_shape)), state

    return GradientEstimator(init=no_state, surrogate=surrogate, supports=frozenset({"bernoulli"}),
                             unbiased=True, name="arm", options={}, evaluations=pair_evaluations)
