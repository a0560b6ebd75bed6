"""What made a result: the noise scheme's version and a fingerprint of the code that computed it.

A sweep cell (`gradest.sweep.Cell`) records both in its key, so a result computed by other
code, or under another noise scheme, is never reused for the current one.

The contract of `code_fingerprint` (estimator, task, cell kind)
---------------------------------------------------------------
The fingerprint is 16 hex digits of a SHA-256 over

* gradest's version (`gradest.version`), which stands for gradest's own code: the modules
  that compute results around an estimator and a task (the ground floor, the harness, the
  backends, ...) are covered by the version only, not by their source;
* for the estimator, then the task, then (where given) the cell kind, the bytes of the source
  file of the module that defines the registered factory (``Entry.module``, located through
  ``sys.modules``, else ``inspect.getsourcefile`` of the factory), together with the files of
  the helper modules it imports, transitively, from its own *scope*:

  - a built-in module (``gradest.estimators.*`` or ``gradest.tasks.*``): any module of those
    two packages (so ``reinmax`` covers ``gumbel_rao`` and ``_conditional_gumbel``);
  - a module inside a package (a plugin's ``mypkg.estimators``): the modules of the same
    package (``mypkg.*`` under ``mypkg``, ``mypkg.sub.*`` under ``mypkg.sub``);
  - a top-level module (a local plugin file ``my_estimator.py``, a single-module
    distribution): that file alone.

  The entry is looked up in the registry of its kind (`gradest.registry.Registry.by_what`):
  this module names no registry of estimators, tasks or cell kinds.

  Imports are read from the source's syntax tree (``import x``, ``from x import y`` and
  relative imports, at any depth of the file, also inside functions), so the set of files
  depends on the file contents alone; a module imported in another way (``importlib``,
  ``__import__``) is not followed. Each file enters as its module name and the SHA-256 of its
  bytes, never its path: the same code in another checkout or on another machine gives the
  same fingerprint.

A module with no source file (a factory defined in a notebook or an interactive session)
enters through ``inspect.getsource`` of the factory where that works, and otherwise as its
module name alone, in which case an edit is not detected.

Each file is read and parsed once per process and (path, mtime_ns, size), and a fingerprint
is kept until one of the files it covers changes either: calling `code_fingerprint` for every
cell of a sweep costs a few ``os.stat`` calls each. A rewrite
that keeps both the size and the modification time (within the file system's time
resolution) is not seen by the same process; a new process always reads the files again.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import os
import sys
from typing import NamedTuple

from gradest import version
from gradest.noise import NOISE_VERSION
from gradest.registry import Registry

__all__ = ["NOISE_VERSION", "FINGERPRINT_DIGITS", "code_fingerprint", "code_sources"]

#: hex digits of a code fingerprint
FINGERPRINT_DIGITS = 16


class _FileInfo(NamedTuple):
    digest: str
    #: (level, module or "", imported names) per import statement; names empty for ``import x``
    imports: tuple


#: path -> ((mtime_ns, size), info)
_FILE_CACHE: dict[str, tuple[tuple[int, int], _FileInfo]] = {}


def _file_info(path: str) -> _FileInfo:
    """The digest and import statements of the file at ``path`` (cached per mtime and size)."""
    st = os.stat(path)
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _FILE_CACHE.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    with open(path, "rb") as handle:
        data = handle.read()
    info = _FileInfo(hashlib.sha256(data).hexdigest(), _imports(data) if path.endswith(".py") else ())
    _FILE_CACHE[path] = (stamp, info)
    return info


def _imports(source: bytes) -> tuple:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ()
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((0, alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            out.append((node.level, node.module or "", tuple(alias.name for alias in node.names)))
    return tuple(out)


def _registry_packages() -> tuple[str, ...]:
    return (Registry.by_what("estimator").package, Registry.by_what("task").package)


def _scope(module: str) -> tuple[str, ...]:
    """Module-name prefixes whose modules count as helpers of ``module`` (see the docstring)."""
    builtin = _registry_packages()
    if any(module.startswith(p + ".") for p in builtin):
        return tuple(p + "." for p in builtin)
    package = module.rpartition(".")[0]
    return (package + ".",) if package else ()


def _module_path(module: str) -> str | None:
    """The file ``module`` is (or would be) loaded from; None where there is none."""
    loaded = sys.modules.get(module)
    path = getattr(loaded, "__file__", None) if loaded is not None else None
    parent = module.rpartition(".")[0]
    # find_spec imports a missing parent: look up only where that imports nothing
    if path is None and loaded is None and (not parent or parent in sys.modules):
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError, AttributeError):
            spec = None
        if spec is not None and spec.has_location:
            path = spec.origin
    return path if path and os.path.isfile(path) else None


def _package_of(module: str, path: str) -> str:
    return module if os.path.basename(path).startswith("__init__.") else module.rpartition(".")[0]


def _imported_modules(module: str, path: str, info: _FileInfo) -> list[str]:
    """Names of the modules (not attributes) that the import statements of ``module`` name."""
    package = _package_of(module, path)
    out = []
    for level, name, names in info.imports:
        if level:
            if not package:
                continue
            try:
                base = importlib.util.resolve_name("." * level + name, package)
            except (ImportError, ValueError):
                continue
        else:
            base = name
        out.append(base)
        out.extend(f"{base}.{n}" for n in names if n != "*")  # ``from pkg import submodule``
    return out


def _module_sources(module: str, factory=None) -> list[tuple[str, str | None, str]]:
    """(module name, path or None, digest) of ``module`` and its helpers in scope, sorted."""
    scope = _scope(module)
    path = _module_path(module)
    if path is None and factory is not None:
        try:
            path = inspect.getsourcefile(factory)
        except TypeError:
            path = None
        path = path if path and os.path.isfile(path) else None
    if path is None:
        try:
            text = inspect.getsource(factory) if factory is not None else ""
        except (OSError, TypeError):
            text = ""
        digest = hashlib.sha256(text.encode()).hexdigest() if text else "no source"
        return [(module, None, digest)]
    seen: dict[str, tuple[str, str]] = {}
    todo = [(module, path)]
    while todo:
        name, file = todo.pop()
        if name in seen:
            continue
        info = _file_info(file)
        seen[name] = (file, info.digest)
        for other in _imported_modules(name, file, info):
            if other in seen or not any(other.startswith(p) for p in scope):
                continue
            other_path = _module_path(other)
            if other_path is not None:
                todo.append((other, other_path))
    return sorted((name, file, digest) for name, (file, digest) in seen.items())


def code_sources(name: str, kind: str = "estimator") -> list[tuple[str, str | None]]:
    """(module name, file path or None) of every source the fingerprint of the registered
    estimator (or task, ``kind="task"``, or cell kind, ``kind="cell kind"``) ``name`` covers,
    sorted by module name."""
    entry = Registry.by_what(kind).entry(name)
    return [(module, path) for module, path, _ in _module_sources(entry.module, entry.factory)]


#: (version, estimator name, task name) -> ((estimator factory, task factory), ((path, stamp), ...),
#: fingerprint); the factories are compared by identity (a re-registered name has a new one)
_FINGERPRINTS: dict[tuple, tuple[tuple, tuple, str]] = {}


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def code_fingerprint(estimator_name: str, task_name: str, cell_kind: str | None = None) -> str:
    """16 hex digits identifying the code that computes results of ``estimator_name`` on
    ``task_name`` (the module docstring states what it covers), and with ``cell_kind`` also
    the module of that sweep cell kind. Unknown names raise ValueError, as the registry does."""
    named = [("estimator", estimator_name), ("task", task_name)]
    if cell_kind is not None:
        named.append(("cell kind", cell_kind))
    entries = tuple((kind, Registry.by_what(kind).entry(name)) for kind, name in named)
    factories = tuple(e.factory for _, e in entries)
    memo_key = (version.__version__, estimator_name, task_name, cell_kind)
    memo = _FINGERPRINTS.get(memo_key)
    if (memo is not None and all(a is b for a, b in zip(memo[0], factories))
            and all(_stamp(path) == stamp for path, stamp in memo[1])):
        return memo[2]
    h = hashlib.sha256()
    h.update(f"gradest {version.__version__}\n".encode())
    files = []
    for kind, entry in entries:
        h.update(f"{kind}\n".encode())
        for module, path, digest in _module_sources(entry.module, entry.factory):
            h.update(f"{module} {digest}\n".encode())
            if path is not None:
                files.append((path, _FILE_CACHE[path][0]))
    fingerprint = h.hexdigest()[:FINGERPRINT_DIGITS]
    _FINGERPRINTS[memo_key] = (factories, tuple(files), fingerprint)
    return fingerprint
