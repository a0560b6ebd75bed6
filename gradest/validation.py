"""Checks of user input that fail early with a message naming the problem and the fix."""
from __future__ import annotations

import numpy as np


def vector(name: str, value, *, length: int | None = None, owner: str = "") -> np.ndarray:
    """``value`` as a finite 1-D float array (a scalar is broadcast when ``length`` is known)."""
    where = f" of {owner}" if owner else ""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"option {name!r}{where} must be a list of numbers, got {value!r}") from err
    if arr.ndim == 0 and length is not None:
        arr = np.full(length, float(arr))
    if arr.ndim != 1:
        raise ValueError(f"option {name!r}{where} must be a 1-D list of numbers, got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"option {name!r}{where} must have {length} entries (one per coordinate), got {arr.shape[0]}")
    if arr.shape[0] == 0:
        raise ValueError(f"option {name!r}{where} must not be empty")
    finite(name, arr, owner)
    return arr


def finite(name: str, arr, owner: str = "") -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        where = f" of {owner}" if owner else ""
        raise ValueError(f"{name}{where} has {int(bad.sum())} non-finite (NaN or inf) entries, e.g. at "
                         f"index {np.argwhere(bad)[0].tolist()}; give finite numbers")
    return arr


def positive(name: str, value, owner: str = "") -> float:
    where = f" of {owner}" if owner else ""
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"option {name!r}{where} must be a positive number, got {value!r}") from err
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"option {name!r}{where} must be a positive number, got {value!r}")
    return v


def choice(name: str, value, choices, owner: str = ""):
    if value not in choices:
        where = f" of {owner}" if owner else ""
        raise ValueError(f"option {name!r}{where} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
