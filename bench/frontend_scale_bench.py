"""Frontend scaling: compile time of a model whose layers are separated by a long host
graph (MatMul, then N alternating Neg and Relu nodes, then MatMul), for growing N.
Grouping host nodes into segments used to be quadratic in N (34 s at 20,000 nodes).
Writes bench/results/frontend_scale.json and prints a table.

    .venv/bin/python bench/frontend_scale_bench.py [--sizes 1000 5000 20000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from analogc.mapper import compile_model
from analogc.runtime.format.spec import load_target

ROOT = Path(__file__).resolve().parents[1]


def long_host_model(n: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["t0"], name="first")]
    nodes += [helper.make_node("Relu" if i % 2 else "Neg", [f"t{i}"], [f"t{i + 1}"], name=f"host{i}") for i in range(n)]
    nodes.append(helper.make_node("MatMul", [f"t{n}", "W2"], ["y"], name="last"))
    graph = helper.make_graph(
        nodes, "long_host", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(rng.normal(size=(16, 16)).astype(np.float32), "W"),
         numpy_helper.from_array(rng.normal(size=(16, 4)).astype(np.float32), "W2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"long{n}.onnx"
            onnx.save(long_host_model(n), path)
            start = time.perf_counter()
            program = compile_model(path, load_target("pcm3t1c-2018"), placer="greedy")
            seconds = time.perf_counter() - start
            rows.append({"host_nodes": n, "compile_seconds": round(seconds, 3), "layers": len(program.layers),
                         "host_segments": len(program.meta["host_segments"])})
            print(f"{n:>7} host nodes: compile {seconds:6.2f} s ({len(program.layers)} layers, "
                  f"{len(program.meta['host_segments'])} host segment)", flush=True)
    out = ROOT / "bench" / "results" / "frontend_scale.json"
    out.write_text(json.dumps({"machine": {"python": sys.version.split()[0]}, "rows": rows}, indent=1) + "\n")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
