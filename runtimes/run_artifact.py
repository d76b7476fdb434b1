"""``mlf-deploy run ARTIFACT --input x.npy``: raw samples in, classes out, for every artifact kind.

Each artifact carries its input pipeline (normalisation, encoding, timesteps, input step and bit
width, class names), so the checkpoint is not needed: a graph file runs on the reference
simulator, a Lava folder on Lava, an ONNX model on ONNX Runtime through the same numpy-only steps
as the standalone script :mod:`mlf_deploy.runtimes.onnx_standalone`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlf_deploy.device import resolve_device
from mlf_deploy.errors import UserError
from mlf_deploy.ir import load_graph
from mlf_deploy.ir.semantics import raw_model_input
from mlf_deploy.limits import check_graph_run
from mlf_deploy.npy_files import load_npy

GRAPH_MAGIC = b"MLFGRAPH"


def load_raw(path) -> np.ndarray:
    try:
        raw = load_npy(path, f"--input {path}")  # header checked before anything is allocated
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read --input {path} as a .npy array: {exc}") from exc
    if not np.issubdtype(raw.dtype, np.number):
        raise UserError(f"--input {path} holds {raw.dtype} values; give numbers")
    if raw.ndim == 0 or len(raw) == 0:
        raise UserError(f"--input {path} holds no samples (shape {raw.shape}); give a batch of "
                        "samples along the first axis")
    return raw


def artifact_kind(path: Path) -> str:
    if path.is_dir():
        if not (path / "graph.mlfg").is_file():
            raise UserError(f"{path} is a folder without graph.mlfg; give a Lava export folder, "
                            "a .mlfg graph file or an .onnx model")
        return "lava"
    if not path.is_file():
        raise UserError(f"{path} does not exist; give a .mlfg graph, an .onnx model or a Lava "
                        "export folder")
    with open(path, "rb") as f:
        return "ir" if f.read(len(GRAPH_MAGIC)) == GRAPH_MAGIC else "onnx"


def _class_names(pipeline: dict | None, classes: int) -> list[str]:
    names = (pipeline or {}).get("class_names")
    return list(names) if names and len(names) == classes else [str(i) for i in range(classes)]


def run_artifact(artifact, input_path, log=None, batch_size: int = 32, device="cpu") -> dict:
    """Predictions of ``artifact`` on the raw samples in ``input_path``, ``batch_size`` samples at
    a time (a whole test set of a real-size network would not fit in memory at once). ``device``
    runs a graph file's reference simulator; ONNX Runtime and Lava run on the CPU only."""
    path = Path(artifact)
    kind = artifact_kind(path)
    device = resolve_device(device)
    if device.type != "cpu" and kind != "ir":
        raise UserError(f"--device {device.type} runs graph files (the reference simulator); "
                        f"{path} is a {kind} artifact, which runs on the CPU: leave out --device")
    raw = load_raw(input_path)
    if kind == "onnx":
        import json

        from mlf_deploy.runtimes import onnx_standalone
        from mlf_deploy.runtimes.onnx import load_onnx
        load_onnx(path)  # the same checks verify --onnx runs: operators, finite weights, metadata
        try:
            logits, meta = onnx_standalone.logits(str(path), raw, batch_size)
        except (KeyError, ValueError, json.JSONDecodeError) as exc:
            raise UserError(f"{path}: {exc}; give an .onnx model exported by this version of "
                            "`mlf-deploy export --to onnx`") from exc
        except Exception as exc:  # onnxruntime's own errors have no common base class
            raise UserError(f"{path} is not a readable ONNX model: {str(exc).splitlines()[0]}") \
                from exc
        pipeline, backend = json.loads(meta["input_pipeline"]), f"onnx-{meta['numeric']}"
    else:
        graph = load_graph(path / "graph.mlfg" if kind == "lava" else path)
        pipeline = graph.metadata.get("input_pipeline")
        if kind == "lava":
            from mlf_deploy.runtimes.lava import run_lava as run
            options = dict(record_states=False, log=log)
        else:
            from mlf_deploy.runtimes.reference import run_reference as run
            options = dict(record_states=False, device=device)
        check_graph_run(graph, min(batch_size, len(raw)), f"running {path}")
        parts = []
        for i in range(0, len(raw), batch_size):  # keep each batch's logits, drop its records
            result = run(graph, raw_model_input(graph, raw[i:i + batch_size]), **options)
            parts.append(np.asarray(result.logits))
        logits, backend = np.concatenate(parts), result.backend
    names = _class_names(pipeline, logits.shape[1])
    pred = [int(p) for p in np.asarray(logits).argmax(1)]
    return {"artifact": str(path), "kind": kind, "backend": backend, "samples": len(pred),
            "predictions": pred, "classes": [names[p] for p in pred],
            "logits": np.asarray(logits, dtype=np.float64).tolist(),
            "raw_input": None if pipeline is None else pipeline.get("raw_layout")}
