"""The report ranks and is readable: the leaderboard, where its numbers mislead, stable colours,
legends of canonical labels, one zero rule, figures that fit the page, and the same analysis
from asv's track_ statistics.

Sample data are built here (a results folder of gradient and training rows with chosen
statistics, an asv tree of the statistics suite over three commits), no sweep and no asv run."""
from __future__ import annotations

import itertools
import json
import math
import re
import struct

import numpy as np
import pandas as pd
import pytest

from gradest.kinds import gradient as GK
from gradest.kinds import train as TK
from gradest.plotting import frames as F
from gradest.plotting.figure import legend_handles
from gradest.reports import build_report, canonical_results, estimator_labels
from gradest.reports import leaderboard as L
from gradest.reports.asv_results import load_asv, skip_summary, track_stats
from gradest.reports.load import Results
from matplotlib.colors import to_rgb

from gradest.plotting.style import (DPI, MAX_WIDTH_IN, PALETTE, Palette, assign_slots, finish, grid, home_slot,
                                   log_axis, plt, theme)

NVIL = "nvil[decay=0.9,hidden=16,init_seed=0,normalize=True]"
RAO = "gumbel_rao[num_mc=10,temperature=1.0]"
SOFT = "gumbel_softmax[hard=False,temperature=1.0]"
ST = "straight_through[temperature=1.0]"
#: (task, label) -> (MSE, its 95% half-width, bias², seconds per estimate on torch), at S = 4
STATS = {
    ("bandit", "exact"): (0.0, 0.0, 0.0, 1e-6),
    ("bandit", ST): (3.6e-16, 0.0, 1e-17, 2e-5),  # float noise: exact on the bandit
    ("bandit", RAO): (0.0017, 0.0001, 7e-4, 6e-5),
    ("bandit", SOFT): (0.0026, 0.0002, 6e-4, 8e-6),
    ("bandit", NVIL): (0.023, 0.002, 1.6e-4, 4e-5),
    ("bandit", "reinforce[baseline=loo]"): (0.030, 0.002, 2e-4, 1e-4),
    ("bandit", "reinforce[baseline=none]"): (0.049, 0.005, 3e-4, 2e-5),
    ("binary_toy", "exact"): (0.0, 0.0, 0.0, 1e-6),
    ("binary_toy", "reinforce[baseline=loo]"): (1.00e-4, 3e-5, 2e-7, 4e-6),
    ("binary_toy", NVIL): (1.05e-4, 3e-5, 2e-8, 8e-6),  # its interval overlaps the best's: tied
    ("binary_toy", SOFT): (1.3e-3, 2e-4, 8e-5, 5e-6),
    ("binary_toy", "reinforce[baseline=none]"): (4.0e-3, 6e-4, 8e-6, 7e-6),
}
#: these also ran on jax, 100x faster: the work-normalized ranking must stay on torch
ON_JAX = {"exact", "reinforce[baseline=none]", "reinforce[baseline=loo]", SOFT}


def run_cells() -> pd.DataFrame:
    rows = []
    for (task, est), (mse, half, bias_sq, sec) in STATS.items():
        for backend in ("jax", "torch"):  # jax rows first: tables must still put torch first
            if backend == "jax" and est not in ON_JAX:
                continue
            for S in ((4,) if "loo" in est else (1, 4)):  # leave-one-out needs S >= 2
                for seed in (0, 1):
                    scale = 4 / S
                    var = (mse - bias_sq) * scale
                    seconds = sec * S / 4 * (0.01 if backend == "jax" else 1.0)
                    rows.append({"key": f"g{len(rows)}", "kind": "gradient", "task": task, "estimator": est,
                                 "estimator_name": est.split("[")[0], "backend": backend, "device": "cpu",
                                 "num_samples": S, "seed": seed, "status": "done", "num_replicates": 200,
                                 "variance": var, "variance_low": max(var - half * scale, 0),
                                 "variance_high": var + half * scale, "bias_sq": bias_sq,
                                 "bias_norm": math.sqrt(bias_sq), "mse": var + bias_sq,
                                 "mse_low": max(var + bias_sq - half * scale, 0),
                                 "mse_high": var + bias_sq + half * scale, "exact_norm": 0.1,
                                 "seconds_per_estimate": seconds, "work_normalized_variance": var * seconds,
                                 "phi_warmup_steps": 100.0 if est.startswith("nvil") else 0.0,
                                 "current_run": True})
    for est in ("exact", "reinforce[baseline=none]"):
        for backend in ("torch", "jax"):
            rows.append({"key": f"t{len(rows)}", "kind": "train", "task": "bandit", "estimator": est,
                         "estimator_name": est.split("[")[0],
                         "backend": backend, "seed": 0, "num_samples": 4, "status": "done",
                         "final_exact_loss": -0.9, "current_run": True})
    return pd.DataFrame(rows)


def run_history() -> pd.DataFrame:
    rows = []
    for est in ("exact", "reinforce[baseline=none]"):
        for backend, compile_s in (("torch", 0.01), ("jax", 1.0)):
            for step in range(10):
                rows.append({"kind": "train", "task": "bandit", "estimator": est, "backend": backend, "seed": 0,
                             "step": step, "seconds": compile_s + 0.01 * step, "loss": -0.5 - 0.04 * step,
                             "exact_loss": -0.5 - 0.04 * step})
    return pd.DataFrame(rows)


ASV_ESTIMATORS = ["exact", "gumbel_rao", "gumbel_softmax[hard=False]", "gumbel_softmax[hard=True]", "nvil",
                  "reinforce[baseline=loo]", "reinforce[baseline=none]", "reinforce[baseline=optimal]", "reinmax",
                  "straight_through", "indecater"]


def write_asv_statistics(root, commits=3) -> None:
    """An asv tree of benchmarks/statistics.py's track_ benchmarks: 11 estimators x 2 tasks x
    2 backends x cpu/cuda; cuda skipped everywhere (no GPU), indecater on binary_toy skipped
    (does not apply)."""
    results = root / ".asv" / "results"
    (results / "box").mkdir(parents=True)
    grid_params = [[repr(e) for e in ASV_ESTIMATORS], ["'bandit'", "'binary_toy'"], ["'torch'", "'jax'"],
                   ["'cpu'", "'cuda'"]]
    names = {"track_variance": "variance", "track_bias_sq": "bias_sq", "track_mse": "mse",
             "track_work_normalized_variance": "work_normalized_variance"}
    meta = {f"statistics.EstimatorStatistics.{n}": {"name": f"statistics.EstimatorStatistics.{n}", "type": "track",
                                                     "unit": "gradient^2", "params": grid_params,
                                                     "param_names": ["estimator", "task", "backend", "device"]}
            for n in names}
    (results / "benchmarks.json").write_text(json.dumps({**meta, "version": 2}))
    (results / "box" / "machine.json").write_text(json.dumps({"machine": "box", "version": 1}))
    for c in range(commits):
        commit = f"{c + 1:x}" * 12
        out = {}
        for bench, stat in names.items():
            values = []
            for i, (est, task, backend, device) in enumerate(itertools.product(
                    ASV_ESTIMATORS, ["bandit", "binary_toy"], ["torch", "jax"], ["cpu", "cuda"])):
                if device == "cuda" or (est == "indecater" and task == "binary_toy"):
                    values.append(float("nan"))
                    continue
                zero = est in ("exact", "straight_through") and task == "bandit" or est == "exact"
                variance = 0.0 if zero else 1e-3 * (1 + ASV_ESTIMATORS.index(est)) * (1 + 0.05 * c)
                bias_sq = 0.0 if zero else 1e-5
                value = {"variance": variance, "bias_sq": bias_sq, "mse": variance + bias_sq,
                         "work_normalized_variance": variance * 1e-5}[stat]
                values.append(value)
            out[f"statistics.EstimatorStatistics.{bench}"] = [values, grid_params, "1", 0, 1.0]
        data = {"commit_hash": commit, "env_name": "py", "date": 1_700_000_000_000 + c * 86_400_000,
                "params": {"machine": "box"}, "python": "3.11", "requirements": {}, "env_vars": {}, "durations": {},
                "version": 2, "result_columns": ["result", "params", "version", "started_at", "duration"],
                "results": out}
        (results / "box" / f"{commit[:8]}-py.json").write_text(json.dumps(data))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The report of the run folder and the asv tree, built once."""
    root = tmp_path_factory.mktemp("board")
    (root / "run").mkdir()
    run_cells().to_csv(root / "run" / "results.csv", index=False)
    run_history().to_csv(root / "run" / "history.csv", index=False)
    write_asv_statistics(root / "bench")
    return build_report([root / "run", root / "bench" / ".asv"], root / "report")


def section(page: str, start: str, end: str | None = None) -> str:
    i = page.index(start)
    j = page.index(end, i + len(start)) if end else len(page)
    return page[i:j]


def table_estimators(html_table: str) -> list:
    """The estimator names of an HTML table's rows, in order."""
    return re.findall(r"<td class='text'><span class='swatch'[^>]*></span>([^<]+)", html_table)


# ---- the leaderboard frame ---------------------------------------------------------------------


def test_leaderboard_ranks_by_mse_and_by_work_normalized_variance_on_one_backend():
    stats = GK.gradient_stats(F.canonical_frame(run_cells()))
    board = L.leaderboard(stats)
    bandit = board[board["task"] == "bandit"]
    assert "exact" not in set(board["estimator"])  # the reference is not ranked
    assert list(bandit["estimator"]) == ["straight_through", "gumbel_rao", "gumbel_softmax", "nvil",
                                         "reinforce[baseline=loo]", "reinforce"]
    assert list(bandit["mse_rank"]) == [1, 2, 3, 4, 5, 6] and set(board["S"]) == {4}
    best = bandit.iloc[0]
    assert best["mse_best"] and best["mse"] == 0.0 and best["mse_zero"]  # 3.6e-16 is float noise: 0
    # by variance x seconds on torch (most estimators ran there), although jax timed every one 100x faster
    assert set(board["wnv_backend"]) == {"torch"}
    wnv = L.by(board, "bandit", "wnv_rank")
    assert list(wnv["estimator"])[:3] == ["straight_through", "gumbel_softmax", "gumbel_rao"]
    assert wnv.set_index("estimator").loc["reinforce", "wnv_jax"] < wnv.set_index("estimator").loc["reinforce", "wnv"]
    # marks: claimed unbiasedness from the registry, φ of learned estimators
    marks = board.drop_duplicates("estimator").set_index("estimator")
    assert bool(marks.loc["reinforce", "unbiased"]) and not marks.loc["straight_through", "unbiased"]
    assert marks.loc["straight_through", "unbiased"] is not None
    assert marks.loc["nvil", "learned"] and marks.loc["nvil", "phi_warmup_steps"] == 100
    assert not marks.loc["reinforce", "learned"]
    # ties: an interval that overlaps the best's
    toy = board[board["task"] == "binary_toy"].set_index("estimator")
    assert toy.loc["reinforce[baseline=loo]", "mse_best"] and toy.loc["nvil", "mse_tied"]
    assert not toy.loc["gumbel_softmax", "mse_tied"]
    assert L.estimator_facts("not_an_estimator") == (None, None)


def test_notes_say_where_the_numbers_mislead():
    board = L.leaderboard(GK.gradient_stats(F.canonical_frame(run_cells())))
    notes = " ".join(L.task_notes(board, "bandit"))
    assert "linear in the one-hot sample" in notes and "straight-through" in notes
    # the bandit declares why straight-through's variance is zero (f linear in the sample): no generic text
    assert "straight_through has zero variance on bandit: f(z) = −r·z is linear" in notes
    assert "biased in general but measure" not in notes and "by enumerating or pairing" not in notes
    assert "nvil after 100 φ steps" in notes
    assert "linear in the one-hot" not in " ".join(L.task_notes(board, "binary_toy"))
    assert any("no interval" in n for n in L.task_notes(board, "bandit", source="asv"))


def _zero_board(task, rows):
    """A leaderboard frame of ``task`` with (estimator, unbiased, zero) rows."""
    return pd.DataFrame([{"task": task, "estimator": est, "unbiased": unbiased, "learned": False,
                          "phi_warmup_steps": None, "mse": 0.0 if zero else 1.0, "mse_zero": zero,
                          "variance_zero": zero} for est, unbiased, zero in rows])


def test_zero_variance_notes_are_the_tasks_declarations():
    # lasso_huber at sigma = 0: nothing is random, the task says so for pathwise
    notes = " ".join(L.task_notes(_zero_board("lasso_huber", [("pathwise", True, True)]), "lasso_huber"))
    assert "pathwise has zero variance on lasso_huber: at sigma = 0 nothing is random" in notes
    assert "by enumerating or pairing" not in notes
    # with sigma > 0 the task declares nothing: the generic explanation
    smooth = "lasso_huber[sigma=0.1]"
    notes = " ".join(L.task_notes(_zero_board(smooth, [("pathwise", True, True)]), smooth))
    assert "nothing is random" not in notes and "by enumerating or pairing" in notes
    # a task that declares nothing: generic notes for unbiased and biased zero-variance estimators
    notes = " ".join(L.task_notes(_zero_board("binary_toy", [("disarm", True, True), ("gumbel_softmax", False, True),
                                                             ("reinforce", True, False)]), "binary_toy"))
    assert "disarm has zero variance on binary_toy: it computes ∇L exactly" in notes
    assert "gumbel_softmax is biased in general but measures as exact" in notes and "reinforce" not in notes
    from gradest.registry import get_task

    assert get_task("bandit", reward_noise="gaussian").zero_variance_note("straight_through", {}) is None
    assert get_task("gaussian_quadratic").zero_variance_note("pathwise", {}) is None  # the default


def test_one_zero_rule_for_every_statistic():
    stats = GK.gradient_stats(run_cells())
    st = stats[(stats["estimator"] == ST) & (stats["backend"] == "torch")]
    assert (st["variance"] == 0).all() and st["variance_zero"].all() and (st["mse"] == 0).all()
    assert (st["work_normalized_variance"] == 0).all() and (st["variance_high"] == 0).all()
    rao = stats[stats["estimator"] == RAO]
    assert (rao["variance"] > 0).all() and not rao["variance_zero"].any()
    # without ‖∇L‖ (asv): relative to the task's largest statistic
    frame = pd.DataFrame({"task": ["t", "t"], "estimator": ["a", "b"], "variance": [1e-17, 0.5], "mse": [1e-17, 0.5]})
    zeroed = F.apply_zero_rule(frame)
    assert zeroed["variance"].tolist() == [0.0, 0.5] and zeroed["mse_zero"].tolist() == [True, False]
    assert F.zero_names(zeroed, "variance", "t") == ["a"]


def test_canonical_labels_show_only_options_that_differ_from_the_defaults():
    assert F.canonical_label(NVIL) == "nvil"
    assert F.canonical_label(RAO) == F.canonical_label("gumbel_rao") == "gumbel_rao"
    assert F.canonical_label(SOFT) == "gumbel_softmax"
    assert F.canonical_label("gumbel_softmax[hard=True,temperature=1.0]") == "gumbel_softmax[hard=True]"
    assert F.canonical_label("gumbel_softmax[hard=False,temperature=0.5]") == "gumbel_softmax[temperature=0.5]"
    assert F.canonical_label("reinforce[baseline=none]") == "reinforce"
    assert F.canonical_label("my_plugin[b=2,a=1]") == "my_plugin[a=1,b=2]"  # unknown: kept, sorted
    assert F.canonical_label("broken[label") == "broken[label"
    assert F.ordered_backends(["jax", "mlx", "torch", "jax"]) == ["torch", "jax", "mlx"]


# ---- colours -----------------------------------------------------------------------------------


def _lab(hex_colour: str) -> np.ndarray:
    rgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    rgb = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = rgb @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    f = np.cbrt(np.maximum(xyz / [0.95047, 1.0, 1.08883], 216 / 24389))
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def ciede2000(c1: str, c2: str) -> float:
    """The CIEDE2000 colour difference of two sRGB colours (Sharma, Wu & Dalal 2005)."""
    (L1, a1, b1), (L2, a2, b2) = _lab(c1), _lab(c2)
    Cb = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    G = 0.5 * (1 - math.sqrt(Cb**7 / (Cb**7 + 25**7)))
    a1, a2 = (1 + G) * a1, (1 + G) * a2
    C1, C2 = math.hypot(a1, b1), math.hypot(a2, b2)
    h1, h2 = math.degrees(math.atan2(b1, a1)) % 360, math.degrees(math.atan2(b2, a2)) % 360
    dh = 0.0 if C1 * C2 == 0 else ((h2 - h1 + 180) % 360) - 180
    dH = 2 * math.sqrt(C1 * C2) * math.sin(math.radians(dh / 2))
    Lm, Cm = (L1 + L2) / 2, (C1 + C2) / 2
    if C1 * C2 == 0:
        hm = h1 + h2
    elif abs(h1 - h2) <= 180:
        hm = (h1 + h2) / 2
    else:
        hm = (h1 + h2 + (360 if h1 + h2 < 360 else -360)) / 2
    T = (1 - 0.17 * math.cos(math.radians(hm - 30)) + 0.24 * math.cos(math.radians(2 * hm))
         + 0.32 * math.cos(math.radians(3 * hm + 6)) - 0.2 * math.cos(math.radians(4 * hm - 63)))
    SL = 1 + 0.015 * (Lm - 50) ** 2 / math.sqrt(20 + (Lm - 50) ** 2)
    SC, SH = 1 + 0.045 * Cm, 1 + 0.015 * Cm * T
    RT = -math.sin(math.radians(60 * math.exp(-(((hm - 275) / 25) ** 2)))) * 2 * math.sqrt(Cm**7 / (Cm**7 + 25**7))
    dL, dC = L2 - L1, C2 - C1
    return math.sqrt((dL / SL) ** 2 + (dC / SC) ** 2 + (dH / SH) ** 2 + RT * (dC / SC) * (dH / SH))


def test_the_palette_has_no_near_identical_hues():
    assert len(PALETTE) >= 20 and len(set(PALETTE)) == len(PALETTE)
    assert min(ciede2000(a, b) for a, b in itertools.combinations(PALETTE, 2)) >= 15
    assert ciede2000("#8c564b", "#a0522d") < 10  # the two browns the old palette had: caught by the measure


BUILT_IN = ["antithetic", "arm", "disarm", "exact", "gumbel_rao", "gumbel_softmax", "gumbel_softmax[hard=True]",
            "indecater", "mvd", "nvil", "pathwise", "rebar", "reinforce", "reinforce[baseline=loo]",
            "reinforce[baseline=moving_average]", "reinforce[baseline=optimal]", "reinmax", "relax",
            "straight_through", "vimco"]


def test_a_colour_is_a_function_of_the_label():
    base = Palette.from_labels(BUILT_IN)
    # the declared variants share a colour only once every colour of the palette is used: no
    # colour serves more than ceil(variants / colours) of them, whatever their hashes; the core
    # variants (in every figure) never share one
    from collections import Counter

    from gradest.labels import make_label
    from gradest.plotting.frames import canonical_label
    from gradest.registry import core_variants, estimator_variants

    import gradest

    declared = sorted({canonical_label(make_label(name, options)) for name in gradest.list_estimators()
                       for options in estimator_variants(name)})
    everyone = Palette.from_labels(declared)
    uses = Counter(everyone.colors[label] for label in declared)
    assert max(uses.values()) <= math.ceil(len(declared) / len(PALETTE)), uses
    core = {canonical_label(make_label(name, options)) for name in gradest.list_estimators()
            for options in core_variants(name)}
    assert len({everyone.colors[label] for label in core}) == len(core)
    # the order of the labels and the spelling of defaults do not matter
    again = Palette.from_labels(list(reversed(BUILT_IN)) + [RAO, NVIL, "reinforce[baseline=none]"])
    assert again.colors == base.colors and again(RAO) == base("gumbel_rao")
    # every estimator vs a subset: each label keeps its colour whatever else is present
    for subset in (["reinforce[baseline=loo]"], ["reinforce[baseline=loo]", "exact", "pathwise"], BUILT_IN[::3]):
        small = Palette.from_labels(subset)
        assert all(small(lab) == base(lab) for lab in subset)
    # a label no variant declares takes its home slot, in any company
    other = "plugin_estimator_7"
    assert Palette.from_labels([other])(other) == Palette.from_labels(BUILT_IN + [other])(other) \
        == to_rgb(PALETTE[home_slot(other)])
    assert assign_slots([other, "exact"])[other] == home_slot(other)


def test_colours_are_the_same_in_another_process():
    import json
    import subprocess
    import sys

    code = ("import json; from gradest.plotting.style import Palette; "
            f"labels = {BUILT_IN!r} + ['plugin_estimator_7']; p = Palette.from_labels(labels[::-1][:5]); "
            "print(json.dumps({lab: p.hex(lab) for lab in labels}))")
    env = {**__import__("os").environ, "PYTHONHASHSEED": "123"}
    other = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                      check=True).stdout)
    here = Palette.from_labels(BUILT_IN)
    assert other == {lab: here.hex(lab) for lab in other}


def test_run_and_asv_labels_of_one_estimator_are_one_estimator():
    res = Results(cells=pd.DataFrame({"kind": ["gradient"], "estimator": [RAO]}),
                  asv=pd.DataFrame({"param:estimator": ["gumbel_rao", "gumbel_softmax[hard=False]"]}))
    labels = estimator_labels(canonical_results(res))
    assert labels == ["gumbel_rao", "gumbel_softmax"]


# ---- legends and layout ------------------------------------------------------------------------


def test_backend_legend_matches_the_lines():
    theme()
    palette = Palette.from_labels(["exact"])
    with_markers = legend_handles(palette, ["exact"], ["jax", "torch"])
    lines_only = legend_handles(palette, ["exact"], ["jax", "torch"], markers=False)
    assert [h.get_label() for h in lines_only] == ["exact", "backend torch", "backend jax"]
    assert [h.get_marker() for h in lines_only[1:]] == ["None", "None"]
    assert [h.get_linestyle() for h in lines_only[1:]] == ["-", "--"]
    assert [h.get_marker() for h in with_markers[1:]] == ["o", "s"]


def test_log_ticks_never_overlap_on_a_narrow_panel():
    theme()
    fig, (ax,) = grid(1, width=2.2, height=2.0)
    ax.scatter([5e-5, 1.2e-4, 4.6e-4], [1, 2, 3])
    log_axis(ax, "x")
    finish(fig)
    width = ax.get_position().width * fig.get_size_inches()[0] * DPI
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text() and t.get_visible()]
    boxes = [b for b in boxes if 0 <= (b.x0 + b.x1) / 2 - ax.get_window_extent().x0 <= width]
    assert len(boxes) >= 2
    boxes.sort(key=lambda b: b.x0)
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:]))  # no two labels overlap
    plt.close(fig)


def test_training_time_is_counted_after_the_first_step():
    curves, _ = TK.training_curves(run_history())
    bands = F.curve_bands(curves)
    jax = bands[(bands["backend"] == "jax") & (bands["estimator"] == "exact")].sort_values("step")
    assert jax["seconds"].tolist() == pytest.approx([0.01 * s for s in range(10)])
    assert jax["first_step_seconds"].max() == pytest.approx(1.0)  # compilation, reported apart


# ---- the report ----------------------------------------------------------------------------------


def test_the_page_has_a_leaderboard(report):
    page = report.read_text()
    assert "<h2 id='leaderboard'>Leaderboard</h2>" in page and "<a href='#leaderboard'>Leaderboard</a>" in page
    assert page.index("id='leaderboard'") < page.index("<h2 id='summary'>")
    run = section(page, "From the gradest run results", "From asv")
    bandit = section(run, "id='lb-run-bandit'", "id='lb-run-binary_toy'")
    mse_table = section(bandit, "by MSE against the exact gradient", "</table>")
    assert table_estimators(mse_table) == ["straight_through", "gumbel_rao", "gumbel_softmax", "nvil",
                                           "reinforce[baseline=loo]", "reinforce"]
    first_row = section(mse_table, "<tbody><tr>", "</tr>")
    assert "class='best'" in first_row and "straight_through" in first_row and "✓" not in first_row
    rows = re.findall(r"<tr>.*?</tr>", mse_table)
    assert "✓" in next(r for r in rows if ">reinforce<" in r) and "φ 100" in next(r for r in rows if ">nvil<" in r)
    assert sum("class='best'" in r for r in rows) == 1
    assert "linear in the one-hot sample" in bandit and "Read with care" in bandit
    wnv_table = section(bandit, "by work-normalized variance on torch", "</table>")
    assert table_estimators(wnv_table)[:3] == ["straight_through", "gumbel_softmax", "gumbel_rao"]
    toy = section(run, "id='lb-run-binary_toy'")
    assert "class='tied'" in section(toy, "by MSE", "</table>")
    md = (report.parent / "summary.md").read_text()
    assert "| 1 | straight_through | **0** |" in md


def test_the_summary_table_is_ordered_by_rank_with_backends_in_one_order(report):
    page = report.read_text()
    summary = section(page, "<h2 id='summary'>", "</table>")
    heads = re.findall(r"<th[^>]*>([^<]+)</th>", summary)
    assert heads.index("work-norm. variance (torch)") < heads.index("work-norm. variance (jax)")
    assert heads.index("s/estimate (torch)") < heads.index("s/estimate (jax)")
    names = re.findall(r'<td class="text">bandit</td><td class="[^"]*">[^<]*</td><td class="text">MSE</td>'
                       r'<td class="text">([^<]+)</td>', summary)
    assert names[:6] == ["straight_through", "gumbel_rao", "gumbel_softmax", "nvil", "reinforce[baseline=loo]",
                         "reinforce"]


def test_legends_show_canonical_labels_and_figures_fit_the_page(report):
    folder = report.parent
    svg = (folder / "variance_vs_samples.svg").read_text()
    assert ">nvil<" in svg and "decay=0.9" not in svg and "num_mc" not in svg and ">gumbel_softmax<" in svg
    # zero variance: named in the panel, not drawn on a 16-decade axis
    assert "zero variance (not drawn): straight_through" in svg
    assert "10⁻¹⁵" not in svg and "10⁻¹⁶" not in svg
    frontier = (folder / "efficiency_frontier.svg").read_text()
    assert frontier.index("bandit — torch") < frontier.index("bandit — jax")
    training = (folder / "training_curves.svg").read_text()
    assert "by wall-clock time" in training and "after the first step" in training
    for png in folder.glob("*.png"):
        head = png.read_bytes()[:24]
        width = struct.unpack(">II", head[16:24])[0]
        assert width <= round(MAX_WIDTH_IN * DPI), png.name  # shown 1:1 in a 1,400-px window


def test_asv_statistics_give_the_same_analysis(report):
    page = report.read_text()
    folder = report.parent
    asv = section(page, "From asv&#x27;s track_ statistics (commit 33333333 on box)")
    bandit = section(asv, "id='lb-asv-bandit'", "id='lb-asv-binary_toy'")
    names = table_estimators(section(bandit, "by MSE", "</table>"))
    assert names[0] == "straight_through" and "exact" not in names and len(names) == len(ASV_ESTIMATORS) - 1
    assert "no interval" in bandit
    for name in ("asv_bias_variance_mse", "asv_efficiency_frontier", "asv_statistics_history"):
        assert f"src='{name}.png'" in page
    history = (folder / "asv_statistics_history.svg").read_text()
    for est in ASV_ESTIMATORS[1:]:  # every estimator (more than 8), in canonical form
        assert f">{F.canonical_label(est)}<" in history, est
    # one estimator, one colour: the run's and asv's gumbel_rao in every figure
    palette = Palette.from_labels(estimator_labels(canonical_results(Results(
        cells=run_cells(), asv=load_asv(report.parent.parent / "bench" / ".asv" / "results")))))
    rao = palette.hex("gumbel_rao")
    assert rao in (folder / "bias_variance_mse.svg").read_text()
    assert rao in (folder / "asv_bias_variance_mse.svg").read_text()
    # failed and skipped points grouped by reason, not one row each
    missing = section(page, "asv measurements failed or skipped", "</details>")
    assert "device cuda: no measurement on it at all" in missing
    assert "binary_toy: indecater" in missing and missing.count("<tr>") <= 4


def test_track_stats_is_the_frame_of_a_run(tmp_path):
    write_asv_statistics(tmp_path, commits=2)
    asv = load_asv(tmp_path / ".asv" / "results")
    stats = track_stats(asv, latest=True)
    assert set(stats["commit"]) == {"2" * 12} and set(stats["backend"]) == {"torch", "jax"}
    row = stats[(stats["estimator"] == "reinforce[baseline=loo]") & (stats["task"] == "bandit")
                & (stats["backend"] == "torch")].iloc[0]
    assert row["seconds_per_estimate"] == pytest.approx(1e-5)  # work-normalized variance / variance
    assert row["mse"] == pytest.approx(row["variance"] + 1e-5)
    assert len(track_stats(asv)) == 2 * len(stats)
    summary = skip_summary(asv)
    assert set(summary["reason"]) == {"device cuda: no measurement on it at all (no such device on box)",
                                      "estimator × task does not apply (not measured on any backend or device)"}
    assert summary["points"].sum() == int((asv["status"] != "ok").sum())
