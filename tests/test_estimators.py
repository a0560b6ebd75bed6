"""Statistical tests of the core estimators against exact truth (fixed seeds).

Tolerances are stated in standard errors: z-tests use a family-wise level of 1e-3 with a
Bonferroni correction over the gradient's coordinates; variance checks use the standard error
of the variance estimate itself."""
import numpy as np
import pytest
import gradest
from gradest.measure import summarize
from gradest.testing import z_test

ALPHA = 1e-3
TOY_TASKS = ["bandit", "binary_toy", "gaussian_quadratic"]
UNBIASED = [("reinforce", {"baseline": b}) for b in ("none", "moving_average", "loo", "optimal")] + [
    ("pathwise", {}), ("exact", {})]


def assert_unbiased(grads, exact, alpha=ALPHA, what=""):
    """Per-coordinate z-test of the mean estimate against the exact gradient, Bonferroni over
    coordinates: every |z| must stay below Φ⁻¹(1 - α / 2P)."""
    result = z_test(grads, exact, alpha=alpha)
    assert result.max_z < result.threshold, (
        f"{what}: max |z| = {result.max_z:.2f} >= {result.threshold:.2f}")


def _supported(task, name, options):
    est = gradest.get_estimator(name, **options)
    return gradest.get_task(task).distribution_kind in est.supports


@pytest.mark.parametrize("task", TOY_TASKS)
@pytest.mark.parametrize("name,options", UNBIASED, ids=lambda v: v if isinstance(v, str) else "-".join(map(str, v.values())))
def test_unbiased_estimators_match_exact_gradient(backend_name, task, name, options):
    if not _supported(task, name, options):
        pytest.skip(f"{name} does not support {task}")
    est = gradest.get_estimator(name, **options)
    grads = gradest.gradient_samples(task, est, backend=backend_name, num_replicates=4000,
                                     num_samples=max(2, est.min_samples), seed=11, dtype="float64")
    exact = gradest.exact_gradient(task, backend=backend_name, dtype="float64")
    assert_unbiased(grads, exact, what=f"{est.label} on {task} ({backend_name})")


def _bandit_reinforce_variance(num_samples):
    """Trace of the covariance of REINFORCE (no baseline) on the default bandit, by enumeration:
    one sample a gives g = f(a) (e_a - p); S samples average S independent copies."""
    task = gradest.get_task("bandit")
    p = np.exp(task.logits0) / np.exp(task.logits0).sum()
    f = -task.rewards
    K = len(p)
    g = f[:, None] * (np.eye(K) - p)  # [K arms, K coordinates]
    second = (p[:, None] * g**2).sum()
    first = (p[:, None] * g).sum(0)
    return (second - (first**2).sum()) / num_samples


@pytest.mark.parametrize("num_samples", [1, 4])
def test_reinforce_variance_equals_enumeration(backend_name, num_samples):
    grads = gradest.gradient_samples("bandit", "reinforce", backend=backend_name, num_replicates=20000,
                                     num_samples=num_samples, seed=3, dtype="float64")
    s = summarize(grads, None)
    se = (s["variance_high"] - s["variance_low"]) / (2 * 1.96)
    want = _bandit_reinforce_variance(num_samples)
    assert abs(s["variance"] - want) < 4 * se, (s["variance"], want, se)


def test_reinforce_variance_scales_as_one_over_s(backend_name):
    v1 = summarize(gradest.gradient_samples("bandit", "reinforce", backend=backend_name, num_replicates=20000,
                                            num_samples=1, seed=5), None)
    v8 = summarize(gradest.gradient_samples("bandit", "reinforce", backend=backend_name, num_replicates=20000,
                                            num_samples=8, seed=6), None)
    ratio = v1["variance"] / v8["variance"]
    # relative standard errors of the two estimates, combined for the ratio
    rel = np.hypot(*[(v["variance_high"] - v["variance_low"]) / (2 * 1.96 * v["variance"]) for v in (v1, v8)])
    assert abs(ratio / 8 - 1) < 4 * rel, (ratio, rel)


def test_pathwise_variance_closed_form(backend_name):
    """Pathwise on gaussian_quadratic: each mean coordinate has variance 4σ²/S."""
    task = gradest.get_task("gaussian_quadratic", mean=[0.5, -1.0], log_std=[0.0, np.log(2.0)], target=[1.0, 1.0])
    S, R = 4, 20000
    grads = gradest.gradient_samples(task, "pathwise", backend=backend_name, num_replicates=R,
                                     num_samples=S, seed=2, dtype="float64")
    want = 4 * np.array([1.0, 4.0]) / S
    got = grads[:, :2].var(0, ddof=1)
    # the sample variance of R Gaussian values has standard error var * sqrt(2 / (R - 1))
    assert np.all(np.abs(got / want - 1) < 4 * np.sqrt(2 / (R - 1))), (got, want)


@pytest.mark.parametrize("task", ["bandit", "binary_toy"])
@pytest.mark.parametrize("baseline", ["loo", "optimal"])
def test_baselines_lower_the_variance(backend_name, task, baseline):
    kwargs = dict(backend=backend_name, num_replicates=8000, num_samples=4, seed=1, timing_repeats=1)
    none = gradest.gradient_stats(task, "reinforce", **kwargs)
    better = gradest.gradient_stats(task, gradest.get_estimator("reinforce", baseline=baseline), **kwargs)
    assert better["variance_high"] < none["variance_low"], (better["variance"], none["variance"])


def test_gumbel_softmax_bias_shrinks_with_temperature(backend_name):
    """Biased at τ = 1 (the 95% interval of ‖bias‖ excludes 0 and the z-test rejects), and the
    bias falls as τ falls: τ = 2 > τ = 1 > τ = 0.5, intervals apart."""
    stats_by_t = {}
    for t in (2.0, 1.0, 0.5):
        est = gradest.get_estimator("gumbel_softmax", temperature=t)
        stats_by_t[t] = gradest.gradient_stats("bandit", est, backend=backend_name, num_replicates=20000,
                                               seed=4, timing_repeats=1)
    assert stats_by_t[1.0]["bias_norm_low"] > 0
    grads = gradest.gradient_samples("bandit", gradest.get_estimator("gumbel_softmax", temperature=1.0),
                                     backend=backend_name, num_replicates=20000, seed=4)
    with pytest.raises(AssertionError):
        assert_unbiased(grads, gradest.exact_gradient("bandit", backend=backend_name))
    for hot, cold in ((2.0, 1.0), (1.0, 0.5)):
        assert stats_by_t[cold]["bias_norm_high"] < stats_by_t[hot]["bias_norm_low"]
        assert stats_by_t[cold]["variance"] > stats_by_t[hot]["variance"]


def test_exact_estimator_has_zero_variance(backend_name):
    for task in TOY_TASKS:
        grads = gradest.gradient_samples(task, "exact", backend=backend_name, num_replicates=5)
        np.testing.assert_allclose(grads, np.broadcast_to(gradest.exact_gradient(task, backend=backend_name), grads.shape),
                                   rtol=1e-5, atol=1e-7)


def test_closed_form_exact_gradients(backend_name):
    bandit = gradest.get_task("bandit", rewards=[1.0, 0.0, 2.0], logits=[0.0, 1.0, -1.0])
    p = np.exp([0.0, 1.0, -1.0]) / np.exp([0.0, 1.0, -1.0]).sum()
    r = np.array([1.0, 0.0, 2.0])
    np.testing.assert_allclose(gradest.exact_gradient(bandit, backend=backend_name, dtype="float64"),
                               -p * (r - p @ r), rtol=1e-10)
    toy = gradest.get_task("binary_toy", target=[0.45, 0.1], logits=[0.3, -2.0])
    q = 1 / (1 + np.exp(-np.array([0.3, -2.0])))
    np.testing.assert_allclose(gradest.exact_gradient(toy, backend=backend_name, dtype="float64"),
                               q * (1 - q) * (1 - 2 * np.array([0.45, 0.1])), rtol=1e-10)
    gq = gradest.get_task("gaussian_quadratic", mean=[0.5], log_std=[np.log(2.0)], target=[1.5])
    np.testing.assert_allclose(gradest.exact_gradient(gq, backend=backend_name, dtype="float64"),
                               [2 * (0.5 - 1.5), 2 * 4.0], rtol=1e-10)


def test_common_random_numbers_give_the_same_samples(backend_name):
    """REINFORCE and straight-through see the same hard samples under one seed: on a bandit with
    linear f both surrogates' values (f at the sample) agree replicate by replicate."""
    from gradest.measure import GradientSampler, draw_noise, make_loss

    vals = []
    for name in ("reinforce", "straight_through"):
        s = GradientSampler("bandit", name, backend=backend_name, num_samples=3, seed=9)
        noise = draw_noise(s.backend, s.specs, s.seed, 0, 50)
        loss = s.backend.vmap(make_loss(s.task, s.estimator, s.backend), in_axes=(None, 0, None))
        vals.append(s.backend.to_numpy(loss(s.params, noise, s.state)[0]))
    np.testing.assert_allclose(vals[0], vals[1], rtol=1e-6)
