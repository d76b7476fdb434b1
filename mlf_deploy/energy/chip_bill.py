r"""Per-event energy and latency of a mapped graph on a chip priced like SANA-FE's Loihi 1.

.. math::
    E = e_\text{syn} N_\text{syn} + e_\text{access} N\,T + e_\text{update} U + e_\text{out} S
    + e_\text{msg} M + e_\text{ew} H_\text{ew} + e_\text{ns} H_\text{ns}

per inference: ``N_syn`` synaptic events (every spike times the synapses it drives on the chip;
in the binary lowering each of the K level LIFs is its own neuron with its own synapses, so a
layer's events are K times its shared-current SynOps), ``N T`` neuron accesses (every neuron,
every step), ``U`` soma updates (a neuron with a non-zero bias, a host input, or any input so far
-- its membrane is then non-zero), ``S`` spikes out, ``M`` messages (one per spike per destination
core of the mapping) and the mesh links they cross. The input layer runs on the host (its neurons
still update on chip) and the readout is off chip: neither costs synaptic events here. Constants:
:data:`mlf_deploy.hardware.loihi1.LOIHI1_SANAFE` (docs/energy.md).

The graded lowering is priced on the same basis with **labelled assumptions** (no published
figure): one neuron per position whose access and update cost ``(K + 1) / 2`` LIFs (its
registers), one message per step with a payload, and a payload synaptic event costing
``graded_op_ratio`` binary events.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from mlf_deploy.energy.counting import projection_fanout
from mlf_deploy.hardware.layer_costs import LIF_REGISTERS, registers_per_neuron
from mlf_deploy.hardware.loihi1 import LOIHI1_SANAFE, ChipCosts
from mlf_deploy.hardware.placement import core_of_positions, plane_size, spatial_destinations
from mlf_deploy.ir import Graph
from mlf_deploy.results import RunResult

TERMS = ("synapse", "dendrite", "soma_access", "soma_update", "spike_out", "message", "hops")
SANAFE_GROUPS = {"synapse": ("synapse",), "dendrite": ("dendrite",),
                 "soma": ("soma_access", "soma_update", "spike_out"),
                 "network": ("message", "hops")}
"""Our terms summed into SANA-FE's own energy breakdown."""


@dataclass
class ChipBill:
    form: str  # "binary" or "graded"
    costs: str
    samples: int
    counts: dict  # term -> events per inference
    energy_pj: dict  # term -> pJ per inference
    groups_pj: dict  # SANA-FE's categories -> pJ per inference
    total_pj: float
    latency_s: float  # estimated time per inference
    cores: int
    tiles: int
    assumptions: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _sender_events(graph: Graph, result: RunResult, sender: str) -> np.ndarray:
    """``(T, B, P)`` events a sender emits: level spikes, or steps with a non-zero payload."""
    levels = [result.spikes[n] for n in graph.sender_levels(sender)]
    ev = levels[0].astype(np.int64) if len(levels) == 1 else (sum(s.astype(np.int64)
                                                                  for s in levels) > 0)
    return ev.reshape(ev.shape[0], ev.shape[1], -1).astype(np.int64)


def _arrivals(graph: Graph, result: RunResult, layer) -> torch.Tensor | None:
    """``(T, B, H, W)`` bool: some spike reached this position by step t (None: host input)."""
    hit = None
    for p in graph.projections_into(layer.name):
        if p.source == graph.input.name:
            return None
        ev = torch.from_numpy(_sender_events(graph, result, p.source).astype(np.float64))
        c, h, w = graph.nodes[p.source].shape
        t, b = ev.shape[:2]
        anyc = ev.view(t * b, c, h, w).amax(1, keepdim=True)
        if p.kind == "dense":
            reach = anyc.flatten(1).amax(1).view(t * b, 1, 1, 1).expand(-1, 1, *layer.shape[1:])
        else:
            k = torch.ones(1, 1, *p.weight.shape[2:], dtype=torch.float64)
            reach = F.conv2d(anyc, k, stride=tuple(p.stride), padding=tuple(p.padding))
        r = (reach > 0).view(t, b, *layer.shape[1:])
        hit = r if hit is None else hit | r
    return torch.cummax(hit.to(torch.uint8), 0).values.bool()


class ChipTally:
    """The bill's event sums over any number of runs of ``graph``'s int form (level spikes), so a
    streamed run (chunk by chunk) is priced exactly as one run of all its samples: every term is a
    sum over samples, and the latency's busiest core is taken over the summed core work."""

    def __init__(self, graph: Graph, mapping, costs: ChipCosts = LOIHI1_SANAFE,
                 graded_op_ratio: float = 1.0):
        self.graph, self.mapping, self.costs, self.ratio = graph, mapping, costs, graded_op_ratio
        self.cores = core_of_positions(graph, mapping)
        self.work = np.zeros(len(mapping.core_list))  # ns of each core over the runs
        self.sums = dict.fromkeys(TERMS, 0.0)  # events summed over samples (synapse energy: pJ)
        self.synapse_pj = 0.0
        self.batch, self.steps = 0, None

    def add(self, result: RunResult) -> None:
        graph, costs, graded = self.graph, self.costs, self.graph.graded
        batch, steps = result.batch, result.timesteps
        self.batch += batch
        self.steps = steps
        sums, work = self.sums, self.work
        for layer in graph.layers:
            senders = graph.populations_of(layer.name)
            scale = registers_per_neuron(graph, layer.name) / LIF_REGISTERS if graded else 1.0
            n_pos = int(np.prod(layer.shape))
            where = self.cores[layer.name].ravel()
            arrived = _arrivals(graph, result, layer)
            live = np.asarray(layer.bias) != 0
            for s in senders:
                sums["soma_access"] += n_pos * steps * batch * scale
                if arrived is None:
                    upd = n_pos * steps * batch
                else:  # a biased channel updates every step, the others once input has arrived
                    hw = int(np.prod(layer.shape[1:]))
                    upd = (live.sum() * steps * batch * hw
                           + (~live).sum() * float(arrived.sum()))
                sums["soma_update"] += upd * scale
                ev = _sender_events(graph, result, s.name).sum(axis=(0, 1))  # (P,)
                sums["spike_out"] += ev.sum()
                # channel by channel: all channels' pairs at once took 5.5 GiB on cifar10
                in_plane, dst = spatial_destinations(graph, self.mapping, s.name, self.cores)
                size = plane_size(graph, s.name)
                for c in range(graph.nodes[s.name].shape[0]):
                    pos = in_plane + c * size
                    ew, ns = costs.hops(where[pos], dst)
                    sent = ev[pos]
                    sums["message"] += sent.sum()
                    sums["hops"] += float((sent * (ew * costs.hop_east_west_pj
                                                   + ns * costs.hop_north_south_pj)).sum())
                    np.add.at(work, dst, sent * costs.message_in_ns)
                np.add.at(work, where, ev * costs.spike_out_ns
                          + steps * batch * costs.soma_access_ns)
            for p in graph.projections_into(layer.name):
                if p.source == graph.input.name:
                    continue
                ev = _sender_events(graph, result, p.source).sum(axis=(0, 1))
                fan = projection_fanout(graph, p).ravel()
                events = float((ev * fan).sum()) * (1 if graded else len(senders))
                sums["synapse"] += events
                self.synapse_pj += events * costs.synapse_pj(p.kind) * (self.ratio if graded
                                                                         else 1.0)
                per_core = events / max(len(set(where)), 1)
                np.add.at(work, np.unique(where), per_core * costs.synapse_ns(p.kind))

    def bill(self) -> ChipBill:
        costs, batch, steps = self.costs, self.batch, self.steps
        counts = {t: v / batch for t, v in self.sums.items()}
        energy = dict.fromkeys(TERMS, 0.0)
        energy["synapse"] = self.synapse_pj / batch
        energy["dendrite"] = counts["synapse"] * costs.dendrite_pj
        energy["soma_access"] = counts["soma_access"] * costs.soma_access_pj
        energy["soma_update"] = counts["soma_update"] * costs.soma_update_pj
        energy["spike_out"] = counts["spike_out"] * costs.spike_out_pj
        energy["message"] = counts["message"] * costs.message_out_pj
        energy["hops"] = counts["hops"]  # already pJ: links weighted by direction
        n_cores = len(self.mapping.core_list)
        tiles = len({c // costs.cores_per_tile for c in range(n_cores)})
        latency = steps * (costs.sync(tiles) + self.work.max() / (steps * batch)) * 1e-9
        groups = {g: sum(energy[t] for t in terms) for g, terms in SANAFE_GROUPS.items()}
        notes = ["input layer on the host (no synaptic events), its neurons update every step",
                 "readout off chip (not priced)"]
        if self.graph.graded:
            notes += [f"ASSUMPTION: a payload synaptic event costs {self.ratio:g}x a binary one",
                      "ASSUMPTION: a graded neuron's access/update cost (K+1)/2 LIFs (its "
                      "registers)"]
        return ChipBill(self.graph.spikes, costs.name, batch, counts, energy, groups,
                        float(sum(energy.values())), float(latency), n_cores, tiles, notes)


def chip_bill(graph: Graph, result: RunResult, mapping, costs: ChipCosts = LOIHI1_SANAFE,
              graded_op_ratio: float = 1.0) -> ChipBill:
    """Price ``result`` (a run of ``graph``'s int form; level spikes) on ``mapping``'s cores."""
    tally = ChipTally(graph, mapping, costs, graded_op_ratio)
    tally.add(result)
    return tally.bill()


def bill_table(bills: dict) -> str:
    """Terms (pJ per inference) of several bills side by side: ``{column: ChipBill}``."""
    names = list(bills)
    rows = [f"{'term':<14}" + "".join(f"{n:>16}" for n in names)]
    for t in TERMS:
        rows.append(f"{t:<14}" + "".join(f"{b.energy_pj[t]:>16,.0f}" for b in bills.values()))
    rows.append(f"{'sum pJ':<14}" + "".join(f"{b.total_pj:>16,.0f}" for b in bills.values()))
    rows.append(f"{'latency us':<14}" + "".join(f"{b.latency_s * 1e6:>16.2f}"
                                              for b in bills.values()))
    return "\n".join(rows)
