"""gradest: a benchmark suite for stochastic gradient estimators, in PyTorch and JAX.

``import gradest`` imports neither framework: a backend is imported when first used.
"""
from __future__ import annotations

from gradest.registry import (get_estimator, get_task, list_estimators, list_tasks,
                              register_estimator, register_task)
from gradest.measure import (GradientSampler, UnsupportedCombinationError, exact_gradient,
                             gradient_samples, gradient_stats)

from gradest.version import __version__

__all__ = [
    "list_estimators", "list_tasks", "get_estimator", "get_task", "register_estimator",
    "register_task", "gradient_samples", "exact_gradient", "gradient_stats", "train",
    "GradientSampler", "UnsupportedCombinationError", "TrainResult", "Trainer",
    "clear_compile_cache", "compile_cache_info",
]

#: submodules reachable as attributes (imported on first use; none imports a framework)
_SUBMODULES = ("backends", "binding", "cache", "compiled", "distributions", "estimator", "measure", "noise",
               "registry", "sampler", "statistics", "sweep", "task", "testing", "training", "truth", "validation",
               "cli")


def clear_compile_cache() -> None:
    """Empty every cache of gradest (`gradest.cache`): the compiled functions, the recent
    samplers, the tasks' compiled metrics; the next calls build and compile again."""
    from gradest import cache

    cache.clear()


def compile_cache_info() -> dict:
    """Entries, hits and misses of the cache of compiled functions, and of each named cache
    under ``"caches"`` (`gradest.cache`)."""
    from gradest import cache

    return cache.info()


def __getattr__(name):
    # training pulls in optimizers (torch.optim / optax) only when used
    if name in ("train", "TrainResult", "Trainer"):
        from gradest import training

        return getattr(training, name)
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"gradest.{name}")
    raise AttributeError(f"module 'gradest' has no attribute {name!r}")
