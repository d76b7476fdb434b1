"""NIR files in the peers' own importers, spike for spike against ir-float (small nets)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from conftest import make_graphs, make_model, sample_input

from mlf_deploy.ir.reference import run_reference
from mlf_deploy.ir.semantics import prepare_input

nir = pytest.importorskip("nir")
pytest.importorskip("nirtorch")
from mlf_deploy.exporters.nir.export import to_nir  # noqa: E402
from mlf_deploy.exporters.nir.importer import read_nir  # noqa: E402
from mlf_deploy.runtimes.nir_peers import run_peer  # noqa: E402


def _mismatches(spikes: dict, ref) -> int:
    assert set(spikes) == set(ref.spikes)
    return sum(int((spikes[p] != ref.spikes[p]).sum()) for p in ref.spikes)


@pytest.fixture(scope="module")
def ds_case():
    graph, _ = make_graphs(make_model())
    x = sample_input(16)
    return graph, prepare_input(graph, x), run_reference(graph, x)


def test_snntorch_importer_in_float64_is_exact(ds_case):
    pytest.importorskip("snntorch")
    graph, frames, ref = ds_case
    spikes, logits = run_peer(to_nir(graph, "snntorch"), "snntorch-f64", frames)
    assert _mismatches(spikes, ref) == 0
    np.testing.assert_allclose(logits, ref.logits, rtol=0, atol=1e-12)


def test_snntorch_stock_float32_importer_agrees_on_top1(ds_case):
    pytest.importorskip("snntorch")
    graph, frames, ref = ds_case
    spikes, logits = run_peer(to_nir(graph, "snntorch"), "snntorch", frames)
    total = sum(s.size for s in ref.spikes.values())
    assert _mismatches(spikes, ref) <= 0.001 * total  # float32 arithmetic: a few flips at most
    assert np.array_equal(logits.argmax(1), ref.logits.argmax(1))


def test_norse_through_nirtorch_matches_and_stock_from_nir_does_not(ds_case):
    pytest.importorskip("norse")
    graph, frames, ref = ds_case
    g = to_nir(graph, "norse")
    spikes, logits = run_peer(g, "norse-nirtorch", frames)
    assert _mismatches(spikes, ref) == 0
    assert np.array_equal(logits.argmax(1), ref.logits.argmax(1))
    spikes, logits = run_peer(g, "norse", frames)  # deprecated nirtorch.load: wrong node order
    assert _mismatches(spikes, ref) > 0 or logits.shape != ref.logits.shape


def _leaky(snn, shape, beta, **kw):
    # per-neuron parameters: snnTorch writes scalar ones as 0-d arrays, which NIR's checks reject
    return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.full(shape, 1.0),
                     init_hidden=True, reset_mechanism="zero", **kw)


def test_snntorch_written_conv_net_imports_and_runs_exactly(tmp_path):
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), _leaky(snn, (4, 8, 8), 0.75),
        torch.nn.Conv2d(4, 6, 3, stride=2, padding=1), _leaky(snn, (6, 4, 4), 0.5),
        torch.nn.Flatten(), torch.nn.Linear(96, 10), _leaky(snn, (10,), 0.75, output=True))
    with torch.no_grad():
        for m in net:
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.weight.mul_(3.0)  # enough drive that every layer fires
    nir.write(str(tmp_path / "snn.nir"),
              export_to_nir(net, torch.rand(1, 1, 8, 8), ignore_dims=[0]))
    steps = 6
    graph = read_nir(tmp_path / "snn.nir", timesteps=steps)
    frames = torch.rand(steps, 5, 1, 8, 8, generator=torch.Generator().manual_seed(3)) * 2
    ref = run_reference(graph, frames)

    # snnTorch's own run, in float64 like ir-float; its 0/1 spikes come out float32
    net = net.double()
    for m in net:
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.register_forward_pre_hook(lambda mod, a: tuple(t.double() for t in a))
    record = {i: [] for i, m in enumerate(net) if isinstance(m, snn.Leaky)}
    for i, store in record.items():
        net[i].register_forward_hook(functools.partial(
            lambda keep, mod, a, out: keep.append(out[0] if isinstance(out, tuple) else out),
            store))
        net[i].reset_mem()
    with torch.no_grad():
        for t in range(steps):
            net(frames[t].double())
    ours = {f"{i}/L0": torch.stack(v).to(torch.uint8).numpy() for i, v in record.items()}
    for name, s in ours.items():
        s = s.reshape(ref.spikes[name].shape)
        assert s.any(), f"{name} never fires: the test would prove nothing"
        assert np.array_equal(s, ref.spikes[name]), f"{name}: {(s != ref.spikes[name]).sum()} flips"
