"""Every file the CLI writes goes through analogc/atomic.py (temporary file in the same
folder, then a rename): an exception or Ctrl-C (KeyboardInterrupt) half-way through
writing leaves neither the output nor a temporary file, and an older output intact.
An audit of the source keeps it that way for code written later."""

from __future__ import annotations

import ast
from pathlib import Path

import matplotlib.figure
import numpy as np
import pytest

import analogc.runtime.format.program as program_module
from tests.corpus import make_corpus as corpus
from tests.test_bad_inputs import snapshot

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("analogc", "mapper", "runtime")
WRITERS = {"write_bytes", "write_text", "save", "savez", "savez_compressed", "savefig", "save_model", "tofile"}


def half_then(exc_type):
    """A replacement for a write function: write a few bytes to its target, then fail."""

    def broken(target, *args, **kwargs):
        if hasattr(target, "write"):
            target.write(b"half")
        else:
            Path(target).write_bytes(b"half")
        raise exc_type("interrupted while writing")

    return broken


def compile_writer(folder: Path, monkeypatch, exc_type):
    (folder / "m.onnx").write_bytes(corpus.model_bytes())
    real = program_module.zipfile.ZipFile.writestr
    calls = []

    def writestr(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise exc_type("interrupted while writing")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(program_module.zipfile.ZipFile, "writestr", writestr)
    return ["compile", "m.onnx", "-o", "out.atp", "--placer", "greedy", "--target", "tiny"], "out.atp"


def plan_png_writer(folder: Path, monkeypatch, exc_type):
    (folder / "p.atp").write_bytes(corpus.program_bytes())
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, target, **kw: half_then(exc_type)(target))
    return ["plan", "p.atp", "--png", "out.png"], "out.png"


def run_output_writer(folder: Path, monkeypatch, exc_type):
    (folder / "p.atp").write_bytes(corpus.program_bytes())
    np.save(folder / "x.npy", np.zeros((2, 64), np.float32))
    monkeypatch.setattr(np, "save", half_then(exc_type))
    return ["run", "p.atp", "--input", "x.npy", "--output", "out.npy"], "out.npy"


def export_writer(folder: Path, monkeypatch, exc_type):
    (folder / "p.atp").write_bytes(corpus.program_bytes())
    monkeypatch.setattr(Path, "write_bytes", lambda self, data: half_then(exc_type)(open(self, "wb")))
    return ["export", "p.atp", "-o", "out.onnx"], "out.onnx"


@pytest.mark.parametrize("exc_type, status", [(RuntimeError, 1), (KeyboardInterrupt, 130)], ids=["exception", "ctrl-c"])
@pytest.mark.parametrize("writer", [compile_writer, plan_png_writer, run_output_writer, export_writer], ids=["atp", "png", "npy", "onnx"])
@pytest.mark.parametrize("existing", [False, True], ids=["new", "overwrite"])
def test_interrupted_write_leaves_nothing_behind(tmp_path, cli, monkeypatch, writer, exc_type, status, existing):
    monkeypatch.chdir(tmp_path)
    argv, output = writer(tmp_path, monkeypatch, exc_type)
    if existing:
        with open(tmp_path / output, "wb") as handle:  # (Path.write_bytes may be the patched writer)
            handle.write(b"the previous output")
    before = snapshot(tmp_path)
    result = cli(*argv)
    assert result.code == status, result.err
    assert "Traceback" not in result.err
    assert snapshot(tmp_path) == before  # no output, no temporary file, old output intact


def unsafe_writes(path: Path) -> list[str]:
    """Write calls not lexically inside `with atomic_path(...)` and not aimed at an
    in-memory buffer (a name bound to io.BytesIO() in the same function)."""
    tree = ast.parse(path.read_text())
    found = []

    def visit(node, inside_atomic, buffers):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            buffers = {
                t.id for n in ast.walk(node) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
                and ast.unparse(n.value.func) in ("io.BytesIO", "BytesIO") for t in n.targets if isinstance(t, ast.Name)
            }
        if isinstance(node, ast.With) and any(isinstance(i.context_expr, ast.Call) and ast.unparse(i.context_expr.func).endswith("atomic_path") for i in node.items):
            inside_atomic = True
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            mode = next((a.value for a in node.args[1:2] if isinstance(a, ast.Constant)), None) if name == "open" else None
            # A method of our own called save (a trainer's checkpoint) is audited in its body.
            own_method = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self"
            is_write = (name in WRITERS and not own_method) or (name == "open" and isinstance(mode, str) and any(c in mode for c in "wax"))
            is_write = is_write or ast.unparse(func).startswith(("shutil.copy", "shutil.move"))
            is_write = is_write or (name == "ZipFile" and any(isinstance(a, ast.Constant) and a.value in ("w", "a", "x") for a in node.args[1:2]))
            target = node.args[0] if node.args else None
            to_buffer = isinstance(target, ast.Name) and target.id in buffers
            if is_write and not inside_atomic and not to_buffer:
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)[:80]}")
        for child in ast.iter_child_nodes(node):
            visit(child, inside_atomic, buffers)

    visit(tree, False, set())
    return found


def test_every_file_write_in_the_packages_is_atomic():
    files = [p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py")) if p.name != "atomic.py"]
    assert len(files) > 20
    problems = [line for path in files for line in unsafe_writes(path)]
    assert problems == [], "writes that bypass analogc/atomic.py:\n" + "\n".join(problems)


def test_the_audit_catches_a_direct_write(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import io, shutil\nimport numpy as np\nfrom analogc.atomic import atomic_path\n"
        "def bad(path, a):\n    np.save(path, a)\n    open(path, 'wb').write(b'x')\n    shutil.copy(path, 'b')\n"
        "def good(path, a):\n    buffer = io.BytesIO()\n    np.save(buffer, a)\n"
        "    with atomic_path(path) as tmp:\n        np.save(tmp, a)\n        open(tmp, 'rb').read()\n"
    )
    assert [line.split(":")[1] for line in unsafe_writes(probe)] == ["5", "6", "7"]
