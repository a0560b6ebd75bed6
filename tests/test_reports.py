"""The reports: asv's JSON and result folders -> tidy frames -> figures -> index.html / summary.md.

Sample data are built here (small tidy frames, asv result files with skipped and failed
entries), so these tests need neither a sweep nor asv runs."""
from __future__ import annotations

import json
import math
import struct

import numpy as np
import pandas as pd
import pytest

from gradest.kinds import gradient as GK
from gradest.kinds import lasso_delta as LD
from gradest.kinds import temperature as TEMP
from gradest.kinds import train as TK
from gradest.plotting import frames as F
from gradest.reports import asv_figures as AF
from gradest.reports import build_report, estimator_labels, kind_frames
from gradest.reports import figures as FG
from gradest.reports import tables as T
from gradest.reports.asv_results import is_asv_path, load_asv
from gradest.reports.load import load_results
from gradest.plotting.style import PALETTE, Palette, home_slot, theme, tick_label
from matplotlib.colors import to_rgb

ESTIMATORS = ["exact", "reinforce[baseline=none]", "reinforce[baseline=loo]",
              "gumbel_softmax[hard=False,temperature=1.0]"]


# ---- sample data ------------------------------------------------------------------------


def sample_cells(seed: int = 0) -> pd.DataFrame:
    """Gradient, temperature, train and lasso_delta rows as `gradest run` writes them."""
    rng = np.random.default_rng(seed)
    rows = []
    scale = {"exact": 0.0, "reinforce[baseline=none]": 1.0, "reinforce[baseline=loo]": 0.3,
             "gumbel_softmax[hard=False,temperature=1.0]": 0.05}
    for task in ("bandit", "binary_toy"):
        for est in ESTIMATORS:
            for backend in ("torch", "jax"):
                for S in (1, 4, 16):
                    for seed_ in (0, 1):
                        status = "skipped" if (est == "reinforce[baseline=loo]" and S == 1) else "done"
                        var = scale[est] / S * (1 + 0.1 * rng.standard_normal())
                        bias = 0.02 if est.startswith("gumbel") else 1e-3 * rng.random()
                        rows.append({"kind": "gradient", "task": task, "estimator": est,
                                     "estimator_name": est.split("[")[0], "backend": backend, "num_samples": S,
                                     "seed": seed_, "status": status,
                                     "reason": "needs num_samples >= 2" if status == "skipped" else "",
                                     "num_replicates": 200, "variance": var, "variance_low": var * 0.8,
                                     "variance_high": var * 1.2, "bias_norm": bias, "bias_norm_low": 0.0,
                                     "bias_norm_high": bias * 2, "bias_sq": bias**2, "mse": var + bias**2,
                                     "mse_low": (var + bias**2) * 0.8, "mse_high": (var + bias**2) * 1.2,
                                     "cosine_to_exact": 0.5, "seconds_per_estimate": 1e-5 * S * (2 if backend == "jax" else 1)})
    for hard in (False, True):
        for tau in (0.1, 0.5, 2.0):
            for seed_ in (0, 1):
                rows.append({"kind": "temperature", "task": "bandit", "backend": "torch", "seed": seed_,
                             "num_samples": 1, "status": "done", "hard": hard, "temperature": tau,
                             "estimator": f"gumbel_softmax[hard={hard},temperature={tau}]",
                             "estimator_name": "gumbel_softmax", "variance": 0.01 / tau, "variance_low": 0.008 / tau,
                             "variance_high": 0.012 / tau, "bias_norm": 0.05 * tau, "bias_norm_low": 0.04 * tau,
                             "bias_norm_high": 0.06 * tau, "mse": 0.01 / tau + (0.05 * tau) ** 2,
                             "mse_low": 0.008 / tau, "mse_high": 0.012 / tau + 0.01})
    for est in ESTIMATORS:
        for seed_ in (0, 1, 2):
            rows.append({"kind": "train", "task": "bandit", "estimator": est, "estimator_name": est.split("[")[0],
                         "backend": "torch", "seed": seed_, "num_samples": 4, "status": "done", "steps": 20,
                         "final_exact_loss": -0.9 + 0.01 * seed_, "final_loss": -0.9})
    rows.append({"kind": "train", "task": "bandit", "estimator": "broken", "estimator_name": "broken",
                 "backend": "torch", "seed": 0, "num_samples": 4, "status": "failed",
                 "reason": "RuntimeError: out of memory"})
    for backend in ("torch", "jax"):
        for delta in (1.0, 0.1, 0.01):
            rows.append({"kind": "lasso_delta", "task": "lasso_huber", "estimator": "exact", "estimator_name": "exact",
                         "backend": backend, "seed": 0, "num_samples": 1, "status": "done", "delta": delta,
                         "steps": 100, "objective_gap": 0.05 * delta, "relaxation_bound": 1.0 * delta,
                         "relative_objective_gap": 0.04 * delta})
    return pd.DataFrame(rows)


def sample_history() -> pd.DataFrame:
    rows = []
    for est in ESTIMATORS:
        for seed_ in (0, 1, 2):
            for step in range(0, 20, 2):
                loss = -0.35 - 0.5 * (1 - math.exp(-step / (5 + ESTIMATORS.index(est)))) + 0.01 * seed_
                rows.append({"kind": "train", "task": "bandit", "estimator": est, "backend": "torch", "seed": seed_,
                             "step": step, "loss": loss + 0.05, "exact_loss": loss})
    for backend in ("torch", "jax"):
        for delta in (1.0, 0.1, 0.01):
            for step in range(0, 100, 10):
                rows.append({"kind": "lasso_delta", "task": "lasso_huber", "estimator": "exact", "backend": backend,
                             "seed": 0, "delta": delta, "step": step, "loss": 1.0,
                             "objective_gap": 5.0 * math.exp(-step / 10) + 0.04 * delta})
    return pd.DataFrame(rows)


def write_run_folder(path, cells=None, history=None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (sample_cells() if cells is None else cells).to_csv(path / "results.csv", index=False)
    (sample_history() if history is None else history).to_csv(path / "history.csv", index=False)
    (path / "manifest.json").write_text(json.dumps({
        "command": "gradest run", "quick": True, "backends": ["torch", "jax"], "cells": 10,
        "command_line": "gradest run --quick --tasks bandit,binary_toy --out run",
        "budget": {"name": "quick", "seeds": 3, "measured_seeds": 2, "core_after_first": True, "core_training": True}}))


def asv_result(commit: str, date_ms: int, results: dict, version: int = 2) -> dict:
    data = {"commit_hash": commit, "env_name": "existing-py_venv_bin_python", "date": date_ms,
            "params": {"machine": "box", "python": "3.11"}, "python": "3.11", "requirements": {},
            "env_vars": {}, "durations": {}, "version": version}
    if version == 2:
        data["result_columns"] = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a",
                                  "stats_ci_99_b", "stats_q_25", "stats_q_75", "stats_number", "stats_repeat",
                                  "samples", "profile"]
    data["results"] = results
    return data


def write_asv(root, commits=(("a1b2c3d4e5f6", 1_700_000_000_000, 1.0),)) -> None:
    """An asv results tree: benchmarks.json, machine.json and one result file per commit, with
    a skipped (NaN) and a failed (null) combination and a benchmark that failed as a whole."""
    results = root / ".asv" / "results"
    (results / "box").mkdir(parents=True)
    (results / "benchmarks.json").write_text(json.dumps({
        "bench_gradients.GradientSuite.time_estimate": {
            "name": "bench_gradients.GradientSuite.time_estimate", "type": "time", "unit": "seconds",
            "param_names": ["estimator", "backend"],
            "params": [["'reinforce[baseline=none]'", "'exact'"], ["'torch'", "'jax'"]]},
        "bench_gradients.GradientSuite.peakmem_estimate": {
            "name": "bench_gradients.GradientSuite.peakmem_estimate", "type": "peakmem", "unit": "bytes",
            "param_names": ["backend"], "params": [["'torch'", "'jax'"]]},
        "bench_gradients.GradientSuite.track_variance": {
            "name": "bench_gradients.GradientSuite.track_variance", "type": "track", "unit": "variance",
            "param_names": [], "params": []},
        "version": 2}))
    (results / "box" / "machine.json").write_text(json.dumps({"machine": "box", "version": 1}))
    for commit, date, factor in commits:
        text = json.dumps(asv_result(commit, date, {
            # 4 combinations: torch/jax x two estimators; one skipped (NaN), one failed (null)
            "bench_gradients.GradientSuite.time_estimate": [
                [1.5e-5 * factor, float("nan"), None, 2.0e-6 * factor],
                [["'reinforce[baseline=none]'", "'exact'"], ["'torch'", "'jax'"]], "v1", date, 3.0,
                [1.4e-5, None, None, 1.9e-6], [1.6e-5, None, None, 2.1e-6]],
            "bench_gradients.GradientSuite.peakmem_estimate": [None, [["'torch'", "'jax'"]], "v1"],
            "bench_gradients.GradientSuite.track_variance": [[0.25 * factor], [], "v1"],
        }))
        assert "NaN" in text  # asv writes NaN tokens (json.dump's default)
        (results / "box" / f"{commit[:8]}-existing-py_venv_bin_python.json").write_text(text)


# ---- asv loader ---------------------------------------------------------------------------


def test_asv_loader_keeps_skipped_and_failed_entries_as_missing(tmp_path):
    write_asv(tmp_path)
    frame = load_asv(tmp_path / ".asv" / "results")
    assert len(frame) == 4 + 2 + 1
    time_rows = frame[frame["benchmark"].str.endswith("time_estimate")].reset_index(drop=True)
    # cartesian product, first parameter slowest; quotes of asv's reprs removed
    assert list(time_rows["params"]) == ["estimator=reinforce[baseline=none], backend=torch",
                                         "estimator=reinforce[baseline=none], backend=jax",
                                         "estimator=exact, backend=torch", "estimator=exact, backend=jax"]
    assert list(time_rows["status"]) == ["ok", "skipped", "failed", "ok"]
    assert time_rows["value"][0] == 1.5e-5 and time_rows["value"][3] == 2.0e-6
    assert time_rows["value"][1:3].isna().all()
    assert time_rows["ci_low"][0] == 1.4e-5 and time_rows["ci_high"][3] == 2.1e-6
    assert list(time_rows["param:backend"]) == ["torch", "jax", "torch", "jax"]
    assert set(time_rows["unit"]) == {"seconds"} and set(time_rows["type"]) == {"time"}
    peak = frame[frame["benchmark"].str.endswith("peakmem_estimate")]
    assert list(peak["status"]) == ["failed", "failed"]  # a benchmark that failed as a whole
    track = frame[frame["type"] == "track"]
    assert track["value"].tolist() == [0.25] and track["params"].tolist() == [""]
    assert set(frame["commit"]) == {"a1b2c3d4e5f6"} and set(frame["machine"]) == {"box"}
    assert frame["date"].iloc[0] == pd.Timestamp(1_700_000_000_000, unit="ms")


def test_asv_loader_reads_version_1_files_and_ignores_junk(tmp_path):
    folder = tmp_path / "results" / "box"
    folder.mkdir(parents=True)
    v1 = asv_result("ffff0000", 1_600_000_000_000, {
        "suite.time_a": {"result": [1.0, None], "params": [["1", "2"]], "stats": [{"ci_99": [0.9, 1.1]}, None]},
        "suite.time_b": 2.5}, version=1)
    v1.pop("version")
    (folder / "ffff0000-env.json").write_text(json.dumps(v1))
    (folder / "broken-env.json").write_text("{ not json")
    assert is_asv_path(tmp_path)
    frame = load_asv(tmp_path)
    assert sorted(frame["benchmark"]) == ["suite.time_a", "suite.time_a", "suite.time_b"]
    a = frame[frame["benchmark"] == "suite.time_a"]
    assert list(a["status"]) == ["ok", "failed"] and a["ci_low"].iloc[0] == 0.9
    assert list(a["params"]) == ["param0=1", "param0=2"]
    assert frame.loc[frame["benchmark"] == "suite.time_b", "value"].item() == 2.5


def test_asv_loader_single_file_and_not_asv(tmp_path):
    write_asv(tmp_path)
    file = next((tmp_path / ".asv" / "results" / "box").glob("a1b2*.json"))
    assert len(load_asv(file)) == 7
    (tmp_path / "other").mkdir()
    assert not is_asv_path(tmp_path / "other")
    with pytest.raises(ValueError, match="no asv results"):
        load_asv(tmp_path / "other")


# ---- result folders ---------------------------------------------------------------------


def test_load_results_reads_run_folders_and_asv(tmp_path):
    write_run_folder(tmp_path / "run")
    write_asv(tmp_path / "run")  # .asv inside the run folder is found too
    res = load_results([tmp_path / "run"])
    assert len(res.cells) == len(sample_cells()) and len(res.history) == len(sample_history())
    assert len(res.asv) == 7
    assert res.manifests[0]["command"] == "gradest run"
    with pytest.raises(ValueError, match="neither a `gradest run` results folder"):
        load_results([tmp_path])
    with pytest.raises(ValueError, match="no such results folder"):
        load_results([tmp_path / "missing"])


def test_load_results_falls_back_to_cell_records(tmp_path):
    """A sweep killed before it consolidated: results.csv is missing, the cells/ records are read."""
    from gradest.sweep import Cell, ResultStore

    store = ResultStore(tmp_path)
    grad = Cell("gradient", "bandit", "exact", "torch", seed=1, num_samples=4, settings={"num_replicates": 10})
    train = Cell("train", "bandit", "reinforce", "jax", estimator_options={"baseline": "loo"}, settings={"steps": 2})
    skip = Cell("gradient", "bandit", "pathwise", "torch", settings={"num_replicates": 10})
    store.save_cell(grad, {"status": "done", "label": "exact", "row": {"variance": 0.0, "bias_norm": 1e-8}})
    store.save_cell(train, {"status": "done", "label": "reinforce[baseline=loo]", "row": {"final_loss": -0.5},
                            "history": pd.DataFrame({"step": [0, 1], "loss": [-0.3, -0.5]})})
    store.save_cell(skip, {"status": "skipped", "reason": "does not support", "label": "pathwise"})
    assert not (tmp_path / "results.csv").exists()
    res = load_results([tmp_path])
    cells = res.cells.set_index("key")
    assert sorted(cells.index) == sorted([grad.key, train.key, skip.key])
    assert cells.loc[grad.key, "variance"] == 0.0 and cells.loc[grad.key, "num_replicates"] == 10
    assert cells.loc[grad.key, "seed"] == 1 and cells.loc[grad.key, "num_samples"] == 4
    assert cells.loc[skip.key, "status"] == "skipped" and cells.loc[skip.key, "reason"] == "does not support"
    assert cells.loc[train.key, "estimator"] == "reinforce[baseline=loo]"
    assert list(res.history["step"]) == [0, 1] and set(res.history["key"]) == {train.key}
    assert set(res.history["backend"]) == {"jax"} and list(res.history["loss"]) == [-0.3, -0.5]


# ---- frames -------------------------------------------------------------------------------


def test_gradient_stats_average_over_seeds():
    cells = sample_cells()
    stats = GK.gradient_stats(cells)
    one = stats[(stats["task"] == "bandit") & (stats["estimator"] == "reinforce[baseline=none]")
                & (stats["backend"] == "torch") & (stats["num_samples"] == 4)]
    raw = cells[(cells["task"] == "bandit") & (cells["estimator"] == "reinforce[baseline=none]")
                & (cells["backend"] == "torch") & (cells["num_samples"] == 4)]
    assert one["variance"].item() == pytest.approx(raw["variance"].mean())
    assert one["seeds"].item() == 2
    assert one["bias_sq_floor"].item() == pytest.approx(raw["variance"].mean() / 200)
    # skipped cells are not averaged in
    assert not ((stats["estimator"] == "reinforce[baseline=loo]") & (stats["num_samples"] == 1)).any()
    assert F.reference_samples(stats) == 4  # the smallest S that every estimator has


def test_band_over_seeds():
    assert F.band([2.0]) == (2.0, 2.0, 2.0, "none")
    assert F.band([1.0, 3.0]) == (2.0, 1.0, 3.0, "range")
    mean, low, high, kind = F.band([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n), sd = 1
    assert (mean, kind) == (2.0, "ci95") and low == pytest.approx(2 - half) and high == pytest.approx(2 + half)


def test_summary_table_and_status_counts():
    stats, columns, problems = kind_frames(sample_cells())
    assert not problems
    table = T.summary_table(stats, columns)
    assert {"task", "rank", "estimator", "S", "variance", "bias²", "MSE", "s/estimate (torch)", "s/estimate (jax)",
            "work-norm. variance (torch)", "work-norm. variance (jax)", "final minibatch surrogate"} <= set(table.columns)
    row = table[(table["task"] == "bandit") & (table["estimator"] == "exact")]
    assert row["final minibatch surrogate"].item() == pytest.approx(-0.89)
    counts = T.status_counts(sample_cells()).set_index("kind")
    assert counts.loc["gradient", "skipped"] == 2 * 2 * 2  # tasks x backends x seeds, at S=1
    assert counts.loc["train", "failed"] == 1


def test_tick_labels():
    assert tick_label(1.0) == "1" and tick_label(0.05) == "0.05" and tick_label(200.0) == "200"
    assert tick_label(1e-5) == "10⁻⁵" and tick_label(2e-7) == "2×10⁻⁷" and tick_label(1e6) == "10⁶"
    assert tick_label(0.0) == "" and tick_label(float("nan")) == ""


# ---- figures ------------------------------------------------------------------------------


def _png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def palette():
    theme()
    return Palette.from_labels(ESTIMATORS + ["gumbel_softmax[hard=True,temperature=1.0]"])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The report of the sample run folder and an asv tree of one commit, built once."""
    root = tmp_path_factory.mktemp("report")
    write_run_folder(root / "run")
    write_asv(root / "bench", [("a1b2c3d4e5f6", 1_700_000_000_000, 1.0)])
    index = build_report([root / "run", root / "bench" / ".asv"], root / "report")
    return index


@pytest.mark.parametrize("name", ["variance_vs_samples", "bias_variance_mse", "efficiency_frontier",
                                  "training_curves", "temperature_sweep", "lasso_delta_sweep", "asv_summary"])
def test_each_figure_is_drawn_from_sample_data(name, report):
    from gradest.plotting.style import DPI, MAX_WIDTH_IN

    folder = report.parent
    width, height = _png_size(folder / f"{name}.png")
    # shown 1:1 (never scaled down) in the page's column at a 1,400-px window
    assert 300 < width <= round(MAX_WIDTH_IN * DPI) and 200 < height < 4000
    svg = (folder / f"{name}.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
    page = report.read_text()
    assert f"src='{name}.png'" in page and f"href='{name}.svg'" in page


def test_figure_records_and_their_data(tmp_path, palette):
    cells = sample_cells()
    fig = GK.variance_vs_samples(cells, palette, tmp_path)
    assert fig.name == "variance_vs_samples" and sorted(fig.files) == ["variance_vs_samples.png",
                                                                      "variance_vs_samples.svg"]
    assert "slope −1" in fig.caption and "the panel names those estimators" in fig.caption
    svg = (tmp_path / fig.svg).read_text()
    # every estimator with a variance is in the legend; exact (zero variance) is named in the panel
    for est in ESTIMATORS[1:]:
        assert est in svg
    assert "zero variance: exact" not in svg  # exact is the reference: left out, not listed


def test_asv_history_over_commits(tmp_path, palette):
    write_asv(tmp_path, [("a1b2c3d4e5f6", 1_700_000_000_000, 1.0), ("0123456789ab", 1_700_100_000_000, 1.3),
                         ("ba9876543210", 1_700_200_000_000, 0.8)])
    fig = AF.asv_history(load_asv(tmp_path / ".asv" / "results"), palette, tmp_path)
    assert fig is not None and "3 commits" in fig.caption
    svg = (tmp_path / fig.svg).read_text()
    assert "a1b2c3d4" in svg and "ba987654" in svg  # commits on the x axis, oldest first
    assert svg.index("a1b2c3d4") < svg.index("ba987654")


def test_lasso_curves_keep_the_evaluated_steps_of_a_history_logged_between_them():
    """The training loop logs steps without the task's metrics between its evaluated steps: the
    curves are drawn through the evaluated ones (NaN gaps would break every line into dots)."""
    history = sample_history()
    lasso = history["kind"] == "lasso_delta"
    logged_only = history[lasso].assign(step=lambda h: h["step"] + 5, objective_gap=math.nan)
    curves = LD.gap_curves(pd.concat([history, logged_only], ignore_index=True))
    assert len(curves) == lasso.sum() and curves["objective_gap"].notna().all()
    assert (curves["step"] % 10 == 0).all()


def test_figures_skip_missing_data(tmp_path, palette):
    empty = pd.DataFrame()
    assert GK.variance_vs_samples(empty, palette, tmp_path) is None
    assert FG.bias_variance_mse(empty, palette, tmp_path) is None
    assert TK.training_curves_figure(empty, palette, tmp_path) is None
    assert TEMP.temperature_sweep(empty, palette, tmp_path) is None
    assert LD.lasso_delta_sweep(empty, empty, palette, tmp_path) is None
    assert AF.asv_summary(empty, palette, tmp_path) is None
    only_one_commit = pd.DataFrame({"benchmark": ["a"], "status": ["ok"], "commit": ["c"], "value": [1.0],
                                    "date": [pd.Timestamp(0)], "params": [""], "unit": ["seconds"], "type": ["time"]})
    assert AF.asv_history(only_one_commit, palette, tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_palette_is_one_mapping_for_all_figures():
    labels = ["reinforce[baseline=loo]", "exact", "pathwise", "exact"]
    a, b = Palette.from_labels(labels), Palette.from_labels(list(reversed(labels)))
    assert a.colors == b.colors and len(a.colors) == 3
    assert len({a(lab) for lab in labels}) == 3
    from gradest.plotting.style import PALETTE

    many = Palette.from_labels([f"est{i}" for i in range(30)])
    assert len(many.colors) == 30
    # undeclared labels: each its stable hash's colour, the same alone as in company
    assert all(Palette.from_labels([f"est{i}"])(f"est{i}") == many(f"est{i}") for i in range(30))
    assert many("est3") == to_rgb(PALETTE[home_slot("est3")])


# ---- the report --------------------------------------------------------------------------


def test_build_report_writes_the_pages(report):
    page = report.read_text()
    assert "RuntimeError: out of memory" in page  # failed cells are listed
    assert "Every skipped cell (8)" in page
    assert "asv measurements failed or skipped (4), by likely reason" in page
    md = (report.parent / "summary.md").read_text()
    assert "| task | rank | ranked by | estimator |" in md and "![Training curves](training_curves.png)" in md
    assert "| bandit |  |  | exact |" in md  # the reference: not ranked
    assert "## Leaderboard" in md and md.index("## Leaderboard") < md.index("## Summary")


def test_the_page_says_what_ran_with_the_command_as_run(report):
    page = report.read_text()
    md = (report.parent / "summary.md").read_text()
    # the header is the command line as run, options included
    assert "<code>gradest run --quick --tasks bandit,binary_toy --out run</code>" in page
    assert "`gradest run --quick --tasks bandit,binary_toy --out run`" in md
    scope = page[page.index("<section id='scope'"):page.index("</section>")]
    assert "budget quick: 3 seeds (2 for the kinds that measure at θ₀)" in scope
    assert "only core variants train" in scope
    assert "gradient: 4 estimator variants of 3 estimators × 2 tasks on torch, jax." in scope
    assert "train: 5 estimator variants of 4 estimators × 1 task on torch" in scope
    assert "8 of " in scope and "planned cells were skipped" in scope
    # the skipped cells by reason, above the table of every skipped cell
    reasons = page[page.index("Skipped cells by reason"):page.index("Every skipped cell")]
    assert "needs num_samples &gt;= 2" in reasons and ">8<" in reasons
    assert "reinforce[baseline=loo] on bandit" in reasons and "### Skipped cells by reason" in md


def test_captions_count_what_ran(report):
    page = report.read_text()
    variance = page[page.index("<h2 id='variance_vs_samples'>"):]
    assert "log-log axes (R = 200 replicates each, mean over 2 seeds)" in variance[:variance.index("</figcaption>")]
    temperature = page[page.index("<h2 id='temperature_sweep'>"):]
    assert "(S = 1, mean over 2 seeds)" in temperature[:temperature.index("</figcaption>")]
    lasso = page[page.index("<h2 id='lasso_delta_sweep'>"):]
    assert "(1 seed per δ and backend)" in lasso[:lasso.index("</figcaption>")]
    training = page[page.index("<h2 id='training_curves'>"):]
    assert "up to 3 seeds" in training[:training.index("</figcaption>")]
    assert "two seeds" not in page


def test_scope_and_reasons_of_a_constructed_run():
    rows = [{"kind": "gradient", "task": t, "estimator": e, "backend": b, "status": "done", "reason": ""}
            for t in ("bandit", "binary_toy") for e in ("a", "b[x=1]", "c") for b in ("torch", "jax")
            if b == "torch" or e == "a"]
    rows += [{"kind": "train", "task": t, "estimator": e, "backend": b, "status": "done", "reason": ""}
             for t in ("bandit", "binary_toy") for e in ("a", "b[x=1]", "c") for b in ("torch", "jax") if e != "c"]
    rows += [{"kind": "gradient", "task": "bandit", "estimator": e, "backend": "torch", "status": "skipped",
              "reason": f"estimator '{e}' does not support task 'bandit': use another"} for e in ("d", "e", "f")]
    rows += [{"kind": "gradient", "task": "binary_toy", "estimator": "g", "backend": "torch", "status": "skipped",
              "reason": "estimator 'g' needs num_samples >= 2 (its baseline); got num_samples=1"}]
    cells = pd.DataFrame(rows)
    manifest = {"budget": {"name": "quick", "seeds": 2, "measured_seeds": 1, "core_after_first": True,
                           "core_training": True}}
    lines = T.sweep_scope(cells, [manifest])
    assert lines[0].startswith("budget quick: 2 seeds (1 for the kinds that measure at θ₀); on the backends after "
                               "the first, only the estimators' core variants run; only core variants train")
    assert "gradient: 7 estimator variants of 7 estimators × 2 tasks on torch; on jax only 1: a." in lines
    assert ("train: 2 estimator variants of 2 estimators × 2 tasks on torch, jax; not run by train: 5 variants "
            "(c, d, e, f, g).") in lines
    assert lines[-1].startswith("4 of 20 planned cells were skipped")
    reasons = T.reason_summary(T.not_done(cells, "skipped"))
    assert list(reasons["reason"]) == ["estimator '…' does not support task '…'",
                                       "estimator '…' needs num_samples >= 2 (its baseline)"]
    assert list(reasons["cells"]) == [3, 1]
    assert reasons["examples"].iloc[0] == "d on bandit, e on bandit, f on bandit"
    assert T.sweep_scope(pd.DataFrame(), []) == [] and T.reason_summary(pd.DataFrame()).empty


def test_a_task_without_an_exact_gradient_is_ranked_by_work_normalized_variance():
    cells = sample_cells()
    no_truth = cells["task"] == "binary_toy"
    for col in ("bias_norm", "bias_norm_low", "bias_norm_high", "bias_sq", "mse", "mse_low", "mse_high"):
        cells.loc[no_truth, col] = np.nan
    stats, columns, _ = kind_frames(cells)
    table = T.summary_table(stats, columns)
    toy = table[(table["task"] == "binary_toy") & table["rank"].notna()]
    assert len(toy) == 3 and set(toy["ranked by"]) == {"variance\u00a0×\u00a0s\u00a0(torch)"}
    assert list(toy["rank"]) == sorted(toy["rank"])
    assert set(table.loc[(table["task"] == "bandit") & table["rank"].notna(), "ranked by"]) == {"MSE"}


def test_a_one_row_leaderboard_is_not_a_ranking():
    from gradest.reports.html import leaderboard_html
    from gradest.reports.leaderboard import leaderboard

    cells = sample_cells()
    one = cells[(cells["task"] == "bandit") & cells["estimator"].isin(["exact", "reinforce[baseline=loo]"])]
    board = leaderboard(kind_frames(F.canonical_frame(one))[0])
    assert len(board) == 1
    page = leaderboard_html([("run", "run", board)])
    assert "one estimator measured: nothing to rank" in page and "<th>#</th>" not in page
    from gradest.reports.html import leaderboard_markdown

    md = leaderboard_markdown([("run", "run", board)])
    row = next(line for line in md.splitlines() if "reinforce[baseline=loo]" in line)
    assert "One estimator measured: nothing to rank." in md and row.startswith("|  | ") and "**" not in row
    assert "reinforce[baseline=loo]" in page
    row = T.summary_table(kind_frames(F.canonical_frame(one))[0])
    row = row[row["estimator"] == "reinforce[baseline=loo]"]
    assert row["rank"].isna().all() and list(row["ranked by"]) == ["nothing\u00a0to\u00a0rank"]


def test_estimator_labels_cover_every_source():
    from gradest.reports.load import Results

    res = Results(cells=sample_cells(), history=sample_history(),
                  asv=pd.DataFrame({"param:estimator": ["vimco"]}))
    labels = estimator_labels(res)
    # canonical: only the options that differ from the registered defaults
    assert {"exact", "reinforce", "reinforce[baseline=loo]", "gumbel_softmax"} <= set(labels)
    assert "vimco" in labels and "broken" in labels
    # the temperature rows' per-τ labels are not estimators of their own
    assert not any("temperature=0.1" in lab for lab in labels)
    assert "gumbel_softmax[hard=True]" in labels


def test_a_figure_that_fails_does_not_lose_the_report(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("variance")

    monkeypatch.setattr(FG, "efficiency_frontier", broken)
    cells = sample_cells()
    write_run_folder(tmp_path / "run", cells=cells[cells["kind"] == "lasso_delta"],
                     history=sample_history().iloc[:0])
    with pytest.warns(RuntimeWarning, match="efficiency_frontier could not be drawn: KeyError"):
        index = build_report([tmp_path / "run"], tmp_path / "report")
    page = index.read_text()
    assert "figure efficiency_frontier could not be drawn" in page
    assert "src='lasso_delta_sweep.png'" in page and "efficiency_frontier.png" not in page


def test_one_task_with_two_option_sets_is_two_tasks(tmp_path):
    """A task run with two option sets (a preset's two targets) is two tasks in the frames, the
    history following its cells; a task with one option set keeps its name."""
    from gradest.reports.load import distinguish_task_variants

    cells = pd.DataFrame({"key": ["a", "b", "c"], "task": ["binary_toy", "binary_toy", "bandit"],
                          "task_options": ['{"target": [0.45]}', '{"target": [0.499]}', '{}']})
    history = pd.DataFrame({"key": ["a", "a", "b", "c"], "task": ["binary_toy"] * 3 + ["bandit"], "step": [0, 1, 0, 0]})
    cells, history = distinguish_task_variants(cells, history)
    assert list(cells["task"]) == ["binary_toy[target=0.45]", "binary_toy[target=0.499]", "bandit"]
    assert list(history["task"]) == ["binary_toy[target=0.45]"] * 2 + ["binary_toy[target=0.499]", "bandit"]
    # a kind's own sweep of an option (lasso_delta's δ) does not relabel the task in the other kinds
    cells = pd.DataFrame({"key": list("abcd"), "kind": ["gradient", "train", "lasso_delta", "lasso_delta"],
                          "task": ["lasso_huber"] * 4,
                          "task_options": ["{}", "{}", '{"delta": 1.0}', '{"delta": 0.1}']})
    cells, _ = distinguish_task_variants(cells, pd.DataFrame())
    assert list(cells["task"]) == ["lasso_huber", "lasso_huber", "lasso_huber[delta=1.0]", "lasso_huber[delta=0.1]"]


def test_variance_along_training_figure(tmp_path, palette):
    """The trained estimator's own variance along training, from the ``own_variance`` column,
    on a log10 scale; no figure without it."""
    rows = [{"kind": "train", "task": "binary_toy", "estimator": est, "backend": "torch", "seed": seed, "step": step,
             "own_variance": (10.0 ** -(2 + step / 50)) if est == "relax" else 1e-2}
            for est in ("relax", "reinforce") for seed in (0, 1, 2) for step in range(0, 200, 50)]
    history = pd.DataFrame(rows)
    curves = TK.own_variance_curves(history)
    assert curves.loc[(curves["estimator"] == "relax") & (curves["step"] == 100), "value"].iloc[0] == pytest.approx(-4)
    fig = TK.variance_along_training(history, palette, tmp_path)
    assert fig is not None and fig.name == "variance_along_training"
    assert all((tmp_path / f"variance_along_training.{ext}").exists() for ext in ("png", "svg"))
    assert TK.variance_along_training(history.drop(columns=["own_variance"]), palette, tmp_path) is None


def test_the_report_names_no_cell_kind():
    """reports/ reaches the kinds through the registry only: no kind's name as a string, no
    import of a kind's module."""
    import ast
    from pathlib import Path

    import gradest.reports
    from gradest.sweep import kind_names

    names = set(kind_names())
    for path in Path(gradest.reports.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        assert not strings & names, (path.name, strings & names)
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not {m for m in imported if m.startswith("gradest.kinds")}, path.name
