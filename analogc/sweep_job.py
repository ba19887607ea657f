"""One sweep job, as it runs on a Dask worker: a program (bytes), a variant spec (dict),
a seed, and `run` or `train`; returns one row of the results table.

Nothing here reads the client's disk: the program arrives as the bytes of its .atp file,
the data set either by name (`digits`, `fashion-mnist`: loaded on the worker, cached for
the worker's life) or as arrays shipped by the client (`idx:DIR`, `.npz`). A job that
raises is returned as a `failed` row with its error, so it never stops the others.
"""

from __future__ import annotations

import functools
import socket
import time
import traceback
from datetime import datetime, timezone

import numpy as np

import analogc
from analogc.data import image_feeds, load_dataset
from analogc.errors import AnalogcError
from analogc.runtime.chip.infer import accuracy, batch_size_of, chip_runner, run_batched, single_input
from analogc.runtime.format.program import load_program_bytes
from analogc.runtime.format.spec import spec_from_dict

NAMED_DATA = ("digits", "fashion-mnist")


@functools.lru_cache(maxsize=2)
def named_dataset(name: str):
    return load_dataset(name)


def carry(value):
    """The task that holds the program bytes (or data) on the cluster: returns its input."""
    return value


def run_job(job: dict, program_bytes: bytes, data, version: str) -> dict:
    """Run one job; never raises for a problem of the job itself (the row says `failed`)."""
    start = time.perf_counter()
    row = {"job_id": job["job_id"], "status": "ok", "error": None, "host": socket.gethostname(), "worker": worker_address()}
    try:
        if version != analogc.__version__:
            raise AnalogcError(f"the worker runs analogc {analogc.__version__}, the client {version}")
        dataset = named_dataset(data) if isinstance(data, str) else data
        row.update(run_command(job, program_bytes, dataset))
    except Exception as exc:  # recorded in the table; the other jobs go on
        row["status"] = "failed"
        message = " ".join(str(exc).split())
        row["error"] = message if isinstance(exc, AnalogcError) else f"{type(exc).__name__}: {message} ({location(exc)})"
    row["seconds"] = time.perf_counter() - start
    row["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return row


def worker_address() -> str | None:
    """The Dask worker running this job (None when called outside a worker)."""
    from distributed import get_worker  # heavy: dask's distributed, loaded on the workers anyway

    try:
        return get_worker().address
    except ValueError:
        return None


def location(exc: BaseException) -> str:
    """Where an internal error was raised: file and line of the innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "?"


def run_command(job: dict, program_bytes: bytes, dataset) -> dict:
    program = load_program_bytes(program_bytes, name="sweep program")
    program.meta = {**program.meta, "target": job["target"]}
    if job["command"] == "run":
        return run_inference(program, dataset, job["seed"], job["options"])
    return run_training(program, dataset, job["seed"], job["options"])


def feeds(program, x: np.ndarray, data_name: str) -> dict:
    """Examples reshaped and typed for the model's one input (as `run` and `train` do)."""
    return image_feeds(x, single_input(program), data_name)


def run_inference(program, dataset, seed: int, options: dict) -> dict:
    """`analogc run` on the test split: chip accuracy, examples/s, inference cost."""
    # heavy: the chip's numba kernels (about 1 s), loaded on the workers only, not by
    # the client that imports this module to submit the jobs
    from analogc.run_command import run_cost
    from analogc.runtime.chip.chip import Chip
    limit = options.get("limit")
    x, y = dataset.x_test[:limit], dataset.y_test[:limit] if dataset.y_test is not None else None
    if y is None:
        raise AnalogcError(f"{dataset.name}: the test split has no labels")
    if len(x) == 0:
        raise AnalogcError(f"{dataset.name}: no examples to run")
    chip = Chip(program, ideal=options.get("ideal", False), seed=seed, drift_time=options.get("drift_time"))
    batch, pad = batch_size_of(program, options.get("batch_size", 256))
    start = time.perf_counter()
    outputs = run_batched(chip_runner(chip), feeds(program, x, dataset.name), batch, pad, program=program)
    seconds = time.perf_counter() - start
    cost = run_cost(chip, len(x)).to_json()
    return {"accuracy": accuracy(outputs, y), "examples_per_s": len(x) / seconds if seconds > 0 else None, **energy(cost)}


def run_training(program, dataset, seed: int, options: dict) -> dict:
    """`analogc train` (no output file): final test accuracy, training examples/s, and the
    cost of training per training example."""
    from analogc.runtime.training.trainer import Trainer, TrainOptions  # heavy: numba kernels, on the workers only (as above)
    spec = spec_from_dict(program.meta["target"], origin="sweep variant")
    train_options = TrainOptions(
        epochs=options.get("epochs", spec.training.epochs), init=options.get("init", "compiled"), seed=seed,
        learning_rate=options.get("learning_rate"), limit=options.get("limit"), data_name=dataset.name,
    )
    trainer = Trainer(
        program, feeds(program, dataset.x_train, dataset.name), dataset.y_train,
        feeds(program, dataset.x_test, dataset.name), dataset.y_test, train_options,
    )
    result = trainer.train()
    examples = sum(row["examples"] for row in result["epochs"])
    seconds = sum(row["seconds"] for row in result["epochs"])
    return {"accuracy": result["test_accuracy"], "examples_per_s": examples / seconds if seconds > 0 else None, **energy(result["cost"])}


def energy(cost: dict) -> dict:
    return {k: cost.get(k) for k in ("energy_per_example_j", "latency_per_example_s", "gops_per_w")}
