"""The memory guard: arrays that cannot fit are refused before any work.

* `available_bytes() -> int`: the memory this process can still take without swapping
  (``psutil.virtual_memory().available``; without psutil, ``os.sysconf``'s free physical
  pages, which undercounts the page cache and so refuses early rather than late);
* `require(nbytes, what, fix)`: raise `InsufficientMemoryError` naming ``what`` needs
  ``nbytes``, how much is available, and ``fix``, when ``nbytes`` exceeds `available_bytes`.
  Requests up to `UNCHECKED_BYTES` pass without asking the system (asking costs 0.1-0.5 ms,
  which a loop of small calls would feel).

The callers (`gradest.sampler`) state what they will allocate: the [R, P] float64 array of
`gradest.gradient_samples` (R·P·8 bytes, on the host), and one chunk of a compiled call (the
chunk times `gradest.binding.replicate_bytes`, the same per-replicate estimate that
`gradest.binding.auto_chunk` budgets with), checked where the chunk lives in host memory
(device ``cpu``; an accelerator's own memory is not queried here).
"""
from __future__ import annotations

import os
from typing import Callable

__all__ = ["InsufficientMemoryError", "available_bytes", "require", "format_bytes", "UNCHECKED_BYTES"]

#: requests of at most this many bytes are not checked
UNCHECKED_BYTES = 64 * 2**20


class InsufficientMemoryError(ValueError, MemoryError):
    """An array that cannot fit in the available memory, refused before the work that would
    allocate it (a ValueError: the input asks for too much)."""


def available_bytes() -> int:
    """Bytes of memory available to this process now (see the module docstring)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency of the environment
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    return int(psutil.virtual_memory().available)


def format_bytes(nbytes: float) -> str:
    """``nbytes`` in the largest binary unit that keeps it above 1 (e.g. ``4.7 GiB``)."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def require(nbytes: int, what: str, fix: str | Callable[[int], str]) -> None:
    """Refuse (`InsufficientMemoryError`) when ``nbytes`` exceed the available memory: the
    message says ``what`` needs about ``nbytes``, what is available, and ``fix`` (a string, or
    a function of the available bytes that returns one, e.g. naming the largest size that fits)."""
    if nbytes <= UNCHECKED_BYTES:
        return
    available = available_bytes()
    if nbytes > available:
        fix = fix(available) if callable(fix) else fix
        raise InsufficientMemoryError(f"{what} needs about {format_bytes(nbytes)}, but only "
                                      f"{format_bytes(available)} of memory is available; {fix}")
