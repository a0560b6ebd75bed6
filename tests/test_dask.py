"""The sweep on Dask (`gradest.sweep.dask`): a LocalCluster of 2 worker processes gives the
numbers of a serial run, records every cell exactly once, records failures and goes on, loses
nothing when a worker dies mid-cell, resumes after an interrupt; bad cluster input is refused."""
from __future__ import annotations

import os
import signal
import textwrap
import threading
import time

import pandas as pd
import pytest

pytest.importorskip("distributed")

from gradest import cli, plugins, sweep  # noqa: E402
from gradest.sweep.dask import DaskExecutor  # noqa: E402

#: a cell kind in a plugin file the workers get from the client: sleeps, then reports its process
SLEEPY = textwrap.dedent('''
    """Test plugin: a cell kind that sleeps and reports the worker process that ran it."""
    import os
    import time

    from gradest.sweep.kinds import CellKind, register_cell_kind


    @register_cell_kind("sleepy_probe", description="test kind: sleeps, reports its pid")
    class SleepyProbe(CellKind):
        def plan(self, ctx):
            return [ctx.cell("sleepy_probe", "bandit", "exact", {}, "torch", seed=s, settings={"sleep": 1.5})
                    for s in range(4)]

        def run(self, cell, task, estimator):
            time.sleep(cell.settings["sleep"])
            if cell.seed == 3 and cell.settings.get("fail"):
                raise RuntimeError("seed 3 fails on purpose")
            return {"pid": os.getpid(), "twice_seed": 2 * cell.seed}, None
''')


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One LocalCluster of 2 workers for the module, with the sleepy kind as a plugin file that
    this process loaded: the workers get it from the executor's worker plugin (no environment)."""
    path = tmp_path_factory.mktemp("plugin") / "sleepy_probe.py"
    path.write_text(SLEEPY)
    assert str(path) not in os.environ.get(plugins.ENV_VAR, "")
    plugins.load_files([path])
    executor = DaskExecutor.local(2)
    try:
        yield executor
    finally:
        executor.close()
        sweep.KINDS.entries.pop("sleepy_probe", None)
        plugins._LOADED.pop(str(path.resolve()), None)


def _sleepy_cells(**settings):
    ctx = sweep.PlanContext(["bandit"], [("exact", {})], ["torch"], "cpu", sweep.QUICK)
    cells = sweep.get_cell_kind("sleepy_probe").plan(ctx)
    return [sweep.Cell(c.kind, c.task, c.estimator, c.backend, c.device, c.seed, c.num_samples, c.task_options,
                       c.estimator_options, {**c.settings, **settings}) for c in cells]


TIMING = {"seconds_per_estimate", "seconds_low", "seconds_high", "work_normalized_variance", "elapsed_s", "cpu_s",
          "train_seconds", "final_seconds", "finished_at", "run", "worker", "seconds", "step_seconds",
          "eval_seconds", "basket_seconds"}


def test_distributed_numbers_equal_serial_ones(cluster, tmp_path):
    budget = sweep.Budget("quick", seeds=2, measured_seeds=1, num_replicates=64, train_steps=5, sample_sizes=(4,))
    cells = sweep.plan(["bandit"], ["reinforce:baseline=loo", "straight_through"], ["torch", "jax"], budget=budget,
                       kinds=["gradient"])
    cells += sweep.plan(["binary_toy"], ["reinforce:baseline=loo"], ["torch"], budget=budget, kinds=["train"])
    serial = sweep.run_sweep(cells, tmp_path / "serial", progress=False)
    dist = sweep.run_sweep(cells, tmp_path / "dask", progress=False, executor=cluster)
    assert dist.counts == serial.counts and dist.counts["failed"] == 0
    a, b = (r.results.set_index("key").sort_index() for r in (serial, dist))
    columns = [c for c in a.columns if c not in TIMING]
    pd.testing.assert_frame_equal(a[columns], b[columns])  # bit for bit, timings aside
    ha, hb = (r.history.drop(columns=["seconds", "run"]).sort_values(["key", "step"]).reset_index(drop=True)
              for r in (serial, dist))
    pd.testing.assert_frame_equal(ha, hb)
    assert b.index.is_unique and len(b) == len(cells)


def test_a_failing_cell_is_recorded_and_the_sweep_goes_on(cluster, tmp_path):
    result = sweep.run_sweep(_sleepy_cells(sleep=0.2, fail=True), tmp_path, progress=False, executor=cluster)
    assert result.counts == {"done": 3, "skipped": 0, "failed": 1}
    failed = result.failures.iloc[0]
    assert failed["seed"] == 3 and failed["reason"] == "RuntimeError: seed 3 fails on purpose"
    assert len({int(p) for p in result.current["pid"].dropna()}) >= 1


def test_an_interrupted_distributed_sweep_resumes(cluster, tmp_path):
    cells = _sleepy_cells(sleep=0.3)
    seen = []

    class Interrupting:
        """The cluster's executor, interrupted (Ctrl-C) when the third cell comes back."""

        def describe(self):
            return "interrupting"

        def submit(self, cell):
            cluster.submit(cell)

        def as_completed(self, started=None):
            for cell, outcome in cluster.as_completed():
                if len(seen) == 2:
                    raise KeyboardInterrupt
                seen.append(cell.key)
                yield cell, outcome

    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(cells, tmp_path, progress=False, executor=Interrupting())
    assert sorted(pd.read_csv(tmp_path / "results.csv")["key"]) == sorted(seen)
    again = sweep.run_sweep(cells, tmp_path, progress=False, executor=cluster)
    assert again.reused == 2 and again.counts["done"] == 4
    assert sorted(again.results["key"]) == sorted(c.key for c in cells)


def test_a_worker_killed_mid_cell_loses_and_duplicates_nothing(cluster, tmp_path):
    cells = _sleepy_cells(sleep=4.0)
    keys = {f"gradest-cell-{c.key}" for c in cells}
    killed = {}

    def kill_a_busy_worker():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            busy = {w: ks for w, ks in cluster.client.processing().items() if set(ks) & keys}
            if busy:
                worker = next(iter(busy))
                pid = cluster.client.run(os.getpid, workers=[worker])[worker]
                os.kill(pid, signal.SIGKILL)
                killed["pid"] = pid
            time.sleep(0.2)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    result = sweep.run_sweep(cells, tmp_path, progress=False, executor=cluster)
    killer.join()
    assert killed, "no worker was busy with a cell"
    assert result.counts == {"done": 4, "skipped": 0, "failed": 0}
    assert sorted(result.results["key"]) == sorted(c.key for c in cells)  # each cell once
    assert killed["pid"] not in set(result.results["pid"].astype(int))  # rerun elsewhere
    assert list(result.results.sort_values("seed")["twice_seed"]) == [0, 2, 4, 6]


def test_an_unreachable_scheduler_is_a_clear_error_within_seconds(capsys, tmp_path, monkeypatch):
    import gradest.sweep.dask as dask_module

    monkeypatch.setattr(dask_module, "CONNECT_TIMEOUT_S", 2)  # the wait is the timeout's (10 s by default)
    start = time.time()
    code = cli.main(["run", "--tasks", "bandit", "--estimators", "exact", "--backends", "torch", "--kinds",
                     "gradient", "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "o")])
    assert code == 2 and time.time() - start < 25
    err = capsys.readouterr().err
    assert "cannot reach a Dask scheduler at tcp://127.0.0.1:9 within 2 s" in err and "dask scheduler" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()
    assert cli.main(["run", "--scheduler-file", str(tmp_path / "none.json"), "--out", str(tmp_path / "o")]) == 2
    assert "no scheduler file" in capsys.readouterr().err
