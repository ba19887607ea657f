"""A tile program edited and re-checksummed still fails with a clear error, not a crash."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from analogc.errors import AnalogcError
from analogc.mapper import compile_model
from analogc.runtime.format.program import Program, load_program, save_program
from analogc.runtime.format.spec import load_target
from tests.conftest import assert_user_error
from tests.mapper.test_place import mlp


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prog")
    return compile_model(mlp(folder / "m.onnx", [70, 40, 10]), load_target("tiny"), time_limit=1)


def edited(program, edit):
    meta, arrays = copy.deepcopy(program.meta), dict(program.arrays)
    edit(meta, arrays)
    return Program(meta, arrays, dict(program.members))


CASES = {
    "tile outside grid": (lambda m, a: m["blocks"][0].update(tile=[99, 0]), "outside the 10x10 grid"),
    "offset outside tile": (lambda m, a: m["blocks"][0].update(offset=[63, 63]), "does not fit inside its tile"),
    "rows outside layer": (lambda m, a: m["blocks"][0].update(rows=[0, 500]), "outside layer"),
    "unknown layer": (lambda m, a: m["blocks"][0].update(layer="nope"), "unknown layer"),
    "weights reshaped": (lambda m, a: a.update({f"weight/{m['layers'][0]['name']}": np.zeros((3, 3), np.float32)}), "weights of layer"),
    "bias missing": (lambda m, a: a.pop(f"bias/{m['layers'][0]['name']}"), "no bias array"),
    "unknown instruction": (lambda m, a: m["instructions"]["inference"].append({"op": "launch"}), "unknown instruction"),
    "mvm of unknown block": (lambda m, a: m["instructions"]["inference"].append({"op": "mvm", "block": 999}), "unknown block"),
    "bad target value": (lambda m, a: m["target"]["chip"].update(grid_rows=-1), "grid_rows"),
    "layer without shape": (lambda m, a: m["layers"][0].pop("shape"), "lacks a [K, N] shape"),
    "rows not integers": (lambda m, a: m["blocks"][0].update(rows=[0, {}]), "malformed rows"),
    "layer name a list": (lambda m, a: m["blocks"][0].update(layer=[1]), "malformed"),
    "input never produced": (lambda m, a: m["layers"][1].update(input="nowhere"), "before anything produces it"),
    "output never produced": (lambda m, a: m["model"]["outputs"][0].update(name="ghost"), "never produced"),
    "bad activation": (lambda m, a: m["layers"][0].update(activation={"op": "mish"}), "unknown activation"),
    "bad dtype": (lambda m, a: m["layers"][0].update(dtype=1.5), "dtype"),
    "bad placement": (lambda m, a: m["placement"].update(tile=[64, {}]), "placement"),
    "negative adc_range": (lambda m, a: m["layers"][0].update(adc_range=-1.0), "bad adc_range"),
    "adc_range a string": (lambda m, a: m["layers"][0].update(adc_range="big"), "bad adc_range"),
    # Finite but beyond what the float32 periphery computes: run overflowed (exit 1) or gave NaN.
    "w_max tiny": (lambda m, a: m["layers"][0].update(w_max=1e-300), "bad w_max"),
    "w_max huge": (lambda m, a: m["layers"][0].update(w_max=1e300), "bad w_max"),
    "adc_range huge": (lambda m, a: m["layers"][0].update(adc_range=1e300), "bad adc_range"),
    "adc_range tiny": (lambda m, a: m["layers"][0].update(adc_range=1e-300), "bad adc_range"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_edited_program_is_refused(tmp_path, program, case, cli):
    edit, message = CASES[case]
    path = tmp_path / "edited.atp"
    save_program(edited(program, edit), path)
    with pytest.raises(AnalogcError, match="edited.atp"):
        load_program(path)
    assert_user_error(cli("run", path, "--input", tmp_path / "x.npy"), message)


def test_unedited_program_loads(tmp_path, program):
    save_program(program, tmp_path / "ok.atp")
    assert load_program(tmp_path / "ok.atp").blocks == program.blocks


@pytest.fixture(scope="module")
def conv_program(tmp_path_factory):
    from tests.mapper.conv_builders import conv_model

    folder = tmp_path_factory.mktemp("conv")
    return compile_model(conv_model(folder / "c.onnx", cin=3, cout=4, kernel=3, size=6), load_target("tiny"), time_limit=1)


CONV_CASES = {
    "kind unknown": (lambda layer: layer.update(kind="pool"), "has kind 'pool'"),
    "no geometry": (lambda layer: layer.pop("conv"), "has no geometry"),
    "kernel not matching rows": (lambda layer: layer["conv"].update(kernel=[2, 2]), "is not its 27 weight rows"),
    "zero stride": (lambda layer: layer["conv"].update(strides=[0, 1]), "bad kernel, strides"),
    "pads of the wrong rank": (lambda layer: layer["conv"].update(pads=[1, 1]), "do not match its 2-D kernel"),
    "auto_pad unknown": (lambda layer: layer["conv"].update(auto_pad="SAME"), "bad auto_pad"),
    "reads_per_example zero": (lambda layer: layer.update(reads_per_example=0), "bad reads_per_example"),
}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_edited_conv_layer_is_refused(tmp_path, conv_program, case, cli):
    edit, message = CONV_CASES[case]
    path = tmp_path / "edited.atp"
    save_program(edited(conv_program, lambda m, a: edit(m["layers"][0])), path)
    assert_user_error(cli("run", path, "--input", tmp_path / "x.npy"), message)
