"""Results carry what made them: the code fingerprint follows the source of an estimator's and a
task's modules (a plugin's file and its package's helpers included), an edited plugin's cells
are computed again while unchanged cells are reused, result rows carry ``noise_version`` and
``code_fingerprint``, and ``manifest.json`` records the budget after the command's overrides."""
from __future__ import annotations

import importlib
import json
import os
import sys
import textwrap

import pandas as pd
import pytest

import gradest
import gradest.version
from gradest import cli, provenance, sweep
from gradest.noise import NOISE_VERSION
from gradest.registry import ESTIMATORS
from gradest.sweep import Budget, Cell, CellRunner, run_sweep

TINY = Budget("quick", num_replicates=20, sample_sizes=(2,), seeds=1, train_steps=3)

PLUGIN = "gradest_provenance_plugin"
PLUGIN_SOURCE = '''
    """A local plugin estimator for the provenance tests: REINFORCE with one baseline."""
    from gradest.estimators.reinforce import reinforce
    from gradest.registry import register_estimator

    BASELINE = "{baseline}"


    @register_estimator("provenance_plugin")
    def provenance_plugin():
        """REINFORCE under another name."""
        return reinforce(baseline=BASELINE)._replace(name="provenance_plugin")
'''


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


def _bump_mtime(path):
    """A later modification time, whatever the file system's time resolution."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A local plugin file in tmp_path, imported (it registers ``provenance_plugin``); ``edit``
    rewrites it with another baseline and imports it again, as a new process would."""
    path = tmp_path / "site" / f"{PLUGIN}.py"
    _write(path, PLUGIN_SOURCE.format(baseline="none"))
    monkeypatch.syspath_prepend(str(path.parent))
    importlib.invalidate_caches()
    before = set(ESTIMATORS.entries)
    module = importlib.import_module(PLUGIN)

    def edit(baseline):
        _write(path, PLUGIN_SOURCE.format(baseline=baseline))
        _bump_mtime(path)  # a baseline name of the old one's length: only contents and time differ
        del ESTIMATORS.entries["provenance_plugin"]  # the registry keeps a name's first factory
        importlib.reload(module)

    edit.path = path
    try:
        yield edit
    finally:
        for name in set(ESTIMATORS.entries) - before:
            del ESTIMATORS.entries[name]
        sys.modules.pop(PLUGIN, None)


def test_fingerprint_covers_the_builtin_modules_and_their_helpers(monkeypatch):
    modules = [m for m, _ in provenance.code_sources("reinmax")]
    assert {"gradest.estimators.reinmax", "gradest.estimators.gumbel_rao",
            "gradest.estimators._conditional_gumbel"} <= set(modules)
    # not the ground floor (gradest.relaxations) nor the harness: gradest's version stands for them
    assert all(m.startswith(("gradest.estimators.", "gradest.tasks.")) for m in modules)
    assert [m for m, _ in provenance.code_sources("lasso_huber", "task")][0] == "gradest.tasks.lasso_huber"
    assert [m for m, _ in provenance.code_sources("gradient", "cell kind")] == ["gradest.kinds.gradient"]
    fp = provenance.code_fingerprint("reinforce", "bandit")
    assert len(fp) == provenance.FINGERPRINT_DIGITS and int(fp, 16) >= 0
    assert fp == provenance.code_fingerprint("reinforce", "bandit")
    assert len({fp, provenance.code_fingerprint("exact", "bandit"),
                provenance.code_fingerprint("reinforce", "binary_toy")}) == 3
    assert provenance.code_fingerprint("reinforce", "bandit", cell_kind="gradient") not in (fp, None)
    monkeypatch.setattr(gradest.version, "__version__", gradest.__version__ + ".post1")
    assert provenance.code_fingerprint("reinforce", "bandit") != fp  # gradest's version stands for the harness
    with pytest.raises(ValueError, match="unknown estimator 'no_such_estimator'"):
        provenance.code_fingerprint("no_such_estimator", "bandit")
    with pytest.raises(ValueError, match="unknown cell kind 'no_such_kind'"):
        provenance.code_fingerprint("reinforce", "bandit", cell_kind="no_such_kind")


def test_fingerprint_follows_a_plugin_file_contents(plugin):
    assert provenance.code_sources("provenance_plugin") == [(PLUGIN, str(plugin.path))]
    first = provenance.code_fingerprint("provenance_plugin", "bandit")
    _bump_mtime(plugin.path)  # touched, not changed: the same fingerprint
    assert provenance.code_fingerprint("provenance_plugin", "bandit") == first
    plugin("loo!")  # as long as "none": only the contents differ
    assert provenance.code_fingerprint("provenance_plugin", "bandit") != first
    plugin("none")
    assert provenance.code_fingerprint("provenance_plugin", "bandit") == first


def test_fingerprint_covers_the_helpers_of_a_plugin_package(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _write(site / "provpkg" / "__init__.py", "")
    _write(site / "provpkg" / "_helper.py", "SCALE = 1.0\n")
    _write(site / "provpkg" / "estimators.py", '''
        from gradest.estimators.reinforce import reinforce
        from gradest.registry import register_estimator


        @register_estimator("provpkg_estimator")
        def provpkg_estimator():
            """REINFORCE, with a helper imported inside the factory."""
            from . import _helper  # noqa: F401
            return reinforce(baseline="none")._replace(name="provpkg_estimator")
    ''')
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    before = set(ESTIMATORS.entries)
    try:
        importlib.import_module("provpkg.estimators")
        assert [m for m, _ in provenance.code_sources("provpkg_estimator")] == ["provpkg._helper",
                                                                               "provpkg.estimators"]
        first = provenance.code_fingerprint("provpkg_estimator", "bandit")
        _write(site / "provpkg" / "_helper.py", "SCALE = 2.0\n")
        _bump_mtime(site / "provpkg" / "_helper.py")
        assert provenance.code_fingerprint("provpkg_estimator", "bandit") != first
    finally:
        for name in set(ESTIMATORS.entries) - before:
            del ESTIMATORS.entries[name]
        for name in [m for m in sys.modules if m == "provpkg" or m.startswith("provpkg.")]:
            del sys.modules[name]


def test_editing_a_plugin_recomputes_its_cells_and_reuses_the_others(plugin, tmp_path):
    out = tmp_path / "results"
    cells = sweep.plan(["bandit"], ["provenance_plugin", "exact"], ["torch"], budget=TINY, kinds=["gradient"])
    assert len(cells) == 2
    assert {c.noise_version for c in cells} == {NOISE_VERSION}
    first = run_sweep(cells, out, progress=False)
    assert first.counts == {"done": 2, "skipped": 0, "failed": 0}, first.results[["estimator", "reason"]]
    rows = first.results.set_index("estimator_name")
    for cell in cells:
        assert rows.loc[cell.estimator, "code_fingerprint"] == cell.code
        assert rows.loc[cell.estimator, "noise_version"] == NOISE_VERSION
        record = json.loads((out / "cells" / f"{cell.key}.json").read_text())
        assert (record["code_fingerprint"], record["noise_version"]) == (cell.code, NOISE_VERSION)
    on_disk = pd.read_csv(out / "results.csv").set_index("estimator_name")
    assert on_disk.loc["exact", "code_fingerprint"] == rows.loc["exact", "code_fingerprint"]
    assert (on_disk["noise_version"] == NOISE_VERSION).all()

    plugin("loo")
    edited = sweep.plan(["bandit"], ["provenance_plugin", "exact"], ["torch"], budget=TINY, kinds=["gradient"])
    old, new = ({c.estimator: c for c in group} for group in (cells, edited))
    assert new["exact"].key == old["exact"].key
    assert new["provenance_plugin"].key != old["provenance_plugin"].key
    runner, ran = CellRunner(), []
    second = run_sweep(edited, out, progress=False, runner=lambda c: ran.append(c) or runner(c))
    assert [c.key for c in ran] == [new["provenance_plugin"].key]
    assert second.reused == 1 and second.counts["done"] == 2
    rows2 = second.current.set_index("estimator_name")
    assert len(second.current) == 2
    assert len(second.results) == 3  # the store keeps the old code's cell, marked as not in this run
    assert rows2.loc["provenance_plugin", "code_fingerprint"] == new["provenance_plugin"].code
    assert rows2.loc["provenance_plugin", "code_fingerprint"] != rows.loc["provenance_plugin", "code_fingerprint"]
    # the new code ran: the leave-one-out baseline has another variance than none at S=2
    assert rows2.loc["provenance_plugin", "variance"] != rows.loc["provenance_plugin", "variance"]
    pd.testing.assert_series_equal(rows2.loc["exact"], rows.loc["exact"])  # reused as it was


def test_unregistered_estimator_cell_is_made_and_fails_when_run():
    cell = Cell("gradient", "bandit", "no_such_estimator", "torch", settings={"num_replicates": 4})
    assert cell.code == sweep.UNREGISTERED and cell.spec()["code"] == sweep.UNREGISTERED
    out = CellRunner()(cell)
    assert out["status"] == "failed" and "unknown estimator 'no_such_estimator'" in out["reason"]


def test_manifest_records_the_budget_that_ran(tmp_path, capsys):
    out = tmp_path / "results"
    argv = ["run", "--tasks", "bandit", "--estimators", "exact", "--backends", "torch", "--quick",
            "--kinds", "gradient", "train", "--num-replicates", "7", "--train-steps", "3", "--seeds", "1",
            "--out", str(out), "--no-report", "--no-progress", "--strict"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    budget = manifest["budget"]
    assert budget["name"] == "quick" and budget["num_replicates"] == 7 and budget["train_steps"] == 3
    assert budget["seeds"] == 1 and budget["measured_seeds"] is None
    assert budget["sample_sizes"] is None  # what was not overridden is QUICK's (each task's declared S)
    assert budget["core_after_first"] is sweep.QUICK.core_after_first
    assert manifest["noise_version"] == NOISE_VERSION
    # and it is what ran
    table = pd.read_csv(out / "results.csv")
    assert set(table.loc[table["kind"] == "gradient", "num_replicates"]) == {7}
    assert set(table.loc[table["kind"] == "train", "steps"]) == {3}
    assert set(table["seed"]) == {0}
    assert sweep.resolve_budget(quick=True) == sweep.QUICK
