"""The README's commands, run as a user would, and the relative links of the docs.

`README.md` marks what a user types as ```console blocks: each `$ ` line is a command,
the lines after it (up to the next command) its output. `run_commands` copies the
repository's files into a fresh folder, links the set-up's `.venv` into it (what `make
demo` or `make test` left there) and runs every command in one bash session, as
written, in order.

    .venv/bin/python tests/readme_check.py --update   # rewrite README's outputs from a real run
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from analogc.kernel_status import FIRST_RUN_NOTE

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md")), REPO / "bench" / "README.md", REPO / "bench" / "HISTORY.md"]
SKIPPED_COPY = {".venv", ".git", "out", "__pycache__", ".pytest_cache", ".hypothesis", "build"}
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


@dataclass
class Command:
    text: str
    expected: list[str] = field(default_factory=list)  # the output the README shows
    output: str = ""  # what it printed here (stdout and stderr)
    status: int | None = None


def console_commands(text: str) -> list[Command]:
    """Every `$ ` line of every ```console block, with the output lines shown after it."""
    commands, in_block = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_block = line.strip() == "```console" if not in_block else False
            continue
        if not in_block:
            continue
        if line.startswith("$ "):
            commands.append(Command(line[2:]))
        elif commands:
            commands[-1].expected.append(line)
    return commands


def fresh_copy(folder: Path) -> Path:
    """The repository's files (as a clone has them, without build products) in `folder`,
    with the set-up's virtual environment linked in as `.venv`."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, text=True
    )
    if listed.returncode == 0:
        for name in listed.stdout.splitlines():
            source = REPO / name
            if source.is_file() and not SKIPPED_COPY & set(Path(name).parts):
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, folder / name)
    else:  # not a git checkout: copy the tree
        shutil.copytree(REPO, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*SKIPPED_COPY, "*.atp"))
    (folder / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return folder


def run_commands(commands: list[Command], folder: Path, timeout: float = 600) -> None:
    """Run the commands in order in one bash session in `folder`; fill in each one's
    exit status and output. A command that fails stops the rest (status None)."""
    script = ["cd " + shell_quote(str(folder))]
    for i, command in enumerate(commands):
        script.append(f"{{ {command.text}\n}} > .readme_out_{i} 2>&1; echo $? > .readme_status_{i}")
        script.append(f"[ \"$(cat .readme_status_{i})\" = 0 ] || exit 0")
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "LANG": "C.UTF-8", "TERM": "dumb"}
    subprocess.run(["bash", "--noprofile", "--norc", "-c", "\n".join(script)], env=environment, timeout=timeout, check=False)
    for i, command in enumerate(commands):
        status = folder / f".readme_status_{i}"
        if status.exists():
            command.status = int(status.read_text())
            command.output = (folder / f".readme_out_{i}").read_text(errors="replace")


def shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def masked(line: str) -> str:
    """A line with every number replaced and runs of spaces collapsed: what stays the
    same from run to run (timings and speeds change, the text around them does not)."""
    return " ".join(re.sub(r"\d[\d,.e+-]*", "#", line).split())


def output_mismatch(command: Command) -> str | None:
    """Why the README's output of a command is not what it prints now, or None.
    Accuracy lines must match exactly (runs are deterministic); the rest line by line
    with numbers masked."""
    shown, real = command.expected, command.output.rstrip("\n").splitlines() if command.output.strip() else []
    # A command that happens to be the first to run a kernel in a fresh clone says so.
    real = [line for line in real if FIRST_RUN_NOTE not in line or any(FIRST_RUN_NOTE in s for s in shown)]
    if len(shown) != len(real):
        return f"{command.text!r}: the README shows {len(shown)} output lines, it prints {len(real)}"
    for a, b in zip(shown, real):
        if ("accuracy" in a and a.strip() != b.strip()) or masked(a) != masked(b):
            return f"{command.text!r}: the README shows\n  {a}\nit prints\n  {b}"
    return None


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    in_code, found = False, set()
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            found.add(github_anchor(line.lstrip("#")))
    return found


def broken_links(path: Path) -> list[str]:
    """Relative links (and #anchors into Markdown files) of `path` that do not resolve."""
    broken, in_code = [], False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            if not resolved.exists():
                broken.append(f"{path.relative_to(REPO)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{path.relative_to(REPO)}: {target} (no such heading)")
    return broken


def update_readme(folder: Path) -> None:
    """Rewrite the output under every README command with what it prints now."""
    text = README.read_text()
    commands = console_commands(text)
    run_commands(commands, fresh_copy(folder))
    lines, out, i, in_block = text.splitlines(), [], -1, False
    for line in lines:
        if line.startswith("```"):
            in_block = line.strip() == "```console" if not in_block else False
            out.append(line)
        elif in_block and line.startswith("$ "):
            i += 1
            if commands[i].status != 0:
                raise SystemExit(f"{commands[i].text!r} failed (status {commands[i].status}):\n{commands[i].output}")
            out.append(line)
            out.extend(commands[i].output.rstrip("\n").splitlines() if commands[i].output.strip() else [])
        elif not in_block:
            out.append(line)
    README.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] != ["--update"]:
        raise SystemExit(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        update_readme(Path(tmp))
    print(f"updated {README}")
