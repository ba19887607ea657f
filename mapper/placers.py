"""One interface for every placer: `place(blocks, layers, spec, placer=...)` runs the
named one and returns its `Placement` (mapper/place.py). Above both placers, so that
neither imports the other."""

from __future__ import annotations

from analogc.errors import AnalogcError
from analogc.mapper.cpsat_place import place_cpsat
from analogc.mapper.place import Placement, place_first_fit

PLACERS = {"cpsat": place_cpsat, "greedy": place_first_fit}


def place(blocks: list, layers: list, spec, placer: str = "cpsat", **options) -> Placement:
    """Run the named placer; every placer has this signature."""
    if placer not in PLACERS:
        raise AnalogcError(f"unknown placer {placer!r}: choose from {', '.join(PLACERS)}")
    return PLACERS[placer](blocks, layers, spec, **options)
