"""Backends: one array/autodiff interface, implemented for PyTorch and for JAX.

`get_backend("torch" | "jax", device="cpu" | "cuda", dtype="float32" | "float64")` imports the
framework on first use; ``import gradest`` imports neither.
"""
from __future__ import annotations

import importlib
from functools import lru_cache

from gradest.backends.base import DEVICES, DTYPES, NOISE_KINDS, Backend

BACKENDS = ("torch", "jax")
_INSTALL = {
    "torch": "pip install 'torch==2.13.0' (CPU) or a CUDA build from pytorch.org, or `make venv`",
    "jax": "pip install jax optax (CPU) or 'jax[cuda12]' optax (GPU), or `make venv`",
}

__all__ = ["Backend", "get_backend", "BACKENDS", "DEVICES", "DTYPES", "NOISE_KINDS", "available_backends"]


def get_backend(name: str | Backend = "torch", device: str = "cpu", dtype: str = "float32", **options) -> Backend:
    """The backend ``name`` on ``device`` with float ``dtype``; a Backend passes through."""
    if isinstance(name, Backend):
        return name
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}")
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; use one of: {', '.join(DEVICES)}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of: {', '.join(DTYPES)}")
    return _cached(name, device, dtype, tuple(sorted(options.items())))


@lru_cache(maxsize=None)
def _cached(name, device, dtype, options):
    try:
        importlib.import_module(name)
    except ImportError as err:
        raise ImportError(
            f"the {name} backend needs the {name} package, which is not installed ({err}). "
            f"Install it: {_INSTALL[name]}; or pick another backend from {BACKENDS}."
        ) from err
    module = importlib.import_module(f"gradest.backends.{name}")
    return module.make_backend(device=device, dtype=dtype, **dict(options))


def available_backends() -> list[str]:
    """Backends whose framework is installed (checked without importing it)."""
    import importlib.util

    return [b for b in BACKENDS if importlib.util.find_spec(b) is not None]
