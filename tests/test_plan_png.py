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


def figure_of(cli, tmp_path, model, *target):
    from analogc.plan_png import plan_figure
    from analogc.runtime.format.program import load_program

    path = tmp_path / "m.atp"
    assert cli("compile", MODELS / model, *target, "-o", path, "-q").code == 0
    program = load_program(path)
    return program, plan_figure(program)


def names_in(fig) -> dict:
    """gid of every block name drawn -> its text artist."""
    return {a.get_gid(): a for ax in fig.axes for a in ax.texts if (a.get_gid() or "").startswith("block-")}


def test_every_block_of_the_zoomed_tile_is_named_and_fits(cli, tmp_path):
    """Fashion-MNIST's MLP in one 512x512 tile: slivers (fc3's 10 columns, fc2's last
    rows) far narrower than an inch get a leader label, the rest a label that fits."""
    import matplotlib.pyplot as plt

    program, fig = figure_of(cli, tmp_path, "fashion_mlp.onnx")
    try:
        names = names_in(fig)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        zoom = fig.axes[1]
        rectangles = {(tuple(p.get_xy()), p.get_width(), p.get_height()): p for p in zoom.patches if p.get_width() < 1}
        for block in program.blocks:
            key = f"{block['layer']} {tuple(block['rows'])} {tuple(block['cols'])}"
            assert f"block-label {key}" in names or f"block-leader {key}" in names, key
        assert any(k.startswith("block-leader fc3_matmul") for k in names)  # 10 of 512 columns
        for gid, text in names.items():
            if gid.startswith("block-label"):
                box = text.get_window_extent(renderer)
                holders = [p.get_window_extent(renderer) for p in rectangles.values()
                           if p.get_window_extent(renderer).contains(*box.p0) and p.get_window_extent(renderer).contains(*box.p1)]
                assert holders, f"{gid} sticks out of its block"
    finally:
        plt.close(fig)


def test_legend_lists_faulty_tiles_and_data_arrows_only_when_present(cli, tmp_path):
    import matplotlib.pyplot as plt

    def legend_labels(fig):
        return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]

    _, alone = figure_of(cli, tmp_path, "digits_mlp.onnx")  # one tile, no faults: neither
    _, split = figure_of(cli, tmp_path, "fashion_mlp.onnx", "--target", "tiny")  # 56 tiles: data flows
    spec = tmp_path / "faulty.toml"
    spec.write_text('name = "faulty"\n[chip]\nfaulty_tiles = [[0, 0]]\n')
    _, faulty = figure_of(cli, tmp_path, "digits_mlp.onnx", "--target", spec)
    try:
        assert not any("faulty" in t or "data between" in t for t in legend_labels(alone))
        assert any("data between tiles" in t for t in legend_labels(split))
        assert not any("faulty" in t for t in legend_labels(split))
        assert any("faulty tile" in t for t in legend_labels(faulty))
    finally:
        for fig in (alone, split, faulty):
            plt.close(fig)
