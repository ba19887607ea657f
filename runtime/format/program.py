"""The tile program file (.atp): the only contract between the mapper and the runtime.

A zip archive holding
- `program.json`: format version, target spec, layers, blocks and placement, the
  inference instruction stream, and the sha256 of every other member;
- `arrays.npz`: weights and biases (and later device state), read with allow_pickle=False;
- `host/<segment>.onnx`: the host segments run by onnxruntime;
- `original.onnx`: the model as compiled (for the onnxruntime reference and export).

Instructions (`program["instructions"]["inference"]`), executed in order:
- `{"op": "host", "segment": name}`: run a host segment on the tensors it names;
- `{"op": "load", "layer": name}`: read the layer's input through the DACs;
- `{"op": "mvm", "block": id}`: one tile read of one block, partial sums accumulated;
- `{"op": "store", "layer": name}`: digital bias and activation, write the output tensor.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analogc.atomic import atomic_path
from analogc.errors import AnalogcError
from analogc.memory import check_fits
from analogc.npy_read import MAX_COMPRESSION_RATIO, MAX_MEMBER_BYTES  # noqa: F401 (the limits, for tests)
from analogc.npy_read import check_unique_members, check_zip_member, read_header, read_npz
from analogc.runtime.format.original_model import check_stripped
from analogc.runtime.format.program_check import check_program

# 1: dense layers. 2: convolution layers (`kind`, `kernel`, `strides`, `pads`, `dilations`,
# `group`, `auto_pad`), replicated layers (`copies`, block `copy`), `reads_per_example`
# (and `reads_per_example_exact`: false when a symbolic dim was counted as 1);
# the layer's weight-to-µS factor is no longer stored (the runtime derives it from w_max).
# A reader takes every version up to its own: a version-1 program is a version-2 one
# without those fields. An older analogc refuses a newer file instead of misreading it.
FORMAT_VERSION = 2
PROGRAM_JSON = "program.json"
ARRAYS = "arrays.npz"


@dataclass
class Program:
    """An in-memory tile program: JSON metadata, named arrays and binary members."""

    meta: dict
    arrays: dict = field(default_factory=dict)
    members: dict = field(default_factory=dict)  # name -> bytes (host segments, original model)

    @property
    def layers(self) -> list[dict]:
        return self.meta["layers"]

    @property
    def blocks(self) -> list[dict]:
        return self.meta["blocks"]

    def layer(self, name: str) -> dict:
        for layer in self.meta["layers"]:
            if layer["name"] == name:
                return layer
        raise KeyError(name)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def meta_digest(meta: dict, wall_clock: bool = True) -> str:
    """sha256 of program.json's canonical form without the digest itself (which covers
    every member through `checksums`). Without `wall_clock`, also without the placement
    solver's seconds: `program_identity`."""
    body = {k: v for k, v in meta.items() if k != "program_sha256"}
    placement = body.get("placement")
    if not wall_clock and isinstance(placement, dict) and isinstance(placement.get("solver"), dict):
        solver = {k: v for k, v in placement["solver"].items() if k != "seconds"}
        body["placement"] = {**placement, "solver": solver}
    return sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8"))


def program_identity(meta: dict) -> str:
    """What makes two programs the same program: all of it but the time the placement
    solver took. Two compiles of one model, spec and seed differ only there (their
    `program_sha256`, which guards the file's integrity, differs), and a training
    checkpoint of one resumes on the other."""
    return meta_digest(meta, wall_clock=False)


class HashingWriter:
    """A write-only stream that passes bytes on and hashes them on the way (sha256)."""

    def __init__(self, target):
        self.target, self.hash = target, hashlib.sha256()

    def write(self, data) -> int:
        self.hash.update(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()


def save_program(program: Program, path: str | Path) -> None:
    """Write the archive to a temporary file beside `path`, then rename it into place.
    arrays.npz is streamed into its member and hashed as it goes; program.json, which
    holds every member's checksum, is written last."""
    meta = dict(program.meta)
    meta["format_version"] = FORMAT_VERSION
    checksums = {}
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            info = zipfile.ZipInfo(ARRAYS, (1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED  # weights barely compress and deflating hundreds of MB is slow
            with archive.open(info, "w", force_zip64=True) as member:
                # One .npy member at a time (no copy of the whole archive in memory: for the
                # VGG-19 FC stack that would be 500 MB twice). Arrays keep their memory order
                # (a Fortran-ordered weight is written as numpy writes it, not transposed);
                # `read_arrays` hands them back C-ordered.
                hashing = HashingWriter(member)
                with zipfile.ZipFile(hashing, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as npz:
                    for name, value in sorted(program.arrays.items()):
                        with npz.open(zipfile.ZipInfo(f"{name}.npy", (1980, 1, 1, 0, 0, 0)), "w", force_zip64=True) as entry:
                            write_npy(entry, value)
            checksums[ARRAYS] = hashing.hash.hexdigest()
            for name, data in sorted(program.members.items()):
                info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_STORED if len(data) > 1 << 20 else zipfile.ZIP_DEFLATED
                archive.writestr(info, data)
                checksums[name] = sha256(data)
            meta["checksums"] = dict(sorted(checksums.items()))
            meta["program_sha256"] = meta_digest(meta)
            archive.writestr(zipfile.ZipInfo(PROGRAM_JSON, (1980, 1, 1, 0, 0, 0)), json.dumps(meta, indent=1, sort_keys=True))


NPY_CHUNK = 1 << 20


def write_npy(stream, value) -> None:
    """The .npy bytes np.save writes, the data passed on as 1 MB views of the array's own
    memory. numpy's writer copies 16 MB chunks first (tobytes); here each chunk is read
    from memory once, by the inner CRC, and is still in the cache for the sha256, the
    outer member's CRC and the disk write: the save of VGG-19 FC's 500 MB took half the
    time (1.1 vs 2.5 s, interleaved). numpy's writer for anything but a contiguous array
    of a plain type."""
    array = np.asarray(value)
    plain = array.dtype.kind in "biufc" and array.dtype.isnative and array.dtype.fields is None and array.ndim <= 8
    if not plain or not (array.flags.c_contiguous or array.flags.f_contiguous):
        np.lib.format.write_array(stream, array, allow_pickle=False)
        return
    # The header numpy would write (version 1.0 holds any such shape); the data in memory
    # order, which the header's fortran_order names.
    np.lib.format.write_array_header_1_0(stream, np.lib.format.header_data_from_array_1_0(array))
    data = memoryview((array if array.flags.c_contiguous else array.T).reshape(-1).view(np.uint8))
    for start in range(0, len(data), NPY_CHUNK):
        stream.write(data[start : start + NPY_CHUNK])


def load_program(path: str | Path, arrays: dict | None = None) -> Program:
    """Read and verify an archive; every defect is an AnalogcError naming the file.
    With `arrays` (the ones just saved into it: compile's check before the rename),
    arrays.npz's .npy headers are checked against them instead of reading it back."""
    path = Path(path)
    if not path.is_file():
        raise AnalogcError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    return read_program(path, path, arrays)


def load_program_bytes(data: bytes, name: str = "program") -> Program:
    """The same checks as `load_program`, on the bytes of an .atp file (a program shipped
    to another machine, e.g. a sweep worker, needs no shared disk); errors name `name`."""
    return read_program(io.BytesIO(data), Path(name))


def read_program(source, path: Path, known_arrays: dict | None = None) -> Program:
    """Open the archive in `source` (a path or a binary file object) and verify it."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise AnalogcError(f"{path}: not a tile program (not a zip archive: {exc})") from None
    with archive:
        check_unique_members(archive, str(path))
        check_fits(sum(i.file_size for i in archive.infolist()), "its members", str(path))
        meta = read_meta(archive, path)
        if meta.get("program_sha256") != meta_digest(meta):
            raise AnalogcError(f"{path}: checksum mismatch for program.json (file corrupted or edited)")
        checksums = meta.get("checksums")
        if not isinstance(checksums, dict) or ARRAYS not in checksums:
            raise AnalogcError(f"{path}: program.json has no checksums for its members")
        members = {}
        for name, expected in checksums.items():
            if name == ARRAYS and known_arrays is not None:
                check_array_headers(archive, known_arrays, path)
                continue
            data = read_member(archive, name, path)
            if sha256(data) != expected:
                raise AnalogcError(f"{path}: checksum mismatch for member {name} (file corrupted or edited)")
            members[name] = data
    arrays = read_arrays(members.pop(ARRAYS), path) if known_arrays is None else known_arrays
    check_program(meta, arrays, members, str(path))
    check_stripped(meta, arrays, lambda what: fail_inconsistent(path, what))
    return Program(meta, arrays, members)


def fail_inconsistent(path: Path, what: str):
    raise AnalogcError(f"{path}: inconsistent tile program: {what}")


def check_array_headers(archive: zipfile.ZipFile, arrays: dict, path: Path) -> None:
    """arrays.npz holds exactly `arrays`, each .npy header giving its dtype and shape
    (the data were hashed as they were written; not read back)."""
    where = f"{path}: {ARRAYS}"
    info = member_info(archive, ARRAYS, path)
    try:
        with member_window(archive, info) as stream, zipfile.ZipFile(stream) as npz:
            found = {}
            for item in npz.infolist():
                with npz.open(item) as member:
                    shape, dtype, _ = read_header(member, item.file_size, f"{where}: array {item.filename[:-4]}")
                found[item.filename[:-4]] = (tuple(shape), dtype)
    except AnalogcError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
        raise AnalogcError(f"{where}: not a readable .npz archive ({exc})") from None
    expected = {name: (tuple(np.shape(value)), np.asarray(value).dtype) for name, value in arrays.items()}
    if found != expected:
        raise AnalogcError(f"{where}: does not hold the arrays that were written")


class Window(io.RawIOBase):
    """Bytes start … start + size of a file, as a seekable file: a stored zip member read in
    place (zipfile's own member stream rereads from the start on every backward seek,
    and the .npz directory sits at the member's end, 500 MB in for VGG-19 FC)."""

    def __init__(self, handle, start: int, size: int):
        self.handle, self.start, self.size, self.position = handle, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = min(max(base + offset, 0), self.size)
        return self.position

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.size - self.position)
        if count <= 0:
            return 0
        self.handle.seek(self.start + self.position)
        data = self.handle.read(count)
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


def member_window(archive: zipfile.ZipFile, info: zipfile.ZipInfo):
    """A stored member as a seekable stream over the archive's file (its local header
    skipped), or zipfile's own stream for a compressed one."""
    if info.compress_type != zipfile.ZIP_STORED:
        return archive.open(info)
    handle = archive.fp
    handle.seek(info.header_offset)
    header = handle.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {info.filename}")
    name_length, extra_length = int.from_bytes(header[26:28], "little"), int.from_bytes(header[28:30], "little")
    return Window(handle, info.header_offset + 30 + name_length + extra_length, info.compress_size)


def member_info(archive: zipfile.ZipFile, name: str, path: Path) -> zipfile.ZipInfo:
    """A member's directory entry, present and of a sane size (checked before any read)."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise AnalogcError(f"{path}: member {name} is missing") from None
    check_zip_member(info, f"{path}: member {name}")
    return info


def read_member(archive: zipfile.ZipFile, name: str, path: Path) -> bytes:
    """One member, refusing sizes that are absurd or compress like a zip bomb."""
    member_info(archive, name, path)
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise AnalogcError(f"{path}: member {name} cannot be read ({exc})") from None


def read_meta(archive: zipfile.ZipFile, path: Path) -> dict:
    raw = read_member(archive, PROGRAM_JSON, path)
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AnalogcError(f"{path}: program.json is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise AnalogcError(f"{path}: program.json must hold an object")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise AnalogcError(f"{path}: program.json has no integer format_version")
    if version > FORMAT_VERSION:
        raise AnalogcError(
            f"{path}: tile program format version {version} is newer than this analogc reads "
            f"({FORMAT_VERSION}); upgrade analogc"
        )
    if version < 1:
        raise AnalogcError(f"{path}: unknown tile program format version {version}")
    for key in ("target", "layers", "blocks", "instructions", "model"):
        if key not in meta:
            raise AnalogcError(f"{path}: program.json lacks {key!r}")
    return meta


def read_arrays(data: bytes, path: Path) -> dict:
    """arrays.npz: every entry a .npy array (never unpickled), sizes checked like members;
    C-ordered for the runtime (asarray keeps a 0-d array 0-d)."""
    return {name: np.asarray(value, order="C") for name, value in read_npz(data, f"{path}: {ARRAYS}").items()}
