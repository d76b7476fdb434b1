"""energy and evaluate stream their samples: the figures of a run kept as per-chunk totals equal
those of one unchunked run of the same samples, and memory holds one chunk."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_graphs, make_model, sample_input

from mlf_deploy.energy import estimate
from mlf_deploy.energy.neurobench_names import neurobench_fields
from mlf_deploy.graded_lowering import with_spikes
from mlf_deploy.hardware.resources import compare_forms
from mlf_deploy.hardware.sweep import sweep, sweep_chunks, with_timesteps
from mlf_deploy.quantization import quantize
from mlf_deploy.run_totals import RunTotals
from mlf_deploy.workflows.analysis import energy_report, run_int
from mlf_deploy.workflows.options import EnergyOptions
from mlf_deploy.workflows.pipeline import load_pipeline


def _flat(obj, path=""):
    """``{path: leaf}`` of nested dicts and lists, so two reports compare leaf by leaf."""
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in _flat(val, f"{path}/{key}").items()}
    if isinstance(obj, (list, tuple)):
        return {k: v for i, val in enumerate(obj) for k, v in _flat(val, f"{path}/{i}").items()}
    return {path: obj}


def assert_same_report(a, b):
    fa, fb = _flat(a), _flat(b)
    assert fa.keys() == fb.keys()
    for key, va in fa.items():
        vb = fb[key]
        if isinstance(va, float) or isinstance(vb, float):
            assert va == pytest.approx(vb, rel=1e-12, abs=1e-12), key
        else:
            assert va == vb, key


def _chunks(x, y, size, events):
    axis = 1 if events else 0
    for start in range(0, x.shape[axis], size):
        part = x[:, start:start + size] if events else x[start:start + size]
        yield part, y[start:start + size]


def _totals(graph, binary, x, y, size, events):
    totals = RunTotals.empty()
    for xc, _ in _chunks(x, y, size, events):
        totals.add(run_int(graph, xc), binary, xc)
    return totals


@pytest.mark.parametrize("events", [False, True])
def test_estimate_of_totals_equals_unchunked(events):
    model = make_model(in_channels=2 if events else 1, events=events)
    _, g_int = make_graphs(model, in_channels=2 if events else 1, events=events)
    x = sample_input(11, 2 if events else 1, events=events)
    y = torch.arange(11) % 10
    whole = run_int(g_int, x)
    totals = _totals(g_int, g_int, x, y, 4, events)  # 4 + 4 + 3
    assert totals.batch == 11
    np.testing.assert_array_equal(totals.logits, whole.logits)
    a, b = estimate(g_int, whole, x).to_dict(), estimate(g_int, totals, totals).to_dict()
    assert_same_report(a, b)
    assert a["dormant_fraction"] == b["dormant_fraction"]
    assert neurobench_fields(g_int, whole, 0.5) == neurobench_fields(g_int, totals, 0.5)
    graded = with_spikes(g_int, "graded")
    cmp_whole = compare_forms(g_int, graded, whole, mapping=False)
    cmp_totals = compare_forms(g_int, graded, totals, mapping=False)
    assert_same_report(cmp_whole, cmp_totals)
    # the graded form sends fewer messages than the binary one: the totals kept "any level fired"
    assert cmp_totals["graded"]["spike_messages"] < cmp_totals["binary"]["spike_messages"]


def test_graded_run_totals_equal_binary_run_totals():
    _, g_int = make_graphs(make_model())
    x, y = sample_input(9), torch.arange(9) % 10
    binary = _totals(g_int, g_int, x, y, 4, False)
    graded = _totals(with_spikes(g_int, "graded"), g_int, x, y, 4, False)
    for pop, counts in binary.spikes.items():
        np.testing.assert_array_equal(graded.spikes[pop], counts)
    assert binary.fired.keys() == graded.fired.keys()


def test_sweep_in_chunks_equals_one_batch():
    g_float, _ = make_graphs(make_model())
    x, y = sample_input(10), (torch.arange(10) % 10).numpy()
    kw = dict(weight_bits=(8, 4), timesteps=[1, 2, 4], input_max=2.0)
    whole = sweep(g_float, x, y, run_int, **kw)
    chunked = sweep_chunks(g_float, _chunks(x, y, 3, False), run_int, **kw)
    assert_same_report([p.to_dict() for p in whole], [p.to_dict() for p in chunked])
    assert len({p.accuracy for p in whole} | {p.synops_per_inference for p in whole}) > 2
    # against an independent count: every point estimated from its own full raster
    every = sweep(g_float, x, y, run_int, reuse_prefix=False, **kw)
    assert_same_report([p.to_dict() for p in every], [p.to_dict() for p in chunked])


@pytest.mark.parametrize("reuse_prefix", [True, False])
def test_event_sweep_in_chunks_equals_rasters(reuse_prefix):
    model = make_model(in_channels=2, events=True)
    g_float, _ = make_graphs(model, in_channels=2, events=True)
    x, y = sample_input(7, 2, events=True), (torch.arange(7) % 10).numpy()
    kw = dict(weight_bits=(8,), timesteps=[2, 4], reuse_prefix=reuse_prefix)
    chunked = sweep_chunks(g_float, _chunks(x, y, 3, True), run_int, **kw)
    for p in chunked:
        g = quantize(with_timesteps(g_float, p.timesteps), 8)[0]
        xs = x[:p.timesteps]
        ref = estimate(g, run_int(g, xs), xs).to_dict()
        assert_same_report(ref, p.breakdown.to_dict())


def test_energy_report_does_not_depend_on_the_chunk(ckpt, monkeypatch):
    pipe = load_pipeline(ckpt)
    _, one = energy_report(pipe, EnergyOptions(samples=24))
    monkeypatch.setattr("mlf_deploy.workflows.analysis.chunk_size", lambda graph: 5)
    _, five = energy_report(pipe, EnergyOptions(samples=24))
    assert one["samples"] == five["samples"] == 24
    assert_same_report(one, five)
