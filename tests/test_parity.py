"""torch <-> jax parity: the same NumPy noise in gives the same surrogate values and gradients
out (float64, tight tolerance), for every core estimator on every toy task it supports."""
import numpy as np
import pytest

import gradest
from gradest.backends import get_backend
from gradest.measure import make_loss
from gradest.testing import numpy_noise

pytest.importorskip("torch")
pytest.importorskip("jax")

CORE = [("exact", {}), ("reinforce", {"baseline": "none"}), ("reinforce", {"baseline": "loo"}),
        ("reinforce", {"baseline": "optimal"}), ("reinforce", {"baseline": "moving_average"}),
        ("pathwise", {}), ("gumbel_softmax", {"temperature": 0.5}),
        ("gumbel_softmax", {"temperature": 0.5, "hard": True}), ("straight_through", {})]
TASKS = {"bandit": {"reward_noise": "gaussian"}, "binary_toy": {"target": [0.45, 0.2, 0.9]},
         "gaussian_quadratic": {}}


@pytest.mark.parametrize("task_name", sorted(TASKS))
@pytest.mark.parametrize("name,options", CORE, ids=lambda v: v if isinstance(v, str) else "-".join(map(str, v.values())))
def test_same_noise_same_surrogate_and_gradient(task_name, name, options):
    task = gradest.get_task(task_name, **TASKS[task_name])
    est = gradest.get_estimator(name, **options)
    if task.distribution_kind not in est.supports:
        pytest.skip("unsupported")
    rng = np.random.default_rng(0)
    theta = task.init_params() + 0.3 * rng.standard_normal(task.num_params)
    noise = numpy_noise(task, est, 3, seed=1, params=theta)
    results = {}
    for backend_name in ("torch", "jax"):
        B = get_backend(backend_name, dtype="float64")
        params = B.asarray(theta)
        state = est.init(task.problem(B, params).dist)
        loss = make_loss(task, est, B)
        (value, new_state), grad = B.value_and_grad(loss, has_aux=True)(
            params, {g: {n: B.asarray(v) for n, v in d.items()} for g, d in noise.items()}, state)
        results[backend_name] = (B.to_numpy(value), B.to_numpy(grad),
                                 {k: B.to_numpy(v) for k, v in new_state.items()})
    (vt, gt, st), (vj, gj, sj) = results["torch"], results["jax"]
    np.testing.assert_allclose(vt, vj, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gt, gj, rtol=1e-9, atol=1e-12)
    assert st.keys() == sj.keys()
    for k in st:
        np.testing.assert_allclose(st[k], sj[k], rtol=1e-10)
