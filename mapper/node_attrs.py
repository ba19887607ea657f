"""Reading ONNX node attributes and naming nodes, shared by the frontend's converters
and the activation fusion."""

from __future__ import annotations

import onnx
from onnx import helper


def attributes(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def text_attribute(node: onnx.NodeProto, name: str, default: str) -> str:
    """A string attribute as text; bytes that are not UTF-8 (a damaged file) become
    U+FFFD, which matches no value a converter looks for, instead of a crash."""
    value = attributes(node).get(name, default)
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def node_label(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"{node.op_type}_{index}"

