"""The tasks and estimator variants of a sweep, built once per process.

`task(name, options)` and `estimator(name, options)` build a registered task or estimator
variant the first time they are asked for and hand back the same object afterwards. The
sweep's validation (`validate`, before the first cell runs) and its runner
(`gradest.sweep.run.CellRunner`) share them: each (task, options) and (estimator, options) is
built once per process, so a data-driven task loads its data once.

`unsupported(cell)` is the verdict of `gradest.measure.check_compatible` on the cell's task,
estimator and S: the reason the combination cannot run, or None. It is found once per such
combination and recorded; the runner asks it once per cell, before the kind runs.

A built object's key is made like a compile-cache key (`gradest.cache`), of what determines
it: the registered factory (a name registered again, e.g. an edited plugin file loaded anew,
builds anew), the name and the canonical options (`gradest.sweep.cells.canonical`). The
objects live in named caches of `gradest.cache`, which ``gradest.clear_compile_cache()``
empties with the rest.
"""
from __future__ import annotations

from typing import Iterable

from gradest import cache
from gradest.registry import ESTIMATORS, TASKS, Registry, get_estimator, get_task
from gradest.sweep.cells import Cell, canonical

__all__ = ["task", "estimator", "unsupported", "validate", "BuildError"]

#: built tasks and estimators (a sweep's variants and tasks, with room to spare)
_BUILT = cache.lru("sweep_built", 1024)
#: (task key, estimator key, S) -> the reason the combination cannot run, or None
_VERDICTS = cache.lru("sweep_compatibility", 8192)


class BuildError(ValueError):
    """A task or estimator variant of the sweep cannot be built with its options (the message
    names it, as ``name:key=value,...``, and says why)."""


def _key(registry: Registry, name: str, options: dict) -> tuple:
    """What determines the object built: an unknown name raises the registry's ValueError."""
    return (registry.kind, name, registry.entry(name).factory, canonical(options))


def task(name: str, options: dict | None = None):
    """The task ``name`` built with ``options`` (once per process)."""
    options = dict(options or {})
    return _BUILT.get(_key(TASKS, name, options), lambda: get_task(name, **options))


def estimator(name: str, options: dict | None = None):
    """The estimator variant ``name`` with ``options`` (once per process)."""
    options = dict(options or {})
    return _BUILT.get(_key(ESTIMATORS, name, options), lambda: get_estimator(name, **options))


def unsupported(cell: Cell) -> str | None:
    """Why ``cell``'s estimator cannot run on its task with its S, or None when it can (always
    None for a standalone kind's cell, which builds neither)."""
    if _standalone(cell):
        return None
    key = (_key(TASKS, cell.task, cell.task_options), _key(ESTIMATORS, cell.estimator, cell.estimator_options),
           int(cell.num_samples))
    return _VERDICTS.get(key, lambda: _verdict(task(cell.task, cell.task_options),
                                               estimator(cell.estimator, cell.estimator_options),
                                               int(cell.num_samples)))


def _standalone(cell: Cell) -> bool:
    from gradest.sweep.cell_kind import get_cell_kind

    return bool(get_cell_kind(cell.kind).standalone)


def _verdict(built_task, built_estimator, num_samples: int) -> str | None:
    from gradest.measure import UnsupportedCombinationError, check_compatible

    try:
        check_compatible(built_task, built_estimator, num_samples)
    except UnsupportedCombinationError as err:
        return str(err)
    return None


def validate(cells: Iterable[Cell]) -> None:
    """Build every task and estimator variant ``cells`` name (each once): a bad option or value
    raises `BuildError` with the API's message, before the first cell runs."""
    for cell in cells:
        if _standalone(cell):
            continue  # builds no registered task or estimator
        for what, name, options, build in (("estimator", cell.estimator, cell.estimator_options, estimator),
                                           ("task", cell.task, cell.task_options, task)):
            try:
                build(name, options)
            except (ValueError, TypeError) as err:
                shown = f"{name}:{','.join(f'{k}={v}' for k, v in options.items())}" if options else name
                raise BuildError(f"{what} {shown}: {err}") from None
