"""Labels and specs (`gradest.labels`): one rule for option values, both ways."""
from __future__ import annotations

import pytest

import gradest
from gradest.labels import make_label, parse_label, parse_spec, parse_value


@pytest.mark.parametrize("name, options", [
    ("reinforce", {"baseline": "loo"}), ("gumbel_softmax", {"hard": True, "temperature": 0.5}),
    ("x", {"a": 0.5, "b": 3, "c": "none", "d": False, "e": None, "f": 1e-3}), ("pathwise", {}),
    ("bernoulli_vae", {"hidden": [200, 200], "num_latents": 200}), ("vae", {"hidden": []}),
])
def test_labels_round_trip(name, options):
    assert parse_label(make_label(name, options)) == (name, options)
    if options:  # a spec typed on the command line reads the same values
        spec = f"{name}:" + ",".join(f"{k}={make_label('', {k: v})[1:-1].split('=', 1)[1]}" for k, v in options.items())
        assert parse_spec(spec) == (name, options)


def test_one_value_rule():
    assert [parse_value(t) for t in ("1", "0.5", "1e-3", "true", "True", "false", "None", "null", "[1,2]", "loo")] == \
        [1, 0.5, 1e-3, True, True, False, None, None, [1, 2], "loo"]


def test_labels_are_the_estimators_own():
    est = gradest.get_estimator("gumbel_softmax", temperature=0.5, hard=False)
    assert est.label == make_label("gumbel_softmax", {"temperature": 0.5, "hard": False}) == \
        "gumbel_softmax[hard=False,temperature=0.5]"
    assert parse_spec("reinforce") == ("reinforce", None)
    assert parse_spec("reinforce[baseline=loo]") == ("reinforce", {"baseline": "loo"})


@pytest.mark.parametrize("bad, message", [
    ("", "non-empty"), ("reinforce[baseline=loo", "options go in brackets"), ("reinforce[baseline]", "key=value"),
])
def test_malformed_labels_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        parse_label(bad)
    with pytest.raises(ValueError, match="key=value"):
        parse_spec("reinforce:loo")


@pytest.mark.parametrize("text", ["reinforce:baseline=loo,baseline=none", "reinforce[baseline=loo,baseline=none]"])
def test_a_repeated_option_key_is_refused(text):
    with pytest.raises(ValueError, match="option 'baseline' given twice"):
        parse_spec(text)


# ---- display labels: two S of one estimator are never one line, row or rank --------------

def _stats(rows):
    """Gradient statistics rows (task, label, S, MSE[, evaluation budget]) as the gradient kind's frame has them."""
    import pandas as pd

    frame = pd.DataFrame([{"task": t, "estimator": e, "estimator_name": e.split("[")[0], "backend": "torch",
                           "num_samples": S, "mse": mse, "mse_low": mse * 0.9, "mse_high": mse * 1.1,
                           "variance": mse, "bias_sq": 0.0, "seconds_per_estimate": 1e-5,
                           "work_normalized_variance": mse * 1e-5, "seeds": 1, "evaluations": ev,
                           "evaluation_budget": K} for t, e, S, mse, ev, K in rows])
    return frame


LOO = "reinforce[baseline=loo]"


def test_display_labels_add_s_only_where_one_label_has_several():
    import pandas as pd

    from gradest.plotting.frames import base_label, display_labels, estimator_name

    frame = pd.DataFrame({"task": ["a", "a", "a", "b"], "estimator": [LOO, LOO, "disarm", LOO],
                          "num_samples": [2, 4, 1, 8]})
    assert display_labels(frame).tolist() == [f"{LOO} S=2", f"{LOO} S=4", "disarm", f"{LOO} S=8"]
    assert display_labels(frame, within=("task",)).tolist() == [f"{LOO} S=2", f"{LOO} S=4", "disarm", LOO]
    assert base_label(f"{LOO} S=4") == LOO and estimator_name(f"{LOO} S=4") == "reinforce"


def test_the_leaderboard_never_ranks_two_s_under_one_label():
    from gradest.reports.leaderboard import leaderboard

    nan = float("nan")
    # an ordinary run: LOO at S = 2 and 4; the comparison is at the S most estimators have
    board = leaderboard(_stats([("toy", LOO, 2, 1e-3, 2, nan), ("toy", LOO, 4, 5e-4, 4, nan),
                                ("toy", "disarm", 2, 2e-4, 4, nan), ("toy", "relax", 2, 3e-4, 6, nan)]))
    assert not board.duplicated(["task", "estimator"]).any()
    assert board.set_index("estimator")["S"].to_dict() == {LOO: 2, "disarm": 2, "relax": 2}
    # planned at equal f-evaluations K = 4: each estimator at its own S, the LOO rows at other S left out
    board = leaderboard(_stats([("toy", LOO, 4, 5e-4, 4, 4), ("toy", "disarm", 2, 2e-4, 4, 4),
                                ("toy", "relax", 1, 3e-4, 3, 4), ("toy", LOO, 2, 1e-3, 2, nan)]))
    assert board.set_index("estimator")[["S", "evaluations"]].to_dict("index") == {
        LOO: {"S": 4, "evaluations": 4}, "disarm": {"S": 2, "evaluations": 4}, "relax": {"S": 1, "evaluations": 3}}
    assert board.set_index("estimator")["mse_rank"].to_dict() == {"disarm": 1, "relax": 2, LOO: 3}


def _two_disarms_history():
    import pandas as pd

    rows = []
    for S, level in ((1, 0.3), (2, 0.1)):
        for seed in (0, 1):
            for step in range(0, 10, 2):
                rows.append({"kind": "train", "task": "binary_toy", "estimator": "disarm", "backend": "torch",
                             "num_samples": S, "seed": seed, "step": step, "seconds": 0.01 * step,
                             "loss": level + 1.0 / (1 + step), "exact_loss": level + 1.0 / (1 + step),
                             "own_variance": level * 1e-3 * (1 + seed)})
    return pd.DataFrame(rows)


def test_figure_legends_and_training_tables_show_two_s_apart(tmp_path, monkeypatch):
    import pandas as pd

    from gradest.kinds import train as TK
    from gradest.plotting import figure
    from gradest.plotting.style import Palette, plt

    legends = []

    def capture(palette, labels, *args, **kwargs):
        legends.append(sorted(set(labels)))
        return real(palette, labels, *args, **kwargs)

    real = figure.legend_handles
    monkeypatch.setattr(figure, "legend_handles", capture)
    history = _two_disarms_history()
    palette = Palette.from_labels(["disarm"])
    assert TK.training_curves_figure(history, palette, tmp_path) is not None
    assert TK.variance_along_training(history, palette, tmp_path) is not None
    plt.close("all")
    assert legends == [["disarm S=1", "disarm S=2"]] * 2
    cells = history[history["step"] == 8].assign(status="done", final_exact_loss=lambda f: f["exact_loss"])
    finals = TK.training_finals(pd.DataFrame(cells))
    assert sorted(finals["estimator"]) == ["disarm S=1", "disarm S=2"]
    assert finals.set_index("estimator")["final_loss"].round(6).to_dict() == {
        "disarm S=1": round(0.3 + 1 / 9, 6), "disarm S=2": round(0.1 + 1 / 9, 6)}


def test_two_preset_entries_of_one_estimator_stay_two():
    from gradest.presets import Preset, PresetBudget, PresetEstimator, PresetTask, plan_preset, preset_record

    preset = Preset(name="labels_two_disarms", title="DisARM with 1 and 2 pairs", citation="none (test)",
                    setting="binary_toy", tasks=(PresetTask("toy", "binary_toy", options={"target": [0.45]}),),
                    estimators=(PresetEstimator("disarm", 1), PresetEstimator("disarm", 2),
                                PresetEstimator("reinforce:baseline=loo", 2)),
                    quick=PresetBudget(steps=4, seeds=1), full=PresetBudget(steps=4, seeds=1))
    cells = plan_preset(preset, quick=True)
    assert sorted((c.label, c.num_samples) for c in cells) == [("disarm", 1), ("disarm", 2), (LOO, 2)]
    assert len({c.key for c in cells}) == 3
    record = preset_record(preset, cells, quick=True)
    assert sorted(entry["estimator"] for entry in record["cells"]) == ["disarm S=1", "disarm S=2",
                                                                      "reinforce:baseline=loo"]


def test_the_leaderboard_says_who_cannot_spend_exactly_k():
    from gradest.reports.leaderboard import leaderboard, task_notes

    board = leaderboard(_stats([("toy", LOO, 4, 5e-4, 4, 4), ("toy", "relax", 1, 3e-4, 3, 4)]))
    notes = " ".join(task_notes(board, "toy"))
    assert "most K = 4" in notes and "relax (3 evaluations at S=1)" in notes and LOO + " (" not in notes
