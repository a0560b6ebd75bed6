"""What the commands of ``gradest`` share: exit codes, `UsageError`, plugin loading, argument
parsing helpers and the backend resolution of ``run``.

Every problem with the user's input becomes a `UsageError` here (``gradest: error: ...``,
exit code 2, no traceback), before any work.
"""
from __future__ import annotations

import argparse
import math
import warnings
from typing import Sequence

__all__ = ["EXIT_OK", "EXIT_FAILED_CELLS", "EXIT_USAGE", "UsageError", "split", "positive_int", "positive_float",
           "add_plugins", "refuse_file", "load_plugin_files", "load_registries", "print_plugin_problems",
           "backends_for", "check_backends"]

EXIT_OK, EXIT_FAILED_CELLS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command-line input: printed as ``gradest: error: ...``, exit code 2."""


# ---- arguments ------------------------------------------------------------------------------

def split(values: Sequence[str] | None) -> list[str] | None:
    """``--tasks a b,c`` -> [a, b, c] (both spaces and commas separate; estimator options
    after ``:`` keep their commas)."""
    if not values:
        return None
    out: list[str] = []
    for value in values:
        if ":" in value or "[" in value:  # name:k=v,k=v is one estimator variant
            out.append(value)
            continue
        out.extend(v for v in value.split(",") if v)
    return out or None


def positive_int(minimum: int = 1):
    """An argparse type: an integer of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"must be {'a positive integer' if minimum == 1 else f'at least {minimum}'}, got {value}")
        return value

    return parse


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_plugins(parser) -> None:
    parser.add_argument("--plugins", nargs="+", metavar="FILE.py", default=None,
                        help="local plugin files registering estimators, tasks or cell kinds (also: the "
                             "GRADEST_PLUGINS environment variable, paths separated by ':')")


def refuse_file(flag: str, path) -> None:
    """A folder option (``--out``, ``--report``) naming an existing file is refused now, not when
    the first file is written into it."""
    from pathlib import Path

    if path is not None and Path(path).exists() and not Path(path).is_dir():
        raise UsageError(f"{flag} {path} is an existing file: {flag} names a folder (a new or an existing one)")


# ---- plugins --------------------------------------------------------------------------------

def load_plugin_files(files) -> None:
    """The files of ``GRADEST_PLUGINS`` and of ``--plugins``, loaded now (a Dask sweep hands
    what this process loaded to its workers: `gradest.sweep.dask.WarmWorker`)."""
    from gradest.plugins import PluginFileError, env_files, load_files

    try:
        load_files(env_files())
        if files:
            load_files(files)
    except PluginFileError as err:
        raise UsageError(str(err)) from None


def load_registries() -> list[str]:
    """Discover estimators, tasks and cell kinds; the plugin load problems, each once."""
    from gradest.plugins import PluginFileError
    from gradest.registry import ESTIMATORS, TASKS
    from gradest.sweep.kinds import KINDS

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # shown by the caller, once each
            ESTIMATORS.load()
            TASKS.load()
            KINDS.load()
    except PluginFileError as err:
        raise UsageError(str(err)) from None
    return list(dict.fromkeys(ESTIMATORS.plugin_errors + TASKS.plugin_errors + KINDS.plugin_errors))


def print_plugin_problems(console, problems: list[str]) -> None:
    from rich.markup import escape

    for message in problems:
        console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True)


# ---- backends -------------------------------------------------------------------------------

def backends_for(requested: list[str] | None, device: str) -> tuple[list[str], list[str]]:
    """(the backends to sweep, the registered ones not installed when none were requested),
    checked by name only: no framework is imported."""
    from gradest.backends import DEVICES, available_backends, backend_names

    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}; known devices: {', '.join(DEVICES)}")
    known = backend_names()
    if requested:
        unknown = [b for b in requested if b not in known]
        if unknown:
            raise UsageError(f"unknown backend{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                             f"known backends: {', '.join(known)}")
        return list(dict.fromkeys(requested)), []
    backends = available_backends()
    if not backends:
        raise UsageError(f"no backend is installed: gradest needs {' or '.join(known)}. Install one: "
                         f"pip install torch, or pip install jax optax (or `make venv`)")
    return backends, [b for b in known if b not in backends]


def check_backends(backends: list[str], device: str, missing: list[str], console) -> None:
    """Say which registered backends are not installed (``missing``), then import each
    framework of ``backends`` and make one array on ``device``: a clear error now, not per cell."""
    from gradest.backends import get_backend

    if missing:
        console.print(f"note: backend{'s' if len(missing) > 1 else ''} {', '.join(missing)} not installed; "
                      f"sweeping {', '.join(backends)}", highlight=False)
    for name in backends:
        try:
            B = get_backend(name, device=device)
            B.to_numpy(B.asarray([0.0]))
        except ImportError as err:
            raise UsageError(str(err)) from None
        except Exception as err:  # e.g. no CUDA device
            raise UsageError(f"the {name} backend cannot run on device {device!r}: {type(err).__name__}: "
                             f"{str(err).rstrip('.')}. Pick another --device or backend.") from None
