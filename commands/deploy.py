"""``export``, ``verify``, ``import`` and ``run``: the commands that turn a checkpoint into
artifacts, check them against torch and run them on a user's inputs."""

from __future__ import annotations

import os
import sys
import time

import click

from mlf_deploy.errors import UserError

from .app import (
    CKPT,
    DATA_DIR,
    DEVICE,
    JSON,
    SPIKES,
    THREADS,
    WEIGHT_BITS,
    emit_json,
    flag_log,
    main,
    set_threads,
    user_errors,
)


def _backends(ctx, param, value):
    from mlf_deploy.verification.backends import parse_backends
    try:
        return parse_backends(value)
    except UserError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command()
@CKPT
@click.option("--to", "target", type=click.Choice(["ir", "lava", "onnx", "nir"]), default="ir",
              show_default=True, help="What to write.")
@click.option("-o", "--out", "out", required=True, type=click.Path(),
              help="Output file (ir, onnx) or directory (lava).")
@WEIGHT_BITS
@click.option("--float", "as_float", is_flag=True,
              help="Export the float graph, not the integer one.")
@click.option("--mode", type=click.Choice(["sequence", "step"]), default=None,
              help="ONNX only: whole-sequence model [default] or one-timestep streaming model; "
                   "refused for ir and lava.")
@click.option("--logits-only", is_flag=True,
              help="ONNX sequence models only: output the logits alone (about twice as fast at "
                   "real sizes, for `mlf-deploy run` on a test set); verify needs the default.")
@click.option("--nir-target", type=click.Choice(["snntorch", "norse"]), default="snntorch",
              show_default=True, help="NIR only: the importer whose discretisation the file "
                                      "targets.")
@click.option("--nir-dequantised", is_flag=True,
              help="NIR only: write the int graph dequantised (a labelled approximation of it) "
                   "instead of the float graph.")
@click.option("--force", is_flag=True, help="Overwrite an existing output.")
@SPIKES
@DATA_DIR
@THREADS
@JSON
@user_errors
def export(checkpoint, target, out, weight_bits, as_float, mode, logits_only, nir_target,
           nir_dequantised, force, spikes, data_dir, threads, as_json):
    """Lower a checkpoint and write it as a deployment graph, a Lava network or an ONNX model.

    \b
    Example:
      mlf-deploy export run/checkpoint.pt --to onnx --mode step -o model.onnx
      mlf-deploy export run/checkpoint.pt --to onnx --logits-only -o deployed.onnx
      mlf-deploy export run/checkpoint.pt --to nir --nir-target norse -o model.nir
    """
    from mlf_deploy.workflows.export_checkpoint import export_checkpoint
    from mlf_deploy.workflows.options import ExportOptions
    if target != "lava" and (out.endswith(("/", os.sep))
                             or os.path.isdir(out) and not os.path.islink(out)):
        suffix = {"ir": "mlfg", "onnx": "onnx", "nir": "nir"}[target]
        raise UserError(f"-o {out} names a folder; --to {target} writes one file: give its name, "
                        f"e.g. -o {os.path.join(out, 'model.' + suffix)}")
    options = ExportOptions(target=target, weight_bits=weight_bits, as_float=as_float, mode=mode,
                            logits_only=logits_only, nir_target=nir_target,
                            nir_dequantised=nir_dequantised, spikes=spikes, force=force,
                            data_dir=data_dir)
    set_threads(threads)
    info = export_checkpoint(checkpoint, out, options)
    click.echo(f"wrote {info['path']} ({info['format']}, {info['numeric']} {spikes} graph, "
               f"{info['populations']} populations, checksum {info['checksum'][:12]})")
    if as_json:
        emit_json(info)


@main.command()
@CKPT
@click.option("--backends", default="torch,ir-float,ir-int", show_default=True, callback=_backends,
              help="Comma-separated: torch, ir-float, ir-int, lava-float, lava-fixed, onnx-float, "
                   "onnx-int, torch-int, and each of the graph backends with -graded (the table "
                   "in verification/backends.py).")
@click.option("--samples", type=click.IntRange(1), default=16, show_default=True,
              help="Samples of the split to run.")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@WEIGHT_BITS
@click.option("--graph", "graph_file", type=click.Path(dir_okay=False), default=None,
              help="Verify this exported graph file (from `export --to ir`) instead of "
                   "re-lowering.")
@click.option("--onnx", "onnx_file", type=click.Path(dir_okay=False), default=None,
              help="Run the onnx backend from this exported .onnx file (adds onnx-int/onnx-float).")
@click.option("--lava-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds each Lava run (8 samples) may take [default: derived from the "
                   "network].")
@click.option("--spikes", type=click.Choice(["binary", "graded"]), default="binary",
              show_default=True, help="graded: run each named backend but torch as its graded "
                                      "counterpart, compared with the binary graph's reference.")
@click.option("--chunk", type=click.IntRange(min=1), default=None,
              help="Samples run through every backend at a time [default: as many as keep one "
                   "backend's record under 128 MB; with Lava, whole Lava runs of 8].")
@click.option("--tolerance", type=click.FloatRange(0, 100), default=1.0, show_default=True,
              help="Percentage points of accuracy ir-int may lose against ir-float; it fails "
                   "only when the data show a larger drop (docs/verdict.md).")
@DATA_DIR
@DEVICE
@THREADS
@JSON
@user_errors
def verify(checkpoint, backends, samples, split, weight_bits, graph_file, onnx_file, lava_timeout,
           spikes, chunk, tolerance, data_dir, device, threads, as_json):
    """Run every backend on the same samples and compare them, per layer, level and timestep.

    Exit status 0 when every backend is within its tolerance, 1 otherwise. Samples go through
    the backends chunk by chunk, so memory does not grow with --samples.

    \b
    Example:
      mlf-deploy verify run/checkpoint.pt --backends torch,ir-float,ir-int,onnx-int --samples 32
      mlf-deploy verify run/checkpoint.pt --backends ir-int,onnx-int,lava-fixed --spikes graded
    """
    from mlf_deploy.verification.backends import names_for_spikes
    from mlf_deploy.workflows.options import VerifyOptions
    from mlf_deploy.workflows.pipeline import load_pipeline
    from mlf_deploy.workflows.verify import format_verify_table
    from mlf_deploy.workflows.verify import verify as run_verify
    options = VerifyOptions(samples=samples, split=split, chunk=chunk, tolerance=tolerance / 100)
    names = names_for_spikes(backends, spikes)
    using = set_threads(threads)
    pipe = load_pipeline(checkpoint, weight_bits, data_dir, device)
    pipe.lava_timeout = lava_timeout
    if graph_file:
        pipe.use_graph_file(graph_file)
        if pipe.graph_file["spikes"] != spikes:
            raise UserError(f"graph file {graph_file} is in the {pipe.graph_file['spikes']} "
                            f"lowering; pass --spikes {pipe.graph_file['spikes']} so the backends "
                            "that run it are the ones verified")
    if onnx_file:
        backend = pipe.use_onnx_file(onnx_file)
        names += [backend] if backend not in names else []
    unsaid = [using]  # said with the first backend, after every check that may refuse the run

    last = [0.0]

    def progress(name):  # every backend on the first chunk, then a line at most every 10 s
        now = time.monotonic()
        if unsaid or "(samples" not in name or "(samples 1-" in name or now - last[0] >= 10:
            last[0] = now
            click.echo(f"running {name} ..." + (f" ({unsaid.pop()})" if unsaid else ""), err=True)
    summary = run_verify(pipe, names, options, progress=progress)
    click.echo(format_verify_table(summary, "--backends"))
    if as_json:
        emit_json(summary)
    sys.exit(0 if summary["passed"] else 1)

@main.command("import")
@click.argument("nir_file", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out", required=True, type=click.Path(), help="Graph file to write.")
@click.option("--nir-source", type=click.Choice(["snntorch", "norse"]), default=None,
              help="Whose LIF discretisation the file uses [default: the file's own label, else "
                   "snntorch].")
@click.option("--timesteps", type=click.IntRange(1), default=None,
              help="Timesteps per sample, for files that do not record them.")
@click.option("--force", is_flag=True, help="Overwrite an existing output.")
@THREADS
@JSON
@user_errors
def import_nir(nir_file, out, nir_source, timesteps, force, threads, as_json):
    """Turn a NIR file into an mlf-deploy float graph file (verify it with `verify --graph`).

    \b
    Example:
      mlf-deploy import model.nir -o model.mlfg
    """
    from mlf_deploy.workflows.export_checkpoint import import_nir_file
    from mlf_deploy.workflows.options import ImportOptions
    options = ImportOptions(nir_source=nir_source, timesteps=timesteps, force=force)
    set_threads(threads)
    info = import_nir_file(nir_file, out, options)
    click.echo(f"wrote {info['path']} (float graph, {info['populations']} populations, "
               f"checksum {info['checksum'][:12]})")
    if as_json:
        emit_json(info)


@main.command("run")
@click.argument("artifact", type=click.Path())
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False),
              help=".npy of raw samples as the data set stores them (digits: (B, 1, 8, 8) pixel "
                   "values 0..16; cifar10: (B, 3, 32, 32) 0..255; event sets: (B, T, C, H, W) "
                   "counts), or .npz with x (samples) and optionally y (labels).")
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False), default=None,
              help="Class index of each sample (.npy, .npz or text): prints the accuracy with its "
                   "95 % confidence interval.")
@click.option("--batch-size", type=click.IntRange(1), default=None,
              help="Samples run at a time [default: 32; fewer for a recording ONNX export].")
@click.option("--trust-input", is_flag=True,
              help="Run samples outside the recorded raw units (shape, NaN and inf still refused).")
@DEVICE
@THREADS
@JSON
@user_errors
def run_cmd(artifact, input_path, labels_path, batch_size, trust_input, device, threads, as_json):
    """Run an exported artifact on your own raw inputs and print the class of each sample.

    ARTIFACT is a graph file (`export --to ir`, runs on the integer or float reference), an ONNX
    model (`--to onnx`, runs on ONNX Runtime) or a Lava folder (`--to lava`, runs on Lava). Each
    carries its input pipeline, so no checkpoint is needed; the samples are checked against it.

    \b
    Example:
      mlf-deploy run model.onnx --input digits.npy
      mlf-deploy run deployed.onnx --input test.npz --labels test_labels.npy
    """
    from mlf_deploy.workflows.options import RunOptions
    from mlf_deploy.workflows.run_artifact import run_artifact
    options = RunOptions(batch_size=batch_size, labels_path=labels_path, trust_input=trust_input,
                         device=device)
    set_threads(threads)
    out = run_artifact(artifact, input_path, options, log=flag_log())
    for i, (p, name) in enumerate(zip(out["predictions"], out["classes"])):
        click.echo(f"sample {i}: class {name} (index {p})")
    click.echo(f"{out['samples']} samples on {out['backend']} ({out['kind']} artifact)")
    if "accuracy" in out:
        low, high = out["accuracy_ci95"]
        click.echo(f"accuracy {out['accuracy']:.4f} ({out['correct']} of {out['samples']}), "
                   f"95 % CI {low:.4f}..{high:.4f} (Clopper-Pearson)")
    if as_json:
        emit_json(out)
