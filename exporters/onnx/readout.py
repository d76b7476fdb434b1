"""The readout in ONNX: per-step increments (step model) or the logits of a whole run (sequence
model), in the reference's order of operations."""

from __future__ import annotations

import numpy as np
from onnx import helper

from mlf_deploy.exporters.onnx.ops import Builder
from mlf_deploy.ir import Graph
from mlf_deploy.ir import semantics as sem


def readout(b: Builder, graph: Graph, values: dict, mode: str):
    """Emit the readout of ``values`` (the spike sources' ONNX values); returns its output's
    value info: ``readout_increment`` (step) or ``logits`` (sequence)."""
    ro, steps = graph.readout, graph.timesteps
    src = b.add([values[s] for s in ro.sources], f"{ro.name}/sum_sources")
    src = b.cast(src, b.np, f"{ro.name}/to_model_type")
    counts = b.op("ReduceSum", [src, b.ints([1, 2] if b.nhwc else [2, 3])], f"{ro.name}/sum_hw",
                  keepdims=0)
    w_t = b.const(np.asarray(ro.weight, np.float64).T)
    classes = len(ro.weight)
    if mode == "step":
        b.emit("MatMul", [counts, w_t], ["readout_increment"], f"{ro.name}/increment")
        return helper.make_tensor_value_info("readout_increment", b.ftype, ["B", classes])
    counts = b.op("Reshape", [counts, b.ints([steps, -1, counts_c(graph)])], f"{ro.name}/unfold")
    counts = b.op("ReduceSum", [counts, b.ints([0])], f"{ro.name}/sum_time", keepdims=0)
    acc = b.op("MatMul", [counts, w_t], f"{ro.name}/accumulate")
    # the reference's order: acc * scale / (T H W) + bias, so int logits agree bit for bit
    scaled = b.op("Div", [b.op("Mul", [acc, b.const(ro.scale)], f"{ro.name}/scale"),
                          b.const(float(sem.readout_norm(graph)))], f"{ro.name}/mean")
    b.emit("Add", [scaled, b.const(np.asarray(ro.bias, np.float64))], ["logits"], f"{ro.name}/bias")
    return helper.make_tensor_value_info("logits", b.ftype, ["B", classes])


def counts_c(graph: Graph) -> int:
    """Channels of the readout's sources: the width of the per-step spike counts."""
    return int(graph.nodes[graph.readout.sources[0]].shape[0])
