"""NIR export and import: NIR's own checks, the exact round trip, refusals, the dequantised
label."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_graphs, make_model, sample_input

from mlf_deploy.errors import UserError
from mlf_deploy.ir import graph_checksum
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.quantization.dequantize import dequantize_graph

nir = pytest.importorskip("nir")
from mlf_deploy.exporters.nir.export import to_nir, write_nir  # noqa: E402
from mlf_deploy.exporters.nir.importer import from_nir, read_nir  # noqa: E402


@pytest.mark.parametrize("variant", ["ds", "plain"])
@pytest.mark.parametrize("target", ["snntorch", "norse"])
def test_export_passes_nir_checks_and_round_trips_identically(tmp_path, variant, target):
    graph, _ = make_graphs(make_model(variant=variant))
    path = tmp_path / "model.nir"
    write_nir(graph, path, target)
    back = nir.read(str(path))  # type-checks the whole graph on construction
    back.validate_structure()
    assert back.check_types()
    again = read_nir(path)
    assert graph_checksum(again) == graph_checksum(graph)


def test_every_node_names_its_mlf_origin(small_graphs):
    g = to_nir(small_graphs[0], "snntorch")
    lifs = {k: json.loads(n.metadata["mlf"]) for k, n in g.nodes.items() if isinstance(n, nir.LIF)}
    pops = {p.name: p for p in small_graphs[0].populations}
    assert len(lifs) == len(pops)
    for meta in lifs.values():
        pop = pops[meta["node"]]
        assert (meta["layer"], meta["level"]) == (pop.layer, pop.level)
    convs = [json.loads(n.metadata["mlf"]) for n in g.nodes.values() if isinstance(n, nir.Conv2d)]
    projected = sorted(name for c in convs for name in c.get("projections", []))
    assert projected == sorted(p.name for p in small_graphs[0].projections)


def test_profiles_give_each_importer_our_update(small_graphs):
    pop = small_graphs[0].populations[0]
    g_snn, g_norse = to_nir(small_graphs[0], "snntorch"), to_nir(small_graphs[0], "norse")
    key = pop.name.replace("/", "_").replace(".", "_")
    snn, nor = g_snn.nodes[key], g_norse.nodes[key]
    assert np.all(1 - 1e-4 / snn.tau == pop.v_retention)  # snnTorch: beta = 1 - dt/tau, dt = 1e-4
    assert np.all(snn.r * 1e-4 / snn.tau == pytest.approx(1.0))  # so snnTorch keeps the threshold
    assert np.all(snn.v_threshold == pop.v_threshold)
    assert np.allclose(nor.v_threshold, pop.v_threshold * (1 - pop.v_retention))  # Norse ignores r


def test_import_refuses_primitives_it_cannot_express(small_graphs):
    g = to_nir(small_graphs[0], "snntorch")
    lif = next(k for k, n in g.nodes.items() if isinstance(n, nir.LIF))
    n = g.nodes[lif]
    g.nodes[lif] = nir.CubaLIF(tau_syn=n.tau, tau_mem=n.tau, r=n.r, v_leak=n.v_leak,
                               v_threshold=n.v_threshold)
    with pytest.raises(UserError, match=f"NIR node '{lif}' is a CubaLIF"):
        from_nir(g)
    g.nodes[lif] = nir.LIF(tau=n.tau, r=n.r, v_leak=n.v_leak + 0.1, v_threshold=n.v_threshold)
    with pytest.raises(UserError, match="v_leak != 0"):
        from_nir(g)


def test_int_graph_goes_out_only_as_labelled_dequantised_float(small_graphs, tmp_path):
    qgraph = small_graphs[1]
    with pytest.raises(UserError, match="no fixed-point fields"):
        to_nir(qgraph)
    deq = dequantize_graph(qgraph)
    write_nir(deq, tmp_path / "deq.nir")
    meta = json.loads(nir.read(str(tmp_path / "deq.nir")).metadata["mlf"])
    assert meta["numeric"].startswith("int-dequantised")
    x = sample_input(8)
    ref_int, ref_deq = run_reference(qgraph, x), run_reference(deq, x)
    flips = sum(int((ref_int.spikes[p] != ref_deq.spikes[p]).sum()) for p in ref_int.spikes)
    total = sum(s.size for s in ref_int.spikes.values())
    # an approximation: close, not exact (rates measured in docs/nir.md)
    assert flips < 0.05 * total
