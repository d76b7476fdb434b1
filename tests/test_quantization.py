"""Quantization: rounding bounds, reported changes, fixed-point rules and their errors."""

import dataclasses

import numpy as np
import pytest
import torch
from conftest import make_graphs, make_model, sample_input

from mlf_deploy.errors import UserError
from mlf_deploy.ir import Graph
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.quantization import dequantize_state, quantize
from mlf_deploy.quantization.rules import (
    LOIHI_RULES,
    REPRESENTABILITY_RULES,
    RuleViolation,
    check_rules,
    find_violations,
)


def test_every_rounding_is_within_half_a_step(small_graphs):
    g, q = small_graphs
    for layer in g.layers:
        ql = q.nodes[layer.name]
        into = g.projections_into(layer.name)
        step = max(float(np.abs(p.weight).max()) for p in into) / 127
        for p in into:
            wq = q.nodes[p.name].weight
            assert wq.dtype == np.int32 and np.abs(wq).max() <= 127
            assert np.abs(wq * step - p.weight).max() <= step / 2 + 1e-9
        for pop in g.populations_of(layer.name):
            assert abs(q.nodes[pop.name].v_threshold * ql.scale - pop.v_threshold) <= ql.scale / 2
        bias_back = ql.bias * 2.0 ** ql.bias_exp / 64 * ql.scale
        assert np.abs(bias_back - layer.bias).max() <= 2.0 ** ql.bias_exp / 128 * ql.scale + 1e-9


def test_report_counts_and_worst_cases(small_graphs):
    g, _ = small_graphs
    _, report = quantize(g, 8, input_max=2.0)
    d = report.to_dict()
    assert d["weights_total"] == sum(p.weight.size for p in g.projections) + g.readout.weight.size
    assert d["weights_clipped"] == 0 and d["biases_clipped"] == 0
    assert d["worst_threshold_error"]["population"] in g.nodes
    assert 0 < d["worst_threshold_error"]["relative"] < 0.01


def test_integer_states_times_scale_reproduce_float_states():
    """The stem's first-step membrane, dequantized, matches the float one within the bound of its
    roundings: sum|W| * input step/2 + sum|x| * weight step/2 + their product, one current unit
    (the floor shift) and the bias rounding."""
    model = make_model()
    g, _ = make_graphs(model)
    q, _ = quantize(g, 12, input_max=2.0, input_bits=12, threshold_bits=14)
    x = sample_input(8)
    rf, ri = run_reference(g, x), run_reference(q, x)
    layer = q.nodes["stem_mlf"]
    (proj,) = g.projections_into("stem_mlf")
    w = torch.from_numpy(np.abs(proj.weight).astype(np.float64))
    w_step = float(np.abs(proj.weight).max()) / 2047
    x_abs = x.abs().double()
    in_step = q.input.scale
    conv = lambda a, k: torch.nn.functional.conv2d(a, k, padding=1)[:, :, :, :].numpy()
    bound = (conv(torch.full_like(x_abs, in_step / 2), w)
             + conv(x_abs, torch.full_like(w, w_step / 2))
             + conv(torch.full_like(x_abs, in_step / 2), torch.full_like(w, w_step / 2))
             + layer.scale + 2.0 ** layer.bias_exp / 128 * layer.scale)
    for pop in q.populations_of("stem_mlf"):
        assert ri.states[pop.name].dtype == np.int64
        back = dequantize_state(ri.states[pop.name][0], layer)
        silent = (ri.spikes[pop.name][0] == 0) & (rf.spikes[pop.name][0] == 0)
        err = np.abs(back - rf.states[pop.name][0])
        assert (err[silent] <= bound[silent] + 1e-12).all()
        assert err[silent].max() > 0  # the roundings are real; the bound is not vacuous


def test_more_bits_agree_better_with_float():
    model = make_model(seed=3)
    x = sample_input(16)
    g, _ = make_graphs(model)
    rf = run_reference(g, x)
    mismatches = []
    for bits in (4, 8, 12):
        q, _ = quantize(g, bits, input_max=2.0, input_bits=bits)
        ri = run_reference(q, x)
        mismatches.append(sum(int((ri.spikes[k] != rf.spikes[k]).sum()) for k in rf.spikes))
    assert mismatches[0] > mismatches[1] > mismatches[2]


def test_threshold_that_rounds_to_zero_is_an_error(small_graphs):
    with pytest.raises(RuleViolation, match=r"threshold_is_positive failed at blocks\.0\.mlf1/L0"):
        quantize(small_graphs[0], 8, input_max=2.0, threshold_bits=0)


def test_threshold_overflow_is_an_error(small_graphs):
    g, q = small_graphs
    pop = q.populations[0]
    nodes = dict(q.nodes)
    nodes[pop.name] = dataclasses.replace(pop, v_threshold=2 ** 17)
    with pytest.raises(RuleViolation, match=f"threshold_fits_17_bits failed at {pop.name}"):
        check_rules(Graph(nodes, "int", q.metadata), REPRESENTABILITY_RULES)


def test_loihi_rules_name_rule_and_layer():
    model = make_model()
    g, q = make_graphs(model, weight_bits=12)
    assert find_violations(q, REPRESENTABILITY_RULES) == []
    failures = find_violations(q, LOIHI_RULES)
    assert failures and all(rule == "weights_fit_loihi" for rule, _, _ in failures)
    assert {node for _, node, _ in failures} == {layer.name for layer in q.layers}


@pytest.mark.parametrize("bits", [0, 1, 17, 33])
def test_bad_weight_bits(small_graphs, bits):
    with pytest.raises(UserError, match="weight bits"):
        quantize(small_graphs[0], bits, input_max=2.0)


def test_static_input_needs_a_range(small_graphs):
    with pytest.raises(UserError, match="input_max"):
        quantize(small_graphs[0], 8)
    with pytest.raises(UserError, match="float graph"):
        quantize(small_graphs[1], 8, input_max=2.0)


def test_quantize_returns_a_new_graph(small_graphs):
    g, _ = small_graphs
    before = {p.name: p.weight.copy() for p in g.projections}
    quantize(g, 4, input_max=2.0)
    assert g.numeric == "float"
    assert all(np.array_equal(before[p.name], p.weight) for p in g.projections)
