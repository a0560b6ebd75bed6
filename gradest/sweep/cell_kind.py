"""The cell-kind contract: what a sweep measures, one plugin per kind, and the kind registry.

A cell kind is a `CellKind` subclass registered with `register_cell_kind` (built-ins: the
modules of the package ``gradest.kinds``, one file each; plugins: the entry-point group
``gradest.cell_kinds``, or any imported module). It owns everything about its cells, from the
plan to the figures:

* ``plan(ctx) -> [Cell]``: its cells for a `gradest.sweep.cells.PlanContext` (the selected
  tasks, variants, backends, device and budget); a kind declares its own grid (``grid``:
  ``{"quick": {...}, "full": {...}}``);
* ``run(cell, task, estimator) -> (row, history)``: one cell's measured numbers (a flat dict
  of scalars: the kind's ``columns``) and, for kinds that train, a history DataFrame;
  `gradest.measure.UnsupportedCombinationError` marks a cell skipped, any other error failed;
* ``standalone``: True for a kind whose cells measure no registered task or estimator (e.g.
  the relaxations themselves): the runner builds none and passes ``None`` for both, and its
  cells' ``task`` / ``estimator`` columns name what it measures, which ``subjects`` calls by
  name (default ``("estimator", "task")``) where the report describes the run;
* ``default``: False for an opt-in kind, planned only when a selection names it (``gradest
  run --kinds NAME``); True (the default) plans it in every sweep that does not choose kinds;
* ``columns``: ``{column: description}`` of the numbers its rows carry (its record schema,
  beside the identification columns every row has: `gradest.sweep.store.ID_COLUMNS`);
* ``order``: where its cells come in a plan and its figures on the report's page (lower
  first; ties by name): the built-ins take 10 to 40, a kind that says nothing comes after them;
* what the report reads of its rows (the report names no kind; it asks every registered one):

  - ``figures(cells, history, palette, out) -> [Figure | (name, callable)]``: its figures
    (`gradest.plotting.figure.Figure`, or a name and a zero-argument callable making one, so
    that a figure that fails to draw loses only itself); none is fine;
  - ``palette_labels(rows) -> [label]``: the estimator labels its figures colour its rows by
    (all the report's labels make one palette); by default the rows' ``estimator`` column;
  - ``estimator_statistics(cells)``: a tidy frame of gradient statistics per task x
    estimator x backend x S (the columns of `gradest.reports.leaderboard`), which the
    leaderboard ranks and the summary table and the statistics figures show; None by default
    (the kind's rows are not ranked);
  - ``summary_columns(cells)``: a frame of columns the summary table adds per task x
    estimator (e.g. the final headline metric of training); None by default;
  - ``table_metrics``: ``{column: "lower" | "higher"}``, the columns of its rows that
    ``gradest table`` aggregates over seeds and which way is better; none by default.

Discovery: the first listing or look-up imports the built-ins, then the entry points and the
local plugin files (`gradest.registry.Registry`), once per process. The core (planning,
storage, the command line, the report) never names a kind: ``gradest run --kinds`` lists
`KINDS`, a plan is the concatenation of the kinds' plans in `kind_names` order, and the report
draws every kind's figures. Plugin authors import the same names from `gradest.sweep` or
`gradest.sweep.kinds`.
"""
from __future__ import annotations

from typing import Any

from gradest.registry import ESTIMATORS, TASKS, Registry

__all__ = ["CellKind", "KINDS", "register_cell_kind", "get_cell_kind", "kind_names", "BUILT_IN_PACKAGE",
           "DEFAULT_ORDER"]

#: the package whose modules are the built-in kinds
BUILT_IN_PACKAGE = "gradest.kinds"
#: the ``order`` of a kind that declares none: after the built-ins
DEFAULT_ORDER = 100


class CellKind:
    """Base class of a cell kind (see the module docstring); subclasses set ``name`` (done by
    `register_cell_kind`) and implement ``plan`` and ``run``."""

    name: str = ""
    description: str = ""
    columns: dict = {}
    #: the kind's own grid per budget, e.g. {"quick": {"temperatures": (0.1, 1.0)}, "full": {...}}
    grid: dict = {}
    #: position in a plan and on the report's page (lower first, ties by name)
    order: int = DEFAULT_ORDER
    #: columns of its rows that the aggregated table shows, and whether "lower" or "higher" is better
    table_metrics: dict[str, str] = {}
    #: its cells build no registered task or estimator (see the module docstring)
    standalone: bool = False
    #: planned when a sweep chooses no kinds (False: only when named)
    default: bool = True
    #: what its cells' ``estimator`` and ``task`` columns name, for the report's sentences
    subjects: tuple[str, str] = ("estimator", "task")

    def grid_for(self, budget) -> dict:
        return dict(self.grid.get(budget.name, {}))

    def plan(self, ctx) -> list:
        raise NotImplementedError

    def run(self, cell, task, estimator) -> tuple[dict, Any]:
        raise NotImplementedError

    def figures(self, cells, history, palette, out) -> list:
        return []

    def palette_labels(self, rows) -> list:
        """The estimator labels of this kind's ``rows`` (its cells or its history rows) that its
        figures colour by."""
        if rows is None or "estimator" not in rows.columns:
            return []
        return [str(v) for v in rows["estimator"].dropna().unique()]

    def estimator_statistics(self, cells):
        """Tidy gradient statistics of this kind's rows of ``cells`` for the leaderboard, or None."""
        return None

    def summary_columns(self, cells):
        """Columns the summary table adds per task x estimator from ``cells``, or None."""
        return None


class _KindRegistry(Registry):
    """Cell kinds; discovery also loads estimators and tasks, whose plugin modules may define kinds."""

    def load(self) -> None:
        if self._loaded:
            return
        ESTIMATORS.load()
        TASKS.load()
        super().load()


KINDS = _KindRegistry("cell kind", BUILT_IN_PACKAGE, "gradest.cell_kinds")
_INSTANCES: dict = {}


def register_cell_kind(name: str, *, description: str = ""):
    """Decorator: register a `CellKind` subclass under ``name``."""

    def decorate(cls):
        if not (isinstance(cls, type) and issubclass(cls, CellKind)):
            raise TypeError(f"cell kind {name!r} must be a subclass of gradest.sweep.CellKind, got {cls!r}")
        cls.name = name
        KINDS.register(name, cls, description=description or (cls.description or ""))
        _INSTANCES.pop(name, None)
        return cls

    return decorate


def get_cell_kind(name: str) -> CellKind:
    """The registered kind ``name`` (one instance per process)."""
    entry = KINDS.entry(name)
    kind = _INSTANCES.get(name)
    if kind is None or type(kind) is not entry.factory:
        kind = _INSTANCES[name] = entry.factory()
    return kind


def kind_names() -> list[str]:
    """Registered kinds by their declared ``order``, then by name."""
    entries = [KINDS.entry(name) for name in KINDS.names()]
    return [e.name for e in sorted(entries, key=lambda e: (getattr(e.factory, "order", DEFAULT_ORDER), e.name))]
