"""The digital periphery of a convolution layer: its input cut into patches (im2col).

A Conv layer on the tiles holds its weight unrolled to [C_in·kh·kw, C_out] (row index
c·kh·kw + i·kw + j, the ONNX weight [C_out, C_in, kh, kw] reshaped to [C_out, -1] and
transposed). The periphery forms one patch per output position, in that row order, and
each patch is one tile read: its own DAC scaling, read noise and ADC. `patches` cuts an
input [B, C, *spatial] into rows [B·positions, C·prod(kernel)] with numpy's stride
tricks (one copy, no Python loop over positions): the ideal chip reads those rows.
With DACs the chip uses `layer_gather` instead: the padded input and, per output
position and per patch entry, the offsets of the same rows in it, which the DAC kernel
reads directly (no patch matrix). `fold` turns the layer's [B·positions, C_out]
outputs back into ONNX's [B, C_out, *out_spatial].

Padding follows ONNX Conv: explicit `pads` [begin..., end...] for NOTSET, none for
VALID, and for SAME_UPPER / SAME_LOWER a total of max(0, (out − 1)·stride + extent − in)
per axis with out = ceil(in / stride), the odd one at the end (UPPER) or the beginning
(LOWER); extent = dilation·(kernel − 1) + 1.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from analogc.errors import AnalogcError
from analogc.runtime.format.vocabulary import AUTO_PADS
from analogc.runtime.physics.row_gather import RowGather


def extent(kernel: int, dilation: int) -> int:
    """Input positions one kernel window spans along an axis."""
    return dilation * (kernel - 1) + 1


def resolve_pads(spatial, kernel, strides, dilations, pads, auto_pad: str) -> list[int]:
    """ONNX's [begin..., end...] pads of a Conv on an input of these spatial sizes."""
    rank = len(kernel)
    if auto_pad == "VALID":
        return [0] * (2 * rank)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        return [int(p) for p in pads]
    begin, end = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        out = -(-int(size) // s)
        total = max(0, (out - 1) * s + extent(k, d) - int(size))
        small, large = total // 2, total - total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else large)
        end.append(large if auto_pad == "SAME_UPPER" else small)
    return begin + end


def output_shape(spatial, kernel, strides, dilations, pads) -> list[int]:
    """Output positions per spatial axis for resolved `pads`."""
    rank = len(kernel)
    return [
        max(0, (int(size) + pads[a] + pads[a + rank] - extent(kernel[a], dilations[a])) // strides[a] + 1)
        for a, size in enumerate(spatial)
    ]


def padded(x: np.ndarray, pads) -> np.ndarray:
    """x [B, C, *spatial] with ONNX's resolved [begin..., end...] zero `pads`."""
    rank = len(pads) // 2
    if not any(pads):
        return x
    return np.pad(x, [(0, 0), (0, 0)] + [(pads[a], pads[a + rank]) for a in range(rank)])


def patches(x: np.ndarray, kernel, strides, dilations, pads) -> tuple[np.ndarray, list[int]]:
    """(rows [B·positions, C·prod(kernel)] in (c, kernel offsets) order, output spatial
    shape) of an input [B, C, *spatial] with resolved `pads`."""
    rank = len(kernel)
    x = padded(x, pads)
    out = output_shape(x.shape[2:], kernel, strides, dilations, [0] * (2 * rank))
    axes = tuple(range(2, 2 + rank))
    spans = tuple(extent(k, d) for k, d in zip(kernel, dilations))
    if any(o == 0 for o in out) or any(x.shape[a] < s for a, s in zip(axes, spans)):
        return np.zeros((0, x.shape[1] * int(np.prod(kernel))), dtype=x.dtype), out
    # [B, C, *window starts, *offsets in the window], then every stride-th start and
    # every dilation-th offset: a view, copied once by the reshape below.
    view = sliding_window_view(x, spans, axis=axes)
    view = view[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) + tuple(slice(None, None, d) for d in dilations)]
    view = view[(slice(None), slice(None)) + tuple(slice(0, o) for o in out)]
    order = (0, *range(2, 2 + rank), 1, *range(2 + rank, 2 + 2 * rank))  # B, positions, C, offsets
    rows = view.transpose(order).reshape(x.shape[0] * int(np.prod(out)), -1)
    return np.ascontiguousarray(rows), out


def check_input(x: np.ndarray, layer: dict) -> None:
    """A conv layer's input must be [batch, channels, *spatial] of the kernel's rank."""
    conv = layer["conv"]
    rank = len(conv["kernel"])
    if x.ndim != rank + 2 or x.shape[1] != conv["channels"]:
        raise AnalogcError(
            f"layer {layer['name']}: input of shape {list(x.shape)}, the convolution expects "
            f"[batch, {conv['channels']}, {rank} spatial dims]"
        )


def layer_patches(x: np.ndarray, layer: dict) -> tuple[np.ndarray, tuple]:
    """A conv layer's patches of input x (the program's layer entry gives the geometry),
    and the (batch, output spatial shape) that `fold` needs afterwards."""
    conv = layer["conv"]
    kernel = conv["kernel"]
    check_input(x, layer)
    pads = resolve_pads(x.shape[2:], kernel, conv["strides"], conv["dilations"], conv["pads"], conv["auto_pad"])
    rows, out = patches(x, kernel, conv["strides"], conv["dilations"], pads)
    return rows, (x.shape[0], out)


def layer_gather(x: np.ndarray, layer: dict) -> tuple[RowGather, tuple]:
    """`layer_patches` as a `RowGather` over the padded input (float32): the same rows,
    for the DAC to gather itself (dac_kernels.dac_gathered)."""
    conv = layer["conv"]
    kernel, strides, dilations = conv["kernel"], conv["strides"], conv["dilations"]
    check_input(x, layer)
    pads = resolve_pads(x.shape[2:], kernel, strides, dilations, conv["pads"], conv["auto_pad"])
    source = np.ascontiguousarray(padded(x, pads), dtype=np.float32)
    out = output_shape(source.shape[2:], kernel, strides, dilations, [0] * (2 * len(kernel)))
    # Element strides of the padded input: [channel, *spatial]; a window starts at
    # position·stride on each axis, its offsets are channel and dilated kernel steps.
    step = [s // source.itemsize for s in source.strides[1:]]
    starts, offsets = np.zeros(out, dtype=np.int64), np.zeros([source.shape[1], *kernel], dtype=np.int64)
    offsets += (np.arange(source.shape[1]) * step[0]).reshape(-1, *[1] * len(kernel))
    for a in range(len(kernel)):
        axis = [1] * len(kernel)
        axis[a] = -1
        starts += (np.arange(out[a]) * strides[a] * step[1 + a]).reshape(axis)
        offsets += (np.arange(kernel[a]) * dilations[a] * step[1 + a]).reshape(1, *axis)
    gather = RowGather(source.reshape(-1), x.shape[0], int(np.prod(source.shape[1:])), starts.reshape(-1), offsets.reshape(-1))
    return gather, (x.shape[0], out)


def fold(y: np.ndarray, batch: int, out_spatial) -> np.ndarray:
    """[B·positions, C_out] back to ONNX's [B, C_out, *out_spatial]."""
    rank = len(out_spatial)
    y = y.reshape(batch, *out_spatial, y.shape[-1])
    return np.ascontiguousarray(y.transpose(0, rank + 1, *range(1, rank + 1)))
