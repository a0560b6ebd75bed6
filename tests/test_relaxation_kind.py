"""The ``relaxation`` cell kind: its numbers against closed forms, its bounds, and a sweep.

Everything here is deterministic (float64, fixed input seeds); tolerances are float64
rounding (1e-12 relative) unless stated.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gradest.kinds import relaxation as K

SHARPNESS = (0.5, 2.0, 10.0, 100.0)


@pytest.mark.parametrize("name", sorted(K.RELAXATIONS))
def test_every_relaxation_stays_within_its_bounds(name, backend_name):
    row, history = K.relaxation_cell(name, backend_name, "cpu", 0, (0.5, 100.0), 100)
    assert row["bound_violations"] == 0, history[["sharpness", "error_min", "error_max", "bound_low", "bound_high"]]
    assert row["grad_bound_violations"] == 0
    assert list(history["sharpness"]) == [0.5, 100.0]


def test_huber_largest_error_is_half_the_width_and_its_order_one():
    # |x| - huber_δ(x) = δ/2 for every |x| >= δ: the largest error over inputs reaching δ is δ/2
    row, history = K.relaxation_cell("huber", "torch", "cpu", 0, SHARPNESS, 300)
    np.testing.assert_allclose(history["abs_error_max"], [0.5 / s for s in SHARPNESS], rtol=1e-12)
    assert row["error_order"] == pytest.approx(1.0, abs=1e-9)
    # its gradient is exact at |x| >= δ (the away inputs are >= MARGIN = 0.5 from 0)
    assert (history.loc[history["sharpness"] >= 2.0, "grad_error_away_max"] == 0).all()
    assert (history["kink_distance_max"] == 0).all()  # huber'(0) = 0 ∈ [-1, 1]


def test_softplus_error_peaks_at_zero_with_log2_over_beta():
    # softplus(βx)/β - relu(x) is largest at x = 0, where it is log(2)/β; the kink input is 0
    _, history = K.relaxation_cell("softplus", "torch", "cpu", 0, SHARPNESS, 300)
    assert (history["abs_error_max"] <= np.log(2) / np.array(SHARPNESS) + 1e-12).all()
    assert (history["kink_distance_max"] == 0).all()  # σ(0) = 1/2 ∈ [0, 1]


def test_logsumexp_kink_distance_is_the_softmax_mass_off_the_tie(backend_name):
    # on a tie of the top two, softmax(αx) puts mass 1 - p_tie off the tied coordinates: the L1
    # distance to conv{e_i, e_j} is 2 Σ_{k off the tie} softmax(αx)_k
    from gradest.backends import get_backend

    B = get_backend(backend_name, dtype="float64")
    x = np.array([[2.0, 2.0, 1.0, -0.5]])
    alpha = 3.0
    grad = K._gradient(K.RELAXATIONS["logsumexp"], B, x, alpha)
    p = np.exp(alpha * x) / np.exp(alpha * x).sum()
    assert K._max_kink_distance(x, grad)[0] == pytest.approx(2 * p[0, 2:].sum(), rel=1e-12)


def test_softmax_example_of_four_scores():
    # softmax(x/T) at x = [1.1, 4.0, -0.1, 2.3]: its argmax (index 1) probability against numpy's
    _, history = K.relaxation_cell("softmax", "torch", "cpu", 0, (1.0, 10.0), 50)
    x = np.asarray(K.EXAMPLE)
    for s, p in zip(history["sharpness"], history["example_p_argmax"]):
        expected = np.exp(s * x) / np.exp(s * x).sum()
        assert p == pytest.approx(expected[1], rel=1e-12)
        assert history.loc[history["sharpness"] == s, "example_error"].iloc[0] == pytest.approx(
            2 * (1 - expected[1]), rel=1e-9, abs=1e-15)
    # at a tie argmax has no subgradient: the Jacobian's norm is recorded, growing like s/2
    assert history["kink_jacobian_norm"].iloc[1] > history["kink_jacobian_norm"].iloc[0]


def test_error_order_of_a_power_law():
    frame = pd.DataFrame({"sharpness": [1.0, 2.0, 4.0, 8.0], "abs_error_max": [1.0, 0.25, 1 / 16, 1 / 64]})
    assert K.error_order(frame) == pytest.approx(2.0)
    assert math.isnan(K.error_order(frame.iloc[:1]))


def test_relaxation_sweep_runs_standalone_and_draws_its_figure(tmp_path):
    from gradest.reports import build_report
    from gradest.sweep.run import plan, run_sweep

    cells = plan(kinds=["relaxation"], backends=["torch"], quick=True)
    assert sorted(c.estimator for c in cells) == sorted(K.RELAXATIONS)
    assert {c.task for c in cells} == {"max", "argmax", "relu", "abs"}  # no registered task is built
    result = run_sweep(cells, tmp_path / "run", progress=False)
    frame = result.current
    assert set(frame["status"]) == {"done"}
    assert (pd.to_numeric(frame["bound_violations"]) == 0).all()
    index = build_report([tmp_path / "run"], tmp_path / "report")
    assert (tmp_path / "report" / "relaxation_errors.png").exists()
    html = index.read_text()
    assert "Smooth relaxations" in html and "relaxation: 6 relaxation" in html
