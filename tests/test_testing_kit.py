"""The conformance kit as named checks: reachable from ``import gradest``, named, run one by one
with their work shared, as pytest tests (`parametrize_with_checks`), and a clear message for
an estimator or task that breaks the Backend rule.

`tests/test_conformance.py` runs the named checks over everything registered; here the kit
itself is tested, on cheap cases (one toy task, few replicates).
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import gradest
from gradest.estimator import GradientEstimator, magic_box, no_state
from gradest.testing import check_estimator, check_task, estimator_checks, parametrize_with_checks, task_checks

pytest_plugins = ["pytester"]

both_backends = pytest.mark.skipif(
    not {"torch", "jax"} <= set(gradest.backends.available_backends()), reason="needs torch and jax")


# ---- reachable from import gradest, without a framework ----------------------------------------

def test_import_gradest_reaches_the_kit_without_importing_a_framework():
    script = textwrap.dedent("""
        import json, sys
        import gradest
        frameworks = lambda: sorted(m for m in ("torch", "jax", "jaxlib") if m in sys.modules)
        after_import = frameworks()
        kit = gradest.testing.check_estimator, gradest.testing.parametrize_with_checks
        print(json.dumps({"after_import": after_import, "after_kit": frameworks(),
                          "kit": [f.__module__ for f in kit]}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["after_import"] == [] and out["after_kit"] == []
    assert out["kit"] == ["gradest.testing.estimators", "gradest.testing.parametrize"]


def test_the_names_of_the_kit_are_where_they_were():
    from gradest import testing

    for name in ("check_estimator", "check_task", "z_test", "z_scores", "ZTest", "CheckResult", "CONFORMANCE_TASKS",
                 "numpy_noise", "evaluate_surrogate", "surrogate_evaluator", "conformance_tasks", "ALPHA",
                 "NUM_REPLICATES", "PARITY_RTOL", "PARITY_ATOL"):
        assert hasattr(testing, name), name
    assert (testing.ALPHA, testing.NUM_REPLICATES, testing.PARITY_RTOL, testing.PARITY_ATOL) == (1e-4, 4000, 1e-6, 1e-9)
    assert set(testing.__all__) <= set(dir(testing))


# ---- names and order ---------------------------------------------------------------------------

def test_estimator_checks_are_named_in_the_order_check_estimator_runs_them():
    names = [n for n, _ in estimator_checks("reinforce", options={"baseline": "loo"}, tasks=["bandit"],
                                            toy_tasks=False)]
    per_backend = ["noise_spec", "surrogate", "gradient_samples", "determinism", "unbiased"]
    assert names == (["metadata"] + [f"{c}[bandit-torch]" for c in per_backend] + ["evaluations[bandit-torch]"]
                     + [f"{c}[bandit-jax]" for c in per_backend if c != "surrogate"]
                     + ["surrogate[bandit-jax]", "parity[bandit-jax vs torch]"])
    # biased: no z-test; one backend: its surrogate in its own block, no parity
    names = [n for n, _ in estimator_checks("gumbel_softmax", backends=("jax",))]
    assert names[:5] == ["metadata", "noise_spec[bandit-jax]", "surrogate[bandit-jax]",
                         "gradient_samples[bandit-jax]", "determinism[bandit-jax]"]
    assert not any(n.startswith(("unbiased", "parity")) for n in names)
    assert [n for n, _ in task_checks("bandit")] == ["layout", "problem[torch]", "exact[torch]", "problem[jax]",
                                                     "exact[jax]", "parity[jax vs torch]"]
    check = dict(estimator_checks("reinforce", tasks=["bandit"], toy_tasks=False))["unbiased[bandit-torch]"]
    assert (check.kind, check.subject, check.task, check.backends) == ("unbiased", "reinforce[baseline=none]",
                                                                       "bandit", ("torch",))


def test_invalid_metadata_yields_only_the_metadata_check():
    est = gradest.get_estimator("reinforce")._replace(min_samples=0, name="zero")
    [(name, check)] = list(estimator_checks(est))
    assert name == "metadata"
    with pytest.raises(AssertionError, match=r"check 'metadata' failed .* min_samples must be a positive integer"):
        check()


class _Counting:
    """Counts the kit's runs of the sampler and its builds of surrogate evaluators."""

    def __init__(self, monkeypatch):
        from gradest.testing import estimators

        self.runs, self.evaluators = [], []
        real_sampler, real_evaluator = estimators.GradientSampler, estimators.surrogate_evaluator
        counts = self

        class Sampler(real_sampler):
            def run(self, *args, **kwargs):
                counts.runs.append(self.backend.name)
                return super().run(*args, **kwargs)

        def evaluator(task, est, backend, *args, **kwargs):
            counts.evaluators.append((backend.name, backend.dtype))
            return real_evaluator(task, est, backend, *args, **kwargs)

        monkeypatch.setattr(estimators, "GradientSampler", Sampler)
        monkeypatch.setattr(estimators, "surrogate_evaluator", evaluator)

    def totals(self):
        return sorted(self.runs), sorted(self.evaluators)


@both_backends
def test_named_checks_share_their_work_and_give_what_check_estimator_gives(monkeypatch):
    counting = _Counting(monkeypatch)
    options = dict(options={"baseline": "loo"}, tasks=["binary_toy"], toy_tasks=False, num_replicates=300)
    expected = check_estimator("reinforce", **options)
    all_at_once = counting.totals()
    assert all_at_once == (["jax", "jax", "torch", "torch"],  # R replicates and the repeat, per backend
                           [("jax", "float64"), ("torch", "float32"), ("torch", "float64")])
    counting.runs.clear(), counting.evaluators.clear()
    checks = list(estimator_checks("reinforce", **options))
    results = {}
    for name, check in reversed(checks):  # any order: each computes what it needs, once
        results[name] = check()
    assert counting.totals() == all_at_once
    assert [r for name, _ in checks for r in results[name]] == expected


@pytest.mark.skipif("torch" not in gradest.backends.available_backends(), reason="needs torch")
def test_a_check_run_alone_fails_as_check_estimator_does():
    est = gradest.get_estimator("gumbel_softmax", temperature=1.0)._replace(unbiased=True, name="claims_unbiased")
    options = dict(backends=("torch",), tasks=["bandit"], toy_tasks=False)
    with pytest.raises(AssertionError) as all_at_once:
        check_estimator(est, **options)
    with pytest.raises(AssertionError) as alone:
        dict(estimator_checks(est, **options))["unbiased[bandit-torch]"]()
    assert str(alone.value) == str(all_at_once.value)
    assert "check 'unbiased' failed on task 'bandit', backend torch" in str(alone.value)


def test_the_checks_of_a_missing_backend_skip(monkeypatch):
    from gradest.testing import _core

    monkeypatch.setattr(_core, "available_backends", lambda: ["torch"])
    # by default only the installed backends are checked; a missing one asked for skips
    assert [n for n, _ in estimator_checks("reinforce", tasks=["binary_toy"], toy_tasks=False)
            if n.endswith("-jax]") or n.startswith("parity")] == []
    checks = dict(estimator_checks("reinforce", tasks=["binary_toy"], toy_tasks=False, backends=("torch", "jax")))
    skipped = sorted(name for name, check in checks.items() if check.skipped)
    assert skipped == ["determinism[binary_toy-jax]", "gradient_samples[binary_toy-jax]", "noise_spec[binary_toy-jax]",
                       "parity[binary_toy-jax vs torch]", "surrogate[binary_toy-jax]", "unbiased[binary_toy-jax]"]
    with pytest.raises(pytest.skip.Exception, match=r"unbiased\[binary_toy-jax\]: backend jax not installed"):
        checks["unbiased[binary_toy-jax]"]()
    assert [r.check for r in checks["metadata"]()] == ["metadata"]


# ---- pytest -------------------------------------------------------------------------------------

def test_parametrize_with_checks_makes_one_test_per_check():
    mark = parametrize_with_checks([
        (gradest.get_estimator("reinforce", baseline="loo"), {"tasks": ["bandit"], "toy_tasks": False}),
        ("binary_toy", {"options": {"target": [0.2], "logits": [0.1]}}),
    ]).mark
    assert mark.name == "parametrize" and mark.args[0] == "obj, check"
    ids = [p.id for p in mark.args[1]]
    assert ids[:2] == ["reinforce[baseline=loo]-metadata", "reinforce[baseline=loo]-noise_spec[bandit-torch]"]
    assert ("reinforce[baseline=loo]-unbiased[bandit-torch]" in ids
            and "reinforce[baseline=loo]-parity[bandit-jax vs torch]" in ids)
    assert ids[-6:] == ["binary_toy-layout", "binary_toy-problem[torch]", "binary_toy-exact[torch]",
                        "binary_toy-problem[jax]", "binary_toy-exact[jax]", "binary_toy-parity[jax vs torch]"]
    assert [name for name in ids if "unbiased" in name] == ["reinforce[baseline=loo]-unbiased[bandit-torch]",
                                                            "reinforce[baseline=loo]-unbiased[bandit-jax]"]
    with pytest.raises(ValueError, match="neither a registered estimator"):
        parametrize_with_checks(["no_such_thing"])
    with pytest.raises(TypeError, match="takes estimators and tasks"):
        parametrize_with_checks([3])


@pytest.mark.skipif("torch" not in gradest.backends.available_backends(), reason="needs torch")
def test_pytest_k_runs_one_check(pytester):
    pytester.makepyfile(test_plugin=textwrap.dedent("""
        from gradest.testing import parametrize_with_checks

        @parametrize_with_checks([("reinforce", {"tasks": ["binary_toy"], "toy_tasks": False,
                                                 "num_replicates": 200})])
        def test_conforms(obj, check):
            check()
    """))
    result = pytester.runpytest_inprocess("-q", "-rA", "-p", "no:cacheprovider", "-k", "unbiased and torch")
    result.assert_outcomes(passed=1, deselected=12)  # metadata, 5 per backend, evaluations, parity
    result.stdout.fnmatch_lines(["PASSED test_plugin.py::test_conforms[[]reinforce[[]baseline=none[]]-"
                                 "unbiased[[]binary_toy-torch[]]]"])


# ---- the Backend rule --------------------------------------------------------------------------

def _torch_inside(call: str) -> GradientEstimator:
    """REINFORCE that imports torch in its surrogate and calls it on the values: fine on the
    torch backend, broken on jax's (whose values are tracers)."""

    def surrogate(f, dist, noise, state):
        import torch

        B = dist.backend
        z = dist.sample(noise["sample"])
        values = f(z)
        weight = torch.exp(values) if call == "exp" else torch.as_tensor(values)
        return magic_box(B, values, dist.log_prob(z), weight), state

    return GradientEstimator(init=no_state, surrogate=surrogate, supports=frozenset({"bernoulli"}),
                             unbiased=True, name="torch_inside")


@both_backends
@pytest.mark.parametrize("call, error", [("exp", "TypeError"), ("as_tensor", "AttributeError")])
def test_torch_on_jax_values_names_the_check_and_the_rule(call, error):
    est = _torch_inside(call)
    options = dict(backends=("jax",), tasks=["binary_toy"], toy_tasks=False, num_replicates=50)
    with pytest.raises(AssertionError) as err:
        check_estimator(est, **options)
    message = str(err.value)
    assert message.startswith("check_estimator(torch_inside): check 'surrogate' failed on task 'binary_toy', "
                              "backend jax: the code at ")
    assert "test_testing_kit.py:" in message and " in surrogate called torch on the jax backend's values" in message
    assert f"({error}: " in message and "Tracer" in message
    assert message.endswith("compute with `dist.backend` (the Backend passed in), never import torch or jax in an "
                            "estimator")
    assert err.value.__cause__ is not None  # the framework's own error stays attached
    # run alone, the named check says the same
    with pytest.raises(AssertionError) as alone:
        dict(estimator_checks(est, **options))["surrogate[binary_toy-jax]"]()
    assert str(alone.value) == message


@both_backends
def test_torch_on_jax_values_fails_the_first_jax_check_that_runs_it():
    with pytest.raises(AssertionError, match=r"check 'gradient_samples' failed on task 'binary_toy', backend jax: "
                                             r"the code at .* called torch on the jax backend's values"):
        check_estimator(_torch_inside("exp"), tasks=["binary_toy"], toy_tasks=False, num_replicates=50)


class _JaxInside(gradest.get_task("binary_toy").__class__):
    """binary_toy whose f calls jax.numpy on the values: fine on the jax backend, broken on torch's."""

    def problem(self, backend, params, noise=None, batch=None):
        import jax.numpy as jnp

        prob = super().problem(backend, params, noise, batch)
        target = backend.asarray(self.target)
        return prob._replace(f=gradest.task.Objective(lambda b: jnp.sum((b - target) ** 2, axis=-1)))


@both_backends
def test_jax_in_a_task_on_torch_values_names_the_check_and_the_rule():
    with pytest.raises(AssertionError) as err:
        check_task(_JaxInside(target=[0.2, 0.7], logits=[0.5, -1.0]), backends=("torch",))
    message = str(err.value)
    assert message.startswith("check_task(binary_toy): check 'problem' failed on task 'binary_toy', backend torch: "
                              "the code at ")
    assert "called jax on the torch backend's values" in message and " in <lambda>" in message
    assert message.endswith("compute with the `backend` argument (the Backend passed in), never import torch or jax "
                            "in a task")


@pytest.mark.skipif("jax" not in gradest.backends.available_backends(), reason="needs jax")
@pytest.mark.parametrize("bug, error", [("divide", ZeroDivisionError), ("branch", TypeError)])
def test_other_errors_pass_through_unchanged(bug, error):
    def surrogate(f, dist, noise, state):
        B = dist.backend
        z = dist.sample(noise["sample"])
        if bug == "divide":
            1 / 0
        if B.sum(f(z)) > 0:  # a Python branch on a traced value: JAX's own error says what to do
            pass
        return magic_box(B, f(z), dist.log_prob(z), B.stop_gradient(f(z))), state

    est = GradientEstimator(init=no_state, surrogate=surrogate, supports=frozenset({"bernoulli"}), name="buggy")
    with pytest.raises(error) as err:
        check_estimator(est, backends=("jax",), tasks=["binary_toy"], toy_tasks=False)
    assert not isinstance(err.value, AssertionError)
    from gradest.testing._core import backend_rule_violation

    assert backend_rule_violation(err.value, "jax") is None


@pytest.mark.skipif("torch" not in gradest.backends.available_backends(), reason="needs torch")
def test_the_other_framework_through_its_backend_is_no_violation():
    # the kit itself draws NumPy noise through the first installed backend, whichever is checked
    from gradest.testing._core import backend_rule_violation

    with pytest.raises(TypeError, match="must be Tensor") as err:
        gradest.backends.get_backend("torch").exp("not an array")
    assert backend_rule_violation(err.value, "jax") is None
