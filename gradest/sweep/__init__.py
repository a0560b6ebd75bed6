"""The sweep engine behind ``gradest run``: cells planned by cell-kind plugins, run once
(serially or on Dask), kept in a results folder.

* `gradest.sweep.cells`: `Cell`, `Budget` (`QUICK`, `FULL`), `PlanContext`, the variants;
* `gradest.sweep.kinds`: the cell-kind contract (`CellKind`, `register_cell_kind`; the
  built-in kinds are the package `gradest.kinds`);
* `gradest.sweep.build`: the tasks and estimator variants of a sweep, built once per process;
* `gradest.sweep.store`: the results folder (atomic files, the record schema);
* `gradest.sweep.run`: `plan`, the run loop `run_sweep` with its serial executor, `run_cell`;
* `gradest.sweep.dask`: the executor on a Dask cluster (imported only when asked for).
"""
from __future__ import annotations

from gradest.sweep.cells import (CELL_FORMAT, FULL, QUICK, STATUSES, UNREGISTERED, Budget, Cell, PlanContext,
                                 canonical, resolve_budget, variants)
from gradest.sweep.kinds import KINDS, CellKind, get_cell_kind, kind_names, register_cell_kind
from gradest.sweep.run import CellRunner, SerialExecutor, SweepResult, plan, run_cell, run_sweep
from gradest.sweep.store import ID_COLUMNS, ResultStore, atomic_write_csv, atomic_write_text, record_row

__all__ = ["Cell", "Budget", "QUICK", "FULL", "PlanContext", "canonical", "resolve_budget", "variants",
           "CELL_FORMAT", "STATUSES", "UNREGISTERED", "KINDS", "CellKind", "register_cell_kind", "get_cell_kind",
           "kind_names", "plan", "run_sweep", "run_cell", "CellRunner", "SerialExecutor", "SweepResult",
           "ResultStore", "atomic_write_text", "atomic_write_csv", "record_row", "ID_COLUMNS"]
