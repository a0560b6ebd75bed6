"""Reference implementations beside gradest's, on one problem, so that ratios show in one run.

The problem: the 10-armed ``bandit`` task at θ₀ = 0 (rewards r_k = (k / 9)², f(a) = -r_a),
R independent single-sample (S = 1) gradient estimates of dL/dθ [10].

REINFORCE, ∇ = f(a) ∇ log softmax(θ)_a with a ~ Categorical(softmax(θ)), by:

* ``gradest``: `gradest.GradientSampler("bandit", "reinforce").run(R)`, the public path (noise
  from the seed, one vectorized call, NumPy out).
* ``handwritten``, vectorized by hand in the framework:
  torch: ``torch.distributions.Categorical`` over θ expanded to [R, 10] (a leaf: row r is
  replicate r's copy of θ), ``sample``, ``log_prob`` and one ``torch.autograd.grad``;
  jax: ``jax.jit(jax.vmap(jax.grad(surrogate)))`` over R keys from ``jax.random.split``,
  the split inside the same jitted call (seed in, R estimates out, one dispatch).
* ``python_loop``: a Python loop of single estimates, R_loop of them:
  torch: ``Categorical(logits=θ)``, ``sample``, ``log_prob`` and ``autograd.grad`` per estimate;
  jax: a jitted single estimate (``jax.jit(jax.grad(surrogate))``) per key, looping over the
  keys of one ``jax.random.split(key, R_loop)``.
* ``NumpyReinforceBandit``: vectorized NumPy with the analytic score (no autodiff): the floor.

Gumbel-softmax (temperature 1, soft and straight-through hard): ``gradest``'s
``gumbel_softmax`` estimator against torch's ``torch.nn.functional.gumbel_softmax`` over θ
expanded to [R, 10] (``reference`` on torch), and the two-line softmax((θ + G) / τ) by hand
in jax, jitted with its noise (``reference`` on jax).

Benchmarks: ``time_call`` (one call: R = 10,000 estimates, or R_loop for the loops: 200 on
torch, 1,000 on jax), ``track_seconds_per_estimate`` (the best of several calls / estimates
per call: comparable across implementations), and in ``ReinforceBanditRatios`` the ratios
measured back to back in one process: ``track_speedup_over_python_loop`` (loop time per
estimate / gradest's; the requirement: >= 200), ``track_handwritten_speedup_over_python_loop``
(the same for the hand-written vectorized call: the ceiling the loop's per-call overhead
allows) and ``track_ratio_to_handwritten`` (gradest's time / the hand-written vectorized one;
the requirement on jax: <= 1.2). All timed calls synchronize (torch: CUDA synchronize; jax:
block_until_ready); seeds are fixed.
"""
from __future__ import annotations

import time

import numpy as np

import gradest
from gradest.backends import BACKENDS

from . import _grid

#: estimates per vectorized call
R = 10_000
#: estimates per call of the Python loops (affordable; results are normalized per estimate)
R_LOOP = {"torch": 200, "jax": 1_000}
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


# ---- REINFORCE -------------------------------------------------------------------------------
def gradest_reinforce(backend, device, count: int):
    """The public path: `gradest.gradient_samples` with built task and estimator objects; the
    first (compiling) call happens in the benchmark's warm-up, so timed calls are second calls."""
    task = gradest.get_task("bandit", rewards=REWARDS, logits=np.zeros(NUM_ARMS))
    est = gradest.get_estimator("reinforce")
    return lambda: gradest.gradient_samples(task, est, backend=backend, device=device, num_replicates=count,
                                            num_samples=1, seed=_grid.SEED)


def torch_reinforce_vectorized(device, count: int):
    import torch

    B = _grid.backend_or_skip("torch", device)
    torch.manual_seed(_grid.SEED)  # Categorical.sample draws from torch's global generator
    theta = torch.zeros(NUM_ARMS, device=device)
    rewards = torch.as_tensor(REWARDS, dtype=torch.float32, device=device)

    def call():
        logits = theta.expand(count, NUM_ARMS).clone().requires_grad_(True)  # [R, K]
        dist = torch.distributions.Categorical(logits=logits)
        a = dist.sample()  # [R]
        f = -rewards[a]  # [R]
        (grad,) = torch.autograd.grad((f.detach() * dist.log_prob(a)).sum(), logits)  # [R, K]
        return grad.detach().cpu().numpy().astype(np.float64)  # as gradest returns: float64 NumPy

    return call


def torch_reinforce_single(device):
    """One estimate by hand: Categorical(logits=θ), sample, log_prob, autograd; float64 NumPy."""
    import torch

    _grid.backend_or_skip("torch", device)
    torch.manual_seed(_grid.SEED)
    theta = torch.zeros(NUM_ARMS, device=device, requires_grad=True)
    rewards = torch.as_tensor(REWARDS, dtype=torch.float32, device=device)

    def call():
        dist = torch.distributions.Categorical(logits=theta)
        a = dist.sample()
        (grad,) = torch.autograd.grad(-rewards[a].detach() * dist.log_prob(a), theta)  # [K]
        return grad.cpu().numpy().astype(np.float64)[None]

    return call


def jax_reinforce_single(device):
    """One estimate by hand: a jitted ``grad(surrogate)`` at the next key; float64 NumPy."""
    import jax

    B, theta, key = _jax_inputs(device)
    single = jax.jit(jax.grad(_jax_surrogate()))
    keys = iter(jax.random.split(key, 1 << 16))
    return lambda: np.asarray(single(theta, next(keys)), dtype=np.float64)[None]


def torch_reinforce_loop(device, count: int):
    import torch

    B = _grid.backend_or_skip("torch", device)
    torch.manual_seed(_grid.SEED)
    theta = torch.zeros(NUM_ARMS, device=device, requires_grad=True)
    rewards = torch.as_tensor(REWARDS, dtype=torch.float32, device=device)

    def call():
        grads = []
        for _ in range(count):
            dist = torch.distributions.Categorical(logits=theta)
            a = dist.sample()
            f = -rewards[a]
            (grad,) = torch.autograd.grad(f.detach() * dist.log_prob(a), theta)  # [K]
            grads.append(grad)
        return B.block(torch.stack(grads))

    return call


def _jax_surrogate():
    import jax
    import jax.numpy as jnp

    rewards = jnp.asarray(REWARDS, dtype=jnp.float32)

    def surrogate(theta, key):  # one single-sample estimate's surrogate
        a = jax.random.categorical(key, theta)
        f = -rewards[a]
        return jax.lax.stop_gradient(f) * jax.nn.log_softmax(theta)[a]

    return surrogate


def _jax_inputs(device):
    import jax
    import jax.numpy as jnp

    B = _grid.backend_or_skip("jax", device)
    dev = jax.devices("gpu" if device == "cuda" else "cpu")[0]
    theta = jax.device_put(jnp.zeros(NUM_ARMS, jnp.float32), dev)
    key = jax.device_put(jax.random.PRNGKey(_grid.SEED), dev)
    return B, theta, key


def jax_reinforce_vectorized(device, count: int):
    import jax

    B, theta, key = _jax_inputs(device)
    estimate = jax.vmap(jax.grad(_jax_surrogate()), in_axes=(None, 0))
    call_jit = jax.jit(lambda theta, key: estimate(theta, jax.random.split(key, count)))  # [R, K]
    return lambda: np.asarray(call_jit(theta, key), dtype=np.float64)  # as gradest returns: float64 NumPy


def jax_reinforce_loop(device, count: int):
    import jax

    B, theta, key = _jax_inputs(device)
    single = jax.jit(jax.grad(_jax_surrogate()))

    def call():
        keys = jax.random.split(key, count)  # [count, 2]
        return B.block([single(theta, k) for k in keys])  # one jitted estimate per key

    return call


def reinforce_call(implementation: str, backend: str, device: str):
    """(zero-argument call that synchronizes, estimates per call) or NotImplementedError."""
    _grid.backend_or_skip(backend, device)
    _grid.fix_threads()
    if implementation == "gradest":
        return gradest_reinforce(backend, device, R), R
    if implementation == "gradest_single":
        return gradest_reinforce(backend, device, 1), 1
    if implementation == "handwritten_single":
        build = torch_reinforce_single if backend == "torch" else jax_reinforce_single
        return build(device), 1
    if implementation == "handwritten":
        build = torch_reinforce_vectorized if backend == "torch" else jax_reinforce_vectorized
        return build(device, R), R
    if implementation == "python_loop":
        build = torch_reinforce_loop if backend == "torch" else jax_reinforce_loop
        return build(device, R_LOOP[backend]), R_LOOP[backend]
    raise ValueError(f"unknown implementation {implementation!r}; known: {', '.join(IMPLEMENTATIONS)}")


class ReinforceBandit(_grid.StableTiming):
    """REINFORCE on the 10-armed bandit: gradest, by hand (vectorized), and a Python loop."""

    params = [IMPLEMENTATIONS, list(BACKENDS), _grid.grid_devices()]
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

    params = [list(BACKENDS), _grid.grid_devices()]
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
    task = gradest.get_task("bandit", rewards=REWARDS, logits=np.zeros(NUM_ARMS))
    est = gradest.get_estimator("gumbel_softmax", temperature=1.0, hard=hard)
    return lambda: gradest.gradient_samples(task, est, backend=backend, device=device, num_replicates=count,
                                            num_samples=1, seed=_grid.SEED)


def torch_gumbel_softmax(device, hard: bool, count: int):
    import torch
    import torch.nn.functional as F

    B = _grid.backend_or_skip("torch", device)
    torch.manual_seed(_grid.SEED)
    theta = torch.zeros(NUM_ARMS, device=device)
    rewards = torch.as_tensor(REWARDS, dtype=torch.float32, device=device)

    def call():
        logits = theta.expand(count, NUM_ARMS).clone().requires_grad_(True)  # [R, K]
        y = F.gumbel_softmax(logits, tau=1.0, hard=hard)  # [R, K]
        f = -(y * rewards).sum(-1)  # [R]
        (grad,) = torch.autograd.grad(f.sum(), logits)  # [R, K]
        return grad.detach().cpu().numpy().astype(np.float64)

    return call


def jax_gumbel_softmax(device, hard: bool, count: int):
    import jax
    import jax.numpy as jnp

    B, theta, key = _jax_inputs(device)
    rewards = jnp.asarray(REWARDS, dtype=jnp.float32)

    def loss(logits, gumbel):  # logits [R, K], gumbel [R, K] -> scalar
        y = jax.nn.softmax(logits + gumbel, axis=-1)  # temperature 1
        if hard:
            y_hard = jax.nn.one_hot(jnp.argmax(y, axis=-1), NUM_ARMS, dtype=y.dtype)
            y = y_hard + y - jax.lax.stop_gradient(y)
        return -jnp.sum(y * rewards)

    def estimates(theta, key):
        logits = jnp.broadcast_to(theta, (count, NUM_ARMS))
        return jax.grad(loss)(logits, jax.random.gumbel(key, (count, NUM_ARMS), jnp.float32))

    call_jit = jax.jit(estimates)
    return lambda: np.asarray(call_jit(theta, key), dtype=np.float64)


def gumbel_softmax_call(implementation: str, backend: str, device: str, hard: bool):
    """Zero-argument call of R estimates that synchronizes, or NotImplementedError."""
    _grid.backend_or_skip(backend, device)
    _grid.fix_threads()
    if implementation == "gradest":
        return gradest_gumbel_softmax(backend, device, hard, R)
    if implementation == "reference":
        build = torch_gumbel_softmax if backend == "torch" else jax_gumbel_softmax
        return build(device, hard, R)
    raise ValueError(f"unknown implementation {implementation!r}; known: gradest, reference")


class GumbelSoftmaxBandit(_grid.StableTiming):
    """Gumbel-softmax on the 10-armed bandit: gradest against the framework's own/hand-written."""

    params = [["gradest", "reference"], list(BACKENDS), [False, True], _grid.grid_devices()]
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
