"""The estimator checks: `estimator_checks` yields them one by one, named; `check_estimator` runs them all.

On each toy task whose distribution kind the estimator supports (`CONFORMANCE_TASKS`: bandit,
binary_toy, gaussian_quadratic, with non-uniform parameters) plus any task given, and on each
backend (by default every registered backend that is installed; the reference backend is
`gradest.backends.reference_backend`, torch), in this order (names as `estimator_checks` gives
them, e.g. ``unbiased[bandit-torch]``):

1. ``metadata`` (once): ``supports`` ⊆ the distribution kinds, ``min_samples`` a positive
   integer. ``noise_spec[<task>-<backend>]``: every array has the leading axis S and a known
   noise law (its ``kind``).
2. ``surrogate[<task>-<backend>]`` (S + 1 samples; S is ``max(min_samples, 2)`` unless given):
   one compiled call of ``surrogate(f, dist, noise, init(dist))`` and of the loss gradient
   gives a finite ``[S + 1, *batch_shape]`` array of the backend's float dtype, a finite
   gradient, and a state with the keys and shapes ``init`` made; ``phi_loss`` (where given)
   is a finite scalar with a finite gradient of φ's shape. The reference backend, and a backend
   not compared with it, is checked in float32; a backend compared with the reference in
   float64, on the parity step's evaluations (7), after the other checks of the task.
3. ``gradient_samples[<task>-<backend>]``: `GradientSampler` (the engine of
   `gradest.gradient_samples`) at S gives a finite float64 ``[R, P]`` array.
4. ``determinism[<task>-<backend>]``: running the sampler again gives the same numbers, bit
   for bit; two different noise draws give different surrogates (unless the estimates do not
   vary at all, as ``exact``'s): randomness comes only from the noise the harness passes in.
5. ``unbiased[<task>-<backend>]`` (estimators that claim it; "skipped" on tasks without ground
   truth): a two-sided z-test of the mean of R = 4000 estimates (the sampler's, S samples
   each) against the exact gradient, per coordinate, Bonferroni over the P coordinates at
   family level ``alpha`` = 1e-4 (threshold about 4.3 standard errors for P = 5), with a
   fixed seed; see `gradest.testing.z_test`.
6. ``evaluations[<task>-<backend>]`` (on the first checked backend only): the declared
   f-evaluations per estimate (`gradest.estimator.f_evaluations`) is a positive integer for
   S in `EVALUATION_SIZES`, and equals the number of points f is evaluated at by one eager
   call of the surrogate (f wrapped to count the rows it is called on, `count_evaluations`) at
   each of those S that the estimator accepts.
7. ``parity[<task>-<backend> vs <reference>]`` (for each backend other than the reference,
   when the reference is checked too): two NumPy noise draws fed to the backend's and the
   reference's surrogate in float64 give the same per-sample values, loss, gradient dθ, new
   state, ``phi_loss`` and its gradient to ``|a - b| <= 1e-9 + 1e-6 |b|`` (b the reference's);
   the gradient dθ to the larger rtol the task's distribution declares (``gradient_rtol``,
   where a backend approximates the reparameterized gradient: Gamma, Beta, Dirichlet).

Shared work, computed once per task and backend by whichever check needs it first: the
backend and distribution (``noise_spec``), the float32 evaluation (``surrogate`` and
``determinism``), the sampler's R replicates (``gradient_samples``, ``determinism``,
``unbiased``), the float64 evaluations (``determinism`` of a compared backend, its
``surrogate``, ``parity``). Costs: per task and backend one compilation of the vectorized
estimate and (parity) one of the float64 surrogate; a few seconds per estimator on the toys.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Iterator

import numpy as np

from gradest.backends import NOISE_LAWS, get_backend
from gradest.distributions import DISTRIBUTION_KINDS
from gradest.estimator import GradientEstimator, f_evaluations
from gradest.measure import GradientSampler, check_compatible
from gradest.registry import ESTIMATORS, estimator_variants, get_estimator, get_task, list_tasks
from gradest.task import Objective, Task
from gradest.testing._core import (ESTIMATOR_RULE, PARITY_ATOL, PARITY_RTOL, Check, CheckResult, Shared, _close,
                                   _Context, _finite, _flat_state, _shape, _split_backends, backend_rule,
                                   checked_backends, compared_backends, run_series)
from gradest.testing.noise import _tree_asarray, numpy_noise, surrogate_evaluator
from gradest.testing.stats import ALPHA, z_scores, z_test
from gradest.testing.tasks import _exact_value_and_grad

__all__ = ["CONFORMANCE_TASKS", "NUM_REPLICATES", "EVALUATION_SIZES", "conformance_tasks", "estimator_checks",
           "check_estimator", "count_evaluations"]

#: the toy instances check_estimator uses (non-uniform parameters: bugs that cancel at θ = 0 show)
CONFORMANCE_TASKS: dict[str, dict[str, Any]] = {
    "bandit": {"rewards": [0.1, 0.5, -0.3, 1.0, 0.2], "logits": [0.3, -0.2, 0.0, 0.5, -1.0]},
    "binary_toy": {"target": [0.45, 0.1, 0.8], "logits": [0.0, 1.0, -0.5]},
    "gaussian_quadratic": {"mean": [0.5, -0.3], "log_std": [0.0, -0.5], "target": [0.0, 1.0]},
}

#: R of the z-test of unbiasedness
NUM_REPLICATES = 4000
#: the S at which the ``evaluations`` check compares the declared f-evaluations with a count
EVALUATION_SIZES = (1, 2, 4)


def count_evaluations(task, estimator, backend, num_samples: int, seed: int = 0) -> int:
    """The points f is evaluated at by one eager call of ``estimator``'s surrogate at S =
    ``num_samples`` on ``task`` at θ₀ (the rows of every array f is called on, and 1 per call
    of f's closed-form ``expectation``), with NumPy noise of ``seed``."""
    task, est = get_task(task), get_estimator(estimator)
    B = get_backend(backend) if isinstance(backend, str) else backend
    noise = numpy_noise(task, est, num_samples, seed)
    task_noise = None if est.requires_exact or not noise["task"] else _tree_asarray(B, noise["task"])
    prob = task.problem(B, B.asarray(task.init_params()), noise=task_noise)
    rows = []

    def counted(z):
        rows.append(int(z.shape[0]))
        return prob.f(z)

    def counted_expectation(dist):
        rows.append(1)
        return prob.f.expectation(dist)

    def counted_path_only(z):  # f with the distribution's parameters held fixed: one evaluation per row
        rows.append(int(z.shape[0]))
        return prob.f.path_only(z)

    f = Objective(counted, counted_expectation if prob.f.expectation is not None else None,
                  counted_path_only if getattr(prob.f, "path_only", None) is not None else None)
    est.surrogate(f, prob.dist, _tree_asarray(B, noise["estimator"]), est.init(prob.dist))
    return sum(rows)


def compatible_tasks(estimator, specs: dict) -> list[Task]:
    """The tasks ``{name: options}`` of ``specs`` that are registered and that the estimator can
    run on at its smallest S of at least 2 (distribution kind, requirements, truth)."""
    est = get_estimator(estimator)
    tasks = []
    for name, options in specs.items():
        if name not in list_tasks():
            continue
        task = get_task(name, **options)
        try:
            check_compatible(task, est, max(est.min_samples, 2))
        except ValueError:
            continue
        tasks.append(task)
    return tasks


def conformance_tasks(estimator) -> list[Task]:
    """The `CONFORMANCE_TASKS` instances the estimator can run on (kind, requirements, truth)."""
    return compatible_tasks(estimator, CONFORMANCE_TASKS)


def declared_variants(name: str) -> list[dict]:
    """The variants estimator ``name`` declares at registration, other than its defaults (the
    ones a conformance suite checks beside the defaults)."""
    defaults = ESTIMATORS.entry(name).option_defaults()
    return [v for v in estimator_variants(name)
            if v and any(defaults.get(k, object()) != value for k, value in v.items())]


def check_estimator(estimator, *, options: dict | None = None, backends: Iterable[str] | None = None,
                    device: str = "cpu", tasks: Iterable | None = None, toy_tasks: bool = True,
                    num_samples: int | None = None,
                    num_replicates: int = NUM_REPLICATES, alpha: float = ALPHA, seed: int = 0,
                    rtol: float = PARITY_RTOL, atol: float = PARITY_ATOL) -> list[CheckResult]:
    """Run every estimator conformance check (see `estimator_checks`) on ``estimator``.

    Args:
      estimator: a registered name (built with ``options``) or a `GradientEstimator`.
      backends: the backends to check (registered names); by default every registered backend
        that is installed. A missing one is skipped (pytest.skip / warning).
      device: "cpu" or "cuda" (every check runs there, parity included).
      tasks: extra tasks (names or `Task` objects) to check on, besides the toys.
      toy_tasks: whether to include the applicable `CONFORMANCE_TASKS`.
      num_samples: S for the statistical checks; default ``max(min_samples, 2)``.
      num_replicates: R for the z-test of unbiasedness.
      alpha: family level of the Bonferroni z-test.
      seed: the seed of all noise.
      rtol, atol: the parity tolerance.

    Returns the `CheckResult` list of the checks passed. Raises AssertionError naming the failed
    check, task, backend and the size of the failure; ValueError when no task applies (pass
    ``tasks=``).
    """
    series = _estimator_series(estimator, options=options, backends=backends, device=device, tasks=tasks,
                               toy_tasks=toy_tasks, num_samples=num_samples, num_replicates=num_replicates,
                               alpha=alpha, seed=seed, rtol=rtol, atol=atol)
    return run_series(series)


def estimator_checks(estimator, *, options: dict | None = None, backends: Iterable[str] | None = None,
                     device: str = "cpu", tasks: Iterable | None = None, toy_tasks: bool = True,
                     num_samples: int | None = None,
                     num_replicates: int = NUM_REPLICATES, alpha: float = ALPHA, seed: int = 0,
                     rtol: float = PARITY_RTOL, atol: float = PARITY_ATOL) -> Iterator[tuple[str, Check]]:
    """The checks of `check_estimator` (same arguments) as ``(name, check)`` pairs, in the order
    `check_estimator` runs them: ``metadata``, then per task and backend
    ``noise_spec[<task>-<backend>]``, ``surrogate[...]``, ``gradient_samples[...]``,
    ``determinism[...]``, ``unbiased[...]`` (estimators that claim it), and per task and backend
    compared with the reference ``parity[<task>-<backend> vs <reference>]`` (see the module
    docstring). ``check()`` runs one and returns its
    `CheckResult` list; checks share their expensive work, so running all of them one by one
    costs what `check_estimator` costs. The checks of a backend that is not installed skip.

    When the metadata is invalid, only ``metadata`` is yielded (its check fails); a ValueError
    (no task fits, ``num_samples`` below ``min_samples``) is raised when the iteration gets
    past ``metadata``.
    """
    for check in _estimator_series(estimator, options=options, backends=backends, device=device, tasks=tasks,
                                   toy_tasks=toy_tasks, num_samples=num_samples, num_replicates=num_replicates,
                                   alpha=alpha, seed=seed, rtol=rtol, atol=atol):
        yield check.name, check


def _metadata_problem(est) -> str | None:
    if not set(est.supports) or not set(est.supports) <= set(DISTRIBUTION_KINDS):
        return f"supports must be a non-empty subset of {DISTRIBUTION_KINDS}, got {sorted(est.supports)!r}"
    if isinstance(est.min_samples, bool) or not isinstance(est.min_samples, int) or est.min_samples < 1:
        return f"min_samples must be a positive integer, got {est.min_samples!r}"
    return None


class _estimator_series:
    """The `Check` objects of one estimator, iterated in order (the tasks are resolved after
    ``metadata``); ``ctx``, ``ran`` and ``missing`` for the caller."""

    def __init__(self, estimator, *, options, backends, device, tasks, toy_tasks, num_samples, num_replicates,
                 alpha, seed, rtol, atol):
        est = get_estimator(estimator, **(options or {}))
        if not isinstance(est, GradientEstimator):
            raise TypeError(f"check_estimator needs a GradientEstimator or a registered name, got "
                            f"{type(est).__name__}")
        self.est = est
        self.label = est.label or "<unnamed>"
        self.ctx = _Context(f"check_estimator({self.label})", backend_rule(ESTIMATOR_RULE))
        self.requested = checked_backends(backends)
        self.ran, self.missing = _split_backends(self.requested)
        self.reference, self.compared = compared_backends(self.requested)
        self.shared = Shared()
        self._args = dict(device=device, tasks=tasks, toy_tasks=toy_tasks, num_samples=num_samples,
                          R=num_replicates, alpha=alpha, seed=seed, rtol=rtol, atol=atol)

    def _check(self, kind, fn, task: str = "-", backends: tuple = ()) -> Check:
        return Check(self.ctx, self.shared, kind, fn, subject=self.label, task=task, backends=backends,
                     ran=self.ran, missing=self.missing)

    def __iter__(self) -> Iterator[Check]:
        est, ctx, a = self.est, self.ctx, self._args

        def metadata():
            problem = _metadata_problem(est)
            if problem:
                ctx.fail("metadata", "-", "-", problem)
            ctx.ok("metadata", "-", "-")

        yield self._check("metadata", metadata)
        if _metadata_problem(est):
            return  # the metadata check fails; nothing else can be set up
        S = int(a["num_samples"]) if a["num_samples"] is not None else max(est.min_samples, 2)
        if S < est.min_samples:
            raise ValueError(f"num_samples={S} is below the estimator's min_samples={est.min_samples}")
        task_list = conformance_tasks(est) if a["toy_tasks"] else []
        for t in a["tasks"] or ():
            t = get_task(t)
            check_compatible(t, est, S)
            task_list.append(t)
        if not task_list:
            raise ValueError(
                f"no conformance task fits estimator {est.label!r} (supports {sorted(est.supports)}, requires "
                f"{sorted(est.requires) or 'nothing'}, requires_exact={est.requires_exact}); pass tasks=[...] "
                f"with a task it runs on")
        for i, task in enumerate(task_list):
            yield from self._task_checks(i, task, S)
        self.shared.complete = True

    def _task_checks(self, i: int, task, S: int) -> Iterator[Check]:
        est, ctx, shared, a = self.est, self.ctx, self.shared, self._args
        device, R, alpha, seed, rtol, atol = (a[k] for k in ("device", "R", "alpha", "seed", "rtol", "atol"))
        ran, requested, reference, compared = self.ran, self.requested, self.reference, self.compared
        tl, P = task.label, task.num_params
        s = S + 1  # the surrogate checks run at S + 1, the sampler at S: both sizes are covered
        # a backend compared with the reference has its surrogate checked in the float64 parity
        # step (where both run); the reference and any other in float32
        single = {b: not (b in compared and b in ran and reference in ran) for b in requested}

        def dist(b):
            def compute():
                B = get_backend(b, device=device)
                return B, _check_noise_spec(ctx, est, task, B, s, tl, b)

            return shared.get(("dist", i, b), b, compute)

        def evaluation32(b):
            def compute():
                B, _ = dist(b)
                evaluate = surrogate_evaluator(task, est, B)
                return evaluate, evaluate(numpy_noise(task, est, s, seed))

            return shared.get(("float32", i, b), b, compute)

        def samples(b):
            def compute():
                dist(b)
                # φ as init makes it: the contract holds at any φ, and the φ warm-up is the harness's own
                sampler = GradientSampler(task, est, backend=b, device=device, num_samples=S, seed=seed,
                                          phi_warmup=0)
                grads = sampler.run(R)
                if not isinstance(grads, np.ndarray) or grads.shape != (R, P) or grads.dtype != np.float64:
                    ctx.fail("gradient_samples", tl, b, f"expected a float64 NumPy array of shape (R, P) = "
                                                        f"{(R, P)}, got {type(grads).__name__} "
                                                        f"{getattr(grads, 'dtype', '?')} "
                                                        f"{getattr(grads, 'shape', '?')}")
                if not _finite(grads):
                    bad = np.argwhere(~np.isfinite(grads))[0].tolist()
                    ctx.fail("gradient_samples", tl, b, f"{int((~np.isfinite(grads)).sum())} non-finite "
                                                        f"estimates, first at [replicate, param] = {bad}")
                return sampler, grads

            return shared.get(("samples", i, b), b, compute)

        def varies(b) -> bool:
            grads = samples(b)[1]
            return not bool(np.all(grads == grads[0]))

        def noises():
            return shared.get(("noises", i), None, lambda: [numpy_noise(task, est, s, seed=seed),
                                                            numpy_noise(task, est, s, seed=seed + 1)])

        def evaluation64(b):
            def compute():
                B = get_backend(b, device=device, dtype="float64")
                evaluate = surrogate_evaluator(task, est, B)
                return B, evaluate, [evaluate(n) for n in noises()]

            return shared.get(("float64", i, b), b, compute)

        def noise_spec(b):
            dist(b)

        def surrogate32(b):
            B, d = dist(b)
            evaluate, out = evaluation32(b)
            _check_surrogate_outputs(ctx, est, out, evaluate.init_state, (s, *d.batch_shape), np.dtype(B.dtype),
                                     tl, b)

        def surrogate64(b):
            B, evaluate, outs = evaluation64(b)
            d = task.problem(B, B.asarray(task.init_params())).dist
            _check_surrogate_outputs(ctx, est, outs[0], evaluate.init_state, (s, *d.batch_shape),
                                     np.dtype("float64"), tl, b)

        def gradient_samples(b):
            samples(b)
            ctx.ok("gradient_samples", tl, b, f"[{R}, {P}] at S={S}")

        def determinism(b):
            sampler, grads = samples(b)
            repeat = sampler.run(R)
            if not np.array_equal(grads, repeat):
                ctx.fail("determinism", tl, b, f"the same seed gave different estimates (max |difference| "
                                               f"{np.max(np.abs(grads - repeat)):.3g}); draw randomness only from "
                                               f"the noise the harness passes in")
            own = varies(b)
            if single[b]:
                if own:
                    evaluate, out = evaluation32(b)
                    _check_uses_noise(ctx, out, evaluate(numpy_noise(task, est, s, seed + 1)), tl, b, seed)
            elif own or varies(reference):  # on the float64 evaluations
                _, _, outs = evaluation64(b)
                _check_uses_noise(ctx, outs[0], outs[1], tl, b, seed)
            ctx.ok("determinism", tl, b, "same seed: identical" + ("; other noise: different" if own else ""))

        def unbiased(b):
            _, grads = samples(b)
            B = get_backend(b, device=device)
            toy = task.name in CONFORMANCE_TASKS and task.options == get_task(
                task.name, **CONFORMANCE_TASKS[task.name]).options
            _, exact = _exact_value_and_grad(task, B, B.asarray(task.init_params()),
                                             cache_key=task.name if toy else None)
            if exact is None:
                ctx.ok("unbiased", tl, b, "skipped: the task has no exact gradient")
                return
            z = z_scores(grads, exact)
            result = z_test(grads, exact, alpha=alpha)
            if not result.passed:
                w = int(np.argmax(np.abs(z)))
                names = task.param_names()
                se = grads[:, w].std(ddof=1) / math.sqrt(R)
                ctx.fail("unbiased", tl, b,
                         f"the estimator claims to be unbiased, but the mean of {R} estimates (S={S}, seed={seed}) "
                         f"of {names[w]} is {grads[:, w].mean():.6g} against the exact {exact[w]:.6g}: "
                         f"|z| = {result.max_z:.2f} standard errors (se {se:.3g}) > the Bonferroni threshold "
                         f"{result.threshold:.2f} (alpha={alpha:g} over {P} coordinates)")
            ctx.ok("unbiased", tl, b, f"max |z| {result.max_z:.2f} <= {result.threshold:.2f} (R={R}, S={S})")

        def evaluations(b):
            B, d = dist(b)
            declared = {}
            for n in EVALUATION_SIZES:
                try:
                    count = f_evaluations(est, n, d)
                except (TypeError, ValueError) as err:
                    ctx.fail("evaluations", tl, b, f"evaluations({n}) could not be computed: {err}")
                if count < 1:
                    ctx.fail("evaluations", tl, b, f"evaluations({n}) must be a positive integer, got {count!r}")
                declared[n] = count
            for n in (n for n in EVALUATION_SIZES if n >= est.min_samples):
                counted = count_evaluations(task, est, B, n, seed)
                if counted != declared[n]:
                    ctx.fail("evaluations", tl, b, f"the estimator declares {declared[n]} evaluations of f per "
                                                   f"estimate at S={n}, but its surrogate evaluated f at {counted} "
                                                   f"points; declare evaluations=(S, dist) -> the true count")
            ctx.ok("evaluations", tl, b, ", ".join(f"S={n}: {c}" for n, c in declared.items()))

        def parity_check(b):
            out = {c: evaluation64(c)[2] for c in (b, reference)}
            versus = f"{b} vs {reference} (float64, same NumPy noise)"
            # a distribution whose reparameterized gradient a backend approximates (Gamma: torch's
            # _standard_gamma_grad) declares that accuracy; it widens the gradients' rtol only
            grad_rtol = max(rtol, float(getattr(dist(reference)[1], "gradient_rtol", 0.0)))
            for k in range(len(out[reference])):
                x, r = out[b][k], out[reference][k]
                pairs = [("per-sample surrogate", x["per_sample"], r["per_sample"]), ("loss", x["loss"], r["loss"]),
                         ("gradient dL/dθ", x["grad"], r["grad"])]
                xs, rs = _flat_state(x["state"]), _flat_state(r["state"])
                if set(xs) != set(rs):
                    ctx.fail("parity", tl, versus, f"the new state has keys {sorted(xs)} in {b}, {sorted(rs)} in "
                                                   f"{reference}")
                pairs += [(f"new {key}", xs[key], rs[key]) for key in sorted(rs)]
                if x["phi_loss"] is not None or r["phi_loss"] is not None:
                    pairs += [("phi_loss", x["phi_loss"], r["phi_loss"]),
                              ("d phi_loss / dφ", x["phi_grad"], r["phi_grad"])]
                for what, value, want in pairs:
                    same, why = _close(value, want, grad_rtol if what == "gradient dL/dθ" else rtol, atol)
                    if not same:
                        ctx.fail("parity", tl, versus, f"{what}: {why}")
            ctx.ok("parity", tl, f"{reference}+{b}", f"values and gradients within {atol:g} + {rtol:g}|b| on "
                                                     f"{len(out[reference])} draws" + (
                                                         f" (gradients {grad_rtol:g}|b|: the distribution's "
                                                         f"gradient_rtol)" if grad_rtol > rtol else ""))

        for b in requested:
            on = dict(task=tl, backends=(b,))
            yield self._check("noise_spec", lambda b=b: noise_spec(b), **on)
            if single[b]:
                yield self._check("surrogate", lambda b=b: surrogate32(b), **on)
            yield self._check("gradient_samples", lambda b=b: gradient_samples(b), **on)
            yield self._check("determinism", lambda b=b: determinism(b), **on)
            if est.unbiased:
                yield self._check("unbiased", lambda b=b: unbiased(b), **on)
            if b == requested[0]:
                yield self._check("evaluations", lambda b=b: evaluations(b), **on)
        for b in compared:
            if not single[b]:
                yield self._check("surrogate", lambda b=b: surrogate64(b), task=tl, backends=(b,))
        for b in compared:
            yield self._check("parity", lambda b=b: parity_check(b), task=tl, backends=(b, reference))


def _check_noise_spec(ctx, est, task, B, s, tl, b):
    dist = task.problem(B, B.asarray(task.init_params())).dist
    for k, spec in dict(est.noise_spec(dist, s)).items():
        if spec.kind not in NOISE_LAWS or len(spec.shape) < 1 or int(spec.shape[0]) != s:
            ctx.fail("noise_spec", tl, b, f"noise {k!r} must have a kind (a noise law) in {NOISE_LAWS} and shape "
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
