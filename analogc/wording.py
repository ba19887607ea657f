"""Counts in printed text: "1 tile", "2 tiles", never "1 tiles" or "tile(s)"."""

from __future__ import annotations


def count(n, noun: str, plural: str | None = None) -> str:
    """`n` and the noun in the number that fits it (`plural` for irregular nouns)."""
    word = noun if n == 1 else (plural or noun + "s")
    return f"{n:,} {word}" if isinstance(n, int) else f"{n} {word}"
