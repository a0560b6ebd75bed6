"""The Backend interface: the array operations gradest's estimators and tasks are written against.

An estimator or a task is written once over a `Backend` and runs in PyTorch and in JAX. The
two implementations (`gradest.backends.torch`, `gradest.backends.jax`) define the same methods
with the same semantics; `tests/test_backends.py` checks them against each other.

Conventions, shared by both implementations:

* ``axis`` arguments follow NumPy (negative axes allowed); ``keepdims`` as NumPy.
* Arrays are created on ``backend.device`` with ``backend.dtype`` (float32 unless asked for
  float64) by `asarray`, `zeros`, `ones`, `arange` and the noise functions.
* Randomness is explicit. `noise` draws a batch of independent noise arrays for the window of
  replicates ``first .. first + count - 1`` of a named stream under a seed; the same
  (seed, stream, kind, shape, window) gives the same numbers whatever estimator asks for them
  (common random numbers) and on every call (determinism). Across backends the numbers differ
  (parity tests feed the same NumPy noise to both).
* Function transforms: `grad` differentiates with respect to the first argument (an array),
  `vmap` maps over a leading axis of the arguments whose ``in_axes`` entry is 0 (nested
  dicts of arrays allowed), `jit` compiles where the framework does (JAX: ``jax.jit``; torch:
  eager unless ``compile=True`` was asked for, then ``torch.compile``).
"""
from __future__ import annotations

import abc
import zlib
from typing import Any, Callable, Sequence

NOISE_KINDS = ("uniform", "normal", "gumbel")
DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "float64")


def stream_id(stream: str) -> int:
    """A stable 31-bit integer for a noise stream name (the same in every process)."""
    return zlib.crc32(stream.encode()) & 0x7FFFFFFF


class Backend(abc.ABC):
    """Array operations, explicit noise and function transforms for one framework.

    Attributes:
      name: ``"torch"`` or ``"jax"``.
      device: ``"cpu"`` or ``"cuda"``.
      dtype: ``"float32"`` or ``"float64"``.
    """

    name: str
    device: str
    dtype: str

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device!r}, dtype={self.dtype!r})"

    # ---- creation and conversion -------------------------------------------------------
    @abc.abstractmethod
    def asarray(self, x, dtype: str | None = None):
        """``x`` (NumPy, list, scalar or a framework array) as an array on this device.

        Floating inputs get ``self.dtype`` unless ``dtype`` is given ("int64", "bool", ...)."""

    @abc.abstractmethod
    def to_numpy(self, x):
        """A NumPy copy of ``x`` (detached, on the host)."""

    @abc.abstractmethod
    def zeros(self, shape: Sequence[int]): ...

    @abc.abstractmethod
    def ones(self, shape: Sequence[int]): ...

    @abc.abstractmethod
    def arange(self, n: int):
        """Integers ``0 .. n-1`` (int64 in torch, int32 in jax)."""

    # ---- elementwise -------------------------------------------------------------------
    @abc.abstractmethod
    def exp(self, x): ...

    @abc.abstractmethod
    def log(self, x): ...

    @abc.abstractmethod
    def log1p(self, x): ...

    @abc.abstractmethod
    def sqrt(self, x): ...

    @abc.abstractmethod
    def abs(self, x): ...

    @abc.abstractmethod
    def sign(self, x): ...

    @abc.abstractmethod
    def tanh(self, x): ...

    @abc.abstractmethod
    def erf(self, x): ...

    @abc.abstractmethod
    def sigmoid(self, x): ...

    @abc.abstractmethod
    def log_sigmoid(self, x): ...

    @abc.abstractmethod
    def softplus(self, x):
        """log(1 + exp(x)), computed stably."""

    @abc.abstractmethod
    def relu(self, x): ...

    @abc.abstractmethod
    def where(self, cond, x, y): ...

    @abc.abstractmethod
    def maximum(self, x, y): ...

    @abc.abstractmethod
    def minimum(self, x, y): ...

    @abc.abstractmethod
    def clip(self, x, lo, hi): ...

    @abc.abstractmethod
    def astype(self, x, dtype: str):
        """``x`` cast to ``dtype`` ("float" means this backend's float dtype)."""

    # ---- reductions --------------------------------------------------------------------
    @abc.abstractmethod
    def sum(self, x, axis=None, keepdims: bool = False): ...

    @abc.abstractmethod
    def mean(self, x, axis=None, keepdims: bool = False): ...

    @abc.abstractmethod
    def max(self, x, axis=None, keepdims: bool = False): ...

    @abc.abstractmethod
    def argmax(self, x, axis: int = -1): ...

    @abc.abstractmethod
    def logsumexp(self, x, axis=-1, keepdims: bool = False): ...

    @abc.abstractmethod
    def softmax(self, x, axis: int = -1): ...

    @abc.abstractmethod
    def log_softmax(self, x, axis: int = -1): ...

    # ---- indexing and shape ------------------------------------------------------------
    @abc.abstractmethod
    def one_hot(self, index, num_classes: int):
        """Float one-hot vectors, a new last axis of size ``num_classes``."""

    @abc.abstractmethod
    def take_along_axis(self, x, index, axis: int): ...

    @abc.abstractmethod
    def reshape(self, x, shape: Sequence[int]): ...

    @abc.abstractmethod
    def expand_dims(self, x, axis: int): ...

    @abc.abstractmethod
    def broadcast_to(self, x, shape: Sequence[int]): ...

    @abc.abstractmethod
    def stack(self, xs, axis: int = 0): ...

    @abc.abstractmethod
    def concatenate(self, xs, axis: int = 0): ...

    @abc.abstractmethod
    def moveaxis(self, x, source: int, destination: int): ...

    @abc.abstractmethod
    def matmul(self, a, b): ...

    @abc.abstractmethod
    def einsum(self, subscripts: str, *operands): ...

    def shape(self, x) -> tuple[int, ...]:
        return tuple(x.shape)

    # ---- autodiff ----------------------------------------------------------------------
    @abc.abstractmethod
    def stop_gradient(self, x): ...

    @abc.abstractmethod
    def grad(self, fn: Callable, has_aux: bool = False) -> Callable:
        """Gradient of scalar ``fn`` with respect to its first argument."""

    @abc.abstractmethod
    def value_and_grad(self, fn: Callable, has_aux: bool = False) -> Callable: ...

    @abc.abstractmethod
    def vmap(self, fn: Callable, in_axes: Any = 0, out_axes: Any = 0) -> Callable: ...

    @abc.abstractmethod
    def jit(self, fn: Callable) -> Callable: ...

    @abc.abstractmethod
    def block(self, x):
        """Wait until ``x`` (an array or a tree of arrays) is computed; returns ``x``.

        Timings must call it inside the timed region (cuda synchronize / block_until_ready)."""

    # ---- explicit noise ----------------------------------------------------------------
    @abc.abstractmethod
    def noise(self, seed: int, stream: str, kind: str, shape: Sequence[int], first: int, count: int):
        """Noise for replicates ``first .. first+count-1``: an array ``[count, *shape]``.

        ``kind`` is one of `NOISE_KINDS`: ``uniform`` draws from the open interval (0, 1) (so
        ``log(u)`` and ``log(-log(u))`` are finite), ``normal`` from N(0, 1), ``gumbel`` from
        the standard Gumbel distribution. The numbers are a function of (seed, stream, kind, shape,
        first, count) alone; the harness chunks replicates deterministically."""

    def noise_fn(self, stream: str, kind: str, shape: Sequence[int], count: int) -> Callable:
        """``(seed, first) -> noise(seed, stream, kind, shape, first, count)`` as a function.

        JAX's can be traced: ``seed`` and ``first`` may be traced integers, so a jitted training
        step draws its own noise; elsewhere it calls `noise` eagerly."""
        return lambda seed, first: self.noise(seed, stream, kind, shape, first, count)

    # ---- memory ------------------------------------------------------------------------
    def reset_peak_memory(self) -> None:
        """Reset the device's peak-memory counter (no-op on CPU)."""

    def peak_memory_bytes(self) -> float:
        """Peak device memory since the last reset, in bytes (NaN where unknown)."""
        return float("nan")


def check_noise_kind(kind: str) -> None:
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; known kinds: {', '.join(NOISE_KINDS)}")
