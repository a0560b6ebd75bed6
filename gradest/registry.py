"""The registry of estimators and tasks: built-ins, local files and installed plugins.

Three ways in, one registry per kind (``ESTIMATORS``, ``TASKS``):

* **built-in**: the modules of the ``gradest.estimators`` and ``gradest.tasks`` packages
  register themselves with the decorators below when imported, so adding one is adding a file.
* **local**: any other module (a script, a notebook, a file of the user's project) uses the
  same decorators. Registering a local name first imports the built-ins, so a clash with a
  built-in is caught at once: it raises `ValueError` naming both sources.
* **package**: an installed distribution declares entry points in the groups
  ``gradest.estimators`` / ``gradest.tasks`` (``name = "module:object"``). Loading the object
  either registers it (a decorated module) or, for an undecorated factory, the registry
  registers it under the entry point's name.

Discovery is lazy: the first listing or look-up imports the built-ins, then loads the entry
points and the local plugin files of ``GRADEST_PLUGINS`` (`gradest.plugins`), once per process. Failure is contained: an entry point that fails to import, a
plugin estimator that fails to build with its default options, or a plugin name that clashes
with an existing one (built-in or another package) is skipped and reported once, as a
`PluginWarning` naming the entry point, both sources where there is a clash, and the error;
the built-ins and every other plugin keep working. The messages stay available in
``Registry.plugin_errors`` / `plugin_warnings()` (e.g. for ``gradest list``).

Every `Entry` records its ``source``: ``"built-in"``, ``"package <distribution name>"`` or
``"local <module>"``; `describe_estimators` / `describe_tasks` give one row per entry with
what it supports.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

ESTIMATOR_GROUP = "gradest.estimators"
TASK_GROUP = "gradest.tasks"
BUILT_IN = "built-in"


class PluginWarning(RuntimeWarning):
    """A plugin was skipped: it failed to import or to build, or its name clashes."""


@dataclass
class Entry:
    name: str
    factory: Callable
    kind: str  # "estimator" | "task"
    source: str  # "built-in", "package <dist>", or "local <module>"
    module: str
    description: str = ""
    meta: dict = field(default_factory=dict)

    def option_names(self) -> list[str]:
        sig = inspect.signature(self.factory)
        return [p.name for p in sig.parameters.values()
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]

    def option_defaults(self) -> dict[str, Any]:
        sig = inspect.signature(self.factory)
        return {p.name: p.default for p in sig.parameters.values()
                if p.default is not inspect.Parameter.empty}

    def required_options(self) -> list[str]:
        """Options without a default: the entry cannot be built with defaults alone."""
        sig = inspect.signature(self.factory)
        return [p.name for p in sig.parameters.values()
                if p.default is inspect.Parameter.empty
                and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]

    @property
    def is_plugin(self) -> bool:
        return self.source.startswith("package ")


class Registry:
    """Name -> `Entry` for one kind ("estimator", "task", "cell kind", ...), with lazy discovery.

    Each registry is found by what it holds (`by_what`): the first registry made for a kind
    (the module-level one, made when its module is imported) answers for it, so code that
    looks an entry up by kind (`gradest.provenance`) names no registry module."""

    #: what a registry holds -> the registry answering for it (`by_what`)
    _by_what: dict[str, "Registry"] = {}

    def __init__(self, kind: str, package: str, group: str):
        Registry._by_what.setdefault(kind, self)  # a later one of the same kind (a test's) stays private
        self.kind = kind
        self.package = package
        self.group = group
        self.entries: dict[str, Entry] = {}
        self._loaded = False
        self._builtins_loaded = False
        self._loading_source: str | None = None
        self._attempts: list[str] = []  # names an entry point's import tried to register
        self.plugin_errors: list[str] = []

    @classmethod
    def by_what(cls, kind: str) -> "Registry":
        """The registry of ``kind`` ("estimator", "task", "cell kind", "preset"); ValueError
        naming the kinds registered so far for another (a registry exists once its module is
        imported)."""
        registry = cls._by_what.get(kind)
        if registry is None:
            raise ValueError(f"no registry holds {kind!r}; registries: {', '.join(map(repr, cls._by_what))}")
        return registry

    # ---- reporting -----------------------------------------------------------------------
    def _report(self, message: str) -> None:
        """Record ``message`` and warn, once per process."""
        if message in self.plugin_errors:
            return
        self.plugin_errors.append(message)
        warnings.warn(message, PluginWarning, stacklevel=4)

    # ---- registration --------------------------------------------------------------------
    def _source_of(self, module: str) -> str:
        if self._loading_source is not None:
            return self._loading_source
        if module == self.package or module.startswith(self.package + "."):
            return BUILT_IN
        return f"local {module}"

    def register(self, name: str, factory: Callable, *, description: str = "", **meta) -> None:
        if not isinstance(name, str) or not name or name != name.strip() or "/" in name:
            raise ValueError(f"{self.kind} name must be a non-empty string without spaces at the ends "
                             f"or '/', got {name!r}")
        if not callable(factory):
            raise TypeError(f"the {self.kind} {name!r} must be registered with a callable factory, "
                            f"got {type(factory).__name__}")
        module = getattr(factory, "__module__", None) or "?"
        source = self._source_of(module)
        if source.startswith("local "):
            # a local name is checked against the built-ins now, not at first listing
            self._load_builtins()
        if self._loading_source is not None:
            self._attempts.append(name)
        if name in self.entries:
            old = self.entries[name]
            if old.factory is factory or (old.module == module and
                                          old.factory.__qualname__ == getattr(factory, "__qualname__", None)):
                if old.source.startswith("local ") and source.startswith("package "):
                    old.source = source  # a plugin module imported by hand before discovery
                return  # the same module imported twice
            message = (f"{self.kind} name {name!r} is registered twice: by {old.source} ({old.module}) and "
                       f"by {source} ({module})")
            if source.startswith("package "):
                self._report(f"gradest: {message}; the {self.kind} from {source} is skipped and the one from "
                             f"{old.source} kept. Rename the plugin's entry point or registered name.")
                return
            raise ValueError(f"{message}. Rename one of them; gradest never overrides a name silently.")
        doc = description or (inspect.getdoc(factory) or "").split("\n")[0]
        self.entries[name] = Entry(name, factory, self.kind, source, module, doc, dict(meta))

    # ---- discovery -----------------------------------------------------------------------
    def _load_builtins(self) -> None:
        if self._builtins_loaded:
            return
        self._builtins_loaded = True
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.startswith("_") or info.name.startswith("test"):
                continue
            importlib.import_module(f"{self.package}.{info.name}")

    def load(self) -> None:
        """Import the built-ins, then load the entry points (once per process)."""
        if self._loaded:
            return
        self._loaded = True
        self._load_builtins()
        self._load_entry_points()
        from gradest.plugins import env_files, load_files

        load_files(env_files())  # GRADEST_PLUGINS: local plugin files

    def _load_entry_points(self) -> None:
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else ep.value.split(":")[0]
            source = f"package {dist_name}"
            where = f"{ep.name!r} = {ep.value!r} (group {self.group}, {source})"
            before = set(self.entries)
            self._loading_source, self._attempts = source, []
            try:
                obj = ep.load()
                attempted = bool(self._attempts)
                if not attempted:
                    if not callable(obj):
                        raise TypeError(f"it names a {type(obj).__name__} that registers no {self.kind}; "
                                        f"point it at a factory or at a module that registers one")
                    self.register(ep.name, obj)
            except Exception as err:  # a broken plugin must not break gradest
                self._report(f"gradest: the {self.kind} plugin entry point {where} failed to load and is "
                             f"skipped: {type(err).__name__}: {err}")
                for name in set(self.entries) - before:
                    del self.entries[name]
                continue
            finally:
                self._loading_source, self._attempts = None, []
            if self.kind == "estimator":
                for name in sorted(set(self.entries) - before):
                    self._check_builds(name, where)

    def _check_builds(self, name: str, where: str) -> None:
        """Build a plugin estimator with its defaults; skip it with a warning if that fails."""
        entry = self.entries[name]
        if entry.required_options():
            return  # needs options: built only when the user gives them
        try:
            est = entry.factory()
            from gradest.estimator import GradientEstimator

            if not isinstance(est, GradientEstimator):
                raise TypeError(f"its factory returned {type(est).__name__}, not a GradientEstimator")
        except Exception as err:
            del self.entries[name]
            self._report(f"gradest: the {self.kind} {name!r} of plugin entry point {where} fails to build "
                         f"with its default options and is skipped: {type(err).__name__}: {err}")

    # ---- look-up -------------------------------------------------------------------------
    def names(self) -> list[str]:
        self.load()
        return sorted(self.entries)

    def entry(self, name: str) -> Entry:
        self.load()
        if not isinstance(name, str) or name not in self.entries:
            raise ValueError(
                f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(sorted(self.entries))}")
        return self.entries[name]

    def build(self, name: str, **options):
        entry = self.entry(name)
        valid = entry.option_names()
        has_var_kw = any(p.kind == p.VAR_KEYWORD for p in inspect.signature(entry.factory).parameters.values())
        unknown = sorted(set(options) - set(valid))
        if unknown and not has_var_kw:
            raise ValueError(
                f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for "
                f"{self.kind} {name!r}; valid options: {', '.join(valid) if valid else '(none)'}")
        missing = [o for o in entry.required_options() if o not in options]
        if missing:
            raise ValueError(f"{self.kind} {name!r} needs the option{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(map(repr, missing))}; give {'them' if len(missing) > 1 else 'it'} "
                             f"as keyword arguments")
        return entry.factory(**options)


ESTIMATORS = Registry("estimator", "gradest.estimators", ESTIMATOR_GROUP)
TASKS = Registry("task", "gradest.tasks", TASK_GROUP)


def _check_variants(name: str, variants, what: str) -> list[dict]:
    if variants is None:
        return [{}]
    out = []
    for v in variants:
        if not isinstance(v, dict):
            raise TypeError(f"{what} of {name!r} must be a list of option dicts, got {v!r}")
        out.append(dict(v))
    return out or [{}]


def register_estimator(name: str, *, description: str = "", variants=None, core=None) -> Callable:
    """Decorator: register an estimator factory ``(**options) -> GradientEstimator``.

    ``variants``: the option dicts a sweep or the asv grid runs by default (default ``[{}]``:
    the factory's defaults), e.g. ``[{"baseline": b} for b in BASELINES]``. ``core``: the
    variants a quick sweep also runs on every backend after the first and trains (default:
    none), e.g. ``[{"baseline": "loo"}]``, or ``True`` for all of ``variants``."""

    def decorate(factory):
        declared = _check_variants(name, variants, "variants")
        if core is True:
            core_variants = declared
        else:
            core_variants = [] if core in (None, False) else _check_variants(name, core, "core")
        ESTIMATORS.register(name, factory, description=description, variants=declared, core=core_variants)
        return factory

    return decorate


def register_task(name: str, *, description: str = "", variants=None) -> Callable:
    """Decorator: register a task factory (usually a `gradest.task.Task` subclass).

    ``variants``: option dicts the asv grid runs beside the defaults (default ``[{}]``). The
    sizes a sweep uses per budget are the factory's ``sweep_sizes`` (see `gradest.task.Task`)."""

    def decorate(factory):
        TASKS.register(name, factory, description=description, variants=_check_variants(name, variants, "variants"))
        return factory

    return decorate


def estimator_variants(name: str) -> list[dict]:
    """The option dicts declared for estimator ``name`` (``[{}]`` where none were)."""
    return [dict(v) for v in ESTIMATORS.entry(name).meta.get("variants", [{}])]


def core_variants(name: str) -> list[dict]:
    """The variants of ``name`` a quick sweep runs everywhere (``[]`` where none were declared)."""
    return [dict(v) for v in ESTIMATORS.entry(name).meta.get("core", [])]


def task_variants(name: str) -> list[dict]:
    return [dict(v) for v in TASKS.entry(name).meta.get("variants", [{}])]


def list_estimators() -> list[str]:
    return ESTIMATORS.names()


def list_tasks() -> list[str]:
    return TASKS.names()


def get_estimator(name, **options):
    """The estimator ``name`` built with ``options``; a GradientEstimator passes through."""
    from gradest.estimator import GradientEstimator

    if isinstance(name, GradientEstimator):
        if options:
            raise ValueError("options are given to get_estimator together with a name, not with a built estimator")
        return name
    est = ESTIMATORS.build(name, **options)
    if not isinstance(est, GradientEstimator):
        raise TypeError(f"the factory of estimator {name!r} returned {type(est).__name__}, not a GradientEstimator")
    if not est.name:
        est = est._replace(name=name)
    return est


def get_task(name, **options):
    """The task ``name`` built with ``options``; a task object passes through."""
    from gradest.task import Task

    if isinstance(name, Task):
        if options:
            raise ValueError("options are given to get_task together with a name, not with a built task")
        return name
    task = TASKS.build(name, **options)
    if not task.name:
        task.name = name
    return task


# ---- descriptions (for `gradest list`) ---------------------------------------------------

class EstimatorRow(NamedTuple):
    """One registered estimator: ``supports`` its distribution kinds (sorted), ``unbiased``
    whether it claims E[estimate] = ∇L (None where it cannot be built with defaults)."""

    name: str
    source: str
    supports: tuple
    unbiased: bool | None
    description: str


class TaskRow(NamedTuple):
    """One registered task: ``distribution_kind`` of its p_θ and ``has_exact`` ground truth
    (with default options; None where it cannot be built with defaults)."""

    name: str
    source: str
    distribution_kind: str
    has_exact: bool | None
    description: str


def describe_estimators() -> list[EstimatorRow]:
    """One row per registered estimator (built with its default options), sorted by name.

    An estimator that needs options, or fails to build, has ``supports=()`` and
    ``unbiased=None``, and its description says why (a failure is also reported once)."""
    rows = []
    for name in ESTIMATORS.names():
        entry = ESTIMATORS.entries[name]
        supports, unbiased, description = (), None, entry.description
        required = entry.required_options()
        if required:
            description = f"{description} (needs options: {', '.join(required)})".strip()
        else:
            try:
                est = get_estimator(name)
                supports, unbiased = tuple(sorted(est.supports)), bool(est.unbiased)
            except Exception as err:
                ESTIMATORS._report(f"gradest: the estimator {name!r} ({entry.source}) fails to build with its "
                                   f"default options: {type(err).__name__}: {err}")
                description = f"{description} (fails to build: {type(err).__name__})".strip()
        rows.append(EstimatorRow(name, entry.source, supports, unbiased, description))
    return rows


def describe_tasks() -> list[TaskRow]:
    """One row per registered task (built with its default options), sorted by name.

    A task's distribution kind is read from its class where it is a class attribute, so a
    task that fails to build still shows its kind; ``has_exact`` is None then."""
    rows = []
    for name in TASKS.names():
        entry = TASKS.entries[name]
        kind = getattr(entry.factory, "distribution_kind", "") or ""
        has_exact, description = None, entry.description
        required = entry.required_options()
        if required:
            description = f"{description} (needs options: {', '.join(required)})".strip()
        else:
            try:
                task = get_task(name)
                kind, has_exact = task.distribution_kind, bool(task.has_exact())
            except Exception as err:
                TASKS._report(f"gradest: the task {name!r} ({entry.source}) fails to build with its default "
                              f"options: {type(err).__name__}: {err}")
                description = f"{description} (fails to build: {type(err).__name__})".strip()
        rows.append(TaskRow(name, entry.source, kind, has_exact, description))
    return rows


def plugin_warnings() -> list[str]:
    """Every plugin problem reported so far (estimators, then tasks), after discovery."""
    ESTIMATORS.load()
    TASKS.load()
    return [*ESTIMATORS.plugin_errors, *TASKS.plugin_errors]
