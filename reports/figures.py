"""The report's own figures: the two views of a tidy frame of gradient statistics.

Both read the frame the leaderboard ranks (`gradest.reports.leaderboard`): the
``estimator_statistics`` of the registered cell kinds for a `gradest run`, or asv's track_
statistics (`gradest.reports.asv_results.track_stats`), the same code for both:

* `bias_variance_mse`: bias², variance and MSE against the exact gradient per estimator,
  ordered by the leaderboard's MSE rank;
* `efficiency_frontier`: variance against seconds per estimate, one panel per task x backend,
  each with its Pareto frontier and the line of equal work-normalized variance of the best.

Each takes the frame, the report's `Palette` and the output folder, and returns a
`gradest.plotting.figure.Figure` (also importable from here, its first home) or None. The
cell kinds' own figures are theirs (`gradest.sweep.cell_kind.CellKind.figures`); asv's other
figures are `gradest.reports.asv_figures`.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from gradest.plotting.figure import VARIANCE_LABEL, Figure, legend_handles, positive, time_unit, yerr, zero_note
from gradest.plotting.frames import ZERO_RTOL, ordered_backends, sampled, zero_names
from gradest.plotting.style import Palette, finish, log_axis, save, subplots, text_width
from gradest.reports.leaderboard import leaderboard

__all__ = ["Figure", "bias_variance_mse", "efficiency_frontier"]


def bias_variance_mse(stats: pd.DataFrame, palette: Palette, out: Path, name: str = "bias_variance_mse",
                         source: str = "") -> Figure | None:
    """The bias²/variance/MSE figure of a tidy frame of gradient statistics (a run's or asv's)."""
    if stats is None or stats.empty or "bias_sq" not in stats.columns or stats["bias_sq"].isna().all():
        return None
    board = leaderboard(stats)
    if board.empty:
        return None
    board = board[board["bias_sq"].notna()]
    # a task on which every estimate is deterministic (zero variance) has nothing to compare
    random_tasks = board.groupby("task")["variance"].max()
    board = board[board["task"].isin(random_tasks[random_tasks > 0].index)]
    if board.empty:
        return None
    tasks = sorted(board["task"].unique())
    counts = [int((board["task"] == t).sum()) for t in tasks]
    quantities = [("bias_sq", "bias² = ‖E[g] − ∇L‖²"), ("variance", "variance"), ("mse", "MSE = E‖g − ∇L‖²")]
    heights = [0.25 * c + 0.35 for c in counts]
    fig, axes = subplots(len(tasks), len(quantities), 3.0, heights)
    for r, task in enumerate(tasks):
        # best (MSE rank 1) at the top
        part = board[board["task"] == task].iloc[::-1].reset_index(drop=True)
        y = np.arange(len(part))
        for c, (q, title) in enumerate(quantities):
            ax = axes[r][c]
            values = part[q].to_numpy(dtype=float)
            zero = part[f"{q}_zero"].to_numpy(bool) if f"{q}_zero" in part.columns else values <= 0
            shown = (values > 0) & ~zero
            sub = part[shown]
            if len(sub):
                ax.hlines(y[shown], 0, 1, transform=ax.get_yaxis_transform(), color="0.92", lw=0.8, zorder=0)
                ax.errorbar(sub[q], y[shown], xerr=yerr(sub, q), fmt="none", ecolor="0.35", elinewidth=0.9,
                            capsize=2, zorder=2)
                ax.scatter(sub[q], y[shown], color=[palette(e) for e in sub["estimator"]], s=38, zorder=3,
                           edgecolor="white", linewidth=0.5)
            for i in np.flatnonzero(zero & np.isfinite(values)):
                ax.text(0.02, y[i], "0", va="center", transform=ax.get_yaxis_transform(), fontsize=8,
                        color="0.25")
            if q == "bias_sq" and "bias_sq_floor" in part.columns and len(sub) and sub["bias_sq_floor"].notna().any():
                ax.scatter(sub["bias_sq_floor"], y[shown], marker="|", s=110, color="black", zorder=4)
            if len(sub):
                log_axis(ax, "x")
            ax.set_yticks(y)
            labels = [f"{int(k)}. {e}" if not pd.isna(k) else e for k, e in zip(part["mse_rank"], part["estimator"])]
            ax.set_yticklabels(labels if c == 0 else [""] * len(y), fontsize=8)
            ax.set_ylim(-0.6, len(y) - 0.4)
            ax.grid(axis="y", visible=False)
            if r == 0:
                ax.set_title(title)
            if r == len(tasks) - 1:
                ax.set_xlabel("grad units² (log scale)")
            if c == 0:
                S = part["S"].iloc[0]
                ax.set_ylabel(f"{task}" + (f" (S = {int(S)})" if not pd.isna(S) else ""), fontsize=10,
                              fontweight="bold")
    left = max(text_width(f"10. {e}") for e in board["estimator"]) + 0.45
    S_text = ", ".join(sorted({str(int(s)) for s in board["S"].dropna()})) or "the grid's"
    finish(fig, left=left, wspace=0.25, hspace=0.75, heights=heights,
           title=f"Bias², variance and MSE against the exact gradient{source} (S = {S_text})")
    caption = (f"At θ₀ with S = {S_text} samples per estimate{' (asv grid)' if source else ''}, mean over seeds and "
               f"backends; whiskers: 95% intervals where the source gives them. Rows are in the leaderboard's order "
               f"(MSE rank, best at the top). Black ticks on the bias² panels mark variance/R, what an unbiased "
               f"estimator's measured bias² reads from R replicates: a point at or below its tick is consistent "
               f"with zero bias. MSE = bias² + variance. '0': zero up to rounding (at most {ZERO_RTOL:g} × "
               f"‖∇L‖²), e.g. an estimator that is exact on this task. The exact gradient is the reference and is "
               f"not drawn; tasks on which every estimate is deterministic are left out.")
    return Figure(name, f"Bias², variance and MSE per estimator{source}", caption, save(fig, out, name))


def _pareto(points: pd.DataFrame) -> pd.DataFrame:
    """The lower-left frontier of (seconds, variance): no other point is both faster and lower."""
    pts = points.sort_values(["seconds_per_estimate", "variance"])
    best, keep = math.inf, []
    for idx, row in pts.iterrows():
        if row["variance"] < best:
            best = row["variance"]
            keep.append(idx)
    return pts.loc[keep]


def efficiency_frontier(stats: pd.DataFrame, palette: Palette, out: Path, name: str = "efficiency_frontier",
                           source: str = "") -> Figure | None:
    """Variance against seconds per estimate, one panel per task x backend (fixed order)."""
    if stats is None or stats.empty or "seconds_per_estimate" not in stats.columns:
        return None
    rows = sampled(stats)
    stats = positive(positive(rows, "variance"), "seconds_per_estimate")
    if stats.empty:
        return None
    scale, unit = time_unit(stats["seconds_per_estimate"])
    stats = stats.assign(seconds_per_estimate=stats["seconds_per_estimate"] / scale)
    tasks = sorted(stats["task"].unique())
    backends = ordered_backends(stats["backend"])
    fig, axes = subplots(len(tasks), len(backends), 3.9, [3.0] * len(tasks), sharey="row", sharex="row")
    several_S = stats["num_samples"].nunique() > 1
    for r, task in enumerate(tasks):
        for c, backend in enumerate(backends):
            ax = axes[r][c]
            part = stats[(stats["task"] == task) & (stats["backend"] == backend)]
            ax.set_title(f"{task} — {backend}")
            if part.empty:
                ax.text(0.5, 0.5, f"no estimator ran on {backend}", transform=ax.transAxes, ha="center",
                        color="0.4", fontsize=9)
                continue
            for est, line in part.groupby("estimator"):
                line = line.sort_values("num_samples")
                sizes = (12 + 9 * np.log2(line["num_samples"].to_numpy(float) + 1)) if several_S else 30
                ax.plot(line["seconds_per_estimate"], line["variance"], color=palette(est), lw=0.9, alpha=0.7)
                ax.scatter(line["seconds_per_estimate"], line["variance"], color=palette(est), s=sizes,
                           edgecolor="white", linewidth=0.4, zorder=3)
            front = _pareto(part)
            ax.step(front["seconds_per_estimate"], front["variance"], where="post", color="0.2", lw=1.0, ls="-.",
                    zorder=2)
            best = part.loc[(part["variance"] * part["seconds_per_estimate"]).idxmin()]
            xs = np.geomspace(part["seconds_per_estimate"].min() / 1.5, part["seconds_per_estimate"].max() * 1.5, 20)
            ax.plot(xs, best["variance"] * best["seconds_per_estimate"] / xs, color="0.55", ls=":", lw=1.0)
            ax.set_xscale("log")
            ax.set_yscale("log")
            if c == 0:
                ax.set_ylabel(VARIANCE_LABEL)
            if r == len(tasks) - 1:
                ax.set_xlabel(f"time per gradient estimate ({unit})")
        lo = stats.loc[stats["task"] == task, "variance"]
        axes[r][0].set_ylim(lo.min() / 2, lo.max() * 2)
        for c in range(len(backends)):
            log_axis(axes[r][c], "x")
            log_axis(axes[r][c], "y")
    extra = [Line2D([], [], color="0.2", ls="-.", label="Pareto frontier"),
             Line2D([], [], color="0.55", ls=":", label="equal work-normalized variance as the best")]
    if several_S:
        extra += [Line2D([], [], color="0.4", marker="o", ls="", ms=3, label="small marker: S = 1"),
                  Line2D([], [], color="0.4", marker="o", ls="", ms=7, label="large marker: largest S")]
    handles = legend_handles(palette, stats["estimator"], extra=extra)
    finish(fig, title=f"Efficiency: variance vs cost per estimate{source}", handles=handles, legend_title="estimator",
           wspace=0.35, hspace=0.75)
    for r, task in enumerate(tasks):
        for c, backend in enumerate(backends):
            zero = rows[(rows["task"] == task) & (rows["backend"] == backend)]
            zero_note(axes[r][c], zero_names(zero, "variance", task))
    caption = ("One panel per task and backend (the same axes along a row). Each point is an estimator "
               + ("at one S (larger markers: more samples; lines join the S values of one estimator), " if several_S
                  else "at the grid's S, ")
               + "mean over seeds. Time per estimate: the median of several timed vectorized calls divided by "
               "the replicates in the call (wall clock; it depends on the load of the machine). Lower-left is "
               "better; the dash-dotted step line is the Pareto frontier of the panel (no other point is both "
               "faster and of lower variance); the dotted diagonal is variance × time = that of the panel's best "
               "work-normalized variance (points on it are equally good at equal compute). Estimators with zero "
               "variance are named in the panel.")
    return Figure(name, f"Efficiency frontier: variance vs seconds per estimate{source}", caption, save(fig, out, name))
