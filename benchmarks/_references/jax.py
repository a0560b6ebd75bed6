"""Hand-written JAX references (the contract: `benchmarks._references`).

Bandit (θ = 0 [K], rewards r [K], f(a) = -r_a, float32 on the backend's device, float64
NumPy out as gradest returns):

* REINFORCE vectorized: ``jax.jit(jax.vmap(jax.grad(surrogate)))`` over R keys from
  ``jax.random.split``, the split inside the same jitted call (seed in, R estimates out, one
  dispatch); single: a jitted ``jax.grad(surrogate)`` at the next key; loop: that jitted single
  estimate per key of one ``jax.random.split(key, LOOP_REPLICATES)``.
* Gumbel-softmax: the two-line softmax((θ + G) / τ) by hand (τ = 1; hard: straight-through
  one-hot), jitted with its noise from ``jax.random.gumbel``.

categorical_vae training step (`VaeTrainStep`): one ``jax.jit`` step (`train_step`: the key
split inside, noise from ``jax.random.gumbel`` / ``jax.random.categorical``, the loss,
``jax.value_and_grad``, ``optax.adam`` with torch's defaults) taking and returning (weights,
optimizer state, key); the loss converted with ``float``. DisARM on the bernoulli_vae
(estimator ``"disarm"``): the same step, the uniforms from ``jax.random.uniform`` (the
antithetic pair, the DisARM signal as the logits' gradient, the analytic KL to the learned prior,
as torch's module writes it).

Process set-up: JAX fixes its CPU threads when its client starts, from ``XLA_FLAGS``
(`thread_environment`), and can cache compiled functions on disk (`use_compilation_cache`).
"""
from __future__ import annotations

import math

import numpy as np

from .vae_layout import BERNOULLI_ESTIMATORS, LEAKY_SLOPE, blocks_numpy, check_step_task, flatten_blocks, mlp

FRAMEWORK = "jax"
#: estimates per call of the Python loop (affordable; results are normalized per estimate)
LOOP_REPLICATES = 1_000


# ---- process set-up --------------------------------------------------------------------------
def thread_environment(threads: int) -> dict:
    """The environment that gives XLA's CPU client ``threads`` intra-op threads (read when
    the client starts: set it before jax computes anything)."""
    eigen = "false" if threads == 1 else "true"
    return {"XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={eigen} intra_op_parallelism_threads={threads}"}


def use_compilation_cache(folder: str) -> None:
    """Cache every compiled function in ``folder``: the benchmarks of one grid point, each its
    own process, then compile each function once per run."""
    import jax

    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _device(backend):
    import jax

    return jax.devices("gpu" if backend.device == "cuda" else "cpu")[0]


# ---- the bandit ------------------------------------------------------------------------------
def _bandit_inputs(backend, num_arms: int, seed: int):
    """(θ = 0 [K], key) on the backend's device."""
    import jax
    import jax.numpy as jnp

    dev = _device(backend)
    return jax.device_put(jnp.zeros(num_arms, jnp.float32), dev), jax.device_put(jax.random.PRNGKey(seed), dev)


def _reinforce_surrogate(rewards):
    """One single-sample estimate's surrogate (θ [K], key) -> scalar."""
    import jax
    import jax.numpy as jnp

    r = jnp.asarray(rewards, dtype=jnp.float32)

    def surrogate(theta, key):
        a = jax.random.categorical(key, theta)
        f = -r[a]
        return jax.lax.stop_gradient(f) * jax.nn.log_softmax(theta)[a]

    return surrogate


def reinforce_vectorized(backend, rewards, count: int, seed: int):
    import jax

    theta, key = _bandit_inputs(backend, len(rewards), seed)
    estimate = jax.vmap(jax.grad(_reinforce_surrogate(rewards)), in_axes=(None, 0))
    call_jit = jax.jit(lambda theta, key: estimate(theta, jax.random.split(key, count)))  # [R, K]
    return lambda: np.asarray(call_jit(theta, key), dtype=np.float64)


def reinforce_single(backend, rewards, seed: int):
    """One estimate: a jitted ``grad(surrogate)`` at the next key; float64 NumPy [1, K]."""
    import jax

    theta, key = _bandit_inputs(backend, len(rewards), seed)
    single = jax.jit(jax.grad(_reinforce_surrogate(rewards)))
    keys = iter(jax.random.split(key, 1 << 16))
    return lambda: np.asarray(single(theta, next(keys)), dtype=np.float64)[None]


def reinforce_loop(backend, rewards, count: int, seed: int):
    import jax

    theta, key = _bandit_inputs(backend, len(rewards), seed)
    single = jax.jit(jax.grad(_reinforce_surrogate(rewards)))

    def call():
        keys = jax.random.split(key, count)  # [count, 2]
        return backend.block([single(theta, k) for k in keys])  # one jitted estimate per key

    return call


def gumbel_softmax(backend, rewards, hard: bool, count: int, seed: int):
    import jax
    import jax.numpy as jnp

    num_arms = len(rewards)
    theta, key = _bandit_inputs(backend, num_arms, seed)
    r = jnp.asarray(rewards, dtype=jnp.float32)

    def loss_of(logits, gumbel):  # logits [R, K], gumbel [R, K] -> scalar
        y = jax.nn.softmax(logits + gumbel, axis=-1)  # temperature 1
        if hard:
            y_hard = jax.nn.one_hot(jnp.argmax(y, axis=-1), num_arms, dtype=y.dtype)
            y = y_hard + y - jax.lax.stop_gradient(y)
        return -jnp.sum(y * r)

    def estimates(theta, key):
        logits = jnp.broadcast_to(theta, (count, num_arms))
        return jax.grad(loss_of)(logits, jax.random.gumbel(key, (count, num_arms), jnp.float32))

    call_jit = jax.jit(estimates)
    return lambda: np.asarray(call_jit(theta, key), dtype=np.float64)


# ---- the categorical_vae training step -------------------------------------------------------
def encoder(task, params, x):
    """x [Bsz, D] -> logits [Bsz, L, K]."""
    import jax

    h = mlp(task, params, "enc", x, jax.nn.relu)
    return h.reshape(x.shape[0], task.num_latents, task.num_categories)


def reconstruction(task, params, x, z):
    """-log p(x | z) summed over pixels: z [S, Bsz, L, K] (one-hot or relaxed) -> [S, Bsz]."""
    import jax

    h = z.reshape(*z.shape[:-2], task.num_latents * task.num_categories)
    h = mlp(task, params, "dec", h, jax.nn.relu)
    return (jax.nn.softplus(h) - x * h).sum(-1)


def kl(task, logits):
    """KL(q(z|x) ‖ uniform) per image: logits [Bsz, L, K] -> [Bsz]."""
    import jax
    import jax.numpy as jnp

    log_q = jax.nn.log_softmax(logits, axis=-1)
    return (jnp.exp(log_q) * log_q).sum((-2, -1)) + task.num_latents * math.log(task.num_categories)


def gumbel_relax(key, logits, num_samples: int, temperature: float):
    """S relaxed samples [S, Bsz, L, K]: softmax((logits + G) / τ), G from ``jax.random.gumbel``."""
    import jax

    g = jax.random.gumbel(key, (num_samples, *logits.shape), logits.dtype)
    return jax.nn.softmax((logits + g) / temperature, axis=-1)


def categorical_draw(key, logits, num_samples: int):
    """S class indices [S, Bsz, L] from ``jax.random.categorical``."""
    import jax

    return jax.random.categorical(key, logits, axis=-1, shape=(num_samples, *logits.shape[:-1]))


def default_latent(estimator: str, num_samples: int, temperature: float):
    """The step's noise ``latent(key, logits)``: `gumbel_relax` for gumbel_softmax,
    `categorical_draw` for reinforce_loo, `uniform_draw` for disarm."""
    if estimator == "gumbel_softmax":
        return lambda key, logits: gumbel_relax(key, logits, num_samples, temperature)
    if estimator == "disarm":
        return lambda key, logits: uniform_draw(key, logits, num_samples)
    return lambda key, logits: categorical_draw(key, logits, num_samples)


# ---- the bernoulli_vae's DisARM step -----------------------------------------------------------
def activation(task):
    """The task's hidden activation as a jax function."""
    import jax
    import jax.numpy as jnp

    if task.activation == "tanh":
        return jnp.tanh
    if task.activation == "relu":
        return jax.nn.relu
    return lambda h: jnp.maximum(h, LEAKY_SLOPE * h)


def uniform_draw(key, logits, num_samples: int):
    """S uniforms [S, Bsz, L] from ``jax.random.uniform``."""
    import jax

    return jax.random.uniform(key, (num_samples, *logits.shape), logits.dtype)


def bernoulli_kl(params, logits):
    """KL(q(b|x) ‖ p(b)) per image between factorized Bernoullis, the prior's logits learned:
    logits [Bsz, L] -> [Bsz]."""
    import jax

    eta = params["prior_logits"]
    q = jax.nn.sigmoid(logits)
    ls = jax.nn.log_sigmoid
    return (q * (ls(logits) - ls(eta)) + (1 - q) * (ls(-logits) - ls(-eta))).sum(-1)


def disarm_loss(task, params, x, key, latent):
    """(surrogate, loss value) of DisARM on the bernoulli_vae; ``latent(key, logits) -> u [S, Bsz, L]``."""
    import jax

    act = activation(task)
    logits = mlp(task, params, "enc", x, act)  # [Bsz, L]
    u = latent(key, logits)  # [S, Bsz, L]
    a = jax.lax.stop_gradient(logits)
    p = jax.nn.sigmoid(a)
    b, b_anti = (u < p).astype(logits.dtype), (1 - u < p).astype(logits.dtype)

    def cost(z):  # -log p(x | b) summed over pixels: [S, Bsz]
        h = mlp(task, params, "dec", z, act)
        return (jax.nn.softplus(h) - x * h).sum(-1)

    f_b, f_anti = cost(b), cost(b_anti)
    signal = 0.5 * jax.lax.stop_gradient(f_b - f_anti)[..., None] * (b - b_anti) * jax.nn.sigmoid(abs(a))
    value = 0.5 * (f_b + f_anti).mean() + bernoulli_kl(params, logits).mean()
    return value + (signal * logits).sum(-1).mean(), jax.lax.stop_gradient(value)


def loss(task, estimator: str, params, x, key, latent):
    """(surrogate, loss value); ``latent(key, logits)`` draws the noise (`default_latent`)."""
    import jax
    import jax.numpy as jnp

    check_step_task(task, estimator)
    if estimator in BERNOULLI_ESTIMATORS:
        return disarm_loss(task, params, x, key, latent)
    logits = encoder(task, params, x)
    kl_mean = kl(task, logits).mean()
    if estimator == "gumbel_softmax":
        y = latent(key, logits)
        value = reconstruction(task, params, x, y).mean() + kl_mean
        return value, value
    index = latent(key, logits)  # [S, Bsz, L]
    z = jax.nn.one_hot(index, task.num_categories, dtype=logits.dtype)  # [S, Bsz, L, K]
    log_q = (z * jax.nn.log_softmax(logits, axis=-1)).sum((-2, -1))  # [S, Bsz]
    cost = reconstruction(task, params, x, z)  # [S, Bsz]
    c = jax.lax.stop_gradient(cost)
    S = c.shape[0]
    advantage = c - (c.sum(0, keepdims=True) - c) / (S - 1)  # cost - leave-one-out mean
    value = cost.mean() + kl_mean
    return value + jnp.mean(advantage * log_q), jax.lax.stop_gradient(value)


def train_step(task, estimator: str, optimizer, latent):
    """The jitted ``(params, opt_state, key, x) -> (params, opt_state, key, loss)``; the key is
    split inside: the step's noise comes from the second half of ``split(key)``."""
    import jax
    import optax

    def step(params, opt_state, key, x):
        key, sub = jax.random.split(key)
        (_, value), grads = jax.value_and_grad(
            lambda p: loss(task, estimator, p, x, sub, latent), has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key, value

    return jax.jit(step)


class VaeTrainStep:
    """The hand-written jax step (see the module docstring): step t takes the batch
    ``task.train_batch(backend, seed, t)``, the noise, the loss and its gradient, one Adam
    update, and returns the loss at θ_t as a float."""

    def __init__(self, task, estimator: str, backend, *, num_samples: int, temperature: float = 1.0,
                 learning_rate=None, seed: int = 0):
        import jax
        import jax.numpy as jnp
        import optax

        check_step_task(task, estimator)
        self.task, self.backend, self.seed = task, backend, seed
        dev = _device(backend)
        dtype = jnp.dtype(backend.dtype)
        self.weights = {name: jax.device_put(jnp.asarray(block, dtype), dev)
                        for name, block in blocks_numpy(task).items()}
        lr = task.default_learning_rate if learning_rate is None else float(learning_rate)
        optimizer = optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8)  # torch.optim.Adam's defaults
        self.opt_state = jax.device_put(optimizer.init(self.weights), dev)
        self.key = jax.device_put(jax.random.PRNGKey(seed), dev)
        self._step = train_step(task, estimator, optimizer, default_latent(estimator, num_samples, temperature))
        self.t = 0

    def step(self) -> float:
        x = self.task.train_batch(self.backend, self.seed, self.t)
        self.weights, self.opt_state, self.key, value = self._step(self.weights, self.opt_state, self.key, x)
        self.t += 1
        return float(value)

    def params(self) -> np.ndarray:
        """θ_t, NumPy float64 [P]."""
        return flatten_blocks(self.task, {k: np.asarray(v) for k, v in self.weights.items()})
