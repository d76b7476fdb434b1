"""A checkpoint lowered and written as a graph file, a Lava folder, an ONNX model or a NIR file;
a NIR file read back as a float graph file."""

from __future__ import annotations

from pathlib import Path

from mlf_deploy.errors import UserError, option
from mlf_deploy.fileio import check_writable
from mlf_deploy.ir import graph_checksum, save_graph
from mlf_deploy.outputs import check_output_dir, output_lock
from mlf_deploy.ownership import check_output_file as check_output_file_owned
from mlf_deploy.workflows.options import ExportOptions, ImportOptions
from mlf_deploy.workflows.pipeline import load_pipeline


def check_output_file(out: Path, target: str, force: bool) -> None:
    """A file export replaces only a file this tool wrote (by content hash, never marker text)."""
    if out.is_dir() and not out.is_symlink():
        raise UserError(f"{out} is a folder; give a file path for {option('target', target)}")
    check_output_file_owned(out, force)


def export_checkpoint(checkpoint, out, options: ExportOptions | None = None) -> dict:
    """Lower ``checkpoint`` and write it to ``out`` as ``options`` say; returns what was written
    (path, format, numeric, checksum, the graph's summary, the quantization report)."""
    options = options or ExportOptions()
    out, target = Path(out), options.target
    if target == "lava":
        check_output_dir(out, options.force, protect=[checkpoint], what="Lava export folder")
    else:
        check_output_file(out, target, options.force)
    pipe = load_pipeline(checkpoint, options.weight_bits, options.data_dir)
    graph = _export_graph(pipe, options)
    check_writable(out.parent / f".{out.name}.probe")  # creates the parent folder, nothing else
    with output_lock(out):
        _write(graph, out, options, protect=[checkpoint])
    # write_nir records in the graph's metadata what the file's numbers are
    numeric = graph.metadata.get("nir_numeric", "float") if target == "nir" else graph.numeric
    info = {"path": str(out), "format": target, "checksum": graph_checksum(graph),
            **graph.summary(), "numeric": numeric}
    if target == "onnx":
        info.update(mode=options.onnx_mode, logits_only=options.logits_only)
    if target == "nir":
        info["nir_target"] = options.nir_target
    if numeric == "int" or (target == "nir" and options.nir_dequantised):
        info["quantization"] = pipe.quant_report.to_dict()
    return info


def _export_graph(pipe, options: ExportOptions):
    """The graph the export writes."""
    if options.target != "nir":
        return pipe.graph("float" if options.as_float else "int", options.spikes)
    # NIR has no fixed-point fields: the float graph, or the int one dequantised.
    if not options.nir_dequantised:
        return pipe.graph_float
    from mlf_deploy.quantization.dequantize import dequantize_graph
    return dequantize_graph(pipe.graph_int)


def _write(graph, out: Path, options: ExportOptions, protect) -> None:
    if options.target == "ir":
        save_graph(graph, out)
    elif options.target == "lava":
        from mlf_deploy.exporters.lava.export import export_lava
        export_lava(graph, out, force=options.force, protect=protect)
    elif options.target == "onnx":
        from mlf_deploy.exporters.onnx.export import export_onnx, save_onnx
        save_onnx(export_onnx(graph, options.onnx_mode, record=not options.logits_only), out)
    else:
        from mlf_deploy.exporters.nir.export import write_nir
        write_nir(graph, out, options.nir_target)


def import_nir_file(nir_file, out, options: ImportOptions | None = None) -> dict:
    """A NIR file as an mlf-deploy float graph file at ``out``."""
    from mlf_deploy.exporters.nir.importer import read_nir
    options = options or ImportOptions()
    out = Path(out)
    check_output_file(out, "ir", options.force)
    graph = read_nir(nir_file, options.nir_source, options.timesteps)
    check_writable(out.parent / f".{out.name}.probe")
    with output_lock(out):
        checksum = save_graph(graph, out)
    return {"path": str(out), "format": "ir", "source": str(nir_file), "checksum": checksum,
            **graph.summary()}
