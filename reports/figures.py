"""The report's figures, each from a tidy frame (seaborn style, matplotlib drawing).

Every function takes the loaded frames, the report's `Palette` (one colour per estimator,
shared by all figures) and an output folder, writes ``<name>.png`` and ``<name>.svg`` and
returns a `Figure` (name, title, caption, files), or None when the results hold no data for
it. Axes carry units; quantities that span decades are drawn on log scales. Zero is handled
one way (`gradest.reports.frames.apply_zero_rule`): a statistic that is zero up to rounding is
named in its panel, never plotted on a log axis. Legends sit below the panels and show
canonical labels (`frames.canonical_label`), backends as the line styles the lines have.

* `variance_vs_samples`: gradient variance against S (log-log), one panel per task.
* `bias_variance_mse`: bias², variance and MSE against the exact gradient per estimator,
  ordered by the leaderboard's MSE rank.
* `efficiency_frontier`: variance against seconds per estimate, one panel per task x backend,
  each with its Pareto frontier and the line of equal work-normalized variance of the best.
* `training_curves`: loss against step and against wall-clock seconds, mean and band over seeds.
* `variance_along_training`: log10 of the trained estimator's own gradient variance at θ_t
  against the step, where the cells tracked it (e.g. the presets).
* `temperature_sweep`: Gumbel-softmax bias², variance and MSE against τ.
* `lasso_delta_sweep`: final gap to scikit-learn's Lasso optimum against δ, and its curves.
* asv: `asv_statistics` (the same bias²/variance/MSE and frontier figures from asv's track_
  statistics), `asv_statistics_history` (MSE and work-normalized variance over commits, every
  estimator), `asv_history` / `asv_summary` (the other benchmarks over commits, or at the one
  commit).
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from gradest.reports import frames as F
from gradest.reports.style import (Palette, backend_line, backend_marker, finish, grid, log_axis, plt, save, subplots,
                                   text_width)

VARIANCE_LABEL = "variance: tr Cov (grad units²)"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


@dataclass
class Figure:
    name: str
    title: str
    caption: str
    files: list = field(default_factory=list)

    @property
    def png(self) -> str:
        return next((f for f in self.files if f.endswith(".png")), "")

    @property
    def svg(self) -> str:
        return next((f for f in self.files if f.endswith(".svg")), "")


# ---------------------------------------------------------------------------------------
# helpers


def _legend_handles(palette: Palette, labels, backends=(), extra: list | None = None, markers: bool = True) -> list:
    """Estimator colours (sorted), then backend line styles when there are several — with the
    backend's marker only where the lines have markers (``markers``) — then ``extra``."""
    handles = [Line2D([], [], color=palette(lab), lw=2.5, label=lab) for lab in sorted(set(labels))]
    backends = F.ordered_backends(backends)
    if len(backends) > 1:
        handles += [Line2D([], [], color="0.3", lw=1.4, ls=backend_line(b),
                           marker=backend_marker(b) if markers else None, ms=5, label=f"backend {b}")
                    for b in backends]
    return handles + (extra or [])


def _sample_axis(ax, values) -> None:
    """Log-2 x axis ticked at the S values."""
    ticks = sorted({int(v) for v in values})
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    if len(ticks) > 1:
        ax.set_xlim(ticks[0] / 1.4, ticks[-1] * 1.4)


def _positive(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    values = pd.to_numeric(frame[column], errors="coerce")
    return frame[(values > 0) & np.isfinite(values)]


def _yerr(part: pd.DataFrame, column: str):
    low, high = f"{column}_low", f"{column}_high"
    if low not in part.columns or high not in part.columns or part[[low, high]].isna().all(axis=None):
        return None
    y = part[column].to_numpy(dtype=float)
    lo = np.clip(y - part[low].to_numpy(dtype=float), 0, None)
    lo = np.minimum(lo, y * 0.99)  # a log axis cannot show a bar down to 0: stop two decades below
    hi = np.clip(part[high].to_numpy(dtype=float) - y, 0, None)
    return np.vstack([np.nan_to_num(lo), np.nan_to_num(hi)])


def _time_unit(seconds) -> tuple[float, str]:
    """(scale, unit) so that seconds / scale reads in s, ms, µs or ns."""
    v = pd.to_numeric(pd.Series(seconds), errors="coerce").dropna()
    med = float(v.abs().median()) if len(v) else 1.0
    for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if med >= scale:
            return scale, name
    return 1e-9, "ns"


def _log_if_decades(ax, values, axis: str = "y") -> None:
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    if len(v) and (v > 0).all() and F.spans_decades(v):
        log_axis(ax, axis)


def _zero_note(ax, names, what: str = "zero variance") -> None:
    """Name the estimators whose statistic is zero (not drawn on the log axis) in the panel."""
    if not names:
        return
    width = ax.get_position().width * ax.figure.get_size_inches()[0]
    chars = max(20, int(width * 72 / (7.5 * 0.55)))
    text = textwrap.fill(f"{what} (not drawn): " + ", ".join(names), chars)
    ax.text(0.02, 0.02, text, transform=ax.transAxes, fontsize=7.5, color="0.25", va="bottom",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.5})


def _sampled(stats: pd.DataFrame) -> pd.DataFrame:
    """Rows of estimators other than the reference (the exact gradient)."""
    if stats.empty:
        return stats
    return stats[stats["estimator"].map(F.estimator_name) != F.REFERENCE_ESTIMATOR]


# ---------------------------------------------------------------------------------------
# gradient statistics


def variance_vs_samples(cells: pd.DataFrame, palette: Palette, out: Path) -> Figure | None:
    stats = _sampled(F.gradient_stats(cells))
    if stats.empty:
        return None
    drawn = _positive(stats, "variance")
    if drawn.empty or drawn["num_samples"].nunique() < 2:
        return None
    tasks = sorted(drawn["task"].unique())
    fig, axes = grid(len(tasks))
    for ax, task in zip(axes, tasks):
        part = drawn[drawn["task"] == task]
        for (est, backend), line in part.groupby(["estimator", "backend"]):
            line = line.sort_values("num_samples")
            ax.errorbar(line["num_samples"], line["variance"], yerr=_yerr(line, "variance"), color=palette(est),
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
    handles = _legend_handles(palette, drawn["estimator"], drawn["backend"],
                              extra=[Line2D([], [], color="0.5", ls=":", label="∝ 1/S (reference slope)")])
    finish(fig, title="Gradient variance vs number of samples", handles=handles, legend_title="estimator")
    for ax, task in zip(axes, tasks):
        _zero_note(ax, F.zero_names(stats, "variance", task))
    R = int(drawn["num_replicates"].median()) if "num_replicates" in drawn else None
    caption = (f"Trace of the covariance of the gradient estimate at θ₀ against the number of samples S it "
               f"averages (log-log), mean over seeds{f' of {R} replicates each' if R else ''}; bars: 95% "
               f"intervals. Independent samples give slope −1 (dotted). A variance that is zero up to rounding "
               f"(at most {F.ZERO_RTOL:g} × ‖∇L‖²: the estimator is exact on the task) is not drawn on the log "
               f"scale; the panel names those estimators. The exact gradient is the reference and is not drawn.")
    return Figure("variance_vs_samples", "Variance vs number of samples", caption,
                  save(fig, out, "variance_vs_samples"))


def bias_variance_mse(cells: pd.DataFrame, palette: Palette, out: Path) -> Figure | None:
    return bias_variance_mse_of(F.gradient_stats(cells), palette, out)


def bias_variance_mse_of(stats: pd.DataFrame, palette: Palette, out: Path, name: str = "bias_variance_mse",
                         source: str = "") -> Figure | None:
    """The bias²/variance/MSE figure of a tidy frame of gradient statistics (a run's or asv's)."""
    from gradest.reports.leaderboard import leaderboard

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
                ax.errorbar(sub[q], y[shown], xerr=_yerr(sub, q), fmt="none", ecolor="0.35", elinewidth=0.9,
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
               f"with zero bias. MSE = bias² + variance. '0': zero up to rounding (at most {F.ZERO_RTOL:g} × "
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


def efficiency_frontier(cells: pd.DataFrame, palette: Palette, out: Path) -> Figure | None:
    return efficiency_frontier_of(F.gradient_stats(cells), palette, out)


def efficiency_frontier_of(stats: pd.DataFrame, palette: Palette, out: Path, name: str = "efficiency_frontier",
                           source: str = "") -> Figure | None:
    """Variance against seconds per estimate, one panel per task x backend (fixed order)."""
    if stats is None or stats.empty or "seconds_per_estimate" not in stats.columns:
        return None
    sampled = _sampled(stats)
    stats = _positive(_positive(sampled, "variance"), "seconds_per_estimate")
    if stats.empty:
        return None
    scale, unit = _time_unit(stats["seconds_per_estimate"])
    stats = stats.assign(seconds_per_estimate=stats["seconds_per_estimate"] / scale)
    tasks = sorted(stats["task"].unique())
    backends = F.ordered_backends(stats["backend"])
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
    handles = _legend_handles(palette, stats["estimator"], extra=extra)
    finish(fig, title=f"Efficiency: variance vs cost per estimate{source}", handles=handles, legend_title="estimator",
           wspace=0.35, hspace=0.75)
    for r, task in enumerate(tasks):
        for c, backend in enumerate(backends):
            zero = sampled[(sampled["task"] == task) & (sampled["backend"] == backend)]
            _zero_note(axes[r][c], F.zero_names(zero, "variance", task))
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


# ---------------------------------------------------------------------------------------
# training


#: the caption's words for each band kind of `frames.curve_bands`
BAND_TEXT = {"ci95": "95% t-interval over seeds", "range": "min–max over the two seeds", "none": "no band (one seed)"}


def _band_lines(ax, part: pd.DataFrame, x: str, palette: Palette) -> set:
    """Each estimator x backend of ``part`` (`frames.curve_bands` rows) as its mean line
    against ``x`` with its band; returns the band kinds drawn."""
    kinds = set()
    for (est, backend), line in part.groupby(["estimator", "backend"]):
        line = line.sort_values("step")
        color = palette(est)
        ax.plot(line[x], line["mean"], color=color, ls=backend_line(backend), lw=1.4)
        if (line["band"] != "none").any():
            ax.fill_between(line[x], line["low"], line["high"], color=color, alpha=0.15, lw=0)
        kinds.update(line["band"].unique())
    return kinds


def training_curves(history: pd.DataFrame, palette: Palette, out: Path) -> Figure | None:
    curves, column = F.training_curves(history, "train")
    if curves.empty or "step" not in curves.columns:
        return None
    bands = F.curve_bands(curves)
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
            kinds |= _band_lines(ax, part, x, palette)
            _log_if_decades(ax, part[["mean", "low", "high"]].to_numpy().ravel())
            ax.set_title(f"{task} — by {'step' if x == 'step' else 'wall-clock time'}")
            if x == "step":
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel(xlabel)
            if c == 0:
                ax.set_ylabel("exact loss L(θ)" if col == "exact_loss" else "loss (surrogate, per step)")
    handles = _legend_handles(palette, bands["estimator"], bands["backend"], markers=False)
    finish(fig, title="Training curves", left=0.95, wspace=0.35, handles=handles, legend_title="estimator")
    seeds = int(bands["seeds"].max())
    first = ""
    if clock and bands["first_step_seconds"].notna().any():
        slow = bands.groupby("backend")["first_step_seconds"].max()
        first = ", ".join(f"{b} up to {slow[b]:.2g} s" for b in F.ordered_backends(slow.index))
    caption = ("Loss to minimize against the optimizer step (Adam)"
               + (" and against the wall-clock time of the training steps after the first one (mean over seeds; "
                  f"evaluation time left out; the first step, which includes compilation — {first} — is not "
                  "counted)" if clock else "")
               + f", mean over up to {seeds} seed{'s' if seeds > 1 else ''}; band: "
               f"{', '.join(BAND_TEXT[k] for k in sorted(kinds))}. The exact loss L(θ) is drawn where the task has "
               f"ground truth, else the step's surrogate loss. Line style: backend.")
    return Figure("training_curves", "Training curves", caption, save(fig, out, "training_curves"))


def variance_along_training(history: pd.DataFrame, palette: Palette, out: Path) -> Figure | None:
    curves = F.own_variance_curves(history, "train")
    if curves.empty or "step" not in curves.columns:
        return None
    bands = F.curve_bands(curves.drop(columns=["seconds"], errors="ignore"))
    if bands.empty:
        return None
    tasks = sorted(bands["task"].unique())
    cols = min(2, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = subplots(rows, cols, 3.9, [2.9] * rows)
    kinds = set()
    for i, task in enumerate(tasks):
        ax = axes[i // cols][i % cols]
        kinds |= _band_lines(ax, bands[bands["task"] == task], "step", palette)
        ax.set_title(task)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("training step")
        ax.set_ylabel("log10 gradient variance")
    for j in range(len(tasks), rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    handles = _legend_handles(palette, bands["estimator"], bands["backend"], markers=False)
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


# ---------------------------------------------------------------------------------------
# sweeps


def temperature_sweep(cells: pd.DataFrame, palette: Palette, out: Path) -> Figure | None:
    stats = F.temperature_stats(cells)
    if stats.empty or stats["temperature"].nunique() < 2:
        return None
    quantities = [(q, t) for q, t in (("bias_sq", "bias² = ‖E[g] − ∇L‖²"), ("variance", "variance"),
                                      ("mse", "MSE")) if q in stats.columns]
    tasks = sorted(stats["task"].unique())
    fig, axes = subplots(len(tasks), len(quantities), 3.6, [2.9] * len(tasks))
    labels = {}
    for r, task in enumerate(tasks):
        for c, (q, title) in enumerate(quantities):
            ax = axes[r][c]
            part = stats[stats["task"] == task]
            for (hard, backend), line in part.groupby(["hard", "backend"]):
                line = _positive(line.sort_values("temperature"), q)
                if line.empty:
                    continue
                label = F.canonical_label(f"gumbel_softmax[hard={hard},temperature=1.0]")
                labels[label] = f"{label}: {'straight-through (hard)' if hard else 'relaxed'}"
                ax.errorbar(line["temperature"], line[q], yerr=_yerr(line, q), color=palette(label),
                            ls=backend_line(backend), marker=backend_marker(backend), ms=4, capsize=2)
                if q == "bias_sq" and "bias_sq_floor" in line.columns:
                    ax.plot(line["temperature"], line["bias_sq_floor"], color=palette(label), ls=":", lw=1.0)
            log_axis(ax, "x")
            log_axis(ax, "y")
            ax.set_xlabel("temperature τ (log)")
            ax.set_ylabel("grad units²")
            ax.set_title(f"{title} — {task}" if len(tasks) > 1 else title)
    handles = [Line2D([], [], color=palette(lab), lw=2.5, label=text) for lab, text in sorted(labels.items())]
    backends = F.ordered_backends(stats["backend"])
    if len(backends) > 1:
        handles += [Line2D([], [], color="0.3", ls=backend_line(b), marker=backend_marker(b), label=f"backend {b}")
                    for b in backends]
    if "bias_sq_floor" in stats.columns:
        handles.append(Line2D([], [], color="0.3", ls=":", label="bias² noise floor variance/R"))
    finish(fig, heights=[2.9] * len(tasks), wspace=0.75, title="Gumbel-softmax: bias and variance vs temperature",
           handles=handles, legend_title="gumbel_softmax")
    caption = (f"Gumbel-softmax gradient estimates (S = 1) at θ₀ on {', '.join(tasks)} against the temperature τ, "
               "mean over seeds, 95% intervals. Lower τ brings the relaxed sample closer to the discrete one (less "
               "bias) at the price of more variance; the straight-through variant is hard in the forward pass. "
               "Dotted: variance/R, the bias² that R replicates of an unbiased estimator would show (bias below "
               "it is not resolved). Colours are those of the τ = 1 variants in the other figures. Where f is linear "
               "in the sample (bandit), the relaxed and hard variants give the same gradient and one line hides "
               "the other.")
    return Figure("temperature_sweep", "Gumbel-softmax temperature sweep", caption, save(fig, out, "temperature_sweep"))


def lasso_delta_sweep(cells: pd.DataFrame, history: pd.DataFrame, palette: Palette, out: Path) -> Figure | None:
    stats = F.lasso_stats(cells)
    if stats.empty:
        return None
    curves = pd.DataFrame()
    if history is not None and not history.empty and "kind" in history.columns:
        curves = history[history["kind"] == "lasso_delta"].copy()
        if "objective_gap" not in curves.columns or "delta" not in curves.columns:
            curves = pd.DataFrame()
    ncols = 2 if not curves.empty else 1
    fig, axes = subplots(1, ncols, 4.0, [3.1])
    ax = axes[0][0]
    for backend in F.ordered_backends(stats["backend"]):
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
            gap = pd.to_numeric(line["objective_gap"], errors="coerce").clip(lower=1e-12)
            ax2.plot(line["step"], gap, color=colors[delta], ls=backend_line(backend))
        log_axis(ax2, "y")
        ax2.set_xlabel("training step (exact gradient, Adam)")
        ax2.set_ylabel("relative gap (F(w) − F(w*)) / F(w*) (log)")
        ax2.set_title("training curves per δ")
        handles = [Line2D([], [], color=colors[d], lw=2, label=f"δ = {d:g}") for d in deltas]
        backends = F.ordered_backends(curves["backend"])
        if len(backends) > 1:
            handles += [Line2D([], [], color="0.3", ls=backend_line(b), label=f"backend {b}") for b in backends]
        ax2.legend(handles=handles, frameon=False, fontsize=8, title="Huber width")
    finish(fig, heights=[3.1], left=0.9, wspace=1.0,
           title="Lasso: Huber relaxation width δ vs gap to the exact optimum")
    steps = int(pd.to_numeric(stats["steps"]).max()) if "steps" in stats.columns else None
    caption = ("lasso_huber trained with the exact gradient of the δ-relaxed loss"
               f"{f' for {steps} Adam steps' if steps else ''}; F is scikit-learn's unrelaxed Lasso objective "
               "and w* its coordinate-descent solution. Since |x| − δ/2 ≤ huber_δ(x) ≤ |x|, the relaxed "
               "optimum is within α·d·δ/2 of F(w*) (dotted); the gap shrinks with δ until optimization error "
               "dominates.")
    return Figure("lasso_delta_sweep", "Lasso δ sweep", caption, save(fig, out, "lasso_delta_sweep"))


# ---------------------------------------------------------------------------------------
# asv


def _short(name: str) -> str:
    parts = str(name).split(".")
    return ".".join(parts[-2:]) if len(parts) > 1 else str(name)


def _unit_scale(unit: str, values) -> tuple[float, str]:
    unit = str(unit or "")
    if unit == "seconds":
        scale, name = _time_unit(values)
        return scale, f"time ({name})"
    if unit == "bytes":
        return 2.0**20, "peak memory (MiB)"
    if unit == "x":
        return 1.0, "ratio (×)"
    return 1.0, unit or "value"


def _commits(ok: pd.DataFrame) -> pd.Series:
    """The commits of ``ok`` ordered by their first date."""
    return ok.groupby("commit")["date"].min().sort_values()


def _commit_axis(ax, commits) -> None:
    ax.set_xticks(range(len(commits)))
    ax.set_xticklabels([str(c)[:8] for c in commits.index], rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("commit (oldest first)")


def asv_statistics(asv: pd.DataFrame, palette: Palette, out: Path) -> list:
    """From asv's track_ statistics at each machine's last commit: the bias²/variance/MSE figure
    and the efficiency frontier, as for a `gradest run`."""
    from gradest.reports.asv_results import track_stats

    stats = track_stats(asv, latest=True)
    if stats.empty:
        return []
    commit = ", ".join(sorted({str(c)[:8] for c in stats["commit"]}))
    source = f" — asv, commit {commit}"
    figs = [bias_variance_mse_of(stats, palette, out, "asv_bias_variance_mse", source),
            efficiency_frontier_of(stats, palette, out, "asv_efficiency_frontier", source)]
    return [f for f in figs if f is not None]


def asv_statistics_history(asv: pd.DataFrame, palette: Palette, out: Path) -> Figure | None:
    """MSE and work-normalized variance of every estimator over the commits (more than one)."""
    from gradest.reports.asv_results import track_stats

    stats = _sampled(track_stats(asv))
    if stats.empty or stats["commit"].nunique() < 2:
        return None
    commits = _commits(stats)
    order = {c: i for i, c in enumerate(commits.index)}
    stats = stats.assign(x=stats["commit"].map(order))
    quantities = [(q, t) for q, t in (("mse", "MSE (grad units²)"),
                                      ("work_normalized_variance", "work-normalized variance (grad units²·s)"))
                  if stats[q].notna().any()]
    tasks = sorted(stats["task"].unique())
    fig, axes = subplots(len(tasks), len(quantities), 4.0, [2.9] * len(tasks))
    for r, task in enumerate(tasks):
        for c, (q, title) in enumerate(quantities):
            ax = axes[r][c]
            part = stats[stats["task"] == task]
            drawn = _positive(part, q)
            for (est, backend), line in drawn.groupby(["estimator", "backend"]):
                line = line.sort_values("x")
                ax.plot(line["x"], line[q], color=palette(est), ls=backend_line(backend),
                        marker=backend_marker(backend), ms=3, lw=1.2)
            if len(drawn):
                log_axis(ax, "y")
            _commit_axis(ax, commits)
            ax.set_title(f"{task}: {title.split(' (')[0]}")
            ax.set_ylabel(title)
            _zero_note(ax, F.zero_names(part, q, task), f"zero {q.replace('_', ' ')}" if q != "mse" else "zero MSE")
    handles = _legend_handles(palette, stats["estimator"], stats["backend"])
    finish(fig, heights=[2.9] * len(tasks), bottom=1.0, hspace=1.2, wspace=0.9,
           title="asv: statistics over commits", handles=handles, legend_title="estimator")
    caption = (f"asv's track_mse and track_work_normalized_variance of every estimator over {len(commits)} commits "
               f"(ordered by date), one panel per task and statistic; line style: backend. Values that are zero "
               f"up to rounding are named in the panel, not drawn.")
    return Figure("asv_statistics_history", "asv: statistics over commits", caption,
                  save(fig, out, "asv_statistics_history"))


def _others(asv: pd.DataFrame) -> pd.DataFrame:
    """asv's rows other than the statistics drawn by `asv_statistics`."""
    from gradest.reports.asv_results import is_statistic

    if asv is None or asv.empty:
        return pd.DataFrame()
    return asv[~asv["benchmark"].map(is_statistic)]


def asv_history(asv: pd.DataFrame, palette: Palette, out: Path, max_panels: int = 24) -> Figure | None:
    """The other benchmarks over commits: one panel per benchmark (and task), every parameter
    combination a line — colour: estimator, line style: backend, marker: the other parameters."""
    asv = _others(asv)
    if asv.empty:
        return None
    ok = asv[asv["status"] == "ok"].copy()
    commits = _commits(ok)
    if len(commits) < 2:
        return None
    order = {c: i for i, c in enumerate(commits.index)}
    ok["x"] = ok["commit"].map(order)
    has_task = "param:task" in ok.columns
    ok["panel"] = [f"{_short(b)} — {t}" if has_task and isinstance(t, str) else _short(b)
                   for b, t in zip(ok["benchmark"], ok["param:task"] if has_task else [None] * len(ok))]
    counts = ok.groupby("panel")["commit"].nunique()
    panels = sorted(counts[counts >= 2].index)
    left_out = panels[max_panels:]
    panels = panels[:max_panels]
    if not panels:
        return None
    skip = {"param:estimator", "param:task", "param:backend"}
    fig, axes = grid(len(panels), width=3.9, height=2.8)
    marker_of: dict = {}
    estimators, backends = set(), set()
    for ax, panel in zip(axes, panels):
        part = ok[ok["panel"] == panel]
        scale, label = _unit_scale(part["unit"].iloc[0], part["value"])
        others = [c for c in part.columns if c.startswith("param:") and c not in skip and part[c].nunique() > 1]
        for params, line in part.groupby("params", dropna=False):
            line = line.sort_values("x")
            est = line["param:estimator"].iloc[0] if "param:estimator" in line.columns else None
            backend = line["param:backend"].iloc[0] if "param:backend" in line.columns else None
            rest = ", ".join(f"{c[6:]}={line[c].iloc[0]}" for c in others)
            marker = marker_of.setdefault(rest, MARKERS[len(marker_of) % len(MARKERS)]) if rest else "o"
            color = palette(est) if isinstance(est, str) else "0.3"
            if isinstance(est, str):
                estimators.add(est)
            if isinstance(backend, str):
                backends.add(backend)
            ax.plot(line["x"], line["value"] / scale, marker=marker, ms=3.5, lw=1.2, color=color,
                    ls=backend_line(backend) if isinstance(backend, str) else "-")
        _log_if_decades(ax, part["value"] / scale)
        _commit_axis(ax, commits)
        ax.set_title(panel, fontsize=9.5)
        ax.set_ylabel(label)
    extra = [Line2D([], [], color="0.3", marker=m, ls="", label=text) for text, m in marker_of.items()]
    handles = _legend_handles(palette, estimators, backends, extra=extra, markers=False)
    finish(fig, bottom=1.0, hspace=1.2, title="asv benchmarks over commits", handles=handles,
           legend_title="estimator, backend, other parameters")
    caption = (f"asv results of {len(commits)} commits ordered by commit date; one panel per benchmark and task, "
               f"one line per parameter combination (every estimator: colour; backend: line style; other "
               f"parameters: marker). Failed and skipped measurements are left out (see the table below)."
               + (f" Left out for space: {', '.join(left_out)}." if left_out else ""))
    return Figure("asv_history", "asv history over commits", caption, save(fig, out, "asv_history"))


def _row_labels(part: pd.DataFrame, width: int = 64) -> list:
    """Row labels of `asv_summary`: the benchmark's method name and the parameters that differ
    between the panel's rows (wrapped)."""
    params = [c for c in part.columns if c.startswith("param:") and part[c].nunique(dropna=False) > 1]
    names = part["benchmark"].map(lambda b: str(b).rsplit(".", 1)[-1])
    if names.nunique() < part["benchmark"].nunique():
        names = part["benchmark"].map(_short)
    labels = []
    for name, (_, row) in zip(names, part.iterrows()):
        shown = ", ".join(f"{c[6:]}={row[c]}" for c in params if isinstance(row[c], str))
        labels.append(textwrap.fill(f"{name} ({shown})" if shown else name, width, subsequent_indent="  "))
    return labels


def asv_summary(asv: pd.DataFrame, palette: Palette, out: Path, max_rows: int = 40) -> Figure | None:
    """The other benchmarks at the one commit (when there is only one)."""
    asv = _others(asv)
    if asv is None or asv.empty:
        return None
    ok = asv[asv["status"] == "ok"].copy()
    if ok.empty or ok["commit"].nunique() > 1:
        return None
    ok["unit"] = ok["unit"].fillna("").astype(str)
    latest = ok.sort_values("date").groupby(["benchmark", "params"], dropna=False).tail(1)
    groups = [(key, part) for key, part in latest.groupby(["type", "unit"])]  # one unit per panel
    heights = [min(len(p), max_rows) * (0.36 if any("\n" in t for t in _row_labels(p)) else 0.22) + 0.3
               for _, p in groups]
    fig, axes = subplots(len(groups), 1, 5.0, heights)
    label_room, truncated = 0.0, False
    for ax, ((kind, unit), part) in zip(axes[:, 0], groups):
        part = part.sort_values("value", ascending=False)
        truncated |= len(part) > max_rows
        part = part.head(max_rows).iloc[::-1].reset_index(drop=True)
        scale, label = _unit_scale(unit, part["value"])
        labels = _row_labels(part)
        colors = []
        for _, row in part.iterrows():
            est = row.get("param:estimator")
            colors.append(palette(est) if isinstance(est, str) else "#1f77b4")
        y = np.arange(len(part))
        values = part["value"].to_numpy(float) / scale
        ax.hlines(y, 0, 1, transform=ax.get_yaxis_transform(), color="0.92", lw=0.8, zorder=0)
        ci = part[["ci_low", "ci_high"]].to_numpy(float) / scale
        if np.isfinite(ci).all():
            lo = np.clip(values - ci[:, 0], 0, None)
            hi = np.clip(ci[:, 1] - values, 0, None)
            ax.errorbar(values, y, xerr=np.vstack([lo, hi]), fmt="none", ecolor="0.35", elinewidth=0.9, capsize=2)
        ax.scatter(values, y, color=colors, s=30, zorder=3, edgecolor="white", linewidth=0.5)
        ax.set_yticks(y)
        ax.set_yticklabels(labels, fontsize=7.5)
        ax.set_ylim(-0.6, len(y) - 0.4)
        ax.grid(axis="y", visible=False)
        label_room = max([label_room] + [text_width(line, 7.5) for t in labels for line in t.split("\n")])
        if (values > 0).all() and F.spans_decades(values):
            log_axis(ax, "x")
        ax.set_xlabel(label)
        ax.set_title(f"{kind} benchmarks" + (f" ({unit})" if unit and unit not in ("seconds", "bytes") else ""))
    finish(fig, left=min(label_room + 0.35, 5.0), heights=heights, hspace=0.9,
           title=f"asv benchmarks at commit {str(ok['commit'].iloc[-1])[:8]}")
    n_bad = int((asv["status"] != "ok").sum())
    caption = ("asv measurements other than the gradient statistics (those are in the leaderboard and the "
               "figures above) at the one commit in the results (its latest run per benchmark and parameter "
               "combination), largest first" + (f", the {max_rows} largest per panel" if truncated else "") +
               "; whiskers: asv's 99% confidence interval where it reports one. One panel per benchmark type and "
               f"unit. {n_bad} failed or skipped measurement{'s are' if n_bad != 1 else ' is'} summarized below.")
    return Figure("asv_summary", "asv benchmarks", caption, save(fig, out, "asv_summary"))
