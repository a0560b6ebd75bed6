"""The sweep on Dask: cells as futures on a local or an existing ``distributed`` cluster.

`DaskExecutor.local(n)` starts a `distributed.LocalCluster` of ``n`` single-threaded worker
processes (``gradest run --workers N``); `DaskExecutor.connect(address | scheduler_file)`
joins an existing cluster (``--scheduler tcp://host:port``, ``--scheduler-file FILE``: one
started with ``dask scheduler`` / ``dask worker``, dask-jobqueue on SLURM, dask-cuda on GPU
nodes; see docs/distributed.md). ``import gradest`` imports no Dask: this module is imported
when one of those is asked for.

How a sweep runs there (`run`):

* each cell is one future of `gradest.sweep.run.run_cell`, submitted with a key derived from
  the cell's key (a resubmitted cell is the same task) and ``pure=False``; cells on
  ``device="cuda"`` ask for the worker resource ``GPU=1``, so only workers started with
  ``--resources GPU=1`` take them, and CPU workers take the rest;
* finished outcomes come back as they complete; the *client* writes each record to the
  results folder (`gradest.sweep.store`), atomically and once per cell: workers never touch
  the folder, so a worker on another machine needs no shared file system and a worker that
  dies mid-cell leaves nothing half-written;
* a worker that dies mid-cell loses nothing: the scheduler reruns its cell elsewhere (up to
  Dask's ``allowed-failures``; past that the cell is recorded failed with Dask's message); a
  cell that raises is recorded failed with its message (`run_cell` catches it on the worker)
  and the sweep goes on;
* every worker imports the frameworks and keeps its built tasks and compiled functions
  across cells (`WarmWorker`, a worker plugin: also on workers that join later), so a worker
  compiles a trace once, not once per cell;
* the numbers are those of a serial run: noise depends on (seed, stream, replicate) alone
  (`gradest.noise`), whatever process computes it.
"""
from __future__ import annotations

import importlib.util
from typing import Iterable, Iterator

from gradest.sweep.cells import Cell
from gradest.sweep.run import run_cell

__all__ = ["DaskExecutor", "WarmWorker", "ClusterError", "CONNECT_TIMEOUT_S"]

#: seconds to wait for a scheduler before giving up with a clear error
CONNECT_TIMEOUT_S = 10


class ClusterError(RuntimeError):
    """A cluster could not be started or reached (the message names the address and the fix)."""


def _need_distributed():
    if importlib.util.find_spec("distributed") is None:
        raise ClusterError("running on Dask needs the 'distributed' package, which is not installed. "
                           "Install it: pip install 'gradest[dask]' (or pip install distributed), or `make venv`")
    import distributed

    return distributed


def _warm(backends: tuple) -> None:
    """Import gradest, its registries and the backends' frameworks in this worker."""
    import gradest
    from gradest.backends import get_backend
    from gradest.sweep.kinds import KINDS

    gradest.list_estimators()
    gradest.list_tasks()
    KINDS.load()
    for name in backends:
        try:
            get_backend(name)
        except Exception:  # noqa: BLE001 -- a cell needing it reports the problem itself
            pass


def _plugin_class():
    distributed = _need_distributed()

    class WarmWorker(distributed.WorkerPlugin):
        """Imports the frameworks once per worker when it starts (or joins the cluster)."""

        name = "gradest-warm-worker"

        def __init__(self, backends=("torch", "jax")):
            self.backends = tuple(backends)

        def setup(self, worker):
            _warm(self.backends)

    return WarmWorker


def WarmWorker(backends=("torch", "jax")):  # noqa: N802 -- a class made on demand (Dask imported late)
    return _plugin_class()(backends)


class DaskExecutor:
    """Runs cells as futures on a `distributed.Client` (see the module docstring)."""

    def __init__(self, client, cluster=None, description: str = ""):
        self.client = client
        self.cluster = cluster
        self._description = description or f"Dask cluster {client.scheduler.address}"

    # ---- making one ----------------------------------------------------------------------
    @classmethod
    def local(cls, workers: int, backends=("torch", "jax")) -> "DaskExecutor":
        """A `distributed.LocalCluster` of ``workers`` single-threaded worker processes."""
        distributed = _need_distributed()
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        import os

        # one thread per worker process, also inside the frameworks (cells time with one thread)
        env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "XLA_FLAGS": os.environ.get("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                                        "intra_op_parallelism_threads=1")}
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=40, env=env)
        client = distributed.Client(cluster)
        executor = cls(client, cluster, f"a local Dask cluster of {workers} worker process"
                                        f"{'es' if workers > 1 else ''}")
        executor.warm(backends)
        return executor

    @classmethod
    def connect(cls, address: str | None = None, scheduler_file: str | None = None,
                timeout: float | None = None, backends=("torch", "jax")) -> "DaskExecutor":
        """A client of the running cluster at ``address`` (``tcp://host:port``) or described by
        ``scheduler_file``; a `ClusterError` within ``timeout`` seconds (default
        `CONNECT_TIMEOUT_S`) when it cannot be reached."""
        distributed = _need_distributed()
        timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
        where = address or f"the scheduler file {scheduler_file}"
        if scheduler_file is not None:
            import os

            if not os.path.exists(scheduler_file):
                raise ClusterError(f"no scheduler file {scheduler_file}: start a scheduler that writes it, e.g. "
                                   f"`dask scheduler --scheduler-file {scheduler_file}`")
        try:
            client = distributed.Client(address=address, scheduler_file=scheduler_file, timeout=f"{timeout}s")
        except (OSError, TimeoutError, ValueError) as err:
            raise ClusterError(
                f"cannot reach a Dask scheduler at {where} within {timeout:g} s ({type(err).__name__}: {err}). "
                f"Start one (`dask scheduler`, then `dask worker {address or 'tcp://<scheduler>:8786'}` on each "
                f"machine), or run locally with --workers N") from None
        executor = cls(client, None, f"the Dask cluster at {client.scheduler.address}")
        executor.warm(backends)
        return executor

    def warm(self, backends) -> None:
        """Register `WarmWorker` (imports on every current and future worker)."""
        self.client.register_plugin(WarmWorker(backends))

    # ---- running -------------------------------------------------------------------------
    def describe(self) -> str:
        return self._description

    def submit(self, cell: Cell):
        resources = {"GPU": 1} if cell.device == "cuda" else None
        return self.client.submit(run_cell, cell, key=f"gradest-cell-{cell.key}", pure=False, resources=resources)

    def run(self, cells: Iterable[Cell]) -> Iterator[tuple[Cell, dict]]:
        """(cell, outcome) for every cell, in the order they finish. A cell whose future fails
        (its worker died more often than Dask allows) comes back as a failed outcome."""
        distributed = _need_distributed()
        futures = {}
        for cell in cells:
            futures[self.submit(cell)] = cell
        try:
            for future in distributed.as_completed(futures):
                cell = futures[future]
                try:
                    outcome = future.result()
                except Exception as err:  # noqa: BLE001 -- e.g. KilledWorker: recorded, the sweep goes on
                    outcome = {"status": "failed", "reason": f"{type(err).__name__}: {err}", "row": {},
                               "history": None, "label": cell.label}
                future.release()
                yield cell, outcome
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
