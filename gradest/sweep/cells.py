"""Cells and budgets: what one measurement of a sweep is, and how much work a sweep does.

A `Cell` is one measurement: its kind (a registered `gradest.sweep.kinds.CellKind`), task
(with options), estimator (with options), backend, device, seed, S and the kind's settings
(``{"num_replicates": 200}``, ``{"steps": 60, "learning_rate": 0.1}``, ``{"delta": 0.1}``).
Its key hashes all of that plus the noise scheme's version and the fingerprint of the code
that computes it (`gradest.provenance`), so a result is reused only for the same settings,
the same noise and the same code.

A `Budget` says which declared sizes a sweep uses (``"quick"`` or ``"full"``: every task
declares its `gradest.task.SweepSizes` for both, every kind its grids), how many seeds, and
the overrides (replicates, training steps, S values, learning rate, the variance tracked along
training). `BUDGET_LEVELS` names the three a user picks (``gradest run --budget``): `QUICK`,
`MEDIUM` (the quick sizes, every variant on every backend and trained, 3 seeds) and `FULL`.
What a sweep covers is declared on the plugins: an estimator's ``variants`` and ``core``
variants at registration, a task's ``sweep_sizes``, a kind's grid. `PlanContext` hands a
kind's ``plan`` the resolved selection.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

import numpy as np

from gradest.labels import make_label, parse_spec
from gradest.noise import NOISE_VERSION
from gradest.provenance import code_fingerprint
from gradest.registry import ESTIMATORS, TASKS, core_variants, estimator_variants
from gradest.task import BUDGETS, SweepSizes, sweep_sizes

__all__ = ["Cell", "Budget", "QUICK", "MEDIUM", "FULL", "BUDGET_LEVELS", "PlanContext", "canonical", "variants",
           "CELL_FORMAT", "UNREGISTERED", "STATUSES", "resolve_budget", "check_names", "samples_within"]

#: a cell's settings change meaning when this changes: old cell files are then not reused
#: (3: cell kinds are plugins and the cell code covers the kind's module)
CELL_FORMAT = 3
#: the code fingerprint of a cell whose estimator, task or kind is not registered (it then fails)
UNREGISTERED = "unregistered"
STATUSES = ("done", "skipped", "failed")


def canonical(obj) -> str:
    """Stable JSON of settings (sorted keys, floats as repr), the basis of cell keys."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


@dataclass(frozen=True)
class Cell:
    """One measurement of the sweep. ``settings`` holds the kind-specific numbers.

    ``noise_version`` (the noise scheme's) and ``code`` (the fingerprint of the estimator, the
    task and the kind, or `UNREGISTERED`) are not arguments; both are part of the key. ``code``
    is computed when first asked for (by ``key`` or ``spec``; a sweep asks for every key before
    it runs a cell), once per cell, so making a cell hashes no file; a copy made by
    ``dataclasses.replace`` computes its own. A pickled cell carries the value it computed."""

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
    noise_version: int = field(default=NOISE_VERSION, init=False)

    @cached_property
    def code(self) -> str:
        """The fingerprint of the code that computes the cell (`gradest.provenance`)."""
        try:
            return code_fingerprint(self.estimator, self.task, cell_kind=self.kind)
        except ValueError:  # not registered: the cell fails when it runs, with the registry's message
            return UNREGISTERED

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

    @property
    def label(self) -> str:
        """The estimator variant's label, as `GradientEstimator.label` writes it."""
        return make_label(self.estimator, self.estimator_options)

    def describe(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in sorted(self.settings.items()) if k != "num_replicates")
        return (f"{self.kind} {self.task} {self.label} {self.backend}/{self.device} S={self.num_samples} "
                f"seed={self.seed}{extra}")


@dataclass(frozen=True)
class Budget:
    """How much work a sweep does.

    ``name`` picks the sizes tasks and kinds declare (``"quick"`` or ``"full"``); ``seeds``
    seeds 0..seeds-1 of every cell, ``measured_seeds`` those of the measuring kinds (their
    intervals come from the replicates; None: ``seeds``); ``num_replicates`` and
    ``train_steps`` override every task's; with ``core_after_first`` the backends after the
    first run only the estimators' declared core variants, and with ``core_training`` only
    those train; ``sample_sizes`` overrides every task's S values (JAX compiles a function
    per cell: the quick sweep keeps the rest to one backend); ``learning_rate`` replaces the
    training cells' learning rate and ``track_every`` has them measure the trained estimator's
    own gradient variance every that many steps; ``equal_evaluations`` K measures each estimator variant's gradient
    cells at the largest S whose f-evaluations per estimate are at most K (`samples_within`)
    instead of at the S values."""

    name: str = "full"
    seeds: int = 3
    measured_seeds: int | None = None
    num_replicates: int | None = None
    train_steps: int | None = None
    #: the S values of every task's gradient cells (None: each task's declared ones)
    sample_sizes: tuple | None = None
    core_after_first: bool = False
    core_training: bool = False
    #: f-evaluations per estimate K at which every variant's gradient cells are measured (None: at the S values)
    equal_evaluations: int | None = None
    #: the learning rate of every training cell (None: each task's declared one)
    learning_rate: float | None = None
    #: training cells measure their estimator's variance every this many steps (None: not)
    track_every: int | None = None

    def __post_init__(self):
        if self.name not in BUDGETS:
            raise ValueError(f"budget name must be one of {', '.join(BUDGETS)}, got {self.name!r}")


QUICK = Budget("quick", seeds=2, measured_seeds=1, core_after_first=True, core_training=True)
FULL = Budget("full", seeds=3)
#: between the two: the quick sizes (tasks, R, S, steps) for every variant on every backend, trained, over
#: 3 seeds (2 for the measuring kinds): with two backends about 3 times the quick sweep's cells, at its sizes
MEDIUM = Budget("quick", seeds=3, measured_seeds=2)
#: the budgets by the name ``gradest run --budget`` takes
BUDGET_LEVELS = {"quick": QUICK, "medium": MEDIUM, "full": FULL}


def _positive(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"at least {minimum}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def resolve_budget(budget: Budget | str | None = None, *, quick: bool = False, num_replicates: int | None = None,
                   train_steps: int | None = None, seeds: int | None = None, learning_rate: float | None = None,
                   track_every: int | None = None, sample_sizes: Sequence[int] | None = None,
                   equal_evaluations: int | None = None) -> Budget:
    """The budget a sweep runs: ``budget`` (a `Budget`, or a name of `BUDGET_LEVELS`; default
    `QUICK` with ``quick``, else `FULL`) with the overrides applied: ``num_replicates`` replaces
    every replicate count, ``train_steps`` the steps of every training cell, ``seeds`` the seed
    count of every kind, ``learning_rate`` the training cells' learning rate, ``track_every``
    turns on their variance along training, ``sample_sizes`` replaces the S values of every
    task's gradient cells, ``equal_evaluations`` K measures them at equal f-evaluations instead
    (the two exclude each other). Bad values raise ValueError. `gradest run` records
    the result in ``manifest.json``."""
    if isinstance(budget, str):
        if budget not in BUDGET_LEVELS:
            raise ValueError(f"unknown budget {budget!r}; known budgets: {', '.join(BUDGET_LEVELS)}")
        budget = BUDGET_LEVELS[budget]
    budget = budget or (QUICK if quick else FULL)
    budget = _samples_override(budget, sample_sizes, equal_evaluations)
    if learning_rate is not None:
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float, np.number)) \
                or not np.isfinite(learning_rate) or learning_rate <= 0:
            raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
        budget = dataclasses.replace(budget, learning_rate=float(learning_rate))
    if track_every is not None:
        budget = dataclasses.replace(budget, track_every=_positive("track_every", track_every))
    if num_replicates is not None:
        budget = dataclasses.replace(budget, num_replicates=_positive("num_replicates", num_replicates, 2))
    if train_steps is not None:
        budget = dataclasses.replace(budget, train_steps=_positive("train_steps", train_steps))
    if seeds is not None:
        budget = dataclasses.replace(budget, seeds=_positive("seeds", seeds), measured_seeds=None)
    _positive("seeds", budget.seeds)
    return budget


def _samples_override(budget: Budget, sample_sizes, equal_evaluations) -> Budget:
    """``budget`` with the S values (``sample_sizes``) or the evaluation budget K of its
    gradient cells replaced."""
    if sample_sizes is not None and equal_evaluations is not None:
        raise ValueError("give sample_sizes or equal_evaluations, not both: with equal_evaluations=K each estimator "
                         "is measured at the S whose f-evaluations per estimate are K")
    if sample_sizes is not None:
        if isinstance(sample_sizes, (str, bytes, int)) or not hasattr(sample_sizes, "__iter__") \
                or not list(sample_sizes):
            raise ValueError(f"sample_sizes must be a non-empty list of positive integers (S values), "
                             f"got {sample_sizes!r}")
        sizes = tuple(dict.fromkeys(_positive("each of sample_sizes", s) for s in sample_sizes))
        return dataclasses.replace(budget, sample_sizes=sizes, equal_evaluations=None)
    if equal_evaluations is not None:
        return dataclasses.replace(budget, sample_sizes=None,
                                   equal_evaluations=_positive("equal_evaluations", equal_evaluations))
    return budget


def samples_within(evaluations, budget: int, min_samples: int = 1) -> int | None:
    """The largest S (from ``min_samples`` to ``budget``) whose f-evaluations per estimate
    ``evaluations(S)`` are at most ``budget``; None where even ``min_samples`` spends more.
    (Every estimator spends at least one evaluation per sample, so S never exceeds K.)"""
    best = None
    for S in range(max(1, int(min_samples)), int(budget) + 1):
        if evaluations(S) <= budget:
            best = S
    return best


def check_names(kind: str, names, known: Sequence[str]) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {kind}{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                         f"known {kind}s: {', '.join(known)}")


def variants(specs: Sequence[str] | None = None) -> list[tuple[str, dict]]:
    """(name, options) of every variant to sweep: each registered estimator (or those named,
    ``name`` or ``name:key=value,...``) with its declared variants."""
    known = ESTIMATORS.names()
    out: list[tuple[str, dict]] = []
    for text in (list(specs) if specs else known):
        name, options = parse_spec(text)
        check_names("estimator", [name], known)
        for opts in ([options] if options is not None else estimator_variants(name)):
            if (name, opts) not in out:
                out.append((name, dict(opts)))
    return out


def _core(selection: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    return [(name, opts) for name, opts in selection if opts in core_variants(name)]


@dataclass
class PlanContext:
    """What a kind's ``plan`` sees: the selection (tasks, variants, backends, device) and the
    budget, with the rules every kind shares (sizes, seeds, which variants where)."""

    tasks: list
    variants: list
    backends: list
    device: str
    budget: Budget
    #: whether the user named the estimators (then every named variant runs everywhere)
    chosen: bool = False

    def sizes(self, task: str) -> SweepSizes:
        """The task's declared sizes for the budget, with the budget's overrides."""
        sizes = sweep_sizes(TASKS.entry(task).factory, self.budget.name)
        if self.budget.num_replicates is not None:
            sizes = sizes._replace(num_replicates=self.budget.num_replicates)
        if self.budget.train_steps is not None:
            sizes = sizes._replace(train_steps=self.budget.train_steps)
        if self.budget.learning_rate is not None:
            sizes = sizes._replace(learning_rate=self.budget.learning_rate)
        if self.budget.sample_sizes is not None:
            sizes = sizes._replace(sample_sizes=tuple(self.budget.sample_sizes))
        return sizes

    def task_options(self, task: str, **extra) -> dict:
        """The budget's options for ``task`` (those its factory accepts), updated with ``extra``."""
        entry = TASKS.entry(task)
        valid = set(entry.option_names())
        options = {k: v for k, v in dict(self.sizes(task).options).items() if k in valid}
        options.update(extra)
        return options

    def seeds(self, measured: bool = False) -> list[int]:
        count = self.budget.seeds
        if measured and self.budget.measured_seeds is not None:
            count = min(count, self.budget.measured_seeds)
        return list(range(count))

    def primary(self, backend: str) -> bool:
        return bool(self.backends) and backend == self.backends[0]

    def variants_on(self, backend: str, training: bool = False) -> list[tuple[str, dict]]:
        """The variants a kind runs on ``backend`` (and, ``training``, trains)."""
        chosen = list(self.variants)
        if self.chosen:
            return chosen
        if training and self.budget.core_training:
            chosen = _core(chosen)
        elif self.budget.core_after_first and not self.primary(backend):
            chosen = _core(chosen)
        return chosen

    def cell(self, kind: str, task: str, estimator: str, options: dict, backend: str, *, seed: int = 0,
             num_samples: int = 1, settings: dict | None = None, task_options: dict | None = None) -> Cell:
        return Cell(kind, task, estimator, backend, self.device, int(seed), int(num_samples),
                    dict(self.task_options(task) if task_options is None else task_options), dict(options),
                    dict(settings or {}))
