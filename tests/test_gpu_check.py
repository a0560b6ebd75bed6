"""The GPU check's smoke test: on a machine without a CUDA device, ``make gpu-check`` says so,
runs nothing GPU-bound, writes its summary and exits 0 (CI runs it so)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_without_cuda_says_so_and_exits_0(tmp_path):
    out = tmp_path / "gpu-check"
    # no device visible, whatever this machine has: the no-GPU path, and fast
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    if shutil.which("make"):
        cmd = ["make", "--no-print-directory", "gpu-check", f"PYTHON={sys.executable}", f"GPU_CHECK_OUT={out}"]
    else:
        cmd = [sys.executable, "-m", "gradest.gpu_check", "--out", str(out)]
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
