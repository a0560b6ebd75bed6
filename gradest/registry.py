"""The registry of estimators and tasks: built-ins, local files and installed plugins.

Built-ins are the modules of the ``gradest.estimators`` and ``gradest.tasks`` packages: each
registers itself with the decorators below when imported, so adding one is adding one file.
A local file uses the same decorators. Installed packages register through entry points in
the groups ``gradest.estimators`` and ``gradest.tasks`` (the entry point's object is loaded;
it registers on import, or, if it is an undecorated factory, under the entry point's name).
Everything is discovered lazily, on the first listing or look-up.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

ESTIMATOR_GROUP = "gradest.estimators"
TASK_GROUP = "gradest.tasks"


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


class Registry:
    def __init__(self, kind: str, package: str, group: str):
        self.kind = kind
        self.package = package
        self.group = group
        self.entries: dict[str, Entry] = {}
        self._loaded = False
        self._loading_source: str | None = None
        self.plugin_errors: list[str] = []

    # registration
    def register(self, name: str, factory: Callable, *, description: str = "", **meta) -> None:
        module = getattr(factory, "__module__", "?")
        if self._loading_source is not None:
            source = self._loading_source
        elif module.startswith(self.package + "."):
            source = "built-in"
        else:
            source = f"local {module}"
        if name in self.entries:
            old = self.entries[name]
            if old.factory is factory or (old.module == module and old.factory.__qualname__ == getattr(factory, "__qualname__", None)):
                return  # the same module imported twice
            raise ValueError(
                f"{self.kind} name {name!r} is registered twice: by {old.source} ({old.module}) and by "
                f"{source} ({module}). Rename one of them; gradest never overrides silently.")
        doc = description or (inspect.getdoc(factory) or "").split("\n")[0]
        self.entries[name] = Entry(name, factory, self.kind, source, module, doc, dict(meta))

    # discovery
    def load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.startswith("_") or info.name.startswith("test"):
                continue
            importlib.import_module(f"{self.package}.{info.name}")
        self._load_entry_points()

    def _load_entry_points(self) -> None:
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            dist = getattr(ep, "dist", None)
            source = f"package {dist.name if dist is not None else ep.value.split(':')[0]}"
            before = set(self.entries)
            self._loading_source = source
            try:
                obj = ep.load()
                if ep.name not in self.entries and callable(obj) and not set(self.entries) - before:
                    self.register(ep.name, obj)
            except Exception as err:  # a broken plugin must not break gradest
                message = (f"gradest: the {self.kind} plugin entry point {ep.name!r} = {ep.value!r} "
                           f"(group {self.group}) failed to load and is skipped: "
                           f"{type(err).__name__}: {err}")
                self.plugin_errors.append(message)
                warnings.warn(message, RuntimeWarning, stacklevel=3)
            finally:
                self._loading_source = None

    # look-up
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
        return entry.factory(**options)


ESTIMATORS = Registry("estimator", "gradest.estimators", ESTIMATOR_GROUP)
TASKS = Registry("task", "gradest.tasks", TASK_GROUP)


def register_estimator(name: str, *, description: str = "") -> Callable:
    """Decorator: register an estimator factory ``(**options) -> GradientEstimator``."""

    def decorate(factory):
        ESTIMATORS.register(name, factory, description=description)
        return factory

    return decorate


def register_task(name: str, *, description: str = "") -> Callable:
    """Decorator: register a task factory (usually a `gradest.task.Task` subclass)."""

    def decorate(factory):
        TASKS.register(name, factory, description=description)
        return factory

    return decorate


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
