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
from mlf_deploy.runtimes.sanafe_network import NetworkBuilder

INSTALL_HINT = "SANA-FE is not installed: pip install 'mlf-deploy[sanafe]' (sanafe==2.2.9)"
EDGE_BUDGET = 600_000  # synapses per SANA-FE run (~1.5 GB of its memory)


def check_sanafe_graph(graph) -> None:
    """Refuse a graph whose fields our SANA-FE network cannot honour, naming the field."""
    if graph.numeric != "int":  # its LIFs take our fixed-point mantissas
        raise UserError("SANA-FE runs the int graph; quantize the float graph first")
    if graph.graded:
        raise UserError("SANA-FE sends binary spikes only; run it on the binary lowering")
    for p in graph.projections:  # its synapses scale by 2^e; ours floor each projection's sum
        if p.source != graph.input.name and graph.nodes[p.target].weight_exp < 0:
            raise UserError(f"layer {p.target}: weight exponent "
                            f"{graph.nodes[p.target].weight_exp} < 0 floors each projection's "
                            "sum, which SANA-FE's synapses cannot; run this graph on ir-int or "
                            "ONNX")


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
                            "forgets a membrane; run one sample "
                            f"({option('simulator_samples', 1)})")
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
    check_sanafe_graph(graph)
    sanafe = import_sanafe()
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
            net = NetworkBuilder(sanafe, arch, graph, result, cores, total_steps,
                                 window).build(plan, charged)
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
