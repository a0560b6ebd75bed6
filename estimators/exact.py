"""``exact``: the exact gradient, by enumerating a small discrete support or by f's closed form.

Not an estimator in the statistical sense: every replicate returns ∇L(θ) itself (zero
variance). It is the ground truth that the others are measured against and the reference
optimizer in training. Supported where the task offers truth: a discrete distribution whose
event has at most ``max_support`` values, or an f with a closed-form ``expectation``.

f-evaluations (``evaluations``), whatever S: the support size N where the support is
enumerated (f at every value once), and 1 where f's closed form is used (one evaluation of
E[f], counted as one evaluation of f).
"""
from __future__ import annotations

from gradest.distributions import MAX_SUPPORT
from gradest.estimator import GradientEstimator, needs_distribution, no_state, sample_noise_spec
from gradest.registry import register_estimator
from gradest.task import expected_cost


def exact_evaluations(num_samples: int, dist=None) -> int:
    """N, the support size, where the support is enumerated; 1 for f's closed form."""
    dist = needs_distribution("exact", dist)
    return int(dist.num_support()) if dist.is_discrete and dist.has_enumerate_support else 1


@register_estimator("exact", core=True)
def exact(max_support: int = MAX_SUPPORT) -> GradientEstimator:
    """Exact gradient by enumeration or closed form (zero variance; needs ground truth)."""

    def surrogate(f, dist, noise, state):
        B = dist.backend
        expected = expected_cost(B, f, dist, max_support=max_support)  # [*b]
        if expected is None:
            raise ValueError(
                f"the exact estimator needs an enumerable discrete distribution or a closed-form "
                f"expectation of f; this {dist.kind} task offers neither")
        S = noise["sample"].shape[0]
        return B.broadcast_to(expected, (S, *expected.shape)), state  # [S, *b]

    return GradientEstimator(
        init=no_state, surrogate=surrogate, noise_spec=sample_noise_spec,
        supports=frozenset({"categorical", "bernoulli", "normal", "gamma", "beta", "dirichlet"}), unbiased=True,
        name="exact", options={}, requires_exact=True, handles_point_mass=True, evaluations=exact_evaluations)
