"""Partition: blocks tile each layer's array matrix exactly, at most one tile in size."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analogc.mapper.layer_graph import Dense
from analogc.mapper.partition import array_shape, partition
from analogc.runtime.format.spec import load_target


def dense(name, k, n, bias=True):
    rng = np.random.default_rng(0)
    return Dense(name, "x", "y", rng.normal(size=(k, n)).astype(np.float32), np.zeros(n, np.float32) if bias else None)


@pytest.mark.parametrize("k, n, bias", [(64, 64, False), (64, 64, True), (65, 10, False), (200, 130, True), (1, 1, True), (2049, 100, True)])
def test_blocks_cover_layer_once(k, n, bias):
    spec = load_target("tiny")
    layer = dense("L", k, n, bias)
    rows, cols = array_shape(layer, spec)
    assert rows == k + int(bias) and cols == n
    blocks = partition([layer], spec)
    cover = np.zeros((rows, cols), dtype=int)
    for block in blocks:
        assert 0 < block.height <= 64 and 0 < block.width <= 64
        cover[block.rows[0] : block.rows[1], block.cols[0] : block.cols[1]] += 1
    assert (cover == 1).all()
    assert len(blocks) == math.ceil(rows / 64) * math.ceil(cols / 64)


def test_digital_bias_takes_no_row(tmp_path):
    text = load_target("tiny").to_dict()
    path = tmp_path / "digital.toml"
    path.write_text("[chip]\ntile_rows = 64\ntile_cols = 64\nbias = \"digital\"\n")
    from analogc.runtime.format.spec import load_spec

    spec = load_spec(path)
    assert array_shape(dense("L", 64, 5), spec) == (64, 5)
    assert text["chip"]["bias"] == "analog"


def test_ids_are_sequential_in_layer_order():
    spec = load_target("tiny")
    blocks = partition([dense("a", 100, 100), dense("b", 30, 20)], spec)
    assert [b.id for b in blocks] == list(range(len(blocks)))
    assert [b.layer for b in blocks] == ["a"] * 4 + ["b"]
