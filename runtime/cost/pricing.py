"""The cost model: exact operation counts priced with the target spec's [cost] table.

API (what `run`, `plan`, `cost` and the trainer call):

    from analogc.runtime.cost.pricing import OpCounts, static_block_counts, price

    counts = OpCounts()
    counts.merge(static_block_counts(program, "forward", batch))    # data-independent
    counts.merge(static_block_counts(program, "backward", batch, layers=trained))
    counts.merge(static_block_counts(program, "update", batch, layers=trained))
    counts.add("update", layer, tile, pulses=n)                     # data-dependent
    counts.add("transfer", layer, tile, pcm_program_iterations=m)   # ...
    counts.add("transfer", layer, None, program_steps=s)            # critical path
    report = price(counts, spec, program, examples=n_examples)
    report.to_json(); report.summary_lines()

- `OpCounts.add(phase, layer, tile, **kinds)` adds integer counts; phases are
  inference, forward, backward, update, transfer and program (one-time set-up); kinds
  are listed in runtime/cost/opcounts.py (work kinds cost energy, *_steps cost time).
- `static_block_counts(program, phase, batch, layers=None)` gives one pass over every
  block (or the named layers) for `batch` vectors; it multiplies a per-vector table
  cached on the program, so it costs O(blocks) per call, never O(batch).
- `price(counts, spec, program, examples=None)` -> `CostReport`.

Pricing: energy = Σ count × energy per operation; time = Σ critical-path steps × time
per step (tiles run in parallel, blocks that share rows or columns in a tile take
turns, layers run one after another, mesh flows add words + hops − 1 hop times) plus
host FLOPs × host time per FLOP. Digital periphery work costs energy and is assumed to
overlap with tile reads. Examples run one after another (no pipelining across
examples), so throughput = examples / time. Ops = 2 × analog MACs (host FLOPs are not
counted as ops, but their energy and time are). Area = tiles used × tile area. The
one-time "program" phase (closed-loop programming, drift calibration) is reported as
set-up, outside the per-example figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analogc.runtime.cost.opcounts import STEP_KINDS, WORK_KINDS, OpCounts, static_block_counts
from analogc.runtime.format.spec import spec_from_dict
from analogc.wording import count

__all__ = ["OpCounts", "static_block_counts", "price", "CostReport", "summary_lines", "peak_figures", "inference_estimate"]

ENERGY_FIELD = {
    "macs": "mvm_energy_per_mac",
    "dac_conversions": "dac_energy",
    "adc_conversions": "adc_energy",
    "pulses": "pulse_energy",
    "pcm_program_iterations": "pcm_program_energy",
    "pcm_reads": "pcm_read_energy",
    "digital_ops": "digital_op_energy",
    "words_moved": "word_move_energy",
    "word_hops": "word_hop_energy",
    "host_flops": "host_flop_energy",
}
TIME_FIELD = {
    "read_steps": "mvm_time",
    "update_steps": "pulse_time",
    "program_steps": "pcm_program_time",
    "hop_steps": "hop_time",
    "host_flops": "host_flop_time",
}
SETUP = ("program",)


@dataclass
class CostReport:
    """Energy (J), time (s) and area (mm²) of counted work, with derived figures."""

    examples: int
    tiles_used: int
    area_mm2: float
    ops: int
    energy_j: float
    time_s: float
    setup_energy_j: float
    setup_time_s: float
    energy_by_phase: dict = field(default_factory=dict)
    time_by_phase: dict = field(default_factory=dict)
    energy_by_kind: dict = field(default_factory=dict)
    time_by_kind: dict = field(default_factory=dict)
    energy_by_layer: dict = field(default_factory=dict)
    time_by_layer: dict = field(default_factory=dict)
    counts_by_kind: dict = field(default_factory=dict)
    energy_by_layer_kind: dict = field(default_factory=dict)  # {layer: {kind: J}}
    time_by_layer_kind: dict = field(default_factory=dict)  # {layer: {kind: s}}
    peak: dict = field(default_factory=dict)

    @property
    def energy_per_example_j(self) -> float | None:
        return self.energy_j / self.examples if self.examples else None

    @property
    def latency_per_example_s(self) -> float | None:
        return self.time_s / self.examples if self.examples else None

    @property
    def throughput_examples_per_s(self) -> float | None:
        return self.examples / self.time_s if self.examples and self.time_s > 0 else None

    @property
    def gops_per_w(self) -> float | None:
        """Operations per joule in GOP/J, i.e. GOP/s per W."""
        return self.ops / self.energy_j / 1e9 if self.energy_j > 0 else None

    @property
    def gops_per_mm2(self) -> float | None:
        return self.ops / self.time_s / self.area_mm2 / 1e9 if self.time_s > 0 and self.area_mm2 > 0 else None

    def to_json(self) -> dict:
        return {
            "examples": self.examples,
            "energy_per_example_j": self.energy_per_example_j,
            "latency_per_example_s": self.latency_per_example_s,
            "throughput_examples_per_s": self.throughput_examples_per_s,
            "gops_per_w": self.gops_per_w,
            "gops_per_mm2": self.gops_per_mm2,
            "ops": self.ops,
            "ops_unit": "2 x analog multiply-accumulates",
            "energy_j": self.energy_j,
            "time_s": self.time_s,
            "tiles_used": self.tiles_used,
            "area_mm2": self.area_mm2,
            "setup_energy_j": self.setup_energy_j,
            "setup_time_s": self.setup_time_s,
            "energy_by_phase_j": self.energy_by_phase,
            "time_by_phase_s": self.time_by_phase,
            "energy_by_kind_j": self.energy_by_kind,
            "time_by_kind_s": self.time_by_kind,
            "energy_by_layer_j": self.energy_by_layer,
            "time_by_layer_s": self.time_by_layer,
            "energy_by_layer_kind_j": self.energy_by_layer_kind,
            "time_by_layer_kind_s": self.time_by_layer_kind,
            "counts": self.counts_by_kind,
            "peak": self.peak,
        }

    def summary_lines(self) -> list[str]:
        return summary_lines(self.to_json())


def summary_lines(report: dict) -> list[str]:
    """Human lines for a report's JSON (CostReport.to_json): run, train, plan, cost."""
    peak = report["peak"]

    def shown(value, spec: str) -> str:
        """A figure, or n/a where it is undefined (no chip time or energy: all on the host)."""
        return "n/a" if value is None else format(value, spec)

    lines = []
    if report["examples"]:
        lines.append(
            f"energy {report['energy_per_example_j'] * 1e9:.4g} nJ/example, latency {report['latency_per_example_s'] * 1e6:.4g} µs/example, "
            f"throughput {shown(report['throughput_examples_per_s'], '.4g')} examples/s"
        )
    lines.append(
        f"{shown(report['gops_per_w'], ',.0f')} GOP/s/W, {shown(report['gops_per_mm2'], ',.1f')} GOP/s/mm² on {count(report['tiles_used'], 'tile')} "
        f"({report['area_mm2']:.3g} mm²); full-tile peak {peak['gops_per_w'] or 0:,.0f} GOP/s/W, {peak['gops_per_mm2'] or 0:,.0f} GOP/s/mm² "
        "(2018 paper's projection: 28,065 GOP/s/W, 3,600 GOP/s/mm²)"
    )
    if report["setup_energy_j"] or report["setup_time_s"]:
        lines.append(
            f"one-time set-up (programming, calibration): {report['setup_energy_j'] * 1e6:.4g} µJ, {report['setup_time_s'] * 1e3:.4g} ms"
        )
    return lines


def price(counts: OpCounts, spec, program, examples: int | None = None) -> CostReport:
    """Energy and time of `counts` on `spec` (a TargetSpec); `examples` defaults to the
    largest number of examples any non-set-up phase recorded."""
    cost = spec.cost
    if examples is None:
        examples = max((n for p, n in counts.examples.items() if p not in SETUP), default=0)
    energy_by_phase, time_by_phase = dict.fromkeys(counts.phases(), 0.0), dict.fromkeys(counts.phases(), 0.0)
    energy_by_kind, time_by_kind, counts_by_kind = {}, {}, {}
    energy_by_layer, time_by_layer = {}, {}
    energy_by_layer_kind: dict = {}
    time_by_layer_kind: dict = {}
    ops = 0
    for (phase, layer, _), kinds in counts.table.items():
        setup = phase in SETUP
        for kind, n in kinds.items():
            energy = n * getattr(cost, ENERGY_FIELD[kind]) if kind in ENERGY_FIELD else 0.0
            time = n * getattr(cost, TIME_FIELD[kind]) if kind in TIME_FIELD else 0.0
            energy_by_phase[phase] += energy
            time_by_phase[phase] += time
            if setup:
                continue
            counts_by_kind[kind] = counts_by_kind.get(kind, 0) + n
            if kind in ENERGY_FIELD:
                energy_by_kind[kind] = energy_by_kind.get(kind, 0.0) + energy
                energy_by_layer[layer] = energy_by_layer.get(layer, 0.0) + energy
                split = energy_by_layer_kind.setdefault(layer, {})
                split[kind] = split.get(kind, 0.0) + energy
            if kind in TIME_FIELD:
                time_by_kind[kind] = time_by_kind.get(kind, 0.0) + time
                time_by_layer[layer] = time_by_layer.get(layer, 0.0) + time
                split = time_by_layer_kind.setdefault(layer, {})
                split[kind] = split.get(kind, 0.0) + time
            if kind == "macs":
                ops += 2 * n
    tiles_used = len({tuple(b["tile"]) for b in program.blocks})
    return CostReport(
        examples=int(examples),
        tiles_used=tiles_used,
        area_mm2=tiles_used * cost.tile_area,
        ops=ops,
        energy_j=sum(v for p, v in energy_by_phase.items() if p not in SETUP),
        time_s=sum(v for p, v in time_by_phase.items() if p not in SETUP),
        setup_energy_j=sum(v for p, v in energy_by_phase.items() if p in SETUP),
        setup_time_s=sum(v for p, v in time_by_phase.items() if p in SETUP),
        energy_by_phase=energy_by_phase,
        time_by_phase=time_by_phase,
        energy_by_kind=dict(sorted(energy_by_kind.items(), key=lambda kv: WORK_KINDS.index(kv[0]))),
        time_by_kind=dict(sorted(time_by_kind.items(), key=lambda kv: (STEP_KINDS + ("host_flops",)).index(kv[0]))),
        energy_by_layer=energy_by_layer,
        time_by_layer=time_by_layer,
        counts_by_kind={k: counts_by_kind[k] for k in WORK_KINDS + STEP_KINDS if k in counts_by_kind},
        energy_by_layer_kind=energy_by_layer_kind,
        time_by_layer_kind=time_by_layer_kind,
        peak=peak_figures(spec),
    )


def peak_figures(spec) -> dict:
    """One full tile read (every cell a MAC, every row a DAC, every column an ADC): the
    figure the paper's projection quotes, independent of any model's mapping."""
    cost, chip = spec.cost, spec.chip
    rows, cols = chip.tile_rows, chip.tile_cols
    ops = 2 * rows * cols
    energy = rows * cols * cost.mvm_energy_per_mac + rows * cost.dac_energy + cols * cost.adc_energy
    return {
        "tile": [rows, cols],
        "gops_per_w": ops / energy / 1e9 if energy > 0 else None,
        "gops_per_mm2": ops / cost.mvm_time / cost.tile_area / 1e9 if cost.mvm_time > 0 and cost.tile_area > 0 else None,
    }


def inference_estimate(program, spec=None, examples: int = 1) -> CostReport:
    """The static cost of `examples` inferences (no programming, no calibration)."""
    spec = spec or spec_from_dict(program.meta["target"], origin="program target")
    return price(static_block_counts(program, "inference", examples), spec, program, examples=examples)


