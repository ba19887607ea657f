"""Write output files atomically: a temporary file in the same folder, then a rename.

A crash, Ctrl-C or an error half-way leaves either the old file or none, never half a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from analogc.errors import AnalogcError


def _read_umask() -> int:
    """The process umask (os.umask can only be read by setting it, so do it once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _read_umask()


def check_writable_path(path: Path) -> Path:
    """The folder `path` would be written in; an error if it is missing or `path` is a
    folder. Commands call this before long work, so they fail early, not after."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise AnalogcError(f"{path}: folder {folder} does not exist")
    if path.is_dir():
        raise AnalogcError(f"{path}: is a folder, not a file")
    return folder


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path next to `path`; rename it over `path` if the block succeeds."""
    path = Path(path)
    folder = check_writable_path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise AnalogcError(f"{path}: cannot write ({exc.strerror or exc})") from None
    # mkstemp makes the file private (0600); give it the mode open() would.
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666 & ~UMASK)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))
