"""The rules every figure and table of a report shares, as pure pandas (no matplotlib).

The cell kinds (`gradest.kinds`) derive their frames with these, and the report
(`gradest.reports`) its leaderboard and tables; every function takes frames of the loaded
results and returns a new one, and missing columns or kinds give an empty frame, never an
error, so a report can be built from any subset of results.

* **Canonical labels** (`canonical_label`): an estimator (or task) is named by its registry
  name plus only the options that differ from the registered defaults
  (`gradest.registry.Entry.option_defaults`), sorted: ``gumbel_rao`` and
  ``gumbel_rao[num_mc=10,temperature=1.0]`` are one estimator, ``nvil[decay=0.9,hidden=16,
  init_seed=0,normalize=True]`` is shown as ``nvil``. A name the registry does not know keeps
  its options. Only the defaults are read from the registry; nothing is computed.
* **Display labels** (`display_labels`): where the rows shown together hold one estimator
  label at more than one S, each row is shown as ``<label> S=<n>`` (``reinforce[baseline=loo]
  S=2``), so two S never share a line, a row or a rank; elsewhere the label alone.
  `base_label` strips the suffix again. Every table, legend and ordering of the report that
  names estimators uses them.
* **Reference comparison** (`at_reference_samples`): estimators are compared at one S per
  task (the one most of them have), or, where the rows were planned at equal f-evaluations
  (an ``evaluation_budget`` column, `gradest.sweep.plan(equal_evaluations=K)`), at one budget K
  per task, each estimator at its own S.
* **Zero** (`apply_zero_rule`): a variance, bias², MSE or work-normalized variance at most
  `ZERO_RTOL` x ‖∇L‖² of its task (``exact_norm``² of the rows; without one, the largest MSE
  or variance of the task) is floating-point noise and is set to exactly 0 — listed as 0 in
  the tables and named, not plotted, in the log-scale figures.
* **Backend order** (`ordered_backends`): the registered backends in their preference order
  (`gradest.backends.backend_names`: torch, jax, then plugins), then any other by name, in
  every table's columns and figure's panels.
* **Seeds** (`band`, `curve_bands`): a mean over seeds with a 95% t-interval from three seeds
  on, the min-max range with two, no band with one.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from gradest.statistics import t_interval

#: the estimator that gives the exact gradient: the reference, not plotted against itself
REFERENCE_ESTIMATOR = "exact"
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
    return str(base_label(label)).split("[", 1)[0]


#: what `display_labels` appends to a label shown with its S
SAMPLES_SUFFIX = " S="


def base_label(label):
    """The estimator label of a display label (``reinforce[baseline=loo] S=2`` ->
    ``reinforce[baseline=loo]``); any other value unchanged."""
    if isinstance(label, str) and SAMPLES_SUFFIX in label:
        head, _, tail = label.rpartition(SAMPLES_SUFFIX)
        if tail.isdigit():
            return head
    return label


def display_labels(frame: pd.DataFrame, column: str = "estimator", samples: str = "num_samples",
                   within: tuple = ()) -> pd.Series:
    """The label each row of ``frame`` is shown under (see the module docstring): ``column``,
    with `` S=<n>`` appended where the frame holds that label at more than one ``samples``
    value (``within``: columns whose groups are shown apart, e.g. ``("task",)`` for a table
    per task; the whole frame by default). A frame without ``samples`` keeps its labels."""
    if frame is None or column not in frame.columns:
        return pd.Series(dtype=object)
    labels = frame[column]
    if frame.empty or samples not in frame.columns:
        return labels.copy()
    S = pd.to_numeric(frame[samples], errors="coerce")
    groups = [frame[c] for c in within if c in frame.columns] + [labels]
    several = S.groupby(groups, dropna=False).transform("nunique") > 1
    shown = labels.astype(object).copy()
    suffix = S.map(lambda n: f"{SAMPLES_SUFFIX}{int(n)}" if pd.notna(n) else "")
    shown[several] = labels[several].astype(str) + suffix[several]
    return shown


def with_display_labels(frame: pd.DataFrame, column: str = "estimator", samples: str = "num_samples",
                        within: tuple = ()) -> pd.DataFrame:
    """A copy of ``frame`` with ``column`` replaced by its `display_labels`."""
    if frame is None or frame.empty or column not in frame.columns:
        return frame
    return frame.assign(**{column: display_labels(frame, column, samples, within)})


def canonical_frame(frame: pd.DataFrame, columns=("estimator",), kind: str = "estimator") -> pd.DataFrame:
    """A copy of ``frame`` with ``columns`` in canonical form (missing columns are left out)."""
    if frame is None or frame.empty:
        return frame
    frame = frame.copy()
    for col in columns:
        if col in frame.columns:
            frame[col] = frame[col].map(lambda v: canonical_label(v, kind) if isinstance(v, str) else v)
    return frame


def backend_order() -> list:
    """The registered backends in their preference order (`gradest.backends.backend_names`)."""
    from gradest.backends import backend_names

    return backend_names()


def ordered_backends(backends) -> list:
    """``backends`` without repeats in `backend_order`, then the others by name."""
    present = {str(b) for b in backends if isinstance(b, str) or not pd.isna(b)}
    registered = [b for b in backend_order() if b in present]
    return registered + sorted(present - set(registered))


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


# ---- rows ---------------------------------------------------------------------------------


def done(cells: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The finished cells of ``kind``."""
    if cells is None or cells.empty or "kind" not in cells.columns:
        return pd.DataFrame()
    mask = cells["kind"] == kind
    if "status" in cells.columns:
        mask &= cells["status"] == "done"
    return cells[mask].copy()


def sampled(stats: pd.DataFrame) -> pd.DataFrame:
    """Rows of estimators other than the reference (the exact gradient)."""
    if stats.empty:
        return stats
    return stats[stats["estimator"].map(estimator_name) != REFERENCE_ESTIMATOR]


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


def reference_budget(stats: pd.DataFrame):
    """The evaluation budget K at which the rows planned at equal f-evaluations are compared
    (the one most estimators have; ties: the smaller K), or None where no row was."""
    if stats is None or stats.empty or "evaluation_budget" not in stats.columns:
        return None
    budgets = pd.to_numeric(stats["evaluation_budget"], errors="coerce")
    part = stats[budgets.notna()]
    if part.empty:
        return None
    counts = part.groupby(budgets[budgets.notna()])["estimator"].nunique()
    return int(counts[counts == counts.max()].index.min())


def at_reference_samples(stats: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``stats`` at each task's reference S (all rows of a task without a known S),
    with a column ``S``; a task whose rows were planned at equal f-evaluations keeps those at
    its reference budget K (`reference_budget`), each estimator at its own S (``S`` is the
    row's)."""
    if stats is None or stats.empty:
        return pd.DataFrame()
    parts = []
    for task, part in stats.groupby("task"):
        K = reference_budget(part)
        if K is not None:
            part = part[pd.to_numeric(part["evaluation_budget"], errors="coerce") == K]
            parts.append(part.assign(S=pd.to_numeric(part["num_samples"], errors="coerce")))
            continue
        if "evaluation_budget" in part.columns:
            part = part[pd.to_numeric(part["evaluation_budget"], errors="coerce").isna()]
        S = reference_samples(part)
        if S is not None:
            part = part[pd.to_numeric(part["num_samples"], errors="coerce") == S]
        parts.append(part.assign(S=S))
    return pd.concat(parts, ignore_index=True)


def spans_decades(values, decades: float = 1.0) -> bool:
    """Whether positive ``values`` span at least ``decades`` powers of ten (then: log scale)."""
    v = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce").dropna(), dtype=float)
    v = v[v > 0]
    if v.size < 2:
        return False
    return math.log10(v.max() / v.min()) >= decades


# ---- seeds --------------------------------------------------------------------------------


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
    return (*t_interval(v), "ci95")


def curve_bands(curves: pd.DataFrame, keys=("task", "estimator", "backend")) -> pd.DataFrame:
    """Mean and band over seeds of the curves' ``value`` at each step, per ``keys``, with the
    mean wall-clock ``seconds`` of the training steps after the first logged one up to it (the
    history's ``seconds``, less the first step's, which includes compilation; NaN without) and
    that first step's time (``first_step_seconds``, the largest over seeds)."""
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
