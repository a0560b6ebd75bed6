"""The report's tables, from tidy frames (pure pandas).

* `summary_table`: one row per task x estimator in the leaderboard's order, from the gradient
  statistics the leaderboard ranks and the columns the cell kinds add
  (`gradest.sweep.cell_kind.CellKind.summary_columns`, e.g. the final training loss);
* `status_counts`: the cells per kind and status; `not_done`: the skipped or failed cells
  with their reasons.

Missing columns give an empty frame, never an error. The rules the tables share with the
figures (canonical labels, zero, backend order) are `gradest.plotting.frames`.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gradest.plotting.frames import REFERENCE_ESTIMATOR, at_reference_samples, ordered_backends
from gradest.reports.leaderboard import leaderboard


def summary_table(stats: pd.DataFrame, extra_columns=()) -> pd.DataFrame:
    """One row per task x estimator, ordered by MSE rank within each task (`leaderboard`): the
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
            table = board[["task", "mse_rank", "estimator", "S", "variance", "bias_sq", "mse", *wnv]].rename(
                columns={"mse_rank": "rank", "bias_sq": "bias²", "mse": "MSE", **wnv})
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


def status_counts(cells: pd.DataFrame) -> pd.DataFrame:
    if cells is None or cells.empty or "status" not in cells.columns:
        return pd.DataFrame()
    return (cells.groupby(["kind", "status"]).size().unstack(fill_value=0).reset_index())


def not_done(cells: pd.DataFrame, status: str) -> pd.DataFrame:
    if cells is None or cells.empty or "status" not in cells.columns:
        return pd.DataFrame()
    cols = [c for c in ("kind", "task", "estimator", "backend", "num_samples", "seed", "reason") if c in cells]
    return cells[cells["status"] == status][cols]
