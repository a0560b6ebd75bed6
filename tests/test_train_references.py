"""The hand-written training steps of ``benchmarks/train_references.py`` compute gradest's model,
loss and update: exact comparisons (float64) against the task and gradest's surrogate
(`gradest.measure.make_loss`) at the same θ and the same noise.

* the forward pass: logits, f(z) for one-hot and relaxed z, and the KL equal the task's
  ``problem(...)`` (``dist.logits``, ``f``, ``extra``);
* the loss and its gradient given the same noise equal gradest's surrogate's: Gumbel-softmax
  with the Gumbel noise that ``F.gumbel_softmax`` draws (torch's generator replayed from the
  same seed) or that ``jax.random.gumbel`` draws from the same key; REINFORCE-LOO with the
  classes that ``Categorical.sample`` / ``jax.random.categorical`` draw, fed to gradest as
  Gumbel noise whose argmax is those classes;
* a whole hand-written step from θ₀ (its own noise, replayed): the returned loss equals
  gradest's loss at θ₀ with that noise, and θ₁ equals θ₀ minus one Adam update with gradest's
  gradient (the first Adam update: lr · g / (|g| + eps)). On jax this runs on a smaller
  categorical_vae (`SMALL`; the same code, sizes read from the task): compiling
  ``jax.random.gumbel`` on the CPU takes ~2 s at the benchmark's [4, 100, 20, 10], so the jax
  loss-and-gradient test above feeds the noise explicitly and only this one compiles samplers;
* the asv classes run (torch; few rounds) and both contenders start at the task's θ₀.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # asv imports benchmark_dir's parent the same way

import gradest  # noqa: E402
from gradest.backends import get_backend  # noqa: E402
from gradest.measure import make_loss, noise_specs  # noqa: E402
from benchmarks import train_references as tr  # noqa: E402

S = tr.NUM_SAMPLES
RTOL, ATOL = 1e-10, 1e-12  # float64, sums in other orders
#: a smaller categorical_vae for the jax step test (two hidden layers of different sizes)
SMALL = {"dataset": "digits", "num_latents": 3, "num_categories": 4, "hidden": (16, 8), "batch_size": 10}


@pytest.fixture(scope="module")
def task():
    return tr.build_task()


def _theta(task, seed=1):
    """θ₀ perturbed so that every block (all biases too) is generic."""
    rng = np.random.default_rng(seed)
    theta0 = task.init_params()
    return theta0 + 0.05 * rng.standard_normal(theta0.shape)


def _weights(backend_name, task, theta):
    """The hand-written steps' weights (dict of float64 arrays) at θ, as leaves for torch."""
    blocks = tr.blocks_numpy(task, theta)
    if backend_name == "torch":
        import torch

        return {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in blocks.items()}
    import jax.numpy as jnp

    return {k: jnp.asarray(v, jnp.float64) for k, v in blocks.items()}


def _np(x):
    return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)


def _sizes(task):
    return task.batch_size, task.num_latents, task.num_categories


def _jit(backend_name, fn):
    """jax: one compiled function (faster here than jax's op-by-op first calls); torch: as is."""
    if backend_name == "jax":
        import jax

        return jax.jit(fn)
    return fn


def _gradest_value_and_grad(task, estimator, B, theta, gumbel, batch):
    """gradest's surrogate at θ with estimator noise ``gumbel`` [S, Bsz, L, K]: (value, flat grad)."""
    est = tr.gradest_estimator(estimator)
    specs = noise_specs(task, est, B, B.asarray(theta), S, batch)
    assert set(specs["estimator"]) == {"sample"} and specs["task"] == {}
    assert tuple(specs["estimator"]["sample"].shape) == tuple(gumbel.shape)
    loss = make_loss(task, est, B)
    fn = _jit(B.name, B.value_and_grad(lambda p, n, xb: loss(p, n, {}, batch=xb), has_aux=True))
    (value, _), grad = fn(B.asarray(theta), {"estimator": {"sample": B.asarray(gumbel)}, "task": {}}, batch)
    return float(_np(value)), _np(grad)


def _gumbel_for(index, logits, num_categories):
    """Gumbel noise whose argmax(logits + G) is ``index`` (what gradest's Categorical samples)."""
    G = 50.0 * np.eye(num_categories)[index]
    assert np.ptp(logits, axis=-1).max() < 25.0
    assert (np.argmax(logits + G, axis=-1) == index).all()
    return G


def _torch_value_and_grad(task, estimator, theta, x, seed):
    """The hand-written torch loss with its own sampler after ``torch.manual_seed(seed)``:
    (value, flat grad of the surrogate, logits)."""
    import torch

    w = _weights("torch", task, theta)
    torch.manual_seed(seed)
    surrogate, value = tr.torch_loss(task, estimator, w, x)
    grads = torch.autograd.grad(surrogate, list(w.values()))
    flat = tr.flatten_blocks(task, {k: _np(g) for k, g in zip(w, grads)})
    return float(value), flat, _np(tr.torch_encoder(task, w, x))


def _jax_value_and_grad(task, estimator, theta, x, latent):
    """The hand-written jax loss with the noise ``latent(key, logits)``: (value, flat grad)."""
    import jax

    w = _weights("jax", task, theta)
    fn = jax.jit(jax.value_and_grad(lambda p, xb: tr.jax_loss(task, estimator, p, xb, None, latent), has_aux=True))
    (_, value), grads = fn(w, x)
    return float(value), tr.flatten_blocks(task, {k: _np(g) for k, g in grads.items()})


def _replayed_noise(backend_name, task, estimator, key_or_seed, logits):
    """The estimator noise for gradest [S, Bsz, L, K] that reproduces the hand-written sampler's
    draw from the same torch seed / jax key at these logits."""
    Bsz, L, K = _sizes(task)
    if backend_name == "torch":
        import torch

        torch.manual_seed(key_or_seed)
        if estimator == "gumbel_softmax":  # F.gumbel_softmax: -log Exponential(1) of logits' shape
            return _np(-torch.empty((S, Bsz, L, K), dtype=torch.float64).exponential_().log())
        index = torch.distributions.Categorical(logits=torch.as_tensor(logits)).sample((S,))
        return _gumbel_for(_np(index).astype(np.int64), logits, K)
    import jax
    import jax.numpy as jnp

    if estimator == "gumbel_softmax":
        return _np(jax.random.gumbel(key_or_seed, (S, Bsz, L, K), jnp.float64))
    index = jax.random.categorical(key_or_seed, jnp.asarray(logits), axis=-1, shape=(S, Bsz, L))
    return _gumbel_for(np.asarray(index), logits, K)


# ---- the forward pass ----------------------------------------------------------------------
def test_forward_pass_equals_the_task(backend_name, task):
    B = get_backend(backend_name, dtype="float64")
    theta = _theta(task)
    x = task.train_batch(B, tr.SEED, 3)
    Bsz, L, K = _sizes(task)
    rng = np.random.default_rng(2)
    one_hot = np.eye(K)[rng.integers(K, size=(S, Bsz, L))]
    relaxed = rng.dirichlet(np.ones(K), size=(S, Bsz, L))
    if backend_name == "torch":
        enc, rec, kl = tr.torch_encoder, tr.torch_reconstruction, tr.torch_kl
    else:
        enc, rec, kl = tr.jax_encoder, tr.jax_reconstruction, tr.jax_kl

    def gradest_side(p, xb, z):
        prob = task.problem(B, p, batch=xb)
        return prob.dist.logits, prob.extra, prob.f(z)

    def hand_side(w, xb, z):
        logits = enc(task, w, xb)
        return logits, kl(task, logits).mean(), rec(task, w, xb, z)

    want_fn, got_fn = _jit(backend_name, gradest_side), _jit(backend_name, hand_side)
    w = _weights(backend_name, task, theta)
    for z in (one_hot, relaxed):
        want = [_np(v) for v in want_fn(B.asarray(theta), x, B.asarray(z))]
        got = [_np(v) for v in got_fn(w, x, B.asarray(z))]
        assert want[0].shape == (Bsz, L, K) and want[2].shape == (S, Bsz)
        for name, g, e in zip(("logits", "kl", "f(z)"), got, want):
            np.testing.assert_allclose(g, e, rtol=RTOL, atol=ATOL, err_msg=name)


# ---- the loss and its gradient given the same noise ----------------------------------------
@pytest.mark.parametrize("estimator", tr.ESTIMATORS)
def test_loss_and_gradient_equal_gradest_surrogate(backend_name, task, estimator):
    """torch: the step's own samplers (F.gumbel_softmax, Categorical.sample), replayed from the
    seed; jax: the same Gumbel noise fed to both (the samplers: the step test)."""
    B = get_backend(backend_name, dtype="float64")
    theta = _theta(task)
    x = task.train_batch(B, tr.SEED, 5)
    if backend_name == "torch":
        value, grad, logits = _torch_value_and_grad(task, estimator, theta, x, seed=123)
        gumbel = _replayed_noise("torch", task, estimator, 123, logits)
    else:
        import jax
        import jax.numpy as jnp

        logits = _np(task.problem(B, B.asarray(theta), batch=x).dist.logits)
        gumbel = np.random.default_rng(3).gumbel(size=(S, *logits.shape))
        if estimator == "gumbel_softmax":
            latent = lambda key, lg: jax.nn.softmax((lg + jnp.asarray(gumbel)) / tr.TEMPERATURE, axis=-1)  # noqa: E731
        else:
            latent = lambda key, lg: jnp.asarray(np.argmax(logits + gumbel, axis=-1))  # noqa: E731
        value, grad = _jax_value_and_grad(task, estimator, theta, x, latent)
    want_value, want_grad = _gradest_value_and_grad(task, estimator, B, theta, gumbel, x)
    assert value == pytest.approx(want_value, rel=RTOL)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-8, atol=1e-11)
    assert np.abs(want_grad).max() > 1e-3  # a real gradient, every block reached
    for name, block in tr.blocks_numpy(task, want_grad).items():
        assert np.abs(block).max() > 0, name


# ---- a whole hand-written step ---------------------------------------------------------------
@pytest.mark.parametrize("estimator", tr.ESTIMATORS)
def test_handwritten_step_is_one_adam_step_of_gradest_gradient(backend_name, task, estimator):
    B = get_backend(backend_name, dtype="float64")
    if backend_name == "jax":
        task = gradest.get_task("categorical_vae", **SMALL)
    step = tr.handwritten_step(backend_name, estimator, dtype="float64", task=task)
    theta0 = step.params()
    np.testing.assert_array_equal(theta0, task.init_params())
    if backend_name == "torch":
        import torch

        torch.manual_seed(7)
        key = 7
    else:
        import jax

        key = jax.random.split(step.key)[1]  # the step splits its key inside the jit
    value = step.step()
    theta1 = step.params()
    assert step.t == 1

    x = task.train_batch(B, tr.SEED, 0)
    logits = _np(task.problem(B, B.asarray(theta0), batch=x).dist.logits)
    gumbel = _replayed_noise(backend_name, task, estimator, key, logits)
    want_value, g = _gradest_value_and_grad(task, estimator, B, theta0, gumbel, x)
    assert value == pytest.approx(want_value, rel=1e-10)
    lr = task.default_learning_rate
    np.testing.assert_allclose(theta1 - theta0, -lr * g / (np.abs(g) + 1e-8), rtol=1e-7, atol=1e-12)


# ---- the asv classes -------------------------------------------------------------------------
def test_ratio_benchmark_runs_from_equal_parameters(monkeypatch, task):
    pytest.importorskip("torch")
    monkeypatch.setattr(tr.TrainStepRatio, "rounds", 2)
    monkeypatch.setattr(tr.TrainStepRatio, "steps_per_round", 1)
    g = tr.make_step("gradest", "torch", "reinforce_loo")
    h = tr.make_step("handwritten", "torch", "reinforce_loo")
    np.testing.assert_allclose(g.params(), h.params(), rtol=1e-6, atol=1e-7)  # θ₀ in float32
    bench = tr.TrainStepRatio()
    bench.setup("torch", "reinforce_loo", "cpu")
    ratio = bench.track_ratio_to_handwritten("torch", "reinforce_loo", "cpu")
    assert np.isfinite(ratio) and ratio > 0
    assert bench.last["rounds"] == 2 and len(bench.last["seconds"]["gradest"]) == 2
    timed = tr.TrainStepReference()
    timed.setup("handwritten", "torch", "gumbel_softmax", "cpu")
    timed.time_step("handwritten", "torch", "gumbel_softmax", "cpu")
    if not tr._grid.gpu_present():  # cuda is skipped, not failed
        with pytest.raises(NotImplementedError):
            tr.TrainStepReference().setup("gradest", "torch", "gumbel_softmax", "cuda")
