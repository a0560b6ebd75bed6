"""``gumbel_softmax``: the Gumbel-softmax / Concrete relaxation [1, 2], and its
straight-through variant (``hard=True``).

Categorical: the exact sample is onehot(argmax(logits + G)) with G ~ Gumbel (the noise every
estimator shares); its relaxation is y = softmax((logits + G) / τ) and the estimate is
∇_θ f(y). Bernoulli: the binary Concrete, y = sigmoid((logits + L) / τ), L logistic.
With ``hard=True`` the forward pass uses the exact sample and the backward pass the gradient
of y (straight-through Gumbel-softmax [1]).

Biased for every τ > 0: the bias shrinks as τ -> 0 while the variance grows (the trade-off
that the temperature sweep of the report shows). Requires f to accept relaxed samples (points
of the simplex / of [0, 1]).

Temperature annealing, as Jang et al. train their categorical VAE [1, Sec. 4.1 and App. C]
(options ``anneal_rate`` r > 0, ``min_temperature`` τ_min, ``anneal_every`` N; ``temperature``
is τ₀): at training step t the temperature is

    τ_t = max(τ_min, τ₀ · exp(-r · t_N)),   t_N = N · floor(t / N)

(the schedule is updated every N steps; [1] uses τ₀ = 1, τ_min = 0.5, N = 500 and
r ∈ {1e-5, 1e-4}; N = 1 gives the continuous τ₀ · exp(-r t)). The step is carried in the
estimator's state, ``{"step": t, "phase": t mod N}`` (float scalars, counted exactly up to
2^24 steps in float32), and the surrogate returns it advanced by one, so the state moves
(``update_state``): `gradest.train` sees τ_t at step t; `gradient_samples` measures at the
step its state warm-up leaves (`gradest.measure.STATE_WARMUP_STEPS`). `annealed_temperature`
is the schedule in NumPy. With ``anneal_rate=0`` (default) the temperature is constant, the
state empty, and the options and label those of the constant estimator.

[1] Jang, Gu & Poole, Categorical Reparameterization with Gumbel-Softmax, ICLR 2017.
[2] Maddison, Mnih & Teh, The Concrete Distribution, ICLR 2017.
"""
from __future__ import annotations

import numpy as np

from gradest.estimator import GradientEstimator, no_state
from gradest.registry import register_estimator
from gradest import relaxations as R


def relaxed_sample(dist, noise, temperature, hard: bool):
    """The relaxed sample of ``dist`` from its shared noise ([S, *value]); straight-through
    (exact sample forward) when ``hard``. ``temperature``: a positive number, or a backend
    scalar (the annealed τ_t, checked where it is made)."""
    B = dist.backend
    constant = isinstance(temperature, (int, float))
    if dist.kind == "categorical":
        if constant:
            soft = R.gumbel_softmax(B, dist.logits, noise, temperature)  # [S, *value]
        else:
            soft = B.softmax((dist.logits + noise) / temperature, axis=-1)
        if not hard:
            return soft
        return R.straight_through(B, R.hard_argmax(B, soft), soft)
    if constant:
        soft = R.binary_concrete(B, dist.logits, noise, temperature)  # [S, *value]
    else:
        soft = B.sigmoid((dist.logits + R.logistic_from_uniform(B, noise)) / temperature)
    if not hard:
        return soft
    return R.straight_through(B, dist.sample(noise), soft)


def annealed_temperature(step, temperature: float = 1.0, anneal_rate: float = 0.0, min_temperature: float = 0.5,
                         anneal_every: int = 1):
    """τ_t = max(τ_min, τ₀ exp(-r · N floor(t / N))) for integer steps ``step`` (NumPy; any shape)."""
    t = np.floor(np.asarray(step, dtype=np.float64) / anneal_every) * anneal_every
    tau = temperature * np.exp(-anneal_rate * t)
    return np.maximum(min_temperature, tau) if anneal_rate > 0 else np.full_like(tau, float(temperature))


def _number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and bool(np.isfinite(value))


@register_estimator("gumbel_softmax", variants=[{"hard": False}, {"hard": True}], core=[{"hard": False}])
def gumbel_softmax(temperature: float = 1.0, hard: bool = False, anneal_rate: float = 0.0,
                   min_temperature: float = 0.5, anneal_every: int = 1) -> GradientEstimator:
    """Gumbel-softmax / Concrete relaxation; hard=True is straight-through Gumbel-softmax;
    anneal_rate > 0 anneals τ_t = max(min_temperature, temperature·exp(-anneal_rate·t))."""
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if not isinstance(hard, bool):
        raise ValueError(f"hard must be True or False, got {hard!r}")
    if not (_number(anneal_rate) and anneal_rate >= 0):
        raise ValueError(f"option 'anneal_rate' of gumbel_softmax must be a number >= 0 (0: constant "
                         f"temperature), got {anneal_rate!r}")
    annealed = anneal_rate > 0
    if not (_number(min_temperature) and min_temperature > 0):
        raise ValueError(f"option 'min_temperature' of gumbel_softmax must be a positive number, got "
                         f"{min_temperature!r}")
    if annealed and min_temperature > temperature:
        raise ValueError(f"option 'min_temperature' of gumbel_softmax ({min_temperature!r}) must not exceed the "
                         f"initial temperature ({temperature!r}) when annealing")
    if isinstance(anneal_every, bool) or not isinstance(anneal_every, (int, np.integer)) or anneal_every < 1:
        raise ValueError(f"option 'anneal_every' of gumbel_softmax must be a positive integer (steps between "
                         f"temperature updates), got {anneal_every!r}")
    tau0, tau_min, rate, every = float(temperature), float(min_temperature), float(anneal_rate), int(anneal_every)

    def init(dist):
        B = dist.backend
        return {"step": B.zeros(()), "phase": B.zeros(())}

    def current_temperature(B, state):
        """τ_t from the state (a backend scalar)."""
        t = state["step"] - state["phase"]  # N floor(t / N)
        return B.maximum(tau0 * B.exp(-rate * t), tau_min)

    def surrogate(f, dist, noise, state):
        if not annealed:
            return f(relaxed_sample(dist, noise["sample"], tau0, hard)), state  # [S, *b]
        B = dist.backend
        per_sample = f(relaxed_sample(dist, noise["sample"], current_temperature(B, state), hard))  # [S, *b]
        phase = state["phase"] + 1.0
        new_state = {"step": state["step"] + 1.0, "phase": B.where(phase >= every, B.zeros(()), phase)}
        return per_sample, new_state

    options = {"temperature": tau0, "hard": hard}
    if annealed:
        options.update(anneal_rate=rate, min_temperature=tau_min, anneal_every=every)
    return GradientEstimator(
        init=init if annealed else no_state, surrogate=surrogate, supports=frozenset({"categorical", "bernoulli"}),
        unbiased=False, name="gumbel_softmax", options=options, update_state=annealed)
