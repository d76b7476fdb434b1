"""``mlf-deploy export``: a checkpoint lowered and written as an IR file, a Lava network or ONNX."""

from __future__ import annotations

from pathlib import Path

from mlf_deploy.errors import UserError
from mlf_deploy.ir import graph_checksum, save_graph
from runtimes.pipeline import load_pipeline


def export_checkpoint(checkpoint, target: str, out, weight_bits: int = 8, as_float: bool = False,
                      mode: str = "sequence", force: bool = False, data_dir=None,
                      nir_target: str = "snntorch", nir_dequantised: bool = False) -> dict:
    out = Path(out)
    if out.exists() and not force:
        raise UserError(f"{out} already exists; pass --force to overwrite it or choose another path")
    pipe = load_pipeline(checkpoint, weight_bits, data_dir)
    graph = pipe.graph_float if as_float else pipe.graph_int
    if target == "nir":  # NIR has no fixed-point fields: the float graph, or the int one dequantised
        from mlf_deploy.quantization.dequantize import dequantize_graph
        as_float = not nir_dequantised
        graph = dequantize_graph(pipe.graph_int) if nir_dequantised else pipe.graph_float
    if target == "ir":
        save_graph(graph, out)
    elif target == "lava":
        from exporters.lava import export_lava
        export_lava(graph, out)
    elif target == "onnx":
        from exporters.onnx import export_onnx, save_onnx
        save_onnx(export_onnx(graph, mode), out)
    elif target == "nir":
        from exporters.nir import write_nir
        write_nir(graph, out, nir_target)
    else:
        raise UserError(f"unknown export target {target!r}; choose ir, lava, onnx or nir")
    info = {"path": str(out), "format": target, "numeric": graph.numeric,
            "checksum": graph_checksum(graph), **graph.summary()}
    if target == "onnx":
        info["mode"] = mode
    if target == "nir":
        info.update(nir_target=nir_target, numeric=graph.metadata.get("nir_numeric", "float"))
    if not as_float:
        info["quantization"] = pipe.quant_report.to_dict()
    return info


def import_nir_file(nir_file, out, source=None, timesteps=None, force: bool = False) -> dict:
    """``mlf-deploy import``: a NIR file as an mlf-deploy float graph file."""
    from exporters.nir_import import read_nir
    out = Path(out)
    if out.exists() and not force:
        raise UserError(f"{out} already exists; pass --force to overwrite it or choose another path")
    graph = read_nir(nir_file, source, timesteps)
    checksum = save_graph(graph, out)
    return {"path": str(out), "format": "ir", "source": str(nir_file), "checksum": checksum,
            **graph.summary()}
