"""The import step: gradest importable from this working tree, offline, in the check's processes.

gradest's subpackages ``gradest.estimators``, ``gradest.tasks`` and ``gradest.reports`` live in
the top-level folders ``estimators/``, ``tasks/``, ``reports/`` (pyproject.toml's
``package-dir``), so the source tree on ``sys.path`` alone does not import them.
`ensure_importable` tries, in order: gradest as this Python already imports it from this tree;
``pip install --no-deps --no-build-isolation --no-index -e .`` (``--user`` outside a virtual
environment when that fails); the source-tree finder (`SourceTreeFinder`), which the check's
processes install when ``GRADEST_SOURCE_TREE`` is set: importing this module does it, and
``pytest -p tools.gpu_check.importable`` makes pytest import it first.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path

from .process import ROOT, run_logged, run_quiet

#: the environment variable that makes gradest's processes find its source tree
SOURCE_TREE_ENV = "GRADEST_SOURCE_TREE"
#: what a process of the check runs to be a pytest plugin / find gradest from the source tree
PLUGIN = __name__


class SourceTreeFinder(importlib.abc.MetaPathFinder):
    """Finds ``gradest.estimators``, ``gradest.tasks`` and ``gradest.reports`` in the top-level
    folders ``estimators/``, ``tasks/``, ``reports/`` of the source tree, as the package-dir
    mapping of pyproject.toml does once installed."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.mapping = package_dirs(self.root)

    def find_spec(self, name, path=None, target=None):
        folder = self.mapping.get(name)
        if folder is None:
            return None
        init = self.root / folder / "__init__.py"
        if not init.is_file():
            return None
        return importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(init.parent)])


def package_dirs(root: Path) -> dict:
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
    if not any(isinstance(f, SourceTreeFinder) for f in sys.meta_path):
        sys.meta_path.append(SourceTreeFinder(root))
    return True


if os.environ.get(SOURCE_TREE_ENV):  # set by the check for its own processes
    install_source_finder()


def _import_check(env: dict) -> tuple[bool, str]:
    """(whether a new process imports gradest's subpackages, where ``gradest.tasks`` is)."""
    code = f"import {PLUGIN}, gradest.estimators, gradest.tasks; print(gradest.tasks.__path__[0])"
    rc, text = run_quiet([sys.executable, "-c", code], timeout=120, cwd=str(ROOT), env=env)
    return rc == 0, text.strip().splitlines()[-1] if text.strip() else ""


def ensure_importable(run, allow_install: bool) -> dict:
    """gradest importable from this tree in new processes (the module docstring's order);
    ``run`` is the check's `stages.GpuCheckRun` (its folder, environment and time left).
    Returns ``{"status", "mode", "path", "notes"}`` and ``"source_finder": True`` when the
    finder is what imports it (``run.env`` then sets `SOURCE_TREE_ENV`)."""
    log = run.out / "install.log"
    ok, where = _import_check(run.env)
    inside = ok and Path(where).resolve().is_relative_to(ROOT)
    if inside:
        return {"status": "passed", "mode": "already importable from this working tree", "path": where}
    notes = [] if not ok else [f"gradest.tasks resolved to {where}, outside this working tree"]
    if allow_install:
        base = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                "--disable-pip-version-check", "-e", str(ROOT)]
        attempts = [base] + ([base[:4] + ["--user"] + base[4:]] if sys.prefix == sys.base_prefix else [])
        for cmd in attempts:
            result = run_logged(cmd, log=log, timeout=min(180, max(run.remaining(), 30)), env=run.env)
            if result["rc"] == 0:
                ok, where = _import_check(run.env)
                if ok and Path(where).resolve().is_relative_to(ROOT):
                    mode = "editable install (pip install --no-deps --no-build-isolation --no-index -e ."
                    mode += " --user)" if "--user" in cmd else ")"
                    return {"status": "passed", "mode": mode, "path": where, "notes": notes}
            notes.append(f"`{' '.join(cmd[2:])}` failed (exit {result['rc']}; see install.log)")
    run.env[SOURCE_TREE_ENV] = str(ROOT)
    ok, where = _import_check(run.env)
    if ok:
        return {"status": "passed", "mode": "source-tree finder (not installed: asv cannot import gradest)",
                "path": where, "notes": notes, "source_finder": True}
    return {"status": "failed", "mode": "not importable", "notes": notes + [where[-500:]]}
