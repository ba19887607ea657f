"""What `analogc run` prints: the summary (accuracy, agreement with onnxruntime, the
nonidealities, programming error, speed, cost), or with -q just the result lines."""

from __future__ import annotations

from analogc.console import console_for, print_json
from analogc.kernel_status import FIRST_RUN_NOTE
from analogc.runtime.cost.pricing import summary_lines


def compensation_text(result: dict) -> str:
    """'off', or 'on' and where it acts ('ADC gain' or 'digital')."""
    if not result["drift_compensation"]:
        return "off"
    return "on (" + {"adc_gain": "ADC gain", "digital": "digital"}.get(result.get("drift_compensation_at"), "?") + ")"


def report_run(args, program, result: dict) -> None:
    if args.json:
        print_json(result)
        return
    console = console_for(args)
    if args.quiet:  # the result lines only
        print_run_result(console, result)
        return
    line = f"{result['examples']} examples of {result['data']} on {result['target']} ({result['mode']} mode, seed {result['seed']})"
    console.print(line)
    if "accuracy" in result:
        console.print(f"  chip accuracy         {result['accuracy']:.4f}")
        console.print(f"  onnxruntime accuracy  {result['onnxruntime_accuracy']:.4f}")
    console.print(f"  max |chip - onnxruntime| on the outputs: {result['max_abs_diff_vs_onnxruntime']:.3g}")
    on = [k for k, v in result["nonidealities"].items() if v]
    clamped = f" ({result['drift_clamped_from_s']:g} s asked: raised to t0, where the drift model starts)" if "drift_clamped_from_s" in result else ""
    console.print(f"  nonidealities: {', '.join(on) or 'none'}; drift time {result['drift_time_s']:g} s{clamped}, "
                  f"drift compensation {compensation_text(result)}")
    if any(row["mean_abs_error_rel"] or row.get("trained") for row in result["programming_error"]):
        console.print("  programming error per layer (mean |W - W_target| / layer range, closed-loop iterations per cell):")
        for row in result["programming_error"]:
            if row.get("trained"):
                console.print(f"    {row['layer']:<24} device state from in-situ training")
            else:
                console.print(f"    {row['layer']:<24} {row['mean_abs_error_rel']:.2%}   {row['programming_iterations_per_cell']:.1f}")
    first = f"; {FIRST_RUN_NOTE}" if result.get("includes_kernel_compilation") else ""
    console.print(f"  {result['examples_per_s']:.0f} examples/s ({result['seconds']:.3f} s{first})")
    console.print("  cost on the target (exact operation counts priced with the spec's [cost] table):")
    for line in summary_lines(result["cost"]):
        console.print(f"    {line}")
    if "output" in result:
        console.print(f"  wrote {result['output']}")
    for item in result.get("outputs_left_out", []):  # outputs with no array form
        console.print(f"  left out of {result['output']}: output {item['name']!r}, {item['why']}", markup=False)


def print_run_result(console, result: dict) -> None:
    """`run -q`: the accuracy (or, without labels, the agreement with onnxruntime) and
    where the outputs went; no tables, no progress."""
    if "accuracy" in result:
        console.print(f"chip accuracy {result['accuracy']:.4f} (onnxruntime {result['onnxruntime_accuracy']:.4f})")
    else:
        console.print(f"max |chip - onnxruntime| on the outputs: {result['max_abs_diff_vs_onnxruntime']:.3g}")
    if "output" in result:
        console.print(f"wrote {result['output']}")
