"""Placement of tile blocks on the grid: what every placer returns, and the first-fit placer.

`placers.place(blocks, layers, spec, placer=...)` returns a `Placement`: for each block a tile
[r, c] and an offset [row, col] inside it, plus what the placer knows about its answer
(status, objective, bound, seconds). CP-SAT (`cpsat_place.py`) is the default; the first-fit placer is deterministic: blocks in
layer order, each into the first usable tile (row-major, faulty tiles skipped) and the
first free corner position (smallest row, then column) where its rectangle fits.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from analogc.errors import AnalogcError
from analogc.mapper.traffic import traffic


@dataclass
class Placement:
    """Where every block sits, and the placer's account of how good that is."""

    tile: dict  # block id -> (row, col) on the grid
    offset: dict  # block id -> (row, col) inside the tile
    placer: str
    status: str
    objective: float
    best_bound: float
    seconds: float
    extra: dict = field(default_factory=dict)
    blocks: list | None = None  # set when the placer cut blocks further (ids renumbered)

    @property
    def tiles_used(self) -> int:
        return len(set(self.tile.values()))


def lower_bound_tiles(blocks: list, spec) -> int:
    """ceil(cells needed / cells per tile): no placement can use fewer tiles."""
    return math.ceil(sum(b.cells for b in blocks) / spec.cells_per_tile)


def place_first_fit(blocks: list, layers: list, spec, **_options) -> Placement:
    """Deterministic first-fit packing, tiles in row-major order; too big is an error."""
    start = time.perf_counter()
    usable = usable_or_error(spec)
    slot_of, offset, needed = first_fit_pack(blocks, spec.chip.tile_rows, spec.chip.tile_cols)
    check_fits(needed, blocks, spec, usable)
    tile = {bid: usable[slot] for bid, slot in slot_of.items()}
    cost = traffic(blocks, tile, layers)
    return Placement(
        tile,
        offset,
        placer="greedy",
        status="HEURISTIC",
        objective=float(needed),
        best_bound=float(lower_bound_tiles(blocks, spec)),
        seconds=time.perf_counter() - start,
        extra={"traffic": cost, "traffic_greedy": cost},
    )


def usable_or_error(spec) -> list:
    usable = spec.usable_tiles()
    if not usable:
        raise AnalogcError(f"target {spec.name}: every tile is marked faulty, nothing can be placed")
    return usable


def check_fits(needed: int, blocks: list, spec, usable: list) -> None:
    """Error naming tiles needed (and the lower bound) against usable tiles on the grid."""
    if needed > len(usable):
        bound = lower_bound_tiles(blocks, spec)
        need = f"at least {bound}" if needed == bound else f"{needed} (lower bound {bound})"
        raise AnalogcError(
            f"model does not fit target {spec.name}: it needs {need} tiles of "
            f"{spec.chip.tile_rows}x{spec.chip.tile_cols} cells, the grid has {len(usable)} usable tiles"
        )


def first_fit_pack(blocks: list, tile_rows: int, tile_cols: int) -> tuple[dict, dict, int]:
    """Blocks in the given order into the first tile slot with a free corner position.

    Returns (slot index per block id, offset per block id, number of slots opened).
    """
    contents: list[list] = []  # per opened slot: rectangles (r0, c0, r1, c1)
    free_cells: list[int] = []  # per opened slot: cells not yet covered
    open_slots: list[int] = []  # slots with any free cell, in order (full ones never fit again)
    slot_of, offset = {}, {}
    for block in blocks:
        cells = block.height * block.width
        for slot in open_slots:
            if free_cells[slot] < cells:
                continue  # cannot fit: no need to look for a corner
            spot = free_spot(contents[slot], block.height, block.width, tile_rows, tile_cols)
            if spot is not None:
                break
        else:
            contents.append([])
            free_cells.append(tile_rows * tile_cols)
            open_slots.append(len(contents) - 1)
            slot, spot = len(contents) - 1, (0, 0)
        rects = contents[slot]
        rects.append((spot[0], spot[1], spot[0] + block.height, spot[1] + block.width))
        free_cells[slot] -= cells
        if free_cells[slot] == 0:
            open_slots.remove(slot)
        slot_of[block.id], offset[block.id] = slot, spot
    return slot_of, offset, len(contents)


def free_spot(rects: list, height: int, width: int, tile_rows: int, tile_cols: int):
    """Smallest (row, col) corner position where a height x width rectangle fits."""
    candidates = {(0, 0)}
    for r0, c0, r1, c1 in rects:
        candidates.update({(r1, c0), (r0, c1), (r1, 0), (0, c1)})
    for row, col in sorted(candidates):
        if row + height > tile_rows or col + width > tile_cols:
            continue
        if all(row >= r1 or row + height <= r0 or col >= c1 or col + width <= c0 for r0, c0, r1, c1 in rects):
            return row, col
    return None
