"""The hand-written training steps of ``benchmarks/train_references.py`` (the framework modules
of ``benchmarks/_references/``, looked up by backend name) compute gradest's model,
loss and update: exact comparisons (float64) against the task and gradest's surrogate
(`gradest.measure.make_loss`) at the same θ and the same noise. The reference is gradest on
its torch backend (jax's where torch is missing): eager there, so that the jax checks compile
only the hand-written functions (each jax compile costs 1-2 s on a small CPU).

* the forward pass: logits, f(z) for one-hot and relaxed z, and the KL equal the task's
  ``problem(...)`` (``dist.logits``, ``f``, ``extra``) at a generic θ;
* one hand-written step from θ₀, for each estimator: the loss it returns equals gradest's loss
  at θ₀ with the step's noise; Adam's first moment after the step is (1 - β₁) g with g gradest's
  gradient (so the gradient is checked exactly, every block reached); θ₁ = θ₀ minus the first
  Adam update lr · g / (|g| + eps). torch: the real step (`VaeTrainStep`), its noise replayed
  from the same seed (the Gumbel noise ``F.gumbel_softmax`` draws; the classes
  ``Categorical.sample`` draws, given to gradest as Gumbel noise whose argmax is those
  classes); jax: the jitted step of `train_step` with NumPy Gumbel noise fed in
  (softmax(logits + G), or the classes argmax(logits + G)), and its key split;
* jax's own samplers: the relaxed sample is softmax(logits + jax.random.gumbel(key)), the
  classes have the frequencies softmax(logits); and a real `VaeTrainStep` runs two steps from its
  own key on a tiny categorical_vae (Adam moves each coordinate by at most ~lr per step);
* the asv classes run (torch; few rounds) and both contenders start at the task's θ₀;
* a backend without a framework module is skipped with the reason, never given another's step.

A backend whose framework has no module in ``benchmarks/_references/`` skips every test here
with that reason.
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
from benchmarks import _grid, _references  # noqa: E402
from benchmarks import train_references as tr  # noqa: E402
from benchmarks._references.vae_layout import blocks_numpy, flatten_blocks  # noqa: E402

S = tr.NUM_SAMPLES
RTOL, ATOL = 1e-10, 1e-12  # float64, sums in other orders
#: a tiny categorical_vae for running jax's samplers inside a real step
TINY = {"dataset": "digits", "num_latents": 2, "num_categories": 3, "hidden": (5,), "batch_size": 4}


def _hand(backend_name):
    """The framework module of ``backend_name``'s hand-written step, or skip with the reason."""
    try:
        return _references.for_backend(backend_name)
    except NotImplementedError as err:
        pytest.skip(str(err))


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
    blocks = blocks_numpy(task, theta)
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


def _reference_backend():
    """gradest's backend for the reference values, float64: the reference backend (torch,
    eager), else the first installed one."""
    from gradest.backends import available_backends, reference_backend

    installed = available_backends()
    return get_backend(reference_backend() if reference_backend() in installed else installed[0], dtype="float64")


def _gradest_value_and_grad(task, estimator, theta, gumbel, step):
    """gradest's surrogate at θ on the data of training step ``step`` with estimator noise
    ``gumbel`` [S, Bsz, L, K] (NumPy): (value, flat gradient), in float64."""
    B = _reference_backend()
    est = tr.gradest_estimator(estimator)
    batch = task.train_batch(B, tr.SEED, step)
    params = B.asarray(np.asarray(theta, dtype=np.float64))
    specs = noise_specs(task, est, B, params, S, batch)  # what gradest draws: one Gumbel stream
    assert set(specs["estimator"]) == {"sample"} and specs["task"] == {}
    assert specs["estimator"]["sample"].kind == "gumbel"
    assert tuple(specs["estimator"]["sample"].shape) == tuple(gumbel.shape)
    loss = make_loss(task, est, B)
    noise = {"estimator": {"sample": B.asarray(gumbel)}, "task": {}}
    (value, _), grad = B.value_and_grad(lambda p: loss(p, noise, {}, batch=batch), has_aux=True)(params)
    return float(_np(value)), _np(grad)


def _gumbel_for(index, logits, num_categories):
    """Gumbel noise whose argmax(logits + G) is ``index`` (what gradest's Categorical samples)."""
    G = 50.0 * np.eye(num_categories)[index]
    assert np.ptp(logits, axis=-1).max() < 25.0
    assert (np.argmax(logits + G, axis=-1) == index).all()
    return G


def _torch_replayed_noise(task, estimator, seed, logits):
    """gradest's noise [S, Bsz, L, K] reproducing the torch sampler's draw after manual_seed(seed)."""
    import torch

    Bsz, L, K = _sizes(task)
    torch.manual_seed(seed)
    if estimator == "gumbel_softmax":  # F.gumbel_softmax: -log Exponential(1) of the logits' shape
        return _np(-torch.empty((S, Bsz, L, K), dtype=torch.float64).exponential_().log())
    index = torch.distributions.Categorical(logits=torch.as_tensor(logits)).sample((S,))
    return _gumbel_for(_np(index).astype(np.int64), logits, K)


def _jax_fed_latent(estimator, logits, gumbel):
    """The jax step's ``latent(key, logits)`` with NumPy Gumbel noise fed in (the key unused)."""
    import jax
    import jax.numpy as jnp

    if estimator == "gumbel_softmax":
        return lambda key, lg: jax.nn.softmax((lg + jnp.asarray(gumbel)) / tr.TEMPERATURE, axis=-1)
    index = jnp.asarray(np.argmax(logits + gumbel, axis=-1))
    return lambda key, lg: index


def _reference_logits(task, theta, step):
    """The task's encoder logits [Bsz, L, K] at θ on the data of step ``step`` (NumPy)."""
    B = _reference_backend()
    return _np(task.problem(B, B.asarray(theta), batch=task.train_batch(B, tr.SEED, step)).dist.logits)


# ---- the forward pass ----------------------------------------------------------------------
def test_forward_pass_equals_the_task(backend_name, task):
    B = get_backend(backend_name, dtype="float64")
    theta = _theta(task)
    x = task.train_batch(B, tr.SEED, 3)
    Bsz, L, K = _sizes(task)
    rng = np.random.default_rng(2)
    one_hot = np.eye(K)[rng.integers(K, size=(S, Bsz, L))]
    relaxed = rng.dirichlet(np.ones(K), size=(S, Bsz, L))
    hand = _hand(backend_name)
    enc, rec, kl = hand.encoder, hand.reconstruction, hand.kl

    R = _reference_backend()
    prob = task.problem(R, R.asarray(theta), batch=task.train_batch(R, tr.SEED, 3))

    def hand_side(w, xb, z):
        logits = enc(task, w, xb)
        return logits, kl(task, logits).mean(), rec(task, w, xb, z)

    got_fn = _jit(backend_name, hand_side)
    w = _weights(backend_name, task, theta)
    for z in (one_hot, relaxed):
        want = [_np(v) for v in (prob.dist.logits, prob.extra, prob.f(R.asarray(z)))]
        got = [_np(v) for v in got_fn(w, x, B.asarray(z))]
        assert want[0].shape == (Bsz, L, K) and want[2].shape == (S, Bsz)
        for name, g, e in zip(("logits", "kl", "f(z)"), got, want):
            np.testing.assert_allclose(g, e, rtol=RTOL, atol=ATOL, err_msg=name)


# ---- one whole hand-written step -------------------------------------------------------------
@pytest.mark.parametrize("estimator", tr.ESTIMATORS)
def test_handwritten_step_is_one_adam_step_of_gradest_gradient(backend_name, task, estimator):
    hand = _hand(backend_name)
    if hand.FRAMEWORK not in ("torch", "jax"):
        pytest.skip(f"no replay of {hand.FRAMEWORK}'s noise is written here")
    B = get_backend(backend_name, dtype="float64")
    theta0 = task.init_params()
    logits = _reference_logits(task, theta0, 0)
    lr, beta1 = task.default_learning_rate, 0.9
    if hand.FRAMEWORK == "torch":
        import torch

        step = tr.make_step("handwritten", backend_name, estimator, dtype="float64", task=task)
        np.testing.assert_array_equal(step.params(), theta0)
        torch.manual_seed(7)
        value = step.step()
        assert step.t == 1
        theta1 = step.params()
        moment = flatten_blocks(task, {k: _np(step.optimizer.state[w]["exp_avg"]) for k, w in step.weights.items()})
        gumbel = _torch_replayed_noise(task, estimator, 7, logits)
    else:
        import jax
        import optax

        gumbel = np.random.default_rng(6).gumbel(size=(S, *logits.shape))
        opt = optax.adam(lr, b1=beta1, b2=0.999, eps=1e-8)  # as VaeTrainStep's
        w0 = _weights("jax", task, theta0)
        jitted = hand.train_step(task, estimator, opt, _jax_fed_latent(estimator, logits, gumbel))
        key0 = jax.random.PRNGKey(11)
        w1, state, key1, value = jitted(w0, opt.init(w0), key0, task.train_batch(B, tr.SEED, 0))
        np.testing.assert_array_equal(np.asarray(key1), np.asarray(jax.random.split(key0)[0]))
        value = float(value)
        theta1 = flatten_blocks(task, {k: _np(v) for k, v in w1.items()})
        moment = flatten_blocks(task, {k: _np(v) for k, v in state[0].mu.items()})
    want_value, g = _gradest_value_and_grad(task, estimator, theta0, gumbel, 0)
    assert value == pytest.approx(want_value, rel=1e-10)
    np.testing.assert_allclose(moment / (1 - beta1), g, rtol=1e-8, atol=1e-12)  # the gradient
    for name, block in blocks_numpy(task, g).items():  # a real gradient, every block reached
        assert np.abs(block).max() > 1e-6, name
    np.testing.assert_allclose(theta1 - theta0, -lr * g / (np.abs(g) + 1e-8), rtol=1e-7, atol=1e-12)


# ---- DisARM on the bernoulli_vae ----------------------------------------------------------------
#: a small bernoulli_vae with a tanh hidden layer on each side (the activation reached) and a dynamic batch
BERNOULLI_TINY = {"dataset": "digits", "num_latents": 6, "hidden": (5,), "batch_size": 4, "binarize": "dynamic"}


def test_disarm_loss_equals_gradests_surrogate(backend_name):
    """The hand-written DisARM loss at θ with uniforms u [S, Bsz, L] fed in: its value and its
    gradient (every block, the prior's logits too) equal gradest's surrogate at the same θ and
    noise (`make_loss` of ``disarm``), float64; S = 2 pairs."""
    hand = _hand(backend_name)
    task = gradest.get_task("bernoulli_vae", **BERNOULLI_TINY)
    theta = _theta(task)
    R = _reference_backend()
    x = task.train_batch(R, tr.SEED, 2)
    u = np.random.default_rng(3).random((2, task.batch_size, task.num_latents))  # [S, Bsz, L]
    loss = make_loss(task, gradest.get_estimator("disarm"), R)
    noise = {"estimator": {"sample": R.asarray(u)}, "task": {}}
    (want_value, _), want = R.value_and_grad(lambda p: loss(p, noise, {}, batch=x), has_aux=True)(R.asarray(theta))
    B = get_backend(backend_name, dtype="float64")  # first: jax's float64 is switched on here
    w = _weights(backend_name, task, theta)
    xb = B.asarray(_np(x))
    if hand.FRAMEWORK == "torch":
        import torch

        surrogate, value = hand.disarm_loss(task, w, xb, lambda logits: torch.as_tensor(u))
        grads = dict(zip(w, torch.autograd.grad(surrogate, list(w.values()))))
    else:
        import jax
        import jax.numpy as jnp

        (_, value), grads = jax.jit(jax.value_and_grad(  # one compilation: faster than jax's op-by-op calls
            lambda p: hand.disarm_loss(task, p, xb, None, lambda key, logits: jnp.asarray(u)), has_aux=True))(w)
    got = flatten_blocks(task, {k: _np(v) for k, v in grads.items()})
    assert float(_np(value)) == pytest.approx(float(_np(want_value)), rel=1e-10)
    np.testing.assert_allclose(got, _np(want), rtol=1e-8, atol=1e-12)
    for name, block in blocks_numpy(task, _np(want)).items():  # a real gradient, every block reached
        assert np.abs(block).max() > 1e-8, name


# ---- jax's samplers and a real jax step ---------------------------------------------------
def test_jax_samplers():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    get_backend("jax", dtype="float64")
    hand = _hand("jax")
    logits = jnp.asarray(np.random.default_rng(4).standard_normal((2, 3)))  # [Bsz, L, K] = [1, 2, 3]
    logits = logits[None]
    key = jax.random.PRNGKey(5)
    got = hand.gumbel_relax(key, logits, S, tr.TEMPERATURE)  # S relaxed samples
    want = np.exp(_np(logits + jax.random.gumbel(key, (S, 1, 2, 3), jnp.float64)))
    np.testing.assert_allclose(_np(got), want / want.sum(-1, keepdims=True), rtol=1e-12)

    n = 20_000
    index = np.asarray(hand.categorical_draw(key, logits, n))
    assert index.shape == (n, 1, 2)
    p = np.exp(_np(logits))[0]
    p /= p.sum(-1, keepdims=True)  # [L, K]
    freq = np.stack([(index[:, 0, l, None] == np.arange(3)).mean(0) for l in range(2)])
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n))


def test_jax_step_runs_on_its_own_noise(estimator="reinforce_loo"):
    """One estimator: the wrapper and the key handling are shared (the samplers: the test
    above). Step 0's loss is gradest's at θ₀ with the classes jax.random.categorical draws
    from the second half of split(key): the noise comes from the split key, not the carried one."""
    pytest.importorskip("jax")
    import jax
    import jax.numpy as jnp

    hand = _hand("jax")
    tiny = gradest.get_task("categorical_vae", **TINY)
    step = tr.make_step("handwritten", "jax", estimator, dtype="float64", task=tiny)
    key0, theta0 = step.key, step.params()
    np.testing.assert_array_equal(theta0, tiny.init_params())
    values = [step.step(), step.step()]
    assert step.t == 2 and all(np.isfinite(values))
    np.testing.assert_array_equal(np.asarray(step.key), np.asarray(jax.random.split(jax.random.split(key0)[0])[0]))
    lr = tiny.default_learning_rate
    moved = np.abs(step.params() - theta0)
    assert moved.max() > 0.5 * lr and moved.max() <= 2.1 * lr  # two Adam steps of at most ~lr each

    logits = _reference_logits(tiny, theta0, 0)
    index = np.asarray(hand.categorical_draw(jax.random.split(key0)[1], jnp.asarray(logits), S))
    want_value, _ = _gradest_value_and_grad(tiny, estimator, theta0, _gumbel_for(index, logits, 3), 0)
    assert values[0] == pytest.approx(want_value, rel=1e-10)


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
    # the linear Bernoulli VAE with DisARM: both contenders from the task's θ₀, one step each
    assert "disarm" in tr.STEP_CASES and tr.task_for("disarm").num_params == 2 * 784 * 200 + 200 + 784 + 200
    steps = [tr.make_step(c, "torch", "disarm") for c in tr.CONTENDERS]
    np.testing.assert_allclose(steps[0].params(), steps[1].params(), rtol=1e-6, atol=1e-7)
    assert all(np.isfinite(step.step()) for step in steps)
    if not _grid.gpu_present():  # cuda is skipped, not failed
        with pytest.raises(NotImplementedError):
            tr.TrainStepReference().setup("gradest", "torch", "gumbel_softmax", "cuda")


def test_a_backend_without_a_framework_module_is_skipped_not_given_another():
    class Elsewhere:  # a built backend of a framework benchmarks/_references/ does not know
        name, device, dtype = "zz_elsewhere", "cpu", "float32"

    with pytest.raises(NotImplementedError, match="zz_elsewhere.*no hand-written reference"):
        tr.handwritten_step(Elsewhere(), "gumbel_softmax", task=None)
    for framework, module in _references.framework_modules().items():
        assert module.FRAMEWORK == framework and _references.for_backend(framework) is module
