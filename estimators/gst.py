"""``gst``: the Gapped Straight-Through estimator [1], straight-through with a deterministic,
sample-dependent perturbation in place of ST Gumbel-softmax's Gumbel noise.

Categorical variables, logits θ [*b, *ev, K] (one variable per non-class axis). The sample is
the exact one, D = onehot(argmax(θ + G)) from the shared Gumbel noise G (the noise every
estimator reads: common random numbers with ST Gumbel-softmax). ST Gumbel-softmax [2]
differentiates softmax((θ + G)/τ), whose argmax is D; GST replaces G by a perturbation M that
is a function of (θ, D) alone, built to keep the two properties of ST-GS that [1] finds
essential (Sec. 4): the argmax of the perturbed logits is the sample, and the other classes sit
at least a gap κ below it. With m = max_k θ_k [1, Sec. 5]:

    M_1 = (m − θ_D) · D                       lifts the sampled logit to the maximum
    M_2 = relu(θ − m + κ) · (1 − D)           pushes every other logit to ≤ m − κ
    y   = softmax((θ + sg(M_1 − M_2)) / τ)    the relaxation, its argmax D
    z   = D + y − sg(y)                       D forward, ∂y backward (straight-through)

sg: stop-gradient. The gap κ (option ``gap``) is a number (``gap=1.0``: "GST-1.0" of [1]) or
``"p"`` ("GST-p"), κ = −log(1 − π_D)/π_D with π_D the probability of the sampled class (π_D
is capped at 1 − 1e-5, as the authors' code does, so that κ stays finite). Logits are used
as given: M depends on differences θ_k − m only, so normalizing θ changes nothing.

The estimate is ∂f/∂z · ∂y/∂θ at z = D: biased for every τ > 0 and κ (it differentiates a
relaxation, like ST-GS), with no resampling. f is evaluated once per sample, at the hard
sample, so the forward value is f(onehot(argmax(θ + G))) exactly: S evaluations of f per
estimate (the default ``evaluations``). f must accept relaxed points of the simplex in its
backward pass (it is called on z, whose value is one-hot).

Shapes: noise["sample"] [S, *b, *ev, K]; D, y, z [S, *b, *ev, K]; per-sample surrogate [S, *b].

[1] Fan, Chi, Rudnicky & Ramadge, Training Discrete Deep Generative Models via Gapped
    Straight-Through Estimator, ICML 2022.
[2] Jang, Gu & Poole, Categorical Reparameterization with Gumbel-Softmax, ICLR 2017.
"""
from __future__ import annotations

import math

from gradest.estimator import GradientEstimator, no_state
from gradest import relaxations as R
from gradest.registry import register_estimator

#: π_D is capped here in GST-p so that κ = −log(1 − π_D)/π_D stays finite (the authors' 1 − 1e-5)
GAP_P_CAP = 1.0 - 1e-5


def gapped_logits(B, logits, onehot, gap):
    """θ + sg(M_1 − M_2): the logits moved so that the sampled class is the maximum and every
    other class at least κ below it. ``logits`` [*value], ``onehot`` [S, *value] (the sample D);
    ``gap`` a positive float or "p". Returns [S, *value]; gradient flows to ``logits`` only
    through the unperturbed θ (the perturbation is constant)."""
    theta = B.stop_gradient(logits)  # [*value]
    top = B.max(theta, axis=-1, keepdims=True)  # [*value[:-1], 1]: m
    theta_d = B.sum(onehot * theta, axis=-1, keepdims=True)  # [S, *value[:-1], 1]: θ_D
    if gap == "p":
        pi_d = B.sum(onehot * B.softmax(theta, axis=-1), axis=-1, keepdims=True) * GAP_P_CAP  # [S, ..., 1]
        kappa = -B.log1p(-pi_d) / pi_d
    else:
        kappa = gap
    lift = (top - theta_d) * onehot  # [S, *value]: M_1
    push = B.relu(theta - top + kappa) * (1.0 - onehot)  # [S, *value]: M_2
    return logits + B.stop_gradient(lift - push)


@register_estimator("gst", variants=[{"gap": 1.0}, {"gap": "p"}])
def gst(temperature: float = 1.0, gap=1.0) -> GradientEstimator:
    """Gapped straight-through: ST with the deterministic gapped perturbation of (θ, sample); biased."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"option 'temperature' of gst must be a positive number (the τ of softmax((θ + M)/τ)), "
                         f"got {temperature!r}")
    if gap != "p" and (isinstance(gap, bool) or not isinstance(gap, (int, float))
                       or not (math.isfinite(gap) and gap > 0)):
        raise ValueError(f"option 'gap' of gst must be a positive number (GST-κ, e.g. 1.0) or 'p' (GST-p: "
                         f"κ = -log(1 - π_D)/π_D), got {gap!r}")
    tau = float(temperature)
    kappa = gap if gap == "p" else float(gap)

    def surrogate(f, dist, noise, state):
        B = dist.backend
        if dist.kind != "categorical":
            raise ValueError(f"gst supports categorical distributions, got {dist.kind}")
        hard = dist.sample(noise["sample"])  # [S, *value]: D
        soft = B.softmax(gapped_logits(B, dist.logits, hard, kappa) / tau, axis=-1)  # [S, *value]
        return f(R.straight_through(B, hard, soft)), state  # [S, *b]

    return GradientEstimator(
        init=no_state, surrogate=surrogate, supports=frozenset({"categorical"}), unbiased=False,
        name="gst", options={"temperature": tau, "gap": kappa})
