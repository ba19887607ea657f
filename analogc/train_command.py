"""`analogc train`: in-situ training on the simulated chip, with the progress bar, the
start and result summaries, and the trained program written."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from analogc.atomic import check_writable_path
from analogc.console import console_for, print_json
from analogc.data import image_feeds, load_dataset
from analogc.errors import AnalogcError
from analogc.kernel_status import FIRST_RUN_NOTE, kernel_compilations
from analogc.phases import Phases, report_phases
from analogc.runtime.chip.infer import single_input
from analogc.runtime.cost.pricing import summary_lines
from analogc.runtime.format.program import load_program, save_program
from analogc.runtime.format.replicas import refuse_training
from analogc.runtime.format.spec import check_knob_option, spec_from_dict
from analogc.runtime.training.checkpoint import check_folder
from analogc.runtime.training.trainer import Trainer, TrainOptions
from analogc.wording import count


def cmd_train(args) -> int:
    phases = Phases()
    with phases("load program"):
        program = load_program(args.program)
    refuse_training(program, args.program)
    spec = spec_from_dict(program.meta["target"], origin=f"{args.program}: target")
    epochs = spec.training.epochs if args.epochs is None else check_knob_option("training", "epochs", args.epochs, "--epochs")
    if args.limit is not None and args.limit <= 0:
        raise AnalogcError(f"--limit must be positive, got {args.limit}")
    if args.checkpoint_every <= 0:
        raise AnalogcError(f"--checkpoint-every must be positive, got {args.checkpoint_every}")
    if args.learning_rate is not None:
        check_knob_option("training", "learning_rate", args.learning_rate, "--learning-rate")
    if args.resume and not args.checkpoint:
        raise AnalogcError("--resume needs --checkpoint DIR")
    if args.checkpoint:
        check_folder(Path(args.checkpoint))
    output = Path(args.output) if args.output else Path(f"{Path(args.program).stem}.trained.atp")
    if output.suffix != ".atp":
        raise AnalogcError(f"{output}: the trained program must end in .atp")
    check_writable_path(output)
    model_input = single_input(program)
    with phases("load data"):
        data = load_dataset(args.data)
        feeds = {split: image_feeds(x, model_input, data.name) for split, x in (("train", data.x_train), ("test", data.x_test))}
    options = TrainOptions(
        epochs=epochs, init=args.init, seed=args.seed, learning_rate=args.learning_rate, baseline=args.baseline,
        limit=args.limit, checkpoint_dir=Path(args.checkpoint) if args.checkpoint else None,
        checkpoint_every=args.checkpoint_every, resume=args.resume, data_name=data.name,
    )
    with phases("set up the chip"):
        trainer = Trainer(program, feeds["train"], data.y_train, feeds["test"], data.y_test, options)
    say = None if args.json else _printer(args)
    if say and not args.quiet:
        say(describe_start(trainer, epochs))
    compiled_before = kernel_compilations()
    with TrainProgress(args, epochs) as progress, phases("train (and measure after each epoch)"):
        result = trainer.train(progress=progress)
    compiled_during = kernel_compilations() - compiled_before
    with phases("write program"):
        save_program(trainer.current_program(), output)
    result["output"] = str(output)
    if compiled_during:  # the first epoch's speed includes the compilation
        result["includes_kernel_compilation"] = True
    if args.json:
        print_json(result)
    elif args.quiet:
        say(result_lines(result))
    else:
        say(describe_result(result))
    report_phases(args, phases)
    return 0


def result_lines(result: dict) -> str:
    """`train -q`: the final accuracy (and the float network's) and where the program went."""
    last = result["epochs"][-1] if result["epochs"] else None
    lines = []
    if last is not None:
        baseline = f" (float {result['software_baseline_accuracy']:.4f})" if result.get("software_baseline_accuracy") is not None else ""
        lines.append(f"test accuracy {last['test_accuracy']:.4f} after {count(last['epoch'], 'epoch')}{baseline}")
    lines.append(f"wrote {result['output']}")
    return "\n".join(lines)


def _printer(args):
    console = console_for(args)
    return lambda text: console.print(text, highlight=False, markup=False)


def describe_start(trainer, epochs: int) -> str:
    spec, chain = trainer.spec, trainer.chain
    lines = [
        f"training {', '.join(l.name for l in trainer.layers)} on {spec.name} ({trainer.options.init} init, seed {trainer.options.seed}): "
        f"{count(epochs, 'epoch')} of {count(len(trainer.order(0)), 'example')} of {trainer.options.data_name}, learning rate {trainer.lr:g}"
        f"{'' if spec.training.learning_rate_decay == 1 else f' (× {spec.training.learning_rate_decay:g} per epoch)'}, "
        f"{transfer_schedule(spec)}"
    ]
    if chain.frozen_layers or chain.frozen_segments:
        parts = []
        if chain.frozen_segments:
            parts.append(f"host segments {', '.join(chain.frozen_segments)}")
        convs = [name for name in chain.frozen_layers if trainer.program.layer(name).get("kind") == "conv"]
        dense = [name for name in chain.frozen_layers if name not in convs]
        if convs:
            parts.append(f"convolution layers {', '.join(convs)} (on the tiles, read as programmed)")
        if dense:
            parts.append(f"analog layers {', '.join(dense)}")
        lines.append(f"frozen (not trained, run on the chip once per example): {'; '.join(parts)}")
    if trainer.position.total:
        lines.append(f"resumed at epoch {trainer.position.epoch + 1}, example {trainer.position.index}")
    return "\n".join(lines)


def transfer_schedule(spec) -> str:
    t = spec.training
    if spec.chip.cell == "pcm2":
        return f"2-PCM cells: refresh every {t.transfer_interval or 'never'} examples"
    read = "the capacitor's share" if t.transfer_read == "capacitor" else "the whole weight"
    if t.transfer_pulses > 0:
        return f"each layer transfers (reading {read}) after {t.transfer_pulses:g} pulses per cell"
    return f"transfer (reading {read}) every {t.transfer_interval or 'never'} examples"


def describe_result(result: dict) -> str:
    baseline = "software_baseline_accuracy" in result
    head = f"{'epoch':>5}  {'train loss':>10}  {'train acc':>9}  {'test acc':>8}" + (f"  {'float':>8}" if baseline else "") + f"  {'examples/s':>10}"
    lines = [head]
    for row in result["epochs"]:
        line = f"{row['epoch']:>5}  {row['train_loss']:>10.4f}  {row['train_accuracy']:>9.4f}  {row['test_accuracy']:>8.4f}"
        if baseline:
            line += f"  {row['software_baseline_accuracy']:>8.4f}"
        rate = row.get("examples_per_s")
        line += f"  {rate:>10.0f}" if rate else f"  {'-':>10}"
        lines.append(line)
    if result.get("includes_kernel_compilation"):
        lines.append(f"(epoch 1's examples/s {FIRST_RUN_NOTE})")
    last = result["epochs"][-1] if result["epochs"] else {}
    by_layer = last.get("transfers_by_layer") or {}
    lines.append(
        f"transfers {last.get('transfers_total', 0)}"
        + (f" ({', '.join(f'{name} {n}' for name, n in by_layer.items())})" if by_layer else "")
        + f", pulses {last.get('pulses_total', 0):,}, "
        f"PCM program-and-verify iterations {last.get('pcm_program_iterations_total', 0):,}, pairs refreshed/reset {last.get('refreshed_pairs_total', 0):,}"
    )
    lines.extend(f"cost of training (per training example): {line}" if i == 0 else f"  {line}" for i, line in enumerate(summary_lines(result["cost"])))
    lines.append(f"wrote {result['output']}")
    return "\n".join(lines)


class TrainProgress:
    """A rich progress bar on stderr: loss, running accuracy and examples/s per epoch."""

    def __init__(self, args, epochs: int):
        self.enabled = not (args.json or args.quiet) and sys.stderr.isatty()
        self.epochs = epochs
        self.task = None

    def __enter__(self):
        if not self.enabled:
            return None
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f}  acc {task.fields[acc]:.3f}  {task.fields[rate]:.0f} ex/s"),
            TimeRemainingColumn(), console=Console(stderr=True), transient=True,
        )
        self.progress.start()
        return self.update

    def update(self, epoch, done, total, loss, acc, rate):
        fields = {"epoch": epoch + 1, "epochs": self.epochs, "loss": loss, "acc": acc, "rate": rate}
        if self.task is None or self.current_epoch != epoch:
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task = self.progress.add_task("train", total=total, **fields)
            self.current_epoch = epoch
        self.progress.update(self.task, completed=done, **fields)

    def __exit__(self, *exc):
        if self.enabled:
            self.progress.stop()
        return False
