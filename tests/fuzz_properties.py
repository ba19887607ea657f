"""Fuzzing properties of every loader, shared by the bounded tests (tests/test_fuzz.py)
and the long run (bench/fuzz_bench.py).

The property is always the same: whatever the input, the command line ends in success
(exit 0) or in one `analogc: error:` line with exit 2 — never a traceback, an internal
error or a hang — and a failed command leaves its folder as it was (no output, no
temporary file). Inputs are valid files mutated: ONNX protobuf bytes and fields, tile
program members (with stale or recomputed checksums) and program.json values, target
spec values and text, arrays of random shapes and dtypes as .npy/.npz and IDX files.

Each property is a plain `@given` function; callers add `settings(...)`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import gzip
import io
import json
import math
import os
import re
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import onnx
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import TensorProto, helper, numpy_helper

from analogc.cli import main
from analogc.runtime.format.spec import TABLES
from tests.corpus import make_corpus as corpus

FUZZ_MEMORY_LIMIT = "1G"  # hostile sizes are refused early instead of filling the machine
COMPILE = ["--placer", "greedy", "--target", "tiny", "--time-limit", "1"]


# ---------------------------------------------------------------- running the CLI


def listing(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(folder: Path, *argv) -> tuple[int, str]:
    """Run analogc in-process inside `folder`; returns (exit status, stderr)."""
    err = io.StringIO()
    previous = os.environ.get("ANALOGC_MEMORY_LIMIT")
    os.environ["ANALOGC_MEMORY_LIMIT"] = FUZZ_MEMORY_LIMIT
    try:
        with contextlib.chdir(folder), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
    finally:
        if previous is None:
            os.environ.pop("ANALOGC_MEMORY_LIMIT", None)
        else:
            os.environ["ANALOGC_MEMORY_LIMIT"] = previous
    return code, err.getvalue()


STATS: collections.Counter = collections.Counter()  # (command, exit status) -> runs
ERRORS: collections.Counter = collections.Counter()  # error messages, digits blurred


def check_command(folder: Path, *argv) -> int:
    """The property itself: exit 0, or exit 2 with one error line and the folder unchanged."""
    before = listing(folder)
    code, err = run_cli(folder, *argv)
    STATS[(argv[0], code)] += 1
    if code == 2:
        ERRORS[re.sub(r"\d+", "N", err.strip().split(":", 3)[-1])[:60]] += 1
    assert code in (0, 2), f"exit {code}: {err.strip()}"
    assert "Traceback" not in err, err
    after = listing(folder)
    assert not [n for n in after if n.endswith(".tmp")], f"temporary file left: {after}"
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("analogc: error: "), err
        assert after == before, f"a failed command changed the folder: {set(after) ^ set(before)}"
    return code


# ---------------------------------------------------------------- byte mutations

EDITS = st.lists(
    st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "duplicate"]), st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
    min_size=1,
    max_size=6,
)


def mutate(data: bytes, edits) -> bytes:
    """Apply byte edits at relative positions (so they scale with the file)."""
    buffer = bytearray(data)
    for kind, where, value in edits:
        if not buffer:
            buffer.append(value)
            continue
        i = int(where * len(buffer))
        if kind == "flip":
            buffer[i] ^= 1 << (value % 8)
        elif kind == "set":
            buffer[i] = value
        elif kind == "insert":
            buffer[i:i] = bytes([value]) * (1 + value % 4)
        elif kind == "delete":
            del buffer[i : i + 1 + value % 8]
        elif kind == "truncate":
            del buffer[i:]
        elif kind == "duplicate":
            buffer[i:i] = buffer[i : i + 1 + value]
    return bytes(buffer)


# ---------------------------------------------------------------- ONNX


def seed_models() -> list[bytes]:
    """Small valid models covering Gemm, MatMul + Add + activation, and a host op."""
    rng = np.random.default_rng(11)
    gemm = corpus.model_bytes()
    matmul = corpus.chain_model(
        [helper.make_node("MatMul", ["x", "W"], ["m"], name="mm"), helper.make_node("Add", ["m", "b"], ["a"], name="add"),
         helper.make_node("Relu", ["a"], ["y"], name="relu")],
        {"W": rng.normal(size=(4, 4)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32)},
    )
    host = corpus.chain_model(
        [helper.make_node("Abs", ["x"], ["a"], name="abs"), helper.make_node("Gemm", ["a", "W", "b"], ["g"], name="fc", transB=1),
         helper.make_node("Softmax", ["g"], ["y"], name="sm", axis=-1)],
        {"W": rng.normal(size=(4, 4)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32)},
    )
    no_ops = corpus.chain_model(  # Dropout and Identity bypassed, BatchNormalization on the host between layers
        [helper.make_node("MatMul", ["x", "W"], ["m"], name="mm"), helper.make_node("Add", ["m", "b"], ["a"], name="add"),
         helper.make_node("BatchNormalization", ["a", "s", "b", "mu", "v"], ["n"], name="bn"), helper.make_node("Relu", ["n"], ["r"], name="relu"),
         helper.make_node("Dropout", ["r"], ["d"], name="drop"), helper.make_node("Identity", ["d"], ["i"], name="id"),
         helper.make_node("Gemm", ["i", "W"], ["y"], name="fc")],
        {"W": rng.normal(size=(4, 4)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32),
         "s": rng.uniform(0.5, 2, 4).astype(np.float32), "mu": rng.normal(size=4).astype(np.float32), "v": rng.uniform(0.5, 2, 4).astype(np.float32)},
    )
    sklearn = onnx.ModelProto.FromString(corpus.chain_model([], {}))  # LinearRegressor on tiles, its post transform on the host
    sklearn.graph.node.append(helper.make_node("LinearRegressor", ["x"], ["y"], domain="ai.onnx.ml", name="linear", targets=4,
                                               coefficients=(0.05 * rng.normal(size=16)).tolist(), intercepts=[0.5] * 4, post_transform="PROBIT"))
    sklearn.opset_import.append(helper.make_opsetid("ai.onnx.ml", 1))
    gelu = corpus.chain_model(  # torch's GELU before opset 20 (fused), then SiLU as Sigmoid and Mul (fused)
        [helper.make_node("MatMul", ["x", "W"], ["z"], name="mm"), helper.make_node("Div", ["z", "sqrt2"], ["d"], name="div"),
         helper.make_node("Erf", ["d"], ["e"], name="erf"), helper.make_node("Add", ["e", "one"], ["a"], name="add"),
         helper.make_node("Mul", ["z", "a"], ["m"], name="mul"), helper.make_node("Mul", ["m", "half"], ["g"], name="half"),
         helper.make_node("MatMul", ["g", "W"], ["z2"], name="mm2"), helper.make_node("Sigmoid", ["z2"], ["s"], name="sig"),
         helper.make_node("Mul", ["z2", "s"], ["y"], name="silu")],
        {"W": rng.normal(size=(4, 4)).astype(np.float32), "sqrt2": np.array(np.sqrt(2), np.float32), "one": np.array(1, np.float32),
         "half": np.array(0.5, np.float32)},
    )
    vintage = onnx.ModelProto.FromString(corpus.chain_model(  # IR 3, opset 6 (upgraded to 7), initializers listed as inputs
        [helper.make_node("Gemm", ["x", "W", "b"], ["g"], name="fc", transA=0, broadcast=1), helper.make_node("Relu", ["g"], ["d"], name="relu"),
         helper.make_node("Gemm", ["d", "W", "b"], ["y"], name="fc2", broadcast=1)],
        {"W": rng.normal(size=(4, 4)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32)}))
    vintage.ir_version, vintage.opset_import[0].version = 3, 6
    vintage.graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in vintage.graph.initializer)
    attention = corpus.chain_model(  # the dynamo exporter's GELU (fused), then an activation × activation product (host)
        [helper.make_node("MatMul", ["x", "W"], ["z"], name="mm"), helper.make_node("Div", ["z", "sqrt2"], ["d"], name="div"),
         helper.make_node("Erf", ["d"], ["e"], name="erf"), helper.make_node("Add", ["e", "one"], ["a"], name="add"),
         helper.make_node("Mul", ["half", "a"], ["h"], name="half"), helper.make_node("Mul", ["z", "h"], ["g"], name="mul"),
         helper.make_node("MatMul", ["g", "W"], ["v"], name="mm2"), helper.make_node("Transpose", ["v"], ["vt"], name="t"),
         helper.make_node("MatMul", ["g", "vt"], ["s"], name="scores"), helper.make_node("MatMul", ["s", "v"], ["y"], name="mix")],
        {"W": rng.normal(size=(4, 4)).astype(np.float32), "sqrt2": np.array(np.sqrt(2), np.float32), "one": np.array(1, np.float32),
         "half": np.array(0.5, np.float32)},
    )
    return [gemm, matmul, host, no_ops, sklearn.SerializeToString(), gelu, vintage.SerializeToString(), attention]


SEEDS = seed_models()


def input_width(model_bytes: bytes) -> int | None:
    """The second dimension of the first graph input, if the model still parses."""
    try:
        dims = onnx.ModelProto.FromString(model_bytes).graph.input[0].type.tensor_type.shape.dim
        return dims[1].dim_value if len(dims) == 2 and 0 < dims[1].dim_value <= 4096 else None
    except Exception:
        return None


def compile_and_run(folder: Path, model: bytes) -> None:
    """compile must end in 0 or 2; a compiled program must then run (or refuse) cleanly."""
    (folder / "m.onnx").write_bytes(model)
    if check_command(folder, "compile", "m.onnx", "-o", "out.atp", *COMPILE) == 0:
        width = input_width(model)
        if width:
            np.save(folder / "x.npy", np.linspace(-1, 1, 2 * width, dtype=np.float32).reshape(2, width))
            check_command(folder, "run", "out.atp", "--input", "x.npy", "--output", "y.npy")


@given(seed=st.sampled_from(range(len(SEEDS))), edits=EDITS)
def onnx_bytes_property(seed, edits):
    with tempfile.TemporaryDirectory() as tmp:
        compile_and_run(Path(tmp), mutate(SEEDS[seed], edits))


INTS = st.one_of(st.integers(-3, 70), st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**40, 2**62, -(2**40)]))
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
LOCATIONS = st.one_of(TEXT, st.sampled_from(["w.bin", "../w.bin", "/etc/passwd", "a/../../w.bin", "..\\w.bin", "C:w.bin", "w.bin\x00", ".", "", "m.onnx", "%2e%2e/w.bin", "~/w.bin"]))


def edit_tensor(model, data):
    tensor = data.draw(st.sampled_from(list(model.graph.initializer)))
    what = data.draw(st.sampled_from(["dims", "type", "raw", "external", "float_data"]))
    if what == "dims":
        tensor.dims[:] = data.draw(st.lists(INTS, max_size=4))
    elif what == "type":
        tensor.data_type = data.draw(st.integers(0, 30))
    elif what == "raw":
        tensor.raw_data = mutate(tensor.raw_data, data.draw(EDITS))
    elif what == "float_data":
        tensor.ClearField("raw_data")
        tensor.float_data[:] = data.draw(st.lists(st.floats(width=32), max_size=40))
    else:
        tensor.data_location = TensorProto.EXTERNAL
        raw = tensor.raw_data
        tensor.ClearField("raw_data")
        del tensor.external_data[:]
        for key in data.draw(st.lists(st.sampled_from(["location", "offset", "length", "checksum", "other"]), max_size=4)):
            entry = tensor.external_data.add()
            entry.key = key
            entry.value = data.draw(LOCATIONS if key == "location" else st.one_of(INTS.map(str), TEXT))
        return raw  # written to w.bin next to the model
    return None


def edit_node(model, data):
    node = data.draw(st.sampled_from(list(model.graph.node)))
    what = data.draw(st.sampled_from(["op", "domain", "input", "output", "attribute", "drop"]))
    if what == "op":
        node.op_type = data.draw(st.one_of(st.sampled_from(["MatMul", "Gemm", "Add", "Relu", "Softmax", "Abs", "Conv", "Loop", "Constant", "Identity", "Transpose",
                                                             "Dropout", "Sigmoid", "Mul", "Erf", "Gelu", "Selu"]), TEXT))
    elif what == "domain":
        node.domain = data.draw(st.sampled_from(["", "ai.onnx", "ai.onnx.ml", "com.microsoft", "com.example"]))
    elif what in ("input", "output") and getattr(node, what):
        names = [n for n in list(node.input) + list(node.output) + [i.name for i in model.graph.initializer]] + ["", "nowhere"]
        field = getattr(node, what)
        field[data.draw(st.integers(0, len(field) - 1))] = data.draw(st.sampled_from(names))
    elif what == "attribute":
        name = data.draw(st.sampled_from(["transA", "transB", "alpha", "beta", "axis", "perm", "epsilon", "training_mode", "targets",
                                           "coefficients", "intercepts", "post_transform", "approximate", "bogus"]))
        value = data.draw(st.one_of(INTS, st.floats(), st.lists(INTS, max_size=3), TEXT))
        kept = [a for a in node.attribute if a.name != name]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute(name, value)] if not (isinstance(value, list) and not value) else kept)
    elif what == "drop":
        model.graph.node.remove(node)


def edit_graph(model, data):
    what = data.draw(st.sampled_from(["input_dims", "output_dims", "elem_type", "opset", "ir", "duplicate_init", "drop_init"]))
    graph = model.graph
    if what in ("input_dims", "output_dims"):
        value = (graph.input if what == "input_dims" else graph.output)[0]
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[data.draw(st.integers(0, len(dims) - 1))].dim_value = data.draw(st.integers(0, 2**40))
    elif what == "elem_type":
        graph.input[0].type.tensor_type.elem_type = data.draw(st.integers(0, 30))
    elif what == "opset":
        model.opset_import[0].version = data.draw(st.integers(0, 40))
    elif what == "ir":
        model.ir_version = data.draw(st.integers(0, 20))
    elif what == "duplicate_init" and graph.initializer:
        graph.initializer.append(graph.initializer[0])
    elif what == "drop_init" and graph.initializer:
        del graph.initializer[0]


@given(seed=st.sampled_from(range(len(SEEDS))), data=st.data())
def onnx_fields_property(seed, data):
    model = onnx.ModelProto.FromString(SEEDS[seed])
    external = None
    for _ in range(data.draw(st.integers(1, 3))):
        editor = data.draw(st.sampled_from([edit_tensor, edit_node, edit_graph]))
        if model.graph.initializer or editor is not edit_tensor:
            if model.graph.node or editor is not edit_node:
                result = editor(model, data)
                external = result if result is not None else external
    with tempfile.TemporaryDirectory() as tmp:
        if external is not None:
            (Path(tmp) / "w.bin").write_bytes(external)
        try:
            serialized = model.SerializeToString()
        except Exception:  # an edit protobuf itself refuses to encode
            assume(False)
        compile_and_run(Path(tmp), serialized)


# ---------------------------------------------------------------- tile programs


def leaf_paths(obj, prefix=()):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from leaf_paths(value, prefix + (key,))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            yield from leaf_paths(value, prefix + (index,))
    yield prefix


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), INTS, st.floats(), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=5,
)


def run_program(folder: Path, program: bytes) -> None:
    (folder / "p.atp").write_bytes(program)
    np.save(folder / "x.npy", np.linspace(0, 1, 3 * 64, dtype=np.float32).reshape(3, 64))
    check_command(folder, "plan", "p.atp", "--json")
    check_command(folder, "run", "p.atp", "--input", "x.npy", "--output", "y.npy")


@given(member=st.sampled_from(sorted(corpus.program_members())), edits=EDITS, fresh=st.booleans())
def atp_member_property(member, edits, fresh):
    members = corpus.program_members()
    with tempfile.TemporaryDirectory() as tmp:
        if member == "program.json" and fresh:
            return  # (covered by atp_json_property: a mutated program.json cannot be re-digested)
        run_program(Path(tmp), corpus.with_members(fresh, replace={member: mutate(members[member], edits)}))


@given(data=st.data())
def atp_json_property(data):
    meta = json.loads(corpus.program_members()["program.json"])
    paths = [p for p in leaf_paths(meta) if p and p[0] not in ("checksums", "program_sha256")]
    edits = []
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        edits.append((path, data.draw(st.one_of(JSON_VALUES, st.just("__delete__")))))

    def edit(m):
        for path, value in edits:
            node = m
            try:
                for key in path[:-1]:
                    node = node[key]
                key = path[-1]
                if not (isinstance(node, dict) and isinstance(key, str) or isinstance(node, list) and isinstance(key, int)):
                    continue  # an earlier edit changed the container on the way
                if value == "__delete__":
                    del node[key]
                else:
                    node[key] = value
            except (KeyError, IndexError, TypeError):
                pass  # an earlier edit removed the way there

    with tempfile.TemporaryDirectory() as tmp:
        run_program(Path(tmp), corpus.with_members(True, edit))


@given(name=st.sampled_from(["weight/fc", "bias/fc", "new/entry"]), array=hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.uint8, np.bool_, np.complex64, "U2"]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=70),
))
def atp_arrays_property(name, array):
    arrays = corpus.arrays_with(**{name.replace("/", "__"): array})
    with tempfile.TemporaryDirectory() as tmp:
        run_program(Path(tmp), corpus.with_members(True, replace={"arrays.npz": arrays}))


# ---------------------------------------------------------------- target specs

TINY_SPEC = tomllib.loads(corpus.TINY.read_text())
TOML_VALUES = st.recursive(
    st.one_of(st.booleans(), INTS, st.floats(), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), inner, max_size=2)),
    max_leaves=4,
)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, (int, str)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_text(spec: dict) -> str:
    top = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in spec.items() if not isinstance(v, dict)]
    tables = [f"[{json.dumps(k)}]\n" + "\n".join(f"{json.dumps(kk)} = {toml_value(vv)}" for kk, vv in v.items()) for k, v in spec.items() if isinstance(v, dict)]
    return "\n".join(top) + "\n\n" + "\n\n".join(tables) + "\n"


def plausible(table: str, key: str, value):
    """Values of the same kind as a valid one, mostly in the knob's range, so that many
    specs get past validation and into compilation."""
    meta = {f.name: f.metadata for f in dataclasses.fields(TABLES[table])}.get(key, {}) if table in TABLES else {}
    lo, hi = meta.get("lo"), meta.get("hi")
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        low = math.ceil(lo) if lo is not None else -1  # an int drawn for a float key (lo 0.01)
        top = min(math.floor(hi) if hi is not None else 2**31, 2 * abs(value) + 2)
        return st.one_of(st.integers(low, max(top, low)), st.integers(-1, 2 * abs(value) + 2))
    if isinstance(value, float):
        low, top = (lo if lo is not None else -1.0), min(hi if hi is not None else 1e9, 10 * abs(value) + 1.0)
        return st.one_of(st.floats(low, max(top, low)), st.sampled_from([0.0, value, -value]))
    if isinstance(value, list):
        return st.lists(st.lists(st.integers(-1, 11), min_size=2, max_size=2), max_size=3)
    return st.sampled_from(["analog", "digital", "pcm3t1c", "pcm2", "column", "tile", value])


@given(data=st.data(), text_edits=st.one_of(st.none(), st.none(), st.none(), st.none(), st.none(), EDITS))
def toml_property(data, text_edits):
    spec = json.loads(json.dumps(TINY_SPEC))
    for _ in range(data.draw(st.integers(1, 3))):
        table = data.draw(st.sampled_from(sorted(spec)))
        if isinstance(spec[table], dict) and data.draw(st.integers(0, 7)):
            unknown = not spec[table] or not data.draw(st.integers(0, 5))
            key = data.draw(st.from_regex(r"[a-z_]{1,8}", fullmatch=True) if unknown else st.sampled_from(sorted(spec[table])))
            known = spec[table].get(key)
            spec[table][key] = data.draw(plausible(table, key, known) if key in spec[table] and data.draw(st.integers(0, 3)) else TOML_VALUES)
        else:
            spec[table] = data.draw(TOML_VALUES)
    text = toml_text(spec).encode("utf-8")
    if text_edits:
        text = mutate(text, text_edits)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "spec.toml").write_bytes(text)
        (folder / "m.onnx").write_bytes(SEEDS[0])
        check_command(folder, "compile", "m.onnx", "-o", "out.atp", "--placer", "greedy", "--time-limit", "1", "--target", "spec.toml")


# ---------------------------------------------------------------- data sets

DTYPES = st.sampled_from([np.float32, np.float64, np.float16, ">f4", np.int8, np.int64, np.uint8, np.bool_, np.complex64, "U3", "S2", "M8[s]", np.dtype([("a", "<f4"), ("b", "<i4")])])
SHAPES = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=9),
    st.tuples(st.integers(0, 5), st.sampled_from([64, 63, 65])),
    st.tuples(st.integers(0, 5), st.just(8), st.just(8)),
)
FEATURE_ARRAYS = hnp.arrays(  # near-valid model inputs: [n, 64] or [n, 8, 8] floats, any values
    dtype=st.sampled_from([np.float32, np.float64, np.float16]),
    shape=st.one_of(st.tuples(st.integers(0, 5), st.just(64)), st.tuples(st.integers(0, 5), st.just(8), st.just(8))),
)
ARRAYS = st.one_of(hnp.arrays(dtype=DTYPES, shape=SHAPES), FEATURE_ARRAYS)
OBJECTS = st.lists(st.one_of(st.integers(), TEXT, st.none()), min_size=1, max_size=4).map(lambda v: np.array(v + [{}], dtype=object))


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)  # object arrays too: the reader must refuse them
    return buffer.getvalue()


@functools.cache
def program_folder_bytes() -> bytes:
    return corpus.program_bytes()


@given(array=st.one_of(ARRAYS, FEATURE_ARRAYS, OBJECTS), as_npz=st.booleans(), key=st.sampled_from(["x", "x", "y", "x.npy"]), edits=st.one_of(st.none(), st.none(), EDITS))
def input_property(array, as_npz, key, edits):
    """--input: any array as .npy, or inside a .npz under some name, maybe corrupted."""
    data = corpus.zip_of({f"{key}.npy" if not key.endswith(".npy") else key: npy_bytes(array)}) if as_npz else npy_bytes(array)
    if edits:
        data = mutate(data, edits)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "p.atp").write_bytes(program_folder_bytes())
        (folder / "x.npy").write_bytes(data)
        code = check_command(folder, "run", "p.atp", "--input", "x.npy", "--output", "y.npy")
        assert (code == 0) == (folder / "y.npy").is_file()


LABELS = hnp.arrays(dtype=st.sampled_from([np.int64, np.uint8, np.int8]), shape=st.tuples(st.integers(0, 6)))


@given(replace=st.dictionaries(st.sampled_from(["x_train", "y_train", "x_test", "y_test", "extra"]), st.one_of(ARRAYS, FEATURE_ARRAYS, LABELS, OBJECTS, st.none()), max_size=3),
       compress=st.booleans(), edits=st.one_of(st.none(), st.none(), EDITS))
def npz_property(replace, compress, edits):
    """--data FILE.npz: the four arrays, some replaced by random ones or removed."""
    arrays = corpus.dataset(**replace)
    data = corpus.zip_of({f"{k}.npy": npy_bytes(v) for k, v in arrays.items()}, compress)
    if edits:
        data = mutate(data, edits)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "p.atp").write_bytes(program_folder_bytes())
        (folder / "d.npz").write_bytes(data)
        check_command(folder, "run", "p.atp", "--data", "d.npz", "--limit", "4")


@given(stem=st.sampled_from(["train_images_idx3_ubyte", "train_labels_idx1_ubyte", "t10k_images_idx3_ubyte", "t10k_labels_idx1_ubyte"]),
       edits=EDITS, gz=st.booleans())
def idx_property(stem, edits, gz):
    """--data idx:DIR: one of the four IDX files corrupted (optionally gzipped)."""
    files = corpus.idx_folder()
    name = "idx/" + stem.replace("_", "-")
    data = mutate(files[name], edits)
    if gz:
        data = gzip.compress(data, mtime=0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = corpus.idx_folder(**{stem: data})
        for rel, content in {**files, "p.atp": program_folder_bytes()}.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(content)
        check_command(folder, "run", "p.atp", "--data", "idx:idx", "--limit", "4")


# ---------------------------------------------------------------- training checkpoints

CHECKPOINT_TRAIN = ["--data", "digits", "--init", "random", "--limit", "40", "--seed", "1", "--checkpoint-every", "20", "-q"]


@functools.cache
def checkpoint_seed() -> tuple[bytes, bytes]:
    """(digits program, a valid checkpoint of a short training run on it)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = Path(__file__).resolve().parents[1] / "models"
        assert run_cli(folder, "compile", models / "digits_mlp.onnx", "-o", "p.atp", *COMPILE)[0] == 0
        assert run_cli(folder, "train", "p.atp", *CHECKPOINT_TRAIN, "--checkpoint", "ck", "-o", "t.atp")[0] == 0
        return (folder / "p.atp").read_bytes(), (folder / "ck" / "checkpoint.npz").read_bytes()


def json_leaf_edit(meta: dict, data) -> None:
    paths = [path for path in leaf_paths(meta) if path]
    if not paths:
        return
    path = data.draw(st.sampled_from(paths))
    target = meta
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=5), st.just([]), st.just({})))


@given(data=st.data())
def checkpoint_property(data):
    """train --resume from a checkpoint with bytes, arrays or JSON values edited."""
    program, checkpoint = checkpoint_seed()
    kind = data.draw(st.sampled_from(["bytes", "array", "json"]))
    if kind == "bytes":
        checkpoint = mutate(checkpoint, data.draw(EDITS))
    else:
        with np.load(io.BytesIO(checkpoint)) as loaded:
            arrays = {k: loaded[k] for k in loaded.files}
        meta = json.loads(arrays["__meta__"].tobytes())
        if kind == "array":
            key = data.draw(st.sampled_from(sorted(k for k in arrays if k != "__meta__")))
            arrays[key] = data.draw(st.one_of(ARRAYS, st.just(np.full_like(arrays[key], np.nan) if arrays[key].dtype.kind == "f" else arrays[key] + 9)))
        else:
            json_leaf_edit(meta, data)
        arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        checkpoint = buffer.getvalue()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "p.atp").write_bytes(program)
        (folder / "ck").mkdir()
        (folder / "ck" / "checkpoint.npz").write_bytes(checkpoint)
        check_command(folder, "train", "p.atp", *CHECKPOINT_TRAIN, "--checkpoint", "ck", "--resume", "-o", "t.atp")




# ---------------------------------------------------------------- sweep folders

SWEEP_TOML = corpus.SWEEP_TOML  # the corpus's sweep: a 4-job `run` grid on the corpus program
SWEEP_RESUME = ["sweep", "p.atp", "--data", "digits", "--sweep", "s.toml", "-o", "out", "--json"]
SWEEP_PLOT = ["sweep-plot", "out", "--x", "run.drift_time", "--y", "accuracy", "--hue", "periphery.adc_bits", "-o", "plot.png", "--json"]


class InProcessFuture:
    def __init__(self, key, value):
        self.key, self.value = key, value

    def result(self):
        return self.value


class InProcessClient:
    """Just enough of a Dask client for analogc.sweep.run_jobs: each task runs at submit."""

    loop = None

    def scheduler_info(self, n_workers=-1):
        return {"workers": {"inprocess": {}}}

    def submit(self, fn, *args, key, **kwargs):
        args = [a.result() if isinstance(a, InProcessFuture) else a for a in args]
        return InProcessFuture(key, fn(*args))


@contextlib.contextmanager
def sweeps_in_process():
    """analogc sweep without Dask: pending jobs run here, one by one, through the real
    run_jobs and run_job (a cluster per hypothesis example would cost seconds)."""
    import distributed

    import analogc.sweep

    saved = analogc.sweep.connect, distributed.as_completed
    analogc.sweep.connect = lambda *a: contextlib.nullcontext(InProcessClient())
    distributed.as_completed = lambda futures, loop=None: iter(list(futures))
    try:
        yield
    finally:
        analogc.sweep.connect, distributed.as_completed = saved


@functools.cache
def sweep_seed() -> dict:
    """{relative path: bytes} of a finished 4-job `run` sweep on the corpus program."""
    with tempfile.TemporaryDirectory() as tmp, sweeps_in_process():
        folder = Path(tmp)
        (folder / "p.atp").write_bytes(program_folder_bytes())
        (folder / "s.toml").write_text(SWEEP_TOML)
        code, err = run_cli(folder, *SWEEP_RESUME)
        assert code == 0, err
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


TABLE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True), st.text(max_size=5),
    st.sampled_from(["ok", "failed", "", "job"]),
)


def damaged_table(parquet: bytes, data) -> bytes:
    """results.parquet rewritten with a column retyped or removed, a column added, or rows
    dropped or repeated."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(parquet))
    rows = table.to_pylist()
    what = data.draw(st.sampled_from(["column", "drop_column", "add_column", "rows", "cell"]))
    name = data.draw(st.sampled_from(table.column_names))
    if what == "column":  # one type for the whole column (a parquet column has one type)
        value = data.draw(TABLE_VALUES)
        values = data.draw(st.lists(st.just(value) | st.none(), min_size=len(rows), max_size=len(rows)))
        table = table.set_column(table.column_names.index(name), name, pa.array(values))
    elif what == "drop_column":
        table = table.drop_columns([name])
    elif what == "add_column":
        table = table.append_column(data.draw(st.sampled_from(["extra", "seed", "job_id", "nan"])) + "_" * data.draw(st.integers(0, 1)),
                                    pa.array([data.draw(TABLE_VALUES)] * len(rows)))
    elif what == "rows":
        picks = data.draw(st.lists(st.integers(0, len(rows) - 1), max_size=6))
        table = table.take(picks) if picks else table.slice(0, 0)
    else:  # one cell of its own type: NaN, huge, negative, empty
        field = table.schema.field(name)
        kind = {pa.float64(): st.floats(allow_nan=True), pa.int64(): st.integers(-(2**63), 2**63 - 1), pa.bool_(): st.booleans()}.get(field.type, st.text(max_size=5))
        i = data.draw(st.integers(0, len(rows) - 1))
        rows[i][name] = data.draw(st.none() | kind)
        table = pa.Table.from_pylist(rows, schema=table.schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


@given(data=st.data())
def sweep_folder_property(data):
    """sweep (resuming into the folder) and sweep-plot on a finished sweep folder whose
    sweep.json or results table has bytes, values or files edited or removed."""
    files = dict(sweep_seed())
    kind = data.draw(st.sampled_from(["json_bytes", "json_values", "table_bytes", "table_values", "csv_bytes", "missing"]))
    if kind == "json_bytes":
        files["out/sweep.json"] = mutate(files["out/sweep.json"], data.draw(EDITS))
    elif kind == "json_values":
        record = json.loads(files["out/sweep.json"])
        for _ in range(data.draw(st.integers(1, 3))):
            if data.draw(st.booleans()):
                json_leaf_edit(record, data)
            else:
                record[data.draw(st.sampled_from(sorted(record)))] = data.draw(JSON_VALUES)
        files["out/sweep.json"] = json.dumps(record).encode()
    elif kind == "table_bytes":
        files["out/results.parquet"] = mutate(files["out/results.parquet"], data.draw(EDITS))
    elif kind == "table_values":
        files["out/results.parquet"] = damaged_table(files["out/results.parquet"], data)
    elif kind == "csv_bytes":
        files["out/results.csv"] = mutate(files["out/results.csv"], data.draw(EDITS))
    else:
        for name in data.draw(st.lists(st.sampled_from(["out/sweep.json", "out/results.parquet", "out/results.csv"]), min_size=1, unique=True)):
            del files[name]
    with tempfile.TemporaryDirectory() as tmp, sweeps_in_process():
        folder = Path(tmp)
        for rel, content in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(content)
        plot_code = check_command(folder, *SWEEP_PLOT)
        assert (plot_code == 0) == (folder / "plot.png").is_file()
        if check_command(folder, *SWEEP_RESUME) == 0:  # jobs the damage lost ran again; the record is whole
            record = json.loads((folder / "out" / "sweep.json").read_text())
            assert record["fingerprint"] == json.loads(sweep_seed()["out/sweep.json"])["fingerprint"]


PROPERTIES = {
    "onnx_bytes": onnx_bytes_property,
    "onnx_fields": onnx_fields_property,
    "atp_member": atp_member_property,
    "atp_json": atp_json_property,
    "atp_arrays": atp_arrays_property,
    "toml": toml_property,
    "input_npy_npz": input_property,
    "data_npz": npz_property,
    "data_idx": idx_property,
    "checkpoint": checkpoint_property,
    "sweep_folder": sweep_folder_property,
}
