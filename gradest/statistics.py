"""Statistics of gradient estimates against the exact gradient: pure NumPy, no backend.

`summarize(grads [R, P], exact [P] | None) -> dict`: the variance (trace of the covariance),
bias, MSE, cosine to the exact gradient and SNR of R independent estimates, with 95%
intervals (``*_low`` / ``*_high``); the truth-dependent entries are NaN where ``exact`` is None.
`gradest.gradient_stats` adds the timing and the identification of the measurement.

`t_interval(values [n]) -> (mean, low, high)`: the mean of a few values (seeds, pairs of
seeds) and its 95% Student-t interval, which tables, verdicts and figures share.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["Z95", "summarize", "t_interval"]

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


def summarize(grads: np.ndarray, exact: np.ndarray | None) -> dict[str, Any]:
    """Statistics of estimates [R, P] against the exact gradient [P] (None: no truth).

    variance: trace of the covariance (unbiased), with a 95% interval from the spread of the
    per-replicate squared deviations; bias_norm = ‖mean - exact‖ (bias_sq its square);
    mse = mean ‖g - exact‖²; cosine_to_exact = mean cosine of single estimates to the exact
    gradient; snr = ‖mean‖ / sqrt(variance). ``*_low``/``*_high`` are 95% intervals."""
    grads = np.asarray(grads, dtype=np.float64)
    R, P = grads.shape
    mean = grads.mean(axis=0)
    dev = ((grads - mean) ** 2).sum(axis=1) * (R / max(R - 1, 1))  # [R]
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
    exact = np.asarray(exact, dtype=np.float64)
    assert exact.shape == (P,), f"exact gradient has shape {exact.shape}, estimates have {P} columns"
    bias = mean - exact
    bias_norm = float(np.linalg.norm(bias))
    se_mean = math.sqrt(variance / R)
    err = ((grads - exact) ** 2).sum(axis=1)  # [R]
    mse = float(err.mean())
    mse_half = Z95 * float(err.std(ddof=1)) / math.sqrt(R) if R > 1 else math.nan
    norms = np.linalg.norm(grads, axis=1) * np.linalg.norm(exact)
    cos = np.divide(grads @ exact, norms, out=np.zeros(R), where=norms > 0)
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
