"""The float graph that an int graph's mantissas stand for: a labelled approximation, not the int
graph.

Formats without fixed-point fields (NIR) can carry an int graph only this way. What it drops: the
truncating integer decay, the floor of negative weight exponents, the input rounding and the 24-bit
wrap and saturation; so its spikes can differ from ``ir-int`` at a few sites (measured in
docs/nir.md).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mlf_deploy.ir import GradedPopulation, Graph, Input, Layer, Population, Projection, Readout
from mlf_deploy.ir.semantics import MEMBRANE_GAIN, threshold_value


def dequantize_graph(graph: Graph) -> Graph:
    """Weights ``W * 2^e * unit / input_step``, thresholds ``mant * unit``, bias
    ``mant * 2^e_b * unit / 64``; the spike form (binary or graded) is kept."""
    if graph.numeric != "int":
        raise ValueError("dequantize_graph takes an int graph")
    inp = graph.input
    nodes = {}
    for name, node in graph.nodes.items():
        if isinstance(node, Input):
            node = dataclasses.replace(node, scale=1.0, value_bits=0)
        elif isinstance(node, Layer):
            bias = np.asarray(node.bias, np.float64) * 2.0 ** node.bias_exp / MEMBRANE_GAIN \
                * node.scale
            node = dataclasses.replace(node, bias=bias, weight_exp=0, bias_exp=0, scale=1.0)
        elif isinstance(node, Population):
            node = dataclasses.replace(node, v_threshold=threshold_value(graph, node))
        elif isinstance(node, GradedPopulation):
            node = dataclasses.replace(node, v_thresholds=tuple(
                threshold_value(graph, level) for level in node.level_views()))
        elif isinstance(node, Projection):
            layer = graph.nodes[node.target]
            per_input = 1.0 / inp.scale if node.source == inp.name else 1.0
            w = np.asarray(node.weight, np.float64) * 2.0 ** layer.weight_exp * layer.scale \
                * per_input
            node = dataclasses.replace(node, weight=w, weight_bits=0)
        elif isinstance(node, Readout):
            weight = np.asarray(node.weight, np.float64) * node.scale
            node = dataclasses.replace(node, weight=weight, scale=1.0, weight_bits=0)
        nodes[name] = node
    meta = {**graph.metadata, "nir_numeric": "int-dequantised (approximation of the int graph)"}
    return Graph(nodes, "float", meta, graph.spikes)
