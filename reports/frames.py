"""Tidy frames for the figures and the summary table, from the loaded results (pure pandas).

Every function takes the frames of `gradest.reports.load.Results` and returns a new frame;
missing columns or kinds give an empty frame, never an error, so a report can be built from
any subset of results (only training cells, only asv results, ...).

Three rules every figure and table of a report shares:

* **Canonical labels** (`canonical_label`): an estimator (or task) is named by its registry
  name plus only the options that differ from the registered defaults
  (`gradest.registry.Entry.option_defaults`), sorted: ``gumbel_rao`` and
  ``gumbel_rao[num_mc=10,temperature=1.0]`` are one estimator, ``nvil[decay=0.9,hidden=16,
  init_seed=0,normalize=True]`` is shown as ``nvil``. A name the registry does not know keeps
  its options. Only the defaults are read from the registry; nothing is computed.
* **Zero** (`apply_zero_rule`): a variance, bias², MSE or work-normalized variance at most
  `ZERO_RTOL` x ‖∇L‖² of its task (``exact_norm``² of the rows; without one, the largest MSE
  or variance of the task) is floating-point noise and is set to exactly 0 — listed as 0 in
  the tables and named, not plotted, in the log-scale figures.
* **Backend order** (`ordered_backends`): torch, jax, then any other by name, in every
  table's columns and figure's panels.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

#: the estimator that gives the exact gradient: the reference, not plotted against itself
REFERENCE_ESTIMATOR = "exact"
#: the fixed order of backends in tables and figures (others follow by name)
BACKEND_ORDER = ("torch", "jax")
#: squared-gradient statistics at most this fraction of ‖∇L‖² are zero (float noise)
ZERO_RTOL = 1e-10
#: the statistics in squared gradient units that the zero rule applies to
SQUARED_STATS = ("variance", "bias_sq", "mse", "work_normalized_variance")


# ---- labels -----------------------------------------------------------------------------


def _same_value(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, str) and a == str(b)) or (isinstance(b, str) and b == str(a))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    try:
        return a == b or (isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b))
    except Exception:  # noqa: BLE001 -- incomparable values differ
        return False


@functools.lru_cache(maxsize=None)
def _defaults(name: str, kind: str) -> dict | None:
    """The registered option defaults of ``name``, or None when the registry does not know it."""
    try:
        from gradest.registry import ESTIMATORS, TASKS

        registry = ESTIMATORS if kind == "estimator" else TASKS
        if name not in registry.names():
            return None
        return dict(registry.entry(name).option_defaults())
    except Exception:  # noqa: BLE001 -- a report never fails on the registry
        return None


@functools.lru_cache(maxsize=None)
def canonical_label(label, kind: str = "estimator") -> str:
    """``label`` with only the options that differ from the registered defaults (see the
    module docstring); a label that does not parse is returned as it is."""
    from gradest.labels import make_label, parse_label

    if not isinstance(label, str) or not label:
        return label
    try:
        name, options = parse_label(label)
    except ValueError:
        return label
    defaults = _defaults(name, kind)
    if defaults is None:
        return make_label(name, options)
    kept = {k: v for k, v in options.items() if not (k in defaults and _same_value(v, defaults[k]))}
    return make_label(name, kept)


def estimator_name(label) -> str:
    return str(label).split("[", 1)[0]


def canonical_frame(frame: pd.DataFrame, columns=("estimator",), kind: str = "estimator") -> pd.DataFrame:
    """A copy of ``frame`` with ``columns`` in canonical form (missing columns are left out)."""
    if frame is None or frame.empty:
        return frame
    frame = frame.copy()
    for col in columns:
        if col in frame.columns:
            frame[col] = frame[col].map(lambda v: canonical_label(v, kind) if isinstance(v, str) else v)
    return frame


def ordered_backends(backends) -> list:
    """``backends`` without repeats in `BACKEND_ORDER`, then the others by name."""
    present = {str(b) for b in backends if isinstance(b, str) or not pd.isna(b)}
    return [b for b in BACKEND_ORDER if b in present] + sorted(present - set(BACKEND_ORDER))


# ---- zero ---------------------------------------------------------------------------------


def apply_zero_rule(stats: pd.DataFrame) -> pd.DataFrame:
    """``stats`` with every squared statistic that is float noise set to 0 (its interval too),
    and a boolean column ``<statistic>_zero`` per statistic (see the module docstring)."""
    if stats is None or stats.empty or "task" not in stats.columns:
        return stats
    stats = stats.copy()
    scale = pd.Series(np.nan, index=stats.index)
    if "exact_norm" in stats.columns:
        scale = pd.to_numeric(stats["exact_norm"], errors="coerce") ** 2
    fallback_cols = [c for c in ("mse", "variance") if c in stats.columns]
    if fallback_cols:
        largest = stats[fallback_cols].apply(pd.to_numeric, errors="coerce").max(axis=1)
        by_task = largest.groupby(stats["task"]).transform("max")
        scale = scale.where((scale > 0) & np.isfinite(scale), by_task)
    floor = ZERO_RTOL * scale
    for q in SQUARED_STATS:
        if q not in stats.columns:
            continue
        values = pd.to_numeric(stats[q], errors="coerce")
        if q == "work_normalized_variance" and "variance_zero" in stats.columns:
            zero = stats["variance_zero"] & values.notna()  # zero exactly when the variance is
        else:
            zero = (values.abs() <= floor) & values.notna()
        stats[f"{q}_zero"] = zero.fillna(False).astype(bool)
        for col in (q, f"{q}_low", f"{q}_high"):
            if col in stats.columns:
                stats.loc[stats[f"{q}_zero"], col] = 0.0
    return stats


def zero_names(stats: pd.DataFrame, q: str, task) -> list:
    """Estimators of ``task`` whose ``q`` is zero by the zero rule (sorted)."""
    col = f"{q}_zero"
    if stats is None or stats.empty or col not in stats.columns:
        return []
    part = stats[(stats["task"] == task)]
    zero = part.groupby("estimator")[col].all()
    return sorted(zero[zero].index)


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
    mean of each statistic and of its 95% interval bounds, and the number of seeds; the zero
    rule applied (`apply_zero_rule`). The work-normalized variance's interval is the
    variance's interval times the seconds per estimate (the timing's own spread is load, not
    sampling error)."""
    frame = done(cells, "gradient")
    if frame.empty or "variance" not in frame.columns:
        return pd.DataFrame()
    if "estimator_name" not in frame.columns:
        frame["estimator_name"] = frame["estimator"].map(estimator_name)
    keys = ["task", "estimator", "estimator_name", "backend", "num_samples"]
    for c in frame.columns:
        if c in STAT_COLUMNS:
            frame[c] = pd.to_numeric(frame[c], errors="coerce")
    if "work_normalized_variance" not in frame.columns and {"variance", "seconds_per_estimate"} <= set(frame.columns):
        frame["work_normalized_variance"] = frame["variance"] * frame["seconds_per_estimate"]  # its definition
    if {"work_normalized_variance", "variance_low", "variance_high", "seconds_per_estimate"} <= set(frame.columns):
        frame["work_normalized_variance_low"] = frame["variance_low"].clip(lower=0) * frame["seconds_per_estimate"]
        frame["work_normalized_variance_high"] = frame["variance_high"] * frame["seconds_per_estimate"]
    stats = [c for c in STAT_COLUMNS if c in frame.columns]
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
    return apply_zero_rule(out)


#: the per-cell numbers `gradient_stats` averages over seeds (those the rows carry)
STAT_COLUMNS = ("variance", "variance_low", "variance_high", "bias_norm", "bias_norm_low", "bias_norm_high",
                "bias_sq", "mse", "mse_low", "mse_high", "cosine_to_exact", "seconds_per_estimate", "seconds_low",
                "seconds_high", "snr", "work_normalized_variance", "work_normalized_variance_low",
                "work_normalized_variance_high", "num_replicates", "exact_norm", "mean_norm", "phi_warmup_steps",
                "threads")


def reference_samples(stats: pd.DataFrame, task=None) -> int | None:
    """The S at which estimators are compared side by side (on ``task``, or over all tasks):
    the one most estimators have (ties: the smaller S); None without a known S."""
    if stats is None or stats.empty or "num_samples" not in stats.columns:
        return None
    part = stats if task is None else stats[stats["task"] == task]
    part = part[pd.to_numeric(part["num_samples"], errors="coerce").notna()]
    if part.empty:
        return None
    counts = part.groupby("num_samples")["estimator"].nunique()
    best = counts[counts == counts.max()].index.min()
    return int(best)


def at_reference_samples(stats: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``stats`` at each task's reference S (all rows of a task without a known S),
    with a column ``S``."""
    if stats is None or stats.empty:
        return pd.DataFrame()
    parts = []
    for task, part in stats.groupby("task"):
        S = reference_samples(part)
        if S is not None:
            part = part[pd.to_numeric(part["num_samples"], errors="coerce") == S]
        parts.append(part.assign(S=S))
    return pd.concat(parts, ignore_index=True)


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


def own_variance_curves(history: pd.DataFrame, kind: str = "train") -> pd.DataFrame:
    """History rows of ``kind`` where a cell tracked its own estimator's gradient variance
    along training (the column ``own_variance`` the train kind writes), with ``value`` = log10
    of that variance at θ_t; rows where it was not measured are dropped."""
    if history is None or history.empty or "kind" not in history.columns or "own_variance" not in history.columns:
        return pd.DataFrame()
    frame = history[history["kind"] == kind]
    values = pd.to_numeric(frame["own_variance"], errors="coerce")
    keep = values.notna() & (values > 0)
    if not keep.any():
        return pd.DataFrame()
    return frame[keep].assign(value=np.log10(values[keep].to_numpy(dtype=float)))


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
    """Mean and band over seeds at each step, per ``keys``, with the mean wall-clock
    ``seconds`` of the training steps after the first logged one up to it (the history's
    ``seconds``, less the first step's, which includes compilation; NaN without) and that
    first step's time (``first_step_seconds``, the largest over seeds)."""
    if curves.empty:
        return pd.DataFrame()
    if "seconds" in curves.columns:
        # time after the first logged step: that step includes compilation (JAX), not training
        run = [c for c in (*keys, "seed") if c in curves.columns]
        seconds = pd.to_numeric(curves["seconds"], errors="coerce")
        first = seconds.where(curves["step"] == curves.groupby(run)["step"].transform("min"))
        curves = curves.assign(seconds=seconds - first.groupby([curves[c] for c in run]).transform("max"),
                               first_step_seconds=first.groupby([curves[c] for c in run]).transform("max"))
    rows = []
    for key, part in curves.groupby([*keys, "step"], dropna=False):
        mean, low, high, kind = band(part["value"])
        seconds = part["seconds"].mean() if "seconds" in part.columns else math.nan
        first = part["first_step_seconds"].max() if "first_step_seconds" in part.columns else math.nan
        rows.append({**dict(zip([*keys, "step"], key)), "mean": mean, "low": low, "high": high, "band": kind,
                     "seconds": seconds, "first_step_seconds": first,
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
    if "final_exact_loss" not in frame.columns and "final_loss" not in frame.columns:
        return pd.DataFrame()
    # L(θ) where the task has truth, else the last step's loss (e.g. a VAE's -ELBO estimate)
    exact = pd.to_numeric(frame.get("final_exact_loss", pd.Series(np.nan, index=frame.index)), errors="coerce")
    loss = pd.to_numeric(frame.get("final_loss", pd.Series(np.nan, index=frame.index)), errors="coerce")
    frame["final"] = exact.where(exact.notna(), loss)
    out = frame.groupby(["task", "estimator", "backend"])["final"].agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"mean": "final_loss", "std": "final_loss_sd", "count": "train_seeds"})


def summary_table(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per task x estimator, ordered by MSE rank within each task (`leaderboard`):
    the gradient statistics at the task's reference S (mean over seeds and backends), then
    per backend (in `BACKEND_ORDER`) the work-normalized variance and the seconds per
    estimate, and the final training loss (mean over seeds and backends); the reference
    (exact) with its cost only."""
    from gradest.reports.leaderboard import leaderboard

    stats = gradient_stats(cells)
    table = pd.DataFrame()
    if not stats.empty:
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
    finals = training_finals(cells)
    if not finals.empty:
        agg = finals.groupby(["task", "estimator"])["final_loss"].mean().reset_index()
        agg = agg.rename(columns={"final_loss": "final training loss"})
        table = agg if table.empty else table.merge(agg, on=["task", "estimator"], how="outer")
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


def spans_decades(values, decades: float = 1.0) -> bool:
    """Whether positive ``values`` span at least ``decades`` powers of ten (then: log scale)."""
    v = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce").dropna(), dtype=float)
    v = v[v > 0]
    if v.size < 2:
        return False
    return math.log10(v.max() / v.min()) >= decades
