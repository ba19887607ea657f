"""How much memory analogc may use, so that files declaring huge tensors are refused up
front with a message saying how much they need, instead of dying half-way.

The limit is the smallest of physical memory and the cgroup memory limit (a container's
share), unless `ANALOGC_MEMORY_LIMIT` (bytes, or with a K/M/G/T suffix) sets it.
"""

from __future__ import annotations

import os
from pathlib import Path

from analogc.errors import AnalogcError

ENV = "ANALOGC_MEMORY_LIMIT"
CGROUP_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_bytes(text: str) -> int:
    """'4G' -> 4 GiB; plain integers are bytes."""
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    number, suffix = (text[:-1], text[-1]) if text[-1:] in SUFFIXES and text[-1:] else (text, "")
    try:
        value = int(float(number) * SUFFIXES[suffix])
    except (ValueError, OverflowError):
        raise AnalogcError(f"{ENV} must be a number of bytes such as 4G, got {text!r}") from None
    if value <= 0:
        raise AnalogcError(f"{ENV} must be positive, got {text!r}")
    return value


def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def cgroup_limit() -> int | None:
    for name in CGROUP_FILES:
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
    return None


def memory_limit() -> int:
    """Bytes analogc may hold at once (see the module doc)."""
    if os.environ.get(ENV):
        return parse_bytes(os.environ[ENV])
    known = [v for v in (physical_memory(), cgroup_limit()) if v]
    return min(known) if known else 1 << 62


def human(nbytes: int) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(nbytes)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024 or unit == "EiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def check_fits(need: int, what: str, origin: str) -> None:
    """Refuse `need` bytes when they exceed the memory limit, saying how much it is."""
    limit = memory_limit()
    if need > limit:
        raise AnalogcError(
            f"{origin}: {what} need {human(need)} of memory, more than the {human(limit)} available "
            f"(set {ENV} to change the limit)"
        )
