"""Exact operation counts of a tile program, keyed by (phase, layer, tile).

`OpCounts` holds integer counts per kind. Work kinds cost energy; step kinds are the
sequential steps on the critical path and cost time (see `runtime/cost/pricing.py`, which
prices both). Counts describe the target hardware running the program, so they are the
same in `--ideal` mode: ideal switches the physics off, not the periphery.

Per vector (one input row of a layer: one example for a 2-D input, one patch of a
convolution; a layer reads `reads_per_example` of them per example), per block of
`rows x cols` array cells (rows include the bias row of an analog bias):

- inference / forward: `macs` rows·cols, `dac_conversions` rows, `adc_conversions`
  cols; per layer `digital_ops` 2·(array rows) + N for the per-example DAC scaling
  (largest magnitude, normalise each input, rescale each output), N for a digital bias,
  N·(activation ops: 0 identity, 1 relu/leaky_relu/sigmoid/tanh, 3 softmax/log_softmax);
  partial sums: one add per element received, on the tile that adds them;
- backward (transpose read): `macs` rows·cols, DAC on columns (cols), ADC on the
  non-bias rows; per layer `digital_ops` 2·N + K (scaling) + N·(derivative ops: 0
  identity, 2 element-wise, 3 softmax); partial sums over column splits;
- update: `digital_ops` rows + cols per block (pulse trains of x and δ); `pulses` are
  data dependent (the trainer adds them); `update_steps` capacitor.max_pulses per
  sequential update step;
- transfer: one-hot row reads of every cell: `pcm_reads` and `adc_conversions`
  rows·cols, `dac_conversions` rows; `read_steps` = distinct tile rows per tile; the
  PCM programming it triggers is data dependent (the trainer adds
  `pcm_program_iterations` and `program_steps`);
- program (one-time set-up, from the chip's devices): `pcm_program_iterations` per
  block, `program_steps` = slowest tile's Σ over rows of the row's largest iteration
  count (a row's cells are programmed in parallel); drift-compensation calibration
  reads of whole tiles (`pcm_reads`, `adc_conversions`).

Mesh traffic (runtime/cost/dataflow.py rules, the placer's): `words_moved` and `word_hops`
(words × Manhattan hops) for flows between different tiles, charged to the sending
block. Step kinds, per layer: `read_steps` = slowest tile's sequential reads (blocks of
the layer sharing rows or columns in a tile take turns); `hop_steps` = longest
partial-sum flow then longest output flow, each `words + hops − 1` (one word per
link per hop time). Host segments: `host_flops` (runtime/cost/host_flops.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analogc.errors import AnalogcError
from analogc.runtime.cost.dataflow import backward_flows, hops, labelled_flows, one_read_views, program_views, tile_steps
from analogc.runtime.cost.periphery_ops import ACTIVATION_OPS, DERIVATIVE_OPS
from analogc.runtime.cost.replica_counts import needs_own_counts, read_counts

PHASES = ("inference", "forward", "backward", "update", "transfer", "program")
WORK_KINDS = (
    "macs",
    "dac_conversions",
    "adc_conversions",
    "pulses",
    "pcm_program_iterations",
    "pcm_reads",
    "digital_ops",
    "words_moved",
    "word_hops",
    "host_flops",
)
STEP_KINDS = ("read_steps", "update_steps", "program_steps", "hop_steps")
KINDS = WORK_KINDS + STEP_KINDS
CHIP = "(chip)"  # layer name of chip-wide entries (programming steps, calibration)


@dataclass
class OpCounts:
    """Integer counts per kind, keyed by (phase, layer, tile or None), and the number of
    examples each phase processed (for per-example figures)."""

    table: dict = field(default_factory=dict)
    examples: dict = field(default_factory=dict)

    def add(self, phase: str, layer: str, tile: tuple[int, int] | None = None, **kinds: int) -> None:
        """Add counts, e.g. add("update", "fc1", (0, 1), pulses=1234)."""
        if phase not in PHASES:
            raise AnalogcError(f"unknown cost phase {phase!r} (phases: {', '.join(PHASES)})")
        key = (phase, str(layer), None if tile is None else (int(tile[0]), int(tile[1])))
        values = {}
        for kind, value in kinds.items():
            if kind not in KINDS:
                raise AnalogcError(f"unknown operation kind {kind!r} (kinds: {', '.join(KINDS)})")
            values[kind] = int(value)
            if values[kind] < 0:
                raise AnalogcError(f"operation count {kind} must be ≥ 0, got {value}")
        values = {k: v for k, v in values.items() if v}
        if values:
            entry = self.table.setdefault(key, {})
            for kind, value in values.items():
                entry[kind] = entry.get(kind, 0) + value

    def add_examples(self, phase: str, n: int) -> None:
        self.examples[phase] = self.examples.get(phase, 0) + int(n)

    def merge(self, other: "OpCounts", factor: int = 1) -> "OpCounts":
        """Add `factor` times another table's counts (and examples) into this one."""
        for (phase, layer, tile), kinds in other.table.items():
            self.add(phase, layer, tile, **{k: v * factor for k, v in kinds.items()})
        for phase, n in other.examples.items():
            self.add_examples(phase, n * factor)
        return self

    def total(self, kind: str, phase: str | None = None, layer: str | None = None) -> int:
        return sum(
            kinds.get(kind, 0)
            for (p, l, _), kinds in self.table.items()
            if (phase is None or p == phase) and (layer is None or l == layer)
        )

    def phases(self) -> list[str]:
        present = {p for p, _, _ in self.table} | set(self.examples)
        return [p for p in PHASES if p in present]

    def to_json(self) -> list[dict]:
        """Rows sorted by phase, layer, tile: {phase, layer, tile, counts}."""
        order = {p: i for i, p in enumerate(PHASES)}
        rows = sorted(self.table.items(), key=lambda item: (order[item[0][0]], item[0][1], item[0][2] or (-1, -1)))
        return [
            {"phase": p, "layer": l, "tile": list(t) if t else None, "counts": dict(sorted(k.items()))}
            for (p, l, t), k in rows
            if k
        ]


def static_block_counts(program, phase: str, batch: int, layers=None) -> OpCounts:
    """Data-independent counts of one `phase` pass over every block (or over the named
    `layers`) for `batch` examples: each layer reads `reads_per_example` vectors per
    example (a conv's output positions, a sequence's steps; 1 for a vector)."""
    if batch < 0:
        raise AnalogcError(f"batch must be ≥ 0, got {batch}")
    counts = OpCounts()
    wanted = None if layers is None else set(layers)
    reads = reads_per_example(program)
    if phase in ("inference", "forward") and wanted is None and needs_own_counts(program):
        # Copies read as their replication says (runtime/cost/replica_counts.py).
        read_counts(program, phase, {name: {n: batch} for name, n in reads.items()}, counts)
    else:
        for (p, layer, tile), kinds in per_vector_table(program, phase).items():
            if wanted is None or layer in wanted:
                n = batch * reads.get(layer, 1)
                counts.add(p, layer, tile, **{k: v * n for k, v in kinds.items()})
    if phase in ("inference", "forward") and wanted is None:
        for name, flops in host_flops_per_example(program).items():
            counts.add(phase, name, None, host_flops=flops * batch)
    counts.add_examples(phase, batch)
    return counts


def reads_per_example(program) -> dict:
    """{layer: vectors it reads per example}, as the compiler stored it (1 when absent)."""
    return {layer["name"]: int(layer.get("reads_per_example", 1)) for layer in program.layers}


def layer_vector_counts(program, phase: str, vectors: dict, examples: dict | None = None) -> OpCounts:
    """Counts of `phase` with a different number of vectors per layer (the chip counts
    the rows each layer actually read); with `examples` ({layer: {reads per example:
    examples}}, which the chip tallies too), copies are counted as they read."""
    counts = OpCounts()
    if examples is not None and needs_own_counts(program):
        read_counts(program, phase, examples, counts)
        return counts
    for (p, layer, tile), kinds in per_vector_table(program, phase).items():
        n = vectors.get(layer, 0)
        if n:
            counts.add(p, layer, tile, **{k: v * n for k, v in kinds.items()})
    return counts


def per_vector_table(program, phase: str) -> dict:
    """{(phase, layer, tile): {kind: count}} for one vector per layer, cached on the
    program (blocks and placement never change after compilation)."""
    if phase not in PHASES or phase == "program":
        raise AnalogcError(f"no static counts for phase {phase!r} (static phases: {', '.join(PHASES[:5])})")
    cache = program.__dict__.setdefault("_cost_tables", {})
    if phase not in cache:
        builder = {"inference": read_pass, "forward": read_pass, "backward": read_pass, "update": update_pass, "transfer": transfer_pass}
        counts = OpCounts()
        builder[phase](program, phase, counts)
        cache[phase] = counts.table
    return cache[phase]


def layer_rects(program) -> dict:
    """{layer: {tile: [rect, ...]}}: the rectangles of each layer's blocks per tile."""
    blocks, _ = program_views(program)
    out: dict = {}
    for block in blocks:
        out.setdefault(block.layer, {}).setdefault(block.tile, []).append(block.rect)
    return out


def read_pass(program, phase: str, counts: OpCounts) -> None:
    backward = phase == "backward"
    blocks, views = program_views(program)
    for block in blocks:
        k = program.layer(block.layer)["shape"][0]
        rows, cols = block.rows[1] - block.rows[0], block.cols[1] - block.cols[0]
        error_rows = max(0, min(block.rows[1], k) - block.rows[0])
        counts.add(
            phase,
            block.layer,
            block.tile,
            macs=rows * cols,
            dac_conversions=cols if backward else rows,
            adc_conversions=error_rows if backward else cols,
        )
    rects = layer_rects(program)
    for layer in program.layers:
        k, n = layer["shape"]
        act = layer["activation"]["op"]
        if backward:
            digital = 2 * n + k + n * DERIVATIVE_OPS[act]
        else:
            array_rows = k + (1 if layer["bias"] == "analog" else 0)  # (= array_shape[0], which older programs lack)
            digital = 2 * array_rows + n + (n if layer["bias"] == "digital" else 0) + n * ACTIVATION_OPS[act]
        steps = max((tile_steps(r) for r in rects.get(layer["name"], {}).values()), default=0)
        counts.add(phase, layer["name"], None, digital_ops=digital, read_steps=steps)
    flows = backward_flows(blocks, views) if backward else labelled_flows(blocks, one_read_views(views))
    add_flows(counts, phase, blocks, flows)


def add_flows(counts: OpCounts, phase: str, blocks: list, flows: list) -> None:
    """Words, word-hops and partial-sum adds of each flow; per layer the critical path."""
    by_id = {b.id: b for b in blocks}
    longest: dict = {}
    for src_id, dst_id, elements, kind in flows:
        src, dst = by_id[src_id], by_id[dst_id]
        distance = hops(src.tile, dst.tile)
        if kind == "partial":
            counts.add(phase, src.layer, dst.tile, digital_ops=elements)
        if distance:
            counts.add(phase, src.layer, src.tile, words_moved=elements, word_hops=elements * distance)
            key = (src.layer, kind)
            longest[key] = max(longest.get(key, 0), elements + distance - 1)
    for (layer, _), steps in sorted(longest.items()):
        counts.add(phase, layer, None, hop_steps=steps)


def update_pass(program, phase: str, counts: OpCounts) -> None:
    blocks, _ = program_views(program)
    for block in blocks:
        counts.add(phase, block.layer, block.tile, digital_ops=(block.rows[1] - block.rows[0]) + (block.cols[1] - block.cols[0]))
    window = int(program.meta["target"].get("capacitor", {}).get("max_pulses", 1))
    for layer, by_tile in layer_rects(program).items():
        steps = max((tile_steps(r) for r in by_tile.values()), default=0)
        counts.add(phase, layer, None, update_steps=steps * window)


def transfer_pass(program, phase: str, counts: OpCounts) -> None:
    blocks, _ = program_views(program)
    for block in blocks:
        rows, cols = block.rows[1] - block.rows[0], block.cols[1] - block.cols[0]
        counts.add(phase, block.layer, block.tile, pcm_reads=rows * cols, adc_conversions=rows * cols, dac_conversions=rows)
    for layer, by_tile in layer_rects(program).items():
        steps = max(len({r for rect in rects for r in range(rect[0], rect[2])}) for rects in by_tile.values())
        counts.add(phase, layer, None, read_steps=steps)


def host_flops_per_example(program) -> dict:
    """{segment name: FLOPs per example}, from each segment's ONNX graph (cached)."""
    cache = program.__dict__.setdefault("_cost_tables", {})
    if "host_flops" not in cache:
        # heavy: onnx (0.5 s), needed only by programs with host segments
        import onnx

        from analogc.runtime.cost.host_flops import per_example_input_shapes, segment_flops

        per_example = {}
        for segment in program.meta.get("host_segments", []):
            model = onnx.load_from_string(program.members[segment["member"]])
            shapes, batch = per_example_input_shapes(model)
            flops, _ = segment_flops(model, shapes)
            per_example[segment["name"]] = flops // batch
        cache["host_flops"] = per_example
    return cache["host_flops"]


def host_call_flops(program, segment: dict, shapes: dict) -> int:
    """FLOPs of one host-segment call with these input shapes (cached per shapes)."""
    cache = program.__dict__.setdefault("_cost_tables", {}).setdefault("host_calls", {})
    key = (segment["name"], tuple(sorted(shapes.items())))
    if key not in cache:
        # heavy: onnx (0.5 s), needed only by programs with host segments
        import onnx

        from analogc.runtime.cost.host_flops import segment_flops

        cache[key] = segment_flops(onnx.load_from_string(program.members[segment["member"]]), shapes)[0]
    return cache[key]


def layer_program_counts(program, phase: str, layer: str, iterations) -> OpCounts:
    """PCM programming of one layer from its per-cell iteration counts (an array of the
    layer's array shape, rows incl. the bias row): iterations per tile, and the slowest
    tile's sequential slots (Σ over its rows of the row's largest count). For the
    trainer's transfers and refreshes."""
    iterations = np.asarray(iterations)
    blocks = [b for b in program.blocks if b["layer"] == layer]
    return block_program_counts(phase, layer, blocks, lambda b: iterations[b["rows"][0]:b["rows"][1], b["cols"][0]:b["cols"][1]])


def programming_counts(blocks: list, iterations_of) -> OpCounts:
    """The one-time closed-loop programming of the chip's devices: iterations per block
    (each a verify read + a pulse; `iterations_of(block)` gives the block's per-cell
    counts, None for devices a training run left), and the slowest tile's sequential
    iteration slots."""
    return block_program_counts("program", CHIP, blocks, iterations_of)


def block_program_counts(phase: str, owner: str, blocks: list, iterations_of) -> OpCounts:
    """Iterations per block on its tile, and under `owner` the slowest tile's sequential
    slots: Σ over the tile's rows of the largest count on the row (across the tile's
    blocks), as a row's cells are programmed in parallel."""
    counts = OpCounts()
    rows_max: dict = {}  # tile -> the largest count on each of its rows so far (int64, 0 where none)
    for block in blocks:
        tile, window = tuple(block["tile"]), iterations_of(block)
        counts.add(phase, block["layer"], tile, pcm_program_iterations=0 if window is None else int(window.sum()))
        if window is None or not window.size:
            rows_max.setdefault(tile, np.zeros(0, dtype=np.int64))
            continue
        top = window.max(axis=1).astype(np.int64)
        start = block["offset"][0]
        end = start + len(top)
        per_row = rows_max.get(tile, np.zeros(0, dtype=np.int64))
        if len(per_row) < end:
            per_row = np.concatenate([per_row, np.zeros(end - len(per_row), dtype=np.int64)])
        np.maximum(per_row[start:end], top, out=per_row[start:end])
        rows_max[tile] = per_row
    steps = max((int(per_row.sum()) for per_row in rows_max.values()), default=0)
    counts.add(phase, owner, None, program_steps=steps)
    return counts


def calibration_counts(tiles: list, tile_shape: tuple) -> OpCounts:
    """Drift compensation: two whole-tile reads per tile (at t0 and now), tiles in parallel."""
    counts = OpCounts()
    rows, cols = tile_shape
    for tile in tiles:
        counts.add("program", "(calibration)", tuple(tile), pcm_reads=2 * rows * cols, adc_conversions=2 * cols, dac_conversions=2 * rows)
    if tiles:
        counts.add("program", "(calibration)", None, read_steps=2)
    return counts
