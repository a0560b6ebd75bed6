"""The caches of gradest: what is built once per key and reused, and the one `clear` that
empties them all.

The main cache, `CACHE`, holds compiled functions (a sampling kernel, a training step, a
task's exact loss), one per *trace key*. A key says what determines a trace: the task (class
and options, `task_key`), the estimator (`estimator_key`: name, label, the code behind its
surrogate), the backend, device and dtype (`backend_key`), and the caller's shape parameters
(S, chunk size, noise layout, batch shapes: `shape_signature`). θ, the seed, the first
replicate and the learning rate are arguments of what is cached, never constants in it, so
``gradest.gradient_samples(..., params=θ', seed=1)`` after ``gradest.gradient_samples(...)``
compiles nothing new.

Other caches of built objects (the recent samplers of `gradest.gradient_samples`, a task
family's compiled metrics) are *named caches* made here with `lru(name, max_entries)`: this
module owns them without importing the modules that fill them, so that

* `clear` (``gradest.clear_compile_cache()``) empties `CACHE` and every named cache: nothing
  built stays alive (clear it to free the memory held by a large data set's functions);
* `info` (``gradest.compile_cache_info()``) counts entries, hits and misses of `CACHE`, and of
  each named cache under ``"caches"``.

Every cache is a `BoundedCache`: a thread-safe LRU map key -> built object; the least recently
used entry goes first. `CACHE` keeps `MAX_ENTRIES` (the environment variable
``GRADEST_COMPILE_CACHE_SIZE``, default 128).

This module is of the ground floor: it imports nothing of gradest, so that plugins (tasks,
estimators) may register their caches here. ``gradest.compiled`` is its former name, kept as an
alias.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

import numpy as np

__all__ = ["BoundedCache", "CompiledCache", "CACHE", "MAX_ENTRIES", "lru", "clear", "info", "task_key",
           "estimator_key", "backend_key", "shape_signature"]

MAX_ENTRIES = int(os.environ.get("GRADEST_COMPILE_CACHE_SIZE", "128"))


class BoundedCache:
    """A thread-safe LRU map key -> built object (a compiled kernel, a training step, a sampler)
    of at most ``max_entries`` entries."""

    def __init__(self, max_entries: int = MAX_ENTRIES, name: str = "compiled"):
        if max_entries < 1:
            raise ValueError(f"the cache {name!r} needs at least one entry, got max_entries={max_entries}")
        self.name = name
        self.max_entries = max_entries
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.RLock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, build: Callable[[], Any]):
        """The object cached under ``key``, built by ``build()`` on a miss."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key]
        value = build()  # outside the lock: a build may use the cache itself
        with self._lock:
            self.misses += 1
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def info(self) -> dict:
        with self._lock:
            return {"entries": len(self._entries), "max_entries": self.max_entries,
                    "hits": self.hits, "misses": self.misses}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key) -> bool:
        return key in self._entries


#: the former name of `BoundedCache`
CompiledCache = BoundedCache

#: the compiled functions, one per trace key
CACHE = BoundedCache()

#: the named caches (`lru`), emptied by `clear` with `CACHE`
_NAMED: dict[str, BoundedCache] = {}
_NAMED_LOCK = threading.Lock()


def lru(name: str, max_entries: int) -> BoundedCache:
    """The named cache ``name`` (made on first call with ``max_entries`` entries), owned by this
    module: `clear` empties it and `info` counts it. For a module's cache of built objects
    (e.g. ``_METRICS = gradest.cache.lru("vae_metrics", 64)``)."""
    with _NAMED_LOCK:
        cache = _NAMED.get(name)
        if cache is None:
            cache = _NAMED[name] = BoundedCache(max_entries, name=name)
        return cache


def clear() -> None:
    """Empty `CACHE` and every named cache (the next calls build and compile again)."""
    CACHE.clear()
    with _NAMED_LOCK:
        named = list(_NAMED.values())
    for cache in named:
        cache.clear()


def info() -> dict:
    """``{"entries", "max_entries", "hits", "misses"}`` of the compiled functions (`CACHE`), and
    ``"caches"``: ``{name: the same four}`` of each named cache."""
    with _NAMED_LOCK:
        named = dict(_NAMED)
    return dict(CACHE.info(), caches={name: cache.info() for name, cache in sorted(named.items())})


# ---- keys -------------------------------------------------------------------------------------
def _canonical(value, depth: int = 0) -> str:
    """A deterministic text of a value: containers by their items, arrays by content, plain
    objects by their attributes. An object whose text would name its address (functions,
    framework objects) gives a text unique to it, so that it can never match another."""
    if depth > 6:
        return f"deep@{id(value)}"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "{" + ",".join(f"{k!r}:{_canonical(v, depth + 1)}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return type(value).__name__ + "[" + ",".join(_canonical(v, depth + 1) for v in value) + "]"
    if isinstance(value, np.ndarray):
        return f"array{value.shape}{value.dtype}:{hashlib.sha1(np.ascontiguousarray(value).tobytes()).hexdigest()}"
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes, np.generic)):
        return repr(value)
    attributes = getattr(value, "__dict__", None)
    if attributes is not None and not callable(value):
        return f"{type(value).__qualname__}({_canonical(attributes, depth + 1)})"
    text = repr(value)
    return f"{text}@{id(value)}" if " at 0x" in text or text.startswith("<") else text


def task_key(task) -> tuple:
    """What of a task determines a trace: its class and its attributes (options, data by
    content), so two tasks built alike share compiled functions and any difference — an
    option, a data array, a setting its options do not name — keeps them apart.

    Computed once per task object (a task does not change after it is built)."""
    cached = getattr(task, "_gradest_trace_key", None)
    if cached is not None:
        return cached
    cls = type(task)
    attributes = {k: v for k, v in vars(task).items() if not k.startswith("_gradest")}
    key = (cls.__module__, cls.__qualname__, task.name, hashlib.sha1(_canonical(attributes).encode()).hexdigest())
    try:
        task._gradest_trace_key = key
    except AttributeError:  # a task that forbids attributes: recomputed each time
        pass
    return key


#: id -> (estimator, key) of recent estimators; the estimator is kept, so its id is not reused
_ESTIMATOR_KEYS = lru("estimator_keys", 256)


def estimator_key(est) -> tuple:
    """What of an estimator determines a trace: name, label and the code of its functions."""
    def build():
        fns = (est.init, est.surrogate, est.noise_spec, est.phi_loss)
        code = tuple(f"{getattr(f, '__module__', '')}.{getattr(f, '__qualname__', '')}" for f in fns if f is not None)
        return est, (est.name, est.label, code, est.update_state, est.requires_exact)

    return _ESTIMATOR_KEYS.get(id(est), build)[1]


def backend_key(B) -> tuple:
    key = getattr(B, "_gradest_key", None)
    if key is None:
        key = (B.name, B.device, B.dtype, repr(B))
        try:
            B._gradest_key = key
        except AttributeError:
            pass
    return key


def shape_signature(tree) -> Hashable:
    """A hashable description of the shapes and dtypes in a tree of arrays (e.g. a batch)."""
    if tree is None:
        return None
    if isinstance(tree, dict):
        return tuple((k, shape_signature(v)) for k, v in sorted(tree.items()))
    if isinstance(tree, (list, tuple)):
        return tuple(shape_signature(v) for v in tree)
    shape = getattr(tree, "shape", None)
    if shape is not None:
        return ("array", tuple(shape), str(getattr(tree, "dtype", "")))
    return ("value", repr(tree))
