"""The run-size guard's estimate follows the buffers the code allocates: what a reference run
records, what its senders pass on, and what streamed totals keep (sizes, no measurement)."""

from __future__ import annotations

import pytest
import torch
from conftest import make_graphs, make_model, sample_input

from mlf_deploy import limits, run_memory
from mlf_deploy.errors import UserError
from mlf_deploy.graded_lowering import with_spikes
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.ir.semantics import prepare_input
from mlf_deploy.run_totals import RunTotals


def _nbytes(arrays) -> int:
    return sum(a.nbytes for a in arrays)


@pytest.mark.parametrize("events", [False, True])
@pytest.mark.parametrize("spikes", ["binary", "graded"])
@pytest.mark.parametrize("states", [True, False])
def test_the_estimate_counts_what_a_run_holds(events, spikes, states):
    channels = 2 if events else 1
    _, g_int = make_graphs(make_model(in_channels=channels, events=events), channels,
                           events=events)
    graph = with_spikes(g_int, spikes)
    x = sample_input(5, channels, events=events)
    result = run_reference(graph, x, record_states=states)
    parts = run_memory.run_parts(graph, 5, states, totals=2)
    assert parts["recorded"] == _nbytes([*result.spikes.values(), *result.states.values()])
    # the senders' float64 values: one per level neuron (binary) or position (graded)
    sent = sum(5 * graph.timesteps * 8 * int(torch.tensor(p.shape).prod())
               for p in graph.populations)
    assert parts["passed_on"] == sent + prepare_input(graph, x).nbytes
    totals = RunTotals.empty()
    totals.add(result, g_int, x)
    kept = [*totals.spikes.values(), *totals.fired.values()]
    if events:
        kept.append(totals.input_events)
    assert parts["totals"] == 2 * _nbytes(kept)
    # samples scale what a chunk records, passes on and works with; not the totals
    double = run_memory.run_parts(graph, 10, states, totals=2)
    assert {k: double[k] for k in parts} == {k: v * (1 if k == "totals" else 2)
                                            for k, v in parts.items()}


def test_graded_passes_on_one_value_per_position():
    _, g_int = make_graphs(make_model())
    binary, graded = (run_memory.run_parts(with_spikes(g_int, s), 4, False) for s in
                      ("binary", "graded"))
    assert graded["recorded"] == binary["recorded"]
    assert graded["passed_on"] < binary["passed_on"]


def test_the_guard_refuses_what_does_not_fit_and_records_its_estimate(monkeypatch):
    _, g_int = make_graphs(make_model())
    run_memory.ESTIMATES.clear()
    limits.check_graph_run(g_int, 7, "a run", states=False, totals=1)
    entry = run_memory.ESTIMATES[-1]
    assert entry["run"] == run_memory.run_bytes(g_int, 7, False, 1)
    assert entry["peak"] == entry["resident"] + entry["run"] and entry["resident"] > 0
    per_sample = run_memory.run_bytes(g_int, 1, True)
    monkeypatch.setattr(limits, "available_memory", lambda: 2 * 10 * per_sample)
    limits.check_graph_run(g_int, 10, "a run")
    with pytest.raises(UserError, match=r"a run needs about .* use samples=10 or fewer"):
        limits.check_graph_run(g_int, 11, "a run")
