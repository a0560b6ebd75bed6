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

References:
  [1] Kingma & Welling, Auto-Encoding Variational Bayes, ICLR 2014.
  [2] Rezende, Mohamed & Wierstra, Stochastic Backpropagation, ICML 2014.
  [3] Gumbel (1954); Maddison, Tarlow & Minka, A* Sampling, NeurIPS 2014 (Gumbel-max trick).
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from gradest.backends.base import Backend

DISTRIBUTION_KINDS = ("categorical", "bernoulli", "normal")
MAX_SUPPORT = 1 << 16


def _prod(shape) -> int:
    return int(np.prod(shape)) if len(shape) else 1


class Distribution:
    kind: str = ""
    is_discrete: bool = False
    has_rsample: bool = False
    has_enumerate_support: bool = False
    noise_kind: str = "uniform"

    backend: Backend
    params: dict
    event_ndims: int

    @property
    def value_shape(self) -> tuple[int, ...]:
        """Shape of one sample (without the leading S axis)."""
        raise NotImplementedError

    @property
    def batch_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def event_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

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

    @property
    def batch_shape(self):
        return tuple(self.logits.shape[: self.logits.ndim - self.event_ndims])

    @property
    def event_shape(self):
        return tuple(self.logits.shape[self.logits.ndim - self.event_ndims:])

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

    @property
    def batch_shape(self):
        return tuple(self.mean.shape[: self.mean.ndim - self.event_ndims])

    @property
    def event_shape(self):
        return tuple(self.mean.shape[self.mean.ndim - self.event_ndims:])

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
