"""Every shipped model: compiled on the default and the tiny target, the ideal chip
reproduces onnxruntime on the original model, and accuracies match models/accuracies.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analogc.data import fit_to_input, load_digits
from analogc.mapper import compile_model
from analogc.runtime.chip.chip import Chip
from analogc.runtime.chip.infer import Reference, accuracy, run_batched
from analogc.runtime.format.spec import load_target
from tests.conftest import MODELS

SHIPPED = sorted(MODELS.glob("*.onnx"))


def test_models_are_shipped():
    names = {p.name for p in SHIPPED}
    assert {"digits_mlp.onnx", "fashion_mlp.onnx", "digits_conv.onnx"} <= names
    for path in SHIPPED:
        assert path.stat().st_size < 2 * 1024 * 1024, path


def random_inputs(program, n=64, seed=0):
    info = program.meta["model"]["inputs"][0]
    shape = [n if d is None else d for d in info["shape"]]
    return {info["name"]: np.random.default_rng(seed).random(shape, dtype=np.float32)}


@pytest.mark.parametrize("target", ["pcm3t1c-2018", "tiny"])
@pytest.mark.parametrize("model", SHIPPED, ids=lambda p: p.stem)
def test_ideal_chip_reproduces_onnxruntime(model, target):
    program = compile_model(model, load_target(target), time_limit=2)
    feeds = random_inputs(program)
    expected = Reference(program)(feeds)
    got = Chip(program, ideal=True).run(feeds)
    for (name, value), ref in zip(got.items(), expected):
        np.testing.assert_allclose(value, ref, rtol=1e-4, atol=1e-5, err_msg=f"{model.name} output {name}")
    if target == "tiny":
        # The tiny target must actually split these models.
        assert any(layer["row_split"] or layer["col_split"] for layer in program.layers)


@pytest.mark.parametrize("model", [p for p in SHIPPED if p.name.startswith("digits")], ids=lambda p: p.stem)
def test_digits_accuracy_matches_recorded(model):
    recorded = json.loads((MODELS / "accuracies.json").read_text())[model.name]["test_accuracy"]
    program = compile_model(model, load_target(None), time_limit=2)
    data = load_digits()
    info = program.meta["model"]["inputs"][0]
    x = fit_to_input(data.x_test, info["shape"], "digits")
    chip_out = run_batched(lambda f: list(Chip(program, ideal=True).run(f).values()), {info["name"]: x}, 128)
    # accuracies.json rounds to 4 decimals; one example of 359 is 0.0028.
    assert accuracy(chip_out[0], data.y_test) == pytest.approx(recorded, abs=6e-5)
