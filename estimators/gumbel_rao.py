"""``gumbel_rao``: the Gumbel-Rao estimator, a Rao-Blackwellized straight-through
Gumbel-softmax [1].

Straight-through Gumbel-softmax (ST-GS, ``gumbel_softmax(hard=True)`` [2]) forwards the exact
sample D = onehot(argmax(logits + G)) and backpropagates through y = softmax((logits + G)/τ):

    ST-GS:       ∂f/∂D · ∂softmax((θ + G)/τ)/∂θ
    Gumbel-Rao:  ∂f/∂D · E[∂softmax((θ + G)/τ)/∂θ | D]      (G held fixed inside the derivative)

The conditional expectation is estimated with ``num_mc`` draws of G | argmax = D (the
"top-down" conditional Gumbel [1 §4, 3]), from the uniforms declared in ``noise_spec`` as
``"conditional"`` [S, num_mc, *logits.shape]; D itself comes from the shared ``"sample"``
noise (common random numbers with every other estimator). Since f is evaluated at D only, the
surrogate is f(D + ȳ - stop_gradient(ȳ)) with ȳ the mean of the ``num_mc`` conditional
relaxations: S evaluations of f per estimate whatever ``num_mc`` (the default ``evaluations``).

Properties (what the tests check): E[Gumbel-Rao] = E[ST-GS] for every ``num_mc`` (the same
bias: biased for every τ > 0), and Var[Gumbel-Rao] = Var(E[ST-GS | D]) + E[Var(ST-GS | D)]/num_mc
<= Var[ST-GS] by the law of total variance; with ``num_mc=1`` the two have one distribution.
Bernoulli: the same construction with logistic noise L | 1[logits + L > 0] = b and the
binary Concrete relaxation sigmoid((logits + L)/τ) [4].

Shapes: logits [*value]; D [S, *value]; G [S, num_mc, *value]; f(·) [S, *b].

[1] Paulus, Maddison & Krause, Rao-Blackwellizing the Straight-Through Gumbel-Softmax Gradient
    Estimator, ICLR 2021.
[2] Jang, Gu & Poole, Categorical Reparameterization with Gumbel-Softmax, ICLR 2017.
[3] Maddison, Tarlow & Minka, A* Sampling, NeurIPS 2014.
[4] Maddison, Mnih & Teh, The Concrete Distribution, ICLR 2017.
"""
from __future__ import annotations

from gradest.estimator import GradientEstimator, NoiseSpec, no_state
from gradest import relaxations as R
from gradest.estimators._conditional_gumbel import conditional_gumbel, conditional_logistic
from gradest.registry import register_estimator
from gradest.validation import integer


def check_temperature(temperature, owner: str) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"option 'temperature' of {owner} must be a positive number, got {temperature!r}")
    return float(temperature)


def check_positive_int(name: str, value, owner: str) -> int:
    return integer(f"option {name!r}", value, owner=owner)


@register_estimator("gumbel_rao")
def gumbel_rao(temperature: float = 1.0, num_mc: int = 10) -> GradientEstimator:
    """Gumbel-Rao: straight-through Gumbel-softmax averaged over num_mc draws of G | sample."""
    temperature = check_temperature(temperature, "gumbel_rao")
    num_mc = check_positive_int("num_mc", num_mc, "gumbel_rao")

    def noise_spec(dist, num_samples):
        return {"sample": NoiseSpec((num_samples, *dist.noise_shape), dist.noise_kind),
                "conditional": NoiseSpec((num_samples, num_mc, *dist.value_shape), "uniform")}

    def surrogate(f, dist, noise, state):
        B = dist.backend
        hard = dist.sample(noise["sample"])  # [S, *value]
        logits = dist.logits  # [*value]
        if dist.kind == "categorical":
            g = conditional_gumbel(B, logits, hard, noise["conditional"])  # [S, M, *value]
            soft = B.softmax((logits + g) / temperature, axis=-1)  # [S, M, *value]
        else:
            g = conditional_logistic(B, logits, hard, noise["conditional"])  # [S, M, *value]
            soft = B.sigmoid((logits + g) / temperature)  # [S, M, *value]
        soft = B.mean(soft, axis=1)  # [S, *value]
        return f(R.straight_through(B, hard, soft)), state  # [S, *b]

    return GradientEstimator(
        init=no_state, surrogate=surrogate, noise_spec=noise_spec,
        supports=frozenset({"categorical", "bernoulli"}), unbiased=False, name="gumbel_rao",
        options={"temperature": temperature, "num_mc": num_mc})
