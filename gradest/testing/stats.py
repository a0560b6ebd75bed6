"""The statistics of the conformance kit: the z-test of unbiasedness, Bonferroni-corrected.

Contract: `z_test(samples [R, P], exact [P], alpha)` rejects a correct (unbiased) estimator with
probability at most ``alpha`` over the whole family of P coordinates (asymptotically in R);
the standard error is floored (`z_scores`), so that an estimator of zero variance is compared
with a float tolerance rather than exactly. NumPy only: no framework is imported here.
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import NamedTuple

import numpy as np

__all__ = ["ALPHA", "ZTest", "z_scores", "z_test"]

#: the family level of the kit's z-tests
ALPHA = 1e-4


class ZTest(NamedTuple):
    """``max_z``: the largest |z| over coordinates; ``threshold``: the Bonferroni critical value."""

    max_z: float
    threshold: float

    @property
    def passed(self) -> bool:
        return bool(self.max_z <= self.threshold)


def _se_floor(exact: np.ndarray) -> float:
    return 1e-6 * (1.0 + float(np.max(np.abs(exact)))) if exact.size else 1e-6


def z_scores(samples, exact, *, se_floor: float | None = None) -> np.ndarray:
    """Per-coordinate z = (mean - exact) / (sd / sqrt(R)) of estimates ``samples`` [R, P].

    The standard error is floored at ``se_floor`` (default 1e-6 (1 + max|exact|)), so that an
    estimator of zero variance is compared with a float tolerance rather than exactly."""
    samples = np.asarray(samples, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64).reshape(-1)
    if samples.ndim != 2 or samples.shape[1] != exact.shape[0]:
        raise ValueError(f"samples must be [R, P] with P = {exact.shape[0]} (the exact gradient's size), "
                         f"got shape {samples.shape}")
    R = samples.shape[0]
    if R < 2:
        raise ValueError(f"a z-test needs at least 2 samples, got {R}")
    floor = _se_floor(exact) if se_floor is None else float(se_floor)
    se = np.maximum(samples.std(axis=0, ddof=1) / math.sqrt(R), floor)
    return (samples.mean(axis=0) - exact) / se


def z_test(samples, exact, *, alpha: float = ALPHA, se_floor: float | None = None) -> ZTest:
    """Two-sided z-test of E[samples] = exact for every coordinate, Bonferroni-corrected.

    ``samples`` [R, P] are independent estimates, ``exact`` [P] the truth. Returns the largest
    |z| and the threshold Φ⁻¹(1 - alpha / (2P)): the family of P tests rejects with probability
    at most ``alpha`` (asymptotically in R) when the estimator is unbiased."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    z = z_scores(samples, exact, se_floor=se_floor)
    threshold = NormalDist().inv_cdf(1.0 - alpha / (2 * z.shape[0]))
    return ZTest(float(np.max(np.abs(z))), float(threshold))
