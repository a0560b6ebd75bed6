"""The sampler: R independent gradient estimates in one vectorized call.

A *kernel* (`SamplingKernel`) is built once per trace key (`gradest.cache`: task and its
options, estimator label, backend, device, dtype, S, chunk size, noise layout) and cached::

    estimates(θ [P], state, seed, first, count, batch) -> [count, P]

is ``jit(vmap(grad(loss)))`` over the replicates first .. first+count-1, with their noise
drawn inside the same compiled call from `gradest.noise` (replicate i's noise depends on
(seed, stream, i) alone). ``loss`` is `gradest.binding.make_loss`: the mean of the
estimator's surrogate plus the task's deterministic term. θ, the estimator state, the seed
and the first replicate are arguments, so other θ, seeds and R reuse the compiled function.

Chunks: R replicates run in chunks of ``chunk_size`` (bounded memory,
`gradest.binding.auto_chunk`), never in a Python loop over replicates. Where compiled
functions are specialized to shapes (JAX), a chunk smaller than ``chunk_size`` (R < chunk, or
the last chunk) is padded up to the next multiple of `PAD_GRANULE` replicates (below it, the
next power of two), or to a size already compiled that holds it at most twice over, and the
extra replicates are dropped: a key compiles a few functions over its life, usually one or
two, and the padding costs at most a few percent. Chunking never changes the numbers.

Estimator state is set up at θ before measuring (`SamplingKernel.prepare`):

* a moving state (``update_state``: moving averages) is warmed up for `STATE_WARMUP_STEPS`
  steps, as it is during training, not measured at its zero start;
* trainable φ (``phi_loss``: NVIL's baseline network, RELAX's control variate) is trained for
  ``phi_warmup`` steps (default `PHI_WARMUP_STEPS`, Adam at `PHI_WARMUP_LEARNING_RATE`) at
  fixed θ, as `gradest.train` trains it, the moving state following φ step by step;
  ``phi_warmup=0`` measures φ as ``init`` made it.

Memory (`gradest.memory`): before any work (compilation, warm-ups, estimates), a sampler refuses
a chunk whose estimated size (chunk x `gradest.binding.replicate_bytes`) exceeds the available
host memory (device ``cpu``), and ``run(R)`` (with ``num_replicates=R`` at construction, before
the warm-ups) an [R, P] float64 result that exceeds it, each naming the size and the fix.

Both warm-ups draw their own noise streams (``"warmup/..."``, ``"phi_warmup/..."``), independent
of the measured replicates, and reuse the kernel's own loss (nothing is built again for them).

`GradientSampler` is the user-facing object (task, estimator, θ, seed -> ``run(R)`` [R, P]
float64, ``chunks(R)`` the same rows chunk by chunk for `gradest.streaming`,
``time_per_estimate``); `recent_sampler` keeps the last few samplers of
`gradest.gradient_samples` in the named cache ``"samplers"`` of `gradest.cache` (emptied with
everything else by ``gradest.clear_compile_cache()``).
"""
from __future__ import annotations

import statistics
import time
from typing import NamedTuple

import numpy as np

from gradest import cache, memory, noise
from gradest.backends import get_backend
from gradest.binding import (auto_chunk, check_compatible, default_samples, make_loss, noise_specs,
                             phi_objective, replicate_bytes)
from gradest.registry import get_estimator, get_task
from gradest.validation import flat_params, integer, optional_integer
from gradest.validation import seed as check_seed

__all__ = ["SamplingKernel", "sampling_kernel", "Timing", "GradientSampler", "recent_sampler", "PAD_GRANULE",
           "STATE_WARMUP_STEPS", "PHI_WARMUP_STEPS", "PHI_WARMUP_LEARNING_RATE", "TIMING_THREADS"]

#: where compiled functions are shape-specialized, chunks of at least this many replicates are
#: padded to a multiple of it (smaller ones to a power of two)
PAD_GRANULE = 1024
#: steps of state warm-up at θ for estimators whose state moves (moving averages)
STATE_WARMUP_STEPS = 32
#: default steps of φ training at θ for estimators with trainable φ (``phi_warmup``)
PHI_WARMUP_STEPS = 100
PHI_WARMUP_LEARNING_RATE = 1e-2
#: intra-op threads of timed calls unless asked otherwise (small tasks: one thread is stable)
TIMING_THREADS = 1
#: warmed-up states kept per kernel (θ, seed, φ steps)
_STATES_PER_KERNEL = 8
#: recent samplers of `gradest.gradient_samples` (a repeated call, R = 1 in a loop, skips the
#: checks it already passed)
_SAMPLERS = cache.lru("samplers", 16)


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

            fn = self._by_count[count] = B.replicate_call(B.jit(estimates))  # under the backend's thread policy
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
            B, loss = self.backend, self.loss
            objective = phi_objective(self.task, self.estimator, B)
            draw = noise.drawer(B, noise.prefixed(self.specs, "phi_warmup"), 1)

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
    key = ("sampling", cache.task_key(task), cache.estimator_key(estimator), cache.backend_key(backend),
           int(num_samples), chunk_size, cache.shape_signature(batch))
    return cache.CACHE.get(key, lambda: SamplingKernel(task, estimator, backend, num_samples, chunk_size, batch))


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
    ``run(num_replicates)`` as often as needed; ``set_params`` moves θ without compiling.
    ``num_replicates``: the R that ``run`` will be asked for, refused here, before the warm-ups,
    when its [R, P] result cannot fit in memory (`check_replicates`)."""

    def __init__(self, task, estimator, *, backend="torch", device="cpu", num_samples=None, seed=0,
                 dtype="float32", params=None, chunk_size=None, batch=None, phi_warmup=None,
                 num_replicates=None):
        self.task = get_task(task)
        self.estimator = get_estimator(estimator)
        self.num_samples = default_samples(self.estimator, num_samples)
        chunk_size = optional_integer("chunk_size", chunk_size, 0) or None
        self.phi_warmup = optional_integer("phi_warmup", phi_warmup, PHI_WARMUP_STEPS, minimum=0)
        check_compatible(self.task, self.estimator, self.num_samples)
        self.backend = get_backend(backend, device=device, dtype=dtype)
        self.seed = check_seed(seed)
        self.batch = batch
        if num_replicates is not None:
            self.check_replicates(num_replicates)
        self.kernel = sampling_kernel(self.task, self.estimator, self.backend, self.num_samples, chunk_size, batch)
        self.specs = self.kernel.specs
        self.chunk_size = self.kernel.chunk_size
        self._check_chunk(chunk_size is not None)
        self.set_params(params)

    def check_replicates(self, num_replicates: int) -> int:
        """``num_replicates`` (validated), or `gradest.memory.InsufficientMemoryError` when
        ``run``'s [R, P] float64 result cannot fit in the available memory."""
        R, P = integer("num_replicates", num_replicates), self.task.num_params
        memory.require(R * P * 8, f"gradient_samples with num_replicates={R} returns a [{R}, {P}] float64 array, which",
                       lambda available: f"ask for at most ~{available // (8 * P)} replicates, or call "
                                         "gradest.gradient_stats, which streams the estimates in O(P) memory")
        return R

    def _check_chunk(self, chosen: bool) -> None:
        """Refuse a chunk whose estimated size exceeds the available host memory (device cpu)."""
        if self.backend.device != "cpu":  # the chunk lives in the accelerator's memory, not queried here
            return
        per = max(replicate_bytes(self.task, self.backend, self.specs, self.num_samples), 1)
        memory.require(self.chunk_size * per,
                       f"a chunk of {self.chunk_size} replicates ({'chunk_size' if chosen else 'the automatic chunk'}; "
                       f"~{memory.format_bytes(per)} per replicate of task {self.task.name!r})",
                       lambda available: "pass a smaller chunk_size "
                                         f"(at most ~{1 << (max(available // per, 1).bit_length() - 1)})")

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

    def chunks(self, num_replicates: int, start: int = 0):
        """Yield (first, [count, P] float64) over replicates ``start`` .. R-1 in the chunks `run`
        computes them in (``start``: a multiple of the chunk size): `run`'s rows, a chunk at a
        time, for statistics in O(P) memory (`gradest.streaming`). A chunk computed again gives
        the same numbers (replicate i's noise depends on (seed, stream, i) alone)."""
        R, chunk = integer("num_replicates", num_replicates), self.chunk_size
        assert start % chunk == 0, f"start {start} is not a chunk boundary (chunk {chunk})"
        B = self.backend
        for first in range(start, R, chunk):
            count = min(chunk, R - first)
            out = B.to_numpy(self._padded_estimates(first, count))
            yield first, np.array(out[:count] if out.shape[0] != count else out, dtype=np.float64)

    def run(self, num_replicates: int) -> np.ndarray:
        """[R, P] float64: the estimates of replicates 0 .. R-1."""
        R = self.check_replicates(num_replicates)
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
        ``threads`` intra-op threads (None: the backend's current setting). The timed calls are
        those `run` makes (same kernel, θ and state): nothing is built for timing."""
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


def recent_sampler(task, estimator, *, backend="torch", device="cpu", num_samples=None, seed=0,
                   num_replicates=None, **options) -> GradientSampler:
    """A `GradientSampler` of these arguments, the same object as a recent call's when ``task``
    and ``estimator`` are the same built objects (by identity) and the options are equal.

    Names are not kept (a name builds a new object each time); neither are unhashable options.
    ``num_replicates`` (not part of the key): the R about to be run, refused before a new
    sampler's warm-ups when its result cannot fit (`GradientSampler.check_replicates`)."""
    if isinstance(task, str) or isinstance(estimator, str):
        key = None
    else:
        try:
            params = options.get("params")
            key = (id(task), id(estimator), backend if isinstance(backend, str) else id(backend), device,
                   num_samples, seed, tuple(sorted((k, v) for k, v in options.items() if k != "params")),
                   None if params is None else np.asarray(params, dtype=np.float64).tobytes())
            hash(key)
        except TypeError:  # an unhashable option: no reuse
            key = None

    def build():
        return GradientSampler(task, estimator, backend=backend, device=device, num_samples=num_samples, seed=seed,
                               num_replicates=num_replicates, **options)

    if key is None:
        return build()
    # the entry keeps task and estimator alive, so their ids cannot be reused while it exists
    sampler = _SAMPLERS.get(key, lambda: (task, estimator, build()))[2]
    if num_replicates is not None:
        sampler.check_replicates(num_replicates)
    return sampler
