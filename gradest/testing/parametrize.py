"""`parametrize_with_checks`: every check of the kit as its own pytest test.

Contract: ``parametrize_with_checks(items, **options)`` returns a ``pytest.mark.parametrize``
decorator over ``(obj, check)`` pairs, one per named check of each item (an estimator or a
task: an object, or a registered name; or a pair ``(item, {options})`` with options of its own
that take precedence over ``options``), in the order `check_estimator` / `check_task` run
them. The test receives the item as given and a `Check`, and calls ``check()``. Test ids are
``<label>-<check name>``: ``reinforce[baseline=loo]-unbiased[bandit-torch]``,
``bandit-exact[torch]``; so ``pytest -k unbiased`` runs the z-tests only, ``-k "jax and not
parity"`` one backend. The checks of one item share their expensive work within the process
that runs them (pytest runs them one after the other), so the whole series costs what one
`check_estimator` call costs. A check on a backend that is not installed skips. pytest is
imported when the decorator is made, not before.
"""
from __future__ import annotations

from typing import Iterable

from gradest.estimator import GradientEstimator
from gradest.registry import list_estimators, list_tasks
from gradest.task import Task
from gradest.testing.estimators import estimator_checks
from gradest.testing.tasks import task_checks

__all__ = ["parametrize_with_checks"]


def _kind(item) -> str:
    if isinstance(item, GradientEstimator):
        return "estimator"
    if isinstance(item, Task):
        return "task"
    if isinstance(item, str):
        is_estimator, is_task = item in list_estimators(), item in list_tasks()
        if is_estimator and is_task:
            raise ValueError(f"{item!r} names both an estimator and a task; pass gradest.get_estimator({item!r}) "
                             f"or gradest.get_task({item!r})")
        if is_estimator or is_task:
            return "estimator" if is_estimator else "task"
        raise ValueError(f"{item!r} is neither a registered estimator ({', '.join(list_estimators())}) nor a "
                         f"registered task ({', '.join(list_tasks())})")
    raise TypeError(f"parametrize_with_checks takes estimators and tasks (objects or registered names, or "
                    f"(item, options) pairs), got {type(item).__name__}")


def parametrize_with_checks(items: Iterable, **options):
    """A ``pytest.mark.parametrize("obj, check", ...)`` over every check of every item (see the
    module docstring). ``options`` go to `estimator_checks` for estimators and to `task_checks`
    for tasks (so give options of one kind only, or per item as ``(item, {options})``).

    Example::

        from gradest.testing import parametrize_with_checks

        @parametrize_with_checks(["antithetic", gradest.get_estimator("antithetic", baseline="loo")])
        def test_conformance(obj, check):
            check()
    """
    import pytest

    params = []
    for entry in items:
        if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], dict):
            item, own = entry
        else:
            item, own = entry, {}
        series = (estimator_checks if _kind(item) == "estimator" else task_checks)(item, **{**options, **own})
        for name, check in series:
            params.append(pytest.param(item, check, id=f"{check.subject}-{name}"))
    return pytest.mark.parametrize("obj, check", params)
