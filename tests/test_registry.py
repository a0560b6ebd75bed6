"""The registry: built-ins, local registration, entry-point discovery and its failure modes.

Entry points are exercised in-process on a fresh `Registry` of a private group, with fake
installed distributions (``*.dist-info`` with ``entry_points.txt``) on ``sys.path``, so the
process-wide registries are never touched. `tests/test_plugins.py` runs the same paths in a
subprocess with the real registries and a pip-installed example.
"""
from __future__ import annotations

import importlib
import sys
import textwrap
import warnings

import pytest

import gradest
from gradest.estimator import GradientEstimator
from gradest.registry import (ESTIMATORS, TASKS, EstimatorRow, PluginWarning, Registry, TaskRow,
                              describe_estimators, describe_tasks, get_estimator, get_task, plugin_warnings,
                              register_estimator)

CORE_ESTIMATORS = {"exact", "reinforce", "pathwise", "gumbel_softmax", "straight_through"}
CORE_TASKS = {"bandit", "binary_toy", "gaussian_quadratic"}


# ---- built-ins ------------------------------------------------------------------------------

def test_builtins_are_listed_with_their_source():
    assert CORE_ESTIMATORS <= set(gradest.list_estimators())
    assert CORE_TASKS <= set(gradest.list_tasks())
    assert gradest.list_estimators() == sorted(gradest.list_estimators())
    for name in CORE_ESTIMATORS:
        assert ESTIMATORS.entries[name].source == "built-in"
        assert ESTIMATORS.entries[name].module == f"gradest.estimators.{name}"
    for name in CORE_TASKS:
        assert TASKS.entries[name].source == "built-in"


def test_describe_rows():
    rows = {r.name: r for r in describe_estimators()}
    assert CORE_ESTIMATORS <= set(rows)
    assert all(isinstance(r, EstimatorRow) for r in rows.values())
    assert rows["reinforce"] == EstimatorRow("reinforce", "built-in", ("bernoulli", "beta", "categorical", "dirichlet",
                                                                       "gamma", "normal"), True,
                                             rows["reinforce"].description)
    assert rows["pathwise"].supports == ("beta", "dirichlet", "gamma", "normal") and rows["pathwise"].unbiased is True
    assert rows["gumbel_softmax"].unbiased is False
    assert "REINFORCE" in rows["reinforce"].description
    tasks = {r.name: r for r in describe_tasks()}
    assert all(isinstance(r, TaskRow) for r in tasks.values())
    assert tasks["bandit"][:4] == ("bandit", "built-in", "categorical", True)
    assert tasks["gaussian_quadratic"].distribution_kind == "normal"
    assert tasks["binary_toy"].has_exact is True


def test_unknown_names_and_options_are_clear_errors():
    with pytest.raises(ValueError, match=r"unknown estimator 'reinforse'; known estimators: .*reinforce"):
        get_estimator("reinforse")
    with pytest.raises(ValueError, match=r"unknown task 'bandid'; known tasks: .*bandit"):
        get_task("bandid")
    with pytest.raises(ValueError, match=r"unknown option 'temprature' for estimator 'gumbel_softmax'; "
                                         r"valid options: temperature, hard"):
        get_estimator("gumbel_softmax", temprature=0.5)
    est = get_estimator("reinforce", baseline="loo")
    assert get_estimator(est) is est
    with pytest.raises(ValueError, match="not with a built estimator"):
        get_estimator(est, baseline="none")


# ---- local registration -----------------------------------------------------------------------

@pytest.fixture
def cleanup_registry():
    """Names registered by a test are removed afterwards (the registries are process-wide)."""
    before = set(ESTIMATORS.entries)
    yield
    for name in set(ESTIMATORS.entries) - before:
        del ESTIMATORS.entries[name]


def _pathwise_copy(**options) -> GradientEstimator:
    """A local test estimator (the reparameterization trick under another name)."""
    return get_estimator("pathwise")._replace(name="", options=options)


def test_local_decorator_registers_with_a_local_source(cleanup_registry):
    register_estimator("local_pathwise_copy")(_pathwise_copy)
    entry = ESTIMATORS.entries["local_pathwise_copy"]
    assert entry.source == f"local {__name__}"
    assert entry.description == "A local test estimator (the reparameterization trick under another name)."
    assert "local_pathwise_copy" in gradest.list_estimators()
    est = get_estimator("local_pathwise_copy", scale=2)
    assert est.name == "local_pathwise_copy" and est.options == {"scale": 2}
    # registering the same factory again (a module imported twice) is not a clash
    register_estimator("local_pathwise_copy")(_pathwise_copy)
    row = next(r for r in describe_estimators() if r.name == "local_pathwise_copy")
    assert row.source == f"local {__name__}" and row.supports == ("beta", "dirichlet", "gamma", "normal")


def test_local_clash_with_a_builtin_raises_naming_both(cleanup_registry):
    with pytest.raises(ValueError) as err:
        register_estimator("reinforce")(_pathwise_copy)
    message = str(err.value)
    assert "'reinforce'" in message and "built-in (gradest.estimators.reinforce)" in message
    assert f"local {__name__} ({__name__})" in message and "Rename" in message
    assert ESTIMATORS.entries["reinforce"].module == "gradest.estimators.reinforce"


def test_bad_registrations_are_refused():
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        register_estimator(" spaced ")(_pathwise_copy)
    with pytest.raises(TypeError, match="callable factory"):
        ESTIMATORS.register("not_callable", 3)


def test_required_options_are_named(cleanup_registry):
    def needs_scale(scale, shift=0.0):
        """An estimator that cannot be built without options."""
        return _pathwise_copy(scale=scale, shift=shift)

    register_estimator("needs_scale")(needs_scale)
    with pytest.raises(ValueError, match=r"estimator 'needs_scale' needs the option 'scale'"):
        get_estimator("needs_scale")
    assert get_estimator("needs_scale", scale=1.0).options == {"scale": 1.0, "shift": 0.0}
    row = next(r for r in describe_estimators() if r.name == "needs_scale")
    assert row.supports == () and row.unbiased is None and "needs options: scale" in row.description


# ---- entry points (fake installed distributions, a private group) -----------------------------

GROUP = "gradest_tests.estimators"


def _distribution(site, dist: str, module: str, source: str, entry_points: str) -> None:
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    """A folder of fake installed distributions on sys.path; their modules unloaded after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("fakeplugin_"):
            del sys.modules[name]


def _fresh_registry() -> Registry:
    """A registry of the private group that already holds the built-in ``reinforce`` entry."""
    reg = Registry("estimator", "gradest.estimators", GROUP)
    reg.entries["reinforce"] = ESTIMATORS.entry("reinforce")
    return reg


FACTORIES = '''
    from gradest.registry import get_estimator

    def good(scale=1.0):
        """A plugin estimator."""
        return get_estimator("pathwise")._replace(name="", options={"scale": scale})

    def reinforce():
        """A plugin estimator that took a built-in's name."""
        return get_estimator("pathwise")._replace(name="reinforce")

    def fails_to_build():
        raise ArithmeticError("bad default")

    def not_an_estimator():
        return 42

    NOT_CALLABLE = 3
'''


def test_entry_points_register_with_package_source(plugin_site):
    _distribution(plugin_site, "fakeplugin-good", "fakeplugin_good", FACTORIES, f"""
        [{GROUP}]
        good = fakeplugin_good:good
    """)
    reg = _fresh_registry()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert reg.names() == ["good", "reinforce"]
    entry = reg.entries["good"]
    assert entry.source == "package fakeplugin-good" and entry.module == "fakeplugin_good"
    assert entry.is_plugin and entry.description == "A plugin estimator."
    assert reg.build("good", scale=2.0).options == {"scale": 2.0}
    assert reg.plugin_errors == []


def test_broken_entry_points_warn_once_and_the_rest_works(plugin_site):
    _distribution(plugin_site, "fakeplugin-broken", "fakeplugin_broken",
                  'raise ModuleNotFoundError("No module named \'missing_dependency\'")\n', f"""
        [{GROUP}]
        broken = fakeplugin_broken:factory
    """)
    _distribution(plugin_site, "fakeplugin-many", "fakeplugin_many", FACTORIES, f"""
        [{GROUP}]
        good = fakeplugin_many:good
        fails_to_build = fakeplugin_many:fails_to_build
        not_an_estimator = fakeplugin_many:not_an_estimator
        not_callable = fakeplugin_many:NOT_CALLABLE
        missing_attribute = fakeplugin_many:nowhere
    """)
    reg = _fresh_registry()
    with pytest.warns(PluginWarning) as caught:
        names = reg.names()
    assert names == ["good", "reinforce"]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 5 == len(reg.plugin_errors)

    def one(fragment):
        [message] = [m for m in messages if fragment in m]
        return message

    broken = one("'broken'")
    assert "'fakeplugin_broken:factory'" in broken and f"group {GROUP}" in broken
    assert "package fakeplugin-broken" in broken
    assert "failed to load and is skipped: ModuleNotFoundError: No module named 'missing_dependency'" in broken
    assert "fails to build with its default options and is skipped: ArithmeticError: bad default" in one(
        "'fails_to_build'")
    assert "TypeError: its factory returned int, not a GradientEstimator" in one("'not_an_estimator'")
    assert "registers no estimator" in one("'not_callable'")
    assert "AttributeError" in one("'missing_attribute'")
    # discovery happens once: no second warning, the same names
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert reg.names() == names


def test_plugin_clash_is_skipped_naming_both_sources(plugin_site):
    _distribution(plugin_site, "fakeplugin-clash", "fakeplugin_clash", FACTORIES, f"""
        [{GROUP}]
        reinforce = fakeplugin_clash:reinforce
        good = fakeplugin_clash:good
    """)
    _distribution(plugin_site, "fakeplugin-other", "fakeplugin_other", FACTORIES, f"""
        [{GROUP}]
        good = fakeplugin_other:good
    """)
    reg = _fresh_registry()
    with pytest.warns(PluginWarning) as caught:
        assert reg.names() == ["good", "reinforce"]
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    builtin_clash = next(m for m in messages if "'reinforce'" in m)
    assert "built-in (gradest.estimators.reinforce)" in builtin_clash
    assert "package fakeplugin-clash (fakeplugin_clash)" in builtin_clash
    assert "the estimator from package fakeplugin-clash is skipped" in builtin_clash
    assert reg.entries["reinforce"].source == "built-in"
    # two packages with one name: the first loaded keeps it, the message names both packages
    plugin_clash = next(m for m in messages if "'good'" in m)
    assert "package fakeplugin-clash" in plugin_clash and "package fakeplugin-other" in plugin_clash
    assert reg.entries["good"].source in plugin_clash


def test_decorated_plugin_module_registers_itself(plugin_site):
    # a plugin module written with the decorator (as a local file would be) and an entry point
    # naming its factory; registered into the private registry by the module itself
    _distribution(plugin_site, "fakeplugin-decorated", "fakeplugin_decorated", f"""
        from gradest.registry import get_estimator
        from tests_registry_target import REGISTRY

        def decorated():
            \"\"\"Registered by its own module.\"\"\"
            return get_estimator("pathwise")._replace(name="decorated")

        REGISTRY.register("decorated", decorated)
    """, f"""
        [{GROUP}]
        decorated = fakeplugin_decorated:decorated
    """)
    reg = _fresh_registry()
    target = type(sys)("tests_registry_target")
    target.REGISTRY = reg
    sys.modules["tests_registry_target"] = target
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert reg.names() == ["decorated", "reinforce"]
    finally:
        del sys.modules["tests_registry_target"]
    assert reg.entries["decorated"].source == "package fakeplugin-decorated"


def test_plugin_module_imported_by_hand_gets_its_package_source(plugin_site):
    # imported directly before discovery it is "local"; discovery finds its entry point and
    # records the package, without calling it a clash
    _distribution(plugin_site, "fakeplugin-early", "fakeplugin_early", """
        from gradest.registry import get_estimator
        from tests_registry_target import REGISTRY

        def early():
            \"\"\"Imported before discovery.\"\"\"
            return get_estimator("pathwise")._replace(name="early")

        REGISTRY.register("early", early)
    """, f"""
        [{GROUP}]
        early = fakeplugin_early:early
    """)
    reg = _fresh_registry()
    target = type(sys)("tests_registry_target")
    target.REGISTRY = reg
    sys.modules["tests_registry_target"] = target
    try:
        importlib.import_module("fakeplugin_early")
        assert reg.entries["early"].source == "local fakeplugin_early"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert reg.names() == ["early", "reinforce"]
    finally:
        del sys.modules["tests_registry_target"]
    assert reg.entries["early"].source == "package fakeplugin-early"


def test_plugin_warnings_lists_the_process_registries():
    # no broken plugin is installed in the test environment
    assert plugin_warnings() == [*ESTIMATORS.plugin_errors, *TASKS.plugin_errors]


def test_each_registry_is_found_by_what_it_holds():
    """`Registry.by_what`: code that looks an entry up by kind (provenance) names no registry module."""
    from gradest.presets import PRESETS
    from gradest.sweep.kinds import KINDS

    assert Registry.by_what("estimator") is ESTIMATORS and Registry.by_what("task") is TASKS
    assert Registry.by_what("cell kind") is KINDS and Registry.by_what("preset") is PRESETS
    assert Registry.by_what("estimator") is not _fresh_registry()  # a later registry of a kind stays private
    with pytest.raises(ValueError, match="no registry holds 'widget'; registries: 'estimator', 'task'"):
        Registry.by_what("widget")
