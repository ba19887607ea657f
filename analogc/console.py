"""Where every command prints: its human summary (a rich console) or its --json object.

Below the command modules and above nothing of theirs, so that no command imports the
parser (analogc.cli) to print."""

from __future__ import annotations

import json
import math

from rich.console import Console

PIPE_WIDTH = 100_000  # columns assumed when stdout is not a terminal: lines are never cut


def console_for(args) -> Console:
    """Human output goes to stdout unless --json owns stdout, then to stderr. Text is
    printed as it is (no rich markup): names come from the user's model and target
    ("[/]" would be a markup error, "[bold]" would vanish); a line that wants markup
    asks for it (markup=True) and escapes what it prints."""
    console = Console(stderr=bool(getattr(args, "json", False)), highlight=False, markup=False)
    if not console.is_terminal:
        # Piped or redirected text is for grep and files: no hard wrap of long lines
        # (rich would cut them at 80 columns), and tables at their natural width.
        console.soft_wrap = True
        console.width = PIPE_WIDTH
    return console


def print_json(obj) -> None:
    """--json: one JSON object on stdout (numpy scalars as floats)."""
    print(json.dumps(finite(obj), indent=1, sort_keys=False, default=float, allow_nan=False))


def finite(value):
    """The object with every NaN or infinite number as null: strict JSON has no NaN or
    Infinity, and jq or a browser refuses them."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
