"""The VGG-19 FC stack compiled end to end from an ONNX file, against its I/O floor.

The model: 25088x4096, 4096x4096, 4096x1000 Gemm layers (transB, as torchvision
exports them; ReLU between), seeded random weights, 123 M float32 (494 MB), on the
default target with a 25x25 grid. Each side runs in a fresh interpreter (imports
included), interleaved, best of --repeats:
- floor: onnx.load, every initializer as a numpy array, np.savez of them to a file
  (the I/O any compiler of this model does);
- compile: `analogc compile MODEL.onnx --target T -o OUT.atp`.
Also: each side's peak memory (maxrss of its process, from os.wait4), the program's
size, tiles against the lower bound, and the load average before and after.

    .venv/bin/python bench/compile_vgg.py [--repeats 3] [--out bench/results/compile_vgg.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIMS = [25088, 4096, 4096, 1000]

FLOOR = """
import sys
import numpy as np
import onnx
from onnx import numpy_helper
model = onnx.load_model(sys.argv[1])
arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
with open(sys.argv[2], "wb") as f:
    np.savez(f, **arrays)
"""


def make_model(path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "input"
    for i, (k, n) in enumerate(zip(DIMS, DIMS[1:])):
        w = rng.standard_normal((n, k), dtype=np.float32) * np.float32(1 / np.sqrt(k))
        b = rng.standard_normal(n, dtype=np.float32) * np.float32(0.01)
        inits += [numpy_helper.from_array(w, f"fc{i}.weight"), numpy_helper.from_array(b, f"fc{i}.bias")]
        nodes.append(helper.make_node("Gemm", [x, f"fc{i}.weight", f"fc{i}.bias"], [f"gemm{i}"], transB=1, name=f"fc{i}"))
        x = f"gemm{i}"
        if i < len(DIMS) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"relu{i}"], name=f"relu{i}"))
            x = f"relu{i}"
    graph = helper.make_graph(nodes, "vgg19_fc", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", DIMS[0]])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", DIMS[-1]])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def make_target(path: Path) -> None:
    text = (ROOT / "target_specs" / "pcm3t1c-2018.toml").read_text()
    lines = []
    for line in text.splitlines():
        if line.startswith("grid_rows =") or line.startswith("grid_cols ="):
            line = line.split("=")[0] + "= 25"
        elif line.startswith("name ="):
            line = 'name = "pcm3t1c-2018-25x25"'
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")


def timed(argv: list) -> dict:
    """Wall seconds and peak memory (maxrss) of one child process."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    err = child.stderr.read().decode()
    child.stderr.close()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{argv[:3]} failed: {err}")
    return {"seconds": seconds, "maxrss_bytes": usage.ru_maxrss * 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "compile_vgg.json")
    parser.add_argument("--make-model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_model:
        make_model(args.make_model)
        return 0
    with tempfile.TemporaryDirectory(prefix="analogc-vgg-") as folder:
        folder = Path(folder)
        model, target, out = folder / "vgg19_fc.onnx", folder / "target.toml", folder / "vgg19_fc.atp"
        # In a child: a process's peak memory starts from its parent's (fork), so this
        # one stays small for the children's maxrss to be their own.
        subprocess.run([sys.executable, __file__, "--make-model", str(model)], check=True)
        make_target(target)
        weight_bytes = 4 * sum(k * n + n for k, n in zip(DIMS, DIMS[1:]))
        load_before = os.getloadavg()
        floor, compile_ = [], []
        for _ in range(args.repeats):  # interleaved: both sides see the same machine
            floor.append(timed([sys.executable, "-c", FLOOR, str(model), str(folder / "floor.npz")]))
            compile_.append(timed([sys.executable, "-m", "analogc.cli", "compile", str(model), "--target", str(target), "-o", str(out), "-q"]))
            print(f"floor {floor[-1]['seconds']:.2f} s, compile {compile_[-1]['seconds']:.2f} s, "
                  f"compile peak {compile_[-1]['maxrss_bytes'] / 2**20:.0f} MB", flush=True)
        load_after = os.getloadavg()
        with zipfile.ZipFile(out) as archive:
            members = {i.filename: i.file_size for i in archive.infolist()}
            placement = json.loads(archive.read("program.json"))["placement"]
    best_floor = min(r["seconds"] for r in floor)
    best_compile = min(r["seconds"] for r in compile_)
    peak = max(r["maxrss_bytes"] for r in compile_)
    report = {
        "model": "vgg19-fc (25088-4096-4096-1000, Gemm transB, random weights)",
        "weights": sum(k * n for k, n in zip(DIMS, DIMS[1:])),
        "weight_bytes": weight_bytes,
        "repeats": args.repeats,
        "floor_seconds": [round(r["seconds"], 3) for r in floor],
        "compile_seconds": [round(r["seconds"], 3) for r in compile_],
        "floor_seconds_best": round(best_floor, 3),
        "compile_seconds_best": round(best_compile, 3),
        "compile_over_floor": round(best_compile / best_floor, 3),
        "compile_peak_memory_bytes": peak,
        "compile_peak_over_weight_bytes": round(peak / weight_bytes, 3),
        "floor_peak_memory_bytes": max(r["maxrss_bytes"] for r in floor),
        "program_members_bytes": members,
        "tiles_used": placement["tiles_used"],
        "lower_bound_tiles": placement["lower_bound_tiles"],
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after],
        "cpus": os.cpu_count(),
        "note": "each side a fresh interpreter (imports included), interleaved; best of the repeats",
    }
    print(json.dumps({k: v for k, v in report.items() if k not in ("program_members_bytes",)}, indent=1))
    from analogc.atomic import write_text_atomic

    write_text_atomic(args.out, json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
