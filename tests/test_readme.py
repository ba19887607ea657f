"""README.md is a guide a newcomer can follow: its commands work as written, in a fresh
folder after the set-up (`make demo` or `make test`), print what it shows, and every
relative link in the README, docs/ and bench/ resolves."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.readme_check import DOCS, README, broken_links, console_commands, fresh_copy, output_mismatch, run_commands

README_MAX_BYTES = 15_000


def test_readme_is_a_short_guide():
    assert README.stat().st_size <= README_MAX_BYTES
    commands = [c.text for c in console_commands(README.read_text())]
    for step in ("analogc compile", "analogc plan", "analogc run", "analogc train", "analogc export"):
        assert any(c.startswith(step) for c in commands), f"the quick start lacks {step}"


@pytest.mark.skipif(not (Path(__import__("sys").prefix) / "bin" / "activate").exists(), reason="not run from a virtual environment")
def test_readme_commands_run_as_written(tmp_path):
    commands = console_commands(README.read_text())
    assert commands[0].text == ". .venv/bin/activate"  # how analogc gets on the PATH
    run_commands(commands, fresh_copy(tmp_path))
    for command in commands:
        assert command.status == 0, f"{command.text!r} exited {command.status}:\n{command.output}"
        mismatch = output_mismatch(command)
        assert mismatch is None, mismatch + "\n(rerun: .venv/bin/python tests/readme_check.py --update)"


def test_checker_sees_failures(tmp_path):
    """The runner reports a failing command and stops; the output check is not blind."""
    from tests.readme_check import Command

    commands = [Command("true"), Command("analogc-no-such-command"), Command("true")]
    run_commands(commands, tmp_path)
    assert [c.status for c in commands] == [0, 127, None]
    shown = Command("x", expected=["  chip accuracy         0.9777"], output="  chip accuracy         0.9776\n")
    assert output_mismatch(shown) is not None
    timing = Command("x", expected=["  3131 examples/s (0.115 s)"], output="  2900 examples/s (0.2 s)\n")
    assert output_mismatch(timing) is None


def test_every_page_of_docs_is_linked_from_the_readme():
    text = README.read_text()
    for page in sorted((README.parent / "docs").glob("*.md")):
        assert f"](docs/{page.name})" in text, f"README.md does not link docs/{page.name}"


def test_every_bench_is_described_in_bench_readme():
    text = (README.parent / "bench" / "README.md").read_text()
    for script in sorted((README.parent / "bench").glob("*.py")):
        if "__main__" not in script.read_text():
            continue  # a helper the benches import, not a bench
        assert f"{script.name}](" in text or f"## {script.name}" in text, f"bench/README.md does not describe {script.name}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(README.parent)))
def test_relative_links_resolve(path):
    assert path.exists()
    assert broken_links(path) == []


def test_link_checker_finds_broken_links(tmp_path, monkeypatch):
    import tests.readme_check as check

    page = tmp_path / "page.md"
    page.write_text("# Top\n[ok](page.md#top) [gone](missing.md) [bad anchor](#nowhere) [web](https://example.org)\n")
    monkeypatch.setattr(check, "REPO", tmp_path)
    assert broken_links(page) == ["page.md: missing.md (no such file)", "page.md: #nowhere (no such heading)"]
