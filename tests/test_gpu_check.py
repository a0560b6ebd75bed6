"""The GPU check (``tools/gpu_check/``, ``make gpu-check``): on a machine without a CUDA device it
says so, runs nothing GPU-bound, writes its summary and exits 0 (CI runs it so); its modules
import no framework until a step needs one; its training-step timings run the hand-written
steps of ``benchmarks/`` (on the CPU here, tiny)."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tools/ is run from the repository root, never installed


def test_gpu_check_without_cuda_says_so_and_exits_0(tmp_path):
    out = tmp_path / "gpu-check"
    # no device visible, whatever this machine has: the no-GPU path, and fast
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    if shutil.which("make"):
        cmd = ["make", "--no-print-directory", "gpu-check", f"PYTHON={sys.executable}", f"GPU_CHECK_OUT={out}"]
    else:
        cmd = [sys.executable, "-m", "tools.gpu_check", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no CUDA device" in proc.stdout
    assert "pip install" not in proc.stdout + proc.stderr  # it installs nothing without a GPU
    rule = next(line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("gpu-check:"))
    assert rule.strip() == "gpu-check:"  # no prerequisite: no venv on a GPU machine's own Python

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "no_cuda" and summary["cuda"] is False
    assert "CUDA_VISIBLE_DEVICES" in summary["reason"]
    assert {name: check["status"] for name, check in summary["checks"].items()} == {
        "pytest": "skipped", "timings": "skipped", "asv": "skipped"}
    assert summary["versions"]["python"] and summary["machine"]["executable"] == sys.executable
    assert not (out / "pytest.log").exists() and not (out / "timings.json").exists()  # nothing GPU-bound ran

    page = (out / "summary.md").read_text(encoding="utf-8")
    assert page.startswith("# gradest GPU check: no CUDA device")
    assert "Nothing GPU-bound ran" in page


def test_the_check_is_a_developer_tool_that_imports_no_framework_until_a_step_runs():
    assert importlib.util.find_spec("gradest.gpu_check") is None  # not in the installed package
    code = ("import sys, pkgutil, importlib, tools.gpu_check as g; "
            "[importlib.import_module(f'tools.gpu_check.{m.name}') for m in pkgutil.iter_modules(g.__path__)]; "
            "print(sorted({'torch', 'jax', 'optax', 'gradest', 'benchmarks'} & set(sys.modules)))")
    env = {k: v for k, v in os.environ.items() if k != "GRADEST_SOURCE_TREE"}  # (that one imports gradest)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("mode", ["torch eager", "jax"])
def test_training_step_timings_run_the_benchmarks_hand_written_steps(mode):
    """The timings' contenders are `benchmarks.train_references`' steps at S = 1, from equal
    parameters, both training (tiny categorical_vae on the CPU)."""
    framework = "jax" if mode == "jax" else "torch"
    if importlib.util.find_spec(framework) is None:
        pytest.skip(f"{framework} is not installed")
    import gradest
    from benchmarks._references import for_backend
    from tools.gpu_check import timings

    task = gradest.get_task("categorical_vae", dataset="digits", num_latents=2, num_categories=3, hidden=(8,),
                            batch_size=10)
    gradest_step, hand_step = timings._contenders(mode, task, "cpu")
    assert isinstance(hand_step.__self__, for_backend(framework).VaeTrainStep)
    assert hand_step.__self__.t == 0 and gradest_step.__self__.num_samples == 1
    losses = [(gradest_step(), hand_step()) for _ in range(2)]
    assert all(math.isfinite(a) and math.isfinite(b) for a, b in losses)
    assert losses[0][0] == pytest.approx(losses[0][1], rel=0.5)  # the same loss at θ₀, other noise
