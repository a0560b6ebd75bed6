"""What an extension touches (docs/design.md, "What an extension touches"): each row is one file.

Each test declares its extension in this file alone — a task with its declarations, a figure of
a built-in kind, a preset — and shows that planning, benchmarks and the report pick it up with
no other file changed. The other rows have their own tests: an estimator
(`tests/test_plugin_files.py`), a cell kind with its figure (`tests/test_sweep.py`,
``test_a_kind_registered_in_a_test_file_runs_end_to_end``), a backend
(`tests/test_backend_plugin.py`).
"""
from __future__ import annotations

import pandas as pd
import pytest

from gradest import sweep
from gradest.registry import TASKS, register_task
from gradest.task import BenchmarkSizes
from gradest.tasks.bandit import Bandit

NOTE = "a note the task declares: its rewards are made up for the test"


class NotedBandit(Bandit):
    """A task of this file: a bandit that declares its benchmark sizes and its report notes."""

    benchmark_sizes = BenchmarkSizes(num_replicates=123, train_steps=7)
    report_notes = (NOTE,)


@pytest.fixture
def noted_bandit():
    register_task("noted_bandit", description="test task: a bandit with declarations")(NotedBandit)
    yield "noted_bandit"
    TASKS.entries.pop("noted_bandit")


def test_a_task_declares_its_benchmark_sizes_and_report_notes_in_its_own_file(noted_bandit):
    from benchmarks import _grid
    from gradest.reports import leaderboard

    assert _grid.settings(noted_bandit) == BenchmarkSizes(123, 7)
    assert leaderboard.declared_notes(noted_bandit) == (NOTE,)
    board = pd.DataFrame({"task": [noted_bandit], "estimator": ["exact"], "unbiased": [True], "learned": [False],
                          "mse": [0.5]})
    assert NOTE in leaderboard.task_notes(board, noted_bandit)


def test_a_new_figure_of_a_kind_is_drawn_by_the_report_without_touching_it(tmp_path, monkeypatch):
    """A figure added to the gradient kind (here by a test; in the code, a method of its file)."""
    from gradest.kinds.gradient import GradientKind
    from gradest.plotting.figure import Figure
    from gradest.plotting.style import plt, save
    from gradest.reports import build_report

    drawn = GradientKind.figures

    def figures(self, cells, history, palette, out):
        def seeds_figure():
            fig, ax = plt.subplots(figsize=(3, 2))
            ax.bar(["cells"], [len(cells)])
            return Figure("cells_per_run", "Cells", "How many cells ran.", save(fig, out, "cells_per_run"))

        return [*drawn(self, cells, history, palette, out), ("cells_per_run", seeds_figure)]

    monkeypatch.setattr(GradientKind, "figures", figures)
    cells = sweep.plan(["bandit"], ["exact"], ["torch"], quick=True, kinds=["gradient"])
    sweep.run_sweep(cells, tmp_path / "results", progress=False)
    index = build_report([tmp_path / "results"], tmp_path / "report")
    assert (tmp_path / "report" / "cells_per_run.png").exists()
    assert "cells_per_run.png" in index.read_text()


def test_a_preset_in_one_file_plans_through_the_train_kind():
    from gradest.presets import (PRESETS, Ordering, Preset, PresetBudget, PresetEstimator, PresetTask,
                                 get_preset, plan_preset, register_preset)

    register_preset(Preset(
        name="toy_test_preset", title="a preset of this test", citation="none", setting="the binary toy",
        tasks=(PresetTask("t", "binary_toy", options={"target": [0.45]}),),
        estimators=(PresetEstimator("reinforce"), PresetEstimator("disarm")),
        quick=PresetBudget(steps=5, seeds=2), full=PresetBudget(steps=50, seeds=3),
        orderings=(Ordering("t", "disarm", "reinforce", "final_exact_loss", "a claim", "this test"),)))
    try:
        cells = plan_preset(get_preset("toy_test_preset"), ["torch"], quick=True)
        assert {c.kind for c in cells} == {"train"}
        assert sorted({c.estimator for c in cells}) == ["disarm", "reinforce"]
        assert {c.seed for c in cells} == {0, 1} and {c.settings["steps"] for c in cells} == {5}
        assert all(c.task_options == {"target": [0.45]} for c in cells)
    finally:
        PRESETS.entries.pop("toy_test_preset")
