"""Whether this process compiled the simulator's numba kernels (the first run after an
install, or with a new NUMBA_CACHE_DIR) instead of loading them from numba's cache: that
run's speed includes the compilation, and the summary says so."""

from __future__ import annotations

import sys

KERNEL_MODULES = ("analogc.runtime.kernels", "analogc.runtime.read_kernel", "analogc.runtime.update_kernel")
FIRST_RUN_NOTE = "includes compiling the simulator's kernels, once per installation: later runs are faster"


def kernels_compiled_here() -> bool:
    """True when a cached kernel of an imported kernel module missed numba's cache in this
    process (so it was compiled now). Without numba, nothing is compiled."""
    for name in KERNEL_MODULES:
        module = sys.modules.get(name)
        for value in vars(module).values() if module else ():
            stats = getattr(value, "stats", None)
            if stats is not None and hasattr(stats, "cache_misses") and sum(stats.cache_misses.values()):
                return True
    return False
