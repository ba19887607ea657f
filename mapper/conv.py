"""Conv → analog layer: the weight unrolled to [C_in·kh·kw, C_out], one tile read per patch.

`convert_conv` (registered with the frontend's `converter`) turns an ONNX Conv with a
constant weight into a `Dense` with `ConvGeometry`: any number of spatial axes (1-D,
2-D, ...), explicit pads and every auto_pad mode, strides and dilations. Its row order
(c, kernel offsets) is the one `runtime.im2col.patches` forms the patches in. Then, as for
dense layers, the converter absorbs
- with `compile --fold-batchnorm`, a following inference-mode BatchNormalization with
  constant parameters (mapper/fusion.py; by default it stays a host segment), and
- an element-wise activation (the frontend's `fuse_activation`); a Softmax is not
  absorbed, since the tile's outputs are channels and ONNX's axes are not.

Grouped convolutions: with at most `MAX_DIAGONAL_GROUPS` groups the weight goes on the
tiles as a block-diagonal matrix (group × the cells of the group's blocks, zeros
between them); more groups (depthwise convolutions) stay on the host, and the reason is
recorded in `ctx.notes` for `plan` to print. So does every other Conv left on the host, and
every op in `HOST_ONLY` (transposed and integer convolutions and products, recurrent layers).
"""

from __future__ import annotations

import numpy as np
import onnx

from analogc.mapper.frontend import ANALOG_DTYPES, Context, Converted, as_float32, attributes, converter, fuse_activation, node_label, text_attribute
from analogc.mapper.fusion import fold_batch_norm
from analogc.mapper.layer_graph import ConvGeometry, Dense, type_dims
from analogc.runtime.chip.im2col import AUTO_PADS, resolve_pads

# Up to this many groups the block-diagonal weight wastes at most 3/4 of its cells (AlexNet's
# two groups, ShuffleNet's four); a depthwise convolution would use 1/C_in of them.
MAX_DIAGONAL_GROUPS = 4
SOFTMAX_OPS = ("Softmax", "LogSoftmax", "Hardmax")


def host(ctx: Context, node: onnx.NodeProto, index: int, reason: str) -> None:
    """Leave the node to the host, and say why (shown by `plan`)."""
    ctx.notes.append({"node": node_label(node, index), "op": node.op_type, "reason": reason})
    return None


@converter("Conv")
def convert_conv(node: onnx.NodeProto, index: int, ctx: Context) -> Converted | None:
    """Y = Conv(X, W constant, B constant or absent) as an analog layer over patches."""
    x, w = node.input[0], node.input[1]
    b = node.input[2] if len(node.input) > 2 and node.input[2] else None
    dtype = ANALOG_DTYPES.get(ctx.elem_type(x))
    if w not in ctx.constants:
        return host(ctx, node, index, "its weight is computed at run time; a tile needs a constant weight")
    if x in ctx.constants or dtype is None:
        return host(ctx, node, index, "its input is a constant or not floating point")
    weight = np.asarray(ctx.constants[w])
    if weight.ndim < 3 or 0 in weight.shape:
        return host(ctx, node, index, f"a weight of shape {list(weight.shape)} has no kernel to unroll")
    if b is not None and b not in ctx.constants:
        return host(ctx, node, index, "its bias is computed at run time")
    geometry = conv_geometry(node, weight, ctx)
    if isinstance(geometry, str):
        return host(ctx, node, index, geometry)
    if geometry.group > MAX_DIAGONAL_GROUPS:
        return host(ctx, node, index, f"grouped convolution with {geometry.group} groups (depthwise, or more than "
                    f"{MAX_DIAGONAL_GROUPS}: block-diagonal on tiles would leave most cells zero)")
    bias = None if b is None else np.asarray(ctx.constants[b], dtype=np.float64).reshape(-1)
    if bias is not None and bias.size != weight.shape[0]:
        return host(ctx, node, index, f"its bias has {bias.size} values for {weight.shape[0]} output channels")
    name = ctx.layer_name(node, index)
    dense = Dense(name, x, node.output[0], unroll(weight, geometry.group), as_float32(bias), dtype=dtype,
                  onnx_nodes=[node_label(node, index)], conv=geometry)
    dense.input_shape = type_dims(ctx.value_types.get(x))
    fused = [index]
    if ctx.fold_batchnorm:
        fold_batch_norm(dense, fused, ctx)
    found = ctx.sole_consumer(dense.output)
    if found is None or found[1].op_type not in SOFTMAX_OPS:
        fuse_activation(dense, fused, None, ctx)
    return Converted(dense, fused)


# Ops that do a tile layer's work but stay on the host, each with the reason `plan` prints.
HOST_ONLY = {
    "ConvTranspose": "transposed convolution: each input position scatters into overlapping outputs "
                     "(col2im), which the tiles' periphery does not do; it runs on the host",
    "ConvInteger": "integer convolution: tiles hold real-valued weights; compile the float model",
    "QLinearConv": "quantized convolution: tiles hold real-valued weights; compile the float model",
    "MatMulInteger": "integer matrix product: tiles hold real-valued weights; compile the float model",
    "QLinearMatMul": "quantized matrix product: tiles hold real-valued weights; compile the float model",
    **{op: f"recurrent layer ({op}): its input and state products sit inside one ONNX op with its gates "
           "and time loop, which only the host runs" for op in ("RNN", "GRU", "LSTM")},
}


def register_host_only(op_type: str, reason: str) -> None:
    @converter(op_type)
    def stays_on_host(node: onnx.NodeProto, index: int, ctx: Context) -> None:
        return host(ctx, node, index, reason)


for _op, _reason in HOST_ONLY.items():
    register_host_only(_op, _reason)


def conv_geometry(node: onnx.NodeProto, weight: np.ndarray, ctx: Context) -> ConvGeometry | str:
    """The Conv's attributes with ONNX's defaults, pads resolved when the input's spatial
    size is known; a string says why the node cannot go on the tiles."""
    attrs = attributes(node)
    rank = weight.ndim - 2
    kernel = tuple(int(k) for k in attrs.get("kernel_shape", weight.shape[2:]))
    strides = tuple(int(s) for s in attrs.get("strides", [1] * rank))
    dilations = tuple(int(d) for d in attrs.get("dilations", [1] * rank))
    pads = tuple(int(p) for p in attrs.get("pads", [0] * (2 * rank)))
    auto_pad = text_attribute(node, "auto_pad", "NOTSET")
    group = int(attrs.get("group", 1))
    if kernel != tuple(weight.shape[2:]) or len(strides) != rank or len(dilations) != rank or len(pads) != 2 * rank:
        return "its kernel_shape, strides, dilations or pads do not match its weight's rank"
    if auto_pad not in AUTO_PADS:
        return f"auto_pad {auto_pad!r} is not an ONNX mode"
    if min(strides) < 1 or min(dilations) < 1 or min(pads) < 0 or group < 1 or weight.shape[0] % group:
        return "its strides, dilations, pads or group are out of range"
    channels = weight.shape[1] * group
    shape = type_dims(ctx.value_types.get(node.input[0]))
    if shape is not None and (len(shape) != rank + 2 or shape[1] not in (None, channels)):
        return f"its input of shape {shape} does not match a weight of shape {list(weight.shape)}"
    spatial = shape[2:] if shape is not None else None
    if auto_pad != "NOTSET" and spatial is not None and None not in spatial:
        pads = tuple(resolve_pads(spatial, kernel, strides, dilations, pads, auto_pad))
    elif auto_pad == "VALID":
        pads = (0,) * (2 * rank)
    return ConvGeometry(kernel, strides, dilations, pads, auto_pad, group, channels)


def unroll(weight: np.ndarray, group: int) -> np.ndarray:
    """ONNX's [C_out, C_in/group, *kernel] as the array matrix [C_in·prod(kernel), C_out]:
    row c·prod(kernel) + (kernel offset), block-diagonal over the groups."""
    c_out, c_in_group = weight.shape[:2]
    size = int(np.prod(weight.shape[2:]))
    if group == 1:
        return np.ascontiguousarray(weight.reshape(c_out, -1).T, dtype=np.float32)
    out_group = c_out // group
    matrix = np.zeros((group * c_in_group * size, c_out), dtype=np.float32)
    for g in range(group):
        rows = slice(g * c_in_group * size, (g + 1) * c_in_group * size)
        cols = slice(g * out_group, (g + 1) * out_group)
        matrix[rows, cols] = weight[cols].reshape(out_group, -1).T
    return matrix
