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

``StreamingStatistics`` (per backend, on the CPU) holds the cost of `gradest.streaming` on a
large task, bernoulli_vae on mnist5k with DisARM (P = 314,784 parameters):

* ``peakmem_gradient_stats``: peak resident memory of the process around
  `gradest.gradient_stats` at R = `STREAM_REPLICATES` (1,000 in the default grid, 2.4 GiB as an
  [R, P] float64 array; 2,000 in the full grid, 4.7 GiB: arrays the statistics no longer hold);
* ``track_time_ratio_one_pass``: seconds of gradest's streamed statistics over a hand-written
  loop that computes each estimate once (`benchmarks._references.streaming.one_pass`), both
  at R = `RATIO_REPLICATES` (128 default, 256 full), medians of `RATIO_REPEATS` (3, 5) calls
  interleaved in one process. The
  streamed path computes the chunks twice (the variance interval needs the final mean), so
  about 2 - chunk/R is expected; a rise above it is overhead of gradest's own;
* ``track_time_ratio_two_pass``: the same against the hand-written loop that computes the same
  statistics (`two_pass`): about 1.

[1] Glynn & Whitt, The Asymptotic Efficiency of Simulation Estimators, Operations Research 1992.
"""
from __future__ import annotations

import math
import statistics as _stats
import time

from gradest import sampler as _sampler
from gradest import streaming as _streaming
from gradest import truth as _truth
from gradest.measure import gradient_stats

from . import _grid
from ._references import streaming as _reference

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


# ---- streaming statistics on a large task ---------------------------------------------------
STREAM_TASK = "bernoulli_vae[dataset=mnist5k]"
STREAM_ESTIMATOR = "disarm"
#: R of ``peakmem_gradient_stats``, per grid (`_grid.grid_name`): the default grid's 1,000 would
#: already be 2.4 GiB as an [R, P] array, at half the full grid's cost
STREAM_REPLICATES = {"default": 1000, "full": 2000}[_grid.grid_name()]
#: R and interleaved repeats of the time ratios (the ratio is per estimate: a smaller R suffices)
RATIO_REPLICATES = {"default": 128, "full": 256}[_grid.grid_name()]
RATIO_REPEATS = {"default": 3, "full": 5}[_grid.grid_name()]


def interleaved_ratio(contender, reference, repeats: int = RATIO_REPEATS) -> dict:
    """Seconds of ``contender()`` over ``reference()`` (zero-argument calls), each timed
    ``repeats`` times alternately (A, B, A, B, ...) after one warm-up call of each: the ratio
    of the medians, with the medians and ranges."""
    contender(), reference()
    times: dict = {"contender": [], "reference": []}
    for _ in range(repeats):
        for name, call in (("contender", contender), ("reference", reference)):
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    med = {name: _stats.median(v) for name, v in times.items()}
    return {"ratio": med["contender"] / med["reference"], "median": med,
            "range": {name: (min(v), max(v)) for name, v in times.items()}, "repeats": repeats}


class StreamingStatistics:
    """`gradest.gradient_stats` on a task whose [R, P] estimates would not fit comfortably:
    peak memory, and time against hand-written loops (module docstring)."""

    params = [["torch", "jax"]]
    param_names = ["backend"]
    version = "1"
    timeout = 900
    number = 1
    repeat = 1
    rounds = 1

    def setup(self, backend):
        self.backend = _grid.backend_or_skip(backend, "cpu")
        self.task = _grid.build_task(STREAM_TASK)
        self.estimator = _grid.build_estimator(STREAM_ESTIMATOR)

    def _sampler(self):
        # module aliases: asv would take GradientSampler.time_per_estimate for a benchmark
        sampler = _sampler.GradientSampler(self.task, self.estimator, backend=self.backend, seed=_grid.SEED)
        return sampler, _truth.Truth(sampler.task, sampler.backend).grad(sampler.params)

    def peakmem_gradient_stats(self, backend):
        gradient_stats(self.task, self.estimator, backend=self.backend, num_replicates=STREAM_REPLICATES,
                       seed=_grid.SEED)

    def _ratio(self, loop) -> float:
        sampler, exact = self._sampler()
        R = RATIO_REPLICATES
        return interleaved_ratio(lambda: _streaming.summarize_sampler(sampler, R, exact),
                                 lambda: loop(sampler, R, exact))["ratio"]

    def track_time_ratio_one_pass(self, backend):
        return self._ratio(_reference.one_pass)

    track_time_ratio_one_pass.unit = "ratio"

    def track_time_ratio_two_pass(self, backend):
        return self._ratio(_reference.two_pass)

    track_time_ratio_two_pass.unit = "ratio"
