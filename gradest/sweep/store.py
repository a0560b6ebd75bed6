"""The results folder: a store of cell records that never loses one.

Layout of a results folder (default ``results/``)::

    cells/<key>.json   one record per finished cell (status done | skipped | failed): the truth
    results.csv        one row per record in cells/ (every run's), column current_run
    history.csv        training histories, long format, with the identification columns
    manifest.json      the last run: arguments, the budget that ran, versions, its cell keys
    runs.jsonl         one line per run (id, time, command line, cell counts), appended

* Every file is written atomically (a temporary file in the same folder, then ``os.replace``),
  so no reader ever sees a partial file. A cell's record is written when the cell finishes, by
  the process that runs the sweep (with Dask, the client: one writer, so each finished cell is
  stored exactly once, whatever worker computed it).
* Runs add records; none is replaced except by the same cell run again (a failed cell, or the
  same settings with other code: then it has another key). ``results.csv`` and
  ``history.csv`` are rebuilt from ``cells/`` at the end of each run, listing every record in
  the folder with the run that made it; ``current_run`` marks the cells of the last run,
  reused ones included. The report shows the current run by default.
* A damaged record (unreadable JSON, which only a hand edit or a full disk can make) is
  reported once, as a `RuntimeWarning` naming the file, and its cell is recomputed.

The record schema (`record_row`, `record_history`, `ID_COLUMNS`) is shared with the report
(`gradest.reports.load`), which reads ``results.csv`` or, when it is missing or damaged,
these records.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from gradest.sweep.cells import Cell, canonical

__all__ = ["ResultStore", "atomic_write_text", "atomic_write_csv", "record_row", "record_history", "ID_COLUMNS",
           "load_records", "scalar", "rows_and_histories"]

#: the columns identifying a cell in results.csv and history.csv; ``estimator`` is the variant's
#: label as every table and figure shows it (``reinforce[baseline=loo]``), ``estimator_name`` the
#: registered name alone (``reinforce``, `Cell.estimator`)
ID_COLUMNS = ("key", "kind", "task", "estimator", "estimator_name", "backend", "device", "seed", "num_samples")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_text(path, frame.to_csv(index=False))


def scalar(value):
    """A JSON/CSV-friendly scalar (numpy numbers -> Python; arrays -> lists)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _to_json(obj) -> str:
    from gradest.sweep.cells import _json_default

    return json.dumps(obj, default=_json_default, allow_nan=True, indent=1)


def record_row(record: dict) -> dict:
    """The results.csv row of a cell record: identification, status, the kind's settings, then
    the measured numbers."""
    cell = record["cell"]
    row = {
        "key": record["key"], "kind": cell["kind"], "task": cell["task"], "estimator": record["label"],
        "estimator_name": cell["estimator"], "backend": cell["backend"], "device": cell["device"],
        "seed": cell["seed"], "num_samples": cell["num_samples"], "status": record["status"],
        "reason": record.get("reason", ""), "elapsed_s": record.get("elapsed_s"), "cpu_s": record.get("cpu_s"),
        "run": record.get("run", ""), "finished_at": record.get("finished_at", ""),
        "task_options": canonical(cell["task_options"]), "estimator_options": canonical(cell["estimator_options"]),
        "noise_version": cell.get("noise_version"), "code_fingerprint": cell.get("code"),
    }
    for key, value in cell["settings"].items():
        row.setdefault(key, value)
    for key, value in (record.get("row") or {}).items():
        if isinstance(value, (list, dict)):
            value = canonical(value)
        row.setdefault(key, value)
    return row


def record_history(record: dict) -> pd.DataFrame | None:
    """The history of a cell record in long format: the identification columns and the kind's
    settings (``delta``, ``temperature``, ...) in front of the logged columns."""
    hist = record.get("history")
    if not hist or not hist.get("columns"):
        return None
    frame = pd.DataFrame(hist["data"], columns=hist["columns"])
    cell = record["cell"]
    ids = {"key": record["key"], "kind": cell["kind"], "task": cell["task"], "estimator": record["label"],
           "estimator_name": cell["estimator"], "backend": cell["backend"], "device": cell["device"],
           "seed": cell["seed"], "num_samples": cell["num_samples"], "run": record.get("run", "")}
    for key, value in cell["settings"].items():
        if not isinstance(value, (list, dict)):
            ids.setdefault(key, value)
    for i, (k, v) in enumerate(ids.items()):
        if k in frame.columns:
            frame = frame.drop(columns=k)
        frame.insert(i, k, v)
    return frame


def load_records(folder: Path, *, warn: bool = True) -> list[dict]:
    """Every readable record under ``folder`` (``cells/``), sorted by key; a damaged one is
    reported (``warn``) and left out."""
    out = []
    for file in sorted(Path(folder).glob("*.json")):
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
            record["cell"], record["key"], record["status"]  # noqa: B018 -- the schema's fields
        except (OSError, ValueError, KeyError, TypeError) as err:
            if warn:
                _warn_damaged(file, err)
            continue
        out.append(record)
    return out


_WARNED: set = set()


def _warn_damaged(file: Path, err) -> None:
    key = (str(file), file.stat().st_mtime_ns if file.exists() else 0)
    if key in _WARNED:
        return
    _WARNED.add(key)
    warnings.warn(f"gradest: the cell record {file} is damaged ({type(err).__name__}: {err}); it is ignored, "
                  f"and its cell is computed again when a sweep asks for it", RuntimeWarning, stacklevel=3)


def rows_and_histories(records: Iterable[dict], current: set | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results frame, history frame) of ``records``; ``current``: the keys of the last run."""
    rows, histories = [], []
    for record in records:
        row = record_row(record)
        if current is not None:
            row["current_run"] = record["key"] in current
        rows.append(row)
        hist = record_history(record)
        if hist is not None:
            histories.append(hist)
    results = pd.DataFrame(rows)
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame(columns=list(ID_COLUMNS))
    return results, history


class ResultStore:
    """A results folder (see the module docstring)."""

    def __init__(self, root):
        self.root = Path(root)
        self.cells_dir = self.root / "cells"

    def cell_path(self, cell: Cell) -> Path:
        return self.cells_dir / f"{cell.key}.json"

    def load_cell(self, cell: Cell) -> dict | None:
        """The record of ``cell`` when one was written with the same settings, else None (a
        damaged file is reported once and treated as missing)."""
        path = self.cell_path(cell)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            _warn_damaged(path, err)
            return None
        if not isinstance(record, dict) or record.get("cell") != json.loads(canonical(cell.spec())):
            return None
        return record

    def save_cell(self, cell: Cell, outcome: dict, run: str = "") -> dict:
        history = outcome.get("history")
        record = {
            "key": cell.key, "cell": json.loads(canonical(cell.spec())), "status": outcome["status"],
            "noise_version": cell.noise_version, "code_fingerprint": cell.code, "run": run,
            "reason": outcome.get("reason", ""), "traceback": outcome.get("traceback", ""),
            "label": outcome.get("label") or cell.label,
            "elapsed_s": outcome.get("elapsed_s", math.nan), "cpu_s": outcome.get("cpu_s", math.nan),
            "worker": outcome.get("worker", ""),
            "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "row": outcome.get("row") or {},
            "history": None if history is None else json.loads(
                pd.DataFrame(history).to_json(orient="split", index=False, double_precision=15)),
        }
        atomic_write_text(self.cell_path(cell), _to_json(record))
        return record

    def consolidate(self, current: Iterable[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Rebuild results.csv and history.csv from every record in ``cells/`` (atomically);
        ``current``: the keys of the run that just ran (column ``current_run``)."""
        results, history = rows_and_histories(load_records(self.cells_dir), set(current))
        atomic_write_csv(self.root / "results.csv", results)
        atomic_write_csv(self.root / "history.csv", history)
        return results, history

    def write_manifest(self, manifest: dict) -> None:
        atomic_write_text(self.root / "manifest.json", _to_json(manifest))

    def append_run(self, entry: dict) -> None:
        """One line in runs.jsonl (rewritten atomically with the earlier lines)."""
        path = self.root / "runs.jsonl"
        before = path.read_text(encoding="utf-8") if path.exists() else ""
        atomic_write_text(path, before + json.dumps(entry, default=str) + "\n")
