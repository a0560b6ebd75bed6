"""The ``train`` cell kind: `gradest.train` of a task with an estimator variant.

Cells: every selected task x backend x variant that trains (`PlanContext.variants_on` with
``training=True``) x seed, for the task's declared ``train_steps`` at its
``train_num_samples`` and ``learning_rate`` (the budget's ``learning_rate`` overrides it; its
``track_every`` adds the variance along training, below, over the task's ``num_replicates``). A
row carries the last logged value of each history column (``final_loss``, ``final_exact_loss``,
the task's metrics) and the wall time; the history (about `HISTORY_POINTS` logged steps) is
kept.

Cells planned elsewhere (`gradest.presets`, through `TrainKind.plan_runs` and
`train_settings`) may also ask for the gradient basket of `gradest.train` in their settings:
``track`` (estimator specs; ``"self"`` is the cell's own variant), ``every`` and
``track_replicates``. The history then has the ``<label>/variance`` columns, and for
``"self"`` the history has the copy ``own_variance`` and the row adds
``self_log10_variance`` (the mean over the measured steps of log10 of the variance of the
estimator being trained, at θ_t: its variance along training) and ``self_final_variance``.

Frames: `training_curves` (the loss to draw per history row), `own_variance_curves` (log10 of
``own_variance``), `training_finals` (the final loss per task x estimator x backend: the
summary table's "final training loss"). Figures: `training_curves_figure` (loss against step
and wall-clock time) and `variance_along_training`.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from gradest.plotting.frames import curve_bands, done, ordered_backends, with_display_labels
from gradest.sweep.cell_kind import CellKind, register_cell_kind

#: about this many logged steps per training history
HISTORY_POINTS = 40
#: at least this many measurements of the variance along training when the run does not say how often
TRACK_POINTS = 10
#: the ``track`` entry naming the cell's own estimator variant
SELF = "self"
#: the history column with that estimator's variance along training (a copy of its basket column)
OWN_VARIANCE = "own_variance"


def train_cell(cell, task, estimator, **options):
    """(TrainResult, history DataFrame, seconds) of ``cell``'s training run."""
    from gradest.training import train

    if cell.settings.get("learning_rate") is not None:
        options.setdefault("learning_rate", cell.settings["learning_rate"])
    if cell.settings.get("track"):
        options.setdefault("track", tracked(cell))
        options.setdefault("every", cell.settings.get("every"))
        options.setdefault("track_replicates", int(cell.settings.get("track_replicates", 200)))
    steps = int(cell.settings["steps"])
    start = time.perf_counter()
    result = train(task, estimator, backend=cell.backend, device=cell.device, steps=steps, seed=cell.seed,
                   num_samples=cell.num_samples, eval_every=max(1, steps // HISTORY_POINTS), progress=False,
                   **options)
    return result, pd.DataFrame(result.history), time.perf_counter() - start


def tracked(cell) -> list:
    """The estimators of ``cell``'s gradient basket as (name, options); ``"self"`` is the cell's."""
    from gradest.labels import parse_spec

    out = []
    for spec in cell.settings.get("track") or ():
        if spec == SELF:
            out.append((cell.estimator, dict(cell.estimator_options)))
        else:
            name, options = parse_spec(spec)
            out.append((name, dict(options or {})))
    return out


def own_variance_summary(history) -> dict:
    """``self_log10_variance`` and ``self_final_variance`` from the history's `OWN_VARIANCE`."""
    if OWN_VARIANCE not in history.columns:
        return {}
    values = history[OWN_VARIANCE].to_numpy(dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if not len(values):
        return {}
    return {"self_log10_variance": float(np.mean(np.log10(values))), "self_final_variance": float(values[-1])}


def final_values(history) -> dict:
    """``final_<column>`` of the last logged row, for the numeric columns."""
    from gradest.sweep.store import scalar

    row = {}
    if len(history):
        last = history.iloc[-1]
        for col in history.columns:
            value = scalar(last[col])
            # the basket's "<label>/<stat>" columns are summarized by `own_variance_summary`, not here
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if col not in ("step", OWN_VARIANCE) and "/" not in col and numeric:
                row[f"final_{col}"] = value
    return row


def train_settings(steps: int, learning_rate: float | None = None, *, track_every: int | None = None,
                   track_replicates: int | None = None) -> dict:
    """The settings of a train cell: ``steps``, the ``learning_rate`` (None: the task's) and,
    with ``track_every``, the trained estimator's own variance every that many steps (at most
    ``steps``) over ``track_replicates`` replicates."""
    settings = {"steps": int(steps)}
    if learning_rate is not None:
        settings["learning_rate"] = float(learning_rate)
    if track_every is not None:
        settings.update(track=[SELF], every=min(int(track_every), int(steps)), track_replicates=track_replicates)
    return settings


# ---- frames -----------------------------------------------------------------------------


def training_curves(history: pd.DataFrame, kind: str = "train") -> tuple[pd.DataFrame, str]:
    """(history rows of ``kind`` with a ``value`` column, the column it was taken from): the
    exact loss where the task has one on every row, else the surrogate loss."""
    if history is None or history.empty or "kind" not in history.columns:
        return pd.DataFrame(), ""
    frame = history[history["kind"] == kind].copy()
    if frame.empty:
        return frame, ""
    parts, used = [], set()
    for task, part in frame.groupby("task"):
        column = "loss"
        if "exact_loss" in part.columns and pd.to_numeric(part["exact_loss"], errors="coerce").notna().all():
            column = "exact_loss"
        part = part.assign(value=pd.to_numeric(part[column], errors="coerce"), value_column=column)
        parts.append(part)
        used.add(column)
    out = pd.concat(parts, ignore_index=True)
    return out, "exact_loss" if used == {"exact_loss"} else ("loss" if used == {"loss"} else "mixed")


def own_variance_curves(history: pd.DataFrame, kind: str = "train") -> pd.DataFrame:
    """History rows of ``kind`` where a cell tracked its own estimator's gradient variance
    along training (the column `OWN_VARIANCE`), with ``value`` = log10 of that variance at
    θ_t; rows where it was not measured are dropped."""
    if history is None or history.empty or "kind" not in history.columns or OWN_VARIANCE not in history.columns:
        return pd.DataFrame()
    frame = history[history["kind"] == kind]
    values = pd.to_numeric(frame[OWN_VARIANCE], errors="coerce")
    keep = values.notna() & (values > 0)
    if not keep.any():
        return pd.DataFrame()
    return frame[keep].assign(value=np.log10(values[keep].to_numpy(dtype=float)))


def training_finals(cells: pd.DataFrame, kind: str = "train") -> pd.DataFrame:
    """Final training loss per task x estimator x backend (mean and spread over seeds): L(θ)
    where the task has truth, else the last step's loss (e.g. a VAE's -ELBO estimate)."""
    frame = with_display_labels(done(cells, kind), within=("task",))  # two S of one variant: two rows
    if frame.empty:
        return pd.DataFrame()
    if "final_exact_loss" not in frame.columns and "final_loss" not in frame.columns:
        return pd.DataFrame()
    exact = pd.to_numeric(frame.get("final_exact_loss", pd.Series(np.nan, index=frame.index)), errors="coerce")
    loss = pd.to_numeric(frame.get("final_loss", pd.Series(np.nan, index=frame.index)), errors="coerce")
    frame["final"] = exact.where(exact.notna(), loss)
    out = frame.groupby(["task", "estimator", "backend"])["final"].agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"mean": "final_loss", "std": "final_loss_sd", "count": "train_seeds"})


# ---- figures ----------------------------------------------------------------------------


def training_curves_figure(history: pd.DataFrame, palette, out):
    """Loss against step and against wall-clock seconds, mean and band over seeds; a `Figure` or None."""
    from matplotlib.ticker import MaxNLocator

    from gradest.plotting.figure import BAND_TEXT, Figure, band_lines, legend_handles, log_if_decades
    from gradest.plotting.style import finish, save, subplots

    curves, column = training_curves(history, "train")
    if curves.empty or "step" not in curves.columns:
        return None
    bands = curve_bands(with_display_labels(curves, within=("task",)))
    if bands.empty:
        return None
    tasks = sorted(bands["task"].unique())
    clock = "seconds" in bands.columns and bands["seconds"].notna().any()
    xs = [("step", "training step")] + ([("seconds", "wall-clock time after the first step (s)")] if clock else [])
    fig, axes = subplots(len(tasks), len(xs), 3.9, [2.9] * len(tasks), sharey="row")
    kinds = set()
    for r, task in enumerate(tasks):
        part = bands[bands["task"] == task]
        col = curves.loc[curves["task"] == task, "value_column"].iloc[0]
        for c, (x, xlabel) in enumerate(xs):
            ax = axes[r][c]
            kinds |= band_lines(ax, part, x, palette)
            log_if_decades(ax, part[["mean", "low", "high"]].to_numpy().ravel())
            ax.set_title(f"{task} — by {'step' if x == 'step' else 'wall-clock time'}")
            if x == "step":
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel(xlabel)
            if c == 0:
                ax.set_ylabel("exact loss L(θ)" if col == "exact_loss" else "loss (surrogate, per step)")
    handles = legend_handles(palette, bands["estimator"], bands["backend"], markers=False)
    finish(fig, title="Training curves", left=0.95, wspace=0.35, handles=handles, legend_title="estimator")
    seeds = int(bands["seeds"].max())
    first = ""
    if clock and bands["first_step_seconds"].notna().any():
        slow = bands.groupby("backend")["first_step_seconds"].max()
        first = ", ".join(f"{b} up to {slow[b]:.2g} s" for b in ordered_backends(slow.index))
    caption = ("Loss to minimize against the optimizer step (Adam)"
               + (" and against the wall-clock time of the training steps after the first one (mean over seeds; "
                  f"evaluation time left out; the first step, which includes compilation — {first} — is not "
                  "counted)" if clock else "")
               + f", mean over up to {seeds} seed{'s' if seeds > 1 else ''}; band: "
               f"{', '.join(BAND_TEXT[k] for k in sorted(kinds))}. The exact loss L(θ) is drawn where the task has "
               f"ground truth, else the step's surrogate loss. Line style: backend.")
    return Figure("training_curves", "Training curves", caption, save(fig, out, "training_curves"))


def variance_along_training(history: pd.DataFrame, palette, out):
    """log10 of the trained estimator's own gradient variance at θ_t against the step, where
    the cells tracked it (e.g. the presets); a `Figure` or None."""
    from matplotlib.ticker import MaxNLocator

    from gradest.plotting.figure import BAND_TEXT, Figure, band_lines, legend_handles
    from gradest.plotting.style import finish, save, subplots

    curves = own_variance_curves(history, "train")
    if curves.empty or "step" not in curves.columns:
        return None
    bands = curve_bands(with_display_labels(curves.drop(columns=["seconds"], errors="ignore"), within=("task",)))
    if bands.empty:
        return None
    tasks = sorted(bands["task"].unique())
    cols = min(2, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = subplots(rows, cols, 3.9, [2.9] * rows)
    kinds = set()
    for i, task in enumerate(tasks):
        ax = axes[i // cols][i % cols]
        kinds |= band_lines(ax, bands[bands["task"] == task], "step", palette)
        ax.set_title(task)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("training step")
        ax.set_ylabel("log10 gradient variance")
    for j in range(len(tasks), rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    handles = legend_handles(palette, bands["estimator"], bands["backend"], markers=False)
    finish(fig, title="Gradient variance along training", left=0.95, wspace=0.35, handles=handles,
           legend_title="estimator")
    replicates = pd.to_numeric(curves.get("track_replicates"), errors="coerce").max() if "track_replicates" in \
        curves.columns else math.nan
    caption = ("log10 of the variance (trace of the covariance) of the trained estimator's own gradient at the "
               "parameters θ_t of its run, measured every few steps"
               + (f" over {int(replicates)} replicates" if math.isfinite(replicates) else "")
               + "; mean of the log over seeds, band: " + ", ".join(BAND_TEXT[k] for k in sorted(kinds))
               + ". Learned estimators (RELAX, tuned REBAR, NVIL) are measured at their φ as trained up to "
                 "that step. Line style: backend.")
    return Figure("variance_along_training", "Gradient variance along training", caption,
                  save(fig, out, "variance_along_training"))


# ---- the kind ---------------------------------------------------------------------------


@register_cell_kind("train", description="training curves: loss and metrics over steps")
class TrainKind(CellKind):
    order = 30
    table_metrics = {"final_exact_loss": "lower", "final_test_neg_elbo": "lower", "final_test_neg_iw_bound": "lower",
                     "final_train_neg_elbo": "lower", "self_log10_variance": "lower"}
    columns = {"train_seconds": "wall time of the run", "final_loss": "the last step's surrogate loss",
               "final_exact_loss": "L(θ) at the last logged step (where the task has truth)",
               "self_log10_variance": "mean log10 variance of the trained estimator along training (cells "
                                      "that track it)"}

    def plan(self, ctx) -> list:
        cells = []
        for task in ctx.tasks:
            sizes = ctx.sizes(task)
            settings = train_settings(sizes.train_steps, sizes.learning_rate, track_every=ctx.budget.track_every,
                                      track_replicates=sizes.num_replicates)
            for backend in ctx.backends:
                for name, options in ctx.variants_on(backend, training=True):
                    for seed in ctx.seeds():
                        cells.append(ctx.cell(self.name, task, name, options, backend, seed=seed,
                                              num_samples=sizes.train_num_samples, settings=settings))
        return cells

    def plan_runs(self, ctx, runs, settings: dict, seeds) -> list:
        """The cells of declared training runs (a preset's): for each run (task, task options,
        estimator name, estimator options, S), one cell per backend of ``ctx`` and seed of
        ``seeds``, all with ``settings`` (`train_settings`)."""
        return [ctx.cell(self.name, task, name, options, backend, seed=seed, num_samples=num_samples,
                         settings=settings, task_options=task_options)
                for task, task_options, name, options, num_samples in runs
                for backend in ctx.backends for seed in seeds]

    def run(self, cell, task, estimator):
        _, history, seconds = train_cell(cell, task, estimator)
        own = f"{estimator.label}/variance"
        if SELF in (cell.settings.get("track") or ()) and own in history.columns:
            history[OWN_VARIANCE] = history[own]  # one name for every cell: the figure reads it
        return {"steps": int(cell.settings["steps"]), "train_seconds": seconds, **final_values(history),
                **own_variance_summary(history)}, history

    def summary_columns(self, cells):
        finals = training_finals(cells, self.name)
        if finals.empty:
            return None
        agg = finals.groupby(["task", "estimator"])["final_loss"].mean().reset_index()
        return agg.rename(columns={"final_loss": "final training loss"})

    def figures(self, cells, history, palette, out) -> list:
        return [("training_curves", lambda: training_curves_figure(history, palette, out)),
                ("variance_along_training", lambda: variance_along_training(history, palette, out))]
