"""Bad input gives a clear error naming the problem and the fix, before any computation."""
import numpy as np
import pytest

import gradest
from gradest.measure import UnsupportedCombinationError


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="unknown estimator 'reinforse'; known estimators: .*reinforce"):
        gradest.get_estimator("reinforse")
    with pytest.raises(ValueError, match="unknown task 'bandits'; known tasks: .*bandit"):
        gradest.get_task("bandits")


def test_bad_options_say_which_are_valid():
    with pytest.raises(ValueError, match="unknown option 'temp' for estimator 'gumbel_softmax'; valid options: temperature, hard"):
        gradest.get_estimator("gumbel_softmax", temp=0.5)
    with pytest.raises(ValueError, match="valid baselines: none, moving_average, loo, optimal"):
        gradest.get_estimator("reinforce", baseline="mean")
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        gradest.get_estimator("gumbel_softmax", temperature=-1.0)
    with pytest.raises(ValueError, match="unknown option 'arms' for task 'bandit'; valid options: rewards"):
        gradest.get_task("bandit", arms=3)


def test_wrong_shaped_and_non_finite_options():
    with pytest.raises(ValueError, match="'logits' of bandit must have 3 entries"):
        gradest.get_task("bandit", rewards=[1, 2, 3], logits=[0, 0])
    with pytest.raises(ValueError, match="non-finite"):
        gradest.get_task("binary_toy", target=[0.4, float("nan")])
    with pytest.raises(ValueError, match="1-D list of numbers"):
        gradest.get_task("gaussian_quadratic", mean=[[0.0, 1.0]])
    with pytest.raises(ValueError, match="must be a list of numbers"):
        gradest.get_task("bandit", rewards="abc")


def test_unsupported_combination_is_refused_before_computation(monkeypatch):
    task = gradest.get_task("bandit")
    called = []
    monkeypatch.setattr(type(task), "problem", lambda *a, **k: called.append(1))
    with pytest.raises(UnsupportedCombinationError, match="'pathwise' does not support task 'bandit'.*categorical.*"
                       "Estimators that support categorical: .*reinforce"):
        gradest.gradient_samples(task, "pathwise")
    assert not called
    with pytest.raises(UnsupportedCombinationError, match="needs num_samples >= 2"):
        gradest.gradient_samples("bandit", gradest.get_estimator("reinforce", baseline="loo"), num_samples=1)


def test_non_finite_or_wrong_shaped_params():
    with pytest.raises(ValueError, match="non-finite"):
        gradest.gradient_samples("bandit", "reinforce", params=np.full(10, np.nan))
    with pytest.raises(ValueError, match="flat vector of 10 entries"):
        gradest.gradient_samples("bandit", "reinforce", params=np.zeros(3))


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10"])
def test_bad_counts(bad):
    with pytest.raises(ValueError, match="positive integer"):
        gradest.gradient_samples("bandit", "reinforce", num_replicates=bad)
    with pytest.raises(ValueError, match="positive integer"):
        gradest.gradient_samples("bandit", "reinforce", num_samples=bad)
