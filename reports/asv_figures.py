"""The report's figures of asv's results (`gradest.reports.asv_results` loads them).

* `asv_statistics`: the same bias²/variance/MSE and frontier figures as for a `gradest run`
  (`gradest.reports.figures`), from asv's track_ statistics at each machine's last commit;
* `asv_statistics_history`: MSE and work-normalized variance of every estimator over the
  commits (when there is more than one);
* `asv_history` / `asv_summary`: the other benchmarks over commits, or at the one commit.

Each takes asv's tidy frame, the report's `Palette` and the output folder, and returns a
`gradest.plotting.figure.Figure` (a list for `asv_statistics`) or None without data for it.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from gradest.plotting.figure import Figure, legend_handles, log_if_decades, positive, time_unit, zero_note
from gradest.plotting.frames import sampled, spans_decades, zero_names
from gradest.plotting.style import Palette, backend_line, backend_marker, finish, grid, log_axis, save, subplots, \
    text_width
from gradest.reports.asv_results import is_statistic, track_stats
from gradest.reports.figures import bias_variance_mse, efficiency_frontier

#: markers of the parameter combinations other than estimator, task and backend
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _short(name: str) -> str:
    parts = str(name).split(".")
    return ".".join(parts[-2:]) if len(parts) > 1 else str(name)


def _unit_scale(unit: str, values) -> tuple[float, str]:
    unit = str(unit or "")
    if unit == "seconds":
        scale, name = time_unit(values)
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
    stats = track_stats(asv, latest=True)
    if stats.empty:
        return []
    commit = ", ".join(sorted({str(c)[:8] for c in stats["commit"]}))
    source = f" — asv, commit {commit}"
    figs = [bias_variance_mse(stats, palette, out, "asv_bias_variance_mse", source),
            efficiency_frontier(stats, palette, out, "asv_efficiency_frontier", source)]
    return [f for f in figs if f is not None]


def asv_statistics_history(asv: pd.DataFrame, palette: Palette, out: Path) -> Figure | None:
    """MSE and work-normalized variance of every estimator over the commits (more than one)."""
    stats = sampled(track_stats(asv))
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
            drawn = positive(part, q)
            for (est, backend), line in drawn.groupby(["estimator", "backend"]):
                line = line.sort_values("x")
                ax.plot(line["x"], line[q], color=palette(est), ls=backend_line(backend),
                        marker=backend_marker(backend), ms=3, lw=1.2)
            if len(drawn):
                log_axis(ax, "y")
            _commit_axis(ax, commits)
            ax.set_title(f"{task}: {title.split(' (')[0]}")
            ax.set_ylabel(title)
            zero_note(ax, zero_names(part, q, task), f"zero {q.replace('_', ' ')}" if q != "mse" else "zero MSE")
    handles = legend_handles(palette, stats["estimator"], stats["backend"])
    finish(fig, heights=[2.9] * len(tasks), bottom=1.0, hspace=1.2, wspace=0.9,
           title="asv: statistics over commits", handles=handles, legend_title="estimator")
    caption = (f"asv's track_mse and track_work_normalized_variance of every estimator over {len(commits)} commits "
               f"(ordered by date), one panel per task and statistic; line style: backend. Values that are zero "
               f"up to rounding are named in the panel, not drawn.")
    return Figure("asv_statistics_history", "asv: statistics over commits", caption,
                  save(fig, out, "asv_statistics_history"))


def _others(asv: pd.DataFrame) -> pd.DataFrame:
    """asv's rows other than the statistics drawn by `asv_statistics`."""
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
        log_if_decades(ax, part["value"] / scale)
        _commit_axis(ax, commits)
        ax.set_title(panel, fontsize=9.5)
        ax.set_ylabel(label)
    extra = [Line2D([], [], color="0.3", marker=m, ls="", label=text) for text, m in marker_of.items()]
    handles = legend_handles(palette, estimators, backends, extra=extra, markers=False)
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
        if (values > 0).all() and spans_decades(values):
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
