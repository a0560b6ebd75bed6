"""``carms``: CARMS, the Categorical-Antithetic-REINFORCE Multi-Sample estimator [1].

REINFORCE with a leave-one-out baseline over n = S samples that are drawn *jointly
antithetic* (mutually negatively correlated, so fewer duplicates) instead of independent, and
made unbiased again by importance weights of the pairwise joint pmf.

Sampling (per categorical variable, independently across variables) [1, Sec. 3; the authors'
``InverseCategorical`` with the Dirichlet copula]:

* a Dirichlet copula gives n uniforms that are marginally U(0, 1) and negatively dependent:
  E_1..E_n ~ Exp(1), d = E / Σ E ~ Dirichlet(1_n), u_i = (1 − d_i)^{n−1} (1 − d_i ~ Beta(n−1, 1));
  its bivariate CDF is C(a, b) = max(a^{1/(n−1)} + b^{1/(n−1)} − 1, 0)^{n−1} (n = 2: the
  antithetic pair u, 1 − u);
* the K categories are put in an order π drawn uniformly from K(K−1)/2 orders, one per
  unordered pair {a < b} of categories: a first, b last, the others cyclically after b
  (`category_orders`, the set of the authors' code); one order per variable, shared by its n
  samples;
* sample i is the inverse CDF of the categorical in that order at u_i: z_i = π_r with
  L_r < u_i ≤ R_r, [L_r, R_r] the r-th cumulative interval of p_π.

Each z_i is marginally Categorical(p) (u_i is uniform, whatever the order), and a pair
(z_i, z_j), i ≠ j, has the joint pmf, averaged over the orders,

    q(a, b) = mean_π [C(R_a, R_b) − C(R_a, L_b) − C(L_a, R_b) + C(L_a, L_b)]      (rectangle of C)

The estimate [1, eq. (7)], per variable v with score ∇log p_v(z_{i,v}) = z_{i,v} − p_v for the
logits:

    ĝ_v = 1/(n(n−1)) Σ_{i≠j} r_v(z_i, z_j) (f(z_i) − f(z_j)) ∇log p_v(z_{i,v}),
    r_v(a, b) = p_v(a) p_v(b) / q_v(a, b)

Unbiased: the weight r_v turns the expectation over the dependent pair (z_{i,v}, z_{j,v}) into
one over an independent pair, under which f(z_j)'s part has zero mean against the score of z_i
(the other variables of z_j are correlated with z_i's only across variables that the score of
v does not see: each is marginally p). With independent samples (r = 1) it is REINFORCE with
the leave-one-out baseline [2]; for K = 2 it is ARMS [3]. Unlike the authors' training code,
the ratio is exact (no smoothing constant, no clipping), so the estimate is unbiased; a pair
whose joint pmf is 0 cannot be drawn and gets weight 0. Rounding: q is an inclusion–exclusion
of four CDF values, so in float32 with classes of probability below ~1e-6 the weights lose
precision (float64 is exact to ~1e-12).

The surrogate's value is f(z_i) per sample, its gradient the signal above plus the mean of
∇_θ f(z_i) (for an f that depends on θ; each z_i is marginally p, so that mean is unbiased).
``num_samples`` S = n ≥ 2 samples, S evaluations of f (the default ``evaluations``).

Noise (``noise_spec``): ``"copula"`` uniform [S, *b, *ev] (the n exponentials of each variable,
as −log u) and ``"order"`` uniform [S, *b, *ev], whose first row picks each variable's category
order. Shapes: logits [*b, *ev, K] = [*V, K]; samples z [S, *V, K]; ratios [S, S, *V];
per-sample surrogate [S, *b].

[1] Dimitriev & Zhou, CARMS: Categorical-Antithetic-REINFORCE Multi-Sample Gradient
    Estimator, NeurIPS 2021.
[2] Kool, van Hoof & Welling, Buy 4 REINFORCE Samples, Get a Baseline for Free!, 2019.
[3] Dimitriev & Zhou, ARMS: Antithetic-REINFORCE-Multi-Sample Gradient for Binary Variables,
    ICML 2021.
"""
from __future__ import annotations

import numpy as np

from gradest.estimator import GradientEstimator, NoiseSpec, linear_surrogate, no_state
from gradest.registry import register_estimator


def category_orders(num_classes: int) -> np.ndarray:
    """[K(K−1)/2, K] int: for each unordered pair a < b of categories the order that starts at a,
    ends at b and lists the others cyclically from b + 1 (the authors' permutation set)."""
    K = int(num_classes)
    orders = []
    for a in range(K):
        for b in range(a + 1, K):
            middle = [(b + 1 + i) % K for i in range(K)]
            orders.append([a] + [c for c in middle if c not in (a, b)] + [b])
    return np.array(orders, dtype=np.int64)


def order_matrices(num_classes: int) -> np.ndarray:
    """[P, K, K] float: one-hot (position r, category c) matrices of `category_orders`."""
    orders = category_orders(num_classes)
    return np.eye(num_classes)[orders]


def dirichlet_copula(B, uniform):
    """[n, ...] uniforms in (0, 1) -> [n, ...] Dirichlet-copula uniforms u_i = (1 − d_i)^{n−1},
    d = E / Σ E, E = −log(uniform): marginally U(0, 1), jointly negatively dependent."""
    n = uniform.shape[0]
    e = -B.log(uniform)  # [n, ...]: Exp(1)
    total = B.sum(e, axis=0, keepdims=True)  # [1, ...]
    rest = total - e  # [n, ...]: Σ_{j≠i} E_j = (1 − d_i) Σ E
    return B.exp((n - 1) * (B.log(rest) - B.log(total)))


def copula_cdf(B, a, b, n: int):
    """C(a, b) = max(a^{1/(n−1)} + b^{1/(n−1)} − 1, 0)^{n−1}, the bivariate Dirichlet copula."""
    if n == 2:
        return B.relu(a + b - 1.0)
    s = B.relu(a) ** (1.0 / (n - 1)) + B.relu(b) ** (1.0 / (n - 1)) - 1.0
    return B.relu(s) ** (n - 1)


@register_estimator("carms")
def carms() -> GradientEstimator:
    """CARMS: leave-one-out REINFORCE over jointly antithetic categorical samples, importance-weighted (unbiased)."""

    def noise_spec(dist, num_samples):
        shape = (num_samples, *dist.value_shape[:-1])  # one uniform per sample and variable
        return {"copula": NoiseSpec(shape, "uniform"), "order": NoiseSpec(shape, "uniform")}

    def surrogate(f, dist, noise, state):
        B = dist.backend
        if dist.kind != "categorical":
            raise ValueError(f"carms supports categorical distributions, got {dist.kind}")
        u0 = noise["copula"]  # [n, *V]
        n, K = u0.shape[0], dist.num_classes
        assert n >= 2, f"carms needs S >= 2 samples (a leave-one-out baseline), got S={n}"
        p = B.stop_gradient(dist.probs())  # [*V, K]
        orders = order_matrices(K)  # [P, K(position), K(category)]
        P = orders.shape[0]
        perms = B.asarray(orders)
        upper = B.asarray(np.triu(np.ones((K, K))))  # [K, K]: cumulative sums as a matmul

        # the order of each variable, from the first row of the "order" noise
        v = B.expand_dims(noise["order"][0], -1)  # [*V, 1]
        ge = B.astype(v >= B.asarray(np.arange(P + 1) / P), "float")  # [*V, P + 1]
        pick = ge[..., :-1] - ge[..., 1:]  # [*V, P]: one-hot of the order
        order = B.einsum("...p,prc->...rc", pick, perms)  # [*V, K, K]
        sorted_p = B.einsum("...rc,...c->...r", order, p)  # [*V, K]: p in that order
        right = B.matmul(sorted_p, upper)  # [*V, K]: R_r

        # inverse-CDF samples at the copula uniforms: position = first r with u <= R_r
        u = dirichlet_copula(B, u0)  # [n, *V]
        not_last = B.asarray((np.arange(K) < K - 1).astype(float))  # [K]
        above = B.astype(B.expand_dims(u, -1) > right, "float") * not_last  # [n, *V, K]
        before = B.concatenate([B.ones(tuple(above.shape[:-1]) + (1,)), above[..., :-1]], axis=-1)
        position = before - above  # [n, *V, K]: one-hot position in the order
        z = B.einsum("n...r,...rc->n...c", position, order)  # [n, *V, K]: one-hot categories

        # pairwise joint pmf q(a, b), averaged over the orders
        all_sorted = B.einsum("prc,...c->...pr", perms, p)  # [*V, P, K]
        all_right = B.matmul(all_sorted, upper)  # [*V, P, K]
        hi = B.einsum("...pr,prc->...pc", all_right, perms)  # [*V, P, K]: R of each category
        lo = hi - B.einsum("...pr,prc->...pc", all_sorted, perms)  # [*V, P, K]: L
        hi_a, hi_b = B.expand_dims(hi, -1), B.expand_dims(hi, -2)  # [*V, P, K, 1], [*V, P, 1, K]
        lo_a, lo_b = B.expand_dims(lo, -1), B.expand_dims(lo, -2)
        rect = (copula_cdf(B, hi_a, hi_b, n) - copula_cdf(B, hi_a, lo_b, n)
                - copula_cdf(B, lo_a, hi_b, n) + copula_cdf(B, lo_a, lo_b, n))  # [*V, P, K, K]
        joint = B.mean(rect, axis=-3)  # [*V, K, K]

        # importance weights r(z_i, z_j) = p(z_i) p(z_j) / q(z_i, z_j) per variable
        p_z = B.sum(z * p, axis=-1)  # [n, *V]
        q_pair = B.einsum("i...a,...ab,j...b->ij...", z, joint, z)  # [n, n, *V]
        indep = B.expand_dims(p_z, 1) * B.expand_dims(p_z, 0)  # [n, n, *V]
        safe = B.where(q_pair > 0, q_pair, B.ones(tuple(q_pair.shape)))
        ratio = B.where(q_pair > 0, indep / safe, B.zeros(tuple(q_pair.shape)))  # [n, n, *V]

        fz = f(z)  # [n, *b]
        cost = B.stop_gradient(fz)
        while cost.ndim < 1 + len(dist.value_shape) - 1:
            cost = B.expand_dims(cost, -1)  # [n, *b, 1...]: broadcast over event variables
        diff = B.expand_dims(cost, 1) - B.expand_dims(cost, 0)  # [n, n, *b, 1...]: f_i − f_j
        off = B.reshape(B.asarray(1.0 - np.eye(n)), (n, n) + (1,) * (ratio.ndim - 2))  # i ≠ j
        weight = B.sum(off * ratio * diff, axis=1) / (n - 1)  # [n, *V]
        signal = B.expand_dims(weight, -1) * (z - p)  # [n, *V, K]
        return linear_surrogate(B, fz, dist.params, {"logits": signal}, len(dist.batch_shape)), state  # [n, *b]

    return GradientEstimator(
        init=no_state, surrogate=surrogate, noise_spec=noise_spec, supports=frozenset({"categorical"}),
        unbiased=True, name="carms", options={}, min_samples=2)
