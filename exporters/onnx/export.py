"""Export a deployment graph (float or int) to ONNX: a streaming step model or a whole-run sequence
model, with every MLF level a single-threshold population (binary graphs) or the K levels of a
graded population summed into its payload, the level count (graded graphs). Both compute in float64
(int graphs: exact integers; projections in float32 where that is exact too);
``precision="float32"`` is a faster, inexact variant for float graphs.

Same-timestep semantics let the sequence model compute each layer's current for all ``T * B``
frames at once (one im2col ``MatMul``) and unroll only the cheap membrane recurrence over ``T``, as
the reference simulator does. The exactness argument for int graphs is in
:mod:`mlf_deploy.exporters.onnx.ops`.

Names (``<pop>`` is a population name such as ``blocks.0.mlf1/L2``):
    step inputs: ``input`` ``(B, C, H, W)``, ``v/<pop>`` ``(B, C, H, W)`` (membrane after the last
    step's reset; zeros at the start). step outputs: ``s/<pop>`` uint8, ``v_next/<pop>``,
    ``readout_increment`` ``(B, classes)``. sequence input ``input`` ``(T, B, C, H, W)``; outputs
    ``logits`` ``(B, classes)``, and with ``record=True`` ``s/<pop>``, ``v/<pop>``
    ``(T, B, C, H, W)``.
    A graded graph records its levels under the same names. Membranes are float64 (float graphs)
    or int64 in 1/64 current units (int graphs); int models also output ``overflow``
    ``(layers,)`` int64, the 24-bit wrap and saturation events per layer.
"""

from __future__ import annotations

import json
from importlib import metadata as _md

import numpy as np
import onnx
from onnx import helper

from mlf_deploy.errors import UserError
from mlf_deploy.exporters.onnx.network import NetworkBuilder
from mlf_deploy.exporters.onnx.ops import check_exact
from mlf_deploy.fileio import atomic_path
from mlf_deploy.ir import Graph
from mlf_deploy.ir import semantics as sem
from mlf_deploy.ir.serialize import graph_checksum

FORMAT = "mlf-deploy-onnx/1"
OPSET = 21  # ONNX Runtime 1.17+ runs it; Split's num_outputs needs 18+
PRODUCER = "mlf-deploy"


def _version() -> str:
    try:
        return _md.version("mlf-deploy")
    except _md.PackageNotFoundError:
        return "0+unknown"


def model_metadata(graph: Graph, mode: str, record: bool = True) -> dict:
    pops, ro = graph.level_populations, graph.readout
    return {
        "format": FORMAT, "mode": mode, "numeric": graph.numeric, "spikes": graph.spikes,
        "recorded": "true" if record or mode == "step" else "false",
        "graph_checksum": graph_checksum(graph),
        "levels": str(graph.levels), "timesteps": str(graph.timesteps),
        "input_encoding": graph.input.encoding, "input_shape": json.dumps(list(graph.input.shape)),
        "populations": json.dumps([p.name for p in pops]),
        "thresholds": json.dumps({p.name: float(p.v_threshold) for p in pops}),
        "retention": json.dumps({p.name: float(p.v_retention) for p in pops}),
        "scales": json.dumps({"input": graph.input.scale, "readout": ro.scale,
                              **{layer.name: layer.scale for layer in graph.layers}}),
        "state_unit": "1/64 current unit (int64)" if graph.numeric == "int" else "current unit",
        "readout_scale": repr(float(ro.scale)), "readout_norm": str(sem.readout_norm(graph)),
        "readout_bias": json.dumps([float(v) for v in np.asarray(ro.bias, np.float64)]),
        "overflow_layers": json.dumps([layer.name for layer in graph.layers]),
        "input_pipeline": json.dumps(sem.describe_input(graph)),
        "input_value_bits": str(graph.input.value_bits),
        "class_names": json.dumps((graph.metadata.get("input_pipeline") or {}).get("class_names")
                                  or [str(i) for i in range(num_classes(graph))]),
    }


def num_classes(graph: Graph) -> int:
    return int(np.asarray(graph.readout.weight).shape[0])


def export_onnx(graph: Graph, mode: str = "sequence", record: bool = True,
                precision: str = "float64") -> onnx.ModelProto:
    """The ONNX model of ``graph``.

    Args:
        mode: "step" (one timestep, states in and out) or "sequence" (all ``T`` steps).
        record: sequence model only: also output every population's spikes and states (and, for
            int graphs, the overflow counts). Without them the model computes the logits only,
            about twice as fast at real sizes; ``verify`` refuses such a model (nothing to compare).
        precision: "float64" (exact: verified against the reference) or, for float graphs only,
            "float32" (ONNX ``Conv``; faster, but spikes near a threshold may differ).
    """
    if mode not in ("step", "sequence"):
        raise UserError(f"ONNX export mode must be 'step' or 'sequence', got {mode!r}")
    if precision not in ("float64", "float32"):
        raise UserError(f"ONNX precision must be 'float64' or 'float32', got {precision!r}")
    if graph.numeric == "int":
        if precision != "float64":
            raise UserError("int graphs export in float64 only: float32 cannot hold 24-bit "
                            "membranes times the decay exactly")
        check_exact(graph)
    b, inputs, outputs = NetworkBuilder(graph, mode, record, precision).build()
    b.prune([o.name for o in outputs])
    g = helper.make_graph(b.nodes, f"mlf-deploy-{graph.numeric}-{mode}", inputs, outputs, b.inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name=PRODUCER, producer_version=_version(),
                              doc_string=__doc__.split("\n\n")[0])
    helper.set_model_props(model, {**model_metadata(graph, mode, record), "precision": precision})
    return model


def save_onnx(model: onnx.ModelProto, path) -> str:
    """Write ``model`` atomically: a complete file under ``path`` or nothing."""
    with atomic_path(path) as tmp:
        onnx.save_model(model, str(tmp))
    return str(path)
