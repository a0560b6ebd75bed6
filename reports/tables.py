"""The report's tables, from tidy frames (pure pandas).

* `summary_table`: one row per task x estimator in the leaderboard's order, from the gradient
  statistics the leaderboard ranks and the columns the cell kinds add
  (`gradest.sweep.cell_kind.CellKind.summary_columns`, e.g. the final headline metric of training);
* `status_counts`: the cells per kind and status; `not_done`: the skipped or failed cells
  with their reasons; `reason_summary`: those cells grouped by reason (the reason with its
  names left out), with counts and examples;
* `sweep_scope`: what a run measured and trained, read from its cells (which variants each
  kind ran on which backends) and its manifests' budget (what the budget leaves out).

Missing columns give an empty frame, never an error. The rules the tables share with the
figures (canonical labels, zero, backend order) are `gradest.plotting.frames`.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from gradest.plotting.frames import REFERENCE_ESTIMATOR, at_reference_samples, ordered_backends
from gradest.reports.leaderboard import leaderboard


def summary_table(stats: pd.DataFrame, extra_columns=()) -> pd.DataFrame:
    """One row per task x estimator, ranked within each task as the leaderboard ranks it
    (`ranked_on`: by MSE, by work-normalized variance where the task has no exact gradient): the
    gradient statistics ``stats`` at the task's reference S (mean over seeds and backends),
    then per backend (in `ordered_backends` order) the work-normalized variance and the
    seconds per estimate; the reference (exact) with its cost only; then each frame of
    ``extra_columns`` (task, estimator and its columns) merged in."""
    table = pd.DataFrame()
    if stats is not None and not stats.empty:
        board = leaderboard(stats)
        at = at_reference_samples(stats)
        rows = []
        for (task, est), part in at.groupby(["task", "estimator"]):
            rows.append({"task": task, "estimator": est,
                         "cosine": part["cosine_to_exact"].mean() if "cosine_to_exact" in part else math.nan,
                         **{f"s/estimate ({b})": part.loc[part["backend"] == b, "seconds_per_estimate"].mean()
                            for b in ordered_backends(at["backend"])}})
        extra = pd.DataFrame(rows)
        if not board.empty:
            backends = ordered_backends(at["backend"])
            wnv = {f"wnv_{b}": f"work-norm. variance ({b})" for b in backends if f"wnv_{b}" in board.columns}
            board = board.assign(**ranked_on(board))
            table = board[["task", "rank", "ranked by", "estimator", "S", "variance", "bias_sq", "mse", *wnv]].rename(
                columns={"bias_sq": "bias²", "mse": "MSE", **wnv})
            table = table.merge(extra, on=["task", "estimator"], how="left")
        ref = at[at["estimator_name"] == REFERENCE_ESTIMATOR]
        if len(ref):  # the reference: its cost, no statistics against itself
            ref_rows = extra[extra["estimator"].isin(ref["estimator"])].assign(S=ref["S"].iloc[0])
            table = pd.concat([table, ref_rows], ignore_index=True)
    for columns in extra_columns:
        if columns is None or columns.empty:
            continue
        table = columns if table.empty else table.merge(columns, on=["task", "estimator"], how="outer")
    if not table.empty:
        rank = table["rank"] if "rank" in table.columns else pd.Series(np.nan, index=table.index)
        table = (table.assign(_r=rank.fillna(np.inf)).sort_values(["task", "_r", "estimator"])
                 .drop(columns="_r").reset_index(drop=True))
        if "rank" in table.columns:
            table["rank"] = table["rank"].astype("Int64")
    return table


def ranked_on(board: pd.DataFrame) -> dict:
    """``rank`` and ``ranked by`` of each leaderboard row: the MSE rank where its task has an
    exact gradient, else the work-normalized variance rank (variance × s, on the backend it is
    ranked on); no rank where the task has one estimator ("nothing to rank")."""
    rank, on = board["mse_rank"].copy(), pd.Series("MSE", index=board.index, dtype=object)
    for _, part in board.groupby("task"):
        if part["mse_rank"].isna().all():
            rank.loc[part.index] = part["wnv_rank"]
            backend = part["wnv_backend"].dropna()
            # no-break spaces: a narrow column of a wide table would wrap it into four lines
            on.loc[part.index] = "variance\u00a0×\u00a0s" + (f"\u00a0({backend.iloc[0]})" if len(backend) else "")
        if rank.loc[part.index].notna().sum() == 1:  # one estimator: nothing to rank
            rank.loc[part.index], on.loc[part.index] = np.nan, "nothing\u00a0to\u00a0rank"
    return {"rank": rank, "ranked by": on.where(rank.notna() | (on == "nothing\u00a0to\u00a0rank"), "")}


def status_counts(cells: pd.DataFrame) -> pd.DataFrame:
    if cells is None or cells.empty or "status" not in cells.columns:
        return pd.DataFrame()
    return (cells.groupby(["kind", "status"]).size().unstack(fill_value=0).reset_index())


def not_done(cells: pd.DataFrame, status: str) -> pd.DataFrame:
    if cells is None or cells.empty or "status" not in cells.columns:
        return pd.DataFrame()
    cols = [c for c in ("kind", "task", "estimator", "backend", "num_samples", "seed", "reason") if c in cells]
    return cells[cells["status"] == status][cols]


def _headline(reason: str) -> str:
    """``reason`` up to its first ': ' or '; ', its quoted names as '…': the reason shared by
    every cell refused for it (``estimator '…' does not support task '…'``)."""
    head = re.split(r"[:;] ", str(reason), maxsplit=1)[0]
    if head.count("(") > head.count(")"):  # cut inside a parenthesis: drop the open part
        head = head[:head.rindex("(")]
    return re.sub(r"'[^'\s]*'", "'…'", head).strip().rstrip(",")


def reason_summary(rows: pd.DataFrame, max_examples: int = 4) -> pd.DataFrame:
    """The skipped or failed ``rows`` (`not_done`) by reason, most cells first: ``reason``
    (`_headline`), ``cells``, ``kinds`` and ``examples`` (a few estimator on task pairs) and
    ``for example`` (one full message, with the fix it names)."""
    if rows is None or rows.empty or "reason" not in rows.columns:
        return pd.DataFrame()
    rows = rows.assign(_reason=rows["reason"].fillna("").map(_headline))
    out = []
    for reason, part in rows.groupby("_reason", sort=False):
        pairs = list(dict.fromkeys(f"{r.estimator} on {r.task}" for r in part.itertuples()))
        examples = ", ".join(pairs[:max_examples]) + (f" (+{len(pairs) - max_examples} more)"
                                                     if len(pairs) > max_examples else "")
        out.append({"reason": reason or "(no reason recorded)", "cells": len(part),
                    "kinds": ", ".join(sorted(part["kind"].astype(str).unique())) if "kind" in part else "",
                    "examples": examples, "for example": str(part["reason"].iloc[0])})
    return pd.DataFrame(out).sort_values("cells", ascending=False, kind="stable").reset_index(drop=True)


def _listing(labels, limit: int = 20) -> str:
    labels = sorted(labels)
    return ", ".join(labels[:limit]) + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


def _subjects(kind: str) -> tuple[str, str]:
    """What ``kind``'s ``estimator`` and ``task`` columns name (`CellKind.subjects`)."""
    from gradest.sweep.kinds import get_cell_kind

    try:
        return tuple(get_cell_kind(kind).subjects)
    except ValueError:  # a kind no longer registered: its rows are still shown
        return ("estimator", "task")


def sweep_scope(cells: pd.DataFrame, manifests=()) -> list[str]:
    """Sentences saying what the run measured and trained: per kind, its estimator variants and
    tasks on each backend (a backend that ran fewer variants says which), the variants a kind
    left out that another ran, what the manifests' budget restricts (core variants after the
    first backend, training only core variants) and how many planned cells did not apply."""
    if cells is None or cells.empty or not {"kind", "estimator", "backend"} <= set(cells.columns):
        return []
    lines = []
    budgets = [m.get("budget") for m in manifests if isinstance(m.get("budget"), dict)]
    for budget in {json_key(b): b for b in budgets}.values():
        seeds = budget.get("seeds")
        measured = budget.get("measured_seeds")
        rule = [f"budget {budget.get('name', '?')}: {seeds} seed{'s' if seeds != 1 else ''}"
                + (f" ({measured} for the kinds that measure at θ₀)" if measured not in (None, seeds) else "")]
        if budget.get("core_after_first"):
            rule.append("on the backends after the first, only the estimators' core variants run")
        if budget.get("core_training"):
            rule.append("only core variants train (the core variants an estimator declares with "
                        "register_estimator(core=...))")
        lines.append("; ".join(rule) + ".")
    per_kind = {kind: set(part["estimator"].dropna().astype(str)) for kind, part in cells.groupby("kind")}
    widest = max(per_kind.values(), key=len)  # the main sweep's variants
    for kind in sorted(per_kind, key=lambda k: (-len(per_kind[k]), str(k))):
        part = cells[cells["kind"] == kind]
        labels = {b: set(p["estimator"].dropna().astype(str)) for b, p in part.groupby("backend")}
        backends = ordered_backends(labels)
        union = set().union(*labels.values())
        tasks = part["task"].astype(str).str.split("[").str[0].nunique() if "task" in part.columns else 0
        names = {str(label).split("[", 1)[0] for label in union}
        subject, over = _subjects(kind)
        text = (f"{kind}: {len(union)} {subject} variant{'s' if len(union) != 1 else ''} of {len(names)} "
                f"{subject}{'s' if len(names) != 1 else ''} × {tasks} {over}{'s' if tasks != 1 else ''}")
        full = [b for b in backends if labels[b] == union]
        fewer = [b for b in backends if labels[b] != union]
        text += f" on {', '.join(full)}" if full else ""
        for b in fewer:
            text += f"; on {b} only {len(labels[b])}: {_listing(labels[b])}"
        missing = widest - union
        if missing and len(union) >= 2 and union <= widest:  # a part of the main sweep (not its own grid)
            text += f"; not run by {kind}: {len(missing)} variants ({_listing(missing)})"
        lines.append(text + ".")
    if "status" in cells.columns:
        skipped = int((cells["status"] == "skipped").sum())
        if skipped:
            lines.append(f"{skipped} of {len(cells)} planned cells were skipped because the estimator does not apply "
                         f"to the task or its settings (summarized below by reason).")
    return lines


def json_key(value) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)
