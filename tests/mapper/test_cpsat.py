"""CP-SAT placement: exact on small instances (brute force agrees), valid and no worse
than first fit on larger ones, deterministic."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from analogc.mapper import compile_model
from analogc.mapper.cpsat_joint import solve_joint
from analogc.mapper.cpsat_place import conflicts_of, make_solver
from analogc.mapper.partition import Block
from analogc.mapper.traffic import hops
from analogc.runtime.format.program import load_program, program_identity, save_program
from analogc.runtime.format.spec import load_spec, load_target
from tests.mapper.placement_checks import check_placement
from tests.mapper.test_place import mlp


def small_spec(tmp_path, faulty="[]"):
    path = tmp_path / "small.toml"
    path.write_text(f"[chip]\ngrid_rows = 2\ngrid_cols = 2\ntile_rows = 4\ntile_cols = 4\nfaulty_tiles = {faulty}\n")
    return load_spec(path)


def best_packing(blocks: list, tile: int) -> int | None:
    """Fewest serialised pairs over every way to pack `blocks` in one tile; None if none fits."""
    best = None
    ranges = [[(r, c) for r in range(tile - b.height + 1) for c in range(tile - b.width + 1)] for b in blocks]
    for offsets in itertools.product(*ranges):
        rects = [(r, c, r + b.height, c + b.width) for (r, c), b in zip(offsets, blocks)]
        cells = np.zeros((tile, tile), dtype=int)
        for r0, c0, r1, c1 in rects:
            cells[r0:r1, c0:c1] += 1
        if cells.max() <= 1:
            conflicts = conflicts_of(rects)
            best = conflicts if best is None else min(best, conflicts)
    return best


def brute_force(blocks, flows, usable, tile):
    """Lexicographic optimum (tiles, traffic, serialised pairs) over every assignment."""
    packable = {}
    for k in range(1, len(blocks) + 1):
        for subset in itertools.combinations(range(len(blocks)), k):
            packable[subset] = best_packing([blocks[i] for i in subset], tile)
    best = None
    for assignment in itertools.product(range(len(usable)), repeat=len(blocks)):
        groups = {}
        for i, p in enumerate(assignment):
            groups.setdefault(p, []).append(i)
        conflicts = [packable[tuple(g)] for g in groups.values()]
        if any(c is None for c in conflicts):
            continue
        cost = sum(e * hops(usable[assignment[a]], usable[assignment[b]]) for a, b, e in flows)
        key = (len(groups), cost, sum(conflicts))
        best = key if best is None else min(best, key)
    return best


def joint_key(result, blocks, flows, usable):
    where = {i: result["positions"][t] for t, tile in enumerate(result["tiles"]) for i, _ in tile}
    conflicts = sum(
        conflicts_of([(o[0], o[1], o[0] + blocks[i].height, o[1] + blocks[i].width) for i, o in tile]) for tile in result["tiles"]
    )
    return (len(result["tiles"]), sum(e * hops(where[a], where[b]) for a, b, e in flows), conflicts)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("faulty", ["[]", "[[0, 1]]"])
def test_joint_model_matches_exhaustive_search(tmp_path, seed, faulty):
    rng = np.random.default_rng(seed)
    spec = small_spec(tmp_path, faulty)
    usable = spec.usable_tiles()
    n = int(rng.integers(2, 5))
    blocks = []
    for i in range(n):
        h, w = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        blocks.append(Block(i, "L", (0, h), (0, w)))
    flows = [(a, b, int(rng.integers(1, 6))) for a in range(n) for b in range(a + 1, n) if rng.random() < 0.6]
    expected = brute_force(blocks, flows, usable, 4)
    result = solve_joint(blocks, flows, usable, spec, make_solver(5.0, 0))
    assert result is not None and result["optimal"]
    assert joint_key(result, blocks, flows, usable) == expected


@pytest.mark.parametrize("widths", [[70, 90, 10], [10, 20, 30, 5], [200, 130, 64, 63, 1], [5, 3], [300, 10, 300]])
def test_cpsat_plans_are_valid_and_beat_first_fit(tmp_path, widths):
    model = mlp(tmp_path / "m.onnx", widths)
    spec = load_target("tiny")
    cpsat = compile_model(model, spec, placer="cpsat", time_limit=2)
    greedy = compile_model(model, spec, placer="greedy")
    check_placement(cpsat)
    p, g = cpsat.meta["placement"], greedy.meta["placement"]
    assert p["tiles_used"] <= g["tiles_used"]
    assert p["traffic_greedy"] == g["traffic"]
    if p["tiles_used"] == g["tiles_used"]:
        assert p["traffic"] <= g["traffic"]
    assert p["solver"]["status"] in ("OPTIMAL", "FEASIBLE")
    assert (p["solver"]["status"] == "OPTIMAL") == (p["tiles_used"] == p["lower_bound_tiles"])


def test_cut_fill_reaches_lower_bound_where_uncut_cannot(tmp_path):
    # 71 x 90 then 90 x 10 on 64 x 64 tiles: uncut blocks need 3 tiles, 2 hold the cells.
    program = compile_model(mlp(tmp_path / "m.onnx", [70, 90, 10]), load_target("tiny"), time_limit=2)
    placement = program.meta["placement"]
    assert placement["lower_bound_tiles"] == 2 and placement["tiles_used"] == 2
    assert placement["details"]["uncut_packing_tiles"] == 3
    check_placement(program)


def test_same_inputs_same_plan(tmp_path):
    model = mlp(tmp_path / "m.onnx", [150, 90, 40, 70, 10])
    first = compile_model(model, load_target("tiny"), time_limit=2, seed=3)
    second = compile_model(model, load_target("tiny"), time_limit=2, seed=3)
    assert first.blocks == second.blocks
    assert first.meta["placement"]["traffic"] == second.meta["placement"]["traffic"]
    # Saved, they are the same program (a training checkpoint of one resumes on the
    # other); only the solver's wall-clock seconds may differ in program.json.
    for program, name, seconds in ((first, "a.atp", 0.5), (second, "b.atp", 99.0)):
        program.meta["placement"]["solver"]["seconds"] = seconds  # a slow machine's solve
        save_program(program, tmp_path / name)
    a, b = load_program(tmp_path / "a.atp"), load_program(tmp_path / "b.atp")
    assert program_identity(a.meta) == program_identity(b.meta)
    a.meta["placement"]["solver"].pop("seconds"), b.meta["placement"]["solver"].pop("seconds")
    a.meta.pop("program_sha256"), b.meta.pop("program_sha256")
    assert a.meta == b.meta


def test_faulty_tiles_never_used_by_cpsat(tmp_path):
    path = tmp_path / "faulty.toml"
    path.write_text("[chip]\ngrid_rows = 3\ngrid_cols = 3\ntile_rows = 64\ntile_cols = 64\nfaulty_tiles = [[0, 0], [1, 1], [2, 0]]\n")
    program = compile_model(mlp(tmp_path / "m.onnx", [120, 100, 20]), load_spec(path), time_limit=2)
    check_placement(program)
    assert not {tuple(b["tile"]) for b in program.blocks} & {(0, 0), (1, 1), (2, 0)}


def test_ideal_run_still_matches_after_cuts(tmp_path):
    import onnxruntime as ort

    from analogc.runtime.chip.chip import Chip

    model = mlp(tmp_path / "m.onnx", [70, 90, 10])
    program = compile_model(model, load_target("tiny"), time_limit=2)
    assert program.meta["placement"]["details"]["blocks_cut"] > 0
    x = np.random.default_rng(0).normal(size=(16, 70)).astype(np.float32)
    expected = ort.InferenceSession(str(model)).run(None, {"x": x})[0]
    got = Chip(program, ideal=True).run({"x": x})
    np.testing.assert_allclose(list(got.values())[0], expected, rtol=1e-4, atol=1e-4)

