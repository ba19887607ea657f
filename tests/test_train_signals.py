"""A real `analogc train` process stopped by SIGINT or SIGTERM keeps its last checkpoint,
and resuming from it ends bit-identical to a run that was never stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from analogc.runtime.format.program import load_program

from .conftest import MODELS

# Enough epochs that the run is still going well after its first checkpoint (the loop got
# faster: 12 epochs could end within the wait below and the signal then met no handler).
ARGS = ["--data", "digits", "--init", "random", "--epochs", "40", "--seed", "4", "--checkpoint-every", "400", "-q"]


def analogc(*argv, **kwargs):
    return subprocess.run([sys.executable, "-m", "analogc.cli", *map(str, argv)], capture_output=True, text=True, **kwargs)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signalled_training_run_resumes_to_the_same_result(tmp_path, signum):
    program = tmp_path / "digits.atp"
    assert analogc("compile", MODELS / "digits_mlp.onnx", "-o", program, "-q").returncode == 0
    checkpoint = tmp_path / "ckpt"
    stopped = subprocess.Popen([sys.executable, "-m", "analogc.cli", "train", str(program), *ARGS, "--checkpoint", str(checkpoint),
                                "-o", str(tmp_path / "stopped.atp")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (checkpoint / "checkpoint.npz").exists() and time.time() < deadline and stopped.poll() is None:
        time.sleep(0.05)
    assert stopped.poll() is None, "training finished before it could be interrupted"
    time.sleep(0.1)
    stopped.send_signal(signum)
    _, err = stopped.communicate(timeout=120)
    assert stopped.returncode == 130, err
    assert "analogc: interrupted" in err and "Traceback" not in err
    assert not (tmp_path / "stopped.atp").exists()
    assert [p.name for p in checkpoint.iterdir()] == ["checkpoint.npz"]  # no temporary file left
    resumed = analogc("train", program, *ARGS, "--checkpoint", checkpoint, "--resume", "-o", tmp_path / "resumed.atp")
    assert resumed.returncode == 0, resumed.stderr
    straight = analogc("train", program, *ARGS, "-o", tmp_path / "straight.atp")
    assert straight.returncode == 0, straight.stderr
    a, b = load_program(tmp_path / "resumed.atp"), load_program(tmp_path / "straight.atp")
    for key in a.arrays:
        assert np.array_equal(a.arrays[key], b.arrays[key]), key
    strip = lambda rows: [{k: v for k, v in r.items() if "per_s" not in k and k != "seconds"} for r in rows]  # noqa: E731
    assert strip(a.meta["training"]["epochs"]) == strip(b.meta["training"]["epochs"])


def test_a_background_job_of_a_script_stops_on_sigint(tmp_path):
    """`analogc train ... &` in a non-interactive shell starts with SIGINT ignored; the
    command installs its own handler, so `kill -INT` still stops it (exit 130) and the
    checkpoint written before stays valid."""
    probe = f"{sys.executable} -c 'import signal; print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)'"
    started = subprocess.run(["bash", "-c", f"{probe} & wait $!"], capture_output=True, text=True)
    assert started.stdout.strip() == "True"  # what such a job inherits
    program = tmp_path / "digits.atp"
    assert analogc("compile", MODELS / "digits_mlp.onnx", "-o", program, "-q").returncode == 0
    checkpoint = tmp_path / "ckpt"
    command = " ".join([sys.executable, "-m", "analogc.cli", "train", str(program), *ARGS, "--checkpoint", str(checkpoint), "-o", str(tmp_path / "t.atp")])
    shell = subprocess.Popen(["bash", "-c", f"{command} & echo $!; wait $!"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid = int(shell.stdout.readline())
    deadline = time.time() + 120
    while not (checkpoint / "checkpoint.npz").exists() and time.time() < deadline and shell.poll() is None:
        time.sleep(0.05)
    assert shell.poll() is None, "training finished before it could be interrupted"
    os.kill(pid, signal.SIGINT)
    _, err = shell.communicate(timeout=120)
    assert shell.returncode == 130, err
    assert "analogc: interrupted" in err
    assert not (tmp_path / "t.atp").exists()
    from analogc.runtime.training.checkpoint import load_checkpoint

    _, meta = load_checkpoint(checkpoint)  # intact (resuming from it is the test above)
    assert meta["position"]["total"] > 0
