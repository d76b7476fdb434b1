"""``mlf-deploy export``: a checkpoint lowered and written as an IR file, a Lava network or ONNX."""

from __future__ import annotations

from pathlib import Path

from mlf_deploy.errors import UserError
from mlf_deploy.fileio import check_writable
from mlf_deploy.ir import graph_checksum, save_graph
from mlf_deploy.ir.serialize import MAGIC
from mlf_deploy.outputs import check_output_dir, output_lock
from runtimes.pipeline import check_spikes, load_pipeline

# What an earlier export of each file kind starts with or holds, so --force replaces only those.
_OURS = {"ir": lambda head: head.startswith(MAGIC), "onnx": lambda head: b"mlf-deploy-onnx/" in head}


def check_output_file(out: Path, target: str, force: bool) -> None:
    if out.is_symlink():
        raise UserError(f"{out} is a symbolic link; give the real path of the file to write")
    if not out.exists():
        return
    if out.is_dir():
        raise UserError(f"{out} is a folder; give a file path for --to {target}")
    if not force:
        raise UserError(f"{out} already exists; pass --force to overwrite it or choose another path")
    with open(out, "rb") as f:
        head = f.read(1 << 16) if target == "ir" else f.read()
    if not _OURS[target](head):
        raise UserError(f"{out} is not an earlier mlf-deploy {target} export; --force replaces only "
                        "those: choose another path")


def export_checkpoint(checkpoint, target: str, out, weight_bits: int = 8, as_float: bool = False,
                      mode: str = "sequence", force: bool = False, data_dir=None,
                      spikes: str = "binary") -> dict:
    out = Path(out)
    check_spikes(spikes)
    if target not in ("ir", "lava", "onnx"):
        raise UserError(f"unknown export target {target!r}; choose ir, lava or onnx")
    if target == "lava":
        check_output_dir(out, force, protect=[checkpoint], what="Lava export folder")
    else:
        check_output_file(out, target, force)
    pipe = load_pipeline(checkpoint, weight_bits, data_dir)
    graph = pipe.graph("float" if as_float else "int", spikes)
    check_writable(out.parent / f".{out.name}.probe")  # creates the parent folder, nothing else
    with output_lock(out):
        if target == "ir":
            save_graph(graph, out)
        elif target == "lava":
            from exporters.lava import export_lava
            export_lava(graph, out, force=force, protect=[checkpoint])
        else:
            from exporters.onnx import export_onnx, save_onnx
            save_onnx(export_onnx(graph, mode), out)
    info = {"path": str(out), "format": target, "numeric": graph.numeric,
            "checksum": graph_checksum(graph), **graph.summary()}
    if target == "onnx":
        info["mode"] = mode
    if not as_float:
        info["quantization"] = pipe.quant_report.to_dict()
    return info
