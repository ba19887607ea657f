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
from analogc.npy_read import check_unique_members, check_zip_member, read_npz
from analogc.runtime.program_check import check_program

FORMAT_VERSION = 1
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


def arrays_to_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    # asarray, not ascontiguousarray: that one turns 0-d arrays into shape (1,).
    np.savez(buffer, **{k: np.asarray(v, order="C") for k, v in sorted(arrays.items())})
    return buffer.getvalue()


def save_program(program: Program, path: str | Path) -> None:
    """Write the archive to a temporary file beside `path`, then rename it into place."""
    payload = {ARRAYS: arrays_to_bytes(program.arrays), **program.members}
    meta = dict(program.meta)
    meta["format_version"] = FORMAT_VERSION
    meta["checksums"] = {name: sha256(data) for name, data in sorted(payload.items())}
    meta["program_sha256"] = meta_digest(meta)
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(zipfile.ZipInfo(PROGRAM_JSON, (1980, 1, 1, 0, 0, 0)), json.dumps(meta, indent=1, sort_keys=True))
            for name, data in sorted(payload.items()):
                info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
                # Weights barely compress and deflating hundreds of MB is slow: store them.
                info.compress_type = zipfile.ZIP_STORED if len(data) > 1 << 20 else zipfile.ZIP_DEFLATED
                archive.writestr(info, data)


def load_program(path: str | Path) -> Program:
    """Read and verify an archive; every defect is an AnalogcError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise AnalogcError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    return read_program(path, path)


def load_program_bytes(data: bytes, name: str = "program") -> Program:
    """The same checks as `load_program`, on the bytes of an .atp file (a program shipped
    to another machine, e.g. a sweep worker, needs no shared disk); errors name `name`."""
    return read_program(io.BytesIO(data), Path(name))


def read_program(source, path: Path) -> Program:
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
            data = read_member(archive, name, path)
            if sha256(data) != expected:
                raise AnalogcError(f"{path}: checksum mismatch for member {name} (file corrupted or edited)")
            members[name] = data
    arrays = read_arrays(members.pop(ARRAYS), path)
    check_program(meta, arrays, members, str(path))
    return Program(meta, arrays, members)


def read_member(archive: zipfile.ZipFile, name: str, path: Path) -> bytes:
    """One member, refusing sizes that are absurd or compress like a zip bomb."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise AnalogcError(f"{path}: member {name} is missing") from None
    check_zip_member(info, f"{path}: member {name}")
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
    """arrays.npz: every entry a .npy array (never unpickled), sizes checked like members."""
    return read_npz(data, f"{path}: {ARRAYS}")
