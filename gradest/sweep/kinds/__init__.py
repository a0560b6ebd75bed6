"""Cell kinds: what a sweep measures, one plugin per kind.

A cell kind is a class registered with `register_cell_kind` (built-ins: the modules of this
package, and kinds that live beside what they sweep — ``temperature`` next to the
``gumbel_softmax`` estimator, ``lasso_delta`` next to the ``lasso_huber`` task; plugins: the
entry-point group ``gradest.cell_kinds``, or any imported module). It gives:

* ``plan(ctx) -> [Cell]``: its cells for a `gradest.sweep.cells.PlanContext` (the selected
  tasks, variants, backends, device and budget); kinds declare their own grids (``grid``:
  ``{"quick": {...}, "full": {...}}``);
* ``run(cell, task, estimator) -> (row, history)``: one cell's measured numbers (a flat dict
  of scalars: the kind's ``columns``) and, for kinds that train, a history DataFrame;
  `gradest.measure.UnsupportedCombinationError` marks a cell skipped, any other error failed;
* ``columns``: ``{column: description}`` of the numbers its rows carry (its record schema,
  beside the identification columns every row has: `gradest.sweep.store.ID_COLUMNS`);
* ``figures(cells, history, palette, out) -> [Figure | (name, callable)]``: the report's
  figures of its rows (``gradest.reports.figures.Figure``, or a name and a zero-argument
  callable making one, so that a figure that fails to draw loses only itself); none is fine.

The core (planning, storage, the command line, the report) never names a kind: ``gradest run
--kinds`` lists `KINDS`, a plan is the concatenation of the kinds' plans in `ORDER`, and the
report draws every kind's figures.
"""
from __future__ import annotations

from typing import Any

from gradest.registry import ESTIMATORS, TASKS, Registry

__all__ = ["CellKind", "KINDS", "register_cell_kind", "get_cell_kind", "kind_names", "ORDER"]

#: the order of the built-in kinds in a plan; other kinds follow in name order
ORDER = ("gradient", "temperature", "train", "lasso_delta")


class CellKind:
    """Base class of a cell kind (see the module docstring); subclasses set ``name`` and
    implement ``plan`` and ``run``."""

    name: str = ""
    description: str = ""
    columns: dict = {}
    #: the kind's own grid per budget, e.g. {"quick": {"temperatures": (0.1, 1.0)}, "full": {...}}
    grid: dict = {}

    def grid_for(self, budget) -> dict:
        return dict(self.grid.get(budget.name, {}))

    def plan(self, ctx) -> list:
        raise NotImplementedError

    def run(self, cell, task, estimator) -> tuple[dict, Any]:
        raise NotImplementedError

    def figures(self, cells, history, palette, out) -> list:
        return []


class _KindRegistry(Registry):
    """Cell kinds; discovery also loads estimators and tasks, whose modules may define kinds."""

    def load(self) -> None:
        if self._loaded:
            return
        ESTIMATORS.load()
        TASKS.load()
        super().load()


KINDS = _KindRegistry("cell kind", "gradest.sweep.kinds", "gradest.cell_kinds")
_INSTANCES: dict = {}


def register_cell_kind(name: str, *, description: str = ""):
    """Decorator: register a `CellKind` subclass under ``name``."""

    def decorate(cls):
        if not (isinstance(cls, type) and issubclass(cls, CellKind)):
            raise TypeError(f"cell kind {name!r} must be a subclass of gradest.sweep.kinds.CellKind, got {cls!r}")
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
    """Registered kinds, built-ins in `ORDER`, then the others by name."""
    names = KINDS.names()
    return [n for n in ORDER if n in names] + sorted(n for n in names if n not in ORDER)
