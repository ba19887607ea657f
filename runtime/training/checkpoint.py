"""Training checkpoints: one .npz file, written atomically, never unpickled.

`DIR/checkpoint.npz` holds the arrays (device state, digital biases, the baseline's
weights) and, as a uint8 member `__meta__`, the JSON of everything else (position in the
data, generator state, history, counters, and what the run was started with). A crash or
a signal during a write leaves the previous checkpoint in place.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from analogc.atomic import atomic_path
from analogc.errors import AnalogcError
from analogc.npy_read import read_npz

FILE = "checkpoint.npz"
META = "__meta__"
VERSION = 1


def checkpoint_path(folder: Path) -> Path:
    return Path(folder) / FILE


def check_folder(folder: Path) -> None:
    """`folder` is a folder or can be made one; `train` checks before it starts, so a bad
    path fails now, not at the first checkpoint."""
    folder = Path(folder)
    for path in (folder, *folder.parents):
        if path.exists():
            if path.is_dir():
                return
            raise AnalogcError(f"{folder}: --checkpoint must be a folder" if path == folder else f"{folder}: {path} is not a folder")


def save_checkpoint(folder: Path, arrays: dict, meta: dict) -> None:
    folder = Path(folder)
    check_folder(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AnalogcError(f"{folder}: cannot make the checkpoint folder ({exc.strerror or exc})") from None
    payload = dict(arrays)
    payload[META] = np.frombuffer(json.dumps({"version": VERSION, **meta}).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **payload)
    with atomic_path(checkpoint_path(folder)) as tmp:
        tmp.write_bytes(buffer.getvalue())


SETTING_NAMES = {
    "program": "the program", "data": "the data set", "examples": "the number of training examples",
    "data_sha": "the training data", "init": "--init", "seed": "--seed", "lr": "the learning rate",
    "baseline": "--baseline", "limit": "--limit",
}


def settings_difference(saved, current: dict) -> str:
    """Which run settings differ between a checkpoint and this run, in words: the
    setting, and both values where they are short enough to show."""
    if not isinstance(saved, dict):
        return "program, data, seed, init, learning rate, baseline or limit differ (an older checkpoint does not say which)"
    parts = []
    for key, now in current.items():
        then = saved.get(key)
        if then == now:
            continue
        name = SETTING_NAMES.get(key, key)
        if key in ("program", "data_sha") or len(repr(then)) > 40 or len(repr(now)) > 40:
            parts.append(f"{name} differs")
        else:
            parts.append(f"{name} was {json.dumps(then)}, now {json.dumps(now)}")
    return "; ".join(parts) or "its fingerprint does not match its settings (damaged)"


def load_checkpoint(folder: Path) -> tuple[dict, dict] | None:
    """(arrays, meta) of the checkpoint in `folder`, or None when there is none."""
    path = checkpoint_path(Path(folder))
    if not path.is_file():
        return None
    try:
        arrays = read_npz(path, str(path))  # headers, sizes and zip bombs checked before reading
        meta = json.loads(arrays.pop(META).tobytes().decode())
    except AnalogcError as exc:
        raise AnalogcError(f"not a readable training checkpoint: {exc}") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, UnicodeDecodeError) as exc:
        raise AnalogcError(f"{path}: not a readable training checkpoint ({exc})") from None
    if not isinstance(meta, dict) or meta.get("version") != VERSION:
        raise AnalogcError(f"{path}: checkpoint format {meta.get('version') if isinstance(meta, dict) else '?'} is not {VERSION}")
    return arrays, meta
