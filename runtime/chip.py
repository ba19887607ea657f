"""The simulated chip: tiles holding the programmed blocks, and the instruction executor.

`Chip(program, ideal=..., seed=...)` programs every block of the plan onto its tile
(weights mapped to PCM conductance pairs, one scale per layer), then `chip.run(feeds)`
executes the program's inference instructions block by block: DAC, tile read, ADC,
partial sums, digital bias and activation, host segments through onnxruntime.
"""

from __future__ import annotations

import numpy as np

from analogc.errors import AnalogcError
from analogc.runtime import devices, periphery
from analogc.runtime.activations import apply_activation
from analogc.runtime.host import make_session, run_session
from analogc.runtime.spec import spec_from_dict


class Chip:
    """Tiles of effective weights (weight units) plus per-layer scales."""

    def __init__(self, program, ideal: bool = False, seed: int = 0):
        self.program = program
        spec = spec_from_dict(program.meta["target"], origin="program target")
        self.spec = spec.without_nonidealities() if ideal else spec
        self.rng = np.random.default_rng(seed)
        self.layers = {layer["name"]: layer for layer in program.layers}
        self.blocks = {b["id"]: b for b in program.blocks}
        self.tiles = {}
        self.w_max = {}
        for name, layer in self.layers.items():
            self.w_max[name] = self.program_layer(layer)
        self.sessions = {
            seg["name"]: (seg, make_session(program.members[seg["member"]], f"host segment {seg['name']}"))
            for seg in program.meta.get("host_segments", [])
        }
        self.instructions = program.meta["instructions"]["inference"]

    def array_matrix(self, layer: dict) -> np.ndarray:
        """The layer's weights with the bias row appended when the bias is analog."""
        weight = self.program.arrays[f"weight/{layer['name']}"].astype(np.float32)
        if layer["bias"] == "analog":
            weight = np.vstack([weight, self.program.arrays[f"bias/{layer['name']}"][None, :].astype(np.float32)])
        return weight

    def program_layer(self, layer: dict) -> float:
        """Write every block of a layer into its tile; returns the layer's w_max."""
        matrix = self.array_matrix(layer)
        w_max = float(np.max(np.abs(matrix))) if matrix.size else 1.0
        w_max = w_max if w_max > 0 else 1.0
        if not self.spec.ideal:
            matrix = self.programmed_weights(matrix, w_max)
        for block in self.program.blocks:
            if block["layer"] != layer["name"]:
                continue
            tile = self.tile(tuple(block["tile"]))
            (r0, r1), (c0, c1), (o_r, o_c) = block["rows"], block["cols"], block["offset"]
            tile[o_r : o_r + r1 - r0, o_c : o_c + c1 - c0] = matrix[r0:r1, c0:c1]
        return w_max

    def programmed_weights(self, matrix: np.ndarray, w_max: float) -> np.ndarray:
        """Map W to a PCM pair (G⁺, G⁻) with w_max ↔ g_prog_max, program, read back as W."""
        pcm = self.spec.pcm
        per_unit = pcm.g_prog_max / w_max
        g_plus = devices.program_conductances(np.maximum(matrix, 0) * per_unit, pcm, self.rng)
        g_minus = devices.program_conductances(np.maximum(-matrix, 0) * per_unit, pcm, self.rng)
        g_plus = devices.apply_faults(g_plus, pcm, self.rng)
        g_minus = devices.apply_faults(g_minus, pcm, self.rng)
        return ((g_plus - g_minus) / per_unit).astype(np.float32)

    def tile(self, position: tuple) -> np.ndarray:
        if position not in self.tiles:
            chip = self.spec.chip
            self.tiles[position] = np.zeros((chip.tile_rows, chip.tile_cols), dtype=np.float32)
        return self.tiles[position]

    def read_block(self, block: dict, x: np.ndarray) -> np.ndarray:
        """One tile read: x[:, rows] through the block's cells → partial outputs."""
        (r0, r1), (c0, c1), (o_r, o_c) = block["rows"], block["cols"], block["offset"]
        cells = self.tiles[tuple(block["tile"])][o_r : o_r + r1 - r0, o_c : o_c + c1 - c0]
        return x[:, r0:r1] @ cells

    def run(self, feeds: dict) -> dict:
        """Execute the inference instructions; returns every graph output by name."""
        env = dict(feeds)
        for name in self.program.meta["model"].get("constant_outputs", []):
            env[name] = self.program.arrays[f"constant/{name}"]
        state = {}
        for instruction in self.instructions:
            op = instruction["op"]
            if op == "host":
                self.run_host(instruction["segment"], env)
            elif op == "load":
                state = self.load(self.layers[instruction["layer"]], env)
            elif op == "mvm":
                block = self.blocks[instruction["block"]]
                (c0, c1) = block["cols"]
                partial = self.read_block(block, state["x"])
                if not self.spec.ideal:
                    # The ADC sees outputs in units of w_max·dac_range.
                    w_max = np.float32(self.w_max[block["layer"]])
                    partial = periphery.adc(partial / w_max, self.spec.periphery, self.rng) * w_max
                state["acc"][:, c0:c1] += partial
            elif op == "store":
                self.store(self.layers[instruction["layer"]], state, env)
            else:
                raise AnalogcError(f"tile program has an unknown instruction {op!r}")
        return {o["name"]: env[o["name"]] for o in self.program.meta["model"]["outputs"]}

    def load(self, layer: dict, env: dict) -> dict:
        """Flatten the input to rows of K, append the bias input, pass the DACs."""
        x = np.asarray(env[layer["input"]])
        k, n = layer["shape"]
        if x.shape[-1] != k:
            raise AnalogcError(f"layer {layer['name']}: input has {x.shape[-1]} features, the weights expect {k}")
        lead = x.shape[:-1]
        x2 = x.reshape(-1, k).astype(np.float32)
        if layer["bias"] == "analog":
            x2 = np.hstack([x2, np.ones((x2.shape[0], 1), dtype=np.float32)])
        scale = None
        if not self.spec.ideal:
            x2, scale = periphery.dac(x2, self.spec.periphery)
        acc = np.zeros((x2.shape[0], n), dtype=np.float32)
        return {"x": x2, "acc": acc, "lead": lead, "scale": scale}

    def store(self, layer: dict, state: dict, env: dict) -> None:
        y = state["acc"]
        if state["scale"] is not None:
            y = y * state["scale"]
        if layer["bias"] == "digital":
            y = y + self.program.arrays[f"bias/{layer['name']}"].astype(np.float32)
        y = apply_activation(y, layer["activation"])
        env[layer["output"]] = y.reshape(*state["lead"], y.shape[-1]).astype(layer["dtype"], copy=False)

    def run_host(self, name: str, env: dict) -> None:
        segment, session = self.sessions[name]
        feeds = {tensor: env[tensor] for tensor in segment["inputs"]}
        outputs = run_session(session, feeds, f"host segment {name}")
        env.update(zip(segment["outputs"], outputs))
