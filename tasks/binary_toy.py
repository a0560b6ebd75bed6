"""``binary_toy``: f(b) = Σ_i (b_i - t_i)², b_i ~ Bernoulli(sigmoid(θ_i)) independently.

The toy of REBAR [1] and RELAX [2] (t = 0.45 or 0.499, one coordinate): the two values of f
differ by 1 - 2t, so the gradient signal is tiny against the noise as t -> 1/2. Exact loss by
enumeration: L(θ) = Σ_i p_i (1 - t_i)² + (1 - p_i) t_i², ∂L/∂θ_i = p_i (1 - p_i)(1 - 2 t_i).

[1] Tucker et al., REBAR: Low-variance, unbiased gradient estimates for discrete latent
    variable models, NeurIPS 2017.
[2] Grathwohl et al., Backpropagation through the Void, ICLR 2018.
"""
from __future__ import annotations

import numpy as np

from gradest.distributions import Bernoulli
from gradest.registry import register_task
from gradest.task import FULL_SIZES, QUICK_SIZES, BenchmarkSizes, Objective, Problem, Task
from gradest.validation import vector


@register_task("binary_toy")
class BinaryToy(Task):
    """Σ(b - t)² with independent Bernoulli b (the REBAR/RELAX toy)."""

    distribution_kind = "bernoulli"
    benchmark_sizes = BenchmarkSizes(num_replicates=10_000, train_steps=200)
    sweep_sizes = {"quick": QUICK_SIZES._replace(learning_rate=0.1), "full": FULL_SIZES._replace(learning_rate=0.1)}

    def __init__(self, target=0.45, logits=None):
        if logits is None:
            target = np.atleast_1d(vector("target", np.atleast_1d(target), owner="binary_toy"))
            logits = np.zeros_like(target)
        else:
            logits = vector("logits", logits, owner="binary_toy")
            target = vector("target", target, length=logits.shape[0], owner="binary_toy")
        self.target, self.logits0 = target, logits
        self.name = "binary_toy"
        self.param_layout = [("logits", (logits.shape[0],))]
        self.options = {"target": target.tolist(), "logits": logits.tolist()}

    def init_params(self):
        return self.logits0.copy()

    def problem(self, backend, params, noise=None, batch=None):
        B = backend
        target = B.asarray(self.target)  # [D]

        def f(b):  # [S, D] -> [S]
            return B.sum((b - target) ** 2, axis=-1)

        return Problem(Bernoulli(B, params, event_ndims=1), Objective(f), 0.0)

    def metrics(self, backend, params):
        p = 1.0 / (1.0 + np.exp(-backend.to_numpy(params)))
        return {"mean_prob": float(p.mean())}
