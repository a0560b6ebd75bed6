"""The asv suites in benchmarks/: grid generation, skipping, and small runs of each kind.

The benchmark modules are imported as asv imports them (the package ``benchmarks`` beside
asv.conf.json). Sizes are shrunk with monkeypatch so that every test takes seconds; the
statistical checks compare with exact values (enumeration) at a stated number of standard
errors, and fixed seeds make them deterministic.
"""
from __future__ import annotations

import math
import os
import sys
from statistics import NormalDist

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # asv imports benchmark_dir's parent the same way

import gradest  # noqa: E402
from gradest.registry import ESTIMATORS  # noqa: E402
from gradest.testing import z_test  # noqa: E402
from benchmarks import _grid, _references, estimates, references, statistics, training  # noqa: E402
from gradest.task import BenchmarkSizes  # noqa: E402

BACKENDS = ["torch", "jax"]


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _need(backend: str) -> None:
    if not _has(backend):
        pytest.skip(f"{backend} is not installed")


@pytest.fixture
def small(monkeypatch):
    """Shrink the per-task sizes: R = 2,000 replicates, 5 training steps."""
    monkeypatch.setattr(_grid, "settings", lambda task_label: BenchmarkSizes(2_000, 5))


def _hand(backend_name):
    """The framework module of ``backend_name``'s hand-written references, or skip with the reason."""
    try:
        return _references.for_backend(backend_name)
    except NotImplementedError as err:
        pytest.skip(str(err))


# ---- the grid comes from the registry -------------------------------------------------------
def test_sizes_are_the_tasks_declarations():
    """`_grid.settings` reads ``Task.benchmark_sizes``: the toy tasks and lasso_huber R = 10,000
    and 200 steps, the VAEs (every variant) 200 and 20, a task declaring none the default."""
    assert BenchmarkSizes() == (1_000, 50)
    for label in ("bandit", "binary_toy", "gaussian_quadratic", "lasso_huber"):
        assert _grid.settings(label) == (10_000, 200)
    for label in ("categorical_vae", "categorical_vae[kl=sampled]", "bernoulli_vae", "gaussian_vae"):
        assert _grid.settings(label) == (200, 20)
    from gradest.task import Task

    for name in gradest.list_tasks():  # a task that declares nothing gets the default
        if type(_grid.build_task(name)).benchmark_sizes is Task.benchmark_sizes:
            assert _grid.settings(name) == BenchmarkSizes()


def test_importing_the_suites_changes_nothing_in_the_process():
    """Outside asv, importing the suites sets no environment variable and imports no
    framework: that happens in `_grid.configure_process`, which the setups call."""
    import subprocess

    code = ("import os, sys; before = dict(os.environ); "
            "import benchmarks.estimates, benchmarks.statistics, benchmarks.training, benchmarks.references, "
            "benchmarks.train_references; "
            "from gradest.backends import backend_entry, backend_names; "
            "frameworks = {p for n in backend_names() for p in backend_entry(n).packages}; "
            "print(sorted(frameworks & set(sys.modules)), dict(os.environ) == before)")
    env = {k: v for k, v in os.environ.items() if k not in ("ASV", "XLA_FLAGS", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "True"], out.stdout


def test_asv_listing_processes_skip_the_set_up():
    """asv's discovery and ``setup_cache`` processes (``benchmark.py discover|setup_cache``)
    import the suites only to list them: no framework is imported there (seconds each), and
    they list the grid ``GRADEST_ASV_GRID`` names (unset: the default one)."""
    import subprocess

    code = ("import sys; sys.argv = ['/asv/benchmark.py', 'discover', 'benchmarks']; "
            "import benchmarks.estimates, benchmarks.statistics, benchmarks.training; "
            "from benchmarks import _grid; "
            "from gradest.backends import backend_entry, backend_names; "
            "frameworks = {p for n in backend_names() for p in backend_entry(n).packages}; "
            "print(_grid.asv_command(), sorted(frameworks & set(sys.modules)), len(_grid.all_points()))")
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "OMP_NUM_THREADS", "GRADEST_ASV_GRID")}
    env["ASV"] = "true"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["discover", "[]", str(len(_grid.all_points("default")))], out.stdout


def test_asv_command_is_read_from_the_runner_script(monkeypatch):
    monkeypatch.setenv("ASV", "true")
    monkeypatch.setattr(sys, "argv", ["/env/lib/asv/benchmark.py", "run_server", "benchmarks", "socket"])
    assert _grid.asv_command() == "run_server"
    monkeypatch.setattr(sys, "argv", ["/env/bin/pytest", "run_server"])
    assert _grid.asv_command() is None


def test_the_fork_server_imports_what_a_first_call_imports(monkeypatch, tmp_path):
    """`first_call_modules` learns in a forked child what the warm-up imports (this process
    computes and imports nothing); `preimport_first_call_modules` imports it here. A child that
    fails or hangs teaches nothing, and a hanging one is killed at the timeout."""
    import importlib
    import time
    import warnings

    (tmp_path / "zz_lazy_first_call.py").write_text("import zz_lazy_dependency\n")
    (tmp_path / "zz_lazy_dependency.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    names = ["zz_lazy_first_call", "zz_lazy_dependency"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # JAX warns at any fork once it has started
        monkeypatch.setattr(_grid, "_warm_up", lambda: importlib.import_module("zz_lazy_first_call"))
        try:
            assert set(names) <= set(_grid.first_call_modules())
            assert not set(names) & set(sys.modules)  # learned in the child only
            assert _grid.preimport_first_call_modules() >= 2 and set(names) <= set(sys.modules)
        finally:
            for name in names:
                sys.modules.pop(name, None)
        monkeypatch.setattr(_grid, "_warm_up", lambda: 1 / 0)
        assert _grid.first_call_modules() == []
        monkeypatch.setattr(_grid, "_warm_up", lambda: time.sleep(60))
        start = time.monotonic()
        assert _grid.first_call_modules(timeout=0.5) == []
        assert time.monotonic() - start < 10


def test_helper_modules_hold_no_benchmarks():
    """asv imports every module of benchmarks/ (sub-packages too): a helper module, named with
    a leading ``_`` somewhere in its path, defines nothing asv would take for a benchmark."""
    import importlib
    import inspect
    import pkgutil

    import benchmarks

    prefixes = ("time_", "timeraw_", "mem_", "peakmem_", "track_")
    helpers = [info.name for info in pkgutil.walk_packages(benchmarks.__path__, "benchmarks.")
               if any(part.startswith("_") for part in info.name.split(".")[1:])]
    assert {"benchmarks._grid", "benchmarks._references", "benchmarks._references.torch",
            "benchmarks._references.jax"} <= set(helpers)
    for name in helpers:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if attr.startswith("_"):
                continue
            names = [attr] if inspect.isfunction(value) else dir(value) if inspect.isclass(value) else []
            assert not [n for n in names if n.startswith(prefixes)], (name, attr)


def test_a_backend_without_references_is_skipped_never_given_another(monkeypatch):
    """The hand-written references are looked up by the backend's name; one without a module
    is skipped (NotImplementedError: asv's skip) with the reason."""
    assert set(_references.framework_modules()) >= {"torch", "jax"}
    for framework, module in _references.framework_modules().items():
        assert module.FRAMEWORK == framework
    with pytest.raises(NotImplementedError, match="'zz_elsewhere'.*no hand-written reference"):
        _references.for_backend("zz_elsewhere")

    class Elsewhere:  # a built backend of a framework without references
        name, device, dtype = "zz_elsewhere", "cpu", "float32"

    monkeypatch.setattr(_grid, "backend_or_skip", lambda *args, **kwargs: Elsewhere())
    for impl in ("handwritten", "handwritten_single", "python_loop"):
        with pytest.raises(NotImplementedError, match="no hand-written reference"):
            references.reinforce_call(impl, "zz_elsewhere", "cpu")
    with pytest.raises(NotImplementedError, match="no hand-written reference"):
        references.gumbel_softmax_call("reference", "zz_elsewhere", "cpu", False)
def test_labels_round_trip():
    for name, options in [("reinforce", {"baseline": "loo"}), ("gumbel_softmax", {"hard": True}),
                          ("x", {"a": 0.5, "b": 3, "c": "none", "d": False}), ("pathwise", {})]:
        assert _grid.parse_label(_grid.make_label(name, options)) == (name, options)
    assert _grid.make_label("gumbel_softmax", {"temperature": 0.5, "hard": False}) == \
        "gumbel_softmax[hard=False,temperature=0.5]"
    for bad in ["", "reinforce[baseline=loo", "reinforce[baseline]"]:
        with pytest.raises(ValueError, match="label|option"):
            _grid.parse_label(bad)


def _suite_classes():
    """{name: class} of the per-kind suites the benchmark modules export (what asv finds)."""
    import inspect

    out = {}
    for mod in (estimates, statistics, training):
        for name, cls in vars(mod).items():
            if not name.startswith("_") and inspect.isclass(cls) and isinstance(getattr(cls, "params", None), list):
                out[f"{mod.__name__}.{name}"] = cls
    return out


def test_grid_is_generated_from_the_registry():
    from gradest.estimators.reinforce import BASELINES

    labels = _grid.estimator_labels()
    assert len(labels) == len(set(labels))
    names = {_grid.parse_label(label)[0] for label in labels}
    assert names == set(gradest.list_estimators())
    assert [f"reinforce[baseline={b}]" for b in BASELINES] == [l for l in labels if l.startswith("reinforce")]
    assert {"gumbel_softmax[hard=False]", "gumbel_softmax[hard=True]"} <= set(labels)
    assert set(gradest.list_tasks()) <= set(_grid.task_labels())
    assert "categorical_vae[kl=sampled]" in _grid.task_labels()  # the variant VIMCO runs on
    suites = _grid.suites("full")
    assert {"categorical", "bernoulli", "normal"} <= set(suites)
    # every task is in the suite of its kind, every estimator in the suites of the kinds it supports
    assert sorted(t for params in suites.values() for t in params[1]) == sorted(_grid.task_labels())
    for kind, (ests, tasks, backends, devices) in suites.items():
        assert all(_grid.build_task(t).distribution_kind == kind for t in tasks)
        assert ests == [e for e in labels if kind in _grid.build_estimator(e).supports]
        assert backends == ["torch", "jax"] and devices == _grid.grid_devices()
    # every registered estimator that supports a registered task's kind is in the full grid
    kinds = set(suites)
    in_grid = {e for params in suites.values() for e in params[0]}
    assert in_grid == {e for e in labels if _grid.build_estimator(e).supports & kinds}
    classes = _suite_classes()
    current = _grid.suites()  # the grid GRADEST_ASV_GRID chose when the modules were imported
    for base in ("estimates.GradientEstimate", "statistics.EstimatorStatistics", "training.TrainStep",
                 "training.TrainLoss"):
        for kind, params in current.items():
            cls = classes[f"benchmarks.{base}_{kind}"]
            assert cls.params == params and cls.param_names == ["estimator", "task", "backend", "device"]
            assert isinstance(cls.version, str)  # explicit: refactors keep the history
    for label in labels:  # every label builds the estimator it names
        est = _grid.build_estimator(label)
        assert est.name == _grid.parse_label(label)[0]


# ---- the default grid and GRADEST_ASV_GRID --------------------------------------------------
def test_the_default_grid_is_the_core_variants_on_one_task_per_kind(monkeypatch):
    """Unset (or empty), ``GRADEST_ASV_GRID`` gives the default grid: per distribution kind,
    its representative task and the estimators' declared ``core`` variants that support it,
    in the full grid's order, so each default suite is a sub-grid of the full suite of the
    same name (asv's history connects the two)."""
    from gradest.registry import core_variants

    monkeypatch.delenv("GRADEST_ASV_GRID", raising=False)
    assert _grid.grid_name() == "default"
    default, full = _grid.suites(), _grid.suites("full")
    assert default == _grid.suites("default")
    assert set(default) == set(full)  # the same classes: every kind has a core estimator today
    core = {_grid.make_label(name, options) for name in gradest.list_estimators() for options in core_variants(name)}
    assert {"reinforce[baseline=loo]", "gumbel_softmax[hard=False]"} <= core
    assert "gumbel_softmax[hard=True]" not in core and "vimco" not in core
    for kind, known in [("categorical", "bandit"), ("bernoulli", "binary_toy"), ("normal", "gaussian_quadratic")]:
        assert _grid.representative_tasks()[kind] == known
    for kind, (ests, tasks, backends, devices) in default.items():
        f_ests, f_tasks, f_backends, f_devices = full[kind]
        assert tasks == [_grid.representative_tasks()[kind]] and tasks[0] in f_tasks
        assert ests == [e for e in f_ests if e in core]  # a sub-list, in the same order
        assert ests and backends == f_backends and devices == f_devices
    points = _grid.all_points()
    assert set(points) < set(_grid.all_points("full")) and len(points) <= len(_grid.all_points("full")) / 4
    assert not [p for p in points if p[1].startswith(("categorical_vae", "bernoulli_vae", "gaussian_vae"))]


@pytest.mark.parametrize("value", ["full", " FULL "])
def test_the_full_grid_is_chosen_by_the_environment(monkeypatch, value):
    monkeypatch.setenv("GRADEST_ASV_GRID", value)
    assert _grid.grid_name() == "full"
    assert _grid.suites() == _grid.suites("full")
    namespace = {"__name__": "x"}
    made = _grid.suite_classes(estimates._GradientEstimate, namespace)
    assert {cls.__name__ for cls in made} == {f"GradientEstimate_{kind}" for kind in _grid.suites("full")}
    assert all(cls.params == _grid.suites("full")[cls.__name__.split("_", 1)[1]] for cls in made)
    monkeypatch.setenv("GRADEST_ASV_GRID", "")
    assert _grid.grid_name() == "default"
    names = {cls.__name__ for cls in _grid.suite_classes(estimates._GradientEstimate, {"__name__": "x"})}
    assert names == set(namespace) - {"__name__"}  # the same benchmark names in both grids


@pytest.mark.parametrize("value", ["fulll", "all", "core"])
def test_a_bad_grid_name_is_refused_with_the_choices(monkeypatch, value):
    monkeypatch.setenv("GRADEST_ASV_GRID", value)
    message = rf"GRADEST_ASV_GRID='{value}' names no benchmark grid.*'default'.*'full'.*unset it"
    with pytest.raises(ValueError, match=message):
        _grid.grid_name()
    with pytest.raises(ValueError, match=message):  # before any suite is made
        _grid.suite_classes(estimates._GradientEstimate, {"__name__": "x"})
    with pytest.raises(ValueError, match="unknown grid 'fulll'"):
        _grid.suites("fulll")


def test_a_kind_without_core_estimators_takes_each_estimators_first_variant(monkeypatch):
    """A plugin kind that no core variant supports is still benchmarked by default: its first
    task, and the first declared variant of every estimator that supports it."""
    monkeypatch.setattr(_grid, "task_labels", lambda: ["bandit", "zz_task"])
    monkeypatch.setattr(_grid, "task_kind", lambda label: {"bandit": "categorical", "zz_task": "zz_kind"}[label])
    support = {"reinforce[baseline=none]": {"categorical", "zz_kind"}, "reinforce[baseline=loo]": {"categorical", "zz_kind"},
               "vimco": {"zz_kind"}, "gumbel_softmax[hard=True]": {"zz_kind"}}
    monkeypatch.setattr(_grid, "_estimator_support", lambda label: frozenset(support.get(label, ())))
    default = _grid.suites("default")
    assert default["zz_kind"][:2] == [["reinforce[baseline=none]", "reinforce[baseline=loo]"], ["zz_task"]]
    assert default["categorical"][:2] == [["reinforce[baseline=none]", "reinforce[baseline=loo]"], ["bandit"]]
    monkeypatch.setattr(_grid, "core_estimator_labels", lambda: ["reinforce[baseline=none]"])
    assert _grid.suites("default")["zz_kind"][0] == ["reinforce[baseline=none]"]
    monkeypatch.setattr(_grid, "core_estimator_labels", lambda: [])
    assert _grid.suites("default")["zz_kind"][0] == ["reinforce[baseline=none]", "vimco"]


def test_a_cpu_machine_grid_is_mostly_runnable(monkeypatch):
    """On a machine without a GPU there are no cuda rows, no GPU-memory suites, and at least
    75% of the grid points run (the rest: an estimator's extra needs, e.g. exact on a task
    without truth), each skip with its reason."""
    monkeypatch.setattr(_grid, "gpu_present", lambda: False)
    suites = _grid.suites("full")
    assert all(params[3] == ["cpu"] for params in suites.values())
    points = _grid.all_points("full")
    fraction = _grid.runnable_fraction(points)
    assert fraction >= 0.75, fraction
    skipped = [p for p in points if _grid.skip_reason(p) is not None]
    assert all("unsupported combination" in _grid.skip_reason(p) for p in skipped if _has(p[2]))
    assert any(p[0] == "vimco" and _grid.skip_reason(p) is None for p in points)  # VIMCO is benchmarked
    made = _grid.suite_classes(estimates._GpuMemory, {"__name__": "x"}, devices=["cuda"])
    assert made == []  # no suite of GPU memory without a GPU
    monkeypatch.setattr(_grid, "gpu_present", lambda: True)
    assert all(params[3] == ["cpu", "cuda"] for grid in _grid.GRIDS for params in _grid.suites(grid).values())
    made = _grid.suite_classes(estimates._GpuMemory, {"__name__": "x"}, devices=["cuda"])
    assert made and all(cls.params[3] == ["cuda"] for cls in made)


def test_a_newly_registered_estimator_appears_with_default_options():
    from gradest.estimators.reinforce import reinforce

    name = "zz_bench_plugin"
    assert name not in gradest.list_estimators()

    def plugin(baseline: str = "loo") -> gradest.estimator.GradientEstimator:  # a plugin's factory
        return reinforce(baseline=baseline)._replace(name=name)

    gradest.register_estimator(name)(plugin)
    try:
        assert name in _grid.estimator_labels()
        assert [name] * 4 == [p[0] for p in _grid.grid_points([[name], ["bandit"], ["torch", "jax"], ["cpu", "cuda"]])]
        assert name in _grid.suites("full")["categorical"][0]
        assert name not in _grid.suites("default")["categorical"][0]  # it declares no core variant
        case = _grid.prepare(name, "bandit", "torch", "cpu") if _has("torch") else None
        if case is not None:
            assert case.estimator.options == {"baseline": "loo"} and case.num_samples == _grid.NUM_SAMPLES
    finally:
        del ESTIMATORS.entries[name]
    assert name not in _grid.estimator_labels()
    gradest.register_estimator(name, variants=[{"baseline": "none"}, {"baseline": "loo"}],
                               core=[{"baseline": "loo"}])(plugin)
    try:  # declared core variants join the default grid, the others only the full one
        full, default = _grid.suites("full"), _grid.suites("default")
        assert {f"{name}[baseline=none]", f"{name}[baseline=loo]"} <= set(full["categorical"][0])
        assert f"{name}[baseline=loo]" in default["categorical"][0]
        assert f"{name}[baseline=none]" not in default["categorical"][0]
    finally:
        del ESTIMATORS.entries[name]


def test_an_installed_plugin_estimator_is_in_the_full_grid():
    """The example plugin (an entry point of the installed package gradest-antithetic) is in
    every full suite of a kind it supports, and, declaring no core variant, in no default one."""
    if "antithetic" not in gradest.list_estimators():
        pytest.skip("the example plugin gradest-antithetic is not installed (make venv installs it)")
    assert ESTIMATORS.entries["antithetic"].is_plugin
    supports = _grid.build_estimator("antithetic").supports
    full, default = _grid.suites("full"), _grid.suites("default")
    assert supports & set(full)
    for kind in full:
        assert ("antithetic" in full[kind][0]) == (kind in supports)
        assert "antithetic" not in default.get(kind, [[]])[0]


# ---- skipping: NotImplementedError in setup, never a failure ---------------------------------
@pytest.mark.parametrize("cls", [estimates._GradientEstimate, training._TrainStep])
@pytest.mark.parametrize("point", [("pathwise", "bandit"), ("arm", "gaussian_quadratic"),
                                   ("reinforce[baseline=none]", "lasso_huber"), ("vimco", "binary_toy")])
def test_unsupported_combinations_are_skipped(cls, point, backend_name):
    with pytest.raises(NotImplementedError, match="unsupported combination"):
        cls().setup(*point, backend_name, "cpu")


def test_point_values_are_computed_once_per_run_and_skip_or_fail_alone(tmp_path):
    calls = []

    def compute(case):
        calls.append(case.estimator.label)
        return {"x": 1.5}

    if _has("torch"):
        point = ("exact", "bandit", "torch", "cpu")
        assert _grid.point_values(str(tmp_path), "s", point, compute) == {"x": 1.5}
        assert _grid.point_values(str(tmp_path), "s", point, compute) == {"x": 1.5}  # read back
        assert calls == ["exact"] and len(list(tmp_path.glob("s-*.json"))) == 1
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):  # fails alone, with its traceback
            _grid.point_values(str(tmp_path), "broken", point, lambda case: 1 / 0)
    for point in [("pathwise", "bandit", "torch", "cpu"), ("exact", "bandit", "jax", "cuda")]:
        if point[3] == "cuda" and _grid.gpu_present():
            continue
        with pytest.raises(NotImplementedError):  # skipped before computing
            statistics._EstimatorStatistics().setup(str(tmp_path), *point)
    assert not list(tmp_path.glob("*.tmp"))  # written atomically


def test_missing_gpu_and_missing_framework_are_skipped(monkeypatch, backend_name):
    monkeypatch.setattr(_grid, "gpu_present", lambda: False)
    with pytest.raises(NotImplementedError, match="no NVIDIA GPU"):
        estimates._GradientEstimate().setup("exact", "bandit", backend_name, "cuda")
    with pytest.raises(NotImplementedError, match="on device .cuda. only"):
        estimates._GpuMemory().setup("exact", "bandit", backend_name, "cpu")
    with pytest.raises(NotImplementedError):
        references.ReinforceBandit().setup("gradest", backend_name, "cuda")

    def missing(name, **kwargs):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(_grid, "get_backend", missing)
    with pytest.raises(NotImplementedError, match="not installed|No module"):
        estimates._GradientEstimate().setup("exact", "bandit", backend_name, "cpu")


# ---- one small benchmark of each kind, run as asv runs it -----------------------------------
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_gradient_estimate_time_and_peakmem(small, backend_name):
    _need(backend_name)
    point = ("reinforce[baseline=loo]", "bandit", backend_name, "cpu")
    bench = estimates._GradientEstimate()
    bench.setup(*point)
    assert bench.replicates == 2_000 and bench.sampler.num_samples == _grid.NUM_SAMPLES
    assert bench.time_estimate(*point) is None
    assert bench.peakmem_estimate(*point) is None
    grads = bench.sampler.run(bench.replicates)  # what the timed call computes
    exact = gradest.exact_gradient("bandit", backend=backend_name)
    result = z_test(grads, exact)  # unbiased: Bonferroni over 10 coordinates, alpha 1e-4
    assert result.passed, result


def _binary_toy_truth(t: float, S: int):
    """Exact variance (trace of covariance), and the variance of its estimator's summands, of
    REINFORCE without baseline on binary_toy (one coordinate, θ = 0, p = 1/2), averaging S
    samples: the estimate is (1/S) Σ_s f(b_s)(b_s - 1/2), enumerated over the number of ones."""
    from math import comb

    g1, g0 = 0.5 * (1 - t) ** 2, -0.5 * t**2  # f(b)(b - p) for b = 1, 0
    values = np.array([(k * g1 + (S - k) * g0) / S for k in range(S + 1)])
    probs = np.array([comb(S, k) for k in range(S + 1)], dtype=float) / 2**S
    mean = probs @ values
    var = probs @ (values - mean) ** 2
    fourth = probs @ (values - mean) ** 4
    return float(mean), float(var), float(fourth - var**2)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_statistics_against_enumeration(small, backend_name, tmp_path):
    _need(backend_name)
    point = ("reinforce[baseline=none]", "binary_toy", backend_name, "cpu")
    cache = str(tmp_path)
    bench = statistics._EstimatorStatistics()
    bench.setup(cache, *point)
    variance = bench.track_variance(cache, *point)
    bias_sq = bench.track_bias_sq(cache, *point)
    mse = bench.track_mse(cache, *point)
    wnv = bench.track_work_normalized_variance(cache, *point)
    R = 2_000
    mean, var, var_of_sq = _binary_toy_truth(0.45, _grid.NUM_SAMPLES)
    assert mean == pytest.approx(float(gradest.exact_gradient("binary_toy", backend=backend_name)[0]), rel=1e-5)
    # the sample variance is within 4 standard errors (sqrt(Var[(g - mean)²] / R)) of the truth
    assert abs(variance - var) < 4.0 * math.sqrt(var_of_sq / R), (variance, var)
    # unbiased: R ‖mean - exact‖² / var ~ χ²(1); P(χ²(1) > 15.1) = 1e-4
    assert bias_sq < 15.1 * var / R
    assert mse == pytest.approx(variance * (R - 1) / R + bias_sq, rel=1e-6)
    seconds = bench.stats["seconds_per_estimate"]
    assert 0 < seconds < 1 and wnv == pytest.approx(variance * seconds)
    for method in (bench.track_variance, bench.track_bias_sq, bench.track_mse,
                   bench.track_work_normalized_variance):
        assert method.unit


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_training_step_and_loss(small, backend_name, tmp_path):
    _need(backend_name)
    point = ("reinforce[baseline=moving_average]", "binary_toy", backend_name, "cpu")
    step = training._TrainStep()
    step.setup(*point)
    assert step.time_train_step(*point) is None
    assert math.isfinite(step.step())
    bench = training._TrainLoss()
    cache = str(tmp_path)
    bench.setup(cache, *point)
    loss = bench.track_loss_after_training(cache, *point)
    with pytest.raises(NotImplementedError, match="unsupported combination"):
        bench.setup(cache, "pathwise", "bandit", backend_name, "cpu")
    t = 0.45  # L(θ) = p (1 - t)² + (1 - p) t² lies between t² and (1 - t)²
    assert t**2 <= loss <= (1 - t) ** 2
    assert bench.track_loss_after_training.unit == "loss"


def test_gpu_memory_is_a_track_in_bytes():
    assert estimates._GpuMemory.track_gpu_peak_memory.unit == "bytes"
    if not _grid.gpu_present():
        with pytest.raises(NotImplementedError):
            estimates._GpuMemory().setup("exact", "bandit", "torch", "cuda")


# ---- the reference implementations estimate the same gradient -------------------------------
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_reinforce_references_are_unbiased(monkeypatch, backend_name):
    _need(backend_name)
    monkeypatch.setattr(references, "R", 2_000)
    monkeypatch.setattr(_hand(backend_name), "LOOP_REPLICATES", 300)
    exact = gradest.exact_gradient("bandit", backend=backend_name)
    for impl in references.IMPLEMENTATIONS:
        call, count = references.reinforce_call(impl, backend_name, "cpu")
        out = call()
        grads = np.stack([np.asarray(g) for g in out]) if isinstance(out, list) else np.asarray(
            out.detach().cpu() if hasattr(out, "detach") else out)
        assert grads.shape == (count, references.NUM_ARMS)
        result = z_test(grads, exact)  # Bonferroni over 10 coordinates, alpha 1e-4
        assert result.passed, (impl, result)


def test_reference_benchmarks_run(monkeypatch):
    _need("torch")
    monkeypatch.setattr(references, "R", 2_000)
    monkeypatch.setattr(_hand("torch"), "LOOP_REPLICATES", 100)
    bench = references.ReinforceBandit()
    bench.setup("python_loop", "torch", "cpu")
    assert bench.time_call("python_loop", "torch", "cpu") is None
    assert 0 < bench.track_seconds_per_estimate("python_loop", "torch", "cpu") < 1
    ratios = references.ReinforceBanditRatios()
    ratios.ratio_rounds = 2
    ratios.setup("torch", "cpu")
    assert ratios.track_speedup_over_python_loop("torch", "cpu") > 1  # vectorized beats a loop
    assert ratios.track_handwritten_speedup_over_python_loop("torch", "cpu") > 1
    assert 0 < ratios.track_ratio_to_handwritten("torch", "cpu") < 100
    for method in (bench.track_seconds_per_estimate, ratios.track_speedup_over_python_loop,
                   ratios.track_ratio_to_handwritten):
        assert method.unit


def test_numpy_floor_is_unbiased(monkeypatch):
    monkeypatch.setattr(references, "R", 4_000)
    bench = references.NumpyReinforceBandit()
    bench.setup()
    result = z_test(bench.call(), gradest.exact_gradient("bandit"))
    assert result.passed, result
    assert bench.track_seconds_per_estimate() > 0


@pytest.mark.parametrize("backend_name,hard", [("torch", False), ("torch", True), ("jax", True)])
def test_gumbel_softmax_reference_matches_gradest_in_mean(monkeypatch, backend_name, hard):
    """gradest's Gumbel-softmax and the framework's estimate the same (biased) expectation:
    a two-sample z-test per coordinate, Bonferroni over 10 coordinates at alpha 1e-4."""
    _need(backend_name)
    _hand(backend_name)
    monkeypatch.setattr(references, "R", 4_000)
    out = {}
    for impl in ("gradest", "reference"):
        g = references.gumbel_softmax_call(impl, backend_name, "cpu", hard)()
        out[impl] = np.asarray(g.detach().cpu() if hasattr(g, "detach") else g, dtype=np.float64)
        assert out[impl].shape == (4_000, references.NUM_ARMS)
    a, b = out["gradest"], out["reference"]
    se = np.sqrt(a.var(axis=0, ddof=1) / len(a) + b.var(axis=0, ddof=1) / len(b))
    z = np.abs(a.mean(axis=0) - b.mean(axis=0)) / np.maximum(se, 1e-9)
    assert z.max() < NormalDist().inv_cdf(1 - 1e-4 / 20), z


def test_every_timed_benchmark_has_stable_timing_settings():
    """asv's defaults on a shared machine gave 25 false regressions between identical commits:
    every class with a time_ benchmark takes the settings of `_grid.StableTiming`."""
    import importlib
    import inspect

    timed = []
    for module in ("estimates", "references", "training", "train_references"):
        mod = importlib.import_module(f"benchmarks.{module}")
        for name, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ == mod.__name__ and any(m.startswith("time_") for m in dir(cls)):
                timed.append(cls)
    assert len(timed) >= 5
    for cls in timed:
        assert issubclass(cls, _grid.StableTiming), cls
        assert cls.repeat[0] >= 5 and cls.min_run_count >= 5 and cls.warmup_time > 0 and cls.number == 1
        assert cls.rounds >= 4  # the samples of several processes: they differ more than samples do


# ---- two runs of one commit: asv's comparison flags nothing -------------------------------
def _asv_round(benchmark: str, point: tuple) -> list[float]:
    """The samples of one asv round of one grid point: a fresh benchmark (setup), timed by
    asv_runner with the class's repeat/number/warm-up settings."""
    import itertools

    from asv_runner.discovery import get_benchmark_from_name

    params = _suite_classes()[f"benchmarks.{benchmark.rsplit('.', 1)[0]}"].params
    index = list(itertools.product(*params)).index(point)
    bench = get_benchmark_from_name(os.path.join(ROOT, "benchmarks"), f"{benchmark}-{index}")
    assert not bench.do_setup()
    try:
        result = bench.do_run()
    finally:
        bench.do_teardown()
    assert result["number"] == 1
    return result["samples"]


@pytest.mark.timing
def test_two_runs_of_one_commit_flag_nothing():
    """`asv continuous --factor 1.2 --interleave-rounds` (docs/benchmarks.md) between two runs
    of the same code flags no change: two runs of twice the class's rounds each, interleaved (A, B,
    A, B, ...), summarized by asv's `compute_stats` and judged by asv's own
    `_is_result_better`, both ways, on real timings."""
    from asv.commands.compare import _is_result_better
    from asv_runner.statistics import compute_stats

    cases = [("estimates.GradientEstimate_categorical.time_estimate",
              ("reinforce[baseline=loo]", "bandit", b, "cpu")) for b in BACKENDS if _has(b)]
    if not cases:
        pytest.skip("no framework installed")
    for benchmark, point in cases:
        samples = {"A": [], "B": []}
        # twice the class's rounds (asv run -a rounds=8): on a shared 2-core VM a whole round of
        # this 5-15 ms call drifts by up to 1.5x, which four rounds a side cannot average out
        rounds = 2 * estimates._GradientEstimate.rounds
        for _ in range(rounds):
            for run in samples:
                samples[run] += _asv_round(benchmark, point)
        (a, a_stats), (b, b_stats) = (compute_stats(samples[run], 1) for run in samples)
        assert min(a_stats["repeat"], b_stats["repeat"]) >= 5 * rounds
        a_ss, b_ss = (a_stats, samples["A"]), (b_stats, samples["B"])
        assert not _is_result_better(a, b, a_ss, b_ss, 1.2), (point, a, b)
        assert not _is_result_better(b, a, b_ss, a_ss, 1.2), (point, a, b)
