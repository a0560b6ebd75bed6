"""``gamma_toy``: f(z) = Σ_i (z_i - t_i)², z_i ~ Gamma(shape a_i, rate β_i) independently.

The toy of implicit reparameterization [1]: the Gamma's inverse CDF has no closed form, so the
pathwise gradient needs the implicit gradient dz/da = -(∂F/∂a)(z; a) / p(z; a) [1, eq. 6]
(`gradest.distributions.Gamma`; z = F⁻¹(u; a)/β from uniform noise u). θ = [log shape..., log rate...] (``log_shape``, ``log_rate``,
D entries each). Closed form: E f = Σ_i Var z_i + (E z_i - t_i)² = Σ_i a_i/β_i² + (a_i/β_i - t_i)²,
differentiated by the backend for the exact gradient: with m = a/β,
∂L/∂log a_i = a_i/β_i² + 2 m_i (m_i - t_i) and
∂L/∂log β_i = -2 a_i/β_i² - 2 m_i (m_i - t_i).

Options: ``shape`` a > 0, ``rate`` β > 0, ``target`` t (lists of D numbers, or one number
repeated; D is the longest). Defaults a = (0.5, 2, 5), β = (1, 2, 1), t = (2, 0.5, 4): a shape
below 1 (the density is unbounded at 0) beside moderate ones, and means off their targets in
both directions.

[1] Figurnov, Mohamed & Mnih, Implicit Reparameterization Gradients, NeurIPS 2018.
"""
from __future__ import annotations

import numpy as np

from gradest.distributions import Gamma
from gradest.registry import register_task
from gradest.task import FULL_SIZES, QUICK_SIZES, BenchmarkSizes, Problem, Task, squared_distance
from gradest.validation import positive_entries, vector

NAME = "gamma_toy"


def _vectors(options: dict, positive: tuple) -> dict:
    """{name: 1-D float array}, all of one length D (the longest; length-1 entries repeated),
    the ``positive`` ones checked > 0 (a ValueError naming the option and the fix)."""
    arrays = {name: np.atleast_1d(vector(name, np.atleast_1d(value), owner=NAME)) for name, value in options.items()}
    d = max(a.shape[0] for a in arrays.values())
    for name, a in arrays.items():
        if a.shape[0] not in (1, d):
            raise ValueError(f"option {name!r} of {NAME} has {a.shape[0]} entries, other options {d}; give one "
                             f"number per coordinate ({d}) or a single number for all")
        arrays[name] = np.full(d, a[0]) if a.shape[0] == 1 else a
    for name in positive:
        positive_entries(name, arrays[name], owner=NAME, meaning=f"a Gamma's {name}")
    return arrays


@register_task(NAME)
class GammaToy(Task):
    """Σ(z - t)² under independent Gammas (closed-form truth; implicit reparameterization)."""

    distribution_kind = "gamma"
    # R 2,000: the inverse CDF (Newton steps on the incomplete gamma) makes an estimate some 30x a
    # Gaussian one; 2,000 replicates still give the variance within a few percent
    benchmark_sizes = BenchmarkSizes(num_replicates=2_000, train_steps=200)
    sweep_sizes = {"quick": QUICK_SIZES._replace(learning_rate=0.05), "full": FULL_SIZES._replace(learning_rate=0.05)}
    default_learning_rate = 0.05

    def __init__(self, shape=(0.5, 2.0, 5.0), rate=(1.0, 2.0, 1.0), target=(2.0, 0.5, 4.0)):
        v = _vectors({"shape": shape, "rate": rate, "target": target}, positive=("shape", "rate"))
        self.shape0, self.rate0, self.target = v["shape"], v["rate"], v["target"]
        d = self.shape0.shape[0]
        self.name = NAME
        self.param_layout = [("log_shape", (d,)), ("log_rate", (d,))]
        self.options = {"shape": self.shape0.tolist(), "rate": self.rate0.tolist(), "target": self.target.tolist()}

    def init_params(self):
        return np.concatenate([np.log(self.shape0), np.log(self.rate0)])

    def problem(self, backend, params, noise=None, batch=None):
        B = backend
        d = self.shape0.shape[0]
        dist = Gamma(B, params[:d], params[d:], event_ndims=1)
        return Problem(dist, squared_distance(B, self.target), 0.0)

    def metrics(self, backend, params):
        d = self.shape0.shape[0]
        p = np.asarray(backend.to_numpy(params), dtype=np.float64)
        mean = np.exp(p[:d] - p[d:])
        return {"distance_to_target": float(np.linalg.norm(mean - self.target)),
                "mean_shape": float(np.exp(p[:d]).mean())}

    metric_descriptions = {"distance_to_target": "‖E z - t‖ at θ (closed form)",
                           "mean_shape": "the Gammas' mean shape a at θ"}
