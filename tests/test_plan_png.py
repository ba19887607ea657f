"""`plan --png`: the zoom panel's window around the tiles in use, and the picture itself."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib.image
import pytest

from analogc.plan_png import zoom_window

from .conftest import MODELS


def plan_of(grid, tiles):
    return SimpleNamespace(meta={"placement": {"grid": list(grid)}}, blocks=[{"tile": list(t)} for t in tiles])


@pytest.mark.parametrize(
    "grid, tiles, window",
    [
        ((8, 8), [(2, 3), (4, 5), (3, 3)], (2, 5, 3, 6)),  # 3x3 of 64 tiles: zoom
        ((8, 8), [(0, 0)], (0, 1, 0, 1)),
        ((8, 8), [(0, 0), (3, 3)], (0, 4, 0, 4)),  # exactly a quarter: still zoom
        ((8, 8), [(0, 0), (3, 4)], None),  # 4x5 is more than a quarter
        ((2, 2), [(1, 1)], (1, 2, 1, 2)),
        ((8, 8), [], None),
    ],
)
def test_zoom_window_is_the_box_around_the_tiles_in_use(grid, tiles, window):
    assert zoom_window(plan_of(grid, tiles)) == window


def test_plan_png_has_the_zoom_panel_beside_the_grid(cli, tmp_path):
    """digits_mlp uses one tile of 64: the picture is two panels wide."""
    assert cli("compile", MODELS / "digits_mlp.onnx", "-o", tmp_path / "m.atp", "-q").code == 0
    assert cli("plan", tmp_path / "m.atp", "--png", tmp_path / "plan.png", "-q").code == 0
    height, width, _ = matplotlib.image.imread(tmp_path / "plan.png").shape
    assert width > 2 * height
