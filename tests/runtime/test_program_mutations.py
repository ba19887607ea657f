"""Random edits of a tile program's JSON, saved with fresh checksums: loading, running
and planning end in success or one user error (exit 2), never an internal error."""

from __future__ import annotations

import copy
import random

import pytest

from analogc.mapper import compile_model
from analogc.runtime.format.program import Program, save_program
from analogc.runtime.format.spec import load_target
from tests.conftest import MODELS

VALUES = [None, -1, 0, 10**12, "x", [], {}, [1], 1.5, True, float("nan")]


def leaf_paths(obj, prefix=()):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from leaf_paths(value, prefix + (key,))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            yield from leaf_paths(value, prefix + (index,))
    else:
        yield prefix


@pytest.fixture(scope="module")
def program():
    return compile_model(MODELS / "digits_conv.onnx", load_target("tiny"), time_limit=1)


@pytest.mark.parametrize("seed", range(40))
def test_mutated_program_never_crashes(tmp_path, program, cli, seed):
    rng = random.Random(seed)
    paths = [p for p in leaf_paths(program.meta) if p[0] != "target"]
    meta = copy.deepcopy(program.meta)
    for _ in range(2):
        path = rng.choice(paths)
        node = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = rng.choice(VALUES)
    path = tmp_path / "mutant.atp"
    save_program(Program(meta, dict(program.arrays), dict(program.members)), path)
    for args in (["plan", path, "--json"], ["run", path, "--data", "digits", "--limit", "8"]):
        result = cli(*args)
        assert result.code in (0, 2), result.err
        assert "Traceback" not in result.err
