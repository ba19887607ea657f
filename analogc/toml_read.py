"""Reading a TOML file the user named (target specs, sweep files): one place for its
errors, each one line naming the file."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

from analogc.errors import AnalogcError

MAX_TOML_BYTES = 16 << 20


def read_toml(path: str | Path, what: str) -> dict:
    """The parsed table of `path`; `what` names the kind of file in the errors
    ("target spec", "sweep file")."""
    try:
        # Only a regular file of a sane size: a FIFO would block the read for ever and a
        # link to /dev/zero would never end.
        info = Path(path).stat()
        if not stat.S_ISREG(info.st_mode):
            raise AnalogcError(f"{path}: {what} is not a regular file")
        if info.st_size > MAX_TOML_BYTES:
            raise AnalogcError(f"{path}: {what} of {info.st_size:,} bytes is larger than the {MAX_TOML_BYTES:,} a TOML file here may be")
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise AnalogcError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise AnalogcError(f"{path}: {what} is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AnalogcError(f"{path}: not valid TOML ({exc})") from None
