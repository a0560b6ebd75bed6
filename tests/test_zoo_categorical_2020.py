"""Tests of the categorical estimators unordered_set, carms, gst and decoupled_st against exact
quantities.

Tolerances: unbiasedness is a two-sided z-test per coordinate with a Bonferroni correction at
family level ALPHA = 1e-4 (`gradest.testing.z_test`: threshold Φ⁻¹(1 − ALPHA/2P), about 4.4
standard errors for P = 5 and 5.3 for the VAE's P = 354 parameters), against the exact gradient
by enumeration, fixed seeds. Exact identities (an expectation summed over every set the
unordered set estimator can draw, set probabilities, straight-through values and gradients)
compare in float64 to |a − b| <= 1e-9 + 1e-7 |b| (1e-10 relative for the quadrature). Parity
compares torch and jax on the same NumPy noise in float64 to |a − b| <= 1e-9 + 1e-7 |b|.

Backends: the z-tests run on torch; jax is held to the same numbers by the parity tests (same
noise -> same per-sample surrogate and gradient), and the conformance kit z-tests both backends
on the bandit. Compiling the vectorized JAX estimate of these estimators costs 10-30 s on a
loaded 2-core machine, beyond this file's budget.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import gradest
from gradest.backends import get_backend
from gradest.binding import make_loss
from gradest.distributions import Categorical
from gradest.estimators.carms import category_orders
from gradest.estimators.gst import GAP_P_CAP
from gradest.estimators.unordered_set import set_log_integrals, stochastic_beam_search
from gradest.testing import numpy_noise, surrogate_evaluator, z_test

ALPHA = 1e-4
RTOL, ATOL = 1e-7, 1e-9
BANDIT = {"rewards": [0.1, 0.5, -0.3, 1.0, 0.2], "logits": [0.3, -0.2, 0.0, 0.5, -1.0]}
#: a categorical VAE small enough to enumerate (3^2 latent values), with a batch of 2 images
VAE = {"kl": "sampled", "num_latents": 2, "num_categories": 3, "hidden": [2], "batch_size": 2}


def bandit():
    return gradest.get_task("bandit", **BANDIT)


def vae():
    return gradest.get_task("categorical_vae", **VAE)


def exact_set_probability(p, members, removed=()) -> float:
    """P(drawing the set ``members`` without replacement from p restricted to D minus ``removed``),
    summed over the orders of the draw (NumPy, the definition itself)."""
    p = np.asarray(p, dtype=np.float64)
    mass = 1.0 - sum(p[r] for r in removed)
    total = 0.0
    for order in itertools.permutations(members):
        prob, left = 1.0, mass
        for x in order:
            prob *= p[x] / left
            left -= p[x]
        total += prob
    return total


def grad_and_values(task, est, backend: str, noise: dict):
    """(dL/dθ [P], per-sample surrogate [S, *b]) of one estimate in float64 on NumPy ``noise``."""
    B = get_backend(backend, dtype="float64")
    theta = B.asarray(task.init_params())
    loss = make_loss(task, est, B)
    tree = {g: {k: B.asarray(v) for k, v in d.items()} for g, d in noise.items()}
    state = est.init(task.problem(B, theta).dist)
    grad = B.to_numpy(B.grad(lambda p: loss(p, tree, state)[0])(theta))
    prob = task.problem(B, theta)
    values, _ = est.surrogate(prob.f, prob.dist, tree["estimator"], state)
    return np.asarray(grad, dtype=np.float64), np.asarray(B.to_numpy(values), dtype=np.float64)


# ---- unordered_set: set probabilities, the sampler, the expectation -------------------------

def test_set_probabilities_match_enumeration(backend="torch"):
    """p(S), p^{D\\s}(S\\s) and p^{D\\{s,s'}}(S\\{s,s'}) by quadrature equal the sums over the
    orders of the draw, for sets of 1-5 values with probabilities from 0.6 down to 1e-9, and the
    set that exhausts the support (every probability 1). Torch float64 (the same backend code
    runs on jax, held equal by the parity tests)."""
    B = get_backend(backend, dtype="float64")
    rng = np.random.default_rng(3)
    cases = [rng.dirichlet(np.ones(6))[:k] for k in (1, 2, 3, 4, 5)]
    cases += [np.array([1e-9, 3e-7, 2e-4]), np.array([0.6, 0.3, 0.09]), rng.dirichlet(np.ones(4))]
    for p in cases:
        k = len(p)
        none, one, two = (np.asarray(B.to_numpy(a)) for a in set_log_integrals(B, B.asarray(np.log(p))))
        members = list(range(k))
        exact_none = exact_set_probability(np.append(p, 1 - p.sum()), members)
        ratio_one = np.exp(one - none)
        for i in range(k):
            rest = [m for m in members if m != i]
            want = exact_set_probability(np.append(p, 1 - p.sum()), rest, removed=[i]) / exact_none
            np.testing.assert_allclose(ratio_one[i], want, rtol=1e-10, err_msg=f"R(S, s) for p={p}")
            for j in range(k):
                pair = [m for m in members if m not in (i, j)]
                removed = [i] if i == j else [i, j]
                want2 = exact_set_probability(np.append(p, 1 - p.sum()), pair, removed=removed) / \
                    exact_set_probability(np.append(p, 1 - p.sum()), rest, removed=[i])
                np.testing.assert_allclose(np.exp(two[i, j] - one[i]), want2, rtol=1e-10,
                                           err_msg=f"R^(D minus {i})(S, {j}) for p={p}")
    full = np.array([0.5, 0.3, 0.2])  # S = D: every set probability is 1
    none, one, two = (np.asarray(B.to_numpy(a)) for a in set_log_integrals(B, B.asarray(np.log(full))))
    np.testing.assert_allclose(np.exp(one - none), 1.0, rtol=1e-10)
    np.testing.assert_allclose(np.exp(two - one[:, None]), 1.0, rtol=1e-10)


def test_beam_search_draws_sets_with_their_probabilities():
    """Stochastic beam search over 2 variables x 3 classes (9 joint values) with k = 2: the
    frequency of each of the 36 unordered sets over R = 6000 Gumbel draws matches p(S) by
    enumeration (z per set, Bonferroni at ALPHA over 36 sets, about 4.7 standard errors), and
    the two values always differ."""
    B = get_backend("torch", dtype="float64")
    rng = np.random.default_rng(7)
    logits = np.array([[0.8, -0.3, 0.1], [-0.5, 0.9, 0.0]])
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))  # [2, 3]
    R, k = 6000, 2
    gumbel = rng.gumbel(size=(k, R, 2, 3))
    beams = B.to_numpy(stochastic_beam_search(B, B.asarray(np.broadcast_to(log_p, (R, 2, 3)).copy()),
                                              B.asarray(gumbel), k))  # [k, R, 2, 3]
    index = np.argmax(beams, -1)  # [k, R, 2]
    joint = index[..., 0] * 3 + index[..., 1]  # [k, R]
    assert np.all(joint[0] != joint[1]), "beam search drew a value twice"
    p_joint = np.exp(log_p[0][:, None] + log_p[1][None, :]).reshape(-1)  # [9]
    counts = {}
    for a, b in zip(joint[0], joint[1]):
        key = (min(a, b), max(a, b))
        counts[key] = counts.get(key, 0) + 1
    sets = list(itertools.combinations(range(9), 2))
    threshold = -__import__("statistics").NormalDist().inv_cdf(ALPHA / (2 * len(sets)))
    for s in sets:
        want = exact_set_probability(p_joint, list(s))
        freq = counts.get(s, 0) / R
        z = (freq - want) / math.sqrt(want * (1 - want) / R)
        assert abs(z) <= threshold, f"set {s}: frequency {freq:.4f} against p(S) = {want:.4f} (|z| = {abs(z):.2f})"


@pytest.mark.parametrize("k", [1, 2, 3])
def test_unordered_set_expectation_is_exact_on_the_bandit(k):
    """Σ_S p(S) ĝ(S) over every set of k of the 5 arms (each forced by its Gumbel noise) is the
    exact gradient (k = 1: REINFORCE without baseline), and the surrogate's value is f at the
    set's arms."""
    task, est = bandit(), gradest.get_estimator("unordered_set")
    p = np.exp(np.array(BANDIT["logits"]) - np.log(np.exp(BANDIT["logits"]).sum()))
    rewards = np.array(BANDIT["rewards"])
    expected = np.zeros(5)
    for members in itertools.combinations(range(5), k):
        g = np.zeros((k, 5))
        g[0] = -np.log(p)  # every perturbed value log p + G is 0 ...
        for rank, x in enumerate(members):
            g[0, x] += 50.0 + rank  # ... except the set's, on top in this order
        grad, values = grad_and_values(task, est, "torch", {"estimator": {"sample": g}, "task": {}})
        np.testing.assert_allclose(np.sort(values), np.sort(-rewards[list(members)]), rtol=RTOL, atol=ATOL)
        expected += exact_set_probability(p, list(members)) * grad
    np.testing.assert_allclose(expected, gradest.exact_gradient(task), rtol=RTOL, atol=ATOL)


def test_unordered_set_with_every_value_is_the_exact_gradient():
    """k = K^L (S = 9 on a 3^2 latent space): the set is the whole support, every estimate is
    the exact gradient of the VAE (f depends on θ through the decoder and log q)."""
    task, est = vae(), gradest.get_estimator("unordered_set")
    noise = numpy_noise(task, est, 9, seed=2)
    grad, values = grad_and_values(task, est, "torch", noise)
    exact_est = gradest.get_estimator("exact")
    exact, _ = grad_and_values(task, exact_est, "torch", numpy_noise(task, exact_est, 1))
    np.testing.assert_allclose(grad, exact, rtol=RTOL, atol=ATOL)
    assert gradest.estimator.f_evaluations(est, 12, task.problem(get_backend("torch"),
                                                                 get_backend("torch").asarray(task.init_params())).dist) == 9


# ---- unbiasedness z-tests (torch) -------------------------------------------------------------

@pytest.mark.parametrize("name", ["unordered_set", "carms"])
@pytest.mark.parametrize("which", ["bandit", "vae"])
def test_unbiased_against_enumeration(name, which):
    """The mean of R estimates (S = 3) equals the exact gradient within the Bonferroni z
    threshold (ALPHA = 1e-4), on the bandit (R = 4000) and on the enumerable VAE (R = 2000,
    354 parameters, 2 latents x 3 classes, batch of 2)."""
    task = bandit() if which == "bandit" else vae()
    R = 4000 if which == "bandit" else 2000
    grads = gradest.gradient_samples(task, name, backend="torch", num_replicates=R, num_samples=3, seed=11)
    result = z_test(grads, gradest.exact_gradient(task), alpha=ALPHA)
    assert result.passed, f"{name} on {which}: max |z| {result.max_z:.2f} > {result.threshold:.2f}"


def test_carms_samples_are_marginally_exact_and_antithetic():
    """The CARMS sample of every draw is marginally Categorical(p): over R = 4000 draws of n = 4
    samples each class's frequency matches p (z per class, Bonferroni); and the samples are
    antithetic: duplicates within a draw are rarer than for independent samples (the expected
    number of distinct values is larger than 1 - Σ(1-p)^4 summed, by 5 standard errors)."""
    est = gradest.get_estimator("carms")
    B = get_backend("torch", dtype="float64")
    rng = np.random.default_rng(5)
    R, n = 4000, 4
    theta = np.broadcast_to(np.array(BANDIT["logits"]), (R, 5)).copy()
    dist = Categorical(B, B.asarray(theta))  # R independent draws as a batch axis
    seen = []

    def f(z):  # [n, R, 5] -> [n, R]
        seen.append(B.to_numpy(z))
        return -B.sum(z * B.asarray(np.array(BANDIT["rewards"])), axis=-1)

    est.surrogate(f, dist, {"copula": B.asarray(rng.uniform(size=(n, R))),
                            "order": B.asarray(rng.uniform(size=(n, R)))}, {})
    z = np.moveaxis(np.asarray(seen[-1]), 0, 1)  # [R, n, 5] one-hot
    p = np.exp(BANDIT["logits"]) / np.exp(BANDIT["logits"]).sum()
    freq = z.mean(axis=(0, 1))
    se = np.sqrt(p * (1 - p) / R)  # of the mean of one sample per draw: the n negatively correlated ones average better
    threshold = -__import__("statistics").NormalDist().inv_cdf(ALPHA / 10)
    assert np.all(np.abs(freq - p) / se <= threshold), f"marginal frequencies {freq} against p = {p}"
    distinct = (z.sum(axis=1) > 0).sum(axis=-1)  # [R]
    independent = np.sum(1 - (1 - p) ** n)
    assert distinct.mean() > independent + 5 * distinct.std() / math.sqrt(R), (
        f"{distinct.mean():.3f} distinct values per draw, independent sampling gives {independent:.3f}")
    assert len(category_orders(5)) == 10


# ---- gst and decoupled_st: exact forward values and gradients ---------------------------------

@pytest.mark.parametrize("gap", [1.0, "p"])
def test_gst_forward_value_and_gradient_are_exact(gap):
    """GST on the bandit (f(z) = -r·z): the per-sample value is f(onehot(argmax(θ + G))) exactly,
    and the gradient is the softmax Jacobian at the gapped logits computed here in NumPy,
    mean_s (1/τ)(diag(y_s) - y_s y_sᵀ)(-r) with y_s = softmax((θ + M_s)/τ), M_s the gap
    perturbation of [1]; the gapped logits have their maximum at the sample, the others at
    least κ below."""
    task, tau = bandit(), 0.7
    est = gradest.get_estimator("gst", temperature=tau, gap=gap)
    noise = numpy_noise(task, est, 4, seed=9)
    grad, values = grad_and_values(task, est, "torch", noise)
    theta, r = np.array(BANDIT["logits"]), np.array(BANDIT["rewards"])
    p = np.exp(theta) / np.exp(theta).sum()
    want = np.zeros(5)
    for g in noise["estimator"]["sample"]:
        d = np.argmax(theta + g)
        assert values.shape == (4,)
        kappa = gap if gap != "p" else -np.log(1 - p[d] * GAP_P_CAP) / (p[d] * GAP_P_CAP)
        moved = np.where(np.arange(5) == d, theta.max(), np.minimum(theta, theta.max() - kappa))
        assert np.argmax(moved) == d and np.all(np.delete(moved, d) <= moved[d] - kappa + 1e-12)
        y = np.exp(moved / tau) / np.exp(moved / tau).sum()
        want += (np.diag(y) - np.outer(y, y)) @ (-r) / tau / 4
    np.testing.assert_allclose(values, [-r[np.argmax(theta + g)] for g in noise["estimator"]["sample"]],
                               rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(grad, want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("tau_f,tau_b", [(0.5, 0.5), (2.0, 2.0), (0.3, 1.5)])
def test_decoupled_st_is_st_gumbel_softmax_at_the_backward_temperature(tau_f, tau_b):
    """On the same noise and a nonlinear f (the VAE), decoupled_st(τ_f, τ_b) gives ST
    Gumbel-softmax's (gumbel_softmax(τ_b, hard=True)) per-sample values and gradient: equal
    temperatures are ST-GS, and the forward temperature does not move the hard sample. The
    forward value is f(onehot(argmax(θ + G))) exactly."""
    task = vae()
    ours = gradest.get_estimator("decoupled_st", forward_temperature=tau_f, backward_temperature=tau_b)
    stgs = gradest.get_estimator("gumbel_softmax", temperature=tau_b, hard=True)
    noise = numpy_noise(task, ours, 3, seed=6)
    assert set(noise["estimator"]) == set(numpy_noise(task, stgs, 3, seed=6)["estimator"]) == {"sample"}
    g_ours, v_ours = grad_and_values(task, ours, "torch", noise)
    g_stgs, v_stgs = grad_and_values(task, stgs, "torch", noise)
    np.testing.assert_allclose(v_ours, v_stgs, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(g_ours, g_stgs, rtol=RTOL, atol=ATOL)
    B = get_backend("torch", dtype="float64")
    prob = task.problem(B, B.asarray(task.init_params()))
    hard = prob.dist.sample(B.asarray(noise["estimator"]["sample"]))
    np.testing.assert_allclose(v_ours, B.to_numpy(prob.f(hard)), rtol=RTOL, atol=ATOL)
    other = gradest.get_estimator("gumbel_softmax", temperature=tau_b * 3.0, hard=True)
    assert not np.allclose(grad_and_values(task, other, "torch", noise)[0], g_ours, rtol=1e-3), \
        "the comparison cannot tell backward temperatures apart"


# ---- torch <-> jax parity on the VAE (batch and event axes) ----------------------------------

@pytest.mark.parametrize("name", ["unordered_set", "carms", "gst", "decoupled_st"])
def test_torch_jax_parity_on_the_vae(name):
    """The same NumPy noise (S = 2) gives the same per-sample surrogate and gradient dL/dθ in
    torch and jax (float64; each compiled once, as the conformance kit's parity step does)."""
    task, est = vae(), gradest.get_estimator(name)
    noise = numpy_noise(task, est, 2, seed=8)
    out = {b: surrogate_evaluator(task, est, get_backend(b, dtype="float64"))(noise) for b in ("torch", "jax")}
    (g_t, v_t), (g_j, v_j) = ((out[b]["grad"], out[b]["per_sample"]) for b in ("torch", "jax"))
    assert np.all(np.isfinite(g_t)) and np.any(g_t != 0)
    np.testing.assert_allclose(v_j, v_t, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(g_j, g_t, rtol=RTOL, atol=ATOL)


def test_options_are_checked_before_any_work():
    for name, options, words in [("gst", {"gap": 0.0}, "gap"), ("gst", {"temperature": -1.0}, "temperature"),
                                 ("gst", {"gap": "q"}, "gap"),
                                 ("decoupled_st", {"forward_temperature": 0}, "forward_temperature"),
                                 ("decoupled_st", {"backward_temperature": float("nan")}, "backward_temperature")]:
        with pytest.raises(ValueError, match=words):
            gradest.get_estimator(name, **options)
    assert gradest.get_estimator("carms").min_samples == 2
