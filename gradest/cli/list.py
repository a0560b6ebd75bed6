"""``gradest list``: the registered estimators, tasks, cell kinds and presets, where each comes
from, and the plugin problems met while loading them (each once)."""
from __future__ import annotations

import sys
import warnings

from gradest.cli.common import EXIT_OK, add_plugins, load_registries, print_plugin_problems

__all__ = ["add_parser", "cmd_list", "estimator_rows", "task_rows", "kind_rows", "preset_rows"]


def add_parser(sub):
    """The ``list`` subcommand and its options."""
    listing = sub.add_parser("list", help="the registered estimators, tasks and cell kinds, where they come from")
    add_plugins(listing)
    return listing


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
    problems_before = load_registries()
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
    problems = list(dict.fromkeys(problems_before + load_registries()))  # building may add some
    if problems:
        console.print("Plugin problems:", style="bold yellow")
        print_plugin_problems(console, problems)
    return EXIT_OK
