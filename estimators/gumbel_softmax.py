"""``gumbel_softmax``: the Gumbel-softmax / Concrete relaxation [1, 2], and its
straight-through variant (``hard=True``).

Categorical: the exact sample is onehot(argmax(logits + G)) with G ~ Gumbel (the noise every
estimator shares); its relaxation is y = softmax((logits + G) / τ) and the estimate is
∇_θ f(y). Bernoulli: the binary Concrete, y = sigmoid((logits + L) / τ), L logistic.
With ``hard=True`` the forward pass uses the exact sample and the backward pass the gradient
of y (straight-through Gumbel-softmax [1]).

Biased for every τ > 0: the bias shrinks as τ -> 0 while the variance grows (the trade-off
that the temperature sweep of the report shows). Requires f to accept relaxed samples (points
of the simplex / of [0, 1]).

[1] Jang, Gu & Poole, Categorical Reparameterization with Gumbel-Softmax, ICLR 2017.
[2] Maddison, Mnih & Teh, The Concrete Distribution, ICLR 2017.
"""
from __future__ import annotations

from gradest.estimator import GradientEstimator, no_state
from gradest.registry import register_estimator
from gradest.estimators import relaxations as R


def relaxed_sample(dist, noise, temperature: float, hard: bool):
    """The relaxed sample of ``dist`` from its shared noise ([S, *value]); straight-through
    (exact sample forward) when ``hard``."""
    B = dist.backend
    if dist.kind == "categorical":
        soft = R.gumbel_softmax(B, dist.logits, noise, temperature)  # [S, *value]
        if not hard:
            return soft
        return R.straight_through(B, R.hard_argmax(B, soft), soft)
    soft = R.binary_concrete(B, dist.logits, noise, temperature)  # [S, *value]
    if not hard:
        return soft
    return R.straight_through(B, dist.sample(noise), soft)


@register_estimator("gumbel_softmax")
def gumbel_softmax(temperature: float = 1.0, hard: bool = False) -> GradientEstimator:
    """Gumbel-softmax / Concrete relaxation; hard=True is straight-through Gumbel-softmax."""
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if not isinstance(hard, bool):
        raise ValueError(f"hard must be True or False, got {hard!r}")

    def surrogate(f, dist, noise, state):
        return f(relaxed_sample(dist, noise["sample"], temperature, hard)), state  # [S, *b]

    return GradientEstimator(
        init=no_state, surrogate=surrogate, supports=frozenset({"categorical", "bernoulli"}),
        unbiased=False, name="gumbel_softmax",
        options={"temperature": float(temperature), "hard": hard})
