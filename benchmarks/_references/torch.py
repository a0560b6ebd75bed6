"""Hand-written PyTorch references (the contract: `benchmarks._references`).

Bandit (θ = 0 [K], rewards r [K], f(a) = -r_a, float32 on the backend's device, float64
NumPy out as gradest returns):

* REINFORCE vectorized: ``torch.distributions.Categorical`` over θ expanded to [R, K] (a leaf:
  row r is replicate r's copy of θ), ``sample``, ``log_prob`` and one ``torch.autograd.grad``;
  single: the same for one estimate; loop: `LOOP_REPLICATES` single estimates in a Python
  loop, stacked.
* Gumbel-softmax: ``torch.nn.functional.gumbel_softmax`` over θ expanded to [R, K] (τ = 1).

Noise from torch's global generator, seeded with ``seed`` when a call is built.

categorical_vae training step (`VaeTrainStep`): the weights as leaf tensors (the task's θ₀
cut along its ``param_layout``), the loss written with ``torch.nn.functional``: Gumbel-softmax
by ``F.gumbel_softmax`` (soft) over the logits expanded to [S, Bsz, L, K]; REINFORCE by
``Categorical(logits).sample((S,))`` and its ``log_prob``, the leave-one-out baseline over the
S samples; the analytic KL to the uniform prior; ``backward`` and ``torch.optim.Adam``; with
``compile=True`` the loss goes through ``torch.compile(dynamic=False)``. The loss is read
back with ``.item()``.

bernoulli_vae training step with DisARM (the same `VaeTrainStep`, estimator ``"disarm"``):
encoder logits a [Bsz, L], S uniforms ``torch.rand`` [S, Bsz, L], the antithetic pair
b = 1[u < σ(a)], b̃ = 1[1 - u < σ(a)], the decoder at both, the DisARM signal
½ (f(b) - f(b̃)) (b - b̃) σ(|a|) (detached) as the logits' gradient, the analytic KL to the
learned prior; the loss value ½ (f(b) + f(b̃)) averaged, plus the KL.
"""
from __future__ import annotations

import contextlib
import math
import os

import numpy as np

from .vae_layout import BERNOULLI_ESTIMATORS, LEAKY_SLOPE, blocks_numpy, check_step_task, flatten_blocks, mlp

FRAMEWORK = "torch"
#: estimates per call of the Python loop (affordable; results are normalized per estimate)
LOOP_REPLICATES = 200


# ---- process set-up --------------------------------------------------------------------------
def set_threads(threads: int) -> None:
    """torch's intra-op threads (its setting holds for the process)."""
    import torch

    torch.set_num_threads(threads)


@contextlib.contextmanager
def default_threads():
    """The block run with the intra-op threads torch picks in a process left alone (one per
    CPU: ``os.cpu_count()``), whatever the benchmark process set; the setting restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---- the bandit ------------------------------------------------------------------------------
def _bandit_inputs(backend, rewards, seed: int, leaf: bool):
    """(θ = 0 [K], rewards [K]) on the backend's device, torch's generator seeded."""
    import torch

    torch.manual_seed(seed)  # Categorical.sample and gumbel_softmax draw from the global generator
    theta = torch.zeros(len(rewards), device=backend.device, requires_grad=leaf)
    return theta, torch.as_tensor(rewards, dtype=torch.float32, device=backend.device)


def reinforce_vectorized(backend, rewards, count: int, seed: int):
    import torch

    theta, r = _bandit_inputs(backend, rewards, seed, leaf=False)

    def call():
        logits = theta.expand(count, len(rewards)).clone().requires_grad_(True)  # [R, K]
        dist = torch.distributions.Categorical(logits=logits)
        a = dist.sample()  # [R]
        f = -r[a]  # [R]
        (grad,) = torch.autograd.grad((f.detach() * dist.log_prob(a)).sum(), logits)  # [R, K]
        return grad.detach().cpu().numpy().astype(np.float64)

    return call


def reinforce_single(backend, rewards, seed: int):
    """One estimate: Categorical(logits=θ), sample, log_prob, autograd; float64 NumPy [1, K]."""
    import torch

    theta, r = _bandit_inputs(backend, rewards, seed, leaf=True)

    def call():
        dist = torch.distributions.Categorical(logits=theta)
        a = dist.sample()
        (grad,) = torch.autograd.grad(-r[a].detach() * dist.log_prob(a), theta)  # [K]
        return grad.cpu().numpy().astype(np.float64)[None]

    return call


def reinforce_loop(backend, rewards, count: int, seed: int):
    import torch

    theta, r = _bandit_inputs(backend, rewards, seed, leaf=True)

    def call():
        grads = []
        for _ in range(count):
            dist = torch.distributions.Categorical(logits=theta)
            a = dist.sample()
            f = -r[a]
            (grad,) = torch.autograd.grad(f.detach() * dist.log_prob(a), theta)  # [K]
            grads.append(grad)
        return backend.block(torch.stack(grads))  # [count, K]

    return call


def gumbel_softmax(backend, rewards, hard: bool, count: int, seed: int):
    import torch
    import torch.nn.functional as F

    theta, r = _bandit_inputs(backend, rewards, seed, leaf=False)

    def call():
        logits = theta.expand(count, len(rewards)).clone().requires_grad_(True)  # [R, K]
        y = F.gumbel_softmax(logits, tau=1.0, hard=hard)  # [R, K]
        f = -(y * r).sum(-1)  # [R]
        (grad,) = torch.autograd.grad(f.sum(), logits)  # [R, K]
        return grad.detach().cpu().numpy().astype(np.float64)

    return call


# ---- the categorical_vae training step -------------------------------------------------------
def encoder(task, params, x):
    """x [Bsz, D] -> logits [Bsz, L, K]."""
    import torch

    h = mlp(task, params, "enc", x, torch.relu)
    return h.reshape(x.shape[0], task.num_latents, task.num_categories)


def reconstruction(task, params, x, z):
    """-log p(x | z) summed over pixels: z [S, Bsz, L, K] (one-hot or relaxed) -> [S, Bsz]."""
    import torch
    import torch.nn.functional as F

    h = z.reshape(*z.shape[:-2], task.num_latents * task.num_categories)
    h = mlp(task, params, "dec", h, torch.relu)
    return (F.softplus(h) - x * h).sum(-1)


def kl(task, logits):
    """KL(q(z|x) ‖ uniform) per image: logits [Bsz, L, K] -> [Bsz]."""
    log_q = logits.log_softmax(-1)
    return (log_q.exp() * log_q).sum((-2, -1)) + task.num_latents * math.log(task.num_categories)


def gumbel_relax(logits, num_samples: int, temperature: float):
    """[Bsz, L, K] -> S relaxed samples [S, Bsz, L, K] by ``F.gumbel_softmax`` (soft)."""
    import torch.nn.functional as F

    return F.gumbel_softmax(logits.unsqueeze(0).expand(num_samples, *logits.shape), tau=temperature,
                            hard=False, dim=-1)


def categorical_draw(dist, num_samples: int):
    """S class indices [S, Bsz, L] from ``torch.distributions.Categorical``."""
    return dist.sample((num_samples,))


def default_latent(estimator: str, num_samples: int, temperature: float):
    """The step's noise: `gumbel_relax` for gumbel_softmax, `categorical_draw` for reinforce_loo,
    `uniform_draw` for disarm."""
    if estimator == "gumbel_softmax":
        return lambda logits: gumbel_relax(logits, num_samples, temperature)
    if estimator == "disarm":
        return lambda logits: uniform_draw(logits, num_samples)
    return lambda dist: categorical_draw(dist, num_samples)


# ---- the bernoulli_vae's DisARM step -----------------------------------------------------------
def activation(task):
    """The task's hidden activation as a torch function."""
    import torch

    if task.activation == "tanh":
        return torch.tanh
    if task.activation == "relu":
        return torch.relu
    return lambda h: torch.maximum(h, LEAKY_SLOPE * h)


def uniform_draw(logits, num_samples: int):
    """S uniforms [S, Bsz, L] from torch's global generator."""
    import torch

    return torch.rand((num_samples, *logits.shape), dtype=logits.dtype, device=logits.device)


def bernoulli_kl(params, logits):
    """KL(q(b|x) ‖ p(b)) per image between factorized Bernoullis, the prior's logits learned:
    logits [Bsz, L] -> [Bsz]."""
    import torch
    import torch.nn.functional as F

    eta = params["prior_logits"]
    q = torch.sigmoid(logits)
    return (q * (F.logsigmoid(logits) - F.logsigmoid(eta))
            + (1 - q) * (F.logsigmoid(-logits) - F.logsigmoid(-eta))).sum(-1)


def disarm_loss(task, params, x, latent):
    """(surrogate, loss value) of DisARM on the bernoulli_vae; ``latent(logits) -> u [S, Bsz, L]``."""
    import torch
    import torch.nn.functional as F

    act = activation(task)
    logits = mlp(task, params, "enc", x, act)  # [Bsz, L]
    u = latent(logits)  # [S, Bsz, L]
    p = torch.sigmoid(logits.detach())
    b, b_anti = (u < p).to(logits.dtype), (1 - u < p).to(logits.dtype)

    def cost(z):  # -log p(x | b) summed over pixels: [S, Bsz]
        h = mlp(task, params, "dec", z, act)
        return (F.softplus(h) - x * h).sum(-1)

    f_b, f_anti = cost(b), cost(b_anti)
    signal = 0.5 * (f_b - f_anti).detach().unsqueeze(-1) * (b - b_anti) * torch.sigmoid(logits.detach().abs())
    value = 0.5 * (f_b + f_anti).mean() + bernoulli_kl(params, logits).mean()
    return value + (signal * logits).sum(-1).mean(), value.detach()


def loss(task, estimator: str, params, x, latent):
    """(surrogate to differentiate, loss value detached). ``latent`` draws the noise: for
    gumbel_softmax ``latent(logits) -> relaxed z [S, Bsz, L, K]``, for reinforce_loo
    ``latent(dist) -> indices [S, Bsz, L]`` (`default_latent`)."""
    import torch
    import torch.nn.functional as F

    check_step_task(task, estimator)
    if estimator in BERNOULLI_ESTIMATORS:
        return disarm_loss(task, params, x, latent)
    logits = encoder(task, params, x)
    kl_mean = kl(task, logits).mean()
    if estimator == "gumbel_softmax":
        y = latent(logits)
        value = reconstruction(task, params, x, y).mean() + kl_mean
        return value, value.detach()
    dist = torch.distributions.Categorical(logits=logits)
    index = latent(dist)  # [S, Bsz, L]
    log_q = dist.log_prob(index).sum(-1)  # [S, Bsz]
    z = F.one_hot(index, task.num_categories).to(logits.dtype)  # [S, Bsz, L, K]
    cost = reconstruction(task, params, x, z)  # [S, Bsz]
    c = cost.detach()
    S = c.shape[0]
    advantage = c - (c.sum(0, keepdim=True) - c) / (S - 1)  # cost - leave-one-out mean
    value = cost.mean() + kl_mean
    return value + (advantage * log_q).mean(), value.detach()


class VaeTrainStep:
    """The hand-written torch step (see the module docstring): step t takes the batch
    ``task.train_batch(backend, seed, t)``, the noise, the loss and its gradient, one Adam
    update, and returns the loss at θ_t as a float."""

    def __init__(self, task, estimator: str, backend, *, num_samples: int, temperature: float = 1.0,
                 learning_rate=None, seed: int = 0, compile: bool = False):
        import torch

        check_step_task(task, estimator)
        self.task, self.estimator, self.backend, self.seed = task, estimator, backend, seed
        dtype = getattr(torch, backend.dtype)
        self.weights = {name: torch.tensor(block, dtype=dtype, device=backend.device, requires_grad=True)
                        for name, block in blocks_numpy(task).items()}
        lr = task.default_learning_rate if learning_rate is None else float(learning_rate)
        self.optimizer = torch.optim.Adam(list(self.weights.values()), lr=lr)
        latent = default_latent(estimator, num_samples, temperature)

        def step_loss(weights, x):
            return loss(task, estimator, weights, x, latent)

        self.loss = torch.compile(step_loss, dynamic=False) if compile else step_loss
        self.t = 0
        torch.manual_seed(seed)

    def step(self) -> float:
        x = self.task.train_batch(self.backend, self.seed, self.t)
        surrogate, value = self.loss(self.weights, x)
        self.optimizer.zero_grad(set_to_none=True)
        surrogate.backward()
        self.optimizer.step()
        self.t += 1
        return value.item()

    def params(self) -> np.ndarray:
        """θ_t, NumPy float64 [P]."""
        return flatten_blocks(self.task, {k: v.detach().cpu().numpy() for k, v in self.weights.items()})
