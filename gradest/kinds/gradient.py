"""The ``gradient`` cell kind: `gradest.gradient_stats` of an estimator variant on a task at θ₀.

Cells: every selected task x backend x variant (`PlanContext.variants_on`) x S of the task's
declared ``sample_sizes`` (or the budget's) x measured seed, each over the task's
``num_replicates``. With the budget's ``equal_evaluations`` K, each variant instead has one S:
the largest whose f-evaluations per estimate (`gradest.estimator.f_evaluations`, on the task's
distribution at θ₀) are at most K (`gradest.sweep.cells.samples_within`); its cells carry the
setting ``evaluation_budget`` = K, and a variant that cannot stay within K (its smallest S
spends more) is planned at its smallest S and recorded as skipped, saying so. A row carries
the statistics of `gradest.measure.gradient_stats` (variance, bias, MSE, cosine, SNR, seconds
per estimate with their intervals, threads, φ warm-up steps) and ``evaluations``, the
f-evaluations of one estimate (below K where the variant cannot spend exactly K).

Frames: `gradient_stats(cells)` averages the rows over seeds (one row per task x estimator x
backend x S (x evaluation budget), with ``evaluations``, the zero rule applied); it is the kind's ``estimator_statistics``, which the
report's leaderboard ranks and its summary table and statistics figures show. Figure:
`variance_vs_samples`, the variance against S.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from gradest.plotting.frames import ZERO_RTOL, apply_zero_rule, done, estimator_name, sampled, zero_names
from gradest.sweep.cell_kind import CellKind, register_cell_kind

#: timed vectorized calls per seconds_per_estimate (their median)
TIMING_REPEATS = 5
_IDENTITY = ("task", "estimator", "backend", "device", "num_samples", "seed")
#: the per-cell numbers `gradient_stats` averages over seeds (those the rows carry)
STAT_COLUMNS = ("variance", "variance_low", "variance_high", "bias_norm", "bias_norm_low", "bias_norm_high",
                "bias_sq", "mse", "mse_low", "mse_high", "cosine_to_exact", "seconds_per_estimate", "seconds_low",
                "seconds_high", "snr", "work_normalized_variance", "work_normalized_variance_low",
                "work_normalized_variance_high", "num_replicates", "exact_norm", "mean_norm", "phi_warmup_steps",
                "threads", "evaluations")
#: the cell setting (and row column) of cells planned at equal f-evaluations: K
EVALUATION_BUDGET = "evaluation_budget"


def stats_row(stats: dict) -> dict:
    """A row of `gradient_stats`'s numbers (the identification columns come from the cell)."""
    from gradest.sweep.store import scalar

    return {k: scalar(v) for k, v in stats.items() if k not in _IDENTITY}


def distribution_at_start(task, backend: str = "torch", device: str = "cpu"):
    """The task's distribution at θ₀ (what an estimator's f-evaluations may depend on)."""
    from gradest.backends import get_backend

    B = get_backend(backend, device=device)
    return task.problem(B, B.asarray(task.init_params())).dist


def evaluations_on(task, estimator, num_samples: int, backend: str = "torch", device: str = "cpu") -> int:
    """`gradest.estimator.f_evaluations` of ``estimator`` at S on ``task``: without building the
    distribution unless the estimator's count depends on it."""
    from gradest.estimator import f_evaluations

    try:
        return f_evaluations(estimator, num_samples)
    except ValueError:  # the count depends on the distribution's shape
        return f_evaluations(estimator, num_samples, distribution_at_start(task, backend, device))


def gradient_stats_row(cell, task, estimator) -> dict:
    """The row of ``cell``: `gradest.measure.gradient_stats` at its backend, R, S and seed, and
    the f-evaluations of one estimate (``evaluations``). A cell planned at equal f-evaluations
    whose estimator spends more than its budget is refused (skipped, saying so)."""
    from gradest.measure import UnsupportedCombinationError, gradient_stats

    evaluations = evaluations_on(task, estimator, cell.num_samples, cell.backend, cell.device)
    budget = cell.settings.get(EVALUATION_BUDGET)
    if budget is not None and evaluations > int(budget):
        raise UnsupportedCombinationError(
            f"{estimator.label} spends {evaluations} evaluations of f per estimate at its smallest S="
            f"{cell.num_samples}, more than the budget of {int(budget)}: it cannot be measured at equal "
            f"f-evaluations K={int(budget)}; choose K >= {evaluations}")
    row = stats_row(gradient_stats(task, estimator, backend=cell.backend, device=cell.device,
                                   num_replicates=int(cell.settings["num_replicates"]),
                                   num_samples=cell.num_samples, seed=cell.seed, timing_repeats=TIMING_REPEATS))
    return {**row, "evaluations": evaluations}


def equal_evaluation_samples(ctx, task: str, name: str, options: dict, backend: str) -> int:
    """The S of variant (``name``, ``options``) on ``task`` at the budget's f-evaluations K:
    the largest S within K, or the variant's smallest S where none is (its cells then refuse)."""
    from gradest.estimator import f_evaluations
    from gradest.sweep import build
    from gradest.sweep.cells import samples_within

    K = int(ctx.budget.equal_evaluations)
    try:
        est = build.estimator(name, options)
    except (TypeError, ValueError):  # a bad option: the sweep's validation names it before any cell runs
        return 1
    dist = []  # built once, where the count depends on it

    def count(S: int) -> int:
        try:
            return f_evaluations(est, S, dist[0] if dist else None)
        except ValueError:
            dist.append(distribution_at_start(build.task(task, ctx.task_options(task)), backend, ctx.device))
            return f_evaluations(est, S, dist[0])

    S = samples_within(count, K, est.min_samples)
    return est.min_samples if S is None else S


# ---- frames -----------------------------------------------------------------------------


def gradient_stats(cells: pd.DataFrame, kind: str = "gradient") -> pd.DataFrame:
    """The cells of ``kind`` averaged over seeds: one row per task x estimator x backend x S,
    with the mean of each statistic and of its 95% interval bounds, and the number of seeds;
    the zero rule applied (`gradest.plotting.frames.apply_zero_rule`). The work-normalized
    variance's interval is the variance's interval times the seconds per estimate (the
    timing's own spread is load, not sampling error)."""
    frame = done(cells, kind)
    if frame.empty or "variance" not in frame.columns:
        return pd.DataFrame()
    if "estimator_name" not in frame.columns:
        frame["estimator_name"] = frame["estimator"].map(estimator_name)
    keys = ["task", "estimator", "estimator_name", "backend", "num_samples"]
    if EVALUATION_BUDGET in frame.columns:  # equal-evaluation rows are not averaged with the others
        frame[EVALUATION_BUDGET] = pd.to_numeric(frame[EVALUATION_BUDGET], errors="coerce")
        keys.append(EVALUATION_BUDGET)
    for c in frame.columns:
        if c in STAT_COLUMNS:
            frame[c] = pd.to_numeric(frame[c], errors="coerce")
    if "work_normalized_variance" not in frame.columns and {"variance", "seconds_per_estimate"} <= set(frame.columns):
        frame["work_normalized_variance"] = frame["variance"] * frame["seconds_per_estimate"]  # its definition
    if {"work_normalized_variance", "variance_low", "variance_high", "seconds_per_estimate"} <= set(frame.columns):
        frame["work_normalized_variance_low"] = frame["variance_low"].clip(lower=0) * frame["seconds_per_estimate"]
        frame["work_normalized_variance_high"] = frame["variance_high"] * frame["seconds_per_estimate"]
    stats = [c for c in STAT_COLUMNS if c in frame.columns]
    out = frame.groupby(keys, dropna=False)[stats].mean().reset_index()
    out["seeds"] = frame.groupby(keys, dropna=False).size().values
    if "bias_sq" not in out.columns and "bias_norm" in out.columns:
        out["bias_sq"] = out["bias_norm"] ** 2
    if "bias_norm_low" in out.columns:
        out["bias_sq_low"] = out["bias_norm_low"] ** 2
        out["bias_sq_high"] = out["bias_norm_high"] ** 2
    if "num_replicates" in out.columns:
        # an unbiased estimator's measured bias² is about variance / R: the noise floor
        out["bias_sq_floor"] = out["variance"] / out["num_replicates"]
    return apply_zero_rule(out)


# ---- figures ----------------------------------------------------------------------------


def measured_counts(rows: pd.DataFrame, samples: bool = True) -> str:
    """What the finished cells ``rows`` averaged, read from them: "S = 1, R = 2000 replicates
    each, mean over 2 seeds" or "…, 1 seed" (ranges where they differ; a part is left out where
    its column is)."""
    def span(col: str) -> str:
        values = sorted(pd.to_numeric(rows[col], errors="coerce").dropna().astype(int).unique())
        return "" if not values else (f"{values[0]}" if len(values) == 1 else f"{values[0]}–{values[-1]}")

    parts = []
    if samples and "num_samples" in rows.columns and span("num_samples"):
        parts.append(f"S = {span('num_samples')}")
    if "num_replicates" in rows.columns and span("num_replicates"):
        parts.append(f"R = {span('num_replicates')} replicates each")
    if "seed" in rows.columns and rows["seed"].notna().any():
        seeds = rows["seed"].nunique()
        parts.append(f"mean over {seeds} seeds" if seeds > 1 else "1 seed")
    return ", ".join(parts)


def _sample_axis(ax, values) -> None:
    """Log-2 x axis ticked at the S values."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ticks = sorted({int(v) for v in values})
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    if len(ticks) > 1:
        ax.set_xlim(ticks[0] / 1.4, ticks[-1] * 1.4)


def variance_vs_samples(cells: pd.DataFrame, palette, out):
    """Gradient variance against S (log-log), one panel per task; a `Figure` or None."""
    from matplotlib.lines import Line2D

    from gradest.plotting.figure import VARIANCE_LABEL, Figure, legend_handles, positive, yerr, zero_note
    from gradest.plotting.style import backend_line, backend_marker, finish, grid, log_axis, save

    stats = sampled(gradient_stats(cells))
    if stats.empty:
        return None
    if EVALUATION_BUDGET in stats.columns and stats[EVALUATION_BUDGET].isna().any():
        stats = stats[stats[EVALUATION_BUDGET].isna()]  # the S sweep; equal-evaluation rows repeat some of its points
    drawn = positive(stats, "variance")
    if drawn.empty or drawn["num_samples"].nunique() < 2:
        return None
    tasks = sorted(drawn["task"].unique())
    fig, axes = grid(len(tasks))
    for ax, task in zip(axes, tasks):
        part = drawn[drawn["task"] == task]
        for (est, backend), line in part.groupby(["estimator", "backend"]):
            line = line.sort_values("num_samples")
            ax.errorbar(line["num_samples"], line["variance"], yerr=yerr(line, "variance"), color=palette(est),
                        ls=backend_line(backend), marker=backend_marker(backend), ms=4, lw=1.4, capsize=2)
        smin = part["num_samples"].min()
        anchor = float(np.exp(np.log(part.loc[part["num_samples"] == smin, "variance"]).mean()))
        s = np.array(sorted(part["num_samples"].unique()), dtype=float)
        ax.plot(s, anchor * smin / s, color="0.5", ls=":", lw=1.2)
        _sample_axis(ax, part["num_samples"])
        log_axis(ax, "y")
        ax.set_title(task)
        ax.set_xlabel("samples per estimate S")
        ax.set_ylabel(VARIANCE_LABEL)
    handles = legend_handles(palette, drawn["estimator"], drawn["backend"],
                             extra=[Line2D([], [], color="0.5", ls=":", label="∝ 1/S (reference slope)")])
    finish(fig, title="Gradient variance vs number of samples", handles=handles, legend_title="estimator")
    for ax, task in zip(axes, tasks):
        zero_note(ax, zero_names(stats, "variance", task))
    counts = measured_counts(done(cells, "gradient"), samples=False)
    caption = (f"Trace of the covariance of the gradient estimate at θ₀ against the number of samples S it "
               f"averages, on log-log axes{f' ({counts})' if counts else ', mean over seeds'}; bars: 95% "
               f"intervals. Independent samples give slope −1 (dotted). A variance that is zero up to rounding "
               f"(at most {ZERO_RTOL:g} × ‖∇L‖²: the estimator is exact on the task) is not drawn on the log "
               f"scale; the panel names those estimators. The exact gradient is the reference and is not drawn.")
    return Figure("variance_vs_samples", "Variance vs number of samples", caption,
                  save(fig, out, "variance_vs_samples"))


# ---- the kind ---------------------------------------------------------------------------


@register_cell_kind("gradient", description="variance, bias, MSE and cost of estimates at θ₀")
class GradientKind(CellKind):
    order = 10
    table_metrics = {"mse": "lower", "variance": "lower", "bias_sq": "lower", "seconds_per_estimate": "lower"}
    columns = {
        "variance": "trace of the covariance of one estimate", "bias_norm": "‖E g − ∇L‖",
        "bias_sq": "‖E g − ∇L‖²", "mse": "E‖g − ∇L‖²", "cosine_to_exact": "mean cosine to ∇L",
        "snr": "‖E g‖ / √variance", "seconds_per_estimate": "median seconds per estimate",
        "work_normalized_variance": "variance × seconds per estimate",
        "evaluations": "evaluations of f per estimate",
    }

    def plan(self, ctx) -> list:
        cells = []
        K = getattr(ctx.budget, "equal_evaluations", None)
        for task in ctx.tasks:
            sizes = ctx.sizes(task)
            settings = {"num_replicates": int(sizes.num_replicates)}
            if K is not None:
                settings[EVALUATION_BUDGET] = int(K)
            for backend in ctx.backends:
                for name, options in ctx.variants_on(backend):
                    samples = sizes.sample_sizes if K is None else \
                        [equal_evaluation_samples(ctx, task, name, options, backend)]
                    for S in samples:
                        for seed in ctx.seeds(measured=True):
                            cells.append(ctx.cell(self.name, task, name, options, backend, seed=seed, num_samples=S,
                                                  settings=settings))
        return cells

    def run(self, cell, task, estimator):
        return gradient_stats_row(cell, task, estimator), None

    def estimator_statistics(self, cells):
        return gradient_stats(cells, self.name)

    def figures(self, cells, history, palette, out) -> list:
        return [("variance_vs_samples", lambda: variance_vs_samples(cells, palette, out))]
