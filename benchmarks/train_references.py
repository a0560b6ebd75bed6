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

Contenders, each doing step t: the batch, the noise, the loss and its gradient, one Adam update,
and the loss at θ_t back on the host as a Python float:

* ``gradest``: ``gradest.training.Trainer(task, estimator, backend=..., seed=SEED,
  num_samples=4)`` with ``gradest.get_estimator("gumbel_softmax")`` or
  ``gradest.get_estimator("reinforce", baseline="loo")``; the timed call is ``trainer.step()``.
* ``handwritten``, the weights as separate arrays (the task's θ₀ cut along its
  ``param_layout``, so both start equal) and only the step written by hand:
  torch: plain tensors and ``torch.nn.functional``; Gumbel-softmax by
  ``F.gumbel_softmax(logits expanded to [S, Bsz, L, K], tau=1, hard=False)``, REINFORCE by
  ``torch.distributions.Categorical(logits).sample((S,))`` and its ``log_prob``; ``backward``
  and ``torch.optim.Adam``; the loss read back with ``.item()``. Noise from torch's global
  generator (seeded with SEED when the step is built).
  jax: one ``jax.jit`` step (loss, ``jax.value_and_grad``, ``optax.adam`` update) taking and
  returning (params, optimizer state, key); the key is split inside the jitted step, noise
  from ``jax.random.gumbel`` / ``jax.random.categorical``; the loss converted with ``float``.

Benchmarks: ``TrainStepReference.time_step`` (one step of one contender) and
``TrainStepRatio.track_ratio_to_handwritten``: gradest's step time / the hand-written one's,
measured in one process: `ROUNDS` rounds, each timing `STEPS_PER_ROUND` consecutive steps of
both contenders (their order alternating from round to round); the ratio of the two medians over
rounds of seconds per step (the target: <= 1.1). Both contenders keep training across rounds,
at the same step counts. ``TrainStepRatio.last`` keeps the rounds' times for the spread.

Threads: torch runs on one intra-op thread (``torch.set_num_threads(1)`` in the setup of every
torch benchmark). JAX's threads are fixed when its CPU client starts, by ``XLA_FLAGS`` in the
environment of the process; `benchmarks._grid`, imported first, sets the single-threaded
default ``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` when XLA_FLAGS
is unset (``GRADEST_BENCH_THREADS``). This module sets nothing more for JAX: both JAX
contenders run under the same flags. The garbage collector is left on, as in a training loop.
"""
from __future__ import annotations

import functools
import math
import statistics
import time

import numpy as np

from . import _grid  # first: it sets the thread flags before anything starts a framework

import gradest  # noqa: E402
from gradest.backends import BACKENDS  # noqa: E402
from gradest.training import Trainer  # noqa: E402

#: the task of the comparison
TASK_OPTIONS = {"dataset": "digits", "num_latents": 20, "num_categories": 10, "hidden": (200, 200),
                "batch_size": 100}
#: S, samples per step (both estimators)
NUM_SAMPLES = 4
#: Gumbel-softmax temperature (gradest's default)
TEMPERATURE = 1.0
#: the seed of the data order and of the noise
SEED = _grid.SEED
ESTIMATORS = ["gumbel_softmax", "reinforce_loo"]
CONTENDERS = ["gradest", "handwritten"]
#: interleaved rounds of the ratio, and consecutive steps of each contender per round
ROUNDS = 15
STEPS_PER_ROUND = 4


@functools.lru_cache(maxsize=None)
def build_task():
    """The categorical_vae task of `TASK_OPTIONS` (cached: the data are loaded once)."""
    return gradest.get_task("categorical_vae", **TASK_OPTIONS)


def gradest_estimator(estimator: str):
    if estimator == "gumbel_softmax":
        return gradest.get_estimator("gumbel_softmax")
    if estimator == "reinforce_loo":
        return gradest.get_estimator("reinforce", baseline="loo")
    raise ValueError(f"unknown estimator {estimator!r}; known: {', '.join(ESTIMATORS)}")


def blocks_numpy(task, theta=None) -> dict:
    """θ (default the task's θ₀) cut into the named blocks of ``task.param_layout``."""
    theta = task.init_params() if theta is None else np.asarray(theta, dtype=np.float64)
    out, start = {}, 0
    for name, shape in task.param_layout:
        size = int(np.prod(shape))
        out[name] = theta[start:start + size].reshape(shape)
        start += size
    assert start == theta.shape[0]
    return out


def flatten_blocks(task, blocks) -> np.ndarray:
    """The inverse of `blocks_numpy`: NumPy float64 [P] in ``param_layout`` order."""
    return np.concatenate([np.asarray(blocks[name], dtype=np.float64).reshape(-1) for name, _ in task.param_layout])


def _layers(task, prefix: str) -> int:
    """Weight layers of the encoder (``"enc"``) or decoder (``"dec"``), from ``param_layout``."""
    return sum(1 for name, _ in task.param_layout if name.startswith(f"{prefix}_w"))


# ---- gradest -----------------------------------------------------------------------------
class GradestStep:
    """gradest's step: ``Trainer(...).step()``."""

    def __init__(self, backend: str, estimator: str, device: str = "cpu", dtype: str = "float32",
                 learning_rate=None, task=None):
        B = _grid.backend_or_skip(backend, device, dtype)
        self.task = task or build_task()
        self.trainer = Trainer(self.task, gradest_estimator(estimator), backend=B, seed=SEED,
                               num_samples=NUM_SAMPLES, optimizer="adam", learning_rate=learning_rate)
        self.step = self.trainer.step

    def params(self) -> np.ndarray:
        return self.trainer.params()


def _mlp(task, params, prefix: str, h, relu):
    """The task's ``prefix`` ("enc" or "dec") network by hand: affine layers with ``relu`` (the
    framework's own) between them; plain ``@`` and ``+``, the same in torch and JAX."""
    n = _layers(task, prefix)
    for i in range(1, n + 1):
        h = h @ params[f"{prefix}_w{i}"] + params[f"{prefix}_b{i}"]
        if i < n:
            h = relu(h)
    return h


# ---- hand-written: torch -----------------------------------------------------------------
def torch_encoder(task, params, x):
    """x [Bsz, D] -> logits [Bsz, L, K]."""
    import torch

    h = _mlp(task, params, "enc", x, torch.relu)
    return h.reshape(x.shape[0], task.num_latents, task.num_categories)


def torch_reconstruction(task, params, x, z):
    """-log p(x | z) summed over pixels: z [S, Bsz, L, K] (one-hot or relaxed) -> [S, Bsz]."""
    import torch
    import torch.nn.functional as F

    h = z.reshape(*z.shape[:-2], task.num_latents * task.num_categories)
    h = _mlp(task, params, "dec", h, torch.relu)
    return (F.softplus(h) - x * h).sum(-1)


def torch_kl(task, logits):
    """KL(q(z|x) ‖ uniform) per image: logits [Bsz, L, K] -> [Bsz]."""
    log_q = logits.log_softmax(-1)
    return (log_q.exp() * log_q).sum((-2, -1)) + task.num_latents * math.log(task.num_categories)


def torch_gumbel_relax(logits, num_samples: int = NUM_SAMPLES):
    """[Bsz, L, K] -> S relaxed samples [S, Bsz, L, K] by ``F.gumbel_softmax`` (soft, τ = 1)."""
    import torch.nn.functional as F

    return F.gumbel_softmax(logits.unsqueeze(0).expand(num_samples, *logits.shape), tau=TEMPERATURE,
                            hard=False, dim=-1)


def torch_categorical_draw(dist, num_samples: int = NUM_SAMPLES):
    """S class indices [S, Bsz, L] from ``torch.distributions.Categorical``."""
    return dist.sample((num_samples,))


def torch_loss(task, estimator: str, params, x, latent=None):
    """(surrogate to differentiate, loss value detached). ``latent`` draws the noise: for
    gumbel_softmax ``latent(logits) -> relaxed z [S, Bsz, L, K]`` (default `torch_gumbel_relax`),
    for reinforce_loo ``latent(dist) -> indices [S, Bsz, L]`` (default `torch_categorical_draw`)."""
    import torch
    import torch.nn.functional as F

    logits = torch_encoder(task, params, x)
    kl = torch_kl(task, logits).mean()
    if estimator == "gumbel_softmax":
        y = (latent or torch_gumbel_relax)(logits)
        loss = torch_reconstruction(task, params, x, y).mean() + kl
        return loss, loss.detach()
    if estimator != "reinforce_loo":
        raise ValueError(f"unknown estimator {estimator!r}; known: {', '.join(ESTIMATORS)}")
    dist = torch.distributions.Categorical(logits=logits)
    index = (latent or torch_categorical_draw)(dist)  # [S, Bsz, L]
    log_q = dist.log_prob(index).sum(-1)  # [S, Bsz]
    z = F.one_hot(index, task.num_categories).to(logits.dtype)  # [S, Bsz, L, K]
    cost = torch_reconstruction(task, params, x, z)  # [S, Bsz]
    c = cost.detach()
    S = c.shape[0]
    advantage = c - (c.sum(0, keepdim=True) - c) / (S - 1)  # cost - leave-one-out mean
    value = cost.mean() + kl
    return value + (advantage * log_q).mean(), value.detach()


class TorchStep:
    """The hand-written torch step (see the module docstring)."""

    def __init__(self, estimator: str, device: str = "cpu", dtype: str = "float32", learning_rate=None,
                 task=None):
        import torch

        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; known: {', '.join(ESTIMATORS)}")
        self.B = _grid.backend_or_skip("torch", device, dtype)  # for task.train_batch
        self.task = task = task or build_task()
        self.estimator = estimator
        dt = getattr(torch, dtype)
        self.weights = {name: torch.tensor(block, dtype=dt, device=device, requires_grad=True)
                        for name, block in blocks_numpy(task).items()}
        lr = task.default_learning_rate if learning_rate is None else float(learning_rate)
        self.optimizer = torch.optim.Adam(list(self.weights.values()), lr=lr)
        self.t = 0
        torch.manual_seed(SEED)

    def step(self) -> float:
        x = self.task.train_batch(self.B, SEED, self.t)
        surrogate, value = torch_loss(self.task, self.estimator, self.weights, x)
        self.optimizer.zero_grad(set_to_none=True)
        surrogate.backward()
        self.optimizer.step()
        self.t += 1
        return value.item()

    def params(self) -> np.ndarray:
        return flatten_blocks(self.task, {k: v.detach().cpu().numpy() for k, v in self.weights.items()})


# ---- hand-written: jax -------------------------------------------------------------------
def jax_encoder(task, params, x):
    import jax

    h = _mlp(task, params, "enc", x, jax.nn.relu)
    return h.reshape(x.shape[0], task.num_latents, task.num_categories)


def jax_reconstruction(task, params, x, z):
    import jax

    h = z.reshape(*z.shape[:-2], task.num_latents * task.num_categories)
    h = _mlp(task, params, "dec", h, jax.nn.relu)
    return (jax.nn.softplus(h) - x * h).sum(-1)


def jax_kl(task, logits):
    import jax
    import jax.numpy as jnp

    log_q = jax.nn.log_softmax(logits, axis=-1)
    return (jnp.exp(log_q) * log_q).sum((-2, -1)) + task.num_latents * math.log(task.num_categories)


def jax_gumbel_relax(key, logits, num_samples: int = NUM_SAMPLES):
    """S relaxed samples [S, Bsz, L, K]: softmax((logits + G) / τ), G from ``jax.random.gumbel``."""
    import jax

    g = jax.random.gumbel(key, (num_samples, *logits.shape), logits.dtype)
    return jax.nn.softmax((logits + g) / TEMPERATURE, axis=-1)


def jax_categorical_draw(key, logits, num_samples: int = NUM_SAMPLES):
    """S class indices [S, Bsz, L] from ``jax.random.categorical``."""
    import jax

    return jax.random.categorical(key, logits, axis=-1, shape=(num_samples, *logits.shape[:-1]))


def jax_loss(task, estimator: str, params, x, key, latent=None):
    """(surrogate, loss value), as `torch_loss`; ``latent(key, logits)`` draws the noise (default
    `jax_gumbel_relax` / `jax_categorical_draw`)."""
    import jax
    import jax.numpy as jnp

    logits = jax_encoder(task, params, x)
    kl = jax_kl(task, logits).mean()
    if estimator == "gumbel_softmax":
        y = (latent or jax_gumbel_relax)(key, logits)
        loss = jax_reconstruction(task, params, x, y).mean() + kl
        return loss, loss
    if estimator != "reinforce_loo":
        raise ValueError(f"unknown estimator {estimator!r}; known: {', '.join(ESTIMATORS)}")
    index = (latent or jax_categorical_draw)(key, logits)  # [S, Bsz, L]
    z = jax.nn.one_hot(index, task.num_categories, dtype=logits.dtype)  # [S, Bsz, L, K]
    log_q = (z * jax.nn.log_softmax(logits, axis=-1)).sum((-2, -1))  # [S, Bsz]
    cost = jax_reconstruction(task, params, x, z)  # [S, Bsz]
    c = jax.lax.stop_gradient(cost)
    S = c.shape[0]
    advantage = c - (c.sum(0, keepdims=True) - c) / (S - 1)
    value = cost.mean() + kl
    return value + jnp.mean(advantage * log_q), jax.lax.stop_gradient(value)


def jax_train_step(task, estimator: str, optimizer, latent=None):
    """The jitted ``(params, opt_state, key, x) -> (params, opt_state, key, loss)``; the key is
    split inside: the step's noise comes from the second half of ``split(key)``."""
    import jax
    import optax

    def step(params, opt_state, key, x):
        key, sub = jax.random.split(key)
        (_, value), grads = jax.value_and_grad(
            lambda p: jax_loss(task, estimator, p, x, sub, latent), has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key, value

    return jax.jit(step)


class JaxStep:
    """The hand-written jax step (see the module docstring)."""

    def __init__(self, estimator: str, device: str = "cpu", dtype: str = "float32", learning_rate=None,
                 task=None):
        import jax
        import jax.numpy as jnp
        import optax

        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; known: {', '.join(ESTIMATORS)}")
        self.B = _grid.backend_or_skip("jax", device, dtype)
        self.task = task = task or build_task()
        dev = jax.devices("gpu" if device == "cuda" else "cpu")[0]
        dt = jnp.dtype(dtype)
        self.weights = {name: jax.device_put(jnp.asarray(block, dt), dev)
                        for name, block in blocks_numpy(task).items()}
        lr = task.default_learning_rate if learning_rate is None else float(learning_rate)
        optimizer = optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8)  # torch.optim.Adam's defaults
        self.opt_state = jax.device_put(optimizer.init(self.weights), dev)
        self.key = jax.device_put(jax.random.PRNGKey(SEED), dev)
        self._step = jax_train_step(task, estimator, optimizer)
        self.t = 0

    def step(self) -> float:
        x = self.task.train_batch(self.B, SEED, self.t)
        self.weights, self.opt_state, self.key, value = self._step(self.weights, self.opt_state, self.key, x)
        self.t += 1
        return float(value)

    def params(self) -> np.ndarray:
        return flatten_blocks(self.task, {k: np.asarray(v) for k, v in self.weights.items()})


def handwritten_step(backend: str, estimator: str, device: str = "cpu", dtype: str = "float32",
                     learning_rate=None, task=None):
    _grid.backend_or_skip(backend, device, dtype)
    cls = TorchStep if backend == "torch" else JaxStep
    return cls(estimator, device=device, dtype=dtype, learning_rate=learning_rate, task=task)


def make_step(contender: str, backend: str, estimator: str, device: str = "cpu", **options):
    """The contender's step object (``.step() -> float``), or NotImplementedError (skip)."""
    _grid.backend_or_skip(backend, device)
    if backend == "torch":
        import torch

        torch.set_num_threads(1)
    if contender == "gradest":
        return GradestStep(backend, estimator, device=device, **options)
    if contender == "handwritten":
        return handwritten_step(backend, estimator, device=device, **options)
    raise ValueError(f"unknown contender {contender!r}; known: {', '.join(CONTENDERS)}")


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
    """One training step of categorical_vae (20×10, hidden (200, 200), batch 100, S = 4)."""

    params = [CONTENDERS, list(BACKENDS), ESTIMATORS, _grid.grid_devices()]
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

    params = [list(BACKENDS), ESTIMATORS, _grid.grid_devices()]
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
