"""The noise promise of `gradest.noise`: replicate i of stream s under seed k depends on
(k, s, i) alone — not on the chunk size, R, what else an estimator draws, or the run."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import gradest
from gradest import noise
from gradest.estimator import GradientEstimator, NoiseSpec
from gradest.measure import GradientSampler, draw_noise, make_loss

R = 3000


def _noisy_bandit():
    # the task draws its own stream ("task/reward") beside the estimator's sample stream
    return gradest.get_task("bandit", rewards=[0.1, 0.2, 0.4, 0.5, 0.8, 1.0], logits=[0.3, -0.2, 0.0, 0.1, 0.5, -0.4],
                            reward_noise="gaussian")


@pytest.mark.parametrize("kind", ["uniform", "normal", "gumbel"])
def test_a_replicate_is_the_same_in_every_window(backend, kind):
    """Any window [first, first + count) holds the rows of the one long draw."""
    B = backend
    full = B.to_numpy(noise.draw(B, 5, "estimator/sample", kind, (2, 3), 0, R))
    for first, count in [(0, 1), (0, 100), (7, 7), (1023, 2), (1500, 1500), (2999, 1)]:
        part = B.to_numpy(noise.draw(B, 5, "estimator/sample", kind, (2, 3), first, count))
        np.testing.assert_array_equal(part, full[first:first + count])
    # and it differs from replicate to replicate
    assert len(np.unique(full.reshape(R, -1), axis=0)) == R


def test_streams_and_seeds_are_independent_names(backend):
    B = backend
    a = B.to_numpy(noise.draw(B, 1, "estimator/sample", "normal", (4,), 0, 500))
    for other in (noise.draw(B, 2, "estimator/sample", "normal", (4,), 0, 500),
                  noise.draw(B, 1, "task/reward", "normal", (4,), 0, 500),
                  noise.draw(B, 1, "warmup/estimator/sample", "normal", (4,), 0, 500)):
        assert abs(np.corrcoef(a.ravel(), B.to_numpy(other).ravel())[0, 1]) < 0.1


def test_chunk_size_changes_memory_not_numbers(backend_name):
    """Measured case: a 6-armed bandit with reward noise, R = 3,000, chunk 7 vs the default."""
    task = _noisy_bandit()
    est = gradest.get_estimator("reinforce", baseline="loo")
    default = gradest.gradient_samples(task, est, backend=backend_name, num_replicates=R, num_samples=2, seed=3)
    sevens = gradest.gradient_samples(task, est, backend=backend_name, num_replicates=R, num_samples=2, seed=3,
                                      chunk_size=7)
    np.testing.assert_allclose(sevens, default, rtol=1e-6, atol=1e-7)
    # the noise itself, for the sample stream and the task's stream, is bit for bit the same
    sampler = GradientSampler(task, est, backend=backend_name, num_samples=2, seed=3, chunk_size=7)
    whole = draw_noise(sampler.backend, sampler.specs, 3, 0, R)
    for first in (0, 7, 2996):
        window = draw_noise(sampler.backend, sampler.specs, 3, first, 4)
        for group in ("estimator", "task"):
            for name, arr in window[group].items():
                B = sampler.backend
                np.testing.assert_array_equal(B.to_numpy(arr), B.to_numpy(whole[group][name])[first:first + 4])


def test_a_short_run_is_a_prefix_of_a_long_one(backend_name):
    task = _noisy_bandit()
    long = gradest.gradient_samples(task, "reinforce", backend=backend_name, num_replicates=R, seed=1)
    short = gradest.gradient_samples(task, "reinforce", backend=backend_name, num_replicates=100, seed=1)
    np.testing.assert_allclose(short, long[:100], rtol=1e-6, atol=1e-7)
    one = gradest.gradient_samples(task, "reinforce", backend=backend_name, num_replicates=1, seed=1)
    np.testing.assert_allclose(one, long[:1], rtol=1e-6, atol=1e-7)


def _with_extra_noise(base: GradientEstimator) -> GradientEstimator:
    """``base`` asking for one more noise array that it does not use."""

    def noise_spec(dist, S):
        return {**base.noise_spec(dist, S), "extra": NoiseSpec((S, 64), "uniform")}

    def surrogate(f, dist, noise, state):
        return base.surrogate(f, dist, {k: v for k, v in noise.items() if k != "extra"}, state)

    return base._replace(noise_spec=noise_spec, surrogate=surrogate, name="reinforce_extra")


def test_an_extra_noise_array_does_not_move_the_samples(backend_name):
    """REINFORCE and the same estimator drawing one more array share every replicate's sample."""
    task = _noisy_bandit()
    plain = gradest.get_estimator("reinforce")
    extra = _with_extra_noise(plain)
    a = gradest.gradient_samples(task, plain, backend=backend_name, num_replicates=R, seed=2)
    b = gradest.gradient_samples(task, extra, backend=backend_name, num_replicates=R, seed=2)
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


def test_estimators_share_samples_beyond_any_chunk(backend_name):
    """On categorical_vae reinforce, rebar and relax draw different extra streams and chunk
    differently; their sample stream is the same for every replicate."""
    task = gradest.get_task("categorical_vae")
    samplers = [GradientSampler(task, name, backend=backend_name, seed=4) for name in ("reinforce", "rebar", "relax")]
    first = samplers[0]
    ref = draw_noise(first.backend, first.specs, 4, 0, 300)["estimator"]["sample"]
    for s in samplers[1:]:
        assert set(s.specs["estimator"]) - {"sample"}, "rebar/relax draw more than the sample"
        got = draw_noise(s.backend, s.specs, 4, 0, 300)["estimator"]["sample"]
        np.testing.assert_array_equal(s.backend.to_numpy(got), first.backend.to_numpy(ref))


def test_compiled_estimates_equal_estimates_on_drawn_noise(backend_name):
    """The estimates of the compiled call (noise drawn inside it) are ∇ loss on `draw_noise`'s
    numbers, replicate by replicate, in windows that straddle chunks."""
    s = GradientSampler("bandit", "reinforce", backend=backend_name, seed=3, num_samples=2, chunk_size=7)
    B = s.backend
    fused = s.run(14)
    vg = B.vmap(B.grad(make_loss(s.task, s.estimator, B), has_aux=True), in_axes=(None, 0, None))
    eager = np.asarray(B.to_numpy(vg(s.params, draw_noise(B, s.specs, 3, 0, 14), s.state)[0]))
    np.testing.assert_allclose(fused, eager, rtol=1e-6, atol=1e-7)
    assert not np.allclose(fused[:7], fused[7:])


_SCRIPT = """
import json, numpy as np
from gradest import noise
from gradest.backends import get_backend
out = {}
for name in ("torch", "jax"):
    B = get_backend(name)
    out[name] = np.asarray(B.to_numpy(noise.draw(B, 9, "estimator/sample", "gumbel", (3,), 40, 5))).tolist()
print(json.dumps(out))
"""


def test_every_process_draws_the_same_numbers():
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    from gradest.backends import get_backend

    run = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    other = json.loads(run.stdout.strip().splitlines()[-1])
    for name in ("torch", "jax"):
        B = get_backend(name)
        here = np.asarray(B.to_numpy(noise.draw(B, 9, "estimator/sample", "gumbel", (3,), 40, 5)))
        np.testing.assert_array_equal(np.asarray(other[name], dtype=here.dtype), here)


def test_training_step_t_uses_replicate_t(backend_name):
    """Step t of a training run draws replicate t: the first step's loss is the surrogate on
    replicate 0 of the seed's sample stream."""
    task = gradest.get_task("bandit")
    trainer = gradest.training.Trainer(task, "reinforce", backend=backend_name, seed=6, num_samples=3)
    B = trainer.backend
    values = [trainer.step() for _ in range(3)]
    samples = B.to_numpy(noise.draw(B, 6, noise.SAMPLE_STREAM, "gumbel", (3, 10), 0, 3))  # [3 steps, S, K]
    assert values[0] == pytest.approx(-task.rewards[samples[0].argmax(-1)].mean(), rel=1e-6)
    assert values[1] != values[0]


def test_seed_range_is_checked():
    with pytest.raises(ValueError, match="seed must be at most"):
        gradest.gradient_samples("bandit", "reinforce", seed=2**31)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        gradest.gradient_samples("bandit", "reinforce", seed=-1)
