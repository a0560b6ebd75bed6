"""Planning and running a sweep: cells from the kinds, each run once, kept in the store.

`plan(...)` resolves the selection (tasks, estimator variants, backends, budget) into a
`PlanContext` and concatenates the plans of the selected kinds; unknown names are refused
before anything is built or imported.

`run_sweep(cells, out, executor=...)` is the one run loop: it submits the cells not yet in
the store (``out``) to an executor and writes each record as its outcome arrives, so an
interrupted sweep loses at most the cells that were running and resumes where it stopped; it
shows its progress as `gradest.sweep.progress` says (a bar on a terminal, lines in a log). An
executor has ``submit(cell)``, ``as_completed(started=None)`` (an iterator of (cell, outcome)
in the order they finish; ``started(cell)`` where it knows when a cell starts), ``describe()``
and ``close()``: `SerialExecutor` runs the cells in this process, one after the other;
`gradest.sweep.dask.DaskExecutor` on a Dask cluster. An outcome is a dict made by `outcome`
(a cell that raised: `failed`, whoever ran it).

`run_cell(cell)` is what runs a cell, here or on a worker: it takes the built task and
estimator (`gradest.sweep.build`: once per process), the recorded verdict on the combination,
and calls the kind's ``run``; an unsupported combination is recorded as skipped with the
reason, any other error as failed with its message, and the sweep goes on.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import socket
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pandas as pd

from gradest import version
from gradest.noise import NOISE_VERSION
from gradest.registry import TASKS
from gradest.sweep import build
from gradest.sweep.cells import CELL_FORMAT, STATUSES, Budget, Cell, PlanContext, check_names, resolve_budget, variants
from gradest.sweep.kinds import get_cell_kind, kind_names
from gradest.sweep.progress import sweep_progress
from gradest.sweep.store import ResultStore

__all__ = ["plan", "run_sweep", "run_cell", "CellRunner", "SweepResult", "SerialExecutor", "outcome", "failed"]


def plan(tasks: Sequence[str] | None = None, estimators: Sequence[str] | None = None,
         backends: Sequence[str] | None = None, *, device: str = "cpu", seeds: int | None = None,
         quick: bool = False, num_replicates: int | None = None, train_steps: int | None = None,
         budget: Budget | None = None, kinds: Sequence[str] | None = None,
         sample_sizes: Sequence[int] | None = None, equal_evaluations: int | None = None) -> list[Cell]:
    """The cells of a sweep, in the order they run: kind by kind (`kind_names` order).

    ``tasks`` / ``estimators`` default to everything registered (estimators with their
    declared variants), ``backends`` to the reference backend; ``seeds``, ``num_replicates``,
    ``train_steps``, ``sample_sizes`` (the gradient cells' S values) and ``equal_evaluations``
    (K: each variant at the S of K f-evaluations) override the budget's (`resolve_budget`; a resolved ``budget`` alone
    is taken as it is); unknown names raise ValueError naming the known ones, before anything
    is built and without importing a framework."""
    if backends is None:
        from gradest.backends import reference_backend

        backends = [reference_backend()]
    budget = resolve_budget(budget, quick=quick, num_replicates=num_replicates, train_steps=train_steps,
                            seeds=seeds, sample_sizes=sample_sizes, equal_evaluations=equal_evaluations)
    known_kinds = kind_names()
    chosen_kinds = list(kinds) if kinds else [k for k in known_kinds if get_cell_kind(k).default]
    check_names("kind", chosen_kinds, known_kinds)
    known_tasks = TASKS.names()
    task_names = list(tasks) if tasks else known_tasks
    check_names("task", task_names, known_tasks)
    ctx = PlanContext(task_names, variants(estimators), list(backends), device, budget, chosen=bool(estimators))
    cells: list[Cell] = []
    for name in known_kinds:
        if name in chosen_kinds:
            cells.extend(get_cell_kind(name).plan(ctx))
    return cells


def outcome(cell: Cell, **fields) -> dict:
    """The outcome of ``cell`` as the store records it (`ResultStore.save_cell`): done, with
    nothing measured, unless ``fields`` say otherwise."""
    return {"status": "done", "reason": "", "row": {}, "history": None, "traceback": "", "label": cell.label,
            **fields}


def failed(cell: Cell, err: BaseException, **fields) -> dict:
    """The outcome of ``cell`` that raised ``err`` (in its kind, or its future on a cluster)."""
    return outcome(cell, status="failed", reason=f"{type(err).__name__}: {err}",
                   traceback="".join(traceback.format_exception(err)), **fields)


class CellRunner:
    """Runs cells in this process (see `run_cell`)."""

    def __call__(self, cell: Cell) -> dict:
        """The outcome of ``cell`` (`outcome`); errors are caught and recorded (KeyboardInterrupt
        is not: the cell then has no record and runs next time)."""
        from gradest.measure import UnsupportedCombinationError

        start, cpu_start = time.perf_counter(), time.process_time()
        fields = {"worker": f"{socket.gethostname()}:{os.getpid()}"}
        try:
            kind = get_cell_kind(cell.kind)
            task = est = None
            if not kind.standalone:
                task = build.task(cell.task, cell.task_options)
                est = build.estimator(cell.estimator, cell.estimator_options)
                fields["label"] = est.label
                reason = build.unsupported(cell)
                if reason is not None:
                    raise UnsupportedCombinationError(reason)
            fields["row"], fields["history"] = kind.run(cell, task, est)
            out = outcome(cell, **fields)
        except UnsupportedCombinationError as err:
            out = outcome(cell, **fields, status="skipped", reason=str(err))
        except Exception as err:  # noqa: BLE001 -- a failing cell is recorded, the sweep goes on
            out = failed(cell, err, **fields)
        out["elapsed_s"] = time.perf_counter() - start
        out["cpu_s"] = time.process_time() - cpu_start
        return out


_PROCESS_RUNNER: CellRunner | None = None


def run_cell(cell: Cell) -> dict:
    """Run ``cell`` with this process's `CellRunner` (on a Dask worker: built tasks and
    compiled functions stay in the worker for its next cells)."""
    global _PROCESS_RUNNER
    if _PROCESS_RUNNER is None:
        _PROCESS_RUNNER = CellRunner()
    return _PROCESS_RUNNER(cell)


class SerialExecutor:
    """Runs the submitted cells in this process, one after the other, as `as_completed` asks
    for them (in the order they were submitted), with ``runner`` (default `run_cell`)."""

    def __init__(self, runner: Callable[[Cell], dict] | None = None):
        self.runner = runner or run_cell
        self._queue: deque = deque()

    def describe(self) -> str:
        return "serial"

    def submit(self, cell: Cell) -> None:
        self._queue.append(cell)

    def as_completed(self, started: Callable[[Cell], None] | None = None) -> Iterator[tuple[Cell, dict]]:
        while self._queue:
            cell = self._queue.popleft()
            if started is not None:
                started(cell)
            yield cell, self.runner(cell)

    def close(self) -> None:
        self._queue.clear()


@dataclass
class SweepResult:
    out: Path
    cells: list
    results: pd.DataFrame
    history: pd.DataFrame
    counts: dict
    reused: int
    run: str = ""

    @property
    def current(self) -> pd.DataFrame:
        """The rows of this run's cells (reused ones included)."""
        if self.results.empty or "current_run" not in self.results.columns:
            return self.results
        return self.results[self.results["current_run"].astype(bool)]

    @property
    def failures(self) -> pd.DataFrame:
        current = self.current
        return current if current.empty else current[current["status"] == "failed"]

    @property
    def skipped(self) -> pd.DataFrame:
        current = self.current
        return current if current.empty else current[current["status"] == "skipped"]


def run_sweep(cells: Sequence[Cell], out, *, progress: bool = True, manifest: dict | None = None,
              runner: Callable[[Cell], dict] | None = None, console=None, executor=None) -> SweepResult:
    """Run ``cells`` (skipping those already done or skipped in ``out``) on ``executor``,
    writing each cell's record as it finishes and the consolidated tables at the end (also when
    interrupted).

    ``executor``: None runs the cells here with ``runner`` (default `run_cell`: a
    `SerialExecutor`); a `gradest.sweep.dask.DaskExecutor` runs them on its cluster. The caller
    closes an executor it passes."""
    executor = executor or SerialExecutor(runner)
    store = ResultStore(out)
    store.root.mkdir(parents=True, exist_ok=True)
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        raise ValueError("the sweep has duplicated cells (same settings twice)")
    run_id = f"{_dt.datetime.now(_dt.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    store.write_manifest({
        **(manifest or {}), "run": run_id, "cells": len(cells), "cell_keys": keys, "cell_format": CELL_FORMAT,
        "noise_version": NOISE_VERSION, "written_at": started, "python": platform.python_version(),
        "machine": platform.node(), "platform": platform.platform(), "versions": _versions(),
        "executor": executor.describe(),
    })
    todo, reused = [], 0
    for cell in cells:
        record = store.load_cell(cell)
        if record is not None and record["status"] in ("done", "skipped"):
            reused += 1
        else:
            todo.append(cell)
    try:
        with sweep_progress(progress, console, total=len(cells), reused=reused, where=executor.describe()) as shown:
            for cell in todo:
                executor.submit(cell)
            running = executor.as_completed(started=shown.started)
            with contextlib.closing(running):  # an interrupt cancels what has not finished
                for cell, result in running:
                    store.save_cell(cell, result, run_id)
                    shown.finished(cell, result.get("status", "done"))
    finally:
        results, history = store.consolidate(keys)
        current = results[results["current_run"]] if len(results) else results
        counts = {s: int((current["status"] == s).sum()) if len(current) else 0 for s in STATUSES}
        store.append_run({"run": run_id, "started": started, "cells": len(cells), "reused": reused, **counts,
                          "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                          "command": (manifest or {}).get("command_line", "")})
    return SweepResult(store.root, list(cells), results, history, counts, reused, run_id)


def _versions() -> dict:
    """gradest's and the frameworks' versions (those imported: a sweep imports its backends)."""
    import sys

    from gradest.backends import backend_entry, backend_names

    out = {"gradest": version.__version__}
    frameworks = [package for name in backend_names() for package in backend_entry(name).packages]
    for name in ("numpy", "pandas", *frameworks, "sklearn", "distributed"):
        module = sys.modules.get(name)
        if module is not None:
            out[name] = getattr(module, "__version__", "?")
    return out
