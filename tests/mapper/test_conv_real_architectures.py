"""Real architectures from the onnx package ("light" models: real graphs, constant-fill
weights), with seeded random weights in place of the fills so that outputs mean
something: through the file, `run --ideal` equals onnxruntime on the original model.
ShuffleNet brings 4-group 1x1 convolutions (block-diagonal on the tiles), depthwise ones
(on the host, with the reason in the plan) and BatchNormalization (folded into the convs
with --fold-batchnorm);
SqueezeNet brings 1x1/3x3 fire modules whose outputs are concatenated on the host."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def with_random_weights(source: Path, target: Path, seed: int = 0) -> Path:
    """Every ConstantOfShape weight becomes a seeded initializer of its shape (matrices and
    kernels ~ N(0, 1/fan_in), vectors ~ U(0.5, 1.5): positive, as BatchNormalization's
    variances must be); written at IR 7 so that initializers need not be graph inputs."""
    rng = np.random.default_rng(seed)
    model = onnx.load(str(source))
    graph = model.graph
    shapes = {t.name: numpy_helper.to_array(t).tolist() for t in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in shapes:
            shape = shapes[node.input[0]]
            value = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:])) if len(shape) >= 2 else rng.uniform(0.5, 1.5, shape)
            graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), node.output[0]))
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    names = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in names]
    del graph.input[:]
    graph.input.extend(inputs)
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return target


@pytest.mark.parametrize("name", ["shufflenet", "squeezenet"])
def test_light_architecture_with_random_weights_matches_onnxruntime(cli, tmp_path, name):
    source = LIGHT / f"light_{name}.onnx"
    if not source.exists():
        pytest.skip(f"{source} is not shipped with this onnx")
    model = with_random_weights(source, tmp_path / f"{name}.onnx")
    program = tmp_path / f"{name}.atp"
    assert cli("compile", model, "-o", program, "--placer", "greedy", "-q", "--fold-batchnorm").code == 0
    plan = json.loads(cli("plan", program, "--json").out)
    kinds = [layer["kind"] for layer in plan["layers"]]
    assert kinds.count("conv") >= 20
    if name == "shufflenet":
        assert any(layer.get("group", 1) == 4 for layer in plan["layers"])  # block-diagonal on tiles
        assert plan["host_reasons"] and all("groups" in note["reason"] for note in plan["host_reasons"])
    x = np.random.default_rng(1).uniform(0, 1, (1, 3, 224, 224)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    result = cli("run", program, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy", "--ideal", "-q")
    assert result.code == 0, result.err
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-4, atol=1e-6)
