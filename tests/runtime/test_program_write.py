"""The program writer's fast paths give what the plain ones gave: numpy's .npy bytes (the
data passed on as views of the arrays), the sha256 of the whole member, and a write
failing midway still leaves no file; the NaN/Inf check agrees with np.isfinite."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile

import numpy as np
import pytest

from analogc.runtime.format.program import load_program, save_program, write_npy
from analogc.runtime.format.program_check import all_finite

from .test_program import sample_program

RNG = np.random.default_rng(11)
ARRAYS = {
    "c-ordered": RNG.standard_normal((700, 600)).astype(np.float32),  # 1.7 MB: two chunks
    "fortran-ordered": RNG.standard_normal((600, 700)).astype(np.float32).T,
    "strided": np.arange(40, dtype=np.int64)[::3],
    "scalar": np.float32(2.5),
    "empty": np.zeros((0, 4), dtype=np.float64),
    "half": RNG.standard_normal(9).astype(np.float16),
    "bool": np.array([True, False, True]),
    "complex": (RNG.standard_normal((3, 2)) + 1j).astype(np.complex64),
    "big-endian": np.arange(6, dtype=">f4").reshape(2, 3),
    "3-d fortran": np.asfortranarray(RNG.standard_normal((3, 4, 5))),
}


@pytest.mark.parametrize("name", list(ARRAYS))
def test_write_npy_gives_numpys_bytes(name):
    want, got = io.BytesIO(), io.BytesIO()
    np.lib.format.write_array(want, np.asarray(ARRAYS[name]), allow_pickle=False)
    write_npy(got, ARRAYS[name])
    assert got.getvalue() == want.getvalue()


def large_program():
    program = sample_program()
    program.arrays.update({f"state/{k}": v for k, v in ARRAYS.items() if k != "scalar"})
    return program


def test_large_arrays_round_trip_with_the_member_checksum(tmp_path):
    program = large_program()
    save_program(program, tmp_path / "p.atp")
    with zipfile.ZipFile(tmp_path / "p.atp") as archive:
        member = archive.read("arrays.npz")
    loaded = load_program(tmp_path / "p.atp")
    assert loaded.meta["checksums"]["arrays.npz"] == hashlib.sha256(member).hexdigest()
    with np.load(io.BytesIO(member), allow_pickle=False) as stored:
        for name, value in program.arrays.items():
            assert stored[name].dtype == np.asarray(value).dtype and stored[name].tobytes() == np.asarray(value).tobytes(), name
    save_program(program, tmp_path / "q.atp")  # and twice the same bytes
    assert (tmp_path / "p.atp").read_bytes() == (tmp_path / "q.atp").read_bytes()


def test_a_write_failing_midway_through_the_arrays_leaves_no_file(tmp_path, monkeypatch):
    real, calls = zipfile._ZipWriteFile.write, {"n": 0}

    def write(self, data):
        calls["n"] += 1
        if memoryview(data).nbytes >= 1 << 19 and calls["n"] > 4:
            raise OSError("disk full")
        return real(self, data)

    monkeypatch.setattr(zipfile._ZipWriteFile, "write", write)
    with pytest.raises(OSError, match="disk full"):
        save_program(large_program(), tmp_path / "p.atp")
    assert os.listdir(tmp_path) == []
    assert calls["n"] > 4  # (some arrays were written, then the disk was full)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, None])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_all_finite_agrees_with_isfinite(bad, dtype):
    values = RNG.standard_normal((50, 40)).astype(dtype)
    if bad is not None:
        values[17, 3] = bad
    assert all_finite(values) == bool(np.all(np.isfinite(values)))
    assert all_finite(values.T) == bool(np.all(np.isfinite(values)))


def test_all_finite_of_empty_and_integer_arrays():
    assert all_finite(np.zeros((0, 3), np.float32)) and all_finite(np.arange(5))
