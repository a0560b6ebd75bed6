"""The ``gradest`` command: ``run`` (a sweep, its results and report), ``report``, ``list``.

    gradest run [--quick] [--tasks T ...] [--estimators E ...] [--backends B ...]
                [--device cpu|cuda] [--seeds N] [--num-replicates R] [--out DIR] [--report DIR]
    gradest report RESULTS... [--out DIR]
    gradest list

``main(argv)`` returns the exit code: 0 on success (failed cells are listed, and recorded in
the results; with ``--strict`` they make the exit code 1), 2 for bad usage (unknown names, a
missing backend) with a message and no traceback. The last line ``run`` and ``report`` print is the path of the report.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path
from typing import Sequence

EXIT_OK, EXIT_FAILED_CELLS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command-line input: printed as ``gradest: error: ...``, exit code 2."""


def _split(values: Sequence[str] | None) -> list[str] | None:
    """``--tasks a b,c`` -> [a, b, c] (both spaces and commas separate; estimator options
    after ``:`` keep their commas)."""
    if not values:
        return None
    out: list[str] = []
    for value in values:
        if ":" in value:  # name:k=v,k=v is one estimator variant
            out.append(value)
            continue
        out.extend(v for v in value.split(",") if v)
    return out or None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradest", description="Benchmark stochastic gradient estimators in PyTorch and JAX.")
    sub = parser.add_subparsers(dest="command", metavar="{run,report,list}")

    run = sub.add_parser("run", help="sweep tasks x estimators x backends; write results and a report",
                         description="Sweep tasks x estimators x backends (all registered ones by default): "
                                     "gradient statistics against the exact gradient, training runs, the "
                                     "Gumbel-softmax temperature sweep and the Lasso delta sweep. Re-running "
                                     "with the same arguments resumes: finished cells are kept.")
    run.add_argument("--tasks", nargs="+", metavar="TASK", help="tasks to sweep (default: all registered)")
    run.add_argument("--estimators", nargs="+", metavar="EST",
                     help="estimators to sweep (default: all registered, with built-in variants); "
                          "NAME:key=value,... picks one variant, e.g. reinforce:baseline=loo")
    run.add_argument("--backends", nargs="+", metavar="BACKEND",
                     help="torch and/or jax (default: every installed one)")
    run.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    run.add_argument("--seeds", type=int, default=None, metavar="N",
                     help="seeds 0..N-1 per cell, on every backend (default: 2 with --quick, else 3)")
    run.add_argument("--quick", action="store_true",
                     help="small budgets (the demo: a few minutes on a laptop): every estimator on the first "
                          "backend, a core set (exact, reinforce loo, gumbel-softmax, pathwise) at S=4 and one "
                          "seed on the others")
    run.add_argument("--num-replicates", type=int, default=None, metavar="R",
                     help="gradient estimates per statistic (default: 200 with --quick, else 2000)")
    run.add_argument("--train-steps", type=int, default=None, metavar="N",
                     help="optimizer steps per training cell (default: per task, 20-60 with --quick)")
    run.add_argument("--kinds", nargs="+", metavar="KIND",
                     help="cell kinds to run: gradient, temperature, train, lasso_delta (default: all)")
    run.add_argument("--out", default="results", help="results folder (default: results/)")
    run.add_argument("--report", default=None, metavar="DIR", help="report folder (default: <out>/report)")
    run.add_argument("--no-report", action="store_true", help="write results only")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--strict", action="store_true", help="exit with code 1 when a cell failed")

    report = sub.add_parser("report", help="build the report (figures, index.html, summary.md) from results",
                            description="Build a report from `gradest run` results folders and asv results "
                                        "folders (.asv/results or one machine's folder).")
    report.add_argument("results", nargs="+", metavar="RESULTS", help="results folders or asv result files")
    report.add_argument("--out", default="report", help="report folder (default: report/)")

    sub.add_parser("list", help="the registered estimators and tasks, where they come from, what they support")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage and the problem
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return {"run": cmd_run, "report": cmd_report, "list": cmd_list}[args.command](args)
    except UsageError as err:
        print(f"gradest: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gradest: interrupted; finished cells are kept: run the same command again to resume",
              file=sys.stderr)
        return 130


# ---------------------------------------------------------------------------------------
# plugins


def _load_registries() -> list[str]:
    """Discover estimators and tasks; the plugin load problems, each once."""
    from gradest.registry import ESTIMATORS, TASKS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # shown by the caller, once each
        ESTIMATORS.load()
        TASKS.load()
    seen: list[str] = []
    for message in ESTIMATORS.plugin_errors + TASKS.plugin_errors:
        if message not in seen:
            seen.append(message)
    return seen


def _print_plugin_problems(console, problems: list[str]) -> None:
    for message in problems:
        console.print(f"[yellow]warning:[/] {message}", highlight=False, markup=True, soft_wrap=True)


# ---------------------------------------------------------------------------------------
# run


def _resolve_backends(requested: list[str] | None, device: str, console) -> list[str]:
    from gradest.backends import BACKENDS, DEVICES, available_backends

    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}; known devices: {', '.join(DEVICES)}")
    if requested:
        unknown = [b for b in requested if b not in BACKENDS]
        if unknown:
            raise UsageError(f"unknown backend{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                             f"known backends: {', '.join(BACKENDS)}")
        backends = list(dict.fromkeys(requested))
    else:
        backends = available_backends()
        missing = [b for b in BACKENDS if b not in backends]
        if not backends:
            raise UsageError("no backend is installed: gradest needs torch or jax. Install one: "
                             "pip install torch, or pip install jax optax (or `make venv`)")
        if missing:
            console.print(f"note: backend{'s' if len(missing) > 1 else ''} {', '.join(missing)} not installed; "
                          f"sweeping {', '.join(backends)}", highlight=False)
    for name in backends:
        _check_backend(name, device)
    return backends


def _check_backend(name: str, device: str) -> None:
    """Import the framework and make one array on ``device``: a clear error now, not per cell."""
    from gradest.backends import get_backend

    try:
        B = get_backend(name, device=device)
        B.to_numpy(B.asarray([0.0]))
    except ImportError as err:
        raise UsageError(str(err)) from None
    except Exception as err:  # e.g. no CUDA device
        raise UsageError(f"the {name} backend cannot run on device {device!r}: {type(err).__name__}: "
                         f"{str(err).rstrip('.')}. Pick another --device or backend.") from None


def cmd_run(args) -> int:
    from rich.console import Console

    from gradest import sweep

    console = Console(stderr=True)
    _print_plugin_problems(console, _load_registries())
    tasks, estimators, kinds = _split(args.tasks), _split(args.estimators), _split(args.kinds)
    if args.seeds is not None and args.seeds < 1:
        raise UsageError(f"--seeds must be a positive integer, got {args.seeds}")
    if args.num_replicates is not None and args.num_replicates < 2:
        raise UsageError(f"--num-replicates must be at least 2, got {args.num_replicates}")
    try:  # names first: a typo should not wait for a framework import
        sweep.plan(tasks, estimators, ["torch"], device="cpu", seeds=args.seeds, quick=args.quick,
                   num_replicates=args.num_replicates, train_steps=args.train_steps, kinds=kinds or sweep.KINDS)
    except ValueError as err:
        raise UsageError(str(err)) from None
    backends = _resolve_backends(_split(args.backends), args.device, console)
    cells = sweep.plan(tasks, estimators, backends, device=args.device, seeds=args.seeds, quick=args.quick,
                       num_replicates=args.num_replicates, train_steps=args.train_steps,
                       kinds=kinds or sweep.KINDS)
    if not cells:
        raise UsageError("the selection has no cells to run (check --tasks/--estimators/--kinds)")
    out = Path(args.out)
    manifest = {"command": "gradest run", "arguments": {k: v for k, v in vars(args).items() if k != "command"},
                "tasks": tasks, "estimators": estimators, "backends": backends, "quick": bool(args.quick),
                "budget": dataclasses.asdict(sweep.resolve_budget(
                    quick=args.quick, num_replicates=args.num_replicates, train_steps=args.train_steps,
                    seeds=args.seeds))}
    result = sweep.run_sweep(cells, out, progress=not args.no_progress, manifest=manifest, console=console)
    _print_sweep_summary(console, result)
    code = EXIT_FAILED_CELLS if args.strict and result.counts.get("failed") else EXIT_OK
    if args.no_report:
        print(out.resolve() / "results.csv")
        return code
    from gradest.reports import build_report

    report_dir = Path(args.report) if args.report else out / "report"
    index = build_report([out], report_dir)
    print(Path(index).resolve())
    return code


def _print_sweep_summary(console, result) -> None:
    c = result.counts
    console.print(f"{len(result.cells)} cells: {c.get('done', 0)} done, {c.get('skipped', 0)} skipped "
                  f"(unsupported combinations), {c.get('failed', 0)} failed; {result.reused} reused from "
                  f"{result.out}", highlight=False)
    failures = result.failures
    for _, row in failures.head(20).iterrows():
        console.print(f"[red]failed[/] {row['kind']} {row['task']} {row['estimator']} {row['backend']} "
                      f"S={row['num_samples']} seed={row['seed']}: {row['reason']}", highlight=False,
                      soft_wrap=True)
    if len(failures) > 20:
        console.print(f"... and {len(failures) - 20} more failures in {result.out / 'results.csv'}")


# ---------------------------------------------------------------------------------------
# report


def cmd_report(args) -> int:
    from gradest.reports import build_report

    missing = [p for p in args.results if not Path(p).exists()]
    if missing:
        raise UsageError(f"no such results folder or file: {', '.join(missing)}")
    try:
        index = build_report(args.results, args.out)
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(Path(index).resolve())
    return EXIT_OK


# ---------------------------------------------------------------------------------------
# list


def estimator_rows() -> list[dict]:
    from gradest.registry import ESTIMATORS, describe_estimators

    rows = []
    for row in describe_estimators():
        entry = ESTIMATORS.entries[row.name]
        rows.append({"name": row.name, "source": row.source, "supports": ", ".join(row.supports) or "?",
                     "unbiased": {True: "yes", False: "no", None: "?"}[row.unbiased],
                     "options": ", ".join(f"{k}={v!r}" for k, v in entry.option_defaults().items()),
                     "description": row.description})
    return rows


def task_rows() -> list[dict]:
    from gradest.registry import describe_tasks

    return [{"name": row.name, "source": row.source, "distribution": row.distribution_kind or "?",
             "exact": {True: "yes", False: "no", None: "?"}[row.has_exact], "description": row.description}
            for row in describe_tasks()]


def cmd_list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    # a pipe or a file gets wide lines rather than names folded at 80 columns
    from gradest.registry import PluginWarning

    console = Console(width=None if sys.stdout.isatty() else 200)
    problems_before = _load_registries()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)  # each problem is printed once, below
        est_rows, tsk_rows = estimator_rows(), task_rows()
    est = Table(title="Estimators", title_justify="left")
    columns = [("name", "name"), ("source", "source"), ("supports", "supports"), ("unbiased", "unbiased"),
               ("options", "options"), ("description", "description")]
    for title, _ in columns:
        est.add_column(title, no_wrap=title in ("name", "source"), overflow="fold")
    for row in est_rows:
        est.add_row(*(row[key] for _, key in columns))
    tasks = Table(title="Tasks", title_justify="left")
    columns = [("name", "name"), ("source", "source"), ("distribution", "distribution"),
               ("exact truth", "exact"), ("description", "description")]
    for title, _ in columns:
        tasks.add_column(title, no_wrap=title in ("name", "source"), overflow="fold")
    for row in tsk_rows:
        tasks.add_row(*(row[key] for _, key in columns))
    console.print(est)
    console.print(tasks)
    problems = list(dict.fromkeys(problems_before + _load_registries()))  # building may add some
    if problems:
        console.print("Plugin problems:", style="bold yellow")
        _print_plugin_problems(console, problems)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
