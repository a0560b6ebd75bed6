"""``dirichlet_toy``: f(z) = Σ_k (z_k - t_k)², z ~ Dirichlet(α) on the simplex of K categories.

The Dirichlet toy of implicit reparameterization [1]: z = G / Σ G with G_k = F⁻¹(u_k; α_k)
standard Gammas, each carrying its implicit gradient (`gradest.distributions.Dirichlet`).
θ = log α (``log_concentration``, K entries). Closed form, with α₀ = Σ α_k and m = α/α₀:
E f = Σ_k Var z_k + (m_k - t_k)² = Σ_k m_k (1 - m_k) / (α₀ + 1) + (m_k - t_k)²,
differentiated by the backend for the exact gradient.

Options: ``concentration`` α > 0 (K >= 2 numbers), ``target`` t (K numbers, or one number
repeated). Defaults α = (0.5, 1, 2, 4), t = (0.4, 0.3, 0.2, 0.1): a concentration below 1
beside larger ones, and a target against the mean's order (m = (1, 2, 4, 8)/15).

[1] Figurnov, Mohamed & Mnih, Implicit Reparameterization Gradients, NeurIPS 2018.
"""
from __future__ import annotations

import numpy as np

from gradest.distributions import Dirichlet
from gradest.registry import register_task
from gradest.task import FULL_SIZES, QUICK_SIZES, BenchmarkSizes, Problem, Task, squared_distance
from gradest.validation import positive_entries, vector

NAME = "dirichlet_toy"


@register_task(NAME)
class DirichletToy(Task):
    """Σ(z - t)² under a Dirichlet (closed-form truth; implicit reparameterization)."""

    distribution_kind = "dirichlet"
    # R 2,000: the inverse CDF (Newton steps on the incomplete gamma) makes an estimate some 30x a
    # Gaussian one; 2,000 replicates still give the variance within a few percent
    benchmark_sizes = BenchmarkSizes(num_replicates=2_000, train_steps=200)
    sweep_sizes = {"quick": QUICK_SIZES._replace(learning_rate=0.05), "full": FULL_SIZES._replace(learning_rate=0.05)}
    default_learning_rate = 0.05

    def __init__(self, concentration=(0.5, 1.0, 2.0, 4.0), target=(0.4, 0.3, 0.2, 0.1)):
        concentration = vector("concentration", np.atleast_1d(concentration), owner=NAME)
        k = concentration.shape[0]
        if k < 2:
            raise ValueError(f"option 'concentration' of {NAME} must have at least 2 entries (one per category "
                             f"of the simplex), got {k}")
        positive_entries("concentration", concentration, owner=NAME, meaning="a Dirichlet's α")
        target = vector("target", target, length=k, owner=NAME)
        self.concentration0, self.target = concentration, target
        self.name = NAME
        self.param_layout = [("log_concentration", (k,))]
        self.options = {"concentration": concentration.tolist(), "target": target.tolist()}

    def init_params(self):
        return np.log(self.concentration0)

    def problem(self, backend, params, noise=None, batch=None):
        return Problem(Dirichlet(backend, params), squared_distance(backend, self.target), 0.0)

    def metrics(self, backend, params):
        alpha = np.exp(np.asarray(backend.to_numpy(params), dtype=np.float64))
        return {"distance_to_target": float(np.linalg.norm(alpha / alpha.sum() - self.target)),
                "total_concentration": float(alpha.sum())}

    metric_descriptions = {"distance_to_target": "‖E z - t‖ at θ (closed form)",
                           "total_concentration": "α₀ = Σ α_k at θ"}
