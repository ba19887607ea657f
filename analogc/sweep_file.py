"""The sweep file (TOML): which target-spec keys and command options to vary, over which
seeds, with which command; expanded into one job per grid point and seed.

    command = "train"               # or "run"
    seeds = 3                       # a count (seeds 0, 1, 2) or a list: [0, 7, 42]

    [train]                         # fixed options of the command (its own table only)
    epochs = 3                      # train: epochs, init, limit, learning_rate
    init = "random"                 # run:   drift_time, ideal, limit, batch_size

    [grid]                          # every combination of these is one variant
    "capacitor.step_mismatch" = [0.0, 0.1, 0.3, 0.5]      # "table.key": a list of values
    "training.polarity_inversion" = [true, false]
    "periphery.adc_bits" = { start = 4, stop = 8, step = 2 }  # 4, 6, 8 (stop included)
    "pcm.drift_t0" = { values = [10, 20] }                # the same as a plain list
    "train.learning_rate" = [0.01, 0.05]                  # a command option, swept

Keys may also be written as TOML tables: `[grid.capacitor]` then `step_mismatch = [...]`.
A range {start, stop, step} runs from start up to and including stop (numbers, step > 0).
Every variant's whole spec is validated (`spec_from_dict`, and the program's placement
against the variant's chip) before any job starts; errors name the variant and the key.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import math
import typing
from dataclasses import dataclass
from pathlib import Path

from analogc.errors import AnalogcError
from analogc.runtime.format.program_check import check_program
from analogc.runtime.format.spec import TABLES, check_knob_option, spec_from_dict
from analogc.toml_read import read_toml

MAX_JOBS = 10_000  # a sweep bigger than this is almost surely a typo in a range
MAX_SEED = 2**31 - 1
COMMANDS = ("run", "train")
TOP_LEVEL = ("command", "seeds", "grid", *COMMANDS)
RANGE_KEYS = ("start", "stop", "step")


@dataclass(frozen=True)
class Option:
    """One command option a sweep may fix or vary: its type and what values it takes."""

    kind: type
    check: typing.Callable[[object], bool] = lambda v: True
    rule: str = ""
    choices: tuple = ()
    knob: tuple = ()  # (table, name): the spec knob the option stands in for, whose range it takes


OPTIONS = {
    "run": {
        "drift_time": Option(float, lambda v: v >= 0 and math.isfinite(v), "a number of seconds ≥ 0"),
        "ideal": Option(bool, lambda v: True, "true or false"),
        "limit": Option(int, lambda v: v > 0, "a positive integer"),
        "batch_size": Option(int, lambda v: v > 0, "a positive integer"),
    },
    "train": {
        "epochs": Option(int, knob=("training", "epochs")),
        "init": Option(str, lambda v: v in ("compiled", "random"), "compiled or random", ("compiled", "random")),
        "limit": Option(int, lambda v: v > 0, "a positive integer"),
        "learning_rate": Option(float, knob=("training", "learning_rate")),
    },
}


@dataclass(frozen=True)
class Axis:
    """One swept key ("table.key") and its values, already converted to the key's type."""

    key: str
    values: tuple
    kind: type

    @property
    def table(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.key.split(".", 1)[1]

    @property
    def is_option(self) -> bool:
        return self.table in COMMANDS


@dataclass(frozen=True)
class Job:
    """One task: a grid point (key -> value), a seed, the command and all its options."""

    job_id: str
    index: int
    values: dict
    seed: int
    command: str
    options: dict
    target: dict  # the whole variant spec dict the job's program runs on

    def describe(self) -> str:
        shown = ", ".join(f"{k}={format_value(v)}" for k, v in self.values.items())
        return f"{shown}, seed {self.seed}" if shown else f"seed {self.seed}"


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file: the command, its fixed options, the axes and the seeds."""

    command: str
    options: dict
    axes: tuple
    seeds: tuple

    def canonical(self) -> dict:
        """A JSON-able form that identifies the sweep (comments and spelling aside)."""
        return {
            "command": self.command,
            "options": self.options,
            "grid": {a.key: list(a.values) for a in self.axes},
            "seeds": list(self.seeds),
        }

    @property
    def size(self) -> int:
        return math.prod(len(a.values) for a in self.axes) * len(self.seeds)


def format_value(value) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file; every defect is one error naming the file and the key."""
    path = Path(path)
    raw = read_toml(path, "sweep file")
    return sweep_from_dict(raw, str(path))


def sweep_from_dict(raw: dict, origin: str) -> Sweep:
    unknown = sorted(set(raw) - set(TOP_LEVEL))
    if unknown:
        raise AnalogcError(f"{origin}: unknown key {unknown[0]!r} (allowed: {', '.join(TOP_LEVEL)})")
    command = raw.get("command")
    if command not in COMMANDS:
        raise AnalogcError(f"{origin}: command must be one of {', '.join(COMMANDS)}, got {command!r}")
    other = next((c for c in COMMANDS if c != command and c in raw), None)
    if other:
        raise AnalogcError(f"{origin}: [{other}] options given, but the command is {command}")
    fixed = raw.get(command, {})
    if not isinstance(fixed, dict):
        raise AnalogcError(f"{origin}: [{command}] must be a table of options")
    options = {key: check_option(command, key, value, f"{origin}: [{command}]") for key, value in fixed.items()}
    axes = parse_grid(raw.get("grid"), command, origin)
    swept_options = {a.name for a in axes if a.is_option}
    both = sorted(swept_options & set(options))
    if both:
        raise AnalogcError(f"{origin}: option {both[0]!r} is both fixed in [{command}] and swept in [grid]")
    sweep = Sweep(command, options, axes, parse_seeds(raw.get("seeds", 1), origin))
    if sweep.size > MAX_JOBS:
        raise AnalogcError(f"{origin}: the sweep has {sweep.size:,} jobs, more than the limit of {MAX_JOBS:,}")
    return sweep


def check_option(command: str, key: str, value, where: str):
    """A command option's value, converted to its type, or an error naming it."""
    known = OPTIONS[command]
    if key not in known:
        raise AnalogcError(f"{where}: unknown option {key!r} for {command} (known: {', '.join(known)})")
    option = known[key]
    if option.knob:
        return check_knob_option(*option.knob, value, f"{where} {key}")
    if option.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not option.kind or not option.check(value):
        raise AnalogcError(f"{where} {key} must be {option.rule}, got {value!r}")
    return value


def parse_grid(grid, command: str, origin: str) -> tuple:
    """[grid] -> axes in file order; "table.key" strings or [grid.table] sub-tables."""
    if grid is None or grid == {}:
        raise AnalogcError(f"{origin}: [grid] is empty: name at least one \"table.key\" = [values] to sweep")
    if not isinstance(grid, dict):
        raise AnalogcError(f"{origin}: grid must be a table of \"table.key\" = [values]")
    entries = []
    for key, value in grid.items():
        if "." in key:
            entries.append((key, value))
        elif isinstance(value, dict) and not set(value) & {*RANGE_KEYS, "values"}:
            entries.extend((f"{key}.{name}", v) for name, v in value.items())
        else:
            raise AnalogcError(f"{origin}: [grid] key {key!r} must be written \"table.key\" (e.g. \"capacitor.step_mismatch\")")
    axes = []
    for key, value in entries:
        table, name = key.split(".", 1)
        where = f"{origin}: [grid] {key!r}"
        if table in COMMANDS:
            if table != command:
                raise AnalogcError(f"{where}: sweeps an option of {table}, but the command is {command}")
            values = tuple(check_option(command, name, v, where) for v in expand_values(value, where))
            axes.append(Axis(key, dedupe(values, where), OPTIONS[command][name].kind))
            continue
        if table not in TABLES:
            raise AnalogcError(f"{where}: unknown table {table!r} (tables: {', '.join(TABLES)}; options: {', '.join(f'{command}.{o}' for o in OPTIONS[command])})")
        fields = {f.name: f for f in dataclasses.fields(TABLES[table])}
        if name not in fields:
            raise AnalogcError(f"{where}: unknown key {name!r} in [{table}] (known: {', '.join(fields)})")
        kind = typing.get_type_hints(TABLES[table])[name]
        if kind not in (bool, int, float, str):
            raise AnalogcError(f"{where}: {kind.__name__}-valued keys cannot be swept")
        values = expand_values(value, where)
        for v in values:
            if not isinstance(v, (bool, int, float, str)):
                raise AnalogcError(f"{where}: values must be single numbers, booleans or strings, got {v!r}")
            if kind is float and isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isfinite(v):
                raise AnalogcError(f"{where}: values must be finite, got {v!r}")
        # Convert ints to floats for float keys (0 and 0.0 are one variant); type errors
        # are left to spec validation, which names the variant and the key.
        values = tuple(float(v) if kind is float and type(v) is int else v for v in values)
        axes.append(Axis(key, dedupe(values, where), kind))
    seen = [a.key for a in axes]
    duplicated = next((k for k in seen if seen.count(k) > 1), None)
    if duplicated:
        raise AnalogcError(f"{origin}: [grid] names {duplicated!r} twice")
    return tuple(axes)


def expand_values(value, where: str) -> list:
    """A list, {values = [...]}, or {start, stop, step} (stop included) -> a list of values."""
    if isinstance(value, dict):
        keys = set(value)
        if keys == {"values"}:
            value = value["values"]
        elif keys == set(RANGE_KEYS):
            return range_values(value, where)
        else:
            raise AnalogcError(f"{where}: a range is {{start, stop, step}} or {{values = [...]}}, got keys {', '.join(sorted(keys))}")
    if not isinstance(value, list):
        raise AnalogcError(f"{where}: give a list of values, {{values = [...]}} or {{start, stop, step}}, got {value!r}")
    if not value:
        raise AnalogcError(f"{where}: the list of values is empty")
    return value


def range_values(spec: dict, where: str) -> list:
    start, stop, step = (spec[k] for k in RANGE_KEYS)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (start, stop, step)):
        raise AnalogcError(f"{where}: start, stop and step must be finite numbers, got {start!r}, {stop!r}, {step!r}")
    if step <= 0 or stop < start:
        raise AnalogcError(f"{where}: a range needs step > 0 and stop ≥ start, got start {start}, stop {stop}, step {step}")
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_JOBS:
        raise AnalogcError(f"{where}: the range has {count:,} values, more than the limit of {MAX_JOBS:,}")
    if all(isinstance(v, int) for v in (start, stop, step)):
        return [start + i * step for i in range(count)]
    return [round(start + i * step, 12) for i in range(count)]  # 0.1 + 0.2, not 0.30000000000000004


def dedupe(values: tuple, where: str) -> tuple:
    if len(set((type(v), v) for v in values)) != len(values):
        raise AnalogcError(f"{where}: a value is listed twice")
    return values


def parse_seeds(seeds, origin: str) -> tuple:
    """`seeds = N` means 0..N-1; a list gives the seeds themselves."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if not 1 <= seeds <= MAX_JOBS:
            raise AnalogcError(f"{origin}: seeds = N needs 1 ≤ N ≤ {MAX_JOBS}, got {seeds}")
        return tuple(range(seeds))
    if not isinstance(seeds, list) or not seeds:
        raise AnalogcError(f"{origin}: seeds must be a count or a non-empty list of integers, got {seeds!r}")
    for s in seeds:
        if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= MAX_SEED:
            raise AnalogcError(f"{origin}: seeds must be integers in [0, {MAX_SEED}], got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise AnalogcError(f"{origin}: seeds lists a seed twice")
    return tuple(seeds)


def expand(sweep: Sweep, program, origin: str) -> list[Job]:
    """Every (grid point, seed) as a Job, each variant's spec checked against the program.

    Runs entirely before any job starts: a bad value anywhere fails the whole sweep."""
    jobs = []
    spec_axes = [a for a in sweep.axes if not a.is_option]
    for point in itertools.product(*(a.values for a in sweep.axes)):
        values = dict(zip((a.key for a in sweep.axes), point))
        target = copy.deepcopy(program.meta["target"])
        for axis in spec_axes:
            target.setdefault(axis.table, {})[axis.name] = values[axis.key]
        label = ", ".join(f"{k}={format_value(v)}" for k, v in values.items())
        where = f"{origin}: variant {label}"
        spec = spec_from_dict(target, origin=where)
        for axis in spec_axes:  # the validated, typed value (e.g. 0 -> 0.0 for a float key)
            values[axis.key] = getattr(getattr(spec, axis.table), axis.name)
        check_program({**program.meta, "target": target}, program.arrays, program.members, where)
        options = {**sweep.options, **{a.name: values[a.key] for a in sweep.axes if a.is_option}}
        for seed in sweep.seeds:
            identity = {"command": sweep.command, "options": options, "values": values, "seed": seed}
            job_id = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
            jobs.append(Job(job_id, len(jobs), values, seed, sweep.command, options, target))
    return jobs
