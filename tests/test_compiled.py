"""Compiled once per trace key: repeated calls with other θ, seeds, R or learning rates reuse
the compiled functions (`gradest.cache`); the caches are bounded, and one clear empties them all."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

import gradest
from gradest import cache, compiled
from gradest.measure import sampling_kernel


@contextlib.contextmanager
def count_jax_compilations():
    """Counts XLA backend compilations inside the block (``jax.monitoring`` events)."""
    jax = pytest.importorskip("jax")
    import jax.monitoring

    events: list[str] = []

    def listener(name, duration, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            events.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def _bandit():
    return gradest.get_task("bandit", rewards=np.linspace(0, 1, 10) ** 2, logits=np.zeros(10))


def test_jax_gradient_samples_compile_once():
    task, est = _bandit(), gradest.get_estimator("reinforce")
    gradest.gradient_samples(task, est, backend="jax", num_replicates=10_000)
    theta = np.linspace(-1, 1, 10)
    with count_jax_compilations() as events:
        a = gradest.gradient_samples(task, est, backend="jax", num_replicates=10_000, params=theta, seed=5)
        b = gradest.gradient_samples(task, est, backend="jax", num_replicates=6_000, seed=1)
        # a task built again with the same options has the same key
        gradest.gradient_samples(_bandit(), est, backend="jax", num_replicates=10_000, seed=2)
    assert events == [], f"{len(events)} compilations on calls with an equal key"
    assert a.shape == (10_000, 10) and b.shape == (6_000, 10)
    assert not np.allclose(a.mean(0), b.mean(0), atol=1e-3)  # θ and seed really changed


def test_jax_gradient_stats_and_train_compile_once():
    task = _bandit()
    gradest.gradient_stats(task, "reinforce", backend="jax", num_replicates=500, num_samples=2, timing_repeats=2)
    gradest.train(task, "gumbel_softmax", backend="jax", steps=40)
    with count_jax_compilations() as events:
        stats = gradest.gradient_stats(task, "reinforce", backend="jax", num_replicates=500, num_samples=2,
                                       seed=3, params=np.full(10, 0.2), timing_repeats=2)
        result = gradest.train(task, "gumbel_softmax", backend="jax", steps=40, seed=4, learning_rate=0.05,
                               params=np.full(10, 0.1))
    assert events == [], f"{len(events)} compilations on calls with an equal key"
    assert stats["variance"] > 0 and len(result.history) == 40


def test_other_keys_compile_their_own_function():
    task = _bandit()
    gradest.gradient_samples(task, "reinforce", backend="jax", num_replicates=100)
    with count_jax_compilations() as events:
        gradest.gradient_samples(task, "reinforce", backend="jax", num_replicates=100, num_samples=3)
    assert events, "another S must compile another function"


def test_torch_reuses_its_kernel(backend_name):
    task, est = _bandit(), gradest.get_estimator("reinforce", baseline="loo")
    gradest.gradient_samples(task, est, backend=backend_name, num_replicates=50, num_samples=2)
    kernel = sampling_kernel(task, est, gradest.backends.get_backend(backend_name), 2)
    before = cache.info()
    gradest.gradient_samples(task, est, backend=backend_name, num_replicates=80, num_samples=2, seed=9,
                             params=np.ones(10))
    after = cache.info()
    assert after["misses"] == before["misses"] and after["hits"] > before["hits"]
    assert sampling_kernel(task, est, gradest.backends.get_backend(backend_name), 2) is kernel


def test_options_are_part_of_the_key():
    a = cache.task_key(gradest.get_task("bandit", rewards=[0.0, 1.0], logits=[0.0, 0.0]))
    b = cache.task_key(gradest.get_task("bandit", rewards=[0.0, 2.0], logits=[0.0, 0.0]))
    c = cache.task_key(gradest.get_task("bandit", rewards=[0.0, 1.0], logits=[0.0, 0.0]))
    assert a != b and a == c
    loo = cache.estimator_key(gradest.get_estimator("reinforce", baseline="loo"))
    none = cache.estimator_key(gradest.get_estimator("reinforce"))
    assert loo != none


def test_the_cache_is_bounded_and_clearable():
    lru = cache.BoundedCache(max_entries=2)
    built = []
    for key in ("a", "b", "a", "c", "b"):
        lru.get(key, lambda key=key: built.append(key) or key.upper())
    # a, b built; a hit; c evicts b (least recently used); b built again
    assert built == ["a", "b", "c", "b"] and len(lru) == 2
    assert lru.info() == {"entries": 2, "max_entries": 2, "hits": 1, "misses": 4}
    lru.clear()
    assert len(lru) == 0 and lru.info()["hits"] == 0
    with pytest.raises(ValueError, match="at least one entry"):
        cache.BoundedCache(max_entries=0)
    gradest.clear_compile_cache()
    assert gradest.compile_cache_info()["entries"] == 0


def test_the_former_module_name_is_an_alias():
    assert compiled.CACHE is cache.CACHE and compiled.CompiledCache is cache.BoundedCache
    assert compiled.clear is cache.clear and compiled.task_key is cache.task_key


def test_clear_compile_cache_empties_every_cache():
    """One clear empties the compiled functions, the recent samplers of `gradient_samples` and
    the VAE family's compiled metrics: named caches that `gradest.cache` owns without importing
    the modules that fill them."""
    from gradest import sampler
    from gradest.backends import get_backend
    from gradest.tasks import _vae

    task, est = _bandit(), gradest.get_estimator("reinforce")
    gradest.gradient_samples(task, est, num_replicates=10)
    vae = gradest.get_task("categorical_vae", num_latents=2, num_categories=3, hidden=(8,), batch_size=5,
                           eval_points=5)
    B = get_backend("torch")
    first = vae.metrics(B, B.asarray(vae.init_params()))
    named = gradest.compile_cache_info()["caches"]
    assert named["samplers"]["entries"] >= 1 and named["vae_metrics"]["entries"] >= 1
    assert len(cache.CACHE) >= 1 and len(sampler._SAMPLERS) >= 1 and len(_vae._METRIC_FNS) >= 1

    gradest.clear_compile_cache()
    info = gradest.compile_cache_info()
    assert info["entries"] == 0 and all(c["entries"] == 0 for c in info["caches"].values()), info
    assert len(sampler._SAMPLERS) == 0 and len(_vae._METRIC_FNS) == 0
    # everything is built again on the next calls, with the same numbers
    assert vae.metrics(B, B.asarray(vae.init_params())) == first
    assert len(_vae._METRIC_FNS) == 1


def test_named_caches_are_bounded_and_shared_by_name():
    a = cache.lru("test_named_cache", 2)
    assert cache.lru("test_named_cache", 99) is a and a.max_entries == 2
    for key in "abc":
        a.get(key, lambda key=key: key)
    assert len(a) == 2 and "a" not in a
    cache.clear()
    assert len(a) == 0
