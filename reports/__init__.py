"""``gradest.reports``: results -> tidy DataFrames -> seaborn figures -> HTML/Markdown report.

The reports read result files only (``gradest run`` folders and asv results); they never call
the harness (they read option defaults and estimators' claims from the registry). `build_report(paths,
out)` loads everything, puts estimator labels in canonical form (only options that differ
from the defaults), builds one estimator palette from all labels (so an estimator has the
same colour in every figure, and the colour depends on its label, not on the others), ranks
the estimators per task (the leaderboard, from a run's gradient cells and from asv's track_
statistics alike), draws each figure for which there is data and writes ``index.html`` and
``summary.md``; it returns the path of ``index.html``.

The report names no cell kind: it asks every registered kind
(`gradest.sweep.cell_kind.kind_names`) for its figures, the labels its figures colour by, the
gradient statistics the leaderboard ranks and the columns it adds to the summary table.

Modules: `load` (results folders), `asv_results` (asv's JSON, its statistics as a tidy frame),
`leaderboard` (the rankings and the notes beside them), `tables` (the summary table, the cell
counts), `figures` (the two figures of the leaderboard's statistics, a run's or asv's),
`asv_figures` (asv's other figures), `published` (the "Published vs measured" section of
presets' runs, from their manifests), `table` (the aggregated table of `gradest table`, the
report's "Table"), `verdicts` (paired comparisons by seed, the "Paired comparisons" and the
presets' orderings), `html` (the pages). The drawing toolkit and the rules
shared with the kinds (labels, zero, backend order) are `gradest.plotting`. docs/report.md
describes the page.
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
    """Every estimator label the report's figures colour by, in canonical form: those each
    registered cell kind names for its rows of the cells and histories
    (`gradest.sweep.cell_kind.CellKind.palette_labels`; rows of a kind that is not registered
    give their ``estimator`` column), and asv's ``estimator`` parameter."""
    from gradest.plotting.frames import canonical_label
    from gradest.sweep.cell_kind import CellKind, KINDS, get_cell_kind

    labels: set[str] = set()
    for frame in (results.cells, results.history):
        if frame is None or "estimator" not in frame.columns:
            continue
        if "kind" not in frame.columns:
            labels.update(CellKind().palette_labels(frame))
            continue
        for kind, rows in frame.groupby("kind", dropna=False):
            known = isinstance(kind, str) and kind in KINDS.names()
            labels.update((get_cell_kind(kind) if known else CellKind()).palette_labels(rows))
    if results.asv is not None and "param:estimator" in results.asv.columns:
        labels.update(str(v) for v in results.asv["param:estimator"].dropna().unique())
    return sorted({canonical_label(label) for label in labels})


def canonical_results(results):
    """``results`` with every estimator label (and task label) in canonical form."""
    from gradest.plotting.frames import canonical_frame
    from gradest.reports.load import Results

    cells = canonical_frame(canonical_frame(results.cells), ("task",), kind="task")
    history = canonical_frame(canonical_frame(results.history), ("task",), kind="task")
    asv = canonical_frame(canonical_frame(results.asv, ("param:estimator",)), ("param:task",), kind="task")
    return Results(cells, history, asv, results.sources, results.manifests, results.problems)


def kind_frames(cells):
    """(estimator statistics, summary columns) of ``cells``: the frames every registered cell
    kind derives for the leaderboard and the summary table
    (`gradest.sweep.cell_kind.CellKind.estimator_statistics` / ``summary_columns``), each
    concatenated over the kinds; and the problems of kinds that could not derive theirs."""
    import pandas as pd

    from gradest.sweep.cell_kind import get_cell_kind, kind_names

    stats, columns, problems = [], [], []
    for name in kind_names():
        kind = get_cell_kind(name)
        try:
            stats.append(kind.estimator_statistics(cells))
            columns.append(kind.summary_columns(cells))
        except Exception as err:  # noqa: BLE001 -- one kind's problem must not lose the report
            problems.append(f"the tables of {name} could not be made: {type(err).__name__}: {err}")
    stats = [s for s in stats if s is not None and not s.empty]
    return (pd.concat(stats, ignore_index=True) if stats else pd.DataFrame(),
            [c for c in columns if c is not None and not c.empty], problems)


def build_report(paths: Iterable, out, current_only: bool = True) -> Path:
    """Write the report of the results in ``paths`` into folder ``out``; the path of its index.html.

    ``current_only``: the cells of each results folder's last run (``current_run``), else
    every cell the folders hold. Figures: the statistics figures of the leaderboard's frame
    (`gradest.reports.figures`), those of every registered cell kind in its order
    (`gradest.sweep.cell_kind.CellKind.figures`), then asv's (`gradest.reports.asv_figures`)."""
    from gradest.plotting.style import Palette, plt, theme
    from gradest.reports import asv_figures as AF
    from gradest.reports import figures as FG
    from gradest.reports import leaderboard as L
    from gradest.reports import tables as T
    from gradest.reports.html import write_pages
    from gradest.reports.load import load_results
    from gradest.sweep.cell_kind import get_cell_kind, kind_names

    if isinstance(paths, (str, Path)):
        paths = [paths]
    results = canonical_results(load_results(paths, current_only=current_only))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    theme()
    palette = Palette.from_labels(estimator_labels(results))
    cells, history, asv = results.cells, results.history, results.asv
    stats, summary_columns, problems = kind_frames(cells)
    figures, problems = [], list(results.problems) + problems
    makers = [("bias_variance_mse", lambda: FG.bias_variance_mse(stats, palette, out)),
              ("efficiency_frontier", lambda: FG.efficiency_frontier(stats, palette, out))]
    for name in kind_names():
        try:
            made = get_cell_kind(name).figures(cells, history, palette, out) or []
        except Exception as err:  # noqa: BLE001 -- one kind's problem must not lose the report
            problems.append(f"figures of {name} could not be drawn: {type(err).__name__}: {err}")
            continue
        for item in made:  # a Figure, or (figure name, zero-argument callable making it)
            makers.append(item if isinstance(item, tuple) else (item.name, lambda fig=item: fig))
    makers += [("asv_statistics", lambda: AF.asv_statistics(asv, palette, out)),
               ("asv_statistics_history", lambda: AF.asv_statistics_history(asv, palette, out)),
               ("asv_history", lambda: AF.asv_history(asv, palette, out)),
               ("asv_summary", lambda: AF.asv_summary(asv, palette, out))]
    for name, make in makers:
        try:
            made = make()
        except Exception as err:  # noqa: BLE001 -- one figure's problem must not lose the report
            problems.append(f"figure {name} could not be drawn: {type(err).__name__}: {err}")
            plt.close("all")
            continue
        figures.extend(f for f in (made if isinstance(made, list) else [made]) if f is not None)
    boards = []
    for title, source, make in (("From the gradest run results", "run", lambda: L.leaderboard(stats)),
                                ("From asv's track_ statistics", "asv", lambda: asv_board(asv))):
        try:
            boards.append((title if source == "run" else asv_title(asv), source, make()))
        except Exception as err:  # noqa: BLE001 -- the leaderboard's problem must not lose the report
            problems.append(f"the leaderboard of the {source} results could not be made: {type(err).__name__}: {err}")
    asv_missing = asv_missing_table(asv)
    table = paper_table(cells, problems)
    for message in problems:
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return write_pages(out, figures=figures, summary=T.summary_table(stats, summary_columns),
                       counts=T.status_counts(cells), skipped=T.not_done(cells, "skipped"),
                       failed=T.not_done(cells, "failed"), asv_missing=asv_missing, sources=results.sources,
                       manifests=results.manifests, problems=problems, boards=boards, palette=palette, cells=cells,
                       table=table)


def paper_table(cells, problems: list) -> dict | None:
    """The "Table" and "Paired comparisons" sections' content (`gradest.reports.table`,
    `gradest.reports.verdicts.against_best`): ``html``, ``markdown`` (the wide table) and
    ``paired`` (a frame); None without a metric to show (a problem is added to ``problems``
    when it could not be made)."""
    from gradest.reports.table import long_table, render
    from gradest.reports.verdicts import against_best

    try:
        long = long_table(cells)
        if long.empty:
            return None
        return {"html": render(long, "html"), "markdown": render(long, "markdown"), "paired": against_best(cells, long)}
    except Exception as err:  # noqa: BLE001 -- the table's problem must not lose the report
        problems.append(f"the table could not be made: {type(err).__name__}: {err}")
        return None


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
