r"""Operation counts of a deployment graph, from the spikes of a run.

A spike of source population ``s`` at ``(c, h, w)`` costs one synaptic operation (SynOp, an
accumulate) per synapse it drives: for a ``conv2d`` projection that is every output channel at
every output position whose receptive field holds ``(h, w)``, borders included (a corner pixel of a
3x3, padding-1 convolution reaches 4 positions, not 9). So

.. math:: \mathrm{SynOps}_p = \sum_{c,h,w} n_s(c,h,w)\, F_p(c,h,w)

with ``n_s`` the spike count of the source over time and batch and ``F_p`` the exact fan-out map.
Graded MLF activity is counted by spike count: each of the K level populations is its own source,
so a neuron firing at level 3 costs 3x its fan-out, never binarised (docs/references.md §5).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from mlf_deploy.errors import UserError
from mlf_deploy.ir import Graph, Projection
from mlf_deploy.ir.semantics import conv_output_size, real_valued_input, weight_key
from mlf_deploy.results import RunResult
from mlf_deploy.run_totals import input_event_counts


def conv_fanout(weight_shape, in_shape, stride, padding, mask=None) -> np.ndarray:
    """Synapses driven by one input value at each position, ``(C_in, H, W)`` int64.

    A transposed convolution of ones (output grid) with the kernel mask scatters, to each input
    position, the number of (output channel, output position) pairs whose kernel tap lands on it.

    Args:
        weight_shape: ``(C_out, C_in, kh, kw)``.
        in_shape: ``(C_in, H, W)`` of the source.
        mask: optional ``(C_out, C_in, kh, kw)`` bool; ``None`` counts every synapse of the kernel.
    """
    if mask is None:
        return _dense_fanout(tuple(weight_shape), tuple(in_shape), tuple(stride),
                             tuple(padding)).copy()
    return _fanout(tuple(weight_shape), tuple(in_shape), tuple(stride), tuple(padding), mask)


@functools.lru_cache(maxsize=256)
def _dense_fanout(weight_shape, in_shape, stride, padding):
    return _fanout(weight_shape, in_shape, stride, padding, None)


def _fanout(weight_shape, in_shape, stride, padding, mask):
    c_out, c_in, kh, kw = weight_shape
    _, h, w = in_shape
    (sh, sw), (ph, pw) = stride, padding
    h_out, w_out = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    kernel = torch.ones(weight_shape, dtype=torch.float64) if mask is None else \
        torch.from_numpy(np.asarray(mask, dtype=np.float64))
    # output_padding recovers input rows/cols past the last stride step (they reach nothing)
    extra = (h - ((h_out - 1) * sh - 2 * ph + kh), w - ((w_out - 1) * sw - 2 * pw + kw))
    fan = F.conv_transpose2d(torch.ones(1, c_out, h_out, w_out, dtype=torch.float64), kernel,
                             stride=(sh, sw), padding=(ph, pw), output_padding=extra)
    return fan[0].round().to(torch.int64).numpy()


def node_shape(graph: Graph, name: str) -> tuple:
    return tuple(graph.nodes[name].shape)


def projection_fanout(graph: Graph, p: Projection, skip_zero_weights: bool = False) -> np.ndarray:
    """Fan-out map ``(C, H, W)`` of projection ``p`` over its source's positions.

    ``skip_zero_weights``: count only synapses with a non-zero weight (sparse storage); the default
    counts every synapse of the kernel, as a dense conv layer or a shared-weight core would run it.
    """
    shape = node_shape(graph, p.source)
    w = np.asarray(p.weight)
    if p.kind == "conv2d":
        mask = (w != 0) if skip_zero_weights else None
        return conv_fanout(w.shape, shape, tuple(p.stride), tuple(p.padding), mask)
    if p.kind == "dense":
        per_input = (w != 0).sum(0) if skip_zero_weights else np.full(w.shape[1], w.shape[0])
        return per_input.astype(np.int64).reshape(shape)
    raise UserError(f"projection {p.name}: unknown kind {p.kind!r}")


def spike_counts(result: RunResult, population: str) -> np.ndarray:
    """Spikes per position over time and batch, ``(C, H, W)`` int64."""
    return result.spikes[population].sum(axis=(0, 1), dtype=np.int64)


def projection_synops(graph: Graph, result: RunResult, skip_zero_weights: bool = False) -> dict:
    """Projection name -> SynOps over the whole batch (spike-sourced projections only)."""
    out = {}
    for p in graph.projections:
        if p.source == graph.input.name:
            continue
        if p.source not in result.spikes:
            raise UserError(f"the run has no spikes for population {p.source!r}; it does not match "
                            "this graph")
        fanout = projection_fanout(graph, p, skip_zero_weights)
        out[p.name] = int((spike_counts(result, p.source) * fanout).sum())
    return out


def readout_synops(graph: Graph, result: RunResult) -> int:
    """ACs of the readout over the batch: each source spike adds one weight column (num_classes)."""
    ro = graph.readout
    return int(sum(spike_counts(result, s).sum() for s in ro.sources) * ro.weight.shape[0])


def input_ops(graph: Graph, x=None, skip_zero_weights: bool = False) -> tuple[str, float]:
    """``(kind, ops per inference)`` of the input projections.

    Static images (or any input with a host-side normalisation): ``"mac"``, the dense MACs of the
    stem convolution at every timestep (the graph feeds the image at each of its T steps; borders
    exact). Raw event frames: ``"ac"``, event count x fan-out summed over positions and frames
    (an input of 3 events at a pixel costs 3x its fan-out), which needs ``x``.
    """
    g_in = graph.input
    projections = [p for p in graph.projections if p.source == g_in.name]
    fans = [projection_fanout(graph, p, skip_zero_weights) for p in projections]
    if real_valued_input(graph):
        return "mac", float(g_in.timesteps * sum(int(f.sum()) for f in fans))
    if x is None:
        raise UserError("counting the input ACs of an event graph needs the input frames")
    counts, samples = input_event_counts(graph, x)
    total = sum(float((counts * f).sum()) for f in fans)
    return "ac", total / samples


def unique_convs(graph: Graph, layer: str) -> list[Projection]:
    """The original (pre-lowering) operations into ``layer``: one per distinct weight tensor.

    Lowering repeats a conv once per source population of a multiset (K levels, residual fan-in);
    the ANN runs it once on their sum. An identity 1x1 projection (the plain variant's shortcut) is
    an addition in the ANN, not a convolution, and is left out.
    """
    seen, out = set(), []
    for p in graph.projections_into(layer):
        key = weight_key(p)
        if key in seen or _is_identity(p):
            continue
        seen.add(key)
        out.append(p)
    return out


def _is_identity(p: Projection) -> bool:
    w = np.asarray(p.weight)
    return (p.kind == "conv2d" and w.shape[2:] == (1, 1) and w.shape[0] == w.shape[1]
            and tuple(p.stride) == (1, 1)
            and np.array_equal(w[:, :, 0, 0] != 0, np.eye(w.shape[0], dtype=bool)))


def ann_macs(graph: Graph) -> dict:
    """Layer name (and the readout) -> MACs of the same network run as an ANN, once per inference.

    An ANN is not unrolled in time, so T does not multiply; each conv is counted once (not per
    level or source population), with exact border taps as for SynOps; the readout is
    ``C x num_classes`` MACs of the pooled features.
    """
    out = {}
    for layer in graph.layers:
        out[layer.name] = sum(int(projection_fanout(graph, p).sum())
                              for p in unique_convs(graph, layer.name))
    out[graph.readout.name] = int(np.asarray(graph.readout.weight).size)
    return out
