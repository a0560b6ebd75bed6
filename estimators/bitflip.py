"""``bitflip``: the bitflip-1 estimator of Kunes et al. [1] and its per-coordinate combination
with DisARM [2], UGC ("unbiased gradient variance clipping" [1]).

For independent b_i ~ Bernoulli(p_i), p = σ(α), the exact gradient is, coordinate by coordinate,

    ∂L/∂α_i = p_i (1 - p_i) E_{b_-i}[ f(b_-i, b_i = 1) - f(b_-i, b_i = 0) ]

(the local expectation over b_i, taken exactly). **bitflip-1** estimates the outer expectation
with the shared sample b and the D points at Hamming distance 1 from it, b^(i) = b with bit i
flipped:

    ĝ_i^BF = p_i (1 - p_i) (2 b_i - 1) (f(b) - f(b^(i))),

unbiased (b_-i ~ p), and the conditional expectation of REINFORCE's coordinate i given b_-i, so
never of higher variance than REINFORCE's (Rao-Blackwellization). Its variance vanishes like
p_i² (1 - p_i)² at the boundary of the parameter space, where DisARM's relative variance grows
like 1 / min(p_i, 1 - p_i) [1]. Cost: 1 + D evaluations per sample (f(b) and the D flips), D
the variables of one event (a batch axis is not counted: one flipped row flips bit i of every
batch element at once, and each batch element's cost pairs with its own logits).

**UGC** uses, for each coordinate, either bitflip-1 or DisARM's estimate
ĝ_i^D = ½ (f(b) - f(b̃)) (b_i - b̃_i) σ(|α_i|) (b̃ the antithetic partner 1[1 - u < p] of the
shared sample b = 1[u < p]): bitflip-1 where min(p_i, 1 - p_i) < ``threshold``, DisARM
elsewhere. Each coordinate's estimate is unbiased whichever it uses (the choice depends on θ
only), so UGC is unbiased. The rule is a function of p_i alone, as a clip of DisARM's variance
near the boundary: below π = 1/4 DisARM's relative variance exceeds 1 even for the most
favourable f (it is at least 1/(2π) - 1, the estimate being zero with probability 1 - 2π), while
bitflip-1's stays bounded; ``threshold`` (default 0.25) is that boundary. Cost: 2 + D
evaluations per sample (the pair and the D flips of b; the flips of coordinates that use DisARM
are evaluated too, so that the cost and the compiled shapes do not depend on θ).

Option ``mode``: ``"bitflip-1"`` (default) or ``"ugc"``; ``threshold`` in (0, 1/2] (``ugc``
only). ``num_samples`` S: independent samples, averaged; ``evaluations`` S (1 + D) or
S (2 + D). The per-sample surrogate's value is f(b) (bitflip-1) or (f(b) + f(b̃)) / 2 (UGC),
its gradient ĝ pulled back to θ through the logits. Shapes: noise["sample"] [S, *value];
flipped points [D, S, *value]; per-sample surrogate [S, *b].

[1] Kunes, Yin, Land, Haviv, Pe'er & Tavaré, Gradient Estimation for Binary Latent Variables
    via Gradient Variance Clipping, AAAI 2023 (arXiv:2208.06124).
[2] Dong, Mnih & Tucker, DisARM: An Antithetic Gradient Estimator for Binary Latent
    Variables, NeurIPS 2020.
[3] Titsias & Lázaro-Gredilla, Local Expectation Gradients for Black Box Variational
    Inference, NeurIPS 2015 (the same local expectation, for general discrete variables).
"""
from __future__ import annotations

import math

import numpy as np

from gradest.estimator import GradientEstimator, linear_surrogate, needs_distribution
from gradest.estimator import no_state
from gradest.estimators.arm import antithetic_pair, expand_to
from gradest.registry import register_estimator

MODES = ("bitflip-1", "ugc")


def event_size(dist) -> int:
    """D: the Bernoulli variables of one event (one batch element)."""
    return int(np.prod(dist.event_shape)) if len(dist.event_shape) else 1


def flip_mask(B, dist):
    """[D, 1, *1 (batch), *event]: row i is the indicator of event coordinate i."""
    D = event_size(dist)
    eye = np.eye(D).reshape((D, 1) + (1,) * len(dist.batch_shape) + tuple(dist.event_shape))
    return B.asarray(eye)


def bitflip_signal(B, f, dist, b, fb):
    """ĝ^BF [S, *value] from b [S, *value] and f(b) [S, *b]; evaluates f at the D·S flips."""
    mask = flip_mask(B, dist)  # [D, 1, *1, *event]
    D, S = int(mask.shape[0]), int(b.shape[0])
    flipped = b + mask * (1.0 - 2.0 * b)  # [D, S, *value]
    f_flip = f(B.reshape(flipped, (D * S, *dist.value_shape)))  # [D S, *b]
    f_flip = B.reshape(f_flip, (D, S, *tuple(fb.shape[1:])))  # [D, S, *b]
    ndim = 1 + b.ndim  # [D, S, *value]
    diff = expand_to(B, B.stop_gradient(fb - f_flip), ndim)  # [D, S, *b, 1..]: f(b) - f(b^(i))
    per_coordinate = B.sum(diff * mask, axis=0)  # [S, *value]: coordinate i takes row i
    p = B.sigmoid(B.stop_gradient(dist.logits))  # [*value]
    return p * (1.0 - p) * (2.0 * b - 1.0) * per_coordinate


@register_estimator("bitflip", variants=[{"mode": "bitflip-1"}, {"mode": "ugc"}])
def bitflip(mode: str = "bitflip-1", threshold: float = 0.25) -> GradientEstimator:
    """bitflip-1 (the D one-bit flips of the sample) or UGC (bitflip-1 near the boundary, DisARM elsewhere); unbiased."""
    if mode not in MODES:
        raise ValueError(f"option 'mode' of bitflip must be one of {', '.join(MODES)}, got {mode!r}")
    try:
        threshold = float(threshold)
    except (TypeError, ValueError) as err:
        raise ValueError(f"option 'threshold' of bitflip must be a number in (0, 0.5], got {threshold!r}") from err
    if not (math.isfinite(threshold) and 0.0 < threshold <= 0.5):
        raise ValueError(f"option 'threshold' of bitflip must be in (0, 0.5] (UGC uses bitflip-1 where "
                         f"min(p, 1 - p) < threshold), got {threshold!r}")
    ugc = mode == "ugc"

    def evaluations(num_samples, dist=None):
        D = event_size(needs_distribution(f"bitflip[mode={mode}]", dist))
        return num_samples * ((2 if ugc else 1) + D)

    def surrogate(f, dist, noise, state):
        B = dist.backend
        u = noise["sample"]  # [S, *value]
        b, b_anti = antithetic_pair(dist, u)  # [S, *value] each
        fb = f(b)  # [S, *b]
        signal = bitflip_signal(B, f, dist, b, fb)  # [S, *value]
        value = fb
        if ugc:
            f_anti = f(b_anti)  # [S, *b]
            logits = B.stop_gradient(dist.logits)
            diff = expand_to(B, B.stop_gradient(fb - f_anti), u.ndim)  # [S, *b, 1..]
            disarm = 0.5 * diff * (b - b_anti) * B.sigmoid(B.abs(logits))  # [S, *value]
            near_boundary = B.sigmoid(-B.abs(logits)) < threshold  # [*value]
            signal = B.where(near_boundary, signal, disarm)
            value = 0.5 * (fb + f_anti)
        return linear_surrogate(B, value, dist.params, {"logits": signal},
                                batch_ndim=len(dist.batch_shape)), state

    options = {"mode": mode, "threshold": threshold} if ugc else {"mode": mode}
    return GradientEstimator(init=no_state, surrogate=surrogate, supports=frozenset({"bernoulli"}),
                             unbiased=True, name="bitflip", options=options, evaluations=evaluations)
