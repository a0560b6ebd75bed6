"""``rodeo``: RODEO [1], REINFORCE-LOO with control variates from a discrete Stein operator,
adapted online, with no evaluation of f beyond the K samples.

**Stein operator [1, Sec. 3].** For the Gibbs sampler of q = Π_i Bernoulli(p_i) (pick a
coordinate i uniformly, redraw it from q_i), the generator

    (A h)(x) = 1/D Σ_i w_i(x) (h(x^(i)) - h(x)),    w_i(x) = q_i(1 - x_i) = p_i (1 - x_i) + (1 - p_i) x_i,

(x^(i): x with bit i flipped, D the variables of one event) has E_q[(A h)(x)] = 0 for every h
(the kernel leaves q invariant). Applied to h's that are cheap to evaluate (not f), it gives
zero-mean control variates that cost no evaluation of f.

**Estimate [1, eq. 12 and Sec. 4].** With K = S samples b_k (the shared noise), p = σ(α),
s_k = b_k - p, f_k = f(b_k), g_k = ∇_b f(b_k) (f's input gradient at the samples), and for
sample k the leave-one-out means over the other samples f̄_-k, ḡ_-k and c_-k = mean_{j≠k}
⟨g_j, b_j⟩, the control functions of sample k are a small network H_φ: R² -> R² of the first-
order expansion of f around the other samples ("avg" in [1]'s code), at a point y:

    lin_k(y) = ⟨ḡ_-k, y⟩ - c_-k = mean_{j≠k} ⟨g_j, y - b_j⟩,    (h⁰_k(y), h¹_k(y)) = H_φ(lin_k(y), f̄_-k),

so h_k depends on the other samples only. Then

    v_k  = f_k + (A h⁰_k)(b_k),                     v̄_-k the mean of the other K - 1 v_j,
    c_k  = (A [h¹_k ∇log q])(b_k)                   ∇log q(y) = y - p,
    ĝ    = 1/K Σ_k [ (f_k - v̄_-k) s_k + c_k ].

Unbiased for every φ: c_k has mean zero given the other samples (h¹_k does not depend on b_k);
v̄_-k holds (A h⁰_j)(b_j), j ≠ k, whose mean given every sample but b_j is zero, so it adds no
bias to the weight of s_k. At φ₀ (the network's output layer zero) h = 0 and RODEO is
REINFORCE-LOO exactly. [1] scales the two control variates by trainable scalars (α, β); here the
network's output layer carries those scales.

**Adapted online.** φ (the network: inputs [lin, f̄], ``hidden`` tanh units, 2 outputs; first
layer from the NumPy seed ``init_seed``, output layer zero; `gradest.estimators._mlp`) lives in
``state["phi"]``; ``phi_loss`` = ‖ĝ‖², whose φ-gradient is an unbiased estimate of the gradient
of the variance (E ĝ does not depend on φ), as [1]'s code trains it; `gradest.train` minimizes
it after each θ step and `gradient_samples` warms φ up at θ before measuring (as for RELAX).

The Stein terms need h at the D neighbours x^(i) of each sample, written in O(D) per sample
(lin_k(x^(i)) = lin_k(x) + ḡ_-k,i (1 - 2 x_i)). Needs f differentiable in its input (f and
∇_b f together from one value-and-gradient call at the samples): an estimate spends K = S
evaluations of f (``evaluations``: S). ``min_samples`` 2. The per-sample surrogate's value is
f(b_k), its gradient ĝ pulled back to θ through the logits (plus ∇_θ f where f depends on θ).
Shapes: b, s, g [K, *value]; f, lin_k(b_k) [K, *b]; H at the neighbours [K, *value, 2].

[1] Shi, Zhou, Hwang, Titsias & Mackey, Gradient Estimation with Discrete Stein Operators,
    NeurIPS 2022 (arXiv:2202.09497).
[2] Titsias & Shi, Double Control Variates for Gradient Estimation in Discrete Latent Variable
    Models, AISTATS 2022.
"""
from __future__ import annotations

import numpy as np

from gradest.estimator import GradientEstimator
from gradest.estimators._conditional import variance_phi_loss
from gradest.estimators._mlp import mlp_apply, mlp_init
from gradest.estimators.arm import expand_to
from gradest.estimators.double_cv import event_dot, samples_and_gradients, signal_surrogate
from gradest.estimators.reinforce import leave_one_out_mean
from gradest.registry import register_estimator

#: the network's inputs: the linearization lin_k(y) and the others' mean cost f̄_-k
INPUTS = 2
#: its outputs: h⁰ (the baseline's control variate) and h¹ (the score's)
OUTPUTS = 2


def event_mean(B, dist, x):
    """Mean over the event axes: [K, *value] -> [K, *b]."""
    axes = tuple(range(x.ndim - len(dist.event_shape), x.ndim))
    return B.mean(x, axis=axes) if axes else x


def rodeo_signal(B, dist, phi, b, s, fb, grad, hidden: int):
    """ĝ_k [K, *value] (its mean over k is the estimate) for the network φ."""
    cost = B.stop_gradient(fb)  # [K, *b]
    p = B.sigmoid(B.stop_gradient(dist.logits))  # [*value]
    g_others = leave_one_out_mean(B, grad)  # [K, *value]: ḡ_-k
    c_others = leave_one_out_mean(B, event_dot(B, dist, grad, b))  # [K, *b]
    f_others = leave_one_out_mean(B, cost)  # [K, *b]
    lin_x = event_dot(B, dist, g_others, b) - c_others  # [K, *b]
    ndim = b.ndim
    lin_nbr = expand_to(B, lin_x, ndim) + g_others * (1.0 - 2.0 * b)  # [K, *value]
    f_wide = expand_to(B, f_others, ndim) + B.zeros(tuple(b.shape))  # [K, *value]
    h_x = mlp_apply(B, phi, B.stack([lin_x, f_others], axis=-1), INPUTS, hidden, OUTPUTS)  # [K, *b, 2]
    h_nbr = mlp_apply(B, phi, B.stack([lin_nbr, f_wide], axis=-1), INPUTS, hidden, OUTPUTS)  # [K, *value, 2]
    w = p * (1.0 - b) + (1.0 - p) * b  # [K, *value]: q_i(flipped x_i)
    h0_x, h1_x = expand_to(B, h_x[..., 0], ndim), expand_to(B, h_x[..., 1], ndim)  # [K, *b, 1..]
    stein0 = event_mean(B, dist, w * (h_nbr[..., 0] - h0_x))  # [K, *b]: (A h⁰_k)(b_k)
    # (A [h¹ ∇log q])(b)_d = 1/D [s_d Σ_i w_i (h¹(b^(i)) - h¹(b)) + w_d h¹(b^(d)) (1 - 2 b_d)]
    h1_nbr = h_nbr[..., 1]  # [K, *value]
    spread = expand_to(B, event_mean(B, dist, w * (h1_nbr - h1_x)), ndim)  # [K, *b, 1..]: 1/D Σ_i
    D = int(np.prod(dist.event_shape)) if len(dist.event_shape) else 1
    stein1 = s * spread + w * h1_nbr * (1.0 - 2.0 * b) / D  # [K, *value]
    v = cost + stein0  # [K, *b]
    weight = expand_to(B, cost - leave_one_out_mean(B, v), ndim)  # [K, *b, 1..]
    return weight * s + stein1


@register_estimator("rodeo")
def rodeo(hidden: int = 16, init_seed: int = 0) -> GradientEstimator:
    """RODEO: REINFORCE-LOO + Gibbs-Stein control variates of a trained network, no extra f evaluations (unbiased; S >= 2)."""
    if isinstance(hidden, bool) or not isinstance(hidden, (int, np.integer)) or hidden < 0:
        raise ValueError(f"option 'hidden' of rodeo must be a non-negative integer (tanh units of the control "
                         f"network; 0 for a linear one), got {hidden!r}")
    if isinstance(init_seed, bool) or not isinstance(init_seed, (int, np.integer)):
        raise ValueError(f"option 'init_seed' of rodeo must be an integer, got {init_seed!r}")
    hidden, init_seed = int(hidden), int(init_seed)

    def init(dist):
        return {"phi": dist.backend.asarray(mlp_init(INPUTS, hidden, init_seed, outputs=OUTPUTS))}

    def signal_at(f, dist, noise, phi):
        B = dist.backend
        b, s, fb, grad = samples_and_gradients(f, dist, noise)
        return fb, rodeo_signal(B, dist, phi, b, s, fb, grad, hidden)

    return GradientEstimator(init=init, surrogate=signal_surrogate(signal_at), supports=frozenset({"bernoulli"}), unbiased=True,
                             name="rodeo", options={"hidden": hidden, "init_seed": init_seed}, min_samples=2,
                             phi_loss=variance_phi_loss(signal_at))
