"""The conformance kit: the checks every built-in estimator and task passes, for plugins too.

Use it in a plugin's own pytest, every check its own test::

    from gradest.testing import parametrize_with_checks

    @parametrize_with_checks(["my_estimator", "my_task"])
    def test_conforms(obj, check):
        check()                       # ids: my_estimator-unbiased[bandit-torch], my_task-exact[jax], ...

or all checks in one call::

    from gradest.testing import check_estimator, check_task

    def test_my_estimator_conforms():
        check_estimator("my_estimator")          # or a GradientEstimator, or options={...}

    def test_my_task_conforms():
        check_task("my_task")

`check_estimator(est)` runs, for each toy task whose distribution kind the estimator supports
(`CONFORMANCE_TASKS`) plus any task given, and for each backend (by default every registered
backend that is installed, `gradest.backends.available_backends`), the checks ``metadata``,
``noise_spec``, ``surrogate``, ``gradient_samples``, ``determinism``, ``unbiased`` (estimators
that claim it) and, for each backend other than the reference backend
(`gradest.backends.reference_backend`), ``parity`` with the reference in float64 on the same
NumPy noise (`gradest.testing.estimators` states each). `check_task(task)` checks the param
layout, the ``problem()`` shapes, finiteness and determinism, the exact loss against finite
differences and a Monte Carlo mean, and parity (`gradest.testing.tasks`).

`estimator_checks(est, ...)` and `task_checks(task, ...)` (same options) yield the same checks
one by one as ``(name, check)``, named after what they check and where, e.g.
``unbiased[bandit-torch]``, ``parity[bandit-jax vs torch]``, ``exact[jax]``; `parametrize_with_checks`
makes pytest tests of them. The checks of one estimator or task share their expensive work
(computed once, by the first check that needs it), so one by one they cost what
`check_estimator` costs.

Failures raise AssertionError naming the check, the task and backend, and by how much; an
estimator or task that calls one backend's framework on another backend's values instead of
computing with the Backend it is given gets a message that says so. A backend that is not installed is skipped:
`pytest.skip` (at the end of `check_estimator`, or the checks of that backend) when pytest is
running, a warning otherwise. `check_estimator` and `check_task` return the list of
`CheckResult` they passed.

Modules: `stats` (the z-test), `noise` (NumPy noise and compiled evaluation, for parity),
`estimators` and `tasks` (the checks), `parametrize` (pytest). Importing the kit imports no
framework.
"""
from __future__ import annotations

from gradest.testing._core import PARITY_ATOL, PARITY_RTOL, Check, CheckResult
from gradest.testing.estimators import (CONFORMANCE_TASKS, NUM_REPLICATES, check_estimator, compatible_tasks,
                                        conformance_tasks, declared_variants, estimator_checks)
from gradest.testing.noise import evaluate_surrogate, numpy_noise, surrogate_evaluator
from gradest.testing.parametrize import parametrize_with_checks
from gradest.testing.stats import ALPHA, ZTest, z_scores, z_test
from gradest.testing.tasks import check_task, task_checks

__all__ = ["check_estimator", "check_task", "z_test", "z_scores", "ZTest", "CheckResult",
           "CONFORMANCE_TASKS", "numpy_noise", "evaluate_surrogate", "surrogate_evaluator",
           "conformance_tasks", "compatible_tasks", "declared_variants", "estimator_checks", "task_checks", "parametrize_with_checks", "Check",
           "ALPHA", "NUM_REPLICATES", "PARITY_RTOL", "PARITY_ATOL"]
