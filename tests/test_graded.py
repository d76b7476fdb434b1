"""The graded lowering: its graph, and the graded graph computing what the binary graph computes.

Every equivalence runs the binary graph and its graded rewrite as two independent computations
(different projections, different senders) and compares per-level spikes, membranes and logits:
bit for bit in int graphs, within the float tolerance in float graphs.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import make_graphs, make_model, sample_input

from mlf_deploy.errors import UserError
from mlf_deploy.graded_lowering import to_graded, with_spikes
from mlf_deploy.ir import GradedPopulation, Population, load_graph, save_graph
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.quantization import quantize
from mlf_deploy.runtimes.onnx import run_onnx

CASES = {"ds-k3": dict(), "ds-k2": dict(levels=2), "plain-k3": dict(variant="plain"),
         "events-k3": dict(events=True)}
FLOAT_STATE_ATOL = 1e-9


@pytest.fixture(scope="module")
def nets():
    out = {}
    for name, kw in CASES.items():
        graphs = make_graphs(make_model(**kw), events=kw.get("events", False))
        out[name] = graphs, sample_input(5, events=kw.get("events", False))
    return out


def assert_equivalent(graded, binary, numeric):
    assert set(graded.spikes) == set(binary.spikes)
    assert sum(int(s.sum()) for s in binary.spikes.values()) > 0  # a silent net proves nothing
    for name in binary.spikes:
        assert np.array_equal(graded.spikes[name], binary.spikes[name]), name
        if numeric == "int":
            assert np.array_equal(graded.states[name], binary.states[name]), name
        else:
            np.testing.assert_allclose(graded.states[name], binary.states[name], rtol=0,
                                       atol=FLOAT_STATE_ATOL, err_msg=name)
    np.testing.assert_allclose(graded.logits, binary.logits, rtol=0,
                               atol=0 if numeric == "int" else 1e-12)


def test_graph_has_one_graded_population_per_layer_and_one_projection_per_source(nets):
    (g, q), _ = nets["ds-k3"]
    gg = to_graded(q)
    assert gg.graded and gg.numeric == "int" and not q.graded
    assert len(gg.populations) == len(gg.layers) == len(q.layers)
    assert all(isinstance(p, GradedPopulation) and p.levels == 3 for p in gg.populations)
    assert len(gg.level_populations) == len(q.populations)
    for layer in q.layers:
        binary_sources = {q.nodes[p.source].layer if p.source != "input" else "input"
                          for p in q.projections_into(layer.name)}
        assert len(gg.projections_into(layer.name)) == len(binary_sources)
        for view, pop in zip(gg.levels_of(layer.name), q.populations_of(layer.name)):
            assert (view.name, view.level, view.v_threshold) == (pop.name, pop.level,
                                                                 pop.v_threshold)
    assert len(q.projections) > 2 * len(gg.projections)
    assert len(gg.readout.sources) * 3 == len(q.readout.sources)


def test_graded_graph_file_round_trip_keeps_form_and_binary_files_unchanged(nets, tmp_path):
    (g, q), x = nets["ds-k2"]
    gg = to_graded(q)
    save_graph(gg, tmp_path / "g.mlfg")
    back = load_graph(tmp_path / "g.mlfg")
    assert back.spikes == "graded"
    assert_equivalent(run_reference(back, x), run_reference(q, x), "int")
    save_graph(q, tmp_path / "b.mlfg")
    assert load_graph(tmp_path / "b.mlfg").spikes == "binary"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("numeric", ["float", "int"])
def test_reference_graded_equals_binary(nets, case, numeric):
    (g, q), x = nets[case]
    binary = q if numeric == "int" else g
    graded = run_reference(to_graded(binary), x)
    assert graded.backend == f"ir-{numeric}-graded"
    assert_equivalent(graded, run_reference(binary, x), numeric)


@pytest.mark.parametrize("case", ["ds-k3", "plain-k3", "events-k3"])
@pytest.mark.parametrize("numeric", ["float", "int"])
@pytest.mark.parametrize("mode", ["sequence", "step"])
def test_onnx_graded_equals_binary_reference(nets, case, numeric, mode):
    (g, q), x = nets[case]
    binary = q if numeric == "int" else g
    result = run_onnx(to_graded(binary), x, mode=mode)
    assert result.backend == f"onnx-{numeric}-graded"
    assert_equivalent(result, run_reference(binary, x), numeric)


def test_negative_weight_exponent_on_spike_input_is_refused(nets):
    (g, q), _ = nets["ds-k3"]
    layer = q.layers[1]
    nodes = dict(q.nodes)
    nodes[layer.name] = dataclasses.replace(layer, weight_exp=-1)
    bad = type(q)(nodes, q.numeric, q.metadata)
    with pytest.raises(UserError, match="weight exponent -1 < 0.*spikes=binary"):
        to_graded(bad)


def test_forms_are_checked(nets):
    (g, q), _ = nets["ds-k3"]
    with pytest.raises(UserError, match="spikes must be"):
        with_spikes(g, "ternary")
    with pytest.raises(UserError, match="binary float graph"):
        quantize(to_graded(g), 8, input_max=2.0)
    assert with_spikes(g, "binary") is g
    with pytest.raises(ValueError, match="graded graph holds Population"):
        type(q)(q.nodes, q.numeric, q.metadata, "graded")
    assert all(isinstance(p, Population) for p in to_graded(q).level_populations)
