"""The integer forward of the torch model against the integer reference running the quantized graph:
two independent computations (torch modules walked directly vs lower -> quantize -> simulate)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_graphs, make_model, sample_input

from mlf_deploy.ir.reference import run_reference
from mlf_deploy.qat import IntegerForward, IntGrid


def _compare(model, graph_int, x, grid, firing_share=1.0):
    ref = run_reference(graph_int, x)
    fwd = IntegerForward(model, grid, record=True)
    with torch.no_grad():
        logits = fwd(x).numpy()
    assert set(fwd.spikes) == set(ref.spikes)
    for pop, s_ref in ref.spikes.items():
        bad = np.argwhere(fwd.spikes[pop] != s_ref)
        assert bad.size == 0, f"{pop}: {len(bad)} spike mismatches, first at {bad[0].tolist()}"
        v_bad = np.argwhere(fwd.states[pop] != ref.states[pop])
        assert v_bad.size == 0, \
            f"{pop}: {len(v_bad)} membrane mismatches, first at {v_bad[0].tolist()}"
    assert np.array_equal(logits, ref.logits)
    assert fwd.overflow == ref.overflow
    # not silent: (nearly) every level fires somewhere, so equality is not two empty rasters
    assert np.mean([s.any() for s in ref.spikes.values()]) >= firing_share
    return fwd, ref


@pytest.mark.parametrize("bits", [8, 4, 2])
@pytest.mark.parametrize("variant", ["ds", "plain"])
def test_integer_forward_equals_reference(bits, variant):
    model = make_model(variant=variant, seed=3)
    _, q = make_graphs(model, weight_bits=bits)
    grid = IntGrid.of(model, bits, "static", input_max=2.0)
    _compare(model, q, sample_input(16, seed=5), grid)


def test_integer_forward_equals_reference_events_k2():
    model = make_model(levels=2, events=True, in_channels=2, seed=4)
    _, q = make_graphs(model, in_channels=2, events=True, weight_bits=4)
    grid = IntGrid.of(model, 4, "events", input_max=None)
    _compare(model, q, sample_input(8, in_channels=2, events=True, seed=6), grid)


def test_negative_weight_exponent_floors_each_projection():
    """Tiny weights push the exponent below zero, where each source population is floored apart."""
    model = make_model(seed=2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.mul_(1e-2)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.bias.uniform_(0.3, 3.0)  # the bias alone keeps every level firing
    _, q = make_graphs(model, weight_bits=8)
    assert min(layer.weight_exp for layer in q.layers) < 0
    grid = IntGrid.of(model, 8, "static", input_max=2.0)
    _compare(model, q, sample_input(8, seed=7), grid, firing_share=0.5)


def test_gradients_reach_every_trained_parameter():
    model = make_model(seed=1)
    grid = IntGrid.of(model, 4, "static", input_max=2.0)
    logits = IntegerForward(model, grid)(sample_input(8, seed=2))
    torch.nn.functional.cross_entropy(logits, torch.arange(8) % 10).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.stem.conv.weight.grad.abs().sum() > 0
    assert model.fc.weight.grad.abs().sum() > 0
