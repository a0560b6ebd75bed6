"""Shared figure style: one colour per estimator across every figure of a report, backend line
styles and markers, log axes with readable labels, an explicit layout, and saving a figure as
PNG and SVG.

The layout is computed from sizes in inches (`finish`), not measured by drawing
(``tight_layout`` / ``bbox_inches="tight"`` each re-draw the figure): a report of many panels
renders several times faster, and the same data always give the same page.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator  # noqa: E402

BACKEND_DASHES = {"torch": "-", "jax": "--"}
BACKEND_MARKERS = {"torch": "o", "jax": "s"}
DPI = 110
LEGEND_FONT_PT = 8
#: distinct colours for estimators: tab10, then ten more of high contrast to it and each other
DISTINCT = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf", "#000075", "#800000", "#469990", "#f032e6", "#d4a017", "#2f4f4f",
            "#00a86b", "#4b0082", "#a0522d", "#ff4f79"]


def backend_line(backend: str) -> str:
    return BACKEND_DASHES.get(str(backend), ":")


def backend_marker(backend: str) -> str:
    return BACKEND_MARKERS.get(str(backend), "^")


@dataclass
class Palette:
    """Estimator label -> colour, built once from every label of the report (sorted, so the
    same results always give the same colours); unknown labels get further colours."""

    colors: dict = field(default_factory=dict)

    @classmethod
    def from_labels(cls, labels) -> "Palette":
        unique = sorted({str(label) for label in labels if isinstance(label, str) and label})
        return cls(dict(zip(unique, _colors(len(unique)))))

    def __call__(self, label) -> tuple:
        label = str(label)
        if label not in self.colors:
            self.colors[label] = _colors(len(self.colors) + 1)[-1]
        return self.colors[label]


def _colors(n: int) -> list:
    """n distinguishable colours: `DISTINCT`, then husl hues."""
    colors = [to_rgb(c) for c in DISTINCT]
    if n > len(colors):
        colors += list(sns.color_palette("husl", n - len(colors)))
    return colors[:n]


def theme() -> None:
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.9)
    plt.rcParams.update({"axes.titlesize": 10.5, "axes.titleweight": "bold", "legend.fontsize": LEGEND_FONT_PT,
                         "legend.title_fontsize": 9, "svg.fonttype": "none", "figure.dpi": DPI,
                         "axes.formatter.use_mathtext": False})


# ---- log axes ---------------------------------------------------------------------------

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def tick_label(value: float) -> str:
    """1, 20, 0.05 plainly between 0.001 and 10⁴; else 10⁻⁵ or 2×10⁻⁵ (unicode, no mathtext)."""
    if not value > 0 or not math.isfinite(value):
        return ""
    if 1e-3 <= value < 1e4:
        return f"{value:g}"
    exponent = math.floor(math.log10(value) + 1e-9)
    mantissa = value / 10.0**exponent
    power = "10" + str(exponent).translate(_SUPERSCRIPT)
    return power if abs(mantissa - 1) < 1e-6 else f"{mantissa:.2g}×{power}"


def log_axis(ax, which: str = "y") -> None:
    """A log scale on ``which`` with a few labelled ticks for the data drawn so far: every
    decade (or every few) over wide ranges, 1-2-5 steps over one or two decades, finer below;
    no minor labels."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    lo, hi = ax.dataLim.intervaly if which == "y" else ax.dataLim.intervalx
    if not (lo > 0 and hi > lo and math.isfinite(hi)):
        lo, hi = ax.get_ylim() if which == "y" else ax.get_xlim()
    decades = math.log10(hi / lo) if lo > 0 and hi > lo else 1.0
    if decades > 2.5:
        locator = LogLocator(base=10, numticks=8)
    elif decades > 0.6:
        locator = LogLocator(base=10, subs=(1.0, 2.0, 5.0))
    else:
        locator = LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0))
    axis.set_major_locator(locator)
    axis.set_major_formatter(FuncFormatter(lambda v, _: tick_label(v)))
    axis.set_minor_formatter(NullFormatter())
    if decades <= 2.5:
        axis.set_minor_locator(NullLocator())


# ---- layout -----------------------------------------------------------------------------


def text_width(text: str, points: float = LEGEND_FONT_PT) -> float:
    """Rough width in inches of ``text`` at ``points`` (average glyph ~0.6 em, generous)."""
    return len(str(text)) * points * 0.6 / 72.0


def legend_width(labels, title: str = "") -> float:
    """Inches a right-hand legend of ``labels`` needs (handle, gap and text)."""
    widest = max([text_width(lab) for lab in labels] + [text_width(title, 9)] + [0.5])
    return widest + 0.75


def grid(n: int, max_cols: int = 3, width: float = 3.9, height: float = 3.0):
    """A figure of n panels of ``width`` x ``height`` inches (axes area) in rows of at most
    ``max_cols``; unused axes hidden. Sizes are finalized by `finish`."""
    cols = max(1, min(n, max_cols))
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    fig._gradest_grid = (rows, cols, width, height)
    return fig, flat[:n]


def finish(fig, *, left: float = 0.85, right: float = 0.25, top: float = 0.7, bottom: float = 0.6,
           wspace: float = 0.85, hspace: float = 0.85, legend: float = 0.0, title: str | None = None,
           heights=None) -> None:
    """Size ``fig`` so each panel keeps its axes area and the margins (inches) fit labels:
    ``left`` for y tick labels and y label, ``bottom`` for x ticks and label, ``top`` for the
    titles, gaps ``wspace`` / ``hspace`` between panels, ``legend`` inches at the right."""
    rows, cols, width, height = fig._gradest_grid
    row_heights = list(heights) if heights is not None else [height] * rows
    W = left + cols * width + (cols - 1) * wspace + right + legend
    H = top + sum(row_heights) + (rows - 1) * hspace + bottom
    fig.set_size_inches(W, H)
    fig.subplots_adjust(left=left / W, right=(W - right - legend) / W, bottom=bottom / H, top=(H - top) / H,
                        wspace=wspace / width, hspace=hspace / (sum(row_heights) / rows))
    if title:
        fig.suptitle(title, y=1 - 0.12 / H, va="top", fontsize=12)


def figure_legend(fig, handles, title: str = "", legend: float = 0.0) -> None:
    """Handles in a column right of the panels (in the ``legend`` inches `finish` reserved)."""
    W = fig.get_size_inches()[0]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1 - (legend - 0.1) / W, 0.5),
               frameon=False, title=title or None)


def subplots(rows: int, cols: int, width: float, heights) -> tuple:
    """Panels of ``width`` x ``heights[r]`` inches (axes areas), finalized by `finish`."""
    fig, axes = plt.subplots(rows, cols, squeeze=False, figsize=(width * cols, sum(heights)),
                             gridspec_kw={"height_ratios": list(heights)})
    fig._gradest_grid = (rows, cols, width, sum(heights) / rows)
    return fig, axes


def save(fig, out_dir: Path, name: str) -> list[str]:
    """Write ``name``.png and ``name``.svg into ``out_dir``; returns the file names."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for ext in ("png", "svg"):
        path = out_dir / f"{name}.{ext}"
        fig.savefig(path, dpi=DPI)
        files.append(path.name)
    plt.close(fig)
    return files
