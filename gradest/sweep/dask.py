"""The sweep on Dask: cells as futures on a local or an existing ``distributed`` cluster.

`DaskExecutor.local(n)` starts a `distributed.LocalCluster` of ``n`` single-threaded worker
processes (``gradest run --workers N``); `DaskExecutor.connect(address | scheduler_file)`
joins an existing cluster (``--scheduler tcp://host:port``, ``--scheduler-file FILE``: one
started with ``dask scheduler`` / ``dask worker``, dask-jobqueue on SLURM, dask-cuda on GPU
nodes; see docs/distributed.md). ``import gradest`` imports no Dask: this module is imported
when one of those is asked for.

It is an executor of the one run loop (`gradest.sweep.run.run_sweep`): it only submits cells
and hands back their outcomes.

* each cell is one future of `gradest.sweep.run.run_cell`, submitted with a key derived from
  the cell's key (a resubmitted cell is the same task) and ``pure=False``; cells on
  ``device="cuda"`` ask for the worker resource ``GPU=1``, so only workers started with
  ``--resources GPU=1`` take them, and CPU workers take the rest;
* finished outcomes come back as they complete (`as_completed`); the *client* writes each
  record to the results folder (`gradest.sweep.store`), atomically and once per cell: workers
  never touch the folder, so a worker on another machine needs no shared file system and a
  worker that dies mid-cell leaves nothing half-written;
* a worker that dies mid-cell loses nothing: the scheduler reruns its cell elsewhere (up to
  Dask's ``allowed-failures``; past that the cell is recorded failed with Dask's message, by
  `gradest.sweep.run.failed` as any failure); a cell that raises is recorded failed with its
  message (`run_cell` catches it on the worker) and the sweep goes on;
* every worker, also one that joins later, runs `WarmWorker` (a worker plugin) when it starts:
  it loads the plugin files this process loaded (``--plugins``; their text travels with the
  plugin, so a worker on another machine needs no copy), the registries and the backends'
  frameworks, and keeps its built tasks and compiled functions across cells, so a worker
  compiles a trace once, not once per cell;
* the numbers are those of a serial run: noise depends on (seed, stream, replicate) alone
  (`gradest.noise`), whatever process computes it.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Callable, Iterator, Sequence

from gradest import plugins
from gradest.sweep.cells import Cell
from gradest.sweep.run import failed, run_cell

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


def _warm(backends: Sequence[str], plugin_files: Sequence[tuple[str, str]], folder: str) -> None:
    """Load the plugin files, the registries and the backends' frameworks in this worker."""
    from gradest.backends import get_backend
    from gradest.sweep.kinds import KINDS

    plugins.load_sources(plugin_files, os.path.join(folder, "gradest-plugins"))
    KINDS.load()  # with the estimators and the tasks
    for name in backends:
        try:
            get_backend(name)
        except Exception:  # noqa: BLE001 -- a cell needing it reports the problem itself
            pass


def _plugin_class():
    distributed = _need_distributed()

    class WarmWorker(distributed.WorkerPlugin):
        """Loads the client's plugin files and imports the frameworks once per worker, when it
        starts (or joins the cluster)."""

        name = "gradest-warm-worker"

        def __init__(self, backends=None, plugin_files=()):
            from gradest.backends import backend_names

            self.backends = tuple(backend_names() if backends is None else backends)
            self.plugin_files = tuple(plugin_files)

        def setup(self, worker):
            _warm(self.backends, self.plugin_files, worker.local_directory)

    return WarmWorker


def WarmWorker(backends=None, plugin_files=()):  # noqa: N802 -- a class made on demand (Dask imported late)
    """The worker plugin (a `distributed.WorkerPlugin`) warming each worker for ``backends``
    (default: every registered one) with ``plugin_files`` ((path, text) of each, as
    `gradest.plugins.loaded_sources` gives them)."""
    return _plugin_class()(backends, plugin_files)


class DaskExecutor:
    """Runs cells as futures on a `distributed.Client` (see the module docstring)."""

    def __init__(self, client, cluster=None, description: str = ""):
        self.client = client
        self.cluster = cluster
        self._description = description or f"Dask cluster {client.scheduler.address}"
        self._pending: dict = {}  # future -> cell, submitted and not yet handed back
        self._backends = None
        self._shared: tuple = ()  # the plugin files the workers were given

    # ---- making one ----------------------------------------------------------------------
    @classmethod
    def local(cls, workers: int, backends=None) -> "DaskExecutor":
        """A `distributed.LocalCluster` of ``workers`` single-threaded worker processes, warmed
        for ``backends`` (default: every registered one)."""
        distributed = _need_distributed()
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
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
                timeout: float | None = None, backends=None) -> "DaskExecutor":
        """A client of the running cluster at ``address`` (``tcp://host:port``) or described by
        ``scheduler_file``; a `ClusterError` within ``timeout`` seconds (default
        `CONNECT_TIMEOUT_S`) when it cannot be reached."""
        distributed = _need_distributed()
        timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
        where = address or f"the scheduler file {scheduler_file}"
        if scheduler_file is not None:
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

    def warm(self, backends=None) -> None:
        """Register `WarmWorker` for ``backends`` (default: every registered one) with the plugin
        files loaded so far: it runs on every current and future worker."""
        self._backends = backends
        self._shared = tuple(plugins.loaded_files())
        self.client.register_plugin(WarmWorker(backends, plugins.loaded_sources()))

    # ---- running -------------------------------------------------------------------------
    def describe(self) -> str:
        return self._description

    def submit(self, cell: Cell) -> None:
        """Start ``cell`` on the cluster (workers first get the plugin files loaded since `warm`)."""
        if tuple(plugins.loaded_files()) != self._shared:
            self.warm(self._backends)
        resources = {"GPU": 1} if cell.device == "cuda" else None
        future = self.client.submit(run_cell, cell, key=f"gradest-cell-{cell.key}", pure=False, resources=resources)
        self._pending[future] = cell

    def as_completed(self, started: Callable[[Cell], None] | None = None) -> Iterator[tuple[Cell, dict]]:
        """(cell, outcome) of every submitted cell, in the order they finish (``started`` is not
        called: the scheduler decides when a cell starts). A cell whose future fails (its worker
        died more often than Dask allows) comes back as a failed outcome. Closing the iterator
        early cancels the cells that have not finished."""
        distributed = _need_distributed()
        futures, self._pending = self._pending, {}
        try:
            for future in distributed.as_completed(futures):
                cell = futures[future]
                try:
                    result = future.result()
                except Exception as err:  # noqa: BLE001 -- e.g. KilledWorker: recorded, the sweep goes on
                    result = failed(cell, err)
                future.release()
                yield cell, result
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
