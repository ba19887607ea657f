"""`analogc sweep`: every job of a sweep file as one Dask task, on a LocalCluster here or
on an existing cluster (`--scheduler tcp://HOST:PORT`), results streamed into one table.

The folder DIR holds sweep.json (the expanded grid, the sweep file, the program's sha256
and a fingerprint of all three plus the data) and results.parquet / results.csv. Running
the same sweep into the same DIR again resumes: jobs already `ok` are not submitted,
failed ones are retried. A DIR made by another sweep, program or data set is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import analogc
from analogc.atomic import write_text_atomic
from analogc.console import console_for, print_json
from analogc.data import fit_to_input, load_dataset
from analogc.errors import AnalogcError
from analogc.phases import Phases, report_phases
from analogc.runtime.chip.infer import single_input
from analogc.runtime.format.program import load_program_bytes, sha256
from analogc.sweep_file import Job, Sweep, expand, load_sweep
from analogc.sweep_job import NAMED_DATA, carry, run_job
from analogc.sweep_table import job_row, read_table, schema, write_table
from analogc.wording import count

SWEEP_JSON = "sweep.json"
ALLOWED_FAILURES = 3  # a job may lose this many workers (killed, crashed) and still be rerun
CONNECT_TIMEOUT = "10s"


def cmd_sweep(args) -> int:
    if args.workers is not None and args.scheduler:
        raise AnalogcError("--workers sets the size of the local cluster; with --scheduler the cluster's own workers run the jobs")
    if args.workers is not None and not 1 <= args.workers <= 1024:
        raise AnalogcError(f"--workers must be between 1 and 1024, got {args.workers}")
    out = Path(args.output)
    phases = Phases()
    with phases("load and validate (program, sweep file, every variant, data)"):
        program_bytes = read_program_file(Path(args.program))
        program = load_program_bytes(program_bytes, name=args.program)
        sweep = load_sweep(args.sweep)
        jobs = expand(sweep, program, args.sweep)
        data, data_digest = load_data(args.data, program, sweep.command)
        record = sweep_record(args, sweep, jobs, sha256(program_bytes), data_digest)
        done = read_folder(out, record, schema(sweep.axes))
    pending = [job for job in jobs if done.get(job.job_id, {}).get("status") != "ok"]
    console = console_for(args)
    say = (lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True)) if not (args.json or args.quiet) else (lambda text: None)
    say(f"{count(len(jobs), 'job')} ({len(jobs) - len(pending)} already done in {out}), {sweep.command} on {args.data}")
    started, start = datetime.now(timezone.utc), time.perf_counter()
    summary = {"scheduler": args.scheduler or "local", "workers": 0, "submitted": len(pending), "skipped": len(jobs) - len(pending)}
    rows = dict(done)
    if pending:
        with phases("jobs on the cluster (start included)"), connect(args.scheduler, args.workers, len(pending)) as client:
            summary["workers"] = len(client.scheduler_info(n_workers=-1)["workers"])
            say(f"running {count(len(pending), 'job')} on {count(summary['workers'], 'worker')} ({summary['scheduler']})")
            if not summary["workers"]:
                say("the cluster has no workers yet: the jobs wait until some join")
            start_folder(out, record)
            run_jobs(client, pending, jobs, program_bytes, data, sweep, out, rows, say)
    statuses = [rows[j.job_id]["status"] for j in jobs]
    summary.update(ok=statuses.count("ok"), failed=statuses.count("failed"), seconds=time.perf_counter() - start)
    record["runs"].append({"started_at": started.isoformat(timespec="seconds"), **summary})
    write_text_atomic(out / SWEEP_JSON, json.dumps(record, indent=1))
    if args.json:
        print_json({"output": str(out), "jobs": len(jobs), **summary})
    else:  # the result line, -q included
        console.print(f"{summary['ok']} ok, {summary['failed']} failed of {count(len(jobs), 'job')} in {summary['seconds']:.1f} s; "
                      f"table {out / 'results.parquet'} (and .csv)", markup=False, highlight=False, soft_wrap=True)
    report_phases(args, phases)
    return 0


def read_program_file(path: Path) -> bytes:
    if not path.is_file():
        raise AnalogcError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AnalogcError(f"{path}: cannot read ({exc.strerror or exc})") from None


def load_data(spec: str, program, command: str):
    """Load the data set here first (a bad spec fails before any job), and decide what the
    jobs carry: the name of a data set every worker has, or the arrays themselves."""
    dataset = load_dataset(spec)
    splits = ("train", "test") if command == "train" else ("test",)
    for split in splits:
        if getattr(dataset, f"y_{split}") is None:
            raise AnalogcError(f"{dataset.name}: the {split} split has no labels; a sweep measures accuracy")
    fit_to_input(dataset.x_test[:1], single_input(program)["shape"], dataset.name)
    digest = hashlib.sha256()
    for name in ("x_train", "y_train", "x_test", "y_test"):
        digest.update(np.ascontiguousarray(getattr(dataset, name)).tobytes())
    return (spec if spec in NAMED_DATA else dataset), digest.hexdigest()


def sweep_record(args, sweep: Sweep, jobs: list[Job], program_sha: str, data_digest: str) -> dict:
    """sweep.json: what was swept, on what, and a fingerprint that identifies it."""
    identity = {"program_sha256": program_sha, "data": args.data, "data_sha256": data_digest, "sweep": sweep.canonical()}
    fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return {
        "format": 1,
        "analogc_version": analogc.__version__,
        "fingerprint": fingerprint,
        "program": {"path": args.program, "sha256": program_sha},
        "data": {"spec": args.data, "sha256": data_digest},
        "sweep_file": {"path": args.sweep, "text": Path(args.sweep).read_text(encoding="utf-8")},
        "sweep": sweep.canonical(),
        "jobs": [{"job_id": j.job_id, "values": j.values, "seed": j.seed, "options": j.options} for j in jobs],
        "runs": [],
    }


def read_folder(out: Path, record: dict, table_schema) -> dict:
    """Check that DIR is new, empty, or holds this very sweep (writes nothing); the rows
    it already has (their table must have this sweep's columns: they are written back)."""
    if out.exists() and not out.is_dir():
        raise AnalogcError(f"{out}: exists and is not a folder")
    if not out.exists():
        if not out.parent.is_dir():
            raise AnalogcError(f"{out}: folder {out.parent} does not exist")
        return {}
    path = out / SWEEP_JSON
    if not path.exists():
        if any(out.iterdir()):
            raise AnalogcError(f"{out}: not empty and not a sweep folder (no {SWEEP_JSON}); give a new or empty folder")
        return {}
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
        fingerprint = previous["fingerprint"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise AnalogcError(f"{path}: not a readable sweep record ({exc})") from None
    if fingerprint != record["fingerprint"]:
        raise AnalogcError(f"{out}: holds results of a different sweep ({difference(previous, record)}); give a new folder to -o")
    record["runs"] = previous.get("runs", []) if isinstance(previous.get("runs"), list) else []
    table = read_table(out, table_schema)
    if table is None:
        return {}
    known = {j["job_id"] for j in record["jobs"]}
    return {row["job_id"]: row for row in table.to_pylist() if row.get("job_id") in known}


def start_folder(out: Path, record: dict) -> None:
    """Create DIR and its sweep.json when they do not exist yet (once the cluster is up)."""
    try:
        out.mkdir(exist_ok=True)
    except OSError as exc:
        raise AnalogcError(f"{out}: cannot create folder ({exc.strerror or exc})") from None
    if not (out / SWEEP_JSON).exists():
        write_text_atomic(out / SWEEP_JSON, json.dumps(record, indent=1))


def difference(previous: dict, record: dict) -> str:
    """What changed between the sweep that made a folder and this one, in words. The old
    record is whatever the folder's sweep.json holds: its fields may be of any type."""
    old_program, old_data = (previous.get(k) if isinstance(previous.get(k), dict) else {} for k in ("program", "data"))
    if old_program.get("sha256") != record["program"]["sha256"]:
        return "another program: sha256 " + str(old_program.get("sha256", "?"))[:12] + f"…, now {record['program']['sha256'][:12]}…"
    if previous.get("data") != record["data"]:
        return f"another data set: {old_data.get('spec', '?')}, now {record['data']['spec']}"
    return "another sweep file: the command, options, grid or seeds differ"


class connect:
    """A Dask client: on an existing scheduler, or on a LocalCluster of one single-threaded
    worker process per core (at most one per job), logs silenced, no dashboard."""

    def __init__(self, address: str | None, workers: int | None, jobs: int):
        self.address, self.workers, self.jobs = address, workers, jobs
        self.cluster = self.client = None

    def __enter__(self):
        # heavy: dask and distributed (about 1 s), loaded only when a sweep runs jobs
        import dask
        from distributed import Client, LocalCluster

        try:
            if self.address:
                self.client = Client(self.address, timeout=CONNECT_TIMEOUT, set_as_default=False)
                return self.client
            n = min(self.workers or len(os.sched_getaffinity(0)), self.jobs)
            with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
                self.cluster = LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
                )
            self.client = Client(self.cluster, set_as_default=False)
            return self.client
        except (OSError, TimeoutError, ValueError) as exc:
            self.__exit__()
            where = f"scheduler {self.address}" if self.address else "a local cluster"
            raise AnalogcError(f"cannot reach {where} ({type(exc).__name__}: {' '.join(str(exc).split())})") from None

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        return False


def run_jobs(client, pending: list[Job], jobs: list[Job], program_bytes: bytes, data, sweep: Sweep, out: Path, rows: dict, say) -> None:
    """Submit every pending job as one task; each result rewrites the table as it lands."""
    from distributed import as_completed  # heavy: dask's distributed, as in connect

    table_schema = schema(sweep.axes)
    order = {j.job_id: j.index for j in jobs}
    run_token = secrets.token_hex(4)  # fresh keys: a retry never reuses a stale result
    program_future = ship(client, program_bytes, f"analogc-program-{run_token}")
    data_arg = data if isinstance(data, str) else ship(client, data, f"analogc-data-{run_token}")
    futures, job_of = [], {}
    for job in pending:
        task = {"job_id": job.job_id, "command": job.command, "seed": job.seed, "options": job.options, "target": job.target}
        future = client.submit(run_job, task, program_future, data_arg, analogc.__version__, key=f"analogc-sweep-{job.job_id}-{run_token}", retries=0)
        futures.append(future)
        job_of[future.key] = job
    for finished, future in enumerate(as_completed(futures, loop=client.loop), 1):
        job = job_of[future.key]
        try:
            result = future.result()
        except Exception as exc:  # the task itself was lost (e.g. killed workers beyond allowed-failures)
            result = {"job_id": job.job_id, "status": "failed", "error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"}
        rows[job.job_id] = job_row(job, result)
        write_table(out, sorted(rows.values(), key=lambda r: order[r["job_id"]]), table_schema)
        say(describe_row(finished, len(pending), job, rows[job.job_id]))


def ship(client, value, key: str):
    """Send `value` to the cluster once, as a task that returns it, not with scatter: the
    scheduler keeps the task and recomputes it if the worker holding the value dies
    (scattered data on a killed worker is lost for good, and every job needing it fails)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Large object.*")
        return client.submit(carry, value, key=key)


def describe_row(count: int, total: int, job: Job, row: dict) -> str:
    head = f"[{count}/{total}] {job.describe()}:"
    if row["status"] != "ok":
        return f"{head} failed: {row['error']}"
    accuracy = "-" if row.get("accuracy") is None else f"{row['accuracy']:.4f}"
    return f"{head} accuracy {accuracy} ({row['seconds']:.1f} s on {row['host']})"
