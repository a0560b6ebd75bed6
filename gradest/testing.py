"""The conformance kit: the checks every built-in estimator and task passes, for plugins too.

Use it in a plugin's own pytest::

    from gradest.testing import check_estimator, check_task

    def test_my_estimator_conforms():
        check_estimator("my_estimator")          # or a GradientEstimator, or options={...}

    def test_my_task_conforms():
        check_task("my_task")

`check_estimator(est)` runs, for each toy task whose distribution kind the estimator supports
(`CONFORMANCE_TASKS`: bandit, binary_toy, gaussian_quadratic, with non-uniform parameters) plus
any task given, and for each backend:

1. ``metadata``: supports ⊆ the distribution kinds, ``min_samples`` a positive integer;
   ``noise_spec``: every array has the leading axis S and a known noise kind.
2. ``surrogate`` (S + 1 samples; S is ``max(min_samples, 2)`` unless given): one compiled call of
   ``surrogate(f, dist, noise, init(dist))`` and of the loss gradient gives a finite
   ``[S + 1, *batch_shape]`` array of the backend's float dtype, a finite gradient, and a state
   with the keys and shapes ``init`` made; ``phi_loss`` (where given) is a finite scalar with a
   finite gradient of φ's shape. With both backends, jax's is checked in the float64 parity
   step (6), torch's in float32.
3. ``gradient_samples``: `GradientSampler` (the engine of `gradest.gradient_samples`) at S gives a
   finite float64 ``[R, P]`` array.
4. ``determinism``: running the sampler again gives the same numbers, bit for bit; two
   different noise draws give different surrogates (unless the estimates do not vary at all,
   as ``exact``'s): randomness comes only from the noise the harness passes in.
5. ``unbiased`` (estimators that claim it, on tasks with ground truth): a two-sided z-test of
   the mean of R = 4000 estimates (the sampler's, S samples each) against the exact gradient,
   per coordinate, Bonferroni over the P coordinates at family level ``alpha`` = 1e-4
   (threshold about 4.3 standard errors for P = 5), with a fixed seed; see `z_test`.
6. ``parity`` (when both backends run): two NumPy noise draws fed to the torch and the jax
   surrogate in float64 give the same per-sample values, loss, gradient dθ, new state,
   ``phi_loss`` and its gradient to ``|a - b| <= 1e-9 + 1e-6 |b|``.

Costs: per task and backend one compilation of the vectorized estimate and (parity) one of the
float64 surrogate; a few seconds per estimator on the toys.

`check_task(task)` checks the param layout and ``init_params``, ``problem()`` shapes (z, f(z) and
log p(z) ``[S, *batch_shape]``), finiteness, determinism, the exact loss against central finite
differences of itself along random directions and against a Monte Carlo mean of f (z-test),
and torch<->jax parity of f, log p, the exact loss and its gradient in float64.

Failures raise AssertionError naming the check, the task and backend, and by how much. A
backend that is not installed is skipped: `pytest.skip` at the end when pytest is running,
a warning otherwise. Both functions return the list of `CheckResult` they passed.
"""
from __future__ import annotations

import math
import sys
import warnings
from statistics import NormalDist
from typing import Any, Iterable, NamedTuple

import numpy as np

from gradest.backends import BACKENDS, NOISE_KINDS, available_backends, get_backend
from gradest.distributions import DISTRIBUTION_KINDS
from gradest.estimator import GradientEstimator
from gradest.measure import GradientSampler, check_compatible, make_loss
from gradest.registry import get_estimator, get_task
from gradest.task import Task, layout_size

__all__ = ["check_estimator", "check_task", "z_test", "z_scores", "ZTest", "CheckResult",
           "CONFORMANCE_TASKS", "numpy_noise", "evaluate_surrogate", "surrogate_evaluator",
           "conformance_tasks"]

#: the toy instances check_estimator uses (non-uniform parameters: bugs that cancel at θ = 0 show)
CONFORMANCE_TASKS: dict[str, dict[str, Any]] = {
    "bandit": {"rewards": [0.1, 0.5, -0.3, 1.0, 0.2], "logits": [0.3, -0.2, 0.0, 0.5, -1.0]},
    "binary_toy": {"target": [0.45, 0.1, 0.8], "logits": [0.0, 1.0, -0.5]},
    "gaussian_quadratic": {"mean": [0.5, -0.3], "log_std": [0.0, -0.5], "target": [0.0, 1.0]},
}

ALPHA = 1e-4
NUM_REPLICATES = 4000
PARITY_RTOL = 1e-6
PARITY_ATOL = 1e-9


class CheckResult(NamedTuple):
    """One passed check: ``check`` name, ``task`` label, ``backend`` ("torch+jax" for parity)."""

    check: str
    task: str
    backend: str
    detail: str = ""


class ZTest(NamedTuple):
    """``max_z``: the largest |z| over coordinates; ``threshold``: the Bonferroni critical value."""

    max_z: float
    threshold: float

    @property
    def passed(self) -> bool:
        return bool(self.max_z <= self.threshold)


# ---- statistics ---------------------------------------------------------------------------

def _se_floor(exact: np.ndarray) -> float:
    return 1e-6 * (1.0 + float(np.max(np.abs(exact)))) if exact.size else 1e-6


def z_scores(samples, exact, *, se_floor: float | None = None) -> np.ndarray:
    """Per-coordinate z = (mean - exact) / (sd / sqrt(R)) of estimates ``samples`` [R, P].

    The standard error is floored at ``se_floor`` (default 1e-6 (1 + max|exact|)), so that an
    estimator of zero variance is compared with a float tolerance rather than exactly."""
    samples = np.asarray(samples, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64).reshape(-1)
    if samples.ndim != 2 or samples.shape[1] != exact.shape[0]:
        raise ValueError(f"samples must be [R, P] with P = {exact.shape[0]} (the exact gradient's size), "
                         f"got shape {samples.shape}")
    R = samples.shape[0]
    if R < 2:
        raise ValueError(f"a z-test needs at least 2 samples, got {R}")
    floor = _se_floor(exact) if se_floor is None else float(se_floor)
    se = np.maximum(samples.std(axis=0, ddof=1) / math.sqrt(R), floor)
    return (samples.mean(axis=0) - exact) / se


def z_test(samples, exact, *, alpha: float = ALPHA, se_floor: float | None = None) -> ZTest:
    """Two-sided z-test of E[samples] = exact for every coordinate, Bonferroni-corrected.

    ``samples`` [R, P] are independent estimates, ``exact`` [P] the truth. Returns the largest
    |z| and the threshold Φ⁻¹(1 - alpha / (2P)): the family of P tests rejects with probability
    at most ``alpha`` (asymptotically in R) when the estimator is unbiased."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    z = z_scores(samples, exact, se_floor=se_floor)
    threshold = NormalDist().inv_cdf(1.0 - alpha / (2 * z.shape[0]))
    return ZTest(float(np.max(np.abs(z))), float(threshold))


# ---- noise and surrogates on NumPy input (parity) -------------------------------------------

def _numpy_draw(rng: np.random.Generator, spec) -> np.ndarray:
    shape = tuple(int(s) for s in spec.shape)
    if spec.kind == "normal":
        return rng.standard_normal(shape)
    if spec.kind == "gumbel":
        return rng.gumbel(size=shape)
    if spec.kind == "uniform":
        tiny = np.finfo(np.float64).tiny
        return np.clip(rng.random(shape), tiny, 1.0 - np.finfo(np.float64).eps / 2)
    raise ValueError(f"unknown noise kind {spec.kind!r}; known kinds: {', '.join(NOISE_KINDS)}")


def numpy_noise(task, estimator, num_samples: int, seed: int = 0, params=None) -> dict:
    """NumPy noise ``{"estimator": {...}, "task": {...}}`` for one replicate of S samples,
    drawn as the specs ask; feed it to every backend (``backend.asarray``) for parity tests."""
    task, est = get_task(task), get_estimator(estimator)
    B = get_backend(available_backends()[0], dtype="float64")
    theta = B.asarray(task.init_params() if params is None else params)
    dist = task.problem(B, theta).dist
    rng = np.random.default_rng(seed)
    out = {"estimator": {k: _numpy_draw(rng, s) for k, s in sorted(est.noise_spec(dist, num_samples).items())},
           "task": {}}
    if not est.requires_exact:
        out["task"] = {k: _numpy_draw(rng, s) for k, s in sorted(task.noise_spec(num_samples).items())}
    return out


def _tree_numpy(B, tree):
    if isinstance(tree, dict):
        return {k: _tree_numpy(B, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_tree_numpy(B, v) for v in tree)
    if tree is None or isinstance(tree, (int, float, bool, str)):
        return tree
    return np.asarray(B.to_numpy(tree))


def _tree_asarray(B, tree):
    if isinstance(tree, dict):
        return {k: _tree_asarray(B, v) for k, v in tree.items()}
    return B.asarray(tree)


def surrogate_evaluator(task, estimator, backend, params=None):
    """Compile once, call often: ``(noise, state=None) -> dict`` of NumPy outputs for the NumPy
    ``noise`` of `numpy_noise`: ``per_sample`` [S, *b], ``loss`` (mean + extra), ``grad``
    dL/dθ [P], ``state`` (the new state), and for estimators with ``phi_loss`` its value
    ``phi_loss`` and gradient ``phi_grad`` (else None). ``state`` defaults to ``init(dist)``
    (``.init_state``). One jitted call per noise shape (JAX compiles it once, not op by op)."""
    task, est = get_task(task), get_estimator(estimator)
    B = get_backend(backend) if isinstance(backend, str) else backend
    theta = B.asarray(task.init_params() if params is None else params)
    init_state = est.init(task.problem(B, theta).dist)
    loss = make_loss(task, est, B)
    use_phi = est.phi_loss is not None and isinstance(init_state, dict) and "phi" in init_state

    def evaluate(theta, enoise, tnoise, state):
        tn = None if est.requires_exact else tnoise
        prob = task.problem(B, theta, noise=tn)
        per_sample, new_state = est.surrogate(prob.f, prob.dist, enoise, state)
        grad, value = B.grad(lambda p: _with_value(loss(p, {"estimator": enoise, "task": tnoise}, state)),
                             has_aux=True)(theta)
        phi_value = phi_grad = None
        if use_phi:
            const = task.problem(B, B.stop_gradient(theta), noise=tn)
            phi_grad, phi_value = _grad_and_value(
                B, lambda q: est.phi_loss(q, const.f, const.dist, enoise, state))(state["phi"])
        return per_sample, value[0], grad, new_state, phi_value, phi_grad

    compiled = B.jit(evaluate)

    def call(noise: dict, state=None) -> dict:
        st = init_state if state is None else _tree_asarray(B, state)
        out = compiled(theta, _tree_asarray(B, noise["estimator"]), _tree_asarray(B, noise.get("task", {})), st)
        names = ("per_sample", "loss", "grad", "state", "phi_loss", "phi_grad")
        return {k: _tree_numpy(B, v) for k, v in zip(names, out)}

    call.init_state = _tree_numpy(B, init_state)
    return call


def evaluate_surrogate(task, estimator, backend, noise: dict, params=None, state=None) -> dict:
    """`surrogate_evaluator` called once: the outputs for one NumPy ``noise``."""
    return surrogate_evaluator(task, estimator, backend, params)(noise, state)


def _with_value(out):
    value, state = out
    return value, (value, state)


def _grad_and_value(B, fn):
    """``p -> (d fn / dp, fn(p))`` for scalar ``fn`` (the same order on both backends)."""

    def both(p):
        value = fn(p)
        return value, value

    return B.grad(both, has_aux=True)


# ---- helpers ----------------------------------------------------------------------------

class _Context:
    def __init__(self, what: str):
        self.what = what
        self.results: list[CheckResult] = []

    def fail(self, check: str, task: str, backend: str, message: str):
        raise AssertionError(f"{self.what}: check {check!r} failed on task {task!r}, backend {backend}: {message}")

    def ok(self, check: str, task: str, backend: str, detail: str = ""):
        self.results.append(CheckResult(check, task, backend, detail))


def _split_backends(backends: Iterable[str]) -> tuple[list[str], list[str]]:
    backends = list(backends)
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise ValueError(f"backends must be a non-empty subset of {BACKENDS}, got {backends!r}")
    have = set(available_backends())
    return [b for b in backends if b in have], [b for b in backends if b not in have]


def _report_missing(missing: list[str], ran: list[str], what: str) -> None:
    if not missing:
        return
    message = (f"{what}: backend{'s' if len(missing) > 1 else ''} {', '.join(missing)} not installed, "
               f"so not checked (checked: {', '.join(ran) or 'none'}); install it to check it "
               f"(pip install 'gradest[torch]' / 'gradest[jax]')")
    if "pytest" in sys.modules:
        import pytest

        pytest.skip(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _shape(x) -> tuple:
    return tuple(int(s) for s in getattr(x, "shape", ()))


def _finite(x) -> bool:
    return bool(np.all(np.isfinite(np.asarray(x, dtype=np.float64))))


def _close(a, b, rtol: float, atol: float) -> tuple[bool, str]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False, f"shapes differ: {a.shape} vs {b.shape}"
    if a.size == 0:
        return True, ""
    diff = np.abs(a - b)
    bad = diff > atol + rtol * np.abs(b)
    if not bad.any():
        return True, ""
    i = np.unravel_index(int(np.argmax(diff - atol - rtol * np.abs(b))), a.shape)
    return False, (f"{int(bad.sum())} of {a.size} entries differ beyond |a - b| <= {atol:g} + {rtol:g}|b|; "
                   f"worst at index {list(map(int, i))}: {a[i]!r} vs {b[i]!r} (max |a - b| = {diff.max():.3g})")


def _flat_state(tree, prefix="state") -> dict[str, Any]:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flat_state(v, f"{prefix}[{k!r}]"))
        return out
    if isinstance(tree, (list, tuple)):
        out = {}
        for i, v in enumerate(tree):
            out.update(_flat_state(v, f"{prefix}[{i}]"))
        return out
    return {prefix: tree}


def conformance_tasks(estimator) -> list[Task]:
    """The `CONFORMANCE_TASKS` instances the estimator can run on (kind, requirements, truth)."""
    est = get_estimator(estimator)
    tasks = []
    for name, options in CONFORMANCE_TASKS.items():
        task = get_task(name, **options)
        try:
            check_compatible(task, est, max(est.min_samples, 2))
        except ValueError:
            continue
        tasks.append(task)
    return tasks


# ---- check_estimator -----------------------------------------------------------------------

def check_estimator(estimator, *, options: dict | None = None, backends: Iterable[str] = ("torch", "jax"),
                    device: str = "cpu", tasks: Iterable | None = None, toy_tasks: bool = True,
                    num_samples: int | None = None,
                    num_replicates: int = NUM_REPLICATES, alpha: float = ALPHA, seed: int = 0,
                    rtol: float = PARITY_RTOL, atol: float = PARITY_ATOL) -> list[CheckResult]:
    """Run the conformance checks (see the module docstring) on ``estimator``.

    Args:
      estimator: a registered name (built with ``options``) or a `GradientEstimator`.
      backends: the backends to check; a missing one is skipped (pytest.skip / warning).
      device: "cpu" or "cuda" (every check runs there, parity included).
      tasks: extra tasks (names or `Task` objects) to check on, besides the toys.
      toy_tasks: whether to include the applicable `CONFORMANCE_TASKS`.
      num_samples: S for the statistical checks; default ``max(min_samples, 2)``.
      num_replicates: R for the z-test of unbiasedness.
      alpha: family level of the Bonferroni z-test.
      seed: the seed of all noise.
      rtol, atol: the parity tolerance.

    Raises AssertionError naming the failed check, task, backend and the size of the failure;
    ValueError when no task applies (pass ``tasks=``).
    """
    est = get_estimator(estimator, **(options or {}))
    if not isinstance(est, GradientEstimator):
        raise TypeError(f"check_estimator needs a GradientEstimator or a registered name, got {type(est).__name__}")
    ctx = _Context(f"check_estimator({est.label or '<unnamed>'})")
    ran, missing = _split_backends(backends)

    # metadata
    if not set(est.supports) or not set(est.supports) <= set(DISTRIBUTION_KINDS):
        ctx.fail("metadata", "-", "-", f"supports must be a non-empty subset of {DISTRIBUTION_KINDS}, "
                                       f"got {sorted(est.supports)!r}")
    if isinstance(est.min_samples, bool) or not isinstance(est.min_samples, int) or est.min_samples < 1:
        ctx.fail("metadata", "-", "-", f"min_samples must be a positive integer, got {est.min_samples!r}")
    S = int(num_samples) if num_samples is not None else max(est.min_samples, 2)
    if S < est.min_samples:
        raise ValueError(f"num_samples={S} is below the estimator's min_samples={est.min_samples}")
    ctx.ok("metadata", "-", "-")

    task_list = conformance_tasks(est) if toy_tasks else []
    for t in tasks or ():
        t = get_task(t)
        check_compatible(t, est, S)
        task_list.append(t)
    if not task_list:
        raise ValueError(
            f"no conformance task fits estimator {est.label!r} (supports {sorted(est.supports)}, requires "
            f"{sorted(est.requires) or 'nothing'}, requires_exact={est.requires_exact}); pass tasks=[...] "
            f"with a task it runs on")
    if not ran:
        _report_missing(missing, ran, ctx.what)
        return ctx.results

    parity = len(ran) == 2
    for task in task_list:
        varies = False
        for b in ran:  # jax's surrogate checks run in the float64 parity step when there is one
            varies |= _check_estimator_on(ctx, est, task, b, device, S, num_replicates, alpha, seed,
                                          surrogate_check=not (parity and b != ran[0]))
        if parity:
            _check_estimator_parity(ctx, est, task, device, S, seed, rtol, atol, varies)
    _report_missing(missing, ran, ctx.what)
    return ctx.results


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


def _check_noise_spec(ctx, est, task, B, s, tl, b):
    dist = task.problem(B, B.asarray(task.init_params())).dist
    for k, spec in dict(est.noise_spec(dist, s)).items():
        if spec.kind not in NOISE_KINDS or len(spec.shape) < 1 or int(spec.shape[0]) != s:
            ctx.fail("noise_spec", tl, b, f"noise {k!r} must have a kind in {NOISE_KINDS} and shape "
                                          f"[S={s}, ...], got kind {spec.kind!r} and shape {tuple(spec.shape)}")
    return dist


def _check_surrogate_outputs(ctx, est, out, init_state, want, dtype, tl, b):
    """Shape, dtype and finiteness of one `surrogate_evaluator` output; state and φ."""
    values = out["per_sample"]
    if _shape(values) != want:
        ctx.fail("surrogate", tl, b, f"per-sample surrogate must have shape [S, *batch_shape] = {want} "
                                     f"at S={want[0]}, got {_shape(values)}")
    if values.dtype != dtype:
        ctx.fail("surrogate", tl, b, f"per-sample surrogate has dtype {values.dtype}, the backend computes in "
                                     f"{dtype}; create constants with backend.asarray / zeros")
    for what in ("per_sample", "grad"):
        if not _finite(out[what]):
            ctx.fail("surrogate", tl, b, f"the {what.replace('_', '-')} output has "
                                         f"{int((~np.isfinite(out[what])).sum())} non-finite values at S={want[0]}")
    old, new = _flat_state(init_state), _flat_state(out["state"])
    if set(old) != set(new) or any(_shape(old[k]) != _shape(new[k]) for k in old):
        ctx.fail("surrogate", tl, b, f"the returned state must keep init's keys and shapes: init made "
                                     f"{ {k: _shape(v) for k, v in old.items()} }, surrogate returned "
                                     f"{ {k: _shape(v) for k, v in new.items()} }")
    if est.phi_loss is not None:
        if not isinstance(init_state, dict) or "phi" not in init_state:
            ctx.fail("phi_loss", tl, b, "the estimator gives phi_loss, so init must put its parameters in "
                                        "state['phi']")
        value, g = out["phi_loss"], out["phi_grad"]
        if value.shape != () or not _finite(value):
            ctx.fail("phi_loss", tl, b, f"phi_loss must be a finite scalar, got shape {value.shape} value {value!r}")
        if g.shape != _shape(init_state["phi"]) or not _finite(g):
            ctx.fail("phi_loss", tl, b, f"the gradient of phi_loss must be finite with φ's shape "
                                        f"{_shape(init_state['phi'])}, got shape {g.shape}, finite={_finite(g)}")
        ctx.ok("phi_loss", tl, b, "finite scalar with a finite gradient")
    ctx.ok("surrogate", tl, b, f"{want} at S={want[0]}")


def _check_uses_noise(ctx, first, second, tl, b, seed):
    if all(np.array_equal(first[k], second[k]) for k in ("per_sample", "grad")):
        ctx.fail("determinism", tl, b, f"two different noise draws (seeds {seed}, {seed + 1}) gave identical "
                                       f"surrogates and gradients, while the estimates vary: use the noise the "
                                       f"harness passes in rather than numbers of your own")


def _check_estimator_on(ctx, est, task, b, device, S, R, alpha, seed, surrogate_check) -> bool:
    """Per-backend checks in the backend's default float32; returns whether the estimates vary."""
    tl = task.label
    B = get_backend(b, device=device)
    s = S + 1  # the sampler below runs at S: both sizes are covered
    dist = _check_noise_spec(ctx, est, task, B, s, tl, b)
    if surrogate_check:
        evaluate = surrogate_evaluator(task, est, B)
        out = evaluate(numpy_noise(task, est, s, seed))
        _check_surrogate_outputs(ctx, est, out, evaluate.init_state, (s, *dist.batch_shape), np.dtype(B.dtype), tl, b)

    # gradient samples: shapes, finiteness, determinism
    # φ as init makes it: the contract holds at any φ, and the φ warm-up is the harness's own
    sampler = GradientSampler(task, est, backend=b, device=device, num_samples=S, seed=seed, phi_warmup=0)
    grads = sampler.run(R)
    P = task.num_params
    if not isinstance(grads, np.ndarray) or grads.shape != (R, P) or grads.dtype != np.float64:
        ctx.fail("gradient_samples", tl, b, f"expected a float64 NumPy array of shape (R, P) = {(R, P)}, got "
                                            f"{type(grads).__name__} {getattr(grads, 'dtype', '?')} "
                                            f"{getattr(grads, 'shape', '?')}")
    if not _finite(grads):
        bad = np.argwhere(~np.isfinite(grads))[0].tolist()
        ctx.fail("gradient_samples", tl, b, f"{int((~np.isfinite(grads)).sum())} non-finite estimates, first "
                                            f"at [replicate, param] = {bad}")
    ctx.ok("gradient_samples", tl, b, f"[{R}, {P}] at S={S}")
    repeat = sampler.run(R)
    if not np.array_equal(grads, repeat):
        ctx.fail("determinism", tl, b, f"the same seed gave different estimates (max |difference| "
                                       f"{np.max(np.abs(grads - repeat)):.3g}); draw randomness only from the noise "
                                       f"the harness passes in")
    varies = not bool(np.all(grads == grads[0]))
    if surrogate_check and varies:
        _check_uses_noise(ctx, out, evaluate(numpy_noise(task, est, s, seed + 1)), tl, b, seed)
    ctx.ok("determinism", tl, b, "same seed: identical" + ("; other noise: different" if varies else ""))

    # unbiasedness
    if est.unbiased:
        toy = task.name in CONFORMANCE_TASKS and task.options == get_task(
            task.name, **CONFORMANCE_TASKS[task.name]).options
        _, exact = _exact_value_and_grad(task, B, B.asarray(task.init_params()), cache_key=task.name if toy else None)
        if exact is None:
            ctx.ok("unbiased", tl, b, "skipped: the task has no exact gradient")
            return varies
        z = z_scores(grads, exact)
        result = z_test(grads, exact, alpha=alpha)
        if not result.passed:
            i = int(np.argmax(np.abs(z)))
            names = task.param_names()
            se = grads[:, i].std(ddof=1) / math.sqrt(R)
            ctx.fail("unbiased", tl, b,
                     f"the estimator claims to be unbiased, but the mean of {R} estimates (S={S}, seed={seed}) of "
                     f"{names[i]} is {grads[:, i].mean():.6g} against the exact {exact[i]:.6g}: "
                     f"|z| = {result.max_z:.2f} standard errors (se {se:.3g}) > the Bonferroni threshold "
                     f"{result.threshold:.2f} (alpha={alpha:g} over {P} coordinates)")
        ctx.ok("unbiased", tl, b, f"max |z| {result.max_z:.2f} <= {result.threshold:.2f} (R={R}, S={S})")
    return varies


def _check_estimator_parity(ctx, est, task, device, S, seed, rtol, atol, varies):
    """float64, the same NumPy noise (two draws) into both backends: the jax side also gets the
    surrogate checks here (torch had them in float32)."""
    tl = task.label
    s = S + 1
    noises = [numpy_noise(task, est, s, seed=seed), numpy_noise(task, est, s, seed=seed + 1)]
    out = {}
    for b in BACKENDS:
        B = get_backend(b, device=device, dtype="float64")
        evaluate = surrogate_evaluator(task, est, B)
        out[b] = [evaluate(n) for n in noises]
        if b != BACKENDS[0]:  # its float32 run skipped the surrogate checks (see the caller)
            dist = task.problem(B, B.asarray(task.init_params())).dist
            _check_surrogate_outputs(ctx, est, out[b][0], evaluate.init_state, (s, *dist.batch_shape),
                                     np.dtype("float64"), tl, b)
            if varies:
                _check_uses_noise(ctx, out[b][0], out[b][1], tl, b, seed)
    for i in range(len(noises)):
        t, j = out["torch"][i], out["jax"][i]
        pairs = [("per-sample surrogate", t["per_sample"], j["per_sample"]), ("loss", t["loss"], j["loss"]),
                 ("gradient dL/dθ", t["grad"], j["grad"])]
        ts, js = _flat_state(t["state"]), _flat_state(j["state"])
        if set(ts) != set(js):
            ctx.fail("parity", tl, "torch+jax", f"the new state has keys {sorted(ts)} in torch, {sorted(js)} in jax")
        pairs += [(f"new {k}", ts[k], js[k]) for k in sorted(ts)]
        if t["phi_loss"] is not None or j["phi_loss"] is not None:
            pairs += [("phi_loss", t["phi_loss"], j["phi_loss"]), ("d phi_loss / dφ", t["phi_grad"], j["phi_grad"])]
        for what, a, c in pairs:
            same, why = _close(a, c, rtol, atol)
            if not same:
                ctx.fail("parity", tl, "torch vs jax (float64, same NumPy noise)", f"{what}: {why}")
    ctx.ok("parity", tl, "torch+jax", f"values and gradients within {atol:g} + {rtol:g}|b| on {len(noises)} draws")


# ---- check_task ----------------------------------------------------------------------------

def check_task(task, *, options: dict | None = None, backends: Iterable[str] = ("torch", "jax"),
               num_samples: int = 4, mc_samples: int = 4000, alpha: float = ALPHA, seed: int = 0,
               rtol: float = PARITY_RTOL, atol: float = PARITY_ATOL) -> list[CheckResult]:
    """Run the task conformance checks (see the module docstring) on ``task``.

    Args:
      task: a registered name (built with ``options``) or a `Task` object.
      num_samples: S for the shape checks.
      mc_samples: samples of the Monte Carlo check of the exact loss (fewer when the task's
        ``activation_elements`` hint says a sample is large).
      alpha: level of the Monte Carlo z-test; rtol, atol: finite-difference and parity tolerance.
    """
    task = get_task(task, **(options or {}))
    ctx = _Context(f"check_task({task.label or type(task).__name__})")
    tl = task.label
    ran, missing = _split_backends(backends)

    # layout
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
        if spec.kind not in NOISE_KINDS or not spec.shape or int(spec.shape[0]) != num_samples:
            ctx.fail("layout", tl, "-", f"task noise {k!r} must have a kind in {NOISE_KINDS} and shape "
                                        f"[S={num_samples}, ...], got {spec.kind!r} {tuple(spec.shape)}")
    ctx.ok("layout", tl, "-", f"{P} parameters")
    if not ran:
        _report_missing(missing, ran, ctx.what)
        return ctx.results

    outputs = {}
    for b in ran:
        _check_task_shapes(ctx, task, b, num_samples, seed)
        outputs[b] = _check_task_exact(ctx, task, b, mc_samples, alpha, seed, rtol, atol)
    if len(ran) == 2:
        t, j = outputs["torch"], outputs["jax"]
        for what in t:
            same, why = _close(t[what], j[what], rtol, atol) if t[what] is not None and j[what] is not None else (
                t[what] is None and j[what] is None, "present in one backend only")
            if not same:
                ctx.fail("parity", tl, "torch vs jax (float64, same NumPy noise)", f"{what}: {why}")
        ctx.ok("parity", tl, "torch+jax", ", ".join(k for k in t if t[k] is not None))
    _report_missing(missing, ran, ctx.what)
    return ctx.results


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


def _check_task_exact(ctx, task, b, mc_samples, alpha, seed, rtol, atol) -> dict:
    """Float64 checks of the exact loss; returns the NumPy outputs compared across backends."""
    tl = task.label
    B = get_backend(b, dtype="float64")
    theta_np = task.init_params().astype(np.float64)
    theta = B.asarray(theta_np)
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
    L0, grad = _exact_value_and_grad(task, B, theta)
    out["exact loss"], out["exact gradient"] = L0, grad
    if L0 is None:
        ctx.ok("exact", tl, b, "skipped: no ground truth")
        return out
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
    return out
