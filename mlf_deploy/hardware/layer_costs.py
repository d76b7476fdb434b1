"""What one layer costs on a core of a :class:`~mlf_deploy.hardware.target.Target`: the
neurons, synaptic memory, input axons and registers of a block of output rows and channels, and
the output edges of a source row. :mod:`mlf_deploy.hardware.mapping` places layers with these."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F

from mlf_deploy.energy.counting import conv_fanout
from mlf_deploy.ir import Graph
from mlf_deploy.ir.semantics import weight_key


def _geometry(graph: Graph, p):
    """(C_in, H_in, W_in, kh, kw, stride, padding) of a projection; dense as a full-input conv."""
    c, h, w = graph.nodes[p.source].shape
    if p.kind == "dense":
        return c, h, w, h, w, (1, 1), (0, 0)
    return c, h, w, p.weight.shape[2], p.weight.shape[3], tuple(p.stride), tuple(p.padding)


def _taps(geo, out_hw) -> np.ndarray:
    """Valid kernel taps per output position ``(H_out, W_out)`` (borders read fewer inputs)."""
    _, h, w, kh, kw, stride, pad = geo
    ones = torch.ones(1, 1, h, w, dtype=torch.float64)
    return F.conv2d(ones, torch.ones(1, 1, kh, kw, dtype=torch.float64), stride=stride,
                    padding=pad)[0, 0].round().numpy()[:out_hw[0], :out_hw[1]]


def _reach(lo_out, hi_out, size, k, s, p) -> int:
    """Input rows (or cols) read by outputs ``[lo_out, hi_out)``; a strided 1x1 skips some."""
    return len({o * s - p + i for o in range(lo_out, hi_out) for i in range(k)} & set(range(size)))


def mapped_weight_bits(p, target) -> int:
    """A float graph's projections are mapped at the target's weight width."""
    return p.weight_bits or target.weight_bits


LIF_REGISTERS = 2  # a single-threshold LIF holds u and v


def registers_per_neuron(graph: Graph, layer: str) -> int:
    """State registers of one neuron: a LIF's u and v, or a graded neuron's shared u and K v's."""
    return 1 + len(graph.levels_of(layer)) if graph.graded else LIF_REGISTERS


class LayerCost:
    """A core's neuron state is budgeted in registers, ``LIF_REGISTERS * neurons_per_core`` (an
    assumption: the core sized for LIFs), so a graded neuron with K + 1 registers takes the room of
    (K + 1) / 2 LIFs."""

    def __init__(self, graph, layer, target):
        self.graph, self.target = graph, target
        self.k = 1 if graph.graded else len(layer.populations)  # neurons per position
        self.registers = registers_per_neuron(graph, layer.name)
        self.c, self.h, self.w = layer.shape
        self.projections = graph.projections_into(layer.name)
        self.geos = [_geometry(graph, p) for p in self.projections]
        self.taps = [_taps(g, (self.h, self.w)) for g in self.geos]
        groups = {}
        for p, g in zip(self.projections, self.geos):
            groups.setdefault(weight_key(p), (p, g))
        self.unique = list(groups.values())

    def chunk(self, r0, r1, cc):
        neurons = self.k * cc * (r1 - r0) * self.w
        if self.target.weight_sharing:
            mem = sum(cc * g[0] * g[3] * g[4] * mapped_weight_bits(p, self.target) / 8
                      for p, g in self.unique)
        else:
            mem = sum(self.k * cc * g[0] * t[r0:r1].sum() * mapped_weight_bits(p, self.target) / 8
                      for p, g, t in zip(self.projections, self.geos, self.taps))
        axons = sum(g[0] * _reach(r0, r1, g[1], g[3], g[5][0], g[6][0])
                    * _reach(0, self.w, g[2], g[4], g[5][1], g[6][1]) for g in self.geos)
        return neurons, float(mem), int(axons)

    def failing(self, r0, r1, cc):
        n, mem, ax = self.chunk(r0, r1, cc)
        t = self.target
        over = n * self.registers > LIF_REGISTERS * t.neurons_per_core
        return [name for name, bad in (("neurons", over),
                                       ("memory", mem > t.synaptic_memory_bytes),
                                       ("fan_in", ax > t.fan_in_axons)) if bad]


def edges_per_row(graph: Graph, p, layer, target_blocks: Counter) -> np.ndarray:
    """Output edges of one source row of ``p``: its live columns times the destination cores
    whose rows read that row (``target_blocks``: the destination's row blocks, with how many
    cores, one per channel block, each has)."""
    t_rows = graph.nodes[p.target].shape[1]
    if p.kind == "conv2d":
        _, _, _, kh, _, stride, pad = _geometry(graph, p)
        fan = conv_fanout((1, *p.weight.shape[1:]), layer.shape, stride, pad)[0]

        def reads(h):
            return [o for o in range(t_rows) if 0 <= h + pad[0] - o * stride[0] < kh]
    else:
        fan = np.ones(layer.shape[1:])

        def reads(h):
            return range(t_rows)
    live_cols = (fan > 0).sum(1)
    edges = np.zeros(layer.shape[1])
    for h in range(layer.shape[1]):
        outs = reads(h)
        hit = sum(n for (a, b), n in target_blocks.items() if any(a <= o < b for o in outs))
        edges[h] = live_cols[h] * hit
    return edges
