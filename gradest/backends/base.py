"""The Backend interface: the array operations gradest's estimators and tasks are written against.

An estimator or a task is written once over a `Backend` and runs on every registered backend
(`gradest.backends`: the built-in `gradest.backends.torch` and `gradest.backends.jax`, and
plugins). The implementations define the same methods with the same semantics;
`tests/test_backends.py` checks the built-ins against NumPy, and the conformance kit
(`gradest.testing`) checks every backend against the reference backend.

Conventions, shared by every implementation:

* ``axis`` arguments follow NumPy (negative axes allowed); ``keepdims`` as NumPy.
* Arrays are created on ``backend.device`` with ``backend.dtype`` (float32 unless asked for
  float64) by `asarray`, `zeros`, `ones`, `arange` and the noise functions.
* Randomness is explicit. `replicate_noise` is the generator behind `gradest.noise`, which
  names the streams and states the promise: replicate i of a stream under a seed depends on
  (seed, stream, i) alone (`noise_block_replicates` says how the backend keeps it). Across
  backends the numbers differ (parity tests feed the same NumPy noise to both).
* Function transforms: `grad` differentiates with respect to the first argument (an array),
  `vmap` maps over a leading axis of the arguments whose ``in_axes`` entry is 0 (nested
  dicts of arrays allowed), `jit` compiles where the framework does (each implementation's
  docstring says how).
"""
from __future__ import annotations

import abc
import contextlib
from typing import Any, Callable, Sequence

#: the laws a noise array can be drawn from (see `Backend.replicate_noise`)
NOISE_LAWS = ("uniform", "normal", "gumbel")
NOISE_KINDS = NOISE_LAWS  # the name before "law" (which says one thing; "kind" says three)
#: optimizer names, the same for both backends
OPTIMIZERS = ("adam", "sgd", "momentum", "rmsprop", "adagrad")
DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "float64")


class Backend(abc.ABC):
    """Array operations, explicit noise and function transforms for one framework.

    Attributes:
      name: the name it is registered under (`gradest.backends.register_backend`), e.g. ``"torch"``.
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

    # ---- special functions of the Gamma family (implicit reparameterization) ----------
    # Not abstract: a backend written before them still works for every other distribution;
    # the gamma, beta and dirichlet distributions (`gradest.distributions`) need all five.
    def lgamma(self, x):
        """log Γ(x), elementwise (x > 0)."""
        raise self._missing_special("lgamma")

    def digamma(self, x):
        """ψ(x) = d log Γ(x) / dx, elementwise."""
        raise self._missing_special("digamma")

    def gammainc(self, a, x):
        """The regularized lower incomplete gamma function P(a, x) = γ(a, x) / Γ(a): the CDF of
        the standard Gamma(a) at x (elementwise, broadcast)."""
        raise self._missing_special("gammainc")

    def gammaincc(self, a, x):
        """Q(a, x) = 1 - P(a, x), computed directly (accurate where P is close to 1)."""
        raise self._missing_special("gammaincc")

    def standard_gamma_icdf(self, alpha, u):
        """z = F⁻¹(u; α), the inverse CDF of the standard Gamma(α) (rate 1) at uniform noise
        ``u`` in (0, 1), broadcast: the implicitly reparameterized Gamma sample [1].

        The value is computed without gradient (`standard_gamma_log_icdf`, written once over
        the Backend) and clamped below at the dtype's smallest normal number (as
        torch.distributions clamps its Gamma samples); the gradient is attached by the
        implicit function theorem, dz/dα = -(∂F/∂α)(z; α) / p(z; α) [1, eq. 6], from the
        framework's own implementation (torch: ``torch._standard_gamma_grad``, what
        torch.distributions.Gamma.rsample uses; jax: ``jax.lax.random_gamma_grad``), and
        dz/du = 1 / p(z; α) (capped at the dtype's largest finite number). Works under the
        backend's `grad`, `vmap` and `jit`.

        [1] Figurnov, Mohamed & Mnih, Implicit Reparameterization Gradients, NeurIPS 2018."""
        raise self._missing_special("standard_gamma_icdf")

    def _missing_special(self, op: str) -> NotImplementedError:
        return NotImplementedError(
            f"backend {getattr(self, 'name', type(self).__name__)!r} does not implement {op}(), which the "
            f"gamma, beta and dirichlet distributions need; implement it in {type(self).__name__} "
            f"(gradest/backends/base.py states what it computes), or use the torch or jax backend")

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
    def split(self, x, sizes: Sequence[int]) -> list:
        """``x`` [sum(sizes), ...] cut along axis 0 into pieces of ``sizes`` (one backward op,
        where slices would each scatter into a full-size gradient)."""

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

    def replicate_grads(self, fn: Callable) -> Callable:
        """``(params, noise, state, batch) -> grads [count, P]``: the gradient of
        ``fn(params, noise_r, state, batch) -> (scalar, aux)`` with respect to ``params`` for each
        replicate r of ``noise`` (leading axis ``count``), aux dropped. The default is
        ``vmap(grad(fn))``; a backend may take a faster path where it measurably pays (torch:
        plain autograd at count = 1)."""
        vg = self.vmap(self.grad(fn, has_aux=True), in_axes=(None, 0, None, None))

        def grads(params, noise, state, batch):
            return vg(params, noise, state, batch)[0]

        return grads

    #: whether compiled functions are specialized to array shapes (JAX): the harness then pads
    #: replicate chunks to a few sizes instead of compiling for every count
    static_shapes: bool = False

    # ---- training ----------------------------------------------------------------------
    @abc.abstractmethod
    def optimizer(self, name: str, learning_rate: float):
        """The framework's optimizer ``name`` (one of `OPTIMIZERS`), with the hyper-parameters
        of torch.optim's defaults in every backend, so that all run one algorithm."""

    @abc.abstractmethod
    def train_step(self, loss: Callable, draw_noise: Callable, optimizer: str,
                   phi_objective: Callable | None = None) -> "TrainStep":
        """A `TrainStep` minimizing ``loss(θ, noise, state, batch) -> (scalar, new_state)``
        with `optimizer` ``optimizer``; the step's noise is ``draw_noise(seed, t)``. With
        ``phi_objective(φ, θ, noise, state, batch) -> scalar``, each step also updates
        ``state["phi"]`` (at θ_t, with the step's noise) with an optimizer of the same name."""

    # ---- threads -----------------------------------------------------------------------
    def thread_count(self) -> int:
        """Intra-op threads this backend computes with on the CPU: those of a `replicate_call`
        made now (inside `threads` (count): that count)."""
        return 1

    def threads(self, count: int | None):
        """A context manager running the block with ``count`` intra-op threads (None: as is);
        the count holds for every call in the block, `replicate_call`'s included."""
        return contextlib.nullcontext()

    def replicate_call(self, fn: Callable) -> Callable:
        """``fn``, a compiled call over many replicates (the sampler's: noise and estimates),
        run under this backend's thread policy for such calls. The default runs it as is; the
        torch backend runs it on one intra-op thread on the CPU unless told otherwise (its
        module docstring says why)."""
        return fn

    # ---- explicit noise ----------------------------------------------------------------
    @abc.abstractmethod
    def replicate_noise(self, seed, stream_id: int, law: str, shape: tuple, first, count: int):
        """Replicates ``first .. first+count-1`` of one noise stream: an array ``[count, *shape]``.

        The generator behind `gradest.noise` (call that module, not this method): row ``j`` is a
        function of (seed, stream_id, law, shape, first + j) alone, whatever ``first`` and
        ``count`` are. ``law`` is one of `NOISE_LAWS`: ``uniform`` draws from the open
        interval (0, 1), ``normal`` from N(0, 1), ``gumbel`` from the standard Gumbel. Where
        the backend compiles (`static_shapes`), ``seed`` and ``first`` may be traced."""

    def noise_block_replicates(self, shape: tuple) -> int:
        """How many replicates of a per-replicate ``shape`` one generator call draws together.

        1 (the default) means per replicate: a counter-based generator hashes each number's
        own counter (JAX: the Threefry hash of (replicate, element) under the stream's key), so
        a window of replicates is drawn exactly. A backend without one draws fixed blocks of this
        many replicates and slices windows out of them (torch); the value must depend on
        ``shape`` alone, so that the numbers do (`gradest.noise`)."""
        return 1

    # ---- memory ------------------------------------------------------------------------
    def reset_peak_memory(self) -> None:
        """Reset the device's peak-memory counter (no-op on CPU)."""

    def peak_memory_bytes(self) -> float:
        """Peak device memory since the last reset, in bytes (NaN where unknown)."""
        return float("nan")


def check_noise_law(law: str) -> None:
    if law not in NOISE_LAWS:
        raise ValueError(f"unknown noise law {law!r}; known laws: {', '.join(NOISE_LAWS)}")


check_noise_kind = check_noise_law  # the name before "law"


#: Newton steps of `standard_gamma_log_icdf`: from its start it converges in four (float64,
#: α in [1e-3, 1e5], u in [tiny, 1 - eps/2]); two to spare
GAMMA_ICDF_STEPS = 6
#: the largest Newton step in log z (a bad start cannot jump out of range)
_GAMMA_ICDF_MAX_STEP = 50.0


def standard_gamma_log_icdf(B: Backend, alpha, u, tiny: float, steps: int = GAMMA_ICDF_STEPS,
                            repeat: Callable | None = None):
    """y = log F⁻¹(u; α) for the standard Gamma(α), elementwise (``alpha`` and ``u`` of one
    shape and dtype, u in (0, 1)), without gradient: the value behind
    `Backend.standard_gamma_icdf`, written once over the Backend's elementwise ops (`lgamma`,
    `gammainc`, `gammaincc`), a fixed number of steps and no data-dependent control flow, so
    that it runs under vmap and jit.

    Newton's method in y = log z on the log CDF, h(y) = log P(α, e^y) - log u, for u <= 1/2,
    and on the log survival function, h(y) = log Q(α, e^y) - log(1 - u), above (1 - u is exact
    there): log z of a Gamma has the log-concave density exp(αy - e^y) / Γ(α), so both are
    concave in y and Newton converges monotonically after its first step, from either side.
    h'(y) = ± e^y p(e^y) / P (or Q), p the density. Where P (Q) underflows, its leading
    asymptotic term stands in: log P ≈ αy - e^y - log Γ(α + 1) (small z), log Q ≈ (α - 1) y -
    e^y - log Γ(α) (large z). The start is Numerical Recipes' (Press et al., 3rd ed., §6.2.1,
    ``invgammp``): Wilson–Hilferty with a rational normal quantile for α > 1 (never below the
    lower bound log z >= (log u + log Γ(α + 1)) / α, from P(α, z) <= z^α / Γ(α + 1)), and
    (u / t)^(1/α) or 1 - log((1 - u) / (1 - t)), t = 1 - α (0.253 + 0.12 α), for α <= 1.

    ``tiny`` is the dtype's smallest normal number (the floor below which P and Q count as
    underflowed). ``repeat(step, steps, y0)`` applies ``step`` ``steps`` times (a Python loop by
    default; a compiling backend passes its loop primitive, so that the step compiles once).
    Accuracy: the root to the dtype's precision, limited by that of P and Q."""
    lg = B.lgamma(alpha)
    lg1 = B.lgamma(alpha + 1.0)
    upper = u > 0.5
    v = 1.0 - u  # exact where it is used (u > 1/2)
    log_u, log_v = B.log(u), B.log(v)
    # start, α > 1: Wilson–Hilferty, z ≈ α (1 - 1/(9α) + Φ⁻¹(u) / (3 √α))³
    y_bound = (log_u + lg1) / alpha  # log z* >= this, for every α
    t = B.sqrt(-2.0 * B.log(B.where(upper, v, u)))
    tail = t - (2.30753 + 0.27061 * t) / (1.0 + t * (0.99229 + 0.04481 * t))  # Φ⁻¹(1 - min(u, 1 - u))
    quantile = B.where(upper, tail, -tail)  # ≈ Φ⁻¹(u)
    a_big = B.maximum(alpha, 1.0)
    cube = 1.0 - 1.0 / (9.0 * a_big) + quantile / (3.0 * B.sqrt(a_big))
    y_big = B.maximum(B.log(a_big) + 3.0 * B.log(B.maximum(cube, tiny)), y_bound)
    # start, α <= 1
    a_small = B.minimum(alpha, 1.0)
    split = 1.0 - a_small * (0.253 + 0.12 * a_small)
    y_low = (log_u - B.log(split)) / a_small
    y_high = B.log(1.0 - B.log(B.minimum(v / (1.0 - split), 1.0)))
    y = B.where(alpha > 1.0, y_big, B.where(u < split, y_low, y_high))
    floor = 1e3 * tiny

    def newton(y):
        z = B.exp(y)
        log_zp = alpha * y - z - lg  # log(z p(z)) = d/dy of P
        P, Q = B.gammainc(alpha, z), B.gammaincc(alpha, z)
        log_P = B.where(P > floor, B.log(B.maximum(P, floor)), alpha * y - z - lg1)
        log_Q = B.where(Q > floor, B.log(B.maximum(Q, floor)), log_zp - y)
        h = B.where(upper, log_Q - log_v, log_P - log_u)
        slope = B.where(upper, -B.exp(log_zp - log_Q), B.exp(log_zp - log_P))
        step = h / slope
        step = B.where(step == step, step, y * 0.0)  # 0/0 (nothing left to do) -> no step
        return y - B.clip(step, -_GAMMA_ICDF_MAX_STEP, _GAMMA_ICDF_MAX_STEP)

    if repeat is None:
        for _ in range(steps):
            y = newton(y)
        return y
    return repeat(newton, steps, y)


class TrainStep(abc.ABC):
    """One optimizer step of a training run, built once (`Backend.train_step`) and reused.

    The run's variables are a *carry* (θ, optimizer state, estimator state, φ and its
    optimizer state): ``carry = init(θ₀, state, learning_rate)``, then
    ``carry, value = step(carry, seed, t, batch)`` for t = 0, 1, ...; ``value`` is the loss at
    θ_t (a backend scalar). The learning rate is data, not part of what is compiled."""

    @abc.abstractmethod
    def init(self, theta, state, learning_rate: float): ...

    @abc.abstractmethod
    def step(self, carry, seed, t, batch): ...

    @abc.abstractmethod
    def params(self, carry):
        """θ of ``carry`` (an array that later steps do not change)."""

    @abc.abstractmethod
    def state(self, carry):
        """The estimator state of ``carry`` (with the current φ where there is one)."""


def check_optimizer(name: str) -> str:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; known optimizers: {', '.join(OPTIMIZERS)}")
    return name
