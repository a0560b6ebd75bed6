"""The report's figures, each from a tidy frame (seaborn style, matplotlib drawing).

Every function takes the loaded frames, the report's `Palette` (one colour per estimator,
shared by all figures) and an output folder, writes ``<name>.png`` and ``<name>.svg`` and
returns a `Figure` (name, title, caption, files), or None when the results hold no data for
it. Axes carry units; quantities that span decades are drawn on log scales.

* `variance_vs_samples`: gradient variance against S (log-log), one panel per task.
* `bias_variance_mse`: bias², variance and MSE against the exact gradient per estimator.
* `efficiency_frontier`: variance against seconds per estimate, with the Pareto frontier.
* `training_curves`: loss against step, mean and band over seeds.
* `temperature_sweep`: Gumbel-softmax bias², variance and MSE against τ.
* `lasso_delta_sweep`: final gap to scikit-learn's Lasso optimum against δ, and its curves.
* `asv_history` / `asv_summary`: asv measurements over commits, or at the one commit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from gradest.reports import frames as F
from gradest.reports.style import (Palette, backend_line, backend_marker, figure_legend, finish, grid, legend_width,
                                   log_axis, plt, save, subplots, text_width)

VARIANCE_LABEL = "variance: trace of covariance (grad units²)"


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


def _legend_handles(palette: Palette, labels, backends=(), extra: list | None = None) -> list:
    """Estimator colours, then backend line styles (when there are several), then ``extra``."""
    handles = [Line2D([], [], color=palette(lab), lw=2.5, label=lab) for lab in sorted(set(labels))]
    backends = sorted(set(backends))
    if len(backends) > 1:
        handles.append(Line2D([], [], color="none", label=" "))
        handles += [Line2D([], [], color="0.3", ls=backend_line(b), marker=backend_marker(b), label=f"backend {b}")
                    for b in backends]
    return handles + (extra or [])


def _legend_room(handles, title: str = "estimator") -> float:
    return legend_width([h.get_label() for h in handles], title)


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
    if low not in part.columns or high not in part.columns:
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


# ---------------------------------------------------------------------------------------
# gradient statistics


def variance_vs_samples(cells: pd.DataFrame, palette: Palette, out: Path) -> Figure | None:
    stats = F.gradient_stats(cells)
    if stats.empty:
        return None
    sampled = stats[stats["estimator_name"] != F.REFERENCE_ESTIMATOR]
    stats = _positive(sampled, "variance")
    if stats.empty or stats["num_samples"].nunique() < 2:
        return None
    zero = sampled.groupby(["task", "estimator"])["variance"].max()
    zero = zero[zero <= 0].reset_index()
    tasks = sorted(stats["task"].unique())
    fig, axes = grid(len(tasks))
    for ax, task in zip(axes, tasks):
        names = zero.loc[zero["task"] == task, "estimator"].tolist()
        if names:
            ax.text(0.02, 0.02, "zero variance: " + ", ".join(names), transform=ax.transAxes, fontsize=7,
                    color="0.3", va="bottom")
        part = stats[stats["task"] == task]
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
    handles = _legend_handles(palette, stats["estimator"], stats["backend"],
                              extra=[Line2D([], [], color="0.5", ls=":", label="∝ 1/S (reference slope)")])
    room = _legend_room(handles)
    finish(fig, legend=room, title="Gradient variance vs number of samples")
    figure_legend(fig, handles, "estimator", room)
    R = int(stats["num_replicates"].median()) if "num_replicates" in stats else None
    caption = (f"Trace of the covariance of the gradient estimate at θ₀ against the number of samples S it "
               f"averages (log-log), mean over seeds{f' of {R} replicates each' if R else ''}; bars: 95% "
               f"intervals. Independent samples give slope −1 (dotted). Estimators with zero variance on a task "
               f"(the exact gradient, or one that is exact there) cannot be drawn on a log scale and are named "
               f"in the panel.")
    return Figure("variance_vs_samples", "Variance vs number of samples", caption, save(fig, out, "variance_vs_samples"))


def bias_variance_mse(cells: pd.DataFrame, palette: Palette, out: Path) -> Figure | None:
    stats = F.gradient_stats(cells)
    if stats.empty or "bias_sq" not in stats.columns or stats["bias_sq"].isna().all():
        return None
    S = F.reference_samples(stats)
    at = stats[(stats["num_samples"] == S) & (stats["estimator_name"] != F.REFERENCE_ESTIMATOR)]
    at = at[at["bias_sq"].notna()]
    # a task on which every estimate is deterministic (zero variance) has nothing to compare
    random_tasks = at.groupby("task")["variance"].max()
    at = at[at["task"].isin(random_tasks[random_tasks > 0].index)]
    if at.empty:
        return None
    cols = [c for c in ("bias_sq", "bias_sq_floor", "variance", "mse", "variance_low", "variance_high",
                        "mse_low", "mse_high", "bias_sq_low", "bias_sq_high") if c in at.columns]
    # one point per estimator: the mean over backends and seeds
    agg = at.groupby(["task", "estimator"])[cols].mean().reset_index()
    tasks = sorted(agg["task"].unique())
    counts = [agg[agg["task"] == t]["estimator"].nunique() for t in tasks]
    quantities = [("bias_sq", "bias² = ‖E[g] − ∇L‖²"), ("variance", "variance"), ("mse", "MSE = E‖g − ∇L‖²")]
    quantities = [(q, t) for q, t in quantities if q in agg.columns]
    heights = [0.24 * c + 0.35 for c in counts]
    fig, axes = subplots(len(tasks), len(quantities), 3.3, heights)
    for r, task in enumerate(tasks):
        part = agg[agg["task"] == task].sort_values("estimator", ascending=False).reset_index(drop=True)
        y = np.arange(len(part))
        for c, (q, title) in enumerate(quantities):
            ax = axes[r][c]
            values = part[q].to_numpy(dtype=float)
            # values below 1e-9 of the panel's largest are rounding noise: written as ≈ 0
            floor = np.nanmax(values) * 1e-9 if np.nanmax(values) > 0 else np.inf
            shown = values > floor
            sub = part[shown]
            if len(sub):
                ax.hlines(y[shown], 0, 1, transform=ax.get_yaxis_transform(), color="0.92", lw=0.8, zorder=0)
                ax.errorbar(sub[q], y[shown], xerr=_yerr(sub, q), fmt="none", ecolor="0.35", elinewidth=0.9,
                            capsize=2, zorder=2)
                ax.scatter(sub[q], y[shown], color=[palette(e) for e in sub["estimator"]], s=38, zorder=3,
                           edgecolor="white", linewidth=0.5)
            for i in np.flatnonzero(~shown):
                ax.text(0.02, y[i], "≈ 0", va="center", transform=ax.get_yaxis_transform(), fontsize=8,
                        color="0.3")
            if q == "bias_sq" and "bias_sq_floor" in part.columns and len(sub):
                ax.scatter(sub["bias_sq_floor"], y[shown], marker="|", s=110, color="black", zorder=4)
            log_axis(ax, "x")
            ax.set_yticks(y)
            ax.set_yticklabels(part["estimator"] if c == 0 else [""] * len(y), fontsize=8)
            ax.set_ylim(-0.6, len(y) - 0.4)
            ax.grid(axis="y", visible=False)
            if r == 0:
                ax.set_title(title)
            if r == len(tasks) - 1:
                ax.set_xlabel("grad units² (log scale)")
            if c == 0:
                ax.set_ylabel(task, fontsize=10, fontweight="bold")
    left = max(text_width(e) for e in agg["estimator"]) + 0.55
    finish(fig, left=left, wspace=0.25, hspace=0.75, heights=heights,
           title=f"Bias², variance and MSE against the exact gradient (S = {S})")
    caption = (f"At θ₀ with S = {S} samples per estimate, mean over seeds and backends; whiskers: 95% "
               f"intervals. Black ticks on the bias² panels mark variance/R, what an unbiased estimator's "
               f"measured bias² reads from R replicates: a point at or below its tick is consistent with zero "
               f"bias. MSE = bias² + variance. '≈ 0': below 10⁻⁹ of the panel's largest value (exactly zero "
               f"up to rounding, e.g. an estimator that is exact on this task). The exact gradient is the "
               f"reference and is not drawn; tasks on which every estimate is deterministic are left out.")
    return Figure("bias_variance_mse", "Bias², variance and MSE per estimator", caption,
                  save(fig, out, "bias_variance_mse"))


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
    stats = F.gradient_stats(cells)
    if stats.empty or "seconds_per_estimate" not in stats.columns:
        return None
    stats = _positive(_positive(stats[stats["estimator_name"] != F.REFERENCE_ESTIMATOR], "variance"),
                      "seconds_per_estimate")
    if stats.empty:
        return None
    scale, unit = _time_unit(stats["seconds_per_estimate"])
    stats = stats.assign(seconds_per_estimate=stats["seconds_per_estimate"] / scale)
    tasks = sorted(stats["task"].unique())
    fig, axes = grid(len(tasks))
    for ax, task in zip(axes, tasks):
        part = stats[stats["task"] == task]
        for (est, backend), line in part.groupby(["estimator", "backend"]):
            line = line.sort_values("num_samples")
            ax.plot(line["seconds_per_estimate"], line["variance"], color=palette(est), ls=backend_line(backend),
                    lw=0.9, alpha=0.7)
            ax.scatter(line["seconds_per_estimate"], line["variance"], color=palette(est),
                       marker=backend_marker(backend), s=12 + 9 * np.log2(line["num_samples"].to_numpy(float) + 1),
                       edgecolor="white", linewidth=0.4, zorder=3)
        front = _pareto(part)
        ax.step(front["seconds_per_estimate"], front["variance"], where="post", color="0.2", lw=1.0, ls="-.",
                zorder=2)
        log_axis(ax, "x")
        log_axis(ax, "y")
        ax.set_title(task)
        ax.set_xlabel(f"time per gradient estimate ({unit})")
        ax.set_ylabel(VARIANCE_LABEL)
    handles = _legend_handles(palette, stats["estimator"], stats["backend"],
                              extra=[Line2D([], [], color="0.2", ls="-.", label="efficiency frontier"),
                                     Line2D([], [], color="0.4", marker="o", ls="", ms=3, label="small marker: S = 1"),
                                     Line2D([], [], color="0.4", marker="o", ls="", ms=7,
                                            label="large marker: largest S")])
    room = _legend_room(handles)
    finish(fig, legend=room, title="Efficiency: variance vs cost per estimate")
    figure_legend(fig, handles, "estimator", room)
    caption = ("Each point is an estimator at one S (larger markers: more samples; lines join the S values of "
               "one estimator and backend), mean over seeds. Time per estimate: the best of several timed "
               "vectorized calls divided by the replicates in the call (wall clock; it depends on the load of "
               "the machine). Lower-left is better; the dash-dotted "
               "step line is the Pareto frontier (no other point is both faster and of lower variance).")
    return Figure("efficiency_frontier", "Efficiency frontier: variance vs seconds per estimate", caption,
                  save(fig, out, "efficiency_frontier"))


# ---------------------------------------------------------------------------------------
# training


def training_curves(history: pd.DataFrame, palette: Palette, out: Path) -> Figure | None:
    curves, column = F.training_curves(history, "train")
    if curves.empty or "step" not in curves.columns:
        return None
    bands = F.curve_bands(curves)
    if bands.empty:
        return None
    tasks = sorted(bands["task"].unique())
    fig, axes = grid(len(tasks), width=4.2)
    kinds = set()
    for ax, task in zip(axes, tasks):
        part = bands[bands["task"] == task]
        for (est, backend), line in part.groupby(["estimator", "backend"]):
            line = line.sort_values("step")
            color = palette(est)
            ax.plot(line["step"], line["mean"], color=color, ls=backend_line(backend), lw=1.4)
            if (line["band"] != "none").any():
                ax.fill_between(line["step"], line["low"], line["high"], color=color, alpha=0.15, lw=0)
            kinds.update(line["band"].unique())
        col = curves.loc[curves["task"] == task, "value_column"].iloc[0]
        values = part[["mean", "low", "high"]].to_numpy().ravel()
        _log_if_decades(ax, values)
        ax.set_title(task)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("training step")
        ax.set_ylabel("exact loss L(θ)" if col == "exact_loss" else "loss (surrogate, per step)")
    handles = _legend_handles(palette, bands["estimator"], bands["backend"])
    room = _legend_room(handles)
    finish(fig, legend=room, title="Training curves", left=0.95)
    figure_legend(fig, handles, "estimator", room)
    seeds = int(bands["seeds"].max())
    band_text = {"ci95": "95% t-interval over seeds", "range": "min–max over the two seeds",
                 "none": "no band (one seed)"}
    caption = (f"Loss to minimize against the optimizer step (Adam), mean over up to {seeds} seed"
               f"{'s' if seeds > 1 else ''}; band: {', '.join(band_text[k] for k in sorted(kinds))}. The exact "
               f"loss L(θ) is drawn where the task has ground truth, else the step's surrogate loss.")
    return Figure("training_curves", "Training curves", caption, save(fig, out, "training_curves"))


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
                label = f"gumbel_softmax[hard={hard},temperature=1.0]"
                labels[label] = "straight-through (hard=True)" if hard else "relaxed (hard=False)"
                ax.errorbar(line["temperature"], line[q], yerr=_yerr(line, q), color=palette(label),
                            ls=backend_line(backend), marker=backend_marker(backend), ms=4, capsize=2)
                if q == "bias_sq" and "bias_sq_floor" in line.columns:
                    ax.plot(line["temperature"], line["bias_sq_floor"], color=palette(label), ls=":", lw=1.0)
            log_axis(ax, "x")
            log_axis(ax, "y")
            ax.set_xlabel("temperature τ (log)")
            ax.set_ylabel("grad units²")
            ax.set_title(f"{title} — {task}" if len(tasks) > 1 else title)
    handles = [Line2D([], [], color=palette(lab), lw=2.5, label=text) for lab, text in labels.items()]
    backends = sorted(stats["backend"].unique())
    if len(backends) > 1:
        handles += [Line2D([], [], color="0.3", ls=backend_line(b), marker=backend_marker(b), label=f"backend {b}")
                    for b in backends]
    if "bias_sq_floor" in stats.columns:
        handles.append(Line2D([], [], color="0.3", ls=":", label="bias² noise floor variance/R"))
    room = _legend_room(handles, "gumbel_softmax")
    finish(fig, legend=room, heights=[2.9] * len(tasks), title="Gumbel-softmax: bias and variance vs temperature")
    figure_legend(fig, handles, "gumbel_softmax", room)
    caption = (f"Gumbel-softmax gradient estimates (S = 1) at θ₀ on {', '.join(tasks)} against the temperature τ, "
               "mean over seeds, 95% intervals. Lower τ brings the relaxed sample closer to the discrete one (less "
               "bias) at the price of more variance; the straight-through variant is hard in the forward pass. "
               "Dotted: variance/R, the bias² that R replicates of an unbiased estimator would show (bias below "
               "it is not resolved). Colours are those of the τ = 1 variants in the other figures.")
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
    fig, axes = subplots(1, ncols, 4.4, [3.1])
    ax = axes[0][0]
    for backend, part in stats.groupby("backend"):
        part = part.sort_values("delta")
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
        backends = sorted(curves["backend"].unique())
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


def asv_history(asv: pd.DataFrame, palette: Palette, out: Path, max_panels: int = 12) -> Figure | None:
    if asv is None or asv.empty:
        return None
    ok = asv[asv["status"] == "ok"]
    commits = ok.groupby("commit")["date"].min().sort_values()
    if len(commits) < 2:
        return None
    order = {c: i for i, c in enumerate(commits.index)}
    counts = ok.groupby("benchmark")["commit"].nunique()
    names = list(counts[counts >= 2].sort_values(ascending=False).index[:max_panels])
    if not names:
        return None
    fig, axes = grid(len(names), width=4.0, height=2.8)
    for ax, name in zip(axes, sorted(names)):
        part = ok[ok["benchmark"] == name].copy()
        part["x"] = part["commit"].map(order)
        scale, label = _unit_scale(part["unit"].iloc[0], part["value"])
        combos = list(part["params"].unique())[:8]
        for params in combos:
            line = part[part["params"] == params].sort_values("x")
            est = line["param:estimator"].iloc[0] if "param:estimator" in line.columns else None
            color = palette(est) if isinstance(est, str) and est in palette.colors else None
            ax.plot(line["x"], line["value"] / scale, marker="o", ms=3, lw=1.2, color=color,
                    label=params if params else "value")
        _log_if_decades(ax, part["value"] / scale)
        ax.set_xticks(range(len(commits)))
        ax.set_xticklabels([c[:8] for c in commits.index], rotation=45, ha="right", fontsize=7)
        ax.set_title(_short(name), fontsize=9)
        ax.set_xlabel("commit (oldest first)")
        ax.set_ylabel(label)
        if len(combos) > 1:
            ax.legend(fontsize=6, frameon=False)
    finish(fig, bottom=1.0, hspace=1.2, title="asv benchmarks over commits")
    caption = (f"asv results of {len(commits)} commits ordered by commit date; one panel per benchmark (the "
               f"{len(names)} with the most commits), one line per parameter combination (up to 8). Failed and "
               f"skipped measurements are left out (see the table below).")
    return Figure("asv_history", "asv history over commits", caption, save(fig, out, "asv_history"))


def asv_summary(asv: pd.DataFrame, palette: Palette, out: Path, max_rows: int = 40) -> Figure | None:
    if asv is None or asv.empty:
        return None
    ok = asv[asv["status"] == "ok"].copy()
    if ok.empty:
        return None
    ok["unit"] = ok["unit"].fillna("").astype(str)
    latest = ok.sort_values("date").groupby(["benchmark", "params"], dropna=False).tail(1)
    groups = [(key, part) for key, part in latest.groupby(["type", "unit"])]  # one unit per panel
    heights = [min(len(p), max_rows) * 0.22 + 0.3 for _, p in groups]
    fig, axes = subplots(len(groups), 1, 5.0, heights)
    label_room, truncated = 0.0, False
    for ax, ((kind, unit), part) in zip(axes[:, 0], groups):
        part = part.sort_values("value", ascending=False)
        truncated |= len(part) > max_rows
        part = part.head(max_rows).iloc[::-1].reset_index(drop=True)
        scale, label = _unit_scale(unit, part["value"])
        labels = [f"{_short(b)} ({p})" if p else _short(b) for b, p in zip(part["benchmark"], part["params"])]
        colors = []
        for _, row in part.iterrows():
            est = row.get("param:estimator")
            colors.append(palette(est) if isinstance(est, str) and est in palette.colors else "#1f77b4")
        y = np.arange(len(part))
        values = part["value"].to_numpy(float) / scale
        ax.hlines(y, 0, 1, transform=ax.get_yaxis_transform(), color="0.92", lw=0.8, zorder=0)
        if part[["ci_low", "ci_high"]].notna().all(axis=None):
            lo = np.clip(values - part["ci_low"].to_numpy(float) / scale, 0, None)
            hi = np.clip(part["ci_high"].to_numpy(float) / scale - values, 0, None)
            ax.errorbar(values, y, xerr=np.vstack([lo, hi]), fmt="none", ecolor="0.35", elinewidth=0.9, capsize=2)
        ax.scatter(values, y, color=colors, s=30, zorder=3, edgecolor="white", linewidth=0.5)
        ax.set_yticks(y)
        ax.set_yticklabels(labels, fontsize=7)
        ax.set_ylim(-0.6, len(y) - 0.4)
        ax.grid(axis="y", visible=False)
        label_room = max([label_room] + [text_width(t, 7) for t in labels])
        if (values > 0).all() and F.spans_decades(values):
            log_axis(ax, "x")
        ax.set_xlabel(label)
        ax.set_title(f"{kind} benchmarks" + (f" ({unit})" if unit and unit not in ("seconds", "bytes") else ""))
    finish(fig, left=label_room + 0.35, heights=heights, hspace=0.9,
           title=f"asv benchmarks at commit {str(ok['commit'].iloc[-1])[:8]}")
    n_bad = int((asv["status"] != "ok").sum())
    caption = ("asv measurements of the one commit in the results (its latest run per benchmark and parameter "
               "combination), largest first" + (f", the {max_rows} largest per panel" if truncated else "") +
               "; whiskers: asv's 99% confidence interval where it reports one. One panel per benchmark type and "
               f"unit. {n_bad} failed or skipped measurement{'s are' if n_bad != 1 else ' is'} kept as missing "
               f"and listed below.")
    return Figure("asv_summary", "asv benchmarks", caption, save(fig, out, "asv_summary"))
