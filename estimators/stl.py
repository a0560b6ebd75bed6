"""``stl``: Sticking the Landing, the path derivative of the ELBO [1].

For a sampled ELBO, f(z) = -log w(z) = log q_θ(z|x) - log p_θ(x, z) with z = g_θ(ε)
reparameterized (the normal: z = μ + σ ε), the pathwise gradient has two parts [1, eq. 5]:

    ∇_θ f(g_θ(ε)) = [∂f/∂z ∂z/∂θ + ∇_θ (-log p_θ(x, z))]  +  ∇_θ log q_θ(z|x)|_{z fixed},
                     the path derivative                      the score term

and the score term has expectation zero (E_q[∇_θ log q_θ(z)] = 0), so dropping it leaves an
unbiased estimate of ∇E[f] [1, eq. 8]. Its virtue: where q is the exact posterior,
log q(z|x) - log p(x, z) = -log p(x) does not depend on z, so the path derivative, and with it
the estimate of the gradient with respect to q's parameters, is exactly zero: the variance
vanishes as q approaches the posterior ("sticks the landing"); the score term, which
pathwise keeps, does not vanish there.

It evaluates f with q's parameters held fixed inside log q, which the task gives as
``f.path_only`` (the capability ``"path_only"``, `gradest.task.Objective`): the surrogate is
``f.path_only(dist.rsample(ε))`` [S, *b], equal in value to f(z). ``unbiased`` is True (for
∇E[f], the harness's exact gradient). Needs a reparameterizable distribution (``normal``).
f-evaluations: S (one ``path_only`` per sample).

Shapes: ε, z [S, *value]; f.path_only(z) [S, *b].

[1] Roeder, Wu & Duvenaud, Sticking the Landing: Simple, Lower-Variance Gradient Estimators for
    Variational Inference, NeurIPS 2017.
"""
from __future__ import annotations

from gradest.estimator import GradientEstimator, no_state
from gradest.registry import register_estimator


def path_only_cost(f, name: str):
    """``f.path_only``, or a ValueError naming what the task must offer."""
    fn = getattr(f, "path_only", None)
    if fn is None:
        raise ValueError(f"{name} evaluates f with the distribution's parameters held fixed inside log q, which the "
                         f"task gives as Objective.path_only (capability 'path_only'); this task's f has none: use a "
                         f"task that offers it, e.g. gaussian_vae with kl='sampled'")
    return fn


@register_estimator("stl")
def stl() -> GradientEstimator:
    """Sticking the Landing: the pathwise ELBO gradient without the score term of log q."""

    def surrogate(f, dist, noise, state):
        path_only = path_only_cost(f, "stl")
        z = dist.rsample(noise["sample"])  # [S, *value], carries the path to θ
        return path_only(z), state  # [S, *b]

    return GradientEstimator(init=no_state, surrogate=surrogate, supports=frozenset({"normal"}), unbiased=True,
                             name="stl", options={}, requires=frozenset({"path_only"}))
