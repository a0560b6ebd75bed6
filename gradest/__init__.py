"""gradest: a benchmark suite for stochastic gradient estimators, in PyTorch and JAX.

``import gradest`` imports neither framework: a backend is imported when first used.
"""
from __future__ import annotations

from gradest.registry import (get_estimator, get_task, list_estimators, list_tasks,
                              register_estimator, register_task)
from gradest.measure import (GradientSampler, UnsupportedCombinationError, exact_gradient,
                             gradient_samples, gradient_stats)

__version__ = "0.1.0"

__all__ = [
    "list_estimators", "list_tasks", "get_estimator", "get_task", "register_estimator",
    "register_task", "gradient_samples", "exact_gradient", "gradient_stats", "train",
    "GradientSampler", "UnsupportedCombinationError", "TrainResult",
]


def __getattr__(name):
    # training pulls in optimizers (torch.optim / optax) only when used
    if name in ("train", "TrainResult"):
        from gradest import training

        return getattr(training, name)
    raise AttributeError(f"module 'gradest' has no attribute {name!r}")
