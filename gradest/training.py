"""Training: minimize a task's loss with an estimator's gradients, in PyTorch or JAX.

`train(task, estimator, backend=..., steps=...)` runs, for step t = 0 .. steps-1:

1. the data of the step, ``batch_t = task.train_batch(backend, seed, t)``;
2. the noise of the step, ``draw_noise(backend, specs, seed, first=t, count=1)`` (the same
   streams `gradient_samples` uses, so runs are reproducible under a seed and estimators
   trained under one seed see common random numbers);
3. the surrogate loss ``make_loss(task, estimator, backend, batch_t)`` at θ_t, its gradient
   and one optimizer update θ_t -> θ_{t+1}; an estimator whose state moves (moving-average
   baselines) carries its state to the next step;
4. for estimators with trainable φ (``phi_loss``, see `gradest.estimator`): one update of
   ``state["phi"]`` minimizing ``phi_loss(phi, f, dist, noise, state)`` at θ_t with the same
   noise, the distribution's parameters held constant, with an optimizer of the same name and
   learning rate as θ's.

Optimizers come from the ecosystem under one set of names (`OPTIMIZERS`), with
hyper-parameters set so that both backends run the same algorithm (torch.optim's defaults):

* torch: θ is a leaf tensor updated by torch.optim in eager steps; its gradient comes from
  torch.autograd (the gradient ``backend.value_and_grad`` gives, without torch.func's
  per-call overhead), φ's from ``backend.grad`` (torch.func, so a φ loss may differentiate
  the surrogate itself);
* jax: the step (``backend.value_and_grad``, the optax update of θ and of φ) is one
  ``jax.jit``-compiled function, built once per run; the step's noise is drawn by a jitted
  `Backend.noise_fn` drawer with the step index traced (the numbers of step 2), compiled once
  per process and noise shapes.

The history has one row per logged step t (every step, or every ``eval_every`` steps, plus
the steps where the gradient basket is measured, plus the last step). A row describes θ_t,
the parameters the step's gradient was taken at: ``loss`` is the mean surrogate value of the
step (an unbiased estimate of L(θ_t) for estimators whose surrogate value is f(z)),
``exact_loss`` is L(θ_t) where the task has ground truth (NaN else), then the task's
``metrics(backend, θ_t)``. ``seconds`` is the wall time of the training steps 0..t, without
the time spent on evaluation (exact loss, metrics) and on the gradient basket.

The gradient basket (``track=[...]``, ``every=N``): at every N-th step t, each tracked
estimator is measured at θ_t (and the task's default batch) with a `GradientSampler` built
once, over ``track_replicates`` replicates, against the exact gradient at θ_t: columns
``"<label>/variance"``, ``"<label>/bias_norm"``, ``"<label>/cosine_to_exact"`` (NaN on the
other rows; bias and cosine are NaN where the task has no ground truth). Tracked estimators
are measured at their initial state (φ as ``init`` makes it).
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradest.backends import get_backend
from gradest.estimator import GradientEstimator
from gradest.measure import (GradientSampler, check_compatible, draw_noise, make_loss, noise_specs,
                             summarize)
from gradest.registry import get_estimator, get_task
from gradest.validation import finite

__all__ = ["train", "TrainResult", "OPTIMIZERS", "TrainingDivergedError", "TRACK_STATS"]

#: optimizer names, the same for both backends
OPTIMIZERS = ("adam", "sgd", "momentum", "rmsprop", "adagrad")
#: the statistics of a tracked estimator that become history columns "<label>/<stat>"
TRACK_STATS = ("variance", "bias_norm", "cosine_to_exact")
#: the exact loss (gradient) is compiled when evaluated at least this many times in a run
_COMPILE_ABOVE = 32
#: seed offset of the gradient basket's noise (independent of the training noise)
_TRACK_SEED_OFFSET = 104_729


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

    def final(self, column: str = "exact_loss") -> float:
        """The last logged value of ``column``."""
        return float(self.history[column].iloc[-1])


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------
def _int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return int(value)


def _optional_int(name: str, value, default: int) -> int:
    return default if value is None else _int(name, value)


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


def _check_optimizer(name) -> str:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; known optimizers: {', '.join(OPTIMIZERS)}")
    return name


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


def _shape_signature(tree):
    """Hashable description of the shapes in a batch (noise specs are cached per signature)."""
    if isinstance(tree, dict):
        return tuple((k, _shape_signature(v)) for k, v in sorted(tree.items()))
    if isinstance(tree, (list, tuple)):
        return tuple(_shape_signature(v) for v in tree)
    shape = getattr(tree, "shape", None)
    return ("array", tuple(shape)) if shape is not None else ("value", repr(tree))


def _tree_map(fn, tree):
    if isinstance(tree, dict):
        return {k: _tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_tree_map(fn, v) for v in tree)
    return fn(tree)


def _strip_replicate_axis(noise: dict) -> dict:
    return {group: {name: v[0] for name, v in d.items()} for group, d in noise.items()}


# ---------------------------------------------------------------------------------------------
# optimizers
# ---------------------------------------------------------------------------------------------
def _torch_optimizer(name: str, tensors, lr: float):
    import torch

    if name == "adam":
        return torch.optim.Adam(tensors, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(tensors, lr=lr)
    if name == "momentum":
        return torch.optim.SGD(tensors, lr=lr, momentum=0.9)
    if name == "rmsprop":
        return torch.optim.RMSprop(tensors, lr=lr)
    if name == "adagrad":
        return torch.optim.Adagrad(tensors, lr=lr)
    raise AssertionError(name)


def _optax_optimizer(name: str, lr: float):
    import optax

    # hyper-parameters as torch.optim's defaults, so both backends run one algorithm
    if name == "adam":
        return optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8)
    if name == "sgd":
        return optax.sgd(lr)
    if name == "momentum":
        return optax.sgd(lr, momentum=0.9)
    if name == "rmsprop":
        return optax.rmsprop(lr, decay=0.99, eps=1e-8, eps_in_sqrt=False)
    if name == "adagrad":
        # torch adds its eps (1e-10) outside the square root, optax inside: eps=0 is closer
        return optax.adagrad(lr, initial_accumulator_value=0.0, eps=0.0)
    raise AssertionError(name)


# ---------------------------------------------------------------------------------------------
# one training step, per backend
# ---------------------------------------------------------------------------------------------
def _phi_objective(task, est, B, use_task_noise: bool):
    """``(phi, θ, noise, state, batch) -> scalar``: the estimator's φ loss at constant θ."""

    def objective(phi, theta, noise, state, batch):
        theta = B.stop_gradient(theta)  # the distribution's parameters are held constant
        prob = task.problem(B, theta, noise=noise.get("task") if use_task_noise else None, batch=batch)
        state = dict(state)
        state["phi"] = phi
        return est.phi_loss(phi, prob.f, prob.dist, noise["estimator"], state)

    return objective


class _TorchStepper:
    """θ (and φ) as leaf tensors that torch.optim updates in place; θ's gradient by autograd,
    φ's by ``backend.grad`` (torch.func: a φ loss may differentiate the surrogate itself)."""

    def __init__(self, task, est, B, theta0, state, optimizer: str, lr: float):
        self.task, self.est, self.B = task, est, B
        self.theta = B.asarray(theta0).detach().clone().requires_grad_(True)  # [P]
        self.opt = _torch_optimizer(optimizer, [self.theta], lr)
        self.state = state
        self.phi = None
        if est.phi_loss is not None:
            self.phi = state["phi"].detach().clone().requires_grad_(True)
            self.phi_opt = _torch_optimizer(optimizer, [self.phi], lr)
            self.phi_grad = B.grad(_phi_objective(task, est, B, not est.requires_exact))

    def params(self):
        return self.theta.detach()

    def step(self, specs, seed: int, t: int, batch, keep_theta: bool):
        """Update t of θ (and φ); returns (the loss value at θ_t, θ_t or None)."""
        import torch

        B = self.B
        noise = _strip_replicate_axis(draw_noise(B, specs, seed, first=t, count=1))
        theta_t = self.theta.detach().clone() if (keep_theta or self.phi is not None) else None
        state = self.state
        if self.phi is not None:
            state = dict(state)
            state["phi"] = self.phi.detach()
        # plain autograd on the leaf θ: the gradient backend.value_and_grad gives, without
        # torch.func's per-call overhead (a few ms per step, the bulk of a small task's step)
        value, new_state = make_loss(self.task, self.est, B, batch)(self.theta, noise, state)
        if value.requires_grad:
            grad, = torch.autograd.grad(value, self.theta, allow_unused=True)
        else:
            grad = None
        grad = torch.zeros_like(self.theta) if grad is None else grad  # a loss constant in θ
        phi_grad = None
        if self.phi is not None:  # at θ_t, with the step's noise and state
            phi_grad = self.phi_grad(self.phi.detach(), theta_t, noise, state, batch)
        self.theta.grad = grad
        self.opt.step()
        new_state = _tree_map(lambda x: x.detach() if hasattr(x, "detach") else x, dict(new_state))
        if self.phi is not None:
            self.phi.grad = phi_grad.detach()
            self.phi_opt.step()
            new_state["phi"] = self.phi.detach()
        self.state = new_state
        return float(value.detach()), (theta_t if keep_theta else None)


#: jitted noise drawers (seed, first) -> {group: {name: [...]}}, shared by all runs of a process
_JAX_NOISE_DRAWERS: dict = {}


def _jax_noise_drawer(B, specs):
    """One jitted function drawing a step's noise, compiled once per backend and noise shapes
    (the random-bit generator is costly to compile; training runs reuse it)."""
    key = (B.name, B.device, B.dtype,
           tuple((g, tuple((n, tuple(spec.shape), spec.kind) for n, spec in sorted(d.items())))
                 for g, d in sorted(specs.items())))
    if key not in _JAX_NOISE_DRAWERS:
        draws = {group: {name: B.noise_fn(f"{group}/{name}", spec.kind, spec.shape, 1)
                         for name, spec in group_specs.items()} for group, group_specs in specs.items()}

        def draw(seed, first):
            return {group: {name: fn(seed, first)[0] for name, fn in d.items()} for group, d in draws.items()}

        _JAX_NOISE_DRAWERS[key] = B.jit(draw)
    return _JAX_NOISE_DRAWERS[key]


class _JaxStepper:
    """The step (gradient, optax update of θ, and of φ) as one jitted function, compiled once
    per batch shape; the step's noise comes from a jitted `Backend.noise_fn` drawer: the same
    numbers as ``draw_noise(backend, specs, seed, first=t, count=1)``."""

    def __init__(self, task, est, B, theta0, state, optimizer: str, lr: float):
        import jax
        import optax

        # every array committed to the backend's device, as the step's outputs are: an input
        # placed differently (optax's fresh state is uncommitted) would compile the step twice
        def commit(tree):
            return jax.tree_util.tree_map(B.asarray, tree)

        self.B = B
        opt = _optax_optimizer(optimizer, lr)
        self.theta = B.asarray(theta0)  # [P]
        self.opt_state = commit(opt.init(self.theta))
        self.state = commit(state)
        has_phi = est.phi_loss is not None
        phi_opt = _optax_optimizer(optimizer, lr) if has_phi else None
        self.phi_opt_state = commit(phi_opt.init(self.state["phi"])) if has_phi else None
        phi_grad = B.grad(_phi_objective(task, est, B, not est.requires_exact)) if has_phi else None

        def step(theta, opt_state, state, phi_opt_state, noise, batch):
            loss = make_loss(task, est, B, batch)
            (value, new_state), grad = B.value_and_grad(loss, has_aux=True)(theta, noise, state)
            updates, opt_state = opt.update(grad, opt_state, theta)
            new_theta = optax.apply_updates(theta, updates)
            new_state = dict(new_state)
            if has_phi:  # at θ_t, with the step's noise and state
                phi = state["phi"]
                g = phi_grad(phi, theta, noise, state, batch)
                phi_updates, phi_opt_state = phi_opt.update(g, phi_opt_state, phi)
                new_state["phi"] = optax.apply_updates(phi, phi_updates)
            return new_theta, opt_state, new_state, phi_opt_state, value

        self._step = B.jit(step)

    def params(self):
        return self.theta

    def step(self, specs, seed: int, t: int, batch, keep_theta: bool):
        noise = _jax_noise_drawer(self.B, specs)(seed, t)
        theta_t = self.theta
        self.theta, self.opt_state, self.state, self.phi_opt_state, value = self._step(
            theta_t, self.opt_state, self.state, self.phi_opt_state, noise, batch)
        return float(value), (theta_t if keep_theta else None)


# ---------------------------------------------------------------------------------------------
# the training loop
# ---------------------------------------------------------------------------------------------
def train(task, estimator, *, backend="torch", device="cpu", steps, seed=0, num_samples=1,
          optimizer="adam", learning_rate=None, dtype="float32", track=(), every=None,
          track_replicates=200, eval_every=None, progress=None, params=None) -> TrainResult:
    """Minimize ``task``'s loss for ``steps`` steps with ``estimator``'s gradients.

    Args:
      task, estimator: names or built objects (`gradest.get_task` / `gradest.get_estimator`).
      backend, device, dtype: where to compute ("torch" | "jax", "cpu" | "cuda", "float32" | "float64").
      steps: number of optimizer updates; seed: seeds the noise and the task's batches.
      num_samples: S, samples per gradient estimate.
      optimizer: one of `OPTIMIZERS` (torch.optim / optax); learning_rate: default
        ``task.default_learning_rate`` (1e-2 where the task has none).
      track, every, track_replicates: the gradient basket: estimators measured at θ_t every
        ``every`` steps (default steps // 10) over ``track_replicates`` replicates.
      eval_every: log every ``eval_every`` steps (default 1: every step).
      progress: show a rich progress bar (default: when stderr is a terminal and not under CI).
      params: the initial θ (flat NumPy vector; default ``task.init_params()``).

    Returns a `TrainResult`. Raises `TrainingDivergedError` when the loss becomes NaN or
    infinite, and a ValueError (before any work) for bad options or an estimator that cannot
    run on the task.
    """
    task = get_task(task)
    est = get_estimator(estimator)
    steps = _int("steps", steps)
    seed = _int("seed", seed, minimum=0)
    num_samples = _int("num_samples", num_samples)
    optimizer = _check_optimizer(optimizer)
    lr = _learning_rate(learning_rate, task)
    eval_every = _optional_int("eval_every", eval_every, 1)
    every = _optional_int("every", every, max(1, steps // 10))
    track_replicates = _int("track_replicates", track_replicates, minimum=2)
    tracked = _resolve_track(track)
    check_compatible(task, est, num_samples)

    B = get_backend(backend, device=device, dtype=dtype)
    theta0 = task.init_params() if params is None else np.asarray(params, dtype=np.float64)
    if theta0.shape != (task.num_params,):
        raise ValueError(f"params must be a flat vector of {task.num_params} entries for task "
                         f"{task.name!r}, got shape {theta0.shape}")
    finite("params", theta0, owner=f"task {task.name!r}")

    # the gradient basket: samplers built once (their compatibility is checked here, before training)
    samplers = [(label, GradientSampler(task, tracked_est, backend=B, num_samples=num_samples,
                                        seed=seed + _TRACK_SEED_OFFSET, params=theta0))
                for label, tracked_est in tracked]

    theta0_b = B.asarray(theta0)
    # ground truth; a task whose exact_loss returns None has none (found at first use)
    basket_rows = -(-steps // every) if tracked else 0
    rows_expected = -(-steps // eval_every) + 1 + basket_rows  # an upper bound
    truth = _Truth(task, B, need_grad=bool(tracked), compile_loss=rows_expected >= _COMPILE_ABOVE,
                   compile_grad=basket_rows >= _COMPILE_ABOVE) if task.has_exact() else None

    state = est.init(task.problem(B, theta0_b, batch=task.train_batch(B, seed, 0)).dist)
    if est.phi_loss is not None and not (isinstance(state, dict) and "phi" in state):
        raise ValueError(f"estimator {est.label!r} defines phi_loss but its init() state has no 'phi' entry; "
                         "init must return {'phi': <flat array>, ...} for gradest.train to train φ")
    Stepper = _JaxStepper if B.name == "jax" else _TorchStepper
    stepper = Stepper(task, est, B, theta0, state, optimizer, lr)

    rows: list[dict] = []
    specs_cache: dict = {}
    elapsed = 0.0
    bar = _Progress(steps, f"{task.name} · {est.label}") if _show_progress(progress) else None
    try:
        for t in range(steps):
            measure_basket = bool(samplers) and t % every == 0
            log = t % eval_every == 0 or t == steps - 1 or measure_basket
            start = time.perf_counter()
            batch = task.train_batch(B, seed, t)
            key = _shape_signature(batch)
            if key not in specs_cache:
                specs_cache[key] = noise_specs(task, est, B, stepper.params(), num_samples, batch)
            value, theta_t = stepper.step(specs_cache[key], seed, t, batch, keep_theta=log)
            elapsed += time.perf_counter() - start
            if not math.isfinite(value):
                raise TrainingDivergedError(
                    f"training diverged at step {t}: the loss is {value} (task {task.name!r}, estimator "
                    f"{est.label!r}, optimizer {optimizer!r}, learning_rate={lr:g}, num_samples={num_samples}). "
                    f"Lower the learning rate (e.g. learning_rate={lr / 10:g}), or use more samples or a "
                    "lower-variance estimator.")
            if log:
                rows.append(_evaluate(task, B, t, elapsed, value, theta_t, truth,
                                      samplers if measure_basket else (), track_replicates))
            if bar is not None:
                bar.update(t, value)
    finally:
        if bar is not None:
            bar.close()

    history = _history(rows, tracked)
    return TrainResult(
        history=history, params=B.to_numpy(stepper.params()).astype(np.float64),
        state=_tree_map(B.to_numpy, dict(stepper.state)), task=task.name, estimator=est.label,
        backend=B.name, device=B.device, optimizer=optimizer, learning_rate=lr, steps=steps, seed=seed,
        num_samples=num_samples, tracked=[label for label, _ in tracked])


class _Truth:
    """The task's exact loss and its gradient at θ, or None without truth. Compiled when they
    are evaluated often; a few evaluations run eagerly (no compilation to pay for)."""

    def __init__(self, task, B, need_grad: bool, compile_loss: bool, compile_grad: bool):
        self.B = B
        self.available = True
        loss = lambda p: task.exact_loss(B, p)  # noqa: E731
        self._loss = B.jit(loss) if compile_loss else loss
        grad = B.grad(loss) if need_grad else None
        self._grad = B.jit(grad) if (grad is not None and compile_grad) else grad

    def loss(self, theta) -> float:
        value = self._loss(theta) if self.available else None
        if value is None:
            self.available = False
            return math.nan
        return float(self.B.to_numpy(value))

    def grad(self, theta):
        """The exact gradient at θ (None without truth; call `loss` first, which finds out)."""
        if self._grad is None or not self.available:
            return None
        return self.B.to_numpy(self._grad(theta)).astype(np.float64)


def _evaluate(task, B, step, seconds, value, theta, truth, samplers, replicates):
    """One history row at θ_t ``theta`` (a backend array)."""
    row = {"step": step, "seconds": seconds, "loss": value,
           "exact_loss": truth.loss(theta) if truth is not None else math.nan}
    for name, v in task.metrics(B, theta).items():
        row[name] = float(v)
    if samplers:
        exact = truth.grad(theta) if truth is not None else None
        theta_np = B.to_numpy(theta).astype(np.float64)
        for label, sampler in samplers:
            sampler.set_params(theta_np)
            stats = summarize(sampler.run(replicates), exact)
            for stat in TRACK_STATS:
                row[f"{label}/{stat}"] = stats[stat]
    return row


def _history(rows, tracked):
    import pandas as pd

    head = ["step", "seconds", "loss", "exact_loss"]
    basket = [f"{label}/{stat}" for label, _ in tracked for stat in TRACK_STATS]
    metric_names = [k for k in rows[0] if k not in head and k not in basket]
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
