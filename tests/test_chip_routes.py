"""The Loihi 1 tally walks a sender's messages channel by channel (all channels' (position, core)
pairs at once held 5.5 GiB on the cifar10 preset); its sums equal those of every pair at once."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_graphs, make_model, sample_input

from mlf_deploy.energy.chip_bill import ChipTally
from mlf_deploy.graded_lowering import with_spikes
from mlf_deploy.hardware import map_graph
from mlf_deploy.hardware.loihi1 import LOIHI1, LOIHI1_SANAFE
from mlf_deploy.hardware.placement import core_of_positions, destinations
from mlf_deploy.ir.reference import run_reference


def _all_pairs_at_once(graph, mapping, result):
    """message, hops (pJ) and per-core message ns from every (position, core) pair at once."""
    costs, cores = LOIHI1_SANAFE, core_of_positions(graph, mapping)
    work, message, hops = np.zeros(len(mapping.core_list)), 0, 0.0
    for layer in graph.layers:
        where = cores[layer.name].ravel()
        for s in graph.populations_of(layer.name):
            levels = [result.spikes[n] for n in graph.sender_levels(s.name)]
            ev = (sum(x.astype(np.int64) for x in levels) > 0).astype(np.int64)
            ev = ev.reshape(ev.shape[0], ev.shape[1], -1).sum(axis=(0, 1))
            pos, dst = destinations(graph, mapping, s.name)
            ew, ns = costs.hops(where[pos], dst)
            message += int(ev[pos].sum())
            hops += float((ev[pos] * (ew * costs.hop_east_west_pj
                                      + ns * costs.hop_north_south_pj)).sum())
            np.add.at(work, dst, ev[pos] * costs.message_in_ns)
    return message, hops, work


@pytest.mark.parametrize("spikes", ["binary", "graded"])
def test_channel_walk_equals_all_pairs_at_once(spikes):
    _, g_int = make_graphs(make_model())
    graph = with_spikes(g_int, spikes)
    mapping = map_graph(graph, LOIHI1)
    result = run_reference(g_int, sample_input(6), record_states=False)
    tally = ChipTally(graph, mapping)
    tally.add(result)
    message, hops, work = _all_pairs_at_once(graph, mapping, result)
    assert message > 0 and tally.sums["message"] == message
    assert tally.sums["hops"] == pytest.approx(hops, rel=1e-12)
    # the tally's work adds spike-out, soma and synapse time too; messages are one part
    assert (tally.work >= work - 1e-9).all() and work.sum() > 0
