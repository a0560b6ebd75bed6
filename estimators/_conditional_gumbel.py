"""Private helpers of the zoo estimators (Gumbel-Rao, IndeCateR, measure-valued derivative).

* `conditional_gumbel`: Gumbel noise G conditioned on the Gumbel-max sample, i.e. a draw of
  G | argmax(logits + G) = D, from explicit uniform noise ("top-down" sampling [1, 2]).
* `conditional_logistic`: the Bernoulli analogue, logistic noise L | 1[logits + L > 0] = b.
* `substitute_each`: f evaluated at copies of a sample in which one variable at a time is
  replaced by an alternative value (the per-variable sums of IndeCateR [3] and the per-coordinate
  positive/negative parts of measure-valued derivatives [4]).

All three are written over the `Backend` and never carry gradient: callers decide where
gradient flows.

Derivation of the conditional Gumbel (normalized log-probabilities l = log_softmax(logits),
p = exp(l), perturbed values x_k = l_k + G_k, chosen class b). The maximum x_b is standard
Gumbel and independent of the argmax, so x_b = -log E_b with E_b ~ Exp(1). Each other x_k is
Gumbel(l_k) truncated to x_k < x_b; its CDF there is exp(-p_k (e^{-x} - e^{-x_b})), and
inverting it at exp(-E_k) gives x_k = -log(E_k / p_k + E_b). We compute that as
-logsumexp(log E_k - l_k, log E_b) for stability with tiny p_k, and return G = x - l.

[1] Maddison, Tarlow & Minka, A* Sampling, NeurIPS 2014.
[2] Tucker, Mnih, Maddison, Lawson & Sohl-Dickstein, REBAR: Low-variance, unbiased gradient
    estimates for discrete latent variable models, NeurIPS 2017 (Appendix: conditional samples).
[3] De Smet, Sansone & Zuidberg Dos Martires, Differentiable Sampling of Categorical
    Distributions Using the CatLog-Derivative Trick, NeurIPS 2023.
[4] Mohamed, Rosca, Figurnov & Mnih, Monte Carlo Gradient Estimation in Machine Learning,
    JMLR 2020, Section 6.
"""
from __future__ import annotations

import numpy as np


def conditional_gumbel(B, logits, onehot, uniform):
    """Gumbel noise G [S, M, *value] such that argmax(logits + G) = ``onehot`` for each of the
    M draws, distributed as G | argmax. ``logits`` [*value] (last axis K), ``onehot`` [S, *value],
    ``uniform`` [S, M, *value] in (0, 1). No gradient flows to ``logits``."""
    logits = B.stop_gradient(logits)
    assert tuple(onehot.shape)[1:] == tuple(logits.shape), (
        f"sample {tuple(onehot.shape)} does not match logits {tuple(logits.shape)}")
    assert tuple(uniform.shape)[2:] == tuple(logits.shape) and uniform.shape[0] == onehot.shape[0], (
        f"conditional noise must be [S, M, *{tuple(logits.shape)}], got {tuple(uniform.shape)}")
    log_p = B.log_softmax(logits, axis=-1)  # [*value]
    log_e = B.log(-B.log(uniform))  # [S, M, *value]: log of Exp(1) draws
    d = B.expand_dims(onehot, 1)  # [S, 1, *value]
    log_e_top = B.sum(d * log_e, axis=-1, keepdims=True)  # [S, M, *value[:-1], 1]
    top = -log_e_top  # the maximum x_b, standard Gumbel
    pair = B.stack([log_e - log_p, B.broadcast_to(log_e_top, tuple(log_e.shape))], axis=0)
    others = -B.logsumexp(pair, axis=0)  # [S, M, *value]: x_k, truncated below the top
    x = B.where(d > 0.5, top, others)  # [S, M, *value]
    return x - log_p


def conditional_logistic(B, logits, sample, uniform):
    """Logistic noise L [S, M, *value] such that 1[logits + L > 0] = ``sample`` (0./1.) for each
    of the M draws, distributed as L | sample. ``uniform`` [S, M, *value] in (0, 1).

    With p = sigmoid(logits) and U the logistic CDF value of L: b = 1 means U > 1 - p, so
    U = 1 - p (1 - v); b = 0 means U = v (1 - p); L = log U - log(1 - U)."""
    logits = B.stop_gradient(logits)
    assert tuple(uniform.shape)[2:] == tuple(logits.shape), (
        f"conditional noise must be [S, M, *{tuple(logits.shape)}], got {tuple(uniform.shape)}")
    b = B.expand_dims(sample, 1)  # [S, 1, *value]
    v = uniform
    p = B.sigmoid(logits)
    q = B.sigmoid(-logits)
    # b = 1: log(1 - U) = log p + log(1 - v), log U = log(1 - p (1 - v))
    one = B.log1p(-p * (1.0 - v)) - (B.log_sigmoid(logits) + B.log1p(-v))
    # b = 0: log U = log v + log(1 - p), log(1 - U) = log(1 - v (1 - p))
    zero = (B.log(v) + B.log_sigmoid(-logits)) - B.log1p(-v * q)
    return B.where(b > 0.5, one, zero)


def substitute_each(B, f, base, alternatives, batch_ndim: int, var_shape, tail_ndim: int):
    """f at ``base`` with one variable at a time replaced by each alternative value.

    Shapes: ``base`` [S, *b, *var, *tail] (``tail`` the axes of one variable's value: (K,) for
    one-hot categoricals, () for scalars), ``alternatives`` [S or 1, M, *b, *var, *tail] (size-1
    axes broadcast). Returns F [S, M, *b, *var] without gradient, where F[s, m, i, j] is
    f(base[s] with variable j of every batch element replaced by alternatives[s, m])[i]:
    variable j is replaced in all batch elements at once, which is exact because batch elements
    are independent items (f's output at batch element i depends on that element's value only).
    f is evaluated at S * M * prod(var) points in one call."""
    var_shape = tuple(var_shape)
    S = base.shape[0]
    M = alternatives.shape[1]
    b_shape = tuple(base.shape[1:1 + batch_ndim])
    value_shape = tuple(base.shape[1:])
    n = int(np.prod(var_shape)) if var_shape else 1
    mask = np.eye(n, dtype=bool).reshape((1, n, 1) + (1,) * batch_ndim + var_shape + (1,) * tail_ndim)
    mask = B.asarray(mask)  # [1, n, 1, 1.., *var, 1..]
    base = B.stop_gradient(base)
    alternatives = B.stop_gradient(alternatives)
    z = B.where(mask, B.expand_dims(alternatives, 1), B.expand_dims(B.expand_dims(base, 1), 1))
    z = B.broadcast_to(z, (S, n, M) + value_shape)  # [S, n, M, *value]
    try:
        out = f(B.reshape(z, (S * n * M,) + value_shape))  # [S*n*M, *b]
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(
            f"this estimator evaluates the cost f at {S * n * M} points (S={S} samples x {n} variables x "
            f"{M} substituted values), and f failed on them: {err}. A cost with per-sample noise of its own "
            f"(e.g. bandit with reward_noise) only accepts [S, ...] inputs; use num_samples=1 or a task "
            f"without such noise") from err
    assert tuple(out.shape) == (S * n * M,) + b_shape, (
        f"f returned shape {tuple(out.shape)} for {S * n * M} points; expected [S', *{b_shape}]")
    out = B.moveaxis(B.reshape(out, (S, n, M) + b_shape), 1, -1)  # [S, M, *b, n]
    return B.stop_gradient(B.reshape(out, (S, M) + b_shape + var_shape))  # [S, M, *b, *var]
