"""Our Loihi 1 per-event bill against real SANA-FE runs on tiny seeded networks."""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from importlib.resources import files

import pytest
from conftest import make_graphs, make_model, sample_input

from mlf_deploy.energy.chip_bill import SANAFE_GROUPS, chip_bill
from mlf_deploy.errors import UserError
from mlf_deploy.graded_lowering import with_spikes
from mlf_deploy.hardware import map_graph
from mlf_deploy.hardware.loihi1 import LOIHI1, LOIHI1_SANAFE
from mlf_deploy.ir import Graph, Population
from mlf_deploy.ir.reference import run_reference


def _tiny(seed, events=False):
    model = make_model(depth=8, widths=(2, 4, 4), in_hw=(6, 6), events=events, seed=seed)
    _, graph = make_graphs(model, in_hw=(6, 6), events=events)
    x = sample_input(1, in_hw=(6, 6), events=events, seed=seed)
    return graph, run_reference(graph, x, record_states=False)


def test_preset_is_sanafe_loihi_yaml():
    """The named preset holds the numbers of SANA-FE's shipped Loihi 1 architecture file."""
    pytest.importorskip("sanafe")
    text = (files("sanafe.examples") / "loihi.yaml").read_text()
    value = lambda key: float(re.search(rf"{key}: ([0-9.e-]+)", text).group(1)) * 1e12
    c = LOIHI1_SANAFE
    assert value("energy_access_neuron") == pytest.approx(c.soma_access_pj)
    assert value("energy_update_neuron") == pytest.approx(c.soma_update_pj)
    assert value("energy_spike_out") == pytest.approx(c.spike_out_pj)
    assert value("energy_message_out") == pytest.approx(c.message_out_pj)
    assert value("energy_north_hop") == pytest.approx(c.hop_north_south_pj)
    assert value("energy_east_hop") == pytest.approx(c.hop_east_west_pj)
    conv = re.search(r"loihi_conv_synapse.*?energy_process_spike: ([0-9.e-]+)", text, re.S)
    assert float(conv.group(1)) * 1e12 == pytest.approx(c.synapse_conv_pj)


@pytest.mark.parametrize("seed,events", [(11, False), (12, True)])
def test_bill_agrees_with_sanafe(seed, events):
    """A real SANA-FE run, fed ir-int's spikes on our placement, against our analytic bill, on
    networks and inputs nothing was tuned on: every category and the total within 5 %."""
    pytest.importorskip("sanafe")
    from mlf_deploy.runtimes.sanafe_chip import sanafe_bill
    graph, result = _tiny(seed, events)
    mapping = map_graph(graph, LOIHI1)
    ours = chip_bill(graph, result, mapping)
    sim = sanafe_bill(graph, result, mapping)
    assert sim["total_pj"] > 0 and ours.groups_pj["synapse"] > 0
    for g in SANAFE_GROUPS:
        assert sim["energy_pj"][g] == pytest.approx(ours.groups_pj[g], rel=0.05, abs=1.0), g
    assert sim["total_pj"] == pytest.approx(ours.total_pj, rel=0.05)
    assert sim["latency_s"] == pytest.approx(ours.latency_s, rel=0.25)


def test_graded_bill_counts_one_neuron_per_position():
    graph, result = _tiny(13)
    graded = with_spikes(graph, "graded")
    b = chip_bill(graph, result, map_graph(graph, LOIHI1))
    g = chip_bill(graded, result, map_graph(graded, LOIHI1))
    assert g.counts["spike_out"] <= b.counts["spike_out"]  # one message per step with a payload
    assert g.counts["synapse"] * graph.levels == pytest.approx(b.counts["synapse"], rel=0.5)
    assert any("ASSUMPTION" in a for a in g.assumptions)


def test_missing_sanafe_says_how_to_install(monkeypatch):
    from mlf_deploy.runtimes.sanafe_chip import import_sanafe
    monkeypatch.setitem(sys.modules, "sanafe", None)
    with pytest.raises(UserError, match="pip install 'mlf-deploy\\[sanafe\\]'"):
        import_sanafe()


@pytest.mark.parametrize("events", [False, True])
def test_sanafe_lifs_reproduce_ir_int(events):
    """SANA-FE's LIFs, fed each layer's ir-int input spikes, fire exactly as ir-int does, and a
    graph whose thresholds differ by one mantissa step does not (the check is not silent)."""
    pytest.importorskip("sanafe")
    from mlf_deploy.runtimes.sanafe_check import host_layers, sanafe_spikes, spike_mismatches
    graph, result = _tiny(21, events)
    spikes = sanafe_spikes(graph, result)
    on_chip = [p.name for p in graph.populations if p.layer not in host_layers(graph)]
    assert sum(int(spikes[n].sum()) for n in on_chip) > 0
    assert all(m == 0 for m, _ in spike_mismatches(graph, result, spikes).values())
    shifted = Graph({k: replace(v, v_threshold=v.v_threshold * 2)
                     if isinstance(v, Population) else v for k, v in graph.nodes.items()},
                    graph.numeric, graph.metadata, graph.spikes)
    other = sanafe_spikes(shifted, result)
    assert sum(m for m, _ in spike_mismatches(graph, result, other).values()) > 0


@pytest.mark.slow
def test_energy_cli_with_sanafe(ckpt, tmp_path):
    """``energy --simulator sanafe`` end to end: both lowerings billed, SANA-FE's categories
    within 5 % of ours, spikes reproduced, and the lowerings plot written."""
    pytest.importorskip("sanafe")
    import json

    from click.testing import CliRunner

    from mlf_deploy.commands import main
    out = CliRunner().invoke(main, ["energy", str(ckpt), "--samples", "2", "--simulator",
                                    "sanafe", "--simulator-samples", "1", "--plot",
                                    str(tmp_path / "e.png"), "--json"])
    assert out.exit_code == 0, out.output
    chip = json.loads(out.output.strip().splitlines()[-1])["chip"]
    assert set(chip["bills"]) >= {"binary", "graded 1.00x"}
    sim = chip["sanafe"]
    for category in ("synapse", "soma", "network", "total"):
        assert abs(sim["sanafe_over_ours"][category] - 1) < 0.05, category
    assert sim["spike_check"]["mismatches"] == 0
    assert (tmp_path / "e_lowerings.png").stat().st_size > 0


def test_energy_cli_without_sanafe(ckpt, monkeypatch):
    from click.testing import CliRunner

    from mlf_deploy.commands import main
    monkeypatch.setitem(sys.modules, "sanafe", None)
    out = CliRunner().invoke(main, ["energy", str(ckpt), "--simulator", "sanafe"])
    assert out.exit_code != 0
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "pip install" in lines[0]
