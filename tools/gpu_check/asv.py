"""The asv step of the GPU check: the ``cuda`` rows of the asv suites in this Python.

asv comes from this Python, else from carried wheels (``--wheels DIR``, ``$GRADEST_WHEELS``,
``.whl/``) installed offline into a temporary folder (`find_asv`). The runs use a config of
the check's own (``DIR/asv/asv.conf.json``: the repository's, results in ``DIR/asv/results``),
``asv run --quick -E existing:<python>``, one run per selection (`asv_selections`; each saves
its results when it ends), stored under the working tree's commit (`asv_commit`).
`asv_result_counts` counts the numbers and failures among the saved cuda rows.
"""
from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .probe import package_version
from .process import ROOT, run_logged, run_quiet, say

#: grid labels of the asv "core" scope
CORE_ASV_ESTIMATORS = ("reinforce[baseline=loo]", "gumbel_softmax[hard=False]")
CORE_ASV_TASKS = ("bandit", "categorical_vae")
#: wheels asv needs that a research Python may lack (installed from a carried folder)
ASV_WHEEL_NAMES = ("asv", "asv_runner", "json5", "importlib_metadata", "lazy_importer", "zipp", "tabulate",
                   "packaging", "pyyaml", "pympler", "tomli")
#: where carried wheels are looked for when neither --wheels nor $GRADEST_WHEELS names a folder
DEFAULT_WHEEL_DIRS = (".whl",)
#: the asv-visible suite modules of benchmarks/ (scope "all": one asv run each)
SUITES = ("estimates", "references", "train_references", "training", "statistics")


def wheel_dirs(option: str | None) -> list[Path]:
    """The folders carried wheels are looked for in (existing or not)."""
    given = option or os.environ.get("GRADEST_WHEELS")
    return [Path(given)] if given else [ROOT / d for d in DEFAULT_WHEEL_DIRS]


def _wheel_project(path: Path) -> str:
    return path.name.split("-", 1)[0].lower().replace("-", "_")


def find_asv(run, wheels_option: str | None) -> tuple[dict | None, str]:
    """(extra environment for asv's processes, how asv was found), or (None, why not);
    ``run`` is the check's `stages.GpuCheckRun`."""
    if importlib.util.find_spec("asv") is not None and importlib.util.find_spec("asv_runner") is not None:
        return {}, f"asv {package_version('asv')} from this Python"
    dirs = wheel_dirs(wheels_option)
    for folder in (d for d in dirs if d.is_dir()):
        wheels = [w for w in sorted(folder.glob("*.whl")) if _wheel_project(w) in ASV_WHEEL_NAMES]
        if not any(_wheel_project(w) == "asv" for w in wheels):
            continue
        site = Path(tempfile.mkdtemp(prefix="gradest-asv-site-"))
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--disable-pip-version-check", "--target", str(site), *map(str, wheels)]
        result = run_logged(cmd, log=run.out / "asv.log", timeout=120, env=run.env)
        if result["rc"] != 0:
            continue
        path = os.pathsep.join([str(site)] + ([run.env["PYTHONPATH"]] if run.env.get("PYTHONPATH") else []))
        extra = {"PYTHONPATH": path, "ASV_PYTHONPATH": path}  # asv drops PYTHONPATH for its processes
        rc, text = run_quiet([sys.executable, "-c", "import asv, asv_runner; print(asv.__version__)"],
                             env={**run.env, **extra}, timeout=60)
        if rc == 0:
            return extra, f"asv {text.strip()} from the wheels in {folder} (installed into {site})"
    return None, (f"asv is not installed in this Python and no usable asv wheel was found (looked in "
                  f"{', '.join(map(str, dirs))}); carry asv's wheels (asv, asv_runner, json5, importlib_metadata) "
                  f"in .whl/ or --wheels DIR (docs/gpu.md)")


def asv_selections(scope: str, device: str) -> list[tuple[str, str]]:
    """(name, asv --bench regex) per asv invocation: each saves its results when it ends."""
    dev = re.escape(f"'{device}'")
    if scope == "all":
        return [(suite, rf"^{suite}\.[\w.]+\(.*{dev}\)$") for suite in SUITES]
    ests = "|".join(re.escape(e) for e in CORE_ASV_ESTIMATORS)
    tasks = "|".join(re.escape(t) for t in CORE_ASV_TASKS)
    grid = rf"\('({ests})', '({tasks})', '[^']*', {dev}\)$"
    return [
        ("estimates and references",
         rf"^estimates\.(GradientEstimate_\w+\.(time|peakmem)_estimate|GpuMemory_\w+\.track_gpu_peak_memory){grid}"
         rf"|^references\.\w+\.\w+\(.*{dev}\)$"),
        ("training steps", rf"^training\.TrainStep_\w+\.time_train_step{grid}|^train_references\.\w+\.\w+\(.*{dev}\)$"),
    ]


def asv_commit(run, workdir: Path) -> tuple[str | None, str | None, str]:
    """(repository for asv.conf, commit to store the results under, note)."""
    info = run.summary.get("gradest", {}).get("git", {})
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
        rc, text = run_quiet(cmd)
        if rc != 0:
            return None, None, f"no git repository, and making a scratch one failed ({text.strip()[-200:]})"
    rc, head = run_quiet(git + ["rev-parse", "HEAD"])
    return str(repo), head.strip(), ("the working tree has no git repository: results stored under the commit of "
                                      "an empty scratch repository made for this run (it names no code)")


def run_asv(run, timeout: float, scope: str, wheels: str | None, source_finder: bool) -> dict:
    """The asv step (see the module docstring): its result for the summary."""
    if scope == "none":
        return {"status": "skipped", "detail": "--asv-scope none"}
    if source_finder:
        return {"status": "skipped", "detail": "gradest is not installed in this Python, and asv's processes "
                                                "import it as installed"}
    extra, how = find_asv(run, wheels)
    if extra is None:
        return {"status": "skipped", "detail": how}
    start = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="gradest-asv-"))
    results_dir = run.out / "asv" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    repo, commit, note = asv_commit(run, workdir)
    conf = json.loads((ROOT / "asv.conf.json").read_text(encoding="utf-8"))
    conf.update({"repo": repo or str(ROOT), "branches": ["HEAD"], "benchmark_dir": str(ROOT / "benchmarks"),
                 "results_dir": str(results_dir), "env_dir": str(workdir / "env"),
                 "html_dir": str(workdir / "html")})
    conf_path = run.out / "asv" / "asv.conf.json"
    conf_path.write_text(json.dumps(conf, indent=2), encoding="utf-8")
    env = {**run.env, **extra, "JAX_COMPILATION_CACHE_DIR": str(workdir / "jax-cache")}
    log = run.out / "asv.log"
    asv = [sys.executable, "-m", "asv"]
    machine = run_logged(asv + ["machine", "--yes", "--config", str(conf_path)], log=log, timeout=60, env=env)
    if machine["rc"] != 0:
        return {"status": "failed", "detail": "asv machine --yes failed (see asv.log)", "how": how}
    runs = []
    for name, regex in asv_selections(scope, run.device):
        left = timeout - (time.monotonic() - start)
        if left < 45:
            runs.append({"name": name, "status": "skipped", "detail": "no time left"})
            continue
        cmd = asv + ["run", "--config", str(conf_path), "--quick", "-E", f"existing:{sys.executable}",
                     "--launch-method", "forkserver", "--bench", regex]
        if commit:
            cmd += ["--set-commit-hash", commit]
        say(f"asv run ({name}), at most {left:.0f} s")
        result = run_logged(cmd, log=log, timeout=left, env=env)
        status = "timeout" if result["timed_out"] else ("passed" if result["rc"] == 0 else "failed")
        runs.append({"name": name, "status": status, "seconds": result["seconds"], "rc": result["rc"],
                     "regex": regex})
    counts = asv_result_counts(results_dir, run.device)
    statuses = {r["status"] for r in runs}
    status = ("failed" if "failed" in statuses else "timeout" if "timeout" in statuses else
              "passed" if "passed" in statuses else "skipped")
    detail = (f"{counts['numbers']} results, {counts['failed']} failed, in {len(runs)} asv runs "
              f"({', '.join(r['name'] + ': ' + r['status'] for r in runs)})")
    return {"status": status, "seconds": round(time.monotonic() - start, 1), "how": how, "scope": scope,
            "commit": commit, "commit_note": note, "runs": runs, "counts": counts, "detail": detail,
            "results": str(results_dir.relative_to(run.out)), "log": log.name}


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
