"""Temperature annealing of ``gumbel_softmax`` and the learned per-coordinate optimal baseline
``reinforce(baseline="learned_optimal")``.

* Annealing: the schedule's values (Jang et al. 2017: τ_t = max(τ_min, τ₀ exp(-r·t)), updated
  every N steps), the surrogate at step t equals the constant-temperature estimator at τ_t on
  the same noise, and the step travels in the estimator state through `gradest.Trainer`.
* The learned baseline: its network's ratio is the baseline the surrogate uses (at φ set by
  hand to the exact moments, b = b*); the regression's expected gradient vanishes at the exact
  moments and not elsewhere (its minimizer is b*); the φ warm-up moves b toward b*; and the
  estimate is unbiased at any φ (a z-test against enumeration at a deliberately bad random φ
  and at a trained one), while a trained φ lowers the variance.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import gradest
from gradest.backends import get_backend
from gradest.estimators import _learned_baseline as LB
from gradest.estimators.gumbel_softmax import annealed_temperature
from gradest.measure import GradientSampler
from gradest.testing import CONFORMANCE_TASKS, check_estimator, z_test

BINARY = {"target": [0.45, 0.1, 0.8], "logits": [0.0, 1.0, -0.5]}
BANDIT = {"rewards": [0.1, 0.5, -0.3, 1.0, 0.2], "logits": [0.3, -0.2, 0.0, 0.5, -1.0]}
TINY_BERNOULLI = {"num_latents": 3, "hidden": (), "batch_size": 3, "eval_points": 5}


# ---- annealing --------------------------------------------------------------------------------

def test_annealing_schedule_values():
    t = np.array([0, 1, 499, 500, 999, 1000, 7000, 10**6])
    tau = annealed_temperature(t, temperature=1.0, anneal_rate=1e-4, min_temperature=0.5, anneal_every=500)
    want = np.maximum(0.5, np.exp(-1e-4 * np.array([0, 0, 0, 500, 500, 1000, 7000, 10**6])))
    np.testing.assert_allclose(tau, want, rtol=1e-15)
    assert tau[3] == pytest.approx(math.exp(-0.05)) and tau[-1] == 0.5
    np.testing.assert_allclose(annealed_temperature(t, 2.0, 1e-3, 0.1), np.maximum(0.1, 2.0 * np.exp(-1e-3 * t)))
    np.testing.assert_array_equal(annealed_temperature(t, 0.7), np.full(t.shape, 0.7))  # r = 0: constant


@pytest.mark.parametrize("task_name, options", [("bandit", BANDIT), ("binary_toy", BINARY)])
@pytest.mark.parametrize("hard", [False, True])
def test_annealed_surrogate_is_the_constant_one_at_the_step_temperature(task_name, options, hard):
    """Steps 0..6 with r = 0.2, N = 2, τ_min = 0.5 (τ hits the floor at step 4): per-sample
    values and gradients equal those of gumbel_softmax(temperature=τ_t) on the same noise, and
    the state counts t and t mod N (torch, float64)."""
    B = get_backend("torch", dtype="float64")
    task = gradest.get_task(task_name, **options)
    est = gradest.get_estimator("gumbel_softmax", temperature=1.5, hard=hard, anneal_rate=0.2, min_temperature=0.5,
                                anneal_every=2)
    assert est.update_state and est.options["anneal_rate"] == 0.2
    theta = B.asarray(task.init_params())
    state = est.init(task.problem(B, theta).dist)
    rng = np.random.default_rng(0)
    for t in range(7):
        prob = task.problem(B, theta)
        noise = {"sample": B.asarray(_draw(rng, prob.dist, 4))}
        tau = float(annealed_temperature(t, 1.5, 0.2, 0.5, 2))
        const = gradest.get_estimator("gumbel_softmax", temperature=tau, hard=hard)
        loss = lambda p, e, s: B.mean(e.surrogate(task.problem(B, p).f, task.problem(B, p).dist, noise, s)[0])  # noqa: E731
        per_sample, state = est.surrogate(prob.f, prob.dist, noise, state)
        want, _ = const.surrogate(prob.f, prob.dist, noise, {})
        np.testing.assert_allclose(B.to_numpy(per_sample), B.to_numpy(want), rtol=1e-12)
        current = {k: B.asarray(float(t)) if k == "step" else B.asarray(float(t % 2)) for k in state}
        np.testing.assert_allclose(B.to_numpy(B.grad(lambda p: loss(p, est, current))(theta)),
                                   B.to_numpy(B.grad(lambda p: loss(p, const, {}))(theta)), rtol=1e-12)
        assert float(B.to_numpy(state["step"])) == t + 1 and float(B.to_numpy(state["phase"])) == (t + 1) % 2
    assert tau == 0.5


def _draw(rng, dist, S):
    shape = (S, *dist.noise_shape)
    return rng.gumbel(size=shape) if dist.noise_kind == "gumbel" else rng.uniform(1e-6, 1 - 1e-6, size=shape)


def test_annealing_step_travels_through_training():
    """`gradest.Trainer` carries the step (torch; the jax step carries state generically, and the
    kit's parity check compares the new state of both backends)."""
    est = gradest.get_estimator("gumbel_softmax", anneal_rate=1e-2, anneal_every=3)
    trainer = gradest.Trainer(gradest.get_task("bandit", **BANDIT), est, num_samples=2)
    for _ in range(5):
        assert math.isfinite(trainer.step())
    state = trainer.state()
    assert float(state["step"]) == 5 and float(state["phase"]) == 2


def test_annealed_estimator_conforms():
    """The kit (both backends, parity of values, gradients and the new state) on the bandit."""
    results = check_estimator(gradest.get_estimator("gumbel_softmax", hard=True, anneal_rate=0.05),
                              tasks=[gradest.get_task("bandit", **BANDIT)], toy_tasks=False, num_replicates=200)
    assert {"surrogate", "determinism", "parity"} <= {r.check for r in results}


@pytest.mark.parametrize("options, match", [
    ({"anneal_rate": -1.0}, "anneal_rate.*>= 0"),
    ({"anneal_rate": 0.1, "min_temperature": 0.0}, "min_temperature.*positive"),
    ({"anneal_rate": 0.1, "temperature": 0.5, "min_temperature": 1.0}, "must not exceed"),
    ({"anneal_every": 0}, "anneal_every.*positive integer"),
])
def test_bad_annealing_options(options, match):
    with pytest.raises(ValueError, match=match):
        gradest.get_estimator("gumbel_softmax", **options)


def test_constant_temperature_keeps_its_label_and_state():
    est = gradest.get_estimator("gumbel_softmax", temperature=0.5)
    assert est.label == "gumbel_softmax[hard=False,temperature=0.5]" and not est.update_state


# ---- the learned optimal baseline ------------------------------------------------------------

def _exact_moments(task, B):
    """E[f s²] and E[s²] per logit of binary_toy (batch shape ()), by enumeration."""
    theta = task.init_params()
    p = 1.0 / (1.0 + np.exp(-theta))
    prob = task.problem(B, B.asarray(theta))
    num, den = np.zeros(3), np.zeros(3)
    for z in itertools.product((0.0, 1.0), repeat=3):
        z = np.array(z)
        weight = np.prod(np.where(z == 1, p, 1 - p))
        fz = float(B.to_numpy(prob.f(B.asarray(z[None])))[0])
        num += weight * fz * (z - p) ** 2
        den += weight * (z - p) ** 2
    return num, den


def _phi_for(num, den):
    """φ of a linear (hidden=0) network on d = 3 inputs whose outputs are the constants num and
    softplus⁻¹(den): zero weights, those biases."""
    d = 3
    phi = np.zeros(LB.net_size(d, 0))
    phi[2 * d * d:] = np.concatenate([num, np.log(np.expm1(den))])
    return phi


def test_the_baseline_is_the_learned_ratio_and_its_regression_is_minimized_at_b_star():
    B = get_backend("torch", dtype="float64")
    task = gradest.get_task("binary_toy", **BINARY)
    est = gradest.get_estimator("reinforce", baseline="learned_optimal", hidden=0)
    num, den = _exact_moments(task, B)
    dist = task.problem(B, B.asarray(task.init_params())).dist
    phi_star = B.asarray(_phi_for(num, den))
    b = B.to_numpy(LB.baselines(B, phi_star, dist, 0)["logits"])
    np.testing.assert_allclose(b, num / den, rtol=1e-12)  # the surrogate's baseline is N / D
    # the expected regression gradient vanishes at the exact moments (MC over 2^17 samples; its
    # error ~0.003 against ~0.4 for the moments shifted by 0.5)
    prob = task.problem(B, B.asarray(task.init_params()))
    noise = {"sample": B.asarray(np.random.default_rng(1).uniform(1e-9, 1 - 1e-9, size=(1 << 17, 3)))}
    grad = B.grad(lambda q: est.phi_loss(q, prob.f, prob.dist, noise, {"phi": q}))
    at_star = np.abs(B.to_numpy(grad(phi_star))).max()
    shifted = np.abs(B.to_numpy(grad(B.asarray(_phi_for(num + 0.5, den + 0.1))))).max()
    assert at_star < 0.02 * shifted, (at_star, shifted)


def test_phi_warmup_moves_the_baseline_toward_b_star():
    """300 Adam steps of φ (S = 16) bring b within 0.2 of b* = E[f s²] / E[s²] in every
    coordinate, from b = 0 at init (|b*| ~ 0.9-1.3; Adam's steady-state noise keeps ~0.1)."""
    B = get_backend("torch", dtype="float64")
    task = gradest.get_task("binary_toy", **BINARY)
    est = gradest.get_estimator("reinforce", baseline="learned_optimal", hidden=0)
    num, den = _exact_moments(task, B)
    sampler = GradientSampler(task, est, num_samples=16, phi_warmup=300, dtype="float64")
    sampler.set_params(task.init_params())
    dist = task.problem(B, B.asarray(task.init_params())).dist
    b = B.to_numpy(LB.baselines(B, sampler.state["phi"], dist, 0)["logits"])
    assert np.abs(b - num / den).max() < 0.2, (b, num / den)


def _with_phi(est, phi):
    """``est`` whose init returns the given φ (NumPy)."""
    return est._replace(init=lambda dist: {"phi": dist.backend.asarray(phi)})


def test_learned_optimal_is_unbiased_at_any_phi():
    """On the tiny Bernoulli VAE (P = 454, torch, S = 1, R = 2,000): z-tests against the
    enumerated gradient pass at a random φ of large weights (baselines of either sign, far from
    b*) with φ held as it is, and at φ after the default warm-up; the warmed-up baseline's
    summed variance is below a third of plain REINFORCE's."""
    task = gradest.get_task("bernoulli_vae", **TINY_BERNOULLI)
    exact = gradest.exact_gradient(task, dtype="float64")
    est = gradest.get_estimator("reinforce", baseline="learned_optimal")
    B = get_backend("torch")
    d = LB.input_width(task.problem(B, B.asarray(task.init_params())).dist)
    bad = 3.0 * np.random.default_rng(7).standard_normal(LB.net_size(d, 16))
    for candidate, warmup in ((_with_phi(est, bad), 0), (est, None)):
        grads = gradest.gradient_samples(task, candidate, num_replicates=2000, seed=3, dtype="float64",
                                         phi_warmup=warmup)
        test = z_test(grads, exact, alpha=1e-3)
        assert test.passed, f"phi_warmup={warmup}: |z| = {test.max_z:.2f} > {test.threshold:.2f}"
        if warmup is None:
            plain = gradest.gradient_samples(task, "reinforce", num_replicates=2000, seed=3, dtype="float64")
            assert grads.var(0).sum() < plain.var(0).sum() / 3


def test_learned_optimal_trains_phi_in_gradest_train():
    """φ moves in `gradest.train` (torch; the φ step is the backends' generic one, as NVIL's)."""
    est = gradest.get_estimator("reinforce", baseline="learned_optimal", hidden=4)
    result = gradest.train(gradest.get_task("bandit", **BANDIT), est, steps=20, num_samples=2, learning_rate=0.05)
    start = LB.net_init(5, 4, 0)
    assert result.state["phi"].shape == start.shape and not np.allclose(result.state["phi"], start)
    assert np.isfinite(result.history["loss"]).all()


def test_learned_optimal_conforms():
    """The kit after the φ warm-up: the z-test of unbiasedness on the toys of the three kinds in
    torch, and on gaussian_quadratic (two parameters per coordinate, mean and log_std) in both
    backends with torch/jax parity of the surrogate and of ``phi_loss`` (jax compiles for seconds
    per toy: one is enough for parity)."""
    est = gradest.get_estimator("reinforce", baseline="learned_optimal")
    torch_only = check_estimator(est, backends=("torch",), num_replicates=1000)
    assert sum(r.check == "unbiased" for r in torch_only) == 3
    both = check_estimator(est, tasks=[gradest.get_task("gaussian_quadratic", **CONFORMANCE_TASKS["gaussian_quadratic"])],
                           toy_tasks=False, num_replicates=1000)
    assert {"unbiased", "parity"} <= {r.check for r in both}


def test_learned_optimal_options():
    est = gradest.get_estimator("reinforce", baseline="learned_optimal", hidden=0, init_seed=3)
    assert est.label == "reinforce[baseline=learned_optimal,hidden=0,init_seed=3]"
    assert est.unbiased and est.min_samples == 1 and not est.update_state and est.phi_loss is not None
    assert gradest.get_estimator("reinforce", baseline="loo").label == "reinforce[baseline=loo]"
    with pytest.raises(ValueError, match="hidden.*non-negative integer"):
        gradest.get_estimator("reinforce", baseline="learned_optimal", hidden=-1)
    with pytest.raises(ValueError, match="valid baselines: none, moving_average, loo, optimal, learned_optimal"):
        gradest.get_estimator("reinforce", baseline="learned")
