"""``energy``, ``evaluate`` and ``demo``: the hardware estimates and the whole toolchain on the
embedded digits data."""

from __future__ import annotations

import sys

import click

from mlf_deploy.ir.semantics import WEIGHT_BITS_RANGE
from mlf_deploy.ownership import allow_replace

from .app import (
    ALL_SAMPLES,
    CKPT,
    DATA_DIR,
    DEVICE,
    ENERGY_MODEL,
    JSON,
    SPIKES,
    SPLIT,
    THREADS,
    WEIGHT_BITS,
    IntList,
    emit_json,
    flag_log,
    main,
    set_threads,
    user_errors,
)

REPLACE_PLOTS = click.option("--force", is_flag=True,
                             help="Replace plots an earlier run of mlf-deploy wrote there.")


@main.command()
@CKPT
@SPLIT
@ALL_SAMPLES
@WEIGHT_BITS
@ENERGY_MODEL
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG of per-layer SynOps and energy, SNN against ANN.")
@click.option("--simulator", type=click.Choice(["sanafe"]), default=None,
              help="Also price the binary lowering with SANA-FE's Loihi 1 model (pip install "
                   "'mlf-deploy[sanafe]'), beside our per-event bill.")
@click.option("--simulator-samples", type=click.IntRange(1), default=4, show_default=True,
              help="Samples SANA-FE runs (it builds every synapse, so keep this small).")
@REPLACE_PLOTS
@SPIKES
@DATA_DIR
@DEVICE
@THREADS
@JSON
@user_errors
def energy(checkpoint, split, samples, weight_bits, energy_model, plot_path, simulator,
           simulator_samples, force, spikes, data_dir, device, threads, as_json):
    """SynOps, firing, dormant units and energy per inference of the integer graph, per layer,
    against the same network run as an ANN.

    SynOps count every spike of every level by its exact fan-out (graded, borders included); a
    static image's stem is dense MACs at each timestep, event frames are ACs per event. Then the
    hardware resources of the binary and the graded lowering side by side.

    \b
    Example:
      mlf-deploy energy run/checkpoint.pt --samples 200 --plot energy.png --json
    """
    from mlf_deploy.workflows.analysis import check_energy_args, energy_report, lowerings_plot_path
    from mlf_deploy.workflows.options import EnergyOptions
    from mlf_deploy.workflows.pipeline import load_pipeline
    options = EnergyOptions(split=split, samples=samples, energy_model=energy_model,
                            plot_path=plot_path, spikes=spikes, simulator=simulator,
                            simulator_samples=simulator_samples)
    if force and plot_path:  # the plot and its lowerings companion, both written by this command
        allow_replace(plot_path)
        allow_replace(lowerings_plot_path(plot_path))
    check_energy_args(energy_model, plot_path)
    if simulator:
        from mlf_deploy.runtimes.sanafe_chip import import_sanafe
        import_sanafe()
    using = set_threads(threads)
    pipe = load_pipeline(checkpoint, weight_bits, data_dir, device)
    click.echo(f"running the integer reference on the {split} split, {using} ...", err=True)
    text, result = energy_report(pipe, options)
    click.echo(text + (f"\nwrote {plot_path}" if plot_path else ""))
    if as_json:
        emit_json(result)


@main.command()
@CKPT
@click.option("--weight-bits", "bits", default=None, type=IntList(*WEIGHT_BITS_RANGE),
              help="Comma-separated weight widths to sweep (each {}..{}); the first is mapped "
                   "[default: 8,6,4; a fine-tuned checkpoint's own width first].".format(
                       *WEIGHT_BITS_RANGE))
@click.option("--timesteps", "steps", default=None, type=IntList(1, example="1,2,4"),
              help="Comma-separated inference timesteps [default: 1..T of the model].")
@SPLIT
@ALL_SAMPLES
@ENERGY_MODEL
@click.option("--weight-sharing", is_flag=True,
              help="Map conv weights as shared per core (Loihi 2 conv synapses), not expanded.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False), default=None,
              help="Directory for accuracy_energy.png and layers.png.")
@click.option("--finetuned", "finetuned", multiple=True, type=click.Path(dir_okay=False),
              help="A checkpoint fine-tuned from CHECKPOINT (`mlf-deploy finetune`), swept at its "
                   "own weight width on the same axes; repeat for several.")
@REPLACE_PLOTS
@SPIKES
@DATA_DIR
@DEVICE
@THREADS
@JSON
@user_errors
def evaluate(checkpoint, bits, steps, split, samples, energy_model, weight_sharing, plot_dir,
             finetuned, force, spikes, data_dir, device, threads, as_json):
    """Hardware-oriented evaluation: accuracy, SynOps, energy and latency over weight widths and
    timesteps on the integer reference, and the mapping onto a Loihi-2-like target with its
    design-rule check (failures are reported, not fatal).

    \b
    Example:
      mlf-deploy evaluate run/checkpoint.pt --weight-bits 8,6,4 --timesteps 1,2,4 --plot eval/
      mlf-deploy evaluate run/checkpoint.pt --weight-bits 8,4,2 --finetuned run4/checkpoint.pt \\
          --finetuned run2/checkpoint.pt --plot eval/
    """
    from mlf_deploy.workflows.analysis import check_evaluate_args, evaluate_report
    from mlf_deploy.workflows.options import EvaluateOptions
    from mlf_deploy.workflows.pipeline import load_pipeline
    options = EvaluateOptions(weight_bits=tuple(bits) if bits else None,
                              timesteps=tuple(steps) if steps else None, split=split,
                              samples=samples, energy_model=energy_model,
                              weight_sharing=weight_sharing, plot_dir=plot_dir, spikes=spikes)
    if force and plot_dir:
        allow_replace(plot_dir)
    check_evaluate_args(energy_model, plot_dir)
    using = set_threads(threads)
    pipe = load_pipeline(checkpoint, bits[0] if bits else None, data_dir, device)
    tuned = [load_pipeline(path, None, data_dir, device) for path in finetuned]
    click.echo(f"sweeping weight widths {options.widths(pipe.weight_bits)} on the {split} split, "
               f"{using} ...", err=True)
    text, result = evaluate_report(pipe, options, tuned)
    click.echo(text + (f"\nwrote {', '.join(result['plots'].values())}" if plot_dir else ""))
    if as_json:
        emit_json(result)


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="demo-output",
              show_default=True, help="Output folder (built under a temporary name, then renamed).")
@click.option("--quick", is_flag=True,
              help="A short run (fewer epochs and samples) for CI: < 3 min.")
@click.option("--force", is_flag=True, help="Replace an existing, non-empty output folder.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="torch threads [default: OMP_NUM_THREADS, else 1; fixed, never the machine's "
                   "load, so the demo's figures repeat: docs/determinism.md].")
@JSON
@user_errors
def demo(out_dir, quick, force, no_progress, threads, as_json):
    """The whole toolchain on the embedded digits data: train, lower, quantize, export to IR, Lava
    and ONNX, verify every backend against torch, estimate energy, evaluate for hardware, and
    write report.md with the results.

    \b
    Example:
      mlf-deploy demo --out demo-output --quick
    """
    from mlf_deploy.workflows.demo import run_demo
    from mlf_deploy.workflows.options import DemoOptions
    options = DemoOptions(quick=quick, force=force, progress=not no_progress, threads=threads)
    summary = run_demo(out_dir, options, log=flag_log())
    click.echo(f"{'PASSED' if summary['passed'] else 'FAILED'}: report at "
               f"{summary['out']}/report.md (test accuracy {summary['test_accuracy']:.4f}, "
               f"{summary['seconds']['total']:.0f} s)")
    if as_json:
        emit_json(summary)
    sys.exit(0 if summary["passed"] else 1)
