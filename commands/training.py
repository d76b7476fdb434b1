"""``train`` and ``finetune``: the commands that produce checkpoints."""

from __future__ import annotations

import click

from mlf_deploy.ir.semantics import WEIGHT_BITS_RANGE

from .app import DEVICE, emit_json, main, set_threads, user_errors


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
@click.option("--compile", is_flag=True, help="torch.compile the model: experimental, its gradient "
              "differed from eager in our check (docs/gpu.md)")
@click.option("--neuron-kernel", type=click.Choice(["auto", "torch", "triton"]), default="auto",
              help="MLF layers: fused Triton kernels or the torch path; auto: triton on CUDA "
              "when it is installed")
@click.option("--workers", type=click.IntRange(0), help="data loading processes for the DVS sets "
              "[default: one per core, at most 4; 0 for in-memory sets]")
@click.option("--threads", type=click.IntRange(1), help="torch threads per process [default: "
              "OMP_NUM_THREADS, else 1; fixed, never the load: the count changes the weights, "
              "docs/determinism.md]")
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
@click.option("--weight-bits", type=click.IntRange(*WEIGHT_BITS_RANGE), required=True,
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
@DEVICE
@click.option("--threads", type=click.IntRange(1), help="torch threads [default: "
              "OMP_NUM_THREADS, else 1; fixed, never the load: docs/determinism.md]")
@click.option("--no-progress", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True, help="last stdout line: the result as JSON")
@user_errors
def finetune(checkpoint, no_progress, threads, as_json, **options):
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
    from mlf_deploy.threads import TRAIN_THREADS
    set_threads(threads, TRAIN_THREADS)

    result = run_finetune(FinetuneConfig(checkpoint=checkpoint, **options), progress=not no_progress,
                          log=lambda msg: click.echo(msg, err=as_json))
    click.echo(f"wrote {result['checkpoint']}: {result['weight_bits']}-bit integer test accuracy "
               f"{result['post_training_accuracy']:.4f} -> {result['test_accuracy']:.4f} "
               f"(float model {result['float_accuracy']:.4f})")
    if as_json:
        emit_json(result)
