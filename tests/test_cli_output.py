"""What the commands print: -q gives the result lines only, -v adds per-phase timings,
piped text is not hard-wrapped, counts agree with their nouns, faulty tiles are listed,
a drift time below t0 is reported as raised, and a first run that compiles the kernels
says so."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from .conftest import MODELS

TINY_WITH_FAULTS = """
name = "tiny-faulty"
[chip]
grid_rows = 4
grid_cols = 4
tile_rows = 64
tile_cols = 64
faulty_tiles = [[0, 0], [2, 3]]
"""


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from analogc.cli import main

    path = tmp_path_factory.mktemp("output") / "digits.atp"
    assert main(["compile", str(MODELS / "digits_mlp.onnx"), "-o", str(path), "-q"]) == 0
    return path


def test_quiet_prints_only_the_result_lines(digits, cli, tmp_path):
    run = cli("run", digits, "--data", "digits", "--limit", "100", "-q")
    assert run.code == 0 and re.fullmatch(r"chip accuracy 0\.\d{4} \(onnxruntime 0\.\d{4}\)\n", run.out), run.out
    full = cli("run", digits, "--data", "digits", "--limit", "100", "--json")
    assert f"chip accuracy {json.loads(full.out)['accuracy']:.4f}" in run.out
    x = tmp_path / "x.npy"
    import numpy as np

    np.save(x, np.zeros((3, 64), np.float32))
    with_output = cli("run", digits, "--input", x, "--output", tmp_path / "y.npy", "-q")
    assert with_output.out.splitlines()[-1] == f"wrote {tmp_path / 'y.npy'}"
    train = cli("train", digits, "--data", "digits", "--limit", "60", "--epochs", "1", "--baseline", "-o", tmp_path / "t.atp", "-q")
    lines = train.out.splitlines()
    assert len(lines) == 2 and re.fullmatch(r"test accuracy 0\.\d{4} after 1 epoch \(float 0\.\d{4}\)", lines[0]), train.out
    assert lines[1] == f"wrote {tmp_path / 't.atp'}"
    assert cli("export", tmp_path / "t.atp", "-o", tmp_path / "t.onnx", "-q").out == f"wrote {tmp_path / 't.onnx'}\n"
    assert cli("compile", MODELS / "digits_mlp.onnx", "-o", tmp_path / "c.atp", "-q").out == f"wrote {tmp_path / 'c.atp'}\n"
    assert cli("plan", digits, "-q").out == ""
    assert "┃" not in cli("cost", digits, "-q").out  # the figures, no tables


def test_verbose_adds_the_timings_of_each_phase(digits, cli, tmp_path):
    run = cli("run", digits, "--data", "digits", "--limit", "50", "-v")
    timings = run.out.splitlines()[-1]
    for phase in ("load program", "load data", "program the devices", "chip inference", "onnxruntime reference"):
        assert re.search(rf"{phase} \d+\.\d{{3}} s", timings), (phase, timings)
    assert "timings:" not in cli("run", digits, "--data", "digits", "--limit", "50").out
    as_json = cli("run", digits, "--data", "digits", "--limit", "50", "-v", "--json")
    assert json.loads(as_json.out)["examples"] == 50 and "timings: load program" in as_json.err  # stdout stays JSON
    for argv in (["plan", digits], ["cost", digits], ["export", digits, "-o", tmp_path / "e.onnx"],
                 ["compile", MODELS / "digits_mlp.onnx", "-o", tmp_path / "c.atp"],
                 ["train", digits, "--data", "digits", "--limit", "30", "--epochs", "1", "-o", tmp_path / "t.atp"]):
        assert "timings: load" in cli(*argv, "-v").out.splitlines()[-1], argv


def test_piped_output_is_not_wrapped_and_counts_agree(digits, cli):
    plan = cli("plan", digits)
    # A long line (well past 80 and 132 columns) stays one line: grep finds all of it.
    cost_line = next(line for line in plan.out.splitlines() if "GOP/s/W" in line)
    assert len(cost_line) > 132 and cost_line.rstrip().endswith("3,600 GOP/s/mm²)")
    assert "on 1 tile (" in plan.out and "1 tiles" not in plan.out
    assert "at most 1 sequential step in one tile" in plan.out
    assert "1 tiles" not in cli("run", digits, "--data", "digits", "--limit", "20").out


def test_count_wording():
    from analogc.wording import count

    assert [count(n, "tile") for n in (0, 1, 2, 1234)] == ["0 tiles", "1 tile", "2 tiles", "1,234 tiles"]
    assert count(1, "copy", "copies") == "1 copy" and count(3, "copy", "copies") == "3 copies"


def test_plan_lists_faulty_tiles(cli, tmp_path):
    spec = tmp_path / "faulty.toml"
    spec.write_text(TINY_WITH_FAULTS)
    program = tmp_path / "f.atp"
    assert cli("compile", MODELS / "digits_mlp.onnx", "--target", spec, "-o", program, "-q").code == 0
    plan = json.loads(cli("plan", program, "--json").out)
    assert plan["faulty_tiles"] == [[0, 0], [2, 3]]
    used = {tuple(b["tile"]) for b in plan["blocks"]}
    assert not used & {(0, 0), (2, 3)}
    assert "2 faulty tiles (never used): [0, 0], [2, 3]" in cli("plan", program).out
    healthy = tmp_path / "h.atp"
    assert cli("compile", MODELS / "digits_mlp.onnx", "--target", "tiny", "-o", healthy, "-q").code == 0
    assert json.loads(cli("plan", healthy, "--json").out)["faulty_tiles"] == []
    assert "faulty" not in cli("plan", healthy).out


def test_a_drift_time_below_t0_is_reported_as_raised_to_t0(digits, cli):
    early = cli("run", digits, "--data", "digits", "--limit", "80", "--drift-time", "1", "--json")
    at_t0 = cli("run", digits, "--data", "digits", "--limit", "80", "--drift-time", "20", "--json")
    a, b = json.loads(early.out), json.loads(at_t0.out)
    assert a["drift_time_s"] == 20.0 and a["drift_clamped_from_s"] == 1.0
    assert "drift_clamped_from_s" not in b
    assert a["accuracy"] == b["accuracy"]  # the same devices at the same time: what t0 gives
    text = cli("run", digits, "--data", "digits", "--limit", "80", "--drift-time", "0").out
    assert "drift time 20 s (0 s asked: raised to t0, where the drift model starts)" in text


def test_a_run_that_compiles_the_kernels_says_so(digits, tmp_path):
    pytest.importorskip("numba")
    environment = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}  # an empty cache: a first run

    def run():
        argv = [sys.executable, "-m", "analogc.cli", "run", str(digits), "--data", "digits", "--limit", "50", "--json"]
        done = subprocess.run(argv, capture_output=True, text=True, env=environment)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert run().get("includes_kernel_compilation") is True
    assert "includes_kernel_compilation" not in run()  # the second run loads them from the cache


def test_only_the_run_that_compiled_is_labelled(digits, cli, monkeypatch):
    """In one process (make demo runs every command in one), a later run that compiled
    nothing is not labelled, though the process compiled kernels earlier."""
    import analogc.run_command as run_command

    compiled = iter([5, 7, 7, 7])  # before/after the first timed run, then the second's
    monkeypatch.setattr(run_command, "kernel_compilations", lambda: next(compiled))
    first = json.loads(cli("run", digits, "--data", "digits", "--limit", "20", "--json").out)
    second = json.loads(cli("run", digits, "--data", "digits", "--limit", "20", "--json").out)
    assert first.get("includes_kernel_compilation") is True and "includes_kernel_compilation" not in second
