"""``lasso_huber``: closed forms vs numerical integration, exact gradients vs finite differences,
convergence to scikit-learn's Lasso, the δ sweep, unbiased estimators for σ > 0, bad input."""
import math
import time

import numpy as np
import pytest
from scipy import integrate, stats

import gradest
from gradest.backends import get_backend
from gradest.measure import UnsupportedCombinationError, exact_loss
from gradest.tasks.lasso_huber import expected_penalty, lasso_objective
from gradest import noise

# family-wise false-alarm rate of each z-test, Bonferroni-corrected over coordinates
ALPHA_FAMILY = 1e-3


def z_test_failures(grads, truth, alpha=ALPHA_FAMILY):
    """Coordinates whose mean estimate is off the truth by more than the Bonferroni z bound."""
    R, P = grads.shape
    se = grads.std(axis=0, ddof=1) / math.sqrt(R)
    z_crit = stats.norm.ppf(1 - alpha / (2 * P))
    z = (grads.mean(axis=0) - truth) / np.where(se > 0, se, np.inf)
    exact_match = (se == 0) & np.isclose(grads.mean(axis=0), truth, rtol=1e-9, atol=1e-12)
    return np.flatnonzero((np.abs(z) > z_crit) | ((se == 0) & ~exact_match))


def huber_np(x, delta):
    return np.where(np.abs(x) <= delta, x * x / (2 * delta), np.abs(x) - delta / 2) if delta > 0 else np.abs(x)


def test_closed_form_matches_numerical_integration(backend_name):
    B = get_backend(backend_name, dtype="float64")
    for m in (-1.3, -0.02, 0.0, 0.05, 0.7):
        for s in (0.05, 0.5, 2.0):
            for d in (0.0, 0.01, 0.3, 1.0):
                def integrand(x):
                    return huber_np(x, d) * np.exp(-(x - m) ** 2 / (2 * s * s)) / (math.sqrt(2 * math.pi) * s)

                breaks = [p for p in (-d, 0.0, d) if m - 14 * s < p < m + 14 * s]
                numeric = integrate.quad(integrand, m - 14 * s, m + 14 * s, points=breaks or None,
                                         limit=400, epsabs=1e-13, epsrel=1e-12)[0]
                closed = float(B.to_numpy(expected_penalty(B, B.asarray(np.array(m)), s, d)))
                assert closed == pytest.approx(numeric, rel=1e-9, abs=1e-11), (m, s, d)
    # sigma = 0: the relaxation itself
    w = np.array([-0.5, 0.003, 0.0, 2.0])
    np.testing.assert_allclose(B.to_numpy(expected_penalty(B, B.asarray(w), 0.0, 0.01)), huber_np(w, 0.01))


@pytest.mark.parametrize("sigma,delta", [(0.0, 0.05), (0.3, 0.0), (0.3, 0.05)])
def test_exact_gradient_matches_finite_differences(backend_name, sigma, delta):
    task = gradest.get_task("lasso_huber", sigma=sigma, delta=delta, alpha=0.3)
    rng = np.random.default_rng(1)
    w = rng.normal(scale=0.3, size=task.num_params)
    w[:3] = [0.01, -0.02, 0.0]  # inside the Huber region
    grad = gradest.exact_gradient(task, backend=backend_name, dtype="float64", params=w)
    B = get_backend(backend_name, dtype="float64")
    loss = B.jit(lambda p: task.exact_loss(B, p))
    h = 1e-6
    fd = np.array([(float(B.to_numpy(loss(B.asarray(w + h * e)))) - float(B.to_numpy(loss(B.asarray(w - h * e)))))
                   / (2 * h) for e in np.eye(task.num_params)])
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)
    # the loss itself: penalty + data fit, against NumPy (sigma = 0: the relaxed objective)
    if sigma == 0:
        r = task.y - task.X @ w
        relaxed = r @ r / (2 * task.X.shape[0]) + task.alpha * huber_np(w, delta).sum()
        assert exact_loss(task, backend=backend_name, dtype="float64", params=w) == pytest.approx(relaxed, rel=1e-12)


def test_converges_to_scikit_learn(backend_name):
    """exact gradients + Adam (the defaults): within 1% of scikit-learn's objective in 5,000 steps."""
    task = gradest.get_task("lasso_huber", delta=1e-3)
    start = time.perf_counter()
    result = gradest.train(task, "exact", backend=backend_name, steps=5000, eval_every=1000)
    seconds = time.perf_counter() - start
    ref = task.reference()
    gap = (task.objective(result.params) - task.reference_objective()) / task.reference_objective()
    print(f"\nlasso_huber {backend_name}: 5000 exact Adam steps in {seconds:.1f} s "
          f"(training {result.history.seconds.iloc[-1]:.1f} s), objective gap {gap:.2e}")
    assert abs(gap) < 0.01
    assert result.history["objective_gap"].iloc[-1] < 0.01
    zeros = ref == 0
    assert zeros.sum() >= 10 and np.abs(result.params[zeros]).max() < 0.05  # ~5 Adam steps of lr 1e-2
    clear = np.abs(ref) > 0.1
    assert clear.sum() >= 4 and np.array_equal(np.sign(result.params[clear]), np.sign(ref[clear]))
    assert result.history["support_recall"].iloc[-1] == 1.0
    assert result.history["true_support_recall"].iloc[-1] == 1.0


def test_delta_sweep_gap_shrinks(backend_name):
    """The minimizer of the δ-relaxed loss approaches scikit-learn's objective as δ -> 0."""
    gaps = []
    for delta in (1.0, 0.1, 0.01):
        task = gradest.get_task("lasso_huber", delta=delta)
        # from the reference: Adam only has to reach the relaxed minimizer nearby
        result = gradest.train(task, "exact", backend=backend_name, steps=400, eval_every=400,
                               dtype="float64", params=task.reference())
        gaps.append((task.objective(result.params) - task.reference_objective()) / task.reference_objective())
    print(f"\nlasso_huber {backend_name} delta sweep (1, 0.1, 0.01): objective gaps {gaps}")
    assert gaps[0] > 2 * gaps[1] and gaps[1] > 2 * gaps[2] and gaps[2] >= -1e-9  # monotone, with margin
    assert gaps[0] > 0.02 and gaps[2] < 0.005
    # the bound F(w_δ) - F(w*) <= alpha d δ / 2 (|x| - δ/2 <= huber <= |x|), up to Adam's jitter
    d, alpha, F = task.num_params, task.alpha, task.reference_objective()
    for gap, delta in zip(gaps, (1.0, 0.1, 0.01)):
        assert gap * F <= alpha * d * delta / 2 + 2e-4


@pytest.mark.parametrize("delta", [0.2, 0.0])
def test_pathwise_and_reinforce_unbiased_for_sigma_positive(backend_name, delta):
    task = gradest.get_task("lasso_huber", sigma=0.5, delta=delta, alpha=0.5)
    w = 0.5 * task.reference() + np.linspace(-0.3, 0.3, task.num_params)
    truth = gradest.exact_gradient(task, backend=backend_name, dtype="float64", params=w)
    wrong = gradest.exact_gradient(gradest.get_task("lasso_huber", sigma=0.0, delta=0.2, alpha=0.5),
                                   backend=backend_name, dtype="float64", params=w)
    for est, S in ((("pathwise", {}), 1), (("reinforce", {"baseline": "loo"}), 4)):
        estimator = gradest.get_estimator(est[0], **est[1])
        grads = gradest.gradient_samples(task, estimator, backend=backend_name, dtype="float64",
                                         num_replicates=3000, num_samples=S, seed=3, params=w)
        assert z_test_failures(grads, truth).size == 0, estimator.label
        # the test has power: the gradient of the unsmoothed loss is rejected
        assert z_test_failures(grads, wrong).size > 0, estimator.label


def test_sigma_zero_is_deterministic_and_refuses_score_function(backend_name):
    task = gradest.get_task("lasso_huber", delta=0.05)
    w = np.linspace(-1, 1, task.num_params)
    with pytest.raises(UnsupportedCombinationError, match="sigma > 0"):
        gradest.gradient_samples(task, "reinforce", backend=backend_name, num_replicates=4, params=w)
    with pytest.raises(UnsupportedCombinationError, match="sigma > 0"):
        gradest.train(task, ("reinforce"), backend=backend_name, steps=2)
    grads = gradest.gradient_samples(task, "pathwise", backend=backend_name, dtype="float64",
                                     num_replicates=5, params=w)
    truth = gradest.exact_gradient(task, backend=backend_name, dtype="float64", params=w)
    np.testing.assert_allclose(grads, np.broadcast_to(truth, grads.shape), rtol=1e-10, atol=1e-12)
    # the constant log_std: nothing is NaN, and no gradient reaches it (θ = w only)
    B = get_backend(backend_name)
    prob = task.problem(B, B.asarray(w))
    eps = noise.draw(B, 0, "t", "normal", (task.num_params,), 0, 3)
    for value in (prob.dist.rsample(eps), prob.dist.log_prob(prob.dist.sample(eps)), prob.dist.entropy(),
                  prob.f(prob.dist.rsample(eps))):
        assert np.all(np.isfinite(B.to_numpy(value)))


def test_sigma_zero_reads_the_estimators_declared_capability_not_its_name():
    task = gradest.get_task("lasso_huber", delta=0.05)
    pathwise, reinforce = gradest.get_estimator("pathwise"), gradest.get_estimator("reinforce")
    assert pathwise.handles_point_mass and gradest.get_estimator("exact").handles_point_mass
    assert not reinforce.handles_point_mass
    assert task.incompatibility(pathwise) is None
    assert "handles_point_mass" in task.incompatibility(reinforce)
    # a renamed copy of pathwise keeps its capability; one that does not declare it is refused
    assert task.incompatibility(pathwise._replace(name="my_reparam")) is None
    assert task.incompatibility(pathwise._replace(handles_point_mass=False)) is not None
    assert gradest.get_task("lasso_huber", sigma=0.1).incompatibility(reinforce) is None


def test_metrics_and_datasets():
    task = gradest.get_task("lasso_huber")
    B = get_backend("torch", dtype="float64")
    ref = task.reference()
    m = task.metrics(B, B.asarray(ref))
    assert m["objective_gap"] == pytest.approx(0, abs=1e-12) and m["distance_to_reference"] == 0
    assert m["support_precision"] == m["support_recall"] == m["true_support_recall"] == 1.0
    m0 = task.metrics(B, B.asarray(np.zeros(task.num_params)))
    assert m0["support_recall"] == 0 and m0["objective_gap"] > 1
    # the reference is scikit-learn's optimum: no coordinate move improves it
    for i in range(task.num_params):
        for step in (1e-4, -1e-4):
            w = ref.copy()
            w[i] += step
            assert task.objective(w) >= task.reference_objective() - 1e-12
    diabetes = gradest.get_task("lasso_huber", dataset="diabetes", alpha=0.05)
    assert diabetes.num_params == 10 and abs(diabetes.y.mean()) < 1e-12
    np.testing.assert_allclose(diabetes.X.std(axis=0), 1.0)
    from sklearn.linear_model import Lasso

    sk = Lasso(alpha=0.05, fit_intercept=False).fit(diabetes.X, diabetes.y).coef_
    assert diabetes.reference_objective() <= lasso_objective(diabetes.X, diabetes.y, 0.05, sk) + 1e-9
    custom = gradest.get_task("lasso_huber", X=np.eye(3), y=[1.0, -2.0, 0.1], alpha=0.5)
    # orthogonal design: soft thresholding, w* = sign(y) max(|y| - n alpha, 0) with n = 3
    np.testing.assert_allclose(custom.reference(), [0.0, -0.5, 0.0], atol=1e-9)


@pytest.mark.parametrize("options,match", [
    ({"X": np.ones((5, 2)), "y": np.ones(4)}, "disagree"),
    ({"X": np.ones(5), "y": np.ones(5)}, "2-D"),
    ({"X": np.ones((5, 2))}, "both X and y"),
    ({"delta": -0.1}, "delta"),
    ({"sigma": -1.0}, "sigma"),
    ({"alpha": -0.5}, "alpha"),
    ({"delta": 0.0, "sigma": 0.0}, "delta > 0"),
    ({"dataset": "mnist"}, "synthetic"),
    ({"n_informative": 30}, "n_informative"),
    ({"X": [[1.0, np.nan]], "y": [1.0]}, "non-finite"),
])
def test_bad_input(options, match):
    with pytest.raises(ValueError, match=match):
        gradest.get_task("lasso_huber", **options)
