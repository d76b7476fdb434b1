"""The reference simulator's integer mode against a naive loop implementation of Lava's fixed-point
LIF, overflow reporting, batching, and golden traces."""

import dataclasses

import numpy as np
import pytest
from conftest import make_graphs, make_model, sample_input
from equivalence.naive_int import run_naive

from mlf_deploy.ir import Graph
from mlf_deploy.ir.reference import StateOverflow, run_reference
from mlf_deploy.ir.semantics import prepare_input


@pytest.mark.parametrize("cfg", [dict(), dict(levels=2, variant="plain"),
                                 dict(events=True, in_channels=2, in_hw=(5, 7))])
def test_int_mode_equals_naive_fixed_point_loops(cfg):
    events, cin, hw = cfg.pop("events", False), cfg.pop("in_channels", 1), cfg.pop("in_hw", (6, 6))
    model = make_model(depth=8, widths=(2, 3, 3), in_channels=cin, in_hw=hw, events=events, **cfg)
    _, q = make_graphs(model, cin, hw, events)
    x = sample_input(2, cin, hw, events=events)
    res = run_reference(q, x)
    spikes, states = run_naive(q, prepare_input(q, x))
    for pop in spikes:
        assert np.array_equal(res.spikes[pop], spikes[pop]), pop
        assert np.array_equal(res.states[pop], states[pop]), pop
    assert sum(int(s.sum()) for s in spikes.values()) > 0


def test_batching_does_not_change_results(small_graphs):
    _, q = small_graphs
    x = sample_input(10)
    whole, parts = run_reference(q, x), run_reference(q, x, batch_size=3)
    for pop in whole.spikes:
        assert np.array_equal(whole.spikes[pop], parts.spikes[pop])
        assert np.array_equal(whole.states[pop], parts.states[pop])
    assert np.array_equal(whole.logits, parts.logits)


def _with_bias(q: Graph, layer_name: str, value: int, exp: int) -> Graph:
    nodes = dict(q.nodes)
    layer = nodes[layer_name]
    nodes[layer_name] = dataclasses.replace(layer, bias=np.full_like(layer.bias, value),
                                            bias_exp=exp)
    pops = q.populations_of(layer_name)
    for p in pops:  # thresholds out of reach so the membrane keeps growing into saturation
        nodes[p.name] = dataclasses.replace(p, v_threshold=131071, v_retention=1.0)
    nodes["input"] = dataclasses.replace(q.input, timesteps=20)  # 20 x (4095 << 7) > 2^23
    return Graph(nodes, "int", q.metadata)


def test_saturation_is_reported_and_strict_mode_raises(small_graphs):
    _, q = small_graphs
    loud = _with_bias(q, "stem_mlf", 4095, 7)
    res = run_reference(loud, sample_input(2))
    assert res.overflow.get("stem_mlf", 0) > 0
    with pytest.raises(StateOverflow, match="stem_mlf"):
        run_reference(loud, sample_input(2), strict=True)
    assert run_reference(q, sample_input(2)).overflow == {}


def test_wrong_input_shape_is_a_clear_error(small_graphs):
    from mlf_deploy.errors import UserError
    with pytest.raises(UserError, match="expects static images"):
        run_reference(small_graphs[1], sample_input(2, in_hw=(7, 7)))
