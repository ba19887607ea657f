"""Models from real exporters compile and, ideal, reproduce onnxruntime; default mode runs.

tests/fixtures/exporters/ holds files made by torch.onnx.export (TorchScript and dynamo
exporters, dynamic and fixed batch; the dynamo files keep their weights as external
data beside the model) and by skl2onnx (MLPClassifier with and without ZipMap). The
scripts that made them need torch / skl2onnx and are not run by the tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from analogc.mapper import compile_model
from analogc.runtime.chip.chip import Chip
from analogc.runtime.format.spec import load_target

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "exporters").glob("*.onnx"))


def test_fixtures_present():
    assert len(FIXTURES) >= 10


@pytest.mark.parametrize("model", FIXTURES, ids=lambda p: p.stem)
def test_exported_model_matches_onnxruntime(model):
    program = compile_model(model, load_target("tiny"), time_limit=1)
    assert program.layers, "every fixture has fully-connected layers"
    info = program.meta["model"]["inputs"][0]
    shape = [3 if d is None else d for d in info["shape"]]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    session = ort.InferenceSession(str(model))
    expected = session.run(None, {info["name"]: x})
    got = Chip(program, ideal=True).run({info["name"]: x})
    for (name, value), ref in zip(got.items(), expected):
        if isinstance(ref, np.ndarray):
            np.testing.assert_allclose(value, ref, rtol=1e-4, atol=1e-5, err_msg=name)
        else:
            assert len(value) == len(ref)
    noisy = Chip(program, seed=1).run({info["name"]: x})
    assert set(noisy) == set(got)


def test_dynamo_fixtures_use_external_data():
    dynamo = [p for p in FIXTURES if "dynamo" in p.name]
    assert dynamo and all(p.with_name(p.name + ".data").exists() for p in dynamo)
