"""``nvil``: the score function with NVIL's learned input-dependent baseline and variance
normalization [1].

    ĝ = (f(z) - b_φ(x) - c) / s · ∇ log p_θ(z)  (+ ∇f(z) where f depends on θ directly)

* b_φ(x): a small tanh network (`gradest.estimators._mlp`; ``hidden=0``: linear) of the
  "input" x, which for an estimator is the distribution's parameters, a deterministic function
  of the data (e.g. a VAE encoder's logits): x = stop_gradient(params) flattened per batch
  element ([*b, d], all parameters concatenated). φ lives in ``state["phi"]`` (output layer
  zero at ``init``, first layer from a fixed NumPy seed ``init_seed``) and is trained by
  ``phi_loss(phi, f, dist, noise, state)`` = mean (f(z) - b_φ(x))² [1, Sec. 3.3], which
  `gradest.train` minimizes alongside θ.
* c: a running (exponential, rate ``decay``, bias-corrected) mean of f - b_φ(x), kept in
  state [1, Sec. 3.2]; 0 before the first step.
* s = max(1, sqrt(v)), v a running mean of (f - b_φ - c)², kept in state (``normalize=True``,
  the default [1, Sec. 3.3]); s = 1 with ``normalize=False``.

Bias. b_φ depends on the parameters only and c, s come from earlier steps (the state the
surrogate receives), so for the φ and state of one estimate E[ĝ] = ∇L / s: an unbiased
estimate of a positively scaled gradient (same direction; the scale is an adaptive step size),
not of ∇L itself when s > 1. Hence ``unbiased`` is ``not normalize``: ``nvil(normalize=False)``
is unbiased for every φ and state; with normalization the mean estimate is exactly ∇L / s for the
s that the state gives (`nvil_scale`), which is what the tests check. The normalization does
not apply to the direct term ∇f (as in [1], where it scales only the inference network's
learning signal).

The state moves from step to step (``update_state``): the surrogate returns c and v updated
with this step's samples; φ passes through unchanged. Shapes: z [S, *value]; f(z), log p(z)
[S, *b]; x [*b, d]; b_φ(x) [*b].

[1] Mnih & Gregor, Neural Variational Inference and Learning in Belief Networks, ICML 2014.
[2] Williams, Simple Statistical Gradient-Following Algorithms for Connectionist
    Reinforcement Learning, Machine Learning 1992.
"""
from __future__ import annotations

import numpy as np

from gradest.estimator import GradientEstimator, magic_box
from gradest.estimators._mlp import mlp_apply, mlp_init
from gradest.registry import register_estimator


def _event_size(dist, name: str) -> int:
    shape = tuple(dist.params[name].shape)[len(dist.batch_shape):]
    return int(np.prod(shape)) if len(shape) else 1


def input_width(dist) -> int:
    """d: the number of parameter entries of one batch element."""
    return sum(_event_size(dist, name) for name in sorted(dist.params))


def features(dist):
    """x [*b, d]: the distribution's parameters of each batch element, without gradient."""
    B = dist.backend
    blocks = [B.reshape(B.stop_gradient(dist.params[name]), (*dist.batch_shape, _event_size(dist, name)))
              for name in sorted(dist.params)]
    return blocks[0] if len(blocks) == 1 else B.concatenate(blocks, axis=-1)


def _corrected(B, state, key: str, decay: float, default: float):
    steps = state["steps"]
    return B.where(steps > 0, state[key] / (1.0 - decay ** B.maximum(steps, 1.0)), default)


def nvil_scale(B, state, decay: float = 0.9, normalize: bool = True):
    """s = max(1, sqrt(v)) from ``state`` (1 without normalization or before any step)."""
    if not normalize:
        return B.ones(())
    return B.maximum(B.sqrt(_corrected(B, state, "scale2", decay, 1.0)), 1.0)


@register_estimator("nvil")
def nvil(normalize: bool = True, hidden: int = 16, decay: float = 0.9, init_seed: int = 0) -> GradientEstimator:
    """NVIL: learned input-dependent baseline + running centring and variance normalization."""
    if not isinstance(normalize, bool):
        raise ValueError(f"option 'normalize' of nvil must be True or False, got {normalize!r}")
    if isinstance(hidden, bool) or not isinstance(hidden, (int, np.integer)) or hidden < 0:
        raise ValueError(f"option 'hidden' of nvil must be a non-negative integer (units of the "
                         f"baseline network; 0 for a linear baseline), got {hidden!r}")
    if not (isinstance(decay, (int, float)) and 0.0 <= decay < 1.0):
        raise ValueError(f"option 'decay' of nvil must be a number in [0, 1), got {decay!r}")
    if isinstance(init_seed, bool) or not isinstance(init_seed, (int, np.integer)):
        raise ValueError(f"option 'init_seed' of nvil must be an integer, got {init_seed!r}")
    hidden, decay, init_seed = int(hidden), float(decay), int(init_seed)

    def init(dist):
        B = dist.backend
        return {"phi": B.asarray(mlp_init(input_width(dist), hidden, init_seed)),
                "center": B.zeros(()), "scale2": B.zeros(()), "steps": B.zeros(())}

    def baseline(B, phi, dist):
        return mlp_apply(B, phi, features(dist), input_width(dist), hidden)  # [*b]

    def surrogate(f, dist, noise, state):
        B = dist.backend
        z = dist.sample(noise["sample"])  # [S, *value]
        fz = f(z)  # [S, *b]
        log_p = dist.log_prob(z)  # [S, *b]
        assert tuple(log_p.shape) == tuple(fz.shape), (
            f"f(z) has shape {tuple(fz.shape)} but log p(z) {tuple(log_p.shape)}; f must return [S, *batch_shape]")
        resid = B.stop_gradient(fz) - B.stop_gradient(baseline(B, state["phi"], dist))  # [S, *b]
        center = _corrected(B, state, "center", decay, 0.0)  # []
        centred = resid - center  # [S, *b]
        weight = centred / nvil_scale(B, state, decay, normalize)
        spread_around = B.where(state["steps"] > 0, center, B.mean(resid))
        new_state = {
            "phi": state["phi"],
            "center": decay * state["center"] + (1.0 - decay) * B.mean(resid),
            "scale2": decay * state["scale2"] + (1.0 - decay) * B.mean((resid - spread_around) ** 2),
            "steps": state["steps"] + 1.0,
        }
        return magic_box(B, fz, log_p, weight), new_state

    def phi_loss(phi, f, dist, noise, state):
        B = dist.backend
        z = dist.sample(noise["sample"])  # [S, *value]
        target = B.stop_gradient(f(z))  # [S, *b]
        return B.mean((target - baseline(B, phi, dist)) ** 2)

    return GradientEstimator(
        init=init, surrogate=surrogate, supports=frozenset({"categorical", "bernoulli", "normal"}),
        unbiased=not normalize, name="nvil",
        options={"normalize": normalize, "hidden": hidden, "decay": decay, "init_seed": init_seed},
        update_state=True, phi_loss=phi_loss)
