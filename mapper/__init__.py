"""The compiler: ONNX frontend → layer graph → partition → placement → tile program."""

from analogc.mapper import conv  # noqa: F401 (registers the Conv converter with the frontend)
from analogc.mapper.compile import compile_model

__all__ = ["compile_model"]
