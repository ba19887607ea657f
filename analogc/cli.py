"""The `analogc` command line: compile, plan, run, train, export, cost, sweep, sweep-plot, targets.

Exit status: 0 success; 2 bad input or usage (one line `analogc: error: ...` on
stderr); 1 an internal error (traceback only with --debug).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
import traceback
import warnings

from analogc import __version__
from analogc.errors import AnalogcError


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports usage errors as one `analogc: error:` line, exit 2."""

    def error(self, message):
        raise AnalogcError(f"{message} (see: {self.prog} --help)")


MAX_SEED = 2**31 - 1  # CP-SAT takes a 32-bit seed


def seed_value(text: str) -> int:
    """--seed: an integer in [0, 2^31 − 1]."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_SEED}, got {value}")
    return value


def add_common(parser: argparse.ArgumentParser, seed: bool = False, json_out: bool = True) -> None:
    if seed:
        parser.add_argument("--seed", type=seed_value, default=0, help=f"random seed in [0, {MAX_SEED}] (default 0): same seed, same result")
    if json_out:
        parser.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of the summary")
    parser.add_argument("-q", "--quiet", action="store_true", help="print less")
    parser.add_argument("-v", "--verbose", action="store_true", help="print more")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="analogc",
        description="Compile ONNX networks onto analog PCM + 3T1C in-memory tiles and run them on a simulated chip.",
    )
    parser.add_argument("--version", action="version", version=f"analogc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)

    p = sub.add_parser("compile", help="ONNX model -> placed tile program (.atp)", description="Frontend, partition, placement and emission of a tile program.")
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--target", default=None, help="shipped target name or path of a .toml spec (default pcm3t1c-2018)")
    p.add_argument("-o", "--output", metavar="OUT.atp", help="output tile program (default: MODEL's name with .atp, in the current folder)")
    p.add_argument("--placer", choices=["cpsat", "greedy"], default="cpsat", help="cpsat (default: packing and placement proven against bounds) or greedy first-fit")
    p.add_argument("--time-limit", type=float, default=5.0, metavar="S", help="placer time budget in seconds (default 5); the best plan found is returned")
    p.add_argument(
        "--replicate", choices=["none", "throughput", "accuracy"], default="none",
        help="copies of layers on spare tiles: throughput (copies read different positions, fewest steps for the slowest layer) "
        "or accuracy (up to 16 copies of every layer, reads averaged); default none",
    )
    p.add_argument(
        "--fold-batchnorm", action="store_true",
        help="fold an inference BatchNormalization that follows a Conv (or a layer on vectors) into its weights and bias; "
        "by default it runs on the host",
    )
    add_common(p, seed=True)
    p.set_defaults(handler="compile")

    p = sub.add_parser("plan", help="show a tile program's allocation", description="Per layer and per tile: where the blocks sit and how full the tiles are.")
    p.add_argument("program", metavar="PROGRAM.atp")
    p.add_argument("--png", metavar="FILE", help="also draw the grid, tiles, blocks and data flow to a PNG file")
    add_common(p)
    p.set_defaults(handler="plan")

    p = sub.add_parser("run", help="inference on the simulated chip", description="Run a tile program on the simulated chip, next to onnxruntime on the original model.")
    p.add_argument("program", metavar="PROGRAM.atp")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", metavar="SPEC", help="digits | fashion-mnist | idx:DIR | FILE.npz (test split)")
    source.add_argument("--input", metavar="X.npy", help="input array (.npy), or .npz with one array per model input")
    p.add_argument("--output", metavar="Y.npy", help="with --input: write the first output (.npy) or all outputs (.npz)")
    p.add_argument("--ideal", action="store_true", help="switch every nonideality off (must match onnxruntime)")
    p.add_argument("--drift-time", type=float, default=None, metavar="T", help="seconds since programming (default: the drift reference t0 = 20 s)")
    p.add_argument("--batch-size", type=int, default=256, help="examples per batch when the model's batch is symbolic")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N test examples")
    add_common(p, seed=True)
    p.set_defaults(handler="run")

    p = sub.add_parser("train", help="in-situ training on the simulated chip", description="Per-example SGD on the tiles: capacitor updates, transfer to PCM with polarity inversion (Ambrogio et al. 2018).")
    p.add_argument("program", metavar="PROGRAM.atp")
    p.add_argument("--data", required=True, metavar="SPEC", help="digits | fashion-mnist | idx:DIR | FILE.npz (train split to train, test split to measure)")
    p.add_argument("--epochs", type=int, default=None, metavar="N", help="passes over the training data (default: the spec's [training] epochs)")
    p.add_argument("--init", choices=["compiled", "random"], default="compiled", help="start from the compiled weights (default) or Glorot-random weights")
    p.add_argument("-o", "--output", metavar="TRAINED.atp", help="trained program, holding the device state (default: PROGRAM's name with .trained.atp, here)")
    p.add_argument("--baseline", action="store_true", help="also train the same network in float (same order, seed, learning rate) and report its accuracy")
    p.add_argument("--learning-rate", type=float, default=None, metavar="ETA", help="SGD learning rate (default: the spec's)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="train on N examples per epoch (a random subset, new each epoch)")
    p.add_argument("--checkpoint", metavar="DIR", help="save the whole state to DIR/checkpoint.npz every --checkpoint-every examples and after each epoch")
    p.add_argument("--checkpoint-every", type=int, default=5000, metavar="N", help="examples between checkpoints (default 5000)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint DIR (bit-identical to an uninterrupted run)")
    add_common(p, seed=True)
    p.set_defaults(handler="train")

    p = sub.add_parser("export", help="the weights the chip holds, as an ONNX model", description="Read the chip's weights back into the original graph (onnxruntime on it matches run --ideal).")
    p.add_argument("program", metavar="PROGRAM.atp")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.onnx")
    add_common(p)
    p.set_defaults(handler="export")

    p = sub.add_parser("cost", help="energy, latency and area estimate of one inference", description="Exact operation counts of one inference priced with the target's [cost] table: by layer and by operation kind.")
    p.add_argument("program", metavar="PROGRAM.atp")
    p.add_argument("--png", metavar="FILE", help="also draw the breakdown by layer and operation kind to a PNG file")
    p.add_argument("--target", default=None, help="price with this spec's [cost] table (shipped name or .toml path; default: the program's own)")
    add_common(p)
    p.set_defaults(handler="cost")

    p = sub.add_parser("sweep", help="run or train over a grid of target-spec variants and seeds, on Dask", description="Expand the sweep file's grid x seeds, validate every variant, run each job as one Dask task (a LocalCluster here, or an existing cluster) and stream the results into DIR/results.parquet and .csv. Rerunning into the same DIR skips finished jobs.")
    p.add_argument("program", metavar="PROGRAM.atp")
    p.add_argument("--data", required=True, metavar="SPEC", help="digits | fashion-mnist (loaded on each worker) | idx:DIR | FILE.npz (read here, shipped to the workers)")
    p.add_argument("--sweep", required=True, metavar="SWEEP.toml", help="the grid, seeds and command (see README, Sweeps)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://HOST:8786 (default: a local cluster)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="local cluster size (default: one worker process per core)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="results folder: sweep.json, results.parquet, results.csv")
    add_common(p)
    p.set_defaults(handler="sweep")

    p = sub.add_parser("sweep-plot", help="plot a sweep's results: mean ± std over seeds", description="One metric against one swept key, mean ± sample std over seeds (and over any swept key not on the plot), optionally one line per value of --hue.")
    p.add_argument("folder", metavar="DIR", help="a folder written by analogc sweep")
    p.add_argument("--x", required=True, metavar="KEY", help="column on the x axis, e.g. capacitor.step_mismatch")
    p.add_argument("--y", default="accuracy", metavar="METRIC", help="column on the y axis (default accuracy)")
    p.add_argument("--hue", metavar="KEY", help="one line per value of this column")
    p.add_argument("-o", "--output", required=True, metavar="PLOT.png")
    add_common(p)
    p.set_defaults(handler="sweep_plot")

    p = sub.add_parser("targets", help="list the shipped target specs", description="The shipped target specs, one line each.")
    add_common(p)
    p.set_defaults(handler="targets")
    return parser


# The dispatch table: handler name -> (module, function). The parser above never imports
# a command module; dispatch imports the one command that runs, by name, when it runs,
# so that start-up stays fast (`analogc plan` never loads ortools and onnx for the
# compiler, numba for the chip, dask or matplotlib). tests/test_layering.py reads these
# names as imports of analogc.cli.
COMMANDS = {
    "compile": ("analogc.commands", "cmd_compile"),
    "plan": ("analogc.commands", "cmd_plan"),
    "export": ("analogc.commands", "cmd_export"),
    "targets": ("analogc.commands", "cmd_targets"),
    "run": ("analogc.run_command", "cmd_run"),
    "train": ("analogc.train_command", "cmd_train"),
    "cost": ("analogc.cost_command", "cmd_cost"),
    "sweep": ("analogc.sweep", "cmd_sweep"),
    "sweep_plot": ("analogc.sweep_plot", "cmd_sweep_plot"),
}


def command_function(handler: str):
    """The function that runs `handler`, its module imported now (see COMMANDS)."""
    module, function = COMMANDS[handler]
    return getattr(importlib.import_module(module), function)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    """Run one command; SIGINT and SIGTERM end it like Ctrl-C does (files being written
    are discarded with their temporary files, finished checkpoints stay, exit status 130).
    Both handlers are installed explicitly: a background job started from a
    non-interactive shell inherits SIGINT ignored, and Python keeps it ignored."""
    if threading.current_thread() is not threading.main_thread():
        return run_command(argv)
    previous = {signum: signal.signal(signum, signal.default_int_handler) for signum in STOP_SIGNALS}
    try:
        return run_command(argv)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_command(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    # Library warnings (onnx, numpy, protobuf) would break the promise of one error line
    # on stderr; --debug shows them.
    with warnings.catch_warnings():
        if not debug:
            warnings.simplefilter("ignore")
        return dispatch(argv, debug)


def dispatch(argv: list[str], debug: bool) -> int:
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help and --version: argparse printed them, then exited
            return exc.code if isinstance(exc.code, int) else 0
        if not getattr(args, "handler", None):
            raise AnalogcError("no command given (see: analogc --help for the commands)")
        return command_function(args.handler)(args) or 0
    except AnalogcError as exc:
        message = " ".join(str(exc).split())
        print(f"analogc: error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("analogc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if interrupted(exc):  # e.g. zipfile refusing to close a member that Ctrl-C cut short
            print("analogc: interrupted", file=sys.stderr)
            return 130
        # an internal error: our bug, not the user's input
        if debug:
            traceback.print_exc()
        print(f"analogc: internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)", file=sys.stderr)
        return 1


def interrupted(exc: BaseException) -> bool:
    """Whether `exc` was raised while a Ctrl-C (or SIGTERM) was being handled: cleanup
    code that fails because the interrupt cut an operation short is the interrupt's
    doing, not an internal error."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__context__
    return False


if __name__ == "__main__":
    sys.exit(main())
