"""``bernoulli_vae``: a VAE with factorized Bernoulli latents and a learned factorized Bernoulli
prior, the benchmark of REBAR [1], RELAX [2], ARM [3] and DisARM [4].

Model, for a binarized image x ∈ {0, 1}^D and L binary latent variables b ∈ {0, 1}^L:

    q_θ(b | x) = Π_l Bernoulli(b_l; sigmoid(encoder(x)_l))     encoder: MLP D -> hidden -> L
    p_θ(b)     = Π_l Bernoulli(b_l; sigmoid(η_l))               learned prior logits η [L]
    p_θ(x | b) = Π_d Bernoulli(x_d; sigmoid(decoder(b)_d))      decoder: MLP L -> hidden' -> D

loss the negative ELBO in nats per image (the family's contract: `gradest.tasks._vae`):
``dist = Bernoulli(B, logits [Bsz, L], event_ndims=1)``, f(b [S, Bsz, L]) -> [S, Bsz] the
reconstruction cost Σ_d softplus(l_d) - x_d l_d, and with ``kl="analytic"`` (default)
``Problem.extra`` the batch mean of the analytic KL between factorized Bernoullis,
Σ_l q_l (log q_l - log p_l) + (1 - q_l)(log(1 - q_l) - log(1 - p_l)), q_l = σ(a_l),
p_l = σ(η_l) — the prior's logits get their gradient from this deterministic term. With
``kl="sampled"``, f(b) = -log p(x|b) + log q(b|x) - log p(b) (the learning signal the papers
write: [1, 3, 4] train on this single-sample ELBO) and extra = 0; this mode offers the
capability ``"log_weight"`` (VIMCO). f accepts relaxed b ∈ [0, 1]^L (the binary Concrete
samples of Gumbel-softmax, REBAR and RELAX): the decoder is an MLP of b and log p(b) is the
same affine function of b.

Architectures (``hidden`` the encoder's hidden sizes; ``decoder_hidden`` the decoder's, by
default ``hidden`` reversed), as in [1, Sec. 6] (after MuProp [5]) and [4, Sec. 6 and App.]:

* ``hidden=()``: the "linear" model, one stochastic layer and no deterministic one: encoder
  D-L, decoder L-D (784-200 and 200-784 at ``num_latents=200`` on MNIST).
* ``hidden=(200, 200)``: the "nonlinear" model, two deterministic layers of 200 units on each
  side of the 200 Bernoulli units: encoder 784-200-200-200, decoder 200-200-200-784. [1] uses
  tanh hidden units (``activation="tanh"``, the default); the public code of [4] uses leaky
  ReLU with slope 0.3 (``activation="leaky_relu"``).

Parameters, in this order (``param_layout``): the encoder's blocks ``enc_w1 [D, h1], enc_b1
[h1], ..., enc_w{n+1} [h_n, L], enc_b{n+1} [L]``, the decoder's ``dec_w1 [L, h'_1], ...,
dec_w{m+1} [h'_m, D], dec_b{m+1} [D]``, then ``prior_logits [L]`` (η, initialized to 0: the
uniform prior, as [4]'s code). The papers train the prior with its own optimizer (SGD at 1e-2
in [4]'s code); here θ is one vector and `gradest.train` updates it with one optimizer.
Initialization and data as for the family: `gradest.tasks._vae` (tanh layers Glorot uniform,
leaky ReLU layers He normal, output layers Glorot uniform, decoder output bias at the log-odds
of the mean training pixel).

Ground truth: when 2^L ≤ ``EXACT_MAX_CONFIGS`` (4,096, i.e. L ≤ 12) the base class enumerates
every b for every image of the batch, so `exact` and `gradest.exact_gradient` give the true
gradient of the real model, and the metric ``test_nll`` is the exact -log p(x) =
-log Σ_b p(x|b) p(b); beyond that ``has_exact()`` is False and `exact` is refused.

Options (None means the dataset's default): ``dataset`` ("digits", "mnist5k", "mnist"),
``data_dir`` (mnist), ``num_latents`` L, ``hidden``, ``decoder_hidden``, ``activation`` ("tanh",
"leaky_relu", "relu"), ``batch_size``, ``binarize`` ("static", "dynamic"), ``init_seed``, ``kl``
("analytic", "sampled"), ``iw_samples`` (k of the test IW bound, 100), ``eval_points`` (None:
the metrics measure the whole training and test sets; n: the first n images of each),
``eval_samples`` (4), ``eval_batch`` (500 images per evaluation batch). Digits defaults, small
enough for CPU and enumerable: 8 latents (256 configurations), the linear model, batch 50,
static binarization, ``default_learning_rate`` 1e-2 (Adam; the linear model learns slowly at
3e-3). MNIST and mnist5k defaults: 200 latents, the linear model, batch 50 (as [4]; [1] uses
24), dynamic binarization (as [4]'s ``dynamic_mnist``), learning rate 3e-4 (as [1]). Metrics:
the family's (`gradest.tasks._vae`); the quick budget evaluates the first 500 training images
and the whole test set (297) with k = 100.

[1] Tucker, Mnih, Maddison, Lawson & Sohl-Dickstein, REBAR: Low-variance, unbiased gradient
    estimates for discrete latent variable models, NeurIPS 2017.
[2] Grathwohl, Choi, Wu, Roeder & Duvenaud, Backpropagation through the Void: Optimizing
    control variates for black-box gradient estimation, ICLR 2018.
[3] Yin & Zhou, ARM: Augment-REINFORCE-Merge Gradient for Stochastic Binary Networks,
    ICLR 2019.
[4] Dong, Mnih & Tucker, DisARM: An Antithetic Gradient Estimator for Binary Latent
    Variables, NeurIPS 2020.
[5] Gu, Levine, Sutskever & Mnih, MuProp: Unbiased Backpropagation for Stochastic Neural
    Networks, ICLR 2016.
"""
from __future__ import annotations

import numpy as np

from gradest.distributions import Bernoulli
from gradest.registry import register_task
from gradest.task import FULL_SIZES, QUICK_SIZES, BenchmarkSizes
from gradest.tasks import _vae

_MNIST = {"num_latents": 200, "hidden": (), "decoder_hidden": None, "batch_size": 50, "binarize": "dynamic",
          "learning_rate": 3e-4}
#: defaults per dataset for options left as None (small and enumerable on digits)
DEFAULTS = {
    "digits": {"num_latents": 8, "hidden": (), "decoder_hidden": None, "batch_size": 50, "binarize": "static",
               "learning_rate": 1e-2},
    "mnist": dict(_MNIST),
    "mnist5k": dict(_MNIST),
}
_NAME = "bernoulli_vae"


@register_task("bernoulli_vae", variants=[{}, {"kl": "sampled"}])
class BernoulliVAE(_vae.VAETask):
    """VAE with factorized Bernoulli latents and a learned Bernoulli prior (REBAR, DisARM)."""

    distribution_kind = "bernoulli"
    DEFAULTS = DEFAULTS
    EXACT_MAX_CONFIGS = 4096
    latent_text = "latent values (0/1 or relaxed in [0, 1])"
    latent_axes = ("num_latents",)
    benchmark_sizes = BenchmarkSizes(num_replicates=200, train_steps=20)
    #: the sweep's sizes: a small VAE measured at S = 1, 4 for the quick budget
    sweep_sizes = {
        "quick": QUICK_SIZES._replace(
            options={"num_latents": 4, "batch_size": 20, "eval_points": 500, "iw_samples": 100},
            num_replicates=100, sample_sizes=(1, 4), train_steps=20),
        "full": FULL_SIZES._replace(train_steps=300),
    }

    def __init__(self, dataset=None, data_dir=None, num_latents=None, hidden=None, decoder_hidden=None,
                 activation: str = "tanh", batch_size=None, binarize=None, init_seed: int = 0,
                 kl: str = "analytic", iw_samples: int = _vae.IW_SAMPLES, eval_points: int | None = None,
                 eval_samples: int = 4, eval_batch: int = _vae.EVAL_BATCH):
        self.name = _NAME
        opts = self._resolve_layers(dataset, num_latents, hidden, decoder_hidden, batch_size, binarize)
        self._setup_mlp_vae(opts, data_dir, activation, kl, init_seed, iw_samples, eval_points, eval_samples,
                            eval_batch)
        D, L = self.data.num_pixels, self.num_latents
        self._setup_networks((D, *self.hidden, L), (L, *self.decoder_hidden, D), [("prior_logits", (L,))])

    # ---- sizes -------------------------------------------------------------------------
    @property
    def latent_shape(self) -> tuple:
        return (self.num_latents,)

    @property
    def num_configurations(self) -> int:
        """2^L: the size of the latent space of one image."""
        return 2 ** self.num_latents

    def _init_extra(self, blocks):
        return {**super()._init_extra(blocks), "prior_logits": np.zeros(self.num_latents)}

    # ---- networks ----------------------------------------------------------------------
    def encoder_logits(self, B, blocks, x):
        """x [Bsz, D] -> logits [Bsz, L]."""
        return _vae.mlp_apply(B, blocks, "enc", len(self.enc_sizes) - 1, x, self.activation)

    def posterior(self, B, blocks, x):
        return Bernoulli(B, self.encoder_logits(B, blocks, x), event_ndims=1)

    def reconstruction_cost(self, B, blocks, x, z):
        """-log p(x | b) summed over pixels: x [Bsz, D], b [S, Bsz, L] -> [S, Bsz]."""
        return _vae.bernoulli_cost(B, self.decoder_logits(B, blocks, z), x)

    def log_prior(self, B, blocks, z):
        """log p(b) = Σ_l b_l log σ(η_l) + (1 - b_l) log σ(-η_l): b [S, Bsz, L] -> [S, Bsz]."""
        eta = blocks["prior_logits"]  # [L]
        return B.sum(z * B.log_sigmoid(eta) + (1.0 - z) * B.log_sigmoid(-eta), axis=-1)

    def kl_divergence(self, B, blocks, dist):
        """KL(q(b|x) ‖ p(b)) per image: [Bsz]."""
        a, eta = dist.logits, blocks["prior_logits"]  # [Bsz, L], [L]
        q = B.sigmoid(a)
        per_latent = (q * (B.log_sigmoid(a) - B.log_sigmoid(eta))
                      + (1.0 - q) * (B.log_sigmoid(-a) - B.log_sigmoid(-eta)))
        return B.sum(per_latent, axis=-1)

    def enumerate_latents(self, B, blocks):
        L = self.num_latents
        support = Bernoulli(B, B.zeros((L,)), event_ndims=1).enumerate_support(self.EXACT_MAX_CONFIGS)  # [N, L]
        return support, self.log_prior(B, blocks, support)  # [N, L], [N]
