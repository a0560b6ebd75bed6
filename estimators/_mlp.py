"""A small multilayer perceptron whose weights are one flat vector φ (private helper).

Used by the learned baseline of ``nvil`` and the control-variate network of ``relax``. The
network is written over the `Backend`, so φ is an ordinary array of the backend that the
training loop can optimize (``state["phi"]``) and that ``backend.grad`` can differentiate.

Layout of φ for input width ``d`` and ``hidden`` units (``hidden == 0``: a linear map):

    hidden > 0:  [W1 (d*hidden, row-major [d, hidden]), b1 (hidden), w2 (hidden), b2 (1)]
                 x [..., d] -> tanh(x W1 + b1) w2 + b2           [...]
    hidden == 0: [w (d), b (1)]
                 x [..., d] -> x w + b                           [...]

`mlp_init` draws W1 from N(0, 1/d) with a NumPy generator under a fixed ``seed`` (a
deterministic function of the options, not a random number of the measurement) and sets the
output layer to zero, so the network starts as the zero function: an estimator built on it
starts where its non-learned counterpart is.
"""
from __future__ import annotations

import numpy as np


def mlp_size(d: int, hidden: int) -> int:
    """Number of entries of φ."""
    assert d >= 1 and hidden >= 0, (d, hidden)
    return d * hidden + 2 * hidden + 1 if hidden else d + 1


def mlp_init(d: int, hidden: int, seed: int = 0) -> np.ndarray:
    """φ₀ [mlp_size(d, hidden)] (float64 NumPy): random first layer, zero output layer."""
    phi = np.zeros(mlp_size(d, hidden))
    if hidden:
        rng = np.random.default_rng(seed)
        phi[: d * hidden] = rng.normal(0.0, 1.0 / np.sqrt(d), size=d * hidden)
    return phi


def mlp_apply(B, phi, x, d: int, hidden: int):
    """The network at ``x`` [..., d] -> [...]; ``phi`` [mlp_size(d, hidden)]."""
    assert int(x.shape[-1]) == d, f"the network expects inputs of width {d}, got {tuple(x.shape)}"
    assert int(phi.shape[0]) == mlp_size(d, hidden), (
        f"phi has {int(phi.shape[0])} entries, the network {mlp_size(d, hidden)}")
    if not hidden:
        return B.matmul(x, phi[:d]) + phi[d]  # [...]
    w1 = B.reshape(phi[: d * hidden], (d, hidden))  # [d, H]
    b1 = phi[d * hidden: d * hidden + hidden]  # [H]
    w2 = phi[d * hidden + hidden: d * hidden + 2 * hidden]  # [H]
    b2 = phi[d * hidden + 2 * hidden]  # []
    h = B.tanh(B.matmul(x, w1) + b1)  # [..., H]
    return B.matmul(h, w2) + b2  # [...]
