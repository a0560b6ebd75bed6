"""One training step of gradest against a hand-written step of the same framework, so that the
ratio shows in one run.

The problem: the ``categorical_vae`` task on ``dataset="digits"`` (8×8 images, D = 64 pixels,
static binarization) at ``num_latents=20``, ``num_categories=10``, ``hidden=(200, 200)``,
``batch_size=100`` (`TASK_OPTIONS`): encoder 64-200-200-(20×10), decoder (20×10)-200-200-64,
ReLU hidden layers, loss the -ELBO per image (reconstruction Σ_d softplus(l_d) - x_d l_d, plus
the analytic KL to the uniform prior), θ₀ the task's ``init_params()``, Adam at the task's
``default_learning_rate`` (3e-3), S = `NUM_SAMPLES` = 4 samples per step, data
``task.train_batch(backend, SEED, t)`` at step t. Estimators (`ESTIMATORS`):

* ``gumbel_softmax``: the soft relaxation at temperature 1 (gradest's defaults), loss
  mean_{s,b} f(softmax(logits + G)) + mean_b KL;
* ``reinforce_loo``: REINFORCE with the leave-one-out baseline over the S samples, surrogate
  mean_{s,b} [f(z) + (f(z) - mean of the other S-1 costs) log q(z|x)] + mean_b KL (the
  baseline-corrected cost a constant), whose reported value is mean f(z) + mean KL.

A second problem (`BERNOULLI_OPTIONS`), the linear Bernoulli VAE of the ``dong2020`` preset:
``bernoulli_vae`` on ``dataset="mnist5k"`` (28×28 images, D = 784, dynamic binarization),
``num_latents=200``, ``hidden=()`` (encoder 784-200, decoder 200-784), ``batch_size=50``, the
learned prior, Adam at 3e-4, with ``disarm`` at S = `BERNOULLI_SAMPLES` = 1 antithetic pair
(``gradest.get_estimator("disarm")``; by hand: the pair from one ``rand`` [S, Bsz, L], the
decoder at both, the DisARM signal as the encoder logits' gradient, the analytic KL).
`STEP_CASES` lists every estimator a benchmark runs: `ESTIMATORS` on the categorical_vae, then
``disarm`` on the bernoulli_vae (`task_for`).

Contenders, each doing step t: the batch, the noise, the loss and its gradient, one Adam update,
and the loss at θ_t back on the host as a Python float:

* ``gradest``: ``gradest.training.Trainer(task, estimator, backend=..., seed=SEED,
  num_samples=4)`` with ``gradest.get_estimator("gumbel_softmax")`` or
  ``gradest.get_estimator("reinforce", baseline="loo")``; the timed call is ``trainer.step()``.
* ``handwritten``, the weights as separate arrays (the task's θ₀ cut along its
  ``param_layout``, so both start equal) and only the step written by hand, in the backend's
  framework: ``VaeTrainStep`` of its module in `benchmarks._references` (``torch.py``: plain
  tensors, ``torch.nn.functional``, ``torch.optim.Adam``, noise from torch's global generator
  seeded with SEED when the step is built; ``jax.py``: one ``jax.jit`` step with ``optax.adam``,
  the key split inside). A backend without such a module is skipped (NotImplementedError in
  setup), never given another framework's step.

Benchmarks: ``TrainStepReference.time_step`` (one step of one contender) and
``TrainStepRatio.track_ratio_to_handwritten``: gradest's step time / the hand-written one's,
measured in one process: `ROUNDS` rounds, each timing `STEPS_PER_ROUND` consecutive steps of
both contenders (their order alternating from round to round); the ratio of the two medians over
rounds of seconds per step (the target: <= 1.1). Both contenders keep training across rounds,
at the same step counts. ``TrainStepRatio.last`` keeps the rounds' times for the spread.

Threads: every framework runs on `_grid.THREADS` intra-op threads (one unless
``GRADEST_BENCH_THREADS`` says otherwise), set by `_grid.configure_process` when the setup
builds its backend (`_grid.backend_or_skip`); both contenders of a framework run under the
same setting. The garbage collector is left on, as in a training loop.
"""
from __future__ import annotations

import functools
import statistics
import time

import gradest
from gradest.training import Trainer

from . import _grid, _references
from ._references.vae_layout import BERNOULLI_ESTIMATORS, STEP_ESTIMATORS

#: the task of the comparison
TASK_OPTIONS = {"dataset": "digits", "num_latents": 20, "num_categories": 10, "hidden": (200, 200),
                "batch_size": 100}
#: S, samples per step (both estimators)
NUM_SAMPLES = 4
#: the second problem: dong2020's linear Bernoulli VAE (DisARM)
BERNOULLI_OPTIONS = {"dataset": "mnist5k", "num_latents": 200, "hidden": (), "batch_size": 50,
                     "binarize": "dynamic"}
#: antithetic pairs per DisARM step (dong2020's)
BERNOULLI_SAMPLES = 1
#: Gumbel-softmax temperature (gradest's default)
TEMPERATURE = 1.0
#: the seed of the data order and of the noise
SEED = _grid.SEED
#: the categorical_vae's estimators
ESTIMATORS = [e for e in STEP_ESTIMATORS if e not in BERNOULLI_ESTIMATORS]
#: every estimator the benchmarks run, each on its problem (`task_for`)
STEP_CASES = ESTIMATORS + list(BERNOULLI_ESTIMATORS)
CONTENDERS = ["gradest", "handwritten"]
#: interleaved rounds of the ratio, and consecutive steps of each contender per round
ROUNDS = 15
STEPS_PER_ROUND = 4


@functools.lru_cache(maxsize=None)
def build_task():
    """The categorical_vae task of `TASK_OPTIONS` (cached: the data are loaded once)."""
    return gradest.get_task("categorical_vae", **TASK_OPTIONS)


@functools.lru_cache(maxsize=None)
def build_bernoulli_task():
    """The bernoulli_vae task of `BERNOULLI_OPTIONS` (cached)."""
    return gradest.get_task("bernoulli_vae", **BERNOULLI_OPTIONS)


def task_for(estimator: str):
    """The problem ``estimator`` is benchmarked on."""
    return build_bernoulli_task() if estimator in BERNOULLI_ESTIMATORS else build_task()


def samples_for(estimator: str) -> int:
    """S of ``estimator``'s steps."""
    return BERNOULLI_SAMPLES if estimator in BERNOULLI_ESTIMATORS else NUM_SAMPLES


def gradest_estimator(estimator: str):
    if estimator == "gumbel_softmax":
        return gradest.get_estimator("gumbel_softmax")
    if estimator == "reinforce_loo":
        return gradest.get_estimator("reinforce", baseline="loo")
    if estimator == "disarm":
        return gradest.get_estimator("disarm")
    raise ValueError(f"unknown estimator {estimator!r}; known: {', '.join(STEP_CASES)}")


class GradestStep:
    """gradest's step on a built backend: ``Trainer(...).step()``."""

    def __init__(self, backend, estimator: str, task, num_samples: int | None = None, learning_rate=None):
        self.task = task
        self.trainer = Trainer(task, gradest_estimator(estimator), backend=backend, seed=SEED,
                               num_samples=num_samples or samples_for(estimator), optimizer="adam",
                               learning_rate=learning_rate)
        self.step = self.trainer.step

    def params(self):
        return self.trainer.params()


def handwritten_step(backend, estimator: str, task, num_samples: int | None = None, learning_rate=None,
                     **options):
    """The hand-written step of the built ``backend``'s framework (`benchmarks._references`),
    or NotImplementedError naming why there is none; ``options`` go to the framework's step
    (e.g. torch's ``compile``)."""
    module = _references.for_backend(backend.name)
    return module.VaeTrainStep(task, estimator, backend, num_samples=num_samples or samples_for(estimator),
                               temperature=TEMPERATURE,
                               learning_rate=learning_rate, seed=SEED, **options)


def make_step(contender: str, backend: str, estimator: str, device: str = "cpu", dtype: str = "float32",
              learning_rate=None, task=None):
    """The contender's step object (``.step() -> float``, ``.params()``) on ``estimator``'s task
    (`task_for`; or ``task``), or NotImplementedError (skip)."""
    if contender not in CONTENDERS:
        raise ValueError(f"unknown contender {contender!r}; known: {', '.join(CONTENDERS)}")
    B = _grid.backend_or_skip(backend, device, dtype)
    build = GradestStep if contender == "gradest" else handwritten_step
    return build(B, estimator, task or task_for(estimator), learning_rate=learning_rate)


def interleaved_seconds(steps: dict, rounds: int = ROUNDS, steps_per_round: int = STEPS_PER_ROUND) -> dict:
    """{name: [seconds per step of each round]}: each round times ``steps_per_round``
    consecutive calls of every step function, the order of the contenders reversed every
    other round."""
    names = list(steps)
    out = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            fn = steps[name]
            start = time.perf_counter()
            for _ in range(steps_per_round):
                fn()
            out[name].append((time.perf_counter() - start) / steps_per_round)
    return out


def summarize(seconds: dict) -> dict:
    """Medians, the ratio of medians gradest/handwritten and the spread of per-round ratios."""
    g, h = seconds["gradest"], seconds["handwritten"]
    per_round = sorted(a / b for a, b in zip(g, h))
    q = statistics.quantiles(per_round, n=4) if len(per_round) >= 2 else [per_round[0]] * 3
    return {"gradest_median_s": statistics.median(g), "handwritten_median_s": statistics.median(h),
            "ratio": statistics.median(g) / statistics.median(h),
            "round_ratio_min": per_round[0], "round_ratio_q1": q[0], "round_ratio_median": q[1],
            "round_ratio_q3": q[2], "round_ratio_max": per_round[-1], "rounds": len(per_round)}


class TrainStepReference(_grid.StableTiming):
    """One training step of categorical_vae (20×10, hidden (200, 200), batch 100, S = 4), or of
    the linear bernoulli_vae with DisARM (``estimator="disarm"``)."""

    params = [CONTENDERS, _grid.grid_backends(), STEP_CASES, _grid.grid_devices()]
    param_names = ["contender", "backend", "estimator", "device"]
    version = "1"
    timeout = 300

    def setup(self, contender, backend, estimator, device):
        self.step = make_step(contender, backend, estimator, device).step
        self.step()  # warm-up: compilation

    def time_step(self, contender, backend, estimator, device):
        self.step()


class TrainStepRatio:
    """gradest's step time / the hand-written step's, interleaved in one process."""

    params = [_grid.grid_backends(), STEP_CASES, _grid.grid_devices()]
    param_names = ["backend", "estimator", "device"]
    version = "1"
    timeout = 300
    rounds = ROUNDS
    steps_per_round = STEPS_PER_ROUND

    def setup(self, backend, estimator, device):
        self.steps = {c: make_step(c, backend, estimator, device).step for c in CONTENDERS}
        for step in self.steps.values():
            step()  # warm-up: compilation
            step()
        self.last = None

    def measure(self) -> dict:
        """`summarize` of one interleaved measurement (kept in ``self.last`` with the rounds' times)."""
        seconds = interleaved_seconds(self.steps, self.rounds, self.steps_per_round)
        self.last = {"seconds": seconds, **summarize(seconds)}
        return self.last

    def track_ratio_to_handwritten(self, backend, estimator, device):
        return self.measure()["ratio"]

    track_ratio_to_handwritten.unit = "x"
