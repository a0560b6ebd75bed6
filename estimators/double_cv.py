"""``double_cv``: the double control variate estimator of Titsias & Shi [1] for Bernoulli
variables: REINFORCE with the leave-one-out baseline, the baseline itself corrected by a
global control variate, a Taylor expansion of f around the other samples.

With K = S samples b_k (the shared noise), p = σ(α), scores s_k = b_k - p (∇_α log q(b_k)),
f_k = f(b_k) and g_k = ∇_b f(b_k) (f's gradient with respect to its input, at the samples;
ḡ_-k the mean of the other K - 1, ḡ the mean of all K):

    lin_k  = a · ⟨ḡ_-k, s_k⟩                        the linear term of f around the others,
    v_k    = f_k + lin_k,                          v̄_-k the mean of the other K - 1 v_j,
    ĝ      = 1/K Σ_k (v_k - v̄_-k) s_k  -  a · ḡ ⊙ p (1 - p)       [1, eq. 13-15]

(⟨·,·⟩ over the event's coordinates, per batch element). The first control variate is the
leave-one-out baseline [2]; the second, a ⟨ḡ_-k, s_k⟩, has the closed-form expectation
E[lin_k s_k] = a E[ḡ] ⊙ p (1 - p) (the coordinates of s_k are independent with variance
p (1 - p)), which the last term subtracts, estimated with ḡ. Unbiased for every a: ḡ_-k does
not depend on b_k, the baseline v̄_-k depends on b_k only through terms ⟨g_k, s_j⟩ (j ≠ k) whose
mean given b_k is zero, and E ḡ = E g. At a = 0 it is REINFORCE-LOO.

The scale a is trainable: φ = [a] in ``state["phi"]`` (0 at ``init``), ``phi_loss`` = ‖ĝ‖²,
whose φ-gradient is an unbiased estimate of the gradient of the estimator's variance (E ĝ does
not depend on a), as [1]'s code trains it (and as RELAX trains its φ); `gradest.train` and the
φ warm-up of `gradient_samples` minimize it.

Needs f differentiable in its input (the Bernoulli VAE's decoder, the toy's polynomial): f and
∇_b f are computed together at the K samples by one value-and-gradient call, so an estimate
spends K = S evaluations of f (``evaluations``: S; the input gradient is a backward pass at the
same points, not a new point). ``min_samples`` 2. The per-sample surrogate's value is f(b_k),
its gradient ĝ pulled back to θ through the logits (plus ∇_θ f where f depends on θ directly).
Shapes: b, g, s [K, *value]; f, lin, v [K, *b].

[1] Titsias & Shi, Double Control Variates for Gradient Estimation in Discrete Latent Variable
    Models, AISTATS 2022.
[2] Kool, van Hoof & Welling, Buy 4 REINFORCE Samples, Get a Baseline for Free!, 2019.
"""
from __future__ import annotations

from gradest.estimator import GradientEstimator, linear_surrogate
from gradest.estimators._conditional import variance_phi_loss
from gradest.estimators.arm import expand_to
from gradest.estimators.reinforce import leave_one_out_mean
from gradest.registry import register_estimator


def value_and_input_grad(B, f, b):
    """(f(b) [K, *b], ∇_b Σ f(b) [K, *value]) from one call of f on b [K, *value]. f(b) keeps
    its dependence on θ (a decoder's weights); the input gradient is f's per batch element, each
    cost depending on its own element's variables."""

    def total(z):
        fz = f(z)
        return B.sum(fz), fz

    (_, fb), grad = B.value_and_grad(total, has_aux=True)(b)
    return fb, grad


def event_dot(B, dist, x, y):
    """Σ over the event axes of x * y: [K, *value] x [K, *value] -> [K, *b]."""
    prod = x * y
    axes = tuple(range(prod.ndim - len(dist.event_shape), prod.ndim))
    return B.sum(prod, axis=axes) if axes else prod


def samples_and_gradients(f, dist, noise):
    """(b [K, *value], s = b - p [K, *value], f(b) [K, *b], ∇_b f(b) [K, *value] without gradient)."""
    B = dist.backend
    b = dist.sample(noise["sample"])  # [K, *value]
    fb, grad = value_and_input_grad(B, f, b)
    p = B.sigmoid(B.stop_gradient(dist.logits))  # [*value]
    return b, b - p, fb, B.stop_gradient(grad)


def signal_surrogate(signal_at):
    """The surrogate of an estimator whose per-sample score signal comes from ``signal_at(f,
    dist, noise, phi) -> (f(b) [K, *b], signal [K, *value])`` at the state's φ: the mean f as
    its value, the signal times ∇logits as its gradient (double_cv's and rodeo's)."""

    def surrogate(f, dist, noise, state):
        fb, signal = signal_at(f, dist, noise, state["phi"])
        return linear_surrogate(dist.backend, fb, dist.params, {"logits": signal},
                                batch_ndim=len(dist.batch_shape)), state

    return surrogate


def double_cv_signal(B, dist, a, s, fb, grad):
    """ĝ_k [K, *value] (its mean over k is the estimate) at scale a (a scalar array)."""
    cost = B.stop_gradient(fb)  # [K, *b]
    p = B.sigmoid(B.stop_gradient(dist.logits))  # [*value]
    lin = a * event_dot(B, dist, leave_one_out_mean(B, grad), s)  # [K, *b]
    v = cost + lin  # [K, *b]
    weight = expand_to(B, v - leave_one_out_mean(B, v), s.ndim)  # [K, *b, 1..]
    correction = a * B.mean(grad, axis=0) * p * (1.0 - p)  # [*value]
    return weight * s - correction


@register_estimator("double_cv")
def double_cv() -> GradientEstimator:
    """Double control variates: LOO baseline + a learned-scale Taylor control variate (unbiased; S >= 2)."""

    def init(dist):
        return {"phi": dist.backend.zeros((1,))}

    def signal_at(f, dist, noise, phi):
        B = dist.backend
        _, s, fb, grad = samples_and_gradients(f, dist, noise)
        return fb, double_cv_signal(B, dist, phi[0], s, fb, grad)

    return GradientEstimator(init=init, surrogate=signal_surrogate(signal_at), supports=frozenset({"bernoulli"}),
                             unbiased=True, name="double_cv", options={}, min_samples=2, phi_loss=variance_phi_loss(signal_at))
