"""``gradest report RESULTS...``: the report of results folders (and asv's results)."""
from __future__ import annotations

from pathlib import Path

from gradest.cli.common import EXIT_OK, UsageError, add_plugins, load_registries, refuse_file

__all__ = ["add_parser", "cmd_report"]


def add_parser(sub):
    """The ``report`` subcommand and its options."""
    report = sub.add_parser("report", help="build the report (figures, index.html, summary.md) from results",
                            description="Build a report from `gradest run` results folders and asv results "
                                        "folders (.asv/results or one machine's folder).")
    report.add_argument("results", nargs="+", metavar="RESULTS", help="results folders or asv result files")
    report.add_argument("--out", default="report", help="report folder (default: report/)")
    report.add_argument("--all", action="store_true",
                        help="every cell in the results folders (default: the cells of each folder's last run)")
    add_plugins(report)
    return report


def cmd_report(args) -> int:
    from gradest.reports import build_report

    refuse_file("--out", args.out)
    load_registries()
    missing = [p for p in args.results if not Path(p).exists()]
    if missing:
        raise UsageError(f"no such results folder or file: {', '.join(missing)}")
    try:
        index = build_report(args.results, args.out, current_only=not args.all)
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(Path(index).resolve())
    return EXIT_OK
