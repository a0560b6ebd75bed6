"""``pathwise``: the reparameterization trick [1, 2].

For a distribution with ``has_rsample`` (the normal: z = μ + σ ε, ε ~ N(0, 1)), the estimate
is ∇_θ f(g_θ(ε)) with ε the harness's noise: unbiased, and usually of far lower variance than
the score function. Requires f to be differentiable in z.

[1] Kingma & Welling, Auto-Encoding Variational Bayes, ICLR 2014.
[2] Rezende, Mohamed & Wierstra, Stochastic Backpropagation and Approximate Inference in Deep
    Generative Models, ICML 2014.
"""
from __future__ import annotations

from gradest.estimator import GradientEstimator, no_state
from gradest.registry import register_estimator


@register_estimator("pathwise", core=True)
def pathwise() -> GradientEstimator:
    """Reparameterization trick z = μ + σε (normal distributions)."""

    def surrogate(f, dist, noise, state):
        z = dist.rsample(noise["sample"])  # [S, *value]
        return f(z), state  # [S, *b]

    return GradientEstimator(init=no_state, surrogate=surrogate, supports=frozenset({"normal"}),
                             unbiased=True, name="pathwise", options={}, handles_point_mass=True)
