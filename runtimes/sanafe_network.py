"""One SANA-FE network of a run (:mod:`mlf_deploy.runtimes.sanafe_chip`): the level LIFs of the
layers on the run's cores, the input neurons that replay the spikes those LIFs read, and the real
synapses between them."""

from __future__ import annotations

import numpy as np

from mlf_deploy.ir import semantics as sem


def _lif_attributes(graph, layer) -> dict:
    retention = sem.retention_mant(graph.populations_of(layer.name)[0].v_retention)
    return {"threshold": 1e30, "leak_decay": retention / sem.DECAY_UNIT, "input_decay": 0.0,
            "reset_mode": "hard"}


class NetworkBuilder:
    """Builds one SANA-FE network on ``arch``. ``reproduce``: the LIFs get the graph's thresholds
    and log their spikes, and the bias comes as a current from one replaying neuron per core
    firing every step, so that it reaches the membrane in the same step as the replayed spikes
    (SANA-FE integrates a spike the step after it is sent; its soma bias would start a step
    early)."""

    def __init__(self, sanafe, arch, graph, result, cores, total_steps, window, reproduce=False):
        self.net = sanafe.Network()
        self.cores_hw = [core for tile in arch.tiles for core in tile.cores]
        self.graph, self.result, self.cores, self.reproduce = graph, result, cores, reproduce
        self.total_steps, self.window = total_steps, window

    def build(self, plan, charged: set):
        """The network of ``plan``; ``charged`` holds the replayed (population, position) pairs
        whose spike-out an earlier run already priced (this run adds its own)."""
        targets = {name: self.add_lifs(name, mine, taps)
                   for name, (mine, taps) in plan["layers"].items()}
        replays, used = {}, {}
        for name, positions in plan["replays"].items():
            replays[name] = self.add_replays(name, positions, charged, used)
        for layer_name, (group, count, taps) in targets.items():
            self.connect(layer_name, group, count, taps, replays)
        return self.net

    def add_lifs(self, name: str, mine, taps):
        """The K level LIFs of layer ``name`` at its positions ``mine``; returns
        ``(group, len(mine), taps)``."""
        graph, layer = self.graph, self.graph.nodes[name]
        where = self.cores[name].ravel()
        host = any(p.source == graph.input.name for p in graph.projections_into(name))
        kind = graph.projections_into(name)[0].kind
        bias = sem.shift(np.asarray(layer.bias, dtype=np.float64), layer.bias_exp)
        attrs = _lif_attributes(graph, layer)
        if host:
            attrs["force_update"] = True
        levels = len(layer.populations)
        group = self.net.create_neuron_group(
            f"lif:{name}", len(mine) * levels, model_attributes=attrs, log_spikes=self.reproduce,
            soma_hw_name="loihi_lif", default_synapse_hw_name="loihi_conv_synapse"
            if kind == "conv2d" else "loihi_dense_synapse")
        hw = int(np.prod(layer.shape[1:]))
        current = bias[mine // hw] / sem.MEMBRANE_GAIN
        for k, pop in enumerate(graph.populations_of(name)):
            extra = {"threshold": float(pop.v_threshold)} if self.reproduce else {}
            for j, pos in enumerate(mine):
                n = group.neurons[k * len(mine) + j]
                n.set_attributes(model_attributes={"bias": 0.0 if self.reproduce else current[j],
                                                   **extra})
                n.map_to_core(self.cores_hw[where[pos]])
        if self.reproduce:
            self.add_bias_neurons(group, where[mine], current, levels, name)
        return group, len(mine), taps

    def add_bias_neurons(self, group, where, current, levels: int, name: str) -> None:
        """One neuron per core firing every step of the window, its synapse weight the bias."""
        spikes = np.zeros(self.total_steps, dtype=bool)
        spikes[self.window] = True
        on = sorted(set(where.tolist()))
        bias = self.net.create_neuron_group(f"bias:{name}", len(on))
        for i, core in enumerate(on):
            bias.neurons[i].set_attributes(soma_hw_name="mlf_bias[0]",
                                           model_attributes={"spikes": spikes.tolist()})
            bias.neurons[i].map_to_core(self.cores_hw[core])
        slot = {core: i for i, core in enumerate(on)}
        pairs = [(slot[c], k * len(where) + j) for k in range(levels) for j, c in enumerate(where)]
        bias.connect_neurons_sparse(group, {"weight": np.tile(current, levels).tolist()}, pairs)

    def add_replays(self, name: str, positions, charged: set, used: dict):
        """Input neurons replaying population ``name``'s spikes at ``positions``, each on the
        unit family that charges its spike-out once; returns ``(group, position -> index)``."""
        where = self.cores[self.graph.nodes[name].layer].ravel()
        group = self.net.create_neuron_group(f"replay:{name}", len(positions))
        trains = self.result.spikes[name].reshape(self.result.timesteps, self.result.batch, -1)
        for j, pos in enumerate(positions):
            core = int(where[pos])
            family = int((name, pos) in charged)
            charged.add((name, pos))
            unit = used.setdefault((core, family), 0)
            used[core, family] = unit + 1
            spikes = np.zeros(self.total_steps, dtype=bool)
            spikes[self.window] = trains[:, :, pos].T.ravel() > 0
            n = group.neurons[j]
            n.set_attributes(soma_hw_name=f"{('mlf_replay', 'mlf_relay')[family]}[{unit}]",
                             model_attributes={"spikes": spikes.tolist()})
            n.map_to_core(self.cores_hw[core])
        lookup = np.full(int(np.prod(self.graph.nodes[name].shape)), -1)
        lookup[positions] = np.arange(len(positions))
        return group, lookup

    def connect(self, layer_name: str, group, count: int, taps: dict, replays: dict) -> None:
        """The synapses of every projection into the layer, from the replays to each level."""
        layer = self.graph.nodes[layer_name]
        exp = 2.0 ** layer.weight_exp
        for p in self.graph.projections_into(layer_name):
            if p.name not in taps:
                continue
            src, dst, widx = taps[p.name]
            src_group, lookup = replays[p.source]
            w = (np.asarray(p.weight, dtype=np.float64)[widx] * exp).tolist()
            s = lookup[src].tolist()
            for k in range(len(layer.populations)):
                src_group.connect_neurons_sparse(group, {"weight": w},
                                                 list(zip(s, (dst + k * count).tolist())))
