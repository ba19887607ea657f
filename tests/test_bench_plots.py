"""The bench's training picture: every ablation line tells apart from the others, and the
epoch axis has whole-number ticks only."""

from __future__ import annotations

import importlib.util
import json

import matplotlib.pyplot as plt
from matplotlib.colors import to_hex

from .conftest import REPO


def load_train_bench():
    spec = importlib.util.spec_from_file_location("train_bench", REPO / "bench" / "train_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_figure_lines_differ_and_epochs_are_whole(tmp_path):
    bench = load_train_bench()
    report = json.loads((REPO / "bench" / "results" / "train.json").read_text())
    ablations = {name: len(res["ablations"]) for name, res in report["datasets"].items()}
    assert min(ablations.values()) >= 13  # the case the issue saw: 13 lines
    fig = bench.training_figure(report)
    try:
        fig.canvas.draw()
        for ax in fig.axes:
            lines = [line for line in ax.get_lines() if line.get_marker() not in ("None", "", None, "_")]  # data, not caps
            styles = [(to_hex(line.get_color()), line.get_linestyle(), line.get_marker()) for line in lines]
            assert len(styles) >= 15 and len(set(styles)) == len(styles), styles  # 13 ablations, float, chip
            assert len({to_hex(line.get_color()) for line in lines}) >= 9
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks), ticks
    finally:
        plt.close(fig)
    cues = [(to_hex(s["color"]), s["linestyle"], s["marker"]) for s in map(bench.ablation_style, range(36))]
    for i, a in enumerate(cues):  # two lines that share a colour differ in pattern and marker, and so on
        for b in cues[i + 1:]:
            assert sum(x != y for x, y in zip(a, b)) >= 2, (a, b)
