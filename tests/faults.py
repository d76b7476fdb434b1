"""Planted deployment faults: each turns a correct int graph into a wrong one, as a bug in the
lowering or the quantizer would, at a place a seed picks. ``faulty_quantize`` wraps the real
quantizer with one of them, so `verify` meets the fault where a real bug would sit (in memory,
not in a file). Used by tests/test_planted_faults.py and benchmarks/planted_faults.py."""

from __future__ import annotations

import dataclasses

import numpy as np

from mlf_deploy.ir import Graph
from mlf_deploy.ir.semantics import parse_population
from mlf_deploy.quantization import quantize


def _replace(graph: Graph, *nodes, drop=()) -> Graph:
    new = {n.name: n for n in nodes}
    kept = {k: new.get(k, v) for k, v in graph.nodes.items() if k not in drop}
    return Graph(kept, graph.numeric, graph.metadata, graph.spikes)


def threshold(factor):
    def fault(g, rng):
        pop = g.populations[rng.integers(len(g.populations))]
        return _replace(g, dataclasses.replace(pop, v_threshold=round(pop.v_threshold * factor))), \
            pop.layer
    return fault


def weights_halved(g, rng):
    """A random layer's projection from its first source (the input or a level-0 population: a
    projection from a source that never fires changes nothing any sample can show)."""
    layer = g.layers[rng.integers(len(g.layers))]
    p = g.projections_into(layer.name)[0]
    return _replace(g,
                    dataclasses.replace(p,
                                        weight=np.round(p.weight * 0.5).astype(p.weight.dtype))), \
        p.target


def sign_flipped(g, rng):
    layer = g.layers[rng.integers(len(g.layers))]
    channel = rng.integers(layer.shape[0])
    flipped = []
    for p in g.projections_into(layer.name):
        w = p.weight.copy()
        w[channel] = -w[channel]
        flipped.append(dataclasses.replace(p, weight=w))
    return _replace(g, *flipped), layer.name


def skip_projections(g) -> list:
    """Projections that bring an earlier layer's spikes past the latest one (residual paths)."""
    out = []
    order = {layer.name: i for i, layer in enumerate(g.layers)}
    for layer in g.layers:
        into = [p for p in g.projections_into(layer.name) if p.source != g.input.name]
        src = {p.name: parse_population(p.source)[0] for p in into}
        latest = max(src.values(), key=order.get, default=None)
        out += [p for p in into if src[p.name] != latest or ".shortcut<-" in p.name]
    return out


def skip_dropped(g, rng):
    skips = skip_projections(g)
    p = skips[rng.integers(len(skips))]
    return _replace(g, drop=(p.name,)), p.target


def decay_doubled(g, rng):
    layer = g.layers[rng.integers(len(g.layers))]
    pops = [dataclasses.replace(p, v_retention=2 * p.v_retention)
            for p in g.populations_of(layer.name)]
    return _replace(g, *pops), layer.name


def input_scale_doubled(g, rng):
    first = next(p.target for p in g.projections if p.source == g.input.name)
    return _replace(g, dataclasses.replace(g.input, scale=2 * g.input.scale)), first


FAULTS = {
    "threshold x2": threshold(2), "threshold x0.5": threshold(0.5),
    "projection weights x0.5": weights_halved, "output channel sign flipped": sign_flipped,
    "skip projection dropped": skip_dropped, "decay 0.25 -> 0.5": decay_doubled,
    "input scale x2": input_scale_doubled,
}


def faulty_quantize(fault: str, seed: int, planted: dict):
    """The real quantizer followed by ``FAULTS[fault]`` at a place ``seed`` picks; the layer it
    hits is written to ``planted['layer']``."""
    def run(graph, *args, **kwargs):
        g, report = quantize(graph, *args, **kwargs)
        rng = np.random.default_rng([seed, list(FAULTS).index(fault)])
        g, planted["layer"] = FAULTS[fault](g, rng)
        return g, report
    return run
