"""The ``gradest`` command: ``run`` (a sweep, its results and report), ``report``, ``list``.

    gradest run [--quick | --budget quick|medium|full] [--tasks T[:k=v,...] ...] [--estimators E[:k=v,...] ...]
                [--backends B ...] [--kinds K ...] [--preset NAME [--data-dir DIR]]
                [--device cpu|cuda] [--seeds N] [--num-replicates R] [--train-steps N] [--lr RATE]
                [--track-every N] [--sample-sizes S ... | --equal-evaluations K]
                [--workers N | --scheduler ADDRESS | --scheduler-file FILE]
                [--plugins FILE.py ...] [--out DIR] [--report DIR] [--no-report] [--no-progress]
    gradest report RESULTS... [--out DIR] [--all] [--plugins FILE.py ...]
    gradest list [--plugins FILE.py ...]
    gradest table RESULTS... [--format markdown|csv|latex|html] [--metrics M ...] [--kinds K ...] [--out FILE]

``main(argv)`` returns the exit code: 0 on success, 1 when cells failed (summarized once,
grouped by message), 2 for bad usage — an unknown flag (the nearest one suggested), name,
option or value, a missing backend, an unreachable cluster — with a one-line message, before
any work and without a traceback; 130 when interrupted (finished cells are kept: the same
command resumes). The last line ``run`` and ``report`` print is the path of the report.

One module per command, each with its options (``add_parser``) and its work (``cmd_*``):
`gradest.cli.run` (the sweep and the preset path, one pipeline), `gradest.cli.report`,
`gradest.cli.list`, `gradest.cli.table`; `gradest.cli.common` holds what they share (exit codes, `UsageError`,
plugin loading, backend resolution). This module assembles the parser and dispatches.
"""
from __future__ import annotations

import argparse
import difflib
import sys
from typing import Sequence

from gradest.cli import list as list_command
from gradest.cli import report as report_command
from gradest.cli import run as run_command
from gradest.cli import table as table_command
from gradest.cli.common import EXIT_FAILED_CELLS, EXIT_OK, EXIT_USAGE, UsageError, load_plugin_files

__all__ = ["main", "build_parser", "UsageError", "EXIT_OK", "EXIT_FAILED_CELLS", "EXIT_USAGE"]

#: command -> (what adds its parser, what runs it)
COMMANDS = {"run": (run_command.add_parser, run_command.cmd_run),
            "report": (report_command.add_parser, report_command.cmd_report),
            "list": (list_command.add_parser, list_command.cmd_list),
            "table": (table_command.add_parser, table_command.cmd_table)}


class _Parser(argparse.ArgumentParser):
    """argparse without abbreviations, whose errors suggest the nearest flag and never exit
    by themselves (`main` turns them into exit code 2)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.print_usage(sys.stderr)
        raise UsageError(message)

    def unrecognized(self, extras: Sequence[str]):
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gradest", description="Benchmark stochastic gradient estimators in PyTorch and JAX.")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}", parser_class=_Parser)
    parser.commands = sub.choices
    for add_parser, _ in COMMANDS.values():
        add_parser(sub)
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
        load_plugin_files(args.plugins)
        return COMMANDS[args.command][1](args)
    except UsageError as err:
        print(f"gradest: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except KeyboardInterrupt:
        print("gradest: interrupted; finished cells are kept: run the same command again to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
