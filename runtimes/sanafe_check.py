"""Do SANA-FE's LIFs, set to the graph's fixed-point rule, reproduce ir-int's spikes?

SANA-FE's ``leaky_integrate_fire`` soma decays the membrane, truncates it to 1/64 toward zero,
adds bias and input, fires on a strict ``>`` and resets hard: our int rule, with the membrane in
current units (``v / 64``), the threshold mantissa as threshold, ``r / 4096`` as leak. It delivers
a spike the step after it is sent, so each layer is checked *fed*: its inputs are ir-int's spikes
replayed on their mapped cores (and its bias as a current arriving with them), and its own LIFs'
spikes, one step later, are compared with ir-int's, per population, sample and timestep. The
input layer takes analog currents from the host, which SANA-FE cannot send: its spikes are
ir-int's (listed as ``fed``). SANA-FE has no 24-bit wrap or saturation; a run that hit one
(``result.overflow``) may differ there.
"""

from __future__ import annotations

import tempfile

import numpy as np

from mlf_deploy.hardware.loihi1 import LOIHI1, LOIHI1_SANAFE
from mlf_deploy.hardware.mapping import map_graph
from mlf_deploy.hardware.placement import core_of_positions
from mlf_deploy.runtimes.sanafe_arch import arch_file, unit_counts
from mlf_deploy.runtimes.sanafe_chip import (
    EDGE_BUDGET,
    _gap,
    _plan,
    _runs,
    check_sanafe_graph,
    import_sanafe,
)
from mlf_deploy.runtimes.sanafe_network import NetworkBuilder


def host_layers(graph) -> set:
    return {p.target for p in graph.projections if p.source == graph.input.name}


def sanafe_spikes(graph, result, mapping=None, edge_budget: int = EDGE_BUDGET) -> dict:
    """Level population -> ``(T, B, C, H, W)`` uint8 spikes of SANA-FE's LIFs, each layer fed
    ``result``'s (ir-int's) input spikes; the input layer's populations are ``result``'s."""
    check_sanafe_graph(graph)
    sanafe = import_sanafe()
    mapping = mapping or map_graph(graph, LOIHI1)
    steps, batch = result.timesteps, result.batch
    gap = _gap(graph, batch)
    window = [i * (steps + gap) + t for i in range(batch) for t in range(steps)]
    cores = core_of_positions(graph, mapping)
    host = host_layers(graph)
    tiles = -(-len(mapping.core_list) // LOIHI1_SANAFE.cores_per_tile)
    out = {p.name: (result.spikes[p.name] if p.layer in host else
                    np.zeros_like(result.spikes[p.name])) for p in graph.populations}
    run_cores = [[c for c in run if mapping.core_list[c].layer not in host]
                 for run in _runs(mapping, graph, edge_budget)]
    with tempfile.TemporaryDirectory() as tmp:
        for run in filter(None, run_cores):
            plan = _plan(graph, cores, set(run), False)
            units = unit_counts(graph, cores, plan, set(), bias_cores=run)
            arch = arch_file(sanafe, tiles, units, tmp)
            net = NetworkBuilder(sanafe, arch, graph, result, cores, window[-1] + 2, window,
                                 reproduce=True).build(plan, set())
            chip = sanafe.SpikingChip(arch)
            chip.load(net)
            trace = chip.sim(window[-1] + 2, spike_trace=True, processing_threads=1)
            _record(graph, plan, trace["spike_trace"], out, steps, gap)
            del chip, net
    return out


def _record(graph, plan, trace, out, steps, gap) -> None:
    """SANA-FE step ``s`` of a LIF is the graph's step ``s - 1`` (one step of delivery)."""
    for s, fired in enumerate(trace):
        sample, t = divmod(s - 1, steps + gap)
        if s == 0 or t >= steps:
            continue
        for neuron in fired:
            group = neuron.group_name
            if not group.startswith("lif:"):
                continue
            name = group[4:]
            mine = plan["layers"][name][0]
            level, j = divmod(neuron.neuron_offset, len(mine))
            pop = graph.populations_of(name)[level].name
            out[pop].reshape(out[pop].shape[0], out[pop].shape[1], -1)[t, sample, mine[j]] = 1


def spike_mismatches(graph, result, spikes: dict) -> dict:
    """Population -> ``(mismatches, total)`` of SANA-FE's spikes against ``result``'s."""
    return {p.name: (int((spikes[p.name] != result.spikes[p.name]).sum()),
                     int(result.spikes[p.name].size)) for p in graph.populations}
