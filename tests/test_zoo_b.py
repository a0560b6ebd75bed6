"""Tests of the zoo estimators gumbel_rao, vimco, mvd, reinmax and indecater against exact truth.

Tolerances: z-tests are per coordinate with a Bonferroni correction at family level ALPHA
(threshold Φ⁻¹(1 - ALPHA/2P), about 4 standard errors); variance comparisons need the 95%
intervals of `gradest.measure.summarize` to be disjoint; estimators that are deterministic
given their sample (indecater, reinmax, straight_through) have their expectation computed
exactly by enumerating the sample, and are compared with float64 tolerances. Every test runs
on both backends; all seeds are fixed.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

import gradest
from gradest.backends import get_backend
from gradest.distributions import Categorical, Normal
from gradest.estimators._conditional_gumbel import conditional_gumbel, conditional_logistic
from gradest.measure import GradientSampler, UnsupportedCombinationError, make_loss, summarize
from gradest.task import Objective, Problem, Task
from gradest.testing import check_estimator, evaluate_surrogate, numpy_noise, z_test

ALPHA = 1e-3
ZOO_B = ["gumbel_rao", "vimco", "mvd", "reinmax", "indecater"]


# ---- small test tasks with exact truth ------------------------------------------------------

class MultiCategorical(Task):
    """Several independent categoricals: logits [2 batch, 3 variables, 3 classes], event_ndims=1.

    f(z) = Σ_l c_l·z_l + h(s), s = Σ_l a_l·z_l, with h(s) = s² (``shape="quadratic"``, so f is
    quadratic in each variable) or h(s) = exp(ε s) (``"exp"``, ε = ``scale``: its Taylor
    expansion is quadratic up to O(ε³)); the variables interact through h."""

    distribution_kind = "categorical"

    def __init__(self, shape: str = "quadratic", scale: float = 1.0):
        rng = np.random.default_rng(3)
        self.logits0 = 0.8 * rng.normal(size=(2, 3, 3))
        self.a, self.c = rng.normal(size=(2, 3, 3)), rng.normal(size=(2, 3, 3))
        self.shape, self.scale = shape, scale
        self.name = f"multicategorical_{shape}"
        self.param_layout = [("logits", (2, 3, 3))]
        self.options = {"shape": shape}

    def init_params(self):
        return self.logits0.reshape(-1).copy()

    def problem(self, backend, params, noise=None, batch=None):
        B = backend
        a, c = B.asarray(self.a), B.asarray(self.c)

        def f(z):  # [S, 2, 3, 3] -> [S, 2]
            s = B.sum(z * a, axis=(-2, -1))
            h = s * s if self.shape == "quadratic" else B.exp(self.scale * s)
            return B.sum(z * c, axis=(-2, -1)) + h

        return Problem(Categorical(B, B.reshape(params, (2, 3, 3)), event_ndims=1), Objective(f), 0.0)


class LogWeightCategorical(Task):
    """f(z) = log q_θ(z) - log p̃(z): a negative log importance weight (capability "log_weight").

    Two variables of three classes (logits [2, 3], event_ndims=1, 9 configurations); the
    unnormalized target log p̃(z) = Σ_l u_l·z_l + z_0ᵀ W z_1 couples them."""

    distribution_kind = "categorical"
    capabilities = frozenset({"log_weight"})

    def __init__(self):
        rng = np.random.default_rng(5)
        self.logits0 = 0.5 * rng.normal(size=(2, 3))
        self.u, self.w = rng.normal(size=(2, 3)), rng.normal(size=(3, 3))
        self.name = "log_weight_categorical"
        self.param_layout = [("logits", (2, 3))]

    def init_params(self):
        return self.logits0.reshape(-1).copy()

    def problem(self, backend, params, noise=None, batch=None):
        B = backend
        logits = B.reshape(params, (2, 3))
        u, w = B.asarray(self.u), B.asarray(self.w)
        log_q = B.log_softmax(logits, axis=-1)  # [2, 3], differentiable in θ

        def f(z):  # [S, 2, 3] -> [S]
            pair = B.sum(B.matmul(z[:, 0], w) * z[:, 1], axis=-1)
            log_target = B.sum(z * u, axis=(-2, -1)) + pair
            return B.sum(z * log_q, axis=(-2, -1)) - log_target

        return Problem(Categorical(B, logits, event_ndims=1), Objective(f), 0.0)


class NormalBatch(Task):
    """z ~ N(μ, σ²) with μ, log σ [2 batch, 3 event]; f_b(z) = (w_b·z_b)² + Σ_e c_be z_be³,
    not separable over coordinates. Closed form: (w·μ)² + Σ w²σ² + Σ c(μ³ + 3μσ²)."""

    distribution_kind = "normal"

    def __init__(self):
        rng = np.random.default_rng(7)
        self.mean0, self.log_std0 = rng.normal(size=(2, 3)), 0.3 * rng.normal(size=(2, 3))
        self.w, self.c = rng.normal(size=(2, 3)), 0.5 * rng.normal(size=(2, 3))
        self.name = "normal_batch"
        self.param_layout = [("mean", (2, 3)), ("log_std", (2, 3))]

    def init_params(self):
        return np.concatenate([self.mean0.reshape(-1), self.log_std0.reshape(-1)])

    def problem(self, backend, params, noise=None, batch=None):
        B = backend
        w, c = B.asarray(self.w), B.asarray(self.c)
        dist = Normal(B, B.reshape(params[:6], (2, 3)), B.reshape(params[6:], (2, 3)), event_ndims=1)

        def f(z):  # [S, 2, 3] -> [S, 2]
            return B.sum(z * w, axis=-1) ** 2 + B.sum(c * z**3, axis=-1)

        def expectation(q):  # [2]
            var = B.exp(2.0 * q.log_std)
            return (B.sum(w * q.mean, axis=-1) ** 2 + B.sum(w * w * var, axis=-1)
                    + B.sum(c * (q.mean**3 + 3.0 * q.mean * var), axis=-1))

        return Problem(dist, Objective(f, expectation), 0.0)


# ---- helpers -----------------------------------------------------------------------------------

def assert_unbiased(grads, exact, what, alpha=ALPHA):
    result = z_test(grads, exact, alpha=alpha)
    assert result.passed, f"{what}: max |z| = {result.max_z:.2f} > {result.threshold:.2f} standard errors"


def expected_estimate(task, est, backend_name):
    """E[estimate] exactly, for an estimator whose estimate is a function of its sample only
    (S = 1): Σ_z p(z) ĝ(z) over the enumerated support, as the gradient of Σ_z sg(p(z))
    surrogate(z). The Gumbel (or uniform) noise is chosen to produce each z."""
    B = get_backend(backend_name, dtype="float64")
    theta = B.asarray(task.init_params())
    dist = task.problem(B, theta).dist
    values = dist.enumerate_support()  # [N, *value]
    if dist.kind == "categorical":
        noise = 30.0 * values  # argmax(logits + noise) = values
    else:
        noise = B.where(values > 0.5, 1e-9, 1.0 - 1e-9)  # 1[u < sigmoid(logits)] = values

    assert np.array_equal(B.to_numpy(dist.sample(noise)), B.to_numpy(values))

    def loss(params):
        prob = task.problem(B, params)
        per_sample, _ = est.surrogate(prob.f, prob.dist, {"sample": noise}, est.init(prob.dist))
        weight = B.stop_gradient(B.exp(prob.dist.log_prob(values)))  # [N, *b]
        return B.mean(B.sum(weight * per_sample, axis=0)) + prob.extra

    return B.to_numpy(B.jit(B.grad(loss))(theta))


def exact_bound(task, num_samples, backend_name):
    """(value, gradient) of E[-log (1/S) Σ_s exp(-f(z_s))] by enumerating all S-tuples."""
    B = get_backend(backend_name, dtype="float64")
    S = num_samples

    def bound(params):
        prob = task.problem(B, params)
        values = prob.dist.enumerate_support()  # [N, *value]
        N = values.shape[0]
        tuples = np.array(list(itertools.product(range(N), repeat=S)))  # [N^S, S]
        pick = B.asarray(np.eye(N)[tuples])  # [N^S, S, N]
        f_t = B.einsum("tsn,n->ts", pick, prob.f(values))  # [N^S, S]
        log_q_t = B.einsum("tsn,n->ts", pick, prob.dist.log_prob(values))  # [N^S, S]
        per_tuple = math.log(S) - B.logsumexp(-f_t, axis=1)  # [N^S]
        return B.sum(B.exp(B.sum(log_q_t, axis=1)) * per_tuple)

    theta = B.asarray(task.init_params())
    return float(B.to_numpy(bound(theta))), B.to_numpy(B.jit(B.grad(bound))(theta))


def draw(rng, spec, R):
    """NumPy noise [R, *spec.shape] of spec.kind (as the harness's kinds)."""
    shape = (R, *map(int, spec.shape))
    if spec.kind == "normal":
        return rng.standard_normal(shape)
    if spec.kind == "gumbel":
        return rng.gumbel(size=shape)
    return np.clip(rng.random(shape), np.finfo(np.float64).tiny, 1.0 - 1e-16)


def estimates(task, est, backend_name, R, S=1, seed=0):
    """[R, P] independent estimates in float64: the harness's loss (`make_loss`) under one
    jit(vmap(grad)), fed NumPy noise (so the statistical tests do not depend on the backends'
    generators, which the conformance kit checks)."""
    est = gradest.get_estimator(est)
    B = get_backend(backend_name, dtype="float64")
    theta = B.asarray(task.init_params())
    dist = task.problem(B, theta).dist
    assert not task.noise_spec(S), "the test tasks have no noise of their own"
    rng = np.random.default_rng(seed)
    noise = {"estimator": {k: B.asarray(draw(rng, spec, R)) for k, spec in sorted(est.noise_spec(dist, S).items())},
             "task": {}}
    estimate = B.jit(B.vmap(B.grad(make_loss(task, est, B), has_aux=True), in_axes=(None, 0, None)))
    grads, _ = estimate(theta, noise, est.init(dist))
    return B.to_numpy(grads)


def stats_of(task, est, backend_name, R, S=1, seed=0):
    grads = estimates(task, est, backend_name, R, S, seed)
    return grads, summarize(grads, gradest.exact_gradient(task, backend=backend_name, dtype="float64"))


# ---- registration, metadata, options -------------------------------------------------------

def test_registered_with_metadata():
    names = gradest.list_estimators()
    expected = {"gumbel_rao": ({"categorical", "bernoulli"}, False),
                "vimco": ({"categorical", "bernoulli", "normal"}, False),
                "mvd": ({"normal"}, True),
                "reinmax": ({"categorical", "bernoulli"}, False),
                "indecater": ({"categorical", "bernoulli"}, True)}
    for name, (supports, unbiased) in expected.items():
        assert name in names
        est = gradest.get_estimator(name)
        assert set(est.supports) == supports and est.unbiased is unbiased, name
    vimco = gradest.get_estimator("vimco")
    assert vimco.min_samples == 2 and vimco.requires == {"log_weight"}


@pytest.mark.parametrize("name,options,match", [
    ("gumbel_rao", {"temperature": 0.0}, "temperature"),
    ("gumbel_rao", {"temperature": "hot"}, "temperature"),
    ("gumbel_rao", {"num_mc": 0}, "num_mc"),
    ("gumbel_rao", {"num_mc": 2.5}, "num_mc"),
    ("reinmax", {"temperature": -1.0}, "temperature"),
    ("mvd", {"coupled": "yes"}, "coupled"),
    ("indecater", {"num_mc": 3}, "valid options"),
    ("vimco", {"baseline": "loo"}, "valid options"),
])
def test_bad_options_raise_clear_errors(name, options, match):
    with pytest.raises(ValueError, match=match):
        gradest.get_estimator(name, **options)


def test_unsupported_combinations_are_refused_early():
    with pytest.raises(UnsupportedCombinationError, match="log_weight"):
        GradientSampler("bandit", "vimco", num_samples=2)
    with pytest.raises(UnsupportedCombinationError, match="num_samples >= 2"):
        GradientSampler(LogWeightCategorical(), "vimco", num_samples=1)
    with pytest.raises(UnsupportedCombinationError, match="normal"):
        GradientSampler("bandit", "mvd")
    for name in ("gumbel_rao", "reinmax", "indecater"):
        with pytest.raises(UnsupportedCombinationError, match="categorical"):
            GradientSampler("gaussian_quadratic", name)


@pytest.mark.parametrize("name", ["indecater", "mvd"])
def test_extra_evaluations_of_a_noisy_cost_fail_clearly(backend_name, name):
    """Estimators that evaluate f at S·n·M substituted points cannot feed a cost that carries
    per-sample noise [S, ...] of its own; the error says so and names the way out."""
    task = (gradest.get_task("bandit", reward_noise="gaussian") if name == "indecater"
            else gradest.get_task("gaussian_quadratic"))
    est = gradest.get_estimator(name)
    if name == "mvd":  # give gaussian_quadratic's cost a per-sample shift, as a noisy task would
        class Noisy(type(task)):
            def problem(self, backend, params, noise=None, batch=None):
                prob = super().problem(backend, params)
                shift = backend.asarray(np.arange(2.0))  # [S=2]
                return prob._replace(f=Objective(lambda z: prob.f(z) + shift))
        task = Noisy()
    noise = numpy_noise(task, est, 2, seed=0)
    with pytest.raises(ValueError, match="num_samples=1"):
        evaluate_surrogate(task, est, get_backend(backend_name, dtype="float64"), noise)


# ---- conformance kit and parity ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["gumbel_rao", "mvd", "reinmax", "indecater"])
def test_conformance_kit(name):
    checks = check_estimator(name, num_replicates=1000)
    assert {c.check for c in checks} >= {"surrogate", "gradient_samples", "determinism", "parity"}


def test_conformance_kit_vimco():
    checks = check_estimator("vimco", tasks=[LogWeightCategorical()], toy_tasks=False, num_replicates=500)
    assert {c.check for c in checks} >= {"surrogate", "determinism", "parity"}


@pytest.mark.parametrize("name,options,task", [
    ("gumbel_rao", {"num_mc": 3, "temperature": 0.7}, MultiCategorical("exp")),
    ("reinmax", {"temperature": 1.5}, MultiCategorical("exp")),
    ("indecater", {}, MultiCategorical("exp")),
    ("vimco", {}, LogWeightCategorical()),
    ("gumbel_rao", {"num_mc": 3}, gradest.get_task("binary_toy", target=[0.45, 0.1, 0.8], logits=[0.0, 1.0, -0.5])),
    ("reinmax", {"temperature": 1.5}, gradest.get_task("binary_toy", target=[0.45, 0.1, 0.8], logits=[0.0, 1.0, -0.5])),
    ("mvd", {}, NormalBatch()),
    ("mvd", {"coupled": False}, NormalBatch()),
], ids=lambda v: getattr(v, "name", None) if isinstance(v, Task) else None)
def test_parity_torch_jax_on_batched_tasks(name, options, task):
    """The same NumPy noise gives the same surrogate values and gradients in torch and jax."""
    est = gradest.get_estimator(name, **options)
    noise = numpy_noise(task, est, 3, seed=4)
    out = {b: evaluate_surrogate(task, est, get_backend(b, dtype="float64"), noise) for b in ("torch", "jax")}
    for key in ("per_sample", "loss", "grad"):
        np.testing.assert_allclose(out["torch"][key], out["jax"][key], rtol=1e-9, atol=1e-12, err_msg=key)
    assert np.abs(out["torch"]["grad"]).max() > 0


# ---- IndeCateR ---------------------------------------------------------------------------------

@pytest.mark.parametrize("task", [MultiCategorical("exp"),
                                  gradest.get_task("binary_toy", target=[0.45, 0.1, 0.8], logits=[0.0, 1.0, -0.5])],
                         ids=lambda t: t.name)
def test_indecater_expectation_is_exact(backend_name, task):
    """Enumerating the sample: E[IndeCateR] equals the exact gradient to float64 rounding."""
    expected = expected_estimate(task, gradest.get_estimator("indecater"), backend_name)
    exact = gradest.exact_gradient(task, backend=backend_name, dtype="float64")
    np.testing.assert_allclose(expected, exact, rtol=1e-9, atol=1e-12)


def test_indecater_unbiased_on_multivariable_task(backend_name):
    task = MultiCategorical("exp")
    grads, summary = stats_of(task, "indecater", backend_name, R=2000, S=2, seed=1)
    assert_unbiased(grads, gradest.exact_gradient(task, backend=backend_name, dtype="float64"),
                    f"indecater ({backend_name})")
    assert summary["variance"] > 0  # several variables: a real estimator, not the exact gradient


# ---- ReinMax -----------------------------------------------------------------------------------

QUADRATIC_TASKS = [MultiCategorical("quadratic"),
                   gradest.get_task("binary_toy", target=[0.45, 0.1, 0.8], logits=[0.0, 1.0, -0.5])]


@pytest.mark.parametrize("task", QUADRATIC_TASKS, ids=lambda t: t.name)
def test_reinmax_is_exact_in_expectation_for_quadratic_f(backend_name, task):
    """Heun's rule is exact for quadratics [Liu et al. 2023]: with τ = 1, E[ReinMax] is the
    exact gradient when f is quadratic in each variable; straight-through is not."""
    exact = gradest.exact_gradient(task, backend=backend_name, dtype="float64")
    reinmax = expected_estimate(task, gradest.get_estimator("reinmax"), backend_name)
    np.testing.assert_allclose(reinmax, exact, rtol=1e-9, atol=1e-12)
    st = expected_estimate(task, gradest.get_estimator("straight_through"), backend_name)
    assert np.linalg.norm(st - exact) > 0.05 * np.linalg.norm(exact)
    tempered = expected_estimate(task, gradest.get_estimator("reinmax", temperature=2.0), backend_name)
    assert np.linalg.norm(tempered - exact) > 1e-3 * np.linalg.norm(exact)  # τ ≠ 1: no longer exact


def test_reinmax_bias_is_third_order_straight_through_second(backend_name):
    """f = Σ c·z + exp(ε a·z) is quadratic up to O(ε³): ST's bias shrinks as ε² (Euler, first
    order in the step) and ReinMax's as ε³ (Heun, second order) [Liu et al. 2023]. Both
    expectations are exact (enumeration), so halving ε must divide the biases by about 4 and 8."""
    bias = {}
    for eps in (0.1, 0.05):
        task = MultiCategorical("exp", scale=eps)
        exact = gradest.exact_gradient(task, backend=backend_name, dtype="float64")
        for name in ("reinmax", "straight_through"):
            estimate = expected_estimate(task, gradest.get_estimator(name), backend_name)
            bias[name, eps] = np.linalg.norm(estimate - exact)
    assert bias["reinmax", 0.1] < 0.2 * bias["straight_through", 0.1]
    st_ratio = bias["straight_through", 0.1] / bias["straight_through", 0.05]
    reinmax_ratio = bias["reinmax", 0.1] / bias["reinmax", 0.05]
    assert 3.0 < st_ratio < 6.0 and reinmax_ratio > 6.5, (st_ratio, reinmax_ratio)


# ---- Gumbel-Rao --------------------------------------------------------------------------------

def test_conditional_gumbel_is_the_conditional_distribution(backend_name):
    """G | argmax: every draw reproduces the sample, and over D ~ p the draws are standard
    Gumbel (mean γ, variance π²/6 per class; z-tests with Bonferroni over classes and moments)."""
    B = get_backend(backend_name, dtype="float64")
    rng = np.random.default_rng(0)
    logits = B.asarray([[1.0, -0.5, 0.2, -2.0], [0.0, 0.3, 3.0, -1.0]])  # [2, 4]
    R, M = 20000, 2
    sample = Categorical(B, logits, event_ndims=1).sample(B.asarray(rng.gumbel(size=(R, 2, 4))))
    g = B.to_numpy(conditional_gumbel(B, logits, sample, B.asarray(rng.random((R, M, 2, 4)))))  # [R, M, 2, 4]
    again = np.argmax(B.to_numpy(logits) + g, axis=-1)
    assert np.array_equal(again, np.broadcast_to(np.argmax(B.to_numpy(sample), -1)[:, None], again.shape))
    first = g[:, 0].reshape(R, -1)  # one draw per sample: independent rows
    moments = np.concatenate([first - np.euler_gamma, (first - np.euler_gamma) ** 2 - np.pi**2 / 6], axis=1)
    assert_unbiased(moments, np.zeros(moments.shape[1]), "conditional Gumbel moments")


def test_conditional_logistic_is_the_conditional_distribution(backend_name):
    B = get_backend(backend_name, dtype="float64")
    rng = np.random.default_rng(1)
    logits = B.asarray([1.5, -0.7, 0.0])
    R = 20000
    u = rng.random((R, 3))
    sample = B.astype(B.asarray(u) < B.sigmoid(logits), "float")
    L = B.to_numpy(conditional_logistic(B, logits, sample, B.asarray(rng.random((R, 2, 3)))))  # [R, 2, 3]
    assert np.array_equal((B.to_numpy(logits) + L > 0).astype(float),
                          np.broadcast_to(B.to_numpy(sample)[:, None], L.shape))
    first = L[:, 0]
    moments = np.concatenate([first, first**2 - np.pi**2 / 3], axis=1)  # logistic: mean 0, var π²/3
    assert_unbiased(moments, np.zeros(6), "conditional logistic moments")


@pytest.mark.parametrize("task", [MultiCategorical("exp"),
                                  gradest.get_task("binary_toy", target=[0.45, 0.1, 0.8], logits=[0.0, 1.0, -0.5])],
                         ids=lambda t: t.name)
def test_gumbel_rao_has_the_mean_of_st_gumbel_softmax_and_lower_variance(backend_name, task):
    """Rao-Blackwellization keeps the mean of ST-GS (a two-sample z-test, Bonferroni over θ) and
    lowers the variance (disjoint 95% intervals) [Paulus et al. 2021]. Both are biased."""
    R = 3000
    gr, gr_stats = stats_of(task, gradest.get_estimator("gumbel_rao", temperature=0.5, num_mc=10),
                            backend_name, R, seed=3)
    st, st_stats = stats_of(task, gradest.get_estimator("gumbel_softmax", temperature=0.5, hard=True),
                            backend_name, R, seed=4)
    z = (gr.mean(0) - st.mean(0)) / np.sqrt(gr.var(0, ddof=1) / R + st.var(0, ddof=1) / R)
    threshold = stats.norm.ppf(1 - ALPHA / (2 * z.size))
    assert np.abs(z).max() < threshold, f"max |z| {np.abs(z).max():.2f} >= {threshold:.2f}"
    assert gr_stats["variance_high"] < st_stats["variance_low"], (gr_stats["variance"], st_stats["variance"])
    assert gr_stats["bias_norm_low"] > 0  # biased, as ST-GS is


# ---- VIMCO -------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_samples", [2, 3])
def test_vimco_is_unbiased_for_the_multi_sample_bound(backend_name, num_samples):
    """E[VIMCO] is the gradient of E[-log (1/S) Σ exp(-f)], computed by enumerating the 9^S
    S-tuples; it is not the gradient of E[f], which is why ``unbiased`` is False."""
    task = LogWeightCategorical()
    value, bound_grad = exact_bound(task, num_samples, backend_name)
    grads = estimates(task, "vimco", backend_name, R=4000, S=num_samples, seed=5)
    assert_unbiased(grads, bound_grad, f"vimco S={num_samples} ({backend_name})")
    expected_f = gradest.exact_gradient(task, backend=backend_name, dtype="float64")
    assert not z_test(grads, expected_f, alpha=ALPHA).passed
    # the bound lies above -log Z and below E[f] (= KL(q ‖ p̃/Z) - log Z)
    B = get_backend(backend_name, dtype="float64")
    theta = B.asarray(task.init_params())
    prob = task.problem(B, theta)
    values = prob.dist.enumerate_support()
    neg_log_z = -float(B.to_numpy(B.logsumexp(-prob.f(values) + prob.dist.log_prob(values), axis=0)))
    assert neg_log_z < value < gradest.measure.exact_loss(task, backend=backend_name, dtype="float64")


def test_vimco_surrogate_value_is_the_bound(backend_name):
    task = LogWeightCategorical()
    est = gradest.get_estimator("vimco")
    noise = numpy_noise(task, est, 4, seed=6)
    out = evaluate_surrogate(task, est, get_backend(backend_name, dtype="float64"), noise)
    B = get_backend(backend_name, dtype="float64")
    prob = task.problem(B, B.asarray(task.init_params()))
    fz = B.to_numpy(prob.f(prob.dist.sample(B.asarray(noise["estimator"]["sample"]))))  # [4]
    bound = math.log(4) - np.logaddexp.reduce(-fz)
    np.testing.assert_allclose(out["per_sample"], np.full(4, bound), rtol=1e-12)
    np.testing.assert_allclose(out["loss"], bound, rtol=1e-12)


def test_vimco_runs_on_the_categorical_vae_log_weight_mode():
    if "categorical_vae" not in gradest.list_tasks():
        pytest.skip("categorical_vae is not available")
    try:
        task = gradest.get_task("categorical_vae", kl="sampled")
    except ValueError as err:
        pytest.skip(f"categorical_vae has no log-weight mode: {err}")
    if "log_weight" not in task.capabilities:
        pytest.skip("categorical_vae does not offer log_weight")
    grads = gradest.gradient_samples(task, "vimco", num_replicates=4, num_samples=3)
    assert grads.shape == (4, task.num_params) and np.all(np.isfinite(grads))
    with pytest.raises(UnsupportedCombinationError, match="log_weight"):
        GradientSampler(gradest.get_task("categorical_vae"), "vimco", num_samples=3)


# ---- measure-valued derivative ------------------------------------------------------------------

@pytest.mark.parametrize("coupled", [True, False])
def test_mvd_unbiased_on_a_batched_non_separable_task(backend_name, coupled):
    task = NormalBatch()
    est = gradest.get_estimator("mvd", coupled=coupled)
    grads, _ = stats_of(task, est, backend_name, R=4000, S=2, seed=8)
    assert_unbiased(grads, gradest.exact_gradient(task, backend=backend_name, dtype="float64"),
                    f"{est.label} on {task.name} ({backend_name})")


def test_mvd_variance_closed_form_and_ordering(backend_name):
    """gaussian_quadratic at μ = 0, σ = 1, t = (-1, 0, 1), a = μ - t: both MVD variants pass the
    z-test against the exact gradient; the coupled signals have variance 16a²(2 - π/2)/(2π)
    (mean) and 4a² + 4 (log σ) per coordinate (derived in the module docstring; z-test of each
    variance against the closed form with the standard error of the variance estimate). Total
    variance: coupled MVD < uncoupled MVD, and MVD < pathwise < REINFORCE, with disjoint 95%
    intervals."""
    task = gradest.get_task("gaussian_quadratic")
    exact = gradest.exact_gradient(task, backend=backend_name, dtype="float64")
    a = np.array([1.0, 0.0, -1.0])
    closed = np.concatenate([16 * a**2 * (2 - np.pi / 2) / (2 * np.pi), 4 * a**2 + 4])
    R = 8000
    grads, mvd = stats_of(task, "mvd", backend_name, R, seed=9)
    assert_unbiased(grads, exact, f"mvd ({backend_name})")
    dev = (grads - grads.mean(0)) ** 2  # [R, P]
    se = dev.std(0, ddof=1) / np.sqrt(R)
    zero = closed == 0
    assert np.all(dev[:, zero] < 1e-20)  # a = 0: f(μ + σW) = f(μ - σW) exactly
    z = (dev.mean(0)[~zero] * R / (R - 1) - closed[~zero]) / se[~zero]
    assert np.abs(z).max() < stats.norm.ppf(1 - ALPHA / (2 * z.size)), z
    uncoupled_grads, uncoupled = stats_of(task, gradest.get_estimator("mvd", coupled=False), backend_name, R, seed=10)
    assert_unbiased(uncoupled_grads, exact, f"mvd[coupled=False] ({backend_name})")
    _, pathwise = stats_of(task, "pathwise", backend_name, R, seed=11)
    _, reinforce = stats_of(task, "reinforce", backend_name, R, seed=12)
    assert mvd["variance_high"] < uncoupled["variance_low"]
    assert mvd["variance_high"] < pathwise["variance_low"]
    assert pathwise["variance_high"] < reinforce["variance_low"]
