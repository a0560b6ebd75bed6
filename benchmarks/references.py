"""Reference implementations beside gradest's, on one problem, so that ratios show in one run.

The problem: the 10-armed ``bandit`` task at θ₀ = 0 (rewards r_k = (k / 9)², f(a) = -r_a),
R independent single-sample (S = 1) gradient estimates of dL/dθ [10].

REINFORCE, ∇ = f(a) ∇ log softmax(θ)_a with a ~ Categorical(softmax(θ)), by:

* ``gradest``: `gradest.GradientSampler("bandit", "reinforce").run(R)`, the public path (noise
  from the seed, one vectorized call, NumPy out).
* ``handwritten``: vectorized by hand in the backend's framework (jax: ``jax.jit(jax.vmap(
  jax.grad(surrogate)))`` over keys it derives itself, one ``jax.random.split(key, R)`` inside
  the same jitted call: the floor that gradest's noise, drawn from (seed, stream, replicate),
  is held to);
* ``python_loop``: a Python loop of single estimates by hand, R_loop of them;
* ``NumpyReinforceBandit``: vectorized NumPy with the analytic score (no autodiff): the floor.

Gumbel-softmax (temperature 1, soft and straight-through hard): ``gradest``'s
``gumbel_softmax`` estimator against the framework's own or a hand-written one (``reference``).

The hand-written code is the backend's framework module in `benchmarks._references` (what each
does: ``benchmarks/_references/torch.py``, ``jax.py``), looked up by the backend's name; a
backend without one is skipped (NotImplementedError in setup), never given another's.

Benchmarks: ``time_call`` (one call: R = 10,000 estimates, or R_loop for the loops: the
framework module's ``LOOP_REPLICATES``, 200 on torch, 1,000 on jax),
``track_seconds_per_estimate`` (the best of several calls / estimates per call: comparable
across implementations), and in ``ReinforceBanditRatios`` the ratios
measured back to back in one process: ``track_speedup_over_python_loop`` (loop time per
estimate / gradest's; the requirement: >= 200), ``track_handwritten_speedup_over_python_loop``
(the same for the hand-written vectorized call: the ceiling the loop's per-call overhead
allows), ``track_speedup_over_python_loop_default_threads`` (the first ratio with both
contenders under the framework's default intra-op threads, not the benchmark process's one
thread: torch's is one per CPU, where gradest's own thread policy, `Backend.replicate_call`,
has to keep the vectorized call from collapsing when the cores are busy; the requirement:
>= 200, on a loaded machine too) and ``track_ratio_to_handwritten`` (gradest's time / the
hand-written vectorized one; the requirement on jax: <= 1.1). All timed calls synchronize
(NumPy out, or `Backend.block`); seeds are fixed. Each ratio's rounds are kept in
``last_ratios`` (their spread).
"""
from __future__ import annotations

import contextlib
import time

import numpy as np

import gradest

from . import _grid, _references

#: estimates per vectorized call
R = 10_000
NUM_ARMS = 10
REWARDS = np.linspace(0.0, 1.0, NUM_ARMS) ** 2  # the bandit task's default rewards
IMPLEMENTATIONS = ["gradest", "handwritten", "python_loop"]


def best_seconds(fn, repeats: int) -> float:
    """The fastest of ``repeats`` calls of ``fn`` (which synchronizes), in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _bandit():
    return gradest.get_task("bandit", rewards=REWARDS, logits=np.zeros(NUM_ARMS))


# ---- REINFORCE -------------------------------------------------------------------------------
def gradest_reinforce(backend, device, count: int):
    """The public path: `gradest.gradient_samples` with built task and estimator objects; the
    first (compiling) call happens in the benchmark's warm-up, so timed calls are second calls."""
    task, est = _bandit(), gradest.get_estimator("reinforce")
    return lambda: gradest.gradient_samples(task, est, backend=backend, device=device, num_replicates=count,
                                            num_samples=1, seed=_grid.SEED)


def reinforce_call(implementation: str, backend: str, device: str):
    """(zero-argument call that synchronizes, estimates per call) or NotImplementedError."""
    B = _grid.backend_or_skip(backend, device)
    if implementation == "gradest":
        return gradest_reinforce(backend, device, R), R
    if implementation == "gradest_single":
        return gradest_reinforce(backend, device, 1), 1
    if implementation not in ("handwritten", "handwritten_single", "python_loop"):
        raise ValueError(f"unknown implementation {implementation!r}; known: {', '.join(IMPLEMENTATIONS)}")
    hand = _references.for_backend(backend)
    if implementation == "handwritten_single":
        return hand.reinforce_single(B, REWARDS, _grid.SEED), 1
    if implementation == "handwritten":
        return hand.reinforce_vectorized(B, REWARDS, R, _grid.SEED), R
    count = hand.LOOP_REPLICATES
    return hand.reinforce_loop(B, REWARDS, count, _grid.SEED), count


class ReinforceBandit(_grid.StableTiming):
    """REINFORCE on the 10-armed bandit: gradest, by hand (vectorized), and a Python loop."""

    params = [IMPLEMENTATIONS, _grid.grid_backends(), _grid.grid_devices()]
    param_names = ["implementation", "backend", "device"]
    version = "1"
    timeout = 300

    def setup(self, implementation, backend, device):
        self.call, self.count = reinforce_call(implementation, backend, device)
        self.call()  # warm-up: compilation

    def time_call(self, implementation, backend, device):
        self.call()

    def track_seconds_per_estimate(self, implementation, backend, device):
        return best_seconds(self.call, 10 if self.count >= R else 3) / self.count

    track_seconds_per_estimate.unit = "seconds"


class ReinforceBanditRatios:
    """gradest's REINFORCE against the hand-written one and the Python loop, measured back to
    back in one process (the ratios of the requirements)."""

    params = [_grid.grid_backends(), _grid.grid_devices()]
    param_names = ["backend", "device"]
    version = "1"
    timeout = 300
    #: interleaved rounds of the ratio to the hand-written call (the loop's: 5)
    ratio_rounds = 25

    def setup(self, backend, device):
        self.calls = {impl: reinforce_call(impl, backend, device)
                      for impl in IMPLEMENTATIONS + ["gradest_single", "handwritten_single"]}
        for call, _ in self.calls.values():
            call()  # warm-up: compilation

    def _ratio(self, numerator: str, denominator: str, rounds: int, calls_per_round: int = 1) -> float:
        """Median over ``rounds`` interleaved rounds of (seconds per estimate of ``numerator``) /
        (that of ``denominator``), each the best of ``calls_per_round`` calls; interleaving
        spreads the machine's load over both alike. The rounds' ratios are kept in
        ``self.last_ratios`` (for the spread)."""
        ratios = []
        for _ in range(rounds):
            t = {}
            for impl in (numerator, denominator):
                call, count = self.calls[impl]
                t[impl] = best_seconds(call, calls_per_round) / count
            ratios.append(t[numerator] / t[denominator])
        self.last_ratios = ratios
        return float(np.median(ratios))

    def track_speedup_over_python_loop(self, backend, device):
        return 1.0 / self._ratio("gradest", "python_loop", rounds=5)

    track_speedup_over_python_loop.unit = "x"

    def track_speedup_over_python_loop_default_threads(self, backend, device):
        """`track_speedup_over_python_loop` with the framework's default intra-op threads (the
        reference module's ``default_threads``: torch's one per CPU; jax's threads are fixed
        when its client starts, so there this is the process's setting)."""
        hook = getattr(_references.for_backend(backend), "default_threads", None)
        with hook() if hook is not None else contextlib.nullcontext():
            for impl in ("gradest", "python_loop"):
                self.calls[impl][0]()  # a call at this thread count before the timed ones
            return 1.0 / self._ratio("gradest", "python_loop", rounds=5)

    track_speedup_over_python_loop_default_threads.unit = "x"

    def track_handwritten_speedup_over_python_loop(self, backend, device):
        """The same ratio for the hand-written vectorized call: what the loop's per-call
        overhead leaves reachable on this machine."""
        return 1.0 / self._ratio("handwritten", "python_loop", rounds=5)

    track_handwritten_speedup_over_python_loop.unit = "x"

    def track_ratio_to_handwritten(self, backend, device):
        """gradest's second call of `gradient_samples` / the hand-written vectorized call, both
        returning float64 NumPy (the requirement: <= 1.1 on jax, <= 1.0 on torch)."""
        return self._ratio("gradest", "handwritten", rounds=self.ratio_rounds)

    track_ratio_to_handwritten.unit = "x"

    def track_single_ratio_to_handwritten(self, backend, device):
        """One estimate per call (R = 1): gradest / the hand-written single estimate (the
        requirement: <= 2), each round the best of 20 calls."""
        return self._ratio("gradest_single", "handwritten_single", rounds=self.ratio_rounds, calls_per_round=20)

    track_single_ratio_to_handwritten.unit = "x"


class NumpyReinforceBandit(_grid.StableTiming):
    """The floor: REINFORCE on the bandit, vectorized NumPy, analytic score (no autodiff)."""

    version = "1"

    def setup(self):
        self.rng = np.random.default_rng(_grid.SEED)
        self.theta = np.zeros(NUM_ARMS)

    def call(self):
        probs = np.exp(self.theta - self.theta.max())
        probs /= probs.sum()  # [K]
        a = np.argmax(self.theta + self.rng.gumbel(size=(R, NUM_ARMS)), axis=-1)  # [R]
        f = -REWARDS[a]  # [R]
        score = -np.broadcast_to(probs, (R, NUM_ARMS)).copy()
        score[np.arange(R), a] += 1.0  # ∇ log softmax(θ)_a = onehot(a) - softmax(θ)
        return f[:, None] * score  # [R, K]

    def time_call(self):
        self.call()

    def track_seconds_per_estimate(self):
        return best_seconds(self.call, 10) / R

    track_seconds_per_estimate.unit = "seconds"


# ---- Gumbel-softmax --------------------------------------------------------------------------
def gradest_gumbel_softmax(backend, device, hard: bool, count: int):
    task, est = _bandit(), gradest.get_estimator("gumbel_softmax", temperature=1.0, hard=hard)
    return lambda: gradest.gradient_samples(task, est, backend=backend, device=device, num_replicates=count,
                                            num_samples=1, seed=_grid.SEED)


def gumbel_softmax_call(implementation: str, backend: str, device: str, hard: bool):
    """Zero-argument call of R estimates that synchronizes, or NotImplementedError."""
    B = _grid.backend_or_skip(backend, device)
    if implementation == "gradest":
        return gradest_gumbel_softmax(backend, device, hard, R)
    if implementation == "reference":
        return _references.for_backend(backend).gumbel_softmax(B, REWARDS, hard, R, _grid.SEED)
    raise ValueError(f"unknown implementation {implementation!r}; known: gradest, reference")


class GumbelSoftmaxBandit(_grid.StableTiming):
    """Gumbel-softmax on the 10-armed bandit: gradest against the framework's own/hand-written."""

    params = [["gradest", "reference"], _grid.grid_backends(), [False, True], _grid.grid_devices()]
    param_names = ["implementation", "backend", "hard", "device"]
    version = "1"
    timeout = 300

    def setup(self, implementation, backend, hard, device):
        self.call = gumbel_softmax_call(implementation, backend, device, hard)
        self.call()  # warm-up: compilation

    def time_call(self, implementation, backend, hard, device):
        self.call()

    def track_seconds_per_estimate(self, implementation, backend, hard, device):
        return best_seconds(self.call, 10) / R

    track_seconds_per_estimate.unit = "seconds"
