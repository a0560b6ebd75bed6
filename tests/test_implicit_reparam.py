"""Implicit reparameterization (Figurnov, Mohamed & Mnih 2018): Gamma, Beta and Dirichlet.

* ``Backend.standard_gamma_icdf`` inverts the standard Gamma's CDF: F(F⁻¹(u; α)) = u (scipy's
  float64 F on the returned z) over a grid of α from 0.1 to 100 and u from 1e-6 to 1 - 1e-6,
  in float32 and float64; its implicit gradient dz/dα agrees with central finite differences
  of the inverse CDF itself (float64).
* The samples follow the law: one-sample Kolmogorov–Smirnov distance against scipy's gamma and
  beta CDFs (the Dirichlet through its Beta marginals) below the 1e-3 critical value.
* ``log_prob``, ``score``, ``entropy`` and ``moments`` against scipy.stats and autodiff.
* ``pathwise`` and ``reinforce`` (leave-one-out baseline) are unbiased on ``gamma_toy`` and
  ``dirichlet_toy``: z-tests (`gradest.testing.z_test`, Bonferroni over the coordinates at
  family level 1e-4, about 4 standard errors) of R estimates against the closed-form gradient.
* torch and jax agree on the same NumPy noise (float64): samples to 1e-9, and pathwise
  gradients to the torch approximation's accuracy (``gradient_rtol``).
* Bad task options are refused with messages naming the option.

Fixed seeds throughout. JAX compiles the incomplete gamma functions (seconds per compiled
function on a loaded CPU), so the jax tests share shapes and compiled functions where they can.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as st

import gradest
from gradest.backends import available_backends, get_backend
from gradest.distributions import Beta, Dirichlet, Gamma
from gradest.testing import z_test

BACKENDS = [b for b in ("torch", "jax") if b in available_backends()]
ALPHAS = np.array([0.1, 0.3, 1.0, 2.5, 10.0, 100.0])
US = np.array([1e-6, 1e-3, 0.1, 0.5, 0.9, 0.999, 1.0 - 1e-6])
#: |F(z) - u| / min(u, 1 - u): float64 is limited by torch's gammainc (about 1e-9 relative);
#: float32 by rounding z (relative 6e-8, times d log F / d log z, up to about 100 at α = 100)
RESIDUAL_TOL = {"float64": 1e-7, "float32": 2e-4}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_icdf_inverts_the_cdf(backend, dtype):
    B = get_backend(backend, dtype=dtype)
    a, u = np.meshgrid(ALPHAS, US, indexing="ij")  # [6, 7]
    z = B.to_numpy(B.standard_gamma_icdf(B.asarray(a), B.asarray(u))).astype(np.float64)
    a, u = (B.to_numpy(B.asarray(x)).astype(np.float64) for x in (a, u))  # as the backend saw them
    tiny = np.finfo(dtype).tiny
    truth = sp.gammaincinv(a, u)
    clamped = truth < tiny  # below the smallest normal number: clamped (float32, α = 0.1, u = 1e-6)
    assert np.all(z[clamped] == np.float64(np.float32(tiny) if dtype == "float32" else tiny))
    assert np.all(np.isfinite(z)) and np.all(z > 0)
    tail = np.minimum(u, 1.0 - u)
    residual = np.where(u <= 0.5, np.abs(sp.gammainc(a, z) - u), np.abs(sp.gammaincc(a, z) - (1.0 - u))) / tail
    residual[clamped] = 0.0
    worst = np.unravel_index(np.argmax(residual), residual.shape)
    assert residual.max() <= RESIDUAL_TOL[dtype], (
        f"|F(z) - u| / min(u, 1-u) = {residual.max():.3g} at α={a[worst]}, u={u[worst]}")


#: torch's dz/dα is an approximation (relative error up to about 1e-3); jax's is exact to 1e-8
GRADIENT_RTOL = {"torch": 2e-3, "jax": 1e-5}


@pytest.mark.parametrize("backend", BACKENDS)
def test_implicit_gradient_matches_finite_differences(backend):
    B = get_backend(backend, dtype="float64")
    # the grid's shape is the inverse-CDF test's, [6, 7]: jax compiles the solver once per shape
    a, u = np.meshgrid(ALPHAS, np.array([0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99]), indexing="ij")
    U = B.asarray(u)
    grad = B.to_numpy(B.grad(lambda alpha: B.sum(B.standard_gamma_icdf(alpha, U)))(B.asarray(a)))  # dz/dα [6, 7]
    h = 1e-4 * a  # truncation O(h²) ~ 1e-8 relative; the solver's 1e-9 over h ~ 1e-5
    up = B.to_numpy(B.standard_gamma_icdf(B.asarray(a + h), U))
    down = B.to_numpy(B.standard_gamma_icdf(B.asarray(a - h), U))
    fd = (up - down) / (2 * h)
    rel = np.abs(grad - fd) / np.abs(fd)
    assert rel.max() <= GRADIENT_RTOL[backend], f"dz/dα vs finite differences: max relative error {rel.max():.3g}"


def _ks_distance(samples, cdf):
    x = np.sort(samples)
    n = x.shape[0]
    F = cdf(x)
    return max(np.max(np.arange(1, n + 1) / n - F), np.max(F - np.arange(n) / n))


N_LAW = 20_000
#: the Kolmogorov–Smirnov critical distance at level 1e-3 for N_LAW samples (asymptotic
#: sqrt(-log(α/2) / 2N)): each comparison fails with probability 1e-3 if the law is right
KS_CRITICAL = np.sqrt(-np.log(1e-3 / 2) / (2 * N_LAW))


@pytest.mark.parametrize("backend", BACKENDS)
def test_samples_follow_the_law(backend):
    B = get_backend(backend)  # float32, as estimates run
    rng = np.random.default_rng(20)
    # every distribution draws its Gammas as one [N, 3] array (jax: one compiled solver)
    shape, rate = np.array([0.3, 1.0, 3.0]), np.array([2.0, 1.0, 0.5])
    gamma = Gamma(B, B.asarray(np.log(shape)), B.asarray(np.log(rate)))
    z = B.to_numpy(gamma.sample(B.asarray(rng.random((N_LAW, 3))))).astype(np.float64)  # [N, 3]
    for k in range(3):
        d = _ks_distance(z[:, k], st.gamma(shape[k], scale=1.0 / rate[k]).cdf)
        assert d <= KS_CRITICAL, f"Gamma({shape[k]}, {rate[k]}): KS distance {d:.4f} > {KS_CRITICAL:.4f}"
    a, b = np.array([0.5, 2.0, 1.0]), np.array([2.0, 0.4, 1.0])
    beta = Beta(B, B.asarray(np.log(a)), B.asarray(np.log(b)))
    x = B.to_numpy(beta.sample(B.asarray(rng.random((N_LAW, 3, 2))))).astype(np.float64)  # [N, 3]
    for k in range(3):
        d = _ks_distance(x[:, k], st.beta(a[k], b[k]).cdf)
        assert d <= KS_CRITICAL, f"Beta({a[k]}, {b[k]}): KS distance {d:.4f} > {KS_CRITICAL:.4f}"
    alpha = np.array([0.6, 1.5, 3.0])
    dirichlet = Dirichlet(B, B.asarray(np.log(alpha)))
    w = B.to_numpy(dirichlet.sample(B.asarray(rng.random((N_LAW, 3))))).astype(np.float64)  # [N, 3]
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-5)
    for k in range(3):  # marginal k is Beta(α_k, α₀ - α_k)
        d = _ks_distance(w[:, k], st.beta(alpha[k], alpha.sum() - alpha[k]).cdf)
        assert d <= KS_CRITICAL, f"Dirichlet marginal {k}: KS distance {d:.4f} > {KS_CRITICAL:.4f}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_log_prob_score_entropy_and_moments_match_scipy(backend):
    B = get_backend(backend, dtype="float64")
    rng = np.random.default_rng(3)
    gamma_law = st.gamma(np.array([0.4, 3.0]), scale=1 / np.array([2.0, 0.5]))
    beta_law = st.beta(np.array([0.5, 2.0]), np.array([3.0, 0.7]))
    alpha = np.array([0.6, 1.5, 3.0])
    cases = [  # (make(θ), θ, z [5, *value] drawn by scipy, log p, entropy, mean, variance)
        (lambda p: Gamma(B, p[:2], p[2:]), np.log([0.4, 3.0, 2.0, 0.5]), gamma_law.rvs((5, 2), random_state=rng),
         gamma_law.logpdf, gamma_law.entropy(), gamma_law.mean(), gamma_law.var()),
        (lambda p: Beta(B, p[:2], p[2:]), np.log([0.5, 2.0, 3.0, 0.7]), beta_law.rvs((5, 2), random_state=rng),
         beta_law.logpdf, beta_law.entropy(), beta_law.mean(), beta_law.var()),
        (lambda p: Dirichlet(B, p), np.log(alpha), st.dirichlet(alpha).rvs(5, random_state=rng),
         lambda z: np.array([st.dirichlet(alpha).logpdf(row) for row in z]), st.dirichlet(alpha).entropy(),
         st.dirichlet(alpha).mean(), st.dirichlet(alpha).var()),
    ]
    def evaluate(thetas, zs):  # every distribution in one compiled function
        out = []
        for (make, *_), theta, z in zip(cases, thetas, zs):
            dist = make(theta)
            per_sample = B.vmap(B.grad(lambda p, zz: B.sum(make(p).log_prob(B.expand_dims(zz, 0)))),
                                in_axes=(None, 0))(theta, z)  # [5, P]: autodiff score
            out.append((dist.log_prob(z), dist.entropy(), *dist.moments(), dist.score(z), per_sample))
        return out

    results = B.jit(evaluate)([B.asarray(c[1]) for c in cases], [B.asarray(c[2]) for c in cases])
    for (make, theta, z, logpdf, entropy, mean, var), (log_p, ent, m, v, score, auto) in zip(cases, results):
        np.testing.assert_allclose(B.to_numpy(log_p), logpdf(z), rtol=1e-10)
        np.testing.assert_allclose(B.to_numpy(ent), entropy, rtol=1e-10)
        np.testing.assert_allclose(B.to_numpy(m), mean, rtol=1e-12)
        np.testing.assert_allclose(B.to_numpy(v), var, rtol=1e-12)
        names = list(make(B.asarray(theta)).params)  # θ's order (jit returns dicts sorted by key)
        analytic = np.concatenate([B.to_numpy(score[k]).reshape(z.shape[0], -1) for k in names], axis=1)
        np.testing.assert_allclose(analytic, B.to_numpy(auto), rtol=1e-9, atol=1e-12)


#: (backend, task, estimator) of the z-tests: every pair on torch, pathwise on dirichlet_toy on
#: jax. Each jax case compiles the solver and the implicit gradient anew (seconds each); jax's
#: pathwise estimates on gamma_toy equal torch's on the same noise
#: (`test_torch_and_jax_agree_on_the_same_noise`), and reinforce reads only log p, whose jax
#: values and gradients the conformance kit's task parity compares with torch's on both toys
UNBIASED = [(b, t, e) for b in BACKENDS for t in ("gamma_toy", "dirichlet_toy") for e in ("pathwise", "reinforce")
            if b == "torch" or (t, e) == ("dirichlet_toy", "pathwise")]


@pytest.mark.parametrize("backend,task_name,estimator", UNBIASED)
def test_estimators_are_unbiased_on_the_toys(backend, task_name, estimator):
    task = gradest.get_task(task_name)
    est = gradest.get_estimator(estimator, **({"baseline": "loo"} if estimator == "reinforce" else {}))
    exact = gradest.exact_gradient(task, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch.func's slow per-sample fallback for a missing batching rule
        samples = gradest.gradient_samples(task, est, backend=backend, num_replicates=2000, num_samples=4, seed=11)
    result = z_test(samples, exact, alpha=1e-4)
    assert result.passed, (f"{est.label} on {task_name} ({backend}): |z| = {result.max_z:.2f} > "
                           f"{result.threshold:.2f} standard errors; mean {samples.mean(0)}, exact {exact}")


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs torch and jax")
def test_torch_and_jax_agree_on_the_same_noise():
    rng = np.random.default_rng(5)
    out = {}
    # noise [6, 7], the shape of the float64 grids above: jax reuses their compiled solver and
    # implicit gradient
    tasks = {"gamma_toy": gradest.get_task("gamma_toy", shape=[0.5, 2.0, 5.0, 1.0, 0.2, 30.0, 3.0],
                                           rate=[1.0, 2.0, 1.0, 3.0, 0.5, 10.0, 1.0],
                                           target=[2.0, 0.5, 4.0, 0.0, 1.0, 3.0, 2.0]),
             "dirichlet_toy": gradest.get_task("dirichlet_toy", concentration=[0.5, 1.0, 2.0, 4.0, 0.3, 8.0, 1.5],
                                               target=[0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1])}
    for task_name, task in tasks.items():
        theta = task.init_params()
        noise = rng.random((6, 7))  # [S, D]
        for b in BACKENDS:
            B = get_backend(b, dtype="float64")
            N = B.asarray(noise)

            def loss(p):
                prob = task.problem(B, p)
                return B.mean(prob.f(prob.dist.rsample(N)))

            z = task.problem(B, B.asarray(theta)).dist.sample(N)
            out[task_name, b] = B.to_numpy(z), B.to_numpy(B.grad(loss)(B.asarray(theta)))
        (zt, gt), (zj, gj) = out[task_name, "torch"], out[task_name, "jax"]
        np.testing.assert_allclose(zj, zt, rtol=1e-9)
        # torch's dz/dα approximates (`Gamma.gradient_rtol`); jax's is exact
        np.testing.assert_allclose(gj, gt, rtol=Gamma.gradient_rtol, atol=1e-12)


@pytest.mark.parametrize("name,options,words", [
    ("gamma_toy", {"shape": [1.0, -2.0], "rate": 1.0, "target": 0.0}, ["'shape'", "positive", "index 1"]),
    ("gamma_toy", {"shape": [1.0, 2.0], "rate": [1.0, 2.0, 3.0]}, ["'shape'", "entries"]),
    ("gamma_toy", {"target": [1.0, float("nan"), 2.0]}, ["target", "non-finite"]),
    ("dirichlet_toy", {"concentration": [2.0]}, ["'concentration'", "at least 2"]),
    ("dirichlet_toy", {"concentration": [1.0, 0.0]}, ["'concentration'", "positive"]),
    ("dirichlet_toy", {"target": [0.5, 0.5]}, ["'target'", "4 entries"]),
])
def test_bad_options_are_refused(name, options, words):
    with pytest.raises(ValueError) as err:
        gradest.get_task(name, **options)
    for w in words:
        assert w in str(err.value), str(err.value)
