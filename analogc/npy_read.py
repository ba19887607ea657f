"""Read .npy and .npz files from untrusted sources: never unpickle, check every header
(version, dtype, shape) against the bytes actually present and the memory limit before
numpy allocates anything, and refuse zip members that expand like a zip bomb.

numpy's own loader would allocate a header's declared shape first (an 8-byte .npy can
declare terabytes) and report object arrays only as a ValueError; here each defect is
an AnalogcError naming the file and the array.
"""

from __future__ import annotations

import io
import math
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from analogc.errors import AnalogcError
from analogc.memory import check_fits

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
MAX_HEADER_BYTES = 10000  # numpy's own default limit
MAX_MEMBER_BYTES = 8 << 30
MAX_COMPRESSION_RATIO = 200
RATIO_CHECK_ABOVE = 1 << 24  # small members may compress well (zeros): only big ones are bombs
# numpy parses a header with the tokenizer and ast: hostile text raises any of these.
READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, SyntaxError, TypeError, tokenize.TokenError, RecursionError)


def check_zip_member(info: zipfile.ZipInfo, where: str) -> None:
    """Refuse a zip entry whose declared size is absurd or whose ratio is a zip bomb's."""
    too_big = info.file_size > MAX_MEMBER_BYTES
    bomb = (
        info.file_size > RATIO_CHECK_ABOVE
        and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1)
    )
    if too_big or bomb:
        raise AnalogcError(
            f"{where} declares {info.file_size} bytes from {info.compress_size} compressed, refusing to expand it"
        )


def check_unique_members(archive: zipfile.ZipFile, where: str) -> None:
    """A zip may hold two entries of one name; which one is read would be ambiguous."""
    seen = set()
    for info in archive.infolist():
        if info.filename in seen:
            raise AnalogcError(f"{where}: member {info.filename} appears twice")
        seen.add(info.filename)


def read_header(stream, available: int, where: str) -> tuple[tuple, np.dtype, bool]:
    """Parse a .npy header from `stream`; check it against the `available` bytes."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream, max_header_size=MAX_HEADER_BYTES)
        elif version in ((2, 0), (3, 0)):
            # 3.0 differs from 2.0 only in allowing UTF-8 field names.
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream, max_header_size=MAX_HEADER_BYTES)
        else:
            raise AnalogcError(f"{where}: .npy format version {version[0]}.{version[1]} is not one numpy writes")
    except AnalogcError:
        raise
    except READ_ERRORS as exc:
        raise AnalogcError(f"{where}: not a readable .npy array ({one_line(exc)})") from None
    if any(d < 0 for d in shape):
        raise AnalogcError(f"{where}: header declares a negative dimension {shape}")
    if dtype.hasobject:
        raise AnalogcError(f"{where}: holds Python objects (dtype {dtype}); analogc never unpickles data")
    need = stream.tell() + math.prod(shape) * dtype.itemsize
    if need != available:
        raise AnalogcError(
            f"{where}: header declares {dtype} {shape}, {need} bytes with the header; "
            f"the file holds {available}"
        )
    return shape, dtype, fortran


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def read_npy(path: Path) -> np.ndarray:
    """A .npy file, header checked before anything is allocated."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, io.SEEK_END)
            handle.seek(0)
            shape, dtype, _ = read_header(handle, size, str(path))
            check_fits(math.prod(shape) * dtype.itemsize, f"its array {dtype} {shape}", str(path))
            handle.seek(0)
            return np.load(handle, allow_pickle=False)
    except AnalogcError:
        raise
    except READ_ERRORS as exc:
        raise AnalogcError(f"{path}: not a readable .npy array ({one_line(exc)})") from None


def read_npz(source: Path | bytes, where: str) -> dict[str, np.ndarray]:
    """Every array of a .npz (a zip of .npy members), each header and size checked first."""
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as archive:
            infos = archive.infolist()
            check_unique_members(archive, where)
            total = 0
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise AnalogcError(f"{where}: member {info.filename} is not a .npy array")
                check_zip_member(info, f"{where}: member {info.filename}")
                with archive.open(info) as stream:
                    shape, dtype, _ = read_header(stream, info.file_size, f"{where}: array {info.filename[:-4]}")
                total += math.prod(shape) * dtype.itemsize
            check_fits(total, f"its {len(infos)} arrays", where)
            arrays = {}
            for info in infos:
                with archive.open(info) as stream:
                    arrays[info.filename[:-4]] = np.lib.format.read_array(stream, allow_pickle=False)
            return arrays
    except AnalogcError:
        raise
    except READ_ERRORS as exc:
        raise AnalogcError(f"{where}: not a readable .npz archive ({one_line(exc)})") from None


def read_npy_or_npz(path: Path) -> np.ndarray | dict[str, np.ndarray]:
    """--input: .npy or .npz told apart by their magic bytes, not their names."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
    except OSError as exc:
        raise AnalogcError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if magic.startswith(NPY_MAGIC):
        return read_npy(path)
    if magic.startswith((ZIP_MAGIC, EMPTY_ZIP_MAGIC)):
        return read_npz(path, str(path))
    raise AnalogcError(f"{path}: not a .npy or .npz file (unknown magic {magic!r})")
