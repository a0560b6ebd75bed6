"""The sweep engine behind ``gradest run``: a grid of cells, each run once, kept on disk.

A *cell* is one measurement: its kind, task (with options), estimator (with options),
backend, device, seed, number of samples S and a few kind-specific settings, plus what
computes it: the noise scheme's version (`gradest.noise.NOISE_VERSION`) and the fingerprint of
the estimator's and the task's code (`gradest.provenance.code_fingerprint`: gradest's version
and the source of the modules that define them, a plugin's file included), taken when the cell
is made. Kinds:

* ``gradient``: `gradest.gradient_stats` (variance, bias, MSE, cosine, seconds per
  estimate) of an estimator variant on a task at θ₀, for each S of the budget and each seed;
* ``temperature``: the same for ``gumbel_softmax`` at several temperatures τ on a
  categorical task (the bias/variance trade-off of the relaxation);
* ``train``: `gradest.train` of a task with an estimator; its history is kept;
* ``lasso_delta``: ``exact`` training of ``lasso_huber`` at several Huber widths δ, and the
  gap of the final L1 objective to scikit-learn's Lasso optimum.

Storage (a results folder, default ``results/``)::

    cells/<key>.json   one file per finished cell (status done | skipped | failed)
    results.csv        one row per cell of the last run (all kinds; tidy), with the cell's
                       noise_version and code_fingerprint
    history.csv        training histories, long format, with the cell columns
    manifest.json      what was asked for and run: the arguments, the budget after the
                       overrides (`resolve_budget`), the noise version, versions

Every file is written atomically (a temporary file in the same folder, then ``os.replace``),
so no reader ever sees a partial file. A cell's file is written when the cell finishes;
re-running the same sweep reuses the cells that are done or skipped (their key is a hash of
the cell's settings, noise version and code fingerprint) and re-runs the failed and missing
ones: an interrupted sweep loses at most the cell that was running, and no row is ever
duplicated. Editing an estimator's or a task's module (or a helper it imports, see
`gradest.provenance`) changes the key of its cells, so the next run computes them again
instead of reusing results of the old code; the other cells are still reused. An estimator x
task combination that cannot run (`gradest.measure.UnsupportedCombinationError`) is recorded
as skipped with the reason; any other error as failed with its message, and the sweep goes on.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from gradest.provenance import NOISE_VERSION, code_fingerprint
from gradest.registry import ESTIMATORS, TASKS, get_estimator, get_task

KINDS = ("gradient", "temperature", "train", "lasso_delta")
STATUSES = ("done", "skipped", "failed")
#: a cell's settings change meaning when this changes: old cell files are then not reused
#: (2: the key and the record carry the noise version and the code fingerprint)
CELL_FORMAT = 2
#: the code fingerprint of a cell whose estimator or task is not registered (it then fails)
UNREGISTERED = "unregistered"

#: built-in estimator variants swept by default (others: their default options)
BUILTIN_VARIANTS: dict[str, list[dict]] = {
    "reinforce": [{"baseline": b} for b in ("none", "moving_average", "loo", "optimal")],
    "gumbel_softmax": [{"hard": False}, {"hard": True}],
}

#: categorical tasks for the Gumbel-softmax temperature sweep, by preference (the first one swept
#: runs it): the VAE's cost is nonlinear in z, so the relaxed and straight-through variants differ
#: (on the bandit, linear in z, their gradients coincide)
TEMPERATURE_TASKS = ("categorical_vae", "bandit")
TEMPERATURE_ESTIMATOR = "gumbel_softmax"
LASSO_TASK = "lasso_huber"
#: about this many logged steps per training history
HISTORY_POINTS = 40
#: timed vectorized calls per seconds_per_estimate (best of)
TIMING_REPEATS = 3


@dataclass(frozen=True)
class Budget:
    """How much work each kind of cell does (``--quick`` or the full default)."""

    num_replicates: int
    sample_sizes: tuple[int, ...]
    seeds: int
    train_steps: int
    train_num_samples: int
    temperatures: tuple[float, ...]
    lasso_deltas: tuple[float, ...]
    lasso_steps: int
    #: Adam's learning rate for the Lasso δ sweep (converges within lasso_steps for δ >= 0.01)
    lasso_learning_rate: float = 0.05
    #: task options per task name (small sizes for --quick); only options the task accepts are passed
    task_options: dict = field(default_factory=dict)
    #: training steps per task name, overriding ``train_steps``
    task_train_steps: dict = field(default_factory=dict)
    #: learning rate per task name for training (None: the trainer's default)
    task_learning_rates: dict = field(default_factory=dict)
    #: S values per task name, overriding ``sample_sizes`` (a large task measured at fewer S)
    task_sample_sizes: dict = field(default_factory=dict)
    #: replicates per task name, overriding ``num_replicates``
    task_num_replicates: dict = field(default_factory=dict)
    #: on the backends after the first, only these variants of the default estimator set
    #: ("name" or "name:key=value,..."; None: all) -- JAX compiles every cell's function, so
    #: the quick budget runs the whole registry on the first backend and a core set on the rest
    secondary_estimators: tuple | None = None
    #: S values on the backends after the first (None: ``sample_sizes``)
    secondary_sample_sizes: tuple | None = None
    #: whether the temperature sweep also runs on the backends after the first
    secondary_temperature: bool = True
    #: seeds on the backends after the first (None: as on the first)
    secondary_seeds: int | None = None
    #: replicates of the temperature sweep's cells (None: the task's); resolving a small bias
    #: needs many: the noise floor of the measured bias² is variance / R
    temperature_replicates: int | None = None
    #: seeds of the gradient and temperature cells (None: ``seeds``); their intervals already
    #: come from the replicates, so a quick sweep measures them once
    gradient_seeds: int | None = None
    #: variants that train (as ``secondary_estimators``; None: all) -- training curves of the
    #: core estimators over several seeds are the figure, the rest costs the demo minutes
    train_estimators: tuple | None = None


QUICK = Budget(
    num_replicates=200, sample_sizes=(1, 4, 16), seeds=2, train_steps=60, train_num_samples=4,
    temperatures=(0.1, 0.3, 1.0, 3.0), lasso_deltas=(1.0, 0.1, 0.01), lasso_steps=150,
    task_options={"categorical_vae": {"num_latents": 2, "num_categories": 4, "hidden": [32],
                                      "batch_size": 20, "eval_points": 100, "iw_samples": 4}},
    task_train_steps={"categorical_vae": 20},
    task_learning_rates={"bandit": 0.1, "binary_toy": 0.1, "gaussian_quadratic": 0.05, "lasso_huber": 0.05},
    task_sample_sizes={"categorical_vae": (1, 4)}, task_num_replicates={"categorical_vae": 100},
    secondary_estimators=("reinforce:baseline=loo", "gumbel_softmax:hard=false", "pathwise"),
    secondary_sample_sizes=(4,), secondary_temperature=False, secondary_seeds=1, temperature_replicates=400,
    gradient_seeds=1,
    train_estimators=("exact", "reinforce:baseline=none", "reinforce:baseline=loo", "gumbel_softmax:hard=false",
                      "straight_through", "pathwise", "disarm"),
)

FULL = Budget(
    num_replicates=2000, sample_sizes=(1, 4, 16, 64), seeds=3, train_steps=400, train_num_samples=4,
    temperatures=(0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0), lasso_deltas=(1.0, 0.3, 0.1, 0.03, 0.01, 0.003),
    lasso_steps=1000, task_options={}, task_train_steps={"categorical_vae": 300},
    task_learning_rates={"bandit": 0.1, "binary_toy": 0.1, "gaussian_quadratic": 0.05, "lasso_huber": 0.05},
)


def canonical(obj) -> str:
    """Stable JSON of settings (sorted keys, floats as repr), the basis of cell keys."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def variant_label(name: str, options: dict) -> str:
    """``name[k=v,...]`` as `GradientEstimator.label` writes it (used when it cannot be built)."""
    if not options:
        return name
    return f"{name}[{','.join(f'{k}={v}' for k, v in sorted(options.items()))}]"


@dataclass(frozen=True)
class Cell:
    """One measurement of the sweep. ``settings`` holds the kind-specific numbers.

    ``noise_version`` and ``code`` (the `code_fingerprint` of the estimator and the task, or
    `UNREGISTERED`) are not arguments: they are taken when the cell is made (also by
    ``dataclasses.replace``), so a cell describes the code that was loaded when it was
    planned, and are part of its key."""

    kind: str
    task: str
    estimator: str
    backend: str
    device: str = "cpu"
    seed: int = 0
    num_samples: int = 1
    task_options: dict = field(default_factory=dict, hash=False)
    estimator_options: dict = field(default_factory=dict, hash=False)
    settings: dict = field(default_factory=dict, hash=False)
    noise_version: int = field(init=False)
    code: str = field(init=False)

    def __post_init__(self):
        assert self.kind in KINDS, f"unknown cell kind {self.kind!r}"
        try:
            code = code_fingerprint(self.estimator, self.task)
        except ValueError:  # not registered: the cell fails when it runs, with the registry's message
            code = UNREGISTERED
        object.__setattr__(self, "noise_version", NOISE_VERSION)
        object.__setattr__(self, "code", code)

    def spec(self) -> dict:
        return {"format": CELL_FORMAT, "kind": self.kind, "task": self.task, "task_options": self.task_options,
                "estimator": self.estimator, "estimator_options": self.estimator_options,
                "backend": self.backend, "device": self.device, "seed": int(self.seed),
                "num_samples": int(self.num_samples), "settings": self.settings,
                "noise_version": int(self.noise_version), "code": self.code}

    @property
    def key(self) -> str:
        """16 hex digits identifying the cell's settings, noise version and code (its file name
        under ``cells/``)."""
        return hashlib.sha1(canonical(self.spec()).encode()).hexdigest()[:16]

    def describe(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in sorted(self.settings.items())
                        if k in ("temperature", "delta", "steps"))
        return (f"{self.kind} {self.task} {variant_label(self.estimator, self.estimator_options)} "
                f"{self.backend}/{self.device} S={self.num_samples} seed={self.seed}{extra}")


# ---------------------------------------------------------------------------------------
# planning


def parse_estimator_spec(text: str) -> tuple[str, dict | None]:
    """``"name"`` -> (name, None: all default variants); ``"name:k=v,k=v"`` -> one variant."""
    name, _, rest = text.partition(":")
    name = name.strip()
    if not rest:
        return name, None
    options = {}
    for item in rest.split(","):
        if not item.strip():
            continue
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"estimator option {item!r} in {text!r} is not of the form key=value "
                             f"(e.g. reinforce:baseline=loo)")
        options[key.strip()] = parse_value(value.strip())
    return name, options


def parse_value(text: str):
    """A command-line option value: JSON where it parses (numbers, lists, true/false), True/False
    as Python writes them, else the string itself."""
    if text in ("True", "False"):
        return text == "True"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def estimator_variants(names: Sequence[str] | None = None) -> list[tuple[str, dict]]:
    """(name, options) of every variant to sweep: each registered estimator (or those named)
    with its default options, plus the built-in variants of `BUILTIN_VARIANTS`."""
    known = ESTIMATORS.names()
    chosen = list(names) if names else known
    out: list[tuple[str, dict]] = []
    for text in chosen:
        name, options = parse_estimator_spec(text)
        if name not in known:
            raise ValueError(f"unknown estimator {name!r}; known estimators: {', '.join(known)}")
        if options is not None:
            variants = [options]
        else:
            variants = BUILTIN_VARIANTS.get(name, [{}]) if ESTIMATORS.entries[name].source == "built-in" else [{}]
        for opts in variants:
            if (name, opts) not in out:
                out.append((name, dict(opts)))
    return out


def task_options(name: str, budget: Budget) -> dict:
    """The budget's options for task ``name``, restricted to those its factory accepts."""
    wanted = dict(budget.task_options.get(name, {}))
    if not wanted:
        return {}
    entry = TASKS.entry(name)
    valid = set(entry.option_names())
    return {k: v for k, v in wanted.items() if k in valid}


def check_names(kind: str, names: Iterable[str], known: Sequence[str]) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {kind}{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                         f"known {kind}s: {', '.join(known)}")


def resolve_budget(budget: Budget | None = None, *, quick: bool = False, num_replicates: int | None = None,
                   train_steps: int | None = None, seeds: int | None = None) -> Budget:
    """The budget a sweep runs: ``budget`` (default `QUICK` with ``quick``, else `FULL`) with the
    overrides applied. ``num_replicates`` replaces every replicate count (the per-task ones and
    the temperature sweep's too); ``train_steps`` the steps of every training cell (not the Lasso
    sweep's); ``seeds`` the seed count of every kind on every backend. Bad values raise
    ValueError. `plan` sweeps this budget; ``gradest run`` records it in ``manifest.json``."""
    budget = budget or (QUICK if quick else FULL)
    if num_replicates is not None:
        if int(num_replicates) < 2:
            raise ValueError(f"num_replicates must be at least 2 (a variance needs two estimates), got {num_replicates}")
        budget = dataclasses.replace(budget, num_replicates=int(num_replicates), task_num_replicates={},
                                     temperature_replicates=None)
    if train_steps is not None:
        if int(train_steps) < 1:
            raise ValueError(f"train_steps must be a positive integer, got {train_steps!r}")
        budget = dataclasses.replace(budget, train_steps=int(train_steps), task_train_steps={})
    if seeds is not None:
        budget = dataclasses.replace(budget, seeds=int(seeds), gradient_seeds=None, secondary_seeds=None)
    if budget.seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {budget.seeds if seeds is None else seeds!r}")
    return budget


def plan(tasks: Sequence[str] | None = None, estimators: Sequence[str] | None = None,
         backends: Sequence[str] = ("torch",), *, device: str = "cpu", seeds: int | None = None,
         quick: bool = False, num_replicates: int | None = None, train_steps: int | None = None,
         budget: Budget | None = None, kinds: Sequence[str] = KINDS) -> list[Cell]:
    """The cells of a sweep, in the order they run: gradient, temperature, train, lasso_delta.

    ``tasks`` / ``estimators`` default to everything registered (estimators as
    `estimator_variants`); ``seeds``, ``num_replicates`` and ``train_steps`` override the
    budget's as `resolve_budget` states; unknown names raise ValueError."""
    budget = resolve_budget(budget, quick=quick, num_replicates=num_replicates, train_steps=train_steps,
                            seeds=seeds)
    check_names("kind", kinds, KINDS)
    known_tasks = TASKS.names()
    task_names = list(tasks) if tasks else known_tasks
    check_names("task", task_names, known_tasks)
    variants = estimator_variants(estimators)
    seed_list = list(range(budget.seeds))
    cells: list[Cell] = []
    primary = backends[0] if backends else None
    core = trained = None
    if budget.secondary_estimators is not None and not estimators:
        core = [v for v in estimator_variants(list(budget.secondary_estimators)) if v[0] in ESTIMATORS.entries]
    if budget.train_estimators is not None and not estimators:
        trained = [v for v in estimator_variants([n for n in budget.train_estimators
                                                  if n.split(":")[0] in ESTIMATORS.entries])]

    def backend_variants(backend):
        if backend == primary or core is None:
            return variants
        return [v for v in variants if v in core]

    def sample_sizes(task, backend):
        sizes = budget.task_sample_sizes.get(task, budget.sample_sizes)
        if backend == primary or budget.secondary_sample_sizes is None:
            return sizes
        return tuple(S for S in budget.secondary_sample_sizes if S in sizes) or sizes[-1:]

    def seeds_of(backend, measured=False):
        chosen = seed_list
        if measured and budget.gradient_seeds is not None:
            chosen = chosen[:budget.gradient_seeds]
        if backend == primary or budget.secondary_seeds is None:
            return chosen
        return chosen[:budget.secondary_seeds]

    def replicates(task):
        return int(budget.task_num_replicates.get(task, budget.num_replicates))

    def add(kind, task, est, opts, backend, seed, S, settings):
        cells.append(Cell(kind, task, est, backend, device, seed, S, task_options(task, budget), dict(opts),
                          dict(settings)))

    if "gradient" in kinds:
        for task in task_names:
            for backend in backends:
                for est, opts in backend_variants(backend):
                    for S in sample_sizes(task, backend):
                        for seed in seeds_of(backend, measured=True):
                            add("gradient", task, est, opts, backend, seed, S, {"num_replicates": replicates(task)})
    temperature_task = next((t for t in TEMPERATURE_TASKS if t in task_names), None)
    if "temperature" in kinds and temperature_task and any(e == TEMPERATURE_ESTIMATOR for e, _ in variants):
        for backend in backends if budget.secondary_temperature else backends[:1]:
            for hard in (False, True):
                for tau in budget.temperatures:
                    for seed in seeds_of(backend, measured=True):
                        add("temperature", temperature_task, TEMPERATURE_ESTIMATOR,
                            {"temperature": float(tau), "hard": hard}, backend, seed, 1,
                            {"num_replicates": budget.temperature_replicates or replicates(temperature_task),
                             "temperature": float(tau)})
    if "train" in kinds:
        for task in task_names:
            steps = int(budget.task_train_steps.get(task, budget.train_steps))
            lr = budget.task_learning_rates.get(task)
            for backend in backends:
                for est, opts in backend_variants(backend):
                    if trained is not None and (est, opts) not in trained:
                        continue
                    for seed in seeds_of(backend):
                        settings = {"steps": steps}
                        if lr is not None:
                            settings["learning_rate"] = lr
                        add("train", task, est, opts, backend, seed, budget.train_num_samples, settings)
    if "lasso_delta" in kinds and LASSO_TASK in task_names and (
            not estimators or any(e == "exact" for e, _ in variants)):
        if "delta" in TASKS.entry(LASSO_TASK).option_names():
            for delta in budget.lasso_deltas:
                for backend in backends:
                    cells.append(Cell("lasso_delta", LASSO_TASK, "exact", backend, device, 0, 1,
                                      {**task_options(LASSO_TASK, budget), "delta": float(delta)}, {},
                                      {"steps": int(budget.lasso_steps), "delta": float(delta),
                                       "learning_rate": float(budget.lasso_learning_rate)}))
    return cells


# ---------------------------------------------------------------------------------------
# running one cell


class CellRunner:
    """Runs cells, caching built tasks (a data-driven task loads its data once)."""

    def __init__(self):
        self._tasks: dict[str, Any] = {}

    def task(self, cell: Cell):
        key = canonical([cell.task, cell.task_options])
        if key not in self._tasks:
            self._tasks[key] = get_task(cell.task, **cell.task_options)
        return self._tasks[key]

    def __call__(self, cell: Cell) -> dict:
        """{"status", "reason", "row", "history"} for ``cell``; errors are caught and recorded
        (KeyboardInterrupt is not: the cell then has no file and re-runs next time)."""
        from gradest.measure import UnsupportedCombinationError, check_compatible

        start, cpu_start = time.perf_counter(), time.process_time()
        label = variant_label(cell.estimator, cell.estimator_options)
        out = {"status": "done", "reason": "", "row": {}, "history": None, "traceback": ""}
        try:
            task = self.task(cell)
            est = get_estimator(cell.estimator, **cell.estimator_options)
            label = est.label
            check_compatible(task, est, cell.num_samples)
            runner = getattr(self, f"_run_{cell.kind}")
            row, history = runner(cell, task, est)
            out["row"], out["history"] = row, history
        except UnsupportedCombinationError as err:
            out.update(status="skipped", reason=str(err))
        except Exception as err:  # noqa: BLE001 -- a failing cell is recorded, the sweep goes on
            out.update(status="failed", reason=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
        out["label"] = label
        out["elapsed_s"] = time.perf_counter() - start
        out["cpu_s"] = time.process_time() - cpu_start
        return out

    def _run_gradient(self, cell, task, est):
        from gradest.measure import gradient_stats

        stats = gradient_stats(task, est, backend=cell.backend, device=cell.device,
                               num_replicates=int(cell.settings["num_replicates"]),
                               num_samples=cell.num_samples, seed=cell.seed, timing_repeats=TIMING_REPEATS)
        row = {k: _scalar(v) for k, v in stats.items()
               if k not in ("task", "estimator", "backend", "device", "num_samples", "seed")}
        return row, None

    _run_temperature = _run_gradient

    def _train(self, cell, task, est):
        import gradest

        kwargs = {}
        if cell.settings.get("learning_rate") is not None:
            kwargs["learning_rate"] = cell.settings["learning_rate"]
        steps = int(cell.settings["steps"])
        start = time.perf_counter()
        result = gradest.train(task, est, backend=cell.backend, device=cell.device, steps=steps, seed=cell.seed,
                               num_samples=cell.num_samples, eval_every=max(1, steps // HISTORY_POINTS),
                               progress=False, **kwargs)
        seconds = time.perf_counter() - start
        history = pd.DataFrame(result.history)
        return result, history, seconds

    def _run_train(self, cell, task, est):
        result, history, seconds = self._train(cell, task, est)
        row = {"steps": int(cell.settings["steps"]), "train_seconds": seconds}
        if len(history):
            last = history.iloc[-1]
            for col in history.columns:
                if col in ("step",):
                    continue
                value = _scalar(last[col])
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    row[f"final_{col}"] = value
        return row, history

    def _run_lasso_delta(self, cell, task, est):
        result, history, seconds = self._train(cell, task, est)
        row = {"steps": int(cell.settings["steps"]), "delta": float(cell.settings["delta"]),
               "train_seconds": seconds}
        row.update(lasso_gap(task, result.params))
        if len(history):
            for col in ("loss", "exact_loss"):
                if col in history.columns:
                    row[f"final_{col}"] = _scalar(history[col].iloc[-1])
        return row, history


def lasso_gap(task, params) -> dict:
    """The unrelaxed Lasso objective F(w) at ``params`` against scikit-learn's optimum F(w*)
    (the task's ``objective(w)`` and ``reference()``), and the relaxation's bound alpha·d·δ/2."""
    objective = getattr(task, "objective", None)
    reference = getattr(task, "reference", None)
    if objective is None or reference is None:
        raise ValueError(f"task {task.name!r} offers no objective(w) and reference(): the Lasso δ sweep "
                         f"needs both to measure the gap to scikit-learn's optimum")
    w = np.asarray(params, dtype=np.float64)
    w_ref = np.asarray(reference(), dtype=np.float64)
    obj, obj_ref = float(objective(w)), float(objective(w_ref))
    out = {"objective": obj, "reference_objective": obj_ref, "objective_gap": obj - obj_ref,
           "relative_objective_gap": (obj - obj_ref) / obj_ref if obj_ref > 0 else math.nan,
           "distance_to_reference": float(np.linalg.norm(w - w_ref))}
    alpha, delta = getattr(task, "alpha", None), getattr(task, "delta", None)
    if alpha is not None and delta is not None:
        out["relaxation_bound"] = float(alpha) * w.size * float(delta) / 2.0
    return out


def _scalar(value):
    """A JSON/CSV-friendly scalar (numpy numbers -> Python; arrays -> lists)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


# ---------------------------------------------------------------------------------------
# storage


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_text(path, frame.to_csv(index=False))


def _to_json(obj) -> str:
    return json.dumps(obj, default=_json_default, allow_nan=True, indent=1)


class ResultStore:
    """A results folder: per-cell files under ``cells/`` and the consolidated tables."""

    def __init__(self, root):
        self.root = Path(root)
        self.cells_dir = self.root / "cells"

    def cell_path(self, cell: Cell) -> Path:
        return self.cells_dir / f"{cell.key}.json"

    def load_cell(self, cell: Cell) -> dict | None:
        """The record of ``cell`` when one was written with the same settings, else None."""
        path = self.cell_path(cell)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None  # unreadable (should not happen: files are written atomically): run again
        if record.get("cell") != json.loads(canonical(cell.spec())):
            return None
        return record

    def save_cell(self, cell: Cell, outcome: dict) -> dict:
        history = outcome.get("history")
        record = {
            "key": cell.key, "cell": json.loads(canonical(cell.spec())), "status": outcome["status"],
            "noise_version": cell.noise_version, "code_fingerprint": cell.code,
            "reason": outcome.get("reason", ""), "traceback": outcome.get("traceback", ""),
            "label": outcome.get("label") or variant_label(cell.estimator, cell.estimator_options),
            "elapsed_s": outcome.get("elapsed_s", math.nan), "cpu_s": outcome.get("cpu_s", math.nan),
            "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "row": outcome.get("row") or {},
            "history": None if history is None else json.loads(
                pd.DataFrame(history).to_json(orient="split", index=False, double_precision=15)),
        }
        atomic_write_text(self.cell_path(cell), _to_json(record))
        return record

    def consolidate(self, cells: Sequence[Cell]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Write results.csv (one row per cell that has a record) and history.csv atomically."""
        rows, histories = [], []
        for cell in cells:
            record = self.load_cell(cell)
            if record is None:
                continue
            rows.append(record_row(record))
            hist = record_history(record)
            if hist is not None:
                histories.append(hist)
        results = pd.DataFrame(rows)
        history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame(
            columns=list(ID_COLUMNS))
        atomic_write_csv(self.root / "results.csv", results)
        atomic_write_csv(self.root / "history.csv", history)
        return results, history

    def write_manifest(self, manifest: dict) -> None:
        atomic_write_text(self.root / "manifest.json", _to_json(manifest))


ID_COLUMNS = ("key", "kind", "task", "estimator", "estimator_name", "backend", "device", "seed", "num_samples")


def record_row(record: dict) -> dict:
    """The results.csv row of a cell record: identification, status, then the measured numbers."""
    cell = record["cell"]
    row = {
        "key": record["key"], "kind": cell["kind"], "task": cell["task"], "estimator": record["label"],
        "estimator_name": cell["estimator"], "backend": cell["backend"], "device": cell["device"],
        "seed": cell["seed"], "num_samples": cell["num_samples"], "status": record["status"],
        "reason": record.get("reason", ""), "elapsed_s": record.get("elapsed_s"), "cpu_s": record.get("cpu_s"),
        "task_options": canonical(cell["task_options"]), "estimator_options": canonical(cell["estimator_options"]),
        "noise_version": cell.get("noise_version"), "code_fingerprint": cell.get("code"),
    }
    for key, value in cell["settings"].items():
        row.setdefault(key, value)
    for key, value in (record.get("row") or {}).items():
        if isinstance(value, (list, dict)):
            value = canonical(value)
        row.setdefault(key, value)
    return row


def record_history(record: dict) -> pd.DataFrame | None:
    hist = record.get("history")
    if not hist:
        return None
    frame = pd.DataFrame(hist["data"], columns=hist["columns"])
    cell = record["cell"]
    ids = {"key": record["key"], "kind": cell["kind"], "task": cell["task"], "estimator": record["label"],
           "estimator_name": cell["estimator"], "backend": cell["backend"], "device": cell["device"],
           "seed": cell["seed"], "num_samples": cell["num_samples"]}
    if "delta" in cell["settings"]:
        ids["delta"] = cell["settings"]["delta"]
    for i, (k, v) in enumerate(ids.items()):
        if k in frame.columns:
            frame = frame.drop(columns=k)
        frame.insert(i, k, v)
    return frame


# ---------------------------------------------------------------------------------------
# the sweep


@dataclass
class SweepResult:
    out: Path
    cells: list[Cell]
    results: pd.DataFrame
    history: pd.DataFrame
    counts: dict
    reused: int

    @property
    def failures(self) -> pd.DataFrame:
        if self.results.empty:
            return self.results
        return self.results[self.results["status"] == "failed"]


def run_sweep(cells: Sequence[Cell], out, *, progress: bool = True, manifest: dict | None = None,
              runner: Callable[[Cell], dict] | None = None, console=None) -> SweepResult:
    """Run ``cells`` (skipping those already done in ``out``), writing each cell's file as it
    finishes and the consolidated tables at the end (also when interrupted)."""
    store = ResultStore(out)
    store.root.mkdir(parents=True, exist_ok=True)
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        raise ValueError("the sweep has duplicated cells (same settings twice)")
    store.write_manifest({
        **(manifest or {}), "cells": len(cells), "cell_format": CELL_FORMAT, "noise_version": NOISE_VERSION,
        "written_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(), "machine": platform.node(), "platform": platform.platform(),
        "versions": _versions(),
    })
    runner = runner or CellRunner()
    todo, reused = [], 0
    for cell in cells:
        record = store.load_cell(cell)
        if record is not None and record["status"] in ("done", "skipped"):
            reused += 1
        else:
            todo.append(cell)
    try:
        with _progress(progress, console) as bar:
            task_id = bar.add_task("cells", total=len(cells), completed=reused)
            for cell in todo:
                bar.update(task_id, description=cell.describe())
                outcome = runner(cell)
                store.save_cell(cell, outcome)
                bar.advance(task_id)
            bar.update(task_id, description="sweep finished")
    finally:
        results, history = store.consolidate(cells)
    counts = {s: int((results["status"] == s).sum()) if len(results) else 0 for s in STATUSES}
    return SweepResult(store.root, list(cells), results, history, counts, reused)


def _versions() -> dict:
    """gradest's and the frameworks' versions (those imported: a sweep imports its backends)."""
    import sys

    import gradest

    out = {"gradest": gradest.__version__}
    for name in ("numpy", "pandas", "torch", "jax", "optax", "sklearn"):
        module = sys.modules.get(name)
        if module is not None:
            out[name] = getattr(module, "__version__", "?")
    return out


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *a, **k):
        return 0

    def update(self, *a, **k):
        pass

    def advance(self, *a, **k):
        pass


def _progress(enabled: bool, console=None):
    if not enabled:
        return _NoProgress()
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    console = console or Console(stderr=True)
    return Progress(SpinnerColumn(), TextColumn("[progress.description]{task.description}", style="cyan"),
                    BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console)
