"""``categorical_vae``: a VAE with categorical latents, the benchmark of [1, 2].

Model, for a binarized image x ∈ {0, 1}^D and L latent variables with K classes each:

    q_θ(z | x) = Π_l Categorical(z_l; softmax(encoder(x)_l))     encoder: MLP D -> hidden -> L·K
    p(z)       = Π_l Uniform{1..K}                                (fixed prior)
    p_θ(x | z) = Π_d Bernoulli(x_d; sigmoid(decoder(z)_d))        decoder: MLP L·K -> hidden' -> D

with z the concatenated one-hot vectors [L·K] fed to the decoder and hidden' the encoder's
hidden sizes reversed (784-512-256-(20×10)-256-512-784 for ``config="jang2017"``). ReLU
hidden layers. The loss to minimize is the negative ELBO in nats per data point, averaged over
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
dec_w1 [L·K, h_n], dec_b1 [h_n], ..., dec_w{n+1} [h1, D], dec_b{n+1} [D]``; a weight W
maps row vectors, h @ W + b. Initialization (NumPy, seeded by ``init_seed``): He normal
(std sqrt(2 / fan_in)) [6] for layers followed by a ReLU, Glorot uniform [7] for the two output
layers, zero biases except the decoder's output bias, set to the log-odds of the mean
binarized training pixel (clipped to [1e-3, 1 - 1e-3]) so that training starts at the
marginal pixel model.

Data (see `gradest.tasks._data`): ``dataset="digits"`` (default; scikit-learn's 8×8 digits,
intensities /16, first 1,500 images train, 297 test) or ``"mnist"`` (IDX files in
``data_dir``). ``binarize="static"`` thresholds intensities at 0.5 once; ``"dynamic"`` draws
pixels ~ Bernoulli(intensity) afresh at every training step, deterministically from
(seed, step) [3]. ``train_batch(B, seed, step)`` is step ``step`` of epochs over a seeded
permutation of the training set (``batch_size`` per step, the last incomplete batch of an
epoch dropped); ``problem(..., batch=None)`` uses the fixed default batch: the first
``batch_size`` training images (for dynamic binarization, one fixed draw).

Ground truth: when K^L ≤ ``EXACT_MAX_CONFIGS`` (4,096; e.g. the default 4 latents × 4
classes, or 2 × 3) the base class enumerates all K^L configurations for every data point of
the batch, so `exact` and `gradest.exact_gradient` give the true gradient of the real model;
beyond that ``has_exact()`` is False and the `exact` estimator is refused.

Metrics (``metrics(B, θ)``, one compiled function per task options and backend; the first
``eval_points`` train and test images, binarized once, and fixed Gumbel noise drawn with
``backend.noise`` from ``METRIC_SEED``, so curves are smooth across steps): ``train_neg_elbo``
and ``test_neg_elbo`` (-ELBO per image: reconstruction averaged over ``eval_samples`` samples
plus the analytic KL), ``train_kl``, ``test_neg_iw_bound`` (the ``iw_samples``-sample bound
-log (1/k) Σ_k w_k [4], an upper bound of -log p(x) in expectation; omitted when
iw_samples = 0) and, when the latent space is enumerable, ``test_nll``: the exact
-log p(x) = -log Σ_z p(x|z) p(z).

Options (None means the dataset's default): ``dataset``, ``data_dir``, ``num_latents`` L,
``num_categories`` K, ``hidden`` (encoder hidden sizes), ``batch_size``, ``binarize``,
``init_seed``, ``config``, ``kl``, ``iw_samples`` (16), ``eval_points`` (200),
``eval_samples`` (4). Digits defaults, small enough for CPU: 4 latents × 4 classes, hidden
(64,), batch 50, static binarization, ``default_learning_rate`` 3e-3 for Adam. MNIST defaults:
those of ``config="jang2017"``. VIMCO on the default (analytic-KL) task is refused by
`gradest.measure.check_compatible` (missing capability "log_weight"): build the task with
``kl="sampled"``.

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

import numpy as np

from gradest import noise
from gradest.distributions import Categorical
from gradest.registry import register_task
from gradest.task import Objective, Problem, Task, flatten_numpy, unflatten
from gradest.validation import integer
from gradest.tasks import _data

#: largest K^L whose support is enumerated for the exact loss (the `exact` estimator's truth)
EXACT_MAX_CONFIGS = 4096
#: seed of the fixed noise and binarizations that metrics use
METRIC_SEED = 20170
KL_MODES = ("analytic", "sampled")
BINARIZATIONS = ("static", "dynamic")

CONFIGS = {
    "jang2017": {"dataset": "mnist", "num_latents": 20, "num_categories": 10, "hidden": (512, 256),
                 "batch_size": 100, "binarize": "dynamic", "learning_rate": 3e-4},
}
#: defaults per dataset for options left as None (small enough for CPU on digits)
DEFAULTS = {
    "digits": {"num_latents": 4, "num_categories": 4, "hidden": (64,), "batch_size": 50,
               "binarize": "static", "learning_rate": 3e-3},
    "mnist": {"num_latents": 20, "num_categories": 10, "hidden": (512, 256), "batch_size": 100,
              "binarize": "dynamic", "learning_rate": 3e-4},
}

#: compiled metric functions, keyed by (task repr, backend name, device, dtype)
_METRIC_FNS: dict = {}

# keys of numpy.random.default_rng streams (data, not estimator noise)
_DEFAULT_BATCH_KEY = 0xDEFA
_EPOCH_KEY = 0xE90C
_DYNAMIC_KEY = 0xB1A5


def _positive_int(name, value, minimum=1):
    return integer(f"option {name!r}", value, minimum, owner="categorical_vae")


def _hidden_sizes(value) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    try:
        sizes = tuple(value)
    except TypeError:
        sizes = None
    if sizes is None or not all(isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1
                                for h in sizes):
        raise ValueError(f"option 'hidden' of categorical_vae must be a tuple of positive layer sizes, "
                         f"e.g. (64,) or (512, 256), got {value!r}")
    return tuple(int(h) for h in sizes)


def _choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r} for categorical_vae; known: {', '.join(map(repr, choices))}")
    return value


@register_task("categorical_vae")
class CategoricalVAE(Task):
    """VAE with categorical latents and a Bernoulli decoder (Jang et al. 2017); loss = -ELBO."""

    distribution_kind = "categorical"

    def __init__(self, dataset=None, data_dir=None, num_latents=None, num_categories=None, hidden=None,
                 batch_size=None, binarize=None, init_seed: int = 0, config=None, kl: str = "analytic",
                 iw_samples: int = 16, eval_points: int = 200, eval_samples: int = 4):
        given = {"dataset": dataset, "num_latents": num_latents, "num_categories": num_categories,
                 "hidden": hidden, "batch_size": batch_size, "binarize": binarize}
        preset = {}
        if config is not None:
            preset = dict(CONFIGS[_choice("config", config, tuple(CONFIGS))])
        dataset = given["dataset"] or preset.get("dataset", "digits")
        _choice("dataset", dataset, _data.DATASETS)
        defaults = {**DEFAULTS[dataset], **preset}
        opts = {k: (defaults[k] if v is None else v) for k, v in given.items() if k != "dataset"}
        opts["dataset"] = dataset
        if dataset != "mnist" and data_dir is not None:
            raise ValueError(f"option 'data_dir' of categorical_vae is only read for dataset='mnist' "
                             f"(dataset={dataset!r} is built in); drop data_dir or set dataset='mnist'")

        self.num_latents = _positive_int("num_latents", opts["num_latents"])
        self.num_categories = _positive_int("num_categories", opts["num_categories"], minimum=2)
        self.hidden = _hidden_sizes(opts["hidden"])
        self.binarize = _choice("binarize", opts["binarize"], BINARIZATIONS)
        self.kl = _choice("kl", kl, KL_MODES)
        self.init_seed = _positive_int("init_seed", init_seed, minimum=0)
        self.iw_samples = _positive_int("iw_samples", iw_samples, minimum=0)
        self.eval_samples = _positive_int("eval_samples", eval_samples)
        eval_points = _positive_int("eval_points", eval_points)

        self.data = _data.load_dataset(dataset, data_dir)
        n_train = self.data.train.shape[0]
        self.batch_size = _positive_int("batch_size", opts["batch_size"])
        if self.batch_size > n_train:
            raise ValueError(f"option 'batch_size' of categorical_vae is {self.batch_size} but the {dataset} "
                             f"training set has only {n_train} images; use batch_size <= {n_train}")
        self.default_learning_rate = float(defaults["learning_rate"])
        self.name = "categorical_vae"
        self.capabilities = frozenset({"log_weight"}) if self.kl == "sampled" else frozenset()
        self.options = {"dataset": dataset, "data_dir": data_dir, "num_latents": self.num_latents,
                        "num_categories": self.num_categories, "hidden": self.hidden,
                        "batch_size": self.batch_size, "binarize": self.binarize, "init_seed": self.init_seed,
                        "config": config, "kl": self.kl, "iw_samples": self.iw_samples,
                        "eval_points": eval_points, "eval_samples": self.eval_samples}

        # architecture and parameter layout
        D, LK = self.data.num_pixels, self.num_latents * self.num_categories
        self.enc_sizes = (D, *self.hidden, LK)
        self.dec_sizes = (LK, *reversed(self.hidden), D)
        layout = []
        for prefix, sizes in (("enc", self.enc_sizes), ("dec", self.dec_sizes)):
            for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
                layout += [(f"{prefix}_w{i}", (fan_in, fan_out)), (f"{prefix}_b{i}", (fan_out,))]
        self.param_layout = layout

        # data, binarized once where that is fixed (NumPy float64 [N, D])
        if self.binarize == "static":
            self._train_bin = _data.binarize_static(self.data.train)
            self._default = self._train_bin[: self.batch_size]
            self._eval_train = self._train_bin[:eval_points]
            self._eval_test = _data.binarize_static(self.data.test[:eval_points])
        else:
            self._train_bin = None
            self._default = _data.binarize_dynamic(self.data.train[: self.batch_size], [_DEFAULT_BATCH_KEY])
            self._eval_train = _data.binarize_dynamic(self.data.train[:eval_points], [METRIC_SEED, 0])
            self._eval_test = _data.binarize_dynamic(self.data.test[:eval_points], [METRIC_SEED, 1])
        self._theta0 = None

    # ---- sizes -------------------------------------------------------------------------
    @property
    def num_pixels(self) -> int:
        return self.data.num_pixels

    @property
    def num_configurations(self) -> int:
        """K^L: the size of the latent space of one data point."""
        return self.num_categories ** self.num_latents

    def has_exact(self) -> bool:
        return self.num_configurations <= EXACT_MAX_CONFIGS

    def exact_loss(self, backend, params):
        """The exact -ELBO of the default batch, enumerating the K^L configurations of every
        image (the base class's enumeration); None beyond ``EXACT_MAX_CONFIGS``."""
        if not self.has_exact():
            return None
        return super().exact_loss(backend, params)

    def activation_elements(self, num_samples: int) -> int:
        width = 2 * sum(self.hidden) + 2 * self.num_latents * self.num_categories + 2 * self.num_pixels
        return int(max(num_samples, 1) * self.batch_size * width)

    @property
    def steps_per_epoch(self) -> int:
        return self.data.train.shape[0] // self.batch_size

    # ---- parameters --------------------------------------------------------------------
    def init_params(self) -> np.ndarray:
        if self._theta0 is None:
            rng = np.random.default_rng(self.init_seed)
            blocks = {}
            for prefix, sizes in (("enc", self.enc_sizes), ("dec", self.dec_sizes)):
                n_layers = len(sizes) - 1
                for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
                    if i < n_layers:  # followed by a ReLU: He normal
                        w = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=(fan_in, fan_out))
                    else:  # output layer: Glorot uniform
                        limit = math.sqrt(6.0 / (fan_in + fan_out))
                        w = rng.uniform(-limit, limit, size=(fan_in, fan_out))
                    blocks[f"{prefix}_w{i}"] = w
                    blocks[f"{prefix}_b{i}"] = np.zeros(fan_out)
            pixel_mean = np.clip(self._pixel_means(), 1e-3, 1 - 1e-3)
            blocks[f"dec_b{len(self.dec_sizes) - 1}"] = np.log(pixel_mean) - np.log1p(-pixel_mean)
            self._theta0 = flatten_numpy(blocks, self.param_layout)
        return self._theta0.copy()

    def _pixel_means(self) -> np.ndarray:
        if self.binarize == "static":
            return self._train_bin.mean(axis=0)
        return self.data.train.mean(axis=0)  # E[Bernoulli(intensity)] = intensity

    def _blocks(self, B, params) -> dict:
        if tuple(params.shape) != (self.num_params,):
            raise ValueError(f"params of categorical_vae must be a flat vector of {self.num_params} entries "
                             f"(layout {', '.join(n for n, _ in self.param_layout)}), got shape "
                             f"{tuple(params.shape)}")
        return unflatten(B, params, self.param_layout)

    # ---- networks ----------------------------------------------------------------------
    @staticmethod
    def _mlp(B, blocks, prefix, n_layers, h):
        """h [..., in] -> [..., out]: ReLU hidden layers, linear output layer."""
        for i in range(1, n_layers + 1):
            h = B.matmul(h, blocks[f"{prefix}_w{i}"]) + blocks[f"{prefix}_b{i}"]
            if i < n_layers:
                h = B.relu(h)
        return h

    def encoder_logits(self, B, blocks, x):
        """x [Bsz, D] -> logits [Bsz, L, K]."""
        h = self._mlp(B, blocks, "enc", len(self.enc_sizes) - 1, x)  # [Bsz, L*K]
        return B.reshape(h, (x.shape[0], self.num_latents, self.num_categories))

    def decoder_logits(self, B, blocks, z):
        """z [..., L, K] (one-hot or relaxed) -> Bernoulli logits [..., D]."""
        L, K = self.num_latents, self.num_categories
        h = B.reshape(z, tuple(z.shape[:-2]) + (L * K,))  # [..., L*K]
        return self._mlp(B, blocks, "dec", len(self.dec_sizes) - 1, h)

    def reconstruction_cost(self, B, blocks, x, z):
        """-log p(x | z) summed over pixels: x [Bsz, D], z [S, Bsz, L, K] -> [S, Bsz]."""
        logits = self.decoder_logits(B, blocks, z)  # [S, Bsz, D]
        return B.sum(B.softplus(logits) - x * logits, axis=-1)

    def analytic_kl(self, B, logits):
        """KL(q(z|x) ‖ uniform) per data point: logits [Bsz, L, K] -> [Bsz]."""
        log_q = B.log_softmax(logits, axis=-1)
        return B.sum(B.exp(log_q) * log_q, axis=(-2, -1)) + self.num_latents * math.log(self.num_categories)

    def log_prior(self, B, z):
        """log p(z) under the uniform prior: z [S, Bsz, L, K] -> [S, Bsz] (-L log K on the simplex)."""
        return -math.log(self.num_categories) * B.sum(z, axis=(-2, -1))

    # ---- data --------------------------------------------------------------------------
    def _batch_array(self, B, batch):
        if batch is None:
            return B.asarray(self._default)
        if isinstance(batch, (np.ndarray, list, tuple)):
            batch = B.asarray(np.asarray(batch, dtype=np.float64))
        x = batch
        shape = tuple(x.shape)
        if len(shape) != 2 or shape[1] != self.num_pixels:
            raise ValueError(f"batch of categorical_vae must be binarized images [batch, {self.num_pixels}] "
                             f"({self.data.name}: {'x'.join(map(str, self.data.image_shape))} pixels, "
                             f"flattened), got shape {shape}; use task.train_batch(backend, seed, step)")
        return x

    def _check_z(self, z, x):
        shape = tuple(z.shape)
        want = (x.shape[0], self.num_latents, self.num_categories)
        if len(shape) < 4 or shape[-3:] != want:
            raise ValueError(f"latent values z of categorical_vae must be one-hot (or relaxed) vectors "
                             f"[S, {want[0]}, {want[1]}, {want[2]}] = [samples, batch, num_latents, "
                             f"num_categories], got shape {shape}")

    def epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        """The permutation of the training set that epoch ``epoch`` walks (seeded by seed, epoch)."""
        seed = int(seed) % (1 << 63)
        return np.random.default_rng([_EPOCH_KEY, seed, int(epoch)]).permutation(self.data.train.shape[0])

    def batch_indices(self, seed: int, step: int) -> np.ndarray:
        """Training-set indices [batch_size] of step ``step``: its place in the epoch's permutation."""
        step = int(step)
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        epoch, position = divmod(step, self.steps_per_epoch)
        return self.epoch_order(seed, epoch)[position * self.batch_size:(position + 1) * self.batch_size]

    def train_batch(self, backend, seed: int, step: int):
        """Binarized images [batch_size, D] of training step ``step`` (see `batch_indices`); with
        dynamic binarization, pixels drawn ~ Bernoulli(intensity) from (seed, step)."""
        index = self.batch_indices(seed, step)
        if self.binarize == "static":
            x = self._train_bin[index]
        else:
            x = _data.binarize_dynamic(self.data.train[index], [_DYNAMIC_KEY, int(seed) % (1 << 63), int(step)])
        return backend.asarray(x)

    # ---- the task contract -------------------------------------------------------------
    def problem(self, backend, params, noise=None, batch=None) -> Problem:
        B = backend
        blocks = self._blocks(B, params)
        x = self._batch_array(B, batch)  # [Bsz, D]
        logits = self.encoder_logits(B, blocks, x)  # [Bsz, L, K]
        dist = Categorical(B, logits, event_ndims=1)  # log_prob: [S, Bsz]
        sampled = self.kl == "sampled"

        def f(z):  # z [S, Bsz, L, K] -> [S, Bsz]
            self._check_z(z, x)
            cost = self.reconstruction_cost(B, blocks, x, z)
            if sampled:  # -log w = -log p(x|z) + log q(z|x) - log p(z)
                cost = cost + dist.log_prob(z) - self.log_prior(B, z)
            return cost

        extra = 0.0 if sampled else B.mean(self.analytic_kl(B, logits))
        return Problem(dist, Objective(f), extra)

    def log_weight(self, backend, params, z, batch=None):
        """log w(z) = log p(x|z) + log p(z) - log q(z|x): z [S, Bsz, L, K] -> [S, Bsz]."""
        B = backend
        blocks = self._blocks(B, params)
        x = self._batch_array(B, batch)
        self._check_z(z, x)
        dist = Categorical(B, self.encoder_logits(B, blocks, x), event_ndims=1)
        return -self.reconstruction_cost(B, blocks, x, z) + self.log_prior(B, z) - dist.log_prob(z)

    # ---- metrics -----------------------------------------------------------------------
    def metrics(self, backend, params) -> dict[str, float]:
        B = backend
        # one compiled function per (options, backend), shared by equal task instances: the data
        # and the metric noise are functions of the options alone
        key = (repr(self), B.name, B.device, B.dtype)
        if key not in _METRIC_FNS:
            _METRIC_FNS[key] = self._build_metrics(B)
        values = _METRIC_FNS[key](B.stop_gradient(B.asarray(params)))
        return {name: float(B.to_numpy(v)) for name, v in values.items()}

    def _build_metrics(self, B):
        """A jitted θ -> {name: scalar}. The data, the enumerated support and the noise are
        constants of the function: the noise is drawn inside it from ``METRIC_SEED`` (one
        `gradest.noise.draw` call for all metrics, so jax compiles one function instead of running
        its random number generator eagerly, and every call sees the same numbers)."""
        L, K = self.num_latents, self.num_categories
        n_train = self._eval_train.shape[0]
        x_np = np.concatenate([self._eval_train, self._eval_test])  # [n_train + n_test, D]
        n = x_np.shape[0]
        S, k = self.eval_samples, self.iw_samples
        enumerable = self.has_exact()

        def fn(params):
            blocks = self._blocks(B, params)
            x = B.asarray(x_np)  # [n, D]: the train subset, then the test subset
            logits = self.encoder_logits(B, blocks, x)  # [n, L, K]
            eps = noise.draw(B, METRIC_SEED, "categorical_vae/metrics", "gumbel", (n, L, K), 0, max(S, k))
            z = Categorical(B, logits, event_ndims=1).sample(eps[:S])  # [S, n, L, K]
            kl = self.analytic_kl(B, logits)  # [n]
            neg_elbo = B.mean(self.reconstruction_cost(B, blocks, x, z), axis=0) + kl  # [n]
            out = {"train_neg_elbo": B.mean(neg_elbo[:n_train]), "train_kl": B.mean(kl[:n_train]),
                   "test_neg_elbo": B.mean(neg_elbo[n_train:])}
            x_test = x[n_train:]  # [m, D]
            if k:
                dist = Categorical(B, logits[n_train:], event_ndims=1)
                zk = dist.sample(eps[:k, n_train:])  # [k, m, L, K]
                log_w = (-self.reconstruction_cost(B, blocks, x_test, zk) + self.log_prior(B, zk)
                         - dist.log_prob(zk))  # [k, m]
                bound = B.logsumexp(log_w, axis=0) - math.log(k)  # [m]
                out["test_neg_iw_bound"] = -B.mean(bound)
            if enumerable:
                support = Categorical(B, B.zeros((L, K)), event_ndims=1).enumerate_support(EXACT_MAX_CONFIGS)
                dec = self.decoder_logits(B, blocks, support)  # [N, D]
                # log p(x|z) for every configuration z and test image x: [N, m]
                log_px = B.matmul(dec, B.moveaxis(x_test, 0, 1)) - B.sum(B.softplus(dec), axis=-1, keepdims=True)
                out["test_nll"] = -B.mean(B.logsumexp(log_px - L * math.log(K), axis=0))
            return out

        return B.jit(fn)
