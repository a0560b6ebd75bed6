"""``dreg``: doubly reparameterized gradients of the importance-weighted bound [1].

For tasks whose f(z) = -log w(z) is a negative log importance weight (capability
``"log_weight"``: w = p_θ(x, z) / q_φ(z|x) in a VAE), the loss is the k = S sample bound [2]

    L_k = E[ L̂ ],   L̂ = -log (1/k) Σ_i w_i   (`gradest.estimators.vimco.multi_sample_bound`),

z_i = z(ε_i, φ) reparameterized, w̃_i = w_i / Σ_j w_j. The pathwise gradient of L̂
(`pathwise_iwae`) is -Σ_i w̃_i ∇ log w_i; its part through the score of q,
-Σ_i w̃_i ∂log w_i/∂φ|_{z fixed} = Σ_i w̃_i ∂log q/∂φ, has expectation equal to that of a path
derivative [1, eq. 5-7]. Replacing it by that path derivative (reparameterizing twice) gives
the estimate [1, eq. 8]

    encoder φ:  ∇_φ L̂ ≈ -Σ_i w̃_i² ∂log w_i/∂z_i ∂z_i/∂φ       (q's parameters held fixed inside log q)
    model θ:    ∇_θ L̂  = -Σ_i w̃_i   ∂log w_i/∂θ                (as pathwise_iwae)

unbiased for ∇L_k, as pathwise_iwae is; unlike it, the encoder's estimate does not lose its
signal-to-noise ratio as k grows [1, Sec. 4; 3], and at k = 1 it is ``stl``.

Written without knowing which entries of θ are the encoder's: f's parameters held fixed inside
log q come from the task (``f.path_only``, capability ``"path_only"``, `gradest.task.Objective`).
One call ``(Σ_i f.path_only(z_i), ∂/∂z)`` at z held fixed gives f_i = -log w_i, which carries
the gradient to every parameter that enters other than through z and log q (the model's, weight
w̃_i through L̂), and g_i = ∂f_i/∂z_i (each f_i depends on its own z_i only: f is evaluated point
by point); the path through z then enters as the linear term Σ_i sg(w̃_i² g_i) · (z_i - sg(z_i)).

Surrogate [S, *b]: L̂ + S · Σ_event sg(w̃_s² g_s)(z_s - sg z_s), so its value is L̂ for every s
(training minimizes L_k and logs the bound) and the gradient of its mean over s is the estimate.
``unbiased`` is False: unbiased for ∇L_k, which differs from ∇E[f] (the harness's exact
gradient) for S >= 2 (as vimco, pathwise_iwae). Needs ``normal``. f-evaluations: S (one
``path_only`` per sample; its z-gradient is a backward pass, not an evaluation).

Shapes: ε, z, g [S, *value]; f_i, w̃ [S, *b]; L̂ [*b].

[1] Tucker, Lawson, Gu & Maddison, Doubly Reparameterized Gradient Estimators for Monte Carlo
    Objectives, ICLR 2019.
[2] Burda, Grosse & Salakhutdinov, Importance Weighted Autoencoders, ICLR 2016.
[3] Rainforth, Kosiorek, Le, Maddison, Igl, Wood & Teh, Tighter Variational Bounds are Not
    Necessarily Better, ICML 2018.
"""
from __future__ import annotations

from gradest.estimator import GradientEstimator, no_state
from gradest.estimators.stl import path_only_cost
from gradest.estimators.vimco import multi_sample_bound
from gradest.registry import register_estimator


@register_estimator("dreg")
def dreg() -> GradientEstimator:
    """DReG: the IWAE bound's gradient with the encoder's score term doubly reparameterized."""

    def surrogate(f, dist, noise, state):
        B = dist.backend
        path_only = path_only_cost(f, "dreg")
        z = dist.rsample(noise["sample"])  # [S, *value]

        def total(zz):  # Σ f_i at z held fixed; f_i = -log w_i [S, *b] returned beside it
            fz = path_only(zz)
            return B.sum(fz), fz

        (_, fz), g = B.value_and_grad(total, has_aux=True)(B.stop_gradient(z))  # [S, *b], [S, *value]
        batch = tuple(fz.shape)
        assert batch == (z.shape[0], *dist.batch_shape), (
            f"f.path_only(z) has shape {batch}; it must be [S, *batch_shape] = {(z.shape[0], *dist.batch_shape)}")
        S = batch[0]
        bound = multi_sample_bound(B, fz)  # [*b]: carries -Σ w̃ ∂log w/∂θ (the model's parameters)
        weight = B.stop_gradient(B.softmax(-fz, axis=0))  # w̃ [S, *b]
        for _ in range(dist.event_ndims):
            weight = B.expand_dims(weight, -1)  # [S, *b, 1...]: broadcast over the event axes
        path = B.stop_gradient(weight * weight * g) * (z - B.stop_gradient(z))  # [S, *value], zero in value
        if dist.event_ndims:
            path = B.sum(path, axis=tuple(range(path.ndim - dist.event_ndims, path.ndim)))  # [S, *b]
        return B.expand_dims(bound, 0) + float(S) * path, state  # [S, *b]

    return GradientEstimator(init=no_state, surrogate=surrogate, supports=frozenset({"normal"}), unbiased=False,
                             name="dreg", options={}, requires=frozenset({"log_weight", "path_only"}))
