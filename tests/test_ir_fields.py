"""Each IR field has one meaning, and a backend that cannot honour a field refuses it by name (the
audit table is in docs/ir.md); graph files written before the normalisation moved onto the Input
node read back with the same meaning."""

import dataclasses

import numpy as np
import pytest
from conftest import sample_input
from tamper import write_without_table

from mlf_deploy.errors import UserError
from mlf_deploy.graded_lowering import to_graded
from mlf_deploy.ir import GradedPopulation, Graph, Input, Population, load_graph, save_graph
from mlf_deploy.ir.normalisation import with_input_pipeline
from mlf_deploy.ir.portable import read_graph
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.ir.semantics import describe_input, input_values, threshold_value
from mlf_deploy.ir.serialize import content_checksum, graph_to_dict
from mlf_deploy.quantization.dequantize import dequantize_graph

PIPE = {"dataset": "digits", "normalise": {"divide": 16.0, "mean": 0.25, "std": 0.5},
        "class_names": [str(i) for i in range(10)]}


def normalised(graph: Graph) -> Graph:
    """``graph`` with a data set normalisation and a folded gain and offset on its Input."""
    graph = with_input_pipeline(graph, PIPE)
    inp = dataclasses.replace(graph.input, gain=(1.5,), offset=(-0.25,))
    return Graph({n: inp if n == inp.name else v for n, v in graph.nodes.items()},
                 graph.numeric, graph.metadata, graph.spikes)


def test_a_reset_other_than_zero_is_refused_by_the_node():
    with pytest.raises(ValueError, match="v_reset must be 0"):
        Population("l/L0", "l", 0, (1, 1, 1), 1.0, v_reset=0.5)
    with pytest.raises(ValueError, match="v_reset must be 0"):
        GradedPopulation("l/graded", "l", (1, 1, 1), (1.0, 2.0), v_reset=-1.0)


@pytest.mark.parametrize("fields,fragment", [
    ({"raw_mean": (0.0,)}, "raw_mean and raw_std"),
    ({"gain": (1.0,), "offset": (0.0, 1.0)}, "gain and offset"),
    ({"raw_divide": 255.0}, "raw_divide"),
])
def test_input_normalisation_steps_are_whole(fields, fragment):
    with pytest.raises(ValueError, match=fragment):
        Input("in", (1, 2, 2), "static", 2, **fields)


def test_the_normalisation_is_the_input_nodes_and_survives_the_file(small_graphs, tmp_path):
    g = normalised(small_graphs[1])
    assert "normalise" not in g.metadata["input_pipeline"]
    assert g.input.raw_mean == (0.25,) and g.input.raw_divide == 16.0
    save_graph(g, tmp_path / "g.mlfg")
    back = load_graph(tmp_path / "g.mlfg")
    for f in ("raw_divide", "raw_mean", "raw_std", "gain", "offset"):
        assert getattr(back.input, f) == getattr(g.input, f)
    pipe = describe_input(read_graph(tmp_path / "g.mlfg"))  # the shipped reader, as artifacts do
    assert pipe == describe_input(g)
    assert pipe["normalise"] == {"divide": 16.0, "mean": [0.25], "std": [0.5]}
    x = sample_input(2).numpy()
    want = np.clip(np.round(np.broadcast_to(x * 1.5 - 0.25, (4, *x.shape)) / g.input.scale),
                   -(2 ** (g.input.value_bits - 1) - 1), 2 ** (g.input.value_bits - 1) - 1)
    assert np.array_equal(input_values(back, x), want)


def _old_file(graph: Graph, path, version: int):
    """``graph`` written as schema ``version`` wrote it: the normalisation in the metadata."""
    body, arrays = graph_to_dict(graph)
    inp = next(n for n in body["nodes"] if n["type"] == "Input")
    norm = {"divide": inp["raw_divide"], "mean": inp["raw_mean"], "std": inp["raw_std"]}
    body["metadata"] = {**body["metadata"], "input_gain": inp["gain"],
                        "input_offset": inp["offset"],
                        "input_pipeline": {**body["metadata"]["input_pipeline"], "normalise": norm}}
    for f in ("raw_divide", "raw_mean", "raw_std", "gain", "offset"):
        del inp[f]
    write_without_table(path, {"schema": "mlf-deploy-graph", "schema_version": version,
                               "checksum": content_checksum(body, arrays), "graph": body}, arrays)


@pytest.mark.parametrize("version", [1, 2])
def test_old_files_read_with_the_normalisation_on_the_input(small_graphs, tmp_path, version):
    g = normalised(small_graphs[1])
    _old_file(g, tmp_path / "old.mlfg", version)
    back = load_graph(tmp_path / "old.mlfg")
    assert describe_input(back) == describe_input(g)
    assert "input_gain" not in back.metadata
    x = sample_input(3)
    a, b = run_reference(g, x), run_reference(back, x)
    assert np.array_equal(a.logits, b.logits)
    for pop in a.spikes:
        assert np.array_equal(a.spikes[pop], b.spikes[pop])
    with pytest.raises(ValueError, match="export the network again"):
        read_graph(tmp_path / "old.mlfg")  # the shipped reader takes the current layout only


def test_threshold_value_is_the_mantissa_times_the_layer_unit(small_graphs):
    g_float, g_int = small_graphs
    for pop in g_int.level_populations:
        unit = g_int.nodes[pop.layer].scale
        assert threshold_value(g_int, pop) == pop.v_threshold * unit
        assert abs(threshold_value(g_int, pop) - g_float.nodes[pop.name].v_threshold) <= unit / 2
    assert all(threshold_value(g_float, p) == p.v_threshold for p in g_float.level_populations)


def test_dequantising_a_graded_graph_dequantises_every_level(small_graphs):
    g_int = small_graphs[1]
    graded = dequantize_graph(to_graded(g_int))
    binary = to_graded(dequantize_graph(g_int))
    assert graded.graded
    for layer in graded.layers:
        assert graded.populations_of(layer.name)[0].v_thresholds == \
            binary.populations_of(layer.name)[0].v_thresholds


def test_nir_export_refuses_a_graded_graph(small_graphs):
    pytest.importorskip("nir")
    from mlf_deploy.exporters.nir.export import to_nir
    with pytest.raises(UserError, match="graded"):
        to_nir(to_graded(small_graphs[0]))


def test_nir_round_trip_keeps_the_input_normalisation(small_graphs):
    pytest.importorskip("nir")
    from mlf_deploy.exporters.nir.export import to_nir
    from mlf_deploy.exporters.nir.importer import from_nir
    g = normalised(small_graphs[0])
    back = from_nir(to_nir(g))
    assert describe_input(back) == describe_input(g)


def test_sanafe_refuses_a_float_graph(small_graphs):
    from mlf_deploy.runtimes.sanafe_chip import sanafe_bill
    g = small_graphs[0]
    with pytest.raises(UserError, match="int graph"):
        sanafe_bill(g, run_reference(g, sample_input(1)))


def test_sanafe_refuses_a_negative_weight_exponent_on_spikes(small_graphs):
    from mlf_deploy.runtimes.sanafe_chip import check_sanafe_graph
    g = small_graphs[1]
    check_sanafe_graph(g)
    layer = next(layer for layer in g.layers
                 if all(p.source != g.input.name for p in g.projections_into(layer.name)))
    nodes = {**g.nodes, layer.name: dataclasses.replace(layer, weight_exp=-1)}
    with pytest.raises(UserError, match="weight exponent -1"):
        check_sanafe_graph(Graph(nodes, g.numeric, g.metadata))
