"""float32 values on the bfloat16 grid (8 significant bits), and their 16-bit words.

Training streams a layer's per-cell constants at every example: the first layer's
update and forward read are bound by memory, not arithmetic. Two of those constants
need no more than 8 significant bits: a capacitor's up and down step sizes (drawn with a
30% spread, so a 0.4% grid changes nothing that matters) and a cell's read-noise
variance (it only sets the σ of a read's noise). They are kept as float32 arrays whose
low 16 bits are zero, so every numpy path computes with exactly the values the compiled
loop decodes from the 16-bit words (`high_words`, `pack_pairs`): the bits of a training
run do not depend on which path ran.
"""

from __future__ import annotations

import numpy as np

LOW_MASK = np.uint32(0xFFFF)
HIGH_MASK = np.uint32(0xFFFF0000)


def round_to_grid(a) -> np.ndarray:
    """a as float32, rounded to the nearest value with 8 significant bits (ties to even;
    NaN and ±inf stay what they are, a value past the largest rounds to ±inf)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    bits = a.view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) & HIGH_MASK
    rounded = np.where(np.isnan(a), (bits & HIGH_MASK) | np.uint32(0x00400000), rounded)  # a NaN stays a (quiet) NaN
    return rounded.astype(np.uint32).view(np.float32).reshape(a.shape)


def on_grid(a: np.ndarray) -> bool:
    """Whether every value of the float32 array a has its low 16 bits zero."""
    return bool(a.dtype == np.float32 and not (np.ascontiguousarray(a).view(np.uint32) & LOW_MASK).any())


def high_words(a: np.ndarray) -> np.ndarray:
    """The high 16 bits of each float32 of a (uint16, same shape, C order): the value
    itself when a is on the grid (`counter_rng._bits_f32(word << 16)` decodes it)."""
    return (np.ascontiguousarray(a, dtype=np.float32).view(np.uint32) >> np.uint32(16)).astype(np.uint16)


def pack_pairs(high: np.ndarray, low: np.ndarray) -> np.ndarray | None:
    """One int32 word per cell holding two float32 arrays on the grid: high's bits in the
    top half, low's in the bottom (word & 0xFFFF0000 and word << 16 are the two values);
    None if either array is off the grid (its values would not survive)."""
    if not (on_grid(high) and on_grid(low)):
        return None
    h = np.ascontiguousarray(high).view(np.uint32)
    lo = np.ascontiguousarray(low).view(np.uint32) >> np.uint32(16)
    return (h | lo).view(np.int32)
