"""Tests of the binary-latent estimators of 2021-2022: arms, bitflip (bitflip-1 and UGC), rodeo
and double_cv, against exact truth.

Tolerances: unbiasedness is a two-sided z-test per coordinate against the enumerated gradient
(`gradest.testing.z_test`), Bonferroni over the P coordinates at family level ALPHA = 1e-4 on the
toy (about 4.3 standard errors for P = 4) and VAE_ALPHA = 1e-3 on the VAE (about 4.9 for P =
454, as tests/test_vae_family.py); a variance ordering "A < B" needs the 95% intervals of
`gradest.gradient_stats` to be disjoint; identities on the same noise (ARMS n = 2 and DisARM,
UGC's coordinates, RODEO and double_cv at φ₀ and REINFORCE-LOO) hold to |a - b| <= 1e-12 +
1e-9 |b| in float64; torch-jax parity on the same NumPy noise to 1e-9 + 1e-7 |b|. All seeds are
fixed. The toy instance has logits on both sides of 0 and two near the boundary (σ = 0.08 and
0.86), so both of ARMS's sample orientations and both of UGC's estimators are exercised.
"""
from __future__ import annotations

import numpy as np
import pytest

import gradest
from gradest.backends import get_backend
from gradest.testing import evaluate_surrogate, numpy_noise, z_test

BACKENDS = ["torch", "jax"]
ALPHA, VAE_ALPHA = 1e-4, 1e-3
R, VAE_R = 4000, 2000
RTOL, ATOL = 1e-7, 1e-9
TOY = {"target": [0.45, 0.1, 0.8, 0.3], "logits": [-2.5, 0.4, 1.8, -0.3]}
#: a real Bernoulli VAE on digits, 2^3 latent configurations per image (enumerable), f depending on θ
TINY_VAE = {"num_latents": 3, "hidden": (), "batch_size": 3, "eval_points": 5}
#: the estimators, with the options that exercise the most code: ARMS with an odd n (stick-breaking
#: beyond the pair; n = 2 is checked against DisARM, the default n = 4 by tests/test_conformance.py),
#: UGC (both of its estimators: bitflip-1's coordinates are compared with bitflip-1 below), RODEO
#: with a small network
CASES = [("arms", {"n": 3}), ("bitflip", {"mode": "ugc"}), ("rodeo", {"hidden": 8}), ("double_cv", {})]
IDS = ["arms-3", "ugc", "rodeo", "double_cv"]


@pytest.fixture(scope="module")
def toy():
    return gradest.get_task("binary_toy", **TOY)


@pytest.fixture(scope="module")
def vae():
    return gradest.get_task("bernoulli_vae", **TINY_VAE)


def samples(task, est, backend, num_replicates, seed, **kw):
    return gradest.gradient_samples(task, est, backend=backend, num_replicates=num_replicates, num_samples=2,
                                    seed=seed, dtype="float64", **kw)


def check_unbiased(task, est, backend, num_replicates, alpha, seed):
    grads = samples(task, est, backend, num_replicates, seed)
    exact = gradest.exact_gradient(task, backend=backend, dtype="float64")
    result = z_test(grads, exact, alpha=alpha)
    assert result.passed, (f"{est.label} on {task.name} ({backend}): max |z| = {result.max_z:.2f} > "
                           f"{result.threshold:.2f}; mean {grads.mean(0)[:6]} vs exact {exact[:6]}")
    assert np.isfinite(grads).all() and grads.std(0).max() > 0


# ---- unbiasedness against enumeration ------------------------------------------------------

@pytest.mark.parametrize("name, options, backend", [
    *[(name, options, "torch") for name, options in CASES],
    ("bitflip", {"mode": "ugc"}, "jax"),
], ids=[f"{i}-torch" for i in IDS] + ["ugc-jax"])
def test_unbiased_on_binary_toy(toy, name, options, backend):
    """R = 4000 estimates at S = 2 (two copula groups for arms; RODEO and double_cv after the
    harness's φ warm-up, so their control variates are active). Every estimator in torch, UGC in
    jax too (jax's compilations are the suite's cost: ARMS and double_cv are z-tested in jax on the
    VAE below); jax gives RODEO's numbers on the same noise and φ
    (`test_torch_jax_parity_on_bernoulli_vae`), and tests/test_conformance.py z-tests every default
    on both backends."""
    check_unbiased(toy, gradest.get_estimator(name, **options), backend, R, ALPHA, seed=3)


@pytest.mark.parametrize("name, options, backend", [
    ("arms", {"n": 3}, "jax"), ("bitflip", {"mode": "ugc"}, "torch"), ("bitflip", {"mode": "bitflip-1"}, "torch"),
    ("rodeo", {"hidden": 8}, "torch"), ("double_cv", {}, "jax"),
], ids=["arms-3-jax", "ugc-torch", "bitflip-1-torch", "rodeo-torch", "double_cv-jax"])
def test_unbiased_on_bernoulli_vae(vae, name, options, backend):
    """The real model (batch axes, f depending on θ through the decoder): R = 2000 estimates at
    S = 2 against the enumerated gradient, P = 454. Each estimator on one backend; the other
    backend gives the same numbers on the same noise (`test_torch_jax_parity_on_bernoulli_vae`)."""
    check_unbiased(vae, gradest.get_estimator(name, **options), backend, VAE_R, VAE_ALPHA, seed=1)


def test_z_test_rejects_a_biased_arms(toy):
    """The same z-test fails ARMS without its debiasing (c = 1: plain leave-one-out REINFORCE on
    the correlated samples, whose mean is (1 - ρ) ∇L)."""
    from gradest.estimators import arms as A

    original = A.debias_factor
    try:
        A.debias_factor = lambda B, logits, n: B.ones(tuple(logits.shape))
        grads = samples(toy, gradest.get_estimator("arms", n=4), "torch", R, seed=3)
    finally:
        A.debias_factor = original
        gradest.clear_compile_cache()
    assert not z_test(grads, gradest.exact_gradient(toy, dtype="float64"), alpha=ALPHA).passed


# ---- identities on the same noise ----------------------------------------------------------

@pytest.mark.parametrize("backend", ["torch"])
def test_arms_with_two_samples_is_disarm(toy, vae, backend):
    """ARMS with n = 2 draws d = (1 - v, v) from the shared sample noise v, so its pair is
    DisARM's and c = σ(|α|): the same estimate, replicate by replicate (a wrong copula, sample
    orientation or debiasing factor breaks it). In torch; tests/test_conformance.py checks
    arms[n=2]'s and disarm's jax numbers against torch's on the same noise."""
    for task in (toy, vae):
        arms = samples(task, gradest.get_estimator("arms", n=2), backend, 500, seed=9)
        disarm = samples(task, "disarm", backend, 500, seed=9)
        np.testing.assert_allclose(arms, disarm, rtol=1e-9, atol=1e-12)
        assert np.abs(arms).max() > 1e-3


@pytest.mark.parametrize("backend", ["torch"])
def test_ugc_takes_bitflip_near_the_boundary_and_disarm_elsewhere(toy, backend):
    """Per coordinate, UGC's estimate is bitflip-1's where min(p, 1 - p) < threshold and DisARM's
    elsewhere, replicate by replicate (the toy's logits -2.5, 1.8 are near the boundary). In
    torch; jax gives UGC's numbers on the same noise (parity below)."""
    ugc = samples(toy, gradest.get_estimator("bitflip", mode="ugc", threshold=0.25), backend, 500, seed=4)
    flip = samples(toy, gradest.get_estimator("bitflip", mode="bitflip-1"), backend, 500, seed=4)
    disarm = samples(toy, "disarm", backend, 500, seed=4)
    p = 1.0 / (1.0 + np.exp(-np.asarray(TOY["logits"])))
    near = np.minimum(p, 1 - p) < 0.25
    assert near.any() and (~near).any()
    np.testing.assert_allclose(ugc[:, near], flip[:, near], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ugc[:, ~near], disarm[:, ~near], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("backend", ["torch"])
@pytest.mark.parametrize("name, options", [("rodeo", {"hidden": 8}), ("double_cv", {})], ids=["rodeo", "double_cv"])
def test_control_variates_start_at_reinforce_loo_and_training_lowers_variance(toy, backend, name, options):
    """At φ₀ (the network's output layer zero; a = 0) the estimate is REINFORCE-LOO's, replicate
    by replicate; after the harness's φ warm-up (100 Adam steps on ‖ĝ‖²) the variance is below
    REINFORCE-LOO's, 95% intervals disjoint. In torch (jax: the same φ-loss, φ-gradient and
    estimate on the same noise, `test_torch_jax_parity_on_bernoulli_vae`)."""
    est = gradest.get_estimator(name, **options)
    at_init = samples(toy, est, backend, 500, seed=2, phi_warmup=0)
    loo = samples(toy, gradest.get_estimator("reinforce", baseline="loo"), backend, 500, seed=2)
    np.testing.assert_allclose(at_init, loo, rtol=1e-9, atol=1e-12)
    kw = dict(backend=backend, num_replicates=R, num_samples=2, seed=6, dtype="float64", timing_repeats=1)
    trained = gradest.gradient_stats(toy, est, **kw)
    baseline = gradest.gradient_stats(toy, gradest.get_estimator("reinforce", baseline="loo"), **kw)
    assert trained["variance_high"] < baseline["variance_low"], (trained["variance"], baseline["variance"])


# ---- torch <-> jax parity --------------------------------------------------------------------

@pytest.mark.parametrize("name, options", CASES[1:], ids=IDS[1:])
def test_torch_jax_parity_on_bernoulli_vae(vae, name, options):
    """The same NumPy noise gives the same per-sample surrogate, gradient dL/dθ and (RODEO,
    double_cv, at a φ away from φ₀ so the control variates are active) φ-loss and φ-gradient in
    torch and jax, float64, with batch axes and f depending on θ (ARMS: its parity on the toy is
    tests/test_conformance.py's, its jax estimates on this VAE are z-tested above)."""
    est = gradest.get_estimator(name, **options)
    noise = numpy_noise(vae, est, num_samples=2, seed=5)
    out = {}
    for backend in BACKENDS:
        B = get_backend(backend, dtype="float64")
        state = None
        if est.phi_loss is not None:
            phi0 = B.to_numpy(est.init(vae.problem(B, B.asarray(vae.init_params())).dist)["phi"])
            state = {"phi": phi0 + np.linspace(-0.3, 0.5, phi0.shape[0])}
        out[backend] = evaluate_surrogate(vae, est, B, noise, state=state)
    t, j = out["torch"], out["jax"]
    assert np.isfinite(t["grad"]).all() and np.abs(t["grad"]).max() > 0
    for key in ("per_sample", "grad", "phi_loss", "phi_grad"):
        if t[key] is not None:
            np.testing.assert_allclose(t[key], j[key], rtol=RTOL, atol=ATOL, err_msg=key)


# ---- declarations and bad input ------------------------------------------------------------

def test_declared_evaluations(toy, vae):
    """f-evaluations per estimate: n·S (arms), S(1 + D) (bitflip-1), S(2 + D) (UGC), S (rodeo,
    double_cv), D the latent variables of one event (4 on the toy, 3 on the VAE, whose batch axis
    is not counted); the conformance kit counts f's points against these."""
    from gradest.estimator import f_evaluations

    B = get_backend("torch")
    for task, D in ((toy, 4), (vae, 3)):
        dist = task.problem(B, B.asarray(task.init_params())).dist
        assert f_evaluations(gradest.get_estimator("arms", n=3), 2, dist) == 6
        assert f_evaluations(gradest.get_estimator("bitflip"), 2, dist) == 2 * (1 + D)
        assert f_evaluations(gradest.get_estimator("bitflip", mode="ugc"), 2, dist) == 2 * (2 + D)
        assert f_evaluations(gradest.get_estimator("rodeo"), 2, dist) == 2
        assert f_evaluations(gradest.get_estimator("double_cv"), 2, dist) == 2
    with pytest.raises(ValueError, match="pass the distribution"):
        f_evaluations(gradest.get_estimator("bitflip"), 2)


@pytest.mark.parametrize("name, options, match", [
    ("arms", {"n": 1}, "'n' of arms"), ("arms", {"n": 2.5}, "'n' of arms"),
    ("bitflip", {"mode": "bitflip-2"}, "'mode' of bitflip"), ("bitflip", {"threshold": 0.7}, "'threshold'"),
    ("rodeo", {"hidden": -1}, "'hidden' of rodeo"), ("double_cv", {"alpha": 1.0}, "valid options"),
])
def test_bad_options(name, options, match):
    with pytest.raises(ValueError, match=match):
        gradest.get_estimator(name, **options)


@pytest.mark.parametrize("name", ["arms", "bitflip", "rodeo", "double_cv"])
def test_refuses_categorical(name):
    from gradest.measure import UnsupportedCombinationError

    with pytest.raises(UnsupportedCombinationError, match="bernoulli"):
        gradest.gradient_samples("bandit", name, num_replicates=2, num_samples=2)
