"""Backends: one array/autodiff interface (`Backend`), and the registry of its implementations.

A backend is one file (a `Backend` subclass and its ``make_backend``) plus one call of
`register_backend`, which declares what gradest needs to know without importing the framework:
the name, where the implementation lives (a module path, imported on first use, or a factory),
the install hint shown when the framework is missing, the framework's package names, and how
its values show in error messages (for the conformance kit's Backend-rule messages).

Three ways in, one registry:

* **built-in**: torch (the *reference*: parity and conformance compare every other backend
  against it) and jax, registered at the bottom of this file.
* **local**: any module calls `register_backend` (e.g. a test registering a variant).
* **package**: an installed distribution declares an entry point in the group
  ``gradest.backends``. Loading it either registers (a module that calls `register_backend`
  when imported: keep that module light, the framework imported by the implementation only),
  or names a `Backend` subclass or a module with ``make_backend``, registered under the entry
  point's name. Entry points are loaded on the first look-up (`backend_names`, `get_backend`,
  `available_backends`), never at ``import gradest``; a broken one is skipped with a
  `gradest.registry.PluginWarning`.

`get_backend(name, device="cpu" | "cuda", dtype="float32" | "float64")` builds a backend
(cached per arguments); ``import gradest`` imports no framework.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Callable

from gradest.backends.base import DEVICES, DTYPES, NOISE_KINDS, NOISE_LAWS, Backend

__all__ = ["Backend", "BackendEntry", "get_backend", "register_backend", "unregister_backend", "backend_names",
           "backend_entry", "reference_backend", "available_backends", "BACKENDS", "DEVICES", "DTYPES",
           "NOISE_LAWS", "NOISE_KINDS", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "gradest.backends"


@dataclass(frozen=True)
class BackendEntry:
    """One registered backend: what `register_backend` was told (see its docstring)."""

    name: str
    implementation: str | ModuleType | Callable
    install_hint: str
    reference: bool
    packages: tuple[str, ...]
    error_words: re.Pattern | None
    numpy_conversion: re.Pattern | None
    source: str

    def installed(self) -> bool:
        """Whether the framework is installed (checked without importing it)."""
        return not self.packages or importlib.util.find_spec(self.packages[0]) is not None

    def module_name(self) -> str:
        """The module the implementation lives in (for telling its frames in a traceback)."""
        if isinstance(self.implementation, str):
            return self.implementation
        if isinstance(self.implementation, ModuleType):
            return self.implementation.__name__
        return getattr(self.implementation, "__module__", "") or ""

    def factory(self) -> Callable[..., Backend]:
        """``(device=, dtype=, **options) -> Backend`` (imports the implementation)."""
        impl = self.implementation
        if isinstance(impl, str):
            impl = importlib.import_module(impl)
        return impl.make_backend if isinstance(impl, ModuleType) else impl


_ENTRIES: dict[str, BackendEntry] = {}
_discovered = False


def register_backend(name: str, module_or_factory: str | ModuleType | Callable, *, install_hint: str = "",
                     reference: bool = False, packages=(), error_words: str = "",
                     numpy_conversion: str = "") -> None:
    """Register the backend ``name``.

    Args:
      module_or_factory: a module path (``"gradest.backends.torch"``, imported on first use) or
        a module with ``make_backend(device=, dtype=, **options) -> Backend``, or such a
        factory itself (a `Backend` subclass is one). The backend it builds has ``.name == name``.
      install_hint: how to install the framework, shown when it is missing.
      reference: this is the backend every other one is compared against (one at most).
      packages: the framework's import packages; the first one must be importable for the
        backend to be available (none: always available).
      error_words: a regular expression matching error text that shows this framework's
        values or calls (so code running on another backend that called it is named).
      numpy_conversion: a regular expression matching the error raised when a traced value of
        this framework is converted to NumPy.

    Registering the same implementation twice under one name does nothing; another one under
    a taken name raises `ValueError` (gradest never overrides a backend silently).
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        raise ValueError(f"backend name must be an identifier such as 'torch', got {name!r}")
    if not (isinstance(module_or_factory, (str, ModuleType)) or callable(module_or_factory)):
        raise TypeError(f"backend {name!r} must be registered with a module path, a module or a factory, "
                        f"got {type(module_or_factory).__name__}")
    entry = BackendEntry(name, module_or_factory, install_hint, bool(reference), tuple(packages),
                         re.compile(error_words) if error_words else None,
                         re.compile(numpy_conversion) if numpy_conversion else None,
                         _loading_source or _source_of(module_or_factory))
    old = _ENTRIES.get(name)
    if old is not None:
        if old.implementation is module_or_factory or old.implementation == module_or_factory:
            return
        raise ValueError(f"backend name {name!r} is registered twice: by {old.source} ({old.module_name()}) and by "
                         f"{entry.source} ({entry.module_name()}); rename one of them")
    if reference and any(e.reference for e in _ENTRIES.values()):
        raise ValueError(f"backend {name!r} cannot be the reference: {reference_backend()!r} already is")
    _ENTRIES[name] = entry
    _cached.cache_clear()


def unregister_backend(name: str) -> None:
    """Remove the backend ``name`` from the registry (for tests and temporary variants)."""
    _ENTRIES.pop(name, None)
    _cached.cache_clear()


def backend_names() -> list[str]:
    """The registered backends in registration order (the reference first): the preference order."""
    _discover()
    return list(_ENTRIES)


def backend_entry(name: str) -> BackendEntry:
    """The registration of backend ``name`` (ValueError naming the known ones if unknown)."""
    _discover()
    if name not in _ENTRIES:
        raise ValueError(f"unknown backend {name!r}; known backends: {', '.join(_ENTRIES)}")
    return _ENTRIES[name]


def reference_backend() -> str:
    """The backend parity and conformance checks compare every other backend against."""
    for entry in _ENTRIES.values():
        if entry.reference:
            return entry.name
    raise LookupError("no reference backend is registered")


def available_backends() -> list[str]:
    """The registered backends whose framework is installed (checked without importing it)."""
    return [name for name in backend_names() if _ENTRIES[name].installed()]


def get_backend(name: str | Backend = "torch", device: str = "cpu", dtype: str = "float32", **options) -> Backend:
    """The backend ``name`` on ``device`` with float ``dtype``; a Backend passes through."""
    if isinstance(name, Backend):
        return name
    backend_entry(name)
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; use one of: {', '.join(DEVICES)}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of: {', '.join(DTYPES)}")
    return _cached(name, device, dtype, tuple(sorted(options.items())))


@lru_cache(maxsize=None)
def _cached(name, device, dtype, options):
    entry = _ENTRIES[name]
    if entry.packages:
        try:
            importlib.import_module(entry.packages[0])
        except ImportError as err:
            hint = f" Install it: {entry.install_hint};" if entry.install_hint else ""
            raise ImportError(
                f"the {name} backend needs the {entry.packages[0]} package, which is not installed ({err}).{hint} "
                f"or pick another backend from {', '.join(_ENTRIES)}.") from err
    backend = entry.factory()(device=device, dtype=dtype, **dict(options))
    if not isinstance(backend, Backend) or backend.name != name:
        raise TypeError(f"the factory of backend {name!r} ({entry.module_name()}) built "
                        f"{backend!r}, not a Backend named {name!r}")
    return backend


# ---- discovery --------------------------------------------------------------------------------

_loading_source: str | None = None


def _source_of(implementation) -> str:
    module = (implementation if isinstance(implementation, str) else
              getattr(implementation, "__name__" if isinstance(implementation, ModuleType) else "__module__", ""))
    return "built-in" if (module or "").startswith("gradest.backends.") else f"local {module}"


def _discover() -> None:
    """Load the entry points of `ENTRY_POINT_GROUP` (once per process)."""
    global _discovered, _loading_source
    if _discovered:
        return
    _discovered = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        _loading_source = f"package {dist.metadata['Name'] if dist is not None else ep.value.split(':')[0]}"
        where = f"{ep.name!r} = {ep.value!r} (group {ENTRY_POINT_GROUP}, {_loading_source})"
        before = set(_ENTRIES)
        try:
            obj = ep.load()
            if set(_ENTRIES) == before and ep.name not in _ENTRIES:
                if isinstance(obj, ModuleType) and not hasattr(obj, "make_backend"):
                    raise TypeError("it names a module that registers no backend and has no make_backend")
                if not (isinstance(obj, ModuleType) or (isinstance(obj, type) and issubclass(obj, Backend))):
                    raise TypeError(f"it names a {type(obj).__name__}; point it at a module that calls "
                                    f"register_backend, a Backend subclass or a module with make_backend")
                register_backend(ep.name, obj)
        except Exception as err:  # a broken plugin must not break gradest
            from gradest.registry import PluginWarning

            for name in set(_ENTRIES) - before:
                del _ENTRIES[name]
            warnings.warn(f"gradest: the backend plugin entry point {where} failed to load and is skipped: "
                          f"{type(err).__name__}: {err}", PluginWarning, stacklevel=3)
        finally:
            _loading_source = None


def __getattr__(name):
    if name == "BACKENDS":  # the registered backends as a tuple (the name before the registry)
        return tuple(backend_names())
    raise AttributeError(f"module 'gradest.backends' has no attribute {name!r}")


# ---- the built-ins ----------------------------------------------------------------------------

register_backend(
    "torch", "gradest.backends.torch", reference=True, packages=("torch", "functorch"),
    install_hint="pip install 'torch==2.13.0' (CPU) or a CUDA build from pytorch.org, or `make venv`",
    error_words=r"\btorch\b|\bTensor\b|__dlpack",
    numpy_conversion=r"Can't call numpy\(\) on Tensor that requires grad")
register_backend(
    "jax", "gradest.backends.jax", packages=("jax", "jaxlib", "optax"),
    install_hint="pip install jax optax (CPU) or 'jax[cuda12]' optax (GPU), or `make venv`",
    error_words=r"\bjax\b|jaxlib|Tracer\b|ArrayImpl",
    numpy_conversion=r"TracerArrayConversionError|__array__\(\) was called on traced array")
