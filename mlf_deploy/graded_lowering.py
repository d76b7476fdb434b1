"""The graded lowering: a binary deployment graph rewritten with one graded-spike population per
MLF layer (Loihi 2's integer spike payloads).

The binary form repeats every projection once per source population (the K levels of a layer, and
again for every layer of a residual multiset), all with the same weights. Because a projection is
linear, ``sum_k W (x) s_k = W (x) c`` with ``c = sum_k s_k``: the K copies from one layer become one
projection from that layer's graded population, whose payload is ``c``. In an int graph the weight
exponent is applied after the sum; for ``e >= 0`` that is a left shift and commutes with it, so the
graded int graph is bit-exact with the binary one. A negative exponent floors each binary projection
separately, which a payload cannot reproduce, so such graphs are refused.

The rewrite works on float and int graphs alike and changes no number: quantizing first and then
rewriting gives the same weights, thresholds and exponents as the binary int graph, by construction.
"""

from __future__ import annotations

import dataclasses

from mlf_deploy.errors import UserError
from mlf_deploy.ir import GradedPopulation, Graph, Layer, Population, Projection, Readout
from mlf_deploy.ir.semantics import weight_key


def graded_name(layer: str) -> str:
    return f"{layer}/graded"


def _graded_population(graph: Graph, layer: Layer) -> GradedPopulation:
    pops = graph.populations_of(layer.name)
    if [p.level for p in pops] != list(range(len(pops))):
        raise UserError(f"layer {layer.name}: levels {[p.level for p in pops]} are not 0..K-1")
    for attr in ("v_retention", "v_reset"):
        if len({getattr(p, attr) for p in pops}) != 1:
            raise UserError(f"layer {layer.name}: levels differ in {attr}; one graded neuron "
                            "shares it across its membranes")
    return GradedPopulation(graded_name(layer.name), layer.name, tuple(layer.shape),
                            tuple(p.v_threshold for p in pops), pops[0].v_retention,
                            pops[0].v_reset)


def _check_exponents(graph: Graph) -> None:
    if graph.numeric != "int":
        return
    for p in graph.projections:
        layer = graph.nodes[p.target]
        if p.source != graph.input.name and layer.weight_exp < 0:
            raise UserError(f"layer {layer.name} has weight exponent {layer.weight_exp} < 0: its "
                            "binary projections floor each level's current separately, which a "
                            "graded payload cannot reproduce; use --spikes binary")


def _merged_projections(graph: Graph) -> dict:
    """First projection of each group -> the graded projection replacing the whole group."""
    groups: dict = {}
    for p in graph.projections:
        if p.source == graph.input.name:
            continue
        src_layer = graph.nodes[p.source].layer
        key = (p.target, src_layer, *weight_key(p))
        groups.setdefault(key, []).append(p)
    merged = {}
    for (target, src_layer, *_), members in groups.items():
        levels = sorted(graph.nodes[p.source].level for p in members)
        if levels != list(range(len(graph.populations_of(src_layer)))):
            raise UserError(f"layer {target} receives levels {levels} of {src_layer} through "
                            "identical synapses; a graded source sends all its levels at once")
        first = members[0]
        merged[first.name] = Projection(
            f"{first.name.rsplit('<-', 1)[0]}<-{graded_name(src_layer)}", graded_name(src_layer),
            target, first.kind, first.weight, first.stride, first.padding, first.weight_bits)
    return merged


def _graded_sources(graph: Graph, ro: Readout) -> tuple:
    layers: dict = {}
    for src in ro.sources:
        pop = graph.nodes[src]
        layers.setdefault(pop.layer, []).append(pop.level)
    for layer, levels in layers.items():
        if sorted(levels) != list(range(len(graph.populations_of(layer)))):
            raise UserError(f"the readout reads levels {sorted(levels)} of {layer}; a graded "
                            "source sends all its levels at once")
    return tuple(graded_name(layer) for layer in layers)


def to_graded(graph: Graph) -> Graph:
    """The graded form of a binary ``graph`` (float or int); a graded graph is returned as is."""
    if graph.graded:
        return graph
    _check_exponents(graph)
    merged = _merged_projections(graph)
    nodes: dict = {}
    for name, node in graph.nodes.items():
        if isinstance(node, Projection):
            if node.source == graph.input.name:
                nodes[name] = node
            elif name in merged:
                nodes[merged[name].name] = merged[name]
        elif isinstance(node, Layer):
            nodes[name] = dataclasses.replace(node, populations=(graded_name(name),))
            graded = _graded_population(graph, node)
            nodes[graded.name] = graded
        elif isinstance(node, Readout):
            nodes[name] = dataclasses.replace(node, sources=_graded_sources(graph, node))
        elif not isinstance(node, Population):
            nodes[name] = node
    return Graph(nodes, graph.numeric, dict(graph.metadata), "graded")


def with_spikes(graph: Graph, spikes: str) -> Graph:
    """``graph`` in the lowering the user chose (``--spikes binary|graded``)."""
    if spikes == "graded":
        return to_graded(graph)
    if spikes != "binary":
        raise UserError(f"--spikes must be 'binary' or 'graded', got {spikes!r}")
    if graph.graded:
        raise UserError("this graph is graded; lower the checkpoint again for --spikes binary")
    return graph
