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

Metrics and initialization: each seed starts from its own initialization
(``gradest.train(init="seed")``: θ₀ derived from the cell's seed where the task derives one, a
VAE's; tasks with a declared θ₀, the toys, keep it), recorded as ``init_seed`` (NaN for a
declared θ₀). The history logs the minibatch surrogate at about `HISTORY_POINTS` steps and the
task's metrics at about `EVAL_POINTS` (``eval_steps``; always the first and the last); a row's
``final_<column>`` is the last value of each column (``final_minibatch_surrogate``, its former
name ``final_loss``, ``final_exact_loss``, ``final_<metric>``).

Evaluation cadence (`INTERMEDIATE_METRICS`): the evaluation points before the last evaluate
the task's declared ``intermediate_metrics`` only (a VAE's train and test -ELBO and KL: no
k-sample IW bound, no enumerated NLL, which cost up to k / eval_samples times more), the last
one every metric, so that a full-budget cell spends its time training: the final values
(``final_test_neg_iw_bound`` ...) are those of the last step as before, the curves of the cheap
metrics keep their `EVAL_POINTS` points. The row records where the time went:
``step_seconds`` (the training steps), ``eval_seconds`` (metrics and exact loss) and
``basket_seconds`` (the gradient basket), from `gradest.train`'s ``timings``. The row also names the task's
headline metric: ``headline_metric`` (the history column: the task's ``headline_metric`` where
it was evaluated, else ``minibatch_surrogate``) and ``headline_description`` (what it measures,
on which data).

Frames: `training_curves` (the headline metric to draw per history row), `own_variance_curves`
(log10 of ``own_variance``), `training_finals` (the final headline metric per task x estimator x
backend: the summary table's "final metric", labelled by its "metric" column). Results stored
before headlines were recorded draw and tabulate the exact loss where the task has one, else
the minibatch surrogate (the summary's "final minibatch surrogate"). Figures: `training_curves_figure`
(the headline metric against step and wall-clock time) and `variance_along_training`.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from gradest.kinds.gradient import evaluations_on
from gradest.plotting.frames import curve_bands, done, ordered_backends, with_display_labels
from gradest.sweep.cell_kind import CellKind, register_cell_kind

#: about this many logged steps per training history (the minibatch surrogate, the exact loss)
HISTORY_POINTS = 40
#: about this many steps per run where the task's metrics are evaluated (the first and last among them)
EVAL_POINTS = 20
#: what the evaluation points before the last evaluate: the task's declared cheap metrics
#: (`gradest.train`'s ``intermediate_metrics``); the last point evaluates all of them
INTERMEDIATE_METRICS = "declared"
#: the history column drawn when a task's headline metric was not evaluated
SURROGATE = "minibatch_surrogate"
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
    options.setdefault("eval_steps", EVAL_POINTS)
    options.setdefault("intermediate_metrics", INTERMEDIATE_METRICS)
    options.setdefault("init", "seed")
    start = time.perf_counter()
    result = train(task, estimator, backend=cell.backend, device=cell.device, steps=steps, seed=cell.seed,
                   num_samples=cell.num_samples, eval_every=max(1, steps // HISTORY_POINTS), progress=False,
                   **options)
    return result, pd.DataFrame(result.history), time.perf_counter() - start


def time_split(result) -> dict:
    """``step_seconds``, ``eval_seconds``, ``basket_seconds``: where a run's time went
    (`gradest.training.TrainResult.timings`)."""
    timings = getattr(result, "timings", None) or {}
    names = {"steps": "step_seconds", "evaluation": "eval_seconds", "basket": "basket_seconds"}
    return {column: float(timings[part]) for part, column in names.items() if part in timings}


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
    """``final_<column>``: the last value of each numeric column (metrics: of their last evaluation)."""
    from gradest.sweep.store import scalar

    row = {}
    if len(history):
        for col in history.columns:
            present = history[col].dropna()
            value = scalar((present if len(present) else history[col]).iloc[-1])
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


def headline(task, history) -> dict:
    """``headline_metric`` (the history column a report shows for ``task``'s run: the task's
    ``headline_metric`` where the history has values of it, else the minibatch surrogate) and
    ``headline_description`` (what it measures)."""
    from gradest.training import HISTORY_DESCRIPTIONS

    name = getattr(task, "headline_metric", "exact_loss")
    if name not in history.columns or not pd.to_numeric(history[name], errors="coerce").notna().any():
        name = SURROGATE
    descriptions = {**HISTORY_DESCRIPTIONS, **dict(getattr(task, "metric_descriptions", {}) or {})}
    return {"headline_metric": name, "headline_description": descriptions.get(name, name)}


def _headlines(cells, kind: str) -> dict:
    """{task: (headline column, description)} from the done cells of ``kind`` that record one."""
    frame = done(cells, kind) if cells is not None else pd.DataFrame()
    if frame.empty or "headline_metric" not in frame.columns:
        return {}
    out = {}
    for task, part in frame.groupby("task"):
        part = part[part["headline_metric"].notna()]
        if len(part):
            described = part.get("headline_description", part["headline_metric"]).fillna(part["headline_metric"])
            out[task] = (str(part["headline_metric"].iloc[0]), str(described.iloc[0]))
    return out


def short_label(description: str) -> str:
    """The axis label of a metric: its description up to the first parenthesis or colon."""
    for mark in (" (", ":"):
        description = description.split(mark)[0]
    return description.strip()


# ---- frames -----------------------------------------------------------------------------


def training_curves(history: pd.DataFrame, kind: str = "train", cells=None) -> tuple[pd.DataFrame, str]:
    """(history rows of ``kind`` with a ``value`` column, the column it was taken from, or
    "mixed"): per task its headline metric as the cells of ``cells`` record it (rows where it was
    evaluated), with ``value_column`` and ``value_description``; without that record the exact
    loss where the task has one on every row, else the minibatch surrogate (``loss``)."""
    from gradest.training import HISTORY_DESCRIPTIONS

    if history is None or history.empty or "kind" not in history.columns:
        return pd.DataFrame(), ""
    frame = history[history["kind"] == kind].copy()
    if frame.empty:
        return frame, ""
    headlines = _headlines(cells, kind)
    parts, used = [], set()
    for task, part in frame.groupby("task"):
        column, description = headlines.get(task, (None, None))
        if column is None or column not in part.columns:
            column = "loss"
            if "exact_loss" in part.columns and pd.to_numeric(part["exact_loss"], errors="coerce").notna().all():
                column = "exact_loss"
            description = HISTORY_DESCRIPTIONS[column]
        values = pd.to_numeric(part[column], errors="coerce")
        part = part[values.notna()].assign(value=values[values.notna()], value_column=column,
                                           value_description=description)
        parts.append(part)
        used.add(column)
    out = pd.concat(parts, ignore_index=True)
    return out, used.pop() if len(used) == 1 else "mixed"


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
    """Final headline metric per task x estimator x backend (mean and spread over seeds, as
    ``final_loss``, ``final_loss_sd``), with ``metric`` (its description): each cell's
    ``final_<headline_metric>``; for cells without a recorded headline, L(θ) where the task has
    truth, else the last step's minibatch surrogate (``metric`` then NaN)."""
    frame = with_display_labels(done(cells, kind), within=("task",))  # two S of one variant: two rows
    if frame.empty:
        return pd.DataFrame()
    if "final_exact_loss" not in frame.columns and "final_loss" not in frame.columns \
            and "headline_metric" not in frame.columns:
        return pd.DataFrame()
    nan = pd.Series(np.nan, index=frame.index)
    exact = pd.to_numeric(frame.get("final_exact_loss", nan), errors="coerce")
    final = exact.where(exact.notna(), pd.to_numeric(frame.get("final_loss", nan), errors="coerce"))
    metric = pd.Series("", index=frame.index, dtype=object)
    if "headline_metric" in frame.columns:  # the recorded headline metric, where there is one
        for index, name in frame["headline_metric"].dropna().items():
            column = f"final_{name}"
            final.loc[index] = pd.to_numeric(frame.at[index, column], errors="coerce") \
                if column in frame.columns else np.nan
            described = frame.at[index, "headline_description"] if "headline_description" in frame.columns else name
            metric.loc[index] = described if isinstance(described, str) else name
    frame = frame.assign(final=final, metric=metric)
    out = frame.groupby(["task", "estimator", "backend", "metric"])["final"].agg(["mean", "std", "count"])
    out = out.reset_index().rename(columns={"mean": "final_loss", "std": "final_loss_sd", "count": "train_seeds"})
    out["metric"] = out["metric"].replace("", np.nan)
    return out


# ---- figures ----------------------------------------------------------------------------


def training_curves_figure(history: pd.DataFrame, palette, out, cells=None):
    """Each task's headline metric (as ``cells`` record it; see `training_curves`) against step and
    against wall-clock seconds (a log axis where they span more than 10x), mean and band over
    seeds; a `Figure` or None."""
    from matplotlib.ticker import MaxNLocator

    from gradest.plotting.figure import BAND_TEXT, Figure, band_lines, legend_handles, log_if_decades
    from gradest.plotting.style import finish, log_axis, save, subplots

    curves, column = training_curves(history, "train", cells)
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
        description = curves.loc[curves["task"] == task, "value_description"].iloc[0]
        for c, (x, xlabel) in enumerate(xs):
            ax = axes[r][c]
            drawn = part
            seconds = pd.to_numeric(part["seconds"], errors="coerce") if x == "seconds" else None
            wide = seconds is not None and (seconds > 0).any() and \
                seconds[seconds > 0].max() > 10 * seconds[seconds > 0].min()
            if wide:  # a log time axis: the first logged step (time 0) is left out
                drawn = part[seconds > 0]
            kinds |= band_lines(ax, drawn, x, palette)
            if wide:
                log_axis(ax, "x")
            log_if_decades(ax, drawn[["mean", "low", "high"]].to_numpy().ravel())
            ax.set_title(f"{task} — by {'step' if x == 'step' else 'wall-clock time'}")
            if x == "step":
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel(xlabel)
            if c == 0:
                ax.set_ylabel(short_label(description))
    handles = legend_handles(palette, bands["estimator"], bands["backend"], markers=False)
    finish(fig, title="Training curves", left=0.95, wspace=0.35, handles=handles, legend_title="estimator")
    seeds = int(bands["seeds"].max())
    first = ""
    if clock and bands["first_step_seconds"].notna().any():
        slow = bands.groupby("backend")["first_step_seconds"].max()
        first = ", ".join(f"{b} up to {slow[b]:.2g} s" for b in ordered_backends(slow.index))
    described = "; ".join(f"{task}: {curves.loc[curves['task'] == task, 'value_description'].iloc[0]}"
                          for task in tasks)
    caption = ("Each task's headline metric against the optimizer step (Adam)"
               + (" and against the wall-clock time of the training steps after the first one (mean over seeds; "
                  f"evaluation time left out; the first step, which includes compilation — {first} — is not "
                  "counted)" if clock else "")
               + f", mean over up to {seeds} seed{'s' if seeds > 1 else ''}; band: "
               f"{', '.join(BAND_TEXT[k] for k in sorted(kinds))}; a wall-clock axis spanning more than 10x is "
               f"logarithmic. Metrics drawn — {described}. Line style: backend.")
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
    columns = {"train_seconds": "wall time of the run",
               "step_seconds": "wall time of the run's training steps",
               "eval_seconds": "wall time of the run's evaluations (metrics, exact loss)",
               "basket_seconds": "wall time of the run's gradient basket (variance along training)",
               "final_minibatch_surrogate": "the last step's minibatch surrogate (not a metric)",
               "final_loss": "the last step's minibatch surrogate (the former name of final_minibatch_surrogate)",
               "init_seed": "the seed θ₀ was drawn from (derived from the cell's seed; NaN: the task's "
                            "declared θ₀)",
               "headline_metric": "the history column the report shows for the run (the task's headline metric)",
               "headline_description": "what the headline metric measures, on which data",
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
        result, history, seconds = train_cell(cell, task, estimator)
        own = f"{estimator.label}/variance"
        if SELF in (cell.settings.get("track") or ()) and own in history.columns:
            history[OWN_VARIANCE] = history[own]  # one name for every cell: the figure reads it
        init_seed = math.nan if result.init_seed is None else int(result.init_seed)
        # what one training step's estimate costs in evaluations of f (tables show it beside S)
        evaluations = evaluations_on(task, estimator, cell.num_samples, cell.backend, cell.device)
        return {"steps": int(cell.settings["steps"]), "train_seconds": seconds, **time_split(result),
                "init_seed": init_seed, "evaluations": evaluations, **final_values(history),
                **headline(task, history), **own_variance_summary(history)}, history

    def summary_columns(self, cells):
        finals = training_finals(cells, self.name)
        if finals.empty:
            return None
        if finals["metric"].isna().all():  # results without recorded headlines
            agg = finals.groupby(["task", "estimator"])["final_loss"].mean().reset_index()
            return agg.rename(columns={"final_loss": "final minibatch surrogate"})
        finals["metric"] = finals["metric"].fillna(SURROGATE)
        agg = finals.groupby(["task", "estimator"]).agg(metric=("metric", "first"), final=("final_loss", "mean"))
        return agg.reset_index().rename(columns={"final": "final metric"})

    def figures(self, cells, history, palette, out) -> list:
        return [("training_curves", lambda: training_curves_figure(history, palette, out, cells)),
                ("variance_along_training", lambda: variance_along_training(history, palette, out))]
