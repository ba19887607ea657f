"""analogc sweep / sweep-plot on real Dask clusters: the table, resume, failed jobs, a
worker killed mid-sweep, and every sweep-file error as one `analogc: error:` line."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from analogc.cli import main
from analogc.errors import AnalogcError
from analogc.sweep_file import expand, sweep_from_dict
from tests.conftest import MODELS, assert_user_error

TINY = """
command = "train"
seeds = 2
[train]
limit = 200
init = "random"
[grid]
"capacitor.step_mismatch" = [0.0, 0.5]
"training.polarity_inversion" = [true, false]
"training.transfer_pulses" = [0.0]
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "digits.atp"
    assert main(["compile", str(MODELS / "digits_mlp.onnx"), "-o", str(path), "--placer", "greedy", "-q"]) == 0
    return path


@pytest.fixture(scope="module")
def cluster():
    """A real 2-worker LocalCluster the tests point --scheduler at."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 3}):
        local = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.CRITICAL)
    client = Client(local, set_as_default=False)
    yield client
    client.close()
    local.close()


def transitions(client) -> int:
    """Task state transitions the scheduler has made so far (unchanged = no new tasks)."""
    return client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)


def write(folder, text, name="sweep.toml"):
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def tiny_sweep(program, tmp_path_factory):
    """The 2x2 grid x 2 seeds on the embedded LocalCluster (no --scheduler), 2 workers."""
    folder = tmp_path_factory.mktemp("tiny")
    sweep = write(folder, TINY)
    out = folder / "out"
    code = main(["sweep", str(program), "--data", "digits", "--sweep", str(sweep), "--workers", "2", "-o", str(out), "-q"])
    assert code == 0
    return sweep, out


def test_local_cluster_fills_the_table(tiny_sweep, program):
    sweep, out = tiny_sweep
    table = pq.read_table(out / "results.parquet").to_pylist()
    assert len(table) == 8
    assert {r["status"] for r in table} == {"ok"}
    grid = {(r["capacitor.step_mismatch"], r["training.polarity_inversion"], r["seed"]) for r in table}
    assert grid == {(m, p, s) for m in (0.0, 0.5) for p in (True, False) for s in (0, 1)}
    assert len({r["job_id"] for r in table}) == 8
    for row in table:
        assert 0.0 <= row["accuracy"] <= 1.0
        assert row["command"] == "train" and row["error"] is None
        assert row["examples_per_s"] > 0 and row["seconds"] > 0 and row["host"]
        assert row["energy_per_example_j"] > 0 and row["latency_per_example_s"] > 0 and row["gops_per_w"] > 0
    # Training with 200 examples on a fixed schedule (transfer_pulses 0, interval 1000)
    # never transfers, so never uses polarity inversion: the same seed and mismatch give
    # the same accuracy either way.
    by_key = {(r["capacitor.step_mismatch"], r["training.polarity_inversion"], r["seed"]): r["accuracy"] for r in table}
    for m in (0.0, 0.5):
        for s in (0, 1):
            assert by_key[(m, True, s)] == by_key[(m, False, s)]
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 9 and csv_lines[0].startswith('"job_id","capacitor.step_mismatch","training.polarity_inversion","training.transfer_pulses","seed"')
    record = json.loads((out / "sweep.json").read_text())
    assert len(record["jobs"]) == 8 and record["sweep_file"]["text"] == TINY
    import hashlib

    assert record["program"]["sha256"] == hashlib.sha256(program.read_bytes()).hexdigest()


def test_a_job_matches_analogc_train(tiny_sweep, program, cli, tmp_path):
    """A sweep row is the same training as `analogc train` with that spec and seed."""
    _, out = tiny_sweep
    row = next(r for r in pq.read_table(out / "results.parquet").to_pylist() if r["capacitor.step_mismatch"] == 0.5 and r["seed"] == 1)
    from analogc.runtime.format.program import load_program, save_program

    prog = load_program(program)
    prog.meta["target"]["capacitor"]["step_mismatch"] = 0.5
    prog.meta["target"]["training"]["polarity_inversion"] = row["training.polarity_inversion"]
    variant = tmp_path / "variant.atp"
    save_program(prog, variant)
    result = cli("train", variant, "--data", "digits", "--limit", "200", "--init", "random", "--seed", "1", "--json", "-o", tmp_path / "t.atp")
    assert result.code == 0, result.err
    assert json.loads(result.out)["test_accuracy"] == row["accuracy"]


def test_resume_runs_nothing_again(tiny_sweep, program, cluster, cli):
    sweep, out = tiny_sweep
    before = pq.read_table(out / "results.parquet").to_pylist()
    count = transitions(cluster)
    result = cli("sweep", program, "--data", "digits", "--sweep", sweep, "--scheduler", cluster.scheduler.address, "-o", out, "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["submitted"] == 0 and summary["skipped"] == 8 and summary["ok"] == 8
    assert transitions(cluster) == count
    assert pq.read_table(out / "results.parquet").to_pylist() == before  # same seconds, same finish times


def test_failed_job_is_recorded_and_retried(program, cluster, cli, tmp_path):
    """[chip] trainable = false is a valid spec, but `train` refuses it in the job."""
    sweep = write(tmp_path, 'command = "train"\nseeds = [5]\n[train]\nlimit = 50\n[grid]\n"chip.trainable" = [true, false]\n"train.learning_rate" = [0.02, 0.05]\n')
    out = tmp_path / "out"
    args = ["sweep", program, "--data", "digits", "--sweep", sweep, "--scheduler", cluster.scheduler.address, "-o", out, "--json"]
    result = cli(*args)
    assert result.code == 0, result.err
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert len(rows) == 4
    for row in rows:
        if row["chip.trainable"]:
            assert row["status"] == "ok" and row["error"] is None and 0 <= row["accuracy"] <= 1
        else:
            assert row["status"] == "failed" and row["accuracy"] is None
            assert "does not support in-situ training" in row["error"]
    count = transitions(cluster)
    again = json.loads(cli(*args).out)
    assert again["submitted"] == 2 and again["skipped"] == 2 and again["failed"] == 2
    assert transitions(cluster) > count
    ok_before = {r["job_id"]: r for r in rows if r["status"] == "ok"}
    after = pq.read_table(out / "results.parquet").to_pylist()
    assert {r["job_id"]: r for r in after if r["status"] == "ok"} == ok_before


def test_killed_worker_every_job_once(program, cluster, tmp_path):
    """SIGKILL one worker while it runs a job: Dask reruns the job on another worker and
    every job lands in the table exactly once."""
    sweep = write(tmp_path, 'command = "train"\nseeds = 4\n[train]\nepochs = 2\n[grid]\n"capacitor.step_mismatch" = [0.1, 0.2]\n')
    out = tmp_path / "out"
    argv = ["sweep", str(program), "--data", "digits", "--sweep", str(sweep), "--scheduler", cluster.scheduler.address, "-o", str(out), "-q"]
    codes = []
    runner = threading.Thread(target=lambda: codes.append(main(argv)))
    pids = cluster.run(os.getpid)
    runner.start()
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        # The worker that holds the shipped program and is running a job: losing it loses
        # both a running job and the program's only copy (the scheduler recomputes it).
        holders = {a for key, where in cluster.who_has().items() if str(key).startswith("analogc-program-") for a in where}
        for address, keys in cluster.processing().items():
            running = [k for k in keys if str(k).startswith("analogc-sweep-")]
            if running and address in pids and address in holders:
                victim = address, running[0]
                break
        time.sleep(0.01)
    assert victim is not None, "no job ever started"
    os.kill(pids[victim[0]], signal.SIGKILL)
    runner.join(120)
    assert codes == [0]
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert len(rows) == 8 and len({r["job_id"] for r in rows}) == 8
    assert {r["status"] for r in rows} == {"ok"}, [r["error"] for r in rows]
    killed_job = str(victim[1]).split("-")[2]
    rerun = next(r for r in rows if r["job_id"] == killed_job)
    assert rerun["worker"] != victim[0]  # finished on another (or the restarted) worker
    cluster.wait_for_workers(2, timeout=60)


def test_sweep_plot_mean_and_std(tiny_sweep, cli, tmp_path):
    _, out = tiny_sweep
    png = tmp_path / "plot.png"
    result = cli("sweep-plot", out, "--x", "capacitor.step_mismatch", "--y", "accuracy", "--hue", "training.polarity_inversion", "-o", png, "--json")
    assert result.code == 0, result.err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    groups = json.loads(result.out)["groups"]
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert len(groups) == 4
    for g in groups:
        values = [r["accuracy"] for r in rows if r["capacitor.step_mismatch"] == g["x"] and r["training.polarity_inversion"] == g["hue"]]
        assert g["n"] == 2
        assert g["mean"] == pytest.approx(np.mean(values)) and g["std"] == pytest.approx(np.std(values, ddof=1))


def test_sweep_plot_against_seed_pools_over_the_rest_with_whole_ticks(tiny_sweep, cli, tmp_path, monkeypatch):
    """--x seed: each point is one seed, so the title must not say "over 2 seeds", and
    the axis has no ticks between seeds."""
    import matplotlib.pyplot as plt

    drawn = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: drawn.append(fig))
    _, out = tiny_sweep
    result = cli("sweep-plot", out, "--x", "seed", "--hue", "training.polarity_inversion", "-o", tmp_path / "s.png", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["pooled_over"] == ["capacitor.step_mismatch", "training.transfer_pulses"]
    (fig,) = drawn
    try:
        ax = fig.axes[0]
        title = ax.get_title()
        assert "seeds" not in title and title.endswith("mean ± std over capacitor.step_mismatch and training.transfer_pulses")
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    finally:
        close(fig)
    text = cli("sweep-plot", out, "--x", "capacitor.step_mismatch", "--hue", "training.polarity_inversion", "-o", tmp_path / "m.png")
    assert "mean ± std over 2 seeds and training.transfer_pulses" in text.out


def test_sweep_quiet_prints_the_result_line(tiny_sweep, program, cli):
    sweep, out = tiny_sweep
    result = cli("sweep", program, "--data", "digits", "--sweep", sweep, "-o", out, "-q")  # all done: nothing runs
    assert result.code == 0 and re.fullmatch(r"8 ok, 0 failed of 8 jobs in \d+\.\d s; table .*results\.parquet \(and \.csv\)\n", result.out), result.out
    assert cli("sweep-plot", out, "--x", "seed", "-o", out.parent / "q.png", "-q").out == f"wrote {out.parent / 'q.png'}\n"


@pytest.mark.parametrize("flag, value", [("--x", "nope"), ("--y", "seed"), ("--hue", "accuracy")])
def test_sweep_plot_unknown_column(tiny_sweep, cli, tmp_path, flag, value):
    _, out = tiny_sweep
    args = {"--x": "capacitor.step_mismatch", "--y": "accuracy", flag: value}
    result = cli("sweep-plot", out, *[a for kv in args.items() for a in kv], "-o", tmp_path / "p.png")
    assert_user_error(result, flag, repr(value))
    assert not (tmp_path / "p.png").exists()


def test_sweep_plot_not_a_sweep_folder(cli, tmp_path):
    assert_user_error(cli("sweep-plot", tmp_path, "--x", "a", "-o", tmp_path / "p.png"), "results.parquet")


BAD_SWEEPS = [
    ('command = "train"\n[grid]\n"capacitor.nope" = [1]\n', "unknown key 'nope' in [capacitor]"),
    ('command = "train"\n[grid]\n"chipz.grid_rows" = [1]\n', "unknown table 'chipz'"),
    ('command = "train"\n[grid]\n"capacitor.step_mismatch" = [0.1, "x"]\n', "variant capacitor.step_mismatch=x"),
    ('command = "train"\n[grid]\n"capacitor.step_mismatch" = [0.1, 9.0]\n', "variant capacitor.step_mismatch=9.0"),
    ('command = "train"\n[grid]\n', "[grid] is empty"),
    ('command = "train"\n', "[grid] is empty"),
    ('command = "train"\n[grid]\n"capacitor.step_mismatch" = []\n', "the list of values is empty"),
    ('command = "train"\n[grid]\n"capacitor.step_mismatch" = {start = 0, stop = 5, step = 0.0001}\n', "more than the limit"),
    ('command = "train"\nseeds = 100\n[grid]\n"pcm.prog_max_iterations" = {start = 1, stop = 200, step = 1}\n', "20,000 jobs"),
    ('command = "train"\n[grid]\n"capacitor.step_mismatch" = {start = 1, stop = 0, step = 0.1}\n', "stop ≥ start"),
    ('command = "train"\n[grid]\n"capacitor.step_mismatch" = {start = 0, stop = 1}\n', "a range is"),
    ('command = "train"\n[grid]\n"capacitor.step_mismatch" = 0.3\n', "give a list"),
    ('command = "train"\n[grid]\n"chip.faulty_tiles" = [[[0, 0]]]\n', "cannot be swept"),
    ('command = "train"\n[grid]\n"chip.grid_rows" = [8, 2]\n', "variant chip.grid_rows=2"),
    ('command = "train"\n[grid]\n"pcm.g_prog_max" = [20, 30]\n', "g_prog_max (30.0) exceeds g_max"),
    ('command = "train"\n[grid]\n"run.drift_time" = [20]\n', "the command is train"),
    ('command = "run"\n[train]\nepochs = 2\n[grid]\n"pcm.drift" = [true]\n', "[train] options given"),
    ('command = "train"\n[train]\nlearning_rate = 101\n[grid]\n"pcm.drift" = [true]\n', "learning_rate (the spec's [training] learning_rate) must be in [0.0, 100.0], got 101.0"),
    ('command = "train"\n[train]\nepochs = 0\n[grid]\n"pcm.drift" = [true]\n', "epochs (the spec's [training] epochs) must be in [1, 100000], got 0"),
    ('command = "train"\n[train]\nbatch_size = 2\n[grid]\n"pcm.drift" = [true]\n', "unknown option 'batch_size' for train"),
    ('command = "run"\n[grid]\n"run.ideal" = [1]\n', "ideal must be true or false"),
    ('command = "fly"\n[grid]\n"pcm.drift" = [true]\n', "command must be one of run, train"),
    ('command = "run"\nseed = 2\n[grid]\n"pcm.drift" = [true]\n', "unknown key 'seed'"),
    ('command = "run"\nseeds = [1, 1]\n[grid]\n"pcm.drift" = [true]\n', "twice"),
    ('command = "run"\nseeds = -1\n[grid]\n"pcm.drift" = [true]\n', "seeds = N"),
    ('command = "run"\n[grid]\n"pcm.drift" = [true, true]\n', "listed twice"),
    ('command = "run"\n[grid]\ndrift = [true]\n', "\"table.key\""),
    ('command = "run"\n[grid\n', "not valid TOML"),
]


@pytest.mark.parametrize("text, fragment", BAD_SWEEPS)
def test_bad_sweep_files(program, cli, tmp_path, text, fragment):
    sweep = write(tmp_path, text)
    result = cli("sweep", program, "--data", "digits", "--sweep", sweep, "-o", tmp_path / "out")
    assert_user_error(result, fragment)
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


def test_every_variant_is_checked_before_any_job(program, cli, tmp_path):
    """The bad value is the last of the grid: still no job and no folder."""
    sweep = write(tmp_path, 'command = "run"\n[grid]\n"periphery.adc_bits" = {start = 1, stop = 40, step = 1}\n')
    result = cli("sweep", program, "--data", "digits", "--sweep", sweep, "-o", tmp_path / "out")
    assert_user_error(result, "variant periphery.adc_bits=33", "adc_bits must be in [1, 32]")
    assert not (tmp_path / "out").exists()


def test_cli_errors(program, cli, tmp_path, tiny_sweep, monkeypatch):
    import analogc.sweep

    monkeypatch.setattr(analogc.sweep, "CONNECT_TIMEOUT", "1s")
    sweep, out = tiny_sweep
    base = ["sweep", program, "--data", "digits", "--sweep", sweep]
    assert_user_error(cli(*base, "-o", tmp_path / "o", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"), "--workers")
    assert_user_error(cli(*base, "-o", tmp_path / "o", "--workers", "0"), "--workers must be between 1")
    assert_user_error(cli(*base, "-o", tmp_path / "no" / "o"), "does not exist")
    assert_user_error(cli("sweep", tmp_path / "x.atp", "--data", "digits", "--sweep", sweep, "-o", tmp_path / "o"), "no such file")
    assert_user_error(cli(*base[:3], "nothing", "--sweep", sweep, "-o", tmp_path / "o"), "unknown data set")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert_user_error(cli(*base, "-o", tmp_path / "full"), "not a sweep folder")
    assert_user_error(cli(*base, "-o", tmp_path / "nowhere", "--scheduler", "tcp://127.0.0.1:1"), "cannot reach scheduler")
    assert not (tmp_path / "nowhere").exists()  # nothing written before the cluster answers


def test_refuses_a_folder_of_another_sweep(program, cli, tmp_path, tiny_sweep):
    sweep, out = tiny_sweep
    other = write(tmp_path, TINY.replace("seeds = 2", "seeds = 3"))
    assert_user_error(cli("sweep", program, "--data", "digits", "--sweep", other, "-o", out), "different sweep", "another sweep file")
    retrained = tmp_path / "other.atp"
    assert main(["compile", str(MODELS / "digits_mlp.onnx"), "-o", str(retrained), "--placer", "greedy", "--target", "tiny", "-q"]) == 0
    assert_user_error(cli("sweep", retrained, "--data", "digits", "--sweep", sweep, "-o", out), "different sweep", "another program")


def test_grid_expansion_and_job_ids(program):
    from analogc.runtime.format.program import load_program

    prog = load_program(program)
    sweep = sweep_from_dict({
        "command": "run", "seeds": [3, 9],
        "grid": {"capacitor": {"step_mismatch": {"start": 0, "stop": 0.3, "step": 0.1}}, "run.drift_time": {"values": [20, 86400]}},
    }, "s")
    assert sweep.axes[0].values == (0.0, 0.1, 0.2, 0.3)  # stop included, no 0.30000000000000004
    jobs = expand(sweep, prog, "s")
    assert len(jobs) == 4 * 2 * 2 and len({j.job_id for j in jobs}) == 16
    assert jobs[0].target["capacitor"]["step_mismatch"] == 0.0 and jobs[0].options == {"drift_time": 20.0}
    assert prog.meta["target"]["capacitor"]["step_mismatch"] == 0.3  # the program itself is untouched
    # The same job spelled differently (0 vs 0.0, list vs {values}) has the same id.
    same = sweep_from_dict({"command": "run", "seeds": [3], "grid": {"capacitor.step_mismatch": [0], "run.drift_time": [20]}}, "s")
    assert expand(same, prog, "s")[0].job_id == jobs[0].job_id
    assert sweep_from_dict({"command": "run", "grid": {"periphery.adc_bits": {"start": 4, "stop": 9, "step": 2}}}, "s").axes[0].values == (4, 6, 8)


def test_load_program_bytes(program):
    from analogc.runtime.format.program import load_program, load_program_bytes

    data = program.read_bytes()
    a, b = load_program(program), load_program_bytes(data)
    assert a.meta == b.meta and a.members == b.members
    assert all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)
    with pytest.raises(AnalogcError, match="shipped.atp: not a tile program"):
        load_program_bytes(data[:100], name="shipped.atp")
    corrupt = bytearray(data)
    corrupt[len(data) // 2] ^= 0xFF
    with pytest.raises(AnalogcError, match="shipped.atp"):
        load_program_bytes(bytes(corrupt), name="shipped.atp")


def test_run_sweep_matches_analogc_run(program, cluster, cli, tmp_path):
    """A `run` job is `analogc run` with that drift time and seed: same accuracy and cost."""
    sweep = write(tmp_path, 'command = "run"\nseeds = [4]\n[run]\nlimit = 150\n[grid]\n"run.drift_time" = [20, 86400]\n"cost.adc_energy" = [2e-11, 4e-11]\n')
    result = cli("sweep", program, "--data", "digits", "--sweep", sweep, "--scheduler", cluster.scheduler.address, "-o", tmp_path / "out", "-q")
    assert result.code == 0, result.err
    rows = pq.read_table(tmp_path / "out" / "results.parquet").to_pylist()
    assert [(r["run.drift_time"], r["cost.adc_energy"]) for r in rows] == [(20.0, 2e-11), (20.0, 4e-11), (86400.0, 2e-11), (86400.0, 4e-11)]
    for drift in (20, 86400):
        single = json.loads(cli("run", program, "--data", "digits", "--limit", "150", "--seed", "4", "--drift-time", drift, "--json").out)
        cheap, dear = (r for r in rows if r["run.drift_time"] == drift)
        assert cheap["accuracy"] == single["accuracy"] == dear["accuracy"]  # the ADC's price does not change outputs
        assert cheap["energy_per_example_j"] == pytest.approx(single["cost"]["energy_per_example_j"])
        adc_conversions = single["cost"]["counts"]["adc_conversions"] / single["cost"]["examples"]
        assert dear["energy_per_example_j"] - cheap["energy_per_example_j"] == pytest.approx(2e-11 * adc_conversions)


def test_npz_data_is_shipped_to_the_workers(program, cluster, cli, tmp_path):
    """A .npz data set is read by the client and shipped: workers never see the path."""
    from analogc.data import load_dataset

    digits = load_dataset("digits")
    data = tmp_path / "mine.npz"
    np.savez(data, x_train=digits.x_train, y_train=digits.y_train, x_test=digits.x_test, y_test=digits.y_test)
    sweep = write(tmp_path, 'command = "run"\nseeds = [1]\n[grid]\n"pcm.read_noise" = [true]\n')
    result = cli("sweep", program, "--data", data, "--sweep", sweep, "--scheduler", cluster.scheduler.address, "-o", tmp_path / "out", "--json")
    assert result.code == 0, result.err
    from analogc.runtime.format.program import load_program
    from analogc.sweep import load_data

    carried, _ = load_data(str(data), load_program(program), "run")
    assert not isinstance(carried, str) and np.array_equal(carried.x_test, digits.x_test)  # arrays, not a path
    assert load_data("digits", load_program(program), "run")[0] == "digits"  # a name every worker resolves
    row = pq.read_table(tmp_path / "out" / "results.parquet").to_pylist()[0]
    single = json.loads(cli("run", program, "--data", "digits", "--seed", "1", "--json").out)
    assert row["status"] == "ok" and row["accuracy"] == single["accuracy"]


@pytest.mark.parametrize("damage", ["sweep_json", "results"])
def test_a_damaged_sweep_folder_is_refused(program, cli, tmp_path, tiny_sweep, damage):
    import shutil

    sweep, out = tiny_sweep
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    if damage == "sweep_json":
        (copy / "sweep.json").write_text("{not json")
        fragment = "not a readable sweep record"
    else:
        (copy / "results.parquet").write_bytes(b"PAR1 garbage")
        fragment = "cannot read the results table"
    before = sorted(p.name for p in copy.iterdir())
    assert_user_error(cli("sweep", program, "--data", "digits", "--sweep", sweep, "-o", copy), fragment)
    assert sorted(p.name for p in copy.iterdir()) == before
