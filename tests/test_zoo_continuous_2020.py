"""Tests of ``stl`` (Roeder et al. 2017), ``dreg`` (Tucker et al. 2019), ``pathwise_iwae`` (Burda
et al. 2016) and gaussian_vae's ``objective="iwae"``, against exact truth.

Truth: the closed-form -ELBO of gaussian_vae's linear-Gaussian decoder (its exact gradient by
automatic differentiation, `gradest.exact_gradient`); its exact posterior (conjugate: a
Gaussian prior and a linear-Gaussian likelihood); and the exact k = 2 sample bound
E[-log ½ (w_1 + w_2)] of a one-latent VAE by Gauss-Hermite quadrature over (ε_1, ε_2) (40
nodes per axis; it agrees with 60 nodes to 1e-9, checked in the test), differentiated
automatically.

Tolerances: unbiasedness is a two-sided z-test per coordinate with a Bonferroni correction at
family level ALPHA = 1e-4 (`gradest.testing.z_test`: threshold Φ⁻¹(1 - ALPHA/2P), about 5.2
standard errors for the P ≈ 450 coordinates here); the paired test is the same z-test of the
differences, estimate by estimate on common noise, against 0; "zero variance" is a float64
bound (1e-8 of the pathwise encoder's spread); identities on the same noise and torch↔jax
parity hold in float64 to |a - b| <= 1e-9 + 1e-7 |b|. Every statistical test runs on both
backends; every seed is fixed.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import gradest
from gradest.backends import get_backend
from gradest.estimator import GradientEstimator, no_state
from gradest.estimators.vimco import multi_sample_bound
from gradest.measure import UnsupportedCombinationError, check_compatible
from gradest.task import flatten_numpy
from gradest.testing import evaluate_surrogate, numpy_noise, surrogate_evaluator, z_test

ALPHA = 1e-4
R = 2000
BACKENDS = ["torch", "jax"]
RTOL, ATOL = 1e-7, 1e-9
ESTIMATORS = ["stl", "dreg", "pathwise_iwae"]
#: Gauss-Hermite nodes per axis of the quadrature of the k = 2 bound
NODES = 40


def _task(**options):
    return gradest.get_task("gaussian_vae", **options)


@pytest.fixture(scope="module")
def linear():
    """A conjugate VAE: linear encoder, linear-Gaussian decoder, sampled KL (closed-form -ELBO)."""
    return _task(kl="sampled", decoder="linear_gaussian", num_latents=2, hidden=(), batch_size=2)


@pytest.fixture(scope="module")
def one_latent():
    """The k-sample bound of a one-latent tanh VAE (Bernoulli decoder): quadrature gives truth."""
    return _task(objective="iwae", num_latents=1, hidden=[3], batch_size=2)


@pytest.fixture(scope="module")
def two_latents():
    return _task(objective="iwae", num_latents=2, hidden=[4], batch_size=2)


def _is_encoder(task) -> np.ndarray:
    return np.array([name.startswith("enc_") for name in task.param_names()])


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL)


# ---- STL: unbiased for the ELBO gradient, zero variance at the exact posterior ------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_stl_is_unbiased_for_the_elbo_gradient(linear, backend):
    """Mean of R STL estimates (S = 1) against the exact gradient of the closed-form -ELBO."""
    exact = gradest.exact_gradient(linear, backend=backend, dtype="float64")
    grads = gradest.gradient_samples(linear, "stl", backend=backend, num_replicates=R, num_samples=1, seed=5,
                                     dtype="float64")
    result = z_test(grads, exact, alpha=ALPHA)
    assert result.passed, f"stl biased: max |z| {result.max_z:.2f} > {result.threshold:.2f} standard errors"
    # the test has something to test: the encoder's coordinates vary and are not all zero
    enc = _is_encoder(linear)
    assert grads[:, enc].var(axis=0).sum() > 1e-3 and np.abs(exact[enc]).max() > 1e-2


def _exact_posterior_params(task) -> np.ndarray:
    """θ of ``task`` (linear encoder, linear-Gaussian decoder) where q(z|x) is the exact posterior.

    The decoder's rows W_l are made orthogonal (W W^T diagonal, so the posterior covariance
    Σ = (I + W W^T / s²)^{-1} is diagonal, as q's is); then μ(x) = (x - c) W^T Σ / s² and
    log σ = ½ log diag Σ are linear in x, as the encoder is."""
    blocks, first = {}, 0
    for name, shape in task.param_layout:  # θ₀'s blocks (NumPy)
        size = int(np.prod(shape)) if shape else 1
        blocks[name] = task.init_params()[first:first + size].reshape(shape)
        first += size
    W0, c, log_s = blocks["dec_w1"], blocks["dec_b1"], float(blocks["dec_log_std"])  # [L, D], [D], []
    q, _ = np.linalg.qr(W0.T)  # [D, L], orthonormal columns
    W = (np.linalg.norm(W0, axis=1)[:, None] * q.T)  # [L, D], orthogonal rows, W0's row norms
    s2 = math.exp(2.0 * log_s)
    var = 1.0 / (1.0 + (W * W).sum(axis=1) / s2)  # diag Σ [L]
    gain = W.T * var / s2  # [D, L]: μ = (x - c) gain
    L = W.shape[0]
    blocks["dec_w1"] = W
    blocks["enc_w1"] = np.concatenate([gain, np.zeros_like(gain)], axis=1)  # [D, 2L]
    blocks["enc_b1"] = np.concatenate([-c @ gain, 0.5 * np.log(var)])  # [2L]
    assert blocks["enc_w1"].shape[1] == 2 * L
    return flatten_numpy(blocks, task.param_layout)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stl_sticks_the_landing(linear, backend):
    """At q = the exact posterior, log q(z|x) - log p(x, z) = -log p(x) does not depend on z:
    STL's estimate of the encoder's gradient is exactly 0 (zero variance), pathwise's is not."""
    theta = _exact_posterior_params(linear)
    enc = _is_encoder(linear)
    exact = gradest.exact_gradient(linear, backend=backend, dtype="float64", params=theta)
    # θ is the posterior: the -ELBO is stationary in the encoder (it cannot do better), not in the decoder
    assert np.abs(exact[enc]).max() < 1e-9 and np.abs(exact[~enc]).max() > 1e-2
    # R as in the unbiasedness test: the same compiled function (θ is an argument)
    kw = dict(backend=backend, num_replicates=R, num_samples=1, seed=9, dtype="float64", params=theta)
    stl = gradest.gradient_samples(linear, "stl", **kw)
    # the scale: pathwise's encoder estimate, which varies at the posterior (its score term; on
    # torch only, the backend's own contrast adds nothing but a compilation)
    spread = gradest.gradient_samples(linear, "pathwise", **dict(kw, backend="torch"))[:, enc].std(axis=0).max()
    assert spread > 1e-2, spread
    assert np.abs(stl[:, enc]).max() <= 1e-8 * spread, np.abs(stl[:, enc]).max()
    assert stl[:, ~enc].std(axis=0).max() > 1e-2  # the decoder's estimate still varies: no trivial zero


# ---- DReG and pathwise IWAE: unbiased for the k-sample bound ------------------------------

def _bound_value_and_grad(task, B, theta, nodes: int):
    """The exact k = 2 bound E[-log ½ (w(z_1) + w(z_2))] (batch mean) and its gradient, by
    Gauss-Hermite quadrature over (ε_1, ε_2), z = μ + σ ε (one latent)."""
    x, h = np.polynomial.hermite_e.hermegauss(nodes)  # weight exp(-x²/2)
    h = h / math.sqrt(2.0 * math.pi)
    n, bsz = nodes, task.batch_size
    eps = B.asarray(np.broadcast_to(x[:, None, None], (n, bsz, 1)).copy())  # [n, Bsz, 1]
    weights = B.asarray(np.outer(h, h)[:, :, None])  # [n, n, 1]

    def bound(params):
        z = task.problem(B, params).dist.rsample(eps)  # [n, Bsz, 1]
        log_w = task.log_weight(B, params, z)  # [n, Bsz]
        pairs = B.stack([B.broadcast_to(B.expand_dims(log_w, 1), (n, n, bsz)),
                         B.broadcast_to(B.expand_dims(log_w, 0), (n, n, bsz))], 0)  # [2, n, n, Bsz]
        per_image = B.sum(weights * (math.log(2.0) - B.logsumexp(pairs, axis=0)), axis=(0, 1))  # [Bsz]
        return B.mean(per_image), per_image

    grad, (value, _) = B.grad(lambda p: (bound(p)[0], bound(p)), has_aux=True)(B.asarray(theta))
    return float(B.to_numpy(value)), np.asarray(B.to_numpy(grad), dtype=np.float64)


@pytest.fixture(scope="module")
def bound_truth(one_latent):
    B = get_backend("torch", dtype="float64")
    theta = one_latent.init_params()
    value, grad = _bound_value_and_grad(one_latent, B, theta, NODES)
    value_fine, grad_fine = _bound_value_and_grad(one_latent, B, theta, NODES + 20)
    # the quadrature has converged: far below the estimates' standard errors (~1e-3)
    assert abs(value - value_fine) < 1e-9 and np.abs(grad - grad_fine).max() < 1e-8
    return value, grad


def _iwae_stl() -> GradientEstimator:
    """A known-biased variant (weights w̃, not w̃², on the path derivative [Tucker et al., Sec. 6]):
    the paired test must reject it."""

    def surrogate(f, dist, noise, state):
        B = dist.backend
        fz = f.path_only(dist.rsample(noise["sample"]))  # [S, *b]
        return B.broadcast_to(B.expand_dims(multi_sample_bound(B, fz), 0), tuple(fz.shape)), state

    return GradientEstimator(init=no_state, surrogate=surrogate, supports=frozenset({"normal"}), name="iwae_stl",
                             requires=frozenset({"log_weight", "path_only"}))


@pytest.mark.parametrize("backend", BACKENDS)
def test_dreg_and_pathwise_iwae_are_unbiased_for_the_k_sample_bound(one_latent, bound_truth, backend):
    """k = S = 2, R estimates each on common noise: the means of dreg and of pathwise_iwae
    against the quadrature's exact gradient of the bound (z-tests), and the paired difference
    dreg - pathwise_iwae against 0. The biased IWAE-STL fails both tests (their power)."""
    _, exact = bound_truth
    kw = dict(backend=backend, num_replicates=R, num_samples=2, seed=3, dtype="float64")
    grads = {name: gradest.gradient_samples(one_latent, name, **kw) for name in ("dreg", "pathwise_iwae")}
    for name, g in grads.items():
        result = z_test(g, exact, alpha=ALPHA)
        assert result.passed, f"{name} biased for ∇L_2: max |z| {result.max_z:.2f} > {result.threshold:.2f}"
    dreg, iwae = grads["dreg"], grads["pathwise_iwae"]
    zero = np.zeros(exact.shape[0])
    paired = z_test(dreg - iwae, zero, alpha=ALPHA)
    assert paired.passed, f"E[dreg - pathwise_iwae] != 0: max |z| {paired.max_z:.2f} > {paired.threshold:.2f}"
    enc = _is_encoder(one_latent)
    assert np.abs(dreg - iwae)[:, enc].max() > 1e-3  # the encoder's estimates differ sample by sample
    np.testing.assert_array_equal(dreg[:, ~enc], iwae[:, ~enc])  # the model's: the same w̃-weighted gradient
    if backend == "torch":  # the tests' power (a property of the tests, not of the backend)
        biased = gradest.gradient_samples(one_latent, _iwae_stl(), **kw)
        for result in (z_test(biased, exact, alpha=ALPHA), z_test(biased - iwae, zero, alpha=ALPHA)):
            assert not result.passed and result.max_z > 1.5 * result.threshold, result


def test_dreg_minus_pathwise_iwae_has_mean_zero_at_k_4(two_latents):
    """The paired test at k = S = 4 with two latents (torch; jax gives the same estimates on the
    same noise, `test_torch_jax_parity`)."""
    task = two_latents
    kw = dict(backend="torch", num_replicates=R, num_samples=4, seed=11, dtype="float64")
    dreg, iwae = (gradest.gradient_samples(task, name, **kw) for name in ("dreg", "pathwise_iwae"))
    zero = np.zeros(iwae.shape[1])
    paired = z_test(dreg - iwae, zero, alpha=ALPHA)
    assert paired.passed, f"E[dreg - pathwise_iwae] != 0: max |z| {paired.max_z:.2f} > {paired.threshold:.2f}"
    assert np.abs(dreg - iwae)[:, _is_encoder(task)].max() > 1e-3
    biased = z_test(gradest.gradient_samples(task, _iwae_stl(), **kw) - iwae, zero, alpha=ALPHA)
    assert not biased.passed and biased.max_z > 3 * biased.threshold, biased


# ---- the estimates, estimate by estimate ----------------------------------------------------

def _reference_dreg_grad(task, B, theta, eps):
    """DReG [Tucker et al., eq. 8] written with the encoder's and decoder's entries of θ known:
    encoder -Σ w̃² ∂log w/∂z ∂z/∂φ (q's parameters fixed in log q), decoder -Σ w̃ ∂log w/∂θ."""
    enc = B.asarray(_is_encoder(task).astype(np.float64))
    sg = B.stop_gradient

    def path_loss(params):  # only the encoder's entries live, and only through z
        z = task.problem(B, enc * params + (1.0 - enc) * sg(params)).dist.rsample(eps)  # [k, Bsz, L]
        log_w = task.log_weight(B, sg(params), z)  # [k, Bsz]
        w = sg(B.softmax(log_w, axis=0))
        return -B.mean(B.sum(w * w * log_w, axis=0))

    def model_loss(params):  # z fixed: the decoder's entries
        z = sg(task.problem(B, sg(params)).dist.rsample(eps))
        log_w = task.log_weight(B, params, z)
        return -B.mean(B.sum(sg(B.softmax(log_w, axis=0)) * log_w, axis=0))

    theta = B.asarray(theta)
    return B.to_numpy(enc * B.grad(path_loss)(theta) + (1.0 - enc) * B.grad(model_loss)(theta))


def test_dreg_is_the_formula_of_the_paper(two_latents):
    """On the same noise (k = 3), dreg's gradient equals the paper's formula written with the
    encoder and decoder told apart (torch; jax: `test_torch_jax_parity`)."""
    B = get_backend("torch", dtype="float64")
    theta = two_latents.init_params()
    for seed in (0, 1):
        noise = numpy_noise(two_latents, "dreg", num_samples=3, seed=seed)
        out = evaluate_surrogate(two_latents, "dreg", B, noise)
        _close(out["grad"], _reference_dreg_grad(two_latents, B, theta, B.asarray(noise["estimator"]["sample"])))
        assert np.abs(out["grad"][_is_encoder(two_latents)]).max() > 1e-3


@pytest.mark.parametrize("name", ["vimco", "dreg", "pathwise_iwae"])
def test_iwae_objective_value_is_the_k_sample_bound(two_latents, name):
    """gaussian_vae(objective="iwae") with vimco, dreg or pathwise_iwae: the loss of one estimate
    is the batch mean of -log (1/k) Σ_i w(z_i), w from the task's log_weight at z = μ + σ ε."""
    B = get_backend("torch", dtype="float64")
    theta = B.asarray(two_latents.init_params())
    check_compatible(two_latents, gradest.get_estimator(name), 4)
    noise = numpy_noise(two_latents, name, num_samples=4, seed=2)
    z = two_latents.problem(B, theta).dist.rsample(B.asarray(noise["estimator"]["sample"]))  # [4, Bsz, L]
    log_w = B.to_numpy(two_latents.log_weight(B, theta, z))  # [4, Bsz]
    bound = math.log(4) - np.logaddexp.reduce(log_w, axis=0)  # [Bsz]
    out = evaluate_surrogate(two_latents, name, B, noise)
    _close(out["loss"], bound.mean())
    _close(out["per_sample"], np.broadcast_to(bound, (4, bound.shape[0])))


def test_one_sample_identities(linear):
    """k = 1: dreg is stl and pathwise_iwae is pathwise, estimate by estimate (same noise; torch)."""
    B = get_backend("torch", dtype="float64")
    noise = numpy_noise(linear, "stl", num_samples=1, seed=4)
    for name, same_as in (("dreg", "stl"), ("pathwise_iwae", "pathwise")):
        a, b = (evaluate_surrogate(linear, n, B, noise) for n in (name, same_as))
        _close(a["grad"], b["grad"])
        _close(a["loss"], b["loss"])
    # and stl differs from pathwise (by the score term, zero only in expectation)
    stl, pathwise = (evaluate_surrogate(linear, n, B, noise)["grad"] for n in ("stl", "pathwise"))
    assert np.abs(stl - pathwise).max() > 1e-3


@pytest.mark.parametrize("name", ESTIMATORS)
def test_torch_jax_parity(two_latents, linear, name):
    """The same NumPy noise gives the same surrogate values, loss and gradient in both backends."""
    task = linear if name == "stl" else two_latents
    evaluators = [surrogate_evaluator(task, name, get_backend(b, dtype="float64")) for b in BACKENDS]
    for seed in (0, 1):
        noise = numpy_noise(task, name, num_samples=3, seed=seed)
        ref, other = (evaluate(noise) for evaluate in evaluators)
        for key in ("per_sample", "loss", "grad"):
            _close(other[key], ref[key])


# ---- the objective option and the refusals --------------------------------------------------

def test_objective_option_and_refusals(two_latents, linear):
    with pytest.raises(ValueError, match="unknown objective 'iw'.*'elbo', 'iwae'"):
        _task(objective="iw")
    with pytest.raises(ValueError, match="kl.*must be 'sampled'.*objective='iwae'"):
        _task(objective="iwae", kl="analytic")
    assert two_latents.kl == "sampled" and two_latents.capabilities == {"log_weight", "path_only"}
    assert not two_latents.has_exact() and gradest.exact_gradient(two_latents) is None
    assert two_latents.headline_metric == "test_neg_iw_bound" and two_latents.options["objective"] == "iwae"
    # the bound's task refuses the estimators of E[f], naming the fix
    for name in ("pathwise", "stl", "reinforce"):
        with pytest.raises(UnsupportedCombinationError, match="objective='iwae'.*vimco, pathwise_iwae, dreg"):
            check_compatible(two_latents, gradest.get_estimator(name), 4)
    # the analytic KL has no log q to hold fixed: stl and dreg are refused before any work
    analytic = _task(decoder="linear_gaussian", num_latents=2, hidden=(), batch_size=2)
    assert analytic.capabilities == frozenset() and analytic.has_exact()
    for name in ("stl", "dreg"):
        with pytest.raises(UnsupportedCombinationError, match="path_only"):
            check_compatible(analytic, gradest.get_estimator(name), 2)
    # the sampled ELBO accepts stl (the task's truth stays the -ELBO) and the bound's estimators
    assert linear.has_exact() and linear.headline_metric == "test_neg_elbo"
    for name in ESTIMATORS + ["vimco"]:
        check_compatible(linear, gradest.get_estimator(name), 2)
