"""Training: minimize a task's loss with an estimator's gradients, in PyTorch or JAX.

`train(task, estimator, backend=..., steps=...)` runs, for step t = 0 .. steps-1:

1. the data of the step, ``batch_t = task.train_batch(backend, seed, t)``;
2. the noise of the step: replicate t of the streams `gradient_samples` uses
   (`gradest.noise`), so runs are reproducible under a seed and estimators trained under one
   seed see common random numbers;
3. the surrogate loss ``make_loss(task, estimator, backend)`` at θ_t, its gradient and one
   optimizer update θ_t -> θ_{t+1}; an estimator whose state moves (moving-average
   baselines) carries its state to the next step;
4. for estimators with trainable φ (``phi_loss``, see `gradest.estimator`): one update of
   ``state["phi"]`` minimizing ``phi_loss(phi, f, dist, noise, state)`` at θ_t with the same
   noise, the distribution's parameters held constant, with an optimizer of the same name and
   learning rate as θ's.

Optimizers come from the ecosystem (torch.optim, optax) under one set of names
(`OPTIMIZERS`), with hyper-parameters set so that both backends run the same algorithm
(torch.optim's defaults); the step itself is the backend's (`Backend.train_step`: eager
autograd and torch.optim in torch, the loss through ``Backend.jit`` (torch.compile for a backend
made with ``compile=True``) and the noise drawn a block window at a time (`step_noise`); one
jitted function with the noise drawn inside in JAX, θ carried in the task's blocks).
Steps are cached (`gradest.cache`) by task, estimator, backend, S, optimizer and batch
shapes: a second `train` with the same key, at another learning rate, seed or θ₀, compiles
nothing. `Trainer` is the same loop one step at a time, for benchmarks and custom loops
(``steps(k)``: k steps in one call, a compiled ``lax.scan`` in JAX).

The history has one row per logged step t (every step, or every ``eval_every`` steps, plus
the steps where the metrics are evaluated or the gradient basket is measured, plus the last
step). A row describes θ_t, the parameters the step's gradient was taken at:
``minibatch_surrogate`` is the mean surrogate value of the step on its minibatch (an unbiased
estimate of the minibatch loss at θ_t for estimators whose surrogate value is f(z); not a metric
to report), ``loss`` the same number under its former name, ``exact_loss`` is L(θ_t) where the
task has ground truth (NaN else), then the task's ``metrics(backend, θ_t)`` (the numbers papers
report, e.g. a VAE's test -ELBO) at the evaluation steps: ``eval_steps`` (an int n: about n
steps spread evenly over the run, always the first and the last; a list: those steps; None, the
default: every logged step), NaN on the other rows; with ``intermediate_metrics`` the
evaluation steps before the last evaluate only those (``"declared"``: the task's cheap
``intermediate_metrics``, e.g. a VAE's -ELBOs without its k-sample bound), the last one all.
``seconds`` is the wall time of the training steps 0..t, without the time spent on evaluation
(exact loss, metrics) and on the gradient basket; ``TrainResult.timings`` splits the run's time
into ``steps``, ``evaluation``, ``basket`` and ``total``.
`HISTORY_DESCRIPTIONS` says what the columns of the loop itself measure.

Initialization: θ₀ is ``params`` when given, else the task's declared ``init_params()``
(``init="declared"``, the default) or, with ``init="seed"``, the initialization the task derives
from the run's seed (``init_params(seed=seed)``, seed ``task.init_seed_for(seed)``: recorded as
``TrainResult.init_seed``; tasks with one declared θ₀ keep it, and ``init_seed`` is None).

The gradient basket (``track=[...]``, ``every=N``): at every N-th step t, each tracked
estimator is measured at θ_t (and the task's default batch) with a `GradientSampler` built
once, over ``track_replicates`` replicates, against the exact gradient at θ_t: columns
``"<label>/variance"``, ``"<label>/bias_norm"``, ``"<label>/cosine_to_exact"`` (NaN on the
other rows; bias and cosine are NaN where the task has no ground truth), `summarize`'s
numbers reduced on the device chunk by chunk (`basket_stats`). The estimator being
trained, when it is tracked itself, is measured at its state of step t (φ as trained so far,
moving averages as they stand); other tracked estimators at their initial state (φ as
``init`` makes it).
"""
from __future__ import annotations

import inspect
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradest import cache, noise
from gradest.backends import get_backend
from gradest.backends.base import OPTIMIZERS, check_optimizer
from gradest.binding import check_compatible, default_samples, make_loss, noise_specs, phi_objective
from gradest.estimator import GradientEstimator
from gradest.noise import MAX_SEED
from gradest.registry import get_estimator, get_task
from gradest.sampler import GradientSampler
from gradest.truth import Truth
from gradest.validation import flat_params, integer, optional_integer
from gradest.validation import seed as check_seed

__all__ = ["train", "Trainer", "TrainResult", "OPTIMIZERS", "TrainingDivergedError", "TRACK_STATS"]
#: the statistics of a tracked estimator that become history columns "<label>/<stat>"
TRACK_STATS = ("variance", "bias_norm", "cosine_to_exact")
#: the exact loss (gradient) is compiled when evaluated at least this many times in a run
_COMPILE_ABOVE = 32
#: seed offset of the gradient basket's noise (independent of the training noise)
_TRACK_SEED_OFFSET = 104_729
#: what θ₀ a run starts from: the task's declared one, or one derived from the run's seed
INITS = ("declared", "seed")
#: what the history columns of the loop itself measure (a task describes its own metrics:
#: ``Task.metric_descriptions``)
HISTORY_DESCRIPTIONS = {
    "minibatch_surrogate": "minibatch surrogate: the mean surrogate value of one training step on its minibatch "
                           "(the estimator's own loss estimate, not a metric)",
    "loss": "minibatch surrogate (the former name of minibatch_surrogate)",
    "exact_loss": "exact loss L(θ)",
}


class TrainingDivergedError(ValueError):
    """The loss became NaN or infinite during training (usually: the learning rate is too high)."""


@dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
      history: pandas DataFrame, one row per logged step (see the module docstring).
      params: final θ (after the last update) as a flat NumPy vector (float64), in the task's
        ``param_layout`` order.
      state: the estimator's final state as NumPy arrays (``state["phi"]`` for trained φ).
      task, estimator, backend: the task's name, the estimator's label, the backend's name.
      init_seed: the initialization seed of θ₀ (``init="seed"``), None for the declared θ₀.
    """

    history: Any
    params: np.ndarray
    state: dict
    task: str
    estimator: str
    backend: str
    device: str = "cpu"
    optimizer: str = "adam"
    learning_rate: float = math.nan
    steps: int = 0
    seed: int = 0
    num_samples: int = 1
    tracked: list = field(default_factory=list)
    #: the initialization seed θ₀ was drawn from (``init="seed"`` on a task that derives one), else None
    init_seed: int | None = None
    #: wall seconds of the run by part: ``steps`` (the training steps), ``evaluation`` (the exact
    #: loss and the task's metrics), ``basket`` (the gradient basket), ``total`` (the whole loop)
    timings: dict = field(default_factory=dict)

    def final(self, column: str = "exact_loss") -> float:
        """The last logged value of ``column``."""
        return float(self.history[column].iloc[-1])


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------
def _learning_rate(value, task) -> float:
    if value is None:
        value = getattr(task, "default_learning_rate", 1e-2)
    try:
        lr = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"learning_rate must be a positive number, got {value!r}") from err
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning_rate must be a positive number, got {value!r}")
    return lr


def _resolve_track(track) -> list[tuple[str, GradientEstimator]]:
    """``track`` entries (names, (name, options) tuples, estimators) as (label, estimator)."""
    if track is None:
        return []
    if isinstance(track, (str, GradientEstimator)) or (
            isinstance(track, tuple) and len(track) == 2 and isinstance(track[0], str) and isinstance(track[1], dict)):
        track = [track]
    out = []
    for entry in track:
        if isinstance(entry, GradientEstimator) or isinstance(entry, str):
            est = get_estimator(entry)
        elif isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[0], str) \
                and isinstance(entry[1], dict):
            est = get_estimator(entry[0], **entry[1])
        else:
            raise ValueError(
                f"track entries must be estimator names, (name, options-dict) pairs or built estimators, "
                f"got {entry!r}; e.g. track=['exact', ('reinforce', {{'baseline': 'loo'}})]")
        out.append((est.label, est))
    labels = [label for label, _ in out]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"track lists {', '.join(duplicates)} more than once; list each estimator once")
    return out


def _show_progress(progress) -> bool:
    if progress is not None:
        return bool(progress)
    if os.environ.get("CI") or os.environ.get("PYTEST_CURRENT_TEST"):
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _tree_map(fn, tree):
    if isinstance(tree, dict):
        return {k: _tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_tree_map(fn, v) for v in tree)
    return fn(tree)


# ---------------------------------------------------------------------------------------------
# one training step, compiled once per trace key
# ---------------------------------------------------------------------------------------------
def train_step(task, est, B, num_samples: int, optimizer: str, batch):
    """The cached `gradest.backends.base.TrainStep` of (task, estimator, backend, S, optimizer,
    batch shapes): the noise of step t (replicate t of `gradest.noise`'s streams), the
    surrogate's gradient, the update of θ (and of φ). The learning rate, θ and the seed are
    data of the step, so other runs with the same key reuse it."""
    key = ("train", cache.task_key(task), cache.estimator_key(est), cache.backend_key(B),
           int(num_samples), optimizer, cache.shape_signature(batch))

    def build():
        specs = noise_specs(task, est, B, B.asarray(task.init_params()), num_samples, batch)
        phi = phi_objective(task, est, B) if est.phi_loss is not None else None
        loss = make_loss(task, est, B)
        if not B.static_shapes:
            # an eager backend's step differentiates the loss as given: through `Backend.jit` it is
            # compiled where the backend compiles (torch made with compile=True: torch.compile,
            # forward and backward); JAX jits the whole step
            loss = B.jit(loss)
        hints = {}
        if "param_sizes" in inspect.signature(B.train_step).parameters:  # θ's blocks (JAX keeps θ in them)
            hints["param_sizes"] = [int(np.prod(shape)) for _, shape in task.param_layout]
        return B.train_step(loss, step_noise(B, specs), optimizer, phi, **hints)

    return cache.CACHE.get(key, build)


def step_noise(B, specs):
    """``draw_noise(seed, t)``: the noise of training step t, replicate t of ``specs``' streams
    without its replicate axis.

    A `static_shapes` backend (JAX) draws it inside the compiled step, replicate by replicate.
    An eager backend (torch) makes a noise block of `Backend.noise_block_replicates` replicates
    with every call, so drawing replicate t alone makes (and throws away) the block's others: here
    the window of replicates t0 .. t0 + k - 1 holding t (k the smallest block of the streams, a
    power of two, so that the window lies in one block of every stream) is drawn once and its
    rows serve the k steps — the same numbers (replicate t depends on (seed, stream, t) alone)."""
    if B.static_shapes:
        draw_one = noise.drawer(B, specs, 1)
        return lambda seed, t: noise.first_replicate(draw_one(seed, t))
    shapes = [tuple(spec.shape) for group in specs.values() for spec in group.values()]
    k = max(1, min((int(B.noise_block_replicates(shape)) for shape in shapes), default=1))
    draw_window = noise.drawer(B, specs, k)
    window = {}  # (seed, t0) -> the noise tree of replicates t0 .. t0 + k - 1

    def draw_noise(seed, t):
        t = int(t)
        first = t - t % k
        key = (int(seed), first)
        tree = window.get(key)
        if tree is None:  # one window kept: steps run in order (a step shared by two runs redraws)
            tree = draw_window(seed, first)
            window.clear()
            window[key] = tree
        row = t - first
        return {group: {name: v[row] for name, v in d.items()} for group, d in tree.items()}

    return draw_noise


class Trainer:
    """A training run advanced one step at a time: the public entry point behind `train`
    (benchmarks time `step`).

    ``Trainer(task, estimator, backend=..., ...)`` checks its options and sets θ₀ and the
    estimator state; ``step()`` runs update t (data ``task.train_batch(backend, seed, t)``,
    noise replicate t) and returns the loss at θ_t as a float; ``params()`` is the current θ
    (NumPy float64)."""

    def __init__(self, task, estimator, *, backend="torch", device="cpu", seed=0, num_samples=None,
                 optimizer="adam", learning_rate=None, dtype="float32", params=None):
        self.task = task = get_task(task)
        self.estimator = est = get_estimator(estimator)
        self.seed = check_seed(seed)
        self.num_samples = default_samples(est, num_samples)
        self.optimizer = check_optimizer(optimizer)
        self.learning_rate = _learning_rate(learning_rate, task)
        check_compatible(task, est, self.num_samples)
        self.backend = B = get_backend(backend, device=device, dtype=dtype)
        theta0 = flat_params(task, params)
        state = est.init(task.problem(B, B.asarray(theta0), batch=task.train_batch(B, self.seed, 0)).dist)
        if est.phi_loss is not None and not (isinstance(state, dict) and "phi" in state):
            raise ValueError(f"estimator {est.label!r} defines phi_loss but its init() state has no 'phi' entry; "
                             "init must return {'phi': <flat array>, ...} for gradest.train to train φ")
        self._init = (theta0, state)
        self.t = 0
        self._carry = None
        self._step = None

    def _ensure(self, batch):
        if self._step is None:
            self._step = train_step(self.task, self.estimator, self.backend, self.num_samples, self.optimizer, batch)
            self._carry = self._step.init(self._init[0], self._init[1], self.learning_rate)

    def step(self) -> float:
        """Update t of θ (and φ); the loss value at θ_t."""
        return float(self.step_array())

    def steps(self, count: int) -> np.ndarray:
        """Updates t .. t+count-1, as ``count`` calls of `step` would make them; their losses
        (float64 NumPy [count]). A backend whose step runs several in one call (JAX: one compiled
        `jax.lax.scan`, each step's noise drawn inside, the batches of the steps stacked) does
        so, compiled once per ``count``; others step one at a time."""
        count = integer("count", count)
        B = self.backend
        batches = [self.task.train_batch(B, self.seed, self.t + i) for i in range(count)]
        self._ensure(batches[0])
        many = getattr(self._step, "steps", None)
        if many is None:
            values = []
            for batch in batches:
                self._carry, value = self._step.step(self._carry, self.seed, self.t, batch)
                self.t += 1
                values.append(float(value))
            return np.asarray(values, dtype=np.float64)
        stacked = None if batches[0] is None else B.stack(batches)  # [count, *batch]
        self._carry, values = many(self._carry, self.seed, self.t, stacked, count)
        self.t += count
        return np.asarray(B.to_numpy(values), dtype=np.float64)

    def step_array(self):
        """As `step`, the loss a backend scalar (no host synchronization)."""
        batch = self.task.train_batch(self.backend, self.seed, self.t)
        self._ensure(batch)
        self._carry, value = self._step.step(self._carry, self.seed, self.t, batch)
        self.t += 1
        return value

    def params_array(self):
        """θ_t as a backend array that later steps do not change."""
        if self._step is None:
            return self.backend.asarray(self._init[0])
        return self._step.params(self._carry)

    def params(self) -> np.ndarray:
        return np.asarray(self.backend.to_numpy(self.params_array()), dtype=np.float64)

    def state_arrays(self):
        """The estimator state after the steps so far, as backend arrays."""
        return self._init[1] if self._step is None else self._step.state(self._carry)

    def state(self) -> dict:
        return _tree_map(self.backend.to_numpy, dict(self.state_arrays()))


# ---------------------------------------------------------------------------------------------
# the training loop
# ---------------------------------------------------------------------------------------------
def train(task, estimator, *, backend="torch", device="cpu", steps, seed=0, num_samples=None,
          optimizer="adam", learning_rate=None, dtype="float32", track=(), every=None,
          track_replicates=200, eval_every=None, progress=None, params=None, eval_steps=None,
          init="declared", intermediate_metrics=None) -> TrainResult:
    """Minimize ``task``'s loss for ``steps`` steps with ``estimator``'s gradients.

    Args:
      task, estimator: names or built objects (`gradest.get_task` / `gradest.get_estimator`).
      backend, device, dtype: where to compute ("torch" | "jax", "cpu" | "cuda", "float32" | "float64").
      steps: number of optimizer updates; seed: seeds the noise and the task's batches.
      num_samples: S, samples per gradient estimate (default: the estimator's ``min_samples``).
      optimizer: one of `OPTIMIZERS` (torch.optim / optax); learning_rate: default
        ``task.default_learning_rate`` (1e-2 where the task has none).
      track, every, track_replicates: the gradient basket: estimators measured at θ_t every
        ``every`` steps (default steps // 10) over ``track_replicates`` replicates.
      eval_every: log every ``eval_every`` steps (default 1: every step): the minibatch
        surrogate and the exact loss.
      eval_steps: where the task's metrics are evaluated: an int n (about n steps spread evenly,
        always the first and the last), a list of steps, or None (default: every logged step).
        Those steps are logged too.
      intermediate_metrics: which metrics the evaluation steps before the last one evaluate:
        None (default) all of them; ``"declared"`` the task's ``intermediate_metrics`` (its cheap
        ones, e.g. a VAE's -ELBOs without the k-sample bound; all where the task declares none);
        or a list of metric names. The last evaluation step always evaluates all of them.
      progress: show a rich progress bar (default: when stderr is a terminal and not under CI).
      params: the initial θ (flat NumPy vector; default: see ``init``).
      init: ``"declared"`` (default: ``task.init_params()``) or ``"seed"`` (θ₀ derived from
        ``seed`` where the task derives one: ``task.init_params(seed=seed)``).

    Returns a `TrainResult`. Raises `TrainingDivergedError` when the loss becomes NaN or
    infinite, and a ValueError (before any work) for bad options or an estimator that cannot
    run on the task.
    """
    steps = integer("steps", steps)
    eval_every = optional_integer("eval_every", eval_every, 1)
    every = optional_integer("every", every, max(1, steps // 10))
    track_replicates = integer("track_replicates", track_replicates, minimum=2)
    tracked = _resolve_track(track)
    evaluate_at = _eval_steps(eval_steps, steps)
    task = get_task(task)
    light = _intermediate_metrics(task, intermediate_metrics)
    last_eval = (steps - 1) if evaluate_at is None else max(evaluate_at, default=-1)
    params, init_seed = _initial_params(task, init, seed, params)
    trainer = Trainer(task, estimator, backend=backend, device=device, seed=seed, num_samples=num_samples,
                      optimizer=optimizer, learning_rate=learning_rate, dtype=dtype, params=params)
    task, est, B = trainer.task, trainer.estimator, trainer.backend
    seed, num_samples, optimizer, lr = trainer.seed, trainer.num_samples, trainer.optimizer, trainer.learning_rate
    theta0 = trainer._init[0]

    # the gradient basket: samplers built once (their compatibility is checked here, before training),
    # measured at φ as initialized (phi_warmup=0: the trained φ belongs to the trained estimator)
    samplers = [(label, GradientSampler(task, tracked_est, backend=B, num_samples=num_samples,
                                        seed=(seed + _TRACK_SEED_OFFSET) % (MAX_SEED + 1), params=theta0,
                                        phi_warmup=0))
                for label, tracked_est in tracked]
    # the trained estimator itself is measured at its current state (φ as trained so far)
    own = {label for label, tracked_est in tracked if tracked_est.label == est.label
           and cache.estimator_key(tracked_est) == cache.estimator_key(est)}

    # ground truth (`gradest.truth`, as gradient_stats measures against): compiled where it is
    # evaluated often, else eager (no compilation to pay for a few evaluations)
    basket_rows = -(-steps // every) if tracked else 0
    rows_expected = -(-steps // eval_every) + 1 + basket_rows  # an upper bound
    truth = Truth(task, B, compile_loss=rows_expected >= _COMPILE_ABOVE, compile_grad=basket_rows >= _COMPILE_ABOVE)

    rows: list[dict] = []
    elapsed = 0.0
    clock = {"steps": 0.0, "evaluation": 0.0, "basket": 0.0}
    loop_start = time.perf_counter()
    bar = _Progress(steps, f"{task.name} · {est.label}") if _show_progress(progress) else None
    try:
        for t in range(steps):
            measure_basket = bool(samplers) and t % every == 0
            metrics = evaluate_at is not None and t in evaluate_at
            log = t % eval_every == 0 or t == steps - 1 or measure_basket or metrics
            metrics = metrics or (evaluate_at is None and log)
            if metrics and light is not None and t != last_eval:
                metrics = light  # the cheap set before the last evaluation
            start = time.perf_counter()
            theta_t = trainer.params_array() if log else None
            state_t = trainer.state_arrays() if own and measure_basket else None
            value = trainer.step()
            elapsed += time.perf_counter() - start
            if not math.isfinite(value):
                raise TrainingDivergedError(
                    f"training diverged at step {t}: the loss is {value} (task {task.name!r}, estimator "
                    f"{est.label!r}, optimizer {optimizer!r}, learning_rate={lr:g}, num_samples={num_samples}). "
                    f"Lower the learning rate (e.g. learning_rate={lr / 10:g}), or use more samples or a "
                    "lower-variance estimator.")
            if log:
                rows.append(_evaluate(task, B, t, elapsed, value, theta_t, truth,
                                      samplers if measure_basket else (), track_replicates,
                                      own_state=(own, state_t), metrics=metrics, clock=clock))
            if bar is not None:
                bar.update(t, value)
    finally:
        if bar is not None:
            bar.close()
    clock["steps"] = elapsed
    clock["total"] = time.perf_counter() - loop_start

    history = _history(rows, tracked)
    return TrainResult(
        history=history, params=trainer.params(), state=trainer.state(), task=task.name, estimator=est.label,
        backend=B.name, device=B.device, optimizer=optimizer, learning_rate=lr, steps=steps, seed=seed,
        num_samples=num_samples, tracked=[label for label, _ in tracked], init_seed=init_seed, timings=clock)


def _intermediate_metrics(task, chosen):
    """The metric names of the evaluation steps before the last (None: all of them)."""
    if chosen is None:
        return None
    if isinstance(chosen, str):
        if chosen != "declared":
            raise ValueError(f"intermediate_metrics must be None, 'declared' or a list of metric names, "
                             f"got {chosen!r}")
        chosen = getattr(task, "intermediate_metrics", None)
        if chosen is None:  # the task declares no cheaper set: all of them
            return None
    names = tuple(chosen)
    known = tuple(getattr(task, "metric_descriptions", {}) or {})
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"intermediate_metrics names {', '.join(map(repr, unknown))}, not metrics of "
                         f"{task.name}; its metrics: {', '.join(known) or 'none'}")
    return names


def _eval_steps(eval_steps, steps: int) -> frozenset | None:
    """The steps where the metrics are evaluated (None: every logged step)."""
    if eval_steps is None:
        return None
    if isinstance(eval_steps, (int, np.integer)) and not isinstance(eval_steps, bool):
        n = integer("eval_steps", eval_steps)
        # about n points evenly spread, the first and the last always among them
        return frozenset(int(round(x)) for x in np.linspace(0, steps - 1, min(n, steps))) | {0, steps - 1}
    try:
        chosen = [int(t) for t in eval_steps]
    except (TypeError, ValueError):
        chosen = None
    if chosen is None or not all(0 <= t < steps for t in chosen):
        raise ValueError(f"eval_steps must be a number of evaluation points (e.g. 20) or a list of steps in "
                         f"0..{steps - 1}, got {eval_steps!r}")
    return frozenset(chosen)


def _initial_params(task, init, seed, params):
    """(θ₀ or None for the declared one, the initialization seed or None) of a run."""
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(map(repr, INITS))}, got {init!r}")
    if init == "declared":
        return params, None
    if params is not None:
        raise ValueError("init='seed' derives θ₀ from the seed; pass params= or init='seed', not both")
    init_seed = task.init_seed_for(check_seed(seed))
    return (None, None) if init_seed is None else (task.init_params(seed=seed), init_seed)


def _evaluate(task, B, step, seconds, value, theta, truth, samplers, replicates, own_state=((), None),
              metrics=True, clock=None):
    """One history row at θ_t ``theta`` (a backend array); ``own_state``: (labels of the
    samplers of the trained estimator, its state at θ_t); ``metrics``: whether the task's
    metrics are evaluated at this step (True: all of them; a tuple: those names);
    ``clock``: {"evaluation": s, "basket": s} that the time spent here is added to."""
    clock = {"evaluation": 0.0, "basket": 0.0} if clock is None else clock
    start = time.perf_counter()
    row = {"step": step, "seconds": seconds, "minibatch_surrogate": value, "loss": value,
           "exact_loss": truth.loss(theta)}
    if metrics:
        values = task.metrics(B, theta) if metrics is True else task.metrics(B, theta, names=metrics)
        for name, v in values.items():
            row[name] = float(v)
    clock["evaluation"] += time.perf_counter() - start
    if samplers:
        start = time.perf_counter()
        exact = truth.grad(theta)
        theta_np = B.to_numpy(theta).astype(np.float64)
        own, state = own_state
        for label, sampler in samplers:
            sampler.set_params(theta_np, state=state if label in own else None)
            stats = basket_stats(sampler, replicates, exact)
            for stat in TRACK_STATS:
                row[f"{label}/{stat}"] = stats[stat]
        clock["basket"] += time.perf_counter() - start
    return row


def basket_stats(sampler, replicates: int, exact) -> dict:
    """`summarize`'s ``variance``, ``bias_norm`` and ``cosine_to_exact`` (the basket's
    `TRACK_STATS`) of the sampler's replicates 0 .. R-1, reduced on the device chunk by chunk.

    The [R, P] estimates never reach the host (at a VAE's P ~ 3e5 and R = 200 their float64
    copy and `summarize` cost more than computing them). Shifted sums, the shift s the first
    replicate's estimate (so that the sums of squares are of the order of the variance, not of
    the mean, and an estimator without variance gives exactly 0): each chunk [n, P] gives on the
    device, in the backend's dtype, Σ_r (g_r - s) [P], Σ_r ‖g_r - s‖² and the sum of the cosines
    of its rows to ``exact``; the host adds them in float64: ḡ = s + Σ_r (g_r - s) / R,
    variance = (Σ_r ‖g_r - s‖² - R ‖ḡ - s‖²) / (R - 1) (the trace of the unbiased covariance),
    bias_norm = ‖ḡ - exact‖, cosine_to_exact = Σ cos / R (0 for a zero estimate), NaN without
    ``exact``. Equal to `summarize` up to the float rounding of the dtype."""
    R = integer("replicates", replicates, minimum=2)
    B = sampler.backend
    reduce = _moments_fn(B, exact is not None)
    exact_b = None if exact is None else B.asarray(np.asarray(exact, dtype=np.float64))
    shift, total, squares, cos_sum = None, None, 0.0, 0.0
    for first in range(0, R, sampler.chunk_size):
        g = sampler.estimates(first, min(sampler.chunk_size, R - first))  # [n, P] on the device
        if shift is None:
            shift = g[0]
        out = reduce(g, shift, exact_b)
        part = np.asarray(B.to_numpy(out[0]), dtype=np.float64)  # [P]
        total = part if total is None else total + part
        squares += float(B.to_numpy(out[1]))
        cos_sum += float(B.to_numpy(out[2])) if exact is not None else 0.0
    offset = total / R  # [P]: ḡ - s
    variance = max(squares - R * float(offset @ offset), 0.0) / (R - 1)
    out = {"variance": variance, "bias_norm": math.nan, "cosine_to_exact": math.nan}
    if exact is not None:
        mean = np.asarray(B.to_numpy(shift), dtype=np.float64) + offset
        out["bias_norm"] = float(np.linalg.norm(mean - np.asarray(exact, dtype=np.float64)))
        out["cosine_to_exact"] = cos_sum / R
    return out


#: the compiled chunk reductions of `basket_stats`, by backend and whether there is a truth
_MOMENTS = cache.lru("basket_moments", 16)


def _moments_fn(B, with_exact: bool):
    """The compiled ``(g [n, P], shift [P], exact [P] | None) -> (Σ (g - shift) [P],
    Σ ‖g - shift‖² [], Σ cos [] | None)``."""

    def moments(g, shift, exact):
        d = g - shift  # [n, P]
        total, squares = B.sum(d, axis=0), B.sum(d * d)
        if exact is None:
            return total, squares, None
        norms = B.sqrt(B.sum(g * g, axis=1)) * B.sqrt(B.sum(exact * exact))  # [n]
        positive = norms > 0
        cos = B.where(positive, B.matmul(g, exact) / B.where(positive, norms, 1.0), 0.0)  # [n]
        return total, squares, B.sum(cos)

    return _MOMENTS.get((cache.backend_key(B), with_exact), lambda: B.jit(moments))


def _history(rows, tracked):
    import pandas as pd

    head = ["step", "seconds", "minibatch_surrogate", "loss", "exact_loss"]
    basket = [f"{label}/{stat}" for label, _ in tracked for stat in TRACK_STATS]
    metric_names = list(dict.fromkeys(k for row in rows for k in row if k not in head and k not in basket))
    frame = pd.DataFrame(rows)
    frame = frame.reindex(columns=head + metric_names + basket)
    frame["step"] = frame["step"].astype(int)
    return frame


class _Progress:
    """A rich progress bar on stderr showing the latest loss."""

    def __init__(self, total: int, title: str):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TimeRemainingColumn(),
                                  TextColumn("loss {task.fields[loss]}"), console=Console(stderr=True))
        self._progress.start()
        self._task = self._progress.add_task(title, total=total, loss="-")
        self._every = max(1, total // 200)

    def update(self, step: int, loss: float):
        if step % self._every == 0 or step == self._progress.tasks[0].total - 1:
            self._progress.update(self._task, completed=step + 1, loss=f"{loss:.4g}")

    def close(self):
        self._progress.stop()
