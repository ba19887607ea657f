"""The cost model on the command line: `cost` (text, JSON, PNG written atomically),
the estimate in `plan` and `compile`, and the run's cost in `run`."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from analogc.cli import main
from tests.conftest import assert_user_error
from tests.test_cli import random_mlp

PER_EXAMPLE_FIELDS = ("energy_per_example_j", "latency_per_example_s", "throughput_examples_per_s", "gops_per_w", "gops_per_mm2")


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cost_cli")
    model = random_mlp(folder / "mlp.onnx")
    out = folder / "mlp.atp"
    assert main(["compile", str(model), "--target", "tiny", "-o", str(out), "--placer", "greedy", "-q"]) == 0
    return out


def json_of(cli, *argv) -> dict:
    result = cli(*argv, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_cost_json_has_the_figures_and_breakdowns(cli, program):
    cost = json_of(cli, "cost", program)["cost"]
    for key in PER_EXAMPLE_FIELDS + ("energy_by_layer_j", "energy_by_kind_j", "time_by_layer_s", "counts", "peak", "counts_by_layer_tile"):
        assert key in cost, key
    assert cost["examples"] == 1 and cost["tiles_used"] == 3
    assert cost["counts"]["macs"] == 7770 and cost["counts"]["word_hops"] == 192  # hand count: tests/runtime/test_cost.py
    assert sum(cost["energy_by_layer_j"].values()) == pytest.approx(cost["energy_per_example_j"])
    assert sum(cost["energy_by_kind_j"].values()) == pytest.approx(cost["energy_per_example_j"])
    assert cost["gops_per_w"] == pytest.approx(2 * 7770 / cost["energy_per_example_j"] / 1e9)


def test_cost_text_tables(cli, program):
    result = cli("cost", program)
    assert result.code == 0, result.err
    for fragment in ("nJ/example", "GOP/s/W", "GOP/s/mm²", "by layer", "by operation kind", "adc_conversions", "fc1", "28,065"):
        assert fragment in result.out, fragment


def test_cost_with_another_cost_table(cli, program, tmp_path):
    spec = tmp_path / "cheap.toml"
    spec.write_text("[cost]\nadc_energy = 0.0\ndac_energy = 0.0\nmvm_energy_per_mac = 0.0\n")
    cost = json_of(cli, "cost", program, "--target", spec)["cost"]
    assert cost["energy_by_kind_j"]["adc_conversions"] == 0.0
    assert cost["energy_by_kind_j"]["digital_ops"] > 0


def test_cost_png_is_written_atomically(cli, program, tmp_path):
    png = tmp_path / "cost.png"
    out = json_of(cli, "cost", program, "--png", png)
    assert out["png"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["cost.png"]  # no temporary file left
    before = png.read_bytes()
    assert_user_error(cli("cost", program, "--png", tmp_path / "missing" / "c.png"), "does not exist")
    assert_user_error(cli("cost", program, "--png", tmp_path / "c.jpg"), ".png")
    assert_user_error(cli("cost", tmp_path / "nothing.atp"), "no such file")
    assert png.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["cost.png"]


def test_plan_and_compile_give_the_static_estimate(cli, program):
    plan = json_of(cli, "plan", program)
    cost = json_of(cli, "cost", program)["cost"]
    assert plan["cost_estimate"] == {k: v for k, v in cost.items() if k != "counts_by_layer_tile"}
    text = cli("plan", program).out
    assert "cost estimate of one inference" in text and "GOP/s/W" in text


def test_run_reports_the_cost_of_what_it_ran(cli, program, tmp_path):
    x = np.random.default_rng(0).normal(size=(9, 100)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    run = json_of(cli, "run", program, "--input", tmp_path / "x.npy", "--batch-size", "4")
    cost = run["cost"]
    for key in PER_EXAMPLE_FIELDS:
        assert cost[key] > 0, key
    assert cost["examples"] == 9 and cost["counts"]["macs"] == 9 * 7770
    static = json_of(cli, "cost", program)["cost"]
    # counts are linear in the examples: the run's per-example figures are the estimate's
    for key in PER_EXAMPLE_FIELDS:
        assert cost[key] == pytest.approx(static[key], rel=1e-9), key
    assert cost["setup_energy_j"] > 0  # closed-loop programming
    ideal = json_of(cli, "run", program, "--input", tmp_path / "x.npy", "--ideal")["cost"]
    assert ideal["energy_per_example_j"] == pytest.approx(cost["energy_per_example_j"]) and ideal["setup_energy_j"] == 0
    text = cli("run", program, "--input", tmp_path / "x.npy")
    assert "nJ/example" in text.out and "GOP/s/mm²" in text.out


def test_run_cost_is_deterministic(cli, program, tmp_path):
    np.save(tmp_path / "x.npy", np.ones((5, 100), dtype=np.float32))
    first = json_of(cli, "run", program, "--input", tmp_path / "x.npy", "--seed", "4")["cost"]
    again = json_of(cli, "run", program, "--input", tmp_path / "x.npy", "--seed", "4")["cost"]
    assert first == again
    assert os.path.exists(tmp_path / "x.npy")


def test_cost_legends_cover_no_bar(tmp_path):
    """Each panel's legend sits outside its bars: digits' two layers take equally long,
    so both latency bars reach the right edge, where the legend used to sit on them."""
    import matplotlib.pyplot as plt

    from analogc.cost_view import cost_figure, estimate_for
    from analogc.runtime.format.program import load_program
    from tests.conftest import MODELS

    assert main(["compile", str(MODELS / "digits_mlp.onnx"), "-o", str(tmp_path / "d.atp"), "-q"]) == 0
    _, report = estimate_for(load_program(tmp_path / "d.atp"))
    fig = cost_figure(report, "test")
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            legend = ax.get_legend()
            assert legend is not None
            box = legend.get_window_extent(renderer)
            for bar in ax.patches:
                assert not box.overlaps(bar.get_window_extent(renderer)), ax.get_title()
    finally:
        plt.close(fig)
