"""Where each neuron and synapse of a mapped graph sits: the facts both our per-event bill
(:mod:`mlf_deploy.energy.chip_bill`) and the SANA-FE backend read, so the two tools place the same
neuron on the same core and route the same messages.

A core of :func:`~mlf_deploy.hardware.mapping.map_graph` holds a block of output rows and
channels of one layer with all its K level LIFs; its index is its position in
``mapping.core_list``. A spike travels as one message per destination core (SANA-FE and Loihi
send one per core, whatever the synapses behind it).
"""

from __future__ import annotations

import numpy as np

from mlf_deploy.ir import Graph


def core_of_positions(graph: Graph, mapping) -> dict:
    """Layer name -> ``(C, H, W)`` int array: the core index holding each position (all levels)."""
    out = {layer.name: np.full(layer.shape, -1, dtype=np.int64) for layer in graph.layers}
    for i, core in enumerate(mapping.core_list):
        (r0, r1), (c0, c1) = core.rows, core.channels
        out[core.layer][c0:c1, r0:r1, :] = i
    return out


def projection_taps(graph: Graph, p):
    """Every synapse of a conv or dense projection as index arrays over flattened positions.

    Returns ``(src, dst, (co, ci, i, j))``: source and target flat indices ``(C, H, W)`` order and
    the weight index of each synapse; border taps that fall in the padding are left out."""
    c_in, h, w = graph.nodes[p.source].shape
    c_out, ho, wo = graph.nodes[p.target].shape
    if p.kind == "dense":
        dst, src = np.meshgrid(np.arange(c_out * ho * wo), np.arange(c_in * h * w), indexing="ij")
        return src.ravel(), dst.ravel(), (dst.ravel(), src.ravel())
    kh, kw = p.weight.shape[2:]
    (sh, sw), (ph, pw) = tuple(p.stride), tuple(p.padding)
    co, ci, i, j, y, x = np.meshgrid(np.arange(c_out), np.arange(c_in), np.arange(kh),
                                     np.arange(kw), np.arange(ho), np.arange(wo), indexing="ij")
    hs, ws = y * sh - ph + i, x * sw - pw + j
    ok = (hs >= 0) & (hs < h) & (ws >= 0) & (ws < w)
    co, ci, i, j, y, x, hs, ws = (a[ok] for a in (co, ci, i, j, y, x, hs, ws))
    return (ci * h + hs) * w + ws, (co * ho + y) * wo + x, (co, ci, i, j)


def destinations(graph: Graph, mapping, source: str) -> tuple[np.ndarray, np.ndarray]:
    """``(position, core)`` pairs: each flat position of population ``source`` with every
    distinct core its spike reaches (one message each); the readout is off chip and not counted.
    Channel by channel: :func:`spatial_destinations` offset to each channel's plane."""
    pos, core = spatial_destinations(graph, mapping, source)
    c_in, h, w = graph.nodes[source].shape
    chans = np.arange(c_in)[:, None] * (h * w)
    return (chans + pos).ravel(), np.broadcast_to(core, (c_in, len(core))).ravel()


def spatial_destinations(graph: Graph, mapping, source: str,
                         cores: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(position in a channel's plane, core)`` pairs, the same for every channel of ``source``
    (a conv source channel reaches every output channel): channel ``c``'s pairs are these with
    ``c * H * W`` added. Computed over spatial taps, so large layers stay cheap, and a caller can
    walk the channels without holding ``C x`` the pairs. ``cores``: :func:`core_of_positions`."""
    cores = core_of_positions(graph, mapping) if cores is None else cores
    c_in, h, w = graph.nodes[source].shape
    pairs = []
    for p in graph.projections:
        if p.source != source:
            continue
        tc = cores[p.target]  # (C_out, Ho, Wo)
        if p.kind == "dense":
            pairs.append(np.stack(np.meshgrid(np.arange(h * w), np.unique(tc)), -1).reshape(-1, 2))
            continue
        kh, kw = p.weight.shape[2:]
        (sh, sw), (ph, pw) = tuple(p.stride), tuple(p.padding)
        i, j, y, x = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(tc.shape[1]),
                                 np.arange(tc.shape[2]), indexing="ij")
        hs, ws = y * sh - ph + i, x * sw - pw + j
        ok = (hs >= 0) & (hs < h) & (ws >= 0) & (ws < w)
        pos, y, x = (hs * w + ws)[ok], y[ok], x[ok]
        col = tc[:, y, x]  # (C_out, taps): the cores of every output channel at each tap
        pairs.append(np.stack([np.broadcast_to(pos, col.shape).ravel(), col.ravel()], 1))
    if not pairs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    uniq = np.unique(np.concatenate(pairs), axis=0)
    return uniq[:, 0], uniq[:, 1]


def level_spike_counts(result, population: str) -> np.ndarray:
    """Spikes per flat position over time and batch."""
    return result.spikes[population].sum(axis=(0, 1), dtype=np.int64).ravel()


def plane_size(graph: Graph, population: str) -> int:
    """Positions in one channel of ``population`` (H x W)."""
    _, h, w = graph.nodes[population].shape
    return int(h) * int(w)
