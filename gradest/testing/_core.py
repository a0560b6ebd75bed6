"""The machinery of the conformance kit: results, named checks, shared work, failures.

Contracts:

* A check is a `Check`: a ``name`` such as ``unbiased[bandit-torch]`` (the check's kind, then
  in brackets the task and backend it runs on) and a call with no arguments that runs it and
  returns the list of `CheckResult` it passed, or raises AssertionError
  ``"<what>: check '<kind>' failed on task '<task>', backend <backend>: <how, by how much>"``.
* The checks of one estimator (or task) share their expensive work through one `Shared`: a
  value (a sampler's R replicates, a compiled evaluator) is computed by the first check that
  needs it and reused by the others; a failure while computing it is kept and raised again
  to every check that needs it. So checks may run one by one, in any order or alone, and
  running all of them costs what one run of `check_estimator` costs. When every check of
  the series has run, the shared values are dropped.
* The backends checked: every registered backend that is installed, unless a list is given
  (`checked_backends`). Parity compares each of them with the reference backend
  (`gradest.backends.reference_backend`). A check on a backend that is not installed skips:
  `pytest.skip` when pytest is running, a `RuntimeWarning` (and no results) otherwise.
* The Backend rule: estimators and tasks compute with the `Backend` they are given and import
  no framework. An error raised where the code under test called another backend's framework
  on this backend's values, or converted traced values to NumPy, becomes an AssertionError
  naming the check, the task and the backend, where in the code it happened, and what to do
  instead. What tells a framework's frames and errors apart (its packages, the words its
  values show in error text) is declared where the backend is registered
  (`gradest.backends.register_backend`). Any other error passes through unchanged.
"""
from __future__ import annotations

import os
import sys
import sysconfig
import warnings
from typing import Any, Callable, Iterable, NamedTuple

import numpy as np

from gradest.backends import available_backends, backend_entry, backend_names, reference_backend

#: the parity tolerance: |a - b| <= PARITY_ATOL + PARITY_RTOL |b|
PARITY_RTOL = 1e-6
PARITY_ATOL = 1e-9

#: what estimators and tasks are told when they break the Backend rule (see `backend_rule`)
ESTIMATOR_RULE = "compute with `dist.backend` (the Backend passed in), never import {frameworks} in an estimator"
TASK_RULE = "compute with the `backend` argument (the Backend passed in), never import {frameworks} in a task"


class CheckResult(NamedTuple):
    """One passed check: ``check`` name, ``task`` label, ``backend`` (``"<reference>+<backend>"``
    for parity, e.g. "torch+jax")."""

    check: str
    task: str
    backend: str
    detail: str = ""


class _Context:
    """The subject's name for messages (``what``), the results of the running check, and the
    advice given when the Backend rule is broken (``rule``)."""

    def __init__(self, what: str, rule: str):
        self.what = what
        self.rule = rule
        self.results: list[CheckResult] = []

    def fail(self, check: str, task: str, backend: str, message: str, cause: BaseException | None = None):
        err = AssertionError(f"{self.what}: check {check!r} failed on task {task!r}, backend {backend}: {message}")
        if cause is None:
            raise err
        raise err from cause

    def ok(self, check: str, task: str, backend: str, detail: str = ""):
        self.results.append(CheckResult(check, task, backend, detail))


class Shared:
    """Work shared by the checks of one subject, computed once on first use (see the module
    docstring). ``get(key, backend, compute)``: the value of ``compute()``, or its error again;
    ``backend`` is the backend the work runs on (it names the backend when the Backend rule
    is broken inside)."""

    def __init__(self):
        self._values: dict = {}
        self._names: list[str] = []
        self._done: set[str] = set()
        self.complete = False  # all checks of the series are known

    def get(self, key, backend: str | None, compute: Callable[[], Any]):
        if key in self._values:
            ok, value = self._values[key]
            if ok:
                return value
            raise value
        try:
            value = compute()
        except Exception as err:
            if backend is not None and getattr(err, "_gradest_backend", None) is None:
                try:
                    err._gradest_backend = backend
                except (AttributeError, TypeError):
                    pass
            self._values[key] = (False, err)
            raise
        self._values[key] = (True, value)
        return value

    def _register(self, name: str) -> None:
        self._names.append(name)

    def _finished(self, name: str) -> None:
        self._done.add(name)
        if self.complete and self._done >= set(self._names):
            self._values.clear()


class Check:
    """One named check of a subject: call it to run it (see the module docstring).

    Attributes: ``name`` (``"unbiased[bandit-torch]"``; the task is left out of the names of
    task checks, whose subject it is: ``"exact[torch]"``; a check comparing two backends names
    them ``"parity[bandit-jax vs torch]"``), ``kind`` (``"unbiased"``), ``subject`` (the
    estimator's or task's label), ``task`` (the task label, ``"-"`` for none) and ``backends``
    (those it runs on, the compared one first; none for checks of metadata)."""

    def __init__(self, ctx: _Context, shared: Shared, kind: str, fn: Callable[[], None], *, subject: str,
                 task: str = "-", backends: tuple = (), ran: Iterable[str] = (), missing: Iterable[str] = (),
                 name_task: bool = True):
        self.kind, self.subject, self.task, self.backends = kind, subject, task, tuple(backends)
        where = "-".join(([task] if name_task and task != "-" else []) + (
            [" vs ".join(self.backends)] if self.backends else []))
        self.name = f"{kind}[{where}]" if where else kind
        self._ctx, self._shared, self._fn = ctx, shared, fn
        self._ran, self._missing = list(ran), [b for b in self.backends if b in set(missing)]
        shared._register(self.name)

    @property
    def skipped(self) -> bool:
        """Whether a backend it runs on is not installed (calling it then skips)."""
        return bool(self._missing)

    def __call__(self) -> list[CheckResult]:
        if self._missing:
            _report_missing(self._missing, self._ran, f"{self._ctx.what} {self.name}")
            return []
        start = len(self._ctx.results)
        try:
            self._fn()
        except AssertionError:
            raise
        except Exception as err:
            backend = getattr(err, "_gradest_backend", None) or (
                self.backends[0] if len(self.backends) == 1 else None)
            broken = backend_rule_violation(err, backend) if backend else None
            if broken:
                self._ctx.fail(self.kind, self.task, backend, f"{broken}; {self._ctx.rule}", cause=err)
            raise
        finally:
            self._shared._finished(self.name)
        return self._ctx.results[start:]

    def __repr__(self) -> str:
        return f"<Check {self.subject}-{self.name}>"


# ---- the Backend rule -----------------------------------------------------------------------

_ERROR_TYPES = (TypeError, AttributeError, RuntimeError)


def _frameworks() -> dict[tuple, list]:
    """The registered backends grouped by framework (their declared packages)."""
    out: dict[tuple, list] = {}
    for name in backend_names():
        entry = backend_entry(name)
        if entry.packages:
            out.setdefault(entry.packages, []).append(entry)
    return out


def backend_rule(rule: str) -> str:
    """``rule`` (`ESTIMATOR_RULE` or `TASK_RULE`) naming the registered frameworks."""
    return rule.format(frameworks=" or ".join(packages[0] for packages in _frameworks()) or "a framework")


def _package_dirs(names: Iterable[str]) -> list[str]:
    dirs = []
    for name in names:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if path:
            dirs.append(os.path.dirname(os.path.abspath(path)) + os.sep)
    return dirs


#: the folder of the package gradest (this file is gradest/testing/_core.py)
_GRADEST_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _frames(err: BaseException) -> list:
    tb, frames = err.__traceback__, []
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    return frames


def _culprit(frames) -> str | None:
    """``file:line in function`` of the innermost frame outside the frameworks, NumPy, the
    standard library and gradest's own core: the code under test, as a rule."""
    skip = _package_dirs([*(p for packages in _frameworks() for p in packages), "numpy", "scipy"])
    skip.append(_GRADEST_DIR)
    stdlib = os.path.abspath(sysconfig.get_paths()["stdlib"]) + os.sep
    for tb in reversed(frames):
        path = os.path.abspath(tb.tb_frame.f_code.co_filename)
        if any(path.startswith(d) for d in skip) or path.startswith("<"):
            continue
        if path.startswith(stdlib) and "-packages" not in path:
            continue
        try:
            shown = os.path.relpath(path)
        except ValueError:
            shown = path
        return f"{shown if not shown.startswith('..') else path}:{tb.tb_lineno} in {tb.tb_frame.f_code.co_name}"
    return None


def backend_rule_violation(err: BaseException, backend: str) -> str | None:
    """What ``err``, raised while running code on ``backend``, shows of a broken Backend rule
    (the other framework called on this backend's values, or traced values made NumPy), as
    text for a message; None when it shows nothing of the kind."""
    if backend not in backend_names() or isinstance(err, AssertionError):
        return None
    own = backend_entry(backend)
    others = {packages: entries for packages, entries in _frameworks().items() if packages != own.packages}
    frames = _frames(err)
    files = {os.path.abspath(tb.tb_frame.f_code.co_filename) for tb in frames}
    for entries in others.values():
        for entry in entries:
            through = getattr(sys.modules.get(entry.module_name()), "__file__", None)
            if through and os.path.abspath(through) in files:
                return None  # another framework was called through its Backend (as for the kit's NumPy noise)
    text = f"{type(err).__name__}: {err}"
    did = None
    for packages, entries in others.items():
        in_foreign = any(path.startswith(d) for path in files for d in _package_dirs(packages))
        words = any(e.error_words is not None and e.error_words.search(text) for e in entries)
        if in_foreign or (isinstance(err, _ERROR_TYPES) and words):
            did = f"called {packages[0]} on the {backend} backend's values"
            break
    if did is None:
        if (isinstance(err, _ERROR_TYPES) and own.numpy_conversion is not None
                and own.numpy_conversion.search(text)):
            did = f"converted the {backend} backend's values to NumPy"
        else:
            return None
    where = _culprit(frames)
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if len(first) > 300:
        first = first[:297] + "..."
    return f"{'the code at ' + where if where else 'the code under test'} {did} ({type(err).__name__}: {first})"


# ---- helpers ----------------------------------------------------------------------------

def checked_backends(backends: Iterable[str] | None) -> list[str]:
    """The backends a check series runs on: ``backends`` as given (registered names), or by
    default every registered backend that is installed."""
    backends = available_backends() if backends is None else list(backends)
    known = backend_names()
    if not backends or any(b not in known for b in backends):
        raise ValueError(f"backends must be a non-empty list of registered backends ({', '.join(known)}), "
                         f"got {backends!r}")
    return backends


def _split_backends(backends: Iterable[str]) -> tuple[list[str], list[str]]:
    have = set(available_backends())
    return [b for b in backends if b in have], [b for b in backends if b not in have]


def compared_backends(requested: list[str]) -> tuple[str | None, list[str]]:
    """(the reference backend, the requested backends compared with it): parity runs only when
    the reference is among the requested ones."""
    reference = reference_backend()
    if reference not in requested:
        return None, []
    return reference, [b for b in requested if b != reference]


def run_series(series) -> list[CheckResult]:
    """Every check of ``series`` that is not skipped, in order (the all-in-one calls), then the
    report of backends that are not installed."""
    results: list[CheckResult] = []
    for check in series:
        if not check.skipped:
            results += check()
    _report_missing(series.missing, series.ran, series.ctx.what)
    return results


def _report_missing(missing: list[str], ran: list[str], what: str) -> None:
    if not missing:
        return
    hints = [f"{b}: {backend_entry(b).install_hint}" for b in missing if backend_entry(b).install_hint]
    message = (f"{what}: backend{'s' if len(missing) > 1 else ''} {', '.join(missing)} not installed, "
               f"so not checked (checked: {', '.join(ran) or 'none'}); install it to check it"
               + (f" ({'; '.join(hints)})" if hints else ""))
    if "pytest" in sys.modules:
        import pytest

        pytest.skip(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _shape(x) -> tuple:
    return tuple(int(s) for s in getattr(x, "shape", ()))


def _finite(x) -> bool:
    return bool(np.all(np.isfinite(np.asarray(x, dtype=np.float64))))


def _close(a, b, rtol: float, atol: float) -> tuple[bool, str]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False, f"shapes differ: {a.shape} vs {b.shape}"
    if a.size == 0:
        return True, ""
    diff = np.abs(a - b)
    bad = diff > atol + rtol * np.abs(b)
    if not bad.any():
        return True, ""
    i = np.unravel_index(int(np.argmax(diff - atol - rtol * np.abs(b))), a.shape)
    return False, (f"{int(bad.sum())} of {a.size} entries differ beyond |a - b| <= {atol:g} + {rtol:g}|b|; "
                   f"worst at index {list(map(int, i))}: {a[i]!r} vs {b[i]!r} (max |a - b| = {diff.max():.3g})")


def _flat_state(tree, prefix="state") -> dict[str, Any]:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flat_state(v, f"{prefix}[{k!r}]"))
        return out
    if isinstance(tree, (list, tuple)):
        out = {}
        for i, v in enumerate(tree):
            out.update(_flat_state(v, f"{prefix}[{i}]"))
        return out
    return {prefix: tree}
