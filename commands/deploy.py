"""``export``, ``verify``, ``import`` and ``run``: the commands that turn a checkpoint into
artifacts, check them against torch and run them on a user's inputs."""

from __future__ import annotations

import sys

import click

from mlf_deploy.errors import UserError

from .app import (
    CKPT,
    DATA_DIR,
    JSON,
    SPIKES,
    WEIGHT_BITS,
    emit_json,
    main,
    user_errors,
)


def _backends(ctx, param, value):
    from mlf_deploy.runtimes.backends import parse_backends
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
@click.option("--float", "as_float", is_flag=True, help="Export the float graph, not the integer one.")
@click.option("--mode", type=click.Choice(["sequence", "step"]), default=None,
              help="ONNX only: whole-sequence model [default] or one-timestep streaming model; "
                   "refused for ir and lava.")
@click.option("--logits-only", is_flag=True,
              help="ONNX sequence models only: output the logits alone (about twice as fast at "
                   "real sizes, for `mlf-deploy run` on a test set); verify needs the default.")
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
def export(checkpoint, target, out, weight_bits, as_float, mode, logits_only, nir_target,
           nir_dequantised, force, spikes, data_dir, as_json):
    """Lower a checkpoint and write it as a deployment graph, a Lava network or an ONNX model.

    \b
    Example:
      mlf-deploy export run/checkpoint.pt --to onnx --mode step -o model.onnx
      mlf-deploy export run/checkpoint.pt --to onnx --logits-only -o deployed.onnx
      mlf-deploy export run/checkpoint.pt --to nir --nir-target norse -o model.nir
    """
    from mlf_deploy.runtimes.export import export_checkpoint
    info = export_checkpoint(checkpoint, target, out, weight_bits, as_float, mode, force, data_dir,
                             nir_target, nir_dequantised, spikes, logits_only)
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
@click.option("--chunk", type=click.IntRange(min=1), default=None,
              help="Samples run through every backend at a time [default: as many as keep one "
                   "backend's record under 128 MB; with Lava, whole Lava runs of 8].")
@click.option("--tolerance", type=click.FloatRange(0, 100), default=1.0, show_default=True,
              help="Percentage points of accuracy ir-int may lose against ir-float; it fails "
                   "only when the data show a larger drop (docs/verdict.md).")
@DATA_DIR
@JSON
@user_errors
def verify(checkpoint, backends, samples, split, weight_bits, graph_file, onnx_file, lava_timeout,
           spikes, chunk, tolerance, data_dir, as_json):
    """Run every backend on the same samples and compare them, per layer, level and timestep.

    Exit status 0 when every backend is within its tolerance, 1 otherwise. Samples go through
    the backends chunk by chunk, so memory does not grow with --samples.

    \b
    Example:
      mlf-deploy verify run/checkpoint.pt --backends torch,ir-float,ir-int,onnx-int --samples 32
      mlf-deploy verify run/checkpoint.pt --backends ir-int,onnx-int,lava-fixed --spikes graded
    """
    from mlf_deploy.runtimes.backends import names_for_spikes
    from mlf_deploy.runtimes.pipeline import load_pipeline
    from mlf_deploy.runtimes.verify import format_verify_table
    from mlf_deploy.runtimes.verify import verify as run_verify
    names = names_for_spikes(backends, spikes)
    pipe = load_pipeline(checkpoint, weight_bits, data_dir)
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
    summary = run_verify(pipe, names, samples, split,
                         progress=lambda n: click.echo(f"running {n} ...", err=True), chunk=chunk,
                         tolerance=tolerance / 100)
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
    from mlf_deploy.runtimes.export import import_nir_file
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
    from mlf_deploy.runtimes.run_artifact import run_artifact
    out = run_artifact(artifact, input_path, log=lambda line: click.echo(line, err=True))
    for i, (p, name) in enumerate(zip(out["predictions"], out["classes"])):
        click.echo(f"sample {i}: class {name} (index {p})")
    click.echo(f"{out['samples']} samples on {out['backend']} ({out['kind']} artifact)")
    if as_json:
        emit_json(out)
