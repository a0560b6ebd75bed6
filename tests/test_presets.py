"""Presets (`gradest.presets`): declarations plan valid training cells, the CLI runs them, the
results folder keeps the paper's numbers and the report compares them with ours."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from gradest.cli import main
from gradest.measure import check_compatible
from gradest.presets import (Ordering, Preset, PresetBudget, PresetEstimator, PresetTask, Published, get_preset,
                             plan_preset, preset_names, preset_record, register_preset)
from gradest.registry import get_estimator, get_task
from gradest.reports.published import check_orderings, published_table

BUILT_IN = ("dong2020", "jang2017", "tucker2017")

# a tiny preset of this test module: its "paper" numbers are made up for the test, not a paper's
TINY = register_preset(Preset(
    name="test_tiny_toy", title="tiny toy preset of the tests", citation="none (test)", setting="binary_toy",
    tasks=(PresetTask("toy", "binary_toy", options={"target": [0.45]}),),
    estimators=(PresetEstimator("reinforce", paper="SF"), PresetEstimator("disarm")),
    quick=PresetBudget(steps=12, seeds=2, learning_rate=0.1, track_every=4, track_replicates=8),
    full=PresetBudget(steps=24, seeds=2, learning_rate=0.1),
    published=(Published("toy", "SF", 0.123, "exact loss", "Table 0, row toy, column SF", "final_exact_loss",
                         "reinforce"),),
    orderings=(Ordering("toy", "disarm", "reinforce", "self_log10_variance", "lower variance", "Sec. 0"),),
))


def test_built_in_presets_are_registered():
    assert set(BUILT_IN) <= set(preset_names())
    with pytest.raises(ValueError, match="known presets: .*jang2017"):
        get_preset("no_such_preset")


@pytest.mark.parametrize("name", BUILT_IN)
def test_preset_plans_valid_train_cells(name):
    preset = get_preset(name)
    quick = plan_preset(preset, ["torch", "jax"], quick=True)
    full = plan_preset(preset, ["torch", "jax"])
    assert quick and len(quick) < len(full)
    assert {c.kind for c in quick + full} == {"train"}
    assert {c.backend for c in quick} == {"torch"}  # the quick budget runs the first backend only
    assert max(c.settings["steps"] for c in quick) < min(c.settings["steps"] for c in full)
    assert {c.task for c in full} == {t.task for t in preset.tasks}
    built = {}
    for cell in full:
        key = json.dumps([cell.task, cell.task_options], sort_keys=True, default=str)
        if key not in built:
            built[key] = get_task(cell.task, **cell.task_options)
        check_compatible(built[key], get_estimator(cell.estimator, **cell.estimator_options), cell.num_samples)
    # every published value and ordering names a task and an estimator the preset has
    specs = {e.spec for e in preset.estimators}
    ids = {t.id for t in preset.tasks}
    for p in preset.published:
        assert p.task in ids and (p.estimator is None or p.estimator in specs)
    for o in preset.orderings:
        assert o.task in ids and {o.better, o.worse} <= specs


def test_mnist_tasks_use_mnist5k_unless_a_data_dir_is_given(tmp_path):
    preset = get_preset("jang2017")
    assert {c.task_options["dataset"] for c in plan_preset(preset, quick=True)} == {"mnist5k"}
    with_dir = plan_preset(preset, quick=True, data_dir=tmp_path)
    assert {(c.task_options["dataset"], c.task_options["data_dir"]) for c in with_dir} == {("mnist", str(tmp_path))}
    assert "mnist5k" in preset_record(preset, plan_preset(preset, quick=True), quick=True)["data"]


def test_estimators_narrow_a_preset_add_registered_ones_and_refuse_unknown_ones():
    preset = get_preset("tucker2017")
    cells = plan_preset(preset, quick=True, estimators=["relax", "disarm"])
    assert {c.estimator for c in cells} == {"relax", "disarm"}
    added = plan_preset(preset, quick=True, estimators=["relax", "vimco"])
    assert {c.estimator for c in added} == {"relax", "vimco"}  # vimco is registered: added beside relax
    with pytest.raises(ValueError, match="has no estimator 'no_such' and no estimator 'no_such' is registered"):
        plan_preset(preset, quick=True, estimators=["no_such"])


# two entries of one estimator (DisARM at S = 2 and S = 4) of this test module's preset
TWO_DISARMS = register_preset(Preset(
    name="test_two_disarms", title="two DisARM entries", citation="none (test)", setting="binary_toy",
    tasks=(PresetTask("toy", "binary_toy", options={"target": [0.45]}),),
    estimators=(PresetEstimator("reinforce"), PresetEstimator("disarm", 2), PresetEstimator("disarm", 4)),
    quick=PresetBudget(steps=6, seeds=1, learning_rate=0.1), full=PresetBudget(steps=12, seeds=1)))


def test_narrowing_keeps_every_entry_of_an_estimator_and_a_plugin_joins_the_preset(tmp_path, capsys):
    cells = plan_preset(TWO_DISARMS, quick=True, estimators=["disarm"])
    assert sorted(c.num_samples for c in cells) == [2, 4] and {c.estimator for c in cells} == {"disarm"}
    plugin = tmp_path / "mine.py"
    plugin.write_text("from gradest.estimators.reinforce import reinforce\n"
                      "from gradest.registry import register_estimator\n\n\n"
                      "@register_estimator('test_mine')\n"
                      "def test_mine():\n"
                      "    \"\"\"REINFORCE under another name.\"\"\"\n"
                      "    return reinforce()._replace(name='test_mine')\n")
    out = tmp_path / "results"
    try:
        code = main(["run", "--preset", "test_two_disarms", "--quick", "--plugins", str(plugin), "--estimators",
                     "disarm", "test_mine", "--backends", "torch", "--out", str(out), "--no-progress", "--no-report"])
        assert code == 0, capsys.readouterr().err
    finally:
        from gradest import plugins
        from gradest.registry import ESTIMATORS

        ESTIMATORS.entries.pop("test_mine", None)
        plugins._LOADED.pop(str(plugin.resolve()), None)
    rows = pd.read_csv(out / "results.csv")
    ran = sorted(zip(rows["estimator_name"], rows["num_samples"]))
    assert ran == [("disarm", 2), ("disarm", 4), ("test_mine", 1)] and (rows["status"] == "done").all()


def test_cli_refuses_unknown_presets_and_fixed_selections(capsys):
    assert main(["run", "--preset", "no_such_preset", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'no_such_preset'" in err and "dong2020, jang2017" in err and "tucker2017" in err
    assert main(["run", "--preset", "tucker2017", "--tasks", "bandit"]) == 2
    assert "drop --tasks" in capsys.readouterr().err
    assert main(["run", "--preset", "tucker2017", "--estimators", "vimko"]) == 2
    assert "has no estimator 'vimko'" in capsys.readouterr().err
    assert main(["run", "--data-dir", "x", "--tasks", "bandit"]) == 2
    assert "--data-dir goes with --preset" in capsys.readouterr().err


def test_preset_run_end_to_end_keeps_the_papers_numbers_and_reports_them(tmp_path, capsys):
    out = tmp_path / "results"
    code = main(["run", "--preset", "test_tiny_toy", "--quick", "--backends", "torch", "--out", str(out),
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    record = manifest["preset"]
    assert record["name"] == "test_tiny_toy" and record["published"][0]["value"] == 0.123
    assert {c["key"] for c in record["cells"]} == set(manifest["cell_keys"])

    cells = pd.read_csv(out / "results.csv")
    assert (cells["status"] == "done").all() and cells["self_log10_variance"].notna().all()
    ours = cells.loc[cells["estimator_name"] == "reinforce", "final_exact_loss"].mean()
    page = (out / "report" / "index.html").read_text()
    assert "Published vs measured" in page and "Table 0, row toy, column SF" in page
    assert "0.123" in page and f"{ours:.3g}" in page
    table = published_table(record, cells)
    assert table.loc[0, "ours"] == pytest.approx(ours) and table.loc[0, "seeds"] == 2

    # the report reads the numbers from the results folder, not from the preset
    record["published"][0]["value"] = 0.987
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert main(["report", str(out), "--out", str(tmp_path / "again")]) == 0
    again = (tmp_path / "again" / "index.html").read_text()
    assert "0.987" in again and "0.123" not in again


def _record(orderings):
    index = [{"key": f"{est}{seed}", "task": "toy", "estimator": est, "backend": "torch", "seed": seed}
             for est in ("a", "b", "c") for seed in range(3)]
    return {"cells": index, "orderings": orderings, "published": []}


def _cells(values):
    rows = [{"key": f"{est}{seed}", "status": "done", "loss": v} for est, vs in values.items()
            for seed, v in enumerate(vs)]
    return pd.DataFrame(rows)


def test_orderings_hold_or_not_on_sample_data():
    orderings = [{"task": "toy", "better": "a", "worse": "b", "measured": "loss", "claim": "", "source": ""},
                 {"task": "toy", "better": "b", "worse": "a", "measured": "loss", "claim": "", "source": ""},
                 {"task": "toy", "better": "a", "worse": "c", "measured": "loss", "claim": "", "source": ""},
                 {"task": "toy", "better": "a", "worse": "missing", "measured": "loss", "claim": "", "source": ""}]
    cells = _cells({"a": [1.0, 1.1, 0.9], "b": [2.0, 2.1, 1.9], "c": [0.5, 1.5, 1.3]})
    result = check_orderings(_record(orderings), cells)
    assert list(result["holds"]) == ["yes", "no", "yes", "not measured"]
    assert list(result["separated"]) == ["yes", "yes", "no", ""]


def test_published_table_intervals_and_sign():
    record = _record([])
    record["published"] = [{"task": "toy", "paper_name": "A", "value": -1.0, "metric": "ELBO", "source": "T1",
                            "measured": "loss", "estimator": "a", "sign": -1.0},
                           {"task": "toy", "paper_name": "D", "value": 3.0, "metric": "ELBO", "source": "T1",
                            "measured": "loss", "estimator": None, "sign": 1.0}]
    values = [1.0, 1.1, 0.9]
    table = published_table(record, _cells({"a": values}))
    assert table.loc[0, "ours"] == pytest.approx(-np.mean(values))
    half = 4.302652729911275 * np.std(values, ddof=1) / math.sqrt(3)  # t(0.975, 2)
    low, high = (float(x) for x in table.loc[0, "interval"].strip("[]").split(","))
    assert low == pytest.approx(-np.mean(values) - half, rel=1e-3)
    assert high == pytest.approx(-np.mean(values) + half, rel=1e-3)
    assert math.isnan(table.loc[1, "ours"]) and table.loc[1, "note"] == "no estimator here"
    # the paper's numbers keep every digit (a table's float format would round 101.5 to 102)
    record["published"][0]["value"] = -101.5
    assert published_table(record, _cells({"a": values})).loc[0, "published"] == "-101.5"
