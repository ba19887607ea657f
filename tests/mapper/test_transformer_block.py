"""A transformer encoder block compiles with its linear layers on the tiles and its
attention (the products of two activations, Q·Kᵀ and ·V, and the softmax between them)
on the host, and `run --ideal` matches onnxruntime through the file.

The block is built with onnx.helper as PyTorch's nn.TransformerEncoderLayer computes it
(post-norm, two heads): Q, K, V projections (MatMul + Add), heads split by Reshape and
Transpose, softmax(Q·Kᵀ/√d)·V, the output projection, residual Add, LayerNormalization,
then Linear → GELU → Linear, residual Add, LayerNormalization. PyTorch's own export of
nn.TransformerEncoderLayer (tests/fixtures/exporters/torch_transformer_ts.onnx) goes
through the file against onnxruntime in tests/test_through_the_file.py like every
exporter fixture; here, where its layers go.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from analogc.mapper.frontend import load_layer_graph

from tests.mapper.onnx_builders import compile_and_compare, init, layer_graph, random_feeds, vector, vi, weight

D, HEADS, FF, T = 32, 2, 64, 6


def linear(name: str, x: str, k: int, n: int, rng, inits: list) -> list:
    inits += [init(f"{name}.W", weight(rng, k, n)), init(f"{name}.b", vector(rng, (n,)))]
    return [helper.make_node("MatMul", [x, f"{name}.W"], [f"{name}.xw"], name=f"{name}.matmul"),
            helper.make_node("Add", [f"{name}.xw", f"{name}.b"], [name], name=f"{name}.add")]


def layer_norm(name: str, x: str, out: str, rng, inits: list) -> list:
    inits += [init(f"{name}.g", (1 + 0.1 * rng.standard_normal(D)).astype(np.float32)), init(f"{name}.beta", vector(rng, (D,)))]
    return [helper.make_node("LayerNormalization", [x, f"{name}.g", f"{name}.beta"], [out], name=name, axis=-1, epsilon=1e-5)]


def encoder_block(seed: int = 7) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    inits = [init("heads_shape", np.array([0, 0, HEADS, D // HEADS], np.int64)), init("merged_shape", np.array([0, 0, D], np.int64)),
             init("scale", np.array(1 / np.sqrt(D // HEADS), np.float32)), init("sqrt2", np.array(np.sqrt(2), np.float32)),
             init("one", np.array(1, np.float32)), init("half", np.array(0.5, np.float32))]
    mk = helper.make_node
    nodes = []
    for proj in ("q", "k", "v"):
        nodes += linear(proj, "x", D, D, rng, inits)
        nodes += [mk("Reshape", [proj, "heads_shape"], [f"{proj}.heads"], name=f"{proj}.split"),
                  mk("Transpose", [f"{proj}.heads"], [f"{proj}.bhtd"], name=f"{proj}.transpose", perm=[0, 2, 1, 3])]
    nodes += [
        mk("Transpose", ["k.bhtd"], ["k.bhdt"], name="k.t", perm=[0, 1, 3, 2]),
        mk("MatMul", ["q.bhtd", "k.bhdt"], ["scores"], name="attention.qk"),
        mk("Mul", ["scores", "scale"], ["scaled"], name="attention.scale"),
        mk("Softmax", ["scaled"], ["weights"], name="attention.softmax", axis=-1),
        mk("MatMul", ["weights", "v.bhtd"], ["context"], name="attention.v"),
        mk("Transpose", ["context"], ["context.bthd"], name="context.transpose", perm=[0, 2, 1, 3]),
        mk("Reshape", ["context.bthd", "merged_shape"], ["context.merged"], name="context.merge"),
    ]
    nodes += linear("attn_out", "context.merged", D, D, rng, inits)
    nodes += [mk("Add", ["x", "attn_out"], ["residual1"], name="residual1")]
    nodes += layer_norm("norm1", "residual1", "h1", rng, inits)
    nodes += linear("ff1", "h1", D, FF, rng, inits)
    nodes += [mk("Div", ["ff1", "sqrt2"], ["ff1.d"]), mk("Erf", ["ff1.d"], ["ff1.e"]), mk("Add", ["ff1.e", "one"], ["ff1.a"]),
              mk("Mul", ["ff1", "ff1.a"], ["ff1.m"]), mk("Mul", ["ff1.m", "half"], ["ff1.gelu"])]
    nodes += linear("ff2", "ff1.gelu", FF, D, rng, inits)
    nodes += [mk("Add", ["h1", "ff2"], ["residual2"], name="residual2")]
    nodes += layer_norm("norm2", "residual2", "y", rng, inits)
    graph = helper.make_graph(nodes, "encoder_block", [vi("x", ["B", T, D])], [vi("y", ["B", T, D])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="onnx_builders")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_encoder_block_linear_layers_on_tiles_attention_on_host(tmp_path):
    model = encoder_block()
    graph = layer_graph(model, tmp_path)
    layers = {d.name: d for d in graph.dense_layers}
    assert sorted(layers) == ["attn_out.matmul", "ff1.matmul", "ff2.matmul", "k.matmul", "q.matmul", "v.matmul"]
    assert all(d.bias is not None for d in layers.values())  # every Add of a 1-D bias fused, on a [B, T, D] input
    assert layers["ff1.matmul"].activation == "gelu"
    host = [n.op_type for s in graph.host_segments for n in s.model.graph.node]
    assert host.count("MatMul") == 2 and "Softmax" in host and host.count("LayerNormalization") == 2
    program = compile_and_compare(model, tmp_path, random_feeds(model, batch=2))
    assert {layer["name"] for layer in program.layers} == set(layers)


@pytest.mark.parametrize("batch", [1, 3])
def test_encoder_block_other_batches(tmp_path, batch):
    compile_and_compare(encoder_block(seed=batch), tmp_path, random_feeds(encoder_block(seed=batch), batch=batch))


def test_torch_transformer_encoder_layer_maps_its_linear_layers():
    """torch's export: the packed Q/K/V in-projection, the out-projection (a Gemm) and the
    feed-forward pair (GELU fused) on tiles; the attention between them on the host."""
    path = Path(__file__).parents[1] / "fixtures" / "exporters" / "torch_transformer_ts.onnx"
    graph = load_layer_graph(path)[0]
    assert [(d.shape, d.activation) for d in graph.dense_layers] == [((16, 48), "identity"), ((16, 16), "identity"), ((16, 32), "gelu"), ((32, 16), "identity")]
    host = [n.op_type for s in graph.host_segments for n in s.model.graph.node]
    assert host.count("MatMul") == 2 and "Softmax" in host and host.count("LayerNormalization") == 2
