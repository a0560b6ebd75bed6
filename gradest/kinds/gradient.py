"""The ``gradient`` cell kind: `gradest.gradient_stats` of an estimator variant on a task at θ₀.

Cells: every selected task x backend x variant (`PlanContext.variants_on`) x S of the task's
declared ``sample_sizes`` x measured seed, each over the task's ``num_replicates``. A row
carries the statistics of `gradest.measure.gradient_stats` (variance, bias, MSE, cosine, SNR,
seconds per estimate with their intervals, threads, φ warm-up steps).

Frames: `gradient_stats(cells)` averages the rows over seeds (one row per task x estimator x
backend x S, the zero rule applied); it is the kind's ``estimator_statistics``, which the
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
                "threads")


def stats_row(stats: dict) -> dict:
    """A row of `gradient_stats`'s numbers (the identification columns come from the cell)."""
    from gradest.sweep.store import scalar

    return {k: scalar(v) for k, v in stats.items() if k not in _IDENTITY}


def gradient_stats_row(cell, task, estimator) -> dict:
    """The row of ``cell``: `gradest.measure.gradient_stats` at its backend, R, S and seed."""
    from gradest.measure import gradient_stats

    return stats_row(gradient_stats(task, estimator, backend=cell.backend, device=cell.device,
                                    num_replicates=int(cell.settings["num_replicates"]),
                                    num_samples=cell.num_samples, seed=cell.seed, timing_repeats=TIMING_REPEATS))


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
    """What the finished cells ``rows`` averaged, read from them: "S = 1, 2 seeds, R = 2000
    replicates each" (ranges where they differ; a part is left out where its column is)."""
    def span(col: str) -> str:
        values = sorted(pd.to_numeric(rows[col], errors="coerce").dropna().astype(int).unique())
        return "" if not values else (f"{values[0]}" if len(values) == 1 else f"{values[0]}–{values[-1]}")

    parts = []
    if samples and "num_samples" in rows.columns and span("num_samples"):
        parts.append(f"S = {span('num_samples')}")
    if "seed" in rows.columns and rows["seed"].notna().any():
        seeds = rows["seed"].nunique()
        parts.append(f"{seeds} seed{'s' if seeds != 1 else ''}")
    if "num_replicates" in rows.columns and span("num_replicates"):
        parts.append(f"R = {span('num_replicates')} replicates each")
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
               f"averages (log-log), mean over seeds{f' ({counts})' if counts else ''}; bars: 95% "
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
    }

    def plan(self, ctx) -> list:
        cells = []
        for task in ctx.tasks:
            sizes = ctx.sizes(task)
            for backend in ctx.backends:
                for name, options in ctx.variants_on(backend):
                    for S in sizes.sample_sizes:
                        for seed in ctx.seeds(measured=True):
                            cells.append(ctx.cell(self.name, task, name, options, backend, seed=seed, num_samples=S,
                                                  settings={"num_replicates": int(sizes.num_replicates)}))
        return cells

    def run(self, cell, task, estimator):
        return gradient_stats_row(cell, task, estimator), None

    def estimator_statistics(self, cells):
        return gradient_stats(cells, self.name)

    def figures(self, cells, history, palette, out) -> list:
        return [("variance_vs_samples", lambda: variance_vs_samples(cells, palette, out))]
