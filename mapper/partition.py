"""Split each Dense layer's array matrix into tile-sized blocks.

The array matrix of a layer is its K weight rows, plus one bias row driven with a
constant 1 when the spec puts the bias on the array. Blocks that split the rows
produce partial sums added digitally; blocks that split the columns are concatenated.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    """Rows [r0, r1) and columns [c0, c1) of one layer's array matrix; `copy` numbers
    the layer's replica that holds it (0 unless the plan replicates the layer)."""

    id: int
    layer: str
    rows: tuple[int, int]
    cols: tuple[int, int]
    copy: int = 0

    @property
    def height(self) -> int:
        return self.rows[1] - self.rows[0]

    @property
    def width(self) -> int:
        return self.cols[1] - self.cols[0]

    @property
    def cells(self) -> int:
        return self.height * self.width


def bias_on_array(has_bias: bool, spec) -> bool:
    return has_bias and spec.chip.bias == "analog"


def array_shape(dense, spec) -> tuple[int, int]:
    """(rows, cols) of cells the layer occupies."""
    k, n = dense.shape
    return k + int(bias_on_array(dense.bias is not None, spec)), n


def partition(layers: list, spec) -> list[Block]:
    """Row-major blocks of at most tile_rows x tile_cols per layer, in layer order."""
    blocks = []
    tile_rows, tile_cols = spec.chip.tile_rows, spec.chip.tile_cols
    for dense in layers:
        rows, cols = array_shape(dense, spec)
        for r0 in range(0, rows, tile_rows):
            for c0 in range(0, cols, tile_cols):
                rr = (r0, min(r0 + tile_rows, rows))
                cc = (c0, min(c0 + tile_cols, cols))
                blocks.append(Block(len(blocks), dense.name, rr, cc))
    return blocks
