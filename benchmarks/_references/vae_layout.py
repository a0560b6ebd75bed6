"""The VAEs' parameters and networks as the hand-written steps see them, written once for every
framework (plain ``@`` and ``+``, the framework's activation passed in).

θ is one flat vector of named blocks (``task.param_layout``: ``enc_w1 [D, h1], enc_b1 [h1],
..., dec_w{n} [h, D], dec_b{n} [D]``); a hand-written step keeps the blocks as separate arrays,
cut from the task's θ₀ so that gradest and the hand-written step start equal.
"""
from __future__ import annotations

import numpy as np

#: the estimators the hand-written training steps are written for: Gumbel-softmax (soft) and
#: REINFORCE with the leave-one-out baseline over the S samples on the categorical_vae; DisARM
#: on the bernoulli_vae
STEP_ESTIMATORS = ("gumbel_softmax", "reinforce_loo", "disarm")
#: the estimators of the bernoulli_vae's step (the others are the categorical_vae's)
BERNOULLI_ESTIMATORS = ("disarm",)
#: the hidden activations the Bernoulli step is written for (the task's ``activation``)
ACTIVATIONS = ("tanh", "relu", "leaky_relu")
#: negative slope of ``leaky_relu`` (the task's)
LEAKY_SLOPE = 0.3


def blocks_numpy(task, theta=None) -> dict:
    """θ (default the task's θ₀) [P] cut into the named blocks of ``task.param_layout``."""
    theta = task.init_params() if theta is None else np.asarray(theta, dtype=np.float64)
    out, start = {}, 0
    for name, shape in task.param_layout:
        size = int(np.prod(shape))
        out[name] = theta[start:start + size].reshape(shape)
        start += size
    assert start == theta.shape[0]
    return out


def flatten_blocks(task, blocks) -> np.ndarray:
    """The inverse of `blocks_numpy`: NumPy float64 [P] in ``param_layout`` order."""
    return np.concatenate([np.asarray(blocks[name], dtype=np.float64).reshape(-1) for name, _ in task.param_layout])


def num_layers(task, prefix: str) -> int:
    """Weight layers of the encoder (``"enc"``) or decoder (``"dec"``), from ``param_layout``."""
    return sum(1 for name, _ in task.param_layout if name.startswith(f"{prefix}_w"))


def mlp(task, params, prefix: str, h, relu):
    """The task's ``prefix`` ("enc" or "dec") network: affine layers with ``relu`` (the
    framework's own) between them, the last one linear."""
    n = num_layers(task, prefix)
    for i in range(1, n + 1):
        h = h @ params[f"{prefix}_w{i}"] + params[f"{prefix}_b{i}"]
        if i < n:
            h = relu(h)
    return h


def check_relu(task) -> None:
    """The hand-written networks are ReLU MLPs: refuse a task with another activation."""
    activation = getattr(task, "activation", "relu")
    if activation != "relu":
        raise ValueError(f"the hand-written steps are ReLU MLPs; the task uses {activation!r}")


def check_step_estimator(estimator: str) -> None:
    if estimator not in STEP_ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; known: {', '.join(STEP_ESTIMATORS)}")


def check_step_task(task, estimator: str) -> None:
    """The categorical estimators' steps are ReLU MLPs of a categorical_vae; DisARM's is an MLP
    of a bernoulli_vae (analytic KL to its learned prior) with the task's activation."""
    check_step_estimator(estimator)
    if estimator not in BERNOULLI_ESTIMATORS:
        check_relu(task)
        return
    if getattr(task, "name", None) != "bernoulli_vae" or getattr(task, "kl", "analytic") != "analytic":
        raise ValueError(f"the hand-written {estimator} step is written for a bernoulli_vae with kl='analytic', "
                         f"got {getattr(task, 'name', task)!r}")
    if task.activation not in ACTIVATIONS:
        raise ValueError(f"the hand-written {estimator} step has no activation {task.activation!r}")
