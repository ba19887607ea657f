"""Target specs: the chip description, one frozen dataclass per TOML table.

Every number of the device model lives here, never in code. Each field declares its
unit, meaning and allowed range in its metadata; `load_spec` validates a TOML file
once against them and names the file and key of anything wrong. Defaults follow
docs/chip.md (Ambrogio et al., Nature 558, 2018, and the PCM
statistics of IBM's analog toolkit); where the paper gives no number the field's
doc says the default is an assumption.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from analogc.errors import AnalogcError
from analogc.toml_read import read_toml

DEFAULT_TARGET = "pcm3t1c-2018"
INF = math.inf


def knob(default, doc: str, unit: str = "", lo=None, hi=None, choices=None):
    """A spec field: default, one-line meaning, unit and allowed range or choices."""
    meta = {"doc": doc, "unit": unit, "lo": lo, "hi": hi, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def check_knob_option(table: str, name: str, value, option: str):
    """A command option that stands in for the knob [table] name: the knob's own type and
    range, one rule for the command line, sweeps and spec files. Returns the value as the
    knob's type, or raises naming the option."""
    cls = TABLES[table]
    meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == name)
    kind = typing.get_type_hints(cls)[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return check_value("", value, kind, meta, f"{option} (the spec's [{table}] {name})")


@dataclass(frozen=True)
class ChipSpec:
    """[chip]: the fixed grid of tiles and what each tile holds."""

    grid_rows: int = knob(8, "tile rows on the chip (at most 256: placement and plan drawing scale with the grid)", "tiles", 1, 256)
    grid_cols: int = knob(8, "tile columns on the chip (at most 256)", "tiles", 1, 256)
    tile_rows: int = knob(512, "unit-cell rows per tile (inputs drive rows)", "cells", 1, 65536)
    tile_cols: int = knob(512, "unit-cell columns per tile (outputs read on columns)", "cells", 1, 65536)
    faulty_tiles: list = knob([], "tiles never used, as [row, col] pairs")
    bias: str = knob("analog", "bias on one extra array row, or added digitally", choices=("analog", "digital"))
    cell: str = knob("pcm3t1c", "unit cell: 2 PCM + 3T1C pair, or a 2-PCM pair only", choices=("pcm3t1c", "pcm2"))
    trainable: bool = knob(True, "whether the periphery supports in-situ training (transpose reads, pulses)")


@dataclass(frozen=True)
class CellSpec:
    """[cell]: the unit cell W = F·(G⁺ − G⁻) + s·(g − g_shared)."""

    gain_f: float = knob(3.0, "gain F of the PCM pair over the capacitor pair (paper's F; 3 is an assumption); weights are conductances over F, so F > 0", "", 0.01, 1000.0)
    shared_reference: str = knob("column", "which weights share one g_shared cell (assumption: a column)", choices=("column", "tile"))
    w_max_rule: str = knob(
        "min_error",
        "how the compiler picks each layer's weight range w_max: the w_max_quantile of |w|, or the w_max that minimises the expected squared weight error (clipping + device noise at w_max_design_time)",
        choices=("quantile", "min_error"),
    )
    w_max_quantile: float = knob(0.999, "weight-range quantile mapped to the largest conductance difference (larger weights clip there; w_max_rule = \"quantile\")", "", 0.5, 1.0)
    w_max_design_time: float = knob(20.0, "time after programming at which w_max_rule = \"min_error\" evaluates the device noise (drift, read noise)", "s", 0.0, 1e10)


@dataclass(frozen=True)
class PcmSpec:
    """[pcm]: phase-change devices, programming, drift and read noise (IBM toolkit fits)."""

    g_max: float = knob(25.0, "largest conductance a device reaches", "µS", 0.1, 1000.0)
    g_prog_max: float = knob(20.0, "largest conductance programmed reliably (targets clip here)", "µS", 0.1, 1000.0)
    programming_noise: bool = knob(True, "closed-loop programming leaves a residual error")
    prog_noise_c0: float = knob(0.26348, "programming error σ polynomial, constant term", "µS", 0.0, 100.0)
    prog_noise_c1: float = knob(1.9650, "programming error σ polynomial, linear term in ĝ", "µS", -100.0, 100.0)
    prog_noise_c2: float = knob(-1.1731, "programming error σ polynomial, quadratic term in ĝ", "µS", -100.0, 100.0)
    prog_tolerance: float = knob(0.1, "closed loop stops when |G − target| is below this (assumption)", "µS", 0.0, 100.0)
    prog_max_iterations: int = knob(30, "closed-loop iteration limit, each a verify read + a pulse (assumption)", "", 1, 10000)
    set_step: float = knob(5.0, "largest nominal partial-SET increment (at G = 0; shrinks as G saturates; assumption)", "µS", 0.0, 100.0)
    set_step_noise: float = knob(0.3, "relative cycle-to-cycle spread of a partial-SET increment (assumption)", "", 0.0, 10.0)
    reset_g: float = knob(0.1, "conductance right after a RESET", "µS", 0.0, 100.0)
    drift: bool = knob(True, "conductance drift G(t) = G(t0)·(t/t0)^(−ν)")
    drift_t0: float = knob(20.0, "drift reference time t0 after programming", "s", 1e-9, 1e9)
    drift_nu_mean_a: float = knob(-0.0155, "μ_ν = clip(a·ln ĝ + b, lo, hi): a", "", -10.0, 10.0)
    drift_nu_mean_b: float = knob(0.0244, "μ_ν: b", "", -10.0, 10.0)
    drift_nu_mean_lo: float = knob(0.049, "μ_ν: lower clip", "", 0.0, 1.0)
    drift_nu_mean_hi: float = knob(0.1, "μ_ν: upper clip", "", 0.0, 1.0)
    drift_nu_std_a: float = knob(-0.0125, "σ_ν = clip(a·ln ĝ + b, lo, hi): a", "", -10.0, 10.0)
    drift_nu_std_b: float = knob(-0.0059, "σ_ν: b", "", -10.0, 10.0)
    drift_nu_std_lo: float = knob(0.008, "σ_ν: lower clip", "", 0.0, 1.0)
    drift_nu_std_hi: float = knob(0.045, "σ_ν: upper clip", "", 0.0, 1.0)
    read_noise: bool = knob(True, "1/f read noise N(0, G·Q) at every read")
    read_noise_q0: float = knob(0.0088, "Q = min(q0 / ĝ^qexp, qmax)·sqrt(ln((t + t_read)/(2 t_read))): q0", "", 0.0, 10.0)
    read_noise_qexp: float = knob(0.65, "Q exponent on ĝ", "", 0.0, 10.0)
    read_noise_qmax: float = knob(0.2, "Q cap", "", 0.0, 10.0)
    t_read: float = knob(250e-9, "duration of one read", "s", 1e-12, 1.0)
    stuck_high_fraction: float = knob(0.0, "fraction of devices stuck at g_max", "", 0.0, 1.0)
    dead_fraction: float = knob(0.0, "fraction of devices stuck at 0 (dead)", "", 0.0, 1.0)
    drift_compensation: bool = knob(True, "global drift compensation: one calibration read per tile rescales outputs")
    drift_compensation_at: str = knob(
        "adc_gain",
        "where the compensation acts: the ADC's gain (integration time), before output noise and quantisation, or digitally on its output",
        choices=("adc_gain", "digital"),
    )


@dataclass(frozen=True)
class CapacitorSpec:
    """[capacitor]: the 3T1C cell, volatile lower-significance pair."""

    enabled: bool = knob(True, "the capacitor pair exists and absorbs training updates")
    v_init: float = knob(0.5, "capacitor voltage after a reset", "V", 0.0, 10.0)
    v_min: float = knob(0.0, "lower rail", "V", -10.0, 10.0)
    v_max: float = knob(1.0, "upper rail", "V", -10.0, 10.0)
    v_leak_target: float = knob(0.8, "voltage the capacitor leaks toward", "V", -10.0, 10.0)
    leak_tau: float = knob(0.0, "leak time constant in training examples; 0 turns leakage off (no published value)", "examples", 0.0, 1e12)
    g_per_volt: float = knob(20.0, "read conductance slope dg/dV_C (linear read transistor; assumption)", "µS/V", 0.0, 1000.0)
    dv_up: float = knob(0.004, "mean voltage step of one 'up' pulse (assumption)", "V", 0.0, 1.0)
    dv_down: float = knob(0.004, "mean voltage step of one 'down' pulse (assumption)", "V", 0.0, 1.0)
    step_mismatch: float = knob(0.3, "per-cell relative spread (σ) of dv_up and dv_down, fixed per cell", "", 0.0, 5.0)
    read_offset_sigma: float = knob(0.0, "per-cell spread of the g(V_C) offset (read-transistor mismatch)", "µS", 0.0, 100.0)
    read_gain_sigma: float = knob(0.0, "per-cell relative spread of the g(V_C) slope", "", 0.0, 5.0)
    max_pulses: int = knob(16, "cap on pulses applied to one cell per update", "pulses", 1, 100000)


@dataclass(frozen=True)
class PeripherySpec:
    """[periphery]: DACs on the rows, ADCs on the columns, output noise."""

    quantization: bool = knob(True, "DAC and ADC quantise (off: ideal converters)")
    dac_bits: int = knob(8, "DAC resolution (8-bit pulse durations, 2023 chip)", "bits", 1, 32)
    dac_range: float = knob(1.0, "inputs are clipped to ±dac_range (after per-layer input scaling)", "", 1e-9, 1e9)
    adc_bits: int = knob(8, "ADC resolution", "bits", 1, 32)
    adc_bound: float = knob(12.0, "saturating output bound, in units of w_max·dac_range", "", 1e-9, 1e9)
    output_noise: float = knob(0.06, "additive output noise σ in the ADC's units (w_max·dac_range, where the bound is adc_bound): aihwkit's out_noise = 0.06 with out_bound = 12", "", 0.0, 10.0)
    output_noise_enabled: bool = knob(True, "additive output noise on every ADC read")
    adc_range: str = knob(
        "quantile",
        "the layer's range in weight units that the ADC's units (bound, noise, step) refer to: the conductance mapping's w_max, or the cell.w_max_quantile of |w| whatever w_max_rule chose (the ADC's gain set per layer at compile time)",
        choices=("w_max", "quantile"),
    )


@dataclass(frozen=True)
class TrainingSpec:
    """[training]: the paper's in-situ SGD with periodic transfer to PCM."""

    learning_rate: float = knob(0.05, "SGD learning rate η", "", 0.0, 100.0)
    learning_rate_decay: float = knob(
        0.5, "η is multiplied by this after every epoch, on the chip and in the float baseline alike (per-example SGD at a fixed η ends each epoch about ±1.5 pp from its mean; a decaying η settles)", "", 0.0, 1.0
    )
    transfer_interval: int = knob(1000, "examples between transfers to the PCM pair when transfer_pulses = 0 (paper: 8,000), and between refreshes of 2-PCM cells; 0 never transfers", "examples", 0, 10**9)
    polarity_inversion: bool = knob(True, "flip the capacitor pair's sign s at every transfer (US 11,074,499)")
    transfer_offset: float = knob(0.0, "W_T = W − offset − s·(g − g_shared); the capacitor corrects negative errors better", "µS", 0.0, 100.0)
    refresh_threshold: float = knob(0.9, "refresh a PCM pair when G⁺ or G⁻ exceeds this fraction of g_max", "", 0.0, 1.0)
    epochs: int = knob(1, "default number of epochs for `train`", "", 1, 100000)
    weight_range: float = knob(
        5.0, "trained layers map ±weight_range × Glorot's limit √(6/(fan_in+fan_out)) to the full conductance range (assumption)", "", 0.01, 1e4
    )
    transfer_threshold: float = knob(
        0.0, "stochastic transfer: a pair whose needed change is below this moves by it with probability change/threshold, else stays untouched; 0 transfers every pair", "µS", 0.0, 100.0
    )
    transfer_pulses: float = knob(
        125.0, "adaptive transfer: a layer transfers when its cells have taken this many update pulses each, on average, since its last transfer (each layer on its own schedule); 0 transfers every transfer_interval examples",
        "pulses per cell", 0.0, 1e9,
    )
    transfer_residual: str = knob(
        "verify", "what happens to the share of a pair that the PCM did not take: lost with the capacitor reset (\"drop\"); for pairs left alone (change within the closed loop's tolerance or the deadband) pulsed back into the reset capacitor (\"keep\"); as keep, and for programmed pairs one read after programming puts what the programming missed into the capacitor too (\"verify\")",
        choices=("keep", "drop", "verify"),
    )
    transfer_deadband: float = knob(
        2.0, "a pair whose needed change is below this is not programmed at a transfer (no fresh programming error for a change smaller than it); with transfer_residual = \"keep\" or \"verify\" its share goes back into the capacitor, so it is deferred, not lost; 0 programs every pair beyond the closed loop's tolerance", "µS", 0.0, 100.0
    )
    transfer_read: str = knob(
        "capacitor", "what a transfer reads to set the PCM target: the whole weight (PCM 1/f read noise enters the target) or only the capacitor pair's share (the closed loop then moves the PCM pair by that share from its present state)",
        choices=("weight", "capacitor"),
    )
    pcm_update_step: float = knob(
        1.0, "2-PCM cells (no capacitor): nominal increment of one update SET pulse at G = 0, shrinking as G saturates (assumption)", "µS", 0.0, 25.0
    )


@dataclass(frozen=True)
class CostSpec:
    """[cost]: energy and time per operation, and tile area, for the cost model
    (runtime/cost/pricing.py). The defaults are those of pcm3t1c-2018: a tile read is priced
    so that a full 256x256 read costs what one core of IBM's 64-core 14 nm chip spends
    (10.5 TOPS/W, 1.59 TOPS/mm² per core, Nature Electronics 2023); how that energy
    splits between cells, DACs and ADCs, and every other number, is an assumption."""

    mvm_energy_per_mac: float = knob(9.3e-14, "energy of one analog multiply-accumulate (one cell of a tile read)", "J", 0.0, 1.0)
    dac_energy: float = knob(5.0e-12, "energy of one DAC conversion (one row driven for one read)", "J", 0.0, 1.0)
    adc_energy: float = knob(2.0e-11, "energy of one ADC conversion (one column read out)", "J", 0.0, 1.0)
    pulse_energy: float = knob(1.0e-13, "energy of one capacitor update pulse", "J", 0.0, 1.0)
    pcm_program_energy: float = knob(1.0e-11, "energy of one PCM program-and-verify iteration (a verify read + a pulse)", "J", 0.0, 1.0)
    pcm_read_energy: float = knob(9.3e-14, "energy of reading one cell outside a matrix-vector read (transfer, calibration)", "J", 0.0, 1.0)
    digital_op_energy: float = knob(1.0e-13, "energy of one digital operation (activation, partial-sum add, scaling)", "J", 0.0, 1.0)
    word_move_energy: float = knob(1.0e-12, "energy to send and receive one word between two tiles", "J", 0.0, 1.0)
    word_hop_energy: float = knob(1.0e-13, "energy to move one word one hop on the mesh", "J", 0.0, 1.0)
    host_flop_energy: float = knob(1.0e-11, "energy of one floating-point operation of a host segment", "J", 0.0, 1.0)
    mvm_time: float = knob(1.33e-7, "time of one tile read: DAC pulses, integration and ADC, all columns in parallel", "s", 0.0, 1.0)
    pulse_time: float = knob(1.0e-7, "time of one pulse slot of a parallel update", "s", 0.0, 1.0)
    pcm_program_time: float = knob(1.0e-6, "time of one PCM program-and-verify iteration (all cells of a row in parallel)", "s", 0.0, 1.0)
    hop_time: float = knob(1.0e-9, "time for one word to cross one mesh hop", "s", 0.0, 1.0)
    host_flop_time: float = knob(1.0e-11, "host time per floating-point operation (1 / host FLOP/s)", "s", 0.0, 1.0)
    tile_area: float = knob(2.48, "area of one tile with its periphery", "mm²", 0.0, 1e6)


TABLES = {
    "chip": ChipSpec,
    "cell": CellSpec,
    "pcm": PcmSpec,
    "capacitor": CapacitorSpec,
    "periphery": PeripherySpec,
    "training": TrainingSpec,
    "cost": CostSpec,
}


@dataclass(frozen=True)
class TargetSpec:
    """A whole chip description: name, source, and one dataclass per table."""

    name: str
    description: str = ""
    source: str = ""
    ideal: bool = False
    chip: ChipSpec = field(default_factory=ChipSpec)
    cell: CellSpec = field(default_factory=CellSpec)
    pcm: PcmSpec = field(default_factory=PcmSpec)
    capacitor: CapacitorSpec = field(default_factory=CapacitorSpec)
    periphery: PeripherySpec = field(default_factory=PeripherySpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    cost: CostSpec = field(default_factory=CostSpec)

    @property
    def cells_per_tile(self) -> int:
        return self.chip.tile_rows * self.chip.tile_cols

    def usable_tiles(self) -> list[tuple[int, int]]:
        """Grid positions in row-major order, faulty tiles left out."""
        faulty = {tuple(t) for t in self.chip.faulty_tiles}
        return [
            (r, c)
            for r in range(self.chip.grid_rows)
            for c in range(self.chip.grid_cols)
            if (r, c) not in faulty
        ]

    def to_dict(self) -> dict:
        """Plain dict (TOML/JSON-able) that `spec_from_dict` reads back."""
        return dataclasses.asdict(self)

    def without_nonidealities(self) -> "TargetSpec":
        """The same chip with every nonideality switched off (`--ideal`)."""
        return dataclasses.replace(
            self,
            ideal=True,
            pcm=dataclasses.replace(
                self.pcm,
                programming_noise=False,
                drift=False,
                read_noise=False,
                stuck_high_fraction=0.0,
                dead_fraction=0.0,
            ),
            capacitor=dataclasses.replace(
                self.capacitor, step_mismatch=0.0, read_offset_sigma=0.0, read_gain_sigma=0.0, leak_tau=0.0
            ),
            periphery=dataclasses.replace(
                self.periphery, quantization=False, output_noise_enabled=False
            ),
        )


def shipped_targets() -> dict[str, Path]:
    """Names of the shipped specs (file stem) to their paths, sorted by name."""
    folder = resources.files("analogc.target_specs")
    found = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".toml"):
            found[entry.name[: -len(".toml")]] = Path(str(entry))
    return dict(sorted(found.items()))


def load_target(name_or_path: str | None) -> TargetSpec:
    """A shipped spec by name, or a TOML file by path; the default when None."""
    name_or_path = name_or_path or DEFAULT_TARGET
    shipped = shipped_targets()
    if name_or_path in shipped:
        return load_spec(shipped[name_or_path])
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return load_spec(path)
    raise AnalogcError(
        f"unknown target {name_or_path!r}: shipped targets are {', '.join(shipped)}, "
        "or give the path of a .toml file"
    )


def load_spec(path: Path) -> TargetSpec:
    """Read and validate one TOML target spec."""
    raw = read_toml(path, "target spec")
    raw.setdefault("name", Path(path).stem)
    return spec_from_dict(raw, origin=str(path))


def spec_from_dict(raw: dict, origin: str = "target spec") -> TargetSpec:
    """Validate a parsed spec: unknown keys, types and ranges are errors naming the key."""
    if not isinstance(raw, dict):
        raise AnalogcError(f"{origin}: a target spec must be a table")
    if "name" not in raw:
        raise AnalogcError(f"{origin}: a target spec needs a name")
    top_level = {"name": str, "description": str, "source": str, "ideal": bool}
    unknown = sorted(set(raw) - set(top_level) - set(TABLES))
    if unknown:
        raise AnalogcError(f"{origin}: unknown key {unknown[0]!r} (allowed tables: {', '.join(TABLES)})")
    kwargs = {}
    for key, kind in top_level.items():
        if key in raw:
            if not isinstance(raw[key], kind):
                raise AnalogcError(f"{origin}: key {key!r} must be a {kind.__name__}, got {raw[key]!r}")
            kwargs[key] = raw[key]
    for table, cls in TABLES.items():
        values = raw.get(table, {})
        if not isinstance(values, dict):
            raise AnalogcError(f"{origin}: [{table}] must be a table")
        kwargs[table] = table_from_dict(cls, values, f"{origin}: [{table}]")
    spec = TargetSpec(**kwargs)
    check_consistency(spec, origin)
    return spec


def table_from_dict(cls, values: dict, where: str):
    """Build one table's dataclass, checking each key's type and range."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise AnalogcError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(fields)})")
    out = {}
    for key, value in values.items():
        out[key] = check_value(key, value, hints[key], fields[key].metadata, where)
    return cls(**out)


def check_value(key: str, value, kind, meta, where: str):
    """One value against its declared type, range and choices."""
    subject = f"{where} {key}" if key else where
    if kind is bool:
        if not isinstance(value, bool):
            raise AnalogcError(f"{subject} must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise AnalogcError(f"{subject} must be an integer, got {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise AnalogcError(f"{subject} must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise AnalogcError(f"{subject} must be finite, got {value!r}")
    elif kind is str:
        if not isinstance(value, str):
            raise AnalogcError(f"{subject} must be a string, got {value!r}")
        if meta["choices"] and value not in meta["choices"]:
            raise AnalogcError(f"{subject} must be one of {', '.join(meta['choices'])}, got {value!r}")
        return value
    elif kind is list:
        return check_tile_list(key, value, where)
    lo, hi = meta["lo"], meta["hi"]
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        unit = f" {meta['unit']}" if meta["unit"] else ""
        raise AnalogcError(f"{subject} must be in [{lo}, {hi}]{unit}, got {value!r}")
    return value


def check_tile_list(key: str, value, where: str) -> list:
    """A list of [row, col] pairs of non-negative integers."""
    if not isinstance(value, list):
        raise AnalogcError(f"{where} {key} must be a list of [row, col] pairs, got {value!r}")
    pairs = []
    for item in value:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in item)
        ):
            raise AnalogcError(f"{where} {key} must hold [row, col] pairs of integers ≥ 0, got {item!r}")
        pairs.append([int(item[0]), int(item[1])])
    return pairs


def check_consistency(spec: TargetSpec, origin: str) -> None:
    """Rules between keys that single-key ranges cannot express."""
    chip = spec.chip
    for r, c in chip.faulty_tiles:
        if r >= chip.grid_rows or c >= chip.grid_cols:
            raise AnalogcError(
                f"{origin}: [chip] faulty_tiles entry [{r}, {c}] lies outside the "
                f"{chip.grid_rows}x{chip.grid_cols} grid"
            )
    if spec.pcm.g_prog_max > spec.pcm.g_max:
        raise AnalogcError(f"{origin}: [pcm] g_prog_max ({spec.pcm.g_prog_max}) exceeds g_max ({spec.pcm.g_max})")
    cap = spec.capacitor
    if not cap.v_min <= cap.v_init <= cap.v_max:
        raise AnalogcError(f"{origin}: [capacitor] v_init must lie between v_min and v_max, got {cap.v_init}")
    if spec.pcm.stuck_high_fraction + spec.pcm.dead_fraction > 1.0:
        raise AnalogcError(f"{origin}: [pcm] stuck_high_fraction + dead_fraction exceeds 1")


def has_capacitor(spec: TargetSpec) -> bool:
    """Cells with a 3T1C capacitor pair (not the 2-PCM cell, and not switched off)."""
    return spec.capacitor.enabled and spec.chip.cell != "pcm2"


def check_trainable(spec: TargetSpec) -> None:
    """Training moves a capacitor by pulses of g_per_volt·dv µS: zero would divide by zero
    (inference does not mind, so only `train` refuses)."""
    cap, where = spec.capacitor, f"target {spec.name!r}"
    if not spec.chip.trainable:
        raise AnalogcError(f"{where} does not support in-situ training ([chip] trainable = false)")
    if has_capacitor(spec):
        if cap.g_per_volt <= 0:
            raise AnalogcError(f"{where}: [capacitor] g_per_volt must be positive to train, got {cap.g_per_volt}")
        if cap.dv_up + cap.dv_down <= 0:
            raise AnalogcError(f"{where}: [capacitor] dv_up and dv_down are both 0, so no update could move a capacitor")


def spec_summary(spec: TargetSpec) -> str:
    """One line for `analogc targets`."""
    chip = spec.chip
    mode = "training" if chip.trainable else "inference only"
    return (
        f"{chip.grid_rows}x{chip.grid_cols} tiles of {chip.tile_rows}x{chip.tile_cols} "
        f"{chip.cell} cells, bias {chip.bias}, {mode}"
    )
