"""Mapping onto a Loihi-2-like target: limits, allocation, design rules; sweeps and plots."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_graphs, make_model, sample_input

from mlf_deploy.energy import conv_fanout
from mlf_deploy.hardware import LOIHI2, Target, layers_from_input, map_graph, pipeline_depth
from mlf_deploy.hardware import target as tg
from mlf_deploy.ir import semantics as sem
from mlf_deploy.quantization import quantize


@pytest.fixture(scope="module")
def graphs():
    return make_graphs(make_model())


def _fan(graph, p):
    return conv_fanout(p.weight.shape, graph.nodes[p.source].shape, p.stride, p.padding)


def test_target_judges_the_limits_the_graph_is_built_for():
    # the mapping must accept what the quantizer and the backends produce, and nothing wider
    assert (LOIHI2.weight_bits, LOIHI2.state_bits, LOIHI2.max_delay) == \
        (sem.LOIHI_WEIGHT_BITS, sem.STATE_BITS, sem.MAX_DELAY)
    assert LOIHI2.neurons_per_core * LOIHI2.cores_per_chip <= tg.LOIHI2_NEURONS_PER_CHIP


def test_pipeline_depth_by_hand(graphs):
    _, q = graphs
    depth = layers_from_input(q)
    # stem 1, block0 mlf1/mlf2 2/3, block1 shortcut 4 (from the stage multiset, deepest 3),
    # block1 mlf1/mlf2 4/5, block2 mlf1/mlf2 6/7
    assert depth["stem_mlf"] == 1 and depth["blocks.0.mlf2"] == 3
    assert depth["blocks.1.mlf_shortcut"] == 4 and depth["blocks.2.mlf2"] == 7
    assert pipeline_depth(q) == 7


def test_single_core_counts_match_independent_sums(graphs):
    _, q = graphs
    m = map_graph(q)
    assert m.cores == len(q.layers) and not m.violations
    readout = set(q.readout.sources)
    for lm in m.layers:
        layer = q.nodes[lm.name]
        k = len(layer.populations)
        into = q.projections_into(lm.name)
        # expanded synapses: every synapse of every projection, for each of the K level LIFs
        assert lm.synapse_bytes == k * sum(int(_fan(q, p).sum()) for p in into) * 8 / 8
        # input axons: the source positions that reach the layer, per source population
        assert lm.max_axons_in == sum(int((_fan(q, p) > 0).sum()) for p in into)
        # output edges: each (neuron, destination core) once; every target layer is one core
        edges = sum(int((_fan(q, p) > 0).sum()) for pop in layer.populations
                    for p in q.projections if p.source == pop)
        edges += sum(int(np.prod(layer.shape)) for pop in layer.populations if pop in readout)
        assert lm.max_axons_out == edges


def test_small_target_splits_layers_and_names_binding_limits(graphs):
    _, q = graphs
    small = Target(neurons_per_core=100, synaptic_memory_bytes=4096, fan_in_axons=1000,
                   fan_out_axons=100000, chips=4)
    m = map_graph(q, small)
    for lm in m.layers:
        cores = [c for c in m.core_list if c.layer == lm.name]
        assert sum(c.neurons for c in cores) == lm.neurons  # every neuron placed exactly once
        assert all(c.neurons <= 100 for c in cores)
        if lm.cores > 1:
            assert lm.binding and set(lm.binding) <= {"neurons", "memory", "fan_in", "fan_out"}
    assert any("neurons" in lm.binding for lm in m.layers)
    assert m.chips_needed == -(-m.cores // 128)


def test_weight_sharing_needs_no_more_memory(graphs):
    _, q = graphs
    shared = map_graph(q, Target(weight_sharing=True))
    expanded = map_graph(q)
    for a, b in zip(shared.layers, expanded.layers):
        assert a.synapse_bytes <= b.synapse_bytes


def test_drc_names_rule_and_layer(graphs):
    _, q = graphs
    rules = {(r, n) for r, n, _ in map_graph(q, Target(fan_in_axons=100, max_delay=1,
                                                       weight_bits=6)).violations}
    assert ("core_fan_in_fits", "blocks.1.mlf1") in rules
    assert ("residual_delays_fit", "blocks.1.mlf1") in rules  # stem (1) and block0 mlf2 (3)
    assert ("weights_fit_target", "blocks.0.mlf1") in rules
    g, _ = graphs
    q10, _ = quantize(g, 10, input_max=2.0)
    found = [(r, n, m) for r, n, m in map_graph(q10).violations]
    assert ("weights_fit_target", "stem_mlf") in {(r, n) for r, n, _ in found}
    # one rule per fact: the target's weight width is not reported again as a Loihi rule
    assert not [r for r, _, _ in found if r == "weights_fit_loihi"]
    assert len(found) == len(set(found))
    tiny = map_graph(q, Target(cores_per_chip=4))
    assert [r for r, _, _ in tiny.violations] == ["cores_fit_chips"]
    assert "cores_fit_chips" in tiny.table()


# ---- sweeps and plots ----------------------------------------------------------------------------

from mlf_deploy.errors import UserError  # noqa: E402
from mlf_deploy.hardware.plots import plot_accuracy_energy, plot_layers  # noqa: E402
from mlf_deploy.hardware.sweep import sweep, truncate, with_timesteps  # noqa: E402
from mlf_deploy.ir.reference import run_reference  # noqa: E402
from mlf_deploy.ownership import LEDGER  # noqa: E402


def _runner(g, x):
    return run_reference(g, x, record_states=False)


@pytest.mark.parametrize("events", [False, True])
def test_truncated_run_equals_a_shorter_run(events):
    model = make_model(events=events)
    g, q = make_graphs(model, events=events)
    x = sample_input(6, events=events)
    long = _runner(q, x)
    for steps in (1, 2, 3):
        short_graph = with_timesteps(q, steps)
        direct = _runner(short_graph, x[:steps] if events else x)
        cut = truncate(q, long, short_graph)
        assert all((cut.spikes[k] == direct.spikes[k]).all() for k in direct.spikes)
        np.testing.assert_allclose(cut.logits, direct.logits, rtol=1e-12, atol=1e-12)


def test_with_timesteps_is_a_new_graph(graphs):
    g, _ = graphs
    g2 = with_timesteps(g, 2)
    assert g2.timesteps == 2 and g.timesteps == 4 and g2.metadata["timesteps"] == 2
    with pytest.raises(UserError):
        with_timesteps(g, 0)


def test_sweep_points_agree_with_direct_runs(graphs, tmp_path):
    g, _ = graphs
    x = sample_input(8)
    y = np.arange(8) % 10
    fast = sweep(g, x, y, _runner, (8, 4), (1, 4), input_max=2.0)
    slow = sweep(g, x, y, _runner, (8, 4), (1, 4), input_max=2.0, reuse_prefix=False)
    assert [(p.weight_bits, p.timesteps) for p in fast] == [(8, 1), (8, 4), (4, 1), (4, 4)]
    for a, b in zip(fast, slow):
        assert a.accuracy == b.accuracy and a.synops_per_inference == b.synops_per_inference
        assert a.energy_pj == pytest.approx(b.energy_pj)
    assert fast[1].latency_steps == 4 * 7 and fast[1].latency_steps_pipelined == 4 + 7 - 1
    assert sum(fast[0].level_fraction) == pytest.approx(1.0)
    plot_accuracy_energy(fast, tmp_path / "acc.png")
    assert (tmp_path / "acc.png").read_bytes()[:4] == b"\x89PNG"


def test_layer_plot_and_unwritable_path(graphs, tmp_path):
    from mlf_deploy.energy import estimate

    _, q = graphs
    x = sample_input(2)
    br = estimate(q, _runner(q, x))
    plot_layers(br, tmp_path / "layers.png", "45nm-int8")
    assert (tmp_path / "layers.png").stat().st_size > 1000
    plot_layers(br, tmp_path / "loihi.png", "loihi1-proxy")  # no ANN bars without a MAC cost
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError):
        plot_layers(br, blocker / "sub" / "p.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == [LEDGER, "file", "layers.png", "loihi.png"]
