"""Shared test fixtures: run the CLI in-process, paths of the shipped models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from analogc.cli import main

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """cli("compile", "m.onnx", ...) -> CliResult(code, stdout, stderr)."""

    def run(*argv) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def assert_user_error(result: CliResult, *fragments: str) -> None:
    """Exit 2, exactly one stderr line starting `analogc: error:`, naming each fragment."""
    assert result.code == 2, (result.code, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("analogc: error: "), lines[0]
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
