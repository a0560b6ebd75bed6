"""``arms``: ARMS [1], REINFORCE with the leave-one-out baseline over n antithetic samples
drawn through a Dirichlet copula, debiased for their correlation.

**Copula [1, Sec. 3].** For each variable, d ~ Dirichlet(1_n) and u_k = (1 - d_k)^{n-1}
(k = 1..n): each u_k is U(0, 1) (1 - d_k ~ Beta(n - 1, 1)), and the u_k are negatively
dependent (at most one d_k exceeds 1/2). d is built from the harness's uniforms by stick-breaking
(Dirichlet(1_n) = stick fractions x_k ~ Beta(1, n - k)):

    x_k = 1 - v_k^{1/(n-k)},  d_k = x_k Π_{j<k} (1 - x_j)  (k < n),  d_n = Π_{j<n} (1 - x_j),

with v_1 = noise["sample"] (so u_1 = v_1: the shared sample noise) and v_2..v_{n-1} =
noise["copula"]. With n = 2, d = (1 - v, v), u = (v, 1 - v): the antithetic pair of ARM and
DisARM.

**Samples [1, Alg. 1].** With p = σ(α): b_k = 1[u_k < p] where p < 1/2, and b_k =
1[1 - u_{n+1-k} < p] where p ≥ 1/2 (the ones, resp. the zeros, are then the rare and mutually
exclusive events, which makes the pair correlation as negative as this copula allows; the
members' order is reversed there so that, at n = 2, the two vectors are DisARM's b and b̃ in
every coordinate). Each b_k is Bernoulli(p).

**Estimate [1, eq. 9-11].** The leave-one-out REINFORCE estimate over the n samples,

    ĝ = 1/(n - 1) Σ_k (f(b_k) - f̄) (b_k - p) · c(p),    f̄ = 1/n Σ_k f(b_k),

is biased by the samples' correlation ρ(p) = Corr(b_j, b_k): its mean is (1 - ρ) ∇L, per
coordinate (the other coordinates are drawn independently, so E[f(b_j) | b_ji, b_ki] is affine
in b_ji). The debiasing factor is c = 1 / (1 - ρ) = p(1 - p) / (π - C(π, π)), π = min(p, 1 - p),
C(a, a) = max(2 a^{1/(n-1)} - 1, 0)^{n-1} the copula's bivariate CDF on the diagonal (P(b_j =
b_k = 1) for p < 1/2). So ĝ is unbiased for every n ≥ 2. With n = 2, c = max(p, 1 - p) = σ(|α|)
and ĝ = ½ (f(b_1) - f(b_2)) (b_1 - b_2) σ(|α|): DisARM [2] exactly (on the same noise, the same
estimate).

``num_samples`` S is the number of independent copula groups (n samples each, averaged): n·S
evaluations of f (``evaluations``), one call of f on [n·S, *value]. The per-sample surrogate
(group s) has value f̄_s and gradient ĝ_s pulled back to θ through the logits. Batch and event
axes as for `arm`: each variable of each batch element has its own copula draw; f(b) [.., *b]
is the cost of each batch element. Shapes: noise["sample"] [S, *value], noise["copula"]
[S, n - 2, *value] (only for n > 2); b [n, S, *value]; per-sample surrogate [S, *b].

Options: ``n`` (≥ 2, default 4), the samples per copula group. Variants: n = 2 and n = 4.

[1] Dimitriev & Zhou, ARMS: Antithetic-REINFORCE-Multi-Sample Gradient for Binary Variables,
    ICML 2021.
[2] Dong, Mnih & Tucker, DisARM: An Antithetic Gradient Estimator for Binary Latent
    Variables, NeurIPS 2020.
"""
from __future__ import annotations

import numpy as np

from gradest.estimator import GradientEstimator, NoiseSpec, linear_surrogate, no_state
from gradest.estimators.arm import expand_to
from gradest.registry import register_estimator


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"option 'n' of arms must be an integer >= 2 (antithetic samples per copula group; "
                         f"n=2 is DisARM), got {n!r}")
    return int(n)


def copula_uniforms(B, v1, rest, n: int) -> list:
    """[u_1, ..., u_n], each [S, *value]: the Dirichlet copula's n dependent U(0, 1) from v1
    [S, *value] and rest [S, n - 2, *value] (None for n = 2), by stick-breaking (module
    docstring)."""
    vs = [v1] + [rest[:, k] for k in range(n - 2)]  # n - 1 uniforms, [S, *value] each
    remaining = B.ones(tuple(v1.shape))  # Π_{j<k} (1 - x_j)
    us = []
    for k, v in enumerate(vs):  # stick k+1 of n: x ~ Beta(1, n - 1 - k)
        one_minus_x = v ** (1.0 / (n - 1 - k))  # 1 - x_k
        d = (1.0 - one_minus_x) * remaining
        us.append((1.0 - d) ** (n - 1))
        remaining = remaining * one_minus_x
    us.append((1.0 - remaining) ** (n - 1))  # d_n = the rest of the stick
    return us


def oriented_uniforms(B, us: list, logits):
    """[n, S, *value]: u_k where p < 1/2 and 1 - u_{n+1-k} where p >= 1/2, so that b_k =
    1[· < p] makes the ones (p < 1/2), resp. the zeros (p >= 1/2), the copula's exclusive events.
    Reversing the members where p >= 1/2 (a fixed permutation of exchangeable members, per
    coordinate, so the law is unchanged) keeps the vectors aligned across coordinates: for n = 2
    both orientations give (v, 1 - v), DisARM's pair (b, b̃)."""
    ascending, reversed_ = B.stack(us, axis=0), B.stack(us[::-1], axis=0)  # [n, S, *value] each
    return B.where(logits < 0, ascending, 1.0 - reversed_)


def debias_factor(B, logits, n: int):
    """c(p) = 1 / (1 - ρ) [*value] (module docstring), written with π = σ(-|α|) for stability."""
    small = B.sigmoid(-B.abs(logits))  # π = min(p, 1 - p), in (0, 1/2]
    joint = B.maximum(2.0 * small ** (1.0 / (n - 1)) - 1.0, 0.0) ** (n - 1)  # C(π, π) <= π
    ratio = B.where(small > 0, joint / B.where(small > 0, small, 1.0), 0.0)  # C / π in [0, 1)
    return (1.0 - small) / (1.0 - ratio)  # π(1 - π) / (π - C)


@register_estimator("arms", variants=[{"n": 2}, {"n": 4}])
def arms(n: int = 4) -> GradientEstimator:
    """ARMS: leave-one-out REINFORCE over n Dirichlet-copula antithetic samples, debiased (unbiased)."""
    n = _check_n(n)

    def noise_spec(dist, num_samples):
        spec = {"sample": NoiseSpec((num_samples, *dist.noise_shape), "uniform")}
        if n > 2:
            spec["copula"] = NoiseSpec((num_samples, n - 2, *dist.noise_shape), "uniform")
        return spec

    def evaluations(num_samples, dist=None):
        return n * num_samples

    def surrogate(f, dist, noise, state):
        B = dist.backend
        v1 = noise["sample"]  # [S, *value]
        S = int(v1.shape[0])
        logits = B.stop_gradient(dist.logits)
        p = B.sigmoid(logits)  # [*value]
        u = oriented_uniforms(B, copula_uniforms(B, v1, noise.get("copula"), n), logits)  # [n, S, *value]
        b = B.astype(u < p, "float")  # [n, S, *value]
        fb = f(B.reshape(b, (n * S, *dist.value_shape)))  # [n S, *b]
        fb = B.reshape(fb, (n, S, *tuple(fb.shape[1:])))  # [n, S, *b]
        centred = expand_to(B, B.stop_gradient(fb - B.mean(fb, axis=0, keepdims=True)), b.ndim)  # [n, S, *b, 1..]
        signal = B.sum(centred * (b - p), axis=0) * (debias_factor(B, logits, n) / (n - 1))  # [S, *value]
        value = B.mean(fb, axis=0)  # [S, *b]
        return linear_surrogate(B, value, dist.params, {"logits": signal},
                                batch_ndim=len(dist.batch_shape)), state

    return GradientEstimator(init=no_state, surrogate=surrogate, noise_spec=noise_spec,
                             supports=frozenset({"bernoulli"}), unbiased=True, name="arms", options={"n": n},
                             evaluations=evaluations)
