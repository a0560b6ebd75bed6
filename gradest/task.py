"""The task contract: a loss L(θ) = E_{z~p_θ}[f(z)] + deterministic terms, to minimize.

A task is an object (registered by `gradest.registry.register_task`) with:

* ``param_layout``: ``[(name, shape), ...]``: θ is one flat vector, these blocks in this order
  (the documented order of `gradient_samples` columns); ``init_params()`` gives θ₀ (NumPy).
* ``distribution_kind``: "categorical", "bernoulli" or "normal".
* ``problem(backend, params, noise=None, batch=None) -> Problem``: the distribution p_θ, the
  cost f and the deterministic term at flat θ ``params``. ``noise`` is the task's own
  randomness (``noise_spec(S)``, e.g. noisy rewards); ``None`` means f averaged over it, so
  that exact enumeration gives the exact loss. ``batch`` selects data for data-driven tasks.
* ``exact_loss(backend, params)``: the exact L(θ) as a backend scalar, or ``None`` where no
  ground truth exists. The default enumerates a small discrete support or uses f's closed form.
* ``metrics(backend, params) -> dict[str, float]``: task-specific numbers for training logs;
  ``metric_descriptions`` ({name: what it measures, on which data}), ``metric_directions``
  ({name: "lower" | "higher"}, "lower" where absent: lower is better) and ``headline_metric``
  (the one number a report shows per run: ``"exact_loss"`` by default, the exact L(θ) that
  training logs where the task has ground truth) declare them for reports and tables.
* ``init_params(seed=None)``: θ₀; tasks that derive an initialization per run seed accept an
  int ``seed`` and say which initialization seed it gives (``init_seed_for(seed)``; None: one
  declared θ₀ whatever the seed).
* ``train_batch(backend, seed, step)``: the data of one training step (passed to ``problem`` as
  ``batch``), or ``None`` for tasks without data. ``batch=None`` in ``problem`` means the task's
  fixed default batch (what `gradient_samples` measures on).
* ``incompatibility(estimator)``: a reason to refuse an estimator (None: accept it).
* ``activation_elements(S)``: rough count of floats one replicate's surrogate holds (the
  harness's chunk-size hint; 0 for toys).
* ``capabilities``: what the task offers beyond this contract, matched against an estimator's
  ``requires``: ``"log_weight"`` (f(z) = -log w(z) is a negative log importance weight, so
  multi-sample bounds apply) and ``"path_only"`` (every problem's f carries ``path_only``, see
  `Objective`).

An extension of the contract (optional): ``Objective.path_only(z) -> [S, *b]`` is f with the
distribution's parameters held fixed wherever f depends on them other than through z. For a
sampled ELBO f(z) = log q_θ(z|x) - log p_θ(x, z) it is log q_{stop θ}(z|x) - log p_θ(x, z):
the same value, and with z = g_θ(ε) reparameterized its gradient is the pathwise one with the
score term ∇_θ log q_θ(z) dropped (zero in expectation). Estimators that drop that term
(``stl``, Roeder et al. 2017; ``dreg``, Tucker et al. 2019) need it; a task that gives it in
every problem lists the capability ``"path_only"``, and the binding refuses those estimators
on other tasks before any work.

All array work goes through the Backend, so a task is written once for torch and jax.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from gradest.backends.base import Backend
from gradest.distributions import Distribution
from gradest.estimator import NoiseSpec


class Objective:
    """The cost f: ``z [S, *value_shape] -> [S, *batch_shape]``, with an optional closed form.

    ``expectation(dist) -> [*batch_shape]``, when given, is E_{z~dist}[f(z)] exactly (the
    `exact` estimator uses it for continuous distributions). ``path_only(z) -> [S, *batch_shape]``,
    when given, is f with the distribution's parameters held fixed (stop_gradient) wherever f
    depends on them other than through z (inside log q of a sampled ELBO): equal to f(z) in
    value; tasks that give it list the capability ``"path_only"`` (see the module docstring)."""

    def __init__(self, fn: Callable, expectation: Callable | None = None, path_only: Callable | None = None):
        self.fn = fn
        self.expectation = expectation
        self.path_only = path_only

    def __call__(self, z):
        return self.fn(z)


def squared_distance(backend: Backend, target) -> Objective:
    """f(z) = Σ (z - t)² over the last axis ([S, D] -> [S]), with its closed form
    E f = Σ Var z + (E z - t)² from the distribution's ``moments()`` (mean, variance [D])."""
    B = backend
    t = B.asarray(target)  # [D]

    def f(z):  # [S, D] -> [S]
        return B.sum((z - t) ** 2, axis=-1)

    def expectation(q):  # []
        mean, variance = q.moments()  # [D], [D]
        return B.sum(variance + (mean - t) ** 2, axis=-1)

    return Objective(f, expectation)


class Problem(NamedTuple):
    dist: Distribution
    f: Objective
    extra: Any = 0.0  # deterministic part of the loss (a scalar)


def unflatten(backend: Backend, params, layout: Sequence[tuple[str, tuple]]) -> dict:
    """Split flat θ [P] into named blocks of ``layout`` (one split: its gradient is one
    concatenation, not a full-size scatter per block)."""
    sizes = [int(np.prod(shape)) if len(shape) else 1 for _, shape in layout]
    assert sum(sizes) == params.shape[0], f"θ has {params.shape[0]} entries, the layout {sum(sizes)}"
    pieces = backend.split(params, sizes) if len(sizes) > 1 else [params]
    return {name: backend.reshape(piece, shape) for (name, shape), piece in zip(layout, pieces)}


def layout_size(layout) -> int:
    return int(sum(int(np.prod(s)) if len(s) else 1 for _, s in layout))


def flatten_numpy(blocks: Mapping[str, Any], layout) -> np.ndarray:
    return np.concatenate([np.asarray(blocks[name], dtype=np.float64).reshape(-1) for name, _ in layout])


class SweepSizes(NamedTuple):
    """How large a task's sweep cells are in one budget (``gradest run`` / ``--quick``)."""

    #: task options for the budget (e.g. a small network for the quick sweep)
    options: Mapping = {}
    #: replicates R of each gradient statistic
    num_replicates: int = 200
    #: the S values the gradient cells measure
    sample_sizes: tuple = (1, 4, 16)
    #: optimizer steps of each training cell
    train_steps: int = 60
    #: S of the training cells
    train_num_samples: int = 4
    #: the training cells' learning rate (None: the task's ``default_learning_rate``)
    learning_rate: float | None = None


class BenchmarkSizes(NamedTuple):
    """How large a task's asv benchmarks are (benchmarks/: ``asv run``)."""

    #: R, the replicates of one timed vectorized call and of the statistics (one R, so that
    #: both use one compiled function)
    num_replicates: int = 1_000
    #: the training budget of the trained-loss benchmark
    train_steps: int = 50


QUICK_SIZES = SweepSizes(sample_sizes=(1, 4))
FULL_SIZES = SweepSizes(num_replicates=2000, sample_sizes=(1, 4, 16, 64), train_steps=400)
BUDGETS = ("quick", "full")


def sweep_sizes(factory, budget: str) -> SweepSizes:
    """The `SweepSizes` a task factory declares for ``budget`` ("quick" or "full")."""
    declared = getattr(factory, "sweep_sizes", None) or {}
    default = QUICK_SIZES if budget == "quick" else FULL_SIZES
    sizes = declared.get(budget, default)
    return sizes if isinstance(sizes, SweepSizes) else default._replace(**dict(sizes))


class Task:
    """Base class with the defaults of the contract above. Subclasses set ``name``,
    ``distribution_kind``, ``param_layout`` and implement ``init_params`` and ``problem``."""

    name: str = ""
    distribution_kind: str = ""
    param_layout: list = []
    #: sizes of the task's sweep cells per budget ({"quick": SweepSizes, "full": SweepSizes});
    #: a subclass overrides what differs, e.g. a small network for "quick"
    sweep_sizes: dict = {"quick": QUICK_SIZES, "full": FULL_SIZES}
    #: sizes of the task's asv benchmarks
    benchmark_sizes: BenchmarkSizes = BenchmarkSizes()
    #: what the task's numbers do not say by themselves: the report shows these beside its leaderboard
    report_notes: tuple = ()
    options: dict = {}
    #: what the task offers beyond the contract, matched against ``GradientEstimator.requires``
    capabilities: frozenset = frozenset()
    #: {metric name: what it measures and on which data}, for the report's labels
    metric_descriptions: dict = {}
    #: {metric name: "lower" or "higher"}: which way is better ("lower" where absent)
    metric_directions: dict = {}
    #: the history column a report shows per training run (the exact loss, where the task has truth)
    headline_metric: str = "exact_loss"

    @property
    def num_params(self) -> int:
        return layout_size(self.param_layout)

    def param_names(self) -> list[str]:
        """One name per entry of flat θ, e.g. ``logits[3]``."""
        names = []
        for name, shape in self.param_layout:
            for idx in np.ndindex(*shape) if len(shape) else [()]:
                names.append(f"{name}[{','.join(map(str, idx))}]" if idx else name)
        return names

    def init_params(self) -> np.ndarray:
        raise NotImplementedError

    def init_seed_for(self, seed: int) -> int | None:
        """The initialization seed of a training run under ``seed`` (``init_params(seed=seed)``
        draws θ₀ from it); None: the task has one declared θ₀ whatever the seed."""
        return None

    def problem(self, backend: Backend, params, noise=None, batch=None) -> Problem:
        raise NotImplementedError

    def noise_spec(self, num_samples: int) -> dict[str, NoiseSpec]:
        return {}

    def exact_loss(self, backend: Backend, params):
        prob = self.problem(backend, params)
        expected = expected_cost(backend, prob.f, prob.dist)
        if expected is None:
            return None
        return backend.mean(expected) + prob.extra

    def has_exact(self) -> bool:
        return True

    def incompatibility(self, estimator) -> str | None:
        """Why ``estimator`` cannot run on this task (a message naming the fix), or None.

        `gradest.measure.check_compatible` raises with it; for refusals that the distribution
        kind and capabilities cannot express (e.g. a deterministic configuration)."""
        return None

    def zero_variance_note(self, estimator_name: str, options: Mapping[str, Any]) -> str | None:
        """Why estimator ``estimator_name`` (built with ``options``) has zero variance on this
        task, where that is the task's doing (nothing random, f linear in the sample, ...): the
        report shows it beside the leaderboard instead of a generic explanation. None: not
        declared."""
        return None

    def train_batch(self, backend: Backend, seed: int, step: int):
        return None

    def activation_elements(self, num_samples: int) -> int:
        return 0

    def metrics(self, backend: Backend, params) -> dict[str, float]:
        return {}

    @property
    def label(self) -> str:
        return self.name

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"


def expected_cost(backend: Backend, f: Objective, dist: Distribution, max_support: int | None = None):
    """E_{z~dist}[f(z)] per batch element [*b], exactly: by enumerating a discrete support or by
    f's closed form; ``None`` when neither exists."""
    B = backend
    if dist.is_discrete and dist.has_enumerate_support:
        kwargs = {} if max_support is None else {"max_support": max_support}
        values = dist.enumerate_support(**kwargs)  # [N, *value_shape]
        log_p = dist.log_prob(values)  # [N, *b]
        return B.sum(B.exp(log_p) * f(values), axis=0)
    if f.expectation is not None:
        return f.expectation(dist)
    return None
