"""Whether the simulator's numba kernels were compiled during a timed stretch (the first
run after an install, or with a new NUMBA_CACHE_DIR) instead of loaded from numba's
cache: that stretch's speed includes the compilation, and the summary says so."""

from __future__ import annotations

import sys

KERNEL_MODULES = (
    "analogc.runtime.physics.kernels",
    "analogc.runtime.physics.dac_kernels",
    "analogc.runtime.training.read_kernel",
    "analogc.runtime.training.update_kernel",
)
FIRST_RUN_NOTE = "includes compiling the simulator's kernels, once per installation: later runs are faster"


def kernel_compilations() -> int:
    """How many times so far in this process a kernel missed numba's cache and was
    compiled; compare before and after a timed stretch. Without numba, always 0."""
    total = 0
    for name in KERNEL_MODULES:
        module = sys.modules.get(name)
        for value in vars(module).values() if module else ():
            stats = getattr(value, "stats", None)
            if stats is not None and hasattr(stats, "cache_misses"):
                total += sum(stats.cache_misses.values())
    return total
