"""``relax``: RELAX [1] for discrete variables, a learned control variate
c_φ(z) = η f(σ_λ(z)) + r_ρ(z) trained to minimize the estimator's variance.

    ĝ = [f(b) - c_φ(z̃)] ∇ log p(b) + ∇ c_φ(z) - ∇ c_φ(z̃)

with b, z, z̃ and σ_λ as in REBAR [2] (`gradest.estimators._conditional`): b the exact sample
(noise "sample"), z its reparameterized continuous variable, z̃ ~ p(z | b) (noise
"conditional"). r_ρ is a small tanh network over the flattened event of z (one output per batch
element; `gradest.estimators._mlp`). Unbiased for every φ.

φ = (log λ, η, ρ) lives in ``state["phi"]``. ``init`` sets λ = ``temperature``, η = ``eta`` and
ρ with a random first layer (fixed NumPy seed ``init_seed``) and a zero output layer, so at φ₀
RELAX is REBAR(λ, η). ``phi_loss(phi, f, dist, noise, state)`` = ‖ĝ‖², ĝ the estimate with
respect to the distribution's parameters (rebuilt with ``dist.with_params`` and differentiated
with ``backend.grad``): its φ-gradient, a second-order gradient, is an unbiased estimate of
∇_φ Var ĝ, since E ĝ does not depend on φ [1]. `gradest.train` updates φ with it after each θ
step.

Supports Bernoulli and categorical distributions; f must accept relaxed samples. Each sample
evaluates f three times (at b, σ_λ(z), σ_λ(z̃); the network r_ρ is not f): 3S evaluations per
estimate (``evaluations``). Shapes: noise [S, *value]; per-sample surrogate [S, *b].

[1] Grathwohl, Choi, Wu, Roeder & Duvenaud, Backpropagation through the Void: Optimizing
    control variates for black-box gradient estimation, ICLR 2018.
[2] Tucker, Mnih, Maddison, Lawson & Sohl-Dickstein, REBAR: Low-variance, unbiased gradient
    estimates for discrete latent variable models, NeurIPS 2017.
"""
from __future__ import annotations

import math

import numpy as np

from gradest.estimator import GradientEstimator
from gradest.estimators import _conditional as C
from gradest.estimators._mlp import mlp_apply, mlp_init
from gradest.registry import register_estimator


@register_estimator("relax")
def relax(temperature: float = 0.5, eta: float = 1.0, hidden: int = 16,
          init_seed: int = 0) -> GradientEstimator:
    """RELAX: REBAR's control variate plus a network, trained to minimize the variance (unbiased)."""
    temperature = C.check_temperature(temperature, "relax")
    eta = C.check_eta(eta, "relax")
    if isinstance(hidden, bool) or not isinstance(hidden, (int, np.integer)) or hidden < 0:
        raise ValueError(f"option 'hidden' of relax must be a non-negative integer (units of the "
                         f"control-variate network; 0 for a linear one), got {hidden!r}")
    if isinstance(init_seed, bool) or not isinstance(init_seed, (int, np.integer)):
        raise ValueError(f"option 'init_seed' of relax must be an integer, got {init_seed!r}")
    hidden, init_seed = int(hidden), int(init_seed)

    def init(dist):
        C._check_kind(dist, "relax")
        net = mlp_init(C.event_width(dist), hidden, init_seed)
        return {"phi": dist.backend.asarray(np.concatenate([[math.log(temperature), eta], net]))}

    def control_at(f, dist, phi):
        B = dist.backend
        lam, scale, rho = B.exp(phi[0]), phi[1], phi[2:]
        d = C.event_width(dist)

        def control(z):  # [S, *value] -> [S, *b]
            return scale * f(C.relax(dist, z, lam)) + mlp_apply(B, rho, C.flat_event(dist, z), d, hidden)

        return control

    def signal_at(f, dist, noise, phi):
        return C.relaxed_signal(f, dist, noise, control_at(f, dist, phi))

    def surrogate(f, dist, noise, state):
        return C.relaxed_surrogate(f, dist, noise, control_at(f, dist, state["phi"])), state

    return GradientEstimator(
        init=init, surrogate=surrogate, noise_spec=C.conditional_noise_spec,
        supports=C.CONDITIONAL_KINDS, unbiased=True, name="relax", evaluations=C.relaxed_evaluations,
        options={"temperature": temperature, "eta": eta, "hidden": hidden, "init_seed": init_seed},
        phi_loss=C.variance_phi_loss(signal_at))
