"""The public measurement API: independent gradient estimates and their statistics against the
exact gradient.

* `gradient_samples(task, estimator, ...) -> [R, P]` float64: R independent estimates of
  dL/dθ (θ flattened in the task's ``param_layout`` order), from a `GradientSampler`;
* `gradient_stats(task, estimator, ...) -> dict`: their statistics (`gradest.statistics`)
  against the exact gradient (`gradest.truth`), with the seconds per estimate, in O(P) memory
  when [R, P] is large (`gradest.streaming`);
* `exact_gradient(task, ...) -> [P]` float64 or None (`gradest.truth`).

The work is done by one module per job, each with its contract in its docstring:

=====================  ==============================================================
`gradest.binding`      estimator x task: compatibility, the surrogate loss of one
                       replicate, its noise, φ's objective, the chunk size
`gradest.sampler`      the cached compiled kernel, state and φ warm-ups, timing,
                       `GradientSampler`
`gradest.truth`        the one path to the exact loss and gradient
`gradest.statistics`   variance, bias, MSE, cosine, SNR of estimates [R, P]
`gradest.streaming`    the same statistics chunk by chunk, in O(P) memory
`gradest.memory`       the guard that refuses arrays that cannot fit, before any work
`gradest.cache`        the caches of compiled functions and built objects
=====================  ==============================================================

Every name this module had before the split is still importable from it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from gradest import noise, streaming
from gradest.binding import (CHUNK_BYTES, MAX_CHUNK, MAX_STATIC_CHUNK, UnsupportedCombinationError, auto_chunk,
                             check_compatible, default_samples, draw_noise, make_loss, noise_specs,
                             phi_objective, supporting_estimators)
from gradest.sampler import (PAD_GRANULE, PHI_WARMUP_LEARNING_RATE, PHI_WARMUP_STEPS, STATE_WARMUP_STEPS,
                             TIMING_THREADS, GradientSampler, SamplingKernel, Timing, recent_sampler,
                             sampling_kernel)
from gradest.statistics import Z95, summarize
from gradest.truth import Truth, exact_functions, exact_gradient, exact_loss
from gradest.validation import integer

__all__ = [
    # the public API
    "gradient_samples", "gradient_stats", "exact_gradient",
    # re-exported from the modules that define them
    "UnsupportedCombinationError", "supporting_estimators", "check_compatible", "default_samples", "make_loss",
    "noise_specs", "draw_noise", "phi_objective", "auto_chunk", "CHUNK_BYTES", "MAX_STATIC_CHUNK", "MAX_CHUNK",
    "SamplingKernel", "sampling_kernel", "Timing", "GradientSampler", "PAD_GRANULE", "STATE_WARMUP_STEPS",
    "PHI_WARMUP_STEPS", "PHI_WARMUP_LEARNING_RATE", "TIMING_THREADS", "exact_functions", "exact_loss", "Z95",
    "summarize",
]


def gradient_samples(task, estimator, *, backend="torch", device="cpu", num_replicates=1000,
                     num_samples=None, seed=0, **options) -> np.ndarray:
    """[num_replicates, num_params]: independent estimates of dL/dθ at the task's initial θ
    (θ flattened in the task's ``param_layout`` order), each averaging ``num_samples`` samples
    (default: the fewest the estimator works with, its ``min_samples``: 1 for most, 2 for
    leave-one-out baselines).

    Extra options: ``dtype`` ("float32"), ``params`` (θ other than θ₀), ``chunk_size``
    (memory only: the numbers do not depend on it), ``phi_warmup`` (φ training steps at θ for
    estimators with trainable φ; default `PHI_WARMUP_STEPS`, 0: φ as initialized). Repeated
    calls with the same task, estimator, backend, S and chunk size reuse the compiled function.

    An [R, P] result that cannot fit in the available memory is refused before any work
    (`gradest.memory.InsufficientMemoryError`, naming its size): `gradient_stats` streams."""
    return recent_sampler(task, estimator, backend=backend, device=device, num_samples=num_samples, seed=seed,
                          num_replicates=num_replicates, **options).run(num_replicates)


def gradient_stats(task, estimator, *, backend="torch", device="cpu", num_replicates=1000,
                   num_samples=None, seed=0, timing_repeats: int = 5, threads: int | None = TIMING_THREADS,
                   **options) -> dict[str, Any]:
    """Variance (trace of covariance), bias_norm, mse, cosine_to_exact, snr and
    seconds_per_estimate (with 95% intervals) of ``estimator`` on ``task``, against the exact
    gradient.

    Timing: the median of ``timing_repeats`` vectorized calls after a warm-up, with their range
    (``seconds_low``/``seconds_high``), run with ``threads`` intra-op threads (default 1: tiny
    operations are stable on one thread; None: the backend's setting). The result records
    ``threads``, ``timing_repeats``, ``phi_warmup_steps`` and ``noise_version``. Options as
    `gradient_samples`.

    Memory: O(P) in R (`gradest.streaming`: when R·P·8 exceeds `gradest.streaming.STREAM_BYTES`
    the estimates are streamed in chunks, the numbers equal to those of the whole array up to
    float64 rounding; a second pass recomputes the chunks for the variance's interval)."""
    R = integer("num_replicates", num_replicates)
    sampler = GradientSampler(task, estimator, backend=backend, device=device,
                              num_samples=num_samples, seed=seed, **options)
    stats = streaming.summarize_sampler(sampler, R, Truth(sampler.task, sampler.backend).grad(sampler.params))
    timing = sampler.time_per_estimate(timing_repeats, min(sampler.chunk_size, R), threads)
    stats.update({
        "task": sampler.task.name, "estimator": sampler.estimator.label, "backend": sampler.backend.name,
        "device": sampler.backend.device, "num_samples": sampler.num_samples, "seed": sampler.seed,
        "seconds_per_estimate": timing.median, "seconds_low": timing.low, "seconds_high": timing.high,
        "timing_repeats": timing.repeats, "threads": timing.threads,
        "work_normalized_variance": stats["variance"] * timing.median,
        "phi_warmup_steps": sampler.phi_warmup_steps, "noise_version": noise.NOISE_VERSION,
    })
    return stats
