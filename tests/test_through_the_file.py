"""Every good model the suite has goes through the files a user gets: `compile` to an
.atp on disk, `plan` it, `run --ideal --input X.npz --output Y.npz`, and every output
written is compared with onnxruntime on the original model. (The frontend patterns do
the same through `compile_and_compare`.) Models: the exporter fixtures (PyTorch's two
exporters, skl2onnx with and without ZipMap), the shipped models, the fuzz seeds (one
at IR 3 and opset 6: onnx's reference evaluator is its reference), and
two of the onnx package's real architectures at IR version 3 (light_squeezenet,
light_shufflenet: weights are initializers not listed as inputs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx.reference import ReferenceEvaluator

from tests.conftest import MODELS
from tests.fuzz_properties import SEEDS
from tests.mapper.onnx_builders import compile_plan_run

EXPORTERS = sorted((Path(__file__).parent / "fixtures" / "exporters").glob("*.onnx"))
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
REAL = [LIGHT / f"light_{name}.onnx" for name in ("squeezenet", "shufflenet")]


def feeds_for(path: Path, batch: int = 3) -> dict:
    """Uniform [0, 1) data for every runtime input; symbolic dims become `batch`."""
    model = onnx.load(str(path))
    initializers = {t.name for t in model.graph.initializer}
    rng = np.random.default_rng(0)
    feeds = {}
    for value in model.graph.input:
        if value.name not in initializers:
            dims = [d.dim_value if d.HasField("dim_value") else batch for d in value.type.tensor_type.shape.dim]
            feeds[value.name] = rng.random(dims).astype(np.float32)
    return feeds


def reference(path: Path, feeds: dict) -> dict:
    """onnxruntime's outputs; for an opset it has no kernels for (before 7), onnx's
    reference evaluator's, on the model as written (analogc runs it upgraded)."""
    model = onnx.load(str(path))
    names = [o.name for o in model.graph.output]
    if next(i.version for i in model.opset_import if i.domain in ("", "ai.onnx")) < 7:
        return dict(zip(names, ReferenceEvaluator(model).run(None, feeds)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip(names, session.run(names, feeds)))


def assert_written_outputs_match(got: dict, expected: dict) -> None:
    for name, value in expected.items():
        if isinstance(value, list):  # ZipMap: [N, classes] probabilities plus the class labels
            labels = got[f"{name}.labels"]
            rows = np.array([[example[label] for label in labels.tolist()] for example in value], dtype=np.float32)
            np.testing.assert_allclose(got[name], rows, rtol=1e-4, atol=1e-5, err_msg=name)
            assert sorted(labels.tolist()) == sorted(value[0])
            continue
        assert got[name].shape == value.shape and got[name].dtype == value.dtype, (name, got[name].shape, value.shape)
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5, err_msg=name)
    assert set(expected) <= set(got)


def seed_files(folder: Path) -> list[Path]:
    paths = []
    for number, data in enumerate(SEEDS):
        paths.append(folder / f"seed{number}.onnx")
        paths[-1].write_bytes(data)
    return paths


CASES = [("exporter", p) for p in EXPORTERS] + [("shipped", p) for p in sorted(MODELS.glob("*.onnx"))]
CASES += [("seed", number) for number in range(len(SEEDS))] + [("real", p) for p in REAL if p.exists()]


@pytest.mark.parametrize("kind, source", CASES, ids=lambda v: v if isinstance(v, str) else getattr(v, "stem", str(v)))
def test_compile_plan_run_matches_onnxruntime(kind, source, tmp_path):
    path = source if kind != "seed" else seed_files(tmp_path)[source]
    # The real architectures need the default target's 64 tiles of 512×512 cells.
    target = "pcm3t1c-2018" if kind == "real" else "tiny"
    feeds = feeds_for(path)
    got = compile_plan_run(path, feeds, placer="greedy", target=target, time_limit=1, folder=tmp_path)
    assert_written_outputs_match(got, reference(path, feeds))


def test_the_real_architectures_are_there():
    """onnx ships its light models; if a release drops them, this says so."""
    assert all(p.exists() for p in REAL), [p.name for p in REAL if not p.exists()]
    assert all(onnx.load(str(p), load_external_data=False).ir_version == 3 for p in REAL)
