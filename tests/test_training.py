"""`gradest.train`: learning, carried state, the gradient basket, optimizers (and their parity
across backends), φ training, history, determinism, divergence and bad input."""
import math

import numpy as np
import pytest

import gradest
from gradest.backends import get_backend
from gradest.estimator import GradientEstimator
from gradest.measure import GradientSampler, UnsupportedCombinationError, draw_noise, noise_specs
from gradest.training import OPTIMIZERS, TRACK_STATS, TrainingDivergedError


def test_bandit_learns_with_reinforce_loo_and_exact(backend_name):
    for estimator, S in ((("reinforce", {"baseline": "loo"}), 4), (("exact", {}), 1)):
        result = gradest.train("bandit", gradest.get_estimator(estimator[0], **estimator[1]), backend=backend_name,
                               steps=100, num_samples=S, learning_rate=0.1, eval_every=10)
        h = result.history
        first, last = h.iloc[0], h.iloc[-1]
        # from the uniform policy (expected reward 0.35, regret 0.65) to mostly the best arm
        assert first["expected_reward"] == pytest.approx(0.3518518, abs=1e-5)
        assert last["expected_reward"] > first["expected_reward"] + 0.4, estimator
        assert last["regret"] < first["regret"] / 3 and last["prob_best_arm"] > 0.5
        # the exact loss is minus the expected reward
        np.testing.assert_allclose(h["exact_loss"], -h["expected_reward"], atol=1e-5)
        assert result.params.shape == (10,) and np.argmax(result.params) == 9
        assert result.estimator == gradest.get_estimator(estimator[0], **estimator[1]).label
        assert (result.task, result.backend, result.steps, result.num_samples) == ("bandit", backend_name, 100, S)


def test_bandit_with_noisy_rewards_learns(backend_name):
    task = gradest.get_task("bandit", reward_noise="gaussian", noise_scale=0.5)
    result = gradest.train(task, ("reinforce"), backend=backend_name, steps=200, num_samples=2,
                           learning_rate=0.1, eval_every=199)
    h = result.history
    assert h["expected_reward"].iloc[-1] > h["expected_reward"].iloc[0] + 0.3


def test_moving_average_state_is_carried(backend_name):
    est = gradest.get_estimator("reinforce", baseline="moving_average", decay=0.5)
    result = gradest.train("bandit", est, backend=backend_name, steps=7, num_samples=3, learning_rate=0.05)
    assert float(result.state["steps"]) == 7.0  # one update per step, carried across steps
    # the average is a decayed mean of the step losses (f = -reward: negative)
    losses = result.history["loss"].to_numpy()
    expected = 0.0
    for loss in losses:
        expected = 0.5 * expected + 0.5 * loss
    assert float(result.state["average"]) == pytest.approx(expected, rel=1e-5)


def test_gradient_basket(backend_name):
    track = ["exact", ("reinforce", {"baseline": "none"})]
    result = gradest.train("bandit", gradest.get_estimator("reinforce", baseline="loo"), backend=backend_name,
                           steps=12, num_samples=2, every=5, eval_every=4, track=track, track_replicates=400,
                           learning_rate=0.3)
    h = result.history
    labels = ["exact", "reinforce[baseline=none]"]
    assert result.tracked == labels
    assert list(h["step"]) == [0, 4, 5, 8, 10, 11]  # eval_every rows, basket rows, the last step
    for label in labels:
        for stat in TRACK_STATS:
            col = h[f"{label}/{stat}"]
            measured = h["step"].isin([0, 5, 10])
            assert np.all(np.isfinite(col[measured])) and col[~measured].isna().all()
    assert np.all(h.loc[h["step"].isin([0, 5, 10]), "exact/variance"] == 0)
    assert np.allclose(h.loc[h["step"].isin([0, 5, 10]), "exact/cosine_to_exact"], 1.0)
    basket = h[h["step"].isin([0, 5, 10])]
    # unbiased estimators: the bias is within a few standard errors of the mean estimate
    for label in labels[1:]:
        se = np.sqrt(basket[f"{label}/variance"] / 400)
        assert np.all(basket[f"{label}/bias_norm"] < 5 * se + 1e-6)
    # at θ₀ (uniform policy) the variance of plain REINFORCE with S = 2 is known by enumeration:
    # one sample's estimate is g(a) = f(a) (onehot(a) - p); the basket's estimate of the trace of
    # its covariance from 400 replicates has a relative standard error of about 0.1: allow 3.5 of them
    rewards = gradest.get_task("bandit").rewards
    p = np.full(10, 0.1)
    g = -rewards[:, None] * (np.eye(10) - p)  # [a, K]
    per_sample = p @ (g ** 2).sum(axis=1) - np.sum((p @ g) ** 2)
    assert basket["reinforce[baseline=none]/variance"].iloc[0] == pytest.approx(per_sample / 2, rel=0.35)


def test_the_trained_estimator_is_tracked_at_its_trained_state(backend_name):
    """Tracking the estimator being trained measures it with φ as trained up to step t: the
    history's value at t equals a sampler at θ_t given the trainer's state after t steps (the
    same replicates), and differs from the measurement at φ as initialized."""
    from gradest.measure import summarize
    from gradest.training import _TRACK_SEED_OFFSET, Trainer

    steps, every, R = 21, 20, 300
    result = gradest.train("binary_toy", "relax", backend=backend_name, steps=steps, seed=3, every=every,
                           track=["relax"], track_replicates=R, progress=False)
    label = gradest.get_estimator("relax").label
    recorded = result.history.set_index("step")[f"{label}/variance"]
    trainer = Trainer("binary_toy", "relax", backend=backend_name, seed=3)
    for _ in range(every):
        trainer.step()
    sampler = GradientSampler("binary_toy", "relax", backend=backend_name, seed=3 + _TRACK_SEED_OFFSET,
                              params=trainer.params(), phi_warmup=0)
    at_init = summarize(sampler.run(R), None)["variance"]
    sampler.set_params(trainer.params(), state=trainer.state_arrays())
    trained = summarize(sampler.run(R), None)["variance"]
    assert recorded[every] == pytest.approx(trained, rel=1e-5)
    assert abs(trained - at_init) > 1e-3 * at_init  # φ has moved: the two measurements differ


def test_sampler_set_params_matches_a_fresh_sampler(backend_name):
    theta = np.linspace(-1, 1, 10)
    # the moving average's state is re-warmed at the new θ (torch: eager warm-up is cheap)
    baseline = "moving_average" if backend_name == "torch" else "loo"
    sampler = GradientSampler("bandit", gradest.get_estimator("reinforce", baseline=baseline),
                              backend=backend_name, num_samples=2, seed=4)
    before = sampler.run(64)
    sampler.set_params(theta)
    fresh = GradientSampler("bandit", gradest.get_estimator("reinforce", baseline=baseline),
                            backend=backend_name, num_samples=2, seed=4, params=theta)
    after = sampler.run(64)
    np.testing.assert_allclose(after, fresh.run(64), rtol=1e-6)
    assert not np.allclose(before, after)
    with pytest.raises(ValueError, match="10 entries"):
        sampler.set_params(np.zeros(3))


def test_training_and_measurement_share_one_exact_truth(backend_name):
    """The run's ``exact_loss`` column and its basket's bias come from `gradest.truth`, the path
    `gradest.measure` measures against: the same L(θ) and ∇L(θ), compiled or eager."""
    from gradest import training, truth

    assert not hasattr(training, "_Truth") and training.Truth is truth.Truth
    task, B = gradest.get_task("bandit"), get_backend(backend_name)
    theta = np.linspace(-0.5, 0.5, task.num_params)
    loss = gradest.measure.exact_loss(task, backend=backend_name, params=theta)
    grad = gradest.measure.exact_gradient(task, backend=backend_name, params=theta)
    for compiled in (False, True):
        one = truth.Truth(task, B, compile_loss=compiled, compile_grad=compiled)
        assert one.loss(B.asarray(theta)) == pytest.approx(loss, rel=1e-6)
        np.testing.assert_allclose(one.grad(B.asarray(theta)), grad, rtol=1e-6, atol=1e-8)
    # row 0 describes θ₀ = params: a short run evaluates the truth eagerly, a long one compiled
    for steps in (2, 40):
        history = gradest.train(task, "exact", backend=backend_name, steps=steps, params=theta).history
        assert history["exact_loss"].iloc[0] == pytest.approx(loss, rel=1e-6)
    # the exact estimator tracked at θ₀ has no bias against that truth
    history = gradest.train(task, "exact", backend=backend_name, steps=2, params=theta, track=["exact"],
                            every=1, track_replicates=2).history
    assert history["exact/bias_norm"].iloc[0] < 1e-6 * np.linalg.norm(grad)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_optimizers_agree_across_backends(optimizer):
    """With exact gradients the trajectory is deterministic: torch.optim and optax must agree."""
    params = {}
    for backend in ("torch", "jax"):
        result = gradest.train("bandit", "exact", backend=backend, steps=25, optimizer=optimizer,
                               learning_rate=0.3, dtype="float64", eval_every=25)
        params[backend] = result.params
        assert result.optimizer == optimizer
    assert not np.allclose(params["torch"], 0.0)
    # (adagrad: torch adds eps=1e-10 outside the square root, optax none: ~1e-9 relative)
    np.testing.assert_allclose(params["torch"], params["jax"], rtol=1e-7, atol=1e-9)


def test_track_entries():
    from gradest.training import _resolve_track

    est = gradest.get_estimator("gumbel_softmax", temperature=0.5)
    resolved = _resolve_track(["exact", ("reinforce", {"baseline": "loo"}), est])
    assert [label for label, _ in resolved] == ["exact", "reinforce[baseline=loo]",
                                                "gumbel_softmax[hard=False,temperature=0.5]"]
    assert resolved[2][1] is est
    assert [label for label, _ in _resolve_track("exact")] == ["exact"]


def test_unknown_optimizer_and_bad_options():
    with pytest.raises(ValueError, match="known optimizers: adam, sgd"):
        gradest.train("bandit", "exact", steps=3, optimizer="lbfgs")
    with pytest.raises(ValueError, match="steps"):
        gradest.train("bandit", "exact", steps=0)
    with pytest.raises(TypeError):
        gradest.train("bandit", "exact")  # steps is required
    with pytest.raises(ValueError, match="learning_rate"):
        gradest.train("bandit", "exact", steps=3, learning_rate=-1.0)
    with pytest.raises(ValueError, match="eval_every"):
        gradest.train("bandit", "exact", steps=3, eval_every=0)
    with pytest.raises(ValueError, match="num_samples"):
        gradest.train("bandit", "exact", steps=3, num_samples=0)
    with pytest.raises(ValueError, match="track entries"):
        gradest.train("bandit", "exact", steps=3, track=[42])
    with pytest.raises(ValueError, match="more than once"):
        gradest.train("bandit", "exact", steps=3, track=["exact", "exact"])
    with pytest.raises(ValueError, match="10 entries"):
        gradest.train("bandit", "exact", steps=3, params=np.zeros(4))
    with pytest.raises(ValueError, match="unknown estimator"):
        gradest.train("bandit", "nope", steps=3)
    with pytest.raises(UnsupportedCombinationError, match="does not support"):
        gradest.train("gaussian_quadratic", "gumbel_softmax", steps=3)
    with pytest.raises(UnsupportedCombinationError, match="num_samples >= 2"):
        gradest.train("bandit", ("reinforce"), steps=3, track=[("reinforce", {"baseline": "loo"})])


def test_divergence_is_reported(backend_name):
    with pytest.raises(TrainingDivergedError, match=r"step \d+.*'pathwise'.*learning_rate=1000"):
        gradest.train("gaussian_quadratic", "pathwise", backend=backend_name, steps=200, optimizer="sgd",
                      learning_rate=1000.0)


def test_history_columns_and_determinism(backend_name):
    kwargs = dict(backend=backend_name, steps=12, num_samples=3, learning_rate=0.2, eval_every=5)
    a = gradest.train("bandit", ("reinforce"), seed=3, **kwargs)
    b = gradest.train("bandit", ("reinforce"), seed=3, **kwargs)
    h = a.history
    assert list(h.columns) == ["step", "seconds", "minibatch_surrogate", "loss", "exact_loss", "expected_reward",
                               "regret", "prob_best_arm"]
    assert (h["minibatch_surrogate"] == h["loss"]).all()  # the former name, the same number
    assert list(h["step"]) == [0, 5, 10, 11]
    assert np.all(np.diff(h["seconds"]) >= 0) and np.all(h["seconds"] > 0)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.history["loss"], b.history["loss"])
    # the first step's loss is the surrogate at θ₀ on the noise draw_noise gives for step 0 of seed 3
    B = get_backend(backend_name)
    task, est = gradest.get_task("bandit"), gradest.get_estimator("reinforce")
    theta0 = B.asarray(task.init_params())
    noise = draw_noise(B, noise_specs(task, est, B, theta0, 3), 3, first=0, count=1)
    z = B.to_numpy(noise["estimator"]["sample"][0]).argmax(-1)
    assert h["loss"].iloc[0] == pytest.approx(-task.rewards[z].mean(), rel=1e-6)


def _learned_baseline(second_order: bool = False) -> GradientEstimator:
    """A test estimator with trainable φ: REINFORCE with a learned constant baseline b = φ[0].

    phi_loss: the squared error (f - b)² (first order), or the squared norm of the estimate with
    respect to the logits (second order: differentiates the surrogate, as RELAX does)."""

    def init(dist):
        return {"phi": dist.backend.zeros((1,))}

    def surrogate(f, dist, noise, state):
        B = dist.backend
        z = dist.sample(noise["sample"])  # [S, K]
        fz = f(z)  # [S]
        log_p = dist.log_prob(z)  # [S]
        return fz + (B.stop_gradient(fz) - state["phi"][0]) * (log_p - B.stop_gradient(log_p)), state

    def phi_loss(phi, f, dist, noise, state):
        B = dist.backend
        if not second_order:
            fz = B.stop_gradient(f(dist.sample(noise["sample"])))
            return B.mean((fz - phi[0]) ** 2)

        def estimate_loss(logits):
            per_sample, _ = surrogate(f, dist.with_params({"logits": logits}), noise, {"phi": phi})
            return B.mean(per_sample)

        g = B.grad(estimate_loss)(dist.params["logits"])  # [K]
        return B.sum(g * g)

    return GradientEstimator(init=init, surrogate=surrogate, supports=frozenset({"categorical"}), unbiased=True,
                             name="learned_baseline", options={"second_order": second_order}, phi_loss=phi_loss)


def test_phi_is_trained(backend_name):
    # first order: φ tracks E[f] = the exact loss (the policy converges, so the target settles)
    result = gradest.train("bandit", _learned_baseline(), backend=backend_name, steps=300, num_samples=4,
                           learning_rate=0.05, eval_every=50)
    phi = float(result.state["phi"][0])
    final_loss = result.history["exact_loss"].iloc[-1]
    assert final_loss < -0.9  # it learned
    assert phi == pytest.approx(final_loss, abs=0.1)
    # second order (the φ gradient goes through the gradient of the surrogate): φ moves from 0
    # towards the costs (negative), and training still works
    result2 = gradest.train("bandit", _learned_baseline(second_order=True), backend=backend_name, steps=60,
                            num_samples=4, learning_rate=0.05, eval_every=59)
    assert float(result2.state["phi"][0]) < -0.3
    assert result2.history["expected_reward"].iloc[-1] > result2.history["expected_reward"].iloc[0]


def test_phi_estimator_needs_phi_in_state():
    est = _learned_baseline()._replace(init=lambda dist: {})
    with pytest.raises(ValueError, match="'phi'"):
        gradest.train("bandit", est, steps=2, num_samples=2)


def test_progress_bar(capsys):
    gradest.train("bandit", "exact", steps=3)
    assert capsys.readouterr().err == ""  # silent under pytest
    result = gradest.train("bandit", "exact", steps=3, progress=True)
    assert len(result.history) == 3


# ---- the evaluation and the basket: cheap, and the same numbers ------------------------------------

def test_basket_stats_equal_summarize(backend_name):
    """The basket's on-device reduction (`basket_stats`) gives `summarize`'s variance, bias norm
    and cosine of the same replicates, to float32 rounding (relative 1e-4 on the variance and the
    cosine, 1e-4 of the gradient's scale on the bias norm), with a chunk that does not divide R
    (R = 50 in chunks of 16). (An estimator without variance gives exactly 0: `test_gradient_basket`.)"""
    from gradest.statistics import summarize
    from gradest.training import basket_stats

    task = gradest.get_task("binary_toy")
    exact = gradest.exact_gradient(task, backend=backend_name)
    sampler = GradientSampler(task, gradest.get_estimator("reinforce", baseline="loo"), backend=backend_name,
                              num_samples=2, seed=5, chunk_size=16)
    want = summarize(sampler.run(50), exact)
    got = basket_stats(sampler, 50, exact)
    assert got["variance"] == pytest.approx(want["variance"], rel=1e-4)
    assert got["bias_norm"] == pytest.approx(want["bias_norm"], abs=1e-4 * float(np.linalg.norm(exact)))
    assert got["cosine_to_exact"] == pytest.approx(want["cosine_to_exact"], rel=1e-4)
    no_truth = basket_stats(sampler, 50, None)
    assert no_truth["variance"] == got["variance"] and math.isnan(no_truth["bias_norm"])


def test_intermediate_metrics_and_time_split():
    """``intermediate_metrics="declared"``: the evaluation steps before the last evaluate the
    task's cheap metrics (a VAE's -ELBOs: no IW bound, no enumerated NLL), each equal to the whole
    set's value at that θ; the last step all of them. ``timings`` splits the run's time."""
    from gradest.training import Trainer

    task = gradest.get_task("bernoulli_vae", num_latents=3, batch_size=4, eval_points=20, iw_samples=8)
    result = gradest.train(task, "disarm", steps=6, eval_steps=[0, 3, 5], intermediate_metrics="declared",
                           track=["disarm"], every=4, track_replicates=8)
    h = result.history.set_index("step")
    light, heavy = list(task.intermediate_metrics), ["test_neg_iw_bound", "test_nll"]
    assert h.loc[[0, 3], light].notna().all().all() and h.loc[[0, 3], heavy].isna().all().all()
    assert h.loc[5, light + heavy].notna().all()
    B = get_backend("torch")
    trainer = Trainer(task, "disarm", seed=0)
    for _ in range(3):
        trainer.step()
    whole = task.metrics(B, trainer.params_array())  # the whole set at θ_3
    for name in light:
        assert h.loc[3, name] == pytest.approx(whole[name], rel=1e-6)
    assert set(result.timings) == {"steps", "evaluation", "basket", "total"}
    assert all(v > 0 for v in result.timings.values())
    assert result.timings["steps"] + result.timings["evaluation"] + result.timings["basket"] <= \
        result.timings["total"] * (1 + 1e-9)
    with pytest.raises(ValueError, match="not metrics of bernoulli_vae.*test_neg_elbo"):
        gradest.train(task, "disarm", steps=2, intermediate_metrics=["test_elbo"])
    with pytest.raises(ValueError, match="intermediate_metrics must be"):
        gradest.train(task, "disarm", steps=2, intermediate_metrics="cheap")


def test_step_noise_is_replicate_t_in_any_order():
    """The torch step draws its noise a window of replicates at a time (`step_noise`): the noise
    of step t is replicate t of the streams, whatever order the steps ask in (a window is
    redrawn when left)."""
    from gradest import noise
    from gradest.training import step_noise

    B = get_backend("torch")
    task, est = gradest.get_task("bernoulli_vae", num_latents=3, batch_size=4), gradest.get_estimator("disarm")
    specs = noise_specs(task, est, B, B.asarray(task.init_params()), 2)
    draw, one = step_noise(B, specs), noise.drawer(B, specs, 1)
    for seed, t in ((3, 0), (3, 1), (3, 5), (3, 2), (4, 2), (3, 1000), (3, 999)):
        got, want = draw(seed, t), noise.first_replicate(one(seed, t))
        np.testing.assert_array_equal(B.to_numpy(got["estimator"]["sample"]), B.to_numpy(want["estimator"]["sample"]))


def test_steps_in_one_call_equal_single_steps(backend_name):
    """``Trainer.steps(k)`` (JAX: k steps in one compiled scan, θ kept in the task's blocks)
    makes the updates and losses of k calls of ``step``, to float32 rounding, on a VAE whose θ
    has several blocks; the step counter moves by k."""
    from gradest.training import Trainer

    task = gradest.get_task("bernoulli_vae", num_latents=3, batch_size=4)
    one, many = (Trainer(task, "disarm", backend=backend_name, seed=2, learning_rate=0.05) for _ in range(2))
    singles = [one.step() for _ in range(4)]
    values = np.concatenate([many.steps(2), many.steps(2)])  # one compiled scan, called twice
    assert many.t == one.t == 4
    np.testing.assert_allclose(values, singles, rtol=1e-5)
    np.testing.assert_allclose(many.params(), one.params(), rtol=1e-5, atol=1e-6)
    assert np.abs(one.params() - task.init_params()).max() > 1e-3  # the steps moved θ


def test_compiled_torch_backend_compiles_the_training_loss():
    """A torch backend made with ``compile=True`` differentiates the loss through
    ``torch.compile`` in its training step too (lazily: nothing is compiled here)."""
    from gradest.training import Trainer

    B = get_backend("torch", compile=True)
    trainer = Trainer("bandit", "reinforce", backend=B)
    trainer._ensure(None)
    assert getattr(trainer._step.loss, "_torchdynamo_orig_callable", None) is not None
    eager = Trainer("bandit", "reinforce", backend="torch")
    eager._ensure(None)
    assert getattr(eager._step.loss, "_torchdynamo_orig_callable", None) is None
