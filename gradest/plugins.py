"""Local plugin files: ``gradest run --plugins my_estimator.py`` and ``GRADEST_PLUGINS``.

A plugin file is a Python file that registers estimators, tasks or cell kinds with the
decorators the built-ins use (`gradest.register_estimator`, `gradest.register_task`,
`gradest.sweep.kinds.register_cell_kind`). `load_files(paths)` imports each file once per
process as the module ``gradest_plugin_<stem>_<digest of the path>`` (kept in
``sys.modules``, so its code fingerprint covers the file: editing it recomputes its cells).
The environment variable ``GRADEST_PLUGINS`` lists files separated by ``os.pathsep``; they are
loaded when the registries are first discovered. A file that is missing, or that raises while
it is imported, is a `PluginFileError` naming the file and the line.

Another process gets the files this one loaded as data: `loaded_sources` gives (path, text)
of each, `load_sources` loads them there (the file itself where it holds that text, else a
copy of the text), which is how the workers of a Dask sweep get them
(`gradest.sweep.dask.WarmWorker`).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from typing import Iterable

__all__ = ["PluginFileError", "load_files", "env_files", "ENV_VAR", "loaded_files", "loaded_sources",
           "load_sources"]

ENV_VAR = "GRADEST_PLUGINS"
_LOADED: dict[str, str] = {}  # resolved path -> module name


class PluginFileError(ValueError):
    """A plugin file could not be loaded (the message names the file and the line)."""


def env_files() -> list[str]:
    """The files named in ``GRADEST_PLUGINS``."""
    return [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]


def _module_name(path: Path) -> str:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    stem = "".join(ch if ch.isalnum() else "_" for ch in path.stem)
    return f"gradest_plugin_{stem}_{digest}"


def _where(err: BaseException, path: Path) -> str:
    """``file:line`` of the innermost frame of ``err`` inside ``path`` (or the file alone)."""
    if isinstance(err, SyntaxError) and err.lineno:
        return f"{path}:{err.lineno}"
    line = None
    for frame in traceback.extract_tb(err.__traceback__):
        if Path(frame.filename).resolve() == path:
            line = frame.lineno
    return f"{path}:{line}" if line else str(path)


def load_files(paths: Iterable) -> list[str]:
    """Import each plugin file (once per process); the module names."""
    names = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.is_file():
            raise PluginFileError(f"plugin file {raw} does not exist (or is not a file); give the path of a .py file "
                                  f"that registers estimators or tasks")
        path = path.resolve()
        if str(path) in _LOADED:
            names.append(_LOADED[str(path)])
            continue
        name = _module_name(path)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise PluginFileError(f"plugin file {raw} cannot be imported as Python (a .py file is expected)")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as err:  # noqa: BLE001 -- named with its file and line
            del sys.modules[name]
            raise PluginFileError(f"plugin file {_where(err, path)}: {type(err).__name__}: {err}") from err
        _LOADED[str(path)] = name
        names.append(name)
    return names


def loaded_files() -> list[str]:
    """The plugin files this process loaded (resolved paths, in the order they were loaded)."""
    return list(_LOADED)


def loaded_sources() -> list[tuple[str, str]]:
    """(resolved path, text) of each plugin file this process loaded (`load_sources` loads
    them in another process)."""
    return [(path, Path(path).read_text(encoding="utf-8")) for path in _LOADED if Path(path).is_file()]


def load_sources(files: Iterable[tuple[str, str]], folder) -> list[str]:
    """Load plugin files given as (path, text) (`loaded_sources`): the file at ``path`` where
    it holds ``text`` (this machine, a shared file system), else a copy of ``text`` written
    under ``folder`` with the file's name. The module names."""
    paths = []
    for path, text in files:
        here = Path(path)
        if not (here.is_file() and here.read_text(encoding="utf-8") == text):
            digest = hashlib.sha1(text.encode()).hexdigest()[:12]
            here = Path(folder) / digest / Path(path).name
            if not here.is_file():
                here.parent.mkdir(parents=True, exist_ok=True)
                here.write_text(text, encoding="utf-8")
        paths.append(here)
    return load_files(paths)
