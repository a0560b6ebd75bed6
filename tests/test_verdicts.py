"""Paired verdicts (`gradest.reports.verdicts`): the differences of cells paired by seed, their
t-interval, the paired t and Wilcoxon tests and the verdict words, on constructed cases with a
known answer; the presets' orderings judged on pairs (`gradest.reports.published.check_orderings`)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gradest.reports.published import check_orderings
from gradest.reports.verdicts import TOO_FEW, compare, compare_values, pairs, verdict


def _interval(values):
    values = np.asarray(values, dtype=float)
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return values.mean() - half, values.mean() + half


def test_verdict_words():
    assert verdict(-1.0, -1.5, -0.5) == "holds, separated"
    assert verdict(-1.0, -2.0, 0.5) == "holds, not separated"
    assert verdict(1.0, 0.5, 1.5) == "reversed, separated"
    assert verdict(1.0, -0.5, 2.5) == "reversed"
    assert verdict(1.0, 0.5, 1.5, better="higher") == "holds, separated"
    assert verdict(-1.0, -1.5, -0.5, better="higher") == "reversed, separated"
    assert verdict(-1.0, math.nan, math.nan) == "holds, not separated"  # one pair: no interval
    assert verdict(math.nan, math.nan, math.nan) == "not measured"


def test_difference_interval_and_tests_on_known_differences():
    differences = np.array([-1.0, -1.2, -0.8, -1.1, -0.9, -1.0])
    worse = np.array([5.0, 3.0, 9.0, 4.0, 7.0, 6.0])
    result = compare_values(worse + differences, worse)
    # mean -1, sd sqrt(0.02), half-width t(0.975, 5) * sd / sqrt(6) = 0.1484
    half = stats.t.ppf(0.975, 5) * math.sqrt(0.02) / math.sqrt(6)
    assert result["pairs"] == 6 and result["difference"] == pytest.approx(-1.0)
    assert result["low"] == pytest.approx(-1.0 - half) and result["high"] == pytest.approx(-1.0 + half)
    assert result["verdict"] == "holds, separated"
    assert result["t_p"] == pytest.approx(stats.ttest_rel(worse + differences, worse).pvalue) and result["t_p"] < 1e-4
    # six differences of one sign: the exact two-sided Wilcoxon p-value is 2 / 2^6
    assert result["wilcoxon_p"] == pytest.approx(2 / 64)


def test_pairing_separates_what_independent_intervals_do_not():
    """Both estimators carry the seed's shared noise (large) and differ by 0.3 with small
    noise of their own: their intervals over seeds overlap, the paired interval excludes 0."""
    rng = np.random.default_rng(0)
    shared = rng.normal(0.0, 3.0, size=8)  # [seeds]
    better = 10.0 + shared + rng.normal(0.0, 0.05, size=8)
    worse = 10.3 + shared + rng.normal(0.0, 0.05, size=8)
    (a_low, a_high), (b_low, b_high) = _interval(better), _interval(worse)
    assert a_high > b_low and b_high > a_low  # the independent intervals overlap
    result = compare_values(better, worse)
    assert result["verdict"] == "holds, separated" and result["high"] < 0
    assert isinstance(result["wilcoxon_p"], float) and result["wilcoxon_p"] < 0.05
    assert compare_values(worse, better)["verdict"] == "reversed, separated"


def test_not_separated_too_few_pairs_and_equal():
    result = compare_values([1.0, 2.0, 3.0], [1.5, 1.0, 3.2])  # differences -0.5, 1, -0.2: mean +0.1
    assert result["verdict"] == "reversed" and result["wilcoxon_p"] == TOO_FEW
    result = compare_values([1.0, 2.0, 3.0], [1.5, 1.9, 3.2])  # mean -0.2, interval holds 0
    assert result["verdict"] == "holds, not separated" and result["low"] < 0 < result["high"]
    assert compare_values([1.0, 2.0], [1.0, 2.0])["verdict"] == "equal"
    assert compare_values([], [])["verdict"] == "not measured"


def test_pairs_match_by_seed_and_backend():
    frame = pd.DataFrame({"estimator": ["a", "b", "b", "a", "a", "b"], "backend": ["torch"] * 6,
                          "seed": [0, 1, 0, 1, 2, 3], "loss": [1.0, 2.5, 2.0, 1.5, 9.0, 9.0]})
    matched = pairs(frame, "loss", "a", "b")
    assert list(matched["seed"]) == [0, 1]  # seeds 2 and 3 have one side only
    assert list(matched["a"]) == [1.0, 1.5] and list(matched["b"]) == [2.0, 2.5]
    assert compare(frame, "a", "b", "loss")["difference"] == pytest.approx(-1.0)


def test_orderings_are_judged_on_pairs():
    """Seeds shift both estimators alike: the intervals overlap, the pairs separate them."""
    index = [{"key": f"{est}{seed}", "task": "toy", "estimator": est, "backend": "torch", "seed": seed}
             for est in ("a", "b") for seed in range(4)]
    values = {"a": [1.0, 3.0, 5.0, 7.0], "b": [1.1, 3.2, 5.1, 7.3]}
    cells = pd.DataFrame([{"key": f"{est}{seed}", "status": "done", "loss": v} for est, vs in values.items()
                          for seed, v in enumerate(vs)])
    ordering = {"task": "toy", "better": "a", "worse": "b", "measured": "loss", "claim": "", "source": ""}
    record = {"cells": index, "orderings": [ordering, {**ordering, "better": "b", "worse": "a"}], "published": []}
    (a_low, a_high), (b_low, b_high) = _interval(values["a"]), _interval(values["b"])
    assert a_high > b_low  # compared as two independent intervals, they would not be separated
    result = check_orderings(record, cells)
    assert list(result["verdict"]) == ["holds, separated", "reversed, separated"]
    assert list(result["holds"]) == ["yes", "no"] and list(result["separated"]) == ["yes", "yes"]
    assert list(result["pairs"]) == [4, 4] and (result["Wilcoxon p"] == TOO_FEW).all()
    assert float(result.loc[0, "t test p"]) < 0.05
