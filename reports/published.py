"""The report's "Published vs measured" section, for results folders that ran a preset.

It reads only the results folder: the preset's record in ``manifest.json`` (key ``"preset"``,
written by ``gradest run --preset``; see `gradest.presets.preset_record`) — citation, setting,
data used, the published values with their table or figure, the orderings the paper states,
and which cell key measures which task and estimator — and the cells' rows.

* `measured(record, cells, column)`: per (task, estimator) the mean over seeds (and backends)
  of a column and its 95% t-interval;
* `published_table(record, cells)`: each published value beside ours, in the paper's metric
  (ours × ``sign``);
* `check_orderings(record, cells)`: for each ordering "a < b", judged on the differences a − b
  of the cells paired by backend and seed (`gradest.reports.verdicts`: same seed, same
  initialization and noise): whether our mean difference has the claimed sign (``holds``: yes /
  no / not measured), whether its 95% t-interval excludes 0 (``separated``), the paired t test's
  and the Wilcoxon signed-rank test's p-values and the verdict.
"""
from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

from gradest.reports.verdicts import TESTS
from gradest.statistics import t_interval

__all__ = ["preset_records", "measured", "published_table", "check_orderings", "section_html",
           "section_markdown"]


def preset_records(manifests) -> list[dict]:
    """The preset records of the results folders' manifests (with their ``source``)."""
    out = []
    for manifest in manifests or []:
        record = manifest.get("preset")
        if isinstance(record, dict) and record.get("name"):
            out.append({**record, "source": manifest.get("source", "")})
    return out


def _index(record: dict) -> pd.DataFrame:
    return pd.DataFrame(record.get("cells") or [], columns=["key", "task", "estimator", "backend", "seed"])


def measured(record: dict, cells: pd.DataFrame, column: str) -> pd.DataFrame:
    """Columns task, estimator, mean, low, high, n: ``column`` over the record's done cells."""
    columns = ["task", "estimator", "mean", "low", "high", "n"]
    index = _index(record)
    if cells is None or cells.empty or index.empty or column not in cells.columns or "key" not in cells.columns:
        return pd.DataFrame(columns=columns)
    done = cells[cells["status"] == "done"] if "status" in cells.columns else cells
    frame = index.merge(done[["key", column]], on="key", how="inner")
    frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame[np.isfinite(frame[column])]
    rows = []
    for (task, estimator), part in frame.groupby(["task", "estimator"], sort=False):
        values = part[column].to_numpy(dtype=float)
        mean, low, high = t_interval(values)
        rows.append({"task": task, "estimator": estimator, "mean": mean, "low": low, "high": high, "n": len(values)})
    return pd.DataFrame(rows, columns=columns)


def _lookup(table: pd.DataFrame, task: str, estimator) -> dict | None:
    if estimator is None or table.empty:
        return None
    hit = table[(table["task"] == task) & (table["estimator"] == estimator)]
    return None if hit.empty else hit.iloc[0].to_dict()


def published_table(record: dict, cells: pd.DataFrame) -> pd.DataFrame:
    """One row per published value: the paper's number, its source and metric, ours (mean and
    95% interval over seeds, in the paper's metric) and the seeds measured."""
    rows, tables = [], {}
    for p in record.get("published") or []:
        column = p["measured"]
        if column not in tables:
            tables[column] = measured(record, cells, column)
        ours = _lookup(tables[column], p["task"], p.get("estimator"))
        sign = float(p.get("sign", 1.0))
        row = {"task": p["task"], "paper": p["paper_name"], "estimator": p.get("estimator") or "(not in the zoo)",
               "published": _as_printed(p["value"]), "metric": p["metric"], "source": p["source"]}
        if ours is None:
            row.update(ours=math.nan, interval="", seeds=0,
                       note="no estimator here" if p.get("estimator") is None else "not measured")
        else:
            values = sorted(sign * v for v in (ours["low"], ours["high"]))
            row.update(ours=sign * ours["mean"],
                       interval="" if math.isnan(values[0]) else f"[{values[0]:.4g}, {values[1]:.4g}]",
                       seeds=int(ours["n"]), note=f"ours: {column}" + (" x -1" if sign < 0 else ""))
        rows.append(row)
    return pd.DataFrame(rows, columns=["task", "paper", "estimator", "published", "ours", "interval", "seeds",
                                       "metric", "source", "note"])


def _paired_frame(record: dict, cells: pd.DataFrame, column: str) -> pd.DataFrame:
    """The record's done cells with ``column``: task, estimator, backend, seed and the value."""
    index = _index(record)
    if cells is None or cells.empty or index.empty or column not in cells.columns or "key" not in cells.columns:
        return pd.DataFrame(columns=[*index.columns, column])
    done = cells[cells["status"] == "done"] if "status" in cells.columns else cells
    return index.merge(done[["key", column]], on="key", how="inner")


def check_orderings(record: dict, cells: pd.DataFrame) -> pd.DataFrame:
    """One row per ordering "better < worse in column": our two means, and the verdict on the
    differences better − worse paired by backend and seed (`gradest.reports.verdicts.compare`):
    ``holds`` (yes / no / not measured), ``separated`` (the 95% interval of the difference
    excludes 0: yes / no), the mean difference with its interval, the pairs, the p-values of the
    paired t test and of the Wilcoxon signed-rank test, and the ``verdict``."""
    from gradest.reports.verdicts import compare

    rows, tables, frames = [], {}, {}
    for o in record.get("orderings") or []:
        column = o["measured"]
        if column not in tables:
            tables[column] = measured(record, cells, column)
            frames[column] = _paired_frame(record, cells, column)
        a, b = _lookup(tables[column], o["task"], o["better"]), _lookup(tables[column], o["task"], o["worse"])
        row = {"task": o["task"], "claim": o["claim"], "ordering": f"{o['better']} < {o['worse']}",
               "column": column, "better": "", "worse": "", "holds": "not measured", "separated": "",
               "difference": "", "pairs": 0, "t test p": "", "Wilcoxon p": "", "verdict": "not measured",
               "source": o["source"]}
        if a is not None and b is not None:
            frame = frames[column]
            paired = compare(frame[frame["task"] == o["task"]], o["better"], o["worse"], column, "lower")
            # 5 significant digits: the toy's losses differ in the fourth
            row.update(better=f"{a['mean']:.5g}", worse=f"{b['mean']:.5g}", pairs=paired["pairs"],
                       verdict=paired["verdict"], **_paired_text(paired))
            if paired["pairs"]:
                row["holds"] = "yes" if paired["verdict"].startswith("holds") else "no"
                if not math.isnan(paired["low"]):
                    row["separated"] = "yes" if paired["verdict"].endswith(", separated") else "no"
        rows.append(row)
    return pd.DataFrame(rows, columns=["task", "claim", "ordering", "column", "better", "worse", "holds",
                                       "separated", "difference", "pairs", "t test p", "Wilcoxon p", "verdict",
                                       "source"])


def _paired_text(paired: dict) -> dict:
    """The difference with its interval and the two p-values of a `compare` answer, as text."""
    from gradest.reports.verdicts import format_p

    difference = "" if math.isnan(paired["difference"]) else f"{paired['difference']:.4g}"
    if difference and not math.isnan(paired["low"]):
        difference += f" [{paired['low']:.4g}, {paired['high']:.4g}]"
    return {"difference": difference, "t test p": format_p(paired["t_p"]), "Wilcoxon p": format_p(paired["wilcoxon_p"])}


_EXPLAIN = ("Ours: mean over seeds (and backends) of the cells of this run, with its 95% t-interval; the paper's "
            "numbers were measured in the paper's setting (above), which differs from ours in data, budget and "
            "details: compare orderings before levels. An ordering is judged on the differences first − second of "
            "cells paired by backend and seed (same seed: same initialization and noise): it holds when the mean "
            "difference is below 0; separated: the difference's 95% t-interval excludes 0. Tests: " + TESTS + ".")


def section_html(records: list, cells: pd.DataFrame, table_html) -> str:
    """The section's HTML (``table_html`` renders a frame)."""
    if not records:
        return ""
    parts = ["<h2 id='published'>Published vs measured</h2>", f"<p class='key'>{html.escape(_EXPLAIN)}</p>"]
    for record in records:
        parts.append(f"<h3>Preset {html.escape(record['name'])}: {html.escape(record.get('title', ''))}</h3>")
        parts.append("<ul class='meta'>"
                     f"<li>Paper: {html.escape(record.get('citation', ''))}</li>"
                     f"<li>The paper's setting: {html.escape(record.get('setting', ''))}</li>"
                     f"<li>Here: budget {html.escape(record.get('budget', ''))} "
                     f"({html.escape(_budget_text(record))}); data: {html.escape(record.get('data', ''))}; "
                     f"results {html.escape(record.get('source', ''))}</li>"
                     + (f"<li>Not transcribed / notes: {html.escape(record['notes'])}</li>" if record.get("notes")
                        else "") + "</ul>")
        table = published_table(record, cells)
        parts.append("<h4>The paper's numbers beside ours</h4>")
        parts.append(table_html(table) if not table.empty else
                     "<p><em>No published value is transcribed for this preset (see the notes).</em></p>")
        orderings = check_orderings(record, cells)
        parts.append("<h4>The paper's orderings, here</h4>")
        parts.append(table_html(orderings) if not orderings.empty else "<p><em>No ordering stated.</em></p>")
    return "\n".join(parts)


def section_markdown(records: list, cells: pd.DataFrame, table_markdown) -> list[str]:
    if not records:
        return []
    md = ["## Published vs measured", "", _EXPLAIN, ""]
    for record in records:
        md += [f"### Preset {record['name']}: {record.get('title', '')}", "",
               f"- Paper: {record.get('citation', '')}", f"- The paper's setting: {record.get('setting', '')}",
               f"- Here: budget {record.get('budget', '')} ({_budget_text(record)}); data: {record.get('data', '')}",
               *([f"- Not transcribed / notes: {record['notes']}"] if record.get("notes") else []), ""]
        table = published_table(record, cells)
        if not table.empty:
            md += [table_markdown(table), ""]
        orderings = check_orderings(record, cells)
        if not orderings.empty:
            md += [table_markdown(orderings), ""]
    return md


def _as_printed(value) -> str:
    """The paper's number as text, every digit transcribed (tables would round 101.5 to 102)."""
    return format(float(value), ".10g")


def _budget_text(record: dict) -> str:
    b = record.get("budget_settings") or {}
    text = f"{b.get('steps', '?')} steps, {b.get('seeds', '?')} seeds"
    if b.get("track_every"):
        text += f", gradient variance every {b['track_every']} steps over {b.get('track_replicates')} replicates"
    return text
