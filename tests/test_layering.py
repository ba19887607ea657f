"""The floors of the code, read from its own source (docs/code.md).

Ground: the basics (errors, atomic writes, memory checks, safe readers, wording) import
nothing of ours but each other. Middle: runtime/ imports only itself and the basics;
mapper/ imports itself, runtime/ (the program format it writes) and the basics. Top:
the command line, its views and the sweeps, which nothing below imports; only the demo
imports the parser, and the parser reaches the command modules through its dispatch
table alone. No import cycle between any two files.

The import graph is built with ast from every .py file of analogc/, mapper/ and
runtime/: module-level and function-local imports, relative imports,
importlib.import_module/__import__ calls with a constant name, and string constants
that name one of our modules (the CLI's dispatch table) are all edges. A
function-local project import must say why on its own line or just above it.
Checked dynamically too: importing every runtime module loads no mapper module, and
importing the parser loads no command module.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"analogc": REPO / "analogc", "analogc.mapper": REPO / "mapper", "analogc.runtime": REPO / "runtime"}
RUNTIME_FILES = sorted((REPO / "runtime").rglob("*.py"))
BASICS = {"analogc", "analogc.errors", "analogc.atomic", "analogc.memory", "analogc.npy_read", "analogc.toml_read", "analogc.wording"}
PARSER_USERS = {"analogc.demo"}  # runs the commands as a user would, through analogc.cli.main

# Known exceptions, each to be removed when fixed (a stale entry fails the test).
KNOWN_CYCLES: set[frozenset] = set()
KNOWN_UNEXPLAINED: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (one of ours, or any name when `ours` is False)
    line: int
    local: bool  # inside a function
    explained: bool  # a comment on the statement's line or just above its block of imports


def module_name(path: Path) -> str:
    for package, folder in FOLDERS.items():
        if path.is_relative_to(folder):
            parts = path.relative_to(folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            return ".".join((package, *parts))
    raise ValueError(path)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for folder in FOLDERS.values() for p in sorted(folder.rglob("*.py"))}


def explained(lines: list[str], node: ast.stmt) -> bool:
    """A `#` comment on the statement's lines, or on the line above the run of import
    statements and blank lines it belongs to."""
    if any("#" in lines[k - 1] for k in range(node.lineno, (node.end_lineno or node.lineno) + 1)):
        return True
    k = node.lineno - 1
    while k >= 1 and (not lines[k - 1].strip() or lines[k - 1].strip().startswith(("import ", "from "))):
        k -= 1
    return k >= 1 and lines[k - 1].strip().startswith("#")


def imports_in(source: str, name: str, is_package: bool, modules: set[str]) -> list[Import]:
    """Every import `source` (module `name`) makes. Names that are modules of ours resolve
    to them: `from X import y` is X.y when that is a module, else X."""
    tree, lines = ast.parse(source), source.splitlines()
    package = name if is_package else name.rpartition(".")[0]
    found = []

    def visit(node, local: bool):
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    origin = ".".join(base + ([child.module] if child.module else []))
                else:
                    origin = child.module or ""
                targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in modules else origin for a in child.names]
            elif isinstance(child, ast.Call) and child.args and isinstance(child.args[0], ast.Constant):
                func = child.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called in ("import_module", "__import__") and isinstance(child.args[0].value, str):
                    targets = [child.args[0].value]
            elif isinstance(child, ast.Constant) and isinstance(child.value, str) and "." in child.value and child.value in modules:
                targets = [child.value]  # a module named by string, imported later (a dispatch table)
            for target in dict.fromkeys(targets):
                found.append(Import(name, target, child.lineno, local, explained(lines, child) if local else True))
            visit(child, inner)

    visit(tree, False)
    return found


def all_imports() -> list[Import]:
    modules = project_modules()
    found = []
    for name, path in modules.items():
        found += imports_in(path.read_text(encoding="utf-8"), name, path.name == "__init__.py", set(modules))
    return [i for i in found if i.target in modules and i.target != i.source]


def import_graph(imports: list[Import]) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(project_modules())
    graph.add_edges_from((i.source, i.target) for i in imports)
    return graph


def cycles(graph: nx.DiGraph) -> set[frozenset]:
    """The groups of files that import each other, directly or around a circle."""
    return {frozenset(group) for group in nx.strongly_connected_components(graph) if len(group) > 1}


def floor(name: str) -> str:
    if name in BASICS:
        return "basics"
    if name == "analogc.runtime" or name.startswith("analogc.runtime."):
        return "runtime"
    if name == "analogc.mapper" or name.startswith("analogc.mapper."):
        return "mapper"
    return "top"


# The runtime's rooms, each importing only itself and the rooms before it (docs/code.md).
RUNTIME_ROOMS = ("format", "physics", "cost", "chip", "training")


def room(name: str) -> str | None:
    parts = name.split(".")
    return parts[2] if len(parts) > 3 and parts[:2] == ["analogc", "runtime"] else None


ALLOWED_FLOORS = {"basics": {"basics"}, "runtime": {"basics", "runtime"}, "mapper": {"basics", "runtime", "mapper"}}


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return all_imports()


def test_the_graph_covers_the_packages(imports):
    modules = project_modules()
    assert {"analogc.cli", "analogc.errors", "analogc.mapper.frontend", "analogc.runtime.chip.chip"} <= set(modules)
    graph = import_graph(imports)
    assert graph.has_edge("analogc.runtime.chip.chip", "analogc.runtime.physics.kernels")
    assert graph.has_edge("analogc.cli", "analogc.run_command")  # through the dispatch table


def test_no_import_cycle_between_files(imports):
    found = cycles(import_graph(imports))
    assert found - KNOWN_CYCLES == set(), sorted(sorted(group) for group in found - KNOWN_CYCLES)
    assert KNOWN_CYCLES - found == set(), f"fixed, remove from KNOWN_CYCLES: {KNOWN_CYCLES - found}"


def test_every_floor_imports_only_downwards(imports):
    wrong = [f"{i.source}:{i.line} imports {i.target} ({floor(i.source)} -> {floor(i.target)})"
             for i in imports if floor(i.source) in ALLOWED_FLOORS and floor(i.target) not in ALLOWED_FLOORS[floor(i.source)]]
    assert wrong == []


def test_the_runtime_rooms_import_only_earlier_rooms(imports):
    """format < physics < cost < chip < training: someone changing the physics finds no
    chip, training or cost code depending on it from below."""
    assert {room(m) for m in project_modules()} - {None} == set(RUNTIME_ROOMS)
    wrong = [f"{i.source}:{i.line} imports {i.target}" for i in imports
             if room(i.source) and room(i.target) and RUNTIME_ROOMS.index(room(i.target)) > RUNTIME_ROOMS.index(room(i.source))]
    assert wrong == []


def test_only_the_demo_imports_the_parser(imports):
    users = {i.source for i in imports if i.target == "analogc.cli"}
    assert users <= PARSER_USERS, users - PARSER_USERS


def test_the_parser_reaches_commands_only_through_its_dispatch_table():
    """analogc.cli's import statements load nothing of ours but the basics, so
    `analogc --help` starts without loading any command (or numpy)."""
    source = (REPO / "analogc" / "cli.py").read_text(encoding="utf-8")
    statements = [n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    ours = {n.module for n in statements if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("analogc")}
    assert ours and ours <= BASICS, ours - BASICS


def test_function_local_project_imports_say_why(imports):
    unexplained = {(i.source, i.target) for i in imports if i.local and not i.explained}
    assert unexplained - KNOWN_UNEXPLAINED == set(), sorted(unexplained - KNOWN_UNEXPLAINED)
    assert KNOWN_UNEXPLAINED - unexplained == set(), f"fixed, remove from KNOWN_UNEXPLAINED: {KNOWN_UNEXPLAINED - unexplained}"


MODULES = {"analogc.runtime", "analogc.runtime.chip.chip", "analogc.runtime.chip.tiles", "analogc.mapper", "analogc.mapper.emit", "analogc.errors"}


@pytest.mark.parametrize(
    "source, target, local, why",
    [
        ("import analogc.mapper.emit", "analogc.mapper.emit", False, True),
        ("from analogc.mapper import emit", "analogc.mapper.emit", False, True),
        ("from analogc.mapper import compile_model", "analogc.mapper", False, True),
        ("from ...mapper import emit", "analogc.mapper.emit", False, True),
        ("from ... import mapper", "analogc.mapper", False, True),
        ("from . import tiles", "analogc.runtime.chip.tiles", False, True),
        ("def f():\n    import analogc.mapper\n", "analogc.mapper", True, False),
        ("def f():\n    import analogc.mapper  # heavy: ortools\n", "analogc.mapper", True, True),
        ("def f():\n    # heavy: onnx\n    import onnx\n\n    from analogc.mapper import emit\n", "analogc.mapper.emit", True, True),
        ("def f():\n    x = 1  # a comment elsewhere\n    from analogc.mapper import emit\n", "analogc.mapper.emit", True, False),
        ("class C:\n    def f(self):\n        from analogc.errors import AnalogcError\n", "analogc.errors", True, False),
        ("if TYPE_CHECKING:\n    from analogc.mapper.emit import emit\n", "analogc.mapper.emit", False, True),
        ("import importlib\nimportlib.import_module('analogc.mapper.emit')", "analogc.mapper.emit", False, True),
        ("TABLE = {'run': ('analogc.runtime.chip.chip', 'main')}", "analogc.runtime.chip.chip", False, True),
    ],
)
def test_the_scanner_sees_every_import_form(source, target, local, why):
    """The checks are only as good as the scanner: each form of import is an edge, in or
    out of a function, and a comment is seen only where it explains the import."""
    found = [i for i in imports_in(source, "analogc.runtime.chip.chip", False, MODULES) if i.target == target]
    assert {(i.local, i.explained) for i in found} == {(local, why)}, found


def test_the_cycle_check_finds_a_circle_through_three_files():
    graph = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])
    assert cycles(graph) == {frozenset("abc")}
    assert cycles(nx.DiGraph([("a", "b"), ("b", "c")])) == set()


@pytest.mark.parametrize("path", RUNTIME_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_runtime_source_does_not_import_mapper(path):
    name = module_name(path)
    found = imports_in(path.read_text(encoding="utf-8"), name, path.name == "__init__.py", set(project_modules()))
    offending = [i.target for i in found if floor(i.target) == "mapper"]
    assert not offending, f"{path.relative_to(REPO)} imports {offending}"


LOADED_AFTER = """
import importlib, json, pkgutil, sys
for name in {names}:
    module = importlib.import_module(name)
    for sub in pkgutil.walk_packages(getattr(module, "__path__", []), name + "."):
        importlib.import_module(sub.name)
print(json.dumps(sorted(m for m in sys.modules if m == "analogc" or m.startswith("analogc."))))
"""


def loaded_after(*names: str) -> list[str]:
    code = LOADED_AFTER.format(names=list(names))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_every_runtime_module_does_not_load_mapper():
    loaded = loaded_after("analogc.runtime")
    expected = {module_name(p) for p in RUNTIME_FILES}
    assert expected <= set(loaded), expected - set(loaded)
    assert [m for m in loaded if floor(m) not in ("runtime", "basics")] == []


def test_the_parser_loads_no_command():
    """`analogc --help` starts fast: the parser alone, no command module, no runtime."""
    assert set(loaded_after("analogc.cli")) == {"analogc", "analogc.cli", "analogc.errors"}
