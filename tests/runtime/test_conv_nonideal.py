"""A trained CNN on the simulated chip with every nonideality: it runs, a seed fixes the
result bit for bit, and accuracy stays close to the ideal chip's, also after drift with
compensation. Through the file: compile → .atp → run --data, as a user would."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analogc.runtime.chip.chip import Chip
from analogc.runtime.format.program import load_program
from tests.conftest import MODELS


@pytest.fixture(scope="module")
def conv_program(tmp_path_factory):
    from analogc.cli import main

    path = tmp_path_factory.mktemp("cnn") / "digits_conv.atp"
    assert main(["compile", str(MODELS / "digits_conv.onnx"), "-o", str(path), "-q"]) == 0
    return path


def run_json(cli, *argv) -> dict:
    result = cli("run", *argv, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_the_conv_layer_is_on_the_tiles(conv_program):
    layers = {layer["name"]: layer for layer in load_program(conv_program).layers}
    assert layers["conv"]["kind"] == "conv" and layers["conv"]["reads_per_example"] == 64


@pytest.mark.parametrize("drift", [None, "86400"], ids=["t0", "1_day"])
def test_default_mode_stays_close_to_ideal(cli, conv_program, drift):
    extra = ["--drift-time", drift] if drift else []
    ideal = run_json(cli, conv_program, "--data", "digits", "--ideal")
    default = [run_json(cli, conv_program, "--data", "digits", "--seed", str(seed), *extra) for seed in (0, 1, 2)]
    assert ideal["accuracy"] == pytest.approx(ideal["onnxruntime_accuracy"])
    mean = np.mean([d["accuracy"] for d in default])
    assert mean > ideal["accuracy"] - 0.05, (mean, ideal["accuracy"])
    if drift:
        assert all(d["drift_compensation"] for d in default)


def test_a_seed_fixes_every_read(conv_program):
    program = load_program(conv_program)
    x = np.random.default_rng(5).uniform(0, 1, (20, 1, 8, 8)).astype(np.float32)
    runs = [Chip(program, seed=s, drift_time=3600.0).run({"input": x})["logits"] for s in (7, 7, 8)]
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])
    # Every patch is its own read: the same patch twice in one batch gets different noise.
    twice = np.concatenate([x[:1], x[:1]])
    chip = Chip(program, seed=7)
    outputs = chip.run({"input": twice}, stop_before="fc")
    conv_out = outputs["relu_out"]
    assert not np.array_equal(conv_out[0], conv_out[1])
