"""Lava runs are bounded and clean: process count and timeout from the network, the spike delay,
and a Lava process killed mid-run (as the out-of-memory killer does) reported with nothing left."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
from conftest import make_graphs, make_model, sample_input
from lava_probe import running_lifs

from mlf_deploy.exporters.lava.lava_import import lava_available
from mlf_deploy.runtimes.lava_guard import lava_workers

pytestmark = [pytest.mark.lava,
              pytest.mark.skipif(not lava_available(), reason="lava-nc is not installed")]


@pytest.mark.parametrize("variant,levels", [("ds", 3), ("plain", 2)])
def test_process_count_and_timeout_follow_the_built_network(variant, levels):
    from mlf_deploy.exporters.lava.export import build_processes
    from mlf_deploy.ir.semantics import prepare_input
    from mlf_deploy.runtimes.lava_guard import default_timeout, process_count

    _, graph = make_graphs(make_model(variant=variant, levels=levels))
    net = build_processes(graph, prepare_input(graph, sample_input(2)))
    assert process_count(graph) == len(net.procs)
    assert net.relays  # both variants delay some path, so the count includes SpikeDelays
    assert default_timeout(graph, 8) > default_timeout(graph, 1) > 60


@pytest.mark.parametrize("integer", [True, False])
def test_spike_delay_reemits_spikes_exactly_delay_steps_later(integer):
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor

    from mlf_deploy.exporters.lava.lava_delay import spike_delay_classes

    steps, delay = 12, 3
    spikes = (np.random.default_rng(0).random((2, 3, steps)) < 0.5).astype(
        np.int32 if integer else float)
    classes = spike_delay_classes()
    source, monitor = RingBuffer(data=spikes), Monitor()
    ring = classes.SpikeDelay(shape=(2, 3), delay=delay)
    source.s_out.connect(ring.s_in)
    monitor.probe(ring.s_out, steps)
    cfg = Loihi2SimCfg(select_tag="fixed_pt" if integer else "floating_pt",
                       exception_proc_model_map={ring: classes.fixed if integer else classes.float})
    try:
        source.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
        out = next(iter(next(iter(monitor.get_data().values())).values()))
    finally:
        source.stop()
    out = np.asarray(out).reshape(steps, 2, 3)
    np.testing.assert_array_equal(out[delay:], np.moveaxis(spikes, -1, 0)[:-delay])
    assert not out[:delay].any() and out[delay:].any()


@pytest.mark.slow
def test_killed_lava_process_is_reported_and_nothing_is_left(small_graphs):
    from mlf_deploy.ir.semantics import prepare_input
    from mlf_deploy.runtimes.lava import LavaRunError, run_chunk
    from mlf_deploy.runtimes.lava_guard import _alive, group_pids, group_shm_files, process_count

    _, graph = small_graphs
    frames, caught = prepare_input(graph, sample_input(200)), []  # 800+ steps: outlasts the kill

    def run():
        try:
            run_chunk(graph, frames, timeout=600)
        except LavaRunError as exc:
            caught.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline, worker, held = time.monotonic() + 300, None, set()
    while time.monotonic() < deadline and thread.is_alive():
        worker = worker or next(iter(lava_workers(os.getpid())), None)
        members = group_pids(worker) if worker else []
        lifs = running_lifs(worker) if worker else []
        if len(members) > process_count(graph) and lifs:  # every Lava process has started
            held = group_shm_files(worker)
            victim = lifs[0]  # a Lava process, not a helper
            os.kill(victim, signal.SIGKILL)  # what the out-of-memory killer does
            break
        time.sleep(0.2)
    thread.join(300)
    assert held, "the run ended before a Lava process could be killed"
    assert len(caught) == 1
    assert "was killed by SIGKILL; most likely out of memory" in str(caught[0])
    # nothing runs on; killed processes whose parent died are zombies until init reaps them
    assert [p for p in group_pids(worker) if _alive(p)] == []
    assert [f for f in held if os.path.exists(f)] == []
