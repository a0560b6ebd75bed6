"""Loading results folders into tidy frames (files only: nothing is computed by the harness).

`load_results(paths)` accepts any mix of:

* ``gradest run`` folders: ``results.csv`` (one row per cell record of the folder) and
  ``history.csv`` (training histories); when ``results.csv`` is missing or damaged (a sweep
  killed before it consolidated, a hand edit), the per-cell records under ``cells/`` are read
  instead, with the record schema of `gradest.sweep.store`, and the problem is reported; with
  ``current_only`` the rows of the folder's last run (``current_run``, or the cell keys of
  ``manifest.json``);
* asv results (``.asv``, ``.asv/results``, a machine folder, or one result file): see
  `gradest.reports.asv_results`.

and returns a `Results` with the frames ``cells``, ``history`` and ``asv`` (each with a
``source`` column naming the folder it came from). Where one task ran with several option sets
(a preset's two targets of ``binary_toy``, a sweep's two data sets), its ``task`` column names
the options that tell them apart, e.g. ``binary_toy[target=0.499]`` (`distinguish_task_variants`):
each is its own task in every table and figure.
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
    #: what could not be read as it should (shown on the report's page)
    problems: list = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.cells.empty and self.history.empty and self.asv.empty


def is_run_folder(path) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / "results.csv").exists() or (path / "cells").is_dir())


def load_run_folder(path, current_only: bool = False, problems: list | None = None
                    ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(cells, history, manifest) of one ``gradest run`` folder."""
    from gradest.sweep.store import load_records, rows_and_histories

    path = Path(path)
    problems = [] if problems is None else problems
    manifest = {}
    if (path / "manifest.json").exists():
        try:
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        except ValueError:
            problems.append(f"{path / 'manifest.json'} is damaged and was ignored")
    cells = history = None
    if (path / "results.csv").exists():
        try:
            cells = _read_csv(path / "results.csv")
            history = _read_csv(path / "history.csv") if (path / "history.csv").exists() else pd.DataFrame()
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
            problems.append(f"{path / 'results.csv'} or history.csv is damaged ({type(err).__name__}); the report "
                            f"was built from the cell records in {path / 'cells'} (the next `gradest run` rewrites it)")
            cells = None
    if cells is None:
        keys = set(manifest.get("cell_keys", []))
        cells, history = rows_and_histories(load_records(path / "cells"), keys if keys else None)
    if current_only:
        cells, history = _current(cells, history, manifest)
    return cells, history, manifest


def _current(cells: pd.DataFrame, history: pd.DataFrame, manifest: dict):
    if cells.empty:
        return cells, history
    if "current_run" in cells.columns:
        mask = cells["current_run"].astype(str).str.lower().isin(["true", "1"])
    elif manifest.get("cell_keys"):
        mask = cells["key"].isin(manifest["cell_keys"])
    else:
        return cells, history
    keys = set(cells.loc[mask, "key"])
    if history is not None and not history.empty and "key" in history.columns:
        history = history[history["key"].isin(keys)]
    return cells[mask], history


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def load_results(paths: Iterable, current_only: bool = False) -> Results:
    """Concatenate the frames of every results folder / asv path in ``paths`` (``current_only``:
    each folder's last run)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    cells, histories, asvs, sources, manifests, problems = [], [], [], [], [], []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise ValueError(f"no such results folder or file: {path}")
        found = False
        if is_run_folder(path):
            c, h, m = load_run_folder(path, current_only, problems)
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
    cells, history = distinguish_task_variants(_concat(cells), _concat(histories))
    return Results(cells, history, _concat(asvs), sources, manifests, problems)


def distinguish_task_variants(cells: pd.DataFrame, history: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Relabel ``task`` where a task name has rows of one kind with different ``task_options``: the name
    with the options whose values differ among them (`gradest.labels.make_label`); the history
    follows through the cell ``key``."""
    from gradest.labels import make_label

    if cells.empty or "task_options" not in cells.columns or "task" not in cells.columns:
        return cells, history
    cells = cells.copy()
    options = cells["task_options"].map(_options)
    by = [cells["kind"], cells["task"]] if "kind" in cells.columns else [cells["task"]]
    for group, part in options.groupby(by):  # per kind: a kind's own sweep of an option is its axis
        name = group[-1] if isinstance(group, tuple) else group
        distinct = {json.dumps(o, sort_keys=True) for o in part}
        if len(distinct) < 2:
            continue
        keys = sorted({k for o in part for k in o})
        differing = [k for k in keys if len({json.dumps(o.get(k), sort_keys=True) for o in part}) > 1]
        for index, opts in part.items():
            shown = {k: _scalar(opts.get(k)) for k in differing}
            cells.at[index, "task"] = make_label(name, shown)
    if not history.empty and "key" in history.columns and "key" in cells.columns:
        relabel = dict(zip(cells["key"], cells["task"]))
        history = history.copy()
        history["task"] = history["key"].map(relabel).fillna(history.get("task"))
    return cells, history


def _options(text) -> dict:
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text) if isinstance(text, str) and text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _scalar(value):
    """A one-element list as its element (``target=[0.45]`` reads ``target=0.45``)."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _concat(frames: list) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and len(f.columns)]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True, sort=False)
