"""Shared fixtures: the backends (skipped cleanly when a framework is missing) and a z-test."""
from __future__ import annotations

import importlib.util
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np
import pytest

BACKEND_NAMES = ["torch", "jax"]


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.fixture(params=BACKEND_NAMES)
def backend_name(request):
    if not _has(request.param):
        pytest.skip(f"{request.param} is not installed")
    return request.param


@pytest.fixture
def backend(backend_name):
    from gradest.backends import get_backend

    return get_backend(backend_name)


@pytest.fixture
def backend64(backend_name):
    from gradest.backends import get_backend

    return get_backend(backend_name, dtype="float64")


def has_cuda() -> bool:
    if _has("torch"):
        import torch

        if torch.cuda.is_available():
            return True
    return False
