"""The ``lasso_delta`` cell kind: how close the Huber relaxation of the Lasso gets to the optimum,
and how it compares with the Lasso's own solvers.

Cells, each with a ``solver`` column, on every dataset of the grid (``synthetic`` and
``diabetes``; ``--tasks lasso_huber:dataset=diabetes`` replaces the default synthetic data, so
that selection runs on diabetes alone):

* ``adam``: ``lasso_huber(delta=δ)`` trained through gradest with the ``exact`` estimator (the
  gradient of the δ-relaxed loss) and Adam, for the grid's steps, per δ and backend;
* ``huber_gd``: the same relaxed objective by plain gradient descent with step 1/(L + α/δ), per
  δ (`gradest.proximal.huber_gd`);
* ``ista``, ``fista``: proximal gradient with soft-thresholding on the exact Lasso, and
  ``coordinate_descent``: scikit-learn's solver stopped after k epochs (`gradest.proximal`).

The NumPy solvers (all but ``adam``) run once per dataset, recorded under the first backend
(they use none). Every cell compares the unrelaxed objective F(w) at its result with
scikit-learn's optimum F(w*) (`lasso_gap`): the gap, its relative size, the distance to w*,
and for the relaxed solvers the relaxation's bound α·d·δ/2 (since |x| − δ/2 ≤ huber_δ(x) ≤
|x|). Its history holds the gap per iteration (and the solver's seconds) for the figures. Runs
when ``lasso_huber`` is selected and the estimators are the defaults or include ``exact``.

Frames: `lasso_stats` (the finished ``adam`` rows by backend and δ), `solver_paths` (every
solver's gap per iteration). Figures: `lasso_delta_sweep`, the final gap against δ beside the
training curves per δ; `lasso_solvers`, the gap against iterations and seconds of every
solver, per dataset, with the answer to "at which δ and after how many steps does the Huber
relaxation reach FISTA's gap, and where does it stall" in its caption (`stall_summary`).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gradest import proximal
from gradest.kinds.gradient import measured_counts
from gradest.kinds.train import final_values, train_cell
from gradest.plotting.frames import done, ordered_backends
from gradest.sweep.cell_kind import CellKind, register_cell_kind

TASK = "lasso_huber"
#: the solver of the cells trained through gradest (the others are `gradest.proximal.SOLVERS`)
TRAINED = "adam"
#: solvers of the exact Lasso, run once per dataset
EXACT_SOLVERS = ("ista", "fista", "coordinate_descent")
#: the task's default dataset
DEFAULT_DATASET = "synthetic"
#: gaps below this are the optimum to float64 precision (the log axes' floor)
GAP_FLOOR = 1e-13


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
    if "solver" in frame.columns:
        frame = frame[frame["solver"].fillna(TRAINED) == TRAINED]
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
    if "solver" in curves.columns:
        curves = curves[curves["solver"].fillna(TRAINED) == TRAINED]
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


def solver_cell(cell, task) -> tuple[dict, pd.DataFrame]:
    """The row and history of one NumPy solver cell (``cell.settings["solver"]``)."""
    name, steps = cell.settings["solver"], int(cell.settings["steps"])
    options = {"delta": float(cell.settings["delta"])} if name == "huber_gd" else {}
    path = proximal.solve(name, task.X, task.y, task.alpha, steps, task.objective, **options)
    row = {"solver": name, "steps": steps, "delta": options.get("delta", math.nan),
           "train_seconds": float(path.seconds[-1])}
    row.update(lasso_gap(task, path.w))
    row.pop("relaxation_bound", None)  # the task's own δ is not this solver's
    if name == "huber_gd":
        row["relaxation_bound"] = float(task.alpha) * len(path.w) * options["delta"] / 2.0
    reference = row["reference_objective"]
    history = pd.DataFrame({"step": path.iterations, "seconds": path.seconds, "gap": path.objective - reference,
                            "solver": name, "delta": row["delta"]})
    return row, history


def solver_paths(cells: pd.DataFrame, history: pd.DataFrame, kind: str = "lasso_delta") -> pd.DataFrame:
    """Every solver's gap F(w_k) − F(w*) per iteration k, with ``dataset``, ``solver``, ``delta``
    and ``seconds`` (for ``adam``: the evaluated steps of the first backend, without seconds: its
    time holds gradest's compilation and evaluations); empty without solver cells."""
    finished = done(cells, kind)
    if finished.empty or history is None or history.empty or "solver" not in finished.columns:
        return pd.DataFrame()
    finished = finished.assign(dataset=finished.get("task_options", pd.Series(index=finished.index, dtype=object))
                               .map(_dataset))
    parts = []
    first = ordered_backends(finished["backend"])[0]
    for _, cell in finished.iterrows():
        rows = history[(history["kind"] == kind) & (history["key"] == cell["key"])] if "key" in history.columns \
            else pd.DataFrame()
        if rows.empty:
            continue
        if cell["solver"] == TRAINED:
            if cell["backend"] != first:
                continue
            rows = gap_curves(rows, kind)
            reference = float(cell["reference_objective"])
            rows = rows.assign(gap=pd.to_numeric(rows["objective_gap"]) * reference, seconds=math.nan)
        parts.append(rows.assign(dataset=cell["dataset"], solver=cell["solver"],
                                 delta=pd.to_numeric(cell.get("delta"), errors="coerce"),
                                 bound=pd.to_numeric(cell.get("relaxation_bound"), errors="coerce"))
                     [["dataset", "solver", "delta", "bound", "step", "seconds", "gap"]])
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    for c in ("step", "seconds", "gap"):
        out[c] = pd.to_numeric(out[c], errors="coerce")
    return out


def _dataset(options) -> str:
    if isinstance(options, str):
        import json

        try:
            options = json.loads(options)
        except ValueError:
            return "?"
    return str((options or {}).get("dataset", "synthetic")) if isinstance(options, dict) else "synthetic"


def stall_summary(paths: pd.DataFrame) -> list[str]:
    """Per dataset and relaxed solver: the gap it stalls at for each δ against the bound, the
    iteration it gets there, and the iterations FISTA needs for the same gap and for F*."""
    lines = []
    for dataset, part in paths.groupby("dataset"):
        fista = part[part["solver"] == "fista"].sort_values("step")
        at_optimum = fista[fista["gap"] <= GAP_FLOOR]["step"]
        for solver, relaxed in part[part["solver"].isin(("huber_gd", TRAINED))].groupby("solver"):
            pieces = []
            for delta, line in relaxed.groupby("delta"):
                line = line.sort_values("step")
                stall = float(line["gap"].iloc[-1])
                within = line[line["gap"] <= stall + 0.01 * abs(stall) + GAP_FLOOR]
                reached = int(within["step"].iloc[0]) if len(within) else int(line["step"].iloc[-1])
                fista_steps = fista[fista["gap"] <= max(stall, GAP_FLOOR)]["step"]
                fista_text = (f"a gap FISTA reaches after {int(fista_steps.iloc[0])}" if len(fista_steps)
                              else "a gap FISTA does not reach within its steps")
                pieces.append(f"at δ = {delta:g} it stalls at F − F* = {stall:.2g} (bound "
                              f"{float(line['bound'].iloc[0]):.2g}) from iteration {reached}, {fista_text}")
            name = "the Huber relaxation by gradient descent" if solver == "huber_gd" else "the Huber relaxation by Adam"
            lines.append(f"{dataset}, {name}: " + "; ".join(pieces) + ".")
        if len(at_optimum):
            lines.append(f"{dataset}: FISTA reaches F* to rounding after {int(at_optimum.iloc[0])} iterations.")
    return lines


def lasso_solvers(cells: pd.DataFrame, history: pd.DataFrame, out, kind: str = "lasso_delta"):
    """The gap to F* against iterations and seconds for every solver, one row of panels per
    dataset; a `Figure` or None."""
    from matplotlib.lines import Line2D

    from gradest.plotting.figure import Figure
    from gradest.plotting.style import finish, log_axis, plt, save, subplots

    paths = solver_paths(cells, history, kind)
    if paths.empty or not paths["solver"].isin(EXACT_SOLVERS).any():
        return None
    datasets = sorted(paths["dataset"].unique())
    deltas = sorted(paths["delta"].dropna().unique())
    shades = dict(zip(deltas, plt.get_cmap("viridis")(np.linspace(0.0, 0.85, max(len(deltas), 1)))))
    exact_style = {"ista": ("0.45", "-"), "fista": ("0.0", "-"), "coordinate_descent": ("C3", "-")}
    heights = [3.1] * len(datasets)
    fig, axes = subplots(len(datasets), 2, 4.0, heights)
    for r, dataset in enumerate(datasets):
        part = paths[paths["dataset"] == dataset]
        for c, x in enumerate(("step", "seconds")):
            ax = axes[r][c]
            for (solver, delta), line in part.groupby(["solver", "delta"], dropna=False):
                if x == "seconds" and solver == TRAINED:
                    continue  # its time holds gradest's compilation and evaluations: not the same footing
                line = line.sort_values("step")
                gap = line["gap"].clip(lower=GAP_FLOOR)
                if solver in exact_style:
                    color, ls = exact_style[solver]
                    # coordinate descent's points are separate fits (k epochs each): no line through time
                    refits = solver == "coordinate_descent" and x == "seconds"
                    ax.plot(line[x], gap, color=color, ls="none" if refits else ls, lw=1.8,
                            marker="o" if solver == "coordinate_descent" else None, ms=3)
                else:
                    ax.plot(line[x], gap, color=shades[delta], ls="-" if solver == "huber_gd" else "--", lw=1.4)
                    if c == 0:
                        ax.axhline(float(line["bound"].iloc[0]), color=shades[delta], ls=":", lw=0.9)
            log_axis(ax, "x")
            log_axis(ax, "y")
            ax.set_xlabel("iteration (epoch for coordinate descent; log)" if x == "step" else "solver seconds (log)")
            ax.set_ylabel("F(w) − F(w*) (log)")
            ax.set_title(f"{dataset}: gap against {'iterations' if x == 'step' else 'time'}")
    handles = [Line2D([], [], color=color, ls=ls, lw=2, label=name.replace("_", " "))
               for name, (color, ls) in exact_style.items()]
    handles += [Line2D([], [], color=shades[d], lw=2, label=f"Huber δ = {d:g}") for d in deltas]
    handles += [Line2D([], [], color="0.3", ls="-", label="Huber: gradient descent, step 1/(L + α/δ)"),
                Line2D([], [], color="0.3", ls="--", label="Huber: Adam through gradest (exact gradient)"),
                Line2D([], [], color="0.3", ls=":", label="bound α·d·δ/2")]
    finish(fig, heights=heights, left=0.9, wspace=0.9, title="Lasso: the Huber relaxation against the Lasso's solvers",
           handles=handles, legend_title="solver")
    answer = " ".join(stall_summary(paths))
    caption = ("The unrelaxed Lasso objective's gap to scikit-learn's optimum F* along each solver's iterations "
               "and seconds (from w = 0, float64; gaps below "
               f"{GAP_FLOOR:g} are F* to rounding): ISTA and FISTA (proximal gradient with soft-thresholding, "
               "step 1/L), scikit-learn's coordinate descent stopped after k epochs, and the δ-relaxed Huber "
               "objective by gradient descent and by Adam (the first backend's evaluated steps; left panels only: its seconds hold gradest's compilation and evaluations). A relaxed "
               "solver cannot go below its relaxation's gap, at most α·d·δ/2 (dotted). Where each stalls, and "
               "after how many iterations FISTA is as close: " + answer)
    return Figure("lasso_solvers", "Lasso solvers", caption, save(fig, out, "lasso_solvers"))


@register_cell_kind("lasso_delta", description="Lasso: the Huber width δ against the gap to scikit-learn's optimum, "
                                               "beside ISTA, FISTA and coordinate descent")
class LassoDeltaKind(CellKind):
    order = 40
    columns = {"solver": "adam (gradest training), huber_gd, ista, fista or coordinate_descent",
               "delta": "Huber width δ (NaN for the exact-Lasso solvers)", "objective_gap": "F(w) − F(w*)",
               "relative_objective_gap": "(F(w) − F(w*)) / F(w*)", "relaxation_bound": "α·d·δ/2"}
    grid = {"quick": {"deltas": (1.0, 0.1, 0.01), "steps": 150, "learning_rate": 0.05, "solver_steps": 500,
                      "datasets": ("synthetic", "diabetes")},
            "medium": {"deltas": (1.0, 0.3, 0.1, 0.03, 0.01), "steps": 1000, "learning_rate": 0.05,
                       "solver_steps": 2000, "datasets": ("synthetic", "diabetes")},
            "full": {"deltas": (1.0, 0.3, 0.1, 0.03, 0.01, 0.003), "steps": 1000, "learning_rate": 0.05,
                     "solver_steps": 5000, "datasets": ("synthetic", "diabetes")}}

    def plan(self, ctx) -> list:
        if TASK not in ctx.tasks or (ctx.chosen and not any(name == "exact" for name, _ in ctx.variants)):
            return []
        grid = self.grid_for(ctx.budget) or self.grid["quick"]
        base = ctx.task_options(TASK)
        cells = []
        for dataset in grid["datasets"]:
            # the task's default dataset is left unnamed, so that a selection's own dataset
            # (--tasks lasso_huber:dataset=...) replaces it; the others are the kind's own
            options = dict(base) if dataset == DEFAULT_DATASET else dict(base, dataset=dataset)
            cells += [ctx.cell(self.name, TASK, "exact", {}, backend, num_samples=1,
                               task_options={**options, "delta": float(delta)},
                               settings={"solver": TRAINED, "steps": int(grid["steps"]), "delta": float(delta),
                                         "learning_rate": float(grid["learning_rate"])})
                      for delta in grid["deltas"] for backend in ctx.backends]
            solvers = [(name, math.nan) for name in EXACT_SOLVERS] + [("huber_gd", d) for d in grid["deltas"]]
            cells += [ctx.cell(self.name, TASK, "exact", {}, ctx.backends[0], num_samples=1,
                               task_options=dict(options),
                               settings={"solver": name, "steps": int(grid["solver_steps"]),
                                         **({} if math.isnan(delta) else {"delta": float(delta)})})
                      for name, delta in solvers]
        return cells

    def run(self, cell, task, estimator):
        if cell.settings.get("solver", TRAINED) != TRAINED:
            return solver_cell(cell, task)
        result, history, seconds = train_cell(cell, task, estimator)
        row = {"solver": TRAINED, "steps": int(cell.settings["steps"]), "delta": float(cell.settings["delta"]),
               "train_seconds": seconds}
        row.update(lasso_gap(task, result.params))
        final = final_values(history)
        row.update({k: final[k] for k in ("final_loss", "final_exact_loss") if k in final})
        return row, history.assign(solver=TRAINED)

    def figures(self, cells, history, palette, out) -> list:
        return [("lasso_delta_sweep", lambda: lasso_delta_sweep(cells, history, palette, out, self.name)),
                ("lasso_solvers", lambda: lasso_solvers(cells, history, out, self.name))]
