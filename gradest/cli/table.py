"""``gradest table RESULTS...``: the aggregated table of results folders (`gradest.reports.table`).

    gradest table RESULTS... [--format markdown|csv|latex|html] [--metrics M ...] [--kinds K ...]
                  [--out FILE] [--all] [--plugins FILE.py ...]

Each metric's mean over seeds with its 95% t-interval, per task x estimator x S x backend:
the long form as CSV, the wide form a paper takes as Markdown, LaTeX (booktabs) or HTML.
Without ``--out`` the table goes to stdout. Refused with exit code 2, before any work: an
``--out`` that names an existing file, an unknown metric or kind (the known ones named), a
results folder that cannot be read or holds no result of the selected metrics.
"""
from __future__ import annotations

import sys
from pathlib import Path

from gradest.cli.common import EXIT_OK, UsageError, add_plugins, load_registries, split

__all__ = ["add_parser", "cmd_table", "FORMATS"]

#: `gradest.reports.table.FORMATS`, spelled here so that building the parser imports no pandas
FORMATS = ("markdown", "csv", "latex", "html")


def add_parser(sub):
    """The ``table`` subcommand and its options."""
    table = sub.add_parser("table", help="print the aggregated table (mean and 95%% interval over seeds)",
                           description="The table a paper prints from `gradest run` results folders: per task, "
                                       "estimator, S and backend, each metric's mean over seeds with its 95% "
                                       "t-interval; the best per column in bold, ties (overlapping intervals) "
                                       "marked.")
    table.add_argument("results", nargs="+", metavar="RESULTS", help="`gradest run` results folders")
    table.add_argument("--format", choices=FORMATS, default="markdown",
                       help="markdown, latex or html: the wide form; csv: the long form (default: markdown)")
    table.add_argument("--metrics", nargs="+", metavar="METRIC", default=None,
                       help="metrics to show (default: every metric the cell kinds declare that the results hold)")
    table.add_argument("--kinds", nargs="+", metavar="KIND", default=None,
                       help="the cell kinds whose metrics to show (default: all)")
    table.add_argument("--out", default=None, metavar="FILE", help="write the table to FILE (default: stdout)")
    table.add_argument("--all", action="store_true",
                       help="every cell in the results folders (default: the cells of each folder's last run)")
    add_plugins(table)
    return table


def _selection(args) -> tuple[list | None, list | None]:
    """(kinds, metrics) asked for, checked against the registered kinds and their metrics."""
    from gradest.reports.table import declared_metrics
    from gradest.sweep.cell_kind import kind_names

    kinds = split(args.kinds)
    if kinds:
        unknown = [k for k in kinds if k not in kind_names()]
        if unknown:
            raise UsageError(f"unknown kind {', '.join(unknown)}; known kinds: {', '.join(kind_names())}")
    metrics = split(args.metrics)
    if metrics:
        known = declared_metrics(kinds)
        unknown = [m for m in metrics if m not in known]
        if unknown:
            raise UsageError(f"unknown metric {', '.join(unknown)}"
                             f"{' of kinds ' + ', '.join(kinds) if kinds else ''}; known metrics: {', '.join(known)}")
    return kinds, metrics


def cmd_table(args) -> int:
    from gradest.reports import canonical_results
    from gradest.reports.load import load_results
    from gradest.reports.table import long_table, render

    load_registries()
    if args.out is not None and Path(args.out).exists():
        raise UsageError(f"--out {args.out} exists: remove it or name another file")
    missing = [p for p in args.results if not Path(p).exists()]
    if missing:
        raise UsageError(f"no such results folder: {', '.join(missing)}")
    kinds, metrics = _selection(args)
    try:
        results = canonical_results(load_results(args.results, current_only=not args.all))
    except ValueError as err:
        raise UsageError(str(err)) from None
    long = long_table(results.cells, metrics, kinds)
    if long.empty:
        what = f"metrics {', '.join(metrics)}" if metrics else "the metrics the cell kinds declare"
        verb = "holds" if len(args.results) == 1 else "hold"
        raise UsageError(f"{', '.join(args.results)} {verb} no finished cell with {what}: run `gradest run` first "
                         f"or choose other --metrics / --kinds")
    text = render(long, args.format)
    if args.out is None:
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
    return EXIT_OK
