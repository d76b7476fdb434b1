"""Raw samples in, classes out, for every artifact kind (``mlf-deploy run``).

Each artifact carries its input pipeline (normalisation, encoding, timesteps, input step and bit
width, class names), so the checkpoint is not needed: a graph file runs on the reference
simulator, a Lava folder on Lava, an ONNX model on ONNX Runtime through the same numpy-only steps
as the standalone script :mod:`mlf_deploy.runtimes.onnx_standalone`.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from mlf_deploy.device import resolve_device
from mlf_deploy.errors import UserError, option
from mlf_deploy.ir import load_graph
from mlf_deploy.ir.semantics import describe_input, raw_model_input
from mlf_deploy.limits import check_graph_run
from mlf_deploy.verification.agreement import clopper_pearson
from mlf_deploy.workflows.options import RunOptions
from mlf_deploy.workflows.run_inputs import check_labels, check_samples, load_labels, load_samples

GRAPH_MAGIC = b"MLFGRAPH"


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


class ArtifactLogits(NamedTuple):
    """What a run of an artifact gives back: its logits, the backend that ran it and the input
    pipeline it records (class names, raw layout)."""

    logits: np.ndarray  # (B, classes)
    backend: str
    pipeline: dict | None


def run_artifact(artifact, input_path, options: RunOptions | None = None, log=None) -> dict:
    """Predictions of ``artifact`` on the raw samples in ``input_path`` (``.npy``, or ``.npz``
    with ``x`` and optionally ``y``), ``options.batch_size`` samples at a time (default 32; fewer
    for a recording ONNX export, whose records would not fit), after checking the samples against
    the artifact's recorded input (:func:`mlf_deploy.workflows.run_inputs.check_samples`;
    ``options.trust_input`` skips its units check). With labels (``options.labels_path`` or the
    ``.npz``'s ``y``), also the accuracy and its 95 % Clopper-Pearson interval.
    ``options.device`` runs a graph file's reference simulator; ONNX Runtime and Lava run on the
    CPU only. ``log`` takes a Lava run's progress lines."""
    options = options or RunOptions()
    path = Path(artifact)
    kind = artifact_kind(path)
    device = resolve_device(options.device)
    if device.type != "cpu" and kind != "ir":
        raise UserError(f"{option('device', device.type)} runs graph files (the reference "
                        f"simulator); {path} is a {kind} artifact, which runs on the CPU: leave "
                        f"out {option('device')}")
    raw, labels = load_samples(input_path)
    if options.labels_path is not None:
        labels = load_labels(options.labels_path)
    if kind == "onnx":
        run = _run_onnx(path, raw, input_path, options)
    else:
        run = _run_graph(path, kind, raw, input_path, options, log=log)
    return _predictions(path, kind, run, labels)


def _run_onnx(path: Path, raw, input_path, options: RunOptions) -> ArtifactLogits:
    import json

    from mlf_deploy.runtimes import onnx_standalone
    from mlf_deploy.runtimes.onnx import load_onnx
    load_onnx(path)  # the same checks a verify of an ONNX file runs: operators, weights, metadata
    try:
        # the command's torch thread count: no oversubscription by default
        session = onnx_standalone.open_model(str(path), torch.get_num_threads())
        _, meta = session
        pipeline = json.loads(meta["input_pipeline"])
        backend = f"onnx-{meta['numeric']}"
    except (KeyError, ValueError) as exc:
        raise UserError(f"{path}: {exc}; give an .onnx model exported by this version of "
                        f"`mlf-deploy export {option('target', 'onnx')}`") from exc
    except Exception as exc:  # onnxruntime's own errors have no common base class
        raise UserError(f"{path} is not a readable ONNX model: {str(exc).splitlines()[0]}") \
            from exc
    check_samples(raw, pipeline, input_path, options.trust_input)
    logits, _ = onnx_standalone.logits(str(path), raw, options.batch_size, session)
    return ArtifactLogits(logits, backend, pipeline)


def _run_graph(path: Path, kind: str, raw, input_path, options: RunOptions,
               log) -> ArtifactLogits:
    """A graph file on the reference simulator, or a Lava folder's graph on Lava, batch by
    batch, keeping each batch's logits and dropping its records."""
    graph = load_graph(path / "graph.mlfg" if kind == "lava" else path)
    pipeline = describe_input(graph)
    check_samples(raw, pipeline, input_path, options.trust_input)
    if kind == "lava":
        from mlf_deploy.runtimes.lava import run_lava as run
        settings = dict(record_states=False, log=log)
    else:
        from mlf_deploy.ir.reference import run_reference as run
        settings = dict(record_states=False, device=resolve_device(options.device))
    parts, size = [], options.batch_size or 32
    check_graph_run(graph, min(size, len(raw)), f"running {path}", option="batch_size")
    for i in range(0, len(raw), size):
        result = run(graph, raw_model_input(graph, raw[i:i + size]), **settings)
        parts.append(np.asarray(result.logits))
    return ArtifactLogits(np.concatenate(parts), result.backend, pipeline)


def _predictions(path: Path, kind: str, run: ArtifactLogits, labels) -> dict:
    """The JSON result: each sample's class, and with labels the accuracy and its interval."""
    logits, pipeline = run.logits, run.pipeline
    names = _class_names(pipeline, logits.shape[1])
    pred = np.asarray(logits).argmax(1)
    out = {"artifact": str(path), "kind": kind, "backend": run.backend, "samples": len(pred),
           "predictions": [int(p) for p in pred], "classes": [names[p] for p in pred],
           "logits": np.asarray(logits, dtype=np.float64).tolist(),
           "raw_input": None if pipeline is None else pipeline.get("raw_layout")}
    if labels is not None:
        labels = check_labels(labels, len(pred), logits.shape[1])
        correct = int((pred == labels).sum())
        low, high = clopper_pearson(correct, len(pred))
        out.update(correct=correct, accuracy=correct / len(pred), accuracy_ci95=[low, high])
    return out
