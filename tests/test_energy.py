"""SynOps, MACs, firing and dormant counts, each checked against an independent computation."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from conftest import make_graphs, make_model, sample_input

from mlf_deploy.energy import (
    PRESETS,
    EnergyModel,
    ann_macs,
    conv_fanout,
    estimate,
    projection_synops,
    worst_case_result,
)
from mlf_deploy.energy import op_energy as em
from mlf_deploy.errors import UserError
from mlf_deploy.ir import Graph, Input, Layer, Population, Projection, Readout
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.results import RunResult


def brute_force_synops(graph, result):
    """Every spike, every target: loop over spikes and kernel offsets, keep in-bounds outputs."""
    out = {}
    for p in graph.projections:
        if p.source == graph.input.name:
            continue
        s = result.spikes[p.source]
        c_out, _, kh, kw = p.weight.shape
        _, h_in, w_in = graph.nodes[p.source].shape
        _, h_out, w_out = graph.nodes[p.target].shape
        (sh, sw), (ph, pw) = p.stride, p.padding
        total = 0
        for _t, _b, _c, h, w in zip(*np.nonzero(s)):
            reached = 0
            for i, j in itertools.product(range(kh), range(kw)):
                # output (oh, ow) reads input (oh*sh - ph + i, ow*sw - pw + j)
                if (h + ph - i) % sh or (w + pw - j) % sw:
                    continue
                oh, ow = (h + ph - i) // sh, (w + pw - j) // sw
                if 0 <= oh < h_out and 0 <= ow < w_out:
                    reached += c_out
            total += reached * int(s[_t, _b, _c, h, w])
        out[p.name] = total
    return out


@pytest.mark.parametrize("variant,events", [("ds", False), ("plain", False), ("ds", True)])
def test_synops_match_brute_force(variant, events):
    model = make_model(variant=variant, events=events)
    graph, qgraph = make_graphs(model, events=events)
    x = sample_input(3, events=events)
    result = run_reference(qgraph, x, record_states=False)
    assert sum(int(s.sum()) for s in result.spikes.values()) > 0
    assert projection_synops(qgraph, result) == brute_force_synops(qgraph, result)


def test_conv_fanout_borders_and_stride():
    # 3x3 pad 1 stride 1 on 4x4: corners reach 4 outputs, edges 6, interior 9 (per out channel)
    fan = conv_fanout((2, 1, 3, 3), (1, 4, 4), (1, 1), (1, 1))
    assert fan[0].tolist() == [[8, 12, 12, 8], [12, 18, 18, 12], [12, 18, 18, 12], [8, 12, 12, 8]]
    # 3x3 pad 1 stride 2 on 5x5 -> 3x3 output; row reach counts [1, 1, 2, 1, 1]... computed by hand:
    # input row r is read by output oh with 0 <= r + 1 - 2*oh <= 2 -> r=0:{0}, 1:{0,1}, 2:{1},
    # 3:{1,2}, 4:{2}
    fan = conv_fanout((1, 1, 3, 3), (1, 5, 5), (2, 2), (1, 1))
    per_axis = np.array([1, 2, 1, 2, 1])
    assert (fan[0] == np.outer(per_axis, per_axis)).all()
    # 1x1 stride 2 on an odd 5x5 input: only even positions are read
    fan = conv_fanout((3, 1, 1, 1), (1, 5, 5), (2, 2), (0, 0))
    assert fan[0, ::2, ::2].min() == 3 and fan[0, 1::2].max() == 0 and fan[0, :, 1::2].max() == 0
    # 4x4, k=3, stride 2, pad 1 -> 2 outputs reading rows {-1,0,1} and {1,2,3}
    fan = conv_fanout((1, 1, 3, 3), (1, 4, 4), (2, 2), (1, 1))
    assert fan[0, :, 0].tolist() == [1, 2, 1, 1]


def _tiny_graph(levels=2):
    """Input (1,3,3) -> conv 3x3 pad 1 (2 ch) -> layer A (K levels) -> conv 1x1 (3 ch) ->
    layer B."""
    nodes = [Input("in", (1, 3, 3), "static", 2)]
    nodes.append(Projection("A<-in", "in", "A", "conv2d", np.ones((2, 1, 3, 3)), (1, 1), (1, 1)))
    pops_a = tuple(f"A/L{k}" for k in range(levels))
    nodes.append(Layer("A", (2, 3, 3), np.zeros(2), pops_a))
    nodes += [Population(n, "A", k, (2, 3, 3), 0.6 + k) for k, n in enumerate(pops_a)]
    for n in pops_a:
        nodes.append(Projection(f"B<-{n}", n, "B", "conv2d", np.ones((3, 2, 1, 1))))
    nodes.append(Layer("B", (3, 3, 3), np.zeros(3), ("B/L0",)))
    nodes.append(Population("B/L0", "B", 0, (3, 3, 3), 0.6))
    nodes.append(Readout("ro", ("B/L0",), np.ones((4, 3)), np.zeros(4)))
    return Graph({n.name: n for n in nodes}, "float", {"levels": levels})


def _result(graph, spikes):
    full = {p.name: np.zeros((graph.timesteps, 1, *p.shape), np.uint8) for p in graph.populations}
    full.update(spikes)
    return RunResult("hand", "float", full, {}, np.zeros((1, 4)))


def test_graded_spikes_count_per_level():
    g = _tiny_graph()
    one = np.zeros((2, 1, 2, 3, 3), np.uint8)
    one[0, 0, 1, 1, 1] = 1  # level 0 fires once at channel 1, centre
    both = _result(g, {"A/L0": one, "A/L1": one})  # the same neuron at level 2: two spikes
    single = _result(g, {"A/L0": one})
    # a 1x1 conv into 3 channels: fan-out 3 per spike
    assert estimate(g, single).layers[1].synops == 3
    assert estimate(g, both).layers[1].synops == 6
    assert estimate(g, both).populations == {"A/L0": 3.0, "A/L1": 3.0, "B/L0": 0.0}


def test_dormant_fraction_and_rates_by_hand():
    g = _tiny_graph()
    a0 = np.zeros((2, 1, 2, 3, 3), np.uint8)
    a1 = np.zeros_like(a0)
    a0[0, 0, 0, 0, 0] = 1  # position (0,0,0): level 0 at t=0
    a1[1, 0, 0, 0, 0] = 1  # same position, level 1 at t=1: still one live position
    a1[1, 0, 1, 2, 2] = 1  # position (1,2,2): level 1 only
    b = np.zeros((2, 1, 3, 3, 3), np.uint8)
    b[:, 0, 2] = 1  # channel 2 of B fires everywhere at both steps
    br = estimate(g, _result(g, {"A/L0": a0, "A/L1": a1, "B/L0": b}))
    la, lb = br.layers
    assert la.dormant_fraction == pytest.approx(16 / 18)
    assert lb.dormant_fraction == pytest.approx(18 / 27)
    assert br.dormant_fraction == pytest.approx((16 + 18) / (18 + 27))
    assert la.firing_rate == pytest.approx(3 / (18 * 2))  # spikes per position per step, all levels
    assert la.level_rates == pytest.approx([1 / 36, 2 / 36])
    assert br.level_fraction == pytest.approx([(1 + 18) / 21, 2 / 21])
    # readout: 18 spikes x 4 classes
    assert br.readout_synops_per_inference == 72


def test_ann_macs_by_hand():
    g = _tiny_graph()
    # conv 3x3 pad 1, 1 -> 2 ch on 3x3: taps per axis reach [2, 3, 2] outputs -> 7*7 = 49 per
    # (in, out) channel pair -> 98; conv 1x1 2 -> 3 on 3x3 once (not per level): 2*3*9 = 54;
    # readout 3 x 4 = 12
    assert ann_macs(g) == {"A": 98, "B": 54, "ro": 12}
    br = estimate(g, worst_case_result(g))
    assert br.ann_macs_per_inference == 98 + 54 + 12
    assert br.input_macs_per_inference == 2 * 98  # the static image is fed at both timesteps
    # worst case: every neuron fires at both steps;
    # B's synops = 2 levels * 18 positions * 2 steps * 3
    assert br.layers[1].synops == 2 * 18 * 2 * 3
    fp32 = PRESETS["45nm-fp32"]
    assert br.ann_energy_pj["45nm-fp32"] == pytest.approx(164 * 4.6)
    want = 196 * fp32.e_mac_pj + (216 + br.readout_synops_per_inference) * fp32.e_ac_pj
    assert br.energy_pj["45nm-fp32"] == pytest.approx(want)


def test_plain_identity_shortcut_is_not_an_ann_mac():
    model = make_model(variant="plain")
    graph, _ = make_graphs(model)
    macs = ann_macs(graph)
    # block 0 of the plain variant keeps the width: its mlf2 has conv2 plus an identity shortcut
    conv2 = [p for p in graph.projections_into("blocks.0.mlf2") if ".conv2<-" in p.name][0]
    fanout = conv_fanout(conv2.weight.shape, graph.nodes[conv2.source].shape, conv2.stride,
                         conv2.padding)
    assert macs["blocks.0.mlf2"] == int(fanout.sum())


def test_energy_models_cited_and_custom():
    assert em.FP32_MAC_PJ == pytest.approx(4.6) and em.FP32_AC_PJ == 0.9
    assert em.INT8_MAC_PJ == pytest.approx(0.23) and em.INT8_AC_PJ == 0.03
    assert em.LOIHI1_SYNOP_PJ == 23.6
    assert "not Loihi 2" in PRESETS["loihi1-proxy"].note
    g = _tiny_graph()
    mine = EnergyModel("mine", 1.0, 0.5, note="test")
    br = estimate(g, worst_case_result(g), models=[mine])
    assert set(br.energy_pj) == {"mine"}
    # B: 27 positions x 2 steps x 4 classes
    assert br.energy_pj["mine"] == pytest.approx(196 * 1.0 + (216 + 27 * 2 * 4) * 0.5)
    loihi = estimate(g, worst_case_result(g), models={"l": PRESETS["loihi1-proxy"]})
    assert loihi.ann_energy_pj["loihi1-proxy"] is None
    updates = 2 * (2 * 18 + 27)  # every neuron (each level LIF) at each step, all active
    assert loihi.energy_pj["loihi1-proxy"] == pytest.approx((216 + 216) * 23.6 + updates * 81.0)


def test_event_input_counted_as_acs():
    model = make_model(events=True)
    graph, qgraph = make_graphs(model, events=True)
    x = sample_input(2, events=True)
    br = estimate(qgraph, run_reference(qgraph, x, record_states=False), x)
    assert br.input_kind == "ac" and br.input_macs_per_inference == 0
    stem = [p for p in qgraph.projections if p.source == "input"][0]
    fan = conv_fanout(stem.weight.shape, qgraph.input.shape, stem.stride, stem.padding)
    want = sum(float((x[t, b].numpy() * fan).sum())
               for t in range(x.shape[0]) for b in range(2)) / 2
    assert br.input_acs_per_inference == pytest.approx(want)
    with pytest.raises(UserError, match="needs the input frames"):
        estimate(qgraph, run_reference(qgraph, x, record_states=False))


def test_breakdown_is_consistent_and_json_ready():
    import json
    model = make_model()
    _, q = make_graphs(model)
    x = sample_input(4)
    br = estimate(q, run_reference(q, x, record_states=False))
    d = json.loads(json.dumps(br.to_dict()))
    assert d["synops_per_inference"] == pytest.approx(
        sum(r["synops"] for r in d["layers"]) + d["readout_synops_per_inference"])
    assert sum(br.projections.values()) + br.readout_synops_per_inference == pytest.approx(
        sum(br.populations.values()))
    assert sum(br.level_fraction) == pytest.approx(1.0)
    # halving the batch to a copy of itself leaves per-inference counts unchanged
    double = estimate(q, run_reference(q, np.concatenate([x, x]), record_states=False))
    assert double.synops_per_inference == pytest.approx(br.synops_per_inference)
    t_mismatch = dataclasses.replace(q.input, timesteps=2)
    g2 = Graph({**q.nodes, "input": t_mismatch}, "int", q.metadata)
    with pytest.raises(UserError, match="timesteps"):
        estimate(g2, run_reference(q, x, record_states=False))
