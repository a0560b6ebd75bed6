"""``gradest.reports``: results -> tidy DataFrames -> seaborn figures -> HTML/Markdown report.

The reports read result files only (``gradest run`` folders and asv results); they never call
the harness (they read option defaults and estimators' claims from the registry). `build_report(paths,
out)` loads everything, puts estimator labels in canonical form (only options that differ
from the defaults), builds one estimator palette from all labels (so an estimator has the
same colour in every figure, and the colour depends on its label, not on the others), ranks
the estimators per task (the leaderboard, from a run's gradient cells and from asv's track_
statistics alike), draws each figure for which there is data and writes ``index.html`` and
``summary.md``; it returns the path of ``index.html``.

Modules: `load` (results folders), `asv_results` (asv's JSON, its statistics as a tidy frame),
`frames` (tidy frames, canonical labels, the zero rule, the summary table), `leaderboard`,
`published` (the "Published vs measured" section of presets' runs, from their manifests),
`style` (palette, layout, saving), `figures`, `html`. docs/report.md describes the page.
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
    from gradest.reports.frames import canonical_label

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
    return sorted({canonical_label(label) for label in labels})


def canonical_results(results):
    """``results`` with every estimator label (and task label) in canonical form."""
    from gradest.reports.frames import canonical_frame
    from gradest.reports.load import Results

    cells = canonical_frame(canonical_frame(results.cells), ("task",), kind="task")
    history = canonical_frame(canonical_frame(results.history), ("task",), kind="task")
    asv = canonical_frame(canonical_frame(results.asv, ("param:estimator",)), ("param:task",), kind="task")
    return Results(cells, history, asv, results.sources, results.manifests, results.problems)


def build_report(paths: Iterable, out, current_only: bool = True) -> Path:
    """Write the report of the results in ``paths`` into folder ``out``; the path of its index.html.

    ``current_only``: the cells of each results folder's last run (``current_run``), else
    every cell the folders hold. Figures: those of every registered cell kind
    (`gradest.sweep.kinds.CellKind.figures`), then asv's."""
    from gradest.reports import figures as FG
    from gradest.reports import frames as F
    from gradest.reports import leaderboard as L
    from gradest.reports.html import write_pages
    from gradest.reports.load import load_results
    from gradest.reports.style import Palette, plt, theme
    from gradest.sweep.kinds import get_cell_kind, kind_names

    if isinstance(paths, (str, Path)):
        paths = [paths]
    results = canonical_results(load_results(paths, current_only=current_only))
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
    makers += [("asv_statistics", lambda: FG.asv_statistics(asv, palette, out)),
               ("asv_statistics_history", lambda: FG.asv_statistics_history(asv, palette, out)),
               ("asv_history", lambda: FG.asv_history(asv, palette, out)),
               ("asv_summary", lambda: FG.asv_summary(asv, palette, out))]
    for name, make in makers:
        try:
            made = make()
        except Exception as err:  # noqa: BLE001 -- one figure's problem must not lose the report
            problems.append(f"figure {name} could not be drawn: {type(err).__name__}: {err}")
            plt.close("all")
            continue
        figures.extend(f for f in (made if isinstance(made, list) else [made]) if f is not None)
    boards = []
    for title, source, make in (("From the gradest run results", "run", lambda: L.leaderboard(F.gradient_stats(cells))),
                                ("From asv's track_ statistics", "asv", lambda: asv_board(asv))):
        try:
            boards.append((title if source == "run" else asv_title(asv), source, make()))
        except Exception as err:  # noqa: BLE001 -- the leaderboard's problem must not lose the report
            problems.append(f"the leaderboard of the {source} results could not be made: {type(err).__name__}: {err}")
    asv_missing = asv_missing_table(asv)
    for message in problems:
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return write_pages(out, figures=figures, summary=F.summary_table(cells), counts=F.status_counts(cells),
                       skipped=F.not_done(cells, "skipped"), failed=F.not_done(cells, "failed"),
                       asv_missing=asv_missing, sources=results.sources, manifests=results.manifests,
                       problems=problems, boards=boards, palette=palette, cells=cells)


def asv_board(asv):
    from gradest.reports.asv_results import track_stats
    from gradest.reports.leaderboard import leaderboard

    return leaderboard(track_stats(asv, latest=True))


def asv_title(asv) -> str:
    from gradest.reports.asv_results import track_stats

    stats = track_stats(asv, latest=True)
    if stats.empty:
        return "From asv's track_ statistics"
    where = ", ".join(f"commit {str(c)[:8]} on {m}" for c, m in
                      sorted({(c, m) for c, m in zip(stats["commit"], stats["machine"])}))
    return f"From asv's track_ statistics ({where})"


def asv_missing_table(asv):
    """asv's failed and skipped measurements grouped by likely reason
    (`asv_results.skip_summary`)."""
    from gradest.reports.asv_results import skip_summary

    if asv is None or asv.empty or "status" not in asv.columns:
        return None
    return skip_summary(asv)
