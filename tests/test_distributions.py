"""Distributions: samples are transforms of explicit noise with the right law; log_prob,
score, entropy and enumeration agree with direct computation."""
import numpy as np
import pytest
from scipy import stats

from gradest.distributions import Bernoulli, Categorical, Normal
from gradest import noise

LOGITS = np.array([1.0, -0.5, 0.0, 2.0])


def test_gumbel_max_frequencies_match_softmax(backend):
    """Chi-square goodness of fit of 20,000 Gumbel-max samples to softmax(logits) (p > 1e-3)."""
    B = backend
    dist = Categorical(B, B.asarray(LOGITS))
    n = 20000
    z = B.to_numpy(dist.sample(noise.draw(B, 0, "sample", "gumbel", (4,), 0, n)))
    assert z.shape == (n, 4) and set(np.unique(z)) == {0.0, 1.0} and np.all(z.sum(1) == 1)
    p = np.exp(LOGITS) / np.exp(LOGITS).sum()
    _, pvalue = stats.chisquare(z.sum(0), n * p)
    assert pvalue > 1e-3, (z.mean(0), p)


def test_bernoulli_frequencies(backend):
    B = backend
    dist = Bernoulli(B, B.asarray(LOGITS))
    n = 20000
    b = B.to_numpy(dist.sample(noise.draw(B, 0, "sample", "uniform", (4,), 0, n)))
    p = 1 / (1 + np.exp(-LOGITS))
    z = (b.mean(0) - p) / np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(z) < 4.0), z  # 4 standard errors, 4 coordinates


def test_normal_rsample_moments(backend):
    B = backend
    dist = Normal(B, B.asarray([1.0, -2.0]), B.asarray([0.0, np.log(3.0)]))
    n = 20000
    z = B.to_numpy(dist.rsample(noise.draw(B, 0, "sample", "normal", (2,), 0, n)))
    se = np.array([1.0, 3.0]) / np.sqrt(n)
    assert np.all(np.abs(z.mean(0) - [1.0, -2.0]) < 4 * se)
    assert np.all(np.abs(z.std(0) / [1.0, 3.0] - 1) < 0.05)


def test_log_prob_entropy_and_enumeration(backend64):
    B = backend64
    logits = np.array([[0.3, -1.0, 2.0], [0.0, 0.5, -0.5]])  # two variables, K = 3
    dist = Categorical(B, B.asarray(logits), event_ndims=1)
    assert dist.batch_shape == () and dist.event_shape == (2, 3)
    values = dist.enumerate_support()
    assert tuple(values.shape) == (9, 2, 3)
    logp = B.to_numpy(dist.log_prob(values))
    np.testing.assert_allclose(np.exp(logp).sum(), 1.0, rtol=1e-12)
    ref = stats.multinomial
    lp = np.log(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    want = [(B.to_numpy(values)[i] * lp).sum() for i in range(9)]
    np.testing.assert_allclose(logp, want, rtol=1e-12)
    ent = float(B.to_numpy(dist.entropy()))
    np.testing.assert_allclose(ent, -(np.exp(logp) * logp).sum(), rtol=1e-10)
    del ref

    bern = Bernoulli(B, B.asarray([0.2, -1.0, 0.7]), event_ndims=1)
    vals = bern.enumerate_support()
    assert tuple(vals.shape) == (8, 3)
    np.testing.assert_allclose(np.exp(B.to_numpy(bern.log_prob(vals))).sum(), 1.0, rtol=1e-12)

    normal = Normal(B, B.asarray([0.5]), B.asarray([np.log(2.0)]))
    x = B.asarray([[1.5], [-1.0]])
    np.testing.assert_allclose(B.to_numpy(normal.log_prob(x))[:, 0], stats.norm(0.5, 2.0).logpdf([1.5, -1.0]))
    np.testing.assert_allclose(float(B.to_numpy(normal.entropy())[0]), stats.norm(0.5, 2.0).entropy())


@pytest.mark.parametrize("kind", ["categorical", "bernoulli", "normal"])
def test_score_is_gradient_of_log_prob(backend64, kind):
    B = backend64
    rng = np.random.default_rng(1)
    if kind == "categorical":
        make = lambda p: Categorical(B, p["logits"])  # noqa: E731
        params = {"logits": rng.normal(size=4)}
        z = B.asarray(np.eye(4)[[2]])
    elif kind == "bernoulli":
        make = lambda p: Bernoulli(B, p["logits"], event_ndims=1)  # noqa: E731
        params = {"logits": rng.normal(size=3)}
        z = B.asarray([[1.0, 0.0, 1.0]])
    else:
        make = lambda p: Normal(B, p["mean"], p["log_std"], event_ndims=1)  # noqa: E731
        params = {"mean": rng.normal(size=2), "log_std": rng.normal(size=2)}
        z = B.asarray([[0.3, -0.7]])
    params = {k: B.asarray(v) for k, v in params.items()}
    score = make(params).score(z)
    for name in params:
        def logp(value, name=name):
            return B.sum(make({**params, name: value}).log_prob(z))
        want = B.to_numpy(B.grad(logp)(params[name]))
        np.testing.assert_allclose(B.to_numpy(score[name])[0], want, rtol=1e-10, atol=1e-12)


def test_enumeration_refuses_large_support(backend):
    B = backend
    dist = Categorical(B, B.zeros((20, 10)), event_ndims=1)
    with pytest.raises(ValueError, match="more than max_support"):
        dist.enumerate_support()


def test_with_params_keeps_event_axes(backend):
    B = backend
    dist = Bernoulli(B, B.zeros((2, 3)), event_ndims=1)
    other = dist.with_params({"logits": B.ones((2, 3))})
    assert other.event_ndims == 1 and other.batch_shape == (2,)
