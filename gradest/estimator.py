"""The estimator contract: a pair of pure functions, as an optax transformation is.

An estimator is a `GradientEstimator` built by a factory (``reinforce(baseline="loo")``)::

    state = est.init(dist)
    per_sample, state = est.surrogate(f, dist, noise, state)

Shapes, with S samples and a distribution of batch shape ``[*b]``:

* ``dist``: a `gradest.distributions.Distribution` at the current parameters, its ``params``
  carrying gradient to θ; ``dist.backend`` is the `Backend` to compute with.
* ``f``: the cost, a callable ``z [S', *value_shape] -> [S', *b]`` for any leading S' (an
  estimator may evaluate f at more points than S, e.g. relaxed or conditional samples). Tasks
  may give f a closed-form ``f.expectation(dist) -> [*b]`` (see `gradest.task.Objective`).
* ``noise``: dict name -> array ``[S, ...]`` as asked for by ``est.noise_spec(dist, S)``. The
  harness draws it; the name ``"sample"`` holds the distribution's own noise, shared by all
  estimators under one seed (common random numbers).
* ``per_sample``: ``[S, *b]``. Its value is the cost at the samples the estimator evaluates
  (f(z) for score-function and straight-through estimators, f at the relaxed sample for
  relaxed ones), and the gradient of its mean with respect to θ is the estimate. So one output
  serves training (minimize it) and benchmarking (differentiate it R times).
* ``state``: a dict of arrays (baselines, running statistics); ``{}`` for stateless estimators.

Trainable estimator parameters φ (a learned baseline's network, RELAX's control variate)
live in ``state["phi"]``, a flat array made by ``init``. The estimator then also gives
``phi_loss(phi, f, dist, noise, state) -> scalar``; `gradest.train` minimizes it with the same
optimizer family as θ (optax / torch.optim) after each θ step, with ``dist.params`` held
constant; `gradient_samples` measures at φ as ``init`` made it (or as training left it).
``phi_loss`` may differentiate the surrogate itself (RELAX minimizes the variance of the
estimate, a second-order gradient): ``dist.with_params(new_params)`` rebuilds the distribution
at other parameters for that.

Metadata says what an estimator supports (``supports``: distribution kinds), whether it is
``unbiased`` (checked by a z-test against the exact gradient), ``min_samples``, and what one
estimate costs in evaluations of f (``evaluations``, read through `f_evaluations`).

**f-evaluations.** One evaluation is f at one point z (one row of the leading axis of what f
is called on: ``f(z [S', ...])`` is S' evaluations; a batch axis is not counted, since one
evaluation covers every batch element). ``evaluations(S, dist) -> int`` declares how many
evaluations one estimate at S samples spends, ``dist`` the distribution it is taken of (for
counts that depend on its shape, e.g. one substituted value per class and variable), or None
where the caller knows no distribution. None (the default) means S: one evaluation per sample,
as for the score-function and pathwise estimators. `gradest.testing.check_estimator` counts
the evaluations of one eager estimate with a wrapped f and compares them with the declaration.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Mapping, NamedTuple

from gradest.distributions import Distribution


class NoiseSpec(NamedTuple):
    """Noise of ``kind`` ("uniform", "normal", "gumbel") and ``shape`` (leading axis S)."""

    shape: tuple
    kind: str


def sample_noise_spec(dist: Distribution, num_samples: int) -> dict[str, NoiseSpec]:
    """The distribution's own noise for S samples: what most estimators need."""
    return {"sample": NoiseSpec((num_samples, *dist.noise_shape), dist.noise_kind)}


def no_state(dist: Distribution) -> dict:
    return {}


class GradientEstimator(NamedTuple):
    """A gradient estimator: ``init``, ``surrogate`` and what it supports.

    Attributes:
      init: ``(dist) -> state``.
      surrogate: ``(f, dist, noise, state) -> (per_sample [S, *b], state)``.
      noise_spec: ``(dist, S) -> {name: NoiseSpec}``; by default the distribution's own noise.
      supports: distribution kinds it applies to.
      unbiased: whether E[estimate] is the exact gradient.
      name: registry name; options: the options it was built with (for labels and results).
      min_samples: smallest S it works with (leave-one-out baselines need 2).
      update_state: whether ``state`` changes from step to step (moving averages).
      requires_exact: it needs the task's ground truth (the ``exact`` estimator).
      phi_loss: ``(phi, f, dist, noise, state) -> scalar`` for trainable ``state["phi"]``.
      requires: task capabilities it needs (a task lists its own in ``Task.capabilities``),
        e.g. ``"log_weight"``: f(z) is a negative log importance weight, so a multi-sample
        bound applies (VIMCO).
      handles_point_mass: its estimate stays right when the distribution is a point mass
        (zero spread, z = θ): it differentiates through the sample (``pathwise``) or uses
        the closed form (``exact``), so a deterministic task may accept it.
      evaluations: ``(S, dist) -> int``, the evaluations of f one estimate at S samples spends
        (see the module docstring; ``dist`` may be None); None: S. Read it with `f_evaluations`.
    """

    init: Callable[[Distribution], Any]
    surrogate: Callable[..., tuple[Any, Any]]
    noise_spec: Callable[[Distribution, int], Mapping[str, NoiseSpec]] = sample_noise_spec
    supports: frozenset = frozenset()
    unbiased: bool = False
    name: str = ""
    options: Mapping[str, Any] = {}
    min_samples: int = 1
    update_state: bool = False
    requires_exact: bool = False
    phi_loss: Callable | None = None
    requires: frozenset = frozenset()
    handles_point_mass: bool = False
    evaluations: Callable[[int, Distribution | None], int] | None = None

    @property
    def label(self) -> str:
        """``name`` with its options, e.g. ``reinforce[baseline=loo]``."""
        from gradest.labels import make_label

        return make_label(self.name, dict(self.options))


def f_evaluations(estimator: GradientEstimator, num_samples: int, dist: Distribution | None = None) -> int:
    """The evaluations of f one estimate of ``estimator`` at S = ``num_samples`` spends: its
    declared ``evaluations(S, dist)``, or S where it declares none. ``dist`` is the distribution
    the estimate is taken of; an estimator whose count depends on it raises ValueError without
    it (naming what it needs)."""
    S = int(num_samples)
    if estimator.evaluations is None:
        return S
    count = estimator.evaluations(S, dist)
    if isinstance(count, bool) or not isinstance(count, numbers.Integral):
        raise TypeError(f"estimator {estimator.name!r} declares evaluations({S}) = {count!r}; "
                        f"an evaluation count is an integer")
    return int(count)


def needs_distribution(name: str, dist: Distribution | None) -> Distribution:
    """``dist``, or a ValueError saying that ``name``'s evaluation count depends on it."""
    if dist is None:
        raise ValueError(f"the f-evaluations of {name} depend on the distribution's shape (its variables and "
                         f"classes); pass the distribution: f_evaluations(estimator, S, dist)")
    return dist


def magic_box(backend, f_value, log_prob, weight):
    """Score-function surrogate whose value is ``f_value`` and whose gradient is
    ∇f + weight * ∇log p, with ``weight`` treated as a constant (DiCE's magic box [1]).

    [1] Foerster et al., DiCE: The Infinitely Differentiable Monte Carlo Estimator, ICML 2018."""
    B = backend
    return f_value + B.stop_gradient(weight) * (log_prob - B.stop_gradient(log_prob))


def linear_surrogate(backend, value, params: Mapping, signal: Mapping, batch_ndim: int):
    """A surrogate with value ``value`` [S, *b] and gradient Σ_s signal_s · ∂params/∂θ / S.

    ``signal[name]`` [S, *param_shape] is a per-sample gradient estimate with respect to the
    distribution parameter ``params[name]``; the result adds Σ over the parameter's non-batch
    axes of stop_gradient(signal) * (param - stop_gradient(param)), so its value is unchanged
    and its mean's gradient is the mean signal pulled back to θ by the chain rule."""
    B = backend
    out = value
    for name, g in signal.items():
        p = params[name]
        term = B.stop_gradient(g) * (p - B.stop_gradient(p))  # [S, *param_shape]
        axes = tuple(range(1 + batch_ndim, term.ndim))
        out = out + (B.sum(term, axis=axes) if axes else term)
    return out
