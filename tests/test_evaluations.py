"""f-evaluations per estimate: what each estimator declares, the conformance check that counts
them, and the sweep planned at equal f-evaluations (`gradest.sweep.plan(equal_evaluations=K)`)
or at chosen S values (``sample_sizes``)."""
from __future__ import annotations

import pytest

import gradest
from gradest import sweep
from gradest.backends import get_backend
from gradest.estimator import f_evaluations
from gradest.registry import get_estimator, get_task
from gradest.testing.estimators import CONFORMANCE_TASKS, EVALUATION_SIZES, count_evaluations, estimator_checks

#: (estimator, options, task, its f-evaluations per estimate at S = 1, 2, 4 on the toy task)
#: (bandit: one categorical of K = 5; binary_toy: 3 Bernoulli variables; gaussian_quadratic: 2 coordinates)
EXPECTED = [
    ("reinforce", {"baseline": "loo"}, "bandit", (1, 2, 4)),
    ("nvil", {}, "binary_toy", (1, 2, 4)),
    ("pathwise", {}, "gaussian_quadratic", (1, 2, 4)),
    ("gumbel_softmax", {}, "bandit", (1, 2, 4)),
    ("straight_through", {}, "binary_toy", (1, 2, 4)),
    ("reinmax", {}, "bandit", (1, 2, 4)),
    ("gumbel_rao", {"num_mc": 7}, "bandit", (1, 2, 4)),  # f at the hard sample only, whatever num_mc
    ("arm", {}, "binary_toy", (2, 4, 8)),  # both members of each antithetic pair
    ("disarm", {}, "binary_toy", (2, 4, 8)),
    ("antithetic", {}, "bandit", (2, 4, 8)),  # the example plugin: each sample and its mirror
    ("rebar", {}, "binary_toy", (3, 6, 12)),  # f(b), f(σ(z)), f(σ(z̃))
    ("relax", {}, "bandit", (3, 6, 12)),
    ("indecater", {}, "bandit", (6, 12, 24)),  # S (1 + K D), K = 5, D = 1
    ("indecater", {}, "binary_toy", (7, 14, 28)),  # K = 2, D = 3
    ("mvd", {}, "gaussian_quadratic", (9, 18, 36)),  # S (1 + 4 D), D = 2
    ("exact", {}, "bandit", (5, 5, 5)),  # the support, whatever S
    ("exact", {}, "binary_toy", (8, 8, 8)),
    ("exact", {}, "gaussian_quadratic", (1, 1, 1)),  # one closed-form E[f]
]


def _toy(name):
    return get_task(name, **CONFORMANCE_TASKS[name])


def _dist(task):
    B = get_backend("torch")
    return task.problem(B, B.asarray(task.init_params())).dist


@pytest.mark.parametrize("name, options, task, expected", EXPECTED,
                         ids=[f"{n}-{t}" + ("-" + ",".join(map(str, o.values())) if o else "") for n, o, t, _ in EXPECTED])
def test_declared_counts_of_the_built_ins_are_what_their_surrogates_spend(name, options, task, expected):
    if name not in gradest.list_estimators():
        pytest.skip(f"{name} is not installed")
    est, toy = get_estimator(name, **options), _toy(task)
    declared = tuple(f_evaluations(est, S, _dist(toy)) for S in EVALUATION_SIZES)
    assert declared == expected
    for S, want in zip(EVALUATION_SIZES, declared):
        if S >= est.min_samples:
            assert count_evaluations(toy, est, "torch", S) == want


def test_a_count_that_depends_on_the_distribution_asks_for_it():
    assert f_evaluations(get_estimator("disarm"), 3) == 6 and f_evaluations(get_estimator("reinforce"), 3) == 3
    with pytest.raises(ValueError, match="pass the distribution"):
        f_evaluations(get_estimator("indecater"), 2)


def _evaluations_check(est):
    return [check for name, check in estimator_checks(est, backends=["torch"]) if name.startswith("evaluations")]


def test_the_conformance_check_catches_a_wrong_declaration():
    right = get_estimator("disarm")
    assert all(check() for check in _evaluations_check(right))
    undeclared = right._replace(evaluations=None)  # says S, spends 2S
    with pytest.raises(AssertionError, match="declares 1 evaluations of f per estimate at S=1, but its surrogate "
                                             "evaluated f at 2 points"):
        _evaluations_check(undeclared)[0]()
    with pytest.raises(AssertionError, match="must be a positive integer"):
        _evaluations_check(right._replace(evaluations=lambda S, dist: 0))[0]()


def _planned(**kwargs):
    cells = sweep.plan(["binary_toy"], ["reinforce:baseline=loo", "disarm", "relax"], kinds=["gradient"], seeds=1,
                       **kwargs)
    return {(c.estimator, c.num_samples): c for c in cells}


def test_equal_evaluation_planning_picks_the_largest_s_within_the_budget():
    assert set(_planned(equal_evaluations=4)) == {("reinforce", 4), ("disarm", 2), ("relax", 1)}
    # 5 evaluations: DisARM and RELAX cannot spend them exactly and are planned at the nearest below
    cells = _planned(equal_evaluations=5)
    assert set(cells) == {("reinforce", 5), ("disarm", 2), ("relax", 1)}
    assert all(c.settings["evaluation_budget"] == 5 for c in cells.values())
    # at S values, the cells are those of an ordinary plan: no budget in their settings (their keys unchanged)
    ordinary = _planned(sample_sizes=(2, 8))
    assert set(ordinary) == {(e, S) for e in ("reinforce", "disarm", "relax") for S in (2, 8)}
    assert all(set(c.settings) == {"num_replicates"} for c in ordinary.values())
    assert {c.key for c in _planned().values()} == {c.key for c in sweep.plan(
        ["binary_toy"], ["reinforce:baseline=loo", "disarm", "relax"], kinds=["gradient"], seeds=1)}


@pytest.mark.parametrize("kwargs, message", [
    ({"equal_evaluations": 0}, "equal_evaluations must be a positive integer"),
    ({"equal_evaluations": 2.5}, "equal_evaluations must be a positive integer"),
    ({"sample_sizes": ()}, "sample_sizes must be a non-empty list"),
    ({"sample_sizes": (2, -1)}, "each of sample_sizes must be a positive integer"),
    ({"sample_sizes": (2,), "equal_evaluations": 4}, "not both"),
])
def test_bad_sizes_are_refused_before_planning(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _planned(**kwargs)


def test_rows_record_evaluations_and_a_budget_too_small_says_so():
    cells = _planned(equal_evaluations=1)
    assert set(cells) == {("reinforce", 2), ("disarm", 1), ("relax", 1)}  # none fits: each at its smallest S
    out = sweep.run_cell(cells[("disarm", 1)])
    assert out["status"] == "skipped" and "spends 2 evaluations of f per estimate" in out["reason"] \
        and "choose K >= 2" in out["reason"]
    cell = _planned(equal_evaluations=4, num_replicates=8)[("disarm", 2)]
    out = sweep.run_cell(cell)
    assert out["status"] == "done", out["reason"]
    assert out["row"]["evaluations"] == 4
