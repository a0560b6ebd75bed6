"""Training over the grid: time of one optimizer step, and the loss after a fixed budget.

* ``TrainStep.time_train_step``: one step of `gradest.train`'s loop, exactly as it runs there,
  through the public `gradest.Trainer`: the step's batch (``task.train_batch``), its noise
  (replicate t of `gradest.noise`'s streams), the estimator's gradient, the optimizer update
  (Adam: torch.optim on torch; optax on jax, where the whole step, noise included, is one
  jitted function) and, for estimators with trainable φ (RELAX, NVIL), φ's update. The step
  returns the loss as a Python float, which waits for the device. The trainer is built and
  stepped once in ``setup`` (compilation); each timed call is the next step, at the
  parameters the previous steps left.
* ``TrainLoss.track_loss_after_training``: `gradest.train` for ``train_steps`` steps (the
  task's ``benchmark_sizes``, `_grid.settings`) from θ₀ with the task's default learning rate
  and seed `_grid.SEED`; the exact loss L(θ) at the last step where the task has ground
  truth, else the step's surrogate loss. Lower is better. A grid point is trained once per run
  (`_grid.point_values`), when its benchmark runs.

Both are one suite per distribution kind (`_grid.suite_classes`) of the grid
``GRADEST_ASV_GRID`` chooses (default or full, `_grid.suites`): ``TrainStep_<kind>``,
``TrainLoss_<kind>``.
"""
from __future__ import annotations

import math

from gradest import training as _training

from . import _grid


def make_train_step(case, seed: int = _grid.SEED, optimizer: str = "adam"):
    """A zero-argument callable doing the next step of `gradest.train`'s loop for ``case``
    (a `_grid.Case`); returns the step's loss (a float: the device has finished)."""
    trainer = _training.Trainer(case.task, case.estimator, backend=case.backend, seed=seed,
                                num_samples=case.num_samples, optimizer=optimizer)
    return trainer.step


class _TrainStep(_grid.StableTiming):
    """One training step (gradient estimate + optimizer update)."""

    param_names = _grid.PARAM_NAMES
    version = "1"
    timeout = 600

    def setup(self, estimator, task, backend, device):
        case = _grid.prepare(estimator, task, backend, device)
        self.step = make_train_step(case)
        self.step()  # warm-up: compilation

    def time_train_step(self, estimator, task, backend, device):
        self.step()


def case_training_loss(case) -> dict:
    """The loss after `gradest.train` for the task's ``train_steps`` steps (see the module
    docstring)."""
    steps = case.sizes.train_steps
    result = _training.train(case.task, case.estimator, backend=case.backend, steps=steps,
                             seed=_grid.SEED, num_samples=case.num_samples, eval_every=steps,
                             progress=False)
    exact = result.final("exact_loss")
    return {"loss": exact if math.isfinite(exact) else result.final("loss")}


class _TrainLoss:
    """The loss after a fixed training budget, trained once per grid point and run."""

    param_names = _grid.PARAM_NAMES
    version = "1"
    timeout = 600

    def setup_cache(self):
        return _grid.run_folder()

    def setup(self, cache, estimator, task, backend, device):
        self.values = _grid.point_values(cache, "training", (estimator, task, backend, device),
                                         case_training_loss)

    def track_loss_after_training(self, cache, estimator, task, backend, device):
        return self.values["loss"]

    track_loss_after_training.unit = "loss"


_grid.suite_classes(_TrainStep, globals())
_grid.suite_classes(_TrainLoss, globals())
