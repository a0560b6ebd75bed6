"""``indecater``: IndeCateR, the Rao-Blackwellized per-variable estimator for independent
categorical variables (the CatLog-derivative trick) [1].

For independent categorical variables X_1..X_D with probabilities p_d = softmax(θ_d),

    ∇ E[f(X)] = Σ_d E_{X_{-d}} [ Σ_k ∇p_{d,k} f(X_{-d}, X_d = k) ] + E[∇_θ f(X)],

i.e. each variable's own expectation is summed exactly over its K values while the other
variables keep their sampled values. With S samples x^(1..S) (the shared ``"sample"`` noise;
the same samples serve every variable, as in [1]) the estimate is unbiased:

    ĝ(θ_{d,j}) = (1/S) Σ_s p_{d,j} ( f(x^(s)_{d←j}) - Σ_k p_{d,k} f(x^(s)_{d←k}) ),

the softmax Jacobian applied to the vector of K substituted costs. Given the samples the
estimate is deterministic, so E[ĝ] can be checked exactly by enumerating the samples.
Variables are all non-class axes of the logits: the event axes (the L latents of one data
point) and the batch axes; a variable is substituted in every batch element at once (batch
elements are independent items), so f is evaluated at S · K · prod(event variables) points,
plus the S samples themselves: S (1 + K D) evaluations per estimate (``evaluations``, D the
event variables; K = 2 for Bernoulli variables).
Bernoulli variables are the K = 2 case: ĝ = p(1 - p)(f(x_{d←1}) - f(x_{d←0})).

The surrogate's value is f at the samples; its gradient adds ∇_θ f(x) (for tasks whose f
depends on θ, e.g. a decoder) to the signal above.

Shapes: logits [*b, *ev, K]; samples [S, *b, *ev, K]; substituted costs [S, *b, *ev, K].

[1] De Smet, Sansone & Zuidberg Dos Martires, Differentiable Sampling of Categorical
    Distributions Using the CatLog-Derivative Trick, NeurIPS 2023.
"""
from __future__ import annotations

import numpy as np

from gradest.estimator import GradientEstimator, linear_surrogate, needs_distribution, no_state
from gradest.estimators._conditional_gumbel import substitute_each
from gradest.registry import register_estimator


def indecater_evaluations(num_samples: int, dist=None) -> int:
    """S (1 + K D): f at each sample, and at each sample with each of its D event variables
    set to each of its K values (batch elements are substituted at once)."""
    dist = needs_distribution("indecater", dist)
    if dist.kind == "categorical":
        classes, variables = dist.num_classes, int(np.prod(dist.event_shape[:-1]))
    else:
        classes, variables = 2, int(np.prod(dist.event_shape))
    return num_samples * (1 + classes * variables)


@register_estimator("indecater")
def indecater() -> GradientEstimator:
    """IndeCateR: per-variable exact sums over K values, others sampled (unbiased; S·K·D f calls)."""

    def surrogate(f, dist, noise, state):
        B = dist.backend
        z = dist.sample(noise["sample"])  # [S, *value]
        batch_ndim = len(dist.batch_shape)
        if dist.kind == "categorical":
            K = dist.num_classes
            var_shape = dist.event_shape[:-1]
            lead = batch_ndim + len(var_shape)
            classes = np.eye(K).reshape((1, K) + (1,) * lead + (K,))
            costs = substitute_each(B, f, z, B.asarray(classes), batch_ndim, var_shape, 1)  # [S, K, *b, *ev]
            costs = B.moveaxis(costs, 1, -1)  # [S, *b, *ev, K]
            p = B.stop_gradient(dist.probs())  # [*b, *ev, K]
            signal = p * (costs - B.sum(p * costs, axis=-1, keepdims=True))  # [S, *b, *ev, K]
        elif dist.kind == "bernoulli":
            lead = batch_ndim + len(dist.event_shape)
            values = np.array([0.0, 1.0]).reshape((1, 2) + (1,) * lead)
            costs = substitute_each(B, f, z, B.asarray(values), batch_ndim, dist.event_shape, 0)
            p = B.stop_gradient(dist.probs())  # [*b, *ev]
            signal = p * (1.0 - p) * (costs[:, 1] - costs[:, 0])  # [S, *b, *ev]
        else:
            raise ValueError(f"indecater supports categorical and bernoulli distributions, got {dist.kind}")
        return linear_surrogate(B, f(z), dist.params, {"logits": signal}, batch_ndim), state  # [S, *b]

    return GradientEstimator(
        init=no_state, surrogate=surrogate, supports=frozenset({"categorical", "bernoulli"}),
        unbiased=True, name="indecater", options={}, evaluations=indecater_evaluations)
