"""``decoupled_st``: straight-through Gumbel-softmax with decoupled forward and backward
temperatures (Decoupled ST-GS [1]).

ST Gumbel-softmax [2] uses one temperature τ for the relaxation y = softmax((θ + G)/τ), whose
argmax is the forward sample and whose Jacobian is the backward pass. [1] gives the two
passes their own temperatures, τ_f (option ``forward_temperature``) and τ_b
(``backward_temperature``), with the shared Gumbel noise G [1, Sec. 3]:

    y_f = softmax((θ + G)/τ_f),   D = onehot(argmax y_f)      forward
    y_b = softmax((θ + G)/τ_b),   z = D + y_b − sg(y_b)         backward (straight-through)

so the estimate is ∂f/∂z · ∂y_b/∂θ at z = D. With τ_f = τ_b = τ it is ST Gumbel-softmax at τ
(`gradest.estimators.gumbel_softmax` with ``hard=True``), estimate for estimate on the same
noise. What the forward temperature does here: argmax is invariant to the positive scale
1/τ_f, so D = onehot(argmax(θ + G)) is the exact categorical sample for every τ_f, and the
forward value is f(D) whatever τ_f; the gradient depends on τ_b alone (an estimate at (τ_f, τ_b)
equals ST-GS at τ_b). τ_f is kept as the paper states the method (its role in the forward pass
is that of the relaxation y_f, e.g. for logging or a soft forward), and as an option so that
the results of [1]'s temperature grids can be labelled as published; the bias/variance
trade-off is the backward temperature's.

Biased for every τ_b > 0 (it differentiates a relaxation); S evaluations of f per estimate
(the default ``evaluations``), at the hard samples. f must accept relaxed points of the
simplex (the backward pass differentiates f at z). Categorical only.

Shapes: noise["sample"] [S, *value]; y_f, y_b, D, z [S, *value]; per-sample surrogate [S, *b].

[1] Shah, Yan, Mozer & Liu, Improving Discrete Optimisation Via Decoupled Straight-Through
    Gumbel-Softmax, arXiv:2410.13331, 2024.
[2] Jang, Gu & Poole, Categorical Reparameterization with Gumbel-Softmax, ICLR 2017.
"""
from __future__ import annotations

import math

from gradest.estimator import GradientEstimator, no_state
from gradest import relaxations as R
from gradest.registry import register_estimator


def _temperature(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"option {name!r} of decoupled_st must be a positive number, got {value!r}")
    return float(value)


@register_estimator("decoupled_st", variants=[{"forward_temperature": 1.0, "backward_temperature": 0.5},
                                              {"forward_temperature": 1.0, "backward_temperature": 2.0}])
def decoupled_st(forward_temperature: float = 1.0, backward_temperature: float = 1.0) -> GradientEstimator:
    """ST Gumbel-softmax with a forward temperature τ_f and a backward temperature τ_b; biased."""
    tau_f = _temperature("forward_temperature", forward_temperature)
    tau_b = _temperature("backward_temperature", backward_temperature)

    def surrogate(f, dist, noise, state):
        B = dist.backend
        if dist.kind != "categorical":
            raise ValueError(f"decoupled_st supports categorical distributions, got {dist.kind}")
        g = noise["sample"]  # [S, *value]
        forward = R.gumbel_softmax(B, dist.logits, g, tau_f)  # [S, *value]: y_f
        backward = R.gumbel_softmax(B, dist.logits, g, tau_b)  # [S, *value]: y_b
        hard = R.hard_argmax(B, forward)  # [S, *value]: D
        return f(R.straight_through(B, hard, backward)), state  # [S, *b]

    return GradientEstimator(
        init=no_state, surrogate=surrogate, supports=frozenset({"categorical"}), unbiased=False,
        name="decoupled_st", options={"forward_temperature": tau_f, "backward_temperature": tau_b})
