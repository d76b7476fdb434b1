"""Energy and latency per inference from SANA-FE (``pip install sanafe``), on our own mapping.

SANA-FE cannot reproduce the graph's spikes: it delivers a spike in the step *after* it is sent
(the graph's layers see each other's spikes in the same step, and residual paths of different
depth would need per-synapse delays), and the int graph's input layer takes analog currents. So
the activity is **fed**: every population's spikes are ir-int's, replayed by input neurons on the
cores our mapping gives that population; every layer's K level LIFs sit on their mapped cores and
receive those spikes through their real synapses (threshold out of reach: their own spikes are
not used). SANA-FE prices what happens: synaptic events, soma accesses and updates, spikes out
(charged on the replaying neuron), messages and mesh hops, and the time of each step.

A spike is one message per destination core, so energy is additive over destination cores: the
network is simulated in runs of a few destination cores each (SANA-FE holds ~2.4 KB per synapse),
and the runs' energies add. Latency per step is the slowest run's step without its barrier, plus
the barrier of all tiles in use (contention between runs is not modelled).
"""

from __future__ import annotations

import math
import tempfile
import time

import numpy as np

from mlf_deploy.energy.chip_bill import SANAFE_GROUPS
from mlf_deploy.errors import UserError, option
from mlf_deploy.hardware.loihi1 import LOIHI1, LOIHI1_SANAFE
from mlf_deploy.hardware.mapping import map_graph
from mlf_deploy.hardware.placement import core_of_positions, projection_taps
from mlf_deploy.ir import semantics as sem
from mlf_deploy.runtimes.sanafe_arch import arch_file, unit_counts

INSTALL_HINT = "SANA-FE is not installed: pip install 'mlf-deploy[sanafe]' (sanafe==2.2.9)"
EDGE_BUDGET = 600_000  # synapses per SANA-FE run (~1.5 GB of its memory)


def import_sanafe():
    try:
        import sanafe
    except ImportError as err:
        raise UserError(INSTALL_HINT) from err
    return sanafe


def _gap(graph, samples: int) -> int:
    """Idle steps between samples after which every membrane has decayed to exactly 0 (each
    step keeps at most ``rho`` of it, and 24 bits are gone after ``24 / -log2 rho`` steps)."""
    rho = max(p.v_retention for p in graph.level_populations)
    if rho <= 0:
        return 1
    if rho >= 1:
        if samples > 1:
            raise UserError("SANA-FE runs samples one after another and a retention of 1 never "
                            f"forgets a membrane; run one sample ({option('simulator_samples', 1)})")
        return 0
    return math.ceil(sem.STATE_BITS / -math.log2(rho)) + 1


def _runs(mapping, graph, budget: int) -> list[list[int]]:
    runs, size = [[]], 0
    for i, core in enumerate(mapping.core_list):
        n = core.synapse_bytes * 8 / max(p.weight_bits or 8 for p in graph.projections)
        if runs[-1] and size + n > budget:
            runs.append([])
            size = 0
        runs[-1].append(i)
        size += n
    return runs


def sanafe_bill(graph, result, mapping=None, edge_budget: int = EDGE_BUDGET) -> dict:
    """Run SANA-FE on ``graph`` (binary int form) fed with ``result``'s spikes, placed by our
    mapping onto Loihi 1 cores. Returns energy per inference by SANA-FE's categories (pJ), time
    per inference (s), and how it was run."""
    sanafe = import_sanafe()
    if graph.graded:
        raise UserError("SANA-FE sends binary spikes only; run it on the binary lowering")
    mapping = mapping or map_graph(graph, LOIHI1)
    start = time.perf_counter()
    steps, batch = result.timesteps, result.batch
    gap = _gap(graph, batch)
    window = [i * (steps + gap) + t for i in range(batch) for t in range(steps)]
    total_steps = window[-1] + 1
    cores = core_of_positions(graph, mapping)
    runs = _runs(mapping, graph, edge_budget)
    tiles = math.ceil(len(mapping.core_list) / LOIHI1_SANAFE.cores_per_tile)
    energy, step_ns, charged = dict.fromkeys(SANAFE_GROUPS, 0.0), np.zeros(len(window)), set()
    with tempfile.TemporaryDirectory() as tmp:
        for r, run in enumerate(runs):
            plan = _plan(graph, cores, set(run), r == 0)
            arch = arch_file(sanafe, tiles, unit_counts(graph, cores, plan, charged), tmp)
            net = _build(sanafe, arch, graph, result, cores, plan, total_steps, window, charged)
            chip = sanafe.SpikingChip(arch)
            chip.load(net)
            out = chip.sim(total_steps, perf_trace=True, processing_threads=1)
            perf = out["perf_trace"]
            for g in energy:
                energy[g] += float(np.asarray(perf[f"{g}_energy"])[window].sum()) / 1e-12
            run_tiles = len({c // 4 for c in run})
            ns = np.asarray(perf["sim_time"])[window] * 1e9 - LOIHI1_SANAFE.sync(run_tiles)
            step_ns = np.maximum(step_ns, ns)
            del chip, net
    latency = float((step_ns + LOIHI1_SANAFE.sync(tiles)).sum()) * 1e-9 / batch
    return {"energy_pj": {g: e / batch for g, e in energy.items()},
            "total_pj": sum(energy.values()) / batch, "latency_s": latency,
            "activity": "fed (ir-int's spikes replayed; SANA-FE's own LIFs cannot take the "
                        "graph's same-step semantics)",
            "runs": len(runs), "cores": len(mapping.core_list), "tiles": tiles,
            "samples": batch, "seconds": time.perf_counter() - start,
            "sanafe_version": getattr(sanafe, "__version__", "2.2.9")}


def _bias_neurons(net, cores_hw, group, where, current, levels, total_steps, window, name):
    spikes = np.zeros(total_steps, dtype=bool)
    spikes[window] = True
    on = sorted(set(where.tolist()))
    bias = net.create_neuron_group(f"bias:{name}", len(on))
    for i, core in enumerate(on):
        bias.neurons[i].set_attributes(soma_hw_name="mlf_bias[0]",
                                       model_attributes={"spikes": spikes.tolist()})
        bias.neurons[i].map_to_core(cores_hw[core])
    slot = {core: i for i, core in enumerate(on)}
    pairs = [(slot[c], k * len(where) + j) for k in range(levels) for j, c in enumerate(where)]
    bias.connect_neurons_sparse(group, {"weight": np.tile(current, levels).tolist()}, pairs)


def _lif_attributes(graph, layer) -> dict:
    retention = sem.retention_mant(graph.populations_of(layer.name)[0].v_retention)
    return {"threshold": 1e30, "leak_decay": retention / sem.DECAY_UNIT, "input_decay": 0.0,
            "reset_mode": "hard"}


def _plan(graph, cores, run: set, first: bool) -> dict:
    """Which layers have neurons on the run's cores (their positions, their synapses), and which
    source positions must be replayed for them."""
    layers, replays = {}, {}
    for layer in graph.layers:
        where = cores[layer.name].ravel()
        mine = np.nonzero(np.isin(where, list(run)))[0]
        if len(mine) == 0:
            continue
        index = np.full(where.size, -1)
        index[mine] = np.arange(len(mine))
        taps = {}
        for p in graph.projections_into(layer.name):
            if p.source == graph.input.name:
                continue
            src, dst, widx = projection_taps(graph, p)
            keep = index[dst] >= 0
            taps[p.name] = (src[keep], index[dst[keep]], tuple(a[keep] for a in widx))
            replays.setdefault(p.source, set()).update(np.unique(src[keep]).tolist())
        layers[layer.name] = (mine, taps)
    if first:  # spikes that reach no core (the readout's sources) still cost a spike out
        for pop in graph.populations:
            if not any(p.source == pop.name for p in graph.projections):
                replays.setdefault(pop.name, set()).update(range(int(np.prod(pop.shape))))
    return {"layers": layers, "replays": {k: sorted(v) for k, v in replays.items()}}


def _build(sanafe, arch, graph, result, cores, plan, total_steps, window, charged,
           reproduce=False):
    """One SANA-FE network: the LIFs of the run's cores and the replays of what they read.
    ``reproduce``: the LIFs get the graph's thresholds and log their spikes, and the bias comes
    as a current from one replaying neuron per core firing every step, so that it reaches the
    membrane in the same step as the replayed spikes (SANA-FE integrates a spike the step after
    it is sent; its soma bias would start a step early)."""
    net = sanafe.Network()
    cores_hw = [core for tile in arch.tiles for core in tile.cores]
    targets = {}
    for name, (mine, taps) in plan["layers"].items():
        layer = graph.nodes[name]
        where = cores[name].ravel()
        host = any(p.source == graph.input.name for p in graph.projections_into(name))
        kind = graph.projections_into(name)[0].kind
        bias = sem.shift(np.asarray(layer.bias, dtype=np.float64), layer.bias_exp)
        attrs = _lif_attributes(graph, layer)
        if host:
            attrs["force_update"] = True
        levels = len(layer.populations)
        group = net.create_neuron_group(
            f"lif:{name}", len(mine) * levels, model_attributes=attrs, log_spikes=reproduce,
            soma_hw_name="loihi_lif", default_synapse_hw_name="loihi_conv_synapse"
            if kind == "conv2d" else "loihi_dense_synapse")
        hw = int(np.prod(layer.shape[1:]))
        current = bias[mine // hw] / sem.MEMBRANE_GAIN
        for k, pop in enumerate(graph.populations_of(name)):
            extra = {"threshold": float(pop.v_threshold)} if reproduce else {}
            for j, pos in enumerate(mine):
                n = group.neurons[k * len(mine) + j]
                n.set_attributes(model_attributes={"bias": 0.0 if reproduce else current[j],
                                                   **extra})
                n.map_to_core(cores_hw[where[pos]])
        if reproduce:
            _bias_neurons(net, cores_hw, group, where[mine], current, levels, total_steps, window,
                          name)
        targets[name] = (group, len(mine), taps)
    replays, used = {}, {}
    for name, positions in plan["replays"].items():
        where = cores[graph.nodes[name].layer].ravel()
        group = net.create_neuron_group(f"replay:{name}", len(positions))
        trains = result.spikes[name].reshape(result.timesteps, result.batch, -1)
        for j, pos in enumerate(positions):
            core = int(where[pos])
            family = int((name, pos) in charged)
            charged.add((name, pos))
            unit = used.setdefault((core, family), 0)
            used[core, family] = unit + 1
            spikes = np.zeros(total_steps, dtype=bool)
            spikes[window] = trains[:, :, pos].T.ravel() > 0
            n = group.neurons[j]
            n.set_attributes(soma_hw_name=f"{('mlf_replay', 'mlf_relay')[family]}[{unit}]",
                             model_attributes={"spikes": spikes.tolist()})
            n.map_to_core(cores_hw[core])
        lookup = np.full(int(np.prod(graph.nodes[name].shape)), -1)
        lookup[positions] = np.arange(len(positions))
        replays[name] = (group, lookup)
    for layer_name, (group, count, taps) in targets.items():
        layer = graph.nodes[layer_name]
        exp = 2.0 ** layer.weight_exp
        for p in graph.projections_into(layer_name):
            if p.name not in taps:
                continue
            src, dst, widx = taps[p.name]
            src_group, lookup = replays[p.source]
            w = (np.asarray(p.weight, dtype=np.float64)[widx] * exp).tolist()
            s = lookup[src].tolist()
            for k in range(len(layer.populations)):
                src_group.connect_neurons_sparse(group, {"weight": w},
                                                 list(zip(s, (dst + k * count).tolist())))
    return net
