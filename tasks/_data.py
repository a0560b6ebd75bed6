"""Data sets for the data-driven tasks: scikit-learn's digits and MNIST from IDX files.

Everything here is NumPy (data preparation, not estimation); tasks convert to backend arrays.

* ``load_digits()``: scikit-learn's bundled 8×8 handwritten digits [1] (1,797 images, no
  download), intensities scaled to [0, 1] (the raw values are 0..16). Fixed split: the first
  ``DIGITS_NUM_TRAIN`` = 1,500 images train, the remaining 297 test.
* ``load_mnist(data_dir)``: MNIST [2] from the standard IDX files in ``data_dir``
  (``train-images-idx3-ubyte`` and ``t10k-images-idx3-ubyte``, each plain or ``.gz``),
  flattened to 784 and scaled to [0, 1] (raw 0..255). Split: the official 60,000 / 10,000.
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
"""
from __future__ import annotations

import functools
import gzip
import os
import struct
from typing import NamedTuple

import numpy as np

DATASETS = ("digits", "mnist")
DIGITS_NUM_TRAIN = 1500
MNIST_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}

# IDX type code -> NumPy dtype (big-endian where it matters)
_IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_IDX_CODES = {dt.newbyteorder("="): code for code, dt in _IDX_TYPES.items()}


class Dataset(NamedTuple):
    """Images flattened to [N, D] float64 intensities in [0, 1], train and test."""

    name: str
    train: np.ndarray  # [N_train, D]
    test: np.ndarray  # [N_test, D]
    image_shape: tuple

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


def mnist_paths(data_dir) -> dict[str, str]:
    """{"train": path, "test": path} of the MNIST image files in ``data_dir``; a clear error
    naming the expected files when the directory or a file is missing."""
    expected = ", ".join(f"{stem}[.gz]" for stem in MNIST_FILES.values())
    if data_dir is None:
        raise ValueError(f"dataset 'mnist' needs option data_dir: a directory holding the MNIST IDX files "
                         f"{expected} (from http://yann.lecun.com/exdb/mnist/ or a mirror)")
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise ValueError(f"MNIST data_dir {data_dir!r} does not exist or is not a directory; it must hold "
                         f"the IDX files {expected}")
    paths, missing = {}, []
    for split, stem in MNIST_FILES.items():
        path = _find_idx(data_dir, stem)
        if path is None:
            missing.append(f"{stem}[.gz]")
        paths[split] = path
    if missing:
        raise ValueError(f"MNIST data_dir {data_dir!r} lacks {', '.join(missing)}; it must hold the IDX "
                         f"files {expected} (plain or gzip-compressed)")
    return paths


def _images(path: str) -> np.ndarray:
    images = read_idx(path)
    if images.ndim != 3:
        raise ValueError(f"{path}: MNIST images must be a 3-D IDX array [N, rows, cols], got shape {images.shape}")
    return images


@functools.lru_cache(maxsize=4)
def _load_mnist_cached(train_path: str, test_path: str, train_mtime: float, test_mtime: float) -> Dataset:
    train, test = _images(train_path), _images(test_path)
    if train.shape[1:] != test.shape[1:]:
        raise ValueError(f"MNIST train images are {train.shape[1:]} but test images {test.shape[1:]}")
    scale = 255.0 if train.dtype == np.uint8 else 1.0
    as_flat = lambda a: np.clip(a.reshape(a.shape[0], -1).astype(np.float64) / scale, 0.0, 1.0)  # noqa: E731
    return Dataset("mnist", as_flat(train), as_flat(test), tuple(train.shape[1:]))


def load_mnist(data_dir) -> Dataset:
    """MNIST images from the IDX files in ``data_dir`` (see `mnist_paths`), intensities in [0, 1]."""
    paths = mnist_paths(data_dir)
    return _load_mnist_cached(paths["train"], paths["test"], os.path.getmtime(paths["train"]),
                              os.path.getmtime(paths["test"]))


@functools.lru_cache(maxsize=1)
def load_digits() -> Dataset:
    """scikit-learn's 8×8 digits, intensities /16, first 1,500 train and 297 test."""
    from sklearn.datasets import load_digits as sk_load_digits

    data = sk_load_digits().data.astype(np.float64) / 16.0  # [1797, 64]
    return Dataset("digits", data[:DIGITS_NUM_TRAIN], data[DIGITS_NUM_TRAIN:], (8, 8))


def load_dataset(name: str, data_dir=None) -> Dataset:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return load_digits() if name == "digits" else load_mnist(data_dir)


def binarize_static(x: np.ndarray) -> np.ndarray:
    """1[x > 0.5] as floats."""
    return (np.asarray(x) > 0.5).astype(np.float64)


def binarize_dynamic(x: np.ndarray, key) -> np.ndarray:
    """Pixels ~ Bernoulli(x), drawn from ``numpy.random.default_rng(key)`` (deterministic in key)."""
    rng = np.random.default_rng(key)
    x = np.asarray(x)
    return (rng.random(x.shape) < x).astype(np.float64)
