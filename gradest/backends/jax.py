"""The JAX implementation of `gradest.backends.base.Backend`.

Transforms are JAX's own (``jax.grad``, ``jax.vmap``, ``jax.jit``). Optimizers are optax's; a
training step is one jitted function. Arrays are committed to the backend's device. float64
turns on ``jax_enable_x64`` (a process-wide JAX setting).

Noise (the promise of `gradest.noise`, scheme 3), counter-based, one replicate at a time
(`noise_block_replicates` = 1): element j of replicate i of stream s under seed k is made from
the Threefry-2x32 hash (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3") of
the 64-bit counter (i, j) under the stream's key ``fold_in(key(k), s)``::

    (h1, h2) = threefry2x32(key_s, (i, j))        # two 32-bit words
    bits     = h1 ^ h2        (float32)           # as jax.random's partitionable bits
             = h1 << 32 | h2  (float64)

and the floats from those bits by jax.random's own transforms (uniform: the mantissa trick on
[minval, 1); normal: sqrt(2)·erfinv(u); gumbel: -log(-log u)). No key is derived per replicate:
one hash per number, as cheap as one ``jax.random`` draw of the whole array, and a window of
replicates [first, first + count) is the same hash over counters starting at first, so no
block is drawn and sliced. Seed and first replicate are traced arguments of the compiled
function. Threefry is the same on every device: CPU and GPU hash the same bits (the floats made
from them, e.g. by the inverse error function, can differ in the last bit). The key is always a
threefry key (``impl="threefry2x32"``), whatever ``jax_default_prng_impl`` says.
"""
from __future__ import annotations

import functools
import math
import os

import numpy as np
import jax
import jax.numpy as jnp
from jax.extend.random import threefry2x32_p

from gradest.backends.base import Backend, TrainStep, check_noise_law, check_optimizer, standard_gamma_log_icdf

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
        if type(x) is np.ndarray and dtype is None and x.dtype.kind == "f":
            # host floats: one transfer of the cast copy (jnp.asarray adds a dispatch)
            return jax.device_put(x.astype(self._float, copy=False), self._jax_device)
        arr = x if isinstance(x, jax.Array) else np.asarray(x)
        if dtype is None and arr.dtype.kind not in "fc":
            out = jnp.asarray(arr)
        else:
            out = jnp.asarray(arr, dtype=self._dt(dtype))
        return jax.device_put(out, self._jax_device)

    def to_numpy(self, x):
        return np.asarray(x)

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

    # special functions of the Gamma family (implicit reparameterization: `_standard_gamma_icdf`)
    def lgamma(self, x):
        return jax.scipy.special.gammaln(x)

    def digamma(self, x):
        return jax.scipy.special.digamma(x)

    def gammainc(self, a, x):
        return jax.scipy.special.gammainc(a, x)

    def gammaincc(self, a, x):
        return jax.scipy.special.gammaincc(a, x)

    def standard_gamma_icdf(self, alpha, u):
        alpha, u = jnp.broadcast_arrays(alpha, jnp.asarray(u, alpha.dtype))
        info = jnp.finfo(alpha.dtype)
        u = jnp.clip(u, info.tiny, 1.0 - info.eps / 2)  # noise cast from float64 can round to 1
        return _standard_gamma_icdf(self, alpha, u)

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

    def split(self, x, sizes):
        bounds = np.cumsum([int(n) for n in sizes])[:-1].tolist()
        return list(jnp.split(x, bounds))

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
    static_shapes = True

    def replicate_noise(self, seed, stream_id, law, shape, first, count):
        check_noise_law(law)
        if isinstance(seed, jax.core.Tracer) or isinstance(first, jax.core.Tracer):
            return _replicates(seed, first, stream_id, law, tuple(shape), int(count), self._float)
        # eager: one compiled drawer per (law, shape, count, dtype), shared by every stream:
        # seed, stream and first replicate are data
        out = _eager_drawer(law, tuple(shape), int(count), jnp.dtype(self._float).name)(
            np.uint32(seed), np.uint32(stream_id), np.uint32(first))
        return jax.device_put(out, self._jax_device)

    # training
    def optimizer(self, name, learning_rate):
        import optax

        return optax.inject_hyperparams(_optax_factory(check_optimizer(name)))(learning_rate=learning_rate)

    def train_step(self, loss, draw_noise, optimizer, phi_objective=None, param_sizes=None):
        """As `Backend.train_step`; ``param_sizes`` (the sizes of θ's blocks, e.g. a task's
        ``param_layout``): θ is kept in those pieces (see `JaxTrainStep`)."""
        return JaxTrainStep(self, loss, draw_noise, check_optimizer(optimizer), phi_objective, param_sizes)

    # threads
    def thread_count(self):
        flags = os.environ.get("XLA_FLAGS", "")
        if "--xla_cpu_multi_thread_eigen=false" in flags:
            return 1
        for flag in flags.split():
            if flag.startswith("intra_op_parallelism_threads="):
                return int(flag.split("=", 1)[1])
        return os.cpu_count() or 1

    # memory
    def reset_peak_memory(self):
        pass  # jax exposes a peak since process start only

    def peak_memory_bytes(self):
        stats = self._jax_device.memory_stats() if self.device == "cuda" else None
        if stats and "peak_bytes_in_use" in stats:
            return float(stats["peak_bytes_in_use"])
        return math.nan


def _replicates(seed, first, stream_id, law, shape, count, dtype):
    """[count, *shape]: element j of replicate first + r is made from the Threefry hash of the
    counter (first + r, j) under the key ``fold_in(key(seed), stream_id)`` (module docstring)."""
    # stream_id is traced in the eager drawer (one compiled function serves every stream)
    stream_key = jax.random.fold_in(jax.random.key(seed, impl="threefry2x32"), stream_id)
    k1, k2 = jax.random.key_data(stream_key)  # uint32 [2]
    n = math.prod(shape)
    rows = jnp.asarray(first, jnp.uint32) + jax.lax.iota(jnp.uint32, count)  # [count] replicate indices
    hi = jax.lax.broadcast_in_dim(rows, (count, n), (0,))  # [count, n]: the replicate
    lo = jax.lax.broadcasted_iota(jnp.uint32, (count, n), 1)  # [count, n]: the element within it
    h1, h2 = threefry2x32_p.bind(k1, k2, hi, lo)  # [count, n] each
    dtype = jnp.dtype(dtype)
    if law == "normal":  # jax.random.normal: sqrt(2) erfinv(u), u uniform on [nextafter(-1, 0), 1)
        lo_u = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype))
        out = np.array(np.sqrt(2), dtype) * jax.lax.erf_inv(_uniform(h1, h2, dtype, lo_u))
    else:  # uniform on [tiny, 1) (never 0, so log u and log(-log u) are finite)
        out = _uniform(h1, h2, dtype, np.array(jnp.finfo(dtype).tiny, dtype))
        if law == "gumbel":
            out = -jnp.log(-jnp.log(out))
    return out.reshape((count, *shape))


def _uniform(h1, h2, dtype, minval):
    """Floats on [minval, 1) from hashed words, as jax.random.uniform makes them: the top
    mantissa-many bits under the exponent of 1.0 give [1, 2); shifted and scaled."""
    if dtype == jnp.float64:
        bits = (h1.astype(jnp.uint64) << np.uint64(32)) | h2.astype(jnp.uint64)
        shift, one = np.uint64(64 - 52), np.array(1.0, np.float64).view(np.uint64)
    else:
        bits = h1 ^ h2  # jax.random's 32-bit partitionable bits
        shift, one = np.uint32(32 - 23), np.array(1.0, np.float32).view(np.uint32)
    floats = jax.lax.bitcast_convert_type((bits >> shift) | one, dtype) - np.array(1.0, dtype)  # [0, 1)
    return jnp.maximum(minval, floats * (np.array(1.0, dtype) - minval) + minval)


@functools.lru_cache(maxsize=256)
def _eager_drawer(law, shape, count, dtype):
    return jax.jit(lambda seed, stream_id, first: _replicates(seed, first, stream_id, law, shape, count,
                                                              jnp.dtype(dtype)))


# ---- implicit reparameterization of the standard Gamma ----------------------------------------
@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _standard_gamma_icdf(backend, alpha, u):
    """z = F⁻¹(u; α) of the standard Gamma (``alpha`` and ``u`` of one shape and dtype), the
    value by `standard_gamma_log_icdf` over ``backend``'s ops in the arrays' dtype (float32
    stays float32: x64 may be off), clamped below at the dtype's tiny; derivatives in
    `_standard_gamma_icdf_jvp`."""
    return _standard_gamma_icdf_value(backend, alpha, u)


@functools.partial(jax.jit, static_argnums=(0,))
def _standard_gamma_icdf_value(backend, alpha, u):
    # jitted: an eager call compiles once per shape, not once per elementwise op of the solver
    tiny = float(jnp.finfo(alpha.dtype).tiny)
    y = standard_gamma_log_icdf(backend, alpha, u, tiny, repeat=_repeat)
    return jnp.maximum(jnp.exp(y), tiny)


def _repeat(step, count, y):
    """``step`` applied ``count`` times as one ``fori_loop`` (the incomplete gamma functions in
    the step compile once, not once per Newton step: seconds of XLA compilation each)."""
    return jax.lax.fori_loop(0, count, lambda _, value: step(value), y)


@_standard_gamma_icdf.defjvp
def _standard_gamma_icdf_jvp(backend, primals, tangents):
    """The implicit gradient (Figurnov et al. 2018, eq. 6): dz/dα = ``jax.lax.random_gamma_grad``
    (what ``jax.random.gamma`` differentiates with), dz/du = 1 / p(z; α) capped at the dtype's
    largest finite number (so that a zero tangent of u gives 0, not 0 · inf)."""
    alpha, u = primals
    d_alpha, d_u = tangents
    z = _standard_gamma_icdf(backend, alpha, u)
    log_inverse_density = jax.scipy.special.gammaln(alpha) + z - (alpha - 1.0) * jnp.log(z)
    dz_du = jnp.exp(jnp.minimum(log_inverse_density, math.log(jnp.finfo(alpha.dtype).max)))
    return z, jax.lax.random_gamma_grad(alpha, z) * d_alpha + dz_du * d_u


def _optax_factory(name):
    import optax

    # hyper-parameters as torch.optim's defaults, so both backends run one algorithm
    table = {
        "adam": lambda learning_rate: optax.adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8),
        "sgd": lambda learning_rate: optax.sgd(learning_rate),
        "momentum": lambda learning_rate: optax.sgd(learning_rate, momentum=0.9),
        "rmsprop": lambda learning_rate: optax.rmsprop(learning_rate, decay=0.99, eps=1e-8, eps_in_sqrt=False),
        # torch adds its eps (1e-10) outside the square root, optax inside: eps=0 is closer
        "adagrad": lambda learning_rate: optax.adagrad(learning_rate, initial_accumulator_value=0.0, eps=0.0),
    }
    return table[name]


class JaxTrainStep(TrainStep):
    """The step (noise, gradient, optax update of θ and of φ) as one ``jax.jit`` function,
    compiled once per batch shape; the learning rate lives in the optimizer state
    (``optax.inject_hyperparams``), so runs at other rates reuse the compiled step.

    θ in pieces: with ``param_sizes`` the carry holds θ as a list of 1-D blocks of those sizes,
    concatenated into the flat θ the loss takes inside the step. XLA then differentiates the
    concatenation (its transpose is a slice per block, which it simplifies away) instead of
    the slices the loss cuts from one flat vector (the transpose of each slice a pad of the
    whole vector, and the blocks copied out of it every step): on a VAE with P ~ 3e5 the flat
    step took about twice the hand-written one's time. The optimizers are elementwise, so the
    numbers are those of the flat θ. ``steps`` runs k steps in one call (`jax.lax.scan`, the
    noise of each drawn inside, the k batches stacked)."""

    def __init__(self, B, loss, draw_noise, optimizer, phi_objective, param_sizes=None):
        import optax

        self.B = B
        self.opt = opt = B.optimizer(optimizer, 1.0)
        has_phi = phi_objective is not None
        phi_grad = jax.grad(phi_objective) if has_phi else None
        self.has_phi = has_phi
        sizes = tuple(int(n) for n in param_sizes) if param_sizes else None
        self._sizes = sizes if sizes and len(sizes) > 1 else None

        def flat(theta):  # the carry's θ (blocks or flat) -> flat θ [P]
            return jnp.concatenate(theta) if isinstance(theta, list) else theta

        def step(carry, seed, t, batch):
            theta, opt_state, state, phi_opt_state = carry
            noise = draw_noise(seed, t)
            (value, new_state), grad = jax.value_and_grad(lambda th: loss(flat(th), noise, state, batch),
                                                          has_aux=True)(theta)
            updates, opt_state = opt.update(grad, opt_state, theta)
            new_state = dict(new_state)
            if has_phi:  # at θ_t, with the step's noise and state
                phi = state["phi"]
                g = phi_grad(phi, flat(theta), noise, state, batch)
                phi_updates, phi_opt_state = opt.update(g, phi_opt_state, phi)
                new_state["phi"] = optax.apply_updates(phi, phi_updates)
            return (optax.apply_updates(theta, updates), opt_state, new_state, phi_opt_state), value

        def steps(carry, seed, t0, batches, k):  # k steps t0 .. t0+k-1: (carry, values [k])
            def body(c, xs):
                i, batch = xs
                return step(c, seed, t0 + i, batch)

            return jax.lax.scan(body, carry, (jnp.arange(k, dtype=jnp.uint32), batches), length=k)

        self._step = jax.jit(step)
        self._steps = jax.jit(steps, static_argnums=4)
        self._flat = jax.jit(flat)

    def _commit(self, tree):
        # every array committed to the backend's device, as the step's outputs are: an input
        # placed differently (optax's fresh state is uncommitted) would compile the step twice
        return jax.tree_util.tree_map(self.B.asarray, tree)

    def _opt_init(self, x, learning_rate):
        opt_state = self.opt.init(x)
        opt_state.hyperparams["learning_rate"] = jnp.asarray(learning_rate, self.B._float)
        return self._commit(opt_state)

    def init(self, theta, state, learning_rate):
        theta = self.B.asarray(theta)
        if self._sizes is not None:
            assert sum(self._sizes) == theta.shape[0], f"param_sizes {self._sizes} do not add up to θ's {theta.shape}"
            theta = list(jnp.split(theta, np.cumsum(self._sizes)[:-1]))
        state = self._commit(dict(state))
        phi_opt_state = self._opt_init(state["phi"], learning_rate) if self.has_phi else None
        return theta, self._opt_init(theta, learning_rate), state, phi_opt_state

    def step(self, carry, seed, t, batch):
        return self._step(carry, np.uint32(seed), np.uint32(t), batch)

    def steps(self, carry, seed, t0, batches, count: int):
        """``count`` steps t0 .. t0+count-1 in one compiled call (``batches``: the steps'
        batches stacked [count, ...], or None): (carry, losses [count])."""
        return self._steps(carry, np.uint32(seed), np.uint32(t0), batches, int(count))

    def params(self, carry):
        return self._flat(carry[0]) if isinstance(carry[0], list) else carry[0]

    def state(self, carry):
        return carry[2]


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
