"""Relaxations reach the exact operations in their limits, and have the right gradients."""
import numpy as np
import pytest

from gradest import relaxations as R

X = np.array([[0.3, -1.2, 2.0, 1.9], [-0.5, 0.1, 0.0, -3.0]])


def test_softmax_temperature_limit(backend64):
    B = backend64
    x = B.asarray(X)
    hard = np.eye(4)[X.argmax(-1)]
    errors = [np.abs(B.to_numpy(R.softmax_argmax(B, x, t)) - hard).max() for t in (1.0, 0.1, 0.01, 0.001)]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 1e-12


def test_smooth_max_limit_and_gradient(backend64):
    B = backend64
    x = B.asarray(X)
    for alpha in (1.0, 10.0, 1000.0):
        sm = B.to_numpy(R.smooth_max(B, x, alpha))
        assert np.all(sm >= X.max(-1) - 1e-12) and np.all(sm <= X.max(-1) + np.log(4) / alpha + 1e-12)
    np.testing.assert_allclose(B.to_numpy(R.smooth_max(B, x, 1e4)), X.max(-1), atol=1e-3)
    np.testing.assert_allclose(B.to_numpy(R.smooth_min(B, x, 1e4)), X.min(-1), atol=1e-3)
    grad = B.grad(lambda v: B.sum(R.smooth_max(B, v, 2.0)))(x)
    np.testing.assert_allclose(B.to_numpy(grad), B.to_numpy(B.softmax(2.0 * x, axis=-1)), rtol=1e-12)


def test_softplus_relu_limit(backend64):
    B = backend64
    x = B.asarray(X)
    relu = np.maximum(X, 0)
    for beta in (1.0, 10.0, 100.0):
        v = B.to_numpy(R.smooth_relu(B, x, beta))
        assert np.all(v >= relu) and np.all(v - relu <= np.log(2) / beta + 1e-12)
    grad = B.to_numpy(B.grad(lambda v: B.sum(R.smooth_relu(B, v, 1e3)))(x))
    np.testing.assert_allclose(grad, (X > 0) + 0.5 * (X == 0), atol=1e-6)  # sigmoid(0) at the kink


def test_huber_limits_and_gradient(backend64):
    B = backend64
    w = np.array([-2.0, -0.05, 0.0, 0.02, 0.7])
    x = B.asarray(w)
    for delta in (1.0, 0.1, 0.01):
        h = B.to_numpy(R.huber(B, x, delta))
        outside = np.abs(w) > delta
        np.testing.assert_allclose(h[outside], np.abs(w[outside]) - delta / 2, rtol=1e-12)
        np.testing.assert_allclose(h[~outside], w[~outside] ** 2 / (2 * delta), rtol=1e-12)
        assert np.all(np.abs(h - np.abs(w)) <= delta / 2 + 1e-12)
    grad = B.to_numpy(B.grad(lambda v: B.sum(R.huber(B, v, 0.1)))(x))
    np.testing.assert_allclose(grad, np.clip(w / 0.1, -1, 1), rtol=1e-12)
    sa = B.to_numpy(R.smooth_abs(B, x, 1e-6))
    np.testing.assert_allclose(sa, np.abs(w), atol=1e-6)


def test_gumbel_softmax_and_straight_through(backend64):
    B = backend64
    logits = B.asarray(X[0])
    g = B.asarray([0.1, 0.5, -0.2, 0.3])
    soft = R.gumbel_softmax(B, logits, g, 1e-3)
    np.testing.assert_allclose(B.to_numpy(soft), np.eye(4)[np.argmax(X[0] + [0.1, 0.5, -0.2, 0.3])], atol=1e-12)
    # straight-through: hard forward, soft gradient backward
    w = B.asarray([1.0, 2.0, 3.0, 4.0])

    def f(l):
        s = R.gumbel_softmax(B, l, g, 1.0)
        return B.sum(w * R.straight_through(B, R.hard_argmax(B, s), s))

    assert abs(float(B.to_numpy(f(logits))) - 4.0) < 1e-12  # argmax(X[0] + g) = 3 -> w[3]
    want = B.grad(lambda l: B.sum(w * R.gumbel_softmax(B, l, g, 1.0)))(logits)
    np.testing.assert_allclose(B.to_numpy(B.grad(f)(logits)), B.to_numpy(want), rtol=1e-12)
    u = B.asarray([0.3, 0.9])
    bc = B.to_numpy(R.binary_concrete(B, B.asarray([0.0, 0.0]), u, 1e-3))
    np.testing.assert_allclose(bc, [1.0, 0.0], atol=1e-12)  # 1[u < sigmoid(0) = 0.5]


@pytest.mark.parametrize("fn,arg", [(R.softmax_argmax, "temperature"), (R.smooth_max, "alpha"),
                                    (R.smooth_relu, "beta"), (R.huber, "delta"), (R.smooth_abs, "eps")])
def test_non_positive_temperature_is_an_error(backend, fn, arg):
    with pytest.raises(ValueError, match=f"{arg} must be positive"):
        fn(backend, backend.asarray(X), -1.0)


def test_the_first_name_still_imports_the_same_functions():
    from gradest.estimators import relaxations as first_name

    assert all(getattr(first_name, name) is getattr(R, name) for name in R.__all__)


def test_softmax_weighted_max_within_its_bound_below_max(backend64):
    # max - log(n)/alpha <= Σ softmax(alpha x)_i x_i <= max, and it equals
    # logsumexp(alpha x)/alpha - H(softmax(alpha x))/alpha exactly
    B = backend64
    x = B.asarray(X)
    for alpha in (0.5, 3.0, 50.0):
        value = B.to_numpy(R.softmax_weighted_max(B, x, alpha))
        assert np.all(value <= X.max(-1) + 1e-12) and np.all(value >= X.max(-1) - np.log(4) / alpha - 1e-12)
        p = B.to_numpy(B.softmax(alpha * x, axis=-1))
        entropy = -(p * np.log(p)).sum(-1)
        np.testing.assert_allclose(value, B.to_numpy(R.smooth_max(B, x, alpha)) - entropy / alpha, rtol=1e-12)


def test_pairwise_max_within_its_bound_and_exact_for_two(backend64):
    B = backend64
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 5, 8, 11):
        x = rng.normal(size=(50, n))
        for alpha in (0.5, 5.0, 500.0):
            value = B.to_numpy(R.pairwise_max(B, B.asarray(x), alpha))
            levels = int(np.ceil(np.log2(n))) if n > 1 else 0
            assert np.all(value <= x.max(-1) + 1e-12)
            assert np.all(value >= x.max(-1) - levels / (2 * alpha) - 1e-12), (n, alpha)
    a, b, alpha = 0.3, -1.1, 2.0  # two entries: (a + b + sqrt((a-b)² + 1/α²) - 1/α) / 2
    expected = 0.5 * (a + b + np.sqrt((a - b) ** 2 + 1 / alpha ** 2) - 1 / alpha)
    np.testing.assert_allclose(B.to_numpy(R.pairwise_max(B, B.asarray(np.array([[a, b]])), alpha)), [expected],
                               rtol=1e-14)
