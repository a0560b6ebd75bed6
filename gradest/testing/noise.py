"""NumPy noise and compiled evaluation on it: what makes two backends comparable number for number.

Contracts:

* `numpy_noise(task, est, S, seed)` draws one replicate of S samples as the specs ask, as
  NumPy float64 ``{"estimator": {...}, "task": {...}}`` (no task noise for estimators that
  ``requires_exact``): the same numbers, whatever backend is fed with them.
* `surrogate_evaluator(task, est, backend)` compiles, once, the surrogate, the loss and its
  gradient dL/dθ, the new state and (where given) ``phi_loss`` and its gradient, and returns a
  call ``(noise, state=None) -> dict`` of NumPy outputs; `evaluate_surrogate` calls it once.
  Fed the same noise in float64, a correct estimator gives the same outputs on every backend
  (the kit's ``parity`` check).
"""
from __future__ import annotations

import numpy as np

from gradest.backends import NOISE_LAWS, available_backends, get_backend
from gradest.measure import make_loss
from gradest.registry import get_estimator, get_task

__all__ = ["numpy_noise", "surrogate_evaluator", "evaluate_surrogate"]


def _numpy_draw(rng: np.random.Generator, spec) -> np.ndarray:
    shape, law = tuple(int(s) for s in spec.shape), spec.kind
    if law == "normal":
        return rng.standard_normal(shape)
    if law == "gumbel":
        return rng.gumbel(size=shape)
    if law == "uniform":
        tiny = np.finfo(np.float64).tiny
        return np.clip(rng.random(shape), tiny, 1.0 - np.finfo(np.float64).eps / 2)
    raise ValueError(f"unknown noise law {law!r}; known laws: {', '.join(NOISE_LAWS)}")


def numpy_noise(task, estimator, num_samples: int, seed: int = 0, params=None) -> dict:
    """NumPy noise ``{"estimator": {...}, "task": {...}}`` for one replicate of S samples,
    drawn as the specs ask; feed it to every backend (``backend.asarray``) for parity tests."""
    task, est = get_task(task), get_estimator(estimator)
    B = get_backend(available_backends()[0], dtype="float64")
    theta = B.asarray(task.init_params() if params is None else params)
    dist = task.problem(B, theta).dist
    rng = np.random.default_rng(seed)
    out = {"estimator": {k: _numpy_draw(rng, s) for k, s in sorted(est.noise_spec(dist, num_samples).items())},
           "task": {}}
    if not est.requires_exact:
        out["task"] = {k: _numpy_draw(rng, s) for k, s in sorted(task.noise_spec(num_samples).items())}
    return out


def _tree_numpy(B, tree):
    if isinstance(tree, dict):
        return {k: _tree_numpy(B, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_tree_numpy(B, v) for v in tree)
    if tree is None or isinstance(tree, (int, float, bool, str)):
        return tree
    return np.asarray(B.to_numpy(tree))


def _tree_asarray(B, tree):
    if isinstance(tree, dict):
        return {k: _tree_asarray(B, v) for k, v in tree.items()}
    return B.asarray(tree)


def surrogate_evaluator(task, estimator, backend, params=None):
    """Compile once, call often: ``(noise, state=None) -> dict`` of NumPy outputs for the NumPy
    ``noise`` of `numpy_noise`: ``per_sample`` [S, *b], ``loss`` (mean + extra), ``grad``
    dL/dθ [P], ``state`` (the new state), and for estimators with ``phi_loss`` its value
    ``phi_loss`` and gradient ``phi_grad`` (else None). ``state`` defaults to ``init(dist)``
    (``.init_state``). One jitted call per noise shape (JAX compiles it once, not op by op)."""
    task, est = get_task(task), get_estimator(estimator)
    B = get_backend(backend) if isinstance(backend, str) else backend
    theta = B.asarray(task.init_params() if params is None else params)
    init_state = est.init(task.problem(B, theta).dist)
    loss = make_loss(task, est, B)
    use_phi = est.phi_loss is not None and isinstance(init_state, dict) and "phi" in init_state

    def evaluate(theta, enoise, tnoise, state):
        tn = None if est.requires_exact else tnoise
        prob = task.problem(B, theta, noise=tn)
        per_sample, new_state = est.surrogate(prob.f, prob.dist, enoise, state)
        grad, value = B.grad(lambda p: _with_value(loss(p, {"estimator": enoise, "task": tnoise}, state)),
                             has_aux=True)(theta)
        phi_value = phi_grad = None
        if use_phi:
            const = task.problem(B, B.stop_gradient(theta), noise=tn)
            phi_grad, phi_value = _grad_and_value(
                B, lambda q: est.phi_loss(q, const.f, const.dist, enoise, state))(state["phi"])
        return per_sample, value[0], grad, new_state, phi_value, phi_grad

    compiled = B.jit(evaluate)

    def call(noise: dict, state=None) -> dict:
        st = init_state if state is None else _tree_asarray(B, state)
        out = compiled(theta, _tree_asarray(B, noise["estimator"]), _tree_asarray(B, noise.get("task", {})), st)
        names = ("per_sample", "loss", "grad", "state", "phi_loss", "phi_grad")
        return {k: _tree_numpy(B, v) for k, v in zip(names, out)}

    call.init_state = _tree_numpy(B, init_state)
    return call


def evaluate_surrogate(task, estimator, backend, noise: dict, params=None, state=None) -> dict:
    """`surrogate_evaluator` called once: the outputs for one NumPy ``noise``."""
    return surrogate_evaluator(task, estimator, backend, params)(noise, state)


def _with_value(out):
    value, state = out
    return value, (value, state)


def _grad_and_value(B, fn):
    """``p -> (d fn / dp, fn(p))`` for scalar ``fn`` (the same order on both backends)."""

    def both(p):
        value = fn(p)
        return value, value

    return B.grad(both, has_aux=True)
