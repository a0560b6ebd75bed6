"""The task checks: `task_checks` yields them one by one, named; `check_task` runs them all.

For a task and each backend (by default every registered backend that is installed), in this
order:

* ``layout`` (no backend): the param layout (unique names, tuples of sizes), ``num_params``
  and ``param_names``, ``init_params()`` a finite float NumPy vector, ``distribution_kind``
  known, task noise of known laws (its ``kind``) with leading axis S.
* ``problem[<backend>]``: ``problem()`` shapes in the backend's float32 (z ``[S,
  *value_shape]``, f(z) and log p(z) ``[S, *batch_shape]``, also without noise and with a
  training batch), finiteness (failures: ``finite``), a finite scalar deterministic term,
  determinism of f and of ``train_batch`` (``determinism``), ``metrics()`` a dict of numbers
  (``metrics``).
* ``exact[<backend>]`` (float64): the exact loss is a finite scalar with a finite gradient
  of θ's shape, agrees with central finite differences of itself along three random
  directions (to 1e-5 (1 + |fd| + |L|)) and with a Monte Carlo mean of f (z-test at
  ``alpha``); "skipped" without ground truth.
* ``parity[<backend> vs <reference>]`` (each backend other than the reference backend, when
  the reference is checked too): f, log p, the gradient of the mean log p, the deterministic
  term, the exact loss and its gradient, in float64 on the same NumPy noise, agree to
  ``|a - b| <= atol + rtol |b|`` (b the reference's).

The float64 outputs compared by ``parity`` are computed once per backend and shared with
``exact``. A task given by its registered name is built when its first check runs.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from gradest.backends import NOISE_LAWS, get_backend
from gradest.distributions import DISTRIBUTION_KINDS
from gradest.registry import get_task, list_tasks
from gradest.task import layout_size
from gradest.testing._core import (PARITY_ATOL, PARITY_RTOL, TASK_RULE, Check, CheckResult, Shared, _close,
                                   _Context, _finite, _flat_state, _shape, _split_backends, backend_rule,
                                   checked_backends, compared_backends, run_series)
from gradest.testing.noise import _grad_and_value, _numpy_draw, _tree_numpy
from gradest.testing.stats import ALPHA, z_test

__all__ = ["task_checks", "check_task"]


def check_task(task, *, options: dict | None = None, backends: Iterable[str] | None = None,
               num_samples: int = 4, mc_samples: int = 4000, alpha: float = ALPHA, seed: int = 0,
               rtol: float = PARITY_RTOL, atol: float = PARITY_ATOL) -> list[CheckResult]:
    """Run every task conformance check (see `task_checks`) on ``task``.

    Args:
      task: a registered name (built with ``options``) or a `Task` object.
      backends: the backends to check (registered names); by default every registered backend
        that is installed.
      num_samples: S for the shape checks.
      mc_samples: samples of the Monte Carlo check of the exact loss (fewer when the task's
        ``activation_elements`` hint says a sample is large).
      alpha: level of the Monte Carlo z-test; rtol, atol: finite-difference and parity tolerance.

    Returns the `CheckResult` list of the checks passed; raises AssertionError at the first
    failure; a backend that is not installed is skipped (`pytest.skip` at the end under pytest,
    a warning otherwise).
    """
    series = _task_series(task, options=options, backends=backends, num_samples=num_samples,
                          mc_samples=mc_samples, alpha=alpha, seed=seed, rtol=rtol, atol=atol, eager=True)
    return run_series(series)


def task_checks(task, *, options: dict | None = None, backends: Iterable[str] | None = None,
                num_samples: int = 4, mc_samples: int = 4000, alpha: float = ALPHA, seed: int = 0,
                rtol: float = PARITY_RTOL, atol: float = PARITY_ATOL) -> Iterator[tuple[str, Check]]:
    """The task checks of `check_task` (same arguments) as ``(name, check)`` pairs, in the
    order `check_task` runs them: ``layout``, then per backend ``problem[<backend>]`` and
    ``exact[<backend>]``, then ``parity[<backend> vs <reference>]``. ``check()`` runs one and returns its `CheckResult`
    list; the checks of a backend that is not installed skip."""
    for check in _task_series(task, options=options, backends=backends, num_samples=num_samples,
                              mc_samples=mc_samples, alpha=alpha, seed=seed, rtol=rtol, atol=atol, eager=False):
        yield check.name, check


class _task_series:
    """The `Check` objects of one task, iterated in order; ``ctx``, ``ran`` and ``missing`` (the
    requested backends that are not installed) for the caller."""

    def __init__(self, task, *, options, backends, num_samples, mc_samples, alpha, seed, rtol, atol, eager):
        requested = checked_backends(backends)
        self.ran, self.missing = ran, missing = _split_backends(requested)
        reference, compared = compared_backends(requested)
        built: list = []
        if not eager and isinstance(task, str) and task in list_tasks():
            given, opts = task, dict(options or {})  # built by the first check that runs
            label = tl = task
        else:
            built.append(get_task(task, **(options or {})))
            tl = built[0].label
            label = tl or type(built[0]).__name__
        self.ctx = ctx = _Context(f"check_task({label})", backend_rule(TASK_RULE))
        shared = Shared()
        self.label = label

        def the_task():
            if not built:
                built.append(get_task(given, **opts))
                ctx.what = f"check_task({built[0].label or type(built[0]).__name__})"
            return built[0]

        def make(kind, fn, backends=()):
            return Check(ctx, shared, kind, fn, subject=label, task=tl, backends=backends, ran=ran,
                         missing=missing, name_task=False)

        def outputs(b):
            return shared.get(("outputs", b), b, lambda: _task_outputs(the_task(), b, seed))

        checks = [make("layout", lambda: _check_task_layout(ctx, the_task(), num_samples))]
        for b in requested:
            checks.append(make("problem", lambda b=b: _check_task_shapes(ctx, the_task(), b, num_samples, seed),
                               (b,)))
            checks.append(make("exact", lambda b=b: _check_task_exact(ctx, the_task(), b, outputs(b), mc_samples,
                                                                     alpha, seed, rtol, atol), (b,)))
        for b in compared:
            checks.append(make("parity", lambda b=b: _check_task_parity(ctx, the_task(), outputs, b, reference,
                                                                        rtol, atol), (b, reference)))
        self._checks, self._shared = checks, shared

    def __iter__(self):
        yield from self._checks
        self._shared.complete = True


def _check_task_layout(ctx, task, num_samples):
    tl = task.label
    layout = task.param_layout
    names = [n for n, _ in layout]
    if not layout or len(set(names)) != len(names) or not all(
            isinstance(n, str) and isinstance(s, tuple) and all(isinstance(d, (int, np.integer)) and d >= 0 for d in s)
            for n, s in layout):
        ctx.fail("layout", tl, "-", f"param_layout must be a non-empty list of (unique name, tuple of sizes), "
                                    f"got {layout!r}")
    P = layout_size(layout)
    if task.num_params != P or len(task.param_names()) != P:
        ctx.fail("layout", tl, "-", f"num_params {task.num_params} and param_names ({len(task.param_names())}) "
                                    f"must match the layout's {P} entries")
    theta0 = task.init_params()
    if not isinstance(theta0, np.ndarray) or theta0.shape != (P,) or theta0.dtype.kind != "f" or not _finite(theta0):
        ctx.fail("layout", tl, "-", f"init_params() must be a finite float NumPy vector of shape ({P},), got "
                                    f"{type(theta0).__name__} {getattr(theta0, 'dtype', '?')} "
                                    f"{getattr(theta0, 'shape', '?')}")
    if task.distribution_kind not in DISTRIBUTION_KINDS:
        ctx.fail("layout", tl, "-", f"distribution_kind must be one of {DISTRIBUTION_KINDS}, got "
                                    f"{task.distribution_kind!r}")
    for k, spec in task.noise_spec(num_samples).items():
        if spec.kind not in NOISE_LAWS or not spec.shape or int(spec.shape[0]) != num_samples:
            ctx.fail("layout", tl, "-", f"task noise {k!r} must have a kind (a noise law) in {NOISE_LAWS} and shape "
                                        f"[S={num_samples}, ...], got {spec.kind!r} {tuple(spec.shape)}")
    ctx.ok("layout", tl, "-", f"{P} parameters")


def _check_task_parity(ctx, task, outputs, backend, reference, rtol, atol):
    tl = task.label
    x, r = outputs(backend), outputs(reference)
    for what in r:
        same, why = _close(x[what], r[what], rtol, atol) if x[what] is not None and r[what] is not None else (
            x[what] is None and r[what] is None, "present in one backend only")
        if not same:
            ctx.fail("parity", tl, f"{backend} vs {reference} (float64, same NumPy noise)", f"{what}: {why}")
    ctx.ok("parity", tl, f"{reference}+{backend}", ", ".join(k for k in r if r[k] is not None))


_EXACT_CACHE: dict = {}


def _exact_value_and_grad(task, B, theta, cache_key=None):
    """(exact loss, its gradient) as NumPy at θ, jitted; (None, None) without ground truth.
    ``cache_key`` (for the conformance toys, whose options are fixed) reuses earlier results."""
    key = None if cache_key is None else (cache_key, B.name, B.device, B.dtype)
    if key is not None and key in _EXACT_CACHE:
        return _EXACT_CACHE[key]
    result = None, None
    if task.has_exact() and B.jit(lambda p: task.exact_loss(B, p))(theta) is not None:
        grad, value = B.jit(_grad_and_value(B, lambda p: task.exact_loss(B, p)))(theta)
        result = np.asarray(B.to_numpy(value), dtype=np.float64), np.asarray(B.to_numpy(grad), dtype=np.float64)
    if key is not None:
        _EXACT_CACHE[key] = result
    return result


def _task_noise(task, B, S, seed) -> dict:
    rng = np.random.default_rng(seed)
    return {k: B.asarray(_numpy_draw(rng, s)) for k, s in sorted(task.noise_spec(S).items())}


def _sample_noise(B, dist, S, seed):
    from gradest.estimator import sample_noise_spec

    return B.asarray(_numpy_draw(np.random.default_rng(seed), sample_noise_spec(dist, S)["sample"]))


def _task_evaluator(task, B):
    """jit((θ, task noise, sample noise, batch) -> (z, f(z), log p(z), extra, f(z) averaged over
    the task's noise)): one compiled call instead of op-by-op dispatch."""

    def evaluate(theta, tnoise, noise, batch):
        prob = task.problem(B, theta, noise=tnoise or None, batch=batch)
        z = prob.dist.sample(noise)
        averaged = task.problem(B, theta, batch=batch)
        return z, prob.f(z), prob.dist.log_prob(z), B.asarray(prob.extra), averaged.f(z)

    return B.jit(evaluate)


def _check_task_shapes(ctx, task, b, S, seed):
    tl = task.label
    B = get_backend(b)
    theta = B.asarray(task.init_params())
    dist = task.problem(B, theta).dist
    if dist.kind != task.distribution_kind:
        ctx.fail("problem", tl, b, f"problem() gives a {dist.kind} distribution, the task declares "
                                   f"{task.distribution_kind!r}")
    evaluate = _task_evaluator(task, B)
    tnoise, noise = _task_noise(task, B, S, seed), _sample_noise(B, dist, S, seed + 1)
    z, fz, log_p, extra, fa = (B.to_numpy(x) for x in evaluate(theta, tnoise, noise, None))
    want_z, want_b = (S, *dist.value_shape), (S, *dist.batch_shape)
    if _shape(z) != want_z:
        ctx.fail("problem", tl, b, f"dist.sample must give [S, *value_shape] = {want_z}, got {_shape(z)}")
    for what, x in (("f(z)", fz), ("log p(z)", log_p), ("f(z) with noise=None", fa)):
        if _shape(x) != want_b:
            ctx.fail("problem", tl, b, f"{what} must have shape [S, *batch_shape] = {want_b}, got {_shape(x)}")
        if not _finite(x):
            ctx.fail("finite", tl, b, f"{what} has {int((~np.isfinite(x)).sum())} non-finite values")
    if extra.shape != () or not _finite(extra):
        ctx.fail("problem", tl, b, f"the deterministic term must be a finite scalar, got shape {extra.shape} "
                                   f"value {extra!r}")
    # determinism
    again = B.to_numpy(evaluate(theta, _task_noise(task, B, S, seed), noise, None)[1])
    if not np.array_equal(again, fz):
        ctx.fail("determinism", tl, b, "problem() with the same θ and noise gave a different f(z)")
    batch = task.train_batch(B, seed, 0)
    if batch is not None:
        first, second = _tree_numpy(B, batch), _tree_numpy(B, task.train_batch(B, seed, 0))
        fa_, fb_ = _flat_state(first, "batch"), _flat_state(second, "batch")
        if set(fa_) != set(fb_) or not all(np.array_equal(np.asarray(fa_[k]), np.asarray(fb_[k])) for k in fa_):
            ctx.fail("determinism", tl, b, "train_batch(seed, step) gave different data on a second call")
        fb = B.to_numpy(evaluate(theta, tnoise, noise, batch)[1])
        if fb.shape != want_b or not _finite(fb):
            ctx.fail("problem", tl, b, f"with a training batch, f(z) must be finite of shape {want_b}, "
                                       f"got {fb.shape}")
    metrics = task.metrics(B, theta)
    if not isinstance(metrics, dict) or not all(isinstance(k, str) for k in metrics):
        ctx.fail("metrics", tl, b, f"metrics() must return a dict of name -> number, got {metrics!r}")
    try:
        {k: float(v) for k, v in metrics.items()}
    except (TypeError, ValueError) as err:
        ctx.fail("metrics", tl, b, f"metrics() values must be numbers: {err}")
    ctx.ok("problem", tl, b, f"z {want_z}, f and log p {want_b}")


def _task_outputs(task, b, seed) -> dict:
    """The float64 outputs compared across backends (``parity``), NumPy: f, log p, the gradient
    of the mean log p and the deterministic term on NumPy noise, the exact loss and gradient."""
    B = get_backend(b, dtype="float64")
    theta = B.asarray(task.init_params().astype(np.float64))
    S = 3
    dist = task.problem(B, theta).dist
    tnoise, noise = _task_noise(task, B, S, seed), _sample_noise(B, dist, S, seed + 1)

    def outputs(theta, tnoise, noise):
        prob = task.problem(B, theta, noise=tnoise or None)
        z = prob.dist.sample(noise)

        def mean_log_prob(p):
            return B.mean(task.problem(B, p).dist.log_prob(z))

        return prob.f(z), prob.dist.log_prob(z), B.grad(mean_log_prob)(theta), B.asarray(prob.extra)

    values = [B.to_numpy(x) for x in B.jit(outputs)(theta, tnoise, noise)]
    out = dict(zip(("f(z)", "log p(z)", "d mean log p(z) / dθ", "deterministic term"), values))
    out["exact loss"], out["exact gradient"] = _exact_value_and_grad(task, B, theta)
    return out


def _check_task_exact(ctx, task, b, out, mc_samples, alpha, seed, rtol, atol) -> None:
    """Float64 checks of the exact loss (``out``: `_task_outputs` on this backend)."""
    tl = task.label
    B = get_backend(b, dtype="float64")
    theta_np = task.init_params().astype(np.float64)
    theta = B.asarray(theta_np)
    dist = task.problem(B, theta).dist
    L0, grad = out["exact loss"], out["exact gradient"]
    if L0 is None:
        ctx.ok("exact", tl, b, "skipped: no ground truth")
        return
    if L0.shape != () or not _finite(L0):
        ctx.fail("exact", tl, b, f"exact_loss must be a finite scalar, got {L0!r}")
    if grad.shape != theta_np.shape or not _finite(grad):
        ctx.fail("exact", tl, b, f"the gradient of exact_loss must be finite with shape {theta_np.shape}, got "
                                 f"{grad.shape}")
    L0 = float(L0)
    # central finite differences along random unit directions
    exact_loss = B.jit(lambda p: task.exact_loss(B, p))
    rng = np.random.default_rng(seed + 2)
    h = 1e-5 * max(1.0, float(np.max(np.abs(theta_np))))
    for _ in range(3):
        v = rng.standard_normal(theta_np.shape)
        v /= np.linalg.norm(v)
        up = float(B.to_numpy(exact_loss(B.asarray(theta_np + h * v))))
        down = float(B.to_numpy(exact_loss(B.asarray(theta_np - h * v))))
        fd, gv = (up - down) / (2 * h), float(grad @ v)
        tol = 1e-5 * (1.0 + abs(fd) + abs(L0))
        if abs(fd - gv) > tol:
            ctx.fail("exact", tl, b, f"the gradient of exact_loss along a random direction is {gv:.8g}, central "
                                     f"finite differences (h={h:g}) give {fd:.8g}: |difference| {abs(fd - gv):.3g} "
                                     f"> {tol:.3g}")
    # Monte Carlo: the mean of f over samples (and the task's noise) estimates the exact loss
    hint = int(task.activation_elements(1) or 0)
    n = int(max(64, min(mc_samples, 5e7 // max(hint, 1))))

    def monte_carlo(theta, tnoise, noise):
        prob = task.problem(B, theta, noise=tnoise or None)
        fz = prob.f(prob.dist.sample(noise))  # [n, *b]
        return B.reshape(fz, (n, -1)), B.asarray(prob.extra)

    fz, extra = B.jit(monte_carlo)(theta, _task_noise(task, B, n, seed + 3), _sample_noise(B, dist, n, seed + 4))
    per_sample = B.to_numpy(fz).mean(axis=1) + float(B.to_numpy(extra))
    result = z_test(per_sample[:, None], np.array([L0]), alpha=alpha, se_floor=1e-9 * (1 + abs(L0)))
    if not result.passed:
        ctx.fail("exact", tl, b, f"exact_loss {L0:.6g} disagrees with the Monte Carlo mean of f over {n} samples "
                                 f"{per_sample.mean():.6g}: |z| = {result.max_z:.2f} > {result.threshold:.2f} "
                                 f"standard errors")
    ctx.ok("exact", tl, b, f"finite differences and Monte Carlo (|z| {result.max_z:.2f}, n={n}) agree")
