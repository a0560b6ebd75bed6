"""The harness around the estimators: φ warm-up of learned estimators, timings with a stated
thread count, the public `Trainer`, shared validation, and no framework names above
``gradest/backends/``."""
from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

import gradest
from gradest.measure import PHI_WARMUP_STEPS, GradientSampler

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _mean_phi_loss(sampler, replicates: int = 400) -> float:
    """E[phi_loss] at the sampler's φ, over fresh noise (a stream the warm-up never drew)."""
    from gradest import noise
    from gradest.measure import phi_objective

    B = sampler.backend
    objective = phi_objective(sampler.task, sampler.estimator, B)
    draws = noise.draw_tree(B, noise.prefixed(sampler.specs, "check"), 77, 0, replicates)
    draws = noise.unprefixed(draws, "check")
    one = B.vmap(lambda n: objective(sampler.state["phi"], sampler.params, n, sampler.state, None))
    return float(np.mean(B.to_numpy(one(draws))))


def test_phi_warmup_trains_phi_for_what_it_minimizes(backend_name):
    """RELAX's φ minimizes E‖ĝ‖² (= variance + ‖∇L‖²): after the warm-up it is lower on noise
    the warm-up never saw, and so is the measured variance (95% intervals apart)."""
    task = gradest.get_task("binary_toy", target=[0.45, 0.2, 0.7], logits=[0.0, 0.5, -0.5])
    cold = GradientSampler(task, "relax", backend=backend_name, phi_warmup=0)
    warm = GradientSampler(task, "relax", backend=backend_name)
    assert warm.phi_warmup_steps == PHI_WARMUP_STEPS and cold.phi_warmup_steps == 0
    assert not np.allclose(cold.backend.to_numpy(cold.state["phi"]), warm.backend.to_numpy(warm.state["phi"]))
    assert _mean_phi_loss(warm) < _mean_phi_loss(cold)
    s_cold = gradest.gradient_stats(task, "relax", backend=backend_name, num_replicates=3000, phi_warmup=0,
                                    timing_repeats=1)
    s_warm = gradest.gradient_stats(task, "relax", backend=backend_name, num_replicates=3000, timing_repeats=1)
    assert s_warm["variance_high"] < s_cold["variance_low"]
    assert (s_cold["phi_warmup_steps"], s_warm["phi_warmup_steps"]) == (0, PHI_WARMUP_STEPS)
    # the warm-up draws its own streams: the measured samples are those of an estimator without φ
    np.testing.assert_array_equal(
        warm.backend.to_numpy(gradest.measure.draw_noise(warm.backend, warm.specs, 0, 0, 5)["estimator"]["sample"]),
        cold.backend.to_numpy(gradest.measure.draw_noise(cold.backend, cold.specs, 0, 0, 5)["estimator"]["sample"]))


def test_phi_warmup_is_deterministic_and_recorded_only_where_phi_exists(backend_name):
    a = gradest.gradient_samples("binary_toy", "relax", backend=backend_name, num_replicates=50, phi_warmup=20)
    b = gradest.gradient_samples("binary_toy", "relax", backend=backend_name, num_replicates=50, phi_warmup=20)
    np.testing.assert_array_equal(a, b)
    stats = gradest.gradient_stats("bandit", "reinforce", backend=backend_name, num_replicates=50, timing_repeats=1)
    assert stats["phi_warmup_steps"] == 0
    with pytest.raises(ValueError, match="phi_warmup must be an integer >= 0"):
        gradest.gradient_samples("binary_toy", "relax", phi_warmup=-1)


def test_timings_state_their_thread_count(backend_name):
    stats = gradest.gradient_stats("bandit", "reinforce", backend=backend_name, num_replicates=200, timing_repeats=3)
    B = gradest.backends.get_backend(backend_name)
    assert stats["threads"] >= 1 and stats["timing_repeats"] == 3
    assert stats["seconds_low"] <= stats["seconds_per_estimate"] <= stats["seconds_high"]
    before = B.thread_count()
    with B.threads(1):
        assert B.thread_count() == 1 or backend_name == "jax"  # jax's is fixed at import (XLA_FLAGS)
    assert B.thread_count() == before


def test_trainer_is_train_one_step_at_a_time(backend_name):
    kwargs = dict(backend=backend_name, seed=2, num_samples=2, learning_rate=0.1)
    trainer = gradest.Trainer("bandit", "reinforce", **kwargs)
    losses = [trainer.step() for _ in range(5)]
    result = gradest.train("bandit", "reinforce", steps=5, **kwargs)
    np.testing.assert_allclose(losses, result.history["loss"], rtol=1e-6)
    np.testing.assert_allclose(trainer.params(), result.params, rtol=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda: gradest.gradient_samples("bandit", "reinforce", num_replicates=0), "num_replicates must be a positive"),
    (lambda: gradest.gradient_samples("bandit", "reinforce", num_samples=True), "num_samples must be a positive"),
    (lambda: gradest.gradient_samples("bandit", "reinforce", params=[0.0] * 3), "flat vector of 10 entries"),
    (lambda: gradest.train("bandit", "reinforce", steps=0), "steps must be a positive"),
    (lambda: gradest.train("bandit", "reinforce", steps=2, params=np.full(10, np.nan)), "non-finite"),
    (lambda: gradest.Trainer("bandit", "reinforce", optimizer="adamw"), "known optimizers: adam, sgd"),
])
def test_bad_input_is_refused_before_any_work(call, message):
    with pytest.raises(ValueError, match=message):
        call()


BACKEND_TEST = re.compile(r"""(\.name|backend|\bb)\s*[!=]=\s*["'](torch|jax)["']|["'](torch|jax)["']\s*[!=]=""")


def test_no_module_above_backends_tests_a_backend_name():
    offenders = []
    for folder in ("gradest", "estimators", "tasks", "reports"):
        for path in (ROOT / folder).rglob("*.py"):
            if "backends" in path.relative_to(ROOT).parts:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if BACKEND_TEST.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == [], "\n".join(offenders)
