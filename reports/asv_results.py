"""A thin, tolerant loader of asv's results files into one tidy frame.

asv writes, under its ``results_dir`` (gradest: ``.asv/results``)::

    benchmarks.json                        what each benchmark is: type, unit, param_names
    <machine>/machine.json                 the machine's description
    <machine>/<commit[:8]>-<env>.json      one run: results of every benchmark at one commit

A result file of format version 2 (asv >= 0.5) stores, per benchmark, a row of values in the
order of its ``"result_columns"`` (``result``, ``params``, ``version``, ``started_at``,
``duration``, ``stats_ci_99_a``, ``stats_ci_99_b``, ``stats_q_25``, ``stats_q_75``,
``stats_number``, ``stats_repeat``, ``samples``, ``profile``; trailing empty columns are
dropped). ``result`` is one value per combination of the benchmark's ``params`` (the
cartesian product, first parameter slowest), or null when the benchmark failed as a whole.
A null value is a failed combination and NaN a skipped one; both are kept here as missing
values (``status`` failed / skipped), never as errors. Version 1 files (a dict per
benchmark with ``result`` and ``params``) are read too.

`load_asv(path)` returns one row per benchmark x parameter combination x result file:
``benchmark, type, unit, params (text), <one column per parameter name>, value, status,
ci_low, ci_high, commit, date, machine, env, file``. It reads files only.
"""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pandas as pd

ASV_COLUMNS = ["benchmark", "type", "unit", "params", "value", "status", "ci_low", "ci_high",
               "q_25", "q_75", "commit", "date", "machine", "env", "file"]
_SKIP_FILES = {"benchmarks.json", "machine.json"}


def is_asv_path(path) -> bool:
    """Whether ``path`` looks like asv results: a result file, a results dir, a machine dir or
    a folder holding ``.asv/results``."""
    path = Path(path)
    if path.is_file():
        return path.suffix == ".json" and _looks_like_result(_read_json(path))
    if not path.is_dir():
        return False
    return _results_root(path) is not None


def load_asv(path) -> pd.DataFrame:
    """The tidy frame of every asv result file under ``path`` (or of the file ``path``)."""
    path = Path(path)
    if path.is_file():
        files = [path]
        meta = _benchmark_meta(path.parent.parent)
    else:
        root = _results_root(path)
        if root is None:
            raise ValueError(f"{path} holds no asv results (no <machine>/<commit>-<env>.json files); "
                             f"give asv's results folder, e.g. .asv/results")
        files = sorted(_result_files(root))
        meta = _benchmark_meta(root)
    rows: list[dict] = []
    for file in files:
        data = _read_json(file)
        if not _looks_like_result(data):
            continue
        rows.extend(_rows_of_file(file, data, meta))
    frame = pd.DataFrame(rows)
    for col in ASV_COLUMNS:
        if col not in frame.columns:
            frame[col] = pd.Series(dtype="object")
    if len(frame):
        frame["date"] = pd.to_datetime(frame["date"], unit="ms", errors="coerce")
        frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    return frame


# ---------------------------------------------------------------------------------------


def _read_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))  # NaN tokens are accepted
    except (OSError, ValueError):
        return None


def _looks_like_result(data) -> bool:
    return isinstance(data, dict) and "results" in data and ("commit_hash" in data or "params" in data)


def _results_root(path: Path) -> Path | None:
    """The folder whose subfolders (or itself) hold result files."""
    for candidate in (path / ".asv" / "results", path / "results", path):
        if candidate.is_dir() and any(_looks_like_result(_read_json(f)) for f in _result_files(candidate)):
            return candidate
    return None


def _result_files(root: Path):
    for file in list(root.glob("*.json")) + list(root.glob("*/*.json")):
        if file.name not in _SKIP_FILES:
            yield file


def _benchmark_meta(root: Path) -> dict:
    """benchmarks.json of the results tree (in ``root`` or its parent), or {}."""
    for candidate in (root / "benchmarks.json", root.parent / "benchmarks.json"):
        data = _read_json(candidate) if candidate.exists() else None
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if isinstance(v, dict)}
    return {}


def _entries(data: dict):
    """(name, {column: value}) per benchmark, for format versions 1 and 2."""
    columns = data.get("result_columns")
    for name, value in (data.get("results") or {}).items():
        if columns is not None and isinstance(value, list):
            entry = dict(zip(columns, value))
        elif isinstance(value, dict):  # version 1
            entry = dict(value)
            stats = entry.get("stats")
            if isinstance(stats, list):
                entry["stats_ci_99_a"] = [s.get("ci_99", [None, None])[0] if isinstance(s, dict) else None
                                          for s in stats]
                entry["stats_ci_99_b"] = [s.get("ci_99", [None, None])[1] if isinstance(s, dict) else None
                                          for s in stats]
        else:  # version 1, a bare number
            entry = {"result": value, "params": []}
        yield name, entry


def _as_list(value, n: int) -> list:
    if isinstance(value, list):
        return (value + [None] * n)[:n]
    return [value] * n if n == 1 else [None] * n


def _status(value) -> tuple[float, str]:
    if value is None:
        return math.nan, "failed"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan, "failed"
    if math.isnan(number):
        return math.nan, "skipped"
    return number, "ok"


def _rows_of_file(file: Path, data: dict, meta: dict) -> list[dict]:
    params_meta = data.get("params") or {}
    machine = params_meta.get("machine") or file.parent.name
    commit = str(data.get("commit_hash") or file.stem.split("-")[0])
    rows = []
    for name, entry in _entries(data):
        info = meta.get(name, {})
        params = entry.get("params") or info.get("params") or []
        params = [p if isinstance(p, list) else [p] for p in params]
        names = list(info.get("param_names") or [])
        names = (names + [f"param{i}" for i in range(len(names), len(params))])[:len(params)]
        combos = list(itertools.product(*params)) if params else [()]
        n = len(combos)
        results = _as_list(entry.get("result"), n)
        ci_a = _as_list(entry.get("stats_ci_99_a"), n)
        ci_b = _as_list(entry.get("stats_ci_99_b"), n)
        q25 = _as_list(entry.get("stats_q_25"), n)
        q75 = _as_list(entry.get("stats_q_75"), n)
        kind = info.get("type") or name.rsplit(".", 1)[-1].split("_", 1)[0]
        unit = info.get("unit") or {"time": "seconds", "peakmem": "bytes", "mem": "bytes"}.get(kind, "")
        for i, combo in enumerate(combos):
            value, status = _status(results[i])
            row = {"benchmark": name, "type": kind, "unit": unit,
                   "params": ", ".join(f"{k}={_unquote(v)}" for k, v in zip(names, combo)),
                   "value": value, "status": status,
                   "ci_low": _number(ci_a[i]), "ci_high": _number(ci_b[i]),
                   "q_25": _number(q25[i]), "q_75": _number(q75[i]),
                   "commit": commit, "date": data.get("date"), "machine": machine,
                   "env": data.get("env_name", ""), "file": str(file)}
            for k, v in zip(names, combo):
                row[f"param:{k}"] = _unquote(v)
            rows.append(row)
    return rows


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _unquote(value) -> str:
    """asv stores parameter values as their repr: "'torch'" -> torch."""
    text = str(value)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text
