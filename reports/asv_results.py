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

from gradest.plotting.frames import apply_zero_rule, estimator_name

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


# ---- the statistics suite as a tidy frame ------------------------------------------------

#: asv's track_ benchmarks of the statistics suite (benchmarks/statistics.py) -> frame column
TRACK_STATISTICS = {"track_variance": "variance", "track_bias_sq": "bias_sq", "track_mse": "mse",
                    "track_work_normalized_variance": "work_normalized_variance"}
_GRID_PARAMS = ("param:estimator", "param:task", "param:backend")


def is_statistic(benchmark: str) -> bool:
    """Whether ``benchmark`` is one of `TRACK_STATISTICS` (any suite class)."""
    return str(benchmark).rsplit(".", 1)[-1] in TRACK_STATISTICS


def track_stats(asv: pd.DataFrame, latest: bool = False) -> pd.DataFrame:
    """asv's statistics as the frame a cell kind's ``estimator_statistics`` gives for a run:
    one row per commit x machine x task x estimator x backend (x device), with ``variance``,
    ``bias_sq``, ``mse``, ``work_normalized_variance`` and ``seconds_per_estimate`` (work-
    normalized variance / variance: how the suite defines it), ``num_samples`` unknown
    (the grid's, not in the results), no intervals; the zero rule of `gradest.plotting.frames`
    applied.
    ``latest``: per machine, the last commit only. Only finished (``ok``) values; a device
    other than cpu is named in the backend (``torch (cuda)``)."""
    if asv is None or asv.empty or not set(_GRID_PARAMS) <= set(asv.columns):
        return pd.DataFrame()
    rows = asv[asv["benchmark"].map(is_statistic) & (asv["status"] == "ok")].copy()
    if rows.empty:
        return pd.DataFrame()
    rows["statistic"] = rows["benchmark"].map(lambda b: TRACK_STATISTICS[b.rsplit(".", 1)[-1]])
    device = rows["param:device"] if "param:device" in rows.columns else pd.Series("cpu", index=rows.index)
    rows["device"] = device.fillna("cpu")
    rows["backend"] = [b if d == "cpu" else f"{b} ({d})" for b, d in zip(rows["param:backend"], rows["device"])]
    keys = ["commit", "date", "machine", "param:task", "param:estimator", "backend", "device"]
    rows["date"] = rows["date"].fillna(pd.Timestamp(0))
    table = rows.pivot_table(index=keys, columns="statistic", values="value", aggfunc="mean").reset_index()
    table.columns.name = None
    table = table.rename(columns={"param:task": "task", "param:estimator": "estimator"})
    for col in TRACK_STATISTICS.values():
        if col not in table.columns:
            table[col] = math.nan
    table["estimator_name"] = table["estimator"].map(estimator_name)
    variance = table["variance"].where(table["variance"] > 0)
    table["seconds_per_estimate"] = table["work_normalized_variance"] / variance
    table["num_samples"] = math.nan
    table["seeds"] = 1
    if latest:
        last = table.groupby("machine")["date"].transform("max")
        table = table[table["date"] == last]
    return apply_zero_rule(table.reset_index(drop=True))


def skip_summary(asv: pd.DataFrame) -> pd.DataFrame:
    """asv's failed and skipped measurements, grouped by what they have in common instead of
    one row each (asv records no reason): per status, the likeliest reason — a device skipped
    everywhere (no such device on the machine), a backend skipped everywhere (not installed),
    an estimator skipped everywhere (cannot be built with its defaults), an estimator x task
    skipped on every backend and device (the combination does not apply), else "asv records
    no reason" — with the benchmarks and the points it covers."""
    if asv is None or asv.empty or "status" not in asv.columns:
        return pd.DataFrame()
    bad = asv[asv["status"] != "ok"].copy()
    if bad.empty:
        return pd.DataFrame()
    for col in ("param:estimator", "param:task", "param:backend", "param:device"):
        if col not in asv.columns:
            asv = asv.assign(**{col: None})
            bad[col] = None
    all_rows = asv
    reason = pd.Series("", index=bad.index, dtype=object)

    def everywhere(col):
        """Values of ``col`` whose every measurement is not ok (of the same status)."""
        if all_rows[col].isna().all():
            return set()
        ok = all_rows.groupby(col)["status"].apply(lambda s: (s == "ok").any())
        return set(ok[~ok].index)

    devices, backends = everywhere("param:device"), everywhere("param:backend")
    estimators = everywhere("param:estimator")
    pair_ok = all_rows.dropna(subset=["param:estimator", "param:task"]).groupby(
        ["param:estimator", "param:task"])["status"].apply(lambda s: (s == "ok").any())
    pairs = set(pair_ok[~pair_ok].index)
    on_ok = all_rows.dropna(subset=["param:estimator", "param:backend"]).groupby(
        ["param:estimator", "param:backend"])["status"].apply(lambda s: (s == "ok").any())
    not_on = set(on_ok[~on_ok].index)
    for idx, row in bad.iterrows():
        if row["status"] == "failed":
            reason[idx] = "failed: asv keeps no traceback in its results (see asv's log of the run)"
        elif row["param:device"] in devices:
            reason[idx] = (f"device {row['param:device']}: no measurement on it at all (no such device on "
                           f"{row['machine']})")
        elif row["param:backend"] in backends:
            reason[idx] = f"backend {row['param:backend']}: no measurement at all (not installed?)"
        elif row["param:estimator"] in estimators:
            reason[idx] = (f"estimator {row['param:estimator']}: no measurement at all (cannot be built with its "
                           f"defaults, or fails)")
        elif (row["param:estimator"], row["param:task"]) in pairs:
            reason[idx] = "estimator × task does not apply (not measured on any backend or device)"
        elif (row["param:estimator"], row["param:backend"]) in not_on:
            reason[idx] = "estimator × backend: not measured on that backend at all (not implemented there?)"
        else:
            reason[idx] = "asv records no reason"
    bad["reason"] = reason
    bad["short"] = bad["benchmark"].map(lambda b: ".".join(str(b).split(".")[-2:]))
    out = []
    for (status, why), part in bad.groupby(["status", "reason"], sort=True):
        combos = ""
        if why.startswith("estimator × task"):
            pairs_here = sorted({(e, t) for e, t in zip(part["param:estimator"], part["param:task"])})
            by_task: dict = {}
            for e, t in pairs_here:
                by_task.setdefault(t, []).append(e)
            combos = "; ".join(f"{t}: {', '.join(es)}" for t, es in sorted(by_task.items()))
        elif why.startswith("estimator × backend"):
            by_backend: dict = {}
            for e, b in sorted({(e, b) for e, b in zip(part["param:estimator"], part["param:backend"])}):
                by_backend.setdefault(b, []).append(e)
            combos = "; ".join(f"{b}: {', '.join(es)}" for b, es in sorted(by_backend.items()))
        elif why == "asv records no reason" or status == "failed":
            combos = "; ".join(sorted(set(part["params"].astype(str)))[:12])
        out.append({"status": status, "reason": why, "points": len(part),
                    "benchmarks": ", ".join(sorted(set(part["short"]))), "which": combos})
    return pd.DataFrame(out)
