"""Accuracy, SynOps, energy and latency of the integer deployment over weight bits and timesteps.

Each point quantizes the float graph once per weight width, re-sets its Input to ``T`` timesteps
and runs it with the caller's *runner* ``(graph, x) -> RunResult``, so this module imports no
backend. Latency is ``T x pipeline depth`` steps (each timestep passes through every layer of the
longest path before the next starts, as the graph's same-timestep semantics require); a chip that
pipelines timesteps finishes in ``T + depth - 1`` (also reported).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np

from mlf_deploy.energy import estimate
from mlf_deploy.errors import UserError
from mlf_deploy.hardware.paths import pipeline_depth
from mlf_deploy.ir import Graph
from mlf_deploy.ir import semantics as sem
from mlf_deploy.limits import check_graph_run
from mlf_deploy.quantization import quantize
from mlf_deploy.results import RunResult
from mlf_deploy.run_totals import RunTotals

Runner = Callable[[Graph, object], RunResult]


@dataclass
class SweepPoint:
    weight_bits: int
    timesteps: int
    accuracy: float
    synops_per_inference: float
    energy_pj: dict  # model name -> pJ per inference
    ann_energy_pj: dict
    latency_steps: int  # T x pipeline depth
    latency_steps_pipelined: int  # T + depth - 1
    level_fraction: list  # share of spikes at each level
    firing_rate: float  # spikes per neuron position per step, network mean over layers
    dormant_fraction: float
    overflow_events: int
    breakdown: object = field(default=None, repr=False, compare=False)  # the EnergyBreakdown

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "breakdown"}
        if self.breakdown is not None:
            keep = ("name", "synops", "firing_rate", "dormant_fraction", "energy_pj")
            d["layers"] = [{k: r[k] for k in keep} for r in self.breakdown.to_dict()["layers"]]
        return d


def with_timesteps(graph: Graph, timesteps: int) -> Graph:
    """``graph`` whose Input delivers ``timesteps`` steps (a new graph; the input is unchanged)."""
    if not isinstance(timesteps, int) or timesteps < 1:
        raise UserError(f"timesteps must be a positive integer, got {timesteps}")
    nodes = dict(graph.nodes)
    nodes[graph.input.name] = dataclasses.replace(graph.input, timesteps=timesteps)
    return Graph(nodes, graph.numeric, {**graph.metadata, "timesteps": timesteps})


def _inputs_for(graph: Graph, x, timesteps: int):
    # event frames are truncated to the first T bins (not re-binned): the sweep asks how early the
    # network can answer on the same recording
    return x[:timesteps] if graph.input.encoding == "events" else x


def sweep(graph_float: Graph, x, y, runner: Runner, weight_bits=(8, 6, 5, 4), timesteps=None,
          input_max: float | None = None, models=None, quantizer=None,
          reuse_prefix: bool = True) -> list[SweepPoint]:
    """Evaluate every (weight bits, timesteps) pair on one batch: :func:`sweep_chunks` with the
    single chunk ``(x, y)``.

    Args:
        graph_float: the lowered float graph.
        x: raw model inputs ``(B, C, H, W)`` or event frames ``(T, B, C, H, W)``;
        y: labels ``(B,)``.
        runner: ``(graph, x) -> RunResult``, e.g. ``mlf_deploy.ir.reference.run_reference``.
        timesteps: values of T (default: the graph's T only); at most the graph's T for events.
        input_max: passed to :func:`quantize` for static inputs.
        quantizer: optional ``(graph_float, bits) -> int graph`` replacing :func:`quantize`.
        reuse_prefix: run only the longest T per weight width and cut the shorter runs from it
            (:func:`truncate`, exact); ``False`` runs every point.
    """
    return sweep_chunks(graph_float, [(x, y)], runner, weight_bits, timesteps, input_max, models,
                        quantizer, reuse_prefix)


def sweep_chunks(graph_float: Graph, chunks, runner: Runner, weight_bits=(8, 6, 5, 4),
                 timesteps=None, input_max: float | None = None, models=None, quantizer=None,
                 reuse_prefix: bool = True) -> list[SweepPoint]:
    """:func:`sweep` over ``chunks``, an iterable of ``(x, y)`` batches: each chunk is run at every
    point and kept only as totals (:class:`RunTotals`), so memory holds one chunk whatever the
    number of samples, and the points equal those of one batch of all the samples."""
    if graph_float.numeric != "float":
        raise UserError("the sweep re-quantizes: give it the float graph")
    steps_list = list(dict.fromkeys(int(t) for t in timesteps or [graph_float.timesteps]))
    weight_bits = list(dict.fromkeys(int(b) for b in weight_bits))
    if graph_float.input.encoding == "events" and max(steps_list) > graph_float.timesteps:
        raise UserError(f"event inputs have {graph_float.timesteps} frames; cannot sweep beyond")
    quantizer = quantizer or (lambda g, b: quantize(g, b, input_max=input_max)[0])
    # One int graph per width: quantizing reads no timestep count (test_sweep_memory holds it),
    # so each T is that graph with its Input re-set, sharing every weight array; the sweep's
    # memory then holds one copy of the weights per width, not per point.
    quantized = {b: quantizer(graph_float, b) for b in weight_bits}
    graphs = {(b, t): with_timesteps(quantized[b], int(t))
              for b in weight_bits for t in sorted(steps_list, reverse=True)}
    # With prefix reuse only the longest T keeps totals; a shorter T is a prefix of them (plus
    # its own logits), so memory holds one set of totals per weight width.
    longest_t = max(steps_list)
    totals = {key: RunTotals.empty() for key in graphs if not reuse_prefix or key[1] == longest_t}
    logits = {key: [] for key in graphs}
    correct = dict.fromkeys(graphs, 0)
    for x, y in chunks:
        y = np.asarray(y)
        check_graph_run(graphs[(weight_bits[0], longest_t)], len(y), f"the sweep at T={longest_t}",
                        states=False, totals=len(totals))
        for bits in weight_bits:
            longest = None
            for steps in sorted(steps_list, reverse=True):
                g = graphs[(bits, steps)]
                xs = _inputs_for(g, x, steps)
                if reuse_prefix and longest is not None:
                    result = truncate(longest[0], longest[1], g)
                else:
                    result = runner(g, xs)
                    longest = (g, result)
                if (bits, steps) in totals:
                    totals[(bits, steps)].add(result, g, xs)
                else:
                    logits[(bits, steps)].append(result.logits)
                correct[(bits, steps)] += int((result.logits.argmax(1) == y).sum())
    points = []
    for bits in weight_bits:
        for steps in steps_list:
            g, result = graphs[(bits, steps)], totals.get((bits, steps))
            if result is None:
                if not logits[(bits, steps)]:
                    raise UserError("the sweep was given no samples")
                result = totals[(bits, longest_t)].prefix(steps,
                                                          np.concatenate(logits[(bits, steps)]))
            if result.batch == 0:
                raise UserError("the sweep was given no samples")
            br = estimate(g, result, result, models)
            depth = pipeline_depth(g)
            spikes = sum(r.firing_rate * r.positions for r in br.layers)
            points.append(SweepPoint(
                int(bits), int(steps), correct[(bits, steps)] / result.batch,
                br.synops_per_inference, br.energy_pj, br.ann_energy_pj, steps * depth,
                steps + depth - 1, br.level_fraction, spikes / sum(r.positions for r in br.layers),
                br.dormant_fraction, int(sum(result.overflow.values())), br))
    return points


def truncate(graph: Graph, result: RunResult, shorter: Graph) -> RunResult:
    """The run of ``shorter`` (the same graph with fewer timesteps) cut from a longer run.

    Exact because the dynamics are causal and start from rest: the first T' steps of a T-step run
    are the T'-step run. The readout is recomputed from the kept spikes as
    :class:`mlf_deploy.ir.Readout` defines it. Overflow counts stay those of the longer run (an
    upper bound)."""
    steps = shorter.timesteps
    spikes = {k: v[:steps] for k, v in result.spikes.items()}
    logits = sem.readout_logits(shorter, spikes)
    return RunResult(result.backend, result.numeric, spikes,
                     {k: v[:steps] for k,
                      v in result.states.items()}, logits, dict(result.overflow))
