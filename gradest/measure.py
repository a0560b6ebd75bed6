"""Measurement: R independent gradient estimates in one vectorized call, and their statistics
against the exact gradient.

`GradientSampler` builds, once, the function

    (θ [P], noise {group: {name: [R', ...]}}, state) -> estimates [R', P]

as ``jit(vmap(grad(loss)))`` over the replicate axis of the noise (torch: ``torch.func``;
jax: JAX's transforms), where ``loss`` is the mean of the estimator's surrogate plus the
task's deterministic term. Replicates are processed in chunks of ``chunk_size`` (bounded
memory), never in a Python loop over replicates. The noise of replicate window
[first, first + count) is drawn from (seed, stream, window): the estimator's ``sample``
stream is shared by all estimators (common random numbers).
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from gradest.backends import get_backend
from gradest.registry import ESTIMATORS, get_estimator, get_task
from gradest.validation import finite

#: memory budget (bytes) of one vectorized chunk of replicates, before the task's own hint
CHUNK_BYTES = 256 * 2**20
#: steps of state warm-up at θ₀ for estimators whose state moves (moving averages)
STATE_WARMUP_STEPS = 32


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


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def make_loss(task, estimator, backend, batch=None):
    """``loss(θ, noise, state) -> (scalar, new_state)``: the surrogate loss of one replicate."""
    B = backend
    use_task_noise = not estimator.requires_exact

    def loss(params, noise, state):
        prob = task.problem(B, params, noise=noise.get("task") if use_task_noise else None, batch=batch)
        per_sample, new_state = estimator.surrogate(prob.f, prob.dist, noise["estimator"], state)
        return B.mean(per_sample) + prob.extra, new_state

    return loss


def noise_specs(task, estimator, backend, params, num_samples: int, batch=None) -> dict:
    dist = task.problem(backend, params, batch=batch).dist
    specs = {"estimator": dict(estimator.noise_spec(dist, num_samples)), "task": {}}
    if not estimator.requires_exact:
        specs["task"] = dict(task.noise_spec(num_samples))
    return specs


def draw_noise(backend, specs: dict, seed: int, first: int, count: int) -> dict:
    """{group: {name: [count, *shape]}} for replicates first .. first+count-1."""
    return {group: {name: backend.noise(seed, f"{group}/{name}", spec.kind, spec.shape, first, count)
                    for name, spec in group_specs.items()}
            for group, group_specs in specs.items()}


def initial_state(task, estimator, backend, params, num_samples: int, seed: int, batch=None,
                  warmup_steps: int = STATE_WARMUP_STEPS):
    """The estimator's state at θ, warmed up for ``warmup_steps`` steps when it moves, so that
    e.g. a moving-average baseline is measured as it is during training, not at its zero start.
    The warm-up uses its own noise stream, independent of the measured replicates."""
    dist = task.problem(backend, params, batch=batch).dist
    state = estimator.init(dist)
    if not estimator.update_state:
        return state
    loss = make_loss(task, estimator, backend, batch)
    specs = noise_specs(task, estimator, backend, params, num_samples, batch)
    warm_specs = {g: s for g, s in specs.items()}
    for step in range(warmup_steps):
        noise = draw_noise(backend, warm_specs, seed + 7919, step, 1)
        noise = {g: {k: v[0] for k, v in d.items()} for g, d in noise.items()}
        _, state = loss(backend.stop_gradient(params), noise, state)
    return state


class GradientSampler:
    """Independent gradient estimates of ``estimator`` on ``task`` at θ (default θ₀).

    Build once (checks, backend, jit), then ``run(num_replicates)`` as often as needed; asv
    benchmarks time ``run`` after a warm-up call."""

    def __init__(self, task, estimator, *, backend="torch", device="cpu", num_samples=1, seed=0,
                 dtype="float32", params=None, chunk_size=None, batch=None):
        self.task = get_task(task)
        self.estimator = get_estimator(estimator)
        self.num_samples = _positive_int("num_samples", num_samples)
        check_compatible(self.task, self.estimator, self.num_samples)
        self.backend = B = get_backend(backend, device=device, dtype=dtype)
        theta = self.task.init_params() if params is None else np.asarray(params, dtype=np.float64)
        if theta.shape != (self.task.num_params,):
            raise ValueError(f"params must be a flat vector of {self.task.num_params} entries for task "
                             f"{self.task.name!r}, got shape {theta.shape}")
        finite("params", theta, owner=f"task {self.task.name!r}")
        self.seed = int(seed)
        self.batch = batch
        self.params = B.asarray(theta)
        self.specs = noise_specs(self.task, self.estimator, B, self.params, self.num_samples, batch)
        self.state = initial_state(self.task, self.estimator, B, self.params, self.num_samples, self.seed, batch)
        self.chunk_size = chunk_size or self._auto_chunk()
        loss = make_loss(self.task, self.estimator, B, batch)
        self._vgrad = B.vmap(B.grad(loss, has_aux=True), in_axes=(None, 0, None))
        self._estimate = B.jit(self._vgrad)
        self._fused: dict = {}  # jax: count -> jitted (θ, state, first) -> estimates, noise inside

    def set_params(self, params) -> None:
        """Measure at θ = ``params`` (flat NumPy vector) from now on, reusing the compiled
        function; the estimator's state is re-initialized (and warmed up) at the new θ."""
        theta = np.asarray(params, dtype=np.float64)
        if theta.shape != (self.task.num_params,):
            raise ValueError(f"params must be a flat vector of {self.task.num_params} entries for task "
                             f"{self.task.name!r}, got shape {theta.shape}")
        finite("params", theta, owner=f"task {self.task.name!r}")
        self.params = self.backend.asarray(theta)
        self.state = initial_state(self.task, self.estimator, self.backend, self.params, self.num_samples,
                                   self.seed, self.batch)

    def _auto_chunk(self) -> int:
        itemsize = 8 if self.backend.dtype == "float64" else 4
        noise_elems = sum(int(np.prod(s.shape)) for g in self.specs.values() for s in g.values())
        hint = getattr(self.task, "activation_elements", lambda s: 0)(self.num_samples)
        per_replicate = (4 * self.task.num_params + 8 * noise_elems + 4 * hint) * itemsize
        return int(max(1, min(1 << 16, CHUNK_BYTES // max(per_replicate, 1))))

    def estimates(self, first: int, count: int):
        """Backend array [count, P] of the estimates of replicates first .. first+count-1."""
        if self.backend.name == "jax":
            grads, _ = self._fused_estimate(count)(self.params, self.state, first)
            return grads
        noise = draw_noise(self.backend, self.specs, self.seed, first, count)
        grads, _ = self._estimate(self.params, noise, self.state)
        return grads

    def _fused_estimate(self, count: int):
        """JAX fast path: ``(θ, state, first) -> (estimates [count, P], state)`` with the noise
        of replicates first .. first+count-1 drawn inside the same jitted function, through
        `Backend.noise_fn` (the numbers of `draw_noise`, ``first`` traced: one compilation per
        chunk size). Drawing the noise eagerly costs a dispatch per key derivation and per noise
        array, which for cheap estimators took longer than the estimates themselves."""
        fn = self._fused.get(count)
        if fn is None:
            B, seed, vgrad = self.backend, self.seed, self._vgrad
            draws = {group: {name: B.noise_fn(f"{group}/{name}", spec.kind, spec.shape, count)
                             for name, spec in group_specs.items()}
                     for group, group_specs in self.specs.items()}

            def fused(params, state, first):
                noise = {group: {name: draw(seed, first) for name, draw in d.items()}
                         for group, d in draws.items()}
                return vgrad(params, noise, state)

            fn = self._fused[count] = B.jit(fused)
        return fn

    def run(self, num_replicates: int) -> np.ndarray:
        R = _positive_int("num_replicates", num_replicates)
        out = np.empty((R, self.task.num_params), dtype=np.float64)
        for first in range(0, R, self.chunk_size):
            count = min(self.chunk_size, R - first)
            out[first:first + count] = self.backend.to_numpy(self.estimates(first, count))
        return out

    def time_per_estimate(self, repeats: int = 3, count: int | None = None) -> tuple[float, float, float]:
        """(best, min, max) seconds per estimate over ``repeats`` timed vectorized calls of
        ``count`` replicates (default: one chunk), after one warm-up call."""
        count = count or self.chunk_size
        B = self.backend
        B.block(self.estimates(0, count))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            B.block(self.estimates(0, count))
            times.append((time.perf_counter() - start) / count)
        return min(times), min(times), max(times)


def gradient_samples(task, estimator, *, backend="torch", device="cpu", num_replicates=1000,
                     num_samples=1, seed=0, **options) -> np.ndarray:
    """[num_replicates, num_params]: independent estimates of dL/dθ at the task's initial θ
    (θ flattened in the task's ``param_layout`` order), each averaging ``num_samples`` samples.

    Extra options: ``dtype`` ("float32"), ``params`` (θ other than θ₀), ``chunk_size``."""
    sampler = GradientSampler(task, estimator, backend=backend, device=device,
                              num_samples=num_samples, seed=seed, **options)
    return sampler.run(num_replicates)


def exact_gradient(task, *, backend="torch", device="cpu", dtype="float32", params=None):
    """The exact dL/dθ at θ₀ (or ``params``) as a NumPy vector, or None without ground truth."""
    task = get_task(task)
    if not task.has_exact():
        return None
    B = get_backend(backend, device=device, dtype=dtype)
    theta = B.asarray(task.init_params() if params is None else np.asarray(params, dtype=np.float64))
    if task.exact_loss(B, theta) is None:
        return None
    return B.to_numpy(B.grad(lambda p: task.exact_loss(B, p))(theta)).astype(np.float64)


def exact_loss(task, *, backend="torch", device="cpu", dtype="float32", params=None) -> float | None:
    task = get_task(task)
    if not task.has_exact():
        return None
    B = get_backend(backend, device=device, dtype=dtype)
    theta = B.asarray(task.init_params() if params is None else np.asarray(params, dtype=np.float64))
    value = task.exact_loss(B, theta)
    return None if value is None else float(B.to_numpy(value))


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
                   num_samples=1, seed=0, timing_repeats: int = 3, **options) -> dict[str, Any]:
    """Variance (trace of covariance), bias_norm, mse, cosine_to_exact, snr and
    seconds_per_estimate (with 95% intervals; timing: best/min/max of ``timing_repeats``
    vectorized calls after a warm-up) of ``estimator`` on ``task``, against the exact gradient."""
    sampler = GradientSampler(task, estimator, backend=backend, device=device,
                              num_samples=num_samples, seed=seed, **options)
    grads = sampler.run(num_replicates)
    exact = exact_gradient(sampler.task, backend=backend, device=device, dtype=sampler.backend.dtype,
                           params=options.get("params"))
    stats = summarize(grads, exact)
    best, low, high = sampler.time_per_estimate(timing_repeats, min(sampler.chunk_size, num_replicates))
    stats.update({
        "task": sampler.task.name, "estimator": sampler.estimator.label, "backend": sampler.backend.name,
        "device": sampler.backend.device, "num_samples": sampler.num_samples, "seed": sampler.seed,
        "seconds_per_estimate": best, "seconds_low": low, "seconds_high": high,
        "work_normalized_variance": stats["variance"] * best,
    })
    return stats
