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
    plus the τ = 1 Gumbel-softmax labels the temperature figure colours by."""
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


def build_report(paths: Iterable, out) -> Path:
    """Write the report of the results in ``paths`` into folder ``out``; the path of its index.html."""
    from gradest.reports import figures as FG
    from gradest.reports import frames as F
    from gradest.reports.html import write_pages
    from gradest.reports.load import load_results
    from gradest.reports.style import Palette, plt, theme

    if isinstance(paths, (str, Path)):
        paths = [paths]
    results = load_results(paths)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    theme()
    palette = Palette.from_labels(estimator_labels(results))
    cells, history, asv = results.cells, results.history, results.asv
    figures, problems = [], []
    makers = [("variance_vs_samples", lambda: FG.variance_vs_samples(cells, palette, out)),
              ("bias_variance_mse", lambda: FG.bias_variance_mse(cells, palette, out)),
              ("efficiency_frontier", lambda: FG.efficiency_frontier(cells, palette, out)),
              ("training_curves", lambda: FG.training_curves(history, palette, out)),
              ("temperature_sweep", lambda: FG.temperature_sweep(cells, palette, out)),
              ("lasso_delta_sweep", lambda: FG.lasso_delta_sweep(cells, history, palette, out)),
              ("asv", lambda: FG.asv_history(asv, palette, out) or FG.asv_summary(asv, palette, out))]
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
