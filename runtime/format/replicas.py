"""Replicated layers at run time (a program compiled with `--replicate`).

A layer entry with `copies` > 1 has every block once per copy (block field `copy`),
each copy programmed on its own devices. `replicate` says how the copies are read:
- "throughput": the copies read different positions of an example (the rows of a
  sequence or the patches of a convolution): position p goes to copy p mod copies, so
  c copies read c positions per step; every row is read exactly once;
- "accuracy": every copy reads every row, and the layer's output is the mean of the
  copies' digitised outputs, which averages programming error, read noise and drift.
"""

from __future__ import annotations

import numpy as np

from analogc.errors import AnalogcError

MODES = ("throughput", "accuracy")


def copies_of(layer: dict) -> int:
    return int(layer.get("copies", 1))


def mode_of(layer: dict) -> str:
    """"throughput", "accuracy", or "none" for a layer with one copy."""
    return layer.get("replicate", "none") if copies_of(layer) > 1 else "none"


def positions_per_example(rows: int, lead: tuple) -> int:
    """Reads per example of a layer input of `rows` flat rows whose leading dims are
    `lead` (the batch first): 1 for a batch of vectors, T for [B, T, K]."""
    return max(1, rows // lead[0]) if lead and lead[0] else 1


def position_rows(rows: int, positions: int, copies: int) -> list[np.ndarray]:
    """Throughput split: flat row i is position i mod `positions` of its example, and
    position p is read by copy p mod `copies`. Row indices per copy, ascending."""
    if positions > 0 and rows % positions == 0:
        # Whole examples: copy c reads positions c, c + copies, ... of every example
        # (O(rows) in all, where a mask per copy would be O(rows · copies)).
        starts = np.arange(0, rows, positions)
        return [np.add.outer(starts, np.arange(c, positions, copies)).ravel() for c in range(copies)]
    copy = (np.arange(rows) % positions) % copies
    return [np.flatnonzero(copy == c) for c in range(copies)]


def positions_of_copy(positions: int, copies: int, copy: int) -> int:
    """How many of an example's `positions` copy number `copy` reads (throughput)."""
    return positions // copies + int(copy < positions % copies)


def rounds(positions: int, copies: int) -> int:
    """Sequential read rounds per example of a throughput layer: ceil(positions / copies)."""
    return -(-positions // copies)


def check_copies(meta: dict, fail) -> None:
    """Copies are whole: each copy of a layer holds exactly copy 0's blocks (rows, cols)."""
    is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    for layer in meta["layers"]:
        copies = layer.get("copies", 1)
        if not is_int(copies) or not 1 <= copies <= 4096:
            fail(f"layer {layer['name']!r} has a bad copy count {str(copies)[:30]} (an integer in 1..4096)")
        if copies > 1 and layer.get("replicate") not in MODES:
            fail(f"layer {layer['name']!r} has {copies} copies but replicate {str(layer.get('replicate'))[:30]!r} (throughput or accuracy)")
        shapes: dict[int, list] = {}
        for block in meta["blocks"]:
            if block["layer"] == layer["name"]:
                copy = block.get("copy", 0)
                if not is_int(copy) or not 0 <= copy < copies:
                    fail(f"block {block['id']} is copy {str(copy)[:30]} of layer {layer['name']!r}, which has {copies}")
                shapes.setdefault(copy, []).append((tuple(block["rows"]), tuple(block["cols"])))
        first = sorted(shapes.get(0, []))
        if any(sorted(shapes.get(c, [])) != first for c in range(1, copies)):
            fail(f"the copies of layer {layer['name']!r} do not hold the same blocks")


def refuse_training(program, origin: str) -> None:
    """In-situ training updates one set of devices per layer; copies would drift apart."""
    replicated = [layer for layer in program.layers if copies_of(layer) > 1]
    if replicated:
        layer = replicated[0]
        raise AnalogcError(
            f"{origin}: training a replicated program is not supported (layer {layer['name']!r} has "
            f"{copies_of(layer)} {mode_of(layer)} copies); compile with --replicate none to train"
        )
