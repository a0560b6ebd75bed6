"""The probe: the machine, its GPU, the versions of what the check uses, and whether each
framework sees a CUDA device.

`no_cuda_reason` decides from cheap signs alone (no framework imported) that a machine has no
CUDA device; `probe` asks the frameworks themselves, in a process of its own (it imports torch
and jax). The rest reads metadata: nothing here imports a framework at import time.
"""
from __future__ import annotations

import glob
import os
import platform
import shutil
import sys

from .process import ROOT, run_quiet

#: the device the GPU tests treat as the accelerator (the rehearsal sets "cpu")
TEST_DEVICE_ENV = "GRADEST_GPU_TEST_DEVICE"
#: the frameworks the probe asks (each its own way)
FRAMEWORKS = ("torch", "jax")


def package_version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def package_versions() -> dict:
    """Versions of what the check uses, read from the installed metadata (nothing imported)."""
    from importlib import metadata

    names = ["gradest", "numpy", "scipy", "pandas", "scikit-learn", "matplotlib", "seaborn", "rich", "torch",
             "triton", "jax", "jaxlib", "optax", "asv", "asv-runner", "pytest", "pytest-xdist", "mlxtend"]
    out = {"python": platform.python_version()}
    out.update({name: package_version(name) for name in names})
    for dist in metadata.distributions():  # the CUDA plugins of jax: jax-cuda12-plugin, jax-cuda13-pjrt, ...
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name.startswith("jax-cuda"):
            out[name] = dist.version
    return out


def nvidia_smi() -> dict | None:
    """``{"gpus": [{name, driver, memory, compute_capability}]}``, ``{"error"}``, or None
    without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    rc, text = run_quiet(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap",
                          "--format=csv,noheader"], timeout=30)
    if rc != 0:
        return {"error": text.strip()[-500:]}
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 4:
            gpus.append({"name": parts[0], "driver": parts[1], "memory": parts[2], "compute_capability": parts[3]})
    return {"gpus": gpus}


def machine_info() -> dict:
    return {"hostname": platform.node(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "executable": sys.executable,
            "in_virtualenv": sys.prefix != sys.base_prefix}


def git_info() -> dict:
    """The working tree's commit and whether it has uncommitted changes."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        return {"commit": None, "note": "no git repository here"}
    rc, head = run_quiet(["git", "-C", str(ROOT), "rev-parse", "HEAD"])
    if rc != 0:
        return {"commit": None, "note": head.strip()[-300:]}
    _, status = run_quiet(["git", "-C", str(ROOT), "status", "--porcelain"])
    return {"commit": head.strip(), "dirty": bool(status.strip())}


def no_cuda_reason() -> str | None:
    """Why this machine has no CUDA device, from cheap signs alone (no framework imported), or
    None when it may have one (the probe then asks the frameworks)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return f"CUDA_VISIBLE_DEVICES={visible!r} hides every CUDA device"
    if not (os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi")
            or glob.glob("/dev/nvidia[0-9]*")):
        return "no NVIDIA driver on this machine (no /proc/driver/nvidia, no nvidia-smi, no /dev/nvidia*)"
    return None


def probe(device: str) -> dict:
    """What each framework says about ``device`` ("cuda", or "cpu" in a rehearsal): per
    framework ``installed``, its version, what it sees, and ``device_ok``."""
    out: dict = {}
    try:
        import torch

        info = {"installed": True, "version": torch.__version__, "cuda_build": torch.version.cuda,
                "cuda_available": bool(torch.cuda.is_available())}
        if info["cuda_available"]:
            props = torch.cuda.get_device_properties(0)
            info.update({"device_count": torch.cuda.device_count(), "device_name": torch.cuda.get_device_name(0),
                         "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
                         "memory_gib": round(props.total_memory / 2**30, 1),
                         "cudnn": torch.backends.cudnn.version(),
                         "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32)})
        info["device_ok"] = info["cuda_available"] if device == "cuda" else True
        out["torch"] = info
    except Exception as err:  # not installed, or a broken build: say which
        out["torch"] = {"installed": False, "device_ok": False, "error": f"{type(err).__name__}: {err}"}
    try:
        import jax

        info = {"installed": True, "version": jax.__version__, "default_backend": jax.default_backend()}
        try:
            gpus = jax.devices("gpu")
        except RuntimeError as err:
            gpus, info["gpu_error"] = [], str(err).splitlines()[0][:300]
        info["gpus"] = [getattr(d, "device_kind", str(d)) for d in gpus]
        info["device_ok"] = bool(gpus) if device == "cuda" else True
        out["jax"] = info
    except Exception as err:
        out["jax"] = {"installed": False, "device_ok": False, "error": f"{type(err).__name__}: {err}"}
    return out
