"""The leaderboard: per task, the estimators ranked by MSE against the exact gradient and by
work-normalized variance, from a tidy frame of gradient statistics — a `gradest run`'s
(the ``estimator_statistics`` of the registered cell kinds) or asv's
(`gradest.reports.asv_results.track_stats`), the same code for both.

`leaderboard(stats)` returns one row per task x estimator at the task's reference number of
samples S (`gradest.plotting.frames.reference_samples`), or at its reference budget of
f-evaluations where the rows were planned at equal evaluations (each estimator at its own S;
``evaluations`` says what one estimate spent); an estimator is named by its display label
(`gradest.plotting.frames.display_labels`: with `` S=n`` where one label comes at several S);
the exact gradient is the reference and is not ranked:

* ``mse_rank``: by MSE = E‖g − ∇L‖² (mean over backends: the statistic does not depend on
  the framework), with its 95% interval (``mse_low``, ``mse_high``), bias² and variance;
* ``wnv_rank``: by work-normalized variance, variance x seconds per estimate — the variance at
  equal compute, lower is better — on one backend per task (``wnv_backend``: the one most
  estimators of the task ran on, ties in backend order), since timings of two
  frameworks are not equal compute; with the variance's interval times the seconds. The
  other backends' values are in ``wnv_<backend>`` (not ranked);
* ``*_best``: rank 1; ``*_tied``: the interval overlaps the best's (not distinguishable from
  it at these replicates);
* ``unbiased``: whether the estimator claims E[g] = ∇L (the registry's estimator, built with
  the label's options; gradest's conformance tests check the claim by a z-test); None where
  the registry does not know it; ``learned``: whether it trains φ (``phi_loss``), and
  ``phi_warmup_steps``, the φ steps it was measured at (None where the rows do not say).

Ranks use the zero rule of `gradest.plotting.frames` (float noise is 0, so ties at 0 share
rank 1) and ``method="min"``. `task_notes` says where the numbers mislead, with what a task
declares itself (``report_notes`` on its class and, for an estimator with zero variance on it,
``zero_variance_note``, `gradest.task.Task`), a generic explanation only where it declares
nothing.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from gradest.plotting.frames import (REFERENCE_ESTIMATOR, at_reference_samples, base_label, display_labels,
                                     estimator_name, ordered_backends)


@functools.lru_cache(maxsize=None)
def estimator_facts(label: str) -> tuple:
    """(unbiased, learned) of the estimator ``label`` as its registry entry builds it, each
    None where it cannot be built (an unknown name, a plugin that is not installed)."""
    from gradest.labels import parse_label
    from gradest.registry import get_estimator

    try:
        name, options = parse_label(label)
        est = get_estimator(name, **options)
        return bool(est.unbiased), est.phi_loss is not None
    except Exception:  # noqa: BLE001 -- a report never fails on the registry
        return None, None


@functools.lru_cache(maxsize=None)
def declared_notes(task_name: str) -> tuple:
    """The ``report_notes`` the registered task ``task_name`` declares on its class (what its
    numbers do not say by themselves); () where the registry does not know it."""
    from gradest.registry import TASKS

    try:
        return tuple(getattr(TASKS.entry(task_name).factory, "report_notes", ()) or ())
    except Exception:  # noqa: BLE001 -- a report never fails on the registry
        return ()


@functools.lru_cache(maxsize=None)
def declared_zero_variance_note(task_label: str, estimator_label: str):
    """What the task ``task_label`` declares about the zero variance of ``estimator_label`` on
    it (`gradest.task.Task.zero_variance_note`, the task built with the label's options); None
    where it declares nothing or cannot be built."""
    from gradest.labels import parse_label
    from gradest.registry import get_task

    try:
        task_name, task_options = parse_label(task_label)
        name, options = parse_label(estimator_label)
        note = get_task(task_name, **task_options).zero_variance_note(name, dict(options))
        return str(note) if note else None
    except Exception:  # noqa: BLE001 -- a report never fails on the registry
        return None


def _names(rows: pd.DataFrame) -> tuple[str, bool]:
    return ", ".join(rows["estimator"]), len(rows) == 1


def zero_variance_notes(part: pd.DataFrame, task) -> list[str]:
    """Why the estimators of ``part`` (one task's rows) with zero variance have it: the note the
    task declares for each (grouped by note), else a generic one — an unbiased estimator
    computes ∇L here, a biased one that measures as exact ranks first only on this task."""
    zero_col = "variance_zero" if "variance_zero" in part.columns else "mse_zero"
    if zero_col not in part.columns:
        return []
    zero = part[part[zero_col].fillna(False).astype(bool)]
    declared = zero["estimator"].map(lambda est: declared_zero_variance_note(str(task), str(est)))
    notes = []
    for note, rows in zero[declared.notna()].groupby(declared[declared.notna()], sort=False):
        names, one = _names(rows)
        notes.append(f"{names} {'has' if one else 'have'} zero variance on {task}: {note}")
    rest = zero[declared.isna()]
    exact = rest[rest["mse_zero"].fillna(False).astype(bool) & (rest["unbiased"] == False)] \
        if "mse_zero" in rest.columns else rest.iloc[:0]  # noqa: E712
    if len(exact):
        names, one = _names(exact)
        notes.append(f"{names} {'is' if one else 'are'} biased in general but measure{'s' if one else ''} as exact "
                     f"on {task} (MSE zero up to rounding): ranked first here, that says nothing about other tasks.")
    free = rest[rest["unbiased"] == True]  # noqa: E712
    if len(free):
        names, one = _names(free)
        notes.append(f"{names} {'has' if one else 'have'} zero variance on {task}: {'it computes' if one else 'they compute'}"
                     f" ∇L exactly here (e.g. by enumerating or pairing the few outcomes of {'its' if one else 'their'}"
                     f" noise), so rank 1 is by construction.")
    return notes


def _mean(part: pd.DataFrame, col: str) -> float:
    return float(part[col].mean()) if col in part.columns else math.nan


def _rank(values: pd.Series) -> pd.Series:
    return values.rank(method="min", na_option="keep")


def _flags(board: pd.DataFrame, q: str, rank_col: str) -> None:
    """``<q>_best`` and ``<q>_tied`` per task (intervals overlapping the best's)."""
    board[f"{q}_best"] = board[rank_col] == 1
    tied = pd.Series(False, index=board.index)
    low, high = f"{q}_low", f"{q}_high"
    for _, part in board.groupby("task"):
        best = part[part[rank_col] == 1]
        if best.empty or low not in part.columns or part[low].isna().all():
            continue
        best_high = best[high].max() if best[high].notna().any() else best[q].max()
        tied.loc[part.index] = (part[rank_col] > 1) & (part[low] <= best_high)
    board[f"{q}_tied"] = tied


def ranking_backend_of(part: pd.DataFrame):
    """The backend most estimators of ``part`` have a work-normalized variance on (ties: the
    first in backend order), or None."""
    if "work_normalized_variance" not in part.columns:
        return None
    part = part.dropna(subset=["work_normalized_variance"])
    if part.empty:
        return None
    counts = part.groupby("backend")["estimator"].nunique()
    order = ordered_backends(counts.index)
    return max(order, key=lambda b: (counts[b], -order.index(b)))


def leaderboard(stats: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard frame of ``stats`` (see the module docstring), ordered by task, then
    MSE rank (estimators without an MSE last, by work-normalized variance rank)."""
    if stats is None or stats.empty or "task" not in stats.columns:
        return pd.DataFrame()
    stats = stats[stats["estimator"].map(estimator_name) != REFERENCE_ESTIMATOR]
    at = at_reference_samples(stats)
    if at.empty:
        return pd.DataFrame()
    at = at.assign(estimator=display_labels(at, samples="S", within=("task",)))
    ranking_backend = {task: ranking_backend_of(part) for task, part in at.groupby("task")}
    rows = []
    for (task, est), part in at.groupby(["task", "estimator"]):
        unbiased, learned = estimator_facts(base_label(est))
        row = {"task": task, "estimator": est, "S": part["S"].iloc[0], "evaluations": _mean(part, "evaluations"),
               "evaluation_budget": _mean(part, "evaluation_budget"),
               "backends": ", ".join(ordered_backends(part["backend"])),
               "mse": _mean(part, "mse"), "mse_low": _mean(part, "mse_low"), "mse_high": _mean(part, "mse_high"),
               "bias_sq": _mean(part, "bias_sq"), "bias_sq_floor": _mean(part, "bias_sq_floor"),
               "variance": _mean(part, "variance"),
               "seeds": int(part["seeds"].max()) if "seeds" in part.columns else None,
               "num_replicates": _mean(part, "num_replicates"),
               "unbiased": unbiased, "learned": learned,
               "phi_warmup_steps": (float(part["phi_warmup_steps"].max())
                                    if "phi_warmup_steps" in part.columns and part["phi_warmup_steps"].notna().any()
                                    else None)}
        for q in ("mse", "variance", "bias_sq"):
            if f"{q}_zero" in part.columns:
                row[f"{q}_zero"] = bool(part[f"{q}_zero"].all())
        on = part[part["backend"] == ranking_backend.get(task)]
        first = on.iloc[0] if len(on) else None
        row.update({"wnv_backend": ranking_backend.get(task),
                    **{k: (float(first[c]) if first is not None and c in first.index else math.nan)
                       for k, c in (("wnv", "work_normalized_variance"), ("wnv_low", "work_normalized_variance_low"),
                                    ("wnv_high", "work_normalized_variance_high"),
                                    ("seconds_per_estimate", "seconds_per_estimate"))}})
        for backend, sub in part.groupby("backend"):
            if "work_normalized_variance" in sub.columns:
                row[f"wnv_{backend}"] = float(sub["work_normalized_variance"].mean())
        rows.append(row)
    board = pd.DataFrame(rows)
    board["mse_rank"] = board.groupby("task")["mse"].transform(_rank)
    board["wnv_rank"] = board.groupby("task")["wnv"].transform(_rank)
    _flags(board, "mse", "mse_rank")
    _flags(board, "wnv", "wnv_rank")
    order = board.assign(_m=board["mse_rank"].fillna(np.inf), _w=board["wnv_rank"].fillna(np.inf))
    order = order.sort_values(["task", "_m", "_w", "estimator"])
    return order.drop(columns=["_m", "_w"]).reset_index(drop=True)


def by(board: pd.DataFrame, task, rank: str) -> pd.DataFrame:
    """The rows of ``task`` ordered by ``rank`` (``"mse_rank"`` or ``"wnv_rank"``), unranked last."""
    part = board[board["task"] == task]
    return part.assign(_r=part[rank].fillna(np.inf)).sort_values(["_r", "estimator"]).drop(columns="_r")


def equal_evaluation_notes(part: pd.DataFrame) -> list[str]:
    """Where the rows of one task were measured at equal f-evaluations K: that, and the
    estimators that cannot spend exactly K (measured at the nearest below)."""
    if "evaluation_budget" not in part.columns or part["evaluation_budget"].isna().all():
        return []
    K = int(part["evaluation_budget"].dropna().iloc[0])
    notes = [f"Measured at equal cost: every estimator at the largest S whose evaluations of f per estimate are at "
             f"most K = {K}: " + ", ".join(f"{r.estimator} S={int(r.S)}" for r in part.itertuples()) + "."]
    below = part[pd.to_numeric(part.get("evaluations"), errors="coerce") < K]
    if len(below):
        notes.append("Cannot spend exactly K, so measured at the nearest below: " + ", ".join(
            f"{r.estimator} ({int(r.evaluations)} evaluations at S={int(r.S)})" for r in below.itertuples()) + ".")
    return notes


def task_notes(board: pd.DataFrame, task, source: str = "run") -> list[str]:
    """What the numbers of ``task`` do not say by themselves: the notes the task declares
    (`declared_notes`), biased estimators that measure as exact, the φ the learned estimators
    were measured at, a task without an exact gradient, and (``source="asv"``) that asv's
    numbers carry no intervals."""
    part = board[board["task"] == task]
    notes = list(declared_notes(estimator_name(task)))
    notes += equal_evaluation_notes(part)
    notes += zero_variance_notes(part, task)
    learned = part[part["learned"] == True]  # noqa: E712
    if len(learned):
        if source == "asv" or learned["phi_warmup_steps"].isna().all():
            notes.append(f"{', '.join(learned['estimator'])} train φ; asv's results do not record the φ warm-up "
                         f"they were measured at (the benchmark grid's default).")
        else:
            parts = [f"{r.estimator} after {int(r.phi_warmup_steps)} φ steps at θ₀" if r.phi_warmup_steps
                     else f"{r.estimator} at its initial φ (no φ warm-up)" for r in learned.itertuples()]
            notes.append("Learned estimators are measured with φ as it was trained: " + "; ".join(parts)
                         + ". Their numbers change with φ's training.")
    if part["mse"].isna().all():
        notes.append(f"{task} has no exact gradient: MSE and bias² are not defined, so the estimators are ranked "
                     f"by work-normalized variance only.")
    if source == "asv":
        notes.append("asv's track_ benchmarks give one number per grid point (no interval), at the grid's S and "
                     "seed; ties are exact ties only.")
    return notes
