"""Tidy frames for the figures and the summary table, from the loaded results (pure pandas).

Every function takes the frames of `gradest.reports.load.Results` and returns a new frame;
missing columns or kinds give an empty frame, never an error, so a report can be built from
any subset of results (only training cells, only asv results, ...).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: the estimator that gives the exact gradient: the reference, not plotted against itself
REFERENCE_ESTIMATOR = "exact"


def done(cells: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The finished cells of ``kind``."""
    if cells is None or cells.empty or "kind" not in cells.columns:
        return pd.DataFrame()
    mask = cells["kind"] == kind
    if "status" in cells.columns:
        mask &= cells["status"] == "done"
    return cells[mask].copy()


def gradient_stats(cells: pd.DataFrame) -> pd.DataFrame:
    """Gradient cells averaged over seeds: one row per task x estimator x backend x S, with the
    mean of each statistic and of its 95% interval bounds, and the number of seeds."""
    frame = done(cells, "gradient")
    if frame.empty or "variance" not in frame.columns:
        return pd.DataFrame()
    keys = ["task", "estimator", "estimator_name", "backend", "num_samples"]
    stats = [c for c in ("variance", "variance_low", "variance_high", "bias_norm", "bias_norm_low",
                         "bias_norm_high", "bias_sq", "mse", "mse_low", "mse_high", "cosine_to_exact",
                         "seconds_per_estimate", "seconds_low", "seconds_high", "snr",
                         "work_normalized_variance", "num_replicates") if c in frame.columns]
    for c in stats:
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    out = frame.groupby(keys, dropna=False)[stats].mean().reset_index()
    out["seeds"] = frame.groupby(keys, dropna=False).size().values
    if "bias_sq" not in out.columns and "bias_norm" in out.columns:
        out["bias_sq"] = out["bias_norm"] ** 2
    if "bias_norm_low" in out.columns:
        out["bias_sq_low"] = out["bias_norm_low"] ** 2
        out["bias_sq_high"] = out["bias_norm_high"] ** 2
    if "num_replicates" in out.columns:
        # an unbiased estimator's measured bias² is about variance / R: the noise floor
        out["bias_sq_floor"] = out["variance"] / out["num_replicates"]
    return out


def reference_samples(stats: pd.DataFrame) -> int | None:
    """The S at which estimators are compared side by side: the one most estimators have
    (ties: the smaller S)."""
    if stats.empty:
        return None
    counts = stats.groupby("num_samples")["estimator"].nunique()
    best = counts[counts == counts.max()].index.min()
    return int(best)


def temperature_stats(cells: pd.DataFrame) -> pd.DataFrame:
    frame = done(cells, "temperature")
    if frame.empty or "temperature" not in frame.columns:
        return pd.DataFrame()
    if "hard" not in frame.columns:
        frame["hard"] = frame["estimator"].str.contains("hard=True")
    frame["hard"] = frame["hard"].map(lambda v: str(v).lower() in ("true", "1"))
    keys = ["task", "backend", "hard", "temperature"]
    stats = [c for c in ("variance", "variance_low", "variance_high", "bias_norm", "bias_norm_low",
                         "bias_norm_high", "bias_sq", "mse", "mse_low", "mse_high", "num_replicates")
             if c in frame.columns]
    for c in stats + ["temperature"]:
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    out = frame.groupby(keys)[stats].mean().reset_index()
    if "bias_norm" in out.columns:
        out["bias_sq"] = out["bias_norm"] ** 2
        out["bias_sq_low"] = out["bias_norm_low"] ** 2
        out["bias_sq_high"] = out["bias_norm_high"] ** 2
    if "num_replicates" in out.columns:
        out["bias_sq_floor"] = out["variance"] / out["num_replicates"]
    return out


def training_curves(history: pd.DataFrame, kind: str = "train") -> tuple[pd.DataFrame, str]:
    """(history rows of ``kind`` with a ``value`` column, the column it was taken from): the
    exact loss where the task has one on every row, else the surrogate loss."""
    if history is None or history.empty or "kind" not in history.columns:
        return pd.DataFrame(), ""
    frame = history[history["kind"] == kind].copy()
    if frame.empty:
        return frame, ""
    parts, used = [], set()
    for task, part in frame.groupby("task"):
        column = "loss"
        if "exact_loss" in part.columns and pd.to_numeric(part["exact_loss"], errors="coerce").notna().all():
            column = "exact_loss"
        part = part.assign(value=pd.to_numeric(part[column], errors="coerce"), value_column=column)
        parts.append(part)
        used.add(column)
    out = pd.concat(parts, ignore_index=True)
    return out, "exact_loss" if used == {"exact_loss"} else ("loss" if used == {"loss"} else "mixed")


def band(values: pd.Series) -> tuple[float, float, float, str]:
    """(mean, low, high, kind) over seeds: a 95% t-interval with >= 3 values, the min-max
    range with 2, the value itself with 1."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy(dtype=float)
    if v.size == 0:
        return math.nan, math.nan, math.nan, "none"
    mean = float(v.mean())
    if v.size == 1:
        return mean, mean, mean, "none"
    if v.size == 2:
        return mean, float(v.min()), float(v.max()), "range"
    from scipy import stats

    half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return mean, mean - half, mean + half, "ci95"


def curve_bands(curves: pd.DataFrame, keys=("task", "estimator", "backend")) -> pd.DataFrame:
    """Mean and band over seeds at each step, per ``keys``."""
    if curves.empty:
        return pd.DataFrame()
    rows = []
    for key, part in curves.groupby([*keys, "step"], dropna=False):
        mean, low, high, kind = band(part["value"])
        rows.append({**dict(zip([*keys, "step"], key)), "mean": mean, "low": low, "high": high, "band": kind,
                     "seeds": part["seed"].nunique() if "seed" in part.columns else 1})
    return pd.DataFrame(rows)


def lasso_stats(cells: pd.DataFrame) -> pd.DataFrame:
    frame = done(cells, "lasso_delta")
    if frame.empty or "objective_gap" not in frame.columns:
        return pd.DataFrame()
    for c in ("delta", "objective_gap", "relative_objective_gap", "relaxation_bound", "distance_to_reference"):
        if c in frame.columns:
            frame[c] = pd.to_numeric(frame[c], errors="coerce")
    return frame.sort_values(["backend", "delta"])


def training_finals(cells: pd.DataFrame) -> pd.DataFrame:
    """Final training loss per task x estimator x backend (mean and spread over seeds)."""
    frame = done(cells, "train")
    if frame.empty:
        return pd.DataFrame()
    column = "final_exact_loss" if "final_exact_loss" in frame.columns else "final_loss"
    if column not in frame.columns:
        return pd.DataFrame()
    frame[column] = pd.to_numeric(frame[column], errors="coerce")
    out = frame.groupby(["task", "estimator", "backend"])[column].agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"mean": "final_loss", "std": "final_loss_sd", "count": "train_seeds"})


def summary_table(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per task x estimator: the gradient statistics at the reference S (mean over
    seeds and backends), seconds per estimate per backend, and the final training loss."""
    stats = gradient_stats(cells)
    rows = []
    if not stats.empty:
        S = reference_samples(stats)
        at = stats[stats["num_samples"] == S]
        for (task, est), part in at.groupby(["task", "estimator"]):
            row = {"task": task, "estimator": est, "S": S,
                   "variance": part["variance"].mean(),
                   "bias²": part["bias_sq"].mean() if "bias_sq" in part else math.nan,
                   "MSE": part["mse"].mean() if "mse" in part else math.nan,
                   "cosine": part["cosine_to_exact"].mean() if "cosine_to_exact" in part else math.nan}
            for backend, sub in part.groupby("backend"):
                row[f"s/estimate ({backend})"] = sub["seconds_per_estimate"].mean()
            rows.append(row)
    table = pd.DataFrame(rows)
    finals = training_finals(cells)
    if not finals.empty:
        agg = finals.groupby(["task", "estimator"])["final_loss"].mean().reset_index()
        agg = agg.rename(columns={"final_loss": "final training loss"})
        table = agg if table.empty else table.merge(agg, on=["task", "estimator"], how="outer")
    if not table.empty:
        table = table.sort_values(["task", "estimator"]).reset_index(drop=True)
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


def spans_decades(values, decades: float = 1.0) -> bool:
    """Whether positive ``values`` span at least ``decades`` powers of ten (then: log scale)."""
    v = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce").dropna(), dtype=float)
    v = v[v > 0]
    if v.size < 2:
        return False
    return math.log10(v.max() / v.min()) >= decades
