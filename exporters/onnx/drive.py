"""A layer's membrane input in ONNX: its projections' summed current ``a`` and, in int graphs,
``wrap(64 a) + (bias << e)`` with the wrap events; plus the frame-layout helpers every part of the
model shares."""

from __future__ import annotations

import numpy as np

from mlf_deploy.exporters.onnx import int32 as onnx_int32
from mlf_deploy.exporters.onnx.ops import Builder, shift, wrap24
from mlf_deploy.exporters.onnx.projections import project
from mlf_deploy.ir import Graph
from mlf_deploy.ir import semantics as sem


def layer_current(b: Builder, graph: Graph, layer, values: dict, integer: bool,
                  narrow: bool) -> str:
    """The layer's input current ``a`` (shifted, in int graphs): float64, or int32 if ``narrow``."""
    terms = []
    for i, (p, sources) in enumerate(sem.projection_groups(graph, layer)):
        src = b.add([values[s] for s in sources], f"{layer.name}/fanin{i}")
        src_max = onnx_int32.source_limits(graph, sources) if integer else None
        a = project(b, p, src, graph.nodes[sources[0]].shape, src_max, float32_out=narrow)
        if integer:
            a = shift(b, a, layer.weight_exp, p.name, np.float32 if narrow else None)
        terms.append(b.op("Cast", [a], f"{p.name}/to_i32", to=onnx_int32.INT32) if narrow else a)
    return b.add(terms, f"{layer.name}/sum")


def per_neuron_bias(b: Builder, layer) -> np.ndarray:
    """The layer's bias per neuron of a frame: ONNX Runtime adds a ``(C, 1, 1)`` one in
    ``H W``-long runs, several times slower on small maps than one ``C H W`` run per frame."""
    bias = np.broadcast_to(np.asarray(layer.bias, np.float64).reshape(-1, 1, 1), tuple(layer.shape))
    return np.ascontiguousarray(bias.transpose(1, 2, 0) if b.nhwc else bias)


def to_layout(b: Builder, x: str, name: str, perm) -> str:
    """``x`` moved between ONNX's ``(N, C, H, W)`` and the model's frame layout."""
    return b.op("Transpose", [x], name, perm=perm) if b.nhwc else x


def layer_drive(b: Builder, graph: Graph, layer, values: dict, plan):
    """The layer's membrane input and its wrap mask: ``a`` (float), or ``wrap(64 a) + (bias << e)``
    (int; the float bias is added per population, in the reference's order)."""
    integer = plan is not None
    drive = layer_current(b, graph, layer, values, integer, integer and plan.int32)
    if plan is None:
        return drive, None
    dtype = np.int32 if plan.int32 else b.np
    u = b.op("Mul", [drive, b.const(sem.MEMBRANE_GAIN, dtype)], f"{layer.name}/u")
    u, wrapped = wrap24(b, u, layer.name, dtype) if plan.wraps else (u, None)
    bias = sem.shift(per_neuron_bias(b, layer), layer.bias_exp)
    return b.op("Add", [u, b.const(bias, dtype)], f"{layer.name}/bias"), wrapped
