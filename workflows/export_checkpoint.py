"""``mlf-deploy export``: a checkpoint lowered and written as an IR file, a Lava network or ONNX."""

from __future__ import annotations

from pathlib import Path

from mlf_deploy.errors import UserError
from mlf_deploy.fileio import check_writable
from mlf_deploy.ir import graph_checksum, save_graph
from mlf_deploy.outputs import check_output_dir, output_lock
from mlf_deploy.ownership import check_output_file as check_output_file_owned
from mlf_deploy.workflows.pipeline import check_spikes, load_pipeline


def check_output_file(out: Path, target: str, force: bool) -> None:
    """A file export replaces only a file this tool wrote (by content hash, never marker text)."""
    if out.is_dir() and not out.is_symlink():
        raise UserError(f"{out} is a folder; give a file path for --to {target}")
    check_output_file_owned(out, force)


def export_checkpoint(checkpoint, target: str, out, weight_bits: int | None = None,
                      as_float: bool = False, mode: str | None = None, force: bool = False,
                      data_dir=None, nir_target: str = "snntorch",
                      nir_dequantised: bool = False, spikes: str = "binary",
                      logits_only: bool = False) -> dict:
    out = Path(out)
    check_spikes(spikes)
    if logits_only and (target != "onnx" or mode == "step"):
        raise UserError("--logits-only applies to --to onnx sequence models only (a step model "
                        "carries its membranes from call to call); drop --logits-only")
    if mode is not None and target != "onnx":
        raise UserError(f"--mode {mode} applies to --to onnx only; a {target} export runs the whole "
                        "sequence (drop --mode)")
    mode = mode or "sequence"
    if target not in ("ir", "lava", "onnx", "nir"):
        raise UserError(f"unknown export target {target!r}; choose ir, lava, onnx or nir")
    if target == "nir" and spikes == "graded":
        raise UserError("NIR has no graded-spike neuron: export --to nir with --spikes binary")
    if target == "lava":
        check_output_dir(out, force, protect=[checkpoint], what="Lava export folder")
    else:
        check_output_file(out, target, force)
    pipe = load_pipeline(checkpoint, weight_bits, data_dir)
    graph = pipe.graph("float" if as_float else "int", spikes)
    if target == "nir":  # NIR has no fixed-point fields: the float graph, or the int one dequantised
        from mlf_deploy.quantization.dequantize import dequantize_graph
        as_float = not nir_dequantised
        graph = dequantize_graph(pipe.graph_int) if nir_dequantised else pipe.graph_float
    check_writable(out.parent / f".{out.name}.probe")  # creates the parent folder, nothing else
    with output_lock(out):
        if target == "ir":
            save_graph(graph, out)
        elif target == "lava":
            from mlf_deploy.exporters.lava.export import export_lava
            export_lava(graph, out, force=force, protect=[checkpoint])
        elif target == "onnx":
            from mlf_deploy.exporters.onnx.export import export_onnx, save_onnx
            save_onnx(export_onnx(graph, mode, record=not logits_only), out)
        else:
            from mlf_deploy.exporters.nir.export import write_nir
            write_nir(graph, out, nir_target)
    info = {"path": str(out), "format": target, "numeric": graph.numeric,
            "checksum": graph_checksum(graph), **graph.summary()}
    if target == "onnx":
        info.update(mode=mode, logits_only=logits_only)
    if target == "nir":
        info.update(nir_target=nir_target, numeric=graph.metadata.get("nir_numeric", "float"))
    if not as_float:
        info["quantization"] = pipe.quant_report.to_dict()
    return info


def import_nir_file(nir_file, out, source=None, timesteps=None, force: bool = False) -> dict:
    """``mlf-deploy import``: a NIR file as an mlf-deploy float graph file."""
    from mlf_deploy.exporters.nir.importer import read_nir
    out = Path(out)
    check_output_file(out, "ir", force)
    graph = read_nir(nir_file, source, timesteps)
    check_writable(out.parent / f".{out.name}.probe")
    with output_lock(out):
        checksum = save_graph(graph, out)
    return {"path": str(out), "format": "ir", "source": str(nir_file), "checksum": checksum,
            **graph.summary()}
