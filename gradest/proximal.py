"""Deterministic Lasso solvers: the baselines the Huber relaxation of the L1 penalty is judged by.

All solve scikit-learn's Lasso objective (no intercept), in float64 NumPy,

    F(w) = g(w) + alpha ‖w‖₁,   g(w) = (1/2n) ‖y − Xw‖²,   ∇g(w) = −Xᵀ(y − Xw)/n,

with X [n, d], y [n], w [d], from w₀ = 0, and return a `SolverPath`: the objective F(w_k)
after each iteration k = 1..steps (evaluated by the caller's ``objective(w) -> float``, e.g.
the ``lasso_huber`` task's, outside the timed part) and the wall time since the start, so
that gaps to the optimum can be drawn against iterations and seconds.

* ``ista``: proximal gradient [1] with step 1/L, L = λ_max(XᵀX)/n the Lipschitz constant of ∇g:
  w_{k+1} = S_{alpha/L}(w_k − ∇g(w_k)/L), S_t(v) = sign(v) max(|v| − t, 0) (soft-thresholding).
  F(w_k) − F* ≤ L ‖w₀ − w*‖² / (2k).
* ``fista``: ISTA with Nesterov's momentum [2]: t_{k+1} = (1 + √(1 + 4t_k²))/2,
  v_{k+1} = w_{k+1} + ((t_k − 1)/t_{k+1}) (w_{k+1} − w_k), the prox step taken at v.
  F(w_k) − F* ≤ 2L ‖w₀ − w*‖² / (k + 1)².
* ``huber_gd``: gradient descent with step 1/L_δ on the δ-relaxed objective
  g(w) + alpha Σ huber_δ(w_i) (`gradest.relaxations.huber`), L_δ = L + alpha/δ: its optimum
  is within alpha·d·δ/2 of F* in F (|x| − δ/2 ≤ huber_δ(x) ≤ |x|), and its rate worsens as δ
  shrinks (the condition number grows like alpha/(δ μ)).
* ``coordinate_descent``: scikit-learn's ``Lasso`` (cyclic coordinate descent [3]) stopped after
  k epochs (one epoch = d coordinate updates), refit from 0 for each k of an epoch grid.

[1] Daubechies, Defrise & De Mol, An Iterative Thresholding Algorithm for Linear Inverse
    Problems with a Sparsity Constraint, Comm. Pure Appl. Math. 2004.
[2] Beck & Teboulle, A Fast Iterative Shrinkage-Thresholding Algorithm for Linear Inverse
    Problems, SIAM J. Imaging Sciences 2009.
[3] Friedman, Hastie & Tibshirani, Regularization Paths for Generalized Linear Models via
    Coordinate Descent, J. Stat. Softw. 2010.
"""
from __future__ import annotations

import time
import warnings
from typing import Callable, NamedTuple

import numpy as np

__all__ = ["SolverPath", "SOLVERS", "lipschitz", "soft_threshold", "ista", "fista", "huber_gd",
           "coordinate_descent", "solve"]


class SolverPath(NamedTuple):
    """A solver's run: iterations [K] (1-based), F(w_k) [K], seconds since the start [K], w [d]."""

    iterations: np.ndarray
    objective: np.ndarray
    seconds: np.ndarray
    w: np.ndarray


def lipschitz(X: np.ndarray) -> float:
    """L = λ_max(XᵀX)/n, the Lipschitz constant of ∇g."""
    return float(np.linalg.norm(X, 2) ** 2 / X.shape[0])


def soft_threshold(v: np.ndarray, t: float) -> np.ndarray:
    """S_t(v) = sign(v) max(|v| − t, 0), the proximal map of t‖·‖₁."""
    return np.sign(v) * np.maximum(np.abs(v) - t, 0.0)


def _check(X, y, alpha: float, steps: int):
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    assert X.ndim == 2 and y.shape == (X.shape[0],), f"X must be [n, d] and y [n], got {X.shape} and {y.shape}"
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha!r}")
    if int(steps) < 1:
        raise ValueError(f"steps must be at least 1, got {steps!r}")
    return X, y


def _proximal(X, y, alpha: float, steps: int, objective: Callable, momentum: bool) -> SolverPath:
    X, y = _check(X, y, alpha, steps)
    n, d = X.shape
    L = lipschitz(X)
    Xty, XtX = X.T @ y / n, X.T @ X / n  # [d], [d, d]
    w = np.zeros(d)
    v, t = w.copy(), 1.0
    values, seconds = np.empty(steps), np.empty(steps)
    elapsed = 0.0  # the solver's own time: the objective evaluations are not counted
    for k in range(steps):
        tick = time.perf_counter()
        point = v if momentum else w
        w_next = soft_threshold(point - (XtX @ point - Xty) / L, alpha / L)
        if momentum:
            t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            v = w_next + ((t - 1.0) / t_next) * (w_next - w)
            t = t_next
        w = w_next
        elapsed += time.perf_counter() - tick
        seconds[k], values[k] = elapsed, objective(w)
    return SolverPath(np.arange(1, steps + 1), values, seconds, w)


def ista(X, y, alpha: float, steps: int, objective: Callable) -> SolverPath:
    return _proximal(X, y, alpha, steps, objective, momentum=False)


def fista(X, y, alpha: float, steps: int, objective: Callable) -> SolverPath:
    return _proximal(X, y, alpha, steps, objective, momentum=True)


def huber_gd(X, y, alpha: float, steps: int, objective: Callable, delta: float) -> SolverPath:
    """Gradient descent with step 1/(L + alpha/δ) on g + alpha Σ huber_δ."""
    X, y = _check(X, y, alpha, steps)
    if not delta > 0:
        raise ValueError(f"delta must be positive, got {delta!r}")
    n, d = X.shape
    step = 1.0 / (lipschitz(X) + alpha / delta)
    Xty, XtX = X.T @ y / n, X.T @ X / n
    w = np.zeros(d)
    values, seconds = np.empty(steps), np.empty(steps)
    elapsed = 0.0
    for k in range(steps):
        tick = time.perf_counter()
        w = w - step * (XtX @ w - Xty + alpha * np.clip(w / delta, -1.0, 1.0))  # huber_δ'(x) = clip(x/δ, ±1)
        elapsed += time.perf_counter() - tick
        seconds[k], values[k] = elapsed, objective(w)
    return SolverPath(np.arange(1, steps + 1), values, seconds, w)


def coordinate_descent(X, y, alpha: float, steps: int, objective: Callable, points: int = 12) -> SolverPath:
    """scikit-learn's coordinate descent stopped after k epochs, k on a log grid up to ``steps``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso

    X, y = _check(X, y, alpha, steps)
    epochs = np.unique(np.geomspace(1, steps, num=min(points, steps)).round().astype(int))  # [K]
    values, seconds, w = np.empty(len(epochs)), np.empty(len(epochs)), np.zeros(X.shape[1])
    for i, k in enumerate(epochs):
        model = Lasso(alpha=alpha, fit_intercept=False, max_iter=int(k), tol=0.0)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # stopped on purpose after k epochs
            model.fit(X, y)
        seconds[i] = time.perf_counter() - start
        w = model.coef_.astype(np.float64)
        values[i] = objective(w)
    return SolverPath(epochs, values, seconds, w)


#: solver name -> function (X, y, alpha, steps, objective, **options) -> SolverPath
SOLVERS = {"ista": ista, "fista": fista, "huber_gd": huber_gd, "coordinate_descent": coordinate_descent}


def solve(name: str, X, y, alpha: float, steps: int, objective: Callable, **options) -> SolverPath:
    if name not in SOLVERS:
        raise ValueError(f"unknown Lasso solver {name!r}; use one of: {', '.join(SOLVERS)}")
    return SOLVERS[name](X, y, alpha, steps, objective, **options)
