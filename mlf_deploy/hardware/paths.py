"""Path lengths through a deployment graph, counted in layers: what the mapping's latency and the
delay rule both need (a chip adds one step per synapse, docs/references.md §2)."""

from __future__ import annotations

from mlf_deploy.ir import Graph
from mlf_deploy.ir.portable import layer_depths


def layers_from_input(graph: Graph) -> dict:
    """Layer -> layers along the longest path from the input (the stem is 1)."""
    return layer_depths(graph)


def pipeline_depth(graph: Graph) -> int:
    """Layers on the longest path from the input to the readout."""
    depth = layers_from_input(graph)
    return max(depth[graph.nodes[s].layer] for s in graph.readout.sources)
