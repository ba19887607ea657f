"""ONNX Conv models for the convolution tests: seeded weights, outputs of order 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def conv_model(path: Path, rank: int = 2, cin: int = 3, cout: int = 4, kernel=3, strides=1, dilations=1, pads=None,
               auto_pad: str | None = None, group: int = 1, size=9, bias: bool = True, after: tuple = ("Relu",),
               batch_norm: bool = False, opset: int = 13, seed: int = 0) -> Path:
    """x [N, cin, *size] → Conv (→ BatchNormalization) (→ each op of `after`) → y.
    Scalars of kernel/strides/dilations/size apply to every spatial axis."""
    rng = np.random.default_rng(seed)
    per_axis = lambda v: list(v) if isinstance(v, (tuple, list)) else [v] * rank  # noqa: E731
    kernel, strides, dilations, size = per_axis(kernel), per_axis(strides), per_axis(dilations), per_axis(size)
    scale = np.float32(1.0 / np.sqrt(cin // group * np.prod(kernel)))
    inits = [numpy_helper.from_array((rng.standard_normal((cout, cin // group, *kernel)) * scale).astype(np.float32), "W")]
    inputs = ["x", "W"]
    if bias:
        inits.append(numpy_helper.from_array((0.3 * rng.standard_normal(cout)).astype(np.float32), "B"))
        inputs.append("B")
    attrs = {"kernel_shape": kernel, "strides": strides, "dilations": dilations, "group": group}
    if pads is not None:
        attrs["pads"] = list(pads)
    if auto_pad is not None:
        attrs["auto_pad"] = auto_pad
    nodes = [helper.make_node("Conv", inputs, ["c0"], name="conv", **attrs)]
    current = "c0"
    if batch_norm:
        for name, value in (("gamma", rng.uniform(0.5, 2, cout)), ("beta", rng.normal(size=cout)),
                            ("mean", rng.normal(size=cout)), ("var", rng.uniform(0.5, 2, cout))):
            inits.append(numpy_helper.from_array(value.astype(np.float32), name))
        nodes.append(helper.make_node("BatchNormalization", [current, "gamma", "beta", "mean", "var"], ["bn"], name="bn", epsilon=1e-3))
        current = "bn"
    for i, op in enumerate(after):
        out = f"a{i}"
        nodes.append(helper.make_node(op, [current], [out], name=f"{op.lower()}{i}"))
        current = out
    nodes[-1].output[0] = "y"
    out_shape = ["N", cout] + [f"s{a}" for a in range(rank)]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", cin, *size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="conv_builders")
    model.ir_version = helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def conv_input(path: Path, seed: int = 1, n: int = 3) -> np.ndarray:
    """A batch of inputs matching the model's declared input shape."""
    model = onnx.load(str(path))
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    return np.random.default_rng(seed).standard_normal((n, *dims)).astype(np.float32)
