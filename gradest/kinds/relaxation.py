"""The ``relaxation`` cell kind: smooth relaxations against the exact operations they replace.

gradest's relaxation estimators and the Lasso task differentiate through smooth stand-ins
for max, argmax, ReLU and |x| (`gradest.relaxations`). This kind measures, deterministically,
how far each stand-in is from its exact operation and from its (sub)gradient as the
sharpness s grows, on random inputs and on the kinks, with the bounds the theory gives:

=================  ===============  ==========================  ============================
relaxation         exact operation  parameter (sharpness s)     value bound (relaxed − exact)
=================  ===============  ==========================  ============================
``logsumexp``      max over n       α = s: logsumexp(αx)/α      [0, log(n)/α]
``softmax_mean``   max over n       α = s: Σ softmax(αx)_i x_i  [−log(n)/α, 0]
``pairwise``       max over n       α = s: tree of smooth       [−⌈log₂ n⌉/(2α), 0]
                                    (a + b + |a − b|)/2
``softmax``        onehot(argmax)   T = 1/s: softmax(x/T)       ‖·‖₁ ≤ 2 Σ_{j≠m} e^{−(x_m − x_j)/T}
``softplus``       ReLU             β = s: softplus(βx)/β       [0, log(2)/β]
``huber``          |x|              δ = 1/s: Huber of width δ   [−δ/2, 0]
=================  ===============  ==========================  ============================

Inputs (float64, NumPy generator seeded by the cell's seed): ``num_inputs`` rows of n = 10
standard normals for the vector operations (scalars for ReLU and |x|), and the seed example
x = [1.1, 4.0, −0.1, 2.3] for softmax against onehot(argmax).

Per sharpness (the cell's history, one row per s):

* the value error relaxed(x) − exact(x) (signed; the L1 distance for softmax) — its mean,
  minimum, maximum and largest magnitude over the inputs — beside the bound's ends, and the
  number of inputs outside the bound (``bound_violations``; float64 rounding allowed);
* away from the kinks (inputs whose top two entries differ, or |x|, by at least `MARGIN`):
  the L1 distance between the relaxation's gradient (the framework's autodiff through the
  Backend) and the exact operation's gradient, with the bound where one is known (logsumexp:
  2 Σ_{j≠m} e^{−α(x_m − x_j)}; softplus: e^{−β|x|}; Huber: max(0, 1 − |x|/δ)); for softmax,
  whose exact counterpart has derivative 0 almost everywhere, the Jacobian's Frobenius norm;
* at the kinks (the top two entries tied; x = 0): the L1 distance from the relaxation's
  gradient to the exact operation's subdifferential (the convex hull of the tied coordinates'
  unit vectors for max, [0, 1] for ReLU, [−1, 1] for |x|; exact when the tied coordinates'
  gradients are nonnegative, an upper bound otherwise). argmax is discontinuous at a tie and
  has no subgradient: for softmax the Jacobian's norm there is recorded instead (it grows as
  s/2).

The row sums the history up: violations of the bounds, the errors at the sharpest s, and the
order p of the value error |error| ∝ s^(−p) fitted over the upper half of the grid (1 for
the max and ReLU/|x| relaxations; softmax's error falls exponentially, so its fitted order
keeps growing with s).

The kind is standalone: its cells build no registered task or estimator (``task`` names the
exact operation, ``estimator`` the relaxation). It is opt-in (``gradest run --kinds
relaxation``): a sweep that chooses no kinds does not plan it. One cell per relaxation and
backend (the first backend only in the quick budget). Figure: `relaxation_errors`.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd

from gradest import relaxations as R
from gradest.plotting.frames import done, ordered_backends
from gradest.sweep.cell_kind import CellKind, register_cell_kind

#: inputs at least this far from a kink count as "away" from it
MARGIN = 0.5
#: the number of entries of the vector inputs
WIDTH = 10
#: the seed example of softmax against onehot(argmax)
EXAMPLE = (1.1, 4.0, -0.1, 2.3)
#: float64 slack of the bound checks
SLACK = 1e-9


class Relaxation(NamedTuple):
    """One relaxation: what it replaces, how it is sharpened, and what theory promises."""

    exact: str  # the exact operation's name
    parameter: str  # the relaxation's own parameter, as a function of the sharpness s
    to_parameter: Callable[[float], float]
    relaxed: Callable  # (B, x [N, n] or [N], parameter) -> [N] (or [N, n] for softmax)
    vector: bool  # inputs are rows of n entries
    bounds: Callable  # (x [N, ...], s) -> (low [N], high [N]) of the value error
    exact_value: Callable  # x -> [N] (or [N, n])
    exact_grad: Callable  # x away from the kinks -> [N, n] or [N]
    grad_bound: Callable | None  # (x away, s) -> [N] bound on the L1 gradient error, or None
    subdifferential_distance: Callable | None  # (x at the kink, g) -> [N]; None: no subgradient


def _top_two_gaps(x):
    """x_m − x_j for every j (0 at the argmax m): [N, n]."""
    return x.max(-1, keepdims=True) - x


def _onehot_argmax(x):
    return np.eye(x.shape[-1])[x.argmax(-1)]


def _max_kink_distance(x, g):
    """L1 distance of g [N, n] to conv{e_i : x_i = max x} (exact for g >= 0 on the ties)."""
    tied = np.isclose(x, x.max(-1, keepdims=True), rtol=0.0, atol=1e-12)
    outside = np.where(tied, 0.0, np.abs(g)).sum(-1)
    negative = np.where(tied, np.maximum(-g, 0.0), 0.0).sum(-1)
    mass = np.where(tied, np.maximum(g, 0.0), 0.0).sum(-1)
    return outside + negative + np.abs(mass - 1.0)


def _interval_distance(lo, hi):
    return lambda x, g: np.maximum(lo - g, 0.0) + np.maximum(g - hi, 0.0)


def _log2_levels(n: int) -> int:
    return int(math.ceil(math.log2(n))) if n > 1 else 0


def _zeros(x, s):
    return np.zeros(len(x))


RELAXATIONS: dict[str, Relaxation] = {
    "logsumexp": Relaxation(
        "max", "alpha", lambda s: s, lambda B, x, a: R.smooth_max(B, x, a), True,
        lambda x, s: (_zeros(x, s), np.full(len(x), math.log(x.shape[-1]) / s)),
        lambda x: x.max(-1), _onehot_argmax,
        lambda x, s: 2.0 * (np.exp(-s * _top_two_gaps(x)).sum(-1) - 1.0), _max_kink_distance),
    "softmax_mean": Relaxation(
        "max", "alpha", lambda s: s, lambda B, x, a: R.softmax_weighted_max(B, x, a), True,
        lambda x, s: (np.full(len(x), -math.log(x.shape[-1]) / s), _zeros(x, s)),
        lambda x: x.max(-1), _onehot_argmax, None, _max_kink_distance),
    "pairwise": Relaxation(
        "max", "alpha", lambda s: s, lambda B, x, a: R.pairwise_max(B, x, a), True,
        lambda x, s: (np.full(len(x), -_log2_levels(x.shape[-1]) / (2.0 * s)), _zeros(x, s)),
        lambda x: x.max(-1), _onehot_argmax, None, _max_kink_distance),
    "softmax": Relaxation(
        "argmax", "temperature", lambda s: 1.0 / s, lambda B, x, t: R.softmax_argmax(B, x, t), True,
        lambda x, s: (_zeros(x, s), 2.0 * (np.exp(-s * _top_two_gaps(x)).sum(-1) - 1.0)),
        _onehot_argmax, lambda x: np.zeros(x.shape + x.shape[-1:]), None, None),
    "softplus": Relaxation(
        "relu", "beta", lambda s: s, lambda B, x, b: R.smooth_relu(B, x, b), False,
        lambda x, s: (_zeros(x, s), np.full(len(x), math.log(2.0) / s)),
        lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float),
        lambda x, s: np.exp(-s * np.abs(x)), _interval_distance(0.0, 1.0)),
    "huber": Relaxation(
        "abs", "delta", lambda s: 1.0 / s, lambda B, x, d: R.huber(B, x, d), False,
        lambda x, s: (np.full(len(x), -0.5 / s), _zeros(x, s)),
        np.abs, np.sign, lambda x, s: np.maximum(0.0, 1.0 - s * np.abs(x)), _interval_distance(-1.0, 1.0)),
}


# ---- inputs -------------------------------------------------------------------------------


def inputs(relaxation: Relaxation, rng: np.random.Generator, count: int) -> dict[str, np.ndarray]:
    """Random inputs, inputs at least `MARGIN` from a kink, and inputs on a kink."""
    if relaxation.vector:
        x = rng.standard_normal((count, WIDTH))  # [N, n]
        order = np.argsort(-x, axis=-1)
        rows = np.arange(count)
        away = x.copy()
        top, second = order[:, 0], order[:, 1]
        # lift the largest entry to at least MARGIN above the second
        away[rows, top] = np.maximum(away[rows, top], away[rows, second] + MARGIN)
        kink = x.copy()
        kink[rows, second] = kink[rows, top]  # the top two tied
        return {"random": x, "away": away, "kink": kink}
    x = rng.standard_normal(count)  # [N]
    away = np.sign(x) * (MARGIN + np.abs(x))
    return {"random": x, "away": away, "kink": np.zeros(count)}


# ---- measurement --------------------------------------------------------------------------


def _value_error(relaxation: Relaxation, B, x: np.ndarray, s: float) -> np.ndarray:
    relaxed = B.to_numpy(relaxation.relaxed(B, B.asarray(x), relaxation.to_parameter(s)))
    exact = relaxation.exact_value(x)
    if relaxation.exact == "argmax":
        return np.abs(relaxed - exact).sum(-1)  # [N] L1 distance to the one-hot vector
    return relaxed - exact  # [N]


def _gradient(relaxation: Relaxation, B, x: np.ndarray, s: float) -> np.ndarray:
    """The relaxation's gradient per input ([N, n] or [N]); for softmax its Jacobian [N, n, n]."""
    p = relaxation.to_parameter(s)
    xb = B.asarray(x)
    if relaxation.exact == "argmax":
        rows = [B.to_numpy(B.grad(lambda v, k=k: B.sum(relaxation.relaxed(B, v, p)[..., k]))(xb))
                for k in range(x.shape[-1])]
        return np.stack(rows, axis=-2)  # [N, n (output), n (input)]
    return B.to_numpy(B.grad(lambda v: B.sum(relaxation.relaxed(B, v, p)))(xb))


def _l1(a: np.ndarray) -> np.ndarray:
    return np.abs(a).reshape(len(a), -1).sum(-1)


def measure(relaxation: Relaxation, B, points: dict[str, np.ndarray], s: float) -> dict:
    """One history row: the relaxation at sharpness ``s`` on ``points`` (see the module docstring)."""
    x = points["random"]
    error = _value_error(relaxation, B, x, s)  # [N]
    low, high = relaxation.bounds(x, s)  # [N] each
    slack = SLACK * (1.0 + np.abs(relaxation.exact_value(x)).reshape(len(x), -1).max(-1))
    row = {"sharpness": s, "parameter": relaxation.parameter, "parameter_value": relaxation.to_parameter(s),
           "error_mean": float(error.mean()), "error_min": float(error.min()), "error_max": float(error.max()),
           "abs_error_max": float(np.abs(error).max()), "abs_error_mean": float(np.abs(error).mean()),
           "bound_low": float(low.min()), "bound_high": float(high.max()),
           "bound_mean": float(np.maximum(np.abs(low), np.abs(high)).mean()),
           "bound_violations": int(((error < low - slack) | (error > high + slack)).sum())}
    away = points["away"]
    g_away = _gradient(relaxation, B, away, s)
    if relaxation.exact == "argmax":
        jac = np.sqrt((g_away ** 2).reshape(len(away), -1).sum(-1))  # [N] ‖J‖_F, exact derivative 0
        row.update(grad_error_away_max=float(jac.max()), grad_error_away_mean=float(jac.mean()))
        g_kink = _gradient(relaxation, B, points["kink"], s)
        row["kink_jacobian_norm"] = float(np.sqrt((g_kink ** 2).reshape(len(g_kink), -1).sum(-1)).mean())
        example = np.asarray([EXAMPLE])
        soft = B.to_numpy(relaxation.relaxed(B, B.asarray(example), relaxation.to_parameter(s)))[0]
        row["example_p_argmax"] = float(soft[int(np.argmax(EXAMPLE))])
        row["example_error"] = float(np.abs(soft - _onehot_argmax(example)[0]).sum())
    else:
        grad_error = _l1(g_away - relaxation.exact_grad(away))  # [N]
        row.update(grad_error_away_max=float(grad_error.max()), grad_error_away_mean=float(grad_error.mean()))
        if relaxation.grad_bound is not None:
            bound = relaxation.grad_bound(away, s)
            row["grad_bound_away_max"] = float(bound.max())
            row["grad_bound_violations"] = int((grad_error > bound + SLACK).sum())
        kink = points["kink"]
        distance = relaxation.subdifferential_distance(kink, _gradient(relaxation, B, kink, s))
        row.update(kink_distance_max=float(distance.max()), kink_distance_mean=float(distance.mean()))
    return row


def error_order(history: pd.DataFrame) -> float:
    """p of |error| ∝ s^(−p), least squares in log-log over the upper half of the grid."""
    part = history.sort_values("sharpness")
    part = part[part["abs_error_max"] > 0].iloc[len(part) // 2:]
    if len(part) < 2:
        return math.nan
    slope = np.polyfit(np.log(part["sharpness"]), np.log(part["abs_error_max"]), 1)[0]
    return float(-slope)


def relaxation_cell(name: str, backend: str, device: str, seed: int, sharpness, num_inputs: int):
    """The row and history of relaxation ``name`` on ``backend`` over the ``sharpness`` grid."""
    from gradest.backends import get_backend

    relaxation = RELAXATIONS[name]
    B = get_backend(backend, device=device, dtype="float64")
    points = inputs(relaxation, np.random.default_rng(seed), num_inputs)
    history = pd.DataFrame([measure(relaxation, B, points, float(s)) for s in sharpness])
    sharpest = history.iloc[int(history["sharpness"].idxmax())]
    row = {"exact_operation": relaxation.exact, "parameter": relaxation.parameter, "num_inputs": num_inputs,
           "width": WIDTH if relaxation.vector else 1,
           "bound_violations": int(history["bound_violations"].sum()),
           "grad_bound_violations": int(history.get("grad_bound_violations", pd.Series([0])).sum()),
           "sharpest": float(sharpest["sharpness"]), "abs_error_at_sharpest": float(sharpest["abs_error_max"]),
           "grad_error_away_at_sharpest": float(sharpest["grad_error_away_max"]),
           "error_order": error_order(history)}
    if "kink_distance_max" in history.columns and not pd.isna(sharpest.get("kink_distance_max")):
        row["kink_distance_at_sharpest"] = float(sharpest["kink_distance_max"])
    return row, history


# ---- figure -------------------------------------------------------------------------------


def relaxation_frames(cells: pd.DataFrame, history: pd.DataFrame, kind: str = "relaxation") -> pd.DataFrame:
    """The history rows of the finished cells of ``kind``, with numbers as numbers."""
    finished = done(cells, kind)
    if finished.empty or history is None or history.empty or "kind" not in history.columns:
        return pd.DataFrame()
    frame = history[history["kind"] == kind].copy()
    if frame.empty or "sharpness" not in frame.columns:
        return pd.DataFrame()
    for column in frame.columns:
        if column not in ("kind", "task", "estimator", "backend", "parameter", "label", "device"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame.sort_values("sharpness")


def _drawn(values: pd.Series) -> pd.Series:
    """``values`` with the zeros (and negatives) left out of a log axis."""
    return values.where(values > 0)


#: the lower end of the argmax panel's axis
ARGMAX_FLOOR = 1e-12
#: the figure's colours, one per relaxation (they are not estimators: not the report's palette)
COLORS = dict(zip(RELAXATIONS, ("C0", "C1", "C2", "C3", "C4", "C5")))


def relaxation_errors(cells: pd.DataFrame, history: pd.DataFrame, palette, out, kind: str = "relaxation"):
    """Value and gradient errors of each relaxation against the sharpness, bounds dashed; a
    `Figure` or None."""
    from matplotlib.lines import Line2D

    from gradest.plotting.figure import Figure, backend_handles
    from gradest.plotting.style import backend_line, backend_marker, finish, log_axis, save, subplots

    frame = relaxation_frames(cells, history, kind)
    if frame.empty:
        return None
    # (relaxations, title, error column, bound column, y label)
    panels = [(("logsumexp", "softmax_mean", "pairwise"), "max over n = 10: |relaxed − max|", "abs_error_max",
               "bound", "largest error over the inputs"),
              (("softmax",), "argmax: ‖softmax(x/T) − onehot(argmax)‖₁", "abs_error_mean", "bound_mean",
               "mean error over the inputs"),
              (("softplus", "huber"), "ReLU and |x|: |relaxed − exact|", "abs_error_max", "bound",
               "largest error over the inputs"),
              (tuple(RELAXATIONS), "gradient: away from the kinks, and on them", "grad_error_away_max", None,
               "largest L1 gradient error")]
    fig, axes = subplots(2, 2, 4.0, [3.1, 3.1])
    for index, (names, title, column, bound_column, ylabel) in enumerate(panels):
        ax = axes[index // 2][index % 2]
        for (name, backend), line in frame[frame["estimator"].isin(names)].groupby(["estimator", "backend"]):
            color, ls, marker = COLORS.get(name, "0.5"), backend_line(backend), backend_marker(backend)
            ax.plot(line["sharpness"], _drawn(line[column]), color=color, ls=ls, marker=marker, ms=3)
            if bound_column == "bound":
                bound = np.maximum(np.abs(line["bound_low"]), np.abs(line["bound_high"]))
                ax.plot(line["sharpness"], _drawn(bound), color=color, ls="--", lw=1.0)
            elif bound_column is not None and bound_column in line.columns:
                ax.plot(line["sharpness"], _drawn(line[bound_column]), color=color, ls="--", lw=1.0)
            if name == "softmax" and column == "abs_error_mean" and "example_error" in line.columns:
                # its error falls past 1e-70: drawn down to ARGMAX_FLOOR, so the axis keeps the others readable
                example = line["example_error"].where(line["example_error"] >= ARGMAX_FLOOR)
                ax.plot(line["sharpness"], example, color="0.2", ls="-.", lw=1.0)
            if bound_column is None and "kink_distance_max" in line.columns and line["kink_distance_max"].notna().any():
                ax.plot(line["sharpness"], _drawn(line["kink_distance_max"]), color=color, ls=":", lw=1.4)
        log_axis(ax, "x")
        log_axis(ax, "y")
        ax.set_xlabel("sharpness s = α, β, 1/T or 1/δ (log)")
        ax.set_ylabel(f"{ylabel} (log)")
        ax.set_title(title)
    names = [n for n in RELAXATIONS if n in set(frame["estimator"])]
    handles = [Line2D([], [], color=COLORS[n], lw=2.5, label=f"{n} → {RELAXATIONS[n].exact}") for n in names]
    handles += [Line2D([], [], color="0.4", ls="--", label="bound"),
                Line2D([], [], color="0.4", ls=":", label="on the kink: distance to the subdifferential"),
                Line2D([], [], color="0.2", ls="-.", label=f"softmax on x = {list(EXAMPLE)}")]
    handles += backend_handles(ordered_backends(frame["backend"]))
    finish(fig, heights=[3.1, 3.1], left=0.9, wspace=0.9, title="Smooth relaxations against the exact operations",
           handles=handles, legend_title="relaxation")
    finished = done(cells, kind)
    violations = int(pd.to_numeric(finished.get("bound_violations", pd.Series(dtype=float))).sum())
    count = int(pd.to_numeric(finished.get("num_inputs", pd.Series([0]))).max())
    caption = (f"Each relaxation on {count} random inputs per sharpness (float64) against its exact operation "
               "(solid), with the theoretical bound (dashed): logsumexp(αx)/α ≤ max + log(n)/α, the softmax-weighted "
               "mean ≥ max − log(n)/α, the pairwise tree ≥ max − ⌈log₂ n⌉/(2α), softplus(βx)/β ≤ ReLU + log(2)/β, "
               "Huber ≥ |x| − δ/2, and ‖softmax(x/T) − onehot‖₁ ≤ 2 Σ_{j≠m} e^{−(x_m − x_j)/T} (its mean over the "
               "inputs: near-ties keep the largest near 1; the example's error is drawn down to "
               f"{ARGMAX_FLOOR:g}). "
               f"Inputs outside their bound: {violations}. Gradient panel: the L1 error of the relaxation's gradient "
               f"(the framework's autodiff) at least {MARGIN} from a tie or 0 (for softmax the Jacobian's norm, the "
               "exact derivative being 0) and, dotted, its distance to the exact operation's subdifferential on the "
               "kinks. Zeros are not drawn on the log axes: Huber's gradient is exact once |x| ≥ δ, and softplus's "
               "and Huber's gradients at 0 lie in the subdifferential.")
    return Figure("relaxation_errors", "Smooth relaxations", caption, save(fig, out, "relaxation_errors"))


@register_cell_kind("relaxation", description="smooth relaxations of max, argmax, ReLU and |x| against the exact "
                                              "operations and their bounds")
class RelaxationKind(CellKind):
    order = 50
    standalone = True
    default = False  # opt-in: gradest run --kinds relaxation
    subjects = ("relaxation", "exact operation")
    columns = {"bound_violations": "inputs whose error is outside the theoretical bound (all sharpness values)",
               "abs_error_at_sharpest": "largest |relaxed − exact| at the sharpest s",
               "grad_error_away_at_sharpest": "largest L1 gradient error away from the kinks at the sharpest s",
               "kink_distance_at_sharpest": "largest L1 distance to the subdifferential on the kinks at the sharpest s",
               "error_order": "p of |error| ∝ s^(−p), fitted over the upper half of the grid"}
    grid = {"quick": {"sharpness": (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 100.0), "num_inputs": 500,
                      "first_backend_only": True},
            "medium": {"sharpness": (0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 100.0, 300.0), "num_inputs": 2000,
                       "first_backend_only": False},
            "full": {"sharpness": (0.1, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 100.0, 300.0, 1000.0),
                     "num_inputs": 5000, "first_backend_only": False}}

    def plan(self, ctx) -> list:
        grid = self.grid_for(ctx.budget) or self.grid["quick"]
        backends = ctx.backends[:1] if grid["first_backend_only"] else ctx.backends
        seed = next(iter(ctx.seeds(measured=True)), 0)
        return [ctx.cell(self.name, relaxation.exact, name, {}, backend, seed=seed, task_options={},
                         settings={"sharpness": [float(s) for s in grid["sharpness"]],
                                   "num_inputs": int(grid["num_inputs"])})
                for backend in backends for name, relaxation in RELAXATIONS.items()]

    def run(self, cell, task, estimator):
        return relaxation_cell(cell.estimator, cell.backend, cell.device, cell.seed, cell.settings["sharpness"],
                               int(cell.settings["num_inputs"]))

    def palette_labels(self, rows) -> list:
        return []  # relaxations are not estimators: the figure has its own colours (`COLORS`)

    def figures(self, cells, history, palette, out) -> list:
        return [("relaxation_errors", lambda: relaxation_errors(cells, history, palette, out, self.name))]
