"""``gaussian_vae``: the VAE of the reparameterization trick [1, 2], with Gaussian latents.

Model, for a binarized image x ∈ {0, 1}^D and L real latent variables z:

    q_θ(z | x) = N(z; μ(x), diag σ(x)²)       encoder: MLP D -> hidden -> 2L, (μ, log σ) = split
    p(z)       = N(z; 0, I)                    (fixed prior)
    p_θ(x | z) = Π_d Bernoulli(x_d; sigmoid(decoder(z)_d))    decoder: MLP L -> hidden' -> D

sampled as z = μ + σ·ε, ε ~ N(0, I) (the harness's "sample" noise). The loss is the negative
ELBO in nats per image, the family's contract (`gradest.tasks._vae`): ``dist = Normal(B,
mean [Bsz, L], log_std [Bsz, L], event_ndims=1)``, f(z [S, Bsz, L]) -> [S, Bsz] the
reconstruction cost -log p(x|z), and with ``kl="analytic"`` (default) ``Problem.extra`` the
batch mean of the analytic KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ_l (μ_l² + σ_l² - 1) - log σ_l [1,
App. B]. With ``kl="sampled"``, f(z) = -log w(z) = -log p(x|z) + log q(z|x) - log p(z) and
extra = 0 (capability ``"log_weight"``), and f carries ``path_only(z)`` = -log p(x|z) +
log q_{stop θ}(z|x) - log p(z), f with q's parameters held fixed inside log q (capability
``"path_only"``, `gradest.task.Objective`). The estimators of a normal distribution run on it:
`pathwise` (the estimator of [1, 2]), `reinforce` (every baseline), `mvd`, `nvil`, and with the
sampled KL `stl` [4], `vimco`, `pathwise_iwae` [3] and `dreg` [5].

Objectives (option ``objective``):

* ``"elbo"`` (default): the loss is the -ELBO above, E_q[f] (+ the analytic KL).
* ``"iwae"``: the importance-weighted bound of [3] with k = S samples,

      L_k(θ) = E_{z_1..z_k ~ q(z|x)} [ -log (1/k) Σ_i w(z_i) ],   w = p(x, z) / q(z | x),

  per image, averaged over the batch: f is -log w (the sampled KL, ``kl="sampled"`` or unset;
  ``kl="analytic"`` is refused), and the task accepts only the estimators of that bound, those
  that require the capability ``"log_weight"`` (`vimco`, `pathwise_iwae`, `dreg`); the
  estimators of E[f] (= L_1: `pathwise`, `stl`, `reinforce`, ...) are refused, with the reason.
  L_k depends on S, so the task has no ground truth (``has_exact()`` is False, whatever the
  decoder); the headline metric is the test IW bound (``test_neg_iw_bound``, unless
  ``iw_samples=0``).

Decoders (option ``decoder``):

* ``"bernoulli"`` (default): an MLP with ``activation`` hidden layers (tanh, as [1]'s
  "Bernoulli MLP"), sizes ``decoder_hidden`` (default ``hidden`` reversed). No ground truth:
  E_q[-log p(x|z)] has no closed form (``has_exact()`` is False).
* ``"linear_gaussian"``: p_θ(x | z) = N(x; z W + c, s² I), W [L, D], c [D], s = exp(log s)
  one learned scalar (a probabilistic PCA / factor-analysis decoder with amortized inference).
  Its expected reconstruction has a closed form,

      E_q[-log p(x|z)] = (‖x - μW - c‖² + Σ_l σ_l² ‖W_l‖²) / (2 s²) + D (log s + ½ log 2π),

  so the exact -ELBO and (by automatic differentiation of it) its exact gradient with respect
  to every parameter, encoder included, are known: the task's ground truth (``exact``,
  `gradest.exact_gradient`, z-tests of `pathwise`). This decoder has no hidden layers
  (``decoder_hidden`` must be () or None). Its density is of the binarized pixels treated as
  reals, so its -ELBO is not comparable with the Bernoulli decoder's.

Architecture, as in [1, Sec. 5 and App. C] for MNIST: encoder D-500-(2L) with tanh, decoder
L-500-D with tanh (``hidden=(500,)``; [1] parameterizes log σ² where this task uses log σ, the
same family). Parameters, in this order: the encoder's blocks ``enc_w1 [D, h1], enc_b1 [h1],
..., enc_w{n+1} [h_n, 2L], enc_b{n+1} [2L]`` (the output's first L entries are μ, the last L
log σ), then the decoder's ``dec_w1 [L, h'_1], ..., dec_w{m+1} [h'_m, D], dec_b{m+1} [D]``,
and for the linear-Gaussian decoder (m = 0) ``dec_log_std []``. Initialization as for the
family (`gradest.tasks._vae`); the linear-Gaussian decoder's c starts at the mean training
pixel and log s at log sqrt(mean_d Var(x_d)), the maximum-likelihood scale of the model with
W = 0.

Options (None means the dataset's default): ``dataset`` ("digits", "mnist5k", "mnist"),
``data_dir`` (mnist), ``num_latents`` L, ``hidden``, ``decoder_hidden``, ``decoder``,
``activation`` ("tanh", "relu", "leaky_relu"), ``batch_size``, ``binarize``, ``init_seed``,
``kl`` (None: "analytic", or "sampled" with objective="iwae"), ``objective`` ("elbo", "iwae"),
``iw_samples`` (k of the test IW bound, 100), ``eval_points`` (None: the metrics measure
the whole training and test sets; n: the first n images of each), ``eval_samples`` (4),
``eval_batch`` (500 images per evaluation batch). Digits defaults, small enough for CPU: 4
latents, hidden (32,), batch 50, static binarization, ``default_learning_rate`` 3e-3 (Adam).
MNIST and mnist5k defaults: 20 latents, hidden (500,), batch 100 (as [1]), dynamic binarization,
learning rate 1e-3. Metrics as for the family (-ELBO with the closed-form reconstruction where
there is one, KL, the IW bound; no ``test_nll``: the latent space is continuous); the quick
budget evaluates the first 500 training images and the whole test set (297) with k = 100.

[1] Kingma & Welling, Auto-Encoding Variational Bayes, ICLR 2014.
[2] Rezende, Mohamed & Wierstra, Stochastic Backpropagation and Approximate Inference in Deep
    Generative Models, ICML 2014.
[3] Burda, Grosse & Salakhutdinov, Importance Weighted Autoencoders, ICLR 2016.
[4] Roeder, Wu & Duvenaud, Sticking the Landing: Simple, Lower-Variance Gradient Estimators for
    Variational Inference, NeurIPS 2017.
[5] Tucker, Lawson, Gu & Maddison, Doubly Reparameterized Gradient Estimators for Monte Carlo
    Objectives, ICLR 2019.
"""
from __future__ import annotations

import math

import numpy as np

from gradest.distributions import Normal
from gradest.registry import register_task
from gradest.task import FULL_SIZES, QUICK_SIZES, BenchmarkSizes, Objective
from gradest.tasks import _vae

DECODERS = ("bernoulli", "linear_gaussian")
#: the loss: the -ELBO, or the k = S sample importance-weighted bound [3]
OBJECTIVES = ("elbo", "iwae")
_MNIST = {"num_latents": 20, "hidden": (500,), "decoder_hidden": None, "batch_size": 100, "binarize": "dynamic",
          "learning_rate": 1e-3}
#: defaults per dataset for options left as None (small on digits)
DEFAULTS = {
    "digits": {"num_latents": 4, "hidden": (32,), "decoder_hidden": None, "batch_size": 50, "binarize": "static",
               "learning_rate": 3e-3},
    "mnist": dict(_MNIST),
    "mnist5k": dict(_MNIST),
}
_NAME = "gaussian_vae"
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@register_task("gaussian_vae", variants=[{}, {"kl": "sampled"}])
class GaussianVAE(_vae.VAETask):
    """VAE with diagonal Gaussian latents (Kingma & Welling 2014); Bernoulli or linear-Gaussian decoder."""

    distribution_kind = "normal"
    DEFAULTS = DEFAULTS
    latent_text = "latent values"
    latent_axes = ("num_latents",)
    benchmark_sizes = BenchmarkSizes(num_replicates=200, train_steps=20)
    #: the sweep's sizes: a small VAE measured at S = 1, 4 for the quick budget
    sweep_sizes = {
        "quick": QUICK_SIZES._replace(
            options={"num_latents": 2, "hidden": [16], "batch_size": 20, "eval_points": 500, "iw_samples": 100},
            num_replicates=100, sample_sizes=(1, 4), train_steps=20),
        "full": FULL_SIZES._replace(train_steps=300),
    }

    def __init__(self, dataset=None, data_dir=None, num_latents=None, hidden=None, decoder_hidden=None,
                 decoder: str = "bernoulli", activation: str = "tanh", batch_size=None, binarize=None,
                 init_seed: int = 0, kl: str | None = None, iw_samples: int = _vae.IW_SAMPLES,
                 eval_points: int | None = None, eval_samples: int = 4, eval_batch: int = _vae.EVAL_BATCH,
                 objective: str = "elbo"):
        self.name = _NAME
        self.decoder = _vae.choice(_NAME, "decoder", decoder, DECODERS)
        self.objective = _vae.choice(_NAME, "objective", objective, OBJECTIVES)
        if kl is None:  # the bound needs f = -log w: the sampled KL
            kl = "sampled" if self.objective == "iwae" else "analytic"
        elif self.objective == "iwae" and kl == "analytic":
            raise ValueError("option 'kl' of gaussian_vae must be 'sampled' (or unset) with objective='iwae': the "
                             "bound -log (1/k) Σ w_i needs f = -log w with log q(z|x) sampled, got kl='analytic'")
        opts = self._resolve_layers(dataset, num_latents, hidden, decoder_hidden, batch_size, binarize)
        if self.decoder == "linear_gaussian":
            if self.decoder_hidden and opts["decoder_hidden"] is not None:
                raise ValueError(f"option 'decoder_hidden' of gaussian_vae must be () with decoder='linear_gaussian' "
                                 f"(the closed-form ELBO needs a linear decoder), got {opts['decoder_hidden']!r}")
            self.decoder_hidden = ()
        self.closed_form = self.decoder == "linear_gaussian"
        self._setup_mlp_vae(opts, data_dir, activation, kl, init_seed, iw_samples, eval_points, eval_samples,
                            eval_batch, decoder=self.decoder, objective=self.objective)
        if self.kl == "sampled":
            self.capabilities = self.capabilities | {"path_only"}
        if self.objective == "iwae" and self.iw_samples:
            self.headline_metric = "test_neg_iw_bound"
        D, L = self.data.num_pixels, self.num_latents
        extra = [("dec_log_std", ())] if self.closed_form else []
        self._setup_networks((D, *self.hidden, 2 * L), (L, *self.decoder_hidden, D), extra)

    # ---- sizes -------------------------------------------------------------------------
    @property
    def latent_shape(self) -> tuple:
        return (self.num_latents,)

    def has_exact(self) -> bool:
        return self.closed_form and self.objective == "elbo"

    def incompatibility(self, estimator) -> str | None:
        """With objective="iwae": estimators of E[f] (those that do not require "log_weight")."""
        if self.objective == "iwae" and "log_weight" not in estimator.requires:
            return (f"estimator {estimator.label!r} estimates the gradient of E[f] (the -ELBO), but gaussian_vae with "
                    f"objective='iwae' has the k-sample bound -log (1/k) Σ w_i (k = S) as its loss: use an "
                    f"estimator of that bound (one that requires the capability 'log_weight': vimco, "
                    f"pathwise_iwae, dreg), or objective='elbo' for {estimator.name!r}")
        return None

    def problem(self, backend, params, noise=None, batch=None):
        """The family's problem; with the sampled KL, f also carries ``path_only``: -log p(x|z)
        + log q_{stop θ}(z|x) - log p(z) (the same value, no score term of log q)."""
        prob = super().problem(backend, params, noise=noise, batch=batch)
        if self.kl != "sampled":
            return prob
        B = backend
        blocks, x = self._blocks(B, params), self._batch_array(B, batch)
        fixed = prob.dist.with_params({k: B.stop_gradient(v) for k, v in prob.dist.params.items()})

        def path_only(z):  # z [S, Bsz, L] -> [S, Bsz]
            self._check_z(z, x)
            return self.reconstruction_cost(B, blocks, x, z) + fixed.log_prob(z) - self.log_prior(B, blocks, z)

        return prob._replace(f=Objective(prob.f.fn, prob.f.expectation, path_only=path_only))

    def _init_extra(self, blocks):
        if not self.closed_form:
            return super()._init_extra(blocks)
        x = self._train_bin if self.binarize == "static" else self.data.train
        mean = self._pixel_means()
        # per-pixel variance of the training data (dynamic: of the Bernoulli draws, p(1 - p))
        var = x.var(axis=0) if self.binarize == "static" else mean * (1.0 - mean)
        scale = max(math.sqrt(float(var.mean())), 1e-3)
        return {"dec_b1": mean, "dec_log_std": np.array(math.log(scale))}

    # ---- networks ----------------------------------------------------------------------
    def encoder_outputs(self, B, blocks, x):
        """x [Bsz, D] -> (μ [Bsz, L], log σ [Bsz, L])."""
        h = _vae.mlp_apply(B, blocks, "enc", len(self.enc_sizes) - 1, x, self.activation)  # [Bsz, 2L]
        L = self.num_latents
        return h[..., :L], h[..., L:]

    def posterior(self, B, blocks, x):
        mean, log_std = self.encoder_outputs(B, blocks, x)
        return Normal(B, mean, log_std, event_ndims=1)

    def log_prior(self, B, blocks, z):
        """log N(z; 0, I): z [S, Bsz, L] -> [S, Bsz]."""
        return B.sum(-0.5 * z * z, axis=-1) - self.num_latents * _HALF_LOG_2PI

    def kl_divergence(self, B, blocks, dist):
        """KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ (μ² + σ² - 1) - log σ per image: [Bsz]."""
        mean, log_std = dist.mean, dist.log_std
        return B.sum(0.5 * (mean * mean + B.exp(2.0 * log_std) - 1.0) - log_std, axis=-1)

    def reconstruction_cost(self, B, blocks, x, z):
        """-log p(x | z) summed over pixels: x [Bsz, D], z [S, Bsz, L] -> [S, Bsz]."""
        if not self.closed_form:
            return _vae.bernoulli_cost(B, self.decoder_logits(B, blocks, z), x)
        log_s = blocks["dec_log_std"]
        resid = (x - (B.matmul(z, blocks["dec_w1"]) + blocks["dec_b1"])) * B.exp(-log_s)  # [S, Bsz, D]
        return 0.5 * B.sum(resid * resid, axis=-1) + self.num_pixels * (log_s + _HALF_LOG_2PI)

    def expected_reconstruction(self, B, blocks, x, dist):
        """The linear-Gaussian decoder's E_q[-log p(x|z)] (see the module docstring): [Bsz]."""
        if not self.closed_form:
            return None
        W, c, log_s = blocks["dec_w1"], blocks["dec_b1"], blocks["dec_log_std"]  # [L, D], [D], []
        resid = x - (B.matmul(dist.mean, W) + c)  # [Bsz, D]
        spread = B.matmul(B.exp(2.0 * dist.log_std), B.sum(W * W, axis=-1))  # [Bsz]
        return (0.5 * (B.sum(resid * resid, axis=-1) + spread) * B.exp(-2.0 * log_s)
                + self.num_pixels * (log_s + _HALF_LOG_2PI))
