"""The ``gradest`` command in-process: ``list``, ``run`` end to end on a tiny sweep (results,
resume, report), ``report``, and clear errors (exit code 2, no traceback) for bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from gradest import cli

TINY_RUN = ["run", "--tasks", "bandit", "--estimators", "reinforce:baseline=loo", "exact", "--backends", "torch",
            "--quick", "--seeds", "2", "--num-replicates", "30", "--train-steps", "4", "--no-progress",
            "--kinds", "gradient", "train", "temperature"]


def test_list_shows_sources_and_support(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("reinforce", "gumbel_softmax", "pathwise", "exact", "bandit", "binary_toy", "gaussian_quadratic"):
        assert name in out
    assert "built-in" in out and "categorical" in out and "bernoulli" in out and "normal" in out
    assert "Estimators" in out and "Tasks" in out and "exact truth" in out


def test_list_shows_each_plugin_problem_once(capsys, monkeypatch):
    from gradest import registry

    message = "gradest: the estimator plugin entry point 'bad' = 'nowhere:x' failed to load and is skipped"
    monkeypatch.setattr(registry.ESTIMATORS, "plugin_errors", [message, message])
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out.replace("\n", " ")
    assert out.count("'bad' = 'nowhere:x'") == 1


def test_run_end_to_end_then_resume(tmp_path, capsys):
    out = tmp_path / "results"
    assert cli.main([*TINY_RUN, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    last = captured.out.strip().splitlines()[-1]
    assert last == str((out / "report" / "index.html").resolve())  # the report's path is the last line
    assert Path(last).exists()
    table = pd.read_csv(out / "results.csv")
    # gradient: 2 estimators x S in {1, 4} (bandit's quick sizes) x 2 seeds; reinforce loo at S=1 is skipped
    grad = table[table["kind"] == "gradient"]
    assert len(grad) == 8
    assert (grad.loc[grad["num_samples"] == 1, "status"] == "skipped").sum() == 2
    assert set(grad.loc[grad["status"] == "done", "estimator"]) == {"exact", "reinforce[baseline=loo]"}
    assert (grad.loc[grad["estimator"] == "exact", "variance"] == 0).all()
    assert len(table[table["kind"] == "train"]) == 4
    assert table["key"].is_unique
    history = pd.read_csv(out / "history.csv")
    assert len(history) == 4 * 4 and set(history["step"]) == {0, 1, 2, 3}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backends"] == ["torch"] and manifest["quick"] is True
    assert "0 reused" in captured.err

    # the same command again: every cell is reused, nothing is duplicated
    assert cli.main([*TINY_RUN, "--out", str(out), "--no-report"]) == 0
    err = capsys.readouterr().err
    assert f"{len(table)} reused" in err
    again = pd.read_csv(out / "results.csv")
    assert len(again) == len(table) and again["key"].is_unique
    pd.testing.assert_frame_equal(again.sort_values("key").reset_index(drop=True),
                                  table.sort_values("key").reset_index(drop=True))


def test_report_command(tmp_path, capsys):
    out = tmp_path / "results"
    assert cli.main([*TINY_RUN, "--out", str(out), "--no-report", "--kinds", "gradient", "--estimators",
                     "reinforce:baseline=loo", "reinforce:baseline=none", "exact"]) == 0
    capsys.readouterr()
    assert cli.main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == str((tmp_path / "rep" / "index.html").resolve())
    page = Path(last).read_text()
    assert "variance_vs_samples.png" in page and "reinforce[baseline=loo]" in page


@pytest.mark.parametrize("argv, message", [
    (["run", "--tasks", "bandit", "nope"], "unknown task 'nope'; known tasks: bandit, "),
    (["run", "--estimators", "reinforce,nope"], "unknown estimator 'nope'; known estimators: "),
    (["run", "--backends", "tensorflow"], "unknown backend 'tensorflow'; known backends: torch, jax"),
    (["run", "--device", "tpu"], "unknown device 'tpu'; known devices: cpu, cuda"),
    (["run", "--kinds", "gradients"], "unknown kind 'gradients'; known kinds: gradient, temperature"),
    (["run", "--seeds", "0"], "argument --seeds: must be a positive integer, got 0"),
    (["run", "--seeds", "two"], "argument --seeds: expected an integer, got 'two'"),
    (["run", "--num-replicates", "1"], "argument --num-replicates: must be at least 2, got 1"),
    (["run", "--estimators", "reinforce:loo"], "is not of the form key=value"),
    (["run", "--estimators", "reinforce:baseline=lo"], "estimator reinforce:baseline=lo: unknown baseline 'lo'"),
    (["run", "--estimators", "reinforce:basline=loo"], "unknown option 'basline' for estimator 'reinforce'; valid "
                                                       "options: baseline"),
    (["run", "--estimators", "reinforce:decay=abc"], "decay"),
    (["run", "--seed", "2"], "unrecognized arguments: --seed 2 (did you mean --seeds?)"),
    (["run", "--task", "bandit"], "unrecognized arguments: --task bandit (did you mean --tasks?)"),
    (["run", "--workers", "0"], "argument --workers: must be a positive integer, got 0"),
    (["run", "--workers", "x"], "argument --workers: expected an integer, got 'x'"),
    (["run", "--plugins", "no_such_file.py"], "plugin file no_such_file.py does not exist"),
    (["report", "does/not/exist"], "no such results folder or file: does/not/exist"),
    (["run", "--estimators", "reinforce:baseline=loo,baseline=none"], "option 'baseline' given twice"),
    (["run", "--tasks", "bandit:num_arms=3,num_arms=4"], "option 'num_arms' given twice"),
    (["run", "--tasks", "bandit:arms=3", "--backends", "torch"], "task bandit:arms=3: unknown option 'arms'"),
    (["run", "--tasks", "bandits:num_arms=3"], "unknown task 'bandits'; known tasks: bandit, "),
    (["run", "--tasks", "bandit", "--estimators", "pathwise", "--backends", "torch", "--quick"],
     "every cell is inapplicable: estimator 'pathwise' does not support task 'bandit': the task samples from a "
     "categorical distribution, and 'pathwise' supports beta, dirichlet, gamma, normal"),
    (["run", "--no-report", "--report", "rep"], "--no-report writes no report: drop --report rep or --no-report"),
    (["run", "--quick", "--budget", "full"], "--quick is --budget quick: drop one of --quick and --budget full"),
    (["run", "--budget", "huge"], "argument --budget: invalid choice: 'huge'"),
    (["run", "--lr", "0"], "argument --lr: must be a positive number, got 0"),
    (["run", "--lr", "fast"], "argument --lr: expected a number, got 'fast'"),
    (["run", "--track-every", "0"], "argument --track-every: must be a positive integer, got 0"),
    (["run", "--sample-sizes", "0"], "argument --sample-sizes: must be a positive integer, got 0"),
    (["run", "--sample-sizes", "2", "--equal-evaluations", "4"], "give --sample-sizes or --equal-evaluations"),
    (["run", "--preset", "dong2020", "--budget", "medium"], "declares a quick and a full budget"),
    (["run", "--preset", "dong2020", "--sample-sizes", "2"], "fixes each estimator's S: drop --sample-sizes"),
])
def test_bad_input_exits_2_with_a_message(argv, message, capsys, tmp_path):
    assert cli.main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()  # nothing was run


def test_failed_cells_give_exit_code_1_and_one_summary(tmp_path, capsys, monkeypatch):
    """Cells that fail while running: exit status 1, each distinct message printed once with
    its count and the cells it hit."""
    from gradest import sweep

    real = sweep.CellRunner.__call__

    def out_of_memory(self, cell):
        if cell.num_samples == 4:
            return {"status": "failed", "reason": "RuntimeError: out of memory", "row": {}, "history": None}
        return real(self, cell)

    monkeypatch.setattr(sweep.CellRunner, "__call__", out_of_memory)
    code = cli.main(["run", "--tasks", "bandit", "--estimators", "exact", "reinforce:baseline=loo", "--backends",
                     "torch", "--seeds", "2", "--num-replicates", "10", "--kinds", "gradient", "--quick",
                     "--no-progress", "--no-report", "--out", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("RuntimeError: out of memory") == 1 and "4× RuntimeError: out of memory" in err
    assert "2 skipped, 1 reason" in err and "needs num_samples >= 2" in err  # loo at S = 1, with its reason


def test_missing_backend_is_a_clear_error(monkeypatch, capsys, tmp_path):
    import gradest.backends as backends

    def not_installed(name, device, dtype, options):
        raise ImportError(f"the {name} backend needs the {name} package, which is not installed (No module "
                          f"named {name!r}). Install it: pip install jax optax")

    monkeypatch.setattr(backends, "_cached", not_installed)
    assert cli.main(["run", "--tasks", "bandit", "--backends", "jax", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "the jax backend needs the jax package, which is not installed" in err and "pip install" in err
    assert "Traceback" not in err


def test_default_backends_are_the_installed_ones(monkeypatch, capsys, tmp_path):
    import gradest.backends as backends

    monkeypatch.setattr(backends, "available_backends", lambda: ["torch"])
    code = cli.main(["run", "--tasks", "bandit", "--estimators", "exact", "--seeds", "1", "--num-replicates", "4",
                     "--kinds", "gradient", "--no-progress", "--no-report", "--out", str(tmp_path)])
    assert code == 0
    assert "backend jax not installed; sweeping torch" in capsys.readouterr().err
    assert set(pd.read_csv(tmp_path / "results.csv")["backend"]) == {"torch"}


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "run" in capsys.readouterr().out


def test_interrupted_run_resumes(tmp_path, capsys, monkeypatch):
    """Ctrl-C in the middle of a sweep: exit code 130 with a hint, finished cells kept; the same
    command again runs only the missing cells."""
    from gradest import sweep

    argv = ["run", "--tasks", "bandit", "--estimators", "exact", "reinforce", "--backends", "torch", "--seeds", "1",
            "--num-replicates", "8", "--kinds", "gradient", "--no-progress", "--no-report", "--quick",
            "--out", str(tmp_path)]
    real = sweep.CellRunner.__call__
    calls = []

    def interrupt_after_three(self, cell):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(cell.key)
        return real(self, cell)

    monkeypatch.setattr(sweep.CellRunner, "__call__", interrupt_after_three)
    assert cli.main(argv) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    assert sorted(pd.read_csv(tmp_path / "results.csv")["key"]) == sorted(calls)

    monkeypatch.setattr(sweep.CellRunner, "__call__", real)
    assert cli.main(argv) == 0
    assert "3 reused" in capsys.readouterr().err
    table = pd.read_csv(tmp_path / "results.csv")
    assert len(table) == 5 * 2 and table["key"].is_unique  # (exact + 4 baselines) x S in {1, 4}


def test_device_without_cuda_is_a_clear_error(capsys, tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert cli.main(["run", "--tasks", "bandit", "--backends", "torch", "--device", "cuda",
                     "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "the torch backend cannot run on device 'cuda'" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_a_typo_is_refused_before_any_framework_import(tmp_path):
    """Names are checked against the registries before a backend's framework is imported."""
    import subprocess
    import sys

    code = ("import sys; from gradest.cli import main; from gradest.backends import backend_entry, backend_names\n"
            f"code = main(['run', '--estimators', 'nosuch', '--out', {str(tmp_path / 'o')!r}])\n"
            "packages = [p for b in backend_names() for p in backend_entry(b).packages]\n"
            "print(code, sorted(p for p in packages if p in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "2 []", done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]  # one line
    assert "unknown estimator 'nosuch'" in done.stderr


def test_run_plans_once_and_builds_each_variant_once(tmp_path, monkeypatch, capsys):
    """One plan per command, and each (task, options) and (estimator, options) built once in the
    process: the validation's objects are the runner's."""
    import gradest
    from gradest import sweep
    from gradest.sweep import build

    gradest.clear_compile_cache()  # the built objects too
    plans, built = [], []
    real_plan, real_task, real_estimator = sweep.plan, build.get_task, build.get_estimator
    monkeypatch.setattr(sweep, "plan", lambda *a, **k: plans.append(a) or real_plan(*a, **k))
    monkeypatch.setattr(build, "get_task",
                        lambda name, **o: built.append(("task", name, str(o))) or real_task(name, **o))
    monkeypatch.setattr(build, "get_estimator",
                        lambda name, **o: built.append(("estimator", name, str(o))) or real_estimator(name, **o))
    assert cli.main([*TINY_RUN, "--out", str(tmp_path), "--no-report"]) == 0, capsys.readouterr().err
    assert len(plans) == 1
    assert len(built) == len(set(built)) and {("estimator", "exact", "{}"), ("task", "bandit", "{}")} <= set(built)


@pytest.mark.parametrize("command", ["run", "report"])
def test_out_naming_an_existing_file_is_refused(command, tmp_path, capsys):
    existing = tmp_path / "a_file"
    existing.write_text("kept")
    argv = ["run", "--tasks", "bandit"] if command == "run" else ["report", str(tmp_path)]
    assert cli.main([*argv, "--out", str(existing)]) == 2
    err = capsys.readouterr().err
    assert f"--out {existing} is an existing file: --out names a folder" in err
    assert len(err.strip().splitlines()) == 1 and existing.read_text() == "kept"


def _selection(*argv):
    from gradest.cli.run import PresetSelection, SweepSelection

    args = cli.build_parser().parse_args(["run", *argv])
    return PresetSelection(args) if args.preset else SweepSelection(args)


def test_task_options_learning_rate_sample_sizes_and_tracking_reach_the_cells():
    selection = _selection("--tasks", "binary_toy:target=[0.3,0.6]", "binary_toy", "--estimators", "reinforce:"
                           "baseline=loo", "--quick", "--kinds", "gradient", "train", "--sample-sizes", "2", "3",
                           "--lr", "0.25", "--track-every", "5", "--train-steps", "20")
    cells = selection.plan(["torch"], "cpu")
    grad = [c for c in cells if c.kind == "gradient"]
    train = [c for c in cells if c.kind == "train"]
    # one task with two option sets is two tasks: every cell of each
    assert sorted((str(c.task_options.get("target")), c.num_samples) for c in grad) == \
        [("None", 2), ("None", 3), ("[0.3, 0.6]", 2), ("[0.3, 0.6]", 3)]
    assert sorted(str(c.task_options.get("target")) for c in train) == ["None", "None", "[0.3, 0.6]", "[0.3, 0.6]"]
    assert all(c.settings["learning_rate"] == 0.25 and c.settings["steps"] == 20 and c.settings["every"] == 5
               and c.settings["track"] == ["self"] for c in train)
    assert [c.kind for c in cells] == sorted((c.kind for c in cells), key=["gradient", "train"].index)
    assert selection.manifest(cells, ["torch"], None)["budget"]["learning_rate"] == 0.25


def test_budget_levels_and_the_presets_default_tracking():
    from gradest.sweep.cells import BUDGET_LEVELS, FULL, QUICK

    run = next(a for a in cli.build_parser().commands["run"]._actions if "--budget" in a.option_strings)
    assert tuple(run.choices) == tuple(BUDGET_LEVELS)
    argv = ("--tasks", "binary_toy", "--estimators", "reinforce", "--kinds", "gradient", "train")
    quick, medium, full = (_selection(*argv, "--budget", level) for level in ("quick", "medium", "full"))
    assert _selection(*argv, "--quick").budget == quick.budget == QUICK and full.budget == FULL
    assert medium.budget.name == "quick" and medium.budget.seeds > QUICK.seeds  # quick sizes, more seeds
    sizes = [len(s.plan(["torch", "jax"], "cpu")) for s in (quick, medium)]
    assert sizes[0] < sizes[1]
    # a preset's declared interval is shortened to give at least 10 points per run; --track-every is taken as it is
    assert _selection("--preset", "dong2020", "--quick").overrides["budget"].track_every == 300 // 10
    assert _selection("--preset", "dong2020", "--quick", "--track-every", "100").overrides["budget"].track_every == 100
    assert _selection("--preset", "dong2020", "--quick", "--lr", "0.01").overrides["budget"].learning_rate == 0.01


def test_list_fits_100_columns_and_shows_each_variants_options(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    variants = out[out.index("swept variants"):out.index("Tasks")]
    for options in ("baseline=loo", "baseline=moving_average", "hard=True", "hard=False"):
        assert options in variants
    assert "reinforce[" not in out and "reinforce, reinforce" not in out


def test_progress_lines_in_a_log(tmp_path):
    """A console that is not a terminal gets plain lines: cells done of the total, skipped,
    failed, elapsed and the time left."""
    import io

    from rich.console import Console

    from gradest.sweep import plan, run_sweep
    from gradest.sweep.progress import LineProgress
    from gradest.sweep.run import outcome

    cells = plan(["bandit"], ["exact"], ["torch"], quick=True, kinds=["gradient"], seeds=2)
    log = io.StringIO()
    statuses = iter(["done", "skipped", "failed", "done"])
    run_sweep(cells, tmp_path, console=Console(file=log, width=200),
              runner=lambda cell: outcome(cell, status=next(statuses), reason="r"))
    lines = log.getvalue().splitlines()
    assert len(cells) == 4 and lines[0] == "progress: 4 cells, 0 reused, 4 to run (serial)"
    assert lines[-1].startswith("progress: 4/4 cells (0 reused), 1 skipped, 1 failed; 0:00:0")
    assert lines[-1].endswith("elapsed, finished") and "━" not in log.getvalue()
    assert len(lines) == 1 + 4  # one line per finished cell (every tenth of 4 cells), the last once

    # the time left: the cells still to run at the mean time of those finished
    now = [0.0]
    shown = LineProgress(Console(file=io.StringIO(), width=200), total=10, reused=2, clock=lambda: now[0])
    for cell in cells[:2]:
        shown.started(cell)
        shown.finished(cell, "done")
    now[0] = 20.0
    shown.started(cells[2])
    shown.line()
    assert shown.console.file.getvalue().splitlines()[-1] == (
        "progress: 4/10 cells (2 reused), 0 skipped, 0 failed; 0:00:20 elapsed, about 0:01:00 left; running "
        + cells[2].describe())


def test_progress_lines_keep_coming_while_a_long_cell_runs():
    """A timed line every interval, also when no cell finishes (a log is never silent for long)."""
    import io
    import time

    from rich.console import Console

    from gradest.sweep.progress import LineProgress

    log = io.StringIO()
    with LineProgress(Console(file=log, width=200), total=3, interval_s=0.05):
        time.sleep(0.5)  # one cell running all along
    lines = log.getvalue().splitlines()
    timed = [line for line in lines[1:-1] if line.startswith("progress: 0/3 cells") and "time left not known" in line]
    assert len(timed) >= 2 and lines[-1].endswith("stopped with 3 cells not run")
