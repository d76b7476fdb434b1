"""evaluate's sweep quantizes once per weight width: the int graph reads no timestep count, so
each point at another T is the same int graph with its Input re-set, sharing its weight arrays."""

from __future__ import annotations

import pytest
import torch
from conftest import make_graphs, make_model, sample_input

from mlf_deploy.hardware.sweep import sweep, with_timesteps
from mlf_deploy.ir.graph_diff import graph_differences
from mlf_deploy.quantization import quantize
from mlf_deploy.workflows.analysis import run_int


@pytest.mark.parametrize("events", [False, True])
def test_quantizing_does_not_depend_on_the_timesteps(events):
    channels = 2 if events else 1
    g_float, _ = make_graphs(make_model(in_channels=channels, events=events), channels,
                             events=events)
    input_max = None if events else 2.0
    for bits in (8, 4):
        once = quantize(g_float, bits, input_max=input_max)[0]
        for steps in (1, 2, 3):
            per_t = quantize(with_timesteps(g_float, steps), bits, input_max=input_max)[0]
            assert graph_differences(per_t, with_timesteps(once, steps)) == []
            assert graph_differences(per_t, once) != []  # T is really re-set


def test_the_sweep_quantizes_once_per_width_and_shares_the_weights():
    g_float, _ = make_graphs(make_model())
    x, y = sample_input(6), (torch.arange(6) % 10).numpy()
    made, seen = [], {}

    def quantizer(graph, bits):
        made.append((bits, graph.timesteps))
        return quantize(graph, bits, input_max=2.0)[0]

    def runner(graph, xs):
        bits = graph.metadata["quantization"]["weight_bits"]
        seen.setdefault(bits, set()).update(
            id(p.weight) for p in graph.projections)
        return run_int(graph, xs)

    points = sweep(g_float, x, y, runner, (8, 6, 4), [1, 2, 4], reuse_prefix=False,
                   quantizer=quantizer)
    assert len(points) == 9
    assert made == [(8, 4), (6, 4), (4, 4)]
    # every T of one width ran on the same weight arrays, one set per width
    projections = len(g_float.projections)
    assert {bits: len(ids) for bits, ids in seen.items()} == {8: projections, 6: projections,
                                                              4: projections}
