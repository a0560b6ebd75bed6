"""``gaussian_quadratic``: f(z) = Σ_i (z_i - t_i)², z ~ N(mean, exp(log_std)²).

θ = [mean..., log_std...]. Closed form: L = Σ (μ_i - t_i)² + σ_i², so ∂L/∂μ_i = 2(μ_i - t_i)
and ∂L/∂log σ_i = 2σ_i². The pathwise estimate of ∂L/∂μ_i, 2(μ_i + σ_i ε - t_i) averaged over
S samples, has variance 4σ_i²/S: the closed form the variance tests check.
"""
from __future__ import annotations

import numpy as np

from gradest.distributions import Normal
from gradest.registry import register_task
from gradest.task import FULL_SIZES, QUICK_SIZES, BenchmarkSizes, Objective, Problem, Task
from gradest.validation import vector


@register_task("gaussian_quadratic")
class GaussianQuadratic(Task):
    """Σ(z - t)² under a diagonal Gaussian (closed-form truth)."""

    distribution_kind = "normal"
    benchmark_sizes = BenchmarkSizes(num_replicates=10_000, train_steps=200)
    sweep_sizes = {"quick": QUICK_SIZES._replace(learning_rate=0.05), "full": FULL_SIZES._replace(learning_rate=0.05)}

    def __init__(self, mean=(0.0, 0.0, 0.0), log_std=None, target=None):
        mean = vector("mean", mean, owner="gaussian_quadratic")
        d = mean.shape[0]
        log_std = np.zeros(d) if log_std is None else vector("log_std", log_std, length=d, owner="gaussian_quadratic")
        target = (np.linspace(-1.0, 1.0, d) if d > 1 else np.ones(1)) if target is None else vector(
            "target", target, length=d, owner="gaussian_quadratic")
        self.mean0, self.log_std0, self.target = mean, log_std, target
        self.name = "gaussian_quadratic"
        self.param_layout = [("mean", (d,)), ("log_std", (d,))]
        self.options = {"mean": mean.tolist(), "log_std": log_std.tolist(), "target": target.tolist()}

    def init_params(self):
        return np.concatenate([self.mean0, self.log_std0])

    def problem(self, backend, params, noise=None, batch=None):
        B = backend
        d = self.mean0.shape[0]
        target = B.asarray(self.target)  # [D]
        dist = Normal(B, params[:d], params[d:], event_ndims=1)

        def f(z):  # [S, D] -> [S]
            return B.sum((z - target) ** 2, axis=-1)

        def expectation(q):  # [] : Σ (μ - t)² + σ²
            return B.sum((q.mean - target) ** 2 + B.exp(2.0 * q.log_std), axis=-1)

        return Problem(dist, Objective(f, expectation), 0.0)

    def metrics(self, backend, params):
        d = self.mean0.shape[0]
        p = backend.to_numpy(params)
        return {"distance_to_target": float(np.linalg.norm(p[:d] - self.target)),
                "mean_std": float(np.exp(p[d:]).mean())}
