"""``pathwise``: the reparameterization trick [1, 2].

For a distribution with ``has_rsample`` (the normal: z = μ + σ ε, ε ~ N(0, 1)), the estimate
is ∇_θ f(g_θ(ε)) with ε the harness's noise: unbiased, and usually of far lower variance than
the score function. Requires f to be differentiable in z. Gamma, Beta and Dirichlet are
reparameterized implicitly [4]: z = F⁻¹(u; α) from uniform noise, with dz/dα = -(∂F/∂α) / p(z; α)
(`gradest.distributions.Gamma`).

[1] Kingma & Welling, Auto-Encoding Variational Bayes, ICLR 2014.
[2] Rezende, Mohamed & Wierstra, Stochastic Backpropagation and Approximate Inference in Deep
    Generative Models, ICML 2014.
[4] Figurnov, Mohamed & Mnih, Implicit Reparameterization Gradients, NeurIPS 2018.
"""
from __future__ import annotations

from gradest.estimator import GradientEstimator, no_state
from gradest.registry import register_estimator


@register_estimator("pathwise", core=True)
def pathwise() -> GradientEstimator:
    """Reparameterization trick z = μ + σε (normal); implicit for gamma, beta and dirichlet."""

    def surrogate(f, dist, noise, state):
        z = dist.rsample(noise["sample"])  # [S, *value]
        return f(z), state  # [S, *b]

    return GradientEstimator(init=no_state, surrogate=surrogate,
                             supports=frozenset({"normal", "gamma", "beta", "dirichlet"}),
                             unbiased=True, name="pathwise", options={}, handles_point_mass=True)


@register_estimator("pathwise_iwae")
def pathwise_iwae() -> GradientEstimator:
    """The reparameterized gradient of the S-sample importance-weighted bound [3] (IWAE).

    For tasks whose f(z) = -log w(z) is a negative log importance weight (the capability
    ``"log_weight"``, e.g. ``gaussian_vae(objective="iwae")``) the loss is the k = S sample bound
    L̂ = -log (1/S) Σ_s w_s (`gradest.estimators.vimco.multi_sample_bound`, shared with
    ``vimco`` and ``dreg``), z_s = g_θ(ε_s); the estimate is ∇_θ L̂ = Σ_s w̃_s ∇_θ f(g_θ(ε_s)),
    w̃ = w / Σ w. Unbiased for ∇E[L̂] (the bound's gradient), which differs from ∇E[f] for S >= 2,
    so ``unbiased`` is False (as for vimco); S = 1 is ``pathwise``. Surrogate: L̂ for every s,
    [S, *b]. f-evaluations: S.

    [3] Burda, Grosse & Salakhutdinov, Importance Weighted Autoencoders, ICLR 2016.
    """
    from gradest.estimators.vimco import multi_sample_bound

    def surrogate(f, dist, noise, state):
        B = dist.backend
        fz = f(dist.rsample(noise["sample"]))  # [S, *b] = -log w
        bound = multi_sample_bound(B, fz)  # [*b]
        return B.broadcast_to(B.expand_dims(bound, 0), tuple(fz.shape)), state  # [S, *b]

    return GradientEstimator(init=no_state, surrogate=surrogate, supports=frozenset({"normal"}), unbiased=False,
                             name="pathwise_iwae", options={}, requires=frozenset({"log_weight"}))
