"""The torch and jax backends implement the same interface with the same semantics."""
import inspect

import numpy as np
import pytest

from gradest.backends.base import Backend
from gradest import noise

RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, 4))
IDX = RNG.integers(0, 4, size=(3, 1))


def _abstract_methods():
    return sorted(name for name, fn in inspect.getmembers(Backend, inspect.isfunction)
                  if getattr(fn, "__isabstractmethod__", False))


def test_both_backends_implement_every_method(backend):
    for name in _abstract_methods():
        method = getattr(type(backend), name)
        assert not getattr(method, "__isabstractmethod__", False), f"{backend.name} lacks {name}"


def _np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


OPS = {
    "softmax": (lambda B, x: B.softmax(x, axis=-1), lambda x: _np_softmax(x)),
    "log_softmax": (lambda B, x: B.log_softmax(x, axis=0), lambda x: np.log(_np_softmax(x, 0))),
    "logsumexp": (lambda B, x: B.logsumexp(x, axis=1, keepdims=True),
                  lambda x: np.log(np.exp(x).sum(1, keepdims=True))),
    "softplus": (lambda B, x: B.softplus(x), lambda x: np.log1p(np.exp(x))),
    "log_sigmoid": (lambda B, x: B.log_sigmoid(x), lambda x: -np.log1p(np.exp(-x))),
    "one_hot": (lambda B, x: B.one_hot(B.argmax(x, axis=-1), 4), lambda x: np.eye(4)[x.argmax(-1)]),
    "take_along_axis": (lambda B, x: B.take_along_axis(x, B.asarray(IDX), axis=1),
                        lambda x: np.take_along_axis(x, IDX, axis=1)),
    "where": (lambda B, x: B.where(x > 0, x, 0.0 * x), lambda x: np.where(x > 0, x, 0.0)),
    "sum_axes": (lambda B, x: B.sum(x, axis=(0, 1)), lambda x: x.sum()),
    "max": (lambda B, x: B.max(x, axis=0), lambda x: x.max(0)),
    "moveaxis": (lambda B, x: B.moveaxis(x, 0, 1), lambda x: np.moveaxis(x, 0, 1)),
    "einsum": (lambda B, x: B.einsum("ij,kj->ik", x, x), lambda x: x @ x.T),
    "erf": (lambda B, x: B.erf(x), None),
    "broadcast_to": (lambda B, x: B.broadcast_to(x[0], (2, 4)), lambda x: np.broadcast_to(x[0], (2, 4))),
}


@pytest.mark.parametrize("op", sorted(OPS))
def test_ops_match_numpy(backend64, op):
    fn, ref = OPS[op]
    got = backend64.to_numpy(fn(backend64, backend64.asarray(X)))
    if ref is None:
        from math import erf

        want = np.vectorize(erf)(X)
    else:
        want = ref(X)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_dtypes(backend_name):
    from gradest.backends import get_backend

    for dtype in ("float32", "float64"):
        B = get_backend(backend_name, dtype=dtype)
        assert B.to_numpy(B.asarray([1.0])).dtype == np.dtype(dtype)
        assert B.to_numpy(noise.draw(B, 0, "s", "normal", (2,), 0, 3)).dtype == np.dtype(dtype)
        assert B.to_numpy(B.asarray([1, 2])).dtype.kind == "i"


def test_grad_vmap_jit(backend):
    B = backend

    def f(w, x):  # scalar
        return B.sum(B.softplus(w * x)), w * 2.0

    w = B.asarray([0.5, -1.0])
    xs = B.asarray(np.arange(6.0).reshape(3, 2))
    per_x = B.jit(B.vmap(B.grad(f, has_aux=True), in_axes=(None, 0)))
    grads, aux = per_x(w, xs)
    sig = 1 / (1 + np.exp(-np.array([0.5, -1.0]) * np.arange(6.0).reshape(3, 2)))
    np.testing.assert_allclose(B.to_numpy(grads), sig * np.arange(6.0).reshape(3, 2), rtol=1e-5)
    assert B.to_numpy(aux).shape == (3, 2)
    (value, _), g = B.value_and_grad(f, has_aux=True)(w, xs[1])
    np.testing.assert_allclose(B.to_numpy(g), B.to_numpy(grads[1]), rtol=1e-6)
    assert np.isfinite(float(B.to_numpy(value)))
    assert B.to_numpy(B.stop_gradient(w)).tolist() == [0.5, -1.0]


@pytest.mark.parametrize("kind", ["uniform", "normal", "gumbel"])
def test_noise_is_deterministic_distinct_and_right(backend, kind):
    B = backend
    a = B.to_numpy(noise.draw(B, 3, "estimator/sample", kind, (10,), 0, 2000))
    b = B.to_numpy(noise.draw(B, 3, "estimator/sample", kind, (10,), 0, 2000))
    c = B.to_numpy(noise.draw(B, 4, "estimator/sample", kind, (10,), 0, 2000))
    d = B.to_numpy(noise.draw(B, 3, "other", kind, (10,), 0, 2000))
    e = B.to_numpy(noise.draw(B, 3, "estimator/sample", kind, (10,), 2000, 2000))
    assert a.shape == (2000, 10)
    np.testing.assert_array_equal(a, b)
    for other in (c, d, e):
        assert not np.allclose(a, other)
    n = a.size
    # moments within 5 standard errors of the exact ones
    mean, var = {"uniform": (0.5, 1 / 12), "normal": (0.0, 1.0),
                 "gumbel": (np.euler_gamma, np.pi**2 / 6)}[kind]
    assert abs(a.mean() - mean) < 5 * np.sqrt(var / n)
    if kind == "uniform":
        assert a.min() > 0 and a.max() < 1


def test_unknown_noise_law(backend):
    with pytest.raises(ValueError, match="unknown noise law 'cauchy'; known laws: uniform, normal, gumbel"):
        noise.draw(backend, 0, "s", "cauchy", (1,), 0, 1)


def test_value_and_grad_layout_without_aux(backend):
    B = backend
    value, g = B.value_and_grad(lambda w: B.sum(w * w))(B.asarray([1.0, -2.0]))
    assert float(B.to_numpy(value)) == 5.0
    np.testing.assert_allclose(B.to_numpy(g), [2.0, -4.0])


def test_split_cuts_axis_0_and_its_gradient_is_the_pieces(backend):
    B = backend
    x = B.asarray(np.arange(6.0))
    a, b, c = B.split(x, [1, 3, 2])
    assert [B.to_numpy(p).tolist() for p in (a, b, c)] == [[0.0], [1.0, 2.0, 3.0], [4.0, 5.0]]
    g = B.grad(lambda v: B.sum(B.split(v, [2, 4])[1] * 3.0) + B.sum(B.split(v, [2, 4])[0]))(x)
    assert B.to_numpy(g).tolist() == [1.0, 1.0, 3.0, 3.0, 3.0, 3.0]


# ---- the thread policy of vectorized replicate calls (`Backend.replicate_call`) ---------------
def test_torch_replicate_calls_run_on_one_thread_and_restore_torchs_setting():
    """A replicate call runs with the backend's count (default 1) whatever torch's process
    setting is, restores that setting, and yields to an enclosing `threads(count)`;
    `thread_count` says which count a replicate call uses."""
    torch = pytest.importorskip("torch")
    from gradest.backends import get_backend

    B = get_backend("torch")
    seen = B.replicate_call(lambda: torch.get_num_threads())
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        assert (seen(), torch.get_num_threads(), B.thread_count()) == (1, 3, 1)
        with B.threads(2):  # timed calls: their own count holds, and is the one recorded
            assert (seen(), B.thread_count()) == (2, 2)
        assert B.thread_count() == 1
        assert get_backend("torch", threads=None).replicate_call(lambda: torch.get_num_threads())() == 3
        assert get_backend("torch", threads=2).replicate_call(lambda: torch.get_num_threads())() == 2
        assert get_backend("torch", threads=None).thread_count() == 3
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [0, -1, 1.5, "many", True])
def test_torch_threads_option_is_checked(threads):
    pytest.importorskip("torch")
    from gradest.backends import get_backend

    with pytest.raises(ValueError, match=r"threads=.*is 'auto' .*None .*or an integer >= 1"):
        get_backend("torch", threads=threads)


def test_timed_calls_record_the_policys_count():
    """`time_per_estimate(threads=None)` times the replicate call as `run` makes it (torch: on
    the policy's one thread) and records that count; an explicit count is recorded as given."""
    torch = pytest.importorskip("torch")
    from gradest.sampler import GradientSampler

    sampler = GradientSampler("bandit", "reinforce", backend="torch", chunk_size=64)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert sampler.time_per_estimate(repeats=1, threads=None).threads == 1
        assert sampler.time_per_estimate(repeats=1, threads=2).threads == 2
    finally:
        torch.set_num_threads(before)
