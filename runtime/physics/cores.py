"""Whether a large compiled kernel call runs on every usable core or on one: chosen by
timing both, since the answer depends on what else the machine runs.

Kernels built twice, serial and parallel (`numba_cache.renamed`), give the same bits
either way (each output is computed alone, the noise is counter-keyed), so the choice
is only about speed. On the idle 2-core bench machine the conv DAC ran about 1.9x
faster on both cores; with the other core busy, numba's OpenMP threads waited on their
descheduled peer and the parallel call ran slower than the serial one. A load average
cannot tell the two apart: it counts this process's own threads and lags by a minute.

So `CoreChoice` measures. Each kind of call (a key: the kernel and its shape) runs
serial, then parallel; the first call of each is a warm-up (compilation, first-touch
page faults) and is not counted. From then on the kind runs the way that took less
time per value at its latest timing, and the other way every `EXPLORE_EVERY`-th call,
so a change of load is noticed within that many calls. The parallel way uses numba's
pool, capped by the CPUs this process may run on (os.sched_getaffinity); with one
usable core every call is serial.
"""

from __future__ import annotations

import os
import time

from analogc.runtime.physics.counter_rng import HAVE_NUMBA

if HAVE_NUMBA:
    import numba

EXPLORE_EVERY = 16  # every 16th call of a kind runs the way its timings did not pick


def usable_cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # platforms without affinity (macOS)
        return os.cpu_count() or 1


def parallel_threads() -> int:
    """The threads a parallel call gets: numba's pool, capped by the usable CPUs."""
    return min(numba.config.NUMBA_NUM_THREADS, usable_cores()) if HAVE_NUMBA else 1


class CoreChoice:
    """Per kind of call: its calls so far and the latest seconds per value of each way."""

    def __init__(self, explore_every: int = EXPLORE_EVERY, clock=time.perf_counter):
        self.explore_every = explore_every
        self.clock = clock
        self.kinds: dict = {}  # key -> `kind`

    def kind(self, key) -> dict:
        """A kind's calls so far, its calls each way, and each way's latest seconds per value."""
        return self.kinds.setdefault(key, {"calls": 0, "seen": [0, 0], "cost": [None, None]})

    def parallel_next(self, key) -> bool:
        """Whether the next call of this kind runs in parallel."""
        kind = self.kind(key)
        serial, parallel = kind["cost"]
        if serial is None:
            return kind["seen"][0] > kind["seen"][1]  # serial, then parallel, until both are timed
        if parallel is None:
            return True
        explore = kind["calls"] % self.explore_every == self.explore_every - 1
        return (parallel < serial) != explore

    def record(self, key, parallel: bool, seconds: float, values: int) -> None:
        """One call's time; a way's first call (its warm-up) is not counted."""
        kind = self.kind(key)
        kind["calls"] += 1
        kind["seen"][parallel] += 1
        if kind["seen"][parallel] > 1:
            kind["cost"][parallel] = seconds / max(values, 1)

    def run(self, key, values: int, serial, parallel, *args):
        """serial(*args) or parallel(*args) (the same result), whichever is faster now."""
        threads = parallel_threads()
        if threads < 2:
            return serial(*args)
        use_parallel = self.parallel_next(key)
        if use_parallel:
            numba.set_num_threads(threads)
        start = self.clock()
        result = (parallel if use_parallel else serial)(*args)
        self.record(key, use_parallel, self.clock() - start, values)
        return result


CHOICE = CoreChoice()  # the process's timings: the chip's kernels share them
