"""``bandit``: a K-armed bandit, the policy a categorical over arms.

    θ = logits [K];  a ~ Categorical(softmax(θ));  f(a) = -reward[a];  L(θ) = -Σ_k p_k r_k

Rewards are the means ``rewards`` [K]; with ``reward_noise`` the observed reward is random
(so f itself is random): ``"gaussian"`` draws r_k + ``noise_scale`` ε, ``"bernoulli"`` draws
1[u < r_k] (means in [0, 1]). The exact gradient enumerates the arms (the noise averages to
the means): ∂L/∂θ_k = -p_k (r_k - Σ_j p_j r_j). Metrics: expected reward, regret, and the
probability of the best arm.
"""
from __future__ import annotations

import numpy as np

from gradest.distributions import Categorical
from gradest.estimator import NoiseSpec
from gradest.registry import register_task
from gradest.task import FULL_SIZES, QUICK_SIZES, BenchmarkSizes, Objective, Problem, Task
from gradest.validation import choice, positive, vector

NOISES = ("none", "gaussian", "bernoulli")


@register_task("bandit")
class Bandit(Task):
    """K-armed bandit trained by policy gradient (exact gradient by enumeration)."""

    distribution_kind = "categorical"
    benchmark_sizes = BenchmarkSizes(num_replicates=10_000, train_steps=200)
    sweep_sizes = {"quick": QUICK_SIZES._replace(learning_rate=0.1), "full": FULL_SIZES._replace(learning_rate=0.1)}
    report_notes = (
        "f(a) = −r_a is linear in the one-hot sample z (f(z) = −r·z): straight-through's estimate −J_softmax·r "
        "equals ∇L for every sample (zero bias and variance on this task, biased on a nonlinear f), and the "
        "relaxed and hard (straight-through) Gumbel-softmax variants give the same gradient here.",
    )

    def __init__(self, rewards=None, logits=None, num_arms: int | None = None,
                 reward_noise: str = "none", noise_scale: float = 1.0):
        if rewards is None:
            k = 10 if num_arms is None else int(num_arms)
            if k < 2:
                raise ValueError(f"option 'num_arms' of bandit must be at least 2, got {num_arms!r}")
            rewards = np.linspace(0.0, 1.0, k) ** 2  # a few good arms, one best
        rewards = vector("rewards", rewards, owner="bandit")
        if num_arms is not None and int(num_arms) != rewards.shape[0]:
            raise ValueError(f"option 'num_arms' of bandit is {num_arms} but 'rewards' has {rewards.shape[0]} entries")
        k = rewards.shape[0]
        logits = np.zeros(k) if logits is None else vector("logits", logits, length=k, owner="bandit")
        choice("reward_noise", reward_noise, NOISES, owner="bandit")
        if reward_noise == "bernoulli" and (rewards.min() < 0 or rewards.max() > 1):
            raise ValueError("bernoulli reward_noise needs reward means in [0, 1]; rescale 'rewards'")
        self.rewards, self.logits0 = rewards, logits
        self.reward_noise, self.noise_scale = reward_noise, positive("noise_scale", noise_scale, "bandit")
        self.name = "bandit"
        self.param_layout = [("logits", (k,))]
        self.options = {"rewards": rewards.tolist(), "logits": logits.tolist(), "reward_noise": reward_noise}

    def zero_variance_note(self, estimator_name, options):
        if self.reward_noise != "none":
            return None  # random rewards: no estimator is exact by the task's doing
        return ("f(z) = −r·z is linear in the one-hot sample z, so the derivative of f is −r at every sample: "
                "an estimator that differentiates f through the sample or a relaxation of it (straight-through, "
                "MuProp-like Taylor control variates) gets the same number from every sample. Zero variance here is "
                "the task's doing: on a nonlinear f these estimators vary (and the biased ones are biased). One that "
                "sums over the K arms is exact on any categorical task.")

    @property
    def num_arms(self) -> int:
        return self.rewards.shape[0]

    def init_params(self):
        return self.logits0.copy()

    def noise_spec(self, num_samples):
        if self.reward_noise == "none":
            return {}
        kind = "normal" if self.reward_noise == "gaussian" else "uniform"
        return {"rewards": NoiseSpec((num_samples, self.num_arms), kind)}

    def problem(self, backend, params, noise=None, batch=None):
        B = backend
        rewards = B.asarray(self.rewards)  # [K]
        dist = Categorical(B, params)  # logits [K]
        draws = None if noise is None else noise.get("rewards")

        def f(z):  # z [S, K] one-hot -> [S]
            if draws is None:
                r = rewards  # averaged over the reward noise: the means
            elif self.reward_noise == "gaussian":
                r = rewards + self.noise_scale * draws  # [S, K]
            else:
                r = B.astype(draws < rewards, "float")  # [S, K]
            return -B.sum(z * r, axis=-1)

        return Problem(dist, Objective(f), 0.0)

    def metrics(self, backend, params):
        B = backend
        p = B.to_numpy(B.softmax(params, axis=-1))
        expected = float(p @ self.rewards)
        best = int(np.argmax(self.rewards))
        return {"expected_reward": expected, "regret": float(self.rewards[best] - expected),
                "prob_best_arm": float(p[best])}
