"""Wall time of a command's phases (loading, programming the devices, inference, ...),
printed by `-v` so that a slow command says where its time went."""

from __future__ import annotations

import time
from contextlib import contextmanager

from analogc.console import console_for


class Phases:
    """`with phases("load program"): ...` records how long the block took."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def add(self, name: str, seconds: float) -> None:
        """A phase timed elsewhere (e.g. the chip's own inference time)."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def line(self) -> str:
        return "timings: " + ", ".join(f"{name} {seconds:.3f} s" for name, seconds in self.seconds.items())


def report_phases(args, phases: Phases) -> None:
    """With -v, the phases' timings as one line (on stderr when --json owns stdout)."""
    if getattr(args, "verbose", False):
        console_for(args).print(phases.line(), markup=False)
