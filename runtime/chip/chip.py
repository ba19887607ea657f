"""The simulated chip: the layers' programmed unit cells, and the instruction executor.

`Chip(program, ideal=..., seed=..., drift_time=...)` programs each layer's devices (one
`LayerDevices` store per layer and copy, the store training uses too; each block of the
plan is a window onto it, placed on its tile) through the PCM closed loop, or writes
exact weights in ideal mode, lets the devices drift to `drift_time`, then
`chip.run(feeds)` executes the program's inference instructions block by block: DAC,
tile read with 1/f read noise, ADC, drift compensation, partial sums, digital bias and
activation, host segments (onnxruntime).
With `count_ops` (the default) the chip tallies the vectors each layer reads and the
host calls it makes (O(1) per instruction); `chip.op_counts()` turns them into exact
operation counts (runtime/cost/opcounts.py) for the cost model.
"""

from __future__ import annotations

import numpy as np

from analogc.errors import AnalogcError
from analogc.memory import check_fits
from analogc.runtime.chip import im2col, tile_reads
from analogc.runtime.chip.activations import apply_activation
from analogc.runtime.chip.conv_store import fused_store
from analogc.runtime.chip.host import make_session, run_session
from analogc.runtime.cost import opcounts
from analogc.runtime.format import replicas
from analogc.runtime.format.spec import spec_from_dict
from analogc.runtime.physics import dac_kernels, kernels
from analogc.runtime.physics.layer_devices import (
    BYTES_PER_CELL, LayerDevices, effective_us, has_device_state, program_layer, read_variance_us, us_per_weight,
)


def stored_w_max(layer: dict, matrix: np.ndarray) -> float:
    """The layer's weight range: the w_max the compiler (or training) stored, or, in a
    program without one, the array matrix's largest |weight| (1 for an all-zero layer)."""
    if layer.get("w_max"):
        return float(layer["w_max"])
    w_max = float(np.max(np.abs(matrix))) if matrix.size else 0.0
    return w_max if w_max > 0 else 1.0


def window(block: dict) -> tuple[slice, slice]:
    """A block's cells in its layer's array (and so in its layer's device store)."""
    (r0, r1), (c0, c1) = block["rows"], block["cols"]
    return slice(r0, r1), slice(c0, c1)


def common_bounds(readers: list) -> tuple | None:
    """The row bounds all of a layer's readers cut their input at, or None if they differ."""
    bounds = {reader.bounds for reader in readers}
    return bounds.pop() if len(bounds) == 1 else None


def take_rows(x, rows):
    """x[rows] of a DAC output: an array, a tuple of its row segments, or None."""
    if x is None:
        return None
    return tuple(part[rows] for part in x) if isinstance(x, tuple) else x[rows]


class Chip:
    """Device state per layer (blocks are windows onto it), effective block weights at
    the current time, executor."""

    def __init__(
        self,
        program,
        ideal: bool = False,
        seed: int = 0,
        drift_time: float | None = None,
        devices: dict | None = None,
        count_ops: bool = True,
        origin: str = "tile program",
    ):
        """`devices`: layer name -> LayerDevices, the state a training run left (read from
        the program's device arrays when it holds them); other layers are programmed.
        `count_ops`: tally what runs for the cost model (op_counts). `origin` names the
        program in errors (a refusal when the device state would not fit in memory)."""
        self.program = program
        self.count_ops = count_ops
        self.vectors: dict[str, int] = {}  # layer -> input rows read (cost model)
        self.examples: dict[str, dict] = {}  # layer -> {reads per example: examples} (cost model)
        self.host_calls: dict[tuple, int] = {}  # (segment, input shapes) -> calls
        self.dac_scratch: dict[str, dict] = {}  # layer -> its DAC outputs, refilled by the next batch
        spec = spec_from_dict(program.meta["target"], origin="program target")
        self.spec = spec.without_nonidealities() if ideal else spec
        program_seed, self.read_seed = np.random.SeedSequence(seed).spawn(2)
        # SFC64: the fastest of numpy's generators here, and reads draw a lot of noise.
        self.rng = np.random.Generator(np.random.SFC64(self.read_seed))
        self.layers = {layer["name"]: layer for layer in program.layers}
        self.blocks = {b["id"]: b for b in program.blocks}
        self.matrices = {name: self.array_matrix(layer) for name, layer in self.layers.items()}
        self.w_max = {name: stored_w_max(layer, self.matrices[name]) for name, layer in self.layers.items()}
        self.us_per_weight = {name: us_per_weight(self.spec, w) for name, w in self.w_max.items()}
        # The ADC's units (bound, noise, step) in weight units: the layer's ADC range when
        # the compiler set one apart from w_max (periphery.adc_range), else w_max.
        self.adc_range = {name: float(layer.get("adc_range") or self.w_max[name]) for name, layer in self.layers.items()}
        self.stores: dict[tuple[str, int], LayerDevices] = {}  # (layer, copy) -> its devices
        self.trained: set[str] = set()  # layers whose devices a training run left
        if not self.spec.ideal:
            self.check_device_memory(origin)
            self.program_devices(dict(devices or {}), np.random.default_rng(program_seed))
        self.sessions = {
            seg["name"]: (seg, make_session(program.members[seg["member"]], f"host segment {seg['name']}", spin=tile_reads.SPIN))
            for seg in program.meta.get("host_segments", [])
        }
        self.instructions = program.meta["instructions"]["inference"]
        self.set_time(self.spec.pcm.drift_t0 if drift_time is None else drift_time)

    def check_device_memory(self, origin: str) -> None:
        """Device state is kept per layer and copy: refuse before allocating what cannot fit."""
        cells = sum(self.matrices[name].size * replicas.copies_of(layer) for name, layer in self.layers.items())
        check_fits(cells * BYTES_PER_CELL, f"the device state of its {cells:,} cells ({BYTES_PER_CELL} bytes each)", origin)

    def array_matrix(self, layer: dict) -> np.ndarray:
        """The layer's weights with the bias row appended when the bias is analog."""
        weight = self.program.arrays[f"weight/{layer['name']}"].astype(np.float32)
        if layer["bias"] == "analog":
            weight = np.vstack([weight, self.program.arrays[f"bias/{layer['name']}"][None, :].astype(np.float32)])
        return weight

    def region(self, block: dict) -> tuple[slice, slice]:
        """A block's cells in its tile."""
        (r0, r1), (c0, c1), (o_r, o_c) = block["rows"], block["cols"], block["offset"]
        return slice(o_r, o_r + r1 - r0), slice(o_c, o_c + c1 - c0)

    def target(self, block: dict) -> np.ndarray:
        return self.matrices[block["layer"]][window(block)]

    def store_of(self, block: dict) -> LayerDevices:
        return self.stores[(block["layer"], block.get("copy", 0))]

    def program_devices(self, trained: dict, rng: np.random.Generator) -> None:
        """Each layer's devices, in layer then copy order (deterministic): the state a
        training run left (`trained`, or the program's device arrays), else programmed by
        closed loop with training's `program_layer`, whose regions (one shared 3T1C
        reference cell per column of each) are this copy's blocks."""
        for name, layer in self.layers.items():
            if name not in trained and has_device_state(self.program, name):
                trained[name] = LayerDevices.from_arrays(self.program.arrays, name, layer)
            for copy in range(replicas.copies_of(layer)):
                if name in trained:  # every copy reads the one trained state
                    self.stores[(name, copy)] = trained[name]
                    self.trained.add(name)
                    continue
                regions = [window(b) for b in self.program.blocks if b["layer"] == name and b.get("copy", 0) == copy]
                target_us = self.matrices[name].astype(np.float64) * self.us_per_weight[name]
                self.stores[(name, copy)] = program_layer(target_us, regions, self.spec, rng)

    def set_time(self, t: float) -> None:
        """Let the devices drift to t seconds after programming; precompute block reads."""
        if t < 0 or not np.isfinite(t):
            raise AnalogcError(f"drift time must be a finite number of seconds ≥ 0, got {t}")
        self.time = float(t)
        self.block_weights, self.block_variance, self.compensation = {}, {}, {}
        pcm = self.spec.pcm
        for bid, block in self.blocks.items():
            if self.spec.ideal:
                self.block_weights[bid] = np.ascontiguousarray(self.target(block))
                continue
            store, cells = self.store_of(block), window(block)
            scale = self.us_per_weight[block["layer"]]
            self.block_weights[bid] = (effective_us(store, cells, t, self.spec) / scale).astype(np.float32)
            if pcm.read_noise:
                variance = read_variance_us(store, cells, t, self.spec) / scale**2
                self.block_variance[bid] = variance.astype(np.float32)
        if not self.spec.ideal and pcm.drift and pcm.drift_compensation and t > pcm.drift_t0:
            self.compensation = self.calibrate(t)
        self.readers = {name: self.layer_reads(name, layer) for name, layer in self.layers.items()}
        # The row segments the DAC writes: those every copy's reads take (else whole rows).
        self.read_bounds = {name: common_bounds(readers) for name, readers in self.readers.items()}

    def layer_reads(self, name: str, layer: dict) -> list[tile_reads.LayerReads]:
        """The block products of each copy of the layer at the current time, one
        onnxruntime session per copy (one for a layer without copies)."""
        readers = []
        for copy in range(replicas.copies_of(layer)):
            blocks = [
                tile_reads.BlockMatrices(bid, tuple(b["rows"]), self.block_weights[bid], self.block_variance.get(bid))
                for bid, b in self.blocks.items()
                if b["layer"] == name and b.get("copy", 0) == copy
            ]
            readers.append(tile_reads.LayerReads(name, self.matrices[name].shape[0], blocks, self.spec.periphery.dac_range))
        return readers

    def calibrate(self, t: float) -> dict:
        """Global drift compensation: drive every row of a tile with 1 and compare the
        summed column currents with the same read taken right after programming (t0)."""
        alphas = {}
        rng = np.random.default_rng(np.random.SeedSequence(self.read_seed.entropy, spawn_key=(7,)))
        blocks_of: dict[tuple, list] = {}
        for block in self.program.blocks:
            blocks_of.setdefault(tuple(block["tile"]), []).append(block)
        for key in sorted(blocks_of):
            reference, now = self.tile_current(blocks_of[key], self.spec.pcm.drift_t0, rng), self.tile_current(blocks_of[key], t, rng)
            alphas[key] = float(reference / now) if now > 0 else 1.0
        return alphas

    def tile_current(self, blocks: list, t: float, rng: np.random.Generator) -> float:
        """Σ over a tile's columns of |column current| with every row driven by 1, at time
        t, with the read noise of the summed column (µS): the tile's blocks are windows
        onto their layers' stores, placed side by side or stacked in the tile."""
        columns = self.spec.chip.tile_cols
        current, variance = np.zeros(columns), np.zeros(columns)
        for block in blocks:
            store, cells, (_, tile_cols) = self.store_of(block), window(block), self.region(block)
            current[tile_cols] += effective_us(store, cells, t, self.spec).sum(axis=0)
            variance[tile_cols] += read_variance_us(store, cells, t, self.spec).sum(axis=0)
        return float(np.abs(current + np.sqrt(variance) * rng.standard_normal(columns)).sum())

    def programming_error(self) -> list[dict]:
        """Per layer: mean |W programmed − W target| over the layer's range (at t0, no read noise)."""
        rows = []
        for name, layer in self.layers.items():
            errors, cells = 0.0, 0
            iterations = 0
            if name in self.trained:
                rows.append({"layer": name, "w_max": self.w_max[name], "mean_abs_error_rel": None, "programming_iterations_per_cell": None, "trained": True})
                continue
            for block in self.program.blocks:
                if block["layer"] != name or self.spec.ideal:
                    continue
                store, cells_of_block = self.store_of(block), window(block)
                programmed = effective_us(store, cells_of_block, self.spec.pcm.drift_t0, self.spec) / self.us_per_weight[name]
                errors += float(np.abs(programmed - self.target(block)).sum())
                cells += programmed.size
                iterations += int(store.iterations[cells_of_block].sum())
            rows.append(
                {
                    "layer": name,
                    "w_max": self.w_max[name],
                    "mean_abs_error_rel": errors / cells / self.w_max[name] if cells else 0.0,
                    "programming_iterations_per_cell": iterations / cells if cells else 0.0,
                }
            )
        return rows

    def block_iterations(self, block: dict) -> np.ndarray | None:
        """The closed-loop iterations each cell of a block took (None: trained devices)."""
        iterations = self.store_of(block).iterations
        return None if iterations is None else iterations[window(block)]

    def read_block(self, block: dict, state: dict) -> tuple[np.ndarray, np.ndarray | None]:
        """One tile read: x[:, rows] through the block's cells, and the variance of each
        output from the devices' 1/f read noise (output-referred: Σ x_i² σ_i², one matmul
        on the squared inputs that `load` made with the DAC). The products of all the
        layer's blocks are made at once, in `load` (`tile_reads`)."""
        return state["reads"][block["id"]]

    def run(self, feeds: dict, stop_before: str | None = None) -> dict:
        """Execute the inference instructions; returns every graph output by name (or,
        with `stop_before`, every tensor computed before that layer loads its input)."""
        env = dict(feeds)
        for name in self.program.meta["model"].get("constant_outputs", []):
            env[name] = self.program.arrays[f"constant/{name}"]
        state = {}
        for instruction in self.instructions:
            op = instruction["op"]
            if stop_before is not None and op == "load" and instruction["layer"] == stop_before:
                return env
            if op == "host":
                self.run_host(instruction["segment"], env)
            elif op == "load":
                state = self.load(self.layers[instruction["layer"]], env)
            elif op == "mvm":
                block = self.blocks[instruction["block"]]
                (c0, c1) = block["cols"]
                partial, variance = self.read_block(block, state)
                acc = state["accs"][block.get("copy", 0)]
                if self.spec.ideal:
                    acc[:, c0:c1] += partial
                else:
                    # The ADC sees outputs in units of w_max·dac_range; drift compensation
                    # as its gain or after it, noise, bound and quantisation, back to
                    # weight units, accumulate.
                    alpha = self.compensation.get(tuple(block["tile"]))
                    gain, alpha = (alpha, None) if self.spec.pcm.drift_compensation_at == "adc_gain" else (None, alpha)
                    kernels.adc_accumulate(
                        acc, c0, partial, variance, self.adc_range[block["layer"]], alpha, self.spec.periphery, self.rng, gain=gain
                    )
            elif op == "store":
                self.store(self.layers[instruction["layer"]], state, env)
            else:
                raise AnalogcError(f"tile program has an unknown instruction {op!r}")
        return {o["name"]: env[o["name"]] for o in self.program.meta["model"]["outputs"]}

    def load(self, layer: dict, env: dict) -> dict:
        """Flatten the input to rows of K, append the bias input, pass the DACs."""
        x = np.asarray(env[layer["input"]])
        k, n = layer["shape"]
        lead, fold = x.shape[:-1], None
        if layer.get("kind") == "conv":  # the periphery cuts the input into patches, one read each
            # (with DACs, they gather the patches themselves: no patch matrix)
            flat, fold = im2col.layer_patches(x, layer) if self.spec.ideal else im2col.layer_gather(x, layer)
            lead = x.shape[:1]
        elif x.shape[-1] != k:
            raise AnalogcError(f"layer {layer['name']}: input has {x.shape[-1]} features, the weights expect {k}")
        else:
            flat = x.reshape(-1, k)
        positions = replicas.positions_per_example(flat.shape[0], lead)
        if self.count_ops:
            self.vectors[layer["name"]] = self.vectors.get(layer["name"], 0) + flat.shape[0]
            tally = self.examples.setdefault(layer["name"], {})
            tally[positions] = tally.get(positions, 0) + flat.shape[0] // positions
        bias = layer["bias"] == "analog"
        if self.spec.ideal:
            x_sq, scale = None, None
            x2 = np.empty((flat.shape[0], k + 1), dtype=np.float32) if bias else flat.astype(np.float32, copy=False)
            if bias:  # one copy: the inputs and the constant-1 bias row input side by side
                x2[:, :k] = flat
                x2[:, k] = 1.0
        else:
            # Bias input, DAC and the squares for the read-noise variance in one pass, cut
            # into the row segments the tile reads take (written in place: no copy).
            # The reads below are the outputs' only users: the next batch may refill them.
            scratch = self.dac_scratch.setdefault(layer["name"], {})
            x2, x_sq, scale = dac_kernels.dac_layer(
                flat, bias, self.spec.periphery, squares=bool(self.block_variance), scratch=scratch, bounds=self.read_bounds[layer["name"]]
            )
        readers, state = self.readers[layer["name"]], {"lead": lead, "scale": scale, "rows_of": None, "fold": fold}
        if replicas.mode_of(layer) == "throughput":
            # Each copy reads its own positions: a row is read once, by one copy.
            state["rows_of"] = replicas.position_rows(flat.shape[0], positions, len(readers))
            state["reads"], state["accs"] = {}, {}
            for copy, (reader, rows) in enumerate(zip(readers, state["rows_of"])):
                state["reads"].update(reader(take_rows(x2, rows), take_rows(x_sq, rows)))
                state["accs"][copy] = np.zeros((len(rows), n), dtype=np.float32)
            return state
        # Every copy (one without replication) reads every row into one accumulator.
        acc = np.zeros((flat.shape[0], n), dtype=np.float32)
        state["reads"] = {bid: out for reader in readers for bid, out in reader(x2, x_sq).items()}
        state["accs"] = dict.fromkeys(range(len(readers)), acc)
        return state

    def store(self, layer: dict, state: dict, env: dict) -> None:
        y = state["accs"][0]
        if state["rows_of"] is not None:  # throughput copies: rows back in order
            y = np.empty((sum(len(r) for r in state["rows_of"]), y.shape[1]), dtype=np.float32)
            for copy, rows in enumerate(state["rows_of"]):
                y[rows] = state["accs"][copy]
        elif len(state["accs"]) > 1:  # accuracy copies: the mean of their outputs
            y /= np.float32(len(state["accs"]))
        elif state.get("fold"):  # a conv layer: scale, bias, ReLU and fold in one pass, if it can
            bias = self.program.arrays[f"bias/{layer['name']}"] if layer["bias"] == "digital" else None
            out = fused_store(y, state["scale"], bias, layer["activation"], *state["fold"], layer["dtype"])
            if out is not None:
                env[layer["output"]] = out
                return
        if state["scale"] is not None:
            y *= state["scale"]  # the accumulator is this layer's own buffer
        if layer["bias"] == "digital":
            y = y + self.program.arrays[f"bias/{layer['name']}"].astype(np.float32)
        y = apply_activation(y, layer["activation"], overwrite=True)  # y is this batch's own buffer
        y = im2col.fold(y, *state["fold"]) if state.get("fold") else y.reshape(*state["lead"], y.shape[-1])
        env[layer["output"]] = y.astype(layer["dtype"], copy=False)

    def run_host(self, name: str, env: dict) -> None:
        segment, session = self.sessions[name]
        feeds = {tensor: env[tensor] for tensor in segment["inputs"]}
        if self.count_ops:
            key = (name, tuple(np.shape(v) for v in feeds.values()))
            self.host_calls[key] = self.host_calls.get(key, 0) + 1
        outputs = run_session(session, feeds, f"host segment {name}")
        env.update(zip(segment["outputs"], outputs))

    def op_counts(self):
        """Exact operation counts of everything this chip did: programming and drift
        calibration (one-time), and the inference instructions run so far."""
        counts = opcounts.layer_vector_counts(self.program, "inference", self.vectors, self.examples)
        for (name, shapes), calls in sorted(self.host_calls.items()):
            segment = self.sessions[name][0]
            flops = opcounts.host_call_flops(self.program, segment, dict(zip(segment["inputs"], shapes)))
            counts.add("inference", name, None, host_flops=flops * calls)
        if self.stores:
            counts.merge(opcounts.programming_counts(self.program.blocks, self.block_iterations))
        if self.compensation:
            counts.merge(opcounts.calibration_counts(sorted(self.compensation), (self.spec.chip.tile_rows, self.spec.chip.tile_cols)))
        return counts
