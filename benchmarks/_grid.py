"""The grid the asv suites are parameterized over: estimator x task x backend x device.

The grid is generated from gradest's registry when asv imports the suites, so built-ins and
installed plugins are benchmarked without touching this folder. Two grids, chosen by the
environment variable ``GRADEST_ASV_GRID`` (`grid_name`; read when asv imports the suites):

* ``default`` (unset or empty): every estimator's ``core`` variants (declared at registration,
  ``register_estimator(..., core=[...])``: the variants a quick sweep runs on every backend) on
  one representative task per distribution kind (`representative_tasks`: ``DEFAULT_TASKS``,
  the small task of each kind with an exact gradient, at its benchmark sizes), every backend
  and device. A quick pass (``asv run --quick``) of the whole suite takes minutes.
* ``full``: every estimator x task x declared variant, described below (hours for a plain run).

Any other value is refused when the suites are imported (ValueError naming both grids). The
default grid is a subset of the full one under the same benchmark names and parameter values,
so asv's history connects them: a point outside the default grid is simply not run.

The full grid:

* estimators: every registered name (`gradest.list_estimators`) once per variant it declares at
  registration (``register_estimator(..., variants=[...])``: REINFORCE with each baseline,
  Gumbel-softmax soft and hard; others their defaults). A grid label is `gradest.labels`'
  ``name[key=value,...]`` (options sorted), e.g. ``reinforce[baseline=loo]``; `parse_label`
  inverts it. Labels name only the declared options, not every default, so a new option with
  a default keeps a benchmark's history.
* tasks: every registered task (`gradest.list_tasks`) once per declared variant (labelled the
  same way).
* backends: the registered ones (`gradest.backends.backend_names`); devices: ``cpu``, and
  ``cuda`` where an NVIDIA GPU is present (`grid_devices`).

**One suite per distribution kind.** An estimator runs only on tasks of a distribution it
supports, so the full product estimator x task is mostly n/a. `suites()` splits the grid by
the tasks' ``distribution_kind`` (categorical, bernoulli, normal, and any kind a plugin
brings): a suite's estimators are those that support the kind, its tasks those of the kind.
Each benchmark class is declared once (`suite_classes` makes one subclass per kind, named
``<Class>_<kind>``, e.g. ``GradientEstimate_bernoulli``), so asv shows and compares only
points that can run, up to the few an estimator's extra needs rule out (`skip_reason`,
`runnable_fraction`).

A grid point that cannot run is skipped, never failed: `prepare` raises NotImplementedError
(asv's skip) where the harness's own check refuses the estimator x task combination
(`gradest.measure.check_compatible`: `UnsupportedCombinationError`), where the framework is
not installed, and for ``cuda`` without a GPU. Any other error is a real failure and shows as
one. A plugin estimator that cannot be built without options is in no suite (`unbuildable`
names it and why).

Sizes: each task declares its own (`gradest.task.BenchmarkSizes` in ``Task.benchmark_sizes``:
R of the timed vectorized call and of the statistics, and the training budget), read by
`settings`. Every estimate averages ``NUM_SAMPLES`` samples (at least the estimator's
``min_samples``), so estimators are compared at equal sample counts. Seeds are fixed (`SEED`).

**Computed once per grid point** (`point_values`): the statistics and the trained loss of a
grid point are read by several ``track_`` benchmarks, each its own process. The first computes
them and leaves them, as a JSON file, in the folder of the run's ``setup_cache`` (asv runs a
suite's benchmarks in that folder, and removes it after the run); the others read it. A
``--bench`` selection therefore pays only for the grid points it runs.

**The process** (`configure_process`, which every benchmark's setup calls when it builds its
backend, `backend_or_skip`): one intra-op thread per framework (``GRADEST_BENCH_THREADS``), the
installed frameworks imported, and under asv the tasks built (data loaded) and compiled
functions cached on disk (`compilation_cache_dir`). Importing this module changes nothing,
except in asv's fork server (``launch_method`` in asv.conf.json; `asv_command`), which imports
the suites once and forks a process per benchmark and grid point: there it configures the
process at once, and imports the modules a first computation imports lazily
(`preimport_first_call_modules`: learned from a throwaway forked child that computes one
estimate, training step and statistic per backend and kind; torch's first functorch call alone
imports ~800 modules, seconds each process), so imports and data are paid once per run, not
once per grid point. asv's other processes (discovery, ``setup_cache``) only list the grid and
skip all of that. Importing modules starts no threads and initializes no device, so forking
afterwards is safe. What each framework needs is declared by its reference module
(`benchmarks._references`) or learned; this module names none.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import itertools
import json
import os
import select
import shutil
import signal
import sys
import time
import traceback
from typing import Any, NamedTuple

import gradest
from gradest.backends import available_backends, backend_entry, backend_names, get_backend
from gradest.labels import make_label, parse_label  # noqa: F401 -- parse_label: the grid's inverse
from gradest.measure import UnsupportedCombinationError, check_compatible
from gradest.registry import TASKS, core_variants, estimator_variants, task_variants
from gradest.sweep.store import atomic_write_text
from gradest.task import BenchmarkSizes

from . import _references

#: intra-op threads of every timed benchmark (``GRADEST_BENCH_THREADS``, default 1): on a
#: shared machine, tiny operations on several threads time at 5-40x their best
THREADS = int(os.environ.get("GRADEST_BENCH_THREADS", "1"))
#: every gradient estimate averages this many samples (more where an estimator needs more)
NUM_SAMPLES = 4
#: the seed of every benchmark's noise
SEED = 0
PARAM_NAMES = ["estimator", "task", "backend", "device"]
#: the environment variable that chooses the grid (`grid_name`), and the grids it may name
GRID_VARIABLE = "GRADEST_ASV_GRID"
GRIDS = {
    "default": "each estimator's core variants on one representative task per distribution kind",
    "full": "every estimator x task x declared variant",
}
#: the default grid's task of each distribution kind: the small task of the kind with an exact
#: gradient (statistics against truth, cheap to trace). A kind not named here (a plugin's), or
#: whose task is not registered, takes its first task in registry order (`representative_tasks`)
DEFAULT_TASKS = {"categorical": "bandit", "bernoulli": "binary_toy", "normal": "gaussian_quadratic"}


class StableTiming:
    """asv timing settings that give a figure stable on a shared machine. Samples of one
    process agree closely, but processes differ (JAX's by 20-40% on this kind of machine), so
    the samples come from `rounds` processes (asv interleaves them with the other benchmarks,
    and ``asv continuous --interleave-rounds`` with the other commit's): in each, a warm-up,
    then between 5 and 10 repeats of one call (at most 10 s). asv reports the median and
    interquartile range of all samples. A timed class inherits them."""

    rounds = 4
    warmup_time = 0.5
    number = 1
    repeat = (5, 10, 10.0)
    min_run_count = 5


# ---- the process (see the module docstring) -------------------------------------------------
def under_asv() -> bool:
    """Whether asv's benchmark runner imported the suites (not, e.g., pytest)."""
    return os.environ.get("ASV") == "true" or "asv_runner" in sys.modules


def asv_command() -> str | None:
    """The command of asv's runner script this process runs (``python .../asv/benchmark.py
    COMMAND ...``): ``"run_server"`` (the fork server), ``"discover"``, ``"setup_cache"``,
    ``"run"`` (a spawned benchmark), ...; None outside asv or where it cannot tell."""
    if not under_asv() or len(sys.argv) < 2 or os.path.basename(sys.argv[0]) != "benchmark.py":
        return None
    return sys.argv[1]


#: asv's processes that only list the suites (no benchmark runs in them): no set-up at import
LISTING_COMMANDS = ("discover", "setup_cache", "check")


def compilation_cache_dir() -> str | None:
    """Where compiled functions are cached under asv: ``$JAX_COMPILATION_CACHE_DIR`` when set,
    else ``.asv/jax-cache`` beside asv.conf.json; None outside asv (no side effects on a process
    that merely runs the suites' code, e.g. pytest)."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    if not under_asv():
        return None
    root = os.environ.get("ASV_CONF_DIR") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(root, ".asv", "jax-cache")


@functools.lru_cache(maxsize=None)
def _configure_once() -> None:
    """The once-per-process part of `configure_process`."""
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    installed = available_backends()
    for framework, thread_environment in _references.each_framework("thread_environment"):
        for name, value in thread_environment(THREADS).items():  # before the framework starts
            os.environ.setdefault(name, value)
    for name in installed:  # imported once, before asv's fork server forks
        for package in backend_entry(name).packages[:1]:
            importlib.import_module(package)
    if under_asv():
        for label in task_labels():  # built (data loaded) once, in the fork server
            try:
                build_task(label)
            except Exception:  # reported by the grid points of that task
                pass
    cache = compilation_cache_dir()
    if cache:
        for framework, use_cache in _references.each_framework("use_compilation_cache"):
            if framework in installed:
                use_cache(cache)


def configure_process() -> None:
    """Set up this process for timing (idempotent; `backend_or_skip` calls it for every
    benchmark's setup): the threads, the frameworks imported, and under asv the tasks built and
    the compilation cache."""
    _configure_once()
    installed = available_backends()
    for framework, set_threads in _references.each_framework("set_threads"):
        if framework in installed:
            set_threads(THREADS)


# ---- which grid -----------------------------------------------------------------------------
def grid_name() -> str:
    """The grid ``GRADEST_ASV_GRID`` names: ``"default"`` (unset or empty) or ``"full"``;
    ValueError naming the grids for any other value (raised when asv imports the suites, before
    any benchmark runs)."""
    raw = os.environ.get(GRID_VARIABLE, "")
    name = raw.strip().lower() or "default"
    if name not in GRIDS:
        choices = "; ".join(f"{key!r}: {what}" for key, what in GRIDS.items())
        raise ValueError(f"{GRID_VARIABLE}={raw!r} names no benchmark grid. Set it to one of {choices}, "
                         f"or unset it for 'default' (docs/benchmarks.md).")
    return name


def _check_grid(grid: str | None) -> str:
    if grid is None:
        return grid_name()
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; grids: {', '.join(GRIDS)}")
    return grid


# ---- the fork server's imports (see the module docstring) -----------------------------------
def _warm_up() -> None:
    """One estimate, one training step and one statistic of the first runnable default-grid
    point of each backend on cpu, at tiny sizes (what the grid's processes compute first)."""
    from gradest.measure import GradientSampler, gradient_stats
    from gradest.training import Trainer

    done = set()
    for point in all_points("default"):
        estimator, task, backend, device = point
        if device != "cpu" or backend in done or skip_reason(point) is not None:
            continue
        done.add(backend)
        try:
            case = prepare(*point)
            GradientSampler(case.task, case.estimator, backend=case.backend, num_samples=case.num_samples,
                            seed=SEED).run(2)
            Trainer(case.task, case.estimator, backend=case.backend, seed=SEED, num_samples=case.num_samples,
                    optimizer="adam").step()
            gradient_stats(case.task, case.estimator, backend=case.backend, num_replicates=2,
                           num_samples=case.num_samples, seed=SEED)
        except Exception:  # a broken point fails in its own benchmarks, not here
            continue


def first_call_modules(timeout: float = 300.0) -> list[str]:
    """The modules the grid's first computations import lazily (e.g. torch's functorch imports
    torch._dynamo, ~800 modules, on its first call), learned in a forked child that runs
    `_warm_up` and reports what it imported; this process computes nothing. [] where there is
    no fork, or when the child fails or takes longer than ``timeout`` seconds."""
    if not hasattr(os, "fork"):
        return []
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, report the new modules, exit without cleanup
        status = 1
        try:
            os.close(read_end)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            before = set(sys.modules)
            _warm_up()
            names = sorted(name for name in set(sys.modules) - before if sys.modules.get(name) is not None)
            with os.fdopen(write_end, "wb") as out:
                out.write("\n".join(names).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    data, deadline = b"", time.monotonic() + timeout
    with os.fdopen(read_end, "rb", buffering=0) as reader:
        while (left := deadline - time.monotonic()) > 0 and select.select([reader], [], [], left)[0]:
            chunk = reader.read(1 << 16)
            if not chunk:
                break
            data += chunk
        else:  # timed out
            os.kill(pid, signal.SIGKILL)
            data = b""
    _, status = os.waitpid(pid, 0)
    return data.decode().split() if status == 0 else []


def preimport_first_call_modules() -> int:
    """Import `first_call_modules` here (parents first), so that the processes forked from this
    one do not each import them; the number imported. A module that fails to import alone is
    left to be imported (or fail) where it is used."""
    imported = 0
    for name in sorted(first_call_modules(), key=lambda n: (n.count("."), n)):
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
            imported += 1
        except Exception:
            pass
    return imported


# ---- labels and suites ----------------------------------------------------------------------
def estimator_labels() -> list[str]:
    """Grid labels of the estimators (the full grid): registry order, each estimator's declared
    variants."""
    return [make_label(name, opts) for name in gradest.list_estimators() for opts in estimator_variants(name)]


def core_estimator_labels() -> list[str]:
    """The default grid's estimator labels: registry order, each estimator's ``core`` variants
    (none for an estimator that declares none)."""
    return [make_label(name, opts) for name in gradest.list_estimators() for opts in core_variants(name)]


def task_labels() -> list[str]:
    """Grid labels of the tasks (the full grid): registry order, each task's declared variants."""
    return [make_label(name, opts) for name in gradest.list_tasks() for opts in task_variants(name)]


def representative_tasks() -> dict[str, str]:
    """{distribution kind: the default grid's task label}: ``DEFAULT_TASKS[kind]`` where that
    task is registered and of that kind, else the kind's first task label (registry order)."""
    out: dict[str, str] = {}
    for label in task_labels():
        kind = task_kind(label)
        if DEFAULT_TASKS.get(kind) == label:
            out[kind] = label
        else:
            out.setdefault(kind, label)
    return out


def grid_backends() -> list[str]:
    """The registered backends, in preference order (installed or not: a missing one skips)."""
    return backend_names()


def grid_devices() -> list[str]:
    """``cpu``, and ``cuda`` where an NVIDIA GPU is present: a CPU machine's grid has no rows
    that could only be skipped."""
    return ["cpu", "cuda"] if gpu_present() else ["cpu"]


def task_kind(task_label: str) -> str:
    """The distribution kind of a task label (the factory's class attribute, else the built
    task's)."""
    name, _ = parse_label(task_label)
    kind = getattr(TASKS.entry(name).factory, "distribution_kind", "")
    return kind if isinstance(kind, str) and kind else build_task(task_label).distribution_kind


@functools.lru_cache(maxsize=None)
def _estimator_support(label: str) -> frozenset | str:
    """The kinds an estimator label supports, or why it cannot be built with its options."""
    try:
        return frozenset(build_estimator(label).supports)
    except NotImplementedError as err:
        return str(err)


def unbuildable() -> dict[str, str]:
    """{estimator label: reason} of the estimators left out of every suite."""
    return {label: why for label in estimator_labels() if isinstance(why := _estimator_support(label), str)}


def _supporting(labels: list[str], kind: str) -> list[str]:
    return [e for e in labels if not isinstance(s := _estimator_support(e), str) and kind in s]


def suites(grid: str | None = None) -> dict[str, list[list[str]]]:
    """{distribution kind: asv ``params`` [estimators, tasks, backends, devices]} of ``grid``
    (default: the one ``GRADEST_ASV_GRID`` names, `grid_name`).

    ``"full"``: per kind of the registered tasks (registry order), the estimators that support
    it and its tasks. ``"default"``: the same kinds, each with its representative task
    (`representative_tasks`) and the ``core`` estimator labels that support it; a kind that no
    core variant supports (a plugin's) takes the first declared variant of each estimator that
    supports it. Every default suite is a subset of the full suite of its kind, in its order."""
    grid = _check_grid(grid)
    by_kind: dict[str, list[str]] = {}
    for label in task_labels():
        by_kind.setdefault(task_kind(label), []).append(label)
    full_estimators = estimator_labels()
    if grid == "default":
        representative = representative_tasks()
        by_kind = {kind: [representative[kind]] for kind in by_kind}
        core = set(core_estimator_labels())
        first = {make_label(name, estimator_variants(name)[0]) for name in gradest.list_estimators()}
    out = {}
    for kind, tasks in by_kind.items():
        estimators = _supporting(full_estimators, kind)
        if grid == "default":
            # in the full grid's order, so that a default suite is a sub-grid of the full one
            estimators = [e for e in estimators if e in core] or [e for e in estimators if e in first]
        if estimators:
            out[kind] = [estimators, tasks, grid_backends(), grid_devices()]
    return out


def suite_classes(base: type, namespace: dict, devices: list[str] | None = None,
                  grid: str | None = None) -> list[type]:
    """One subclass of ``base`` per suite of ``grid`` (default: `grid_name`'s),
    ``<base name without _>_<kind>``, put in ``namespace`` (the module's globals, where asv
    finds them); ``devices`` narrows the devices (e.g. ``["cuda"]``: no suite when none is
    present)."""
    made = []
    for kind, params in suites(grid).items():
        params = list(params)
        if devices is not None:
            params[3] = [d for d in params[3] if d in devices]
            if not params[3]:
                continue
        name = f"{base.__name__.lstrip('_')}_{kind}"
        cls = type(name, (base,), {"params": params, "__module__": namespace["__name__"],
                                   "__doc__": f"{base.__doc__} Suite: the {kind} tasks."})
        namespace[name] = cls
        made.append(cls)
    return made


def grid_points(params: list[list[str]]):
    """Every (estimator, task, backend, device) of ``params`` (a suite's)."""
    return list(itertools.product(*params))


def all_points(grid: str | None = None) -> list[tuple]:
    """Every grid point of every suite of ``grid`` (default: `grid_name`'s)."""
    return [p for params in suites(grid).values() for p in grid_points(params)]


def settings(task_label: str) -> BenchmarkSizes:
    """The sizes the task of ``task_label`` declares (``Task.benchmark_sizes``)."""
    return getattr(build_task(task_label), "benchmark_sizes", None) or BenchmarkSizes()


# ---- building and skipping ------------------------------------------------------------------
def gpu_present() -> bool:
    """Whether an NVIDIA driver is installed (cheap: no framework, no device initialized)."""
    return os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi") is not None


def _skip_missing_device(device: str) -> None:
    if device == "cuda" and not gpu_present():
        raise NotImplementedError("device 'cuda' skipped: this machine has no NVIDIA GPU")


def backend_or_skip(backend: str, device: str, dtype: str = "float32", **options):
    """The `gradest.backends.Backend`, in a process set up for timing (`configure_process`),
    or NotImplementedError when it cannot exist here."""
    _skip_missing_device(device)
    configure_process()
    try:
        return get_backend(backend, device=device, dtype=dtype, **options)
    except ImportError as err:
        raise NotImplementedError(f"backend {backend!r} skipped: {err}") from err
    except RuntimeError as err:  # gradest's "no CUDA device for this framework" error
        raise NotImplementedError(f"{backend} on {device} skipped: {err}") from err


@functools.lru_cache(maxsize=None)
def build_task(task_label: str):
    """The task of a grid label (cached: data-driven tasks load their data once per process)."""
    name, options = parse_label(task_label)
    return gradest.get_task(name, **options)


def build_estimator(label: str):
    """The estimator of a grid label; NotImplementedError for a plugin that needs options."""
    name, options = parse_label(label)
    try:
        return gradest.get_estimator(name, **options)
    except TypeError as err:  # a factory with required arguments
        raise NotImplementedError(
            f"estimator {name!r} cannot be built with default options ({err}); add its options to "
            "declare variants=[{...}] with its options at registration to benchmark it") from err


class Case(NamedTuple):
    """One runnable grid point."""

    task: Any
    estimator: Any
    backend: Any  # a gradest Backend
    num_samples: int
    sizes: BenchmarkSizes


def _objects(estimator: str, task: str, device: str):
    """(estimator, task, S) of a grid point, or NotImplementedError naming why it cannot run
    here; the cheap checks (a GPU at all, the harness's compatibility check) before any
    framework work."""
    _skip_missing_device(device)
    est = build_estimator(estimator)
    task_obj = build_task(task)
    num_samples = max(NUM_SAMPLES, int(est.min_samples))
    try:
        check_compatible(task_obj, est, num_samples)
    except UnsupportedCombinationError as err:
        raise NotImplementedError(f"unsupported combination: {err}") from err
    return est, task_obj, num_samples


def prepare(estimator: str, task: str, backend: str, device: str) -> Case:
    """The objects of one grid point, or NotImplementedError (asv: skipped) naming why it
    cannot run here."""
    est, task_obj, num_samples = _objects(estimator, task, device)
    return Case(task_obj, est, backend_or_skip(backend, device), num_samples, settings(task))


def skip_reason(point) -> str | None:
    """Why a grid point is skipped on this machine, or None when it runs: `prepare`'s checks,
    with the framework only looked up, not imported."""
    estimator, task, backend, device = point
    try:
        _objects(estimator, task, device)
    except NotImplementedError as err:
        return str(err)
    if backend not in available_backends():
        return f"backend {backend!r} skipped: it is not installed"
    return None


def runnable_fraction(points) -> float:
    """The share of ``points`` that run here (`skip_reason` None)."""
    points = list(points)
    return sum(skip_reason(p) is None for p in points) / max(1, len(points))


# ---- values computed once per grid point per run (see the module docstring) ----------------
def compute_entry(point: tuple, compute) -> dict:
    """``{"values": compute(case)}`` (a dict of floats) of one grid point, ``{"skip": reason}``
    or ``{"error": traceback}``: a broken grid point fails alone, in its own benchmarks."""
    try:
        case = prepare(*point)
    except NotImplementedError as err:
        return {"skip": str(err)}
    try:
        return {"values": {k: float(v) for k, v in compute(case).items()}}
    except Exception:  # reported by the grid point's own benchmarks
        return {"error": traceback.format_exc()}


def run_folder() -> str:
    """A suite's ``setup_cache``: the folder asv runs the suite's benchmarks in for this run
    (its working directory), where `point_values` leaves what it computed."""
    return os.getcwd()


def point_values(folder: str, name: str, point, compute) -> dict:
    """``compute(case)`` of one grid point (a dict of floats), computed once per run: the
    first call leaves it in ``folder`` (`run_folder`) as ``<name>-<hash of point>.json``
    (written atomically), later calls, in other processes, read it. A grid point that cannot
    run raises NotImplementedError (skipped) every time; one whose computation raised raises
    RuntimeError with the traceback (failed)."""
    point = tuple(point)
    digest = hashlib.sha1(json.dumps([name, *point]).encode()).hexdigest()[:16]
    path = os.path.join(folder, f"{name}-{digest}.json")
    try:
        with open(path) as fh:
            entry = json.load(fh)
    except (OSError, ValueError):  # not computed yet in this run (or a torn file: recompute)
        entry = compute_entry(point, compute)
        atomic_write_text(path, json.dumps(entry))
    if "skip" in entry:
        raise NotImplementedError(entry["skip"])
    if "error" in entry:
        raise RuntimeError(f"computing the results of {point} failed:\n{entry['error']}")
    return entry["values"]


if under_asv() and asv_command() not in LISTING_COMMANDS:
    grid_name()  # a bad GRADEST_ASV_GRID is refused before any set-up
    configure_process()  # asv's fork server imports the suites once: set it up before it forks
    if asv_command() == "run_server":
        preimport_first_call_modules()
