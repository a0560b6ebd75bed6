"""``gradest list``: the registered estimators, tasks, cell kinds and presets, where each comes
from, and the plugin problems met while loading them (each once), in tables that fit a terminal
of 100 columns (cells wrap; a pipe gets `PIPE_WIDTH` columns unless ``COLUMNS`` says)."""
from __future__ import annotations

import os
import sys
import warnings

from gradest.cli.common import EXIT_OK, add_plugins, load_registries, print_plugin_problems

__all__ = ["add_parser", "cmd_list", "estimator_rows", "task_rows", "kind_rows", "preset_rows", "option_text",
           "PIPE_WIDTH"]

#: the width of the listing written to a pipe or a file (where ``COLUMNS`` does not say)
PIPE_WIDTH = 100


def add_parser(sub):
    """The ``list`` subcommand and its options."""
    listing = sub.add_parser("list", help="the registered estimators, tasks and cell kinds, where they come from")
    add_plugins(listing)
    return listing


def option_text(options: dict) -> str:
    """``{"temperature": 0.5, "hard": True}`` -> ``temperature=0.5,hard=True``: a variant's options
    as ``--estimators NAME:...`` takes them."""
    from gradest.labels import format_value

    return ",".join(f"{k}={format_value(v)}" for k, v in options.items())


def estimator_rows() -> list[dict]:
    """One row per registered estimator; ``variants``: the options of each declared variant the
    sweep runs, one per line (empty: the estimator's defaults only)."""
    from gradest.registry import ESTIMATORS, describe_estimators

    rows = []
    for row in describe_estimators():
        entry = ESTIMATORS.entries[row.name]
        variants = [option_text(v) for v in entry.meta.get("variants", [{}]) if v]
        rows.append({"name": row.name, "source": row.source, "supports": ", ".join(row.supports) or "?",
                     "unbiased": {True: "yes", False: "no", None: "?"}[row.unbiased],
                     "options": ", ".join(f"{k}={v!r}" for k, v in entry.option_defaults().items()),
                     "variants": "\n".join(variants), "description": row.description})
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


def _table(title, rows, columns, no_wrap=("name",)):
    """A rich table whose cells wrap (and fold words longer than their column) to fit the
    console; cell text is shown as it is (``[...]`` is no markup)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", expand=False)
    for heading, _ in columns:
        # the description gets the room the short columns leave
        table.add_column(heading, no_wrap=heading in no_wrap, overflow="fold",
                         max_width={"source": 20, "supports": 13}.get(heading))
    for row in rows:
        table.add_row(*(Text(str(row[key])) for _, key in columns))
    return table


def _console():
    """The console of the listing: a terminal's width, else ``COLUMNS`` or `PIPE_WIDTH`."""
    from rich.console import Console

    wide = sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit()
    return Console(width=None if wide else PIPE_WIDTH)


def cmd_list(args) -> int:
    from gradest.registry import PluginWarning

    console = _console()
    problems_before = load_registries()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)  # each problem is printed once, below
        est_rows, tsk_rows, knd_rows = estimator_rows(), task_rows(), kind_rows()
    console.print(_table("Estimators", est_rows, [("name", "name"), ("source", "source"), ("supports", "supports"),
                                                  ("unbiased", "unbiased"), ("description", "description")]))
    console.print(_table("Estimator options (gradest run --estimators NAME:key=value,...)", est_rows,
                         [("name", "name"), ("options (defaults)", "options"), ("swept variants", "variants")]))
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
