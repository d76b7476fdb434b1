"""The deployment graph: named nodes plus the edges between them, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlf_deploy.ir.nodes import GradedPopulation, Input, Layer, Population, Projection, Readout
from mlf_deploy.ir.semantics import sender_levels

SPIKE_FORMS = ("binary", "graded")


@dataclass(frozen=True, eq=False)
class Graph:
    """``nodes`` in evaluation order: the input, then every layer followed by its populations, and
    the projections; every projection's source precedes its target layer, so evaluating layers in
    order is a valid schedule. Edges are derived from the nodes' references:
    ``source -> projection -> layer -> population -> readout``.

    ``spikes`` says which lowering the graph is: ``"binary"`` (every level of an MLF layer a
    :class:`Population` of single-threshold neurons, every projection repeated per source
    population) or ``"graded"`` (one :class:`GradedPopulation` per layer sending its level count).
    """

    nodes: dict  # name -> node, in an order where every node follows what it reads
    numeric: str = "float"  # "float" | "int"
    # levels, timesteps, variant, model_args, quantization: descriptive (docs/ir.md)
    metadata: dict = field(default_factory=dict)
    spikes: str = "binary"  # "binary" | "graded"

    def __post_init__(self):
        if self.numeric not in ("float", "int"):
            raise ValueError(f"numeric must be 'float' or 'int', got {self.numeric!r}")
        if self.spikes not in SPIKE_FORMS:
            raise ValueError(f"spikes must be 'binary' or 'graded', got {self.spikes!r}")
        sender = GradedPopulation if self.graded else Population
        wrong = [n for n in self.nodes.values()
                 if isinstance(n, (Population, GradedPopulation)) and not isinstance(n, sender)]
        if wrong:
            raise ValueError(f"a {self.spikes} graph holds {type(wrong[0]).__name__} "
                             f"{wrong[0].name!r}")
        order = {name: i for i, name in enumerate(self.nodes)}
        for name, node in self.nodes.items():
            if name != node.name:
                raise ValueError(f"node stored under {name!r} is named {node.name!r}")
            for dep in _reads(node):
                if order.get(dep, len(order)) >= order[name] and not isinstance(node, Projection):
                    raise ValueError(f"node {name!r} reads {dep!r}, which is missing or comes "
                                     "later")
            if isinstance(node, Projection):
                target = self.nodes.get(node.target)
                if not isinstance(target, Layer):
                    raise ValueError(f"projection {name!r} targets {node.target!r}, not a layer")
                if order.get(node.source, len(order)) >= order[node.target]:
                    raise ValueError(f"projection {name!r}: source {node.source!r} must come "
                                     f"before its target layer {node.target!r}")
        if len(self.of_type(Input)) != 1 or len(self.of_type(Readout)) != 1:
            raise ValueError("a graph has exactly one Input and one Readout")

    # -- views ------------------------------------------------------------------------------------
    @property
    def edges(self) -> list[tuple[str, str]]:
        edges = [(dep, name) for name, node in self.nodes.items() for dep in _reads(node)]
        return edges + [(p.name, p.target) for p in self.projections]

    def of_type(self, cls) -> list:
        return [n for n in self.nodes.values() if isinstance(n, cls)]

    @property
    def input(self) -> Input:
        return self.of_type(Input)[0]

    @property
    def readout(self) -> Readout:
        return self.of_type(Readout)[0]

    @property
    def layers(self) -> list[Layer]:
        return self.of_type(Layer)

    @property
    def populations(self) -> list[Population]:
        """The spike senders: level populations (binary) or graded populations (graded)."""
        return self.of_type(GradedPopulation if self.graded else Population)

    @property
    def graded(self) -> bool:
        return self.spikes == "graded"

    @property
    def level_populations(self) -> list[Population]:
        """Every level of every layer as a :class:`Population`, in both forms (graded: views of
        the levels inside each graded neuron, under the binary form's names)."""
        return [p for layer in self.layers for p in self.levels_of(layer.name)]

    def levels_of(self, layer: str) -> list[Population]:
        """The K levels of ``layer``, level 0 first, in both forms."""
        senders = self.populations_of(layer)
        return senders[0].level_views() if self.graded else senders

    def sender_levels(self, source: str) -> list[str]:
        """The level populations whose spikes sum to what ``source`` sends (its payload)."""
        return sender_levels(self, source)

    @property
    def projections(self) -> list[Projection]:
        return self.of_type(Projection)

    def projections_into(self, layer: str) -> list[Projection]:
        return [p for p in self.projections if p.target == layer]

    def populations_of(self, layer: str) -> list[Population]:
        return [self.nodes[n] for n in self.nodes[layer].populations]

    def fan_in(self, layer: str) -> int:
        """How many source populations (or the input) feed this layer's current."""
        return len(self.projections_into(layer))

    @property
    def levels(self) -> int:
        """K, the levels of every layer (the metadata's ``levels`` is checked against it)."""
        return len(self.levels_of(self.layers[0].name))

    @property
    def timesteps(self) -> int:
        return self.input.timesteps

    def summary(self) -> dict:
        fan = [self.fan_in(layer.name) for layer in self.layers]
        return {"numeric": self.numeric, "spikes": self.spikes, "layers": len(self.layers),
                "populations": len(self.populations), "projections": len(self.projections),
                "neurons": sum(_size(p.shape) for p in self.populations),
                "membranes": sum(_size(p.shape) for p in self.level_populations),
                "max_fan_in": max(fan), "levels": self.levels, "timesteps": self.timesteps}


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _reads(node) -> list[str]:
    if isinstance(node, Projection):
        return [node.source]
    if isinstance(node, (Population, GradedPopulation)):
        return [node.layer]
    if isinstance(node, Readout):
        return list(node.sources)
    return []
