"""Statistics of gradient estimates against the exact gradient: pure NumPy, no backend.

`summarize(grads [R, P], exact [P] | None) -> dict`: the variance (trace of the covariance),
bias, MSE, cosine to the exact gradient and SNR of R independent estimates, with 95%
intervals (``*_low`` / ``*_high``); the truth-dependent entries are NaN where ``exact`` is None.
`gradest.gradient_stats` adds the timing and the identification of the measurement.

`summary(P, mean [P], deviations [R], errors [R], cos [R], exact [P])`: the same dict from the
mean and three scalars per replicate (`squared_distances`, `cosines`), which is how
`gradest.streaming` gets `summarize`'s numbers without holding [R, P].

`t_interval(values [n]) -> (mean, low, high)`: the mean of a few values (seeds, pairs of
seeds) and its 95% Student-t interval, which tables, verdicts and figures share.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["Z95", "summarize", "summary", "squared_distances", "cosines", "t_interval"]

#: the two-sided 95% quantile of the standard normal
Z95 = 1.959963984540054


def t_interval(values) -> tuple[float, float, float]:
    """(mean, low, high) of ``values`` [n]: the 95% interval mean ± t_{0.975, n-1} · s / √n
    (scipy.stats.t); low and high are NaN with fewer than two values, and the mean NaN with none."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if v.size < 2:
        return mean, math.nan, math.nan
    from scipy import stats

    half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return mean, mean - half, mean + half


def squared_distances(grads: np.ndarray, point: np.ndarray) -> np.ndarray:
    """[n]: ‖g_r - point‖² of each row of ``grads`` [n, P] (float64) from ``point`` [P].

    Row by row, so the rows of a chunk get the values they get in the whole [R, P] array (the
    sum runs along one row); one [n, P] temporary, squared in place."""
    diff = np.subtract(grads, point)  # [n, P]
    np.square(diff, out=diff)
    return diff.sum(axis=1)


def cosines(grads: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """[n]: the cosine of each row of ``grads`` [n, P] to ``exact`` [P] (0 where a norm is 0)."""
    norms = np.linalg.norm(grads, axis=1) * np.linalg.norm(exact)  # [n]
    return np.divide(grads @ exact, norms, out=np.zeros(len(grads)), where=norms > 0)


def summarize(grads: np.ndarray, exact: np.ndarray | None) -> dict[str, Any]:
    """Statistics of estimates [R, P] against the exact gradient [P] (None: no truth).

    variance: trace of the covariance (unbiased), with a 95% interval from the spread of the
    per-replicate squared deviations; bias_norm = ‖mean - exact‖ (bias_sq its square);
    mse = mean ‖g - exact‖²; cosine_to_exact = mean cosine of single estimates to the exact
    gradient; snr = ‖mean‖ / sqrt(variance). ``*_low``/``*_high`` are 95% intervals.

    Everything is a function of the mean [P] and three per-replicate scalars [R] (`summary`):
    `gradest.streaming` computes the same numbers chunk by chunk in O(P) memory."""
    grads = np.asarray(grads, dtype=np.float64)
    R, P = grads.shape
    mean = grads.mean(axis=0)
    if exact is None:
        return summary(P, mean, squared_distances(grads, mean), None, None, None)
    exact = np.asarray(exact, dtype=np.float64)
    assert exact.shape == (P,), f"exact gradient has shape {exact.shape}, estimates have {P} columns"
    return summary(P, mean, squared_distances(grads, mean), squared_distances(grads, exact), cosines(grads, exact),
                   exact)


def summary(num_params: int, mean: np.ndarray, deviations: np.ndarray, errors: np.ndarray | None,
            cos: np.ndarray | None, exact: np.ndarray | None) -> dict[str, Any]:
    """The dict of `summarize` from the mean estimate [P] and, per replicate [R]: the squared
    deviation ‖g_r - mean‖² (``deviations``), the squared error ‖g_r - exact‖² (``errors``)
    and the cosine to the exact gradient (``cos``); the last two and ``exact`` [P] are None
    without a truth."""
    R, P = len(deviations), int(num_params)
    assert mean.shape == (P,), f"mean has shape {mean.shape}, expected ({P},)"
    dev = deviations * (R / max(R - 1, 1))  # [R]: unbiased per replicate
    variance = float(dev.mean())
    half = Z95 * float(dev.std(ddof=1)) / math.sqrt(R) if R > 1 else math.nan
    out: dict[str, Any] = {
        "num_replicates": R, "num_params": P,
        "variance": variance, "variance_low": max(variance - half, 0.0), "variance_high": variance + half,
        "mean_norm": float(np.linalg.norm(mean)),
        "snr": float(np.linalg.norm(mean) / math.sqrt(variance)) if variance > 0 else math.inf,
    }
    if exact is None:
        out.update({k: math.nan for k in ("bias_norm", "bias_norm_low", "bias_norm_high", "bias_sq",
                                           "mse", "mse_low", "mse_high", "cosine_to_exact",
                                           "cosine_low", "cosine_high", "exact_norm")})
        return out
    assert errors is not None and cos is not None and len(errors) == len(cos) == R
    exact = np.asarray(exact, dtype=np.float64)
    bias = mean - exact
    bias_norm = float(np.linalg.norm(bias))
    se_mean = math.sqrt(variance / R)
    mse = float(errors.mean())
    mse_half = Z95 * float(errors.std(ddof=1)) / math.sqrt(R) if R > 1 else math.nan
    cos_half = Z95 * float(cos.std(ddof=1)) / math.sqrt(R) if R > 1 else math.nan
    out.update({
        "exact_norm": float(np.linalg.norm(exact)),
        "bias_norm": bias_norm, "bias_norm_low": max(bias_norm - Z95 * se_mean, 0.0),
        "bias_norm_high": bias_norm + Z95 * se_mean,
        "bias_sq": bias_norm**2,
        "mse": mse, "mse_low": max(mse - mse_half, 0.0), "mse_high": mse + mse_half,
        "cosine_to_exact": float(cos.mean()), "cosine_low": float(cos.mean() - cos_half),
        "cosine_high": float(cos.mean() + cos_half),
    })
    return out
