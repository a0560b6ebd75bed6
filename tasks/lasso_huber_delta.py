"""The ``lasso_delta`` cell kind: how close the Huber relaxation of the Lasso gets to the optimum.

Beside the ``lasso_huber`` task it sweeps: each cell trains ``lasso_huber(delta=δ)`` with the
``exact`` estimator (the gradient of the δ-relaxed loss) for the grid's steps with Adam, and
compares the unrelaxed Lasso objective F(w) at the result with scikit-learn's optimum F(w*)
(`lasso_gap`): the gap, its relative size, the distance to w*, and the relaxation's bound
α·d·δ/2 (since |x| − δ/2 ≤ huber_δ(x) ≤ |x|). Runs when ``lasso_huber`` is selected and the
estimators are the defaults or include ``exact``.
"""
from __future__ import annotations

import math

import numpy as np

from gradest.sweep.kinds import CellKind, register_cell_kind
from gradest.sweep.kinds.train import final_values, train_cell

TASK = "lasso_huber"


def lasso_gap(task, params) -> dict:
    """The unrelaxed Lasso objective F(w) at ``params`` against scikit-learn's optimum F(w*)
    (the task's ``objective(w)`` and ``reference()``), and the relaxation's bound alpha·d·δ/2."""
    objective = getattr(task, "objective", None)
    reference = getattr(task, "reference", None)
    if objective is None or reference is None:
        raise ValueError(f"task {task.name!r} offers no objective(w) and reference(): the Lasso δ sweep "
                         f"needs both to measure the gap to scikit-learn's optimum")
    w = np.asarray(params, dtype=np.float64)
    w_ref = np.asarray(reference(), dtype=np.float64)
    obj, obj_ref = float(objective(w)), float(objective(w_ref))
    out = {"objective": obj, "reference_objective": obj_ref, "objective_gap": obj - obj_ref,
           "relative_objective_gap": (obj - obj_ref) / obj_ref if obj_ref > 0 else math.nan,
           "distance_to_reference": float(np.linalg.norm(w - w_ref))}
    alpha, delta = getattr(task, "alpha", None), getattr(task, "delta", None)
    if alpha is not None and delta is not None:
        out["relaxation_bound"] = float(alpha) * w.size * float(delta) / 2.0
    return out


@register_cell_kind("lasso_delta", description="Lasso: the Huber width δ against the gap to scikit-learn's optimum")
class LassoDeltaKind(CellKind):
    columns = {"delta": "Huber width δ", "objective_gap": "F(w) − F(w*)",
               "relative_objective_gap": "(F(w) − F(w*)) / F(w*)", "relaxation_bound": "α·d·δ/2"}
    grid = {"quick": {"deltas": (1.0, 0.1, 0.01), "steps": 150, "learning_rate": 0.05},
            "full": {"deltas": (1.0, 0.3, 0.1, 0.03, 0.01, 0.003), "steps": 1000, "learning_rate": 0.05}}

    def plan(self, ctx) -> list:
        if TASK not in ctx.tasks or (ctx.chosen and not any(name == "exact" for name, _ in ctx.variants)):
            return []
        grid = self.grid_for(ctx.budget)
        return [ctx.cell("lasso_delta", TASK, "exact", {}, backend, num_samples=1,
                         task_options=ctx.task_options(TASK, delta=float(delta)),
                         settings={"steps": int(grid["steps"]), "delta": float(delta),
                                   "learning_rate": float(grid["learning_rate"])})
                for delta in grid["deltas"] for backend in ctx.backends]

    def run(self, cell, task, estimator):
        result, history, seconds = train_cell(cell, task, estimator)
        row = {"steps": int(cell.settings["steps"]), "delta": float(cell.settings["delta"]), "train_seconds": seconds}
        row.update(lasso_gap(task, result.params))
        final = final_values(history)
        row.update({k: final[k] for k in ("final_loss", "final_exact_loss") if k in final})
        return row, history

    def figures(self, cells, history, palette, out) -> list:
        from gradest.reports import figures as FG

        return [("lasso_delta_sweep", lambda: FG.lasso_delta_sweep(cells, history, palette, out))]
