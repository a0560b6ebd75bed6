"""``mvd``: the measure-valued derivative of a diagonal normal distribution [1, 2].

A weak derivative writes ∂/∂θ_i of a density as a scaled difference of two densities,
∂_θ p(x) = c (p⁺(x) - p⁻(x)), so ∂_θ E_p[f] = c (E_{p⁺}[f] - E_{p⁻}[f]): only values of f are
needed (no ∇f, no score), and the estimate is unbiased. For N(μ, σ²) per coordinate ([1],
Table 1; W, M, ε standard variates):

    mean μ:   c = 1/(σ√(2π)),  p⁺ = μ + σW,  p⁻ = μ - σW,   W ~ Weibull(√2, 2) (Rayleigh)
    std σ:    c = 1/σ,         p⁺ = μ + σM,  p⁻ = μ + σε,   M ~ double-sided Maxwell, ε ~ N(0, 1)

(∂_μ N = (x-μ)/σ² N splits at x = μ into Rayleigh halves; ∂_σ N = (1/σ)(ε² - 1) N and ε² φ(ε)
is the double-sided Maxwell density.) θ holds log σ, so ∂/∂log σ = σ ∂/∂σ: the log_std
signal is f(p⁺) - f(p⁻) with no constant.

For a multivariate diagonal normal the weak derivative of coordinate i replaces coordinate i
only; the other coordinates keep their common sample z ~ N(μ, σ²) (the shared ``"sample"``
noise). Batch elements are independent items, so coordinate i is replaced in every batch
element at once: f is evaluated at 4 · prod(event_shape) points per sample, plus the sample
itself: S (1 + 4 D) evaluations per estimate (``evaluations``, D = prod(event_shape)).

Coupling ([1] §7, variance reduction by coupling and common random numbers; option ``coupled``, default
True): the mean's two parts share one W, and the std's negative part is ε = M·U with
U ~ U(0, 1) (the product of a double-sided Maxwell and an independent uniform is N(0, 1)), so
both parts move together and f(p⁺) - f(p⁻) is small. ``coupled=False`` draws the negative
parts independently.

Noise (``noise_spec``): ``"sample"`` normal [S, *value]; ``"weibull"`` uniform [S, *value]
(W = sqrt(-2 log u), the inverse CDF); ``"maxwell"`` normal [S, 3, *value] (M = sign(n₁)
‖n‖, since ‖n‖ ~ χ₃ and the sign of n₁ is independent of ‖n‖); coupled: ``"coupling"``
uniform [S, *value]; uncoupled: ``"weibull_neg"`` uniform and ``"normal_neg"`` normal
[S, *value].

Closed forms on gaussian_quadratic, f = Σ(z - t)², a = μ - t, σ = 1 (checked by the tests):
per-coordinate variance of the coupled mean signal 16a²(2 - π/2)/(2π), of the coupled log_std
signal 4a² + 4 (pathwise: 4 and 4a² + 8).

[1] Mohamed, Rosca, Figurnov & Mnih, Monte Carlo Gradient Estimation in Machine Learning,
    JMLR 2020, Section 6 (measure-valued gradients) and Table 1.
[2] Pflug, Optimization of Stochastic Models: The Interface Between Simulation and
    Optimization, Kluwer 1996.
"""
from __future__ import annotations

import math

from gradest.estimator import GradientEstimator, NoiseSpec, linear_surrogate, needs_distribution, no_state
from gradest.estimators._conditional_gumbel import substitute_each
from gradest.registry import register_estimator


def rayleigh(B, u):
    """Weibull(scale √2, shape 2) from uniforms, by the inverse CDF 1 - exp(-w²/2)."""
    return B.sqrt(-2.0 * B.log(u))


def double_sided_maxwell(B, normals):
    """[S, 3, *shape] standard normals -> [S, *shape] double-sided Maxwell (density x² φ(x))."""
    radius = B.sqrt(B.sum(normals * normals, axis=1))  # [S, *shape], χ with 3 degrees of freedom
    return B.sign(normals[:, 0]) * radius


def mvd_evaluations(num_samples: int, dist=None) -> int:
    """S (1 + 4 D): f at each sample and at its four weak-derivative parts for each of its D
    event coordinates."""
    dist = needs_distribution("mvd", dist)
    coordinates = math.prod(dist.event_shape) if len(dist.event_shape) else 1
    return num_samples * (1 + 4 * int(coordinates))


@register_estimator("mvd")
def mvd(coupled: bool = True) -> GradientEstimator:
    """Measure-valued derivative of a normal (Weibull / double-sided Maxwell parts); unbiased."""
    if not isinstance(coupled, bool):
        raise ValueError(f"option 'coupled' of mvd must be True or False, got {coupled!r}")

    def noise_spec(dist, num_samples):
        shape = (num_samples, *dist.value_shape)
        spec = {"sample": NoiseSpec((num_samples, *dist.noise_shape), dist.noise_kind),
                "weibull": NoiseSpec(shape, "uniform"),
                "maxwell": NoiseSpec((num_samples, 3, *dist.value_shape), "normal")}
        if coupled:
            spec["coupling"] = NoiseSpec(shape, "uniform")
        else:
            spec["weibull_neg"] = NoiseSpec(shape, "uniform")
            spec["normal_neg"] = NoiseSpec(shape, "normal")
        return spec

    def surrogate(f, dist, noise, state):
        B = dist.backend
        if dist.kind != "normal":
            raise ValueError(f"mvd supports normal distributions only, got {dist.kind}")
        z = dist.sample(noise["sample"])  # [S, *value], no gradient
        mean = B.stop_gradient(dist.mean)  # [*value]
        std = B.exp(B.stop_gradient(dist.log_std))  # [*value]
        w_pos = rayleigh(B, noise["weibull"])  # [S, *value]
        maxwell = double_sided_maxwell(B, noise["maxwell"])  # [S, *value]
        if coupled:
            w_neg = w_pos
            normal = maxwell * noise["coupling"]  # N(0, 1), coupled to the Maxwell variate
        else:
            w_neg = rayleigh(B, noise["weibull_neg"])
            normal = noise["normal_neg"]
        parts = B.stack([mean + std * w_pos, mean - std * w_neg,
                         mean + std * maxwell, mean + std * normal], axis=1)  # [S, 4, *value]
        batch_ndim = len(dist.batch_shape)
        values = substitute_each(B, f, z, parts, batch_ndim, dist.event_shape, 0)  # [S, 4, *value]
        signal = {
            "mean": (values[:, 0] - values[:, 1]) / (std * math.sqrt(2.0 * math.pi)),  # [S, *value]
            "log_std": values[:, 2] - values[:, 3],  # σ · (1/σ)(f⁺ - f⁻)
        }
        return linear_surrogate(B, f(z), dist.params, signal, batch_ndim), state  # [S, *b]

    return GradientEstimator(
        init=no_state, surrogate=surrogate, noise_spec=noise_spec, supports=frozenset({"normal"}),
        unbiased=True, name="mvd", options={"coupled": coupled}, evaluations=mvd_evaluations)
