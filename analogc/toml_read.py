"""Reading a TOML file the user named (target specs, sweep files): one place for its
three errors, each one line naming the file."""

from __future__ import annotations

import tomllib
from pathlib import Path

from analogc.errors import AnalogcError


def read_toml(path: str | Path, what: str) -> dict:
    """The parsed table of `path`; `what` names the kind of file in the errors
    ("target spec", "sweep file")."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise AnalogcError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise AnalogcError(f"{path}: {what} is not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AnalogcError(f"{path}: not valid TOML ({exc})") from None
