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
from gradest.backends import get_backend
from gradest.binding import noise_specs
from gradest.measure import GradientSampler, draw_noise, make_loss

R = 3000


def _noisy_bandit():
    # the task draws its own stream ("task/reward") beside the estimator's sample stream
    return gradest.get_task("bandit", rewards=[0.1, 0.2, 0.4, 0.5, 0.8, 1.0], logits=[0.3, -0.2, 0.0, 0.1, 0.5, -0.4],
                            reward_noise="gaussian")


@pytest.mark.parametrize("kind", ["uniform", "normal", "gumbel"])
def test_a_replicate_is_the_same_in_every_window(backend, kind):
    """Any window [first, first + count) holds the rows of the one long draw, windows that
    start and end inside noise blocks included (torch: blocks of m = `noise_block_replicates`
    (shape) replicates, a function of the shape; jax, counter-based: m = 1)."""
    B, shape = backend, (2, 3)
    m = B.noise_block_replicates(shape)
    assert m == (1 if B.name == "jax" else 1024)  # torch: 6 numbers per replicate
    full = B.to_numpy(noise.draw(B, 5, "estimator/sample", kind, shape, 0, R))
    # windows of two sizes (one compiled drawer each on jax): the first rows, across the block
    # boundaries at 1024 and 2048, the last rows, and one from inside block 0 to inside block 2
    for first, count in [(0, 7), (1020, 7), (2044, 7), (R - 7, 7), (3, 1500), (1021, 1500)]:
        part = B.to_numpy(noise.draw(B, 5, "estimator/sample", kind, shape, first, count))
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
    """Measured case: a 6-armed bandit with reward noise, R = 3,000, chunk 97 (a prime: its
    boundaries fall inside torch's noise blocks of 1,024) vs the default."""
    task = _noisy_bandit()
    est = gradest.get_estimator("reinforce", baseline="loo")
    default = gradest.gradient_samples(task, est, backend=backend_name, num_replicates=R, num_samples=2, seed=3)
    chunked = gradest.gradient_samples(task, est, backend=backend_name, num_replicates=R, num_samples=2, seed=3,
                                       chunk_size=97)
    np.testing.assert_allclose(chunked, default, rtol=1e-6, atol=1e-7)
    # the noise itself, for the sample stream and the task's stream, is bit for bit the same
    sampler = GradientSampler(task, est, backend=backend_name, num_samples=2, seed=3, chunk_size=97)
    whole = draw_noise(sampler.backend, sampler.specs, 3, 0, R)
    for first in (0, 97, 1022, 2996):
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
    B = get_backend(backend_name)
    theta0 = B.asarray(task.init_params())
    specs = [noise_specs(task, gradest.get_estimator(name), B, theta0, 2) for name in ("reinforce", "rebar", "relax")]
    ref = B.to_numpy(draw_noise(B, specs[0], 4, 0, 300)["estimator"]["sample"])
    for spec in specs[1:]:
        assert set(spec["estimator"]) - {"sample"}, "rebar/relax draw more than the sample"
        got = draw_noise(B, spec, 4, 0, 300)["estimator"]["sample"]
        np.testing.assert_array_equal(B.to_numpy(got), ref)


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


# ---- scheme 3: jax counter-based (Threefry of (replicate, element)), torch in blocks -----------
def _jax_stream_key(seed, stream, law):
    import jax

    return jax.random.fold_in(jax.random.key(seed, impl="threefry2x32"), noise.stream_id(stream, law))


def test_jax_replicate_0_is_jax_randoms_own_draw():
    """Exact truth: under the counter layout (replicate, element), replicate 0 of each law is
    ``jax.random.<law>(stream key, shape)``, whose counters are (0, element)."""
    jax = pytest.importorskip("jax")
    B, shape = get_backend("jax"), (2, 3)
    tiny = np.finfo(np.float32).tiny
    f32 = jax.numpy.float32  # explicit: another test may have turned on jax_enable_x64 in this process
    for law, truth in [("uniform", lambda key: jax.random.uniform(key, shape, dtype=f32, minval=tiny)),
                       ("normal", lambda key: jax.random.normal(key, shape, dtype=f32)),
                       ("gumbel", lambda key: jax.random.gumbel(key, shape, dtype=f32))]:
        drawn = B.to_numpy(noise.draw(B, 11, "estimator/sample", law, shape, 0, 7))
        np.testing.assert_array_equal(drawn[0], np.asarray(truth(_jax_stream_key(11, "estimator/sample", law))))


def test_jax_number_j_of_replicate_i_hashes_the_counter_i_j():
    """Exact truth past replicate 0: uniform number j of replicate i is the top 23 bits of
    threefry2x32(stream key, (i, j)) (the two words xor-ed) as a fraction of 2^23 (at least the
    smallest normal float), here for replicate indices near 2^32."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    from jax.extend.random import threefry_2x32

    B, first, count, shape = get_backend("jax"), 4_000_000_000, 1500, (2, 3)
    drawn = B.to_numpy(noise.draw(B, 2, "task/reward", "uniform", shape, first, count)).reshape(-1)  # [count·6]
    i = np.repeat(first + np.arange(count, dtype=np.uint32), 6)  # [count·6]
    j = np.tile(np.arange(6, dtype=np.uint32), count)
    key = jax.random.key_data(_jax_stream_key(2, "task/reward", "uniform"))
    words = np.asarray(threefry_2x32(key, jnp.concatenate([jnp.asarray(i), jnp.asarray(j)])))  # (h1..., h2...)
    bits = words[:i.size] ^ words[i.size:]
    fraction = (bits >> 9).astype(np.float64) / 2**23
    np.testing.assert_array_equal(drawn, np.maximum(fraction, np.finfo(np.float32).tiny).astype(np.float32))


def test_jax_float64_noise_is_jax_randoms_64_bit_draw(backend64):
    """float64 numbers use both hashed words (h1 << 32 | h2), as jax.random's 64-bit bits."""
    if backend64.name != "jax":
        pytest.skip("the counter layout is jax's")
    import jax

    B = backend64
    drawn = B.to_numpy(noise.draw(B, 5, "estimator/sample", "normal", (2, 3), 0, 7))
    assert drawn.dtype == np.float64
    truth = jax.random.normal(_jax_stream_key(5, "estimator/sample", "normal"), (2, 3), dtype="float64")
    np.testing.assert_array_equal(drawn[0], np.asarray(truth))


def test_neighbouring_replicates_and_elements_are_uncorrelated(backend):
    """Counters (i, j), (i + 1, j) and (i, j + 1) give independent numbers: lag-1 correlations
    along replicates and along elements within 5 standard errors (1 / sqrt(n)) of 0."""
    B = backend
    u = B.to_numpy(noise.draw(B, 1, "estimator/sample", "normal", (2, 3), 0, R)).reshape(R, 6)
    along_replicates = np.corrcoef(u[:-1].ravel(), u[1:].ravel())[0, 1]
    along_elements = np.corrcoef(u[:, :-1].ravel(), u[:, 1:].ravel())[0, 1]
    assert abs(along_replicates) < 5 / np.sqrt(u[:-1].size)
    assert abs(along_elements) < 5 / np.sqrt(u[:, :-1].size)


def test_compiled_draws_with_traced_seed_and_first_equal_eager_draws(backend):
    """The sampler draws inside its compiled call (jax traces seed and first): those numbers
    are the eager ones, for windows that start inside a noise block."""
    B = backend
    compiled = B.jit(noise.drawer(B, {"estimator": {"sample": NoiseSpec((2, 3), "gumbel")}}, 7))
    for seed, first in [(0, 0), (3, 1021), (3, 5)]:
        got = B.to_numpy(compiled(seed, first)["estimator"]["sample"])
        want = B.to_numpy(noise.draw(B, seed, "estimator/sample", "gumbel", (2, 3), first, 7))
        np.testing.assert_array_equal(got, want)
