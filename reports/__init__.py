"""``gradest.reports``: results -> tidy DataFrames -> seaborn figures -> HTML/Markdown report.

The reports read result files only (``gradest run`` folders and asv results); they never call
the harness. `build_report(paths, out)` loads everything, builds one estimator palette from
all estimator labels (so an estimator has the same colour in every figure), draws each figure
for which there is data and writes ``index.html`` and ``summary.md``; it returns the path of
``index.html``.

Modules: `load` (results folders), `asv_results` (asv's JSON), `frames` (tidy frames and the
summary table), `style` (palette, saving), `figures`, `html`.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable

__all__ = ["build_report", "load_results", "Results"]


def __getattr__(name):
    if name in ("load_results", "Results"):
        from gradest.reports import load

        return getattr(load, name)
    raise AttributeError(f"module 'gradest.reports' has no attribute {name!r}")


def estimator_labels(results) -> list[str]:
    """Every estimator label of the results: cells, histories and asv's ``estimator`` parameter,
    plus the τ = 1 Gumbel-softmax labels the temperature figure colours by (its τ variants are
    one colour per hard/soft form, not one per τ)."""
    labels: set[str] = set()
    for frame in (results.cells, results.history):
        if frame is not None and "estimator" in frame.columns:
            kinds = frame["kind"] if "kind" in frame.columns else None
            col = frame["estimator"] if kinds is None else frame.loc[kinds != "temperature", "estimator"]
            labels.update(str(v) for v in col.dropna().unique())
    cells = results.cells
    if cells is not None and "kind" in cells.columns and (cells["kind"] == "temperature").any():
        labels.update({"gumbel_softmax[hard=False,temperature=1.0]", "gumbel_softmax[hard=True,temperature=1.0]"})
    if results.asv is not None and "param:estimator" in results.asv.columns:
        labels.update(str(v) for v in results.asv["param:estimator"].dropna().unique())
    return sorted(labels)


def build_report(paths: Iterable, out, current_only: bool = True) -> Path:
    """Write the report of the results in ``paths`` into folder ``out``; the path of its index.html.

    ``current_only``: the cells of each results folder's last run (``current_run``), else
    every cell the folders hold. Figures: those of every registered cell kind
    (`gradest.sweep.kinds.CellKind.figures`), then asv's."""
    from gradest.reports import figures as FG
    from gradest.reports import frames as F
    from gradest.reports.html import write_pages
    from gradest.reports.load import load_results
    from gradest.reports.style import Palette, plt, theme
    from gradest.sweep.kinds import get_cell_kind, kind_names

    if isinstance(paths, (str, Path)):
        paths = [paths]
    results = load_results(paths, current_only=current_only)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    theme()
    palette = Palette.from_labels(estimator_labels(results))
    cells, history, asv = results.cells, results.history, results.asv
    figures, problems = [], list(results.problems)
    makers = []
    for name in kind_names():
        try:
            made = get_cell_kind(name).figures(cells, history, palette, out) or []
        except Exception as err:  # noqa: BLE001 -- one kind's problem must not lose the report
            problems.append(f"figures of {name} could not be drawn: {type(err).__name__}: {err}")
            continue
        for item in made:  # a Figure, or (figure name, zero-argument callable making it)
            makers.append(item if isinstance(item, tuple) else (item.name, lambda fig=item: fig))
    makers.append(("asv", lambda: FG.asv_history(asv, palette, out) or FG.asv_summary(asv, palette, out)))
    for name, make in makers:
        try:
            fig = make()
        except Exception as err:  # noqa: BLE001 -- one figure's problem must not lose the report
            problems.append(f"figure {name} could not be drawn: {type(err).__name__}: {err}")
            plt.close("all")
            continue
        if fig is not None:
            figures.append(fig)
    asv_missing = asv_missing_table(asv)
    for message in problems:
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return write_pages(out, figures=figures, summary=F.summary_table(cells), counts=F.status_counts(cells),
                       skipped=F.not_done(cells, "skipped"), failed=F.not_done(cells, "failed"),
                       asv_missing=asv_missing, sources=results.sources, manifests=results.manifests,
                       problems=problems)


def asv_missing_table(asv):
    if asv is None or asv.empty or "status" not in asv.columns:
        return None
    cols = [c for c in ("benchmark", "params", "status", "commit", "machine") if c in asv.columns]
    return asv[asv["status"] != "ok"][cols]
