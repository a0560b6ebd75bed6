"""``reinmax``: ReinMax, a second-order straight-through estimator [1].

Straight-through (ST) [2] is the forward Euler step of f(I_k) - f(D) ≈ ∇f(D)·(I_k - D);
ReinMax replaces it by Heun's method, ½(∇f(D) + ∇f(I_k))·(I_k - D), without evaluating ∇f
anywhere but at the sample. Algorithm 2 of [1], with π0 = softmax(θ) and D ~ π0 one-hot:

    π1 = (D + softmax(θ/τ)) / 2          (value), differentiated as softmax at π1:
    π1 = softmax(stop_gradient(log π1 - θ) + θ)
    π2 = 2 π1 - π0 / 2
    forward D, backward through π2:  f(D + π2 - stop_gradient(π2))

so the estimate is (2 J(π1) - J(π0)/2)ᵀ ∇f(D), J(p) = diag(p) - p pᵀ the softmax Jacobian.
D comes from the shared ``"sample"`` noise (Gumbel-max: the same D as every estimator).

Theory (checked by the tests): with τ = 1 the expectation over D equals the exact gradient
whenever f is quadratic in each categorical variable (Heun's rule is exact for quadratics [1,
§4]); ST is biased there. For other f ReinMax is biased, with a second-order error. [1]
recommends τ >= 1 (its reference code refuses τ < 1); every τ > 0 is accepted here so that
temperature sweeps run.

Bernoulli: the two-class case with logits (0, θ), i.e. π0 = sigmoid(θ), π1 = (b +
sigmoid(θ/τ))/2 differentiated as a sigmoid at π1.

Shapes: logits [*value]; D, π1, π2 [S, *value]; f(·) [S, *b].

[1] Liu, Dong, Liu, Yu & Gao, Bridging Discrete and Backpropagation: Straight-Through and
    Beyond, NeurIPS 2023.
[2] Bengio, Léonard & Courville, Estimating or Propagating Gradients Through Stochastic
    Neurons for Conditional Computation, 2013.
"""
from __future__ import annotations

from gradest.estimator import GradientEstimator, no_state
from gradest.estimators.gumbel_rao import check_temperature
from gradest.registry import register_estimator


def reinmax_relaxation(B, dist, hard, temperature: float):
    """D + π2 - stop_gradient(π2): the value D [S, *value], ReinMax's gradient."""
    logits = dist.logits  # [*value]
    if dist.kind == "categorical":
        pi0 = B.softmax(logits, axis=-1)  # [*value]
        pi1 = 0.5 * (hard + B.stop_gradient(B.softmax(logits / temperature, axis=-1)))  # [S, *value]
        pi1 = B.softmax(B.stop_gradient(B.log(pi1) - logits) + logits, axis=-1)
    else:
        pi0 = B.sigmoid(logits)
        pi1 = 0.5 * (hard + B.stop_gradient(B.sigmoid(logits / temperature)))  # [S, *value]
        logit_pi1 = B.log(pi1) - B.log1p(-pi1)
        pi1 = B.sigmoid(B.stop_gradient(logit_pi1 - logits) + logits)
    pi2 = 2.0 * pi1 - 0.5 * pi0  # [S, *value]
    return hard + pi2 - B.stop_gradient(pi2)


@register_estimator("reinmax")
def reinmax(temperature: float = 1.0) -> GradientEstimator:
    """ReinMax: second-order (Heun) straight-through for categorical / Bernoulli samples."""
    temperature = check_temperature(temperature, "reinmax")

    def surrogate(f, dist, noise, state):
        B = dist.backend
        hard = dist.sample(noise["sample"])  # [S, *value]
        return f(reinmax_relaxation(B, dist, hard, temperature)), state  # [S, *b]

    return GradientEstimator(
        init=no_state, surrogate=surrogate, supports=frozenset({"categorical", "bernoulli"}),
        unbiased=False, name="reinmax", options={"temperature": temperature})
