"""A convolution's patches as rows gathered from its padded input, described, not formed.

Its own module, numpy only: the compiler's layer graph works out conv shapes with
`im2col`, which makes these, and importing the DAC's kernels for the type would load
numba into every `analogc compile` (0.13 s of the VGG-19 FC compile's imports).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class RowGather(NamedTuple):
    """Rows read out of a flat float32 source: row b·P + p (b < examples, p < P =
    len(position_base)) is source[b·example_stride + position_base[p] + offsets], so a
    convolution's patches (`im2col.layer_gather`) need no patch matrix."""

    source: np.ndarray
    examples: int
    example_stride: int
    position_base: np.ndarray
    offsets: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """The shape of the gathered rows."""
        return self.examples * len(self.position_base), len(self.offsets)

    def rows(self) -> np.ndarray:
        """The gathered rows [examples·P, len(offsets)] (float32), in numpy."""
        starts = np.arange(self.examples, dtype=np.int64)[:, None] * self.example_stride + self.position_base[None, :]
        return self.source[starts.reshape(-1, 1) + self.offsets[None, :]]
