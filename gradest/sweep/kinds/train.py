"""The ``train`` cell kind: `gradest.train` of a task with an estimator variant.

Cells: every selected task x backend x variant that trains (`PlanContext.variants_on` with
``training=True``) x seed, for the task's declared ``train_steps`` at its
``train_num_samples`` and ``learning_rate``. A row carries the last logged value of each
history column (``final_loss``, ``final_exact_loss``, the task's metrics) and the wall time;
the history (about `HISTORY_POINTS` logged steps) is kept.
"""
from __future__ import annotations

import time

from gradest.sweep.kinds import CellKind, register_cell_kind

#: about this many logged steps per training history
HISTORY_POINTS = 40


def train_cell(cell, task, estimator, **options):
    """(TrainResult, history DataFrame, seconds) of ``cell``'s training run."""
    import pandas as pd

    import gradest

    if cell.settings.get("learning_rate") is not None:
        options.setdefault("learning_rate", cell.settings["learning_rate"])
    steps = int(cell.settings["steps"])
    start = time.perf_counter()
    result = gradest.train(task, estimator, backend=cell.backend, device=cell.device, steps=steps, seed=cell.seed,
                           num_samples=cell.num_samples, eval_every=max(1, steps // HISTORY_POINTS),
                           progress=False, **options)
    return result, pd.DataFrame(result.history), time.perf_counter() - start


def final_values(history) -> dict:
    """``final_<column>`` of the last logged row, for the numeric columns."""
    from gradest.sweep.store import scalar

    row = {}
    if len(history):
        last = history.iloc[-1]
        for col in history.columns:
            value = scalar(last[col])
            if col != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                row[f"final_{col}"] = value
    return row


@register_cell_kind("train", description="training curves: loss and metrics over steps")
class TrainKind(CellKind):
    columns = {"train_seconds": "wall time of the run", "final_loss": "the last step's surrogate loss",
               "final_exact_loss": "L(θ) at the last logged step (where the task has truth)"}

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
        return {"steps": int(cell.settings["steps"]), "train_seconds": seconds, **final_values(history)}, history

    def figures(self, cells, history, palette, out) -> list:
        from gradest.reports import figures as FG

        return [("training_curves", lambda: FG.training_curves(history, palette, out))]
