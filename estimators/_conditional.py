"""Conditional relaxations and the REBAR/RELAX surrogate, written once over the Backend
(private helper of ``rebar`` and ``relax``).

Notation, for a Bernoulli or categorical distribution with logits α and S samples:

* ``z`` [S, *value]: the continuous variable whose hard threshold is the exact sample,
  reparameterized by the distribution's own noise (``noise["sample"]``) so that it carries
  gradient to α. Bernoulli: z = α + L, L = log(1 - u) - log(u) logistic, b = 1[z > 0] =
  1[u < σ(α)] (the distribution's own sample). Categorical: z = log softmax(α) + G, G Gumbel,
  b = onehot(argmax z) (shifting every class by logsumexp(α) changes neither b nor
  softmax(z/λ)).
* ``z̃`` [S, *value]: a sample of z given b, reparameterized by a second uniform v
  (``noise["conditional"]``), carrying gradient to α with b held fixed [1, 2]:

  - Bernoulli, p = σ(α): b = 1: z̃ = log(1 - p + v p) - log(1 - p) - log(1 - v);
    b = 0: z̃ = log p + log v - log(1 - v (1 - p)). (The logistic L conditioned on
    L > -α, resp. L < -α, by inverting its CDF σ at v.)
  - Categorical, θ = softmax(α): z̃_b = -log(-log v_b) and, for k ≠ b,
    z̃_k = -log(-log v_b - log(v_k) / θ_k) (the maximum of Gumbels with locations log θ
    is a standard Gumbel independent of the argmax; the others are Gumbels truncated below it).
* ``σ_λ(z)``: the relaxation at temperature λ: sigmoid(z/λ) or softmax(z/λ) [3, 4].

Given a control variate c(z) (REBAR: η f(σ_λ(z)); RELAX: η f(σ_λ(z)) + r_ρ(z)), the estimator
of [1, 2] is

    ĝ = [f(b) - c(z̃)] ∇ log p(b) + ∇ c(z) - ∇ c(z̃),

unbiased for every c that is differentiable in z: z̃ given b has the law of z given b, and
E_b[∇_α E[c(z̃) | b]] + E[c(z̃) ∇ log p(b)] = ∇_α E[c(z)] = E[∇ c(z)], so the control-variate
terms have mean zero.

`relaxed_signal` computes each sample's ĝ with respect to the logits as one gradient (taken
with respect to a copy of the logits per sample, so f's own parameters, e.g. a decoder's, get
no gradient from the relaxed evaluations), and `relaxed_surrogate` turns it into the
per-sample surrogate (value f(b); gradient ∇f(b) where f depends on θ directly, plus ĝ pulled
back through the logits; `gradest.estimator.linear_surrogate`). The weight f(b) - c(z̃)
multiplies log p - sg(log p), which is zero in value, so it needs no stop_gradient and its
dependence on the control variate's parameters φ survives for the second-order gradient that
`variance_phi_loss` takes (the variance of ĝ as a function of φ, as RELAX trains c [2]).

[1] Tucker, Mnih, Maddison, Lawson & Sohl-Dickstein, REBAR: Low-variance, unbiased gradient
    estimates for discrete latent variable models, NeurIPS 2017.
[2] Grathwohl, Choi, Wu, Roeder & Duvenaud, Backpropagation through the Void: Optimizing
    control variates for black-box gradient estimation, ICLR 2018.
[3] Maddison, Mnih & Teh, The Concrete Distribution, ICLR 2017.
[4] Jang, Gu & Poole, Categorical Reparameterization with Gumbel-Softmax, ICLR 2017.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from gradest.estimator import NoiseSpec, linear_surrogate, sample_noise_spec
from gradest.validation import positive

#: distribution kinds with a conditional relaxation here
CONDITIONAL_KINDS = frozenset({"bernoulli", "categorical"})


def relaxed_evaluations(num_samples: int, dist=None) -> int:
    """3S: each sample evaluates f at b, and the control variate evaluates f at σ_λ(z) and at
    σ_λ(z̃) (`relaxed_signal`); φ's training (``phi_loss``) spends its own, not counted here."""
    return 3 * num_samples


def conditional_noise_spec(dist, num_samples: int) -> dict[str, NoiseSpec]:
    """The distribution's own noise ("sample") and one uniform v per variable ("conditional")."""
    spec = dict(sample_noise_spec(dist, num_samples))
    spec["conditional"] = NoiseSpec((num_samples, *dist.value_shape), "uniform")
    return spec


def _logaddexp(B, a, b):
    """log(exp(a) + exp(b)), stably."""
    return B.maximum(a, b) + B.log1p(B.exp(-B.abs(a - b)))


def _check_kind(dist, who: str) -> None:
    if dist.kind not in CONDITIONAL_KINDS:
        raise ValueError(f"{who} needs a bernoulli or categorical distribution, got {dist.kind!r}")


def continuous(dist, sample_noise):
    """z [S, *value]: the continuous variable whose threshold / argmax is the exact sample,
    from the distribution's own noise, with gradient to the logits. ``dist`` may have logits
    with a leading S axis (one copy per sample) or not."""
    _check_kind(dist, "continuous")
    B = dist.backend
    if dist.kind == "bernoulli":
        return dist.logits + B.log1p(-sample_noise) - B.log(sample_noise)  # [S, *value]
    return dist.log_probs() + sample_noise  # [S, *value]


def perturbed(dist, sample_noise):
    """(b, z): the exact sample [S, *value] (no gradient) and its continuous z [S, *value]
    (gradient to the logits), both from the distribution's own noise."""
    b = dist.backend.stop_gradient(dist.sample(sample_noise))  # [S, *value]
    return b, continuous(dist, sample_noise)


def conditional(dist, b, v):
    """z̃ ~ p(z | b) [S, *value] from uniforms ``v`` [S, *value], with gradient to the logits
    (b held fixed)."""
    _check_kind(dist, "conditional")
    B = dist.backend
    if dist.kind == "bernoulli":
        log_p = B.log_sigmoid(dist.logits)  # [*value]
        log_q = B.log_sigmoid(-dist.logits)  # [*value], log(1 - p)
        log_v, log_1mv = B.log(v), B.log1p(-v)  # [S, *value]
        on = _logaddexp(B, log_q, log_p + log_v) - log_q - log_1mv  # b = 1: z̃ > 0
        off = log_p + log_v - _logaddexp(B, log_1mv, log_v + log_p)  # b = 0: z̃ < 0
        return B.where(b > 0.5, on, off)
    log_theta = dist.log_probs()  # [*value]
    top = B.log(-B.log(v))  # [S, *value], log(-log v_k)
    top_b = B.sum(b * top, axis=-1, keepdims=True)  # [S, *value[:-1], 1], log(-log v_b)
    others = -_logaddexp(B, top_b, top - log_theta)  # [S, *value]
    return B.where(b > 0.5, -top_b, others)


def relax(dist, z, temperature):
    """σ_λ(z): sigmoid(z/λ) (Bernoulli) or softmax(z/λ) over the classes (categorical).

    ``temperature`` may be a number or a backend scalar (a trained log-temperature's exp)."""
    B = dist.backend
    if dist.kind == "bernoulli":
        return B.sigmoid(z / temperature)
    return B.softmax(z / temperature, axis=-1)


def relaxed_signal(f, dist, noise, control: Callable):
    """(f(b) [S, *b], signal [S, *logits.shape]): the cost at the exact samples and each
    sample's estimate ĝ_s with respect to the logits.

    ``control(z) -> [S, *b]`` is the control variate c (it may depend on φ), evaluated at z and
    z̃. The signal is the gradient, with respect to one copy of the logits per sample, of
    Σ_s [w_s (log p(b_s) - sg log p(b_s)) + c(z_s) - c(z̃_s)], w = f(b) - c(z̃): taken with
    respect to the distribution's parameters only, so where f itself depends on θ (a decoder)
    the relaxed evaluations add nothing to that part of the gradient. w is not wrapped in
    stop_gradient: it multiplies a term that is zero in value, so the signal is the same, and
    its dependence on φ survives for `variance_phi_loss`."""
    B = dist.backend
    u, v = noise["sample"], noise["conditional"]  # [S, *value] each
    b = B.stop_gradient(dist.sample(u))  # [S, *value]
    fb = f(b)  # [S, *b]
    fixed = {k: B.stop_gradient(x) for k, x in dist.params.items()}
    S = int(u.shape[0])

    def total(logits):  # logits [S, *value]: one copy per sample
        copy = dist.with_params({**fixed, "logits": logits})
        z = continuous(copy, u)  # [S, *value]
        z_tilde = conditional(copy, b, v)  # [S, *value]
        log_p = copy.log_prob(b)  # [S, *b]
        c_z, c_tilde = control(z), control(z_tilde)  # [S, *b] each
        assert tuple(fb.shape) == tuple(log_p.shape) == tuple(c_z.shape), (
            f"f(b) {tuple(fb.shape)}, log p(b) {tuple(log_p.shape)} and c(z) {tuple(c_z.shape)} must all "
            "be [S, *batch_shape]")
        weight = B.stop_gradient(fb) - c_tilde  # [S, *b]
        return B.sum(weight * (log_p - B.stop_gradient(log_p)) + c_z - c_tilde)

    copies = B.zeros((S, *fixed["logits"].shape)) + fixed["logits"]  # [S, *value]
    return fb, B.grad(total)(copies)


def relaxed_surrogate(f, dist, noise, control: Callable):
    """Per-sample surrogate [S, *b] of the estimator ĝ above: value f(b), gradient ∇f(b) (where
    f depends on θ directly) plus the mean signal pulled back through the logits."""
    fb, signal = relaxed_signal(f, dist, noise, control)
    return linear_surrogate(dist.backend, fb, dist.params, {"logits": signal},
                            batch_ndim=len(dist.batch_shape))


def flat_event(dist, z):
    """z [S, *batch, *event] -> [S, *batch, d], d the number of entries of one event."""
    d = int(np.prod(dist.event_shape)) if len(dist.event_shape) else 1
    return dist.backend.reshape(z, (int(z.shape[0]), *dist.batch_shape, d))


def event_width(dist) -> int:
    return int(np.prod(dist.event_shape)) if len(dist.event_shape) else 1


def variance_phi_loss(signal_at: Callable) -> Callable:
    """``phi_loss(phi, f, dist, noise, state)``: ‖ĝ‖², ĝ = mean_s signal_s the estimate with
    respect to the logits at φ.

    ``signal_at(f, dist, noise, phi) -> (f(b), signal [S, *logits.shape])``. E‖ĝ‖² =
    ‖∇L‖² + tr Cov ĝ and E ĝ does not depend on φ for an unbiased estimator, so the gradient of
    this loss with respect to φ is an unbiased estimate of the gradient of the variance
    (a second-order gradient: ĝ is itself a gradient) [2]."""

    def phi_loss(phi, f, dist, noise, state):
        B = dist.backend
        _, signal = signal_at(f, dist, noise, phi)  # [S, *logits.shape]
        g = B.mean(signal, axis=0)  # [*logits.shape]
        return B.sum(g * g)

    return phi_loss


def check_temperature(temperature, who: str) -> float:
    return positive("temperature", temperature, owner=who)


def check_eta(eta, who: str) -> float:
    try:
        value = float(eta)
    except (TypeError, ValueError) as err:
        raise ValueError(f"option 'eta' of {who} must be a finite number (the control variate's "
                         f"scale, 1.0 by default), got {eta!r}") from err
    if not math.isfinite(value):
        raise ValueError(f"option 'eta' of {who} must be a finite number, got {eta!r}")
    return value
