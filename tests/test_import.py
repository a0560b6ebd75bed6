"""`import gradest` imports neither framework; missing backends and devices are clear errors."""
import subprocess
import sys

import pytest


def test_import_gradest_imports_no_framework():
    code = ("import sys, gradest; gradest.list_estimators(); gradest.list_tasks(); "
            "print(sorted(m for m in ('torch', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_missing_backend_is_a_clear_error(monkeypatch):
    import builtins

    from gradest.backends import _cached

    _cached.cache_clear()
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "jax" or name.startswith("jax."):
            raise ImportError("No module named 'jax'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.setattr("importlib.import_module", lambda name, package=None: fake_import(name))
    from gradest.backends import get_backend

    with pytest.raises(ImportError, match="pip install"):
        get_backend("jax", device="cpu", dtype="float32", probe=True)
    _cached.cache_clear()


def test_unknown_backend_device_dtype():
    from gradest.backends import get_backend

    with pytest.raises(ValueError, match="known backends: torch, jax"):
        get_backend("numpy")
    with pytest.raises(ValueError, match="use one of: cpu, cuda"):
        get_backend("torch", device="tpu")
    with pytest.raises(ValueError, match="float32, float64"):
        get_backend("torch", dtype="float16")


def test_cuda_without_gpu_is_a_clear_error(backend_name):
    from conftest import has_cuda
    from gradest.backends import get_backend

    if backend_name == "torch" and has_cuda():
        pytest.skip("a CUDA device is present")
    if backend_name == "jax":
        import jax

        if any(d.platform == "gpu" for d in jax.devices()):
            pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="device='cpu'"):
        get_backend(backend_name, device="cuda")
