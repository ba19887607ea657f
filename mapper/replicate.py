"""How many copies of each layer a plan holds (`compile --replicate`).

- `throughput`: a layer that needs T tile reads per example (positions of a sequence or
  of a convolution) and has c copies reads c positions in the same step, so it needs
  ceil(T / c) steps. The copy counts minimise the pipeline's bottleneck, the largest of
  those step counts over the layers, then the tiles used, within the usable tiles.
  The layout this counts on: a tile holds copies of one block of one layer on its
  diagonal (copy q at offset (q·h, q·w)), so no two share a row driver or an ADC
  column and all read in the same step; a block of h x w cells fits
  min(tile_rows // h, tile_cols // w) copies per tile, and a copy count c takes
  ceil(c / that) tiles per block. Nothing in a tile is ever serialised.
- `accuracy`: k copies of every layer, each programmed on its own devices, every read
  taken on all k and averaged. k is the largest number up to `MAX_ACCURACY_COPIES`
  for which k copies of every block fit the usable tiles: on the diagonal layout when
  it fits (copies read in parallel), else packed first-fit (copies sharing a tile's
  rows or columns then read in turn, which the cost model counts).

The throughput search is exact without a solver: for a bottleneck z, layer i needs at
least ceil(T_i / z) copies, and tiles only grow with copies, so z is reachable iff
those least copies fit. The reachable set is upward closed in z, so a binary search
over the values ceil(T / c) can take finds the least reachable z, and its least copies
are the fewest tiles that reach it. tests/mapper/test_replicate.py checks this against
a brute force over every copy vector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analogc.errors import AnalogcError

MODES = ("none", "throughput", "accuracy")
MAX_ACCURACY_COPIES = 16  # averaging gains sqrt(k); past 16 copies (4x) the reads' energy grows faster than it helps


@dataclass(frozen=True)
class LayerDemand:
    """One layer as the copy choice sees it: reads per example and its blocks' sizes."""

    name: str
    reads: int
    blocks: tuple  # ((height, width), ...) of one copy's blocks


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise AnalogcError(f"--replicate must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def diagonal_capacity(height: int, width: int, tile_rows: int, tile_cols: int) -> int:
    """Copies of one h x w block that a tile holds with no two sharing a row or column."""
    return min(tile_rows // height, tile_cols // width)


def layer_tiles(demand: LayerDemand, copies: int, tile_rows: int, tile_cols: int) -> int:
    """Tiles that `copies` copies of the layer take on the diagonal layout."""
    return sum(math.ceil(copies / diagonal_capacity(h, w, tile_rows, tile_cols)) for h, w in demand.blocks)


def bottleneck(demands: list, copies: dict) -> int:
    """Sequential read steps per example of the slowest layer."""
    return max((math.ceil(d.reads / copies[d.name]) for d in demands), default=0)


def step_values(reads: int) -> set:
    """Every value ceil(reads / c) takes for c = 1..reads (O(sqrt(reads)) of them)."""
    values, c = set(), 1
    while c <= reads:
        z = math.ceil(reads / c)
        values.add(z)
        c = math.ceil(reads / (z - 1)) if z > 1 else reads + 1  # next c with a smaller quotient
        c = max(c, 1)
    return values


def least_copies(demands: list, z: int) -> dict:
    return {d.name: math.ceil(d.reads / z) for d in demands}


def throughput_copies(demands: list, tile_rows: int, tile_cols: int, usable: int) -> dict | None:
    """Copy counts per layer with the smallest bottleneck, then the fewest tiles, on the
    diagonal layout; None when even one copy of each block per tile does not fit."""

    def fits(z: int) -> bool:
        copies = least_copies(demands, z)
        return sum(layer_tiles(d, copies[d.name], tile_rows, tile_cols) for d in demands) <= usable

    candidates = sorted(set().union(*(step_values(d.reads) for d in demands))) if demands else [1]
    if not fits(candidates[-1]):
        return None
    lo, hi = 0, len(candidates) - 1  # candidates[hi] fits; find the first that does
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(candidates[mid]):
            hi = mid
        else:
            lo = mid + 1
    return least_copies(demands, candidates[lo])


def demands_of(layers: list, blocks: list, reads: dict) -> list[LayerDemand]:
    """The copy choice's view of the layers: reads per example and one copy's blocks."""
    return [LayerDemand(d.name, max(1, int(reads.get(d.name, 1))), tuple((b.height, b.width) for b in blocks if b.layer == d.name)) for d in layers]
