"""``antithetic``: REINFORCE [1] over antithetic pairs of samples [2] (a gradest plugin).

Each of the S samples is the harness's own noise n and its mirror image n':

* Bernoulli (uniform noise u):    b = 1[u < σ(θ)],   b' = 1[1 - u < σ(θ)];
* categorical (Gumbel noise G = -log(-log u)): G' = -log(-log(1 - u)), z = onehot argmax(θ + G);
* normal (ε ~ N(0, 1)):           z = μ + σε,        z' = μ - σε.

The per-sample surrogate is ½ [MB(z) + MB(z')], MB the magic box of REINFORCE (value f(z),
gradient (f(z) - c) ∇log p(z) + ∇f(z)), so its value is ½ (f(z) + f(z')) and its gradient

    ĝ = ½ [(f(z) - c) ∇log p(z) + (f(z') - c) ∇log p(z')] + ½ [∇f(z) + ∇f(z')].

**Why it is unbiased.** 1 - u ~ U(0, 1) like u, and -ε ~ N(0, 1) like ε, so z' ~ p_θ exactly as
z is: each half is a REINFORCE estimate of ∇L on its own, and the mean of two unbiased terms is
unbiased, however they are coupled. The coupling (z' large where z is small) only changes the
variance: for f monotone in z the two terms are negatively correlated and the variance drops
(e.g. one Bernoulli with p = ½ gives b' = 1 - b and ĝ = ∇L exactly). The baseline c
(``baseline="loo"``, S ≥ 2) is the mean cost of the other S - 1 pairs, which are independent of
this pair, so E[c ∇log p(z)] = E[c] E[∇log p(z)] = 0. The partner's cost f(z') would not be a
valid baseline for z: it depends on z (ARM [3] corrects exactly that).

f-evaluations: 2S per estimate (each sample and its mirror; ``evaluations``).

[1] Williams, Simple Statistical Gradient-Following Algorithms for Connectionist Reinforcement
    Learning, Machine Learning 1992.
[2] Hammersley & Morton, A New Monte Carlo Technique: Antithetic Variates, Proc. Cambridge
    Philosophical Society 1956.
[3] Yin & Zhou, ARM: Augment-REINFORCE-Merge Gradient for Stochastic Binary Networks, ICLR 2019.
"""
from gradest.estimator import GradientEstimator, magic_box, no_state
from gradest.registry import register_estimator


def mirror(B, kind, noise):
    """The antithetic noise: 1 - u (uniform), -ε (normal), the Gumbel of 1 - u (gumbel)."""
    if kind == "uniform":
        return 1.0 - noise
    if kind == "normal":
        return -noise
    x = B.exp(-noise)  # u = exp(-x); 1 - u = -expm1(-x), by its series where x is small
    v = B.where(x < 1e-4, x * (1.0 - 0.5 * x), 1.0 - B.exp(-x))
    return -B.log(-B.log(B.clip(v, 1e-30, 1.0 - 1e-7)))


def antithetic_evaluations(num_samples: int, dist=None) -> int:
    """2S: f at each of the S samples and at its mirror image."""
    return 2 * num_samples


@register_estimator("antithetic")
def antithetic(baseline: str = "none") -> GradientEstimator:
    """REINFORCE over antithetic pairs (u, 1 - u), (ε, -ε); unbiased; baseline none | loo."""
    if baseline not in ("none", "loo"):
        raise ValueError(f"unknown baseline {baseline!r} for antithetic; valid baselines: none, loo")

    def surrogate(f, dist, noise, state):
        B, n = dist.backend, noise["sample"]  # [S, *noise_shape]
        S = n.shape[0]
        z = B.concatenate([dist.sample(n), dist.sample(mirror(B, dist.noise_kind, n))], axis=0)
        fz, log_p = f(z), dist.log_prob(z)  # [2S, *b]: the S samples, then their mirrors
        cost = B.stop_gradient(fz)
        c = 0.0
        if baseline == "loo":
            pair = 0.5 * (cost[:S] + cost[S:])  # [S, *b]
            c = B.concatenate([(B.sum(pair, axis=0, keepdims=True) - pair) / (S - 1)] * 2, axis=0)
        box = magic_box(B, fz, log_p, cost - c)  # [2S, *b]
        return 0.5 * (box[:S] + box[S:]), state  # [S, *b]

    return GradientEstimator(
        init=no_state, surrogate=surrogate, supports=frozenset({"bernoulli", "categorical", "normal"}),
        unbiased=True, name="antithetic", options={"baseline": baseline},
        min_samples=2 if baseline == "loo" else 1, evaluations=antithetic_evaluations)
