"""The `Figure` a cell kind's ``figures`` returns, and the panel helpers figures share.

A figure function takes tidy frames, the report's `Palette` (one colour per estimator, shared
by all figures) and an output folder, writes ``<name>.png`` and ``<name>.svg`` (`style.save`)
and returns a `Figure` (name, title, caption, files), or None when the results hold no data
for it. Axes carry units; quantities that span decades are drawn on log scales
(`log_if_decades`). Zero is handled one way (`gradest.plotting.frames.apply_zero_rule`): a
statistic that is zero up to rounding is named in its panel (`zero_note`), never plotted on a
log axis. Legends sit below the panels (`style.finish`) and show canonical labels, backends as
the line styles the lines have (`legend_handles`). Curves over seeds are a mean line with its
band (`band_lines`, from `gradest.plotting.frames.curve_bands`).
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from gradest.plotting.frames import ordered_backends, spans_decades
from gradest.plotting.style import Palette, backend_line, backend_marker, log_axis

#: the y label of every gradient-variance axis
VARIANCE_LABEL = "variance: tr Cov (grad units²)"
#: the caption's words for each band kind of `gradest.plotting.frames.band`
BAND_TEXT = {"ci95": "95% t-interval over seeds", "range": "min–max where two seeds ran", "none": "no band (one seed)"}


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


def backend_handles(backends, markers: bool = True, **style) -> list:
    """Legend entries of the backends' line styles (with their markers where the lines have
    them), in backend order; none where one backend ran. ``style``: more Line2D settings."""
    backends = ordered_backends(backends)
    if len(backends) < 2:
        return []
    return [Line2D([], [], color="0.3", ls=backend_line(b), marker=backend_marker(b) if markers else None,
                   label=f"backend {b}", **style) for b in backends]


def legend_handles(palette: Palette, labels, backends=(), extra: list | None = None, markers: bool = True) -> list:
    """Estimator colours (sorted), then backend line styles when there are several — with the
    backend's marker only where the lines have markers (``markers``) — then ``extra``."""
    handles = [Line2D([], [], color=palette(lab), lw=2.5, label=lab) for lab in sorted(set(labels))]
    return handles + backend_handles(backends, markers, lw=1.4, ms=5) + (extra or [])


def positive(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """The rows of ``frame`` whose ``column`` is finite and positive (drawable on a log axis)."""
    values = pd.to_numeric(frame[column], errors="coerce")
    return frame[(values > 0) & np.isfinite(values)]


def yerr(part: pd.DataFrame, column: str):
    """Error bars [2, n] of ``column`` from its ``_low`` / ``_high`` columns, or None without."""
    low, high = f"{column}_low", f"{column}_high"
    if low not in part.columns or high not in part.columns or part[[low, high]].isna().all(axis=None):
        return None
    y = part[column].to_numpy(dtype=float)
    lo = np.clip(y - part[low].to_numpy(dtype=float), 0, None)
    lo = np.minimum(lo, y * 0.99)  # a log axis cannot show a bar down to 0: stop two decades below
    hi = np.clip(part[high].to_numpy(dtype=float) - y, 0, None)
    return np.vstack([np.nan_to_num(lo), np.nan_to_num(hi)])


def time_unit(seconds) -> tuple[float, str]:
    """(scale, unit) so that seconds / scale reads in s, ms, µs or ns."""
    v = pd.to_numeric(pd.Series(seconds), errors="coerce").dropna()
    med = float(v.abs().median()) if len(v) else 1.0
    for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if med >= scale:
            return scale, name
    return 1e-9, "ns"


def log_if_decades(ax, values, axis: str = "y") -> None:
    """A log scale on ``axis`` when the positive ``values`` span a decade or more."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    if len(v) and (v > 0).all() and spans_decades(v):
        log_axis(ax, axis)


def zero_note(ax, names, what: str = "zero variance") -> None:
    """Name the estimators whose statistic is zero (not drawn on the log axis) in the panel."""
    if not names:
        return
    width = ax.get_position().width * ax.figure.get_size_inches()[0]
    chars = max(20, int(width * 72 / (7.5 * 0.55)))
    text = textwrap.fill(f"{what} (not drawn): " + ", ".join(names), chars)
    ax.text(0.02, 0.02, text, transform=ax.transAxes, fontsize=7.5, color="0.25", va="bottom",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.5})


def band_lines(ax, part: pd.DataFrame, x: str, palette: Palette) -> set:
    """Each estimator x backend of ``part`` (`gradest.plotting.frames.curve_bands` rows) as its
    mean line against ``x`` with its band; returns the band kinds drawn (keys of `BAND_TEXT`)."""
    kinds = set()
    for (est, backend), line in part.groupby(["estimator", "backend"]):
        line = line.sort_values("step")
        color = palette(est)
        ax.plot(line[x], line["mean"], color=color, ls=backend_line(backend), lw=1.4)
        if (line["band"] != "none").any():
            ax.fill_between(line[x], line["low"], line["high"], color=color, alpha=0.15, lw=0)
        kinds.update(line["band"].unique())
    return kinds
