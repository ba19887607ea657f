"""A conv layer's fused output stage (scale, digital bias, ReLU, fold in one pass) gives
the bits of the numpy steps it replaces, serial or parallel, on 1 or 2 threads; it
declines what it does not do; and `analogc run` outputs do not change with it."""

from __future__ import annotations

import numpy as np
import pytest

from analogc.cli import main
from analogc.data import fit_to_input, load_dataset
from analogc.runtime.chip import chip as chip_module
from analogc.runtime.chip import conv_store, im2col
from analogc.runtime.chip.activations import apply_activation
from analogc.runtime.format.program import load_program
from analogc.runtime.physics import cores
from tests.conftest import MODELS

needs_numba = pytest.mark.skipif(not conv_store.HAVE_NUMBA, reason="numba is not installed")


def numpy_store(acc, scale, bias, activation, batch, out_spatial):
    """Chip.store's numpy steps for a conv layer."""
    y = acc.copy()
    if scale is not None:
        y *= scale
    if bias is not None:
        y = y + bias.astype(np.float32)
    return im2col.fold(apply_activation(y, activation), batch, out_spatial)


def awkward_accumulator(rng, rows: int, channels: int) -> np.ndarray:
    acc = rng.normal(size=(rows, channels)).astype(np.float32)
    acc.flat[::7] = -0.0  # ReLU turns −0 into +0, as np.maximum does
    acc.flat[3::11] = np.nan
    acc.flat[5::13] = -np.inf
    return acc


@needs_numba
@pytest.mark.parametrize("op", ["relu", "identity"])
@pytest.mark.parametrize("has_scale, has_bias", [(True, False), (True, True), (False, False), (False, True)])
@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_fused_store_equals_the_numpy_steps(monkeypatch, op, has_scale, has_bias, parallel):
    import numba  # optional: the test is skipped without it

    rng = np.random.default_rng(2)
    batch, out_spatial, channels = 6, (5, 7), 3
    acc = awkward_accumulator(rng, batch * 35, channels)
    scale = rng.uniform(0, 3, size=(batch * 35, 1)).astype(np.float32) if has_scale else None
    bias = rng.normal(size=channels) if has_bias else None  # float64, as a program may store it
    expected = numpy_store(acc, scale, bias, {"op": op}, batch, out_spatial)
    monkeypatch.setattr(conv_store, "PARALLEL_VALUES", 0)
    monkeypatch.setattr(cores.CHOICE, "parallel_next", lambda key: parallel)
    monkeypatch.setattr(cores.LOAD, "cores", lambda: 0.0)  # as if the machine were idle
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(threads)
        try:
            got = conv_store.fused_store(acc.copy(), scale, bias, {"op": op}, batch, out_spatial, np.float32)
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        assert got.shape == expected.shape and got.dtype == np.float32
        assert got.tobytes() == expected.tobytes()


def test_fused_store_declines_what_it_does_not_do():
    acc = np.ones((8, 2), np.float32)
    assert conv_store.fused_store(acc, None, None, {"op": "tanh"}, 2, (4,), np.float32) is None
    assert conv_store.fused_store(acc, None, None, {"op": "relu"}, 2, (4,), np.float16) is None
    assert conv_store.fused_store(acc.astype(np.float64), None, None, {"op": "relu"}, 2, (4,), np.float32) is None
    assert conv_store.fused_store(acc, None, None, {"op": "relu"}, 3, (4,), np.float32) is None  # rows ≠ batch·positions


@needs_numba
@pytest.mark.parametrize("extra", [[], ["--ideal"], ["--drift-time", "86400"]], ids=["default", "ideal", "1-day"])
def test_run_outputs_do_not_change_with_the_fused_store(monkeypatch, tmp_path, extra):
    program = tmp_path / "fashion_cnn.atp"
    assert main(["compile", str(MODELS / "fashion_cnn.onnx"), "-o", str(program), "-q"]) == 0
    info, dataset = load_program(program).meta["model"]["inputs"][0], load_dataset("fashion-mnist")
    np.save(tmp_path / "x.npy", fit_to_input(dataset.x_test[:200], info["shape"], dataset.name).astype(np.float32))
    outputs, done = [], []

    def counted(*args):
        out = conv_store.fused_store(*args)
        done.append(out is not None)
        return out

    for fused in (True, False):
        monkeypatch.setattr(chip_module, "fused_store", counted if fused else (lambda *args: None))
        out = tmp_path / f"out-{fused}.npy"
        assert main(["run", str(program), "--input", str(tmp_path / "x.npy"), "--output", str(out), "--seed", "4", "-q", *extra]) == 0
        outputs.append(np.load(out))
    assert done and all(done)  # both conv layers took the fused pass
    assert outputs[0].tobytes() == outputs[1].tobytes()
