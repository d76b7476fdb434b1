"""A deliberately naive integer simulator of a deployment graph, for checking the reference.

Explicit loops over output positions and kernel taps, Python integers, and the Lava fixed_pt LIF
step written from docs/references.md §2 (u = wrap24(a << 6); v = trunc0(v * (4096 - dv)
>> 12) + u + bias; saturate; s = v > vth << 6; reset). Shares no code with
mlf_deploy/ir/reference.py.
"""

import numpy as np


def conv_loops(src, w, stride, pad):
    """src (C, H, W) ints, w (O, C, kh, kw) ints -> (O, Ho, Wo) Python-int sums."""
    c, h, wd = src.shape
    o, _, kh, kw = w.shape
    ho, wo = (h + 2 * pad[0] - kh) // stride[0] + 1, (wd + 2 * pad[1] - kw) // stride[1] + 1
    out = np.zeros((o, ho, wo), dtype=object)
    for i in range(ho):
        for j in range(wo):
            for di in range(kh):
                for dj in range(kw):
                    y, x = i * stride[0] - pad[0] + di, j * stride[1] - pad[1] + dj
                    if 0 <= y < h and 0 <= x < wd:
                        out[:, i, j] += w[:, :, di, dj].astype(object) @ src[:, y, x].astype(object)
    return out


def lif_fixed(v, a, dv, vth, bias):
    u = a * 64
    u = np.where(u > 2 ** 23, u - 2 ** 24, u)
    u = np.where(u <= -2 ** 23, u + 2 ** 24, u)
    y = v * (4096 - dv)
    decayed = np.array([(1 if t >= 0 else -1) * (abs(t) >> 12) for t in y.ravel()], dtype=object)
    v = decayed.reshape(v.shape) + u + bias
    v = np.clip(v, -(2 ** 23 - 1), 2 ** 23 - 1)
    s = v > vth * 64
    return np.where(s, 0, v), s


def run_naive(graph, frames):
    """frames (T, B, C, H, W) integer input values -> (spikes, states) dicts of (T, B, ...)."""
    steps, batch = frames.shape[:2]
    spikes, states = {}, {}
    for b in range(batch):
        values = {graph.input.name: [frames[t, b].astype(np.int64) for t in range(steps)]}
        v = {p.name: np.zeros(p.shape, dtype=object) for p in graph.populations}
        for layer in graph.layers:
            pops = graph.populations_of(layer.name)
            for pop in pops:
                values[pop.name] = []
            for t in range(steps):
                a = 0
                for p in graph.projections_into(layer.name):
                    c = conv_loops(values[p.source][t], p.weight, p.stride, p.padding)
                    e = layer.weight_exp
                    a = a + (c * 2 ** e if e >= 0 else np.floor_divide(c, 2 ** -e))
                bias = (layer.bias.astype(object) * 2 ** layer.bias_exp)[:, None, None]
                for pop in pops:
                    dv = 4096 - round(pop.v_retention * 4096)
                    v[pop.name], s = lif_fixed(v[pop.name], a, dv, pop.v_threshold, bias)
                    values[pop.name].append(s.astype(np.int64))
                    shape = (steps, batch, *pop.shape)
                    spikes.setdefault(pop.name, np.zeros(shape, np.uint8))[t, b] = s
                    states.setdefault(pop.name, np.zeros(shape, np.int64))[t, b] = \
                        v[pop.name].astype(np.int64)
    return spikes, states
