"""Distributions over a Backend: samples as transforms of explicit noise.

Every distribution here follows one contract (shapes with ``S`` samples):

* ``params``: dict of the natural parameters (``logits``; ``mean``/``log_std``), arrays that
  carry gradient to the task's θ. ``score(z)`` gives ∂ log p(z) / ∂ param analytically,
  ``[S, *param.shape]`` per parameter.
* ``noise_kind`` / ``noise_shape``: what noise one sample consumes (``[*noise_shape]`` of
  ``noise_kind`` drawn by `gradest.noise`); ``sample(noise [S, *noise_shape]) -> z [S, *value_shape]``
  is a deterministic transform of that noise, without gradient.
* ``rsample(noise)`` (only where ``has_rsample``) is the reparameterized sample [1, 2].
* ``log_prob(z) -> [S, *batch_shape]``: the log density summed over the ``event_ndims``
  rightmost variable axes (as ``torch.distributions.Independent``).
* Categorical values are one-hot vectors (last axis K), so relaxed samples (points of the
  simplex) can be fed to the same f; Bernoulli values are 0./1. floats.
* ``enumerate_support()`` (discrete only) lists every value of one event, broadcast over the
  batch: ``[N, *value_shape]``; refused when N exceeds ``max_support``.

* Gamma, Beta and Dirichlet (`Gamma`, `Beta`, `Dirichlet`) are reparameterized implicitly
  [4]: from uniform noise u, one per Gamma variable, g = F⁻¹(u; α) (the standard Gamma's
  inverse CDF, `Backend.standard_gamma_icdf`), and the gradient dg/dα = -(∂F/∂α)(g; α) /
  p(g; α) [4, eq. 6] is attached by the backend (no differentiation through the solver).
  Their parameters are on a log scale (``log_shape``, ``log_rate``; ``log_alpha``,
  ``log_beta``; ``log_concentration``): any real θ is valid, and ``score`` is with respect
  to those. ``moments()`` gives (mean, variance) per variable, for closed-form truths.

References:
  [1] Kingma & Welling, Auto-Encoding Variational Bayes, ICLR 2014.
  [2] Rezende, Mohamed & Wierstra, Stochastic Backpropagation, ICML 2014.
  [3] Gumbel (1954); Maddison, Tarlow & Minka, A* Sampling, NeurIPS 2014 (Gumbel-max trick).
  [4] Figurnov, Mohamed & Mnih, Implicit Reparameterization Gradients, NeurIPS 2018.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from gradest.backends.base import Backend

DISTRIBUTION_KINDS = ("categorical", "bernoulli", "normal", "gamma", "beta", "dirichlet")
MAX_SUPPORT = 1 << 16


def _prod(shape) -> int:
    return int(np.prod(shape)) if len(shape) else 1


class Distribution:
    kind: str = ""
    is_discrete: bool = False
    has_rsample: bool = False
    has_enumerate_support: bool = False
    noise_kind: str = "uniform"

    #: the relative accuracy of ``rsample``'s gradient where a backend approximates it (0: exact
    #: to rounding); the conformance kit's parity check allows it on gradients
    gradient_rtol: float = 0.0

    backend: Backend
    params: dict
    event_ndims: int

    @property
    def value_shape(self) -> tuple[int, ...]:
        """Shape of one sample (without the leading S axis)."""
        raise NotImplementedError

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The leading axes of `value_shape` before the ``event_ndims`` event axes (a distribution
        whose event has axes of its own, as a categorical's classes, overrides this)."""
        shape = self.value_shape
        return shape[: len(shape) - self.event_ndims]

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The ``event_ndims`` trailing axes of `value_shape`."""
        shape = self.value_shape
        return shape[len(shape) - self.event_ndims:]

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return self.value_shape

    def with_params(self, params: dict) -> "Distribution":
        """The same kind of distribution (same event axes) at other ``params``."""
        return type(self)(self.backend, **params, event_ndims=self.event_ndims)

    def _reduce_event(self, logp):
        """Sum per-variable log densities [S, *batch, *event] over the event axes."""
        if self.event_ndims == 0:
            return logp
        axes = tuple(range(logp.ndim - self.event_ndims, logp.ndim))
        return self.backend.sum(logp, axis=axes)

    def _check_noise(self, noise):
        shape = tuple(noise.shape)
        assert shape[1:] == self.noise_shape, (
            f"{self.kind} noise must be [S, *{self.noise_shape}], got {shape}")

    def num_support(self) -> int:
        raise NotImplementedError

    def _check_support_size(self, max_support):
        n = self.num_support()
        if n > max_support:
            raise ValueError(
                f"the {self.kind} event has {n} values, more than max_support={max_support} to "
                "enumerate; use a smaller latent space (fewer variables or classes) for exact "
                "gradients, or a sampling estimator")


class Categorical(Distribution):
    """Categorical over the last axis of ``logits`` [*batch, *event, K]; values are one-hot.

    Sampling is the Gumbel-max trick [3]: onehot(argmax(logits + G)), G ~ Gumbel(0, 1)."""

    kind = "categorical"
    is_discrete = True
    has_enumerate_support = True
    noise_kind = "gumbel"

    def __init__(self, backend: Backend, logits, event_ndims: int = 0):
        self.backend = backend
        self.params = {"logits": logits}
        self.event_ndims = event_ndims
        assert logits.ndim >= 1 + event_ndims, (
            f"logits of shape {tuple(logits.shape)} cannot have {event_ndims} event axes")

    @property
    def logits(self):
        return self.params["logits"]

    @property
    def num_classes(self) -> int:
        return int(self.logits.shape[-1])

    @property
    def value_shape(self):
        return tuple(self.logits.shape)

    @property
    def batch_shape(self):
        return tuple(self.logits.shape[: self.logits.ndim - 1 - self.event_ndims])

    @property
    def event_shape(self):
        return tuple(self.logits.shape[self.logits.ndim - 1 - self.event_ndims:])

    def probs(self):
        return self.backend.softmax(self.logits, axis=-1)

    def log_probs(self):
        return self.backend.log_softmax(self.logits, axis=-1)

    def sample(self, noise):
        self._check_noise(noise)
        B = self.backend
        index = B.argmax(B.stop_gradient(self.logits) + noise, axis=-1)  # [S, *batch, *event]
        return B.one_hot(index, self.num_classes)  # [S, *batch, *event, K]

    def log_prob(self, z):
        B = self.backend
        per_variable = B.sum(z * self.log_probs(), axis=-1)  # [S, *batch, *event]
        return self._reduce_event(per_variable)

    def score(self, z):
        return {"logits": z - self.probs()}

    def entropy(self):
        B = self.backend
        per_variable = -B.sum(self.probs() * self.log_probs(), axis=-1)
        return per_variable if self.event_ndims == 0 else B.sum(
            per_variable, axis=tuple(range(-self.event_ndims, 0)))

    def num_support(self):
        return self.num_classes ** _prod(self.event_shape[:-1])

    def enumerate_support(self, max_support: int = MAX_SUPPORT):
        self._check_support_size(max_support)
        B = self.backend
        n_vars = _prod(self.event_shape[:-1])
        K = self.num_classes
        index = np.array(list(itertools.product(range(K), repeat=n_vars)), dtype=np.int64)
        values = np.eye(K)[index]  # [N, n_vars, K]
        values = values.reshape((len(index),) + (1,) * len(self.batch_shape) + self.event_shape)
        return B.broadcast_to(B.asarray(values), (len(index),) + self.value_shape)


class Bernoulli(Distribution):
    """Bernoulli(sigmoid(logits)), elementwise; values are 0./1. floats.

    Sample: b = 1[u < sigmoid(logits)], u ~ U(0, 1), i.e. 1[logits + logistic noise > 0]."""

    kind = "bernoulli"
    is_discrete = True
    has_enumerate_support = True
    noise_kind = "uniform"

    def __init__(self, backend: Backend, logits, event_ndims: int = 0):
        self.backend = backend
        self.params = {"logits": logits}
        self.event_ndims = event_ndims
        assert logits.ndim >= event_ndims

    @property
    def logits(self):
        return self.params["logits"]

    @property
    def value_shape(self):
        return tuple(self.logits.shape)

    def probs(self):
        return self.backend.sigmoid(self.logits)

    def sample(self, noise):
        self._check_noise(noise)
        B = self.backend
        return B.astype(noise < B.sigmoid(B.stop_gradient(self.logits)), "float")

    def log_prob(self, z):
        B = self.backend
        per_variable = z * B.log_sigmoid(self.logits) + (1.0 - z) * B.log_sigmoid(-self.logits)
        return self._reduce_event(per_variable)

    def score(self, z):
        return {"logits": z - self.probs()}

    def entropy(self):
        B = self.backend
        p = self.probs()
        per_variable = -(p * B.log_sigmoid(self.logits) + (1.0 - p) * B.log_sigmoid(-self.logits))
        return per_variable if self.event_ndims == 0 else B.sum(
            per_variable, axis=tuple(range(-self.event_ndims, 0)))

    def num_support(self):
        return 2 ** _prod(self.event_shape)

    def enumerate_support(self, max_support: int = MAX_SUPPORT):
        self._check_support_size(max_support)
        B = self.backend
        n_vars = _prod(self.event_shape)
        values = np.array(list(itertools.product((0.0, 1.0), repeat=n_vars)))  # [N, n_vars]
        values = values.reshape((len(values),) + (1,) * len(self.batch_shape) + self.event_shape)
        return B.broadcast_to(B.asarray(values), (len(values),) + self.value_shape)


class Normal(Distribution):
    """Normal(mean, exp(log_std)^2), elementwise; z = mean + exp(log_std) * eps [1, 2]."""

    kind = "normal"
    has_rsample = True
    noise_kind = "normal"

    def __init__(self, backend: Backend, mean, log_std, event_ndims: int = 0):
        self.backend = backend
        assert tuple(mean.shape) == tuple(log_std.shape), (
            f"mean {tuple(mean.shape)} and log_std {tuple(log_std.shape)} must have one shape")
        self.params = {"mean": mean, "log_std": log_std}
        self.event_ndims = event_ndims

    @property
    def mean(self):
        return self.params["mean"]

    @property
    def log_std(self):
        return self.params["log_std"]

    @property
    def value_shape(self):
        return tuple(self.mean.shape)

    def rsample(self, noise):
        self._check_noise(noise)
        return self.mean + self.backend.exp(self.log_std) * noise

    def sample(self, noise):
        return self.backend.stop_gradient(self.rsample(noise))

    def log_prob(self, z):
        B = self.backend
        standardized = (z - self.mean) * B.exp(-self.log_std)
        per_variable = -0.5 * standardized**2 - self.log_std - 0.5 * math.log(2 * math.pi)
        return self._reduce_event(per_variable)

    def score(self, z):
        B = self.backend
        standardized = (z - self.mean) * B.exp(-self.log_std)
        return {"mean": standardized * B.exp(-self.log_std), "log_std": standardized**2 - 1.0}

    def entropy(self):
        per_variable = self.log_std + 0.5 * math.log(2 * math.pi * math.e)
        return per_variable if self.event_ndims == 0 else self.backend.sum(
            per_variable, axis=tuple(range(-self.event_ndims, 0)))


# ---- implicitly reparameterized: Gamma, Beta, Dirichlet [4] -------------------------------------
#: torch's dg/dα (``torch._standard_gamma_grad``) is an approximation, relative error up to about
#: 1e-3 against the exact implicit gradient (jax's agrees with it to 1e-8)
IMPLICIT_GRADIENT_RTOL = 5e-3


def _reduce(B, x, ndims: int):
    """Sum ``x`` over its ``ndims`` rightmost axes."""
    return x if ndims == 0 else B.sum(x, axis=tuple(range(-ndims, 0)))


class Gamma(Distribution):
    """Gamma(shape a = exp(log_shape), rate β = exp(log_rate)), elementwise:
    p(z) = β^a z^(a-1) e^(-βz) / Γ(a), z > 0; mean a/β, variance a/β².

    Sample: z = F⁻¹(u; a) / β, u ~ U(0, 1) (one per variable), F the standard Gamma's CDF;
    ``rsample`` carries the implicit gradient [4]. Samples below the dtype's smallest normal
    number are clamped to it (as torch.distributions does): in float32 that happens with
    probability about tiny^a / Γ(a + 1), 1.6e-4 at a = 0.1.
    Score: ∂ log p / ∂ log a = a (log β + log z - ψ(a)), ∂ log p / ∂ log β = a - βz."""

    kind = "gamma"
    has_rsample = True
    noise_kind = "uniform"
    gradient_rtol = IMPLICIT_GRADIENT_RTOL

    def __init__(self, backend: Backend, log_shape, log_rate, event_ndims: int = 0):
        self.backend = backend
        assert tuple(log_shape.shape) == tuple(log_rate.shape), (
            f"log_shape {tuple(log_shape.shape)} and log_rate {tuple(log_rate.shape)} must have one shape")
        assert log_shape.ndim >= event_ndims
        self.params = {"log_shape": log_shape, "log_rate": log_rate}
        self.event_ndims = event_ndims

    @property
    def log_shape(self):
        return self.params["log_shape"]

    @property
    def log_rate(self):
        return self.params["log_rate"]

    @property
    def value_shape(self):
        return tuple(self.log_shape.shape)

    def rsample(self, noise):
        self._check_noise(noise)
        B = self.backend
        g = B.standard_gamma_icdf(B.exp(self.log_shape), noise)  # [S, *value]
        return g * B.exp(-self.log_rate)

    def sample(self, noise):
        self._check_noise(noise)
        B = self.backend
        g = B.standard_gamma_icdf(B.exp(B.stop_gradient(self.log_shape)), noise)  # [S, *value]
        return B.stop_gradient(g * B.exp(-B.stop_gradient(self.log_rate)))

    def log_prob(self, z):
        B = self.backend
        a, rate = B.exp(self.log_shape), B.exp(self.log_rate)
        per_variable = a * self.log_rate + (a - 1.0) * B.log(z) - rate * z - B.lgamma(a)
        return self._reduce_event(per_variable)

    def score(self, z):
        B = self.backend
        a, rate = B.exp(self.log_shape), B.exp(self.log_rate)
        return {"log_shape": a * (self.log_rate + B.log(z) - B.digamma(a)), "log_rate": a - rate * z}

    def moments(self):
        """(mean a/β, variance a/β²), each [*value_shape]."""
        B = self.backend
        mean = B.exp(self.log_shape - self.log_rate)
        return mean, mean * B.exp(-self.log_rate)

    def entropy(self):
        B = self.backend
        a = B.exp(self.log_shape)
        per_variable = a - self.log_rate + B.lgamma(a) + (1.0 - a) * B.digamma(a)
        return _reduce(B, per_variable, self.event_ndims)


class Beta(Distribution):
    """Beta(a = exp(log_alpha), b = exp(log_beta)), elementwise:
    p(z) = z^(a-1) (1-z)^(b-1) / B(a, b), 0 < z < 1; mean a/(a+b), variance ab/((a+b)²(a+b+1)).

    Sample: z = G_a / (G_a + G_b) with G_a = F⁻¹(u₀; a), G_b = F⁻¹(u₁; b), noise
    ``[S, *value_shape, 2]`` (two uniforms per variable, the last axis), clipped to
    [tiny, 1 - eps] so that log z and log(1 - z) stay finite; ``rsample`` carries the implicit
    gradients of both Gammas [4].
    Score: ∂ log p / ∂ log a = a (log z - ψ(a) + ψ(a+b)), and so for b with log(1 - z)."""

    kind = "beta"
    has_rsample = True
    noise_kind = "uniform"
    gradient_rtol = IMPLICIT_GRADIENT_RTOL

    def __init__(self, backend: Backend, log_alpha, log_beta, event_ndims: int = 0):
        self.backend = backend
        assert tuple(log_alpha.shape) == tuple(log_beta.shape), (
            f"log_alpha {tuple(log_alpha.shape)} and log_beta {tuple(log_beta.shape)} must have one shape")
        assert log_alpha.ndim >= event_ndims
        self.params = {"log_alpha": log_alpha, "log_beta": log_beta}
        self.event_ndims = event_ndims

    @property
    def value_shape(self):
        return tuple(self.params["log_alpha"].shape)

    @property
    def noise_shape(self):
        return (*self.value_shape, 2)

    def _transform(self, log_alpha, log_beta, noise):
        self._check_noise(noise)
        B = self.backend
        g_a = B.standard_gamma_icdf(B.exp(log_alpha), noise[..., 0])  # [S, *value]
        g_b = B.standard_gamma_icdf(B.exp(log_beta), noise[..., 1])
        info = np.finfo(B.dtype)
        return B.clip(g_a / (g_a + g_b), float(info.tiny), 1.0 - float(info.eps))

    def rsample(self, noise):
        return self._transform(self.params["log_alpha"], self.params["log_beta"], noise)

    def sample(self, noise):
        B = self.backend
        return B.stop_gradient(self._transform(B.stop_gradient(self.params["log_alpha"]),
                                               B.stop_gradient(self.params["log_beta"]), noise))

    def log_prob(self, z):
        B = self.backend
        a, b = B.exp(self.params["log_alpha"]), B.exp(self.params["log_beta"])
        per_variable = ((a - 1.0) * B.log(z) + (b - 1.0) * B.log1p(-z)
                        + B.lgamma(a + b) - B.lgamma(a) - B.lgamma(b))
        return self._reduce_event(per_variable)

    def score(self, z):
        B = self.backend
        a, b = B.exp(self.params["log_alpha"]), B.exp(self.params["log_beta"])
        total = B.digamma(a + b)
        return {"log_alpha": a * (B.log(z) - B.digamma(a) + total),
                "log_beta": b * (B.log1p(-z) - B.digamma(b) + total)}

    def moments(self):
        """(mean a/(a+b), variance ab/((a+b)²(a+b+1))), each [*value_shape]."""
        B = self.backend
        a, b = B.exp(self.params["log_alpha"]), B.exp(self.params["log_beta"])
        mean = a / (a + b)
        return mean, mean * (1.0 - mean) / (a + b + 1.0)

    def entropy(self):
        B = self.backend
        a, b = B.exp(self.params["log_alpha"]), B.exp(self.params["log_beta"])
        per_variable = (B.lgamma(a) + B.lgamma(b) - B.lgamma(a + b) - (a - 1.0) * B.digamma(a)
                        - (b - 1.0) * B.digamma(b) + (a + b - 2.0) * B.digamma(a + b))
        return _reduce(B, per_variable, self.event_ndims)


class Dirichlet(Distribution):
    """Dirichlet(α = exp(log_concentration)) over the last axis of ``log_concentration``
    [*batch, *event, K] (the simplex of K categories is always part of the event, as a
    Categorical's classes; ``event_ndims`` counts the axes before it):
    p(z) = Γ(α₀) / Π Γ(α_k) Π z_k^(α_k - 1), α₀ = Σ α_k; mean α/α₀, variance
    α (α₀ - α) / (α₀² (α₀ + 1)).

    Sample: z = G / Σ_k G_k with G_k = F⁻¹(u_k; α_k), noise ``[S, *value_shape]`` (one
    uniform per Gamma), z clamped below at the dtype's tiny; ``rsample`` carries the implicit
    gradients [4]. Score: ∂ log p / ∂ log α_k = α_k (log z_k - ψ(α_k) + ψ(α₀))."""

    kind = "dirichlet"
    has_rsample = True
    noise_kind = "uniform"
    gradient_rtol = IMPLICIT_GRADIENT_RTOL

    def __init__(self, backend: Backend, log_concentration, event_ndims: int = 0):
        self.backend = backend
        assert log_concentration.ndim >= 1 + event_ndims, (
            f"log_concentration of shape {tuple(log_concentration.shape)} cannot have {event_ndims} event axes "
            "besides the categories'")
        self.params = {"log_concentration": log_concentration}
        self.event_ndims = event_ndims

    @property
    def log_concentration(self):
        return self.params["log_concentration"]

    @property
    def value_shape(self):
        return tuple(self.log_concentration.shape)

    @property
    def batch_shape(self):
        return self.value_shape[: len(self.value_shape) - 1 - self.event_ndims]

    @property
    def event_shape(self):
        return self.value_shape[len(self.value_shape) - 1 - self.event_ndims:]

    def _transform(self, log_concentration, noise):
        self._check_noise(noise)
        B = self.backend
        g = B.standard_gamma_icdf(B.exp(log_concentration), noise)  # [S, *value]
        z = g / B.sum(g, axis=-1, keepdims=True)
        return B.maximum(z, float(np.finfo(B.dtype).tiny))

    def rsample(self, noise):
        return self._transform(self.log_concentration, noise)

    def sample(self, noise):
        B = self.backend
        return B.stop_gradient(self._transform(B.stop_gradient(self.log_concentration), noise))

    def log_prob(self, z):
        B = self.backend
        alpha = B.exp(self.log_concentration)
        per_variable = (B.sum((alpha - 1.0) * B.log(z) - B.lgamma(alpha), axis=-1)
                        + B.lgamma(B.sum(alpha, axis=-1)))  # [S, *batch, *event without K]
        return self._reduce_event(per_variable)

    def score(self, z):
        B = self.backend
        alpha = B.exp(self.log_concentration)
        total = B.digamma(B.sum(alpha, axis=-1, keepdims=True))
        return {"log_concentration": alpha * (B.log(z) - B.digamma(alpha) + total)}

    def moments(self):
        """(mean α/α₀, variance α(α₀ - α)/(α₀²(α₀ + 1))), each [*value_shape]."""
        B = self.backend
        alpha = B.exp(self.log_concentration)
        total = B.sum(alpha, axis=-1, keepdims=True)
        mean = alpha / total
        return mean, mean * (1.0 - mean) / (total + 1.0)

    def entropy(self):
        B = self.backend
        alpha = B.exp(self.log_concentration)
        total = B.sum(alpha, axis=-1)
        K = self.value_shape[-1]
        per_variable = (B.sum(B.lgamma(alpha), axis=-1) - B.lgamma(total) + (total - K) * B.digamma(total)
                        - B.sum((alpha - 1.0) * B.digamma(alpha), axis=-1))
        return _reduce(B, per_variable, self.event_ndims)
