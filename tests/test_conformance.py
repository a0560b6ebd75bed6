"""The conformance kit on everything registered, and the kit's own power to fail.

* Every named check (`parametrize_with_checks`) of every registered estimator with its
  default options, plus the built-in option variants that change the algorithm (REINFORCE
  baselines, hard Gumbel-softmax), each its own test (``-k unbiased`` runs the z-tests);
  estimators no toy task fits (VIMCO needs the ``log_weight`` capability) are checked on a
  small instance of a task that offers what they need (`EXTRA_TASKS`). The checks of one
  estimator share their work, so the series costs one `check_estimator` call.
* Every named check of every registered task with its default options (the costly ones small).
* The series of names covers the kit: surrogate, samples, determinism, unbiasedness exactly
  for the estimators that claim it, parity of each backend with the reference backend.
* `z_test` is calibrated (its rejection rate under the null is at most alpha) and has power.
* Deliberately broken estimators and tasks fail with messages that name the check, the task,
  the backend and the size of the failure.
"""
from __future__ import annotations

import numpy as np
import pytest

import gradest
from gradest.estimator import GradientEstimator, magic_box, no_state
from gradest.testing import (CONFORMANCE_TASKS, ZTest, check_estimator, check_task, compatible_tasks,
                             conformance_tasks, declared_variants, estimator_checks, evaluate_surrogate, numpy_noise,
                             parametrize_with_checks, z_test)

#: small instances of registered tasks, for estimators that no toy task fits
EXTRA_TASKS = {
    "categorical_vae": {"kl": "sampled", "num_latents": 2, "num_categories": 3, "hidden": [4], "batch_size": 2},
    "gaussian_vae": {"kl": "sampled", "decoder": "linear_gaussian", "num_latents": 2, "hidden": [], "batch_size": 2},
}
#: replicates of the z-test: on the toys (a quarter of a standard error of power lost against
#: the kit's default 4000, for half the time), and on the extra tasks (θ has hundreds of entries)
REPLICATES, EXTRA_REPLICATES = 2000, 300
#: options of the task checks: every registered task, the costly ones at a small size (their
#: own tests check them at the default size)
TASK_OPTIONS = {
    "categorical_vae": {"num_latents": 2, "num_categories": 3, "hidden": [16], "batch_size": 8},
}


def _estimator_variants():
    """(name, options, test id) of every registered estimator and declared variant."""
    cases = []
    for name in gradest.list_estimators():
        cases.append((name, {}, name))
        for options in declared_variants(name):
            label = ",".join(f"{k}={v}" for k, v in options.items())
            cases.append((name, options, f"{name}[{label}]"))
    return cases


def _extra_tasks(est):
    return compatible_tasks(est, EXTRA_TASKS)


def _check_options(name: str, options: dict):
    """``(estimator, options of estimator_checks)``, or ``(None, why it cannot be checked)``."""
    entry = gradest.registry.ESTIMATORS.entries[name]
    if entry.required_options():
        return None, f"{name} needs the options {entry.required_options()}; nothing to build by default"
    est = gradest.get_estimator(name, **options)
    if conformance_tasks(est):
        return est, {"num_replicates": REPLICATES}
    extra = _extra_tasks(est)
    if not extra:
        return None, f"no registered task offers what {est.label} needs ({sorted(est.requires)})"
    return est, {"tasks": extra, "num_replicates": EXTRA_REPLICATES}


def _checkable_estimators():
    cases = [_check_options(name, options) for name, options, _ in _estimator_variants()]
    return [(est, options) for est, options in cases if est is not None]


@parametrize_with_checks(_checkable_estimators())
def test_registered_estimator_conforms(obj, check):
    check()


@parametrize_with_checks([(name, {"options": TASK_OPTIONS.get(name)}) for name in gradest.list_tasks()])
def test_registered_task_conforms(obj, check):
    check()


@pytest.mark.parametrize("name, options", [pytest.param(n, o, id=i) for n, o, i in _estimator_variants()])
def test_registered_estimator_has_every_check(name, options):
    est, check_options = _check_options(name, options)
    if est is None:
        pytest.skip(check_options)
    kinds = {check.kind for _, check in estimator_checks(est, **check_options)}
    assert {"metadata", "noise_spec", "surrogate", "gradient_samples", "determinism", "parity"} <= kinds
    assert ("unbiased" in kinds) == est.unbiased


# ---- z_test ---------------------------------------------------------------------------------

def test_z_test_threshold_is_bonferroni():
    rng = np.random.default_rng(0)
    result = z_test(rng.standard_normal((100, 1)), np.zeros(1), alpha=0.05)
    assert isinstance(result, ZTest)
    assert result.threshold == pytest.approx(1.959964, abs=1e-6)
    assert z_test(rng.standard_normal((100, 10)), np.zeros(10), alpha=0.05).threshold == pytest.approx(
        2.807034, abs=1e-6)  # Φ⁻¹(1 - 0.05 / 20)


def test_z_test_is_calibrated_and_has_power():
    # 2000 independent tests under the null at alpha = 0.05 over P = 5 coordinates: the
    # family-wise rejection rate is at most 0.05 (Bonferroni), so at most 0.05 + 4 binomial
    # standard errors (0.0049 each).
    rng = np.random.default_rng(1)
    samples = rng.standard_normal((2000, 200, 5)) * np.array([1.0, 0.1, 3.0, 1.0, 10.0]) + 2.0
    rejections = [not z_test(s, np.full(5, 2.0), alpha=0.05).passed for s in samples]
    assert np.mean(rejections) <= 0.05 + 4 * np.sqrt(0.05 * 0.95 / 2000)
    assert np.mean(rejections) > 0.01  # and it is not vacuous
    # power: a shift of 6 standard errors in one coordinate is rejected
    shifted = samples[0].copy()
    shifted[:, 2] += 6 * 3.0 / np.sqrt(200)
    assert not z_test(shifted, np.full(5, 2.0), alpha=0.05).passed


def test_z_test_zero_variance_uses_a_float_tolerance():
    exact = np.array([1.0, -2.0])
    assert z_test(np.tile(exact * (1 + 1e-9), (10, 1)), exact).passed
    assert not z_test(np.tile(exact + 1e-3, (10, 1)), exact).passed
    with pytest.raises(ValueError, match="samples must be"):
        z_test(np.zeros((10, 3)), exact)
    with pytest.raises(ValueError, match="alpha"):
        z_test(np.zeros((10, 2)), exact, alpha=2.0)


# ---- the kit fails where it should ------------------------------------------------------------

def _reinforce_like(surrogate, **fields) -> GradientEstimator:
    return GradientEstimator(init=no_state, surrogate=surrogate, supports=frozenset({"categorical", "bernoulli"}),
                             unbiased=True, name="broken", **fields)


def test_biased_estimator_claiming_unbiased_fails():
    est = gradest.get_estimator("gumbel_softmax", temperature=1.0)._replace(unbiased=True, name="claims_unbiased")
    with pytest.raises(AssertionError) as err:
        check_estimator(est, backends=("torch",), tasks=["bandit"], toy_tasks=False)
    message = str(err.value)
    assert "check 'unbiased' failed on task 'bandit', backend torch" in message
    assert "standard errors" in message and "Bonferroni threshold" in message


def test_wrong_surrogate_shape_fails():
    def surrogate(f, dist, noise, state):
        z = dist.sample(noise["sample"])
        return dist.backend.mean(f(z), axis=0), state  # [*b]: the S axis is lost

    with pytest.raises(AssertionError, match=r"check 'surrogate' failed on task 'bandit', backend torch: "
                                             r"per-sample surrogate must have shape \[S, \*batch_shape\] = \(3,\)"):
        check_estimator(_reinforce_like(surrogate), backends=("torch",))


def test_non_finite_surrogate_fails():
    def surrogate(f, dist, noise, state):
        B = dist.backend
        z = dist.sample(noise["sample"])
        return magic_box(B, f(z), dist.log_prob(z), B.stop_gradient(f(z))) / 0.0, state

    with pytest.raises(AssertionError, match="check 'surrogate' failed .* non-finite values"):
        check_estimator(_reinforce_like(surrogate), backends=("jax",))


def test_global_random_state_fails_determinism():
    def surrogate(f, dist, noise, state):
        B = dist.backend
        z = dist.sample(noise["sample"])
        weight = B.stop_gradient(f(z)) + B.asarray(np.random.standard_normal())  # a hidden RNG
        return magic_box(B, f(z), dist.log_prob(z), weight), state

    with pytest.raises(AssertionError, match=r"check 'determinism' failed .* the same seed gave different"):
        check_estimator(_reinforce_like(surrogate), backends=("torch",), tasks=["binary_toy"], toy_tasks=False)


def test_backend_specific_bug_fails_parity():
    def surrogate(f, dist, noise, state):
        B = dist.backend
        z = dist.sample(noise["sample"])
        scale = 1.001 if B.name == "jax" else 1.0
        fz = f(z)
        return magic_box(B, fz, dist.log_prob(z), scale * B.stop_gradient(fz)), state

    est = _reinforce_like(surrogate, min_samples=1)
    with pytest.raises(AssertionError) as err:
        check_estimator(est, tasks=["binary_toy"], toy_tasks=False, num_replicates=200)
    message = str(err.value)
    assert "check 'parity' failed on task 'binary_toy', backend jax vs torch (float64, same NumPy noise)" in message
    assert "gradient dL/dθ" in message and "max |a - b|" in message


def test_no_task_fits_is_a_clear_error():
    est = gradest.get_estimator("pathwise")._replace(supports=frozenset({"bernoulli"}), name="odd")
    with pytest.raises(ValueError, match=r"no conformance task fits estimator 'odd'.*pass tasks="):
        check_estimator(est, toy_tasks=False)


class _WrongExactLoss(gradest.get_task("binary_toy").__class__):
    """binary_toy whose exact loss is off by 10%: the Monte Carlo check must see it."""

    def exact_loss(self, backend, params):
        return 1.1 * super().exact_loss(backend, params)


class _WrongShape(gradest.get_task("binary_toy").__class__):
    """binary_toy whose f forgets to sum over the event axis."""

    def problem(self, backend, params, noise=None, batch=None):
        prob = super().problem(backend, params, noise, batch)
        target = backend.asarray(self.target)
        return prob._replace(f=gradest.task.Objective(lambda b: (b - target) ** 2))


def test_check_task_catches_a_wrong_exact_loss():
    with pytest.raises(AssertionError, match=r"check 'exact' failed on task 'binary_toy', backend torch: "
                                             r"exact_loss .* disagrees with the Monte Carlo mean"):
        check_task(_WrongExactLoss(target=[0.2, 0.7], logits=[0.5, -1.0]), backends=("torch",))


def test_check_task_catches_a_wrong_shape():
    with pytest.raises(AssertionError, match=r"check 'problem' failed .* f\(z\) must have shape "
                                             r"\[S, \*batch_shape\] = \(4,\), got \(4, 2\)"):
        check_task(_WrongShape(target=[0.2, 0.7], logits=[0.5, -1.0]), backends=("jax",))


# ---- helpers shared with other tests ----------------------------------------------------------

def test_numpy_noise_feeds_both_backends_the_same_numbers():
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    task = gradest.get_task("bandit", **CONFORMANCE_TASKS["bandit"])
    noise = numpy_noise(task, "reinforce", 3, seed=5)
    assert noise["estimator"]["sample"].shape == (3, 5) and noise["task"] == {}
    t = evaluate_surrogate(task, "reinforce", gradest.backends.get_backend("torch", dtype="float64"), noise)
    j = evaluate_surrogate(task, "reinforce", gradest.backends.get_backend("jax", dtype="float64"), noise)
    np.testing.assert_allclose(t["grad"], j["grad"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(t["per_sample"], j["per_sample"], rtol=1e-10, atol=1e-12)
    assert t["grad"].shape == (5,) and t["per_sample"].shape == (3,)
