"""The rank of tensors that ONNX shape inference cannot tell, found by running the model.

Some ops have no shape inference (ai.onnx.ml's FeatureVectorizer, contrib ops): every
tensor after them has no shape, so a layer reading one could not be placed (its host
segment must declare the shape of what it hands over) and stayed on the host. One
onnxruntime run of the model on zeros, with the inputs of such would-be layers as extra
outputs, gives their element type and rank (the layers' outputs are then typed by the
frontend, what follows by inference on each segment). Sizes may depend on the input, so every dimension is declared
unknown; the rank does not depend on the input in any op a layer can follow.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from analogc.runtime.chip.host import make_session, run_session

ZERO_FEED_DIM = 1  # a symbolic input dimension, when probing


def probe_unknown_ranks(model: onnx.ModelProto, value_types: dict, could_be_layer) -> None:
    """Declare, in `value_types`, the type and rank of the input of every node that
    `could_be_layer` (the frontend's converters) when a node computes it and its shape
    is unknown; nothing when there is none (the common case: compile does not run the
    model) or when onnxruntime cannot run the model on zeros."""
    produced = {o for node in model.graph.node for o in node.output if o}
    missing = sorted({node.input[0] for node in model.graph.node if node.input and node.input[0] in produced
                      and lacks_shape(value_types.get(node.input[0])) and could_be_layer(node)})
    if not missing:
        return
    feeds = zero_feeds(model)
    if feeds is None:
        return
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    declared = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=name) for name in missing if name not in declared)
    try:
        session = make_session(probe.SerializeToString(), "the model (probing shapes)")
        names = [o.name for o in session.get_outputs()]
        values = dict(zip(names, run_session(session, feeds, "the model (probing shapes)")))
    except Exception:  # (any failure leaves the shapes unknown, as before)
        return
    for name in missing:
        value = values.get(name)
        if isinstance(value, np.ndarray) and value.dtype != object:
            value_types[name] = helper.make_tensor_type_proto(helper.np_dtype_to_tensor_dtype(value.dtype), shape=[None] * value.ndim)


def lacks_shape(known) -> bool:
    """No type at all, or a tensor type without a shape (other types need none)."""
    return known is None or (known.WhichOneof("value") in (None, "tensor_type") and not known.tensor_type.HasField("shape"))


def zero_feeds(model: onnx.ModelProto) -> dict | None:
    """Zeros for every runtime input (symbolic dims ZERO_FEED_DIM); None if an input is
    not a numeric tensor."""
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        if value.type.WhichOneof("value") != "tensor_type" or not tensor_type.HasField("shape"):
            return None
        try:
            dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        except Exception:
            return None
        if dtype.kind not in "biuf":
            return None
        feeds[value.name] = np.zeros([d.dim_value if d.HasField("dim_value") else ZERO_FEED_DIM for d in tensor_type.shape.dim], dtype)
    return feeds
