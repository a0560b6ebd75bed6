"""Hand-written loops over the same estimates that `gradest.streaming` streams: the yardstick of
`benchmarks.statistics.StreamingStatistics`.

Both loops take a built `gradest.sampler.GradientSampler` (its compiled kernel, θ and state,
so the estimates are those of `gradest.gradient_stats`) and call its ``estimates(first,
count)`` chunk by chunk, accumulating in float64 NumPy by hand; neither goes through
`gradest.streaming` or `gradest.statistics`:

* `one_pass(sampler, R, exact [P])`: each estimate computed once. The mean from Σ g, the
  variance (trace) from the per-coordinate sums Σ g and Σ g² (Σ_j (Σg_j² - (Σg_j)²/R)/(R-1)),
  the bias, and the MSE and cosine with their intervals from per-replicate scalars. It cannot
  give the variance's interval, which needs ‖g_r - m‖² for the final mean m (see
  `gradest.streaming`): the least a loop computing each estimate once can do.
* `two_pass(sampler, R, exact [P])`: `one_pass`, then every chunk computed again for
  ‖g_r - m‖² and the variance's interval: by hand, what `gradest.streaming` computes.

Each returns a dict of the statistics it computed (names as `gradest.statistics.summarize`);
``exact`` None (no ground truth, e.g. bernoulli_vae on mnist5k): the mean and variance only.
No framework is imported: the sampler's backend does the work. This module declares no
``FRAMEWORK``: it is not a framework's reference (`benchmarks._references.for_backend`).
"""
from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054


def _chunk(sampler, first: int, count: int) -> np.ndarray:
    """[count, P] float64: replicates first .. first+count-1."""
    return np.asarray(sampler.backend.to_numpy(sampler.estimates(first, count)), dtype=np.float64)


def _half(values: np.ndarray) -> float:
    return Z95 * float(values.std(ddof=1)) / math.sqrt(len(values))


def one_pass(sampler, num_replicates: int, exact: np.ndarray | None) -> dict:
    """The statistics one pass gives (module docstring)."""
    R, P, chunk = int(num_replicates), sampler.task.num_params, sampler.chunk_size
    total, total_sq = np.zeros(P), np.zeros(P)  # [P] Σ g, Σ g²
    err, cos = np.empty(R), np.empty(R)  # [R]
    if exact is not None:
        exact = np.asarray(exact, dtype=np.float64)
        exact_norm = float(np.linalg.norm(exact))
    for first in range(0, R, chunk):
        g = _chunk(sampler, first, min(chunk, R - first))  # [n, P]
        total += g.sum(axis=0)
        total_sq += np.einsum("rp,rp->p", g, g)
        if exact is not None:
            rows = slice(first, first + len(g))
            err[rows] = ((g - exact) ** 2).sum(axis=1)
            norms = np.linalg.norm(g, axis=1) * exact_norm
            cos[rows] = np.divide(g @ exact, norms, out=np.zeros(len(g)), where=norms > 0)
    mean = total / R
    out = {"variance": float((total_sq - total * mean).sum() / (R - 1)), "mean": mean}
    if exact is not None:
        out.update(bias_norm=float(np.linalg.norm(mean - exact)), mse=float(err.mean()), mse_half=_half(err),
                   cosine_to_exact=float(cos.mean()), cosine_half=_half(cos))
    return out


def two_pass(sampler, num_replicates: int, exact: np.ndarray | None) -> dict:
    """`one_pass`, then a second pass for the variance's interval (module docstring)."""
    R, chunk = int(num_replicates), sampler.chunk_size
    out = one_pass(sampler, R, exact)
    mean = out["mean"]
    dev = np.empty(R)  # [R] ‖g_r - m‖² · R/(R-1)
    for first in range(0, R, chunk):
        g = _chunk(sampler, first, min(chunk, R - first))
        dev[first:first + len(g)] = ((g - mean) ** 2).sum(axis=1) * (R / (R - 1))
    out.update(variance=float(dev.mean()), variance_half=_half(dev))
    return out
