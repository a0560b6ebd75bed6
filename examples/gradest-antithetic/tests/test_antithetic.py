"""The antithetic plugin passes gradest's conformance suite, and pairs do what they promise."""
import numpy as np
import pytest

import gradest
from gradest.testing import parametrize_with_checks


# every check of the kit its own test: test_conformance[antithetic[baseline=loo]-unbiased[bandit-torch]], ...
@parametrize_with_checks(["antithetic", gradest.get_estimator("antithetic", baseline="loo")])
def test_conformance(obj, check):
    check()


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_one_fair_coin_pair_is_exact(backend):
    # p = 1/2: the mirror of b is 1 - b, and ½ [f(b)(b - ½) + f(1 - b)(½ - b)] = ¼ (f(1) - f(0))
    # = dL/dθ for every u: zero variance, where plain REINFORCE has variance > 0.
    pytest.importorskip(backend)
    task = gradest.get_task("binary_toy", target=[0.45], logits=[0.0])
    exact = gradest.exact_gradient(task, backend=backend)
    grads = gradest.gradient_samples(task, "antithetic", backend=backend, num_replicates=500, seed=3)
    np.testing.assert_allclose(grads, np.broadcast_to(exact, grads.shape), rtol=1e-5, atol=1e-7)
    plain = gradest.gradient_samples(task, "reinforce", backend=backend, num_replicates=500, seed=3)
    assert plain.std() > 0.01
