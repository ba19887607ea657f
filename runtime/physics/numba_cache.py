"""Cached numba builds: stale when a function they compiled in changes, or mixed up
between two builds of one function.

numba keys a cached build by its own source file only: a kernel that calls a compiled
function of another module (inlined or linked into its build) keeps running the old
callee after that module changes (and crashes when the callee's signature changed).
`drop_stale_builds` stamps the hash of a module's source and its callees' sources next
to its cached builds, and drops those builds when the hash differs. The cache is also
keyed by the function's name and line, so two dispatchers of one function (serial and
parallel) would load each other's machine code: `renamed` gives each its own name.
"""

from __future__ import annotations

import hashlib
import types
from pathlib import Path

from analogc.atomic import write_text_atomic


def drop_stale_builds(module_file: str, callees: list) -> None:
    """Drop the cached builds of the module at `module_file` unless its source and those
    of the `callees` (modules) are the ones stamped with them. Call at import, before
    the module's kernels are first called."""
    here = Path(module_file).resolve()
    cache = here.parent / "__pycache__"
    sources = [here, *(Path(module.__file__) for module in callees)]
    try:
        digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()
        stamp = cache / f"{here.stem}.sources"
        if stamp.is_file() and stamp.read_text() == digest:
            return
        for build in cache.glob(f"{here.stem}.*.nb[ic]"):
            build.unlink()
        cache.mkdir(exist_ok=True)
        write_text_atomic(stamp, digest)
    except OSError:
        pass  # a read-only install: numba then caches elsewhere or not at all


def renamed(function, name: str):
    """A copy of `function` under another name, for a second numba build of it."""
    copy = types.FunctionType(function.__code__.replace(co_name=name, co_qualname=name), function.__globals__, name)
    copy.__qualname__ = name
    return copy
