"""Data sets named on the command line (`--data SPEC`), loaded into float32 arrays.

Every loader returns a `Dataset` with images scaled to [0, 1] and integer labels;
`fit_to_input` reshapes the examples to the model's input shape or says why not.
Nothing is downloaded: `digits` ships with scikit-learn, Fashion-MNIST comes from the
Debian package `dataset-fashion-mnist` (or the folder in `ANALOGC_DATA`).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analogc.errors import AnalogcError
from analogc.memory import check_fits
from analogc.npy_read import read_npz

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_IDX_BYTES = 4 << 30


@dataclass(frozen=True)
class Dataset:
    """A train/test split; `x_*` are float32 examples, `y_*` int64 labels (or None)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None


def load_dataset(spec: str) -> Dataset:
    """Load `digits`, `fashion-mnist`, `idx:DIR` or a `.npz` file."""
    if spec == "digits":
        return load_digits()
    if spec == "fashion-mnist":
        return load_fashion_mnist()
    if spec.startswith("idx:"):
        return load_idx_dir(Path(spec[4:]), name=spec)
    if spec.endswith(".npz"):
        return load_npz(Path(spec))
    raise AnalogcError(
        f"unknown data set {spec!r}: expected digits, fashion-mnist, idx:DIR or a .npz file"
    )


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits scaled to [0, 1], split 80/20 by a fixed permutation."""
    from sklearn.datasets import load_digits as sk_load_digits  # heavy: scikit-learn, only for `digits`

    bunch = sk_load_digits()
    x = (bunch.data / 16.0).astype(np.float32).reshape(-1, 8, 8)
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(x))
    n_test = int(round(len(x) * DIGITS_TEST_FRACTION))
    test, train = order[:n_test], order[n_test:]
    return Dataset("digits", x[train], y[train], x[test], y[test])


def load_fashion_mnist() -> Dataset:
    """Fashion-MNIST from `ANALOGC_DATA` or the Debian package's folder."""
    if os.environ.get("ANALOGC_DATA"):
        # An explicit folder is used or refused, never silently replaced by another copy.
        return load_idx_dir(Path(os.environ["ANALOGC_DATA"]), name="fashion-mnist")
    candidates = list(FASHION_MNIST_DIRS)
    for folder in candidates:
        if Path(folder, "train-images-idx3-ubyte.gz").exists() or Path(
            folder, "train-images-idx3-ubyte"
        ).exists():
            return load_idx_dir(Path(folder), name="fashion-mnist")
    raise AnalogcError(
        "fashion-mnist not found: install the Debian package dataset-fashion-mnist "
        "(apt-get install dataset-fashion-mnist) or set ANALOGC_DATA to a folder of IDX files"
    )


def load_idx_dir(folder: Path, name: str) -> Dataset:
    """MNIST-format IDX files: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]."""
    if not folder.is_dir():
        raise AnalogcError(f"{folder}: not a folder of IDX files")

    def find(stem: str) -> Path:
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
        raise AnalogcError(f"{folder}: missing {stem} (or {stem}.gz)")

    x_train = read_idx(find("train-images-idx3-ubyte"))
    y_train = read_idx(find("train-labels-idx1-ubyte"))
    x_test = read_idx(find("t10k-images-idx3-ubyte"))
    y_test = read_idx(find("t10k-labels-idx1-ubyte"))
    for images, which in ((x_train, "train-images-idx3-ubyte"), (x_test, "t10k-images-idx3-ubyte")):
        if images.dtype.kind == "f" and not np.all(np.isfinite(images)):
            raise AnalogcError(f"{find(which)}: images hold NaN or Inf")
    for images, labels, which in ((x_train, y_train, "train"), (x_test, y_test, "t10k")):
        if labels.ndim != 1 or len(labels) != len(images):
            raise AnalogcError(
                f"{folder}: {which} labels {labels.shape} do not match images {images.shape}"
            )
    return Dataset(
        name,
        scale_images(x_train),
        y_train.astype(np.int64),
        scale_images(x_test),
        y_test.astype(np.int64),
    )


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped), checking magic, dtype and size."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            header = handle.read(4)
            if len(header) != 4 or header[0] != 0 or header[1] != 0:
                raise AnalogcError(f"{path}: not an IDX file (bad magic)")
            code, ndim = header[2], header[3]
            if code not in IDX_DTYPES or ndim == 0:
                raise AnalogcError(f"{path}: unsupported IDX type 0x{code:02x} or rank {ndim}")
            dims_raw = handle.read(4 * ndim)
            if len(dims_raw) != 4 * ndim:
                raise AnalogcError(f"{path}: truncated IDX header")
            dims = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
            dtype = np.dtype(IDX_DTYPES[code])
            nbytes = math.prod(dims) * dtype.itemsize
            if nbytes > MAX_IDX_BYTES:
                raise AnalogcError(f"{path}: IDX dimensions {dims} need {nbytes} bytes, too large")
            check_fits(nbytes, f"its IDX dimensions {dims}", str(path))
            body = handle.read(nbytes)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise AnalogcError(f"{path}: cannot read IDX file ({exc})") from None
    if len(body) != nbytes:
        raise AnalogcError(f"{path}: truncated IDX data ({len(body)} of {nbytes} bytes)")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def load_npz(path: Path) -> Dataset:
    """A .npz with x_train, y_train, x_test, y_test (never unpickled)."""
    if not path.is_file():
        raise AnalogcError(f"{path}: {'not a file' if path.exists() else 'no such file'}")
    arrays = read_npz(path, str(path))
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise AnalogcError(f"{path}: missing arrays {', '.join(missing)}")
    for key in ("x_train", "x_test"):
        if arrays[key].dtype.kind not in "biuf" or arrays[key].ndim < 1:
            raise AnalogcError(f"{path}: {key} must be a numeric array, got {arrays[key].dtype}")
        if not np.all(np.isfinite(arrays[key])):
            raise AnalogcError(f"{path}: {key} holds NaN or Inf")
    for key, xkey in (("y_train", "x_train"), ("y_test", "x_test")):
        y = arrays[key]
        if y.dtype.kind not in "biu" or y.ndim != 1 or len(y) != len(arrays[xkey]):
            raise AnalogcError(
                f"{path}: {key} must be integer labels, one per example of {xkey}, "
                f"got {y.dtype} {y.shape} for {arrays[xkey].shape}"
            )
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    if x_train.dtype.kind in "biu":
        x_train, x_test = scale_images(x_train), scale_images(x_test)
    with np.errstate(over="ignore"):  # a value past float32's range is refused below
        x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
    for key, x in (("x_train", x_train), ("x_test", x_test)):
        if not np.all(np.isfinite(x)):
            raise AnalogcError(f"{path}: {key} holds values beyond the range of float32")
    return Dataset(path.name, x_train, arrays["y_train"].astype(np.int64), x_test, arrays["y_test"].astype(np.int64))


def scale_images(images: np.ndarray) -> np.ndarray:
    """Integer pixels (0..255) to float32 in [0, 1]; floats pass through."""
    if images.dtype.kind in "biu":
        return (images.astype(np.float32) / 255.0).astype(np.float32)
    return images.astype(np.float32)


def fit_to_input(x: np.ndarray, input_shape: list, data_name: str) -> np.ndarray:
    """Reshape examples `x[n, ...]` to the model input's per-example shape.

    `input_shape` is the model input's full shape (first dim the batch; ints or None
    for symbolic). Element counts must agree, otherwise the error names both shapes.
    """
    per_example = list(input_shape[1:])
    expected = tuple("N" if d is None else d for d in input_shape)
    message = f"data set {data_name} has examples of shape {tuple(x.shape[1:])}, the model expects {expected}"
    if any(not isinstance(d, int) or d <= 0 for d in per_example):
        if x.ndim - 1 == len(per_example):
            return x
        raise AnalogcError(message)
    if math.prod(x.shape[1:]) != math.prod(per_example):
        raise AnalogcError(message)
    return np.ascontiguousarray(x.reshape((x.shape[0], *per_example)))


def image_feeds(x: np.ndarray, model_input: dict, data_name: str) -> dict:
    """A data set's images as the feed of the model's one input: reshaped to its shape,
    in its float dtype (a model with a non-float input is refused). The one place `run`,
    `train` and sweep jobs turn images into model input."""
    x = fit_to_input(x, model_input["shape"], data_name)
    dtype = np.dtype(model_input["dtype"]) if model_input["dtype"] != "unknown" else np.float32
    if dtype.kind != "f":
        raise AnalogcError(f"model input {model_input['name']!r} is {dtype}, data sets feed float images")
    with np.errstate(over="ignore"):  # a value past the type's range is refused below
        fed = x.astype(dtype)
    if x.dtype.kind == "f" and fed.dtype.itemsize < x.dtype.itemsize and not np.all(np.isfinite(fed)):
        raise AnalogcError(f"{data_name}: images hold values beyond the range of {dtype}, the model's input type")
    return {model_input["name"]: fed}
