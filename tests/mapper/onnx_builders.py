"""Small ONNX model builders for the frontend tests, and one check against onnxruntime.

Every builder returns a checked `onnx.ModelProto` with seeded weights scaled so that
outputs are O(1). `compile_and_compare` saves the model, compiles it for the tiny
target (64×64 tiles, so K or N above 64 forces row or column splits), runs the chip in
ideal mode and compares every output with onnxruntime on the ORIGINAL model, all
through the files a user gets (compile → .atp → plan → run --ideal --output).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from analogc.cli import main
from analogc.runtime.chip.chip import Chip
from analogc.runtime.format.program import load_program

FLOAT, DOUBLE, FLOAT16 = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16
NP_DTYPE = {FLOAT: np.float32, DOUBLE: np.float64, FLOAT16: np.float16}
# (rtol, atol) per dtype; the ideal chip computes float64 layers in float32.
TOLERANCE = {FLOAT: (1e-4, 1e-5), DOUBLE: (1e-4, 1e-5), FLOAT16: (2e-2, 2e-2)}


def ir_version_for(opset: int) -> int:
    return helper.find_min_ir_version_for([helper.make_opsetid("", opset)])


def vi(name: str, shape, elem: int = FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def make_model(nodes, inputs, outputs, initializers=(), opset: int = 13, ir_version: int | None = None,
               inputs_include_initializers: bool | None = None) -> onnx.ModelProto:
    """A checked model at `opset` (IR version: the lowest that allows it, unless given).

    With `inputs_include_initializers` every initializer is also a graph input; by default
    that happens exactly when the IR version is below 4, where ONNX requires it.
    """
    inputs = list(inputs)
    ir_version = ir_version if ir_version is not None else ir_version_for(opset)
    if inputs_include_initializers is None:
        inputs_include_initializers = ir_version < 4
    if inputs_include_initializers:
        inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in initializers]
    graph = helper.make_graph(list(nodes), "test", inputs, list(outputs), initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="onnx_builders")
    model.ir_version = ir_version
    onnx.checker.check_model(model)
    return model


def weight(rng: np.random.Generator, k: int, n: int, dtype=np.float32) -> np.ndarray:
    return (rng.standard_normal((k, n)) / np.sqrt(k)).astype(dtype)


def vector(rng: np.random.Generator, shape, dtype=np.float32) -> np.ndarray:
    return (0.5 * rng.standard_normal(shape)).astype(dtype)


def gemm_model(k: int = 100, n: int = 90, trans_a: int = 0, trans_b: int = 0, alpha: float = 1.0,
               beta: float = 1.0, bias: str | None = "1d", batch="N", opset: int = 13, elem: int = FLOAT,
               seed: int = 0) -> onnx.ModelProto:
    """x → Gemm(B constant, C per `bias`) → y.

    bias: None (no C), "1d" [N], "row" [1, N], "scalar" [], "scalar1" [1], "one_one" [1, 1],
    "full" [M, N] and "col" [M, 1] (fixed batch only), "input" (a runtime input [N]),
    "input_full" (a runtime input [M, N]).
    """
    rng = np.random.default_rng(seed)
    dtype = NP_DTYPE[elem]
    b = weight(rng, k, n, dtype)
    inits = [init("B", b.T.copy() if trans_b else b)]
    inputs = [vi("x", [k, batch] if trans_a else [batch, k], elem)]
    gemm_inputs = ["x", "B"]
    if bias is not None:
        gemm_inputs.append("C")
        if bias in ("input", "input_full"):
            inputs.append(vi("C", [n] if bias == "input" else [batch, n], elem))
        else:
            shape = {"1d": (n,), "row": (1, n), "scalar": (), "scalar1": (1,), "one_one": (1, 1),
                     "full": (batch, n), "col": (batch, 1)}[bias]
            inits.append(init("C", vector(rng, shape, dtype)))
    node = helper.make_node("Gemm", gemm_inputs, ["y"], name="gemm0", transA=trans_a, transB=trans_b,
                            alpha=alpha, beta=beta)
    return make_model([node], inputs, [vi("y", [batch, n], elem)], inits, opset)


def matmul_model(k: int = 100, n: int = 90, bias: str | None = "1d", bias_first: bool = False,
                 lead=("N",), activation: str | None = None, activation_attrs: dict | None = None,
                 opset: int = 13, elem: int = FLOAT, seed: int = 0) -> onnx.ModelProto:
    """x[*lead, K] → MatMul(W) → [Add(b) or Add(b, ·)] → [activation] → y.

    bias: None, "1d" [N], "row" [1, N], "full_rank" [1, ..., 1, N] (rank of the output).
    """
    rng = np.random.default_rng(seed)
    dtype = NP_DTYPE[elem]
    inits = [init("W", weight(rng, k, n, dtype))]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"], name="matmul0")]
    last = "xw"
    if bias is not None:
        shape = {"1d": (n,), "row": (1, n), "full_rank": (1,) * len(lead) + (n,)}[bias]
        inits.append(init("b", vector(rng, shape, dtype)))
        operands = ["b", last] if bias_first else [last, "b"]
        nodes.append(helper.make_node("Add", operands, ["pre"], name="add0"))
        last = "pre"
    if activation is not None:
        nodes.append(helper.make_node(activation, [last], ["y"], name="act0", **(activation_attrs or {})))
    else:
        nodes[-1].output[0] = "y"
    return make_model(nodes, [vi("x", [*lead, k], elem)], [vi("y", [*lead, n], elem)], inits, opset)


def mlp_model(opset: int, k: int = 100, hidden: int = 80, n: int = 70, seed: int = 0) -> onnx.ModelProto:
    """x → MatMul → Add → Relu → Gemm(transB, C) → Softmax(axis=1): valid at every opset ≥ 7."""
    rng = np.random.default_rng(seed)
    inits = [
        init("W1", weight(rng, k, hidden)),
        init("b1", vector(rng, (hidden,))),
        init("W2t", weight(rng, hidden, n).T.copy()),
        init("b2", vector(rng, (n,))),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h0"], name="fc1"),
        helper.make_node("Add", ["h0", "b1"], ["h1"], name="fc1_bias"),
        helper.make_node("Relu", ["h1"], ["h2"], name="fc1_relu"),
        helper.make_node("Gemm", ["h2", "W2t", "b2"], ["logits"], name="fc2", transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], name="fc2_softmax", axis=1),
    ]
    return make_model(nodes, [vi("x", ["N", k])], [vi("y", ["N", n])], inits, opset)


def random_feeds(model: onnx.ModelProto, batch: int = 3, seed: int = 1) -> dict:
    """Standard-normal data for every runtime input; symbolic dims become `batch`."""
    rng = np.random.default_rng(seed)
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else batch for d in tensor_type.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        feeds[value.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def onnxruntime_outputs(model: onnx.ModelProto, feeds: dict) -> dict:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def onnxruntime_can_run(model: onnx.ModelProto) -> bool:
    try:
        onnxruntime_outputs(model, random_feeds(model))
    except Exception:
        return False
    return True


def save(model: onnx.ModelProto, folder: Path, name: str = "model") -> Path:
    path = Path(folder) / f"{name}.onnx"
    onnx.save_model(model, str(path))
    return path


def compile_and_compare(model: onnx.ModelProto, folder: Path, feeds: dict | None = None, rtol: float | None = None,
                        atol: float | None = None, placer: str = "greedy"):
    """Through the files a user gets: `compile` to an .atp on disk, `plan` it, `run
    --ideal` on the feeds written as a .npz; every output `run --output` wrote is
    compared with onnxruntime on the ORIGINAL model.

    Returns the program as loaded from disk. Tolerances default to the first output's
    dtype. The greedy placer is the default here: placement does not change what the
    ideal chip computes, and it keeps these tests fast.
    """
    path = save(model, folder)
    feeds = random_feeds(model) if feeds is None else feeds
    expected = onnxruntime_outputs(model, feeds)
    got = compile_plan_run(path, feeds, placer)
    program = load_program(path.with_suffix(".atp"))
    assert set(got) == set(expected), (sorted(got), sorted(expected))
    default_rtol, default_atol = TOLERANCE[model.graph.output[0].type.tensor_type.elem_type]
    for name, reference in expected.items():
        value = np.asarray(got[name])
        assert value.shape == reference.shape, (name, value.shape, reference.shape)
        assert value.dtype == reference.dtype, (name, value.dtype, reference.dtype)
        np.testing.assert_allclose(
            value.astype(np.float64), reference.astype(np.float64),
            rtol=default_rtol if rtol is None else rtol, atol=default_atol if atol is None else atol,
            err_msg=f"output {name}",
        )
    return program


def cli_quiet(*argv) -> int:
    """The command line in-process; its printing swallowed, an error line raised."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    assert code == 0, (argv[0], code, err.getvalue())
    return code


def compile_plan_run(path: Path, feeds: dict, placer: str = "greedy", target: str = "tiny", time_limit: float = 2,
                     folder: Path | None = None) -> dict:
    """compile PATH → STEM.atp (in `folder`, else beside PATH), plan it, run --ideal on `feeds`: {output name: array}
    as `run --output` wrote them. `run` needs examples, every input with the same
    first dimension: a model without runtime inputs, or with one that is not batched
    (a bias fed at run time, a 1-D input), runs the loaded program on the chip directly."""
    stem = Path(folder or path.parent) / path.stem
    atp = stem.with_suffix(".atp")
    cli_quiet("compile", path, "-o", atp, "--target", target, "--placer", placer, "--time-limit", time_limit)
    cli_quiet("plan", atp, "--json")
    if len({np.shape(x)[:1] for x in feeds.values()}) != 1 or min(np.ndim(x) for x in feeds.values()) < 2:
        return Chip(load_program(atp), ideal=True).run(dict(feeds))
    inputs, outputs = stem.with_suffix(".in.npz"), stem.with_suffix(".out.npz")
    np.savez(inputs, **feeds)
    cli_quiet("run", atp, "--ideal", "--input", inputs, "--output", outputs)
    with np.load(outputs, allow_pickle=False) as written:
        return {name: written[name] for name in written.files}


def splits(program) -> tuple[bool, bool]:
    """(some layer is split by rows, some layer is split by columns)."""
    return any(layer["row_split"] for layer in program.layers), any(layer["col_split"] for layer in program.layers)


def layer_graph(model, folder):
    """The frontend's layer graph of a model saved in `folder`."""
    from analogc.mapper.frontend import load_layer_graph

    return load_layer_graph(save(model, folder, "structure"))[0]
