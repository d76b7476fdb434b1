"""Is the integer graph a correct deployment of this model? A per-layer check whose errors do not
compound, judged against a rounding noise floor measured on the network at hand (docs/verdict.md).

Teacher forcing: every layer of the int graph is fed ir-float's own spikes (the int Input gets
the sample on its own integer grid) and its spikes are compared with ir-float's spikes of the
same layer. A layer's mismatches are then its own rounding (or its own bug) only, at any depth.

The noise floor: the float graph with every parameter moved by a random amount within the step
the int graph rounds it to (weights +-q/2 where ``q`` is the quantizer's weight step, thresholds
and biases +-half a unit of the int layer, a real-valued input +-half the input step; retentions
rounded to 12 bits as the quantizer rounds them), run teacher-forced the same way, ``FLOOR_DRAWS``
times with fixed seeds. The int graph is one such rounding of the same network, so a correct
deployment deviates about as much as a draw does; a wrong threshold, scale, sign, decay or wiring
deviates far more in the population where it sits.

A population fails when a one-sided Poisson test shows its mismatch count above ``FLOOR_FACTOR``
times the largest floor draw (at least 1), at level ``ALPHA`` split over the populations.
Counts add over verify's chunks and the noise of a sample depends on its index only, so the
result does not depend on the chunking.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from scipy.stats import poisson

from mlf_deploy.ir import Graph
from mlf_deploy.ir.reference import ReferenceSimulator
from mlf_deploy.ir.semantics import (
    DECAY_UNIT,
    MEMBRANE_GAIN,
    parse_population,
    prepare_input,
    real_valued_input,
    retention_mant,
    weight_key,
)
from mlf_deploy.quantization import weight_step

FLOOR_DRAWS = 2  # independent rounding-sized perturbations of the float graph
FLOOR_FACTOR = 4.0  # a population may deviate up to this many times the largest draw
CHANNEL_FACTOR = 8.0  # one output channel of a population, likewise (fewer weights, wider spread)
ALPHA = 0.05  # family-wise level of the Poisson tests (Bonferroni over populations)
SEED = 20  # the perturbations' seed: same command, same numbers


def _uniform(rng, half, shape):
    return rng.uniform(-1.0, 1.0, shape) * half


def perturbed_graph(graph_float: Graph, graph_int: Graph, seed: int) -> Graph:
    """``graph_float`` with each parameter moved within the rounding step of ``graph_int``.
    Projections that share synapses (the K levels, the residual fan-in) share one perturbation, as
    they share one rounding; a zero weight (a plain block's identity shortcut) rounds to zero."""
    rng = np.random.default_rng(seed)
    bits = graph_int.metadata["quantization"]["weight_bits"]
    nodes = dict(graph_float.nodes)
    for layer in graph_float.layers:
        unit = graph_int.nodes[layer.name].scale
        projections = graph_float.projections_into(layer.name)
        q = weight_step(max(float(np.abs(p.weight).max()) for p in projections), bits)
        shared: dict = {}
        for p in projections:
            key = weight_key(p)
            if key not in shared:
                w = np.asarray(p.weight, dtype=np.float64)
                shared[key] = np.where(w != 0, w + _uniform(rng, q / 2, w.shape), 0.0)
            nodes[p.name] = dataclasses.replace(p, weight=shared[key])
        bias_step = 2.0 ** graph_int.nodes[layer.name].bias_exp / MEMBRANE_GAIN * unit
        nodes[layer.name] = dataclasses.replace(
            layer, bias=layer.bias + _uniform(rng, bias_step / 2, layer.bias.shape))
        for pop in graph_float.populations_of(layer.name):
            nodes[pop.name] = dataclasses.replace(
                pop, v_threshold=pop.v_threshold + float(_uniform(rng, unit / 2, ())),
                v_retention=retention_mant(pop.v_retention) / DECAY_UNIT)
    return Graph(nodes, graph_float.numeric, graph_float.metadata, graph_float.spikes)


def _input_noise(graph_float, graph_int, frames, offset, draw):
    """Rounding-sized noise on a real-valued input, drawn per sample from its index (a static
    image is one value per pixel over all timesteps, as its rounding is)."""
    if not real_valued_input(graph_float):
        return frames
    half = graph_int.input.scale / 2
    static = graph_float.input.encoding == "static"
    noise = np.empty_like(frames)
    for b in range(frames.shape[1]):
        rng = np.random.default_rng([SEED, draw, offset + b])
        noise[:, b] = _uniform(rng, half, frames.shape[2:] if static else
                               (frames.shape[0], *frames.shape[2:]))
    return frames + noise


def _mismatches(result, teacher) -> dict:
    """Per population, mismatches per output channel ``(C,)``."""
    return {pop: (s != teacher.spikes[pop]).sum(axis=(0, 1, 3, 4), dtype=np.int64)
            for pop, s in result.spikes.items()}


class FloorTest(NamedTuple):
    """Is a mismatch count shown above ``factor`` times its rounding floor?"""

    bound: float  # factor x the floor (at least 1)
    p_value: float  # Poisson probability of at least the count at that bound
    passed: bool  # the count is not shown above the bound


def _test(count: int, floor: int, factor: float, level: float) -> FloorTest:
    """Is ``count`` shown above ``factor`` times the floor (at least 1), at ``level``?"""
    bound = factor * max(floor, 1)
    p = float(poisson.sf(count - 1, bound)) if count > 0 else 1.0
    return FloorTest(bound, p, p > level)


class LayerCheck:
    """Running per-population, per-channel counts of the teacher-forced int graph and of each
    floor draw."""

    def __init__(self, graph_float: Graph, graph_int: Graph):
        self.graph_float, self.graph_int = graph_float, graph_int
        self.int_sim = ReferenceSimulator(graph_int, record_states=False)
        self.floor_sims = [ReferenceSimulator(perturbed_graph(graph_float, graph_int, SEED + d),
                                              record_states=False) for d in range(FLOOR_DRAWS)]
        self.counts = {p.name: {"int": 0, "floor": [0] * FLOOR_DRAWS, "spikes": 0, "total": 0}
                       for p in graph_int.level_populations}

    def add(self, x, float_result, offset: int) -> None:
        """One chunk: raw model input ``x`` and ir-float's run of it; ``offset`` as in Tally."""
        teacher = float_result.spikes
        forced = self.int_sim.run_teacher_forced(prepare_input(self.graph_int, x), teacher)
        for pop, m in _mismatches(forced, float_result).items():
            row = self.counts[pop]
            row["int"] = row["int"] + m
            row["spikes"] = row["spikes"] + teacher[pop].sum(axis=(0, 1, 3, 4), dtype=np.int64)
            row["total"] += int(teacher[pop].size)
        frames = prepare_input(self.graph_float, x)
        for d, sim in enumerate(self.floor_sims):
            noisy = _input_noise(self.graph_float, self.graph_int, frames, offset, d)
            for pop, m in _mismatches(sim.run_teacher_forced(noisy, teacher), float_result).items():
                self.counts[pop]["floor"][d] = self.counts[pop]["floor"][d] + m

    def report(self) -> dict:
        """Per population: mismatches, floor draws, bound, p-value and verdict, both for the
        whole population and for its worst channel; the failed layers and the worst population."""
        cells = sum(len(np.atleast_1d(c["int"])) for c in self.counts.values())
        level = ALPHA / max(len(self.counts) + cells, 1)
        rows = []
        for pop, c in self.counts.items():
            m, floors = np.atleast_1d(c["int"]), np.array([np.atleast_1d(f) for f in c["floor"]])
            floor = int(floors.sum(1).max())
            bound, p, ok = _test(int(m.sum()), floor, FLOOR_FACTOR, level)
            tests = [_test(int(mc), int(fc), CHANNEL_FACTOR, level)
                     for mc, fc in zip(m, floors.max(0))]
            ch = int(np.argmin([t.p_value for t in tests]))
            spikes = int(np.sum(c["spikes"]))
            rows.append({"population": pop, "layer": parse_population(pop)[0],
                         "mismatches": int(m.sum()), "floor": [int(f) for f in floors.sum(1)],
                         "bound": bound, "p_value": p, "spikes": spikes, "total": c["total"],
                         "rate": int(m.sum()) / max(spikes, 1),
                         "floor_rate": floor / max(spikes, 1),
                         "worst_channel": {"channel": ch, "mismatches": int(m[ch]),
                                           "floor": int(floors.max(0)[ch]),
                                           "p_value": tests[ch].p_value},
                         "passed": ok and tests[ch].passed})
        failed = [r for r in rows if not r["passed"]]
        worst = max(rows, key=lambda r: r["mismatches"] / r["bound"])
        return {"passed": not failed, "populations": rows,
                "failed": [r["population"] for r in failed],
                "failed_layers": list(dict.fromkeys(r["layer"] for r in failed)),
                "worst": worst["population"], "draws": FLOOR_DRAWS, "factor": FLOOR_FACTOR,
                "channel_factor": CHANNEL_FACTOR, "alpha": ALPHA}


def applies(graph_float: Graph, graph_int: Graph) -> bool:
    """Teacher forcing needs the int graph's level populations to be the float graph's, with the
    same shapes (a graph file that differs is failed by verify's graph comparison instead)."""
    shapes = {p.name: tuple(p.shape) for p in graph_float.level_populations}
    return graph_int.numeric == "int" and not graph_int.graded and shapes == {
        p.name: tuple(p.shape) for p in graph_int.level_populations}
