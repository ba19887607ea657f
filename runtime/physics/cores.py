"""Whether a large compiled kernel call runs on several cores or on one, chosen at run
time from what is free and from what was measured to be faster.

Kernels built twice, serial and parallel (`numba_cache.renamed`), give the same bits
either way (each output is computed alone, the noise is counter-keyed), so the choice
is only about speed. On the idle 2-core bench machine the conv DAC ran about 1.9x
faster on both cores; with the other core busy, numba's OpenMP threads waited on their
descheduled peer and the parallel call ran slower than the serial one. A load average
cannot tell the two apart: it counts this process's own threads and lags by a minute.

So the cores that other processes used lately are read from the machine's counters
(`OthersLoad`: /proc/stat's busy time less this process's own, over the last 0.2 s),
and a parallel call gets the usable cores (os.sched_getaffinity, at most numba's pool)
they leave; with one left, it runs serial. That does not say whether a kernel gains
from a second core, so `CoreChoice` also measures. Each kind of call (a key: the
kernel and its shape without the batch size; times are per value) runs serial, then
parallel; the first call of each is a warm-up (compilation, first-touch page faults)
and is not counted. From then on the kind runs the way that took less time per value
(the chosen way's time smoothed over its calls) and tries the other way at its 16th
call, then, while such tries confirm the choice, after 32, 64 and at most `MAX_GAP`
calls: a change is noticed, and a steady machine pays for few slow tries.
"""

from __future__ import annotations

import os
import time

from analogc.runtime.physics.counter_rng import HAVE_NUMBA

if HAVE_NUMBA:
    import numba

EXPLORE_EVERY = 16  # the 16th call of a kind runs the way its timings did not pick
MAX_GAP = 128  # and, while such tries confirm the choice, ever fewer calls: at most 1 in 128
SMOOTHING = 0.5  # the chosen way's cost: this much of the old, the rest the latest call's


def usable_cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # platforms without affinity (macOS)
        return os.cpu_count() or 1


class OthersLoad:
    """How many cores other processes kept busy lately: the machine's busy CPU time
    (/proc/stat: user, nice, system, irq, softirq and steal) less this process's own
    (os.times, all its threads), over windows of at least `WINDOW` seconds; the value of
    the last whole window, so it lags by up to two. None where /proc/stat is missing."""

    WINDOW = 0.2  # seconds: 40 ticks of 10 ms on 2 cores

    def __init__(self, clock=time.perf_counter, stat_path: str = "/proc/stat", own_seconds=lambda: sum(os.times()[:2])):
        self.clock, self.stat_path, self.own_seconds = clock, stat_path, own_seconds
        self.sample = None  # (wall, machine busy s, own busy s) at the window's start
        self.value = None

    def busy_seconds(self) -> float | None:
        try:
            with open(self.stat_path) as stat:
                fields = stat.readline().split()
            ticks = os.sysconf("SC_CLK_TCK")
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
        except (OSError, ValueError, AttributeError):
            return None
        return (user + nice + system + irq + softirq + steal) / ticks

    def cores(self) -> float | None:
        now = self.clock()
        if self.sample is None or now - self.sample[0] >= self.WINDOW:
            busy, own = self.busy_seconds(), self.own_seconds()
            if busy is None:
                return None
            if self.sample is not None:
                wall, busy0, own0 = self.sample
                self.value = max(0.0, (busy - busy0) - (own - own0)) / (now - wall)
            self.sample = (now, busy, own)
        return self.value


LOAD = OthersLoad()


def parallel_threads() -> int:
    """The threads a parallel call gets: numba's pool, capped by the usable CPUs less
    those other processes kept busy lately (rounded; 1 means run serial)."""
    if not HAVE_NUMBA:
        return 1
    others = LOAD.cores() or 0.0
    return max(1, min(numba.config.NUMBA_NUM_THREADS, usable_cores() - round(others)))


class CoreChoice:
    """Per kind of call: the calls each way, each way's latest seconds per value, and
    when to try the way it did not pick again."""

    def __init__(self, explore_every: int = EXPLORE_EVERY, clock=time.perf_counter):
        self.explore_every = explore_every
        self.clock = clock
        self.kinds: dict = {}  # key -> `kind`

    def kind(self, key) -> dict:
        """A kind's calls each way ("seen"), each way's latest seconds per value ("cost",
        None until timed), and its calls since it last tried the other way ("since")
        against the gap to the next try ("gap")."""
        return self.kinds.setdefault(key, {"seen": [0, 0], "cost": [None, None], "since": 0, "gap": self.explore_every})

    def parallel_next(self, key) -> bool:
        """Whether the next call of this kind runs in parallel."""
        kind = self.kind(key)
        serial, parallel = kind["cost"]
        if serial is None:
            return kind["seen"][0] > kind["seen"][1]  # serial, then parallel, until both are timed
        if parallel is None:
            return True
        return (parallel < serial) != (kind["since"] + 1 >= kind["gap"])

    def record(self, key, parallel: bool, seconds: float, values: int) -> None:
        """One call's time; a way's first call (its warm-up) is not counted. The chosen
        way's cost is smoothed (one slow call, the other process waking for a moment,
        does not flip the choice); a try's replaces the stale one. A try of the
        other way that confirms the choice doubles the gap to the next try (up to
        MAX_GAP: a steady machine pays for few slow tries); one that changes it
        restarts the gap at `explore_every`."""
        kind = self.kind(key)
        serial, other = kind["cost"]
        trying = serial is not None and other is not None and parallel != (other < serial)
        kind["seen"][parallel] += 1
        if kind["seen"][parallel] > 1:
            cost, last = seconds / max(values, 1), kind["cost"][parallel]
            kind["cost"][parallel] = cost if trying or last is None else SMOOTHING * last + (1 - SMOOTHING) * cost
        if not trying:
            kind["since"] += 1
            return
        serial, other = kind["cost"]
        confirmed = parallel != (other < serial)
        kind["gap"] = min(2 * kind["gap"], MAX_GAP) if confirmed else self.explore_every
        kind["since"] = 0

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
