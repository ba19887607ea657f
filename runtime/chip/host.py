"""Host segments: ONNX subgraphs run digitally by onnxruntime."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from analogc.errors import AnalogcError


def make_session(model_bytes: bytes, label: str, spin: bool = True) -> ort.InferenceSession:
    """A CPU session with a fixed thread count (2), so its results do not depend on the
    machine, for a host segment, the reference model or a layer's tile reads. With
    `spin` False its worker threads sleep as soon as a call ends instead of spinning
    for the next one: for calls that alternate with other work (the chip's ADC kernel).

    A MatMul on DequantizeLinear'd int8 weights computes in float32, as the graph says:
    onnxruntime's default (accuracy level 4) fuses it into MatMulNBits and quantises the
    activations to int8, an approximation 0.6% off on a random layer, which the ideal
    chip would then be measured against."""
    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: failures become one AnalogcError line, not a log too
    options.intra_op_num_threads = 2
    options.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "0")
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AnalogcError(f"onnxruntime cannot load {label}: {first}") from None


def run_session(session: ort.InferenceSession, feeds: dict, label: str) -> list[np.ndarray]:
    try:
        return session.run(None, feeds)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AnalogcError(f"onnxruntime failed on {label}: {first}") from None
