"""Exact truth: a task's loss L(θ) and its gradient dL/dθ where the task has ground truth
(enumeration of a small discrete space, a closed form), and nothing where it has none.

This is the one path to the truth; measuring (`gradest.gradient_stats`) and training (the
``exact_loss`` column, the gradient basket) both go through it.

* `exact_functions(task, B)`: the compiled ``loss(θ [P]) -> scalar`` and
  ``value_and_grad(θ [P]) -> (scalar, [P])``, cached per task and backend (`gradest.cache`).
  ``available`` is False where the task's ``exact_loss`` returns None (found once, at θ₀).
* `Truth(task, B, compile_loss=..., compile_grad=...)`: L and dL/dθ at any θ (a backend array)
  as a float and a NumPy float64 [P] vector (NaN / None without truth). Compiled: the cached
  functions above, for many evaluations; eager: ``task.exact_loss`` called as is, for a few
  (no compilation to pay for). Both give the same numbers.
* `exact_gradient(task, ...)` -> NumPy float64 [P] or None; `exact_loss(task, ...)` -> float or
  None: at θ₀ or ``params`` (a flat NumPy vector), through `Truth`.
"""
from __future__ import annotations

import math

import numpy as np

from gradest import cache
from gradest.backends import get_backend
from gradest.registry import get_task
from gradest.validation import flat_params

__all__ = ["ExactFunctions", "exact_functions", "Truth", "exact_gradient", "exact_loss"]


class ExactFunctions:
    """The task's exact loss and gradient as compiled functions of θ (``available`` False: no
    ground truth)."""

    def __init__(self, task, B):
        self.backend = B
        theta0 = B.asarray(task.init_params())
        self.available = task.has_exact() and task.exact_loss(B, theta0) is not None
        if self.available:
            loss = lambda p: task.exact_loss(B, p)  # noqa: E731
            self.loss = B.jit(loss)
            self.value_and_grad = B.jit(B.value_and_grad(loss))


def exact_functions(task, B) -> ExactFunctions:
    """The cached compiled exact loss and gradient of ``task`` on backend ``B``."""
    return cache.CACHE.get(("exact", cache.task_key(task), cache.backend_key(B)), lambda: ExactFunctions(task, B))


class Truth:
    """L(θ) and dL/dθ of ``task`` on backend ``B`` (see the module docstring); ``available``
    turns False when the task turns out to have no truth (``has_exact()`` False, or
    ``exact_loss`` None: found at once when compiled, at the first `loss` when eager)."""

    def __init__(self, task, B, *, compile_loss: bool = True, compile_grad: bool = True):
        self.task, self.B = task, B
        self.available = task.has_exact()
        self._compile_loss, self._compile_grad = compile_loss, compile_grad
        self._compiled = None
        if self.available and (compile_loss or compile_grad):
            self._compiled = exact_functions(task, B)
            self.available = self._compiled.available
        self._eager_grad = None

    def _eager_loss(self, theta):
        return self.task.exact_loss(self.B, theta)

    def loss(self, theta) -> float:
        """L(θ) as a float (NaN without truth)."""
        if not self.available:
            return math.nan
        value = self._compiled.loss(theta) if self._compile_loss else self._eager_loss(theta)
        if value is None:
            self.available = False
            return math.nan
        return float(self.B.to_numpy(value))

    def grad(self, theta) -> np.ndarray | None:
        """dL/dθ as a NumPy float64 [P] vector (None without truth; eager: call `loss` first,
        which finds out)."""
        if not self.available:
            return None
        if self._compile_grad:
            grad = self._compiled.value_and_grad(theta)[1]
        else:
            if self._eager_grad is None:
                self._eager_grad = self.B.grad(self._eager_loss)
            grad = self._eager_grad(theta)
        return np.asarray(self.B.to_numpy(grad), dtype=np.float64)


def _truth(task, backend, device, dtype):
    """(the task, its backend, its `Truth` with compiled functions), or None without truth."""
    task = get_task(task)
    if not task.has_exact():
        return None
    B = get_backend(backend, device=device, dtype=dtype)
    truth = Truth(task, B)
    return (task, B, truth) if truth.available else None


def exact_gradient(task, *, backend="torch", device="cpu", dtype="float32", params=None):
    """The exact dL/dθ at θ₀ (or ``params``) as a NumPy vector, or None without ground truth."""
    found = _truth(task, backend, device, dtype)
    if found is None:
        return None
    task, B, truth = found
    return truth.grad(B.asarray(flat_params(task, params)))


def exact_loss(task, *, backend="torch", device="cpu", dtype="float32", params=None) -> float | None:
    """The exact L at θ₀ (or ``params``) as a float, or None without ground truth."""
    found = _truth(task, backend, device, dtype)
    if found is None:
        return None
    task, B, truth = found
    return truth.loss(B.asarray(flat_params(task, params)))
