"""Measurement: R independent gradient estimates in one vectorized call, and their statistics
against the exact gradient.

A *kernel* (`SamplingKernel`) is built once per trace key (`gradest.compiled`: task and its
options, estimator label, backend, device, dtype, S, chunk size, noise layout) and cached::

    estimates(θ [P], state, seed, first, count, batch) -> [count, P]

is ``jit(vmap(grad(loss)))`` over the replicates first .. first+count-1, with their noise
drawn inside the same compiled call from `gradest.noise` (replicate i's noise depends on
(seed, stream, i) alone). ``loss`` is the mean of the estimator's surrogate plus the task's
deterministic term. θ, the estimator state, the seed and the first replicate are arguments,
so other θ, seeds and R reuse the compiled function.

Chunks: R replicates run in chunks of ``chunk_size`` (bounded memory), never in a Python loop
over replicates. Where compiled functions are specialized to shapes (JAX), a chunk smaller
than ``chunk_size`` (R < chunk, or the last chunk) is padded up to the next multiple of
`PAD_GRANULE` replicates (below it, the next power of two), or to a size already compiled that
holds it at most twice over, and the extra replicates are dropped: a key compiles a few
functions over its life, usually one or two, and the padding costs at most a few percent. Chunking never changes
the numbers.

Estimator state is set up at θ before measuring (`SamplingKernel.prepare`):

* a moving state (``update_state``: moving averages) is warmed up for `STATE_WARMUP_STEPS`
  steps, as it is during training, not measured at its zero start;
* trainable φ (``phi_loss``: NVIL's baseline network, RELAX's control variate) is trained for
  ``phi_warmup`` steps (default `PHI_WARMUP_STEPS`, Adam at `PHI_WARMUP_LEARNING_RATE`) at
  fixed θ, as `gradest.train` trains it, the moving state following φ step by step;
  ``phi_warmup=0`` measures φ as ``init`` made it.

Both warm-ups draw their own noise streams (``"warmup/..."``, ``"phi_warmup/..."``), independent
of the measured replicates.
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Any, NamedTuple

import numpy as np

from gradest import compiled, noise
from gradest.backends import get_backend
from gradest.registry import ESTIMATORS, get_estimator, get_task
from gradest.validation import flat_params, integer, optional_integer
from gradest.validation import seed as check_seed

#: memory budget (bytes) of one vectorized chunk of replicates, before the task's own hint
CHUNK_BYTES = 256 * 2**20
#: largest chunk where compiled functions are shape-specialized (padding costs at most this)
MAX_STATIC_CHUNK = 16384
#: where compiled functions are shape-specialized, chunks of at least this many replicates are
#: padded to a multiple of it (smaller ones to a power of two)
PAD_GRANULE = 1024
#: largest chunk elsewhere
MAX_CHUNK = 1 << 16
#: steps of state warm-up at θ for estimators whose state moves (moving averages)
STATE_WARMUP_STEPS = 32
#: default steps of φ training at θ for estimators with trainable φ (``phi_warmup``)
PHI_WARMUP_STEPS = 100
PHI_WARMUP_LEARNING_RATE = 1e-2
#: intra-op threads of timed calls unless asked otherwise (small tasks: one thread is stable)
TIMING_THREADS = 1
#: warmed-up states kept per kernel (θ, seed, φ steps)
_STATES_PER_KERNEL = 8


class UnsupportedCombinationError(ValueError):
    """An estimator x task combination that cannot run (raised before any computation)."""


def supporting_estimators(kind: str) -> list[str]:
    names = []
    for name in ESTIMATORS.names():
        try:
            est = get_estimator(name)
        except Exception:  # an estimator whose defaults need options is not listed here
            continue
        if kind in est.supports:
            names.append(name)
    return names


def check_compatible(task, estimator, num_samples: int = 1) -> None:
    """Raise `UnsupportedCombinationError` naming why ``estimator`` cannot run on ``task``."""
    kind = task.distribution_kind
    if kind not in estimator.supports:
        raise UnsupportedCombinationError(
            f"estimator {estimator.label!r} does not support task {task.name!r}: the task samples from a "
            f"{kind} distribution, and {estimator.name!r} supports {', '.join(sorted(estimator.supports)) or 'nothing'}. "
            f"Estimators that support {kind}: {', '.join(supporting_estimators(kind))}")
    if num_samples < estimator.min_samples:
        raise UnsupportedCombinationError(
            f"estimator {estimator.label!r} needs num_samples >= {estimator.min_samples} "
            f"(its baseline is computed from the other samples); got num_samples={num_samples}")
    missing = set(estimator.requires) - set(getattr(task, "capabilities", ()))
    if missing:
        raise UnsupportedCombinationError(
            f"estimator {estimator.label!r} needs the task capabilities {', '.join(sorted(missing))}, which task "
            f"{task.name!r} does not offer (it offers: {', '.join(sorted(task.capabilities)) or 'none'})")
    if estimator.requires_exact and not task.has_exact():
        raise UnsupportedCombinationError(
            f"estimator {estimator.label!r} needs the task's exact loss, and task {task.name!r} with these "
            f"options has none (too large to enumerate, or no closed form); use a sampling estimator")
    reason = getattr(task, "incompatibility", lambda est: None)(estimator)
    if reason:
        raise UnsupportedCombinationError(reason)


def default_samples(estimator, num_samples) -> int:
    """S: ``num_samples``, or the estimator's ``min_samples`` when None."""
    if num_samples is None:
        return max(1, int(estimator.min_samples))
    return integer("num_samples", num_samples)


def make_loss(task, estimator, backend, batch=None):
    """``loss(θ, noise, state, batch=batch) -> (scalar, new_state)``: the surrogate loss of one
    replicate (``noise``: ``{"estimator": {...}, "task": {...}}`` without a replicate axis)."""
    B = backend
    use_task_noise = not estimator.requires_exact
    default_batch = batch

    def loss(params, noise, state, batch=default_batch):
        prob = task.problem(B, params, noise=noise.get("task") if use_task_noise else None, batch=batch)
        per_sample, new_state = estimator.surrogate(prob.f, prob.dist, noise["estimator"], state)
        return B.mean(per_sample) + prob.extra, new_state

    return loss


def noise_specs(task, estimator, backend, params, num_samples: int, batch=None) -> dict:
    """``{"estimator": {name: NoiseSpec}, "task": {name: NoiseSpec}}`` at S = ``num_samples``."""
    dist = task.problem(backend, params, batch=batch).dist
    specs = {"estimator": dict(estimator.noise_spec(dist, num_samples)), "task": {}}
    if not estimator.requires_exact:
        specs["task"] = dict(task.noise_spec(num_samples))
    return specs


def draw_noise(backend, specs: dict, seed: int, first: int, count: int) -> dict:
    """{group: {name: [count, *shape]}} for replicates first .. first+count-1 (`gradest.noise`)."""
    return noise.draw_tree(backend, specs, seed, first, count)


def phi_objective(task, estimator, backend):
    """``(φ, θ, noise, state, batch) -> scalar``: the estimator's φ loss with θ held constant."""
    B = backend
    use_task_noise = not estimator.requires_exact

    def objective(phi, theta, noise, state, batch):
        theta = B.stop_gradient(theta)  # the distribution's parameters are held constant
        prob = task.problem(B, theta, noise=noise.get("task") if use_task_noise else None, batch=batch)
        return estimator.phi_loss(phi, prob.f, prob.dist, noise["estimator"], dict(state, phi=phi))

    return objective


def auto_chunk(task, backend, specs, num_samples: int) -> int:
    """Replicates per vectorized call from the memory budget `CHUNK_BYTES` (a power of two, at
    most `MAX_STATIC_CHUNK` where compiled functions are shape-specialized, else `MAX_CHUNK`)."""
    itemsize = 8 if backend.dtype == "float64" else 4
    noise_elems = sum(int(np.prod(s.shape)) for g in specs.values() for s in g.values())
    hint = task.activation_elements(num_samples)
    per_replicate = (4 * task.num_params + 8 * noise_elems + 4 * hint) * itemsize
    chunk = max(1, CHUNK_BYTES // max(per_replicate, 1))
    chunk = 1 << (int(chunk).bit_length() - 1)
    return int(min(chunk, MAX_STATIC_CHUNK if backend.static_shapes else MAX_CHUNK))


class SamplingKernel:
    """The compiled functions of one trace key (see the module docstring); cached, shared by
    every `GradientSampler` with that key."""

    def __init__(self, task, estimator, backend, num_samples: int, chunk_size: int | None, batch):
        self.task, self.estimator, self.backend, self.num_samples = task, estimator, backend, num_samples
        B = backend
        theta0 = B.asarray(task.init_params())
        self.specs = noise_specs(task, estimator, B, theta0, num_samples, batch)
        self.chunk_size = int(chunk_size) if chunk_size else auto_chunk(task, B, self.specs, num_samples)
        self.loss = make_loss(task, estimator, B)
        self._grads = B.replicate_grads(self.loss)
        self._by_count: dict = {}
        self._states: dict = {}
        self._state_step = None
        self._phi_step = None

    # ---- estimates -----------------------------------------------------------------------
    def _compiled(self, count: int):
        fn = self._by_count.get(count)
        if fn is None:
            B, grads = self.backend, self._grads
            draw = noise.drawer(B, self.specs, count)

            def estimates(params, state, seed, first, batch):
                return grads(params, draw(seed, first), state, batch)  # [count, P]

            fn = self._by_count[count] = B.jit(estimates)
        return fn

    def padded(self, count: int) -> int:
        """The size of the compiled call that computes ``count`` replicates: ``count`` where
        functions are not shape-specialized, else the next multiple of `PAD_GRANULE` (below it:
        the next power of two; at most the chunk), or a size already compiled that holds
        ``count`` at most twice over, so that another R usually compiles nothing."""
        if not self.backend.static_shapes or count >= self.chunk_size:
            return count
        if count >= PAD_GRANULE:
            size = min(-(-count // PAD_GRANULE) * PAD_GRANULE, self.chunk_size)
        else:
            size = min(1 << (count - 1).bit_length(), self.chunk_size)
        if size not in self._by_count:
            compiled = [n for n in self._by_count if count <= n <= 2 * size]  # at most twice the work
            if compiled:
                return min(compiled)
        return size

    def estimates(self, params, state, seed: int, first: int, count: int, batch=None):
        """Backend array [padded(count), P]: the estimates of replicates first, first+1, ...;
        the first ``count`` rows are those asked for (the rest is padding: drop it on the host,
        where slicing compiles nothing)."""
        return self._compiled(self.padded(count))(params, state, int(seed), int(first), batch)  # Python ints: the fast dispatch path

    def compiled_sizes(self) -> list[int]:
        return sorted(self._by_count)

    # ---- state ---------------------------------------------------------------------------
    def prepare(self, theta_np: np.ndarray, seed: int, phi_warmup: int, batch=None):
        """(θ on the device, the estimator state at θ warmed up as the module docstring says);
        kept for the last few (θ, seed, φ steps), so repeated calls pay for them once."""
        key = (theta_np.tobytes(), seed, phi_warmup)
        if batch is None and key in self._states:
            return self._states[key]
        params = self.backend.asarray(theta_np)
        state = self._prepare_state(params, seed, phi_warmup, batch)
        if batch is None:
            if len(self._states) >= _STATES_PER_KERNEL:
                self._states.pop(next(iter(self._states)))
            self._states[key] = params, state
        return params, state

    def _prepare_state(self, params, seed: int, phi_warmup: int, batch):
        B, est = self.backend, self.estimator
        state = est.init(self.task.problem(B, params, batch=batch).dist)
        if est.update_state:
            step = self._state_warmup_step()
            for t in range(STATE_WARMUP_STEPS):
                state = step(params, state, int(seed), int(t), batch)
        if est.phi_loss is not None and phi_warmup > 0:
            if not (isinstance(state, dict) and "phi" in state):
                raise ValueError(f"estimator {est.label!r} defines phi_loss but its init() state has no 'phi' "
                                 "entry; init must return {'phi': <flat array>, ...}")
            train = self._phi_warmup_step()
            carry = train.init(state["phi"], state, PHI_WARMUP_LEARNING_RATE)
            for t in range(phi_warmup):
                carry, _ = train.step(carry, seed, t, (params, batch))
            state = dict(train.state(carry), phi=train.params(carry))
        return state

    def _state_warmup_step(self):
        if self._state_step is None:
            B, loss = self.backend, self.loss
            draw = noise.drawer(B, noise.prefixed(self.specs, "warmup"), 1)

            def step(params, state, seed, t, batch):
                one = noise.first_replicate(noise.unprefixed(draw(seed, t), "warmup"))
                return loss(B.stop_gradient(params), one, state, batch)[1]

            self._state_step = B.jit(step)
        return self._state_step

    def _phi_warmup_step(self):
        """A training step of φ alone at fixed θ (carried in the batch slot), Adam."""
        if self._phi_step is None:
            B = self.backend
            objective = phi_objective(self.task, self.estimator, B)
            draw = noise.drawer(B, noise.prefixed(self.specs, "phi_warmup"), 1)

            loss = self.loss

            def phi_loss(phi, step_noise, state, theta_and_batch):
                # φ's objective, and the state the step moves to (moving statistics follow φ, as
                # in training)
                theta, batch = theta_and_batch
                state = dict(state, phi=B.stop_gradient(phi))
                _, new_state = loss(B.stop_gradient(theta), step_noise, state, batch)
                return objective(phi, theta, step_noise, state, batch), dict(new_state)

            def draw_step(seed, t):
                return noise.first_replicate(noise.unprefixed(draw(seed, t), "phi_warmup"))

            self._phi_step = B.train_step(phi_loss, draw_step, "adam")
        return self._phi_step


def sampling_kernel(task, estimator, backend, num_samples: int, chunk_size: int | None = None,
                    batch=None) -> SamplingKernel:
    """The cached `SamplingKernel` of this trace key (built on first use)."""
    key = ("sampling", compiled.task_key(task), compiled.estimator_key(estimator), compiled.backend_key(backend),
           int(num_samples), chunk_size, compiled.shape_signature(batch))
    return compiled.CACHE.get(key, lambda: SamplingKernel(task, estimator, backend, num_samples, chunk_size, batch))


class Timing(NamedTuple):
    """Seconds per estimate: the median of ``repeats`` timed calls, and their range (for 5
    repeats, [min, max] covers the median with probability 1 - 2·0.5⁵ ≈ 94%)."""

    median: float
    low: float
    high: float
    repeats: int
    threads: int
    count: int


class GradientSampler:
    """Independent gradient estimates of ``estimator`` on ``task`` at θ (default θ₀).

    Cheap to build: the compiled functions come from the cache (`sampling_kernel`). Then
    ``run(num_replicates)`` as often as needed; ``set_params`` moves θ without compiling."""

    def __init__(self, task, estimator, *, backend="torch", device="cpu", num_samples=None, seed=0,
                 dtype="float32", params=None, chunk_size=None, batch=None, phi_warmup=None):
        self.task = get_task(task)
        self.estimator = get_estimator(estimator)
        self.num_samples = default_samples(self.estimator, num_samples)
        chunk_size = optional_integer("chunk_size", chunk_size, 0) or None
        self.phi_warmup = optional_integer("phi_warmup", phi_warmup, PHI_WARMUP_STEPS, minimum=0)
        check_compatible(self.task, self.estimator, self.num_samples)
        self.backend = get_backend(backend, device=device, dtype=dtype)
        self.seed = check_seed(seed)
        self.batch = batch
        self.kernel = sampling_kernel(self.task, self.estimator, self.backend, self.num_samples, chunk_size, batch)
        self.specs = self.kernel.specs
        self.chunk_size = self.kernel.chunk_size
        self.set_params(params)

    @property
    def phi_warmup_steps(self) -> int:
        """φ steps the measured state had (0 for estimators without trainable φ)."""
        return self.phi_warmup if self.estimator.phi_loss is not None else 0

    def set_params(self, params, state=None) -> None:
        """Measure at θ = ``params`` (flat NumPy vector; None: θ₀) from now on, reusing the
        compiled functions; the estimator's state is set up (and warmed up) at the new θ, or
        is ``state`` (a backend pytree of this estimator's ``init`` structure, e.g. φ as a
        training run has trained it)."""
        theta = flat_params(self.task, params)
        if state is None:
            self.params, self.state = self.kernel.prepare(theta, self.seed, self.phi_warmup, self.batch)
        else:
            self.params, self.state = self.backend.asarray(theta), state

    def estimates(self, first: int, count: int):
        """Backend array [count, P] of the estimates of replicates first .. first+count-1."""
        out = self._padded_estimates(first, count)
        return out if out.shape[0] == count else out[:count]

    def _padded_estimates(self, first: int, count: int):
        return self.kernel.estimates(self.params, self.state, self.seed, first, count, self.batch)

    def run(self, num_replicates: int) -> np.ndarray:
        """[R, P] float64: the estimates of replicates 0 .. R-1."""
        R = integer("num_replicates", num_replicates)
        B, chunk = self.backend, self.chunk_size
        if R <= chunk:
            out = B.to_numpy(self._padded_estimates(0, R))
            return np.array(out[:R] if out.shape[0] != R else out, dtype=np.float64)
        out = np.empty((R, self.task.num_params), dtype=np.float64)
        for first in range(0, R, chunk):
            count = min(chunk, R - first)
            out[first:first + count] = B.to_numpy(self._padded_estimates(first, count))[:count]
        return out

    def time_per_estimate(self, repeats: int = 5, count: int | None = None, threads: int | None = TIMING_THREADS
                          ) -> Timing:
        """Seconds per estimate of ``count`` replicates (default: one chunk) per vectorized call:
        the median and range of ``repeats`` timed calls after one warm-up call, run with
        ``threads`` intra-op threads (None: the backend's current setting)."""
        repeats = integer("repeats", repeats)
        count = self.kernel.padded(count or self.chunk_size)  # what one call computes
        B = self.backend
        with B.threads(threads):
            B.block(self._padded_estimates(0, count))
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                B.block(self._padded_estimates(0, count))
                times.append((time.perf_counter() - start) / count)
            used = B.thread_count()
        return Timing(statistics.median(times), min(times), max(times), repeats, used, count)


def gradient_samples(task, estimator, *, backend="torch", device="cpu", num_replicates=1000,
                     num_samples=None, seed=0, **options) -> np.ndarray:
    """[num_replicates, num_params]: independent estimates of dL/dθ at the task's initial θ
    (θ flattened in the task's ``param_layout`` order), each averaging ``num_samples`` samples
    (default: the fewest the estimator works with, its ``min_samples``: 1 for most, 2 for
    leave-one-out baselines).

    Extra options: ``dtype`` ("float32"), ``params`` (θ other than θ₀), ``chunk_size``
    (memory only: the numbers do not depend on it), ``phi_warmup`` (φ training steps at θ for
    estimators with trainable φ; default `PHI_WARMUP_STEPS`, 0: φ as initialized). Repeated
    calls with the same task, estimator, backend, S and chunk size reuse the compiled function."""
    return _sampler(task, estimator, backend, device, num_samples, seed, options).run(num_replicates)


#: recent samplers of `gradient_samples`, by the identity of their task and estimator objects
#: and their options: a repeated call (R = 1 in a loop) skips the checks it already passed
_SAMPLERS: dict = {}
_SAMPLERS_KEPT = 16


def _sampler(task, estimator, backend, device, num_samples, seed, options) -> "GradientSampler":
    try:
        params = options.get("params")
        key = (id(task), id(estimator), backend if isinstance(backend, str) else id(backend), device, num_samples,
               seed, tuple(sorted((k, v) for k, v in options.items() if k != "params")),
               None if params is None else np.asarray(params, dtype=np.float64).tobytes())
        hash(key)
    except TypeError:  # an unhashable option: no reuse
        key = None
    hit = _SAMPLERS.get(key) if key is not None else None
    if hit is not None and hit[0] is task and hit[1] is estimator:
        return hit[2]
    sampler = GradientSampler(task, estimator, backend=backend, device=device, num_samples=num_samples,
                              seed=seed, **options)
    if key is not None and not isinstance(task, str) and not isinstance(estimator, str):
        if len(_SAMPLERS) >= _SAMPLERS_KEPT:
            _SAMPLERS.pop(next(iter(_SAMPLERS)))
        _SAMPLERS[key] = (task, estimator, sampler)  # the objects are kept: their ids stay theirs
    return sampler


class _Exact:
    """The task's exact loss and gradient as compiled functions of θ (None: no ground truth)."""

    def __init__(self, task, B):
        self.backend = B
        theta0 = B.asarray(task.init_params())
        self.available = task.has_exact() and task.exact_loss(B, theta0) is not None
        if self.available:
            loss = lambda p: task.exact_loss(B, p)  # noqa: E731
            self.loss = B.jit(loss)
            self.value_and_grad = B.jit(B.value_and_grad(loss))


def exact_functions(task, B) -> _Exact:
    """The cached compiled exact loss and gradient of ``task`` on backend ``B``."""
    return compiled.CACHE.get(("exact", compiled.task_key(task), compiled.backend_key(B)), lambda: _Exact(task, B))


def exact_gradient(task, *, backend="torch", device="cpu", dtype="float32", params=None):
    """The exact dL/dθ at θ₀ (or ``params``) as a NumPy vector, or None without ground truth."""
    task = get_task(task)
    if not task.has_exact():
        return None
    B = get_backend(backend, device=device, dtype=dtype)
    exact = exact_functions(task, B)
    if not exact.available:
        return None
    _, grad = exact.value_and_grad(B.asarray(flat_params(task, params)))
    return np.asarray(B.to_numpy(grad), dtype=np.float64)


def exact_loss(task, *, backend="torch", device="cpu", dtype="float32", params=None) -> float | None:
    task = get_task(task)
    if not task.has_exact():
        return None
    B = get_backend(backend, device=device, dtype=dtype)
    exact = exact_functions(task, B)
    if not exact.available:
        return None
    return float(B.to_numpy(exact.loss(B.asarray(flat_params(task, params)))))


Z95 = 1.959963984540054


def summarize(grads: np.ndarray, exact: np.ndarray | None) -> dict[str, Any]:
    """Statistics of estimates [R, P] against the exact gradient [P] (None: no truth).

    variance: trace of the covariance (unbiased), with a 95% interval from the spread of the
    per-replicate squared deviations; bias_norm = ‖mean - exact‖ (bias_sq its square);
    mse = mean ‖g - exact‖²; cosine_to_exact = mean cosine of single estimates to the exact
    gradient; snr = ‖mean‖ / sqrt(variance). ``*_low``/``*_high`` are 95% intervals."""
    grads = np.asarray(grads, dtype=np.float64)
    R, P = grads.shape
    mean = grads.mean(axis=0)
    dev = ((grads - mean) ** 2).sum(axis=1) * (R / max(R - 1, 1))  # [R]
    variance = float(dev.mean())
    half = Z95 * float(dev.std(ddof=1)) / math.sqrt(R) if R > 1 else math.nan
    out: dict[str, Any] = {
        "num_replicates": R, "num_params": P,
        "variance": variance, "variance_low": max(variance - half, 0.0), "variance_high": variance + half,
        "mean_norm": float(np.linalg.norm(mean)),
        "snr": float(np.linalg.norm(mean) / math.sqrt(variance)) if variance > 0 else math.inf,
    }
    if exact is None:
        out.update({k: math.nan for k in ("bias_norm", "bias_norm_low", "bias_norm_high", "bias_sq",
                                           "mse", "mse_low", "mse_high", "cosine_to_exact",
                                           "cosine_low", "cosine_high", "exact_norm")})
        return out
    exact = np.asarray(exact, dtype=np.float64)
    assert exact.shape == (P,), f"exact gradient has shape {exact.shape}, estimates have {P} columns"
    bias = mean - exact
    bias_norm = float(np.linalg.norm(bias))
    se_mean = math.sqrt(variance / R)
    err = ((grads - exact) ** 2).sum(axis=1)  # [R]
    mse = float(err.mean())
    mse_half = Z95 * float(err.std(ddof=1)) / math.sqrt(R) if R > 1 else math.nan
    norms = np.linalg.norm(grads, axis=1) * np.linalg.norm(exact)
    cos = np.divide(grads @ exact, norms, out=np.zeros(R), where=norms > 0)
    cos_half = Z95 * float(cos.std(ddof=1)) / math.sqrt(R) if R > 1 else math.nan
    out.update({
        "exact_norm": float(np.linalg.norm(exact)),
        "bias_norm": bias_norm, "bias_norm_low": max(bias_norm - Z95 * se_mean, 0.0),
        "bias_norm_high": bias_norm + Z95 * se_mean,
        "bias_sq": bias_norm**2,
        "mse": mse, "mse_low": max(mse - mse_half, 0.0), "mse_high": mse + mse_half,
        "cosine_to_exact": float(cos.mean()), "cosine_low": float(cos.mean() - cos_half),
        "cosine_high": float(cos.mean() + cos_half),
    })
    return out


def gradient_stats(task, estimator, *, backend="torch", device="cpu", num_replicates=1000,
                   num_samples=None, seed=0, timing_repeats: int = 5, threads: int | None = TIMING_THREADS,
                   **options) -> dict[str, Any]:
    """Variance (trace of covariance), bias_norm, mse, cosine_to_exact, snr and
    seconds_per_estimate (with 95% intervals) of ``estimator`` on ``task``, against the exact
    gradient.

    Timing: the median of ``timing_repeats`` vectorized calls after a warm-up, with their range
    (``seconds_low``/``seconds_high``), run with ``threads`` intra-op threads (default 1: tiny
    operations are stable on one thread; None: the backend's setting). The result records
    ``threads``, ``timing_repeats``, ``phi_warmup_steps`` and ``noise_version``. Options as
    `gradient_samples`."""
    sampler = GradientSampler(task, estimator, backend=backend, device=device,
                              num_samples=num_samples, seed=seed, **options)
    grads = sampler.run(num_replicates)
    exact = exact_gradient(sampler.task, backend=sampler.backend, params=options.get("params"))
    stats = summarize(grads, exact)
    timing = sampler.time_per_estimate(timing_repeats, min(sampler.chunk_size, num_replicates), threads)
    stats.update({
        "task": sampler.task.name, "estimator": sampler.estimator.label, "backend": sampler.backend.name,
        "device": sampler.backend.device, "num_samples": sampler.num_samples, "seed": sampler.seed,
        "seconds_per_estimate": timing.median, "seconds_low": timing.low, "seconds_high": timing.high,
        "timing_repeats": timing.repeats, "threads": timing.threads,
        "work_normalized_variance": stats["variance"] * timing.median,
        "phi_warmup_steps": sampler.phi_warmup_steps, "noise_version": noise.NOISE_VERSION,
    })
    return stats
