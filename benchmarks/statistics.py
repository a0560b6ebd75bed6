"""Quality of gradient estimates over the grid, against the exact gradient.

For each grid point, `gradest.gradient_stats` draws R independent estimates at the task's
initial θ (R = the task's ``benchmark_sizes.num_replicates``, `_grid.NUM_SAMPLES` samples each,
seed `_grid.SEED`) and compares them with the exact gradient (enumeration or closed form):

* ``track_variance``: trace of the covariance of one estimate, E‖g - E g‖².
* ``track_bias_sq``: ‖E g - ∇L‖², the squared bias (its sampling floor is variance / R).
* ``track_mse``: E‖g - ∇L‖² = variance + bias².
* ``track_work_normalized_variance``: variance x seconds per estimate (the best of three timed
  vectorized calls): lower is better at equal compute, the efficiency measure of [1].

Bias and MSE are NaN (asv: n/a) on a task without ground truth. The numbers are deterministic
under the seed except the work-normalized variance, which carries a timing.

One suite per distribution kind (`_grid.suite_classes`): ``EstimatorStatistics_<kind>``.
A grid point's statistics are computed once per run, by the first of its ``track_`` benchmarks
(`_grid.point_values`, in the suite's ``setup_cache`` folder), and read by the others: a
``--bench`` selection pays only for the grid points it runs. A grid point that cannot run is
skipped; one whose computation failed fails alone, with its traceback.

[1] Glynn & Whitt, The Asymptotic Efficiency of Simulation Estimators, Operations Research 1992.
"""
from __future__ import annotations

import math

from gradest.measure import gradient_stats

from . import _grid

STAT_KEYS = ("variance", "bias_sq", "mse", "work_normalized_variance", "seconds_per_estimate",
             "cosine_to_exact")


def case_statistics(case) -> dict:
    """`gradest.gradient_stats` of a grid point (a `_grid.Case`): R = the task's
    ``num_replicates``."""
    stats = gradient_stats(case.task, case.estimator, backend=case.backend,
                           num_replicates=case.sizes.num_replicates, num_samples=case.num_samples,
                           seed=_grid.SEED)
    return {k: stats[k] for k in STAT_KEYS}


def finite_or_nan(value) -> float:
    value = float(value)
    return value if math.isfinite(value) else math.nan


class _EstimatorStatistics:
    """Variance, squared bias, MSE and work-normalized variance of one estimate."""

    param_names = _grid.PARAM_NAMES
    version = "1"
    timeout = 600

    def setup_cache(self):
        return _grid.run_folder()

    def setup(self, cache, estimator, task, backend, device):
        self.stats = _grid.point_values(cache, "statistics", (estimator, task, backend, device),
                                        case_statistics)

    def track_variance(self, cache, estimator, task, backend, device):
        return self.stats["variance"]

    track_variance.unit = "gradient^2"

    def track_bias_sq(self, cache, estimator, task, backend, device):
        return finite_or_nan(self.stats["bias_sq"])

    track_bias_sq.unit = "gradient^2"

    def track_mse(self, cache, estimator, task, backend, device):
        return finite_or_nan(self.stats["mse"])

    track_mse.unit = "gradient^2"

    def track_work_normalized_variance(self, cache, estimator, task, backend, device):
        """Timing-dependent: variance x seconds per estimate. A change here with no change in
        track_variance is a change of speed (or of the machine's load), not of quality."""
        return self.stats["work_normalized_variance"]

    track_work_normalized_variance.unit = "gradient^2*s"


_grid.suite_classes(_EstimatorStatistics, globals())
