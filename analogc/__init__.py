"""analogc: compile ONNX networks onto analog in-memory tiles and simulate the chip.

The command line lives in `analogc.cli`; the compiler in `analogc.mapper`; the tile
program format and the simulated chip in `analogc.runtime`.
"""

from analogc.errors import AnalogcError

__all__ = ["AnalogcError"]
__version__ = "0.1.0"
