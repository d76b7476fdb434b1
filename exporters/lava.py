"""Deployment graph -> Lava process graph (lava-nc 0.10, ``Loihi2SimCfg`` floating_pt / fixed_pt).

One ``LIFReset`` per Population, one ``Conv`` (or ``Dense``) per Projection; the projections into a
layer all connect to the same ``a_in`` of its K LIFs (Lava sums fan-in). Every connection process
delays by one step, so a layer at depth ``d`` (connection hops from the input) sees model step ``t``
at Lava step ``t + d``; skip paths from shallower layers are delay-matched by one ring-buffer
``SpikeDelay`` process (exporters/lava_delay.py) per (source population, extra delay).
See docs/lava.md.

The builder functions below use only numpy and lava: :func:`export_lava` copies their source into
the standalone loader, so the exported network is built by the code the tests check.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from mlf_deploy.exporters import lava_import
from mlf_deploy.exporters.lava_delay import spike_delay_classes
from mlf_deploy.exporters.lava_import import import_lava
from mlf_deploy.exporters.lava_templates import LOADER as _LOADER
from mlf_deploy.exporters.lava_templates import README as _README
from mlf_deploy.ir import semantics as sem
from mlf_deploy.ir.semantics import DECAY_UNIT, retention_mant
from mlf_deploy.outputs import check_output_dir, staged_output
from mlf_deploy.quantization.rules import LOIHI_RULES, RuleViolation, check_rules


# -- Lava-specific design rules (on top of LOIHI_RULES) -----------------------------------------
def lava_conv_weight_exp_nonnegative(graph):
    """Lava's fixed_pt Conv ignores weight_exp; a non-negative one is folded into the weights, a
    negative one (floor shift) is only possible for input projections, which run on the host."""
    for p in graph.projections:
        layer = graph.nodes[p.target]
        if graph.numeric == "int" and p.kind == "conv2d" and p.source != graph.input.name \
                and layer.weight_exp < 0:
            yield layer.name, f"projection {p.name}: weight exponent {layer.weight_exp} < 0"


def lava_projection_kind_supported(graph):
    for p in graph.projections:
        if p.kind not in ("conv2d", "dense"):
            yield p.target, f"projection {p.name}: kind {p.kind!r} has no Lava process"


def lava_reset_to_zero(graph):
    for p in graph.populations:
        if p.v_reset != 0:
            yield p.name, f"reset value {p.v_reset}: Lava's LIF resets to 0"


LAVA_RULES = [lava_conv_weight_exp_nonnegative, lava_projection_kind_supported, lava_reset_to_zero]


def check_lava(graph) -> None:
    """Refuse a graph Lava cannot run exactly, naming rule and node, before any process exists."""
    if graph.numeric == "int":
        return check_rules(graph, LOIHI_RULES + LAVA_RULES)
    fails = [f"{r.__name__} failed at {n}: {m}" for r in LAVA_RULES[1:] for n, m in r(graph)]
    if fails:
        raise RuleViolation("; ".join(fails[:5]))


# -- builder (numpy + lava only; embedded verbatim in the exported loader) ----------------------
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
    depth = {}
    for layer in graph.layers:
        depth[layer.name] = max(0 if host_fed(graph, p) else 1 if p.source == graph.input.name
                                else depth[graph.nodes[p.source].layer] + 1
                                for p in graph.projections_into(layer.name))
    return depth


def payload_bits(sender):
    """Message bits of a graded sender's spikes (its count 0..K)."""
    return max(1, len(sender.v_thresholds).bit_length())


def _lava_classes():
    import_lava()
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIFReset
    try:
        from mlf_deploy.exporters.lava_graded import GRADED_MODELS, GradedMLF
    except ImportError:  # the standalone loader, which holds a copy of that module
        graded = globals()["graded_module"]()
        GRADED_MODELS, GradedMLF = graded.GRADED_MODELS, graded.GradedMLF
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
    next sample starts, so samples tile back to back with no blank steps."""
    lv, integer = _lava_classes(), graph.numeric == "int"
    steps_t, batch = frames.shape[:2]
    depth, n = lava_step_offsets(graph), steps_t * batch
    steps = n + max(depth.values())
    seq = frames.transpose(1, 0, 4, 3, 2).reshape(n, *lava_shape(graph.input.shape))
    bits = graph.input.value_bits or 24  # graded RingBuffer messages (num_message_bits > 0)
    net = SimpleNamespace(lifs={}, depth={}, steps=steps, procs=[], feeds={}, relays={})

    def add(proc):
        net.procs.append(proc)
        return proc

    def feed(values, offset):  # (n, *shape) -> RingBuffer whose row j*T+t+offset is sample j, step t
        data = np.zeros((*values.shape[1:], steps), np.int32 if integer else np.float64)
        data[..., offset:offset + n] = np.moveaxis(values, 0, -1)
        return add(lv.RingBuffer(data=data))

    def relay(pop, extra):  # pop's spikes (or graded payloads) delayed by `extra` steps, shared
        if (pop, extra) not in net.relays:
            ring = add(lv.SpikeDelay(shape=lava_shape(graph.nodes[pop].shape), delay=extra))
            net.lifs[pop].s_out.connect(ring.s_in)
            net.relays[pop, extra] = ring
        return net.relays[pop, extra]

    for layer in graph.layers:
        d, shape = depth[layer.name], lava_shape(layer.shape)
        bias = np.broadcast_to(np.asarray(layer.bias), shape)
        targets = []
        for pop in graph.populations_of(layer.name):
            rho = float(pop.v_retention)
            kw = dict(du=DECAY_UNIT - 1, dv=DECAY_UNIT - retention_mant(rho),
                      bias_mant=bias.astype(np.int64), bias_exp=int(layer.bias_exp)) if integer \
                else dict(du=1.0, dv=1.0 - rho, bias_mant=bias.astype(np.float64), bias_exp=0)
            if graph.spikes == "graded":  # one neuron with K membranes, Lava's LIF arithmetic
                cls, vth = lv.GradedMLF, np.asarray(pop.v_thresholds, np.int64 if integer else float)
            else:
                cls, vth = lv.LIFReset, int(pop.v_threshold) if integer else float(pop.v_threshold)
            proc = add(cls(shape=shape, reset_interval=steps_t, reset_offset=(1 + d) % steps_t,
                           name=pop.name, vth=vth, **kw))
            net.lifs[pop.name], net.depth[pop.name] = proc, d
            targets.append(proc.a_in)
        host = [p for p in graph.projections_into(layer.name) if host_fed(graph, p)]
        if host:
            cur = 0
            for p in host:
                w, x = lava_weight(graph, p), seq.astype(np.int64)
                a = x.reshape(n, -1) @ w.T if p.kind == "dense" else np.stack(
                    [correlate(f, w[:, ::-1, ::-1, :], p.stride[::-1], p.padding[::-1]) for f in x])
                cur = cur + (a >> -layer.weight_exp)  # floor, per projection, as the IR defines
            src = feed(cur.reshape(n, *shape), d)
            for t in targets:
                src.s_out.connect(t)
        for p in graph.projections_into(layer.name):
            if p in host:
                continue
            if p.source == graph.input.name:
                if d - 1 not in net.feeds:
                    net.feeds[d - 1] = feed(seq, d - 1)
                src, src_shape, graded = net.feeds[d - 1], seq.shape[1:], bits
            else:
                extra = d - depth[graph.nodes[p.source].layer] - 1
                src = relay(p.source, extra) if extra else net.lifs[p.source]
                src_shape = lava_shape(graph.nodes[p.source].shape)
                graded = payload_bits(graph.nodes[p.source]) if graph.spikes == "graded" else 0
            w = lava_weight(graph, p)
            if p.kind == "conv2d":
                conn = add(lv.Conv(weight=w, input_shape=src_shape, stride=tuple(p.stride[::-1]),
                                   padding=tuple(p.padding[::-1]), num_message_bits=graded, name=p.name))
                src.s_out.connect(conn.s_in)
                out = conn.a_out
            else:  # num_weight_bits=9: Lava's Dense drops a mixed-sign weight's LSB otherwise
                conn = add(lv.Dense(weights=w, weight_exp=int(layer.weight_exp) if integer else 0,
                                    num_weight_bits=9, num_message_bits=graded, name=p.name))
                src.s_out.flatten().connect(conn.s_in)
                out = conn.a_out.reshape(shape)
            for t in targets:
                out.connect(t)
    return net


# -- export --------------------------------------------------------------------------------------
_BUILDER = (spike_delay_classes, correlate, lava_shape, host_fed, lava_step_offsets, payload_bits,
            _lava_classes, lava_weight, build_processes)


def _graded_module_source() -> str:
    """``exporters/lava_graded.py`` as a cached function of the loader: its lava imports must
    wait for ``import_lava()``, and the process and its models must be created once."""
    import_lava()  # lava_graded imports lava, which needs the Python 3.11 fix first
    from mlf_deploy.exporters import lava_graded
    body = inspect.getsource(lava_graded).replace("from __future__ import annotations\n", "")
    body += "\nreturn SimpleNamespace(GradedMLF=GradedMLF, GRADED_MODELS=GRADED_MODELS)\n"
    return ("@functools.lru_cache(maxsize=None)\ndef graded_module():\n"
            + "\n".join("    " + line if line.strip() else "" for line in body.splitlines()) + "\n")


def export_lava(graph, out_dir, force: bool = False, protect=()) -> Path:
    """Write ``graph.mlfg``, ``run_lava_network.py`` (numpy + zipfile + json + lava only) and
    ``README.md`` into ``out_dir``, atomically (a staging folder renamed into place). An existing
    ``out_dir`` is replaced only with ``force`` and only if it is an earlier export of ours."""
    from mlf_deploy.ir import save_graph

    check_lava(graph)
    out = check_output_dir(out_dir, force, protect, what="Lava export folder")
    with staged_output(out, "lava-export") as tmp:
        save_graph(graph, tmp / "graph.mlfg")
        consts = "".join(f"{n} = {getattr(sem, n)!r}\n" for n in sem.PORTABLE_CONSTANTS)
        body = consts + "\n\n" + "\n\n".join(inspect.getsource(f)
                                             for f in (*sem.PORTABLE, *_BUILDER))
        shim = inspect.getsource(lava_import).replace("from __future__ import annotations\n", "")
        script = _LOADER.replace("# @SHIM@", shim + "\n\n" + _graded_module_source())
        (tmp / "run_lava_network.py").write_text(script.replace("# @BUILDER@", body))
        (tmp / "README.md").write_text(_README)
        (tmp / "input.json").write_text(json.dumps(sem.describe_input(graph), indent=1) + "\n")
    return out
