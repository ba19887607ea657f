"""The kernels that may run on every core (the conv DAC's gather, the ADC of a large read)
give the numpy reference's bits on one thread or several, and `cores.CoreChoice` picks
the way that measured faster, tries the other now and then, and stays serial on one core.
The chip's outputs are the same bits whichever way its kernels ran, through the files."""

from __future__ import annotations

import types

import numpy as np
import pytest

from analogc.cli import main
from analogc.data import fit_to_input, load_dataset
from analogc.runtime.chip import im2col
from analogc.runtime.format.program import load_program
from analogc.runtime.format.spec import load_target
from analogc.runtime.physics import cores, dac_kernels, kernels
from analogc.runtime.physics.counter_rng import new_key
from tests.conftest import MODELS

needs_numba = pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
PERIPHERY = load_target(None).periphery
CONV = {"name": "c", "conv": {"kernel": [3, 2], "strides": [2, 1], "dilations": [1, 2], "pads": [1, 0, 0, 2], "auto_pad": "NOTSET", "channels": 2}}


def thread_counts() -> list[int]:
    import numba  # optional: the callers are skipped without it

    return sorted({1, 2, numba.config.NUMBA_NUM_THREADS})


def with_threads(threads: int, fn):
    import numba  # optional: the callers are skipped without it

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        return fn()
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


@pytest.fixture
def way(monkeypatch):
    """way(True): every kernel call that may go parallel does; way(False): none does."""

    def force(parallel: bool) -> None:
        monkeypatch.setattr(dac_kernels, "PARALLEL_DAC_VALUES", 0)
        monkeypatch.setattr(kernels, "PARALLEL_ADC_OUTPUTS", 0)
        monkeypatch.setattr(cores.CHOICE, "parallel_next", lambda key: parallel)
        monkeypatch.setattr(cores.LOAD, "cores", lambda: 0.0)  # as if the machine were idle

    return force


@needs_numba
@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_dac_gather_equals_the_reference_on_any_thread_count(way, parallel):
    x = np.random.default_rng(4).normal(size=(9, 2, 11, 10)).astype(np.float32)
    x[3, 1, 4, 4] = np.nan  # a NaN input and an all-zero example take their own branches
    x[5] = 0
    gather, _ = im2col.layer_gather(x, CONV)
    expected = dac_kernels.dac_layer_numpy(gather.rows(), True, PERIPHERY, True)
    way(parallel)
    for threads in thread_counts():
        got = with_threads(threads, lambda: dac_kernels.dac_gathered(gather, True, PERIPHERY, True))
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)


@needs_numba
@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("shape, acc_cols, col0", [((300, 70), 70, 0), ((257, 61), 100, 13), ((3, 5), 5, 0)],
                         ids=["full-rows", "col-split", "tiny"])
def test_adc_equals_the_reference_on_any_thread_count(way, parallel, shape, acc_cols, col0):
    """Reads of several normal chunks (300·70 outputs are 3 chunks of pairs), as whole
    accumulator rows or as a column piece, and one smaller than a chunk."""
    rng = np.random.default_rng(11)
    y = rng.normal(size=shape).astype(np.float32)
    var = (rng.uniform(0, 0.01, size=shape)).astype(np.float32)
    start = rng.normal(size=(shape[0], acc_cols)).astype(np.float32)
    key = new_key(rng)
    expected = start.copy()
    kernels.adc_accumulate_numpy(expected, col0, y, var, 0.8, np.float32(0.9), PERIPHERY, key)
    way(parallel)
    for threads in thread_counts():
        got = start.copy()
        with_threads(threads, lambda: kernels.adc_accumulate_compiled(got, col0, y, var, 0.8, np.float32(0.9), PERIPHERY, key))
        np.testing.assert_array_equal(got, expected)


@needs_numba
@pytest.mark.parametrize("model, data", [("digits_conv", "digits"), ("fashion_cnn", "fashion-mnist")])
def test_run_gives_the_same_bits_serial_or_parallel(way, tmp_path, model, data):
    """`analogc run` of a CNN (every read through the kernels that may go parallel),
    with every such call forced serial, then forced parallel: the same output file."""
    program = tmp_path / f"{model}.atp"
    assert main(["compile", str(MODELS / f"{model}.onnx"), "-o", str(program), "-q"]) == 0
    info, dataset = load_program(program).meta["model"]["inputs"][0], load_dataset(data)
    np.save(tmp_path / "x.npy", fit_to_input(dataset.x_test[:300], info["shape"], dataset.name).astype(np.float32))
    outputs = {}
    for parallel in (False, True):
        way(parallel)
        out = tmp_path / f"out-{parallel}.npy"
        argv = ["run", str(program), "--input", str(tmp_path / "x.npy"), "--seed", "3", "--drift-time", "86400", "--output", str(out), "-q"]
        assert main(argv) == 0
        outputs[parallel] = np.load(out)
    assert outputs[False].tobytes() == outputs[True].tobytes()


# --- The choice between serial and parallel. ----------------------------------------------


class FakeMachine:
    """A clock and two kernels that take `cost[way]` seconds per call on it."""

    def __init__(self, serial: float, parallel: float):
        self.now = 0.0
        self.cost = {False: serial, True: parallel}
        self.ran: list[bool] = []

    def clock(self) -> float:
        return self.now

    def kernel(self, parallel: bool):
        def run(value):
            self.now += self.cost[parallel]
            self.ran.append(parallel)
            return value * 2

        return run

    def call(self, choice: cores.CoreChoice, key="k", values=1000):
        return choice.run(key, values, self.kernel(False), self.kernel(True), 21)


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(cores, "parallel_threads", lambda: 2)
    monkeypatch.setattr(cores, "numba", types.SimpleNamespace(set_num_threads=lambda n: None), raising=False)


def test_choice_times_both_ways_then_takes_the_faster(two_cores):
    machine = FakeMachine(serial=2.0, parallel=1.0)
    choice = cores.CoreChoice(explore_every=8, clock=machine.clock)
    assert all(machine.call(choice) == 42 for _ in range(40))
    # Serial, parallel, serial, parallel (warm-ups, then timings), then parallel, except
    # the 8th call, which tries serial again; that confirms parallel, so the next try
    # comes 16 calls later, then 32.
    assert machine.ran[:4] == [False, True, False, True]
    serial_calls = [i for i, p in enumerate(machine.ran) if not p]
    assert serial_calls == [0, 2, 7, 23]
    for _ in range(40):
        machine.call(choice)
    assert [i for i, p in enumerate(machine.ran) if not p] == [0, 2, 7, 23, 55]


def test_choice_follows_a_change_of_load(two_cores):
    machine = FakeMachine(serial=2.0, parallel=1.0)
    choice = cores.CoreChoice(explore_every=8, clock=machine.clock)
    for _ in range(10):
        machine.call(choice)
    machine.cost[True] = 5.0  # the other core got busy: parallel is now the slower way
    for _ in range(30):
        machine.call(choice)
    assert machine.ran[7] is False and machine.ran[10] is True  # a try of serial at 7 confirmed parallel
    # The first parallel call after the change times it, then serial until the next try,
    # 16 calls after the last; it confirms serial.
    assert [i for i in range(11, 40) if machine.ran[i]] == [23]
    machine.cost[True] = 1.0  # free again: the next try (32 calls later) goes back to parallel
    for _ in range(40):
        machine.call(choice)
    # A try that changes the choice restarts the gap: serial is tried again 8 calls on, then 16.
    assert [i for i in range(40, 80) if not machine.ran[i]] == [*range(40, 55), 63, 79]


def test_choice_keeps_kinds_apart(two_cores):
    machine = FakeMachine(serial=2.0, parallel=1.0)
    choice = cores.CoreChoice(explore_every=100, clock=machine.clock)
    for _ in range(6):
        machine.call(choice, key="a")
    machine.cost = {False: 1.0, True: 3.0}
    for _ in range(6):
        machine.call(choice, key="b")
    assert machine.ran[4:6] == [True, True] and machine.ran[10:12] == [False, False]


def test_one_usable_core_runs_serial(monkeypatch):
    monkeypatch.setattr(cores, "usable_cores", lambda: 1)
    machine = FakeMachine(serial=2.0, parallel=1.0)
    choice = cores.CoreChoice(clock=machine.clock)
    for _ in range(5):
        machine.call(choice)
    assert machine.ran == [False] * 5 and choice.kinds == {}


def test_others_load_is_the_machine_busy_time_less_our_own(tmp_path):
    stat = tmp_path / "stat"
    now, own = [0.0], [0.0]
    probe = cores.OthersLoad(clock=lambda: now[0], stat_path=str(stat), own_seconds=lambda: own[0])
    ticks = cores.os.sysconf("SC_CLK_TCK")

    def machine(busy_ticks: int):  # user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice
        stat.write_text(f"cpu  {busy_ticks - 30} 0 10 5000 7 0 10 10 0 0\ncpu0 1 2 3\n")

    machine(1000)
    assert probe.cores() is None  # no window yet
    now[0], own[0] = 0.1, 0.05
    machine(1000 + ticks)  # shorter than a window: the start stays
    assert probe.cores() is None
    now[0], own[0] = 0.4, 0.3
    machine(1000 + round(0.7 * ticks))  # 0.7 s busy in 0.4 s of which 0.3 s ours: 1 core of others
    assert probe.cores() == pytest.approx(1.0)
    now[0], own[0] = 1.4, 1.3
    machine(1000 + round(1.7 * ticks))  # then only us
    assert probe.cores() == pytest.approx(0.0)


def test_others_load_without_proc_stat(tmp_path):
    probe = cores.OthersLoad(stat_path=str(tmp_path / "missing"))
    assert probe.cores() is None


@needs_numba
@pytest.mark.parametrize("others, threads", [(None, 2), (0.2, 2), (0.9, 1), (3.0, 1)])
def test_parallel_threads_are_what_the_others_leave(monkeypatch, others, threads):
    import numba  # optional: the test is skipped without it

    monkeypatch.setattr(cores, "usable_cores", lambda: 2)
    monkeypatch.setattr(cores.LOAD, "cores", lambda: others)
    assert cores.parallel_threads() == min(threads, numba.config.NUMBA_NUM_THREADS)
