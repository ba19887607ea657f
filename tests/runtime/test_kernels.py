"""The compiled twins in runtime/physics/kernels.py and dac_kernels.py against their numpy references, the counter-based
normal generator's statistics, and the chip's determinism with the compiled path in place."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import ndtr

from analogc.mapper import compile_model
from analogc.runtime.chip import im2col
from analogc.runtime.chip.chip import Chip
from analogc.runtime.format.spec import load_target
from analogc.runtime.physics import counter_rng, dac_kernels, kernels, periphery
from tests.conftest import REPO
from tests.mapper.onnx_builders import mlp_model, random_feeds, save

needs_numba = pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
PERIPHERY = load_target(None).periphery


# --- The normal generator. --------------------------------------------------------------------


def _splitmix64_reference(seed: int, count: int) -> list[int]:
    """Vigna's splitmix64.c transcribed to Python ints: x += golden; mix x; return."""
    mask, x, out = (1 << 64) - 1, seed, []
    for _ in range(count):
        x = (x + 0x9E3779B97F4A7C15) & mask
        z = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append(z ^ (z >> 31))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2**63 + 12345, 2**64 - 1])
def test_splitmix64_every_form_matches_the_reference(seed):
    """The one mix (counter_rng.mix64) as numpy array, compiled scalar and Python int."""
    expected = _splitmix64_reference(seed, 40)
    assert counter_rng.splitmix64(seed, np.arange(40, dtype=np.uint64)).tolist() == expected
    states = [(seed + (c + 1) * 0x9E3779B97F4A7C15) & ((1 << 64) - 1) for c in range(40)]
    assert [counter_rng.mix64_int(z) for z in states] == expected
    if kernels.HAVE_NUMBA:
        assert [int(counter_rng._splitmix64_nb(np.uint64(z))) for z in states] == expected
    if seed == 0:
        assert expected[0] == 0xE220A8397B1DCDAF  # the published first output for seed 0


@pytest.fixture(scope="module")
def million():
    return counter_rng.counter_normal(20240601, (1000, 1000)).ravel().astype(np.float64)


def test_normal_moments(million):
    assert million.dtype == np.float64 and np.isfinite(million).all()
    # Standard error of the mean is 1e-3; of the std, 7e-4.
    assert abs(million.mean()) < 5e-3
    assert abs(million.std() - 1.0) < 1e-2
    assert abs(np.mean(million**3)) < 2e-2
    assert abs(np.mean(million**4) - 3.0) < 5e-2


def test_normal_no_correlation(million):
    n = million.size
    # Consecutive counters (cosine outputs), consecutive sine outputs, and the two normals
    # of one pair (outputs p and n/2 + p). Standard error 1e-3 each.
    assert abs(np.corrcoef(million[: n // 2 - 1], million[1 : n // 2])[0, 1]) < 5e-3
    assert abs(np.corrcoef(million[n // 2 : -1], million[n // 2 + 1 :])[0, 1]) < 5e-3
    assert abs(np.corrcoef(million[: n // 2], million[n // 2 :])[0, 1]) < 5e-3
    assert abs(np.corrcoef(million[: n // 2] ** 2, million[n // 2 :] ** 2)[0, 1]) < 5e-3


def test_normal_tails_and_distribution(million):
    n = million.size
    # P(|z| > 3) = 0.26998 %; binomial standard error 0.0052 %.
    beyond3 = np.mean(np.abs(million) > 3)
    assert abs(beyond3 - 0.0026998) < 3e-4
    # P(|z| > 4) = 6.33e-5: about 63 of 1e6.
    assert 30 <= np.sum(np.abs(million) > 4) <= 110
    # Box-Muller with a 32-bit u1 bounds |z| by sqrt(2·32·ln 2) ≈ 6.66.
    assert np.abs(million).max() < 6.7
    # Kolmogorov-Smirnov against the normal CDF: the 0.1 % critical value is 1.95/sqrt(n).
    z = np.sort(million)
    cdf = ndtr(z)
    d = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
    assert d < 1.95 / math.sqrt(n)


def test_normal_deterministic_per_key():
    a = counter_rng.counter_normal(7, (64, 33))
    np.testing.assert_array_equal(a, counter_rng.counter_normal(7, (64, 33)))
    b = counter_rng.counter_normal(8, (64, 33))
    assert not np.any(a == b)
    assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.1


def test_counter_normal_layout():
    # n = 15 outputs, H = 8 pairs: outputs 0..7 are the cosines, 8..14 the sines of pairs 0..6.
    z_cos, z_sin = counter_rng.normal_pairs(5, np.arange(8, dtype=np.uint64))
    got = counter_rng.counter_normal(5, (3, 5))
    assert got.shape == (3, 5) and got.dtype == np.float32
    np.testing.assert_array_equal(got.ravel(), np.concatenate([z_cos, z_sin[:7]]))
    np.testing.assert_array_equal(counter_rng.counter_normal(5, 15), got.ravel())
    assert counter_rng.counter_normal(5, (0, 4)).shape == (0, 4)


def test_counter_normal_stands_in_for_a_generator():
    rng = counter_rng.CounterNormal(11)
    z = rng.standard_normal((4, 6), dtype=np.float32)
    assert z.dtype == np.float32
    np.testing.assert_array_equal(z, counter_rng.counter_normal(11, (4, 6)))


@needs_numba
@pytest.mark.parametrize("key", [0, 1, 2**63 - 1, 123456789])
@pytest.mark.parametrize("first, count", [(0, 1), (0, 4099), (1_000_003, 777)])
def test_compiled_normals_match_numpy(key, first, count):
    z_cos, z_sin = np.empty(count, np.float32), np.empty(count, np.float32)
    counter_rng._normal_pairs_nb(np.uint64(key), first, z_cos, z_sin)
    ref_cos, ref_sin = counter_rng.normal_pairs(key, np.arange(first, first + count, dtype=np.uint64))
    np.testing.assert_array_equal(z_cos, ref_cos)
    np.testing.assert_array_equal(z_sin, ref_sin)


# --- The ADC kernel. --------------------------------------------------------------------------


def read(rows, cols, seed=0, variance=True):
    """A block read in weight units: y ~ O(w_max), variance ~ (0.05 w_max)²."""
    rng = np.random.default_rng(seed)
    y = (rng.standard_normal((rows, cols)) * 3.0).astype(np.float32)
    var = (rng.random((rows, cols)) * 0.05**2).astype(np.float32) if variance else None
    return y, var


FLAGS = [
    pytest.param(dict(), id="default"),
    pytest.param(dict(quantization=False), id="no-quantization"),
    pytest.param(dict(output_noise_enabled=False), id="no-output-noise"),
    pytest.param(dict(quantization=False, output_noise_enabled=False), id="no-quantization-no-output-noise"),
    pytest.param(dict(adc_bits=4, adc_bound=2.0), id="4-bit-saturating"),
]


@needs_numba
@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("variance", [True, False], ids=["read-noise", "no-read-noise"])
@pytest.mark.parametrize("alpha", [None, 0.93], ids=["no-drift-comp", "drift-comp"])
@pytest.mark.parametrize("shape, acc_cols, col0", [((33, 17), 17, 0), ((256, 250), 250, 0), ((40, 24), 61, 30), ((5, 1), 3, 2)],
                         ids=["odd-full", "bench-full", "col-split", "one-col"])
def test_adc_twins_agree(flags, variance, alpha, shape, acc_cols, col0):
    spec = dataclasses.replace(PERIPHERY, **flags)
    y, var = read(*shape, variance=variance)
    start = np.random.default_rng(1).standard_normal((shape[0], acc_cols)).astype(np.float32)
    compiled, reference = start.copy(), start.copy()
    kernels.adc_accumulate_compiled(compiled, col0, y, var, 0.37, alpha, spec, key=99)
    kernels.adc_accumulate_numpy(reference, col0, y, var, 0.37, alpha, spec, key=99)
    # Same IEEE operations in the same order: equal bits (stricter than any tolerance, which
    # would be meaningless after quantisation: one ulp can move an output by a level).
    np.testing.assert_array_equal(compiled, reference)
    outside = np.ones(acc_cols, bool)
    outside[col0 : col0 + shape[1]] = False
    np.testing.assert_array_equal(compiled[:, outside], start[:, outside])


def test_adc_numpy_twin_against_float64():
    """The numpy twin against the equation in float64, the same normals."""
    y, var = read(64, 30)
    w_max, alpha, key = 0.37, 0.93, 5
    z = counter_rng.counter_normal(key, y.shape).astype(np.float64)
    sigma = PERIPHERY.output_noise
    expected = (y / w_max + np.sqrt(var / w_max**2 + sigma**2) * z).astype(np.float64)

    got = np.zeros_like(y)
    kernels.adc_accumulate_numpy(got, 0, y, var, w_max, alpha, dataclasses.replace(PERIPHERY, quantization=False), key)
    np.testing.assert_allclose(got, expected * w_max * alpha, rtol=1e-5, atol=1e-6)

    got = np.zeros_like(y)
    kernels.adc_accumulate_numpy(got, 0, y, var, w_max, alpha, PERIPHERY, key)
    step = PERIPHERY.adc_bound / (2 ** (PERIPHERY.adc_bits - 1) - 1)
    levels = got / (w_max * alpha * step)
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)  # on the ADC grid
    ideal = np.clip(expected, -PERIPHERY.adc_bound, PERIPHERY.adc_bound) / step
    assert np.all(np.abs(levels - ideal) <= 0.5 + 1e-3)  # the nearest level (or a tie)


def test_adc_dispatch_and_key_from_generator(monkeypatch):
    y, var = read(16, 9)
    results = []
    for have_numba in (kernels.HAVE_NUMBA, False):
        monkeypatch.setattr(kernels, "HAVE_NUMBA", have_numba)
        acc = np.zeros_like(y)
        kernels.adc_accumulate(acc, 0, y, var, 0.5, None, PERIPHERY, np.random.default_rng(3))
        results.append(acc)
    np.testing.assert_array_equal(*results)
    # The key is one draw from the generator: the same generator state, the same result.
    expected = np.zeros_like(y)
    kernels.adc_accumulate_numpy(expected, 0, y, var, 0.5, None, PERIPHERY, counter_rng.new_key(np.random.default_rng(3)))
    np.testing.assert_array_equal(results[0], expected)


def test_adc_without_noise_draws_nothing():
    spec = dataclasses.replace(PERIPHERY, output_noise_enabled=False)
    rng = np.random.default_rng(0)
    y, _ = read(8, 5)
    acc = np.zeros_like(y)
    kernels.adc_accumulate(acc, 0, y, None, 0.5, None, spec, rng)
    assert rng.integers(2**63) == np.random.default_rng(0).integers(2**63)


@needs_numba
def test_adc_compiled_rejects_misfit_arrays():
    y, var = read(4, 6)
    with pytest.raises(ValueError, match="does not fit"):
        kernels.adc_accumulate_compiled(np.zeros((4, 8), np.float32), 3, y, var, 1.0, None, PERIPHERY, 1)
    with pytest.raises(ValueError, match="does not fit"):
        kernels.adc_accumulate_compiled(np.zeros((5, 6), np.float32), 0, y, var, 1.0, None, PERIPHERY, 1)
    with pytest.raises(ValueError, match="C-contiguous"):
        kernels.adc_accumulate_compiled(np.zeros((4, 12), np.float32)[:, :6], 0, y, var, 1.0, None, PERIPHERY, 1)
    with pytest.raises(ValueError, match="variance"):
        kernels.adc_accumulate_compiled(np.zeros((4, 6), np.float32), 0, y, var[:, :5], 1.0, None, PERIPHERY, 1)


# --- The DAC kernel. --------------------------------------------------------------------------


def dac_input():
    x = np.random.default_rng(2).standard_normal((37, 53)).astype(np.float32)
    x[3] = 0.0  # an all-zero example: scale 1
    x[5, 7] = np.nan  # NaN: numpy's max is NaN, so scale 1
    x[6, 3] = -np.inf
    x[7] *= np.float32(1e-39)  # subnormal inputs
    x[8, :] = 0.5
    x[9, 0] = -2.0  # the largest magnitude is negative
    return x


@needs_numba
@pytest.mark.parametrize(
    "flags",
    [dict(), dict(quantization=False), dict(dac_bits=3, dac_range=0.25), dict(dac_bits=1)],
    ids=["default", "no-quantization", "3-bit-range-0.25", "1-bit"],
)
def test_dac_twins_agree(flags):
    spec = dataclasses.replace(PERIPHERY, **flags)
    x = dac_input()
    with np.errstate(invalid="ignore"):
        ref_x, ref_scale = periphery.dac(x, spec)
    got_x, got_scale = dac_kernels.dac_compiled(x, spec)
    assert got_x.dtype == ref_x.dtype and got_scale.dtype == ref_scale.dtype and got_scale.shape == ref_scale.shape
    np.testing.assert_array_equal(got_x, ref_x)
    np.testing.assert_array_equal(got_scale, ref_scale)
    # dac_kernels.dac dispatches to the compiled twin for float32 input.
    np.testing.assert_array_equal(dac_kernels.dac(x, spec)[0], ref_x)


def test_dac_dispatch_keeps_numpy_for_other_inputs():
    x = dac_input().astype(np.float64)
    assert not dac_kernels.dac_compiles(x)
    assert not dac_kernels.dac_compiles(np.zeros((3, 0), np.float32))
    with np.errstate(invalid="ignore"):
        x_n, scale = dac_kernels.dac(x, PERIPHERY)
    assert x_n.dtype == np.float64 and scale.dtype == np.float64


# --- The chip. --------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["tiny", "pcm3t1c-2018"])
def program_and_feeds(request, tmp_path_factory):
    """A 100-80-70 MLP; on `tiny` (64×64 tiles) its layers split by rows and by columns."""
    model = mlp_model(13)
    path = save(model, tmp_path_factory.mktemp(f"kernels-{request.param}"))
    program = compile_model(path, load_target(request.param), placer="greedy", time_limit=2)
    return program, random_feeds(model, batch=45, seed=4)


def chip_outputs(program, feeds, **options):
    return list(Chip(program, **options).run(dict(feeds)).values())


def test_chip_same_seed_same_bits(program_and_feeds):
    program, feeds = program_and_feeds
    for a, b in zip(chip_outputs(program, feeds, seed=3), chip_outputs(program, feeds, seed=3)):
        np.testing.assert_array_equal(a, b)


def test_chip_different_seed_different_outputs(program_and_feeds):
    program, feeds = program_and_feeds
    for a, b in zip(chip_outputs(program, feeds, seed=3), chip_outputs(program, feeds, seed=4)):
        assert not np.array_equal(a, b)


@pytest.mark.parametrize("drift_time", [None, 86400.0], ids=["t0", "one-day-compensated"])
def test_chip_without_numba_same_bits(program_and_feeds, monkeypatch, drift_time):
    """The numpy fallback (numba missing) gives the compiled path's outputs exactly."""
    program, feeds = program_and_feeds
    compiled = chip_outputs(program, feeds, seed=5, drift_time=drift_time)
    monkeypatch.setattr(kernels, "HAVE_NUMBA", False)
    fallback = chip_outputs(program, feeds, seed=5, drift_time=drift_time)
    for a, b in zip(compiled, fallback):
        np.testing.assert_array_equal(a, b)


def test_ideal_chip_bypasses_the_kernels(program_and_feeds, monkeypatch):
    program, feeds = program_and_feeds
    expected = chip_outputs(program, feeds, ideal=True)

    def forbidden(*args, **kwargs):
        raise AssertionError("the ideal chip must not go through the periphery kernels")

    monkeypatch.setattr(kernels, "adc_accumulate", forbidden)
    monkeypatch.setattr(dac_kernels, "dac_compiled", forbidden)
    monkeypatch.setattr(dac_kernels, "dac_layer", forbidden)
    monkeypatch.setattr(periphery, "dac", forbidden)
    for a, b in zip(chip_outputs(program, feeds, ideal=True), expected):
        np.testing.assert_array_equal(a, b)


def test_import_without_numba_falls_back(tmp_path):
    """With numba not importable the module still loads and every entry point runs numpy."""
    script = tmp_path / "no_numba.py"
    script.write_text(
        "import sys\n"
        "sys.modules['numba'] = None  # import numba -> ImportError\n"
        "import numpy as np\n"
        "from analogc.runtime.physics import counter_rng, dac_kernels, kernels, periphery\n"
        "from analogc.runtime.format.spec import load_target\n"
        "assert not kernels.HAVE_NUMBA\n"
        "spec = load_target(None).periphery\n"
        "y = np.linspace(-3, 3, 24, dtype=np.float32).reshape(4, 6)\n"
        "acc = np.zeros_like(y)\n"
        "kernels.adc_accumulate(acc, 0, y, y * y * 1e-3, 0.5, None, spec, np.random.default_rng(0))\n"
        "ref = np.zeros_like(y)\n"
        "kernels.adc_accumulate_numpy(ref, 0, y, y * y * 1e-3, 0.5, None, spec, counter_rng.new_key(np.random.default_rng(0)))\n"
        "assert np.array_equal(acc, ref)\n"
        "assert not dac_kernels.dac_compiles(y)\n"
        "x_n, scale = dac_kernels.dac(y, spec)\n"
        "assert np.allclose(scale.ravel(), np.abs(y).max(axis=1))\n"
        "assert counter_rng.mix64_int(0x9E3779B97F4A7C15) == 0xE220A8397B1DCDAF\n"
        "gather = dac_kernels.RowGather(y.ravel(), 2, 12, np.array([0, 6]), np.arange(6))  # y's rows\n"
        "for a, b in zip(dac_kernels.dac_layer(gather, True, spec, True), dac_kernels.dac_layer_numpy(y, True, spec, True)):\n"
        "    assert np.array_equal(a, b)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr


# --- Drift compensation as the ADC's gain. ----------------------------------------------------


def test_adc_gain_acts_before_quantisation_hand_values():
    # w_max 0.5, y 0.25: y/w_max = 0.5. 8-bit ADC over ±12: step 12/127.
    spec = dataclasses.replace(PERIPHERY, output_noise_enabled=False)
    y = np.array([[0.25]], dtype=np.float32)
    step = 12.0 / 127
    gained = np.zeros_like(y)
    kernels.adc_accumulate_numpy(gained, 0, y, None, 0.5, None, spec, key=1, gain=2.0)
    # Gain first: 2·0.5 = 1.0 = 10.58 steps -> level 11 -> 11·step·w_max.
    assert gained[0, 0] == pytest.approx(11 * step * 0.5, rel=1e-6)
    digital = np.zeros_like(y)
    kernels.adc_accumulate_numpy(digital, 0, y, None, 0.5, 2.0, spec, key=1)
    # Digital factor after the ADC: 0.5 = 5.29 steps -> level 5 -> 5·step·w_max·2.
    assert digital[0, 0] == pytest.approx(5 * step * 0.5 * 2, rel=1e-6)


def test_adc_gain_leaves_output_noise_unscaled():
    """acc = w·(g·y/w + sqrt(g²·var/w² + σ²)·z): the ADC's own noise σ is not amplified,
    where the digital factor α multiplies it (float64 equation, the same normals)."""
    spec = dataclasses.replace(PERIPHERY, quantization=False)
    y, var = read(40, 30)
    w, g, key, sigma = 0.37, 1.6, 11, PERIPHERY.output_noise
    z = counter_rng.counter_normal(key, y.shape).astype(np.float64)
    got = np.zeros_like(y)
    kernels.adc_accumulate_numpy(got, 0, y, var, w, None, spec, key, gain=g)
    expected = w * (g * y / w + np.sqrt(g**2 * var / w**2 + sigma**2) * z)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    digital = np.zeros_like(y)
    kernels.adc_accumulate_numpy(digital, 0, y, var, w, g, spec, key)
    np.testing.assert_allclose(digital, g * w * (y / w + np.sqrt(var / w**2 + sigma**2) * z), rtol=1e-5, atol=1e-6)


@needs_numba
@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("variance", [True, False], ids=["read-noise", "no-read-noise"])
def test_adc_gain_twins_agree(flags, variance):
    spec = dataclasses.replace(PERIPHERY, **flags)
    y, var = read(37, 29, variance=variance)
    compiled, reference = np.zeros((37, 40), np.float32), np.zeros((37, 40), np.float32)
    kernels.adc_accumulate_compiled(compiled, 5, y, var, 0.37, None, spec, key=99, gain=1.63)
    kernels.adc_accumulate_numpy(reference, 5, y, var, 0.37, None, spec, key=99, gain=1.63)
    np.testing.assert_array_equal(compiled, reference)


# --- The layer's input stage: bias input, DAC and squares in one pass. ---------------------------


def test_square_codes_hand_values():
    """x² in units of dac_range²/127, rounded to even, the top code for anything above or NaN."""
    x = np.array([0.0, 0.5, -1.0, 1.5, np.nan, 0.0627, 0.0628], dtype=np.float32)  # the last two: 0.4993, 0.5009 codes
    np.testing.assert_array_equal(dac_kernels.square_codes(x, 1.0), [0, 32, 127, 127, 127, 0, 1])
    np.testing.assert_array_equal(dac_kernels.square_codes(x * np.float32(2), 2.0), [0, 32, 127, 127, 127, 0, 1])


def test_dac_layer_hand_values():
    x = np.array([[0.5, -0.25], [0.0, 0.0], [4.0, -2.0]], dtype=np.float32)
    for compiled in ([False, True] if kernels.HAVE_NUMBA else [False]):
        x_n, x_sq, scale = dac_kernels.dac_layer(x, True, PERIPHERY, squares=True, compiled=compiled)
        # Row 0: the bias input 1 is the largest magnitude, scale 1; 8 bits: k/127, ties to even.
        # Row 1: zeros and the bias: scale 1. Row 2: scale 4, the bias input becomes 1/4.
        expected = np.array([[64 / 127, -32 / 127, 1.0], [0.0, 0.0, 1.0], [1.0, -64 / 127, 32 / 127]])
        np.testing.assert_allclose(x_n, expected, rtol=1e-6)
        # Square codes: rint(x²·127 / dac_range²), dac_range 1: (64/127)²·127 = 32.25, (32/127)²·127 = 8.06.
        np.testing.assert_array_equal(x_sq, np.array([[32, 8, 127], [0, 0, 127], [127, 32, 8]], dtype=np.uint8))
        assert x_sq.dtype == np.uint8
        np.testing.assert_array_equal(scale, np.array([[1.0], [1.0], [4.0]], dtype=np.float32))
        x_n, x_sq, scale = dac_kernels.dac_layer(x, False, PERIPHERY, squares=False, compiled=compiled)
        assert x_sq is None and x_n.shape == (3, 2)
        np.testing.assert_allclose(x_n[0], [1.0, -64 / 127], rtol=1e-6)  # no bias: scale 0.5


@needs_numba
@pytest.mark.parametrize("bias", [True, False], ids=["bias-input", "no-bias"])
@pytest.mark.parametrize("squares", [True, False], ids=["squares", "no-squares"])
@pytest.mark.parametrize(
    "flags", [dict(), dict(quantization=False), dict(dac_bits=3, dac_range=0.25)], ids=["default", "no-quantization", "3-bit-range-0.25"]
)
def test_dac_layer_twins_agree(bias, squares, flags):
    spec = dataclasses.replace(PERIPHERY, **flags)
    x = dac_input() * np.float32(0.7)  # most rows below 1, so the bias input sets their scale
    with np.errstate(invalid="ignore"):
        reference = dac_kernels.dac_layer_numpy(x, bias, spec, squares)
        got = dac_kernels.dac_layer(x, bias, spec, squares)
        # The reference is periphery.dac on the inputs with a column of ones appended.
        appended = np.hstack([x, np.ones((len(x), 1), np.float32)]) if bias else x
        by_definition = periphery.dac(appended, spec)
    np.testing.assert_array_equal(reference[0], by_definition[0])
    np.testing.assert_array_equal(reference[2], by_definition[1])
    for a, b in zip(got, reference):
        if b is None:
            assert a is None
        else:
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)


def test_dac_layer_takes_other_dtypes_as_float32():
    x = dac_input()[:, :0]
    x_n, _, scale = dac_kernels.dac_layer(x, True, PERIPHERY, squares=False)  # only the bias input
    np.testing.assert_array_equal(x_n, np.ones((len(x), 1), np.float32))
    x64 = np.nan_to_num(dac_input()).astype(np.float64)
    got = dac_kernels.dac_layer(x64, True, PERIPHERY, squares=True)
    ref = dac_kernels.dac_layer_numpy(x64.astype(np.float32), True, PERIPHERY, True)
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)


CONV = {"name": "c", "conv": {"kernel": [3, 2], "strides": [2, 1], "dilations": [1, 2], "pads": [1, 0, 0, 2], "auto_pad": "NOTSET", "channels": 2}}


@pytest.mark.parametrize("bias", [True, False], ids=["bias-input", "no-bias"])
@pytest.mark.parametrize("flags", [dict(), dict(quantization=False)], ids=["default", "no-quantization"])
def test_dac_gathered_equals_the_dac_of_the_patch_rows(bias, flags):
    """Patches with a NaN, an infinity, all zeros (scale 1) and negative maxima: the
    compiled gather gives the bits of periphery's DAC on im2col's patch rows."""
    spec = dataclasses.replace(PERIPHERY, **flags)
    x = np.random.default_rng(3).normal(size=(4, 2, 7, 6)).astype(np.float32)
    x[1] = 0.0
    x[2, 0, 3, 3], x[3, 1, 0, 0] = np.nan, -np.inf
    patches, _ = im2col.layer_patches(x, CONV)
    gather, _ = im2col.layer_gather(x.astype(np.float64), CONV)  # taken as float32
    with np.errstate(invalid="ignore"):
        expected = dac_kernels.dac_layer_numpy(patches, bias, spec, squares=True)
        for compiled in (True, False) if kernels.HAVE_NUMBA else (False,):
            got = dac_kernels.dac_gathered(gather, bias, spec, True, compiled=compiled)
            for a, b in zip(got, expected):
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)
    assert np.isnan(expected[0]).any() and (expected[2] == 1 / spec.dac_range).any()


def test_dac_gathered_without_positions():
    layer = {"name": "c", "conv": dict(CONV["conv"], pads=[0, 0, 0, 0], kernel=[9, 2])}
    gather, (batch, out) = im2col.layer_gather(np.ones((3, 2, 7, 6), np.float32), layer)
    assert gather.shape == (0, 36) and batch == 3 and out[0] == 0
    x_n, x_sq, scale = dac_kernels.dac_gathered(gather, True, PERIPHERY, True)
    assert x_n.shape == (0, 37) and x_sq.shape == (0, 37) and scale.shape == (0, 1)


@pytest.mark.parametrize("bias", [True, False], ids=["bias-input", "no-bias"])
@pytest.mark.parametrize("squares", [True, False], ids=["squares", "no-squares"])
@pytest.mark.parametrize("bounds", [(0, 20, 54), (0, 53, 54), (0, 1, 30, 31, 54)], ids=["two", "bias-alone", "four"])
def test_dac_layer_cut_into_row_segments(bias, squares, bounds):
    """With column bounds each segment is the matching columns of the uncut DAC output
    (numpy's, by definition), C-contiguous; the compiled pass writes them in place,
    again into the same buffers with a scratch dict."""
    x = dac_input() * np.float32(0.7)
    cols = x.shape[1] + bias
    bounds = bounds[:-1] + (cols,) if bounds[-2] < cols else (0, cols)
    with np.errstate(invalid="ignore"):
        whole = dac_kernels.dac_layer_numpy(x, bias, PERIPHERY, squares)
        scratch = {}
        runs = [dac_kernels.dac_layer_numpy(x, bias, PERIPHERY, squares, bounds)]
        for compiled in (True, True, False) if kernels.HAVE_NUMBA else (False,):
            runs.append(dac_kernels.dac_layer(x, bias, PERIPHERY, squares, compiled=compiled, scratch=scratch, bounds=bounds))
    for x_n, x_sq, scale in runs:
        np.testing.assert_array_equal(scale, whole[2])
        for got, ref in ((x_n, whole[0]), (x_sq, whole[1])):
            if ref is None:
                assert got is None
                continue
            assert isinstance(got, tuple) and len(got) == len(bounds) - 1
            for part, c0, c1 in zip(got, bounds[:-1], bounds[1:]):
                assert part.flags.c_contiguous and part.dtype == ref.dtype
                np.testing.assert_array_equal(part, ref[:, c0:c1])
    with pytest.raises(ValueError, match="bounds"):
        dac_kernels.dac_layer(x, bias, PERIPHERY, squares, bounds=(0, 5))


@pytest.mark.parametrize("bit_generator", [np.random.SFC64, np.random.PCG64, np.random.PCG64DXSM, np.random.Philox, np.random.MT19937])
def test_new_key_is_rng_integers(bit_generator):
    """new_key's shortcut for 64-bit generators gives rng.integers(2**63)'s keys and
    leaves the generator where it would: keys, then other draws, interleaved."""
    fast, slow = (np.random.Generator(bit_generator(11)) for _ in range(2))
    for _ in range(300):
        assert counter_rng.new_key(fast) == int(slow.integers(2**63))
        assert fast.standard_normal() == slow.standard_normal()
        assert fast.integers(7) == slow.integers(7)
