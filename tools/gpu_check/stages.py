"""The stages of the GPU check: their budget, the run's record, and the stages run as commands.

`GpuCheckRun` is one run of the check: its folder, its deadline, the environment of its
processes and the summary it rewrites after every step (``summary.json``, ``summary.md``).
Each stage gets at most its share of the budget (`STAGE_SHARES`), and what earlier stages left
unused goes to the later ones (`GpuCheckRun.cap`). `run_pytest` runs ``pytest -m gpu`` and
reads its JUnit XML back (`junit_tests`); `run_timings` runs the timing process
(`tools.gpu_check.timings`) and reads ``timings.json``.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from .importable import PLUGIN
from .probe import TEST_DEVICE_ENV
from .process import ROOT, now, run_logged, say
from .summary import markdown
from .timings import BANDIT_REPLICATES

#: seconds the whole check may take by default (8 minutes on one GPU)
DEFAULT_BUDGET = 480
#: the rehearsal on a CPU gets longer (the CPU is slower, and nothing is rationed there)
REHEARSAL_BUDGET = 1800
#: the share of the budget each stage may use at most (the later ones also get what is left)
STAGE_SHARES = {"pytest": 0.4, "timings": 0.22, "asv": 1.0}
#: seconds kept back for writing the summary
RESERVE = 10


class GpuCheckRun:
    """One run of the check: its folder, its deadline and the summary it keeps writing."""

    def __init__(self, out: Path, budget: float, rehearse: bool):
        self.out = out
        self.start = time.monotonic()
        self.deadline = self.start + budget
        self.rehearse = rehearse
        self.device = "cpu" if rehearse else "cuda"
        self.summary: dict = {"gradest_gpu_check": 1, "started": now(), "budget_s": budget, "rehearsal": rehearse,
                              "status": "running", "out": str(out), "checks": {}, "timings": {}}
        self.env = dict(os.environ)
        self.env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # several processes share the GPU
        self.env["PYTHONUNBUFFERED"] = "1"
        self.env[TEST_DEVICE_ENV] = self.device

    def remaining(self) -> float:
        return self.deadline - time.monotonic() - RESERVE

    def cap(self, stage: str, budget: float) -> float:
        """Seconds ``stage`` may take: its share of ``budget``, at most what is left."""
        return min(STAGE_SHARES[stage] * budget, self.remaining())

    def record(self, name: str, result: dict) -> None:
        self.summary["checks"][name] = result
        self.write()

    def write(self) -> None:
        self.summary["elapsed_s"] = round(time.monotonic() - self.start, 1)
        (self.out / "summary.json").write_text(json.dumps(self.summary, indent=2, default=str), encoding="utf-8")
        (self.out / "summary.md").write_text(markdown(self.summary), encoding="utf-8")


# ---- pytest -m gpu -------------------------------------------------------------------------------
def gpu_test_files() -> list[str]:
    """The test files that hold GPU tests (collecting only those keeps a broken unrelated test
    module from stopping the GPU run)."""
    files = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if "mark.gpu" in text:
            files.append(str(path.relative_to(ROOT)))
    return files


def run_pytest(run: GpuCheckRun, timeout: float, source_finder: bool) -> dict:
    files = gpu_test_files()
    if not files:
        return {"status": "failed", "detail": "no test file under tests/ holds GPU tests"}
    if importlib.util.find_spec("pytest") is None:
        return {"status": "skipped", "detail": "pytest is not installed in this Python"}
    xml = run.out / "pytest.xml"
    cmd = [sys.executable, "-m", "pytest", *files, "-m", "gpu", "-q", "-rfEs", "-p", "no:cacheprovider",
           f"--junitxml={xml}", "-o", "junit_family=xunit2"]
    if source_finder:
        cmd += ["-p", PLUGIN]
    workers = None
    if importlib.util.find_spec("xdist") is not None:
        cpus = os.cpu_count() or 2
        workers = min(8, cpus // 2) if cpus > 4 else cpus  # half the cores: XLA compiles on threads
        cmd += ["-n", str(workers)]
    say(f"pytest -m gpu on {', '.join(files)} ({workers or 'no'} xdist workers), at most {timeout:.0f} s")
    result = run_logged(cmd, log=run.out / "pytest.log", timeout=timeout, env=run.env)
    tests = junit_tests(xml)
    counts = {k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failed", "error", "skipped")}
    if result["timed_out"]:
        status = "timeout"
    elif result["rc"] == 0 and counts["passed"] > 0:
        status = "passed"
    else:
        status = "failed"
    detail = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or f"exit {result['rc']}, no results"
    if result["timed_out"]:
        detail += f" (interrupted at {timeout:.0f} s)"
    return {"status": status, "seconds": result["seconds"], "rc": result["rc"], "workers": workers,
            "files": files, "counts": counts, "detail": detail, "tests": tests,
            "log": "pytest.log", "junit": xml.name}


def junit_tests(path: Path) -> list[dict]:
    """Every test case of a JUnit XML file: name, outcome, seconds, message."""
    if not path.exists():
        return []
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return []
    tests = []
    for case in root.iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = "failed" if tag == "failure" else tag
                message = (node.get("message") or node.text or "").strip()
                break
        tests.append({"name": f"{case.get('classname', '')}::{case.get('name', '')}",
                      "outcome": outcome, "seconds": round(float(case.get("time") or 0.0), 2),
                      "message": message[:600]})
    return tests


# ---- the timings (their own process) ----------------------------------------------------------
def run_timings(run: GpuCheckRun, timeout: float, mnist_dir: str | None) -> dict:
    path = run.out / "timings.json"
    cmd = [sys.executable, "-m", "tools.gpu_check", "--_stage", "timings", "--out", str(run.out),
           "--_device", run.device, "--_seconds", f"{max(timeout - 10, 5):.0f}"]
    if mnist_dir:
        cmd += ["--mnist-dir", mnist_dir]
    if run.rehearse:
        cmd += ["--rehearse"]
    say(f"timings (categorical_vae step, bandit R = {BANDIT_REPLICATES:,}), at most {timeout:.0f} s")
    result = run_logged(cmd, log=run.out / "timings.log", timeout=timeout, env=run.env, grace=8)
    timings = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    run.summary["timings"] = timings
    errors = [f"{k}: {v}" for k, v in _errors(timings)]
    if result["timed_out"]:
        status = "timeout"
    elif result["rc"] != 0 or errors:
        status = "failed"
    else:
        status = "passed"
    skipped = [k for k, v in _walk(timings) if isinstance(v, dict) and v.get("skipped")]
    detail = "; ".join(errors[:3]) or (f"{len(skipped)} parts skipped (see the timings)" if skipped else "all measured")
    return {"status": status, "seconds": result["seconds"], "rc": result["rc"], "detail": detail,
            "errors": errors, "log": "timings.log", "file": path.name}


def _walk(tree, prefix=""):
    """(path, node) for every dict in a tree of dicts and lists."""
    if isinstance(tree, dict):
        yield prefix, tree
        for k, v in tree.items():
            yield from _walk(v, f"{prefix}/{k}" if prefix else str(k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _walk(v, f"{prefix}[{i}]")


def _errors(tree):
    for key, node in _walk(tree):
        if isinstance(node, dict) and node.get("error"):
            yield key, node["error"]
