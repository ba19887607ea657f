"""Copy counts of `--replicate throughput` against a brute force over every copy vector,
and the packings of replicated plans against their own invariants."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from analogc.errors import AnalogcError
from analogc.mapper.partition import Block
from analogc.mapper.replicate import LayerDemand, bottleneck, check_mode, layer_tiles, step_values, throughput_copies
from analogc.mapper.replicate_place import copied_blocks, diagonal_packing
from analogc.runtime.cost.dataflow import share_lines


def brute_force(demands, tile_rows, tile_cols, usable):
    """(bottleneck, tiles) of the best copy vector, trying every one; None if none fits.
    Tiles of a copy count are counted from scratch: one tile per group of copies of a
    block with no two sharing a row or column, i.e. rows and columns both fit."""
    best = None
    for copies in itertools.product(*(range(1, d.reads + 1) for d in demands)):
        tiles = 0
        for d, c in zip(demands, copies):
            for h, w in d.blocks:
                per_tile = max(q for q in range(1, c + 1) if q * h <= tile_rows and q * w <= tile_cols) if h <= tile_rows and w <= tile_cols else 0
                tiles += math.ceil(c / per_tile)
        if tiles > usable:
            continue
        key = (max(math.ceil(d.reads / c) for d, c in zip(demands, copies)), tiles)
        best = key if best is None or key < best else best
    return best


def random_instance(rng):
    tile_rows, tile_cols = int(rng.integers(4, 20)), int(rng.integers(4, 20))
    demands = []
    for i in range(int(rng.integers(1, 4))):
        blocks = tuple((int(rng.integers(1, tile_rows + 1)), int(rng.integers(1, tile_cols + 1))) for _ in range(int(rng.integers(1, 3))))
        demands.append(LayerDemand(f"layer{i}", int(rng.integers(1, 9)), blocks))
    usable = int(rng.integers(1, 12))
    return demands, tile_rows, tile_cols, usable


@pytest.mark.parametrize("seed", range(60))
def test_throughput_copies_agree_with_brute_force(seed):
    demands, tile_rows, tile_cols, usable = random_instance(np.random.default_rng(seed))
    expected = brute_force(demands, tile_rows, tile_cols, usable)
    copies = throughput_copies(demands, tile_rows, tile_cols, usable)
    if expected is None:
        assert copies is None
        return
    assert copies is not None
    tiles = sum(layer_tiles(d, copies[d.name], tile_rows, tile_cols) for d in demands)
    assert (bottleneck(demands, copies), tiles) == expected
    assert all(1 <= copies[d.name] <= d.reads for d in demands)


def test_hand_instance():
    # 12 reads and 3 reads; a 2x2 block fits 4 copies per 8x8 tile diagonal; 2 tiles.
    demands = [LayerDemand("a", 12, ((2, 2),)), LayerDemand("b", 3, ((8, 8),))]
    copies = throughput_copies(demands, 8, 8, 2)
    # b needs its own tile per copy, so it keeps 1; a gets 4 copies in the other tile:
    # bottleneck max(ceil(12/4), 3) = 3; b with 2 copies would leave no tile for a.
    assert copies == {"a": 4, "b": 1}
    assert throughput_copies(demands, 8, 8, 1) is None


def test_step_values_are_every_quotient():
    for reads in range(1, 200):
        assert step_values(reads) == {math.ceil(reads / c) for c in range(1, reads + 1)}


def test_diagonal_packing_shares_no_lines():
    blocks = [Block(0, "a", (0, 5), (0, 3)), Block(1, "a", (5, 9), (0, 3)), Block(2, "b", (0, 2), (0, 7))]
    layers = [type("L", (), {"name": n})() for n in ("a", "b")]
    copied = copied_blocks(blocks, layers, {"a": 5, "b": 3})
    assert len(copied) == 2 * 5 + 3 and [b.id for b in copied] == list(range(13))
    groups, offset = diagonal_packing(copied, 16, 16)
    by_id = {b.id: b for b in copied}
    for group in groups:
        rects = [(offset[i][0], offset[i][1], offset[i][0] + by_id[i].height, offset[i][1] + by_id[i].width) for i in group]
        assert all(r[2] <= 16 and r[3] <= 16 for r in rects)
        assert not any(share_lines(a, b) for i, a in enumerate(rects) for b in rects[i + 1 :])
    assert sorted(i for g in groups for i in g) == list(range(13))


def test_unknown_mode_is_refused():
    with pytest.raises(AnalogcError, match="--replicate must be one of"):
        check_mode("fast")
