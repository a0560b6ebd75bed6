"""Tests of the zoo estimators nvil, arm, disarm, rebar and relax against exact truth.

Tolerances: unbiasedness is a two-sided z-test per coordinate with a Bonferroni correction at
family level ALPHA = 1e-4 (`gradest.testing.z_test`: threshold Φ⁻¹(1 - ALPHA/2P), about 4.4
standard errors for P = 5); a variance ordering "A < B" needs the 95% intervals of
`gradest.gradient_stats` to be disjoint (A's upper end below B's lower end, with the margin
stated at each assertion); parity compares torch and jax on the same NumPy noise in float64 to
|a - b| <= 1e-9 + 1e-7 |b|. Every test runs on both backends; all seeds are fixed.
"""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

import gradest
from gradest.backends import get_backend
from gradest.distributions import Bernoulli, Categorical
from gradest.estimators._conditional import conditional, perturbed
from gradest.measure import GradientSampler, UnsupportedCombinationError, summarize
from gradest.task import Objective, Problem, Task
from gradest.testing import CONFORMANCE_TASKS, check_estimator, numpy_noise, z_test
from gradest import noise

ALPHA = 1e-4
R = 4000
BACKENDS = ["torch", "jax"]
RTOL, ATOL = 1e-7, 1e-9


# ---- small tasks with batch and event axes (exact truth by enumeration) -------------------

class BernoulliBatch(Task):
    """logits [2 batch, 3 variables], event_ndims=1; per batch element j,
    f_j(b) = Σ_i c_ji b_i + (Σ_i a_ji b_i)², so the variables interact."""

    distribution_kind = "bernoulli"

    def __init__(self):
        rng = np.random.default_rng(11)
        self.logits0 = 0.7 * rng.normal(size=(2, 3))
        self.a, self.c = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
        self.name = "bernoulli_batch"
        self.param_layout = [("logits", (2, 3))]
        self.options = {}

    def init_params(self):
        return self.logits0.reshape(-1).copy()

    def problem(self, backend, params, noise=None, batch=None):
        B = backend
        a, c = B.asarray(self.a), B.asarray(self.c)

        def f(b):  # [S, 2, 3] -> [S, 2]
            s = B.sum(b * a, axis=-1)
            return B.sum(b * c, axis=-1) + s * s

        return Problem(Bernoulli(B, B.reshape(params, (2, 3)), event_ndims=1), Objective(f), 0.0)


class CategoricalBatch(Task):
    """logits [2 batch, 2 variables, 3 classes], event_ndims=1; f_j(z) = Σ c·z + (Σ a·z)²."""

    distribution_kind = "categorical"

    def __init__(self):
        rng = np.random.default_rng(12)
        self.logits0 = 0.7 * rng.normal(size=(2, 2, 3))
        self.a, self.c = rng.normal(size=(2, 2, 3)), rng.normal(size=(2, 2, 3))
        self.name = "categorical_batch"
        self.param_layout = [("logits", (2, 2, 3))]
        self.options = {}

    def init_params(self):
        return self.logits0.reshape(-1).copy()

    def problem(self, backend, params, noise=None, batch=None):
        B = backend
        a, c = B.asarray(self.a), B.asarray(self.c)

        def f(z):  # [S, 2, 2, 3] -> [S, 2]
            s = B.sum(z * a, axis=(-2, -1))
            return B.sum(z * c, axis=(-2, -1)) + s * s

        return Problem(Categorical(B, B.reshape(params, (2, 2, 3)), event_ndims=1), Objective(f), 0.0)


class BernoulliWithDecoder(Task):
    """θ = [logits (3), w (3)], b ~ Bernoulli(σ(logits)), f(b) = Σ (b - w)²: f depends on θ
    directly (as a VAE's decoder does), so ∂L/∂w = E[-2(b - w)]."""

    distribution_kind = "bernoulli"

    def __init__(self):
        self.name = "bernoulli_with_decoder"
        self.param_layout = [("logits", (3,)), ("w", (3,))]
        self.options = {}

    def init_params(self):
        return np.array([0.4, -0.8, 1.2, 0.3, 0.6, -0.2])

    def problem(self, backend, params, noise=None, batch=None):
        B = backend
        w = params[3:]

        def f(b):  # [S, 3] -> [S]
            return B.sum((b - w) ** 2, axis=-1)

        return Problem(Bernoulli(B, params[:3], event_ndims=1), Objective(f), 0.0)


def toy(target, logits=None):
    return gradest.get_task("binary_toy", target=target, logits=logits)


# ---- helpers -------------------------------------------------------------------------------

def train_phi(task, est, backend: str, steps: int, lr: float = 0.03, num_samples: int = 1, seed: int = 0):
    """φ after ``steps`` Adam steps on ``est.phi_loss`` at the task's θ₀ (θ held fixed), as NumPy.

    The gradient of phi_loss is taken by the backend (``backend.grad``, jitted on jax); the Adam
    update (torch.optim's defaults) runs in NumPy, the same on both backends."""
    B = get_backend(backend, dtype="float64")
    prob = task.problem(B, B.asarray(task.init_params()))
    state = est.init(prob.dist)
    specs = est.noise_spec(prob.dist, num_samples)
    grad = B.jit(B.grad(lambda phi, noise: est.phi_loss(phi, prob.f, prob.dist, noise, state)))
    phi = B.to_numpy(state["phi"]).astype(np.float64)
    m, v = np.zeros_like(phi), np.zeros_like(phi)
    for k in range(steps):
        step_noise = {n: noise.draw(B, seed, f"phi/{n}", s.kind, s.shape, k, 1)[0] for n, s in specs.items()}
        g = B.to_numpy(grad(B.asarray(phi), step_noise)).astype(np.float64)
        assert np.all(np.isfinite(g)), f"non-finite φ gradient at step {k}"
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        phi = phi - lr * (m / (1 - 0.9 ** (k + 1))) / (np.sqrt(v / (1 - 0.999 ** (k + 1))) + 1e-8)
    return phi


def stats(task, est, backend, seed=0, num_replicates=R):
    return gradest.gradient_stats(task, est, backend=backend, num_replicates=num_replicates, seed=seed,
                                  dtype="float64", timing_repeats=1)


def assert_unbiased(task, est, backend, seed=0, num_replicates=R):
    samples = gradest.gradient_samples(task, est, backend=backend, num_replicates=num_replicates,
                                       seed=seed, dtype="float64")
    exact = gradest.exact_gradient(task, backend=backend, dtype="float64")
    result = z_test(samples, exact, alpha=ALPHA)
    assert result.passed, (f"{gradest.get_estimator(est).label} on {task.name} ({backend}): max |z| = "
                           f"{result.max_z:.2f} > {result.threshold:.2f}; mean {samples.mean(0)} vs exact {exact}")
    return samples, exact


def bonferroni(k: int) -> float:
    """The two-sided critical |z| of k tests at family level ALPHA."""
    return NormalDist().inv_cdf(1.0 - ALPHA / (2 * k))


def below(low_stats, high_stats, factor=1.0):
    """The 95% intervals say Var(low) * factor < Var(high)."""
    return low_stats["variance_high"] * factor < high_stats["variance_low"]


# ---- conformance ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, options, toy_task", [
    ("rebar", {"tune": True}, "binary_toy"), ("nvil", {"normalize": False}, "gaussian_quadratic"),
])
def test_conformance_of_variants(name, options, toy_task):
    """The kit's checks (shapes, determinism, z-test, torch<->jax parity) on the variants that
    change the algorithm: trainable REBAR and unnormalized (unbiased) NVIL. The defaults of all
    five estimators are checked on every toy task by tests/test_conformance.py, which runs the
    kit over the registry."""
    task = gradest.get_task(toy_task, **CONFORMANCE_TASKS[toy_task])
    results = check_estimator(name, options=options, toy_tasks=False, tasks=[task], num_replicates=2000)
    checks = {r.check for r in results}
    assert {"surrogate", "gradient_samples", "determinism", "unbiased", "parity"} <= checks, checks


# ---- unbiasedness on tasks with batch and event axes --------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, options, task_class", [
    ("arm", {}, BernoulliBatch), ("disarm", {}, BernoulliBatch),
    ("rebar", {"temperature": 0.3, "eta": 0.7}, BernoulliBatch),
    ("relax", {"hidden": 4}, CategoricalBatch),
])
def test_unbiased_with_batch_and_event_axes(backend, name, options, task_class):
    """Batch and event axes: each batch element's cost pairs with its own logits (NVIL's
    baseline depends on the parameters only, so it cannot bias; its batch handling is checked
    by `test_phi_gradient_parity`)."""
    assert_unbiased(task_class(), gradest.get_estimator(name, **options), backend, seed=3)


def test_z_test_can_fail():
    """The same z-test rejects a biased estimator (Gumbel-softmax at τ = 1) on the toy."""
    task = toy([0.45, 0.1, 0.8], logits=[0.0, 1.0, -0.5])
    samples = gradest.gradient_samples(task, gradest.get_estimator("gumbel_softmax", temperature=1.0),
                                       num_replicates=R, dtype="float64")
    assert not z_test(samples, gradest.exact_gradient(task, dtype="float64"), alpha=ALPHA).passed


# ---- the variance orderings on the REBAR/RELAX toy ----------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("target", [0.45, 0.499])
def test_variance_ordering_on_binary_toy(backend, target):
    """binary_toy, D = 1, θ = 0 (p = 1/2): what theory predicts.

    * ARM: ĝ = (f(b̃) - f(b)) (u - 1/2) = (1 - 2t) |u - 1/2|, variance (1 - 2t)²/48 (closed form);
    * DisARM: exact at θ = 0 with one variable (variance 0) — below ARM;
    * both far below REINFORCE (variance E[f²]/4 - (∇L)²);
    * REBAR at (λ, η) = (0.5, 1) is NOT below REINFORCE on this toy: its control variate has
      conditional mean E[C | b] = -c(0)(1 - p) or c(0) p (see
      `test_rebar_control_variate_conditional_mean`), c(0) = η f(1/2) = η (1/2 - t)² ≈ 0, so it
      is almost uncorrelated with the REINFORCE term and only adds variance."""
    task = toy(target)
    s = {name: stats(task, gradest.get_estimator(name), backend)
         for name in ("reinforce", "arm", "disarm", "rebar")}
    gap = 1.0 - 2.0 * target
    exact_arm = gap**2 / 48.0
    se_arm = (s["arm"]["variance_high"] - s["arm"]["variance"]) / 1.96
    assert abs(s["arm"]["variance"] - exact_arm) <= 4.4 * se_arm, (s["arm"]["variance"], exact_arm)
    assert s["disarm"]["variance"] <= 1e-20 and s["disarm"]["bias_norm"] <= 1e-12
    assert below(s["disarm"], s["arm"])
    assert below(s["arm"], s["reinforce"], factor=50.0)  # ARM is 75x (t = .45) to 1.9e5x (t = .499) lower
    assert below(s["reinforce"], s["rebar"], factor=1.2)  # measured ratio ≈ 1.4


@pytest.mark.parametrize("backend", BACKENDS)
def test_rebar_control_variate_conditional_mean(backend):
    """Under common random numbers, C = ĝ_REBAR - ĝ_REINFORCE is REBAR's control-variate term
    -c(z̃) ∂log p(b) + ∂c(z) - ∂c(z̃) (η = 1). Integrating by parts over the logistic noise gives,
    for one variable, E[C | b = 1] = -c(0)(1 - p) and E[C | b = 0] = c(0) p, c(0) = f(σ(0)) =
    f(1/2): a closed form that checks the conditional reparameterization z̃(v, b, α) beyond the
    overall unbiasedness (a wrong dz̃/dα breaks it). Here θ = -0.8 and t = 0.2, so c(0) = 0.09."""
    t, logit = 0.2, -0.8
    task = toy(t, logits=[logit])
    p = 1.0 / (1.0 + math.exp(-logit))
    kw = dict(backend=backend, num_replicates=2 * R, seed=5, dtype="float64")
    reinforce = gradest.gradient_samples(task, "reinforce", **kw)[:, 0]
    rebar = gradest.gradient_samples(task, gradest.get_estimator("rebar", temperature=0.5, eta=1.0), **kw)[:, 0]
    b = (reinforce > 0).astype(float)  # ĝ_REINFORCE = f(b)(b - p): positive iff b = 1 (f > 0)
    c0 = (0.5 - t) ** 2
    C = rebar - reinforce
    threshold = bonferroni(2)  # over the 2 groups
    for value, expected in ((1.0, -c0 * (1 - p)), (0.0, c0 * p)):
        group = C[b == value]
        z = (group.mean() - expected) / (group.std(ddof=1) / math.sqrt(len(group)))
        assert abs(z) <= threshold, f"b = {value:g}: E[C | b] = {group.mean():.5f}, expected {expected:.5f} (z = {z:.2f})"


@pytest.mark.parametrize("backend", BACKENDS)
def test_relaxed_evaluations_leave_the_cost_parameters_alone(backend):
    """Where f depends on θ directly, REBAR/RELAX give those parameters ∇f(b) at the exact sample
    only (the relaxed evaluations differentiate the logits alone): under common random numbers
    the w-columns equal REINFORCE's to float64 rounding, and the logits are unbiased."""
    task = BernoulliWithDecoder()
    est = gradest.get_estimator("relax", hidden=4)
    relax_samples, _ = assert_unbiased(task, est, backend, seed=13)
    reinforce = gradest.gradient_samples(task, "reinforce", backend=backend, num_replicates=R, seed=13,
                                         dtype="float64")
    np.testing.assert_allclose(relax_samples[:, 3:], reinforce[:, 3:], rtol=1e-12, atol=1e-12)
    assert np.abs(relax_samples[:, :3] - reinforce[:, :3]).max() > 1e-3  # the logits differ


# ---- RELAX and tuned REBAR: φ training -----------------------------------------------------

def measure_before_and_after(task, est, backend, phi, seed):
    """Estimates [R, P] of ``est`` at its initial φ and at ``phi``, from one compiled sampler."""
    sampler = GradientSampler(task, est, backend=backend, dtype="float64", seed=seed, phi_warmup=0)
    before = sampler.run(R)
    sampler.state = {**sampler.state, "phi": sampler.backend.asarray(phi)}
    return before, sampler.run(R)


def check_unbiased(samples, exact, what):
    result = z_test(samples, exact, alpha=ALPHA)
    assert result.passed, f"{what}: max |z| = {result.max_z:.2f} > {result.threshold:.2f}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("target", [0.45, 0.499])
def test_relax_phi_training_reduces_variance(backend, target):
    """100 Adam steps on phi_loss (a second-order gradient) cut RELAX's variance at θ = 0 by a
    large factor (measured: about 30x at t = 0.45): the network's output bias learns the level
    of f, which REBAR's control variate cannot (c(0) ≈ 0 on this toy); after training RELAX is
    far below REINFORCE, and unbiased before and after."""
    task = toy(target)
    est = gradest.get_estimator("relax")
    phi = train_phi(task, est, backend, steps=100)
    before, after = measure_before_and_after(task, est, backend, phi, seed=7)
    exact = gradest.exact_gradient(task, backend=backend, dtype="float64")
    initial, trained = summarize(before, exact), summarize(after, exact)
    reinforce = stats(task, "reinforce", backend)
    assert below(trained, initial, factor=5.0), (trained["variance"], initial["variance"])
    assert below(trained, reinforce, factor=5.0), (trained["variance"], reinforce["variance"])
    check_unbiased(before, exact, "relax at φ₀")
    check_unbiased(after, exact, "relax after φ training")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, options, task", [
    ("relax", {}, toy([0.45, 0.1, 0.8], logits=[0.0, 1.0, -0.5])),
    ("rebar", {"tune": True}, CategoricalBatch()),
])
def test_unbiased_before_and_after_phi_training(backend, name, options, task):
    """Unbiased for any φ: z-tests at the initial φ and after 60 φ steps (RELAX on Bernoulli,
    tuned REBAR on categorical variables with batch axes; RELAX on the categorical bandit at φ₀
    is in `test_conformance`)."""
    est = gradest.get_estimator(name, **options)
    phi = train_phi(task, est, backend, steps=60)
    before, after = measure_before_and_after(task, est, backend, phi, seed=11)
    B = get_backend(backend, dtype="float64")
    phi0 = B.to_numpy(est.init(task.problem(B, B.asarray(task.init_params())).dist)["phi"])
    assert np.max(np.abs(phi - phi0)) > 1e-2  # φ moved
    exact = gradest.exact_gradient(task, backend=backend, dtype="float64")
    check_unbiased(before, exact, f"{est.label} at φ₀")
    check_unbiased(after, exact, f"{est.label} after φ training")


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_updates_relax_phi(backend):
    """`gradest.train` trains θ and RELAX's φ together; the loss goes down and φ moves."""
    task = toy([0.45, 0.1, 0.8], logits=[0.0, 1.0, -0.5])
    est = gradest.get_estimator("relax", hidden=4)
    result = gradest.train(task, est, backend=backend, steps=60, learning_rate=0.05, dtype="float64")
    phi0 = est.init(task.problem(get_backend(backend), get_backend(backend).asarray(task.init_params())).dist)["phi"]
    assert np.all(np.isfinite(result.state["phi"]))
    assert np.max(np.abs(result.state["phi"] - np.asarray(phi0))) > 1e-2
    h = result.history
    assert h["exact_loss"].iloc[-1] < h["exact_loss"].iloc[0] - 0.05


# ---- NVIL ----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_nvil_normalized_estimate_is_the_gradient_over_the_scale(backend):
    """With variance normalization the estimate is unbiased for ∇L / s, s = max(1, sqrt(v)) from
    the (warmed-up) state; on f = (b - 5)², v ≈ Var f ≈ 20, so s ≈ 4.5 and ∇L itself is far off."""
    from gradest.estimators.nvil import nvil_scale

    task = toy([5.0, -4.0], logits=[0.3, -0.6])
    sampler = GradientSampler(task, "nvil", backend=backend, dtype="float64", seed=2)
    scale = float(sampler.backend.to_numpy(nvil_scale(sampler.backend, sampler.state)))
    assert scale > 2.0
    samples = sampler.run(R)
    exact = gradest.exact_gradient(task, backend=backend, dtype="float64")
    assert z_test(samples, exact / scale, alpha=ALPHA).passed
    assert not z_test(samples, exact, alpha=ALPHA).passed
    assert not gradest.get_estimator("nvil").unbiased and gradest.get_estimator("nvil", normalize=False).unbiased


@pytest.mark.parametrize("backend", BACKENDS)
def test_nvil_baseline_learns_the_expected_cost(backend):
    """phi_loss = mean (f - b_φ(x))²: training φ moves the baseline to E[f] = L(θ₀) (closed form)."""
    from gradest.estimators.nvil import features
    from gradest.estimators._mlp import mlp_apply

    task = toy([0.45, 0.1, 0.8], logits=[0.0, 1.0, -0.5])
    est = gradest.get_estimator("nvil", hidden=4)
    phi = train_phi(task, est, backend, steps=300, lr=0.03, num_samples=8)
    B = get_backend(backend, dtype="float64")
    dist = task.problem(B, B.asarray(task.init_params())).dist
    baseline = float(B.to_numpy(mlp_apply(B, B.asarray(phi), features(dist), 3, 4)))
    exact = gradest.measure.exact_loss(task, backend=backend, dtype="float64")
    assert abs(baseline - exact) < 0.05 * exact, (baseline, exact)


# ---- parity of the φ gradients (second order) ----------------------------------------------

@pytest.mark.parametrize("name, options, task", [
    ("relax", {"hidden": 4}, toy([0.45, 0.1, 0.8], logits=[0.0, 1.0, -0.5])),
    ("relax", {"hidden": 4}, CategoricalBatch()),
    ("rebar", {"tune": True}, BernoulliBatch()),
    ("nvil", {"hidden": 4}, CategoricalBatch()),
])
def test_phi_gradient_parity(name, options, task):
    """The same NumPy noise gives the same phi_loss and the same φ-gradient (for RELAX/REBAR a
    gradient of a gradient) in torch and jax, float64."""
    est = gradest.get_estimator(name, **options)
    noise = numpy_noise(task, est, num_samples=3, seed=4)["estimator"]
    out = {}
    for backend in BACKENDS:
        B = get_backend(backend, dtype="float64")
        prob = task.problem(B, B.asarray(task.init_params()))
        state = est.init(prob.dist)
        bnoise = {k: B.asarray(v) for k, v in noise.items()}
        phi = state["phi"] + B.asarray(np.linspace(-0.1, 0.1, int(state["phi"].shape[0])))

        def loss(p):
            return est.phi_loss(p, prob.f, prob.dist, bnoise, state)

        value, grad = B.jit(lambda p: (loss(p), B.grad(loss)(p)))(phi)
        out[backend] = (float(B.to_numpy(value)), B.to_numpy(grad))
    (v_t, g_t), (v_j, g_j) = out["torch"], out["jax"]
    assert np.isfinite(v_t) and np.all(np.isfinite(g_t)) and np.any(g_t != 0)
    np.testing.assert_allclose(v_t, v_j, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(g_t, g_j, rtol=RTOL, atol=ATOL)


# ---- the conditional relaxation itself -----------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["bernoulli", "categorical"])
def test_conditional_sample_is_consistent(backend, kind):
    """z̃ ~ p(z | b) has the sign / argmax of b, and z̃ has the law of z: its per-class mean
    matches z's (two-sample z-test, Bonferroni over classes)."""
    B = get_backend(backend, dtype="float64")
    rng = np.random.default_rng(0)
    n = 20000
    if kind == "bernoulli":
        dist = Bernoulli(B, B.asarray([0.8, -1.5]))
        u = rng.uniform(size=(n, 2))
    else:
        dist = Categorical(B, B.asarray([0.5, -1.0, 0.2, 1.1]))
        u = rng.gumbel(size=(n, 4))
    b, z = perturbed(dist, B.asarray(u))
    z_tilde = B.to_numpy(conditional(dist, b, B.asarray(rng.uniform(size=u.shape))))
    b, z = B.to_numpy(b), B.to_numpy(z)
    if kind == "bernoulli":
        assert np.array_equal(z_tilde > 0, b > 0.5)
    else:
        assert np.array_equal(z_tilde.argmax(-1), b.argmax(-1))
    se = np.sqrt(z.var(0) / n + z_tilde.var(0) / n)
    threshold = bonferroni(z.shape[1])
    assert np.max(np.abs(z.mean(0) - z_tilde.mean(0)) / se) <= threshold


# ---- input checks --------------------------------------------------------------------------

@pytest.mark.parametrize("name, options, match", [
    ("rebar", {"temperature": -1.0}, "temperature"),
    ("rebar", {"eta": float("nan")}, "eta"),
    ("rebar", {"tune": "yes"}, "tune"),
    ("relax", {"hidden": -2}, "hidden"),
    ("relax", {"temperature": 0}, "temperature"),
    ("nvil", {"normalize": 1}, "normalize"),
    ("nvil", {"decay": 1.0}, "decay"),
    ("arm", {"temperature": 1.0}, "valid options"),
])
def test_bad_options(name, options, match):
    with pytest.raises(ValueError, match=match):
        gradest.get_estimator(name, **options)


@pytest.mark.parametrize("name", ["arm", "disarm"])
def test_arm_refuses_categorical(name):
    with pytest.raises(UnsupportedCombinationError, match="bernoulli"):
        gradest.gradient_samples("bandit", name, num_replicates=2)


def test_rebar_refuses_normal():
    with pytest.raises(UnsupportedCombinationError, match="normal"):
        gradest.gradient_samples("gaussian_quadratic", "relax", num_replicates=2)
