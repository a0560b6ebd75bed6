"""What a sweep shows while it runs: a rich bar on a terminal, plain lines elsewhere.

`sweep_progress(enabled, console, total=..., reused=..., where=...)` is a context manager
handing back an object with ``started(cell)`` and ``finished(cell, status)``, called by the
run loop (`gradest.sweep.run.run_sweep`) as cells start and finish:

* on a terminal (``console.is_terminal``): rich's live bar (the cell running, cells done of
  the total, elapsed and remaining time);
* elsewhere (a log file, CI, ``nohup``: a live bar would reach it only at the end): a plain
  line every `LINE_INTERVAL_S` seconds, also while a long cell runs, and after every
  ``max(1, total // LINE_STEPS)`` finished cells, e.g.
  ``progress: 12/40 cells (3 reused), 1 skipped, 0 failed; 0:00:32 elapsed, about 0:01:20 left``
  (the remaining time: the cells still to run at the mean time of those finished in this run);
* ``enabled=False``: nothing.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import threading
import time

__all__ = ["sweep_progress", "LineProgress", "LINE_INTERVAL_S", "LINE_STEPS"]

#: seconds between two plain progress lines while nothing else prints one
LINE_INTERVAL_S = 10.0
#: a plain line after every total // LINE_STEPS finished cells
LINE_STEPS = 10


def _clock(seconds: float) -> str:
    return str(_dt.timedelta(seconds=int(round(seconds))))


class LineProgress:
    """Plain progress lines on ``console`` (see the module docstring); ``interval_s`` None:
    no timed lines, only those after every ``step`` finished cells."""

    def __init__(self, console, *, total: int, reused: int = 0, where: str = "", interval_s: float | None = None,
                 step: int | None = None, clock=time.monotonic):
        self.console, self.total, self.reused, self.where = console, int(total), int(reused), where
        self.interval_s = interval_s
        self.step = step or max(1, self.total // LINE_STEPS)
        self.clock = clock
        self.counts = {"done": 0, "skipped": 0, "failed": 0}
        self.finished_here = 0
        self.running: dict = {}  # the cells started and not finished (several on a cluster)
        self._start = clock()
        self._last = self._start
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = None

    def __enter__(self):
        self.console.print(f"progress: {self.total} cells, {self.reused} reused, {self.total - self.reused} to run"
                           + (f" ({self.where})" if self.where else ""), highlight=False, soft_wrap=True)
        if self.interval_s:
            self._ticker = threading.Thread(target=self._tick, name="gradest-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        self.line(final=True)
        return False

    def _tick(self) -> None:
        while not self._stop.wait(self.interval_s):
            if self.clock() - self._last >= self.interval_s:
                self.line()

    def started(self, cell) -> None:
        with self._lock:
            self.running[cell.key] = cell.describe()

    def finished(self, cell, status: str) -> None:
        with self._lock:
            self.counts[status] = self.counts.get(status, 0) + 1
            self.finished_here += 1
            self.running.pop(cell.key, None)
        if self.finished_here % self.step == 0 and self.finished_here < self.total - self.reused:
            self.line()

    def line(self, final: bool = False) -> None:
        """Print the line now."""
        with self._lock:
            now = self.clock()
            self._last = now
            elapsed = now - self._start
            left_cells = self.total - self.reused - self.finished_here
            if final or left_cells <= 0:
                left = "finished" if left_cells <= 0 else f"stopped with {left_cells} cells not run"
            elif self.finished_here:
                left = f"about {_clock(elapsed / self.finished_here * left_cells)} left"
            else:
                left = "time left not known yet"
            running = ""
            if self.running and not final:
                first, *others = self.running.values()
                running = f"; running {first}" + (f" and {len(others)} more" if others else "")
            self.console.print(f"progress: {self.reused + self.finished_here}/{self.total} cells ({self.reused} "
                               f"reused), {self.counts.get('skipped', 0)} skipped, {self.counts.get('failed', 0)} "
                               f"failed; {_clock(elapsed)} elapsed, {left}{running}", highlight=False,
                               soft_wrap=True)


class _Bar:
    """rich's live bar, for a terminal."""

    def __init__(self, console, *, total: int, reused: int, where: str):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.bar = Progress(SpinnerColumn(), TextColumn("[progress.description]{task.description}", style="cyan"),
                            BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                            console=console)
        self.task = self.bar.add_task(f"{total - reused} cells on {where}", total=total, completed=reused)

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        self.bar.update(self.task, description="sweep finished")
        return self.bar.__exit__(*exc)

    def started(self, cell) -> None:
        self.bar.update(self.task, description=cell.describe())

    def finished(self, cell, status: str) -> None:
        self.bar.update(self.task, description=cell.describe())
        self.bar.advance(self.task)


class _Silent:
    def started(self, cell) -> None:
        pass

    def finished(self, cell, status: str) -> None:
        pass


def sweep_progress(enabled: bool, console=None, *, total: int, reused: int = 0, where: str = ""):
    """The progress display of a sweep of ``total`` cells, ``reused`` of them already in the
    store (see the module docstring)."""
    if not enabled:
        return contextlib.nullcontext(_Silent())
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    if console.is_terminal:
        return _Bar(console, total=total, reused=reused, where=where)
    return LineProgress(console, total=total, reused=reused, where=where, interval_s=LINE_INTERVAL_S)
