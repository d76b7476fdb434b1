"""Lava backend against the reference simulator: Lava's own spikes and states are the oracle.

Every comparison is exact: lava-fixed vs the integer reference on spikes *and* membrane, every
population and model timestep; lava-float vs the float reference on spikes. Each Lava process is an
OS process, so the networks are the small conftest DS-ResNets and the runs few.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import subprocess
import sys

import numpy as np
import pytest
from conftest import make_graphs, make_model, sample_input

from mlf_deploy.exporters.lava.lava_import import lava_available
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.quantization.rules import RuleViolation

pytestmark = [pytest.mark.lava,
              pytest.mark.skipif(not lava_available(), reason="lava-nc is not installed")]


def assert_same(lava, ref, states=True):
    assert set(lava.spikes) == set(ref.spikes)
    for name in ref.spikes:
        bad = np.argwhere(lava.spikes[name] != ref.spikes[name])
        assert bad.size == 0, \
            f"{name}: {len(bad)} spike mismatches, first (t, b, c, h, w) {bad[:5]}"
        if states:
            diff = np.argwhere(lava.states[name] != ref.states[name])
            assert diff.size == 0, f"{name}: {len(diff)} membrane mismatches, first {diff[:5]}: " \
                f"lava {lava.states[name][tuple(diff[0])]} ref {ref.states[name][tuple(diff[0])]}"
    assert sum(int(s.sum()) for s in ref.spikes.values()) > 0  # a silent net proves nothing
    np.testing.assert_allclose(lava.logits, ref.logits, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_ds_resnet_k3_static_fixed_and_float_match_reference():
    from mlf_deploy.runtimes.lava import run_lava

    float_graph, int_graph = make_graphs(make_model())
    x = sample_input(8)
    fixed = run_lava(int_graph, x)
    assert fixed.backend == "lava-fixed" and fixed.states["stem_mlf/L0"].dtype == np.int64
    assert_same(fixed, run_reference(int_graph, x))
    flt = run_lava(float_graph, x, record_states=False)
    assert flt.backend == "lava-float" and flt.states == {}
    assert_same(flt, run_reference(float_graph, x), states=False)


@pytest.mark.slow
def test_events_two_channels_k2_fixed_matches_reference():
    from mlf_deploy.runtimes.lava import run_lava

    _, graph = make_graphs(make_model(in_channels=2, levels=2, events=True), in_channels=2,
                           events=True)
    x = sample_input(4, in_channels=2, events=True)
    assert_same(run_lava(graph, x), run_reference(graph, x))


@pytest.mark.slow
def test_plain_resnet_odd_input_in_chunks_matches_reference():
    from mlf_deploy.runtimes.lava import run_lava

    _, graph = make_graphs(make_model(variant="plain", in_hw=(7, 9)), in_hw=(7, 9))
    x = sample_input(3, in_hw=(7, 9))
    assert_same(run_lava(graph, x, samples_per_run=2), run_reference(graph, x))  # chunks 2 + 1


def test_unrepresentable_graph_is_refused_before_any_process(small_graphs, monkeypatch):
    import mlf_deploy.runtimes.lava as rl

    _, graph = small_graphs
    pop = graph.populations[4]
    nodes = dict(graph.nodes, **{pop.name: dataclasses.replace(pop, v_threshold=2 ** 17)})
    bad = dataclasses.replace(graph, nodes=nodes)

    def no_run(*args, **kwargs):
        raise AssertionError("a Lava run was started for a refused graph")

    monkeypatch.setattr(rl, "run_chunk", no_run)
    monkeypatch.setattr(rl, "simulate", no_run)
    with pytest.raises(RuleViolation, match=f"threshold_fits_17_bits failed at {pop.name}"):
        rl.run_lava(bad, sample_input(2))
    assert multiprocessing.active_children() == []


def test_failing_run_returns_with_clear_error():
    """A Monitor asked for fewer steps than the run overruns inside a Lava process; stop() would
    then hang, so execute() must tear the actors down and raise LavaRunError."""
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    from mlf_deploy.runtimes.lava_sim import LavaRunError, execute, run_config

    _, graph = make_graphs(make_model())
    source, lif, monitor = RingBuffer(data=np.ones((2, 3), np.int32)), LIF(shape=(2,)), Monitor()
    source.s_out.connect(lif.a_in)
    monitor.probe(lif.v, 2)
    with pytest.raises(LavaRunError, match=r"Lava run failed in a Lava process \(IndexError"):
        execute(lif, 5, run_config(graph, record=False))
    assert multiprocessing.active_children() == []


def test_stuck_run_is_killed_at_timeout(small_graphs):
    from mlf_deploy.ir.semantics import prepare_input
    from mlf_deploy.runtimes.lava import LavaRunError, run_chunk

    _, graph = small_graphs
    with pytest.raises(LavaRunError, match="did not finish within 1 s"):
        run_chunk(graph, prepare_input(graph, sample_input(1)), timeout=1)


def test_missing_lava_raises_one_line_hint(small_graphs, monkeypatch):
    import mlf_deploy.runtimes.lava as rl
    from mlf_deploy.exporters.lava.lava_import import INSTALL_HINT, LavaUnavailable

    def unavailable():
        raise LavaUnavailable(INSTALL_HINT)

    monkeypatch.setattr(rl, "import_lava", unavailable)
    with pytest.raises(LavaUnavailable, match="pip install") as err:
        rl.run_lava(small_graphs[1], sample_input(1))
    assert "\n" not in str(err.value)
    code = ("import sys, mlf_deploy, mlf_deploy.ir, mlf_deploy.ir.reference, "
            "mlf_deploy.runtimes.lava, mlf_deploy.exporters.lava.export; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'lava'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_exported_loader_runs_standalone_and_matches(tmp_path):
    from mlf_deploy.exporters.lava.export import export_lava

    _, graph = make_graphs(make_model(widths=(2, 4, 4)))
    out = export_lava(graph, tmp_path / "net")
    assert sorted(p.name for p in out.iterdir()) == [".mlf-deploy-output.json", "README.md",
                                                     "graph.mlfg", "input.json", "lava_build.py",
                                                     "lava_delay.py", "lava_graded.py",
                                                     "lava_import.py", "portable.py",
                                                     "run_lava_network.py"]
    x = sample_input(2)
    np.save(tmp_path / "x.npy", x.numpy())
    # -I: isolated mode, so the loader cannot import this project even by accident
    proc = subprocess.run([sys.executable, "-I", str(out / "run_lava_network.py"), "--input",
                           str(tmp_path / "x.npy"), "--out", str(tmp_path / "r.npz")],
                          check=True, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert "processes built; compiling and running" in proc.stderr  # progress while it works
    ref = run_reference(graph, x)
    with np.load(tmp_path / "r.npz") as r:
        np.testing.assert_allclose(r["logits"], ref.logits, rtol=0, atol=1e-12)
        for name in graph.readout.sources:
            np.testing.assert_array_equal(r[name.replace("/", "__")], ref.spikes[name])
