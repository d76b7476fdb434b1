"""``mlf-deploy export``: a checkpoint lowered and written as an IR file, a Lava network or ONNX."""

from __future__ import annotations

from pathlib import Path

from mlf_deploy.errors import UserError
from mlf_deploy.ir import graph_checksum, save_graph
from runtimes.pipeline import load_pipeline


def export_checkpoint(checkpoint, target: str, out, weight_bits: int = 8, as_float: bool = False,
                      mode: str | None = None, force: bool = False, data_dir=None) -> dict:
    out = Path(out)
    if mode is not None and target != "onnx":
        raise UserError(f"--mode {mode} applies to --to onnx only; a {target} export runs the whole "
                        "sequence (drop --mode)")
    mode = mode or "sequence"
    if out.exists() and not force:
        raise UserError(f"{out} already exists; pass --force to overwrite it or choose another path")
    pipe = load_pipeline(checkpoint, weight_bits, data_dir)
    graph = pipe.graph_float if as_float else pipe.graph_int
    if target == "ir":
        save_graph(graph, out)
    elif target == "lava":
        from exporters.lava import export_lava
        export_lava(graph, out)
    elif target == "onnx":
        from exporters.onnx import export_onnx, save_onnx
        save_onnx(export_onnx(graph, mode), out)
    else:
        raise UserError(f"unknown export target {target!r}; choose ir, lava or onnx")
    info = {"path": str(out), "format": target, "numeric": graph.numeric,
            "checksum": graph_checksum(graph), **graph.summary()}
    if target == "onnx":
        info["mode"] = mode
    if not as_float:
        info["quantization"] = pipe.quant_report.to_dict()
    return info
