"""The sweep engine: planning from the kinds and the declared variants and sizes, cells that
run, skip or fail, atomic storage, resume after an interruption, and that a sweep's statistics
are the harness's (same noise, same numbers)."""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pandas as pd
import pytest

import gradest
from gradest import sweep
from gradest.labels import parse_spec
from gradest.sweep import Budget, Cell, CellRunner, ResultStore, run_sweep
from gradest.sweep import store as store_module
from gradest.kinds.lasso_delta import lasso_gap

TINY = Budget("quick", num_replicates=40, sample_sizes=(1, 4), seeds=2, measured_seeds=1, train_steps=3)


def tiny_cells(backends=("torch",), kinds=("gradient",), estimators=("reinforce", "exact", "pathwise"),
               tasks=("bandit",)):
    return sweep.plan(list(tasks), list(estimators), list(backends), budget=TINY, kinds=kinds)


# ---- planning ---------------------------------------------------------------------------


def test_plan_covers_the_grid_with_unique_keys():
    cells = sweep.plan(["bandit", "gaussian_quadratic"], ["reinforce", "gumbel_softmax"], ["torch", "jax"],
                       budget=TINY)
    kinds = {c.kind for c in cells}
    assert kinds == {"gradient", "temperature", "train"}  # no lasso_huber asked for: no δ sweep
    grad = [c for c in cells if c.kind == "gradient"]
    # tasks x (4 reinforce baselines + 2 gumbel_softmax variants) x backends x S x seeds (measured: 1 in quick)
    assert len(grad) == 2 * 6 * 2 * 2 * 1
    assert len({c.key for c in cells}) == len(cells)
    temps = [c for c in cells if c.kind == "temperature"]
    grid = sweep.get_cell_kind("temperature").grid["quick"]
    assert {c.estimator_options["temperature"] for c in temps} == set(grid["temperatures"])
    assert {c.task for c in temps} == {"bandit"} and {c.backend for c in temps} == {"torch"}
    assert {c.settings["num_replicates"] for c in temps} == {40}  # the budget's override


def test_quick_plan_runs_the_registry_on_the_first_backend_and_the_core_variants_on_the_others():
    cells = sweep.plan(None, None, ["torch", "jax"], quick=True)
    torch_grad = {(c.estimator, tuple(sorted(c.estimator_options.items())))
                  for c in cells if c.backend == "torch" and c.kind == "gradient"}
    jax_grad = {(c.estimator, tuple(sorted(c.estimator_options.items())))
                for c in cells if c.backend == "jax" and c.kind == "gradient"}
    core = {(name, tuple(sorted(opts.items()))) for name in gradest.list_estimators()
            for opts in gradest.registry.core_variants(name)}
    assert core and jax_grad == core and jax_grad < torch_grad
    assert {c.estimator for c in cells if c.backend == "torch"} == set(gradest.list_estimators())
    trained = {(c.estimator, tuple(sorted(c.estimator_options.items()))) for c in cells if c.kind == "train"}
    assert trained == core
    assert {c.seed for c in cells if c.backend == "torch" and c.kind == "train"} == {0, 1}
    assert {c.seed for c in cells if c.kind == "gradient"} == {0}
    assert {c.backend for c in cells if c.kind == "temperature"} == {"torch"}
    assert {c.task for c in cells if c.kind == "temperature"} == {"categorical_vae"}
    assert {c.backend for c in cells if c.kind == "lasso_delta"} == {"torch", "jax"}
    # sizes are the tasks' declared ones
    for task in gradest.list_tasks():
        sizes = gradest.task.sweep_sizes(gradest.registry.TASKS.entry(task).factory, "quick")
        got = {c.num_samples for c in cells if c.task == task and c.kind == "gradient" and c.backend == "torch"}
        assert got == set(sizes.sample_sizes), task
    # named estimators run on every backend, and --seeds applies everywhere
    named = sweep.plan(["bandit"], ["straight_through"], ["torch", "jax"], quick=True, seeds=3, kinds=["gradient"])
    assert {(c.backend, c.seed) for c in named} == {(b, s) for b in ("torch", "jax") for s in range(3)}


def test_plan_defaults_to_every_registered_estimator_and_task():
    cells = sweep.plan(None, None, ["torch"], budget=TINY, kinds=["gradient"])
    assert {c.task for c in cells} == set(gradest.list_tasks())
    assert {c.estimator for c in cells} == set(gradest.list_estimators())
    baselines = {c.estimator_options.get("baseline") for c in cells if c.estimator == "reinforce"}
    assert baselines == {"none", "moving_average", "loo", "optimal"}


def test_estimator_spec_with_options():
    assert parse_spec("reinforce") == ("reinforce", None)
    assert parse_spec("gumbel_softmax:temperature=0.5,hard=true") == (
        "gumbel_softmax", {"temperature": 0.5, "hard": True})
    assert sweep.variants(["reinforce:baseline=loo"]) == [("reinforce", {"baseline": "loo"})]
    with pytest.raises(ValueError, match="key=value"):
        parse_spec("reinforce:loo")


@pytest.mark.parametrize("kwargs, message", [
    ({"tasks": ["no_such_task"]}, "unknown task 'no_such_task'; known tasks: bandit"),
    ({"estimators": ["no_such_est"]}, "unknown estimator 'no_such_est'; known estimators: "),
    ({"kinds": ["bogus"]}, "unknown kind 'bogus'; known kinds: gradient"),
    ({"seeds": 0}, "seeds must be a positive integer"),
])
def test_plan_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        sweep.plan(kwargs.get("tasks", ["bandit"]), kwargs.get("estimators", ["exact"]), ["torch"], budget=TINY,
                   seeds=kwargs.get("seeds"), kinds=kwargs.get("kinds"))


def test_cell_key_depends_on_every_setting():
    base = Cell("gradient", "bandit", "reinforce", "torch", seed=0, num_samples=4,
                estimator_options={"baseline": "loo"}, settings={"num_replicates": 10})
    variants = [dataclasses.replace(base, seed=1), dataclasses.replace(base, num_samples=2),
                dataclasses.replace(base, backend="jax"), dataclasses.replace(base, estimator_options={}),
                dataclasses.replace(base, settings={"num_replicates": 11}),
                dataclasses.replace(base, task_options={"num_arms": 3})]
    assert len({base.key, *(v.key for v in variants)}) == 1 + len(variants)
    assert base.key == dataclasses.replace(base).key



def test_cell_code_is_fingerprinted_when_asked_for_once(monkeypatch):
    """Making a cell hashes no file; its key computes the fingerprint once; a replaced copy its own."""
    from gradest.sweep import cells as cells_module

    calls = []
    real = cells_module.code_fingerprint
    monkeypatch.setattr(cells_module, "code_fingerprint", lambda *a, **k: calls.append(a) or real(*a, **k))
    base = Cell("gradient", "bandit", "reinforce", "torch", settings={"num_replicates": 10})
    assert calls == []
    key = base.key
    assert base.key == key and calls == [("reinforce", "bandit")]
    other = dataclasses.replace(base, estimator="exact")
    assert other.code == real("exact", "bandit", cell_kind="gradient") and len(calls) == 2
    assert dataclasses.replace(other, estimator="reinforce").key == key

# ---- one cell ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend_name", ["torch", "jax"])
def test_gradient_cells_equal_the_harness_statistics(backend_name):
    """A gradient cell's numbers are exactly those of gradest.gradient_stats for its seed (same
    noise), here for a stateful baseline (its state is warmed up from the seed)."""
    pytest.importorskip(backend_name)
    runner = CellRunner()
    for opts in ({"baseline": "moving_average"},):
        for seed in (1,):
            cell = Cell("gradient", "binary_toy", "reinforce", backend_name, seed=seed, num_samples=4,
                        estimator_options=opts, task_options={"target": [0.45, 0.3]},
                        settings={"num_replicates": 50})
            out = runner(cell)
            assert out["status"] == "done", out["reason"]
            task = gradest.get_task("binary_toy", target=[0.45, 0.3])
            ref = gradest.gradient_stats(task, gradest.get_estimator("reinforce", **opts), backend=backend_name,
                                         num_replicates=50, num_samples=4, seed=seed)
            for key in ("variance", "bias_norm", "mse", "cosine_to_exact", "mean_norm"):
                assert out["row"][key] == pytest.approx(ref[key], rel=1e-6, abs=1e-12), (opts, seed, key)
            assert out["row"]["seconds_per_estimate"] > 0


def test_unsupported_combination_is_skipped_with_the_reason():
    out = CellRunner()(Cell("gradient", "bandit", "pathwise", "torch", settings={"num_replicates": 10}))
    assert out["status"] == "skipped"
    assert "does not support task 'bandit'" in out["reason"]
    out = CellRunner()(Cell("gradient", "bandit", "reinforce", "torch", num_samples=1,
                            estimator_options={"baseline": "loo"}, settings={"num_replicates": 10}))
    assert out["status"] == "skipped" and "num_samples >= 2" in out["reason"]


def test_failing_cell_is_recorded_with_its_message():
    bad = Cell("gradient", "bandit", "gumbel_softmax", "torch", estimator_options={"temperature": -1.0},
               settings={"num_replicates": 10})
    out = CellRunner()(bad)
    assert out["status"] == "failed"
    assert out["reason"].startswith("ValueError: temperature must be a positive number")
    assert "Traceback" in out["traceback"]


def test_train_cell_keeps_its_history():
    cell = Cell("train", "bandit", "reinforce", "torch", seed=1, num_samples=2,
                estimator_options={"baseline": "loo"}, settings={"steps": 4, "learning_rate": 0.1})
    out = CellRunner()(cell)
    assert out["status"] == "done", out["reason"]
    hist = out["history"]
    assert list(hist["step"]) == [0, 1, 2, 3]
    assert {"loss", "exact_loss", "regret"} <= set(hist.columns)
    assert out["row"]["final_exact_loss"] == pytest.approx(hist["exact_loss"].iloc[-1])


def test_lasso_gap_is_zero_at_the_reference_and_exact_at_zero():
    task = gradest.get_task("lasso_huber", delta=0.1, n_samples=40, n_features=5, n_informative=2)
    at_ref = lasso_gap(task, task.reference())
    assert abs(at_ref["objective_gap"]) < 1e-12 and at_ref["distance_to_reference"] == 0.0
    at_zero = lasso_gap(task, np.zeros(5))
    n = task.X.shape[0]
    assert at_zero["objective"] == pytest.approx(float(task.y @ task.y) / (2 * n), rel=1e-12)
    assert at_zero["objective_gap"] > 0
    assert at_zero["relaxation_bound"] == pytest.approx(task.alpha * 5 * 0.1 / 2)


def test_lasso_delta_cell_trains_exact_and_measures_the_gap():
    planned = sweep.plan(["lasso_huber"], None, ["torch"], budget=TINY, kinds=["lasso_delta"])
    # the cells trained through gradest on the default data (the others: NumPy solvers, diabetes)
    cells = [c for c in planned if c.settings["solver"] == "adam" and "dataset" not in c.task_options]
    assert [c.settings["delta"] for c in cells] == list(sweep.get_cell_kind("lasso_delta").grid["quick"]["deltas"])
    assert {c.task_options["delta"] for c in cells} == {c.settings["delta"] for c in cells}
    out = CellRunner()(dataclasses.replace(cells[0], settings={**cells[0].settings, "steps": 30}))
    assert out["status"] == "done", out["reason"]
    assert out["row"]["objective_gap"] > 0  # the relaxed optimum is worse for the L1 objective
    assert "objective_gap" in out["history"].columns


# ---- storage and resume ----------------------------------------------------------------


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "table.csv"
    sweep.atomic_write_text(path, "old\n")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(store_module.os, "replace", broken_replace)
    with pytest.raises(OSError):
        sweep.atomic_write_text(path, "new\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # no temporary file left


def test_interrupted_sweep_resumes_without_loss_or_duplicates(tmp_path):
    cells = tiny_cells(estimators=("reinforce:baseline=none", "exact", "pathwise"))
    assert len(cells) == 6  # 3 estimators x 2 S x 1 measured seed
    runner = CellRunner()
    calls = []

    def interrupted(cell):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(cell.key)
        return runner(cell)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(cells, tmp_path, progress=False, runner=interrupted)
    assert len(calls) == 5
    # the five finished cells are on disk and in the consolidated table, nothing else
    table = pd.read_csv(tmp_path / "results.csv")
    assert sorted(table["key"]) == sorted(calls)
    files = {p.stem: p.read_text() for p in (tmp_path / "cells").glob("*.json")}
    assert set(files) == set(calls)

    second = []

    def counting(cell):
        second.append(cell.key)
        return runner(cell)

    result = run_sweep(cells, tmp_path, progress=False, runner=counting)
    assert result.reused == len(calls)
    assert set(second) == {c.key for c in cells} - set(calls)  # only the missing cells ran
    table = pd.read_csv(tmp_path / "results.csv")
    assert len(table) == len(cells) and table["key"].is_unique
    assert set(table["key"]) == {c.key for c in cells}
    for key, text in files.items():  # finished cells were kept as they were
        assert (tmp_path / "cells" / f"{key}.json").read_text() == text
    assert result.counts == {"done": 4, "skipped": 2, "failed": 0}  # pathwise does not apply to bandit
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_one_run_loop_takes_any_executor(tmp_path):
    """`run_sweep` submits the cells to run to an executor and stores what it hands back; a cell
    whose run raised outside the kind is recorded by the one failure builder (`failed`)."""
    from gradest.sweep.run import SerialExecutor, failed

    cells = tiny_cells(estimators=("exact",))

    class Flaky(SerialExecutor):
        submitted = []

        def describe(self):
            return "flaky"

        def submit(self, cell):
            self.submitted.append(cell.key)
            super().submit(cell)

        def as_completed(self, started=None):
            for cell, outcome in super().as_completed(started):
                yield cell, failed(cell, MemoryError("worker lost")) if cell.num_samples == 4 else outcome

    result = run_sweep(cells, tmp_path, progress=False, executor=Flaky())
    assert Flaky.submitted == [c.key for c in cells]
    assert json.loads((tmp_path / "manifest.json").read_text())["executor"] == "flaky"
    assert result.counts == {"done": 1, "skipped": 0, "failed": 1}
    assert result.failures.iloc[0]["reason"] == "MemoryError: worker lost"
    again = run_sweep(cells, tmp_path, progress=False)  # only the failed cell runs again
    assert again.reused == 1 and again.counts["done"] == 2


def test_failed_cells_are_run_again_and_done_cells_are_not(tmp_path):
    cells = tiny_cells(estimators=("exact",))
    runner = CellRunner()
    fail_key = cells[1].key

    def flaky(cell):
        if cell.key == fail_key:
            raise RuntimeError("out of memory")
        return runner(cell)

    def recording(cell):  # CellRunner catches errors; emulate it for the flaky one
        try:
            return flaky(cell)
        except RuntimeError as err:
            return {"status": "failed", "reason": f"RuntimeError: {err}", "row": {}, "history": None}

    first = run_sweep(cells, tmp_path, progress=False, runner=recording)
    assert first.counts["failed"] == 1
    row = first.results.set_index("key").loc[fail_key]
    assert row["status"] == "failed" and row["reason"] == "RuntimeError: out of memory"
    ran = []
    second = run_sweep(cells, tmp_path, progress=False, runner=lambda c: ran.append(c.key) or runner(c))
    assert ran == [fail_key]
    assert second.counts == {"done": len(cells), "skipped": 0, "failed": 0}


def test_changed_settings_are_not_reused(tmp_path):
    cells = tiny_cells(estimators=("exact",))[:1]
    run_sweep(cells, tmp_path, progress=False)
    other = [dataclasses.replace(cells[0], settings={"num_replicates": 41})]
    result = run_sweep(other, tmp_path, progress=False)
    assert result.reused == 0
    # a record whose stored settings differ from the cell's is ignored even under the same name
    store = ResultStore(tmp_path)
    path = store.cell_path(cells[0])
    record = json.loads(path.read_text())
    record["cell"]["settings"]["num_replicates"] = 999
    path.write_text(json.dumps(record))
    assert store.load_cell(cells[0]) is None


def test_history_table_has_the_cell_columns(tmp_path):
    cells = sweep.plan(["bandit"], ["exact", "reinforce:baseline=loo"], ["torch"], budget=TINY, kinds=["train"])
    result = run_sweep(cells, tmp_path, progress=False)
    hist = pd.read_csv(tmp_path / "history.csv")
    assert {"key", "kind", "task", "estimator", "backend", "seed", "step", "loss", "exact_loss"} <= set(hist.columns)
    assert len(hist) == len(cells) * TINY.train_steps
    assert set(hist["estimator"]) == {"exact", "reinforce[baseline=loo]"}
    assert (hist.groupby("key")["step"].apply(list) == pd.Series([[0, 1, 2]] * len(cells),
                                                                  index=sorted(hist["key"].unique()))).all()
    assert os.stat(tmp_path / "results.csv").st_mode & 0o044  # readable like any other file
    assert result.counts["done"] == len(cells)


# ---- the results folder is a store --------------------------------------------------------


def test_a_second_run_with_other_arguments_adds_cells_and_loses_none(tmp_path):
    first = run_sweep(tiny_cells(estimators=("exact",)), tmp_path, progress=False)
    second = run_sweep(tiny_cells(estimators=("reinforce:baseline=none",)), tmp_path, progress=False)
    table = pd.read_csv(tmp_path / "results.csv")
    assert len(table) == len(first.cells) + len(second.cells) and table["key"].is_unique
    assert set(table.loc[table["current_run"], "key"]) == {c.key for c in second.cells}
    assert set(table["run"]) == {first.run, second.run}
    runs = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert [r["run"] for r in runs] == [first.run, second.run]
    # the report shows the last run by default, the whole store on request
    from gradest.reports.load import load_results

    assert set(load_results([tmp_path], current_only=True).cells["estimator"]) == {"reinforce[baseline=none]"}
    assert set(load_results([tmp_path]).cells["estimator"]) == {"exact", "reinforce[baseline=none]"}


def test_a_damaged_results_table_is_rebuilt_from_the_cells(tmp_path):
    cells = tiny_cells(estimators=("exact",))
    run_sweep(cells, tmp_path, progress=False)
    (tmp_path / "results.csv").write_text('key,kind\n"unclosed,quote\nx,y,z,w\n')
    from gradest.reports.load import load_results

    loaded = load_results([tmp_path], current_only=True)
    assert set(loaded.cells["key"]) == {c.key for c in cells}
    assert any("results.csv" in p and "damaged" in p for p in loaded.problems)
    run_sweep(cells, tmp_path, progress=False)  # the next run rewrites it
    assert set(pd.read_csv(tmp_path / "results.csv")["key"]) == {c.key for c in cells}


def test_a_damaged_cell_record_is_reported_once_and_recomputed(tmp_path):
    cells = tiny_cells(estimators=("exact",))
    run_sweep(cells, tmp_path, progress=False)
    damaged = ResultStore(tmp_path).cell_path(cells[0])
    damaged.write_text('{"key": "trunc')
    with pytest.warns(RuntimeWarning, match=f"cell record {damaged}.* is damaged") as caught:
        result = run_sweep(cells, tmp_path, progress=False)
    assert sum(str(damaged) in str(w.message) for w in caught) == 1
    assert result.reused == len(cells) - 1
    assert json.loads(damaged.read_text())["status"] == "done"


# ---- a cell kind is a plugin ----------------------------------------------------------------


class EntropyProbe(sweep.CellKind):
    """A kind registered by a test file: one cell per task and backend, the entropy of p_θ₀."""

    columns = {"entropy": "entropy of p_θ0 (nats)"}

    def plan(self, ctx):
        return [ctx.cell("entropy_probe", task, "exact", {}, backend) for task in ctx.tasks for backend in ctx.backends]

    def run(self, cell, task, estimator):
        B = gradest.backends.get_backend(cell.backend)
        dist = task.problem(B, B.asarray(task.init_params())).dist
        return {"entropy": float(B.to_numpy(B.sum(dist.entropy())))}, None

    def figures(self, cells, history, palette, out):
        from gradest.plotting.figure import Figure
        from gradest.plotting.style import plt, save

        rows = cells[cells["kind"] == "entropy_probe"] if "kind" in cells else cells.iloc[:0]
        if rows.empty:
            return []
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.bar(rows["task"], rows["entropy"])
        ax.set_ylabel("entropy (nats)")
        return [Figure("entropy_probe", "Entropy at θ₀", "The entropy of p_θ₀ per task.",
                       save(fig, out, "entropy_probe"))]


@pytest.fixture
def entropy_probe():
    """EntropyProbe registered for one test (so that the other tests' plans do not include it)."""
    sweep.register_cell_kind("entropy_probe", description="test kind: the entropy of p_θ0")(EntropyProbe)
    yield
    sweep.KINDS.entries.pop("entropy_probe")


def test_a_kind_registered_in_a_test_file_runs_end_to_end(tmp_path, capsys, entropy_probe):
    from gradest import cli

    assert "entropy_probe" in sweep.kind_names()
    argv = ["run", "--tasks", "bandit", "binary_toy", "--estimators", "exact", "--backends", "torch",
            "--kinds", "entropy_probe", "--no-progress", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    table = pd.read_csv(tmp_path / "results.csv")
    assert list(table["kind"]) == ["entropy_probe"] * 2 and (table["status"] == "done").all()
    assert table.set_index("task").loc["bandit", "entropy"] == pytest.approx(np.log(10), rel=1e-5)
    page = (tmp_path / "report" / "index.html").read_text()
    assert "entropy_probe.png" in page and (tmp_path / "report" / "entropy_probe.png").exists()
    assert cli.main(["list"]) == 0
    assert "entropy_probe" in capsys.readouterr().out


def test_kinds_come_in_their_declared_order_and_the_first_module_names_the_same_contract(entropy_probe):
    from gradest.sweep import cell_kind, kinds

    names = sweep.kind_names()
    built_in = ["gradient", "temperature", "train", "lasso_delta"]
    assert names[:4] == built_in and names[-1] == "entropy_probe"  # declared no order: after the built-ins
    assert [sweep.get_cell_kind(n).order for n in built_in] == sorted(sweep.get_cell_kind(n).order for n in built_in)
    assert all(sweep.KINDS.entry(n).module == f"gradest.kinds.{n}" for n in built_in)
    assert all(sweep.KINDS.entry(n).source == "built-in" for n in built_in)
    assert kinds.CellKind is cell_kind.CellKind is sweep.CellKind
    assert kinds.register_cell_kind is cell_kind.register_cell_kind and kinds.KINDS is cell_kind.KINDS
