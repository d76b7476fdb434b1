"""A model whose parameters Loihi cannot hold exactly still exports as a float graph; the int graph
rounds what it can, reports the error, and refuses only what it cannot represent at all."""

import numpy as np
import pytest
from conftest import TINY_ARGS, make_graphs, sample_input, write_checkpoint

from mlf_deploy.ir import load_graph
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.runtimes.onnx import run_onnx
from mlf_deploy.workflows.export_checkpoint import export_checkpoint
from mlf_deploy.workflows.options import ExportOptions


def test_tau_loihi_cannot_hold_exports_float_and_rounds_int(tmp_path):
    path = write_checkpoint(tmp_path / "tau.pt", model_args={**TINY_ARGS, "tau": 0.3})
    info = export_checkpoint(path, tmp_path / "f.mlfg", ExportOptions(as_float=True))
    assert info["numeric"] == "float"
    graph = load_graph(tmp_path / "f.mlfg")
    assert {p.v_retention for p in graph.populations} == {0.3}
    export_checkpoint(path, tmp_path / "f.onnx", ExportOptions("onnx", as_float=True))
    info = export_checkpoint(path, tmp_path / "i.mlfg")
    err = info["quantization"]["worst_retention_error"]
    assert err["value"] == pytest.approx(abs(1229 / 4096 - 0.3)) and err["population"]
    g_int = load_graph(tmp_path / "i.mlfg")
    assert {p.v_retention for p in g_int.populations} == {1229 / 4096}
    x = sample_input(4)
    ref, onnx = run_reference(g_int, x), run_onnx(g_int, x)
    for pop in ref.spikes:
        assert np.array_equal(ref.spikes[pop], onnx.spikes[pop])
        assert np.array_equal(ref.states[pop], onnx.states[pop])


def test_int_graph_still_refuses_what_it_cannot_represent(small_model):
    import dataclasses

    from mlf_deploy.quantization import quantize
    from mlf_deploy.quantization.rules import RuleViolation
    g, _ = make_graphs(small_model)
    pop = g.populations[0]
    nodes = {**g.nodes, pop.name: dataclasses.replace(pop, v_retention=1.5)}
    with pytest.raises(RuleViolation, match="retention"):
        quantize(type(g)(nodes, g.numeric, g.metadata), 8, input_max=2.0)
