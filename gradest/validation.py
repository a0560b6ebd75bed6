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


def positive_entries(name: str, arr: np.ndarray, owner: str = "", meaning: str = "") -> np.ndarray:
    """``arr`` (a 1-D float array) when every entry is > 0; else a ValueError naming the first
    entry that is not, its index, and what the option is (``meaning``, e.g. "a Gamma's shape")."""
    bad = np.flatnonzero(~(arr > 0))
    if bad.size:
        where = f" of {owner}" if owner else ""
        what = f" ({meaning})" if meaning else ""
        raise ValueError(f"option {name!r}{where} must be positive{what}, got {float(arr[bad[0]]):g} at index "
                         f"{int(bad[0])}; give numbers > 0")
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


def integer(name: str, value, minimum: int = 1, owner: str = "") -> int:
    """``value`` as an int >= ``minimum`` (bools refused), or a ValueError naming the option."""
    import numbers

    where = f" of {owner}" if owner else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name}{where} must be {kind}, got {value!r}")
    return int(value)


def optional_integer(name: str, value, default: int, minimum: int = 1, owner: str = "") -> int:
    return default if value is None else integer(name, value, minimum, owner)


def flat_params(task, params) -> np.ndarray:
    """θ for ``task``: ``task.init_params()`` when ``params`` is None, else ``params`` checked to
    be a finite flat vector of ``task.num_params`` entries (float64)."""
    if params is None:
        return np.asarray(task.init_params(), dtype=np.float64)
    try:
        theta = np.asarray(params, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"params must be a flat vector of {task.num_params} numbers for task "
                         f"{task.name!r}, got {type(params).__name__}") from err
    if theta.shape != (task.num_params,):
        raise ValueError(f"params must be a flat vector of {task.num_params} entries for task "
                         f"{task.name!r}, got shape {theta.shape}")
    return finite("params", theta, owner=f"task {task.name!r}")


def seed(value, name: str = "seed") -> int:
    """A seed: an integer in 0 .. 2**31 - 1 (the range JAX keys take)."""
    s = integer(name, value, minimum=0)
    if s > 2**31 - 1:
        raise ValueError(f"{name} must be at most 2**31 - 1 = {2**31 - 1}, got {value!r}")
    return s
