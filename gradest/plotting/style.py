"""The figure style of every kind and the report: estimator colours, backend line styles and
markers, log axes with readable labels, an explicit layout, and saving a figure as PNG and SVG.

**Estimator colours.** An estimator's colour is a function of its label (and of the installed
estimators), the same in every report and every figure whatever else the report holds:

1. the label is put in canonical form (`gradest.plotting.frames.canonical_label`: the name plus
   only the options that differ from the registered defaults), so ``gumbel_rao`` (asv's
   label) and ``gumbel_rao[num_mc=10,temperature=1.0]`` (a run's) are one estimator;
2. `PALETTE` is a fixed ordered list of 24 colours chosen so that any two differ by at least 16
   CIEDE2000 units (no two near-identical hues; L* between 30 and 72, so every one is visible
   on white); a label's *home slot* is ``blake2b(canonical label) mod len(PALETTE)`` (a stable
   hash: the same in every process, unlike Python's salted ``hash``);
3. the variants the registry declares (`gradest.registry.estimator_variants`) get fixed slots
   (`declared_slots`): the core variants of gradest's own estimators (those in every figure,
   the training curves too) the first slots in sorted order (the palette's first colours are
   its most distinct), then gradest's other variants, then those of plugins, each group in
   sorted order, each variant its home slot or, when an earlier one took it, the next free
   one. This depends on what is installed, never on what a report shows, so the declared
   variants never share a colour (up to 24 of them; beyond, slots are reused) and a plugin
   never recolours a built-in;
4. any other label (options no variant declares, an unknown name) takes its home slot: it may
   share a colour with another label, and it has that colour in every report.

The layout is computed from sizes in inches (`finish`), not measured by drawing
(``tight_layout`` / ``bbox_inches="tight"`` each re-draw the figure): a report of many panels
renders several times faster, and the same data always give the same page. Every figure is at
most `MAX_WIDTH_IN` wide (panels shrink, fonts do not), so that the page shows it at its own
size — 1:1, never scaled down — in a 1,400-px window; legends go below the panels, in as many
columns as fit.
"""
from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator  # noqa: E402

from gradest.plotting.frames import backend_order, canonical_label  # noqa: E402

#: line styles and markers of the first backends of `backend_order` (torch, jax); others: the last
BACKEND_DASHES = ("-", "--", ":")
BACKEND_MARKERS = ("o", "s", "^")
DPI = 110
LEGEND_FONT_PT = 8
#: the widest figure (inches): 1,155 px at `DPI`, what the page's 1,200-px column shows 1:1
MAX_WIDTH_IN = 10.5
#: panels never get narrower than this (inches) when a figure is fitted to `MAX_WIDTH_IN`
MIN_PANEL_IN = 2.2
#: the estimator colours (see the module docstring): pairwise CIEDE2000 >= 16
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#5a4b0f", "#00c3c3", "#f096a5",
           "#c3a500", "#782d4b", "#0000f0", "#00694b", "#f00087", "#96a5ff", "#a55a00", "#ff78ff",
           "#00b4ff", "#3c4b87", "#697800", "#871e96", "#2d9678", "#872d0f", "#a5b469", "#4b5aff")


def _backend_slot(backend: str, count: int) -> int:
    """The index of ``backend`` in `backend_order`, the last slot for later and unknown names."""
    order = backend_order()
    return min(order.index(str(backend)), count - 1) if str(backend) in order else count - 1


def backend_line(backend: str) -> str:
    return BACKEND_DASHES[_backend_slot(backend, len(BACKEND_DASHES))]


def backend_marker(backend: str) -> str:
    return BACKEND_MARKERS[_backend_slot(backend, len(BACKEND_MARKERS))]


def home_slot(label) -> int:
    """The `PALETTE` index that the stable hash of ``label``'s canonical form chooses."""
    digest = hashlib.blake2b(str(canonical_label(str(label))).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % len(PALETTE)


def _probe(labels, slots: dict) -> None:
    """Give each of ``labels`` (in order) its home slot or the next slot used least so far."""
    taken: dict[int, int] = {}  # slot -> how many labels use it (more than one only past len(PALETTE))
    for slot in slots.values():
        taken[slot] = taken.get(slot, 0) + 1
    for label in labels:
        if label in slots:
            continue
        level = min(taken.get(i, 0) for i in range(len(PALETTE)))  # reuse a slot only once all are used
        slot = home_slot(label)
        while taken.get(slot, 0) > level:
            slot = (slot + 1) % len(PALETTE)
        taken[slot] = taken.get(slot, 0) + 1
        slots[label] = slot


@functools.lru_cache(maxsize=8)
def _declared_slots(registered: tuple) -> dict:
    from gradest.labels import make_label
    from gradest.registry import ESTIMATORS, core_variants, estimator_variants

    own, own_core, plugins = set(), set(), set()
    for name in registered:
        module = str(getattr(ESTIMATORS.entry(name).factory, "__module__", ""))
        group = own if module.startswith("gradest.") else plugins
        group.update(canonical_label(make_label(name, options)) for options in estimator_variants(name))
        if group is own:
            own_core.update(canonical_label(make_label(name, options)) for options in core_variants(name))
    # the core variants are in every figure (training curves too): the palette's first, most distinct colours
    slots: dict = {label: i % len(PALETTE) for i, label in enumerate(sorted(own_core))}
    _probe(sorted(own), slots)
    _probe(sorted(plugins - own), slots)
    return slots


def declared_slots() -> dict:
    """Canonical label -> `PALETTE` index of every variant the registry declares (step 3 of
    the module docstring); {} where the registry cannot be read."""
    try:
        from gradest.registry import ESTIMATORS

        return dict(_declared_slots(tuple(ESTIMATORS.names())))
    except Exception:  # noqa: BLE001 -- colours never fail a figure
        return {}


def color_slot(label, declared: dict | None = None) -> int:
    """The `PALETTE` index of ``label``: its declared slot, else its home slot."""
    key = canonical_label(str(label))
    declared = declared_slots() if declared is None else declared
    return declared[key] if key in declared else home_slot(key)


def assign_slots(labels) -> dict:
    """Canonical label -> `PALETTE` index for ``labels`` (`color_slot` of each)."""
    declared = declared_slots()
    return {canonical_label(str(label)): color_slot(label, declared)
            for label in labels if isinstance(label, str) and label}


@dataclass
class Palette:
    """Estimator label -> colour (see the module docstring). A report builds one from all its
    labels; a label it was not built with gets the same colour it would have had."""

    colors: dict = field(default_factory=dict)

    @classmethod
    def from_labels(cls, labels) -> "Palette":
        return cls({label: to_rgb(PALETTE[slot]) for label, slot in assign_slots(labels).items()})

    def __call__(self, label) -> tuple:
        key = canonical_label(str(label))
        if key not in self.colors:
            self.colors[key] = to_rgb(PALETTE[color_slot(key)])
        return self.colors[key]

    def __contains__(self, label) -> bool:
        return canonical_label(str(label)) in self.colors

    def hex(self, label) -> str:
        r, g, b = self(label)
        return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def theme() -> None:
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.9)
    plt.rcParams.update({"axes.titlesize": 10.5, "axes.titleweight": "bold", "legend.fontsize": LEGEND_FONT_PT,
                         "legend.title_fontsize": 9, "svg.fonttype": "none", "figure.dpi": DPI,
                         "axes.formatter.use_mathtext": False,
                         # a fixed title position: matplotlib otherwise measures every axis to place titles
                         "axes.titley": 1.0, "axes.titlepad": 5.0})


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
    axis.set_minor_locator(NullLocator())  # the grid follows the labelled ticks; minor ticks would not show


# ---- layout -----------------------------------------------------------------------------


def text_width(text: str, points: float = LEGEND_FONT_PT) -> float:
    """Rough width in inches of ``text`` at ``points`` (average glyph ~0.6 em, generous)."""
    return len(str(text)) * points * 0.6 / 72.0


def legend_width(labels, title: str = "") -> float:
    """Inches a right-hand legend of ``labels`` needs (handle, gap and text)."""
    widest = max([text_width(lab) for lab in labels] + [text_width(title, 9)] + [0.5])
    return widest + 0.75


def grid(n: int, max_cols: int = 2, width: float = 3.9, height: float = 3.0):
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


def legend_layout(labels, width: float, title: str = "") -> tuple[int, float]:
    """(columns, height in inches) of a legend of ``labels`` below the panels of a figure
    ``width`` inches wide."""
    labels = list(labels)
    if not labels:
        return 1, 0.0
    column = max(text_width(lab) for lab in labels) + 0.7  # handle, gap, text, gap
    ncol = max(1, min(len(labels), int((width - 0.3) // column)))
    rows = math.ceil(len(labels) / ncol)
    return ncol, rows * 0.2 + (0.3 if title else 0.0) + 0.2


def finish(fig, *, left: float = 1.0, right: float = 0.25, top: float = 0.7, bottom: float = 0.6,
           wspace: float = 0.85, hspace: float = 0.85, legend: float = 0.0, title: str | None = None,
           heights=None, handles=None, legend_title: str = "") -> None:
    """Size ``fig`` so each panel keeps its axes area and the margins (inches) fit labels:
    ``left`` for y tick labels and y label, ``bottom`` for x ticks and label, ``top`` for the
    titles, gaps ``wspace`` / ``hspace`` between panels, ``legend`` inches at the right (a
    right-hand legend of `figure_legend`); ``handles``: a legend below the panels, in as many
    columns as fit. A figure wider than `MAX_WIDTH_IN` gets narrower panels (not smaller
    fonts), down to `MIN_PANEL_IN`."""
    rows, cols, width, height = fig._gradest_grid
    fixed = left + (cols - 1) * wspace + right + legend
    if fixed + cols * width > MAX_WIDTH_IN:
        width = max(MIN_PANEL_IN, (MAX_WIDTH_IN - fixed) / cols)
    row_heights = list(heights) if heights is not None else [height] * rows
    W = fixed + cols * width
    ncol, below = legend_layout([h.get_label() for h in handles or []], W, legend_title)
    bottom_total = bottom + below
    H = top + sum(row_heights) + (rows - 1) * hspace + bottom_total
    fig.set_size_inches(W, H)
    fig.subplots_adjust(left=left / W, right=(W - right - legend) / W, bottom=bottom_total / H, top=(H - top) / H,
                        wspace=wspace / width, hspace=hspace / (sum(row_heights) / rows))
    if title:
        fig.suptitle(title, y=1 - 0.12 / H, va="top", fontsize=12)
    if handles:
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, (below + 0.05) / H), ncol=ncol,
                   frameon=False, title=legend_title or None, alignment="left", columnspacing=1.2,
                   handlelength=2.6)
    fit_log_ticks(fig)


def _tick_points(which: str) -> float:
    from matplotlib.font_manager import FontProperties

    return FontProperties(size=plt.rcParams[f"{which}tick.labelsize"]).get_size_in_points()


def fit_log_ticks(fig) -> None:
    """On every log axis of ``fig``, the densest of 1-2-5 / 1-3 / decade / every-few-decades
    ticks whose labels fit the axis at its final size without overlapping (x: label widths,
    y: label heights), so a narrow panel never prints labels over each other."""
    W, H = fig.get_size_inches()
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        box = ax.get_position()
        for which, length, limits in (("x", box.width * W, ax.get_xlim), ("y", box.height * H, ax.get_ylim)):
            axis = ax.xaxis if which == "x" else ax.yaxis
            if axis.get_scale() != "log" or not isinstance(axis.get_major_locator(), LogLocator):
                continue  # a linear axis, or ticks placed on purpose (e.g. at the S values)
            lo, hi = sorted(limits())
            if not (lo > 0 and hi > lo):
                continue
            points = _tick_points(which)
            fitting, sparsest = None, None
            for subs in ((1.0, 2.0, 5.0), (1.0, 3.0), (1.0,), "decades"):
                if subs == "decades":
                    locator = LogLocator(base=10, numticks=max(2, int(length / (0.5 if which == "y" else 0.7))))
                else:
                    locator = LogLocator(base=10, subs=subs, numticks=50)
                ticks = [t for t in locator.tick_values(lo, hi) if lo <= t <= hi]
                if len(ticks) < 2:
                    continue
                if which == "x":
                    need = sum(text_width(tick_label(t), points) + 0.18 for t in ticks)
                else:
                    need = len(ticks) * points / 72 * 3.5  # about six labels on a 3-inch axis
                sparsest = ticks
                if need <= length:
                    fitting = ticks
                    break
            chosen = fitting or sparsest
            if chosen:
                axis.set_major_locator(FixedLocator(chosen))
                axis.set_major_formatter(FuncFormatter(lambda v, _: tick_label(v)))


def figure_legend(fig, handles, title: str = "", legend: float = 0.0) -> None:
    """Handles in a column right of the panels (in the ``legend`` inches `finish` reserved)."""
    W = fig.get_size_inches()[0]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1 - (legend - 0.1) / W, 0.5),
               frameon=False, title=title or None)


def subplots(rows: int, cols: int, width: float, heights, **kwargs) -> tuple:
    """Panels of ``width`` x ``heights[r]`` inches (axes areas), finalized by `finish`."""
    fig, axes = plt.subplots(rows, cols, squeeze=False, figsize=(width * cols, sum(heights)),
                             gridspec_kw={"height_ratios": list(heights)}, **kwargs)
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
