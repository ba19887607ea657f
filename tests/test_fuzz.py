"""Property-based fuzzing of every loader (tests/fuzz_properties.py), bounded so the
whole file stays fast; `bench/fuzz_bench.py` runs the same properties far longer."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from tests.fuzz_properties import PROPERTIES

# Examples per property (2285 in all): about 20 s together on the shared 2-core machine.
EXAMPLES = {
    "onnx_bytes": 300,
    "onnx_fields": 300,
    "atp_member": 200,
    "atp_json": 200,
    "atp_arrays": 150,
    "toml": 300,
    "input_npy_npz": 300,
    "data_npz": 250,
    "data_idx": 200,
    "checkpoint": 60,
    "sweep_folder": 25,
}


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_loader_fuzz(name):
    assert set(EXAMPLES) == set(PROPERTIES)
    prop = settings(
        max_examples=EXAMPLES[name],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )(PROPERTIES[name])
    prop()
