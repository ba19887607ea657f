"""Data sets for `--data`: digits, IDX folders (plain and gzipped), .npz files, Fashion-MNIST,
and `fit_to_input`. Expected values come from scikit-learn and from bytes written here."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from analogc.data import fit_to_input, image_feeds, load_dataset, load_digits, load_fashion_mnist, load_idx_dir, load_npz, read_idx
from analogc.errors import AnalogcError

FASHION = Path("/usr/share/datasets/fashion-mnist")

# ---------------------------------------------------------------- digits


def test_digits_split_sizes_shapes_and_ranges():
    data = load_digits()
    assert data.name == "digits"
    assert data.x_train.shape == (1438, 8, 8) and data.x_test.shape == (359, 8, 8)  # 1797 = 80/20, 359 = round(359.4)
    assert data.y_train.shape == (1438,) and data.y_test.shape == (359,)
    assert data.x_train.dtype == np.float32 and data.x_test.dtype == np.float32
    assert data.y_train.dtype == np.int64 and data.y_test.dtype == np.int64
    for x in (data.x_train, data.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(data.y_train)) == set(range(10)) and set(np.unique(data.y_test)) == set(range(10))


def test_digits_is_a_split_of_scikit_learns_digits_scaled_by_16():
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    expected = sorted(
        np.append(row / 16.0, label).astype(np.float32).tobytes() for row, label in zip(bunch.data, bunch.target)
    )
    data = load_digits()
    got = sorted(
        np.append(x.reshape(-1), y).astype(np.float32).tobytes()
        for xs, ys in ((data.x_train, data.y_train), (data.x_test, data.y_test))
        for x, y in zip(xs, ys)
    )
    assert got == expected


def test_digits_is_deterministic():
    a, b = load_digits(), load_digits()
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert load_dataset("digits").x_test.tobytes() == a.x_test.tobytes()


# ---------------------------------------------------------------- IDX


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """An IDX file written by hand: 0, 0, type code, rank, big-endian dims, big-endian data."""
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


TRAIN_IMAGES = np.array([[[0, 255], [51, 102]], [[255, 0], [0, 0]], [[1, 2], [3, 4]]], dtype=np.uint8)
TRAIN_LABELS = np.array([7, 0, 9], dtype=np.uint8)
TEST_IMAGES = np.array([[[204, 153], [255, 255]]], dtype=np.uint8)
TEST_LABELS = np.array([3], dtype=np.uint8)


def write_idx_set(folder: Path, gz: bool, labels_train=TRAIN_LABELS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "train-images-idx3-ubyte": idx_bytes(TRAIN_IMAGES, 0x08),
        "train-labels-idx1-ubyte": idx_bytes(labels_train, 0x08),
        "t10k-images-idx3-ubyte": idx_bytes(TEST_IMAGES, 0x08),
        "t10k-labels-idx1-ubyte": idx_bytes(TEST_LABELS, 0x08),
    }
    for name, data in files.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_idx_folder_against_hand_values(tmp_path, gz):
    folder = write_idx_set(tmp_path / "set", gz)
    data = load_dataset(f"idx:{folder}")
    assert data.name == f"idx:{folder}"
    assert data.x_train.dtype == np.float32 and data.x_train.shape == (3, 2, 2)
    np.testing.assert_allclose(data.x_train[0], [[0.0, 1.0], [0.2, 0.4]], rtol=0, atol=1e-7)
    np.testing.assert_allclose(data.x_train[2], [[1 / 255, 2 / 255], [3 / 255, 4 / 255]], rtol=1e-6)
    np.testing.assert_allclose(data.x_test, [[[0.8, 0.6], [1.0, 1.0]]], rtol=0, atol=1e-7)
    assert data.y_train.tolist() == [7, 0, 9] and data.y_test.tolist() == [3]
    assert data.y_train.dtype == np.int64


@pytest.mark.parametrize(
    "array, code",
    [
        (np.array([[-2, 300], [32767, -32768]], dtype=np.int16), 0x0B),
        (np.array([1, -70000, 2**31 - 1], dtype=np.int32), 0x0C),
        (np.array([[0.5, -1.25]], dtype=np.float32), 0x0D),
        (np.array([1e-300, -3.0], dtype=np.float64), 0x0E),
        (np.array([-128, 127, 0], dtype=np.int8), 0x09),
    ],
    ids=["i2", "i4", "f4", "f8", "i1"],
)
def test_read_idx_types_are_big_endian(tmp_path, array, code):
    path = tmp_path / "a-idx"
    path.write_bytes(idx_bytes(array, code))
    got = read_idx(path)
    assert got.shape == array.shape
    np.testing.assert_array_equal(got, array)


def test_read_idx_hand_bytes(tmp_path):
    """Bytes spelled out: magic 0x00000803 = uint8 rank 3, dims 1x2x3, six pixels."""
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(bytes.fromhex("00000803 00000001 00000002 00000003 0a141e28323c"))
    assert read_idx(path).tolist() == [[[10, 20, 30], [40, 50, 60]]]


@pytest.mark.parametrize(
    "data, fragment",
    [
        (bytes.fromhex("01000801 00000003 010203"), "bad magic"),
        (bytes.fromhex("00010801 00000003 010203"), "bad magic"),
        (b"\x00\x00", "bad magic"),
        (b"", "bad magic"),
        (bytes.fromhex("00000701 00000003 010203"), "unsupported IDX type 0x07"),
        (bytes.fromhex("00000800 00000003"), "rank 0"),
        (bytes.fromhex("00000803 00000002 0000"), "truncated IDX header"),
        (bytes.fromhex("00000801 00000005 010203"), "truncated IDX data (3 of 5 bytes)"),
        (bytes.fromhex("00000c01 00000002 00000001 0000"), "truncated IDX data (6 of 8 bytes)"),
        (bytes.fromhex("00000803 00100000 00100000 00100000"), "too large"),
    ],
)
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_bad_idx_is_an_error(tmp_path, data, fragment, gz):
    path = tmp_path / ("bad-idx.gz" if gz else "bad-idx")
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(AnalogcError) as info:
        read_idx(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


@pytest.mark.parametrize("damage", ["truncated", "not-gzip"])
def test_broken_gzip_is_an_error(tmp_path, damage):
    good = gzip.compress(idx_bytes(TRAIN_IMAGES, 0x08))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(good[: len(good) // 2] if damage == "truncated" else b"plain bytes, no gzip header")
    with pytest.raises(AnalogcError, match="cannot read IDX file"):
        read_idx(path)


def test_idx_folder_with_mismatched_label_count(tmp_path):
    folder = write_idx_set(tmp_path / "set", gz=False, labels_train=np.array([1, 2], dtype=np.uint8))
    with pytest.raises(AnalogcError) as info:
        load_dataset(f"idx:{folder}")
    assert "train labels (2,)" in str(info.value) and "(3, 2, 2)" in str(info.value)


def test_idx_folder_missing_file_or_folder(tmp_path):
    folder = write_idx_set(tmp_path / "set", gz=True)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(AnalogcError, match="missing t10k-labels-idx1-ubyte"):
        load_idx_dir(folder, "x")
    with pytest.raises(AnalogcError, match="not a folder"):
        load_dataset(f"idx:{tmp_path / 'absent'}")


# ---------------------------------------------------------------- npz


def write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def good_arrays(**override):
    arrays = {
        "x_train": np.arange(12, dtype=np.uint8).reshape(3, 2, 2) * 20,
        "y_train": np.array([0, 1, 2]),
        "x_test": np.array([[0.25, 0.5]], dtype=np.float64),
        "y_test": np.array([1], dtype=np.int32),
    }
    arrays.update(override)
    return {k: v for k, v in arrays.items() if v is not None}


def test_npz_loads_and_scales_integer_images(tmp_path):
    data = load_dataset(str(write_npz(tmp_path / "d.npz", **good_arrays())))
    assert data.name == "d.npz"
    np.testing.assert_allclose(data.x_train.reshape(-1), np.arange(12) * 20 / 255, rtol=1e-6)
    np.testing.assert_array_equal(data.x_test, [[0.25, 0.5]])
    assert data.x_train.dtype == np.float32 and data.x_test.dtype == np.float32
    assert data.y_train.dtype == np.int64 and data.y_test.tolist() == [1]


@pytest.mark.parametrize("missing", ["x_train", "y_test"])
def test_npz_missing_keys(tmp_path, missing):
    path = write_npz(tmp_path / "d.npz", **good_arrays(**{missing: None}))
    with pytest.raises(AnalogcError) as info:
        load_npz(path)
    assert f"missing arrays {missing}" in str(info.value) and "d.npz" in str(info.value)


def test_npz_object_arrays_are_refused(tmp_path):
    path = write_npz(tmp_path / "d.npz", **good_arrays(x_test=np.array([{"a": 1}], dtype=object)))
    with pytest.raises(AnalogcError, match="x_test: holds Python objects"):
        load_npz(path)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ({"y_train": np.array([0, 1])}, "y_train must be integer labels"),
        ({"y_test": np.array([1, 2])}, "y_test must be integer labels"),
        ({"y_test": np.array([0.5])}, "y_test must be integer labels"),
        ({"y_train": np.zeros((3, 1), np.int64)}, "y_train must be integer labels"),
        ({"x_test": np.array([["a", "b"]])}, "x_test must be a numeric array"),
        ({"x_test": np.array([[np.nan, 0.0]])}, "x_test holds NaN or Inf"),
    ],
)
def test_npz_bad_contents(tmp_path, override, fragment):
    path = write_npz(tmp_path / "d.npz", **good_arrays(**override))
    with pytest.raises(AnalogcError, match=fragment):
        load_npz(path)


def test_npz_not_a_file_or_not_npz(tmp_path):
    with pytest.raises(AnalogcError, match="no such file"):
        load_dataset(str(tmp_path / "absent.npz"))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(AnalogcError, match="not a readable .npz archive"):
        load_npz(bad)


def test_unknown_data_set():
    with pytest.raises(AnalogcError, match="unknown data set 'mnist'"):
        load_dataset("mnist")


# ---------------------------------------------------------------- Fashion-MNIST


def test_fashion_mnist_from_analogc_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ANALOGC_DATA", str(write_idx_set(tmp_path / "fm", gz=True)))
    data = load_fashion_mnist()
    assert data.name == "fashion-mnist" and data.y_train.tolist() == [7, 0, 9]


@pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").exists(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_from_the_debian_package(monkeypatch):
    monkeypatch.delenv("ANALOGC_DATA", raising=False)
    data = load_dataset("fashion-mnist")
    assert data.x_train.shape == (60000, 28, 28) and data.x_test.shape == (10000, 28, 28)
    assert data.x_train.dtype == np.float32
    assert 0.0 <= data.x_test.min() and data.x_test.max() <= 1.0 and data.x_test.max() == 1.0
    assert np.bincount(data.y_test).tolist() == [1000] * 10
    raw = read_idx(FASHION / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_allclose(data.x_test[123], raw[123] / 255.0, rtol=1e-6)


def test_fashion_mnist_missing_is_a_clear_error(tmp_path, monkeypatch):
    import analogc.data

    monkeypatch.delenv("ANALOGC_DATA", raising=False)
    monkeypatch.setattr(analogc.data, "FASHION_MNIST_DIRS", (str(tmp_path / "nowhere"),))
    with pytest.raises(AnalogcError, match="dataset-fashion-mnist"):
        load_fashion_mnist()


def test_analogc_data_folder_without_files_is_refused_not_replaced(tmp_path, monkeypatch):
    # An explicit ANALOGC_DATA is never silently swapped for the Debian copy.
    monkeypatch.setenv("ANALOGC_DATA", str(tmp_path))
    with pytest.raises(AnalogcError, match="missing train-images-idx3-ubyte"):
        load_fashion_mnist()


# ---------------------------------------------------------------- fit_to_input


def test_fit_to_input_reshapes_in_c_order():
    x = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    flat = fit_to_input(x, [None, 64], "digits")
    assert flat.shape == (2, 64) and flat.flags.c_contiguous
    np.testing.assert_array_equal(flat[1], np.arange(64, 128))
    image = fit_to_input(x.reshape(2, 64), [None, 1, 8, 8], "digits")
    assert image.shape == (2, 1, 8, 8)
    np.testing.assert_array_equal(image[1, 0, 2], [80, 81, 82, 83, 84, 85, 86, 87])
    assert fit_to_input(x, [1, 64], "digits").shape == (2, 64)  # a fixed batch of 1 is batched later


@pytest.mark.parametrize("shape, expected", [([None, 10], "('N', 10)"), ([None, 1, 28, 28], "('N', 1, 28, 28)"), ([4, 63], "(4, 63)")])
def test_fit_to_input_mismatch_names_both_shapes(shape, expected):
    x = np.zeros((5, 8, 8), np.float32)
    with pytest.raises(AnalogcError) as info:
        fit_to_input(x, shape, "digits")
    message = str(info.value)
    assert "digits" in message and "(8, 8)" in message and expected in message


def test_fit_to_input_with_symbolic_inner_dims():
    x = np.zeros((5, 64), np.float32)
    assert fit_to_input(x, [None, None], "d") is x
    with pytest.raises(AnalogcError) as info:
        fit_to_input(np.zeros((5, 8, 8), np.float32), [None, None], "d")
    assert "(8, 8)" in str(info.value) and "('N', 'N')" in str(info.value)


def test_sweep_jobs_feed_images_as_run_and_train_do():
    """One home for images -> model input: a sweep job refuses a non-float input as `run` does."""
    from types import SimpleNamespace

    from analogc.errors import AnalogcError
    from analogc.sweep_job import feeds

    x = np.arange(2 * 64, dtype=np.float64).reshape(2, 8, 8)
    program = SimpleNamespace(meta={"model": {"inputs": [{"name": "x", "shape": [None, 64], "dtype": "float32"}]}})
    fed = feeds(program, x, "digits")["x"]
    assert fed.dtype == np.float32 and fed.shape == (2, 64) and fed[1, 63] == 127
    program.meta["model"]["inputs"][0]["dtype"] = "int64"
    with pytest.raises(AnalogcError, match="int64, data sets feed float images"):
        feeds(program, x, "digits")


def test_images_beyond_a_float16_input_are_refused():
    """A float16 model input: images are cast to it, and one past its range (65504) would
    become Inf without a word."""
    model_input = {"name": "x", "dtype": "float16", "shape": [None, 2]}
    fed = image_feeds(np.array([[0.5, 60000.0]], np.float32), model_input, "d.npz")["x"]
    assert fed.dtype == np.float16 and fed.tolist() == [[0.5, 60000.0]]
    with pytest.raises(AnalogcError, match=r"^d.npz: images hold values beyond the range of float16"):
        image_feeds(np.array([[0.5, 70000.0]], np.float32), model_input, "d.npz")
