"""Compare the non-timing numbers of two ``gradest run`` results folders.

    python -m tools.compare_runs BEFORE_DIR AFTER_DIR [--rtol 0]

A refactor that keeps behaviour gives the same cells (matched on what identifies a cell, not on
its key, which holds the code fingerprint and so changes with any edit) with the same status,
reason and numbers in ``results.csv``, and the same training histories in ``history.csv``.
Columns that measure time or name the run (elapsed, seconds, timestamps, keys, fingerprints)
are left out. Exit 0 when everything matches within ``--rtol`` (default 0: bit-identical),
1 with a list of the differences otherwise.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

#: what identifies a cell across code versions
IDENTITY = ("kind", "task", "estimator", "estimator_name", "backend", "device", "seed", "num_samples",
            "task_options", "estimator_options")
#: columns that measure wall time or name the run, the code or the file
VOLATILE = {"key", "elapsed_s", "cpu_s", "run", "finished_at", "current_run", "code_fingerprint", "train_seconds",
            "final_seconds", "seconds", "seconds_per_estimate", "seconds_low", "seconds_high",
            "work_normalized_variance", "worker"}


def _identity_with_settings(frame: pd.DataFrame) -> list[str]:
    # kinds that sweep a setting (temperature, delta) have several cells per identity
    return [c for c in (*IDENTITY, "temperature", "delta") if c in frame.columns]


def _compare(name: str, before: pd.DataFrame, after: pd.DataFrame, keys: list[str], rtol: float) -> list[str]:
    problems = []
    for frame in (before, after):
        for k in keys:
            frame[k] = frame[k].astype(str)
    dup = before.duplicated(keys).sum() + after.duplicated(keys).sum()
    if dup:
        problems.append(f"{name}: {dup} rows share an identity {keys}: cannot match them")
        return problems
    merged = before.merge(after, on=keys, how="outer", suffixes=("@before", "@after"), indicator=True)
    for side, label in (("left_only", "only before"), ("right_only", "only after")):
        rows = merged[merged["_merge"] == side]
        if len(rows):
            problems.append(f"{name}: {len(rows)} rows {label}, e.g. {rows[keys].iloc[0].to_dict()}")
    both = merged[merged["_merge"] == "both"]
    columns = sorted((set(before.columns) | set(after.columns)) - set(keys) - VOLATILE)
    for col in columns:
        if col not in before.columns or col not in after.columns:
            present = before if col in before.columns else after
            if present[col].notna().any():
                problems.append(f"{name}: column {col!r} only {'before' if present is before else 'after'}")
            continue
        a, b = both[f"{col}@before"], both[f"{col}@after"]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            x, y = a.to_numpy(float), b.to_numpy(float)
            same = (np.isnan(x) & np.isnan(y)) | np.isclose(x, y, rtol=rtol, atol=0.0)
            if not same.all():
                with np.errstate(divide="ignore", invalid="ignore"):
                    rel = np.nanmax(np.abs(x - y)[~same] / np.maximum(np.abs(x[~same]), 1e-300))
                problems.append(f"{name}: {col!r} differs in {int((~same).sum())} of {len(x)} rows "
                                f"(largest relative difference {rel:.3g})")
        else:
            differ = (a.astype(str) != b.astype(str)) & ~(a.isna() & b.isna())
            if differ.any():
                i = differ.to_numpy().nonzero()[0][0]
                problems.append(f"{name}: {col!r} differs in {int(differ.sum())} rows, e.g. "
                                f"{a.iloc[i]!r} -> {b.iloc[i]!r}")
    return problems


def compare(before_dir: Path, after_dir: Path, rtol: float = 0.0) -> list[str]:
    """The differences between two results folders (empty: the same numbers)."""
    problems = []
    before, after = pd.read_csv(before_dir / "results.csv"), pd.read_csv(after_dir / "results.csv")
    problems += _compare("results.csv", before, after, _identity_with_settings(before), rtol)
    hb, ha = before_dir / "history.csv", after_dir / "history.csv"
    if hb.exists() or ha.exists():
        h_before, h_after = pd.read_csv(hb), pd.read_csv(ha)
        keys = [c for c in (*IDENTITY, "temperature", "delta", "step") if c in h_before.columns]
        problems += _compare("history.csv", h_before, h_after, keys, rtol)
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.compare_runs", description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rtol", type=float, default=0.0, help="relative tolerance of numbers (default 0)")
    args = parser.parse_args(argv)
    problems = compare(args.before, args.after, args.rtol)
    for line in problems:
        print(line)
    rows = len(pd.read_csv(args.before / "results.csv"))
    print(f"{'differences found' if problems else 'identical'}: {rows} cells compared "
          f"(rtol={args.rtol:g}, timing columns left out)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
