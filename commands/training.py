"""``train`` and ``finetune``: the commands that produce checkpoints."""

from __future__ import annotations

import click

from mlf_deploy.ir.semantics import WEIGHT_BITS_RANGE

from .app import DEVICE, emit_json, flag_log, main, user_errors


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


# The model and data set of a run that does not start from a checkpoint.
_MODEL_OPTIONS = [
    click.option("--dataset", help="digits, digits-events, cifar10, dvs-gesture, cifar10-dvs, "
                 "nmnist [default: digits, or the --init checkpoint's]"),
    click.option("--preset", default=None, help="model preset [default: the data set's]"),
    click.option("--depth", type=int, help="6n+2: 8, 14, 20, ... [default: the preset's]"),
    click.option("--levels", type=click.IntRange(1), help="MLF levels K [default: 3]"),
    click.option("--timesteps", type=click.IntRange(1),
                 help="T [default: the preset's / data set's]"),
    click.option("--variant", type=click.Choice(["ds", "plain"]), help="[default: ds]"),
    click.option("--widths", callback=_widths, help="three stage widths, e.g. 16,32,64"),
]
# How a run trains: the same for train and for its alias finetune.
_RUN_OPTIONS = [
    click.option("--epochs", type=click.IntRange(1), help="[default: 15 for digits, the paper's "
                 "otherwise; 5 with --weight-bits]"),
    click.option("--batch-size", type=click.IntRange(1), help="per process: under torchrun the "
                 "global batch is this times the number of ranks [default: 32 for digits, the "
                 "paper's otherwise; the --init checkpoint's with --weight-bits]"),
    click.option("--lr", type=float, help="[default: 0.1; 0.01 with --weight-bits]"),
    click.option("--momentum", type=float, default=0.9),
    click.option("--weight-decay", type=float, help="[default: 1e-4; 1e-3 for cifar10-dvs; 0 "
                 "with --weight-bits]"),
    click.option("--lr-schedule", type=click.Choice(["step", "cosine"]), help="step: x LR-GAMMA "
                 "every LR-STEP epochs; cosine: per batch, to 0 at the end [default: step; cosine "
                 "with --weight-bits]"),
    click.option("--lr-step", type=click.IntRange(1),
                 help="StepLR period in epochs [default: 10 digits, 40 paper]"),
    click.option("--lr-gamma", type=float, default=0.1),
    click.option("--seed", type=int, default=0),
    DEVICE,
    click.option("--data-dir", type=click.Path(file_okay=False),
                 help="files of cifar10 / DVS sets"),
    click.option("--max-samples", type=click.IntRange(1),
                 help="use the first N train/test samples"),
    click.option("--checkpoint-every", type=click.IntRange(1), default=1,
                 help="epochs between checkpoints"),
    click.option("--resume", is_flag=True, help="continue OUT/checkpoint.pt"),
    click.option("--force", is_flag=True, help="start over in an OUT that holds a run"),
    click.option("--compile", is_flag=True, help="torch.compile the model: experimental, its "
                 "gradient differed from eager in our check (docs/gpu.md)"),
    click.option("--neuron-kernel", type=click.Choice(["auto", "torch", "triton"]),
                 default="auto", help="MLF layers: fused Triton kernels or the torch path; auto: "
                 "triton on CUDA when it is installed"),
    click.option("--workers", type=click.IntRange(0), help="data loading processes for the DVS "
                 "sets [default: one per core, at most 4; 0 for in-memory sets]"),
    click.option("--threads", type=click.IntRange(1), help="torch threads per process [default: "
                 "OMP_NUM_THREADS, else 1; fixed, never the load: the count changes the weights, "
                 "docs/determinism.md]"),
    click.option("--rank-hashes", is_flag=True, hidden=True),
    click.option("--no-progress", is_flag=True, help="no progress bar"),
    click.option("--json", "as_json", is_flag=True, help="last stdout line: the result as JSON"),
]


def _with(options):
    def apply(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn
    return apply


def _weight_bits(required: bool):
    return click.option("--weight-bits", type=click.IntRange(*WEIGHT_BITS_RANGE),
                        required=required, help="train through the int graph of N-bit signed "
                        "weight mantissas (quantization-aware; Loihi takes up to 8)"
                        + ("" if required else "; needs --init"))


@main.command(context_settings={"show_default": True})
@_with(_MODEL_OPTIONS)
@click.option("--init", type=click.Path(dir_okay=False), help="start from this checkpoint: its "
              "model, data set and weights (a new optimizer)")
@_weight_bits(required=False)
@click.option("--out", "out_dir", type=click.Path(), default="runs/train", help="output directory")
@_with(_RUN_OPTIONS)
@user_errors
def train(**options):
    """Train an MLF spiking DS-ResNet; writes OUT/checkpoint.pt and OUT/metrics.jsonl.

    With --init CKPT --weight-bits N: quantization-aware training, the loss computed through the
    N-bit int graph's forward (BN folded and frozen, weights, biases and thresholds as their
    mantissas, integer membranes, straight-through gradients); later commands quantize the
    written checkpoint to N bits by default. Runs under torchrun for data-parallel training
    (rank 0 writes).

    \b
    Example:
      mlf-deploy train --dataset digits --out runs/digits --json
      mlf-deploy train --init runs/digits/checkpoint.pt --weight-bits 4 --out runs/digits-4bit
      torchrun --nproc_per_node 2 cli.py train --epochs 5 --out runs/ddp
    """
    _run_training(**options)


@main.command(context_settings={"show_default": True})
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@_weight_bits(required=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Output directory for checkpoint.pt and metrics.jsonl.")
@_with(_RUN_OPTIONS)
@user_errors
def finetune(checkpoint, **options):
    """Quantization-aware training of CHECKPOINT for N-bit weights: another name for
    `train --init CHECKPOINT --weight-bits N` (same options, files and numbers).

    \b
    Example:
      mlf-deploy finetune runs/digits/checkpoint.pt --weight-bits 4 --out runs/digits-4bit
      mlf-deploy verify runs/digits-4bit/checkpoint.pt --backends torch-int,ir-int --samples 360
    """
    _run_training(init=checkpoint, **options)


def _run_training(no_progress, as_json, **options):
    from mlf_deploy.training import TrainConfig
    from mlf_deploy.training import train as run_training

    result = run_training(TrainConfig(**options), progress=not no_progress,
                          log=flag_log(err=as_json))
    if result["rank"] != 0:
        return
    if "weight_bits" in result:
        click.echo(f"wrote {result['checkpoint']}: {result['weight_bits']}-bit integer test "
                   f"accuracy {result['post_training_accuracy']:.4f} -> "
                   f"{result['test_accuracy']:.4f} (float model {result['float_accuracy']:.4f})",
                   err=as_json)
    if as_json:
        emit_json(result)
