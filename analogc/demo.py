"""`make demo`: compile the shipped digits model, show its plan, run it ideal and default,
train it on the chip from random weights (next to float), run the trained chip, export it.

Everything it needs is in the repository (the model in models/, the data in
scikit-learn); it runs the same `analogc` commands a user would type, and prints them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from analogc.cli import main as analogc

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "digits_mlp.onnx"
OUT = REPO / "out"


def step(*argv: str) -> None:
    print(f"\n$ analogc {' '.join(argv)}", flush=True)
    code = analogc(list(argv))
    if code != 0:
        sys.exit(code)


def main() -> None:
    if not MODEL.exists():
        sys.exit(f"analogc: error: {MODEL} is missing (run `make models`)")
    os.chdir(REPO)  # the commands below use paths relative to the repository
    OUT.mkdir(exist_ok=True)
    program = OUT / "digits_mlp.atp"
    rel = lambda p: str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p)  # noqa: E731
    step("targets")
    step("compile", rel(MODEL), "--target", "pcm3t1c-2018", "-o", rel(program), "-q")
    step("plan", rel(program))
    step("run", rel(program), "--data", "digits", "--ideal")
    step("run", rel(program), "--data", "digits", "--seed", "0")
    trained = OUT / "digits_mlp.trained.atp"
    step("train", rel(program), "--data", "digits", "--init", "random", "--epochs", "3", "--baseline", "-o", rel(trained))
    step("run", rel(trained), "--data", "digits", "--seed", "0")
    step("export", rel(trained), "-o", rel(OUT / "digits_mlp.trained.onnx"))


if __name__ == "__main__":
    main()
