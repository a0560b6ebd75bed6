"""Paired verdicts: is estimator A better than B on a metric, judged on per-seed differences.

Cells of one seed share their noise (common random numbers) and their initialization, so two
estimators' numbers under the same seed are a pair, and the spread that matters is that of
their difference, not of each one alone: two intervals over seeds may overlap while every
seed says A < B. For a claim "``better`` beats ``worse`` on ``metric``" (lower is better, or
higher):

* the pairs: the two estimators' values matched by seed (and backend, and any other key in
  ``on``), each side averaged where a key has several rows;
* the difference d = better − worse per pair: its mean and 95% t-interval
  (``scipy.stats.t``, n − 1 degrees of freedom);
* the paired t test (``scipy.stats.ttest_rel``) and, with at least `MIN_WILCOXON_PAIRS`
  pairs, the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``; two-sided p-values);
* the verdict (`verdict`): ``"holds, separated"`` when the interval of d excludes 0 on the
  claimed side, ``"holds, not separated"`` when the mean of d has the claimed sign but the
  interval contains 0, ``"reversed, separated"`` when the interval excludes 0 on the other
  side, ``"reversed"`` otherwise; ``"equal"`` when every difference is 0 (the two estimators
  gave the same numbers); ``"not measured"`` without a pair.

`compare(frame, better, worse, metric)` does all of it for a tidy frame with an ``estimator``
column; `compare_values(better, worse)` for two aligned arrays; `against_best(cells, long)`
for the aggregated table (`gradest.reports.table`): the best of each column against its
runner-up and every entry tied with it.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from gradest.statistics import t_interval

__all__ = ["MIN_WILCOXON_PAIRS", "TESTS", "TOO_FEW", "VERDICT_COLUMNS", "verdict", "pairs", "compare_values",
           "compare", "against_best", "format_p"]

#: the fewest pairs the Wilcoxon signed-rank test is run on (below, its p-value cannot reach 0.05)
MIN_WILCOXON_PAIRS = 6
#: the tests, as the report names them
TESTS = ("the paired t test (scipy.stats.ttest_rel) and the Wilcoxon signed-rank test (scipy.stats.wilcoxon, "
         f"with at least {MIN_WILCOXON_PAIRS} pairs); two-sided p-values")
#: the Wilcoxon column where there are too few pairs
TOO_FEW = "n/a (too few pairs)"
#: the keys of `compare`'s answer
VERDICT_COLUMNS = ("pairs", "difference", "low", "high", "t_p", "wilcoxon_p", "verdict")


def verdict(mean: float, low: float, high: float, better: str = "lower") -> str:
    """The verdict on a claim from the mean difference better − worse and its interval
    [low, high] (NaN bounds: not separated); ``better``: ``"lower"`` or ``"higher"``."""
    if mean is None or math.isnan(mean):
        return "not measured"
    sign = -1.0 if better == "lower" else 1.0
    if mean == 0 and low == 0 and high == 0:
        return "equal"
    claimed, against = (-high, low) if sign < 0 else (low, -high)  # > 0: the interval is on that side of 0
    if not math.isnan(claimed) and claimed > 0:
        return "holds, separated"
    if sign * mean > 0:
        return "holds, not separated"
    if not math.isnan(against) and against > 0:
        return "reversed, separated"
    return "reversed"


def pairs(frame: pd.DataFrame, metric: str, better: str, worse: str, on=("backend", "seed")) -> pd.DataFrame:
    """Columns ``on`` (those ``frame`` has), ``better``, ``worse``: the two estimators' finite
    values of ``metric`` matched on ``on`` (mean per key and estimator)."""
    keys = [c for c in on if c in frame.columns]
    if frame is None or frame.empty or metric not in frame.columns or not keys:
        return pd.DataFrame(columns=[*keys, better, worse])
    part = frame[frame["estimator"].isin([better, worse])][["estimator", *keys, metric]].copy()
    part[metric] = pd.to_numeric(part[metric], errors="coerce")
    part = part[np.isfinite(part[metric])]
    wide = part.groupby([*keys, "estimator"])[metric].mean().unstack("estimator")
    if better not in wide.columns or worse not in wide.columns:
        return pd.DataFrame(columns=[*keys, better, worse])
    return wide[[better, worse]].dropna().reset_index().rename_axis(columns=None)


def compare_values(better_values, worse_values, better: str = "lower") -> dict:
    """`VERDICT_COLUMNS` for paired arrays: the mean of better − worse, its 95% t-interval,
    the p-values of the paired t test and of the Wilcoxon signed-rank test (`TOO_FEW` below
    `MIN_WILCOXON_PAIRS` pairs; NaN where a test is undefined, e.g. all differences equal), and
    the verdict."""
    from scipy import stats

    a = np.asarray(better_values, dtype=float)
    b = np.asarray(worse_values, dtype=float)
    d = a - b  # [n]
    n = len(d)
    out = {"pairs": n, "difference": math.nan, "low": math.nan, "high": math.nan, "t_p": math.nan,
           "wilcoxon_p": TOO_FEW if n < MIN_WILCOXON_PAIRS else math.nan, "verdict": "not measured"}
    if n == 0:
        return out
    mean = float(d.mean())
    out["difference"] = mean
    if n >= 2:
        _, out["low"], out["high"] = t_interval(d)
        with warnings.catch_warnings():  # constant differences: the t statistic is undefined (NaN)
            warnings.simplefilter("ignore", RuntimeWarning)
            out["t_p"] = float(stats.ttest_rel(a, b).pvalue)
    if n >= MIN_WILCOXON_PAIRS and np.any(d != 0):
        out["wilcoxon_p"] = float(stats.wilcoxon(d).pvalue)
    out["verdict"] = "equal" if not np.any(d != 0) else verdict(mean, out["low"], out["high"], better)
    return out


def compare(frame: pd.DataFrame, better_label: str, worse_label: str, metric: str, better: str = "lower",
            on=("backend", "seed")) -> dict:
    """`compare_values` of the pairs of ``frame`` (`pairs`): does ``better_label`` beat
    ``worse_label`` on ``metric``, ``better`` being ``"lower"`` or ``"higher"``."""
    matched = pairs(frame, metric, better_label, worse_label, on)
    return compare_values(matched[better_label].to_numpy(dtype=float), matched[worse_label].to_numpy(dtype=float),
                          better)


def format_p(value) -> str:
    """A p-value as the report prints it: 2 significant digits, "< 1e-4" below, text as it is."""
    if isinstance(value, str):
        return value
    if value is None or math.isnan(value):
        return ""
    return "< 1e-4" if value < 1e-4 else f"{value:.2g}"


def against_best(cells: pd.DataFrame, long: pd.DataFrame) -> pd.DataFrame:
    """The report's paired comparisons of the aggregated table ``long``
    (`gradest.reports.table.long_table`, whose labels match ``cells``'): per task x metric x S
    x backend, the best entry against the runner-up and every entry tied with it (intervals
    overlapping), paired by seed over ``cells`` of the metric's kind: one row each with the
    mean difference best − other and its interval, the pairs, the two p-values and the verdict
    on "the best beats the other"."""
    columns = ["task", "metric", "S", "backend", "best", "other", "difference", "pairs", "t test p", "Wilcoxon p",
               "verdict"]
    rows = []
    if long is None or long.empty or cells is None or cells.empty:
        return pd.DataFrame(rows, columns=columns)
    done = cells[cells["status"] == "done"] if "status" in cells.columns else cells
    for (task, metric, S, backend), part in long.groupby(["task", "metric", "num_samples", "backend"], sort=False):
        if len(part) < 2:
            continue
        better = part["better"].iloc[0]
        ranked = part.sort_values("mean", ascending=better != "higher")
        best = ranked.iloc[0]
        others = ranked.iloc[1:]
        others = others[others["tied"] | others["best"] | (others.index == others.index[0])]
        frame = done[(done["kind"] == best["kind"]) & (done["task"] == task) & (done["num_samples"] == S)
                     & (done["backend"] == backend)]
        for _, other in others.iterrows():
            paired = compare(frame, best["estimator"], other["estimator"], metric, better, on=("seed",))
            difference = "" if math.isnan(paired["difference"]) else f"{paired['difference']:.3g}"
            if difference and not math.isnan(paired["low"]):
                difference += f" [{paired['low']:.3g}, {paired['high']:.3g}]"
            rows.append({"task": task, "metric": metric, "S": S, "backend": backend, "best": best["estimator"],
                         "other": other["estimator"], "difference": difference, "pairs": paired["pairs"],
                         "t test p": format_p(paired["t_p"]), "Wilcoxon p": format_p(paired["wilcoxon_p"]),
                         "verdict": paired["verdict"]})
    return pd.DataFrame(rows, columns=columns)
