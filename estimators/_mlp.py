"""A small multilayer perceptron whose weights are one flat vector φ (private helper).

Used by the learned baseline of ``nvil``, the control-variate network of ``relax`` (one
output) and the learned optimal baseline of ``reinforce`` (``outputs=2d``). The network is
written over the `Backend`, so φ is an ordinary array of the backend that the training loop
can optimize (``state["phi"]``) and that ``backend.grad`` can differentiate.

Layout of φ for input width ``d``, ``hidden`` units (``hidden == 0``: a linear map) and k
outputs (``outputs``; None: one, returned without an output axis):

    hidden > 0:  [W1 (d*hidden, row-major [d, hidden]), b1 (hidden), W2 (hidden*k, [hidden, k]), b2 (k)]
                 x [..., d] -> tanh(x W1 + b1) W2 + b2           [..., k]  ([...] for outputs=None)
    hidden == 0: [W (d*k, [d, k]), b (k)]
                 x [..., d] -> x W + b                           [..., k]  ([...] for outputs=None)

`mlp_init` draws W1 from N(0, 1/d) with a NumPy generator under a fixed ``seed`` (a
deterministic function of the options, not a random number of the measurement) and sets the
output layer to zero, so the network starts as the zero function: an estimator built on it
starts where its non-learned counterpart is.
"""
from __future__ import annotations

import numpy as np


def mlp_size(d: int, hidden: int, outputs: int | None = None) -> int:
    """Number of entries of φ."""
    k = 1 if outputs is None else outputs
    assert d >= 1 and hidden >= 0 and k >= 1, (d, hidden, outputs)
    return d * hidden + hidden + hidden * k + k if hidden else d * k + k


def mlp_init(d: int, hidden: int, seed: int = 0, outputs: int | None = None) -> np.ndarray:
    """φ₀ [mlp_size(d, hidden, outputs)] (float64 NumPy): random first layer, zero output layer."""
    phi = np.zeros(mlp_size(d, hidden, outputs))
    if hidden:
        rng = np.random.default_rng(seed)
        phi[: d * hidden] = rng.normal(0.0, 1.0 / np.sqrt(d), size=d * hidden)
    return phi


def mlp_apply(B, phi, x, d: int, hidden: int, outputs: int | None = None):
    """The network at ``x`` [..., d] -> [..., outputs] ([...] for ``outputs=None``); ``phi``
    [mlp_size(d, hidden, outputs)]."""
    size = mlp_size(d, hidden, outputs)
    assert int(x.shape[-1]) == d, f"the network expects inputs of width {d}, got {tuple(x.shape)}"
    assert int(phi.shape[0]) == size, f"phi has {int(phi.shape[0])} entries, the network {size}"
    k = 1 if outputs is None else outputs
    start, width = 0, d
    if hidden:
        w1 = B.reshape(phi[: d * hidden], (d, hidden))  # [d, H]
        b1 = phi[d * hidden: d * hidden + hidden]  # [H]
        x = B.tanh(B.matmul(x, w1) + b1)  # [..., H]
        start, width = d * hidden + hidden, hidden
    w, b = phi[start: start + width * k], phi[start + width * k:]  # [width * k], [k]
    if outputs is None:
        return B.matmul(x, w) + b[0]  # [...]
    return B.matmul(x, B.reshape(w, (width, k))) + b  # [..., k]
