"""Statistics of R gradient estimates in O(P) memory, streamed over the sampler's chunks.

`stream_summary(sampler, R, exact [P] | None) -> dict` returns `gradest.statistics.summarize`'s
dict for the estimates of replicates 0 .. R-1 of a `gradest.sampler.GradientSampler`, without
ever holding the [R, P] array: memory is O(P) (a few chunks [chunk, P]) plus O(R) scalars.
`summarize_sampler(sampler, R, exact)` is what `gradest.gradient_stats` calls: the whole array
and `summarize` when it is small (R·P·8 ≤ `STREAM_BYTES`: bit-for-bit the numbers of before),
the stream otherwise.

Every statistic of `summarize` is a function of the mean estimate m [P] and three scalars per
replicate (`gradest.statistics.summary`):

* e_r = ‖g_r - ∇L‖² (MSE and its interval) and c_r = cos(g_r, ∇L) (cosine and its interval):
  one pass, chunk by chunk, as g_r arrives; m accumulates as the sum Σ_r g_r [P];
* d_r = ‖g_r - m‖² (variance = R/(R-1) · mean d_r, its interval from the spread of d_r, and
  through it the bias interval and the SNR): needs the final m. No O(P) one-pass form exists:
  Σ_r d_r² = Σ_r (‖g_r‖² - 2 g_r·m + ‖m‖²)² holds Σ_r (g_r·m)² = mᵀ(Σ_r g_r g_rᵀ)m, a [P, P]
  quantity (Welford's update gives Σ_r d_r, not its spread). So a second pass recomputes the
  chunks: replicate i's noise depends on (seed, stream, i) alone (`gradest.noise`), so a chunk
  computed again is the same numbers, and d_r is computed directly (no cancellation). The
  last chunks of the first pass (up to `KEEP_BYTES`, at least one chunk) are kept and not
  recomputed, so R within one chunk costs one pass.

Where the numbers are computed: in float64 NumPy, chunk by chunk, on the host — the same
arithmetic `summarize` does, so the stream agrees with it to float64 rounding (the row
statistics are bit-identical; only the order of the mean's sum differs). On the device in the
estimates' float32 the sums over R and P would differ at 1e-7 relative, and float64 on the
device is not available in every backend (JAX without x64). The host copy of a chunk is what
`run` made before too.
"""
from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from gradest.statistics import cosines, squared_distances, summarize, summary

__all__ = ["STREAM_BYTES", "KEEP_BYTES", "summarize_sampler", "stream_summary"]

#: above this size of the [R, P] float64 array, `summarize_sampler` streams
STREAM_BYTES = 64 * 2**20
#: first-pass chunks kept for the second pass (at least the last one)
KEEP_BYTES = 64 * 2**20


def summarize_sampler(sampler, num_replicates: int, exact: np.ndarray | None,
                      stream_bytes: int | None = None) -> dict[str, Any]:
    """`summarize` of ``sampler``'s R estimates: in memory when R·P·8 ≤ ``stream_bytes``
    (default `STREAM_BYTES`), else `stream_summary` (same numbers to float64 rounding, O(P)
    memory)."""
    R, P = int(num_replicates), sampler.task.num_params
    if R * P * 8 <= (STREAM_BYTES if stream_bytes is None else stream_bytes):
        return summarize(sampler.run(R), exact)
    return stream_summary(sampler, R, exact)


def stream_summary(sampler, num_replicates: int, exact: np.ndarray | None,
                   keep_bytes: int = KEEP_BYTES) -> dict[str, Any]:
    """`gradest.statistics.summarize`'s dict of replicates 0 .. R-1 of ``sampler`` (anything
    with ``task.num_params`` and ``chunks(R, start)`` yielding (first, [count, P] float64)),
    in two passes over the chunks (see the module docstring)."""
    R, P = int(num_replicates), sampler.task.num_params
    assert R >= 1, f"num_replicates must be >= 1, got {R}"
    if exact is not None:
        exact = np.asarray(exact, dtype=np.float64)
        assert exact.shape == (P,), f"exact gradient has shape {exact.shape}, estimates have {P} columns"
    total = np.zeros(P)  # [P]: Σ_r g_r
    errors = np.empty(R) if exact is not None else None  # [R]: ‖g_r - ∇L‖²
    cos = np.empty(R) if exact is not None else None  # [R]: cos(g_r, ∇L)
    kept: deque = deque()  # the last chunks of the first pass: (first, [count, P])
    kept_bytes, seen = 0, 0
    for first, grads in sampler.chunks(R):  # pass 1
        assert first == seen and grads.shape[1] == P, (first, seen, grads.shape)
        rows = slice(first, first + len(grads))
        total += grads.sum(axis=0)
        if exact is not None:
            errors[rows] = squared_distances(grads, exact)
            cos[rows] = cosines(grads, exact)
        kept.append((first, grads))
        kept_bytes += grads.nbytes
        while len(kept) > 1 and kept_bytes > keep_bytes:  # O(P): the oldest goes
            kept_bytes -= kept.popleft()[1].nbytes
        seen += len(grads)
    assert seen == R, f"the chunks gave {seen} replicates, expected {R}"
    mean = total / R  # [P]
    deviations = np.empty(R)  # [R]: ‖g_r - m‖²
    resume = kept[0][0]  # the replicates before it are computed again
    if resume > 0:
        for first, grads in sampler.chunks(resume):  # pass 2 (replicates 0 .. resume-1)
            deviations[first:first + len(grads)] = squared_distances(grads, mean)
    for first, grads in kept:
        deviations[first:first + len(grads)] = squared_distances(grads, mean)
    return summary(P, mean, deviations, errors, cos, exact)
