"""Smooth relaxations of non-differentiable operations, each with a temperature.

Each function takes the `Backend` first and works on arrays of any shape (the relaxed axis
last where there is one). The limits are the exact operations, tested in
``tests/test_relaxations.py``:

* ``softmax_argmax(x, T)  = softmax(x / T)``          -> onehot(argmax x)      as T -> 0
* ``smooth_max(x, alpha)  = logsumexp(alpha x) / alpha`` -> max x              as alpha -> inf
  (its gradient is softmax(alpha x)); ``smooth_min`` likewise for the min;
  max ≤ smooth_max ≤ max + log(n)/alpha
* ``softmax_weighted_max(x, alpha) = Σ_i softmax(alpha x)_i x_i`` (the Boltzmann operator [4])
  -> max x; max - log(n)/alpha ≤ . ≤ max, since it equals smooth_max - H(softmax(alpha x))/alpha
* ``pairwise_max(x, alpha)``: a balanced tree of the two-argument form
  max(a, b) = (a + b + |a - b|) / 2 with |d| smoothed to sqrt(d² + 1/alpha²) - 1/alpha (each
  pair under its max by at most 1/(2 alpha), and monotone) -> max x;
  max - ceil(log2 n)/(2 alpha) ≤ . ≤ max
* ``smooth_relu(x, beta)  = softplus(beta x) / beta``  -> max(x, 0)            as beta -> inf
* ``huber(x, delta)``: x²/(2δ) for |x| <= δ, |x| - δ/2 outside  -> |x|    as δ -> 0
  (so Σ huber(w_i, δ) is a smooth L1 norm)
* ``smooth_abs(x, eps)    = sqrt(x² + eps²) - eps``    -> |x|                  as eps -> 0
* ``gumbel_softmax(logits, gumbel, tau)`` = softmax((logits + G)/tau) [1, 2], the relaxation of
  the Gumbel-max sample onehot(argmax(logits + G))
* ``binary_concrete(logits, u, tau)`` = sigmoid((logits + log(1-u) - log u)/tau) [2], the
  relaxation of the Bernoulli sample 1[u < sigmoid(logits)]
* ``straight_through(hard, soft)`` = hard + soft - stop_gradient(soft): hard forward, the
  soft gradient backward [3].

[1] Jang, Gu & Poole, Categorical Reparameterization with Gumbel-Softmax, ICLR 2017.
[2] Maddison, Mnih & Teh, The Concrete Distribution, ICLR 2017.
[3] Bengio, Léonard & Courville, Estimating or Propagating Gradients Through Stochastic
    Neurons for Conditional Computation, 2013.
[4] Asadi & Littman, An Alternative Softmax Operator for Reinforcement Learning, ICML 2017.
"""
from __future__ import annotations

__all__ = ["softmax_argmax", "smooth_max", "smooth_min", "softmax_weighted_max", "pairwise_max", "smooth_relu", "huber", "smooth_abs", "gumbel_softmax",
           "logistic_from_uniform", "binary_concrete", "straight_through", "hard_argmax"]


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return float(value)


def softmax_argmax(B, x, temperature: float = 1.0, axis: int = -1):
    """softmax(x / T): the relaxed onehot(argmax x)."""
    return B.softmax(x / _positive("temperature", temperature), axis=axis)


def smooth_max(B, x, alpha: float = 1.0, axis: int = -1, keepdims: bool = False):
    """logsumexp(alpha x) / alpha: an upper bound of max x within log(n)/alpha."""
    alpha = _positive("alpha", alpha)
    return B.logsumexp(alpha * x, axis=axis, keepdims=keepdims) / alpha


def smooth_min(B, x, alpha: float = 1.0, axis: int = -1, keepdims: bool = False):
    """-logsumexp(-alpha x) / alpha."""
    return -smooth_max(B, -x, alpha, axis=axis, keepdims=keepdims)


def softmax_weighted_max(B, x, alpha: float = 1.0, axis: int = -1):
    """Σ_i softmax(alpha x)_i x_i: a lower bound of max x within log(n)/alpha [4]."""
    alpha = _positive("alpha", alpha)
    return B.sum(B.softmax(alpha * x, axis=axis) * x, axis=axis)


def pairwise_max(B, x, alpha: float = 1.0):
    """max over the last axis by a balanced tree of smoothed two-argument maxima
    (a + b + smooth_abs(a - b, 1/alpha)) / 2: below max x by at most ceil(log2 n)/(2 alpha)."""
    eps = 1.0 / _positive("alpha", alpha)
    while x.shape[-1] > 1:
        n = x.shape[-1]
        a, b = x[..., 0:n - 1:2], x[..., 1:n:2]  # [..., n // 2] each
        pairs = 0.5 * (a + b + smooth_abs(B, a - b, eps))
        x = B.concatenate([pairs, x[..., n - 1:]], axis=-1) if n % 2 else pairs  # the odd one out waits a level
    return x[..., 0]


def smooth_relu(B, x, beta: float = 1.0):
    """softplus(beta x) / beta, above max(x, 0) by at most log(2)/beta."""
    beta = _positive("beta", beta)
    return B.softplus(beta * x) / beta


def huber(B, x, delta: float = 1.0):
    """The Huber function of width δ scaled to slope 1: x²/(2δ) inside, |x| - δ/2 outside."""
    delta = _positive("delta", delta)
    a = B.abs(x)
    return B.where(a <= delta, x * x / (2.0 * delta), a - 0.5 * delta)


def smooth_abs(B, x, eps: float = 1e-3):
    """sqrt(x² + eps²) - eps: smooth everywhere, |x| - eps <= . <= |x|."""
    eps = _positive("eps", eps)
    return B.sqrt(x * x + eps * eps) - eps


def gumbel_softmax(B, logits, gumbel, temperature: float = 1.0):
    """softmax((logits + G) / tau) [1, 2]."""
    return B.softmax((logits + gumbel) / _positive("temperature", temperature), axis=-1)


def logistic_from_uniform(B, u):
    """log(1 - u) - log(u): standard logistic noise, so that 1[l + L > 0] = 1[u < sigmoid(l)]."""
    return B.log1p(-u) - B.log(u)


def binary_concrete(B, logits, u, temperature: float = 1.0):
    """sigmoid((logits + L) / tau), L logistic from ``u`` [2]."""
    return B.sigmoid((logits + logistic_from_uniform(B, u)) / _positive("temperature", temperature))


def straight_through(B, hard, soft):
    """``hard`` forward, ∂soft backward [3]."""
    return hard + soft - B.stop_gradient(soft)


def hard_argmax(B, soft):
    """onehot(argmax) along the last axis, without gradient."""
    return B.one_hot(B.argmax(B.stop_gradient(soft), axis=-1), soft.shape[-1])
