"""Plugins end to end: the example package installed for real, a broken plugin, a name clash.

The registry discovers entry points once per process, so every check runs in a fresh Python
subprocess whose ``PYTHONPATH`` holds the installed plugin:

* the example `examples/gradest-antithetic` is installed with pip (``--target`` into a
  temporary folder, from a copy of its source, no network, no build isolation): it shows in
  ``gradest list``, ``list_estimators()``, the describe rows, passes ``check_estimator`` on both
  backends, runs in ``gradest run`` and is in the asv grid;
* a broken plugin (an entry point whose import raises) and a plugin whose name clashes with a
  built-in are written as installed distributions (``*.dist-info`` with ``entry_points.txt``):
  each is reported once as a warning naming the entry point (and both sources for the clash),
  while the built-ins keep working.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "gradest-antithetic"
GRADEST_SCRIPT = Path(sys.executable).with_name("gradest")


def _env(site: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    env.update(OMP_NUM_THREADS="1", COLUMNS="250", PYTHONWARNINGS="default", NO_COLOR="1")
    return env


def _run(args, site: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=ROOT, env=_env(site), capture_output=True, text=True, timeout=timeout)
    return proc


def _gradest(site: Path, *argv: str) -> subprocess.CompletedProcess:
    """The ``gradest`` command as installed (its console script), else through ``main``."""
    if GRADEST_SCRIPT.exists():
        return _run([str(GRADEST_SCRIPT), *argv], site)
    code = "import sys; from gradest.cli import main; sys.exit(main(sys.argv[1:]))"
    return _run([sys.executable, "-c", code, *argv], site)


def _json_tail(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, f"subprocess failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- the example package, installed -----------------------------------------------------------

@pytest.fixture(scope="module")
def example_site(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("antithetic")
    src, site = tmp / "src", tmp / "site"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--target", str(site), str(src)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"pip could not install the example plugin:\n{proc.stdout}\n{proc.stderr}"
    assert (site / "gradest_antithetic.py").exists()
    return site


API_SCRIPT = textwrap.dedent("""
    import json, warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import gradest
        from gradest.registry import ESTIMATORS, describe_estimators
        names = gradest.list_estimators()
        row = [list(r) for r in describe_estimators() if r.name == "antithetic"]
    from gradest.testing import check_estimator
    checks = [list(r) for r in check_estimator("antithetic", num_replicates=2000)]
    grads = gradest.gradient_samples("binary_toy", "antithetic", num_replicates=8, num_samples=2)
    try:
        from benchmarks import _grid
        grid = _grid.estimator_labels()
    except ImportError as err:
        grid = "no benchmarks: " + str(err)
    print(json.dumps({"names": names, "source": ESTIMATORS.entries["antithetic"].source,
                      "module": ESTIMATORS.entries["antithetic"].module, "row": row, "checks": checks,
                      "grads_shape": list(grads.shape), "grid": grid,
                      "warnings": [str(w.message) for w in caught if "gradest" in str(w.message)]}))
""")


@pytest.fixture(scope="module")
def example_api(example_site) -> dict:
    return _json_tail(_run([sys.executable, "-c", API_SCRIPT], example_site))


def test_example_is_discovered_through_its_entry_point(example_api):
    assert "antithetic" in example_api["names"]
    assert {"reinforce", "exact", "gumbel_softmax"} <= set(example_api["names"])  # built-ins intact
    assert example_api["source"] == "package gradest-antithetic"
    assert example_api["module"] == "gradest_antithetic"
    assert example_api["warnings"] == []


def test_example_describe_row(example_api):
    [row] = example_api["row"]
    name, source, supports, unbiased, description = row
    assert (name, source, unbiased) == ("antithetic", "package gradest-antithetic", True)
    assert supports == ["bernoulli", "categorical", "normal"]
    assert "antithetic" in description


def test_example_passes_check_estimator(example_api):
    checks = {(c[0], c[1], c[2]) for c in example_api["checks"]}
    for task in ("bandit", "binary_toy", "gaussian_quadratic"):
        for backend in ("torch", "jax"):
            for check in ("surrogate", "gradient_samples", "determinism", "unbiased"):
                assert (check, task, backend) in checks, (check, task, backend)
        assert ("parity", task, "torch+jax") in checks
    assert example_api["grads_shape"] == [8, 1]  # binary_toy: one coordinate by default


def test_example_is_in_the_asv_grid(example_api):
    grid = example_api["grid"]
    if isinstance(grid, str):
        pytest.fail(f"the asv grid could not be imported: {grid}")
    assert "antithetic" in grid


def test_example_in_gradest_list(example_site):
    proc = _gradest(example_site, "list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    first = next((i for i, ln in enumerate(lines) if "antithetic" in ln and "package" in ln), None)
    assert first is not None, proc.stdout
    row = "\n".join(lines[first:first + 3])  # a table row wraps its cells onto the next lines
    assert "gradest-antithetic" in row and "bernoulli" in row, row
    assert "Plugin problems" not in proc.stdout


def test_example_runs_in_gradest_run(example_site, tmp_path):
    out = tmp_path / "results"
    proc = _gradest(example_site, "run", "--tasks", "binary_toy", "--estimators", "antithetic", "--backends",
                    "torch", "--quick", "--seeds", "1", "--kinds", "gradient", "--num-replicates", "50",
                    "--out", str(out), "--no-report", "--no-progress", "--strict")
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    import pandas as pd

    results = pd.read_csv(out / "results.csv")
    mine = results[results["estimator"].astype(str).str.startswith("antithetic")]
    assert len(mine) > 0 and set(mine["status"]) == {"done"}, results.to_string()
    assert (mine["variance"] >= 0).all()


# ---- a broken plugin and a clash ----------------------------------------------------------------

def _fake_distribution(site: Path, dist: str, module: str, source: str, entry_points: str) -> None:
    """An installed distribution as importlib.metadata sees it: module + dist-info."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture(scope="module")
def bad_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("bad_plugins")
    _fake_distribution(site, "gradest-broken", "gradest_broken", """
        raise RuntimeError("boom: this plugin needs a library that is not installed")
    """, """
        [gradest.estimators]
        broken = gradest_broken:factory
        [gradest.tasks]
        broken_task = gradest_broken:Task
    """)
    _fake_distribution(site, "gradest-clash", "gradest_clash", """
        from gradest.registry import get_estimator

        def reinforce():
            \"\"\"A plugin estimator that took a built-in's name.\"\"\"
            return get_estimator("pathwise")._replace(name="reinforce")

        def fine():
            \"\"\"A plugin estimator next to the clashing one.\"\"\"
            return get_estimator("pathwise")._replace(name="fine")
    """, """
        [gradest.estimators]
        reinforce = gradest_clash:reinforce
        fine = gradest_clash:fine
    """)
    return site


BAD_SCRIPT = textwrap.dedent("""
    import json, warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import gradest
        from gradest.registry import ESTIMATORS, TASKS, plugin_warnings
        names, tasks = gradest.list_estimators(), gradest.list_tasks()
        names_again = gradest.list_estimators()
    grads = gradest.gradient_samples("bandit", "reinforce", num_replicates=4)
    print(json.dumps({"names": names, "tasks": tasks, "again": names_again,
                      "reinforce_source": ESTIMATORS.entries["reinforce"].source,
                      "reinforce_module": ESTIMATORS.entries["reinforce"].module,
                      "fine_source": ESTIMATORS.entries["fine"].source,
                      "warnings": [str(w.message) for w in caught if "gradest" in str(w.message)],
                      "categories": [w.category.__name__ for w in caught if "gradest" in str(w.message)],
                      "plugin_warnings": plugin_warnings(), "grads": grads.shape[0]}))
""")


@pytest.fixture(scope="module")
def bad_api(bad_site) -> dict:
    return _json_tail(_run([sys.executable, "-c", BAD_SCRIPT], bad_site))


def test_broken_plugin_is_reported_once_and_builtins_work(bad_api):
    assert "broken" not in bad_api["names"] and "broken_task" not in bad_api["tasks"]
    assert {"reinforce", "exact", "pathwise"} <= set(bad_api["names"]) and "bandit" in bad_api["tasks"]
    assert bad_api["names"] == bad_api["again"]
    assert bad_api["grads"] == 4
    broken = [w for w in bad_api["warnings"] if "gradest_broken" in w]
    assert len(broken) == 2, bad_api["warnings"]  # once per entry point (estimator, task), not per listing
    est_warning = next(w for w in broken if "'broken'" in w)
    assert "gradest_broken:factory" in est_warning and "gradest.estimators" in est_warning
    assert "package gradest-broken" in est_warning
    assert "RuntimeError: boom: this plugin needs a library that is not installed" in est_warning
    assert set(bad_api["categories"]) == {"PluginWarning"}
    assert len(bad_api["plugin_warnings"]) == len(bad_api["warnings"])


def test_name_clash_names_both_sources_and_keeps_the_builtin(bad_api):
    assert bad_api["reinforce_source"] == "built-in"
    assert bad_api["reinforce_module"] == "gradest.estimators.reinforce"
    assert bad_api["fine_source"] == "package gradest-clash"  # the rest of that package still loads
    [clash] = [w for w in bad_api["warnings"] if "gradest_clash" in w]
    assert "'reinforce'" in clash and "built-in (gradest.estimators.reinforce)" in clash
    assert "package gradest-clash (gradest_clash)" in clash and "skipped" in clash


def test_gradest_list_shows_plugin_problems(bad_site):
    proc = _gradest(bad_site, "list")
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())  # rich may wrap long lines
    assert "RuntimeError: boom" in out and "gradest_broken:factory" in out
    assert "built-in (gradest.estimators.reinforce)" in out and "package gradest-clash" in out
    assert out.count("RuntimeError: boom: this plugin needs a library that is not installed") == 2
    assert "reinforce" in out and "bandit" in out
