"""The ``mlf-deploy`` command line: one thin click command per stage of the toolchain.

Every command turns a :class:`mlf_deploy.errors.UserError` into one line on stderr and exit code 2;
with ``--json`` the last line of stdout is one JSON object (schemas in the README).
"""

from __future__ import annotations

import functools
import json
import signal
import sys
from importlib.metadata import PackageNotFoundError, version

import click

from mlf_deploy.errors import UserError
from mlf_deploy.fileio import WRITE_ERRNOS

try:
    __version__ = version("mlf-deploy")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"


class Terminated(KeyboardInterrupt):
    """SIGTERM, unwound like Ctrl-C so staging folders and workers go too. A subclass because
    CPython marks a bare KeyboardInterrupt that escapes C-level ``PyRun_*`` code (libraries run
    snippets that way) as unhandled and then exits by SIGINT whatever ``sys.exit`` said."""


def _terminate(signum, frame):
    raise Terminated


class OneLineErrors(click.Group):
    """Bad options and arguments (click's usage errors) also end as one ``error:`` line, exit 2."""

    def main(self, *args, **kwargs):
        kwargs.pop("standalone_mode", None)
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)


class IntList(click.ParamType):
    """Comma-separated integers, each in ``[low, high]``."""

    name = "integers"

    def __init__(self, low: int, high: int | None = None, example: str = "8,6,4"):
        self.low, self.high, self.example = low, high, example

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            items = [int(v) for v in str(value).split(",") if v.strip()]
        except ValueError:
            items = []
        if not items:
            self.fail(f"expected comma-separated integers like {self.example}, got {value!r}",
                      param, ctx)
        bad = [i for i in items if i < self.low or (self.high is not None and i > self.high)]
        if bad:
            upto = f" to {self.high}" if self.high is not None else " or more"
            self.fail(f"{bad[0]} is out of range: each must be {self.low}{upto}", param, ctx)
        return items


def _backends(ctx, param, value):
    from runtimes.backends import parse_backends
    try:
        return parse_backends(value)
    except UserError as exc:
        raise click.BadParameter(str(exc)) from None


def user_errors(fn):
    """Report UserError (and Ctrl-C or SIGTERM) as one line and a non-zero exit, never as a
    traceback; a full or read-only disk met outside our own writers is one line too."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except OSError as exc:
            if exc.errno not in WRITE_ERRNOS:
                raise
            click.echo(f"error: cannot write {exc.filename or 'the output'}: {exc.strerror}; "
                       "choose a writable location with free space", err=True)
            sys.exit(2)
        finally:
            signal.signal(signal.SIGTERM, previous)
    return wrapper


def emit_json(obj) -> None:
    """The documented machine-readable result: one JSON object on the last stdout line."""
    click.echo(json.dumps(obj, sort_keys=True, default=float))


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlf-deploy")
def main():
    """Train MLF spiking DS-ResNets, lower them to single-threshold neurons, and run and verify
    them on an integer reference, Lava and ONNX Runtime.

    \b
    Example:
      mlf-deploy demo --out demo-output
    """


# ---- train ------------------------------------------------------------------------------------

def _widths(ctx, param, value):
    if value is None:
        return None
    try:
        widths = tuple(int(w) for w in value.split(","))
    except ValueError:
        widths = ()
    if len(widths) != 3 or min(widths) < 1:
        raise click.BadParameter(f"expected three positive integers like 16,32,64, got {value!r}")
    return widths


@main.command(context_settings={"show_default": True})
@click.option("--dataset", default="digits", help="digits, digits-events, cifar10, dvs-gesture, cifar10-dvs, nmnist")
@click.option("--preset", default=None, help="model preset [default: the data set's]")
@click.option("--depth", type=int, help="6n+2: 8, 14, 20, ... [default: the preset's]")
@click.option("--levels", type=click.IntRange(1), help="MLF levels K [default: 3]")
@click.option("--timesteps", type=click.IntRange(1), help="T [default: the preset's / data set's]")
@click.option("--variant", type=click.Choice(["ds", "plain"]), help="[default: ds]")
@click.option("--widths", callback=_widths, help="three stage widths, e.g. 16,32,64")
@click.option("--epochs", type=int, help="[default: 15 for digits, the paper's otherwise]")
@click.option("--batch-size", type=int, help="per process: under torchrun the global batch is "
              "this times the number of ranks [default: 32 for digits, the paper's otherwise]")
@click.option("--lr", type=float, default=0.1)
@click.option("--momentum", type=float, default=0.9)
@click.option("--weight-decay", type=float, help="[default: 1e-4; 1e-3 for cifar10-dvs]")
@click.option("--lr-step", type=int, help="StepLR period in epochs [default: 10 digits, 40 paper]")
@click.option("--lr-gamma", type=float, default=0.1)
@click.option("--seed", type=int, default=0)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu")
@click.option("--data-dir", type=click.Path(file_okay=False), help="files of cifar10 / DVS sets")
@click.option("--out", "out_dir", type=click.Path(), default="runs/train", help="output directory")
@click.option("--max-samples", type=click.IntRange(1), help="use the first N train/test samples")
@click.option("--checkpoint-every", type=click.IntRange(1), default=1, help="epochs between checkpoints")
@click.option("--resume", is_flag=True, help="continue OUT/checkpoint.pt")
@click.option("--force", is_flag=True, help="start over in an OUT that holds a run")
@click.option("--compile", is_flag=True, help="torch.compile the model")
@click.option("--workers", type=click.IntRange(0), help="data loading processes for the DVS sets "
              "[default: one per core, at most 4; 0 for in-memory sets]")
@click.option("--threads", type=click.IntRange(1), help="torch threads per process [default: "
              "OMP_NUM_THREADS, else free cores (cores minus load average) per rank, at least 1]")
@click.option("--rank-hashes", is_flag=True, hidden=True)
@click.option("--no-progress", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True, help="last stdout line: the result as JSON")
@user_errors
def train(no_progress, as_json, **options):
    """Train an MLF spiking DS-ResNet; writes OUT/checkpoint.pt and OUT/metrics.jsonl.

    Runs under torchrun for data-parallel training (rank 0 writes).

    \b
    Example:
      mlf-deploy train --dataset digits --out runs/digits --json
      torchrun --nproc_per_node 2 cli.py train --epochs 5 --out runs/ddp
    """
    from mlf_deploy.training import TrainConfig
    from mlf_deploy.training import train as run_training

    result = run_training(TrainConfig(**options), progress=not no_progress,
                          log=lambda msg: click.echo(msg, err=as_json))
    if as_json and result["rank"] == 0:
        emit_json(result)

@main.command(context_settings={"show_default": True})
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--weight-bits", type=click.IntRange(2, 16), required=True,
              help="Signed weight mantissa bits to fine-tune for (Loihi takes up to 8).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Output directory for checkpoint.pt and metrics.jsonl.")
@click.option("--epochs", type=click.IntRange(1), default=5)
@click.option("--lr", type=float, default=0.01)
@click.option("--batch-size", type=click.IntRange(1), help="[default: the checkpoint's]")
@click.option("--seed", type=int, default=0)
@click.option("--max-samples", type=click.IntRange(1), help="use the first N train samples")
@click.option("--data-dir", type=click.Path(file_okay=False), help="files of non-embedded sets")
@click.option("--force", is_flag=True, help="replace an existing OUT/checkpoint.pt")
@click.option("--no-progress", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True, help="last stdout line: the result as JSON")
@user_errors
def finetune(checkpoint, no_progress, as_json, **options):
    """Quantization-aware fine-tuning: train CHECKPOINT on the integer grid of its N-bit deployment
    (BN folded, weights, biases and thresholds as their mantissas, straight-through gradients) and
    write an ordinary checkpoint that export, verify, energy and evaluate take at N bits.

    \b
    Example:
      mlf-deploy finetune runs/digits/checkpoint.pt --weight-bits 4 --out runs/digits-4bit
      mlf-deploy verify runs/digits-4bit/checkpoint.pt --backends torch-int,ir-int --samples 360
    """
    from mlf_deploy.qat.finetune import FinetuneConfig
    from mlf_deploy.qat.finetune import finetune as run_finetune

    result = run_finetune(FinetuneConfig(checkpoint=checkpoint, **options), progress=not no_progress,
                          log=lambda msg: click.echo(msg, err=as_json))
    click.echo(f"wrote {result['checkpoint']}: {result['weight_bits']}-bit integer test accuracy "
               f"{result['post_training_accuracy']:.4f} -> {result['test_accuracy']:.4f} "
               f"(float model {result['float_accuracy']:.4f})")
    if as_json:
        emit_json(result)


# ---- export / verify --------------------------------------------------------------------------

CKPT = click.argument("checkpoint", type=click.Path(dir_okay=False))
DATA_DIR = click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                        help="Where the checkpoint's dataset files live (for non-embedded sets).")
WEIGHT_BITS = click.option("--weight-bits", type=click.IntRange(2, 16), default=None,
                           help="Signed weight mantissa bits of the integer graph (2..16) "
                                "[default: the width the checkpoint was fine-tuned for, else 8].")
JSON = click.option("--json", "as_json", is_flag=True,
                    help="Print one JSON object as the last line of stdout.")
SPIKES = click.option("--spikes", type=click.Choice(["binary", "graded"]), default="binary",
                      show_default=True,
                      help="Lowering: binary (one single-threshold population per level, any "
                           "chip) or graded (one neuron per position sending its level count, "
                           "Loihi 2 graded spikes).")


@main.command()
@CKPT
@click.option("--to", "target", type=click.Choice(["ir", "lava", "onnx", "nir"]), default="ir",
              show_default=True, help="What to write.")
@click.option("-o", "--out", "out", required=True, type=click.Path(),
              help="Output file (ir, onnx) or directory (lava).")
@WEIGHT_BITS
@click.option("--float", "as_float", is_flag=True, help="Export the float graph, not the integer one.")
@click.option("--mode", type=click.Choice(["sequence", "step"]), default=None,
              help="ONNX only: whole-sequence model [default] or one-timestep streaming model; "
                   "refused for ir and lava.")
@click.option("--nir-target", type=click.Choice(["snntorch", "norse"]), default="snntorch",
              show_default=True, help="NIR only: the importer whose discretisation the file targets.")
@click.option("--nir-dequantised", is_flag=True,
              help="NIR only: write the int graph dequantised (a labelled approximation of it) "
                   "instead of the float graph.")
@click.option("--force", is_flag=True, help="Overwrite an existing output.")
@SPIKES
@DATA_DIR
@JSON
@user_errors
def export(checkpoint, target, out, weight_bits, as_float, mode, nir_target, nir_dequantised, force,
           spikes, data_dir, as_json):
    """Lower a checkpoint and write it as a deployment graph, a Lava network or an ONNX model.

    \b
    Example:
      mlf-deploy export run/checkpoint.pt --to onnx --mode step -o model.onnx
      mlf-deploy export run/checkpoint.pt --to nir --nir-target norse -o model.nir
    """
    from runtimes.export import export_checkpoint
    info = export_checkpoint(checkpoint, target, out, weight_bits, as_float, mode, force, data_dir,
                             nir_target, nir_dequantised, spikes)
    click.echo(f"wrote {info['path']} ({info['format']}, {info['numeric']} {spikes} graph, "
               f"{info['populations']} populations, checksum {info['checksum'][:12]})")
    if as_json:
        emit_json(info)


@main.command()
@CKPT
@click.option("--backends", default="torch,ir-float,ir-int", show_default=True, callback=_backends,
              help="Comma-separated: torch, ir-float, ir-int, lava-float, lava-fixed, onnx-float, "
                   "onnx-int, torch-int, and each of the graph backends with -graded (the table "
                   "in runtimes/backends.py).")
@click.option("--samples", type=click.IntRange(1), default=16, show_default=True,
              help="Samples of the split to run.")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@WEIGHT_BITS
@click.option("--graph", "graph_file", type=click.Path(dir_okay=False), default=None,
              help="Verify this exported graph file (from `export --to ir`) instead of re-lowering.")
@click.option("--onnx", "onnx_file", type=click.Path(dir_okay=False), default=None,
              help="Run the onnx backend from this exported .onnx file (adds onnx-int/onnx-float).")
@click.option("--lava-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds each Lava run (8 samples) may take [default: derived from the network].")
@click.option("--spikes", type=click.Choice(["binary", "graded"]), default="binary",
              show_default=True, help="graded: run each named backend but torch as its graded "
                                      "counterpart, compared with the binary graph's reference.")
@DATA_DIR
@JSON
@user_errors
def verify(checkpoint, backends, samples, split, weight_bits, graph_file, onnx_file, lava_timeout,
           spikes, data_dir, as_json):
    """Run every backend on the same samples and compare them, per layer, level and timestep.

    Exit status 0 when every backend is within its tolerance, 1 otherwise.

    \b
    Example:
      mlf-deploy verify run/checkpoint.pt --backends torch,ir-float,ir-int,onnx-int --samples 32
      mlf-deploy verify run/checkpoint.pt --backends ir-int,onnx-int,lava-fixed --spikes graded
    """
    from runtimes.backends import names_for_spikes
    from runtimes.pipeline import load_pipeline
    from runtimes.verify import format_verify_table
    from runtimes.verify import verify as run_verify
    names = names_for_spikes(backends, spikes)
    pipe = load_pipeline(checkpoint, weight_bits, data_dir)
    pipe.lava_timeout = lava_timeout
    if graph_file:
        pipe.use_graph_file(graph_file)
    if onnx_file:
        backend = pipe.use_onnx_file(onnx_file)
        names += [backend] if backend not in names else []
    summary = run_verify(pipe, names, samples, split,
                         progress=lambda n: click.echo(f"running {n} ...", err=True))
    click.echo(format_verify_table(summary))
    if as_json:
        emit_json(summary)
    sys.exit(0 if summary["passed"] else 1)

@main.command("import")
@click.argument("nir_file", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out", required=True, type=click.Path(), help="Graph file to write.")
@click.option("--nir-source", type=click.Choice(["snntorch", "norse"]), default=None,
              help="Whose LIF discretisation the file uses [default: the file's own label, else snntorch].")
@click.option("--timesteps", type=click.IntRange(1), default=None,
              help="Timesteps per sample, for files that do not record them.")
@click.option("--force", is_flag=True, help="Overwrite an existing output.")
@JSON
@user_errors
def import_nir(nir_file, out, nir_source, timesteps, force, as_json):
    """Turn a NIR file into an mlf-deploy float graph file (verify it with `verify --graph`).

    \b
    Example:
      mlf-deploy import model.nir -o model.mlfg
    """
    from runtimes.export import import_nir_file
    info = import_nir_file(nir_file, out, nir_source, timesteps, force)
    click.echo(f"wrote {info['path']} (float graph, {info['populations']} populations, "
               f"checksum {info['checksum'][:12]})")
    if as_json:
        emit_json(info)


@main.command("run")
@click.argument("artifact", type=click.Path())
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False),
              help=".npy of raw samples as the data set stores them (digits: (B, 1, 8, 8) pixel "
                   "values 0..16; event sets: (B, T, C, H, W) counts).")
@JSON
@user_errors
def run_cmd(artifact, input_path, as_json):
    """Run an exported artifact on your own raw inputs and print the class of each sample.

    ARTIFACT is a graph file (`export --to ir`, runs on the integer or float reference), an ONNX
    model (`--to onnx`, runs on ONNX Runtime) or a Lava folder (`--to lava`, runs on Lava). Each
    carries its input pipeline, so no checkpoint is needed.

    \b
    Example:
      mlf-deploy run model.onnx --input digits.npy
    """
    from runtimes.run_artifact import run_artifact
    out = run_artifact(artifact, input_path, log=lambda line: click.echo(line, err=True))
    for i, (p, name) in enumerate(zip(out["predictions"], out["classes"])):
        click.echo(f"sample {i}: class {name} (index {p})")
    click.echo(f"{out['samples']} samples on {out['backend']} ({out['kind']} artifact)")
    if as_json:
        emit_json(out)


# ---- energy / evaluate ------------------------------------------------------------------------

ENERGY_MODEL = click.option("--model", "energy_model", default="45nm-fp32", show_default=True,
                            help="Energy model of the table and plots: 45nm-fp32, 45nm-int8, "
                                 "loihi1-proxy (the JSON has all).")
SPLIT = click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
ALL_SAMPLES = click.option("--samples", type=click.IntRange(1), default=None,
                           help="First N samples of the split [default: all].")


@main.command()
@CKPT
@SPLIT
@ALL_SAMPLES
@WEIGHT_BITS
@ENERGY_MODEL
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG of per-layer SynOps and energy, SNN against ANN.")
@SPIKES
@DATA_DIR
@JSON
@user_errors
def energy(checkpoint, split, samples, weight_bits, energy_model, plot_path, spikes, data_dir,
           as_json):
    """SynOps, firing, dormant units and energy per inference of the integer graph, per layer,
    against the same network run as an ANN.

    SynOps count every spike of every level by its exact fan-out (graded, borders included); a
    static image's stem is dense MACs at each timestep, event frames are ACs per event. Then the
    hardware resources of the binary and the graded lowering side by side.

    \b
    Example:
      mlf-deploy energy run/checkpoint.pt --samples 200 --plot energy.png --json
    """
    from runtimes.analysis import check_energy_args, energy_report
    from runtimes.pipeline import load_pipeline
    check_energy_args(energy_model, plot_path)
    pipe = load_pipeline(checkpoint, weight_bits, data_dir)
    click.echo(f"running the integer reference on the {split} split ...", err=True)
    text, result = energy_report(pipe, split, samples, energy_model, plot_path, spikes)
    click.echo(text + (f"\nwrote {plot_path}" if plot_path else ""))
    if as_json:
        emit_json(result)


@main.command()
@CKPT
@click.option("--weight-bits", "bits", default="8,6,4", show_default=True, type=IntList(2, 16),
              help="Comma-separated weight widths to sweep (each 2..16); the first is mapped.")
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
@SPIKES
@DATA_DIR
@JSON
@user_errors
def evaluate(checkpoint, bits, steps, split, samples, energy_model, weight_sharing, plot_dir,
             finetuned, spikes, data_dir, as_json):
    """Hardware-oriented evaluation: accuracy, SynOps, energy and latency over weight widths and
    timesteps on the integer reference, and the mapping onto a Loihi-2-like target with its
    design-rule check (failures are reported, not fatal).

    \b
    Example:
      mlf-deploy evaluate run/checkpoint.pt --weight-bits 8,6,4 --timesteps 1,2,4 --plot eval/
      mlf-deploy evaluate run/checkpoint.pt --weight-bits 8,4,2 --finetuned run4/checkpoint.pt \\
          --finetuned run2/checkpoint.pt --plot eval/
    """
    from runtimes.analysis import check_evaluate_args, evaluate_report
    from runtimes.pipeline import load_pipeline
    check_evaluate_args(energy_model, plot_dir)
    pipe = load_pipeline(checkpoint, bits[0], data_dir)
    tuned = [load_pipeline(path, None, data_dir) for path in finetuned]
    click.echo(f"sweeping weight widths {bits} on the {split} split ...", err=True)
    text, result = evaluate_report(pipe, bits, steps, split, samples, energy_model, weight_sharing,
                                   plot_dir, tuned, spikes)
    click.echo(text + (f"\nwrote {', '.join(result['plots'].values())}" if plot_dir else ""))
    if as_json:
        emit_json(result)


# ---- demo -------------------------------------------------------------------------------------

@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="demo-output",
              show_default=True, help="Output folder (built under a temporary name, then renamed).")
@click.option("--quick", is_flag=True, help="A short run (fewer epochs and samples) for CI: < 3 min.")
@click.option("--force", is_flag=True, help="Replace an existing, non-empty output folder.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@JSON
@user_errors
def demo(out_dir, quick, force, no_progress, as_json):
    """The whole toolchain on the embedded digits data: train, lower, quantize, export to IR, Lava
    and ONNX, verify every backend against torch, estimate energy, evaluate for hardware, and
    write report.md with the results.

    \b
    Example:
      mlf-deploy demo --out demo-output --quick
    """
    from runtimes.demo import run_demo
    summary = run_demo(out_dir, quick, force, log=lambda m: click.echo(m, err=True),
                       progress=not no_progress)
    click.echo(f"{'PASSED' if summary['passed'] else 'FAILED'}: report at "
               f"{summary['out']}/report.md (test accuracy {summary['test_accuracy']:.4f}, "
               f"{summary['seconds']['total']:.0f} s)")
    if as_json:
        emit_json(summary)
    sys.exit(0 if summary["passed"] else 1)


if __name__ == "__main__":
    main()
