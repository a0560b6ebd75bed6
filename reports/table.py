"""The aggregated table a paper prints: each metric's mean over seeds with its 95% interval.

Which columns are metrics, and which way is better, is declared by the cell kinds
(`gradest.sweep.cell_kind.CellKind.table_metrics`, e.g. the gradient kind's ``mse`` and the
train kind's ``final_test_neg_elbo``, both "lower").

* `declared_metrics(kinds)`: ``{metric: (kind, "lower" | "higher")}`` of the registered kinds;
* `long_table(cells, metrics, kinds)`: one row per task x estimator label x S x backend x
  metric over the done cells of the metric's kind: ``mean`` over seeds, the 95% t-interval
  [``low``, ``high``] (``scipy.stats.t``, n − 1 degrees of freedom; NaN with one seed) and
  ``seeds``, then ``kind``, ``better``, ``evaluations`` (the f-evaluations of one estimate,
  where the cells record them), ``best`` and ``tied`` (`mark_best`);
* `mark_best`: per task x metric, among the rows of the same S and backend (estimates that
  average different numbers of samples are not compared), the best mean, and the entries
  whose interval overlaps the best's (ties);
* `render(long, format)`: ``csv`` (the long form, `TABLE_COLUMNS` first); ``markdown``,
  ``latex`` and ``html``: the wide form a paper takes (rows: estimator and S, and backend
  where there are several; columns: metric per task), through pandas' ``Styler``
  (``to_latex(hrules=True)``: booktabs rules; ``to_html``), mean ± half-width, the best in bold,
  ties marked †, with a caption line that says so (`CAPTION`).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gradest.statistics import t_interval

__all__ = ["TABLE_COLUMNS", "FORMATS", "declared_metrics", "default_metrics", "long_table", "mark_best",
           "wide_table", "caption", "render"]

#: the first columns of the long form (the CSV), in order
TABLE_COLUMNS = ("task", "estimator", "num_samples", "backend", "metric", "mean", "low", "high", "seeds")
FORMATS = ("markdown", "csv", "latex", "html")
#: the mark of an entry tied with the best, per format
TIE_MARK = {"markdown": " †", "html": " †", "latex": r"$^\dagger$"}
_ROW_KEYS = ["task", "estimator", "num_samples", "backend"]


def declared_metrics(kinds=None) -> dict:
    """``{metric: (kind, better)}`` declared by the registered kinds (``kinds``: those only),
    in the kinds' order; a column two kinds declare belongs to the first."""
    from gradest.sweep.cell_kind import get_cell_kind, kind_names

    out: dict = {}
    for name in kind_names():
        if kinds is not None and name not in kinds:
            continue
        for metric, better in (getattr(get_cell_kind(name), "table_metrics", None) or {}).items():
            out.setdefault(metric, (name, better))
    return out


def _done(cells: pd.DataFrame, kind: str) -> pd.DataFrame:
    if cells is None or cells.empty or "kind" not in cells.columns:
        return pd.DataFrame()
    frame = cells[cells["kind"] == kind]
    return frame[frame["status"] == "done"] if "status" in frame.columns else frame


def default_metrics(cells: pd.DataFrame, kinds=None) -> list[str]:
    """The declared metrics with at least one finite value in the done cells of their kind."""
    out = []
    for metric, (kind, _) in declared_metrics(kinds).items():
        frame = _done(cells, kind)
        if metric in frame.columns and np.isfinite(pd.to_numeric(frame[metric], errors="coerce")).any():
            out.append(metric)
    return out


def long_table(cells: pd.DataFrame, metrics=None, kinds=None) -> pd.DataFrame:
    """The long form (module docstring); ``metrics``: declared metric names (default:
    `default_metrics`), in that order."""
    declared = declared_metrics(kinds)
    metrics = default_metrics(cells, kinds) if metrics is None else [m for m in metrics if m in declared]
    rows = []
    for metric in metrics:
        kind, better = declared[metric]
        frame = _done(cells, kind)
        if metric not in frame.columns:
            continue
        frame = frame.assign(_value=pd.to_numeric(frame[metric], errors="coerce"))
        frame = frame[np.isfinite(frame["_value"])]
        for (task, estimator, S, backend), part in frame.groupby(_ROW_KEYS, sort=True, dropna=False):
            values = part["_value"].to_numpy(dtype=float)  # [seeds]
            _, low, high = t_interval(values)
            rows.append({"task": task, "estimator": estimator, "num_samples": S, "backend": backend,
                         "metric": metric, "mean": float(values.mean()), "low": low, "high": high,
                         "seeds": int(part["seed"].nunique()) if "seed" in part.columns else len(values),
                         "kind": kind, "better": better,
                         "evaluations": pd.to_numeric(part["evaluations"], errors="coerce").mean()
                         if "evaluations" in part.columns else math.nan})
    return mark_best(pd.DataFrame(rows, columns=[*TABLE_COLUMNS, "kind", "better", "evaluations"]))


def _compared(long: pd.DataFrame):
    """The groups of rows whose best is marked: per task x metric x backend, and within it per S
    where an estimator appears at several S (an S sweep, where the largest S would always win);
    where each estimator runs at one S (a paper's table), the rows of every S together."""
    for _, part in long.groupby(["task", "metric", "backend"], dropna=False):
        if part["estimator"].duplicated().any():
            yield from (sub for _, sub in part.groupby("num_samples", dropna=False))
        else:
            yield part


def mark_best(long: pd.DataFrame) -> pd.DataFrame:
    """``long`` with ``best`` (the best mean of its group, `_compared`; equal means are all
    best) and ``tied`` (not best, and its interval overlaps the best's)."""
    long = long.copy()
    long["best"] = False
    long["tied"] = False
    for part in _compared(long):
        lower = part["better"].iloc[0] != "higher"
        top = part["mean"].min() if lower else part["mean"].max()
        best = part["mean"] == top
        long.loc[part.index, "best"] = best
        low = part.loc[best, "low"].min()
        high = part.loc[best, "high"].max()
        if np.isfinite(low) and np.isfinite(high):
            overlap = (part["low"] <= high) & (part["high"] >= low)
            long.loc[part.index, "tied"] = overlap & ~best
    return long


def _number(value: float) -> str:
    return "0" if value == 0 else f"{value:.3g}"


def _entry(row, form: str) -> str:
    text = _number(row["mean"])
    if np.isfinite(row["low"]) and np.isfinite(row["high"]):
        pm = r" $\pm$ " if form == "latex" else " ± "
        text += pm + _number((row["high"] - row["low"]) / 2)
    if form == "markdown" and row["best"]:
        text = f"**{text}**"
    return text + (TIE_MARK[form] if row["tied"] else "")


def wide_table(long: pd.DataFrame, form: str = "markdown") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(entries, best): the wide form's text per entry in ``form`` (rows: estimator, S, its f-evaluations and
    backend where there are several; columns: (task, metric)), and a frame of the same shape,
    True where the entry is the best."""
    frame = long.assign(entry=[_entry(r, form) for _, r in long.iterrows()]).rename(columns={"num_samples": "S"})
    rows = ["estimator", "S"]
    evaluations = pd.to_numeric(frame["evaluations"], errors="coerce") if "evaluations" in frame else None
    if evaluations is not None and evaluations.notna().any():
        # what one estimate costs beside S: equal S is not equal cost (DisARM evaluates f twice per pair)
        frame["f-evals"] = [str(int(round(e))) if np.isfinite(e) else "–" for e in evaluations]
        rows.append("f-evals")
    if long["backend"].nunique() > 1:
        rows.append("backend")
    order = list(dict.fromkeys(long["metric"]))
    entries = frame.pivot_table(index=rows, columns=["task", "metric"], values="entry", aggfunc="first")
    best = frame.pivot_table(index=rows, columns=["task", "metric"], values="best", aggfunc="max")
    columns = sorted(entries.columns, key=lambda c: (str(c[0]), order.index(c[1])))
    entries = entries.reindex(columns=pd.MultiIndex.from_tuples(columns, names=["task", "metric"]))
    best = best.reindex(index=entries.index, columns=entries.columns)
    return entries.fillna(""), best.fillna(False).astype(bool)


def caption(long: pd.DataFrame) -> str:
    """The caption line: what an entry is, the bold and the † marks."""
    seeds = sorted({int(s) for s in long["seeds"]}) if len(long) else []
    n = f"{seeds[0]}" if len(seeds) == 1 else (f"{seeds[0]} to {seeds[-1]}" if seeds else "0")
    higher = sorted({m for m, b in zip(long["metric"], long["better"]) if b == "higher"}) if len(long) else []
    direction = ("lower is better" + (f", except {', '.join(higher)} (higher is better)" if higher else ""))
    return (f"Mean over {n} seeds ± half-width of its 95% t-interval. Bold: the best of its column ({direction}; "
            f"among the rows of one S where an estimator runs at several S, and of one backend); †: tied with the best (the two 95% intervals overlap).")


def render(long: pd.DataFrame, form: str = "markdown") -> str:
    """The table in ``form`` (`FORMATS`) as text."""
    if form not in FORMATS:
        raise ValueError(f"unknown table format {form!r}; formats: {', '.join(FORMATS)}")
    if form == "csv":
        return long.to_csv(index=False)
    if form == "markdown":
        from gradest.reports.html import markdown_table

        entries, _ = wide_table(long, form)
        flat = entries.copy()
        flat.columns = [f"{task}: {metric}" for task, metric in entries.columns]
        return f"{markdown_table(flat.reset_index())}\n{caption(long)}\n"
    entries, best = wide_table(long, form)
    bold = np.where(best.to_numpy(), "font-weight: bold;", "")
    styler = entries.style.apply(lambda _: bold, axis=None)
    if form == "html":
        styler = styler.format(escape="html").format_index(escape="html", axis=0).format_index(escape="html", axis=1)
        return styler.set_caption(caption(long)).set_table_attributes("class='paper-table'").to_html()
    styler = styler.format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
    text = caption(long).replace("%", r"\%").replace("±", r"$\pm$").replace("†", r"$^\dagger$")
    # sparse_index=False: each row names its estimator, so the table needs booktabs alone (no multirow)
    return styler.to_latex(hrules=True, convert_css=True, caption=text, multicol_align="c", sparse_index=False)
