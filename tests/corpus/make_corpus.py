"""The bad-input corpus: files that every loader (ONNX, .atp, target TOML, data sets as
npz / idx / npy, sweep folders) must refuse with one `analogc: error:` line naming the file and the
defect, exit status 2 and no output left behind.

Each case is a folder of files, a command line run from inside that folder, and the
exact text its error line must contain. Everything is generated from fixed seeds, so
the corpus is the same on every run. `tests/test_corpus.py` builds it in a temporary
folder; to look at the files:

    python tests/corpus/make_corpus.py OUT_FOLDER     # writes OUT_FOLDER/<case>/... and cases.json
"""

from __future__ import annotations

import functools
import io
import json
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "target_specs" / "tiny.toml"
BOMB_BYTES = 64 << 20  # zeros: deflate to ~64 kB, a ratio of ~1000


@dataclass
class Case:
    """One bad input: files (relative path -> bytes, or a symlink target), the command
    run in the case's folder, the text the error line must contain, extra environment."""

    name: str
    loader: str
    argv: list
    expected: str
    files: dict = field(default_factory=dict)
    symlinks: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)


# ---------------------------------------------------------------- building blocks


def model_proto(k=8, n=4, w=None, b=None, extra_nodes=(), opset=13, ir=8, weight_name="W") -> onnx.ModelProto:
    """x[N, k] -> Gemm(W[k, n], b) -> y[N, n], weights from a fixed seed unless given."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(k, n)).astype(np.float32) if w is None else w
    b = rng.normal(size=n).astype(np.float32) if b is None else b
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", weight_name, "b"], ["y"], name="fc"), *extra_nodes],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n])],
        [numpy_helper.from_array(w, weight_name), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir
    return model


def model_bytes(**kwargs) -> bytes:
    return model_proto(**kwargs).SerializeToString()


def edited(model: onnx.ModelProto, edit) -> bytes:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    edit(model)
    return model.SerializeToString()


def chain_model(nodes, inits, k=4, n=4, domains=()) -> bytes:
    """A graph of the given nodes from x[N, k] to y[N, n]."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n])],
        [numpy_helper.from_array(v, name) for name, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), *(helper.make_opsetid(d, 1) for d in domains)])
    model.ir_version = 8
    return model.SerializeToString()


def external(location, offset=None, length=None):
    """The Gemm model with W stored outside, at `location` (offset, length as strings)."""

    def edit(model):
        tensor = model.graph.initializer[0]
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", offset), ("length", length)):
            if value is not None:
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value

    return edited(model_proto(), edit)


def npy(array, version=None) -> bytes:
    buffer = io.BytesIO()
    if version is None:
        np.save(buffer, array, allow_pickle=array.dtype.hasobject)
    else:
        np.lib.format.write_array(buffer, array, version=version, allow_pickle=False)
    return buffer.getvalue()


def npy_with_header(shape, dtype="<f4", data=b"") -> bytes:
    """A .npy whose header says anything; the data is whatever follows."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)}).encode("latin1")
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


def zip_of(members: dict, compress=True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data, compress_type=archive.compression)
    return buffer.getvalue()


def npz(compress=False, **arrays) -> bytes:
    return zip_of({f"{k}.npy": npy(v) for k, v in arrays.items()}, compress)


def dataset(**overrides) -> dict:
    """A valid 64-feature data set's arrays, some replaced."""
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.random((6, 64), dtype=np.float32),
        "y_train": rng.integers(0, 10, 6),
        "x_test": rng.random((5, 64), dtype=np.float32),
        "y_test": rng.integers(0, 10, 5),
    }
    arrays.update(overrides)
    return {k: v for k, v in arrays.items() if v is not None}


def idx(array, code=None, dims=None) -> bytes:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">f4"): 0x0D}
    array = np.asarray(array)
    dims = array.shape if dims is None else dims
    head = bytes([0, 0, codes[array.dtype] if code is None else code, len(dims)])
    return head + np.asarray(dims, ">u4").tobytes() + array.tobytes()


def idx_folder(**replace) -> dict:
    """A valid MNIST-style folder (5 train, 3 test 8x8 images), files replaced or removed."""
    rng = np.random.default_rng(2)
    files = {
        "idx/train-images-idx3-ubyte": idx(rng.integers(0, 256, (5, 8, 8), dtype=np.uint8)),
        "idx/train-labels-idx1-ubyte": idx(rng.integers(0, 10, 5, dtype=np.uint8)),
        "idx/t10k-images-idx3-ubyte": idx(rng.integers(0, 256, (3, 8, 8), dtype=np.uint8)),
        "idx/t10k-labels-idx1-ubyte": idx(rng.integers(0, 10, 3, dtype=np.uint8)),
    }
    for stem, data in replace.items():
        key = f"idx/{stem.replace('_', '-')}"
        files.pop(key, None)
        if data is not None:
            files[key + (".gz" if data[:2] == b"\x1f\x8b" else "")] = data
    return files


def tiny_with(old: str, new: str) -> bytes:
    text = TINY.read_text()
    assert old in text, old
    return text.replace(old, new, 1).encode("utf-8")


# ---------------------------------------------------------------- a valid tile program


@functools.cache
def program_members(spec_text: bytes | None = None) -> dict:
    """Members of a valid program: x[N, 64] -> Abs (host) -> Gemm 64->10 -> y, on tiny."""
    from analogc.mapper import compile_model
    from analogc.runtime.format.program import save_program
    from analogc.runtime.format.spec import load_target

    rng = np.random.default_rng(3)
    model = chain_model(
        [helper.make_node("Abs", ["x"], ["a"], name="abs"), helper.make_node("Gemm", ["a", "W", "b"], ["y"], name="fc")],
        {"W": rng.normal(size=(64, 10)).astype(np.float32), "b": rng.normal(size=10).astype(np.float32)},
        k=64,
        n=10,
    )
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "m.onnx").write_bytes(model)
        spec_path = Path(tmp) / "spec.toml"
        spec_path.write_bytes(spec_text or TINY.read_bytes())
        program = compile_model(Path(tmp) / "m.onnx", load_target(str(spec_path)), placer="greedy")
        save_program(program, Path(tmp) / "m.atp")
        with zipfile.ZipFile(Path(tmp) / "m.atp") as archive:
            return {name: archive.read(name) for name in archive.namelist()}


def program_bytes() -> bytes:
    return zip_of(program_members())


def with_members(fresh_checksums: bool, edit_meta=None, replace=None) -> bytes:
    """The valid program with members replaced ({name: bytes}, None: removed), program.json
    edited by `edit_meta(meta)`; checksums recomputed when asked, else left stale."""
    from analogc.runtime.format.program import meta_digest, sha256

    members = dict(program_members())
    for name, data in (replace or {}).items():
        if data is None:
            members.pop(name)
        else:
            members[name] = data
    if "program.json" in (replace or {}):
        return zip_of(members)
    meta = json.loads(members["program.json"])
    if edit_meta:
        edit_meta(meta)
    if fresh_checksums:
        if "checksums" in meta:
            meta["checksums"] = {n: sha256(d) for n, d in members.items() if n != "program.json" and n in meta["checksums"]}
        meta["program_sha256"] = meta_digest(meta)
    members["program.json"] = json.dumps(meta).encode("utf-8")
    return zip_of(members)


def arrays_with(**replace) -> bytes:
    """arrays.npz of the valid program with entries replaced ("weight__fc" = "weight/fc")."""
    with zipfile.ZipFile(io.BytesIO(program_members()["arrays.npz"])) as inner:
        members = {n: inner.read(n) for n in inner.namelist()}
    for key, value in replace.items():
        members[key.replace("__", "/") + ".npy"] = value if isinstance(value, bytes) else npy(value)
    return zip_of(members)


def set_in(path, value):
    def edit(meta):
        node = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


# ---------------------------------------------------------------- the cases


def torch_save_like() -> bytes:
    """The layout torch.save writes (a zip of NAME/data.pkl, NAME/data/0, NAME/version),
    built by hand: torch is not a dependency."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("model/data/0", bytes(64))
        archive.writestr("model/version", b"3\n")
    return buffer.getvalue()


def onnx_cases() -> list:
    compile_ = ["compile", "m.onnx", "-o", "out.atp", "--placer", "greedy", "--target", "tiny"]
    base = model_proto()
    w = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    nan_w, inf_b, ninf_w = w.copy(), np.zeros(4, np.float32), w.copy()
    nan_w[1, 2], inf_b[3], ninf_w[0, 0] = np.nan, np.inf, -np.inf
    big = np.random.default_rng(4).normal(size=(1024, 512)).astype(np.float32)  # 2 MiB
    dup_output = model_proto(extra_nodes=[helper.make_node("Relu", ["x"], ["y"], name="again")])
    cases = [
        ("empty", b"", "m.onnx: empty file, not an ONNX model"),
        ("garbage", np.random.default_rng(5).bytes(3000), "m.onnx: not an ONNX model"),
        ("text", b"this is a text file, not a model\n" * 20, "m.onnx: not an ONNX model"),
        ("png-magic", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "m.onnx: not an ONNX model"),
        ("truncated-half", base.SerializeToString()[: base.ByteSize() // 2], "m.onnx: truncated ONNX file: it ends after"),
        ("torch-save-zip", torch_save_like(), "m.onnx: a PyTorch file (torch.save), not an ONNX model: export the network with torch.onnx.export("),
        ("torch-legacy-pickle", b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19." + bytes(64), "m.onnx: a Python pickle (such as torch.save's older format), not an ONNX model: export the network with torch.onnx.export("),
        ("no-graph", onnx.ModelProto(ir_version=8).SerializeToString(), "m.onnx: not an ONNX model (no graph)"),
        ("nan-weight", model_bytes(w=nan_w), "m.onnx: layer 'fc' has NaN or Inf weights"),
        ("minus-inf-weight", model_bytes(w=ninf_w), "m.onnx: layer 'fc' has NaN or Inf weights"),
        ("inf-bias", model_bytes(b=inf_b), "m.onnx: layer 'fc' has NaN or Inf bias"),
        ("int-weight", model_bytes(w=np.ones((8, 4), np.int32)), "m.onnx: ONNX shape inference failed: [ShapeInferenceError] (op_type:Gemm, node name: fc): B has inconsistent type tensor(int32)"),
        ("wrong-weight-shape", model_bytes(w=np.ones((5, 4), np.float32)), "m.onnx: ONNX shape inference failed: [ShapeInferenceError] Inference error(s): (op_type:Gemm, node name: fc): [ShapeInferenceError] Dimension mismatch in unification between 5 and 8"),
        ("weight-1d", model_bytes(w=np.ones(8, np.float32)), "m.onnx: ONNX shape inference failed"),
        ("enormous-dims", edited(base, lambda m: m.graph.initializer[0].dims.__setitem__(slice(None), [1 << 30, 1 << 30])),
         "m.onnx: the model's weights (largest 'W', 1073741824x1073741824, 4.0 EiB) need 4.0 EiB of memory"),
        ("negative-dim", edited(base, lambda m: m.graph.initializer[0].dims.__setitem__(slice(None), [-8, -4])),
         "m.onnx: tensor 'W' declares a negative dimension [-8, -4]"),
        ("negative-input-dim", edited(base, lambda m: m.graph.input[0].type.tensor_type.shape.dim[0].__setattr__("dim_value", -3)),
         "m.onnx: graph input 'x' declares a negative dimension [-3, 8]"),
        ("weight-data-short", edited(base, lambda m: setattr(m.graph.initializer[0], "raw_data", m.graph.initializer[0].raw_data[:12])),
         "m.onnx: tensor 'W' holds 12 bytes, its dims [8, 4] need 128"),
        ("missing-initializer", edited(base, lambda m: m.graph.initializer.__delitem__(0)),
         "m.onnx: invalid ONNX model: Nodes in a graph must be topologically sorted, however input 'W' of node: name: fc OpType: Gemm is not output of any previous nodes"),
        ("cycle", chain_model([helper.make_node("Relu", ["z"], ["a"], name="r"), helper.make_node("MatMul", ["a", "W"], ["z"], name="mm"),
                               helper.make_node("Add", ["z", "x"], ["y"], name="add")], {"W": np.eye(4, dtype=np.float32)}),
         "m.onnx: invalid ONNX model: Nodes in a graph must be topologically sorted, however input 'z' of node: name: r OpType: Relu is not output of any previous nodes"),
        ("duplicate-initializer", edited(base, lambda m: m.graph.initializer.append(m.graph.initializer[0])),
         "m.onnx: invalid ONNX model: W initializer name is not unique"),
        ("duplicate-output-name", dup_output.SerializeToString(), "m.onnx: invalid ONNX model: Graph must be in single static assignment (SSA) form"),
        ("duplicate-node-name", edited(dup_output, lambda m: m.graph.node[1].CopyFrom(helper.make_node("Relu", ["x"], ["y2"], name="fc"))),
         "m.onnx: two nodes are named 'fc' (onnxruntime refuses repeated node names)"),
        ("duplicate-input", edited(base, lambda m: m.graph.input.append(m.graph.input[0])), "m.onnx: invalid ONNX model: Graph must be in single static assignment (SSA) form, however 'x' has been used as graph input names multiple times"),
        ("custom-op-inside-fc", chain_model(
            [helper.make_node("MatMul", ["x", "W"], ["m"], name="mm"), helper.make_node("Frob", ["m"], ["f"], name="frob", domain="com.example"),
             helper.make_node("Add", ["f", "b"], ["y"], name="add")],
            {"W": np.eye(4, dtype=np.float32), "b": np.ones(4, np.float32)}, domains=("com.example",)),
         "m.onnx: node 'frob' uses operator com.example.Frob, which neither the analog tiles nor onnxruntime can run"),
        ("unknown-op-inside-fc", chain_model(
            [helper.make_node("MatMul", ["x", "W"], ["m"], name="mm"), helper.make_node("Frobnicate", ["m"], ["f"], name="frob"),
             helper.make_node("Add", ["f", "b"], ["y"], name="add")],
            {"W": np.eye(4, dtype=np.float32), "b": np.ones(4, np.float32)}),
         "m.onnx: invalid ONNX model: No Op registered for Frobnicate with domain_version of 13"),
        ("newer-ir-version", model_bytes(ir=99), "m.onnx: invalid ONNX model: Your model ir_version 99 is higher than the checker's"),
        ("newer-opset", model_bytes(opset=99), "m.onnx: model uses ONNX opset 99, newer than the newest this analogc knows"),
        ("weight-is-runtime-input", edited(base, lambda m: (m.graph.input.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, [8, 4])),
                                                             m.graph.initializer.__delitem__(0))),
         "m.onnx: Gemm node 'fc' takes its weight 'W' as a runtime input"),
    ]
    out = [Case(f"onnx-{name}", "onnx", compile_, expected, {"m.onnx": data}) for name, data, expected in cases]
    ext = "m.onnx: external data location"
    inside = "must be a relative path inside the model's folder"
    out += [
        Case("onnx-missing-file", "onnx", compile_, "m.onnx: no such file"),
        Case("onnx-folder-as-model", "onnx", compile_, "m.onnx: not a file", {"m.onnx/keep": b""}),
        Case("onnx-memory-limit", "onnx", compile_, "m.onnx: the model's weights (largest 'W', 1024x512, 2.0 MiB) need 2.0 MiB of memory, more than the 1.0 MiB available",
             {"m.onnx": model_bytes(k=1024, n=512, w=big, b=np.zeros(512, np.float32))}, env={"ANALOGC_MEMORY_LIMIT": "1M"}),
        Case("onnx-external-absolute", "onnx", compile_, f"{ext} '/etc/passwd' of tensor 'W' {inside}", {"m.onnx": external("/etc/passwd")}),
        Case("onnx-external-dotdot", "onnx", compile_, f"{ext} '../w.bin' of tensor 'W' {inside}", {"m.onnx": external("../w.bin")}),
        Case("onnx-external-dotdot-inner", "onnx", compile_, f"{ext} 'a/../../w.bin' of tensor 'W' {inside}", {"m.onnx": external("a/../../w.bin")}),
        Case("onnx-external-backslash", "onnx", compile_, f"{ext} '..\\\\w.bin' of tensor 'W' {inside}", {"m.onnx": external("..\\w.bin")}),
        Case("onnx-external-drive", "onnx", compile_, f"{ext} 'C:/w.bin' of tensor 'W' {inside}", {"m.onnx": external("C:/w.bin")}),
        Case("onnx-external-nul", "onnx", compile_, f"{ext} 'w.bin\\x00.txt' of tensor 'W' {inside}", {"m.onnx": external("w.bin\x00.txt"), "w.bin": bytes(128)}),
        Case("onnx-external-newline", "onnx", compile_, f"{ext} 'w\\n.bin' of tensor 'W' {inside}", {"m.onnx": external("w\n.bin")}),
        Case("onnx-external-symlink-out", "onnx", ["compile", "model/m.onnx", "-o", "out.atp", "--placer", "greedy"],
             "model/m.onnx: external data 'w.bin' of tensor 'W' leads outside the model's folder",
             {"model/m.onnx": external("w.bin"), "outside.bin": w.tobytes()}, symlinks={"model/w.bin": "../outside.bin"}),
        Case("onnx-external-missing", "onnx", compile_, "m.onnx: external data file 'absent.bin' of tensor 'W' is missing", {"m.onnx": external("absent.bin")}),
        Case("onnx-external-folder", "onnx", compile_, "m.onnx: external data 'data' of tensor 'W' is not a regular file", {"m.onnx": external("data"), "data/keep": b""}),
        Case("onnx-external-offset-beyond", "onnx", compile_, "m.onnx: external data of tensor 'W' (offset 4096, length 128) lies beyond the end of 'w.bin' (128 bytes)",
             {"m.onnx": external("w.bin", offset="4096"), "w.bin": w.tobytes()}),
        Case("onnx-external-offset-garbage", "onnx", compile_, "m.onnx: external data of tensor 'W' is malformed (invalid literal for int() with base 10: 'lots')",
             {"m.onnx": external("w.bin", offset="lots"), "w.bin": w.tobytes()}),
        Case("onnx-external-negative-length", "onnx", compile_, "m.onnx: external data of tensor 'W' is malformed (External data length must be non-negative, got -1",
             {"m.onnx": external("w.bin", length="-1"), "w.bin": w.tobytes()}),
        Case("onnx-external-length-mismatch", "onnx", compile_, "m.onnx: external data of tensor 'W' has length 12, its dims [8, 4] need 128 bytes",
             {"m.onnx": external("w.bin", length="12"), "w.bin": w.tobytes()}),
        Case("onnx-external-huge-length", "onnx", compile_, "m.onnx: external data of tensor 'W' has length 1099511627776, its dims [8, 4] need 128 bytes",
             {"m.onnx": external("w.bin", length=str(1 << 40)), "w.bin": w.tobytes()}),
    ]
    return out


def toml_cases() -> list:
    compile_ = ["compile", "m.onnx", "-o", "out.atp", "--placer", "greedy", "--target", "spec.toml"]
    spec = "spec.toml: "
    cases = [
        ("not-utf8", b'name = "\xff\xfe"\n', spec + "target spec is not UTF-8 text"),
        ("binary", bytes(range(1, 128)), spec + "not valid TOML"),
        ("truncated", TINY.read_bytes()[:300], spec + "not valid TOML"),
        ("empty-table-header", b"[chip\ngrid_rows = 2\n", spec + "not valid TOML"),
        ("unknown-key", tiny_with("g_max = 25.0", "g_maxx = 25.0"), spec + "[pcm]: unknown key 'g_maxx'"),
        ("unknown-table", b"[bogus]\nx = 1\n", spec + "unknown key 'bogus'"),
        ("string-for-int", tiny_with("tile_rows = 64", 'tile_rows = "64"'), spec + "[chip] tile_rows must be an integer, got '64'"),
        ("float-for-int", tiny_with("tile_rows = 64", "tile_rows = 64.5"), spec + "[chip] tile_rows must be an integer, got 64.5"),
        ("int-for-bool", tiny_with("drift = true", "drift = 1"), spec + "[pcm] drift must be true or false, got 1"),
        ("nan", tiny_with("g_max = 25.0", "g_max = nan"), spec + "[pcm] g_max must be finite, got nan"),
        ("inf", tiny_with("g_max = 25.0", "g_max = inf"), spec + "[pcm] g_max must be finite, got inf"),
        ("zero-grid", tiny_with("grid_rows = 10", "grid_rows = 0"), spec + "[chip] grid_rows must be in [1, 256] tiles, got 0"),
        ("enormous-grid", tiny_with("grid_cols = 10", "grid_cols = 4096"), spec + "[chip] grid_cols must be in [1, 256] tiles, got 4096"),
        ("huge-int", tiny_with("tile_cols = 64", "tile_cols = 9223372036854775807"), spec + "[chip] tile_cols must be in [1, 65536] cells, got 9223372036854775807"),
        ("negative", tiny_with("adc_bits = 8", "adc_bits = -8"), spec + "[periphery] adc_bits must be in [1, 32] bits, got -8"),
        ("bad-choice", tiny_with('bias = "analog"', 'bias = "sideways"'), spec + "[chip] bias must be one of analog, digital, got 'sideways'"),
        ("table-is-a-number", b"chip = 3\n", spec + "[chip] must be a table"),
        ("array-of-tables", b"[[chip]]\ngrid_rows = 2\n", spec + "[chip] must be a table"),
        ("name-not-string", b"name = 3\n", spec + "key 'name' must be a str, got 3"),
        ("faulty-outside-grid", tiny_with("faulty_tiles = []", "faulty_tiles = [[3, 10]]"), spec + "[chip] faulty_tiles entry [3, 10] lies outside the 10x10 grid"),
        ("faulty-not-pairs", tiny_with("faulty_tiles = []", "faulty_tiles = [[1, 2, 3]]"), spec + "[chip] faulty_tiles must hold [row, col] pairs of integers ≥ 0, got [1, 2, 3]"),
        ("g-prog-above-g-max", tiny_with("g_prog_max = 20.0", "g_prog_max = 30.0"), spec + "[pcm] g_prog_max (30.0) exceeds g_max (25.0)"),
        ("v-init-outside", tiny_with("v_init = 0.5", "v_init = 1.5"), spec + "[capacitor] v_init must lie between v_min and v_max, got 1.5"),
        ("faults-above-one", tiny_with("dead_fraction = 0.0", "dead_fraction = 0.6").replace(b"stuck_high_fraction = 0.0", b"stuck_high_fraction = 0.6"),
         spec + "[pcm] stuck_high_fraction + dead_fraction exceeds 1"),
    ]
    out = [Case(f"toml-{name}", "toml", compile_, expected, {"spec.toml": data, "m.onnx": model_bytes()}) for name, data, expected in cases]
    out.append(Case("toml-missing-file", "toml", compile_, "spec.toml: cannot read target spec (No such file or directory)", {"m.onnx": model_bytes()}))
    return out


def atp_cases() -> list:
    run = ["run", "p.atp", "--input", "x.npy", "--output", "y.npy"]
    x = npy(np.random.default_rng(6).random((4, 64), dtype=np.float32))
    prog = program_bytes()
    host = next(n for n in program_members() if n.startswith("host/"))
    weight = "weight/fc"
    nan_weight = np.ones((64, 10), np.float32)
    nan_weight[3, 3] = np.nan
    first_block = lambda key, value: set_in(("blocks", 0, key), value)  # noqa: E731
    cases = [
        ("empty", b"", "p.atp: not a tile program (not a zip archive: File is not a zip file)"),
        ("garbage", np.random.default_rng(7).bytes(5000), "p.atp: not a tile program (not a zip archive"),
        ("truncated", prog[: len(prog) // 2], "p.atp: not a tile program (not a zip archive"),
        ("truncated-tail", prog[:-10], "p.atp: not a tile program (not a zip archive"),
        ("onnx-renamed", model_bytes(), "p.atp: not a tile program (not a zip archive"),
        ("no-program-json", zip_of({"readme.txt": b"hello"}), "p.atp: member program.json is missing"),
        ("program-json-not-json", with_members(False, replace={"program.json": b"{ not json"}), "p.atp: program.json is not valid JSON"),
        ("program-json-a-list", zip_of({"program.json": b"[1, 2]"}), "p.atp: program.json must hold an object"),
        ("no-format-version", zip_of({"program.json": b'{"format_version": "1"}'}), "p.atp: program.json has no integer format_version"),
        ("newer-format-version", with_members(True, set_in(("format_version",), 3)), "p.atp: tile program format version 3 is newer than this analogc reads (2); upgrade analogc"),
        ("format-version-zero", with_members(True, set_in(("format_version",), 0)), "p.atp: unknown tile program format version 0"),
        ("missing-layers", with_members(True, lambda m: m.pop("layers")), "p.atp: program.json lacks 'layers'"),
        ("stale-program-digest", with_members(False, set_in(("layers", 0, "w_max"), 5.0)), "p.atp: checksum mismatch for program.json (file corrupted or edited)"),
        ("stale-member-checksum", with_members(False, replace={"arrays.npz": arrays_with(**{"weight__fc": np.zeros((64, 10), np.float32)})}),
         "p.atp: checksum mismatch for member arrays.npz (file corrupted or edited)"),
        ("missing-arrays", with_members(False, replace={"arrays.npz": None}), "p.atp: member arrays.npz is missing"),
        ("missing-host-member", with_members(False, replace={host: None}), f"p.atp: member {host} is missing"),
        ("no-checksums", with_members(True, lambda m: m.pop("checksums")), "p.atp: program.json has no checksums for its members"),
        ("duplicate-member", duplicate_member_zip(), "p.atp: member program.json appears twice"),
        ("zip-bomb-member", with_members(True, replace={host: bytes(BOMB_BYTES)}), f"p.atp: member {host} declares {BOMB_BYTES} bytes from"),
        ("zip-bomb-in-arrays", with_members(True, replace={"arrays.npz": zip_of({"weight/fc.npy": npy(np.zeros(BOMB_BYTES // 4, np.float32))}, compress=True)}),
         f"p.atp: arrays.npz: member weight/fc.npy declares {BOMB_BYTES + 128} bytes from"),
        ("arrays-garbage", with_members(True, replace={"arrays.npz": b"garbage, not a zip"}), "p.atp: arrays.npz: not a readable .npz archive (File is not a zip file)"),
        ("pickled-array", with_members(True, replace={"arrays.npz": arrays_with(**{"weight__fc": np.array([{"a": 1}], dtype=object)})}),
         "p.atp: arrays.npz: array weight/fc: holds Python objects (dtype object); analogc never unpickles data"),
        ("array-header-lies", with_members(True, replace={"arrays.npz": arrays_with(**{"weight__fc": npy_with_header((1 << 40, 10), data=bytes(2560))})}),
         "p.atp: arrays.npz: array weight/fc: header declares float32 (1099511627776, 10)"),
        ("array-not-npy", with_members(True, replace={"arrays.npz": zip_of({"notes.txt": b"hi"})}), "p.atp: arrays.npz: member notes.txt is not a .npy array"),
        ("weight-shape-mismatch", with_members(True, replace={"arrays.npz": arrays_with(**{"weight__fc": np.zeros((3, 3), np.float32)})}),
         "p.atp: inconsistent tile program: weights of layer 'fc' are float32 (3, 3), the layer says (64, 10)"),
        ("weight-int", with_members(True, replace={"arrays.npz": arrays_with(**{"weight__fc": np.zeros((64, 10), np.int32)})}),
         "p.atp: inconsistent tile program: weights of layer 'fc' are int32 (64, 10), the layer says (64, 10)"),
        ("nan-weight", with_members(True, replace={"arrays.npz": arrays_with(**{"weight__fc": nan_weight})}), "p.atp: inconsistent tile program: weight of layer 'fc' holds NaN or Inf"),
        ("block-outside-grid", with_members(True, first_block("tile", [10, 0])), "p.atp: inconsistent tile program: block 0 sits on tile [10, 0] outside the 10x10 grid"),
        ("block-zero-sized", with_members(True, first_block("rows", [5, 5])), "p.atp: inconsistent tile program: block 0 covers rows [5, 5)"),
        ("block-enormous", with_members(True, first_block("rows", [0, 1 << 40])), "p.atp: inconsistent tile program: block 0 covers rows [0, 1099511627776)"),
        ("duplicate-block-ids", with_members(True, lambda m: m["blocks"].append(dict(m["blocks"][0]))), "p.atp: inconsistent tile program: block ids are not unique"),
        ("unknown-instruction", with_members(True, lambda m: m["instructions"]["inference"].insert(0, {"op": "explode"})),
         "p.atp: inconsistent tile program: unknown instruction {'op': 'explode'}"),
        ("target-out-of-range", with_members(True, set_in(("target", "chip", "tile_rows"), 0)), "p.atp: target: [chip] tile_rows must be in [1, 65536] cells, got 0"),
        ("layer-shape-zero", with_members(True, set_in(("layers", 0, "shape"), [0, 10])), "p.atp: inconsistent tile program: layer 'fc' lacks a [K, N] shape"),
    ]
    out = [Case(f"atp-{name}", "atp", run, expected, {"p.atp": data, "x.npy": x}) for name, data, expected in cases]
    out += [
        Case("atp-missing-file", "atp", run, "p.atp: no such file", {"x.npy": x}),
        Case("atp-members-over-memory-limit", "atp", run, "p.atp: its members need", {"p.atp": prog, "x.npy": x}, env={"ANALOGC_MEMORY_LIMIT": "4K"}),
        # The devices are held per layer (its 65 x 10 cells), not per tile: members fit, devices do not.
        Case("atp-devices-over-memory", "atp", run, "p.atp: the device state of its 650 cells (50 bytes each) need 31.7 KiB of memory",
             {"p.atp": prog, "x.npy": x}, env={"ANALOGC_MEMORY_LIMIT": "20K"}),
    ]
    return out


def duplicate_member_zip() -> bytes:
    buffer = io.BytesIO()
    members = program_members()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        with warnings.catch_warnings():  # zipfile warns about the duplicate name
            warnings.simplefilter("ignore", UserWarning)
            archive.writestr("program.json", members["program.json"])
    return buffer.getvalue()


def data_cases() -> list:
    run_data = lambda spec: ["run", "p.atp", "--data", spec, "--limit", "4"]  # noqa: E731
    run_input = ["run", "p.atp", "--input", "x.npy", "--output", "y.npy"]
    prog = program_bytes()
    good = dataset()
    x_test_nan = good["x_test"].copy()
    x_test_nan[2, 5] = np.nan
    npz_cases = [
        ("garbage", np.random.default_rng(8).bytes(700), "d.npz: not a readable .npz archive (File is not a zip file)"),
        ("empty-file", b"", "d.npz: not a readable .npz archive (File is not a zip file)"),
        ("truncated", npz(**good)[:900], "d.npz: not a readable .npz archive"),
        ("missing-x-test", npz(**dataset(x_test=None)), "d.npz: missing arrays x_test"),
        ("pickled-object", npz(**dataset(x_test=np.array([[{"a": 1}]], dtype=object))), "d.npz: array x_test: holds Python objects (dtype object); analogc never unpickles data"),
        ("strings", npz(**dataset(x_test=np.array([["abc"] * 64] * 5)))," d.npz: x_test must be a numeric array, got <U3".strip()),
        ("complex", npz(**dataset(x_test=np.ones((5, 64), np.complex64))), "d.npz: x_test must be a numeric array, got complex64"),
        ("float-labels", npz(**dataset(y_test=np.ones(5, np.float32))), "d.npz: y_test must be integer labels, one per example of x_test, got float32 (5,) for (5, 64)"),
        ("labels-2d", npz(**dataset(y_test=np.ones((5, 1), np.int64))), "d.npz: y_test must be integer labels, one per example of x_test, got int64 (5, 1)"),
        ("labels-count", npz(**dataset(y_test=np.ones(4, np.int64))), "d.npz: y_test must be integer labels, one per example of x_test, got int64 (4,) for (5, 64)"),
        ("nan", npz(**dataset(x_test=x_test_nan)), "d.npz: x_test holds NaN or Inf"),
        ("beyond-float32", npz(**dataset(x_test=np.full((5, 64), -1e300))), "d.npz: x_test holds values beyond the range of float32"),
        ("inf-train", npz(**dataset(x_train=np.full((6, 64), np.inf, np.float32))), "d.npz: x_train holds NaN or Inf"),
        ("no-examples", npz(**dataset(x_test=np.zeros((0, 64), np.float32), y_test=np.zeros(0, np.int64))), "d.npz: no examples to run"),
        ("wrong-shape", npz(**dataset(x_test=np.zeros((5, 7, 7), np.float32))), "data set d.npz has examples of shape (7, 7), the model expects ('N', 64)"),
        ("scalar-x", npz(**dataset(x_test=np.float32(1.0))), "d.npz: x_test must be a numeric array, got float32"),
        ("header-enormous", zip_of({**{f"{k}.npy": npy(v) for k, v in good.items()}, "x_test.npy": npy_with_header((10**12, 64), data=bytes(64))}),
         "d.npz: array x_test: header declares float32 (1000000000000, 64)"),
        ("header-garbage", zip_of({**{f"{k}.npy": npy(v) for k, v in good.items()}, "x_test.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': <<<<}\n"}),
         "d.npz: array x_test: not a readable .npy array"),
        ("zip-bomb", npz(compress=True, **dataset(x_train=np.zeros((BOMB_BYTES // 256, 64), np.float32), y_train=np.zeros(BOMB_BYTES // 256, np.int64))),
         f"d.npz: member x_train.npy declares {BOMB_BYTES + 128} bytes from"),
        ("non-npy-member", zip_of({**{f"{k}.npy": npy(v) for k, v in good.items()}, "evil.pkl": b"\x80\x04K\x01."}), "d.npz: member evil.pkl is not a .npy array"),
        ("memory-limit", npz(**dataset(x_train=np.zeros((100, 64), np.float32), y_train=np.zeros(100, np.int64))),
         "d.npz: its 4 arrays need 27.1 KiB of memory, more than the 16.0 KiB available"),
    ]
    out = [
        Case(f"npz-{name}", "data", run_data("d.npz"), expected, {"p.atp": prog, "d.npz": data},
             env={"ANALOGC_MEMORY_LIMIT": "16K"} if name == "memory-limit" else {})
        for name, data, expected in npz_cases
    ]
    out.append(Case("npz-missing-file", "data", run_data("d.npz"), "d.npz: no such file", {"p.atp": prog}))
    x = np.random.default_rng(9).random((4, 64), dtype=np.float32)
    x_nan = x.copy()
    x_nan[0, 0] = np.nan
    npy_cases = [
        ("garbage", b"not numpy at all", "x.npy: not a .npy or .npz file (unknown magic b'not nu')"),
        ("empty-file", b"", "x.npy: not a .npy or .npz file (unknown magic b'')"),
        ("truncated-data", npy(x)[:-10], "x.npy: header declares float32 (4, 64), 1152 bytes with the header; the file holds 1142"),
        ("truncated-header", npy(x)[:20], "x.npy: not a readable .npy array"),
        ("bad-version", b"\x93NUMPY\x09\x00" + npy(x)[8:], "x.npy: .npy format version 9.0 is not one numpy writes"),
        ("pickled-object", npy(np.array([{"a": 1}], dtype=object)), "x.npy: holds Python objects (dtype object); analogc never unpickles data"),
        ("structured-with-object", npy(np.zeros(2, dtype=[("a", "f4"), ("b", "O")])), "x.npy: holds Python objects"),
        ("header-enormous", npy_with_header((10**12, 64), data=bytes(256)), "x.npy: header declares float32 (1000000000000, 64)"),
        ("header-negative", npy_with_header((-4, 64), data=bytes(256)), "x.npy: header declares a negative dimension (-4, 64)"),
        ("ints", npy(np.zeros((4, 64), np.int32)), "x.npy: input 'x' is int32, the model expects float32"),
        ("complex", npy(np.zeros((4, 64), np.complex64)), "x.npy: input 'x' is complex64, the model expects float32"),
        ("strings", npy(np.array([["a"] * 64] * 4)), "x.npy: input 'x' is <U1, the model expects float32"),
        ("nan", npy(x_nan), "x.npy: input 'x' holds NaN or Inf"),
        ("beyond-float32", npy(np.full((4, 64), 1e300)), "x.npy: input 'x' holds values beyond the range of float32, the model's input type"),
        ("wrong-features", npy(np.zeros((4, 63), np.float32)), "x.npy: array of shape (4, 63) does not fit model input 'x' of shape ('N', 64)"),
        ("scalar", npy(np.float32(3.0)), "x.npy: array of shape () does not fit model input 'x' of shape ('N', 64)"),
        ("no-examples", npy(np.zeros((0, 64), np.float32)), "x.npy: no examples to run"),
        ("npz-missing-input", npz(z=x), "x.npy: no array for model input x"),
        ("npz-pickled", npz(x=np.array([1, "a", None], dtype=object)), "x.npy: array x: holds Python objects"),
        ("memory-limit", npy(np.zeros((128, 64), np.float32)), "x.npy: its array float32 (128, 64) need 32.0 KiB of memory, more than the 16.0 KiB available"),
    ]
    out += [
        Case(f"npy-{name}", "data", run_input, expected, {"p.atp": prog, "x.npy": data},
             env={"ANALOGC_MEMORY_LIMIT": "16K"} if name == "memory-limit" else {})
        for name, data, expected in npy_cases
    ]
    out.append(Case("npy-missing-file", "data", run_input, "x.npy: no such file", {"p.atp": prog}))
    rng = np.random.default_rng(10)
    gz_garbage = b"\x1f\x8b\x08\x00" + rng.bytes(200)
    idx_cases = [
        ("missing-file", idx_folder(t10k_labels_idx1_ubyte=None), "idx: missing t10k-labels-idx1-ubyte (or t10k-labels-idx1-ubyte.gz)"),
        ("bad-magic", idx_folder(t10k_images_idx3_ubyte=b"\x01\x02\x08\x03" + bytes(100)), "idx/t10k-images-idx3-ubyte: not an IDX file (bad magic)"),
        ("truncated-header", idx_folder(t10k_images_idx3_ubyte=b"\x00\x00\x08\x03\x00\x00"), "idx/t10k-images-idx3-ubyte: truncated IDX header"),
        ("truncated-data", idx_folder(t10k_images_idx3_ubyte=idx(np.zeros((3, 8, 8), np.uint8))[:-7]), "idx/t10k-images-idx3-ubyte: truncated IDX data (185 of 192 bytes)"),
        ("bad-type-code", idx_folder(t10k_images_idx3_ubyte=idx(np.zeros((3, 8, 8), np.uint8), code=0x42)), "idx/t10k-images-idx3-ubyte: unsupported IDX type 0x42 or rank 3"),
        ("rank-zero", idx_folder(t10k_images_idx3_ubyte=b"\x00\x00\x08\x00"), "idx/t10k-images-idx3-ubyte: unsupported IDX type 0x08 or rank 0"),
        ("enormous-dims", idx_folder(t10k_images_idx3_ubyte=idx(np.zeros(4, np.uint8), dims=(4_000_000_000, 28, 28))),
         "idx/t10k-images-idx3-ubyte: IDX dimensions (4000000000, 28, 28) need 3136000000000 bytes, too large"),
        ("labels-count", idx_folder(t10k_labels_idx1_ubyte=idx(np.zeros(7, np.uint8))), "idx: t10k labels (7,) do not match images (3, 8, 8)"),
        ("labels-2d", idx_folder(train_labels_idx1_ubyte=idx(np.zeros((5, 2), np.uint8))), "idx: train labels (5, 2) do not match images (5, 8, 8)"),
        ("bad-gzip", idx_folder(t10k_images_idx3_ubyte=gz_garbage), "idx/t10k-images-idx3-ubyte.gz: cannot read IDX file"),
        ("float-images-nan", idx_folder(t10k_images_idx3_ubyte=idx(np.full((3, 8, 8), np.nan, ">f4"))), "idx/t10k-images-idx3-ubyte: images hold NaN or Inf"),
        ("memory-limit", idx_folder(train_images_idx3_ubyte=idx(np.zeros((20, 32, 32), np.uint8))),
         "idx/train-images-idx3-ubyte: its IDX dimensions (20, 32, 32) need 20.0 KiB of memory, more than the 16.0 KiB available"),
    ]
    out += [
        Case(f"idx-{name}", "data", run_data("idx:idx"), expected, {"p.atp": prog, **files},
             env={"ANALOGC_MEMORY_LIMIT": "16K"} if name == "memory-limit" else {})
        for name, files, expected in idx_cases
    ]
    out.append(Case("idx-not-a-folder", "data", run_data("idx:absent"), "absent: not a folder of IDX files", {"p.atp": prog}))
    return out


SWEEP_TOML = """command = "run"
seeds = [1]
[run]
limit = 16
[grid]
"run.drift_time" = [20, 86400]
"periphery.adc_bits" = [6, 8]
"pcm.drift" = [true]
"""


@functools.cache
def sweep_folder() -> dict:
    """A finished 4-job `run` sweep of the valid program on digits, made without running a
    job: out/sweep.json as `analogc sweep` writes it (so its fingerprint matches), and a
    results table of well-formed made-up rows; p.atp and s.toml beside it."""
    import types

    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    from analogc.runtime.format.program import load_program_bytes, sha256
    from analogc.sweep import load_data, sweep_record
    from analogc.sweep_file import expand, load_sweep
    from analogc.sweep_table import job_row, schema

    prog = program_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.toml"
        path.write_text(SWEEP_TOML)
        sweep, program = load_sweep(path), load_program_bytes(prog)
        jobs = expand(sweep, program, str(path))
        args = types.SimpleNamespace(program="p.atp", data="digits", sweep=str(path))
        record = sweep_record(args, sweep, jobs, sha256(prog), load_data("digits", program, "run")[1])
    record["sweep_file"]["path"] = "s.toml"
    record["runs"].append({"started_at": "2026-01-01T00:00:00+00:00", "scheduler": "local", "workers": 2, "submitted": 4, "skipped": 0, "ok": 4, "failed": 0, "seconds": 3.0})
    rows = [job_row(job, {"status": "ok", "accuracy": 0.5 + 0.1 * i, "examples_per_s": 1000.0, "energy_per_example_j": 1e-9, "latency_per_example_s": 1e-6,
                          "gops_per_w": 10.0, "seconds": 0.5, "host": "h", "worker": "tcp://127.0.0.1:1", "error": None, "finished_at": "2026-01-01T00:00:01+00:00"})
            for i, job in enumerate(jobs)]
    table = pa.Table.from_pylist(rows, schema=schema(sweep.axes))
    parquet, csv = io.BytesIO(), io.BytesIO()
    pq.write_table(table, parquet)
    pa_csv.write_csv(table, csv)
    return {"p.atp": prog, "s.toml": SWEEP_TOML.encode(), "out/sweep.json": json.dumps(record, indent=1).encode(),
            "out/results.parquet": parquet.getvalue(), "out/results.csv": csv.getvalue()}


def sweep_with(record_edit=None, table_edit=None, files=None) -> dict:
    """The sweep folder with sweep.json edited (`record_edit(record)`), the table edited
    (`table_edit(table) -> table`), or files replaced ({path: bytes}, None: removed)."""
    import pyarrow.parquet as pq

    folder = dict(sweep_folder())
    if record_edit:
        record = json.loads(folder["out/sweep.json"])
        record_edit(record)
        folder["out/sweep.json"] = json.dumps(record).encode()
    if table_edit:
        buffer = io.BytesIO()
        pq.write_table(table_edit(pq.read_table(io.BytesIO(folder["out/results.parquet"]))), buffer)
        folder["out/results.parquet"] = buffer.getvalue()
    for name, data in (files or {}).items():
        if data is None:
            folder.pop(name)
        else:
            folder[name] = data
    return folder


def sweep_cases() -> list:
    """Damaged sweep folders, read by a resumed `analogc sweep` (which refuses before any
    job or cluster) and by `analogc sweep-plot`."""
    import pyarrow as pa

    resume = ["sweep", "p.atp", "--data", "digits", "--sweep", "s.toml", "-o", "out"]
    plot = ["sweep-plot", "out", "--x", "run.drift_time", "--hue", "periphery.adc_bits", "-o", "plot.png"]

    def column(name, values):
        return lambda t: t.set_column(t.column_names.index(name), name, values if isinstance(values, pa.Array) else pa.array(values))

    def other_program(record):
        record["fingerprint"], record["program"] = "0" * 64, None

    def other_data(record):
        record["fingerprint"], record["data"] = "0" * 64, {"spec": "fashion-mnist", "sha256": "0" * 64}

    cases = [
        ("json-not-json", resume, sweep_with(files={"out/sweep.json": b"{not json"}), "out/sweep.json: not a readable sweep record (Expecting property name enclosed in double quotes"),
        ("json-empty", resume, sweep_with(files={"out/sweep.json": b""}), "out/sweep.json: not a readable sweep record (Expecting value: line 1 column 1 (char 0))"),
        ("json-not-utf8", resume, sweep_with(files={"out/sweep.json": b'{"fingerprint": "\xff\xfe"}'}), "out/sweep.json: not a readable sweep record ('utf-8' codec can't decode"),
        ("json-a-list", resume, sweep_with(files={"out/sweep.json": b"[1, 2]"}), "out/sweep.json: not a readable sweep record (list indices must be integers or slices, not str)"),
        ("json-no-fingerprint", resume, sweep_with(lambda r: r.pop("fingerprint")), "out/sweep.json: not a readable sweep record ('fingerprint')"),
        ("json-other-sweep-program-null", resume, sweep_with(other_program), "out: holds results of a different sweep (another program: sha256 ?…"),
        ("json-other-data", resume, sweep_with(other_data), "out: holds results of a different sweep (another data set: fashion-mnist, now digits)"),
        ("no-sweep-json", resume, sweep_with(files={"out/sweep.json": None}), "out: not empty and not a sweep folder (no sweep.json); give a new or empty folder"),
        ("table-garbage", resume, sweep_with(files={"out/results.parquet": b"PAR1 garbage PAR1"}), "out/results.parquet: cannot read the results table"),
        ("table-truncated", plot, sweep_with(files={"out/results.parquet": sweep_folder()["out/results.parquet"][:300]}), "out/results.parquet: cannot read the results table"),
        ("table-empty-file", plot, sweep_with(files={"out/results.parquet": b""}), "out/results.parquet: cannot read the results table"),
        ("table-missing", plot, sweep_with(files={"out/results.parquet": None}), "out: no results.parquet (not a sweep folder, or no job finished yet)"),
        ("table-no-seed", plot, sweep_with(table_edit=lambda t: t.drop_columns(["seed"])), "out/results.parquet: not a results table of analogc sweep (no column 'seed')"),
        ("table-null-seed", plot, sweep_with(table_edit=column("seed", pa.array([None, 1, 1, 1], pa.int64()))), "out/results.parquet: not a results table of analogc sweep (column 'seed' has empty cells)"),
        ("table-status-int", plot, sweep_with(table_edit=column("status", [1, 1, 1, 1])), "out/results.parquet: not a results table of analogc sweep (column 'status' is int64, expected string)"),
        ("table-accuracy-text", plot, sweep_with(table_edit=column("accuracy", ["high"] * 4)), "out/results.parquet: not a results table of analogc sweep (column 'accuracy' is string, expected double)"),
        ("table-swept-key-as-text", resume, sweep_with(table_edit=lambda t: column("run.drift_time", ["20", "20", "86400"])(t.slice(0, 3))),
         "out/results.parquet: not a results table of analogc sweep (column 'run.drift_time' is string, expected double)"),
        ("table-swept-key-missing", resume, sweep_with(table_edit=lambda t: t.drop_columns(["pcm.drift"])), "out/results.parquet: not a results table of analogc sweep (no column 'pcm.drift')"),
        ("table-swept-key-a-list", plot, sweep_with(table_edit=column("pcm.drift", [[1], [2], [3], [4]])), "out/results.parquet: not a results table of analogc sweep (column 'pcm.drift' is list<"),
        ("table-no-ok-job", plot, sweep_with(table_edit=column("status", ["failed"] * 4)), "out: no job finished with status ok, nothing to plot"),
    ]
    return [Case(f"sweep-{name}", "sweep", argv, expected, files) for name, argv, files, expected in cases]


@functools.cache
def all_cases() -> tuple:
    cases = onnx_cases() + toml_cases() + atp_cases() + data_cases() + sweep_cases()
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return tuple(cases)


def write_case(case: Case, folder: Path) -> Path:
    """Write one case's files under folder/case.name; returns that folder."""
    root = folder / case.name
    root.mkdir(parents=True)
    for rel, data in case.files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not rel.endswith("/keep"):
            target.write_bytes(data)
    for rel, pointee in case.symlinks.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(pointee)
    return root


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for case in all_cases():
        write_case(case, out)
        manifest.append({"name": case.name, "loader": case.loader, "argv": case.argv, "expected": case.expected, "env": case.env})
    (out / "cases.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(manifest)} cases to {out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main(sys.argv[1:]))
