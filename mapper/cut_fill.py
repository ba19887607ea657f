"""Cut-and-fill packing: split fragments further so the tiles fill to the lower bound.

A block may always be cut again: cutting its columns gives outputs that are
concatenated, cutting its rows gives one more partial sum. With cuts allowed the
lower bound ceil(cells / cells per tile) is always reachable in principle (one-row
strips pack perfectly); this heuristic gets there with few cuts. Fragments that span
a whole tile height stream left to right, cut only at tile edges; those that span a
whole width stack top to bottom; the rest go best-fit into the free rectangles left
over (guillotine splits), cut to the rectangle that takes the largest piece.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Piece:
    """Part of a fragment: rows/cols in the layer's array matrix, tile slot and offset."""

    layer: str
    rows: tuple
    cols: tuple
    slot: int
    offset: tuple


def cut_fill(fragments: list, tile_rows: int, tile_cols: int) -> tuple[list[Piece], int]:
    """Pieces covering every fragment exactly once, and the number of tile slots used."""
    free: list[list] = []  # [slot, row, col, height, width]
    pieces: list[Piece] = []
    slots = 0

    def order(f):
        if f.height == tile_rows:
            return (0, f.id)
        if f.width == tile_cols:
            return (1, f.id)
        return (2, -f.cells, f.id)

    for fragment in sorted(fragments, key=order):
        todo = [(fragment.rows, fragment.cols)]
        while todo:
            rows, cols = todo.pop()
            height, width = rows[1] - rows[0], cols[1] - cols[0]
            choice = best_rectangle(free, height, width)
            if choice is None:
                free.append([slots, 0, 0, tile_rows, tile_cols])
                slots += 1
                choice = len(free) - 1
            slot, r, c, fh, fw = free.pop(choice)
            ph, pw = min(height, fh), min(width, fw)
            pieces.append(Piece(fragment.layer, (rows[0], rows[0] + ph), (cols[0], cols[0] + pw), slot, (r, c)))
            if pw < width:
                todo.append(((rows[0], rows[0] + ph), (cols[0] + pw, cols[1])))
            if ph < height:
                todo.append(((rows[0] + ph, rows[1]), cols))
            # Guillotine split of the free rectangle: the strip beside the piece, then below it.
            if fw > pw:
                free.append([slot, r, c + pw, ph, fw - pw])
            if fh > ph:
                free.append([slot, r + ph, c, fh - ph, fw])
    return pieces, slots


def best_rectangle(free: list, height: int, width: int):
    """Index of the free rectangle to use: whole fit with least waste, else largest piece."""
    best, best_key = None, None
    for index, (_, _, _, fh, fw) in enumerate(free):
        whole = fh >= height and fw >= width
        piece = min(height, fh) * min(width, fw)
        # Prefer a whole fit (least leftover area), then the biggest piece, then earliest.
        key = (0, fh * fw - height * width, index) if whole else (1, -piece, index)
        if best_key is None or key < best_key:
            best, best_key = index, key
    return best
