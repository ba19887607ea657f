"""Host segments: ONNX subgraphs run digitally by onnxruntime."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from analogc.errors import AnalogcError


def make_session(model_bytes: bytes, label: str) -> ort.InferenceSession:
    """A single-threaded-deterministic CPU session for a host segment or reference model."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 2
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
