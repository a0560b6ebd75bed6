"""The metrics papers report (`gradest.tasks._vae`), evaluated at declared steps, and each
training seed's own initialization (`gradest.train(init="seed")`, the train kind's rows).

Cheap: tiny digits VAEs, torch only (the metrics are written once over the Backend; the
backends' parity is tests/test_vae_family.py's)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import gradest
from gradest.backends import get_backend
from gradest.kinds.train import TrainKind, training_curves, training_curves_figure, training_finals
from gradest.sweep.cells import Cell
from gradest.task import expected_cost

LINEAR = {"num_latents": 2, "hidden": (8,), "decoder": "linear_gaussian", "batch_size": 5}
ENUMERABLE = {"num_latents": 2, "num_categories": 3, "hidden": (8,), "batch_size": 5}


def _hand_neg_elbo(task, theta, images):
    """The mean -ELBO of ``images`` computed directly: the task's exact loss on that batch
    (closed-form reconstruction + analytic KL), float64."""
    B = get_backend("torch", dtype="float64")
    prob = task.problem(B, B.asarray(theta), batch=B.asarray(images.astype(np.float64)))
    return float(B.to_numpy(B.mean(expected_cost(B, prob.f, prob.dist)) + prob.extra))


def test_train_metric_is_a_hand_computation_whatever_the_batching():
    """train_neg_elbo on 40 images in two batches = in one batch = the hand computation; on the
    whole training set (1,500 digits, batches of 700, the last one padded) = the hand
    computation over the 1,500 images; the description says which data it measures."""
    B = get_backend("torch")
    two = gradest.get_task("gaussian_vae", eval_points=40, eval_batch=20, **LINEAR)
    one = gradest.get_task("gaussian_vae", eval_points=40, eval_batch=40, **LINEAR)
    theta = two.init_params() + 0.1 * np.random.default_rng(0).normal(size=two.num_params)
    hand = _hand_neg_elbo(two, theta, two.data.train[:40] > 0.5)
    assert two.metrics(B, theta)["train_neg_elbo"] == pytest.approx(hand, rel=1e-5)
    assert one.metrics(B, theta)["train_neg_elbo"] == pytest.approx(hand, rel=1e-5)
    assert "the first 40 of the 1,500" in two.metric_descriptions["train_neg_elbo"]

    whole = gradest.get_task("gaussian_vae", eval_batch=700, **LINEAR)
    per_image = whole.image_metrics(B, theta, "train")["neg_elbo"]
    assert per_image.shape == (1500,)
    assert per_image.mean() == pytest.approx(_hand_neg_elbo(whole, theta, whole.data.train > 0.5), rel=1e-5)
    assert "the whole training set (1,500" in whole.metric_descriptions["train_neg_elbo"]
    assert "the whole test set (297" in whole.metric_descriptions["test_neg_elbo"]


def test_sampled_metrics_do_not_depend_on_the_batching():
    """Monte Carlo metrics (a categorical VAE: sampled reconstruction, IW bound) draw each
    image's noise from its own replicate: batches of 7 give the batch of 40's numbers."""
    B = get_backend("torch")
    small = gradest.get_task("categorical_vae", eval_points=40, eval_batch=7, iw_samples=10, **ENUMERABLE)
    large = gradest.get_task("categorical_vae", eval_points=40, eval_batch=40, iw_samples=10, **ENUMERABLE)
    theta = small.init_params(seed=1)
    a, b = small.metrics(B, theta), large.metrics(B, theta)
    assert set(a) == {"train_neg_elbo", "train_kl", "test_neg_elbo", "test_neg_iw_bound", "test_nll"}
    for name in a:
        assert a[name] == pytest.approx(b[name], rel=1e-5), name


def test_iw_bound_decreases_toward_the_exact_nll():
    """On an enumerable VAE (2 × 3 categorical latents, the whole 297-image test set) the
    k-sample bound's gap to the exact -log p(x) shrinks with k: per image, gap_k = bound_k +
    log p(x) >= 0 in expectation (its mean is at least -3 standard errors), gap_1 (= the
    single-sample -ELBO's gap) is clearly positive (> 5 SE), every tenfold k lowers it by more
    than 3 SE of the paired difference, and at k = 1000 it is below a tenth of gap_1 (here
    ~0.15 against ~3 nats)."""
    B = get_backend("torch", dtype="float64")
    theta = None
    gaps = {}
    for k in (1, 10, 100, 1000):
        task = gradest.get_task("categorical_vae", iw_samples=k, **ENUMERABLE)
        if theta is None:  # a posterior far from the true one: large gaps at small k
            theta = task.init_params() + 0.5 * np.random.default_rng(3).normal(size=task.num_params)
        test = task.image_metrics(B, theta, "test")
        gaps[k] = test["neg_iw_bound"] - test["nll"]  # [297]
    se = {k: g.std(ddof=1) / math.sqrt(len(g)) for k, g in gaps.items()}
    for k, g in gaps.items():
        assert g.mean() >= -3 * se[k], (k, g.mean(), se[k])
    assert gaps[1].mean() > 5 * se[1]
    for small, large in ((1, 10), (10, 100), (100, 1000)):
        diff = gaps[small] - gaps[large]
        assert diff.mean() > 3 * diff.std(ddof=1) / math.sqrt(len(diff)), (small, large, diff.mean())
    assert gaps[1000].mean() < 0.1 * gaps[1].mean()


def test_each_seed_its_own_initialization():
    """init="seed": two seeds start from different θ₀, the same seed from the same; θ₀ is that of
    the task built with the recorded init_seed; the default keeps the declared θ₀; toys keep
    theirs (init_seed None)."""
    task = gradest.get_task("categorical_vae", eval_points=20, **ENUMERABLE)
    runs = {s: gradest.train(task, "reinforce", steps=1, seed=s, init="seed", eval_steps=1) for s in (0, 1)}
    again = gradest.train(task, "reinforce", steps=1, seed=1, init="seed", eval_steps=1)
    declared = gradest.train(task, "reinforce", steps=1, seed=1)
    assert runs[0].init_seed != runs[1].init_seed and again.init_seed == runs[1].init_seed == task.init_seed_for(1)
    assert declared.init_seed is None
    first = {s: r.history["exact_loss"].iloc[0] for s, r in runs.items()}  # L(θ₀) of each run
    assert first[0] != first[1] and again.history["exact_loss"].iloc[0] == first[1]
    np.testing.assert_array_equal(again.params, runs[1].params)
    assert not np.array_equal(task.init_params(seed=0), task.init_params(seed=1))
    assert not np.array_equal(task.init_params(seed=1), task.init_params())
    rebuilt = gradest.get_task("categorical_vae", eval_points=20, init_seed=runs[1].init_seed, **ENUMERABLE)
    np.testing.assert_array_equal(rebuilt.init_params(), task.init_params(seed=1))
    toy = gradest.train("bandit", "reinforce", steps=1, seed=1, init="seed", num_samples=2)
    assert toy.init_seed is None
    with pytest.raises(ValueError, match="init must be one of"):
        gradest.train("bandit", "reinforce", steps=1, init="random")
    with pytest.raises(ValueError, match="not both"):
        gradest.train("bandit", "reinforce", steps=1, init="seed", params=gradest.get_task("bandit").init_params())


def test_metrics_at_declared_steps():
    """eval_steps: the metrics at about n evenly spread steps (the first and the last always),
    NaN elsewhere; the minibatch surrogate on every logged row, under both names."""
    task = gradest.get_task("categorical_vae", eval_points=20, iw_samples=4, **ENUMERABLE)
    result = gradest.train(task, "reinforce", steps=10, num_samples=2, eval_steps=3, eval_every=2)
    h = result.history
    evaluated = h.loc[h["test_neg_elbo"].notna(), "step"].tolist()
    assert evaluated[0] == 0 and evaluated[-1] == 9 and len(evaluated) == 3
    assert h["minibatch_surrogate"].notna().all() and (h["minibatch_surrogate"] == h["loss"]).all()
    assert set(h["step"]) >= {0, 2, 4, 6, 8, 9}
    listed = gradest.train(task, "reinforce", steps=6, num_samples=2, eval_steps=[2, 5])
    assert listed.history.loc[listed.history["test_neg_elbo"].notna(), "step"].tolist() == [2, 5]
    with pytest.raises(ValueError, match="eval_steps must be"):
        gradest.train(task, "reinforce", steps=6, num_samples=2, eval_steps=[7])


def test_train_cells_record_and_report_the_headline_metric(tmp_path):
    """A train cell of a VAE records init_seed (different per seed) and its headline metric, the
    test -ELBO, with the description of its data; the curves and the summary show it; a toy's
    headline is its exact loss and its θ₀ the declared one (init_seed NaN)."""
    import pandas as pd

    kind = TrainKind()
    options = {**ENUMERABLE, "eval_points": 20, "iw_samples": 4}
    rows, histories = [], []
    for task_name, task_options, seed in [("categorical_vae", options, 0), ("categorical_vae", options, 1),
                                          ("bandit", {}, 0)]:
        cell = Cell("train", task_name, "reinforce", "torch", seed=seed, num_samples=2, task_options=task_options,
                    settings={"steps": 4})
        row, history = kind.run(cell, gradest.get_task(task_name, **task_options), gradest.get_estimator("reinforce"))
        ids = {"kind": "train", "task": task_name, "estimator": "reinforce", "backend": "torch", "seed": seed}
        rows.append({**ids, "status": "done", **row})
        histories.append(history.assign(**ids))
    vae0, vae1, toy = rows
    assert vae0["init_seed"] != vae1["init_seed"] and math.isnan(toy["init_seed"])
    assert vae0["headline_metric"] == "test_neg_elbo" and "test -ELBO" in vae0["headline_description"]
    assert toy["headline_metric"] == "exact_loss" and toy["headline_description"] == "exact loss L(θ)"
    assert vae0["final_loss"] == vae0["final_minibatch_surrogate"]
    cells, history = pd.DataFrame(rows), pd.concat(histories, ignore_index=True)
    curves, column = training_curves(history, "train", cells)
    assert column == "mixed"
    vae = curves[curves["task"] == "categorical_vae"]
    assert (vae["value_column"] == "test_neg_elbo").all() and vae["value"].notna().all()
    finals = training_finals(cells)
    vae_final = finals[finals["task"] == "categorical_vae"]
    mean_final = (vae0["final_test_neg_elbo"] + vae1["final_test_neg_elbo"]) / 2
    assert vae_final["final_loss"].item() == pytest.approx(mean_final)
    summary = kind.summary_columns(cells)
    assert {"metric", "final metric"} <= set(summary.columns)
    assert summary.loc[summary["task"] == "bandit", "metric"].item() == "exact loss L(θ)"
    from gradest.plotting.style import Palette, theme

    theme()
    figure = training_curves_figure(history, Palette.from_labels(["reinforce"]), tmp_path, cells)
    assert "categorical_vae: test -ELBO" in figure.caption and "bandit: exact loss L(θ)" in figure.caption
