"""Deployment graph -> Lava processes (lava-nc 0.10, ``Loihi2SimCfg`` floating_pt / fixed_pt).

One ``LIFReset`` per Population, one ``Conv`` (or ``Dense``) per Projection; the projections into a
layer all connect to the same ``a_in`` of its K LIFs (Lava sums fan-in). Every connection process
delays by one step, so a layer at depth ``d`` (connection hops from the input) sees model step ``t``
at Lava step ``t + d``; skip paths from shallower layers are delay-matched by one ring-buffer
``SpikeDelay`` process (:mod:`mlf_deploy.exporters.lava.lava_delay`) per (source population, extra
delay). See docs/lava.md.

This file needs numpy and lava only: ``export_lava`` copies it whole into the exported folder,
beside copies of ``lava_delay.py``, ``lava_graded.py``, ``lava_import.py`` and ``portable.py``,
which it then imports as sibling modules (``__package__`` is empty there). So the exported network
is built by the code the tests check. ``graph`` is a :class:`mlf_deploy.ir.Graph` or a
:class:`mlf_deploy.ir.portable.GraphView` (the exported loader's).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

if __package__:
    from mlf_deploy.exporters.lava.lava_delay import spike_delay_classes
    from mlf_deploy.exporters.lava.lava_import import import_lava
    from mlf_deploy.ir.portable import DECAY_UNIT, layer_depths, payload_bits, retention_mant
else:  # a copy in an exported Lava folder, beside copies of these modules
    from lava_delay import spike_delay_classes
    from lava_import import import_lava
    from portable import DECAY_UNIT, layer_depths, payload_bits, retention_mant


def correlate(x, w, stride, pad):
    """torch-style cross-correlation in Lava's layout: ``x`` (W, H, Cin), ``w`` (Cout, kW, kH, Cin)
    -> (Wo, Ho, Cout); exact for integer arrays."""
    xp = np.pad(x, ((pad[0], pad[0]), (pad[1], pad[1]), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(xp, w.shape[1:3], axis=(0, 1))
    return np.tensordot(win[::stride[0], ::stride[1]], w, axes=([2, 3, 4], [3, 1, 2]))


def lava_shape(shape):
    return tuple(int(d) for d in shape[::-1])  # IR (C, H, W) -> Lava (X=W, Y=H, C)


def host_fed(graph, p):
    """Input projections into an int layer with a negative weight exponent (typically the stem):
    Lava's Conv cannot floor-shift, so their current is computed on the host exactly as the IR
    defines it and fed by a RingBuffer straight into the LIFs' a_in (no connection delay)."""
    return p.source == graph.input.name and graph.numeric == "int" \
        and graph.nodes[p.target].weight_exp < 0


def lava_step_offsets(graph):
    """Lava step at which each layer sees model step 0 (connection hops from the input)."""
    return layer_depths(graph, lambda p: 0 if host_fed(graph, p) else 1)


def lava_classes():
    """The Lava process classes the builder makes, ours included."""
    import_lava()
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIFReset
    if __package__:  # lava_graded imports lava, so only after import_lava()
        from mlf_deploy.exporters.lava.lava_graded import GRADED_MODELS, GradedMLF
    else:
        from lava_graded import GRADED_MODELS, GradedMLF
    return SimpleNamespace(Conv=Conv, Dense=Dense, RingBuffer=RingBuffer, LIFReset=LIFReset,
                           SpikeDelay=spike_delay_classes().SpikeDelay, GradedMLF=GradedMLF,
                           GRADED_MODELS=GRADED_MODELS)


def lava_weight(graph, p):
    """Conv: (Cout, kW, kH, Cin), kernel flipped (Lava convolves), weight_exp >= 0 folded in, since
    Lava's fixed_pt Conv ignores weight_exp (and has no 8-bit clip). Dense: columns in Lava's
    flattening order of the (W, H, C) source; its own weight_exp does the (floor) shift."""
    w = np.asarray(p.weight)
    if graph.numeric == "int":
        w = w.astype(np.int64)
    if p.kind == "dense":
        c, h, wd = graph.nodes[p.source].shape
        return w.reshape(len(w), c, h, wd).transpose(0, 3, 2, 1).reshape(len(w), -1)
    if graph.numeric == "int" and not host_fed(graph, p):
        w = w << graph.nodes[p.target].weight_exp
    return np.ascontiguousarray(w.transpose(0, 3, 2, 1)[:, ::-1, ::-1, :])


def build_processes(graph, frames):
    """``frames`` (T, B, C, H, W): the values the Input delivers. Sample ``j`` occupies Lava steps
    ``j*T .. j*T+T-1`` shifted by each layer's depth; LIFReset zeroes each population when its
    next sample starts, so samples tile back to back with no blank steps. Returns the network:
    ``procs`` (all processes, in creation order), ``lifs`` and ``depth`` per population,
    ``steps`` (Lava steps to run), ``feeds`` (RingBuffers by offset), ``relays`` (delays)."""
    return ProcessBuilder(graph, frames).build()


class ProcessBuilder:
    """The processes of one network, made layer by layer in the graph's schedule: each layer's
    level LIFs, then the connections into them (host-fed current, Conv or Dense)."""

    def __init__(self, graph, frames):
        self.graph, self.lv, self.integer = graph, lava_classes(), graph.numeric == "int"
        self.steps_t, batch = frames.shape[:2]
        self.depth, self.n = lava_step_offsets(graph), self.steps_t * batch
        self.seq = frames.transpose(1, 0, 4, 3, 2).reshape(self.n, *lava_shape(graph.input.shape))
        # graded RingBuffer messages (num_message_bits > 0)
        self.bits = graph.input.value_bits or 24
        self.net = SimpleNamespace(lifs={}, depth={}, steps=self.n + max(self.depth.values()),
                                   procs=[], feeds={}, relays={})

    def build(self):
        for layer in self.graph.layers:
            targets = [lif.a_in for lif in self.add_populations(layer)]
            host = [p for p in self.graph.projections_into(layer.name) if host_fed(self.graph, p)]
            if host:
                self.add_host_current(layer, host, targets)
            for p in self.graph.projections_into(layer.name):
                if p not in host:
                    self.add_connection(layer, p, targets)
        return self.net

    def add(self, proc):
        self.net.procs.append(proc)
        return proc

    def feed(self, values, offset):
        """A RingBuffer of ``values`` (n, *shape): row ``j*T+t+offset`` is sample j, step t."""
        data = np.zeros((*values.shape[1:], self.net.steps),
                        np.int32 if self.integer else np.float64)
        data[..., offset:offset + self.n] = np.moveaxis(values, 0, -1)
        return self.add(self.lv.RingBuffer(data=data))

    def relay(self, pop, extra):
        """``pop``'s spikes (or graded payloads) delayed by ``extra`` steps, one per pair."""
        net = self.net
        if (pop, extra) not in net.relays:
            ring = self.add(self.lv.SpikeDelay(shape=lava_shape(self.graph.nodes[pop].shape),
                                               delay=extra))
            net.lifs[pop].s_out.connect(ring.s_in)
            net.relays[pop, extra] = ring
        return net.relays[pop, extra]

    def add_populations(self, layer) -> list:
        """The layer's level LIFs (one GradedMLF with K membranes, in a graded graph)."""
        d, shape = self.depth[layer.name], lava_shape(layer.shape)
        bias = np.broadcast_to(np.asarray(layer.bias), shape)
        lifs = []
        for pop in self.graph.populations_of(layer.name):
            rho = float(pop.v_retention)
            kw = dict(du=DECAY_UNIT - 1, dv=DECAY_UNIT - retention_mant(rho),
                      bias_mant=bias.astype(np.int64), bias_exp=int(layer.bias_exp)) \
                if self.integer \
                else dict(du=1.0, dv=1.0 - rho, bias_mant=bias.astype(np.float64), bias_exp=0)
            if self.graph.graded:  # one neuron with K membranes, Lava's LIF arithmetic
                cls = self.lv.GradedMLF
                vth = np.asarray(pop.v_thresholds, np.int64 if self.integer else float)
            else:
                cls = self.lv.LIFReset
                vth = int(pop.v_threshold) if self.integer else float(pop.v_threshold)
            proc = self.add(cls(shape=shape, reset_interval=self.steps_t,
                                reset_offset=(1 + d) % self.steps_t, name=pop.name, vth=vth, **kw))
            self.net.lifs[pop.name], self.net.depth[pop.name] = proc, d
            lifs.append(proc)
        return lifs

    def add_host_current(self, layer, host, targets) -> None:
        """The current of the host-fed projections ``host``, computed here, fed into ``targets``."""
        cur, x = 0, self.seq.astype(np.int64)
        for p in host:
            w = lava_weight(self.graph, p)
            a = x.reshape(self.n, -1) @ w.T if p.kind == "dense" else np.stack(
                [correlate(f, w[:, ::-1, ::-1, :], p.stride[::-1], p.padding[::-1]) for f in x])
            cur = cur + (a >> -layer.weight_exp)  # floor, per projection, as the IR defines
        src = self.feed(cur.reshape(self.n, *lava_shape(layer.shape)), self.depth[layer.name])
        for t in targets:
            src.s_out.connect(t)

    def source_of(self, layer, p):
        """``(process, Lava shape, num_message_bits)`` that sends ``p``'s input into ``layer``:
        the input's RingBuffer, the source's LIF, or its delay-matching relay."""
        graph, d = self.graph, self.depth[layer.name]
        if p.source == graph.input.name:
            if d - 1 not in self.net.feeds:
                self.net.feeds[d - 1] = self.feed(self.seq, d - 1)
            return self.net.feeds[d - 1], self.seq.shape[1:], self.bits
        source = graph.nodes[p.source]
        extra = d - self.depth[source.layer] - 1
        src = self.relay(p.source, extra) if extra else self.net.lifs[p.source]
        graded = payload_bits(len(source.v_thresholds)) if graph.graded else 0
        return src, lava_shape(source.shape), graded

    def add_connection(self, layer, p, targets) -> None:
        """``p`` as a Conv or Dense process from its source into ``targets``."""
        src, src_shape, graded = self.source_of(layer, p)
        w = lava_weight(self.graph, p)
        if p.kind == "conv2d":
            conn = self.add(self.lv.Conv(weight=w, input_shape=src_shape,
                                         stride=tuple(p.stride[::-1]),
                                         padding=tuple(p.padding[::-1]), num_message_bits=graded,
                                         name=p.name))
            src.s_out.connect(conn.s_in)
            out = conn.a_out
        else:  # num_weight_bits=9: Lava's Dense drops a mixed-sign weight's LSB otherwise
            conn = self.add(self.lv.Dense(weights=w,
                                          weight_exp=int(layer.weight_exp) if self.integer else 0,
                                          num_weight_bits=9, num_message_bits=graded, name=p.name))
            src.s_out.flatten().connect(conn.s_in)
            out = conn.a_out.reshape(lava_shape(layer.shape))
        for t in targets:
            out.connect(t)
