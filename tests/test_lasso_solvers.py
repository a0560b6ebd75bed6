"""ISTA, FISTA, coordinate descent and Huber gradient descent on the Lasso (`gradest.proximal`),
against scikit-learn's optimum F* and the solvers' own convergence theorems, and the
``lasso_delta`` kind's solver cells.

Deterministic (float64, seeded data); F* is scikit-learn's solution at tolerance 1e-12, so the
bounds are checked with an absolute slack of 1e-10.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gradest import proximal as P
from gradest.registry import get_task

SLACK = 1e-10


@pytest.fixture(scope="module", params=["synthetic", "diabetes"])
def lasso(request):
    task = get_task("lasso_huber", dataset=request.param)
    return task, task.objective(task.reference())


def test_soft_threshold_is_the_prox_of_the_l1_norm():
    v = np.array([-2.0, -0.5, 0.0, 0.3, 1.5])
    np.testing.assert_array_equal(P.soft_threshold(v, 0.5), [-1.5, 0.0, 0.0, 0.0, 1.0])
    # prox_{t|.|}(v) minimizes t|x| + (x - v)²/2: check against a fine grid
    grid = np.linspace(-3, 3, 600001)
    for value in v:
        best = grid[np.argmin(0.5 * np.abs(grid) + 0.5 * (grid - value) ** 2)]
        assert P.soft_threshold(np.array([value]), 0.5)[0] == pytest.approx(best, abs=1e-5)


def test_ista_and_fista_within_their_rate_bounds_and_reach_the_optimum(lasso):
    task, optimum = lasso
    L = P.lipschitz(task.X)
    radius = float(np.sum(task.reference() ** 2))  # ‖w₀ − w*‖² from w₀ = 0
    ista = P.ista(task.X, task.y, task.alpha, 400, task.objective)
    fista = P.fista(task.X, task.y, task.alpha, 400, task.objective)
    k = ista.iterations
    assert np.all(ista.objective - optimum <= L * radius / (2 * k) + SLACK)  # Beck & Teboulle, Thm 3.1
    assert np.all(fista.objective - optimum <= 2 * L * radius / (k + 1) ** 2 + SLACK)  # Thm 4.4
    for path in (ista, fista):
        assert path.objective[-1] - optimum < 1e-9
        np.testing.assert_allclose(path.w, task.reference(), atol=1e-5)
        assert np.all(np.diff(path.seconds) >= 0)


def test_coordinate_descent_reaches_the_optimum_on_an_epoch_grid(lasso):
    task, optimum = lasso
    path = P.coordinate_descent(task.X, task.y, task.alpha, 300, task.objective, points=6)
    assert path.iterations[0] == 1 and path.iterations[-1] == 300 and len(path.iterations) <= 6
    assert path.objective[-1] - optimum < 1e-9


@pytest.mark.parametrize("delta", [1.0, 0.1, 0.01])
def test_huber_gradient_descent_stalls_within_the_relaxation_bound(delta):
    # the δ-relaxed optimum is within α·d·δ/2 of F* (|x| − δ/2 ≤ huber_δ(x) ≤ |x|); synthetic data
    # are well conditioned, so 3000 steps reach the relaxed optimum
    task = get_task("lasso_huber")
    optimum = task.objective(task.reference())
    path = P.huber_gd(task.X, task.y, task.alpha, 3000, task.objective, delta=delta)
    gap = path.objective[-1] - optimum
    assert 0 <= gap <= task.alpha * task.X.shape[1] * delta / 2 + SLACK
    assert abs(path.objective[-1] - path.objective[-100]) < 1e-9  # stalled, not still descending


@pytest.mark.parametrize("call, match", [
    (lambda t: P.solve("newton", t.X, t.y, t.alpha, 10, t.objective), "unknown Lasso solver 'newton'; use one of"),
    (lambda t: P.ista(t.X, t.y, 0.0, 10, t.objective), "alpha must be positive"),
    (lambda t: P.fista(t.X, t.y, t.alpha, 0, t.objective), "steps must be at least 1"),
    (lambda t: P.huber_gd(t.X, t.y, t.alpha, 10, t.objective, delta=0.0), "delta must be positive"),
])
def test_bad_solver_input(call, match):
    with pytest.raises(ValueError, match=match):
        call(get_task("lasso_huber"))


def test_the_kind_plans_every_solver_on_both_datasets_or_the_chosen_one():
    from types import SimpleNamespace

    from gradest.cli.run import SweepSelection

    def planned(*tasks):
        args = SimpleNamespace(tasks=list(tasks), estimators=["exact"], kinds=["lasso_delta"], data_dir=None,
                               quick=True, budget=None, num_replicates=None, train_steps=None, seeds=None, lr=None,
                               track_every=None, sample_sizes=None, equal_evaluations=None)
        cells = SweepSelection(args).plan(["torch"], "cpu")
        return {(c.task_options.get("dataset", "synthetic"), c.settings["solver"]) for c in cells}

    solvers = ("adam", "huber_gd", "ista", "fista", "coordinate_descent")
    assert planned("lasso_huber") == {(d, s) for d in ("synthetic", "diabetes") for s in solvers}
    assert planned("lasso_huber:dataset=diabetes") == {("diabetes", s) for s in solvers}


def test_solver_cell_rows_name_their_solver_and_the_summary_answers_the_question():
    from gradest.kinds import lasso_delta as LD
    from gradest.sweep.cells import Cell

    task = get_task("lasso_huber")
    rows, histories = [], []
    for i, (solver, delta) in enumerate([("fista", math.nan), ("huber_gd", 0.1)]):
        settings = {"solver": solver, "steps": 300, **({} if math.isnan(delta) else {"delta": delta})}
        cell = Cell("lasso_delta", "lasso_huber", "exact", "torch", "cpu", 0, 1, {}, {}, settings)
        row, history = LD.solver_cell(cell, task)
        assert row["solver"] == solver and row["objective_gap"] >= -1e-12
        rows.append({**row, "key": str(i), "kind": "lasso_delta", "status": "done", "backend": "torch",
                     "task_options": "{}"})
        histories.append(history.assign(key=str(i), kind="lasso_delta"))
    assert rows[1]["relaxation_bound"] == pytest.approx(task.alpha * task.X.shape[1] * 0.1 / 2)
    paths = LD.solver_paths(pd.DataFrame(rows), pd.concat(histories, ignore_index=True))
    text = " ".join(LD.stall_summary(paths))
    assert "synthetic, the Huber relaxation by gradient descent: at δ = 0.1 it stalls at F − F* = " in text
    assert "a gap FISTA reaches after" in text and "FISTA reaches F* to rounding after" in text
