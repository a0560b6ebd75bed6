"""The former name of `gradest.cache` (the caches of compiled functions and built objects),
kept so that ``gradest.compiled.CACHE``, ``gradest.compiled.clear()`` and the key functions
keep working: every name here is `gradest.cache`'s own object."""
from __future__ import annotations

from gradest.cache import (CACHE, MAX_ENTRIES, BoundedCache, CompiledCache, backend_key, clear,
                           estimator_key, info, lru, shape_signature, task_key)

__all__ = ["BoundedCache", "CompiledCache", "CACHE", "MAX_ENTRIES", "lru", "clear", "info", "task_key",
           "estimator_key", "backend_key", "shape_signature"]
