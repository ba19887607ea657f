"""`runtime` never imports `mapper`: the tile program is the only contract between them.

Checked twice: statically (every import statement in every runtime/*.py, at any depth,
including function-local and relative imports) and dynamically (a fresh interpreter
imports every analogc.runtime module and must not have pulled in analogc.mapper).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNTIME = REPO / "runtime"
RUNTIME_FILES = sorted(RUNTIME.rglob("*.py"))


def imported_modules(source: str, package: str) -> list[str]:
    """Absolute names of every module an import statement in `source` may load.

    `package` is the dotted package the file lives in (analogc.runtime), so relative
    imports resolve; `from X import y` yields both X and X.y (y may be a submodule).
    Calls of importlib.import_module / __import__ with a constant string count too.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.append(origin)
            found.extend(f"{origin}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append(node.args[0].value)
    return found


def is_mapper(name: str) -> bool:
    return name in ("analogc.mapper", "mapper") or name.startswith(("analogc.mapper.", "mapper."))


def module_name(path: Path) -> str:
    parts = path.relative_to(RUNTIME).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join(("analogc", "runtime", *parts))


def test_runtime_files_are_found():
    names = {p.name for p in RUNTIME_FILES}
    assert {"program.py", "chip.py", "spec.py"} <= names


@pytest.mark.parametrize("path", RUNTIME_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_runtime_source_does_not_import_mapper(path):
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    offending = [n for n in imported_modules(path.read_text(encoding="utf-8"), package) if is_mapper(n)]
    assert not offending, f"{path.relative_to(REPO)} imports {offending}"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import analogc.mapper.place", True),
        ("from analogc.mapper import compile_model", True),
        ("from analogc import mapper", True),
        ("from ..mapper import emit", True),
        ("from .. import mapper", True),
        ("def f():\n    import analogc.mapper\n", True),
        ("import importlib\nimportlib.import_module('analogc.mapper.frontend')", True),
        ("from analogc.runtime import tiles\nfrom . import devices", False),
        ("from analogc.errors import AnalogcError", False),
    ],
)
def test_the_scanner_sees_every_import_form(source, expected):
    """The static check is only as good as its scanner: each form of import is caught."""
    names = imported_modules(source, "analogc.runtime")
    assert any(is_mapper(n) for n in names) is expected, names


IMPORT_ALL = """
import importlib, json, pkgutil, sys
import analogc.runtime as rt
names = sorted(m.name for m in pkgutil.walk_packages(rt.__path__, "analogc.runtime."))
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names, "mapper": sorted(m for m in sys.modules if m == "analogc.mapper" or m.startswith("analogc.mapper."))}))
"""


def test_importing_every_runtime_module_does_not_load_mapper():
    proc = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = {module_name(p) for p in RUNTIME_FILES} - {"analogc.runtime"}
    assert expected <= set(report["imported"]), expected - set(report["imported"])
    assert report["mapper"] == [], report["mapper"]
