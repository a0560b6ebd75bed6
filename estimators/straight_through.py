"""``straight_through``: the straight-through estimator [1].

Forward: the exact sample z (one-hot, or 0./1.). Backward: the gradient of the mean of the
sample, softmax(logits / τ) (categorical) or sigmoid(logits / τ) (Bernoulli), as if
z = E[z]. Biased, low variance; needs f to be differentiable on the simplex / [0, 1].

[1] Bengio, Léonard & Courville, Estimating or Propagating Gradients Through Stochastic
    Neurons for Conditional Computation, 2013.
"""
from __future__ import annotations

from gradest.estimator import GradientEstimator, no_state
from gradest import relaxations as R
from gradest.registry import register_estimator


@register_estimator("straight_through", core=True)
def straight_through(temperature: float = 1.0) -> GradientEstimator:
    """Hard sample forward, softmax/sigmoid(logits/τ) gradient backward."""
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")

    def surrogate(f, dist, noise, state):
        B = dist.backend
        z = dist.sample(noise["sample"])  # [S, *value]
        if dist.kind == "categorical":
            soft = R.softmax_argmax(B, dist.logits, temperature)
        else:
            soft = B.sigmoid(dist.logits / temperature)
        return f(R.straight_through(B, z, soft)), state  # [S, *b]

    return GradientEstimator(
        init=no_state, surrogate=surrogate, supports=frozenset({"categorical", "bernoulli"}),
        unbiased=False, name="straight_through", options={"temperature": float(temperature)})
