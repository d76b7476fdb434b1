r"""Energy per inference of a deployment graph from a measured run, against the same network as an
ANN.

.. math::
    E_\text{SNN} = E_\text{MAC}\,\text{MACs}_\text{input} + E_\text{AC}\,(\text{SynOps} +
    \text{ACs}_\text{input}) + E_\text{n}\,U_\text{inactive} + E_\text{n,active}\,U_\text{active},
    \qquad E_\text{ANN} = E_\text{MAC}\,\text{MACs}_\text{ANN}

(docs/references.md §4; Horowitz ISSCC 2014). Counts are per inference: totals over the run divided
by its batch size. Neuron updates count every level LIF at every timestep; a neuron is *active* in a
step when it fires. A neuron position of a layer is *dormant* when none of its K levels fires at
any timestep on any sample of the run (the paper's dormant units).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from mlf_deploy.energy.counting import (
    ann_macs,
    input_ops,
    projection_synops,
    readout_synops,
    spike_counts,
)
from mlf_deploy.energy.op_energy import PRESETS, EnergyModel
from mlf_deploy.errors import UserError
from mlf_deploy.ir import Graph
from mlf_deploy.results import RunResult


@dataclass
class LayerEnergy:
    """One MLF layer. Ops are per inference; ``synops`` are the SynOps *into* this layer's current
    (the SNN counterpart of the layer's ANN MACs); ``firing_rate`` is spikes per neuron position
    per timestep summed over levels (0..K); ``level_rates[k]`` the firing probability of level k."""

    name: str
    positions: int
    levels: int
    synops: float
    input_ops: float
    ann_macs: float
    out_synops: float
    firing_rate: float
    level_rates: list
    dormant_fraction: float
    energy_pj: dict
    ann_energy_pj: dict


@dataclass
class EnergyBreakdown:
    samples: int
    timesteps: int
    levels: int
    # "mac" (static image: dense MACs at each step) or "ac" (events: count x fan-out)
    input_kind: str
    synops_per_inference: float  # spike-driven ACs inside the network, readout included
    readout_synops_per_inference: float
    # if each of K level LIFs stored its own synapses
    synops_if_levels_replicated_per_inference: float
    input_macs_per_inference: float
    input_acs_per_inference: float
    ann_macs_per_inference: float
    energy_pj: dict  # model name -> SNN pJ per inference
    ann_energy_pj: dict  # model name -> ANN pJ per inference (None without a MAC cost)
    level_fraction: list  # share of all spikes emitted at each level
    dormant_fraction: float  # over all neuron positions of all layers
    layers: list = field(default_factory=list)  # LayerEnergy
    projections: dict = field(default_factory=dict)  # projection -> SynOps per inference
    populations: dict = field(default_factory=dict)  # population -> SynOps it causes per inference
    models: dict = field(default_factory=dict)  # model name -> constants

    def to_dict(self) -> dict:
        return _plain(asdict(self))

    def table(self, model: str | None = None) -> str:
        """A per-layer text table; energy columns use ``model`` (default: the first model)."""
        model = model or next(iter(self.energy_pj))
        head = (f"{'layer':<24} {'synops':>12} {'ann_macs':>12} {'firing_rate':>11} "
                f"{'dormant':>8} {'energy_pJ':>12}")
        rows = [head, "-" * len(head)]
        for r in self.layers:
            rows.append(f"{r.name:<24} {r.synops:>12.1f} {r.ann_macs:>12.1f} "
                        f"{r.firing_rate:>11.4f} {r.dormant_fraction:>8.4f} "
                        f"{r.energy_pj[model]:>12.1f}")
        ro_pj = self.readout_synops_per_inference * self.models[model]["e_ac_pj"]
        rows.append(f"{'readout':<24} {self.readout_synops_per_inference:>12.1f} "
                    f"{self.ann_macs_per_inference - sum(r.ann_macs for r in self.layers):>12.1f} "
                    f"{'':>11} {'':>8} {ro_pj:>12.1f}")
        rows.append(f"{'total':<24} {self.synops_per_inference:>12.1f} "
                    f"{self.ann_macs_per_inference:>12.1f} {'':>11} {self.dormant_fraction:>8.4f} "
                    f"{self.energy_pj[model]:>12.1f}")
        ins = "MACs" if self.input_kind == "mac" else "event ACs"
        ann = self.ann_energy_pj[model]
        in_ops = self.input_macs_per_inference if self.input_kind == "mac" \
            else self.input_acs_per_inference
        rows.append(f"input {ins}/inference: {in_ops:.1f}"
                    f"; energy model {model}: SNN {self.energy_pj[model]:.1f} pJ, ANN "
                    f"{'n/a' if ann is None else f'{ann:.1f} pJ'} per inference "
                    f"({self.samples} samples, T={self.timesteps})")
        fed = [r.name for r in self.layers if r.input_ops]
        if fed:  # their SynOps column counts spikes only; say where their energy comes from
            rows.append(f"{', '.join(fed)}: fed by the input, so SynOps (from spikes) can be 0 "
                        f"while the energy holds the input {ins} above")
        return "\n".join(rows)


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def resolve_models(models=None) -> dict:
    """``None`` -> the presets; a dict or list of :class:`EnergyModel` -> by name."""
    if models is None:
        return dict(PRESETS)
    items = models.values() if isinstance(models, dict) else models
    out = {}
    for m in items:
        if not isinstance(m, EnergyModel):
            raise UserError(f"energy models must be EnergyModel instances, got {type(m).__name__}")
        out[m.name] = m
    return out


def estimate(graph: Graph, result: RunResult, x=None, models=None,
             skip_zero_weights: bool = False) -> EnergyBreakdown:
    """Count SynOps, MACs, firing and dormant units of ``result`` (a run of ``graph``) and price
    them.

    Args:
        graph: the deployment graph that produced ``result`` (float or int).
        result: its run; ``spikes`` per population ``(T, B, C, H, W)``.
        x: the raw input batch; needed only for event-frame graphs (input ACs by event count).
        models: :class:`EnergyModel` s (dict or list); default :data:`PRESETS`.
        skip_zero_weights: count only non-zero synapses (sparse storage).

    Returns:
        An :class:`EnergyBreakdown`, every count per inference.
    """
    models = resolve_models(models)
    batch, steps = result.batch, result.timesteps
    if steps != graph.timesteps:
        raise UserError(f"the run has {steps} timesteps, the graph {graph.timesteps}")
    proj = {k: v / batch for k, v in projection_synops(graph, result, skip_zero_weights).items()}
    ro_ops = readout_synops(graph, result) / batch
    kind, in_ops = input_ops(graph, x, skip_zero_weights)
    ann = ann_macs(graph)
    by_pop = _synops_caused(graph, result, proj)
    layers, level_spikes, dormant, positions_all = [], np.zeros(graph.levels), 0, 0
    for layer in graph.layers:
        row, per_level, dead = _layer_energy(graph, layer, result, proj, by_pop, (kind, in_ops),
                                             ann, models)
        layers.append(row)
        level_spikes[:len(per_level)] += per_level
        dormant, positions_all = dormant + dead, positions_all + row.positions
    total_ann = float(sum(ann.values()))
    energy_pj = {name: sum(r.energy_pj[name] for r in layers) + ro_ops * m.e_ac_pj
                 for name, m in models.items()}
    ann_pj = {name: None if m.e_mac_pj is None else total_ann * m.e_mac_pj
              for name, m in models.items()}
    total_spikes = level_spikes.sum()
    return EnergyBreakdown(
        samples=batch, timesteps=steps, levels=graph.levels, input_kind=kind,
        synops_per_inference=sum(proj.values()) + ro_ops, readout_synops_per_inference=ro_ops,
        synops_if_levels_replicated_per_inference=ro_ops + sum(r.synops * r.levels for r in layers),
        input_macs_per_inference=in_ops if kind == "mac" else 0.0,
        input_acs_per_inference=in_ops if kind == "ac" else 0.0,
        ann_macs_per_inference=total_ann, energy_pj=energy_pj, ann_energy_pj=ann_pj,
        level_fraction=(level_spikes / total_spikes if total_spikes else level_spikes).tolist(),
        dormant_fraction=dormant / positions_all, layers=layers, projections=proj,
        populations=by_pop, models={k: m.to_dict() for k, m in models.items()})


def _synops_caused(graph: Graph, result: RunResult, proj: dict) -> dict:
    """Population -> the SynOps its spikes cause per inference, the readout's included."""
    by_pop = {p.name: 0.0 for p in graph.populations}
    for p in graph.projections:
        if p.name in proj:
            by_pop[p.source] += proj[p.name]
    for s in graph.readout.sources:
        by_pop[s] += (float(spike_counts(result, s).sum()) * graph.readout.weight.shape[0]
                      / result.batch)
    return by_pop


def _layer_energy(graph: Graph, layer, result: RunResult, proj: dict, by_pop: dict, input_load,
                  ann: dict, models: dict):
    """``(LayerEnergy, spikes per level (K,), dormant positions)`` of one layer;
    ``input_load`` is :func:`input_ops`' ``(kind, ops)``, charged to layers the input feeds."""
    batch, steps = result.batch, result.timesteps
    pops = graph.populations_of(layer.name)
    n = int(np.prod(layer.shape))
    counts = np.stack([spike_counts(result, p.name) for p in pops])  # (K, C, H, W)
    per_level = counts.reshape(len(pops), -1).sum(1)
    dead = int((counts.sum(0) == 0).sum())
    syn = sum(proj.get(p.name, 0.0) for p in graph.projections_into(layer.name))
    kind, in_ops = input_load
    fed = any(p.source == graph.input.name for p in graph.projections_into(layer.name))
    inp = in_ops if fed else 0.0
    active = float(per_level.sum()) / batch
    updates = len(pops) * n * steps
    energy, ann_energy = {}, {}
    for m in models.values():
        e_in = (inp * (m.e_mac_pj or 0.0)) if kind == "mac" else inp * m.e_ac_pj
        energy[m.name] = (syn * m.e_ac_pj + e_in + (updates - active) * m.e_neuron_pj
                          + active * m.e_neuron_active_pj)
        ann_energy[m.name] = None if m.e_mac_pj is None else ann[layer.name] * m.e_mac_pj
    row = LayerEnergy(
        layer.name, n, len(pops), syn, inp, float(ann[layer.name]),
        sum(by_pop[p.name] for p in pops), float(per_level.sum()) / (n * steps * batch),
        (per_level / (n * steps * batch)).tolist(), dead / n, energy, ann_energy)
    return row, per_level, dead


def worst_case_result(graph: Graph) -> RunResult:
    """A one-sample run in which every level of every neuron fires at every timestep: the upper
    bound of every spike-driven count, for estimates without a measured raster."""
    steps = graph.timesteps
    spikes = {p.name: np.ones((steps, 1, *p.shape), dtype=np.uint8) for p in graph.populations}
    return RunResult("worst-case", graph.numeric, spikes, {},
                     np.zeros((1, graph.readout.weight.shape[0])))
