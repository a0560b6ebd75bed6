"""Statistics streamed over chunks (`gradest.streaming`) and the memory guard (`gradest.memory`).

The streamed statistics are compared with `summarize` on the whole [R, P] array of the same
estimates: the row statistics are the same float64 arithmetic, the mean is summed in another
order, so they agree to float64 rounding (relative 1e-12 here; the values are O(1) to O(P) and
sums of at most a few thousand terms, whose rounding is below 1e-13 relative).
"""
from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

import gradest
from gradest import memory, streaming
from gradest.sampler import GradientSampler, SamplingKernel
from gradest.statistics import summarize
from gradest.truth import Truth

RTOL = 1e-12
#: one task for the real samplers, so that the tests share its compiled kernels
TOY = gradest.get_task("binary_toy", target=np.linspace(0.1, 0.9, 9))
TIMING_KEYS = {"seconds_per_estimate", "seconds_low", "seconds_high", "work_normalized_variance", "threads"}


def assert_same_numbers(got: dict, want: dict, rtol: float = RTOL) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, float) and math.isfinite(value):
            assert got[key] == pytest.approx(value, rel=rtol, abs=1e-300), key
        elif isinstance(value, float) and math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == value, key


class CountingSampler:
    """A `GradientSampler`'s chunk interface over float64 estimates that depend on the replicate
    index alone (as the noise promise makes them), counting the replicates computed."""

    def __init__(self, num_params: int, chunk_size: int, scale: float = 3.0):
        self.task = type("T", (), {"num_params": num_params})()
        self.chunk_size, self.scale, self.computed = chunk_size, scale, 0
        self.live = 0  # chunks handed out and not yet dropped by the consumer

    def rows(self, first: int, count: int) -> np.ndarray:
        out = np.empty((count, self.task.num_params))
        for i in range(count):  # replicate i from its own generator: chunking cannot change it
            out[i] = np.random.default_rng(first + i).normal(1.0, self.scale, self.task.num_params)
        return out

    def chunks(self, num_replicates: int, start: int = 0):
        for first in range(start, num_replicates, self.chunk_size):
            count = min(self.chunk_size, num_replicates - first)
            self.computed += count
            yield first, self.rows(first, count)


@pytest.mark.parametrize("chunk", [16, 37, 500])  # divides R, does not divide R, holds R
@pytest.mark.parametrize("keep_bytes", [0, streaming.KEEP_BYTES])
def test_stream_equals_summarize_on_the_whole_array(chunk, keep_bytes):
    R, P = 300, 257
    sampler = CountingSampler(P, chunk)
    exact = np.linspace(-1, 2, P)
    full = sampler.rows(0, R)
    for truth in (exact, None):
        sampler.computed = 0
        assert_same_numbers(streaming.stream_summary(sampler, R, truth, keep_bytes=keep_bytes), summarize(full, truth))
        # one pass, then a second over the chunks not kept (at least the last chunk is kept)
        last = R - (R - 1) // chunk * chunk
        assert sampler.computed == (R if keep_bytes else 2 * R - last)


@pytest.mark.parametrize("chunk", [7, 16, 64])  # does not divide R = 48, divides it, holds it (padded in JAX)
def test_stream_of_a_real_sampler_equals_summarize(backend_name, chunk):
    sampler = GradientSampler(TOY, "reinforce", backend=backend_name, chunk_size=chunk, seed=3)
    exact = Truth(sampler.task, sampler.backend).grad(sampler.params)
    R = 48
    full = sampler.run(R)
    for first, rows in sampler.chunks(R):  # the chunks are run's rows
        np.testing.assert_array_equal(rows, full[first:first + len(rows)])
    assert_same_numbers(streaming.stream_summary(sampler, R, exact, keep_bytes=0), summarize(full, exact))


def test_gradient_stats_streams_with_the_same_numbers(backend_name, monkeypatch):
    """`gradient_stats` streamed (the threshold at 0) gives the in-memory numbers."""
    options = dict(backend=backend_name, num_replicates=60, chunk_size=16, seed=1, timing_repeats=1)
    whole = gradest.gradient_stats(TOY, "reinforce", **options)
    monkeypatch.setattr(streaming, "STREAM_BYTES", 0)
    calls = []
    real = streaming.stream_summary
    monkeypatch.setattr(streaming, "stream_summary", lambda *a, **k: calls.append(1) or real(*a, **k))
    streamed = gradest.gradient_stats(TOY, "reinforce", **options)
    assert calls == [1]
    assert_same_numbers({k: v for k, v in streamed.items() if k not in TIMING_KEYS},
                        {k: v for k, v in whole.items() if k not in TIMING_KEYS})


def test_stream_memory_does_not_grow_with_r():
    """Peak NumPy memory (tracemalloc) of a stream of R = 2000 is that of R = 200 plus O(R)
    scalars, far below the [R, P] array (16 MB) that `summarize` holds."""
    P, chunk = 1000, 50

    def peak(R):
        sampler = CountingSampler(P, chunk)
        tracemalloc.start()
        try:
            streaming.stream_summary(sampler, R, np.zeros(P), keep_bytes=0)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(200), peak(2000)
    assert large - small < 8 * 4 * 2000 + 100_000, (small, large)  # four [R] float64 vectors
    assert large < 2000 * P * 8 / 4, large


# ---- the memory guard --------------------------------------------------------------------------
def test_gradient_samples_that_cannot_fit_are_refused_before_work(monkeypatch, backend_name):
    def no_work(*args, **kwargs):
        raise AssertionError("work started before the memory check")

    monkeypatch.setattr(SamplingKernel, "prepare", no_work)
    monkeypatch.setattr(SamplingKernel, "estimates", no_work)
    with pytest.raises(memory.InsufficientMemoryError, match=r"\[1000000000000, 10\] float64.*72\.8 TiB.*gradient_stats"):
        gradest.gradient_samples("bandit", "reinforce", backend=backend_name, num_replicates=10**12)
    assert issubclass(memory.InsufficientMemoryError, ValueError)


def test_a_sampler_already_built_refuses_before_running(monkeypatch):
    task, est = gradest.get_task("bandit"), gradest.get_estimator("reinforce")
    assert gradest.gradient_samples(task, est, num_replicates=8).shape == (8, 10)  # cached sampler
    monkeypatch.setattr(memory, "available_bytes", lambda: 1000)
    monkeypatch.setattr(memory, "UNCHECKED_BYTES", 0)
    monkeypatch.setattr(SamplingKernel, "estimates", lambda *a, **k: pytest.fail("estimates computed"))
    with pytest.raises(memory.InsufficientMemoryError, match=r"num_replicates=100 .*7\.8 KiB.*only 1000 B.*at most ~12 replicates"):
        gradest.gradient_samples(task, est, num_replicates=100)


def test_a_chunk_that_cannot_fit_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 10_000)
    monkeypatch.setattr(memory, "UNCHECKED_BYTES", 0)
    monkeypatch.setattr(SamplingKernel, "prepare", lambda *a, **k: pytest.fail("warm-up started"))
    with pytest.raises(memory.InsufficientMemoryError,
                       match=r"a chunk of 4096 replicates \(chunk_size.*smaller chunk_size \(at most ~\d+\)"):
        GradientSampler("bandit", "reinforce", chunk_size=4096)
    with pytest.raises(memory.InsufficientMemoryError, match="smaller chunk_size"):
        gradest.gradient_stats("bandit", "reinforce", chunk_size=4096, num_replicates=10)


def test_small_requests_do_not_ask_the_system(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: pytest.fail("the system was asked"))
    memory.require(memory.UNCHECKED_BYTES, "a small array", "none needed")
    assert gradest.gradient_samples("bandit", "reinforce", num_replicates=100).shape == (100, 10)


def test_available_memory_is_positive_and_formatted():
    assert memory.available_bytes() > 0
    assert memory.format_bytes(512) == "512 B"
    assert memory.format_bytes(3 * 2**30) == "3.0 GiB"


# ---- the asv suite's yardsticks ----------------------------------------------------------------
def test_hand_written_loops_compute_the_streamed_numbers():
    """`benchmarks._references.streaming`: the loops the time ratios divide by compute the
    statistics gradest streams (one_pass's variance from Σg² - (Σg)²/R: 1e-9 relative)."""
    from benchmarks import statistics as suite
    from benchmarks._references import streaming as loops

    sampler = GradientSampler(TOY, "reinforce", chunk_size=7, seed=3)
    exact = Truth(sampler.task, sampler.backend).grad(sampler.params)
    R = 48
    want = streaming.stream_summary(sampler, R, exact)
    one, two = loops.one_pass(sampler, R, exact), loops.two_pass(sampler, R, exact)
    for key in ("bias_norm", "mse", "cosine_to_exact"):
        assert one[key] == pytest.approx(want[key], rel=RTOL) and two[key] == pytest.approx(want[key], rel=RTOL)
    assert one["variance"] == pytest.approx(want["variance"], rel=1e-9)
    assert two["variance"] == pytest.approx(want["variance"], rel=RTOL)
    assert want["variance_high"] - want["variance"] == pytest.approx(two["variance_half"], rel=1e-9)
    assert want["mse_high"] - want["mse"] == pytest.approx(two["mse_half"], rel=1e-9)
    no_truth = loops.two_pass(sampler, R, None)  # a task without ground truth: mean and variance only
    assert no_truth.keys() == {"mean", "variance", "variance_half"} and no_truth["variance"] == two["variance"]
    calls = []
    out = suite.interleaved_ratio(lambda: calls.append("a"), lambda: calls.append("b"), repeats=3)
    assert calls == ["a", "b"] * 4 and out["repeats"] == 3 and out["ratio"] > 0
    assert {"peakmem_gradient_stats", "track_time_ratio_one_pass", "track_time_ratio_two_pass"} <= set(
        dir(suite.StreamingStatistics))
