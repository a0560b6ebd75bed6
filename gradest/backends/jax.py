"""The JAX implementation of `gradest.backends.base.Backend`.

Transforms are JAX's own (``jax.grad``, ``jax.vmap``, ``jax.jit``). Noise comes from
``jax.random`` with the key ``fold_in(fold_in(PRNGKey(seed), stream), first)``. Arrays are
committed to the backend's device. float64 turns on ``jax_enable_x64`` (a process-wide JAX
setting).
"""
from __future__ import annotations

import math

import numpy as np
import jax
import jax.numpy as jnp

from gradest.backends.base import Backend, check_noise_kind, stream_id

_INT = {"int64": jnp.int64, "int32": jnp.int32, "bool": jnp.bool_}


class JaxBackend(Backend):
    name = "jax"

    def __init__(self, device: str = "cpu", dtype: str = "float32"):
        self.device = device
        self.dtype = dtype
        self._jax_device = jax.devices("gpu" if device == "cuda" else "cpu")[0]
        self._float = jnp.float64 if dtype == "float64" else jnp.float32

    def _dt(self, dtype):
        if dtype is None or dtype == "float":
            return self._float
        if dtype in ("float32", "float64"):
            return jnp.dtype(dtype)
        return _INT[dtype]

    # creation and conversion
    def asarray(self, x, dtype=None):
        arr = x if isinstance(x, jax.Array) else np.asarray(x)
        if dtype is None and arr.dtype.kind not in "fc":
            out = jnp.asarray(arr)
        else:
            out = jnp.asarray(arr, dtype=self._dt(dtype))
        return jax.device_put(out, self._jax_device)

    def to_numpy(self, x):
        return np.asarray(jax.device_get(x))

    def zeros(self, shape):
        return jax.device_put(jnp.zeros(tuple(shape), self._float), self._jax_device)

    def ones(self, shape):
        return jax.device_put(jnp.ones(tuple(shape), self._float), self._jax_device)

    def arange(self, n):
        return jax.device_put(jnp.arange(n), self._jax_device)

    # elementwise
    def exp(self, x):
        return jnp.exp(x)

    def log(self, x):
        return jnp.log(x)

    def log1p(self, x):
        return jnp.log1p(x)

    def sqrt(self, x):
        return jnp.sqrt(x)

    def abs(self, x):
        return jnp.abs(x)

    def sign(self, x):
        return jnp.sign(x)

    def tanh(self, x):
        return jnp.tanh(x)

    def erf(self, x):
        return jax.scipy.special.erf(x)

    def sigmoid(self, x):
        return jax.nn.sigmoid(x)

    def log_sigmoid(self, x):
        return jax.nn.log_sigmoid(x)

    def softplus(self, x):
        return jax.nn.softplus(x)

    def relu(self, x):
        return jax.nn.relu(x)

    def where(self, cond, x, y):
        return jnp.where(cond, x, y)

    def maximum(self, x, y):
        return jnp.maximum(x, y)

    def minimum(self, x, y):
        return jnp.minimum(x, y)

    def clip(self, x, lo, hi):
        return jnp.clip(x, lo, hi)

    def astype(self, x, dtype):
        return x.astype(self._dt(dtype))

    # reductions
    @staticmethod
    def _axis(axis):
        return tuple(axis) if isinstance(axis, list) else axis

    def sum(self, x, axis=None, keepdims=False):
        return jnp.sum(x, axis=self._axis(axis), keepdims=keepdims)

    def mean(self, x, axis=None, keepdims=False):
        return jnp.mean(x, axis=self._axis(axis), keepdims=keepdims)

    def max(self, x, axis=None, keepdims=False):
        return jnp.max(x, axis=self._axis(axis), keepdims=keepdims)

    def argmax(self, x, axis=-1):
        return jnp.argmax(x, axis=axis)

    def logsumexp(self, x, axis=-1, keepdims=False):
        return jax.nn.logsumexp(x, axis=self._axis(axis), keepdims=keepdims)

    def softmax(self, x, axis=-1):
        return jax.nn.softmax(x, axis=axis)

    def log_softmax(self, x, axis=-1):
        return jax.nn.log_softmax(x, axis=axis)

    # indexing and shape
    def one_hot(self, index, num_classes):
        return jax.nn.one_hot(index, num_classes, dtype=self._float)

    def take_along_axis(self, x, index, axis):
        return jnp.take_along_axis(x, index, axis=axis)

    def reshape(self, x, shape):
        return jnp.reshape(x, tuple(shape))

    def expand_dims(self, x, axis):
        return jnp.expand_dims(x, axis)

    def broadcast_to(self, x, shape):
        return jnp.broadcast_to(x, tuple(shape))

    def stack(self, xs, axis=0):
        return jnp.stack(list(xs), axis=axis)

    def concatenate(self, xs, axis=0):
        return jnp.concatenate(list(xs), axis=axis)

    def moveaxis(self, x, source, destination):
        return jnp.moveaxis(x, source, destination)

    def matmul(self, a, b):
        return jnp.matmul(a, b)

    def einsum(self, subscripts, *operands):
        return jnp.einsum(subscripts, *operands)

    # autodiff
    def stop_gradient(self, x):
        return jax.lax.stop_gradient(x)

    def grad(self, fn, has_aux=False):
        return jax.grad(fn, has_aux=has_aux)

    def value_and_grad(self, fn, has_aux=False):
        return jax.value_and_grad(fn, has_aux=has_aux)

    def vmap(self, fn, in_axes=0, out_axes=0):
        in_axes = tuple(in_axes) if isinstance(in_axes, list) else in_axes
        return jax.vmap(fn, in_axes=in_axes, out_axes=out_axes)

    def jit(self, fn):
        return jax.jit(fn)

    def block(self, x):
        return jax.block_until_ready(x)

    # noise
    def noise(self, seed, stream, kind, shape, first, count):
        check_noise_kind(kind)
        return _draw(int(seed), stream_id(stream), kind, (int(count), *map(int, shape)), int(first),
                     self._float, self._jax_device)

    def noise_fn(self, stream, kind, shape, count):
        check_noise_kind(kind)
        sid, size = stream_id(stream), (int(count), *map(int, shape))
        return lambda seed, first: _draw(seed, sid, kind, size, first, self._float, self._jax_device)

    # memory
    def reset_peak_memory(self):
        pass  # jax exposes a peak since process start only

    def peak_memory_bytes(self):
        stats = self._jax_device.memory_stats() if self.device == "cuda" else None
        if stats and "peak_bytes_in_use" in stats:
            return float(stats["peak_bytes_in_use"])
        return math.nan


def _draw(seed, stream, kind, size, first, dtype, device):
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), stream), first)
    key = jax.device_put(key, device)
    if kind == "normal":
        return jax.random.normal(key, size, dtype)
    if kind == "gumbel":
        return jax.random.gumbel(key, size, dtype)
    tiny = jnp.finfo(dtype).tiny
    return jax.random.uniform(key, size, dtype, minval=tiny, maxval=1.0)


def make_backend(device: str = "cpu", dtype: str = "float32", **options) -> JaxBackend:
    if options:
        raise TypeError(f"the jax backend takes no options {sorted(options)}; it takes device and dtype")
    if dtype == "float64" and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)
    if device == "cuda":
        try:
            jax.devices("gpu")
        except RuntimeError as err:
            raise RuntimeError(
                "device='cuda' was asked for, but jax finds no GPU "
                f"(jax {jax.__version__}, devices: {jax.devices()}). Use device='cpu', or install "
                "jax with CUDA support: pip install 'jax[cuda12]'."
            ) from err
    return JaxBackend(device=device, dtype=dtype)
