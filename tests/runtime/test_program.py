"""The tile program file (.atp): round trip, atomic writes, and every defect a clear error.

Defective archives are built by rewriting a good one member by member with `zipfile`,
and digests are recomputed here from the documented rule (sha256 of program.json's
canonical JSON without `program_sha256`), not with program.py's own helpers.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from analogc.errors import AnalogcError
from analogc.runtime.format import program as program_module
from analogc.runtime.format.program import FORMAT_VERSION, Program, load_program, program_identity, save_program


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(meta: dict) -> str:
    body = {k: v for k, v in meta.items() if k != "program_sha256"}
    return sha(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8"))


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def sample_program() -> Program:
    rng = np.random.default_rng(7)
    meta = {
        "model": {
            "name": "toy",
            "inputs": [{"name": "x", "shape": [None, 3], "dtype": "float32"}],
            "outputs": [{"name": "y", "shape": [None, 2], "dtype": "float32"}],
        },
        "target": {"name": "tiny", "chip": {"grid_rows": 2, "grid_cols": 2}},
        "layers": [
            {"name": "fc", "input": "x", "output": "y", "shape": [3, 2], "bias": "digital", "dtype": "float32", "activation": {"op": "relu"}, "w_max": 0.5}
        ],
        "host_segments": [],
        "placement": {
            "grid": [2, 2], "tile": [512, 512], "tiles_used": 1, "lower_bound_tiles": 1, "utilization": 0.001,
            "solver": {"status": "OPTIMAL", "objective": 1, "best_bound": 1, "seconds": 0.0}, "traffic": 0, "traffic_greedy": 0,
        },
        "blocks": [{"id": 0, "layer": "fc", "rows": [0, 3], "cols": [0, 2], "tile": [0, 1], "offset": [0, 0]}],
        "instructions": {"inference": [{"op": "load", "layer": "fc"}, {"op": "mvm", "block": 0}, {"op": "store", "layer": "fc"}]},
        "unicode": "µS, Ω",
        "nested": {"none": None, "floats": [0.1, 1e-30, -2.5], "flag": True},
    }
    arrays = {
        "weight/fc": rng.normal(size=(3, 2)).astype(np.float32),
        "bias/fc": np.array([0.25, -1.5], dtype=np.float32),
        "state/f64": rng.normal(size=(4, 5, 6)),
        "counts": np.arange(12, dtype=np.int64).reshape(3, 4),
        "scalar": np.array(3.5),
        "empty": np.zeros((0, 7), dtype=np.float32),
        "mask": np.array([True, False, True]),
        "fortran": np.asfortranarray(rng.normal(size=(3, 4))),
    }
    members = {
        "host/seg0.onnx": b"\x08\x07host segment bytes" * 10,
        "original.onnx": bytes(range(256)) * 4,
    }
    return Program(meta, arrays, members)


@pytest.fixture
def saved(tmp_path) -> Path:
    path = tmp_path / "p.atp"
    save_program(sample_program(), path)
    return path


def zip_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def rewrite(path: Path, drop=(), replace=None, meta_edit=None, rehash=True) -> None:
    """Rewrite `path` without `drop`, with `replace`d members, program.json edited by
    `meta_edit(meta)`; checksums and the digest are recomputed when `rehash`."""
    members = zip_members(path)
    meta = json.loads(members.pop("program.json"))
    for name in drop:
        members.pop(name, None)
    members.update(replace or {})
    if meta_edit:
        meta_edit(meta)
    if rehash:
        for name, data in members.items():
            meta["checksums"][name] = sha(data)
        meta["program_sha256"] = digest(meta)
    write_zip(path, {"program.json": json.dumps(meta).encode("utf-8"), **members})


def load_error(path: Path) -> str:
    with pytest.raises(AnalogcError) as info:
        load_program(path)
    message = str(info.value)
    assert str(path) in message, message
    return message


# ---------------------------------------------------------------- round trip


def test_round_trip_preserves_meta_arrays_and_members(saved):
    original = sample_program()
    loaded = load_program(saved)
    for key, value in original.meta.items():
        assert loaded.meta[key] == value, key
    assert loaded.meta["format_version"] == FORMAT_VERSION
    assert set(loaded.meta) == set(original.meta) | {"format_version", "checksums", "program_sha256"}
    assert set(loaded.arrays) == set(original.arrays)
    for name, value in original.arrays.items():
        got = loaded.arrays[name]
        assert got.dtype == value.dtype and got.shape == value.shape, name
        np.testing.assert_array_equal(got, value, err_msg=name)
    assert loaded.members == original.members
    assert loaded.layer("fc")["w_max"] == 0.5


def test_archive_layout_and_checksums_follow_the_contract(saved):
    members = zip_members(saved)
    assert set(members) == {"program.json", "arrays.npz", "host/seg0.onnx", "original.onnx"}
    meta = json.loads(members["program.json"])
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["checksums"] == {name: sha(data) for name, data in members.items() if name != "program.json"}
    assert meta["program_sha256"] == digest(meta)
    with np.load(io.BytesIO(members["arrays.npz"]), allow_pickle=False) as npz:
        assert set(npz.files) == set(sample_program().arrays)


def test_solver_seconds_change_the_digest_but_not_the_identity(saved):
    """The digest guards every byte of program.json, the solver's wall-clock seconds
    included; the program's identity (what checkpoints key on) leaves them out."""
    before = load_program(saved).meta
    rewrite(saved, meta_edit=lambda meta: meta["placement"]["solver"].update(seconds=12.5), rehash=False)
    assert "checksum mismatch for program.json" in load_error(saved)
    rewrite(saved, meta_edit=lambda meta: None)  # re-digested
    after = load_program(saved).meta
    assert after["program_sha256"] != before["program_sha256"]
    assert program_identity(after) == program_identity(before)
    after["placement"]["solver"]["objective"] = 2
    assert program_identity(after) != program_identity(before)


def test_saving_twice_gives_identical_bytes(tmp_path):
    save_program(sample_program(), tmp_path / "a.atp")
    save_program(sample_program(), tmp_path / "b.atp")
    assert (tmp_path / "a.atp").read_bytes() == (tmp_path / "b.atp").read_bytes()


def test_large_incompressible_member_round_trips(tmp_path):
    """The zip-bomb rule must not refuse big weights that do not compress."""
    program = sample_program()
    big = np.random.default_rng(1).random(5_000_000, dtype=np.float32)  # 20 MB, above the 16 MiB floor
    program.arrays["weight/big"] = big
    program.members["host/big.onnx"] = big.tobytes()
    save_program(program, tmp_path / "big.atp")
    loaded = load_program(tmp_path / "big.atp")
    np.testing.assert_array_equal(loaded.arrays["weight/big"], big)
    assert loaded.members["host/big.onnx"] == big.tobytes()


# ---------------------------------------------------------------- atomic writes


def test_write_leaves_only_the_output(tmp_path):
    save_program(sample_program(), tmp_path / "p.atp")
    save_program(sample_program(), tmp_path / "p.atp")  # overwrite
    assert sorted(os.listdir(tmp_path)) == ["p.atp"]


def test_written_file_has_the_permissions_of_an_ordinary_file(tmp_path):
    """A temp file renamed into place must not keep mkstemp's private 0600 mode."""
    (tmp_path / "plain").write_bytes(b"")
    save_program(sample_program(), tmp_path / "p.atp")
    mode = stat.S_IMODE((tmp_path / "p.atp").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain").stat().st_mode), oct(mode)


class Boom(OSError):
    pass


def fail_after(count: int, exc: BaseException):
    """A ZipFile.writestr that writes `count` members, then raises `exc`."""
    real = zipfile.ZipFile.writestr
    calls = {"n": 0}

    def writestr(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > count:
            raise exc
        return real(self, *args, **kwargs)

    return writestr


@pytest.mark.parametrize("exc", [Boom("disk full"), KeyboardInterrupt()], ids=["oserror", "ctrl-c"])
def test_failing_write_leaves_no_output(tmp_path, monkeypatch, exc):
    monkeypatch.setattr(zipfile.ZipFile, "writestr", fail_after(2, exc))
    with pytest.raises(type(exc)):
        save_program(sample_program(), tmp_path / "p.atp")
    assert os.listdir(tmp_path) == []


def test_failing_write_leaves_an_existing_file_unchanged(saved, monkeypatch):
    before = saved.read_bytes()
    changed = sample_program()
    changed.meta["unicode"] = "changed"
    monkeypatch.setattr(zipfile.ZipFile, "writestr", fail_after(2, Boom("disk full")))  # (arrays.npz is streamed, not a writestr)
    with pytest.raises(Boom):
        save_program(changed, saved)
    assert saved.read_bytes() == before
    assert os.listdir(saved.parent) == [saved.name]
    monkeypatch.undo()
    assert load_program(saved).meta["unicode"] == "µS, Ω"


def test_saving_into_a_missing_folder_is_an_error(tmp_path):
    with pytest.raises(AnalogcError, match="does not exist"):
        save_program(sample_program(), tmp_path / "nowhere" / "p.atp")
    assert os.listdir(tmp_path) == []


def test_saving_over_a_folder_is_an_error(tmp_path):
    (tmp_path / "p.atp").mkdir()
    with pytest.raises(AnalogcError, match="p.atp"):
        save_program(sample_program(), tmp_path / "p.atp")
    assert os.listdir(tmp_path) == ["p.atp"] and (tmp_path / "p.atp").is_dir()
    assert os.listdir(tmp_path / "p.atp") == []


# ---------------------------------------------------------------- pickles


class Canary:
    """Unpickling this creates a folder: proof that pickled data was executed."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    marker = tmp_path / "unpickled"
    program = sample_program()
    save_program(program, tmp_path / "p.atp")
    # save_program itself refuses to pickle: the hostile member is written as np.savez would.
    evil = io.BytesIO()
    np.savez(evil, **program.arrays, evil=np.array([Canary(str(marker))], dtype=object))
    rewrite(tmp_path / "p.atp", replace={"arrays.npz": evil.getvalue()})
    assert not marker.exists()
    message = load_error(tmp_path / "p.atp")
    assert "arrays.npz" in message
    assert not marker.exists()


def test_arrays_member_that_is_a_bare_pickle_is_refused(saved):
    import pickle

    rewrite(saved, replace={"arrays.npz": pickle.dumps({"weight/fc": np.zeros(3)})})
    assert "arrays.npz" in load_error(saved)


def test_arrays_member_holding_raw_bytes_is_refused(saved):
    """An npz entry that is not a .npy array must not come back as `bytes`."""
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as inner:
        inner.writestr("weight/fc.npy", b"not an npy file at all")
    rewrite(saved, replace={"arrays.npz": raw.getvalue()})
    assert "arrays.npz" in load_error(saved)


def test_array_declaring_a_huge_shape_is_refused(saved):
    """A .npy header promising 8 TiB must give a clear error, not a MemoryError."""
    body = io.BytesIO()
    np.lib.format.write_array_header_1_0(body, {"descr": "<f8", "fortran_order": False, "shape": (2**40,)})
    body.write(b"\0" * 64)
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as inner:
        inner.writestr("weight/fc.npy", body.getvalue())
    rewrite(saved, replace={"arrays.npz": raw.getvalue()})
    assert "arrays.npz" in load_error(saved)


def test_compressed_bomb_inside_arrays_npz_is_refused(saved):
    """The ratio rule applies to the arrays inside arrays.npz too."""
    body = io.BytesIO()
    np.save(body, np.zeros(64 << 20, dtype=np.uint8))
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as inner:
        inner.writestr("weight/fc.npy", body.getvalue())
    assert len(raw.getvalue()) < 1 << 20
    rewrite(saved, replace={"arrays.npz": raw.getvalue()})
    message = load_error(saved)
    assert "weight/fc" in message and "refusing" in message


# ---------------------------------------------------------------- defects


def test_missing_file(tmp_path):
    assert "no such file" in load_error(tmp_path / "absent.atp")


def test_folder_instead_of_file(tmp_path):
    (tmp_path / "d.atp").mkdir()
    assert "not a file" in load_error(tmp_path / "d.atp")


def test_not_a_zip(tmp_path):
    path = tmp_path / "p.atp"
    path.write_text("this is not a zip archive\n" * 20)
    assert "not a zip archive" in load_error(path)


def test_empty_file(tmp_path):
    path = tmp_path / "p.atp"
    path.write_bytes(b"")
    assert "not a zip archive" in load_error(path)


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.1])
def test_truncated_zip(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[: int(len(data) * keep)])
    # Cut before the end, the archive has no directory of its own; zipfile may still find
    # the one of arrays.npz (a zip stored inside it) and then program.json is missing.
    message = load_error(saved)
    assert "not a tile program" in message or "member program.json is missing" in message


@pytest.mark.parametrize("member", ["host/seg0.onnx", "arrays.npz", "program.json"])
@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED], ids=["deflated", "stored"])
def test_corrupted_member_data(saved, member, compression):
    """Bytes flipped inside a member's data (a bad disk, a bad copy): a clear error."""
    write_zip(saved, zip_members(saved), compression=compression)
    with zipfile.ZipFile(saved) as archive:
        info = archive.getinfo(member)
    data = bytearray(saved.read_bytes())
    name_len, extra_len = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little"), int.from_bytes(
        data[info.header_offset + 28 : info.header_offset + 30], "little"
    )
    start = info.header_offset + 30 + name_len + extra_len
    middle = start + info.compress_size // 2
    data[middle : middle + 4] = bytes(b ^ 0x5A for b in data[middle : middle + 4])
    saved.write_bytes(bytes(data))
    assert member in load_error(saved)


def test_newer_format_version(saved):
    rewrite(saved, meta_edit=lambda meta: meta.update(format_version=99))
    message = load_error(saved)
    assert "99" in message and "newer" in message and str(FORMAT_VERSION) in message


def test_a_version_1_program_still_loads(saved):
    """Version 2 added fields (convolutions, copies) without changing version 1's: a dense
    program written before them reads as it did."""
    rewrite(saved, meta_edit=lambda meta: meta.update(format_version=1))
    assert load_program(saved).meta["format_version"] == 1


@pytest.mark.parametrize("version", [0, "1", None, 1.0, True])
def test_bad_format_version(saved, version):
    rewrite(saved, meta_edit=lambda meta: meta.update(format_version=version))
    assert "format" in load_error(saved)


def test_bad_checksum_of_arrays(saved):
    other = npz_bytes(**{"weight/fc": np.ones((3, 2), np.float32)})
    rewrite(saved, replace={"arrays.npz": other}, rehash=False)
    message = load_error(saved)
    assert "checksum" in message and "arrays.npz" in message


def test_bad_checksum_of_host_segment(saved):
    rewrite(saved, replace={"host/seg0.onnx": b"tampered"}, rehash=False)
    message = load_error(saved)
    assert "checksum" in message and "host/seg0.onnx" in message


def test_edited_program_json(saved):
    members = zip_members(saved)
    text = members["program.json"].decode("utf-8")
    edited = json.loads(text)
    edited["layers"][0]["w_max"] = 5.0  # checksums and digest left as they were
    members["program.json"] = json.dumps(edited).encode("utf-8")
    write_zip(saved, members)
    message = load_error(saved)
    assert "checksum" in message and "program.json" in message


def test_program_json_not_json(saved):
    members = zip_members(saved)
    members["program.json"] = b"{ not json"
    write_zip(saved, members)
    assert "program.json" in load_error(saved)


@pytest.mark.parametrize("member", ["arrays.npz", "host/seg0.onnx", "program.json", "original.onnx"])
def test_missing_member(saved, member):
    members = zip_members(saved)
    del members[member]
    write_zip(saved, members)
    message = load_error(saved)
    assert member in message and "missing" in message


def test_member_with_huge_declared_size_is_refused_by_the_ratio_rule(saved, monkeypatch):
    zeros = bytes(100 * 1000 * 1000)  # 100 MB of zeros deflate to about 100 kB
    rewrite(saved, replace={"host/seg0.onnx": zeros})
    with zipfile.ZipFile(saved) as archive:
        info = archive.getinfo("host/seg0.onnx")
        assert info.file_size / info.compress_size > program_module.MAX_COMPRESSION_RATIO
    reads = []
    real_read = zipfile.ZipFile.read
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda self, name, *a: reads.append(name) or real_read(self, name, *a))
    message = load_error(saved)
    assert "host/seg0.onnx" in message and "refusing" in message and str(len(zeros)) in message
    assert "host/seg0.onnx" not in reads  # refused from the header, never expanded


def test_member_just_under_the_size_floor_is_accepted(saved):
    """The ratio rule only applies above 16 MiB: a compressible 1 MB member is fine."""
    zeros = bytes(1_000_000)
    rewrite(saved, replace={"host/seg0.onnx": zeros})
    assert load_program(saved).members["host/seg0.onnx"] == zeros
