"""Run a graph's ONNX export in ONNX Runtime: the sequence model in one call per batch, or the step
model driven by a Python loop that carries the membrane states, as a streaming host would.

Backends ``onnx-float`` / ``onnx-int``. Feeds are checked against the session's declared inputs
(name, dtype, shape) so that a wrong tensor fails with a message naming it, not deep in a kernel.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import onnxruntime as ort

from mlf_deploy import limits
from mlf_deploy.errors import UserError, option
from mlf_deploy.exporters.onnx.export import FORMAT, export_onnx
from mlf_deploy.exporters.onnx.validate import check_onnx_model
from mlf_deploy.ir import Graph
from mlf_deploy.ir import semantics as sem
from mlf_deploy.ir.semantics import prepare_input
from mlf_deploy.ir.serialize import graph_checksum
from mlf_deploy.results import RunResult

_DTYPES = {"tensor(double)": np.float64, "tensor(float)": np.float32, "tensor(int64)": np.int64,
           "tensor(uint8)": np.uint8}


def default_providers() -> list[str]:
    have = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in have]


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Options of every ONNX Runtime session the tool opens: ``threads`` (None: the count the
    command set for torch, ``--threads`` or its fixed default, :mod:`mlf_deploy.threads`) for
    both intra- and inter-op work. ONNX Runtime's own default is a thread per core, which
    oversubscribes a loaded machine as torch's did."""
    import torch
    count = int(threads or torch.get_num_threads())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = count
    opts.inter_op_num_threads = count
    return opts


def load_onnx(path) -> onnx.ModelProto:
    """Read an ``.onnx`` file; anything else is a UserError naming the file."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such ONNX file")
    size, budget = os.path.getsize(path), limits.available_memory() // 4
    if size > budget:
        raise UserError(f"{path} is {size} bytes, over a quarter of the available memory")
    try:  # our exports keep every weight inside the file; external data is never followed
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise UserError(f"{path}: not a readable ONNX model ({exc})") from exc
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise UserError(f"{path} refers to external data files; mlf-deploy exports hold their "
                        "weights inside the .onnx file: export it again")
    check_onnx_model(model, str(path))
    return model


def check_model_matches(model: onnx.ModelProto, graph: Graph, where: str = "model") -> dict:
    """The model's metadata, after checking it was exported by mlf-deploy from ``graph``."""
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("format") != FORMAT:
        raise UserError(f"{where} is not an mlf-deploy ONNX export (producer "
                        f"{model.producer_name or 'unknown'!r}); export it with "
                        f"`mlf-deploy export {option('target', 'onnx')}`")
    if meta.get("spikes", "binary") != graph.spikes:
        raise UserError(f"{where} is a {meta.get('spikes', 'binary')}-spike model but the graph is "
                        f"{graph.spikes}; export it with {option('spikes', graph.spikes)}")
    if meta.get("numeric") != graph.numeric:
        raise UserError(f"{where} is a {meta.get('numeric')} model but the graph is "
                        f"{graph.numeric}")
    if meta.get("recorded") == "false":
        raise UserError(f"{where} was exported with {option('logits_only')}: it has no spikes or "
                        f"membranes to compare; export it without {option('logits_only')} to "
                        "verify it")
    checksum = graph_checksum(graph)
    if meta.get("graph_checksum") != checksum:
        raise UserError(f"{where} was exported from another graph (checksum "
                        f"{meta.get('graph_checksum', '?')[:12]}..., this graph "
                        f"{checksum[:12]}...); "
                        f"re-export it from this checkpoint")
    return meta


class OnnxRunner:
    """One ONNX Runtime session for ``graph``; ``model``: None (export now), a ModelProto or a path.

    Args:
        mode: "sequence" or "step" (ignored for a file or ModelProto, whose metadata says).
        precision: "float64" (exact) or "float32" (fast, float graphs only); as ``mode``.
        providers: ONNX Runtime execution providers; default CUDA first when available, then CPU.
    """

    def __init__(self, graph: Graph, model=None, mode: str = "sequence", providers=None,
                 precision: str = "float64"):
        where = "model"
        if model is None:
            model = export_onnx(graph, mode, precision=precision)
        elif isinstance(model, (str, os.PathLike)):
            where, model = str(model), load_onnx(model)
        self.graph, self.meta = graph, check_model_matches(model, graph, where)
        self.mode, self.integer = self.meta["mode"], graph.numeric == "int"
        try:
            self.session = ort.InferenceSession(model.SerializeToString(), session_options(),
                                                providers=providers or default_providers())
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own error types, one per cause
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"{where}: ONNX Runtime cannot load it ({first[:200]})") from exc
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.pops = json.loads(self.meta["populations"])

    @property
    def backend(self) -> str:
        return (("onnx-int" if self.integer else "onnx-float")
                + ("-graded" if self.graph.graded else ""))

    def validate(self, feeds: dict) -> int:
        """Check ``feeds`` against the declared inputs; returns the batch size."""
        missing = sorted(set(self.inputs) - set(feeds))
        if missing:
            raise UserError(f"ONNX feed is missing input {missing[0]!r}"
                            + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
        batch = None
        for name, value in feeds.items():
            spec = self.inputs.get(name)
            if spec is None:
                raise UserError(f"ONNX model has no input {name!r}")
            want = _DTYPES[spec.type]
            if not isinstance(value, np.ndarray) or value.dtype != want:
                got = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
                raise UserError(f"ONNX input {name!r}: dtype {got}, expected {np.dtype(want)}")
            dims = ["B" if isinstance(d, str) or d is None else d for d in spec.shape]
            ok = value.ndim == len(dims) and all(d in ("B", n) for d, n in zip(dims, value.shape))
            b = value.shape[dims.index("B")] if ok and "B" in dims else batch
            if not ok or (batch is not None and b != batch):
                raise UserError(f"ONNX input {name!r}: shape {tuple(value.shape)}, expected "
                                f"({', '.join(map(str, dims))}) with B = {batch or 'the batch'}")
            batch = b
        return batch

    def __call__(self, feeds: dict) -> dict:
        self.validate(feeds)
        return dict(zip(self.outputs, self.session.run(None, feeds)))

    def initial_state(self, batch: int) -> dict:
        shape = lambda n: [batch if not isinstance(d, int) else d for d in self.inputs[n].shape]
        return {n: np.zeros(shape(n), _DTYPES[self.inputs[n].type])
                for n in self.inputs if n.startswith("v/")}

    def run(self, x, batch_size: int = 64) -> RunResult:
        """``x``: raw model input ``(B, C, H, W)`` or ``(T, B, C, H, W)``, encoded on the host."""
        frames = prepare_input(self.graph, x)
        parts = [self.run_frames(frames[:, i:i + batch_size])
                 for i in range(0, frames.shape[1], batch_size)]
        return parts[0] if len(parts) == 1 else RunResult.concat(parts)

    def run_frames(self, frames: np.ndarray) -> RunResult:
        """``frames``: ``(T, B, C, H, W)`` float64 input values (``prepare_input``'s output)."""
        frames = np.ascontiguousarray(frames, dtype=_DTYPES[self.inputs["input"].type])
        if self.mode == "sequence":
            out = self({"input": frames})
            acc = None
            overflow = out.get("overflow")
        else:
            out, acc, overflow = self._stream(frames)
        layers = json.loads(self.meta["overflow_layers"])
        logits = out["logits"] if acc is None else sem.logits_from_accumulator(self.graph, acc)
        counts = {} if overflow is None else {n: int(c) for n, c in zip(layers, overflow) if c}
        return RunResult(self.backend, self.graph.numeric,
                         {p: out[f"s/{p}"] for p in self.pops if f"s/{p}" in out},
                         {p: out[f"v/{p}"] for p in self.pops if f"v/{p}" in out}, logits, counts)

    def _stream(self, frames):
        """One session call per timestep, carrying ``v_next`` into the next call's ``v``."""
        state = self.initial_state(frames.shape[1])
        rec: dict = {}
        acc, overflow = 0.0, 0
        for t in range(frames.shape[0]):
            out = self({"input": frames[t], **state})
            acc = acc + out["readout_increment"].astype(np.float64)  # exact sums in int models
            overflow = overflow + out.get("overflow", 0)
            state = {f"v/{p}": out[f"v_next/{p}"] for p in self.pops}
            for p in self.pops:
                rec.setdefault(f"s/{p}", []).append(out[f"s/{p}"])
                rec.setdefault(f"v/{p}", []).append(out[f"v_next/{p}"])
        out = {k: np.stack(v) for k, v in rec.items()}
        return out, acc, overflow if self.integer else None


def run_onnx(graph: Graph, x, mode: str = "sequence", batch_size: int = 64,
             providers=None) -> RunResult:
    """Export ``graph`` (``mode`` "sequence" or "step") and run it on ``x`` in ONNX Runtime."""
    return OnnxRunner(graph, None, mode, providers).run(x, batch_size)


def run_onnx_file(path, graph: Graph, x, batch_size: int = 64, providers=None) -> RunResult:
    """Run an exported ``.onnx`` file on ``x``; it must come from ``graph`` (metadata checksum)."""
    return OnnxRunner(graph, path, providers=providers).run(x, batch_size)
