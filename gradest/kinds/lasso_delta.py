"""The ``lasso_delta`` cell kind: how close the Huber relaxation of the Lasso gets to the optimum.

Each cell trains ``lasso_huber(delta=δ)`` with the ``exact`` estimator (the gradient of the
δ-relaxed loss) for the grid's steps with Adam, and compares the unrelaxed Lasso objective
F(w) at the result with scikit-learn's optimum F(w*) (`lasso_gap`): the gap, its relative
size, the distance to w*, and the relaxation's bound α·d·δ/2 (since |x| − δ/2 ≤ huber_δ(x) ≤
|x|). Runs when ``lasso_huber`` is selected and the estimators are the defaults or include
``exact``.

Frames: `lasso_stats` (the finished rows by backend and δ). Figure: `lasso_delta_sweep`, the
final gap against δ beside the training curves per δ.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gradest.kinds.gradient import measured_counts
from gradest.kinds.train import final_values, train_cell
from gradest.plotting.frames import done, ordered_backends
from gradest.sweep.cell_kind import CellKind, register_cell_kind

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


def lasso_stats(cells: pd.DataFrame, kind: str = "lasso_delta") -> pd.DataFrame:
    """The finished cells of ``kind`` with their gaps as numbers, by backend and δ."""
    frame = done(cells, kind)
    if frame.empty or "objective_gap" not in frame.columns:
        return pd.DataFrame()
    for c in ("delta", "objective_gap", "relative_objective_gap", "relaxation_bound", "distance_to_reference"):
        if c in frame.columns:
            frame[c] = pd.to_numeric(frame[c], errors="coerce")
    return frame.sort_values(["backend", "delta"])


def gap_curves(history, kind: str = "lasso_delta") -> pd.DataFrame:
    """The history rows of ``kind`` where the gap was measured (the evaluated steps: the
    training loop logs other steps without the task's metrics), ``objective_gap`` as numbers;
    empty without them."""
    if history is None or history.empty or "kind" not in history.columns:
        return pd.DataFrame()
    curves = history[history["kind"] == kind].copy()
    if "objective_gap" not in curves.columns or "delta" not in curves.columns:
        return pd.DataFrame()
    curves["objective_gap"] = pd.to_numeric(curves["objective_gap"], errors="coerce")
    return curves[curves["objective_gap"].notna()]


def lasso_delta_sweep(cells: pd.DataFrame, history: pd.DataFrame, palette, out, kind: str = "lasso_delta"):
    """The final gap to scikit-learn's Lasso against δ, and the training curves per δ; a
    `Figure` or None."""
    from matplotlib.lines import Line2D

    from gradest.plotting.figure import Figure, backend_handles
    from gradest.plotting.style import backend_line, backend_marker, finish, log_axis, plt, save, subplots

    stats = lasso_stats(cells, kind)
    if stats.empty:
        return None
    curves = gap_curves(history, kind)
    ncols = 2 if not curves.empty else 1
    fig, axes = subplots(1, ncols, 4.0, [3.1])
    ax = axes[0][0]
    for backend in ordered_backends(stats["backend"]):
        part = stats[stats["backend"] == backend].sort_values("delta")
        gap = part["objective_gap"].clip(lower=np.finfo(float).tiny)
        ax.plot(part["delta"], gap, ls=backend_line(backend), marker=backend_marker(backend), color="C0",
                label=f"F(w) − F(w*), backend {backend}")
    if "relaxation_bound" in stats.columns:
        b = stats.sort_values("delta").drop_duplicates("delta")
        ax.plot(b["delta"], b["relaxation_bound"], color="0.4", ls=":", label="bound α·d·δ/2")
    log_axis(ax, "x")
    log_axis(ax, "y")
    ax.set_xlabel("Huber width δ (log)")
    ax.set_ylabel("objective gap F(w) − F(w*) (log)")
    ax.set_title("final gap to scikit-learn's Lasso")
    ax.legend(frameon=False, fontsize=8)
    if not curves.empty:
        ax2 = axes[0][1]
        deltas = sorted(pd.to_numeric(curves["delta"]).unique())
        colors = dict(zip(deltas, plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(deltas)))))
        for (delta, backend), line in curves.groupby(["delta", "backend"]):
            line = line.sort_values("step")
            ax2.plot(line["step"], line["objective_gap"].clip(lower=1e-12), color=colors[delta],
                     ls=backend_line(backend))
        log_axis(ax2, "y")
        ax2.set_xlabel("training step (exact gradient, Adam)")
        ax2.set_ylabel("relative gap (F(w) − F(w*)) / F(w*) (log)")
        ax2.set_title("training curves per δ")
        handles = [Line2D([], [], color=colors[d], lw=2, label=f"δ = {d:g}") for d in deltas]
        handles += backend_handles(curves["backend"], markers=False)
        ax2.legend(handles=handles, frameon=False, fontsize=8, title="Huber width")
    finish(fig, heights=[3.1], left=0.9, wspace=1.0,
           title="Lasso: Huber relaxation width δ vs gap to the exact optimum")
    steps = int(pd.to_numeric(stats["steps"]).max()) if "steps" in stats.columns else None
    caption = ("lasso_huber trained with the exact gradient of the δ-relaxed loss"
               f"{f' for {steps} Adam steps' if steps else ''} ({measured_counts(done(cells, kind), samples=False)} "
               "per δ and backend); F is scikit-learn's unrelaxed Lasso objective "
               "and w* its coordinate-descent solution. Since |x| − δ/2 ≤ huber_δ(x) ≤ |x|, the relaxed "
               "optimum is within α·d·δ/2 of F(w*) (dotted); the gap shrinks with δ until optimization error "
               "dominates.")
    return Figure("lasso_delta_sweep", "Lasso δ sweep", caption, save(fig, out, "lasso_delta_sweep"))


@register_cell_kind("lasso_delta", description="Lasso: the Huber width δ against the gap to scikit-learn's optimum")
class LassoDeltaKind(CellKind):
    order = 40
    columns = {"delta": "Huber width δ", "objective_gap": "F(w) − F(w*)",
               "relative_objective_gap": "(F(w) − F(w*)) / F(w*)", "relaxation_bound": "α·d·δ/2"}
    grid = {"quick": {"deltas": (1.0, 0.1, 0.01), "steps": 150, "learning_rate": 0.05},
            "full": {"deltas": (1.0, 0.3, 0.1, 0.03, 0.01, 0.003), "steps": 1000, "learning_rate": 0.05}}

    def plan(self, ctx) -> list:
        if TASK not in ctx.tasks or (ctx.chosen and not any(name == "exact" for name, _ in ctx.variants)):
            return []
        grid = self.grid_for(ctx.budget)
        return [ctx.cell(self.name, TASK, "exact", {}, backend, num_samples=1,
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
        return [("lasso_delta_sweep", lambda: lasso_delta_sweep(cells, history, palette, out, self.name))]
