"""Loading results folders into tidy frames (files only: nothing is computed by the harness).

`load_results(paths)` accepts any mix of:

* ``gradest run`` folders: ``results.csv`` (one row per cell) and ``history.csv`` (training
  histories); when ``results.csv`` is missing (a sweep killed before it consolidated), the
  per-cell records under ``cells/`` are read instead;
* asv results (``.asv``, ``.asv/results``, a machine folder, or one result file): see
  `gradest.reports.asv_results`.

and returns a `Results` with the frames ``cells``, ``history`` and ``asv`` (each with a
``source`` column naming the folder it came from).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import pandas as pd

from gradest.reports.asv_results import is_asv_path, load_asv


@dataclass
class Results:
    cells: pd.DataFrame = field(default_factory=pd.DataFrame)
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    asv: pd.DataFrame = field(default_factory=pd.DataFrame)
    sources: list = field(default_factory=list)
    manifests: list = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.cells.empty and self.history.empty and self.asv.empty


def is_run_folder(path) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / "results.csv").exists() or (path / "cells").is_dir())


def load_run_folder(path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(cells, history, manifest) of one ``gradest run`` folder."""
    path = Path(path)
    manifest = {}
    if (path / "manifest.json").exists():
        try:
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        except ValueError:
            manifest = {}
    if (path / "results.csv").exists():
        cells = _read_csv(path / "results.csv")
        history = _read_csv(path / "history.csv") if (path / "history.csv").exists() else pd.DataFrame()
    else:
        cells, history = _from_cell_records(path / "cells")
    return cells, history, manifest


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _from_cell_records(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows and histories from the per-cell JSON records (the sweep's format)."""
    rows, histories = [], []
    for file in sorted(folder.glob("*.json")):
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
            cell = record["cell"]
        except (OSError, ValueError, KeyError):
            continue
        ids = {"key": record.get("key", file.stem), "kind": cell.get("kind"), "task": cell.get("task"),
               "estimator": record.get("label") or cell.get("estimator"), "estimator_name": cell.get("estimator"),
               "backend": cell.get("backend"), "device": cell.get("device"), "seed": cell.get("seed"),
               "num_samples": cell.get("num_samples")}
        row = {**ids, "status": record.get("status"), "reason": record.get("reason", ""),
               "elapsed_s": record.get("elapsed_s")}
        row.update({k: v for k, v in (cell.get("settings") or {}).items() if k not in row})
        row.update({k: v for k, v in (record.get("row") or {}).items()
                    if k not in row and not isinstance(v, (list, dict))})
        rows.append(row)
        hist = record.get("history")
        if hist and hist.get("columns"):
            frame = pd.DataFrame(hist["data"], columns=hist["columns"])
            extra = dict(ids)
            if "delta" in (cell.get("settings") or {}):
                extra["delta"] = cell["settings"]["delta"]
            for i, (k, v) in enumerate(extra.items()):
                if k in frame.columns:
                    frame = frame.drop(columns=k)
                frame.insert(i, k, v)
            histories.append(frame)
    return pd.DataFrame(rows), (pd.concat(histories, ignore_index=True) if histories else pd.DataFrame())


def load_results(paths: Iterable) -> Results:
    """Concatenate the frames of every results folder / asv path in ``paths``."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    cells, histories, asvs, sources, manifests = [], [], [], [], []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise ValueError(f"no such results folder or file: {path}")
        found = False
        if is_run_folder(path):
            c, h, m = load_run_folder(path)
            cells.append(c.assign(source=str(path)))
            histories.append(h.assign(source=str(path)))
            manifests.append({"source": str(path), **m})
            found = True
        asv_path = (path / ".asv") if found else path
        if asv_path.exists() and is_asv_path(asv_path):
            asvs.append(load_asv(asv_path).assign(source=str(asv_path)))
            found = True
        if not found:
            raise ValueError(f"{path} is neither a `gradest run` results folder (results.csv or cells/) nor "
                             f"asv results (.asv/results, a machine folder or a <commit>-<env>.json file)")
        sources.append(str(path))
    return Results(_concat(cells), _concat(histories), _concat(asvs), sources, manifests)


def _concat(frames: list) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and len(f.columns)]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True, sort=False)
