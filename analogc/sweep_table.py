"""The results table of a sweep: one row per job, Parquet (typed) with a CSV beside it,
both rewritten atomically after every finished job so a crash loses nothing finished."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from analogc.atomic import atomic_path
from analogc.errors import AnalogcError

METRICS = ("accuracy", "examples_per_s", "energy_per_example_j", "latency_per_example_s", "gops_per_w")

PARQUET, CSV = "results.parquet", "results.csv"
ARROW_TYPES = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}
TAIL = [
    ("status", pa.string()), *((m, pa.float64()) for m in METRICS), ("seconds", pa.float64()),
    ("host", pa.string()), ("worker", pa.string()), ("error", pa.string()), ("finished_at", pa.string()),
]

IDENTITY = ("job_id", "seed", "command", "status")  # never empty in a row a sweep wrote


def schema(axes) -> pa.Schema:
    """job_id, one column per swept key (its own type), seed, command, then the results."""
    fields = [("job_id", pa.string()), *((a.key, ARROW_TYPES[a.kind]) for a in axes), ("seed", pa.int64()), ("command", pa.string()), *TAIL]
    return pa.schema(fields)


def job_row(job, result: dict) -> dict:
    """A job's identity (swept values, seed, command) joined with what its worker reported."""
    return {"job_id": job.job_id, **job.values, "seed": job.seed, "command": job.command, **result}


def write_table(folder: Path, rows: list[dict], table_schema: pa.Schema) -> None:
    table = pa.Table.from_pylist(rows, schema=table_schema)
    with atomic_path(folder / PARQUET) as tmp:
        pq.write_table(table, tmp)
    with atomic_path(folder / CSV) as tmp:
        pa_csv.write_csv(table, tmp)


def read_table(folder: Path, expected: pa.Schema | None = None) -> pa.Table | None:
    """The table a previous run left, or None when there is none yet; its columns checked
    against `expected` (a resumed sweep's schema) or, without it, those every sweep has."""
    path = folder / PARQUET
    if not path.exists():
        return None
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise AnalogcError(f"{path}: cannot read the results table ({exc})") from None
    check_columns(table, path, expected)
    return table


def check_columns(table: pa.Table, path: Path, expected: pa.Schema | None) -> None:
    """Refuse a table whose columns a reader would trip over (a column missing, repeated or
    of another type, e.g. from an edited or foreign file): one error here instead of an
    internal error half-way through a plot or when a resumed sweep rewrites the table."""
    names = table.column_names
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise AnalogcError(f"{path}: not a results table of analogc sweep (column {repeated[0]!r} appears twice)")
    fixed = expected if expected is not None else pa.schema([("job_id", pa.string()), ("seed", pa.int64()), ("command", pa.string()), *TAIL])
    for field in fixed:
        if field.name not in names:
            raise AnalogcError(f"{path}: not a results table of analogc sweep (no column {field.name!r})")
        found = table.schema.field(field.name).type
        if found != field.type:
            raise AnalogcError(f"{path}: not a results table of analogc sweep (column {field.name!r} is {found}, expected {field.type})")
    for name in IDENTITY:
        if name in names and table[name].null_count:
            raise AnalogcError(f"{path}: not a results table of analogc sweep (column {name!r} has empty cells)")
    allowed = set(ARROW_TYPES.values())
    for field in table.schema:
        if field.name not in fixed.names and field.type not in allowed:
            raise AnalogcError(f"{path}: not a results table of analogc sweep (column {field.name!r} is {field.type})")
