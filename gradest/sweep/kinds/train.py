"""The ``train`` cell kind: `gradest.train` of a task with an estimator variant.

Cells: every selected task x backend x variant that trains (`PlanContext.variants_on` with
``training=True``) x seed, for the task's declared ``train_steps`` at its
``train_num_samples`` and ``learning_rate``. A row carries the last logged value of each
history column (``final_loss``, ``final_exact_loss``, the task's metrics) and the wall time;
the history (about `HISTORY_POINTS` logged steps) is kept.

Cells planned elsewhere (`gradest.presets`) may also ask for the gradient basket of
`gradest.train` in their settings: ``track`` (estimator specs; ``"self"`` is the cell's own
variant), ``every`` and ``track_replicates``. The history then has the ``<label>/variance``
columns, and for ``"self"`` the history has the copy ``own_variance`` and the row adds
``self_log10_variance`` (the mean over the measured
steps of log10 of the variance of the estimator being trained, at θ_t: its variance along
training) and ``self_final_variance``.
"""
from __future__ import annotations

import time

from gradest.sweep.kinds import CellKind, register_cell_kind

#: about this many logged steps per training history
HISTORY_POINTS = 40
#: the ``track`` entry naming the cell's own estimator variant
SELF = "self"
#: the history column with that estimator's variance along training (a copy of its basket column)
OWN_VARIANCE = "own_variance"


def train_cell(cell, task, estimator, **options):
    """(TrainResult, history DataFrame, seconds) of ``cell``'s training run."""
    import pandas as pd

    import gradest

    if cell.settings.get("learning_rate") is not None:
        options.setdefault("learning_rate", cell.settings["learning_rate"])
    if cell.settings.get("track"):
        options.setdefault("track", tracked(cell))
        options.setdefault("every", cell.settings.get("every"))
        options.setdefault("track_replicates", int(cell.settings.get("track_replicates", 200)))
    steps = int(cell.settings["steps"])
    start = time.perf_counter()
    result = gradest.train(task, estimator, backend=cell.backend, device=cell.device, steps=steps, seed=cell.seed,
                           num_samples=cell.num_samples, eval_every=max(1, steps // HISTORY_POINTS),
                           progress=False, **options)
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
    import numpy as np

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


@register_cell_kind("train", description="training curves: loss and metrics over steps")
class TrainKind(CellKind):
    columns = {"train_seconds": "wall time of the run", "final_loss": "the last step's surrogate loss",
               "final_exact_loss": "L(θ) at the last logged step (where the task has truth)",
               "self_log10_variance": "mean log10 variance of the trained estimator along training (cells "
                                      "that track it)"}

    def plan(self, ctx) -> list:
        cells = []
        for task in ctx.tasks:
            sizes = ctx.sizes(task)
            settings = {"steps": int(sizes.train_steps)}
            if sizes.learning_rate is not None:
                settings["learning_rate"] = float(sizes.learning_rate)
            for backend in ctx.backends:
                for name, options in ctx.variants_on(backend, training=True):
                    for seed in ctx.seeds():
                        cells.append(ctx.cell("train", task, name, options, backend, seed=seed,
                                              num_samples=sizes.train_num_samples, settings=settings))
        return cells

    def run(self, cell, task, estimator):
        _, history, seconds = train_cell(cell, task, estimator)
        own = f"{estimator.label}/variance"
        if SELF in (cell.settings.get("track") or ()) and own in history.columns:
            history[OWN_VARIANCE] = history[own]  # one name for every cell: the report's figure reads it
        return {"steps": int(cell.settings["steps"]), "train_seconds": seconds, **final_values(history),
                **own_variance_summary(history)}, history

    def figures(self, cells, history, palette, out) -> list:
        from gradest.reports import figures as FG

        return [("training_curves", lambda: FG.training_curves(history, palette, out)),
                ("variance_along_training", lambda: FG.variance_along_training(history, palette, out))]
