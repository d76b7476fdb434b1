"""A run of many samples kept as totals, so that energy and evaluation stream like verify.

Every spike-driven figure of :mod:`mlf_deploy.energy` and :mod:`mlf_deploy.hardware.resources` is a
sum over the samples: spikes per (step, position) for SynOps, firing, level shares and dormant
units, and the samples in which a layer fired any level at a (step, position) for activation
sparsity and the graded form's messages. :class:`RunTotals` holds exactly those sums (and the
logits, ``(B, classes)``, which are small), added chunk by chunk, so a run of the whole test split
keeps one chunk's raster in memory at a time and gives the same figures as one unchunked run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlf_deploy.errors import UserError
from mlf_deploy.ir.semantics import prepare_input
from mlf_deploy.results import RunResult


@dataclass
class RunTotals(RunResult):
    """A :class:`RunResult` whose ``spikes`` are counts summed over the samples.

    Attributes (besides RunResult's):
        spikes: population -> ``(T, 1, C, H, W)`` int64, spikes summed over the samples, so
            :func:`mlf_deploy.energy.counting.spike_counts` reads them as it reads a raster.
        fired: tuple of level populations -> ``(T, C, H, W)`` int64, the samples in which any of
            them fired at that step and position.
        input_events: ``(T, C, H, W)`` float64, absolute input events per frame summed over the
            samples (event graphs only, else None).
    """

    fired: dict = field(default_factory=dict)
    input_events: np.ndarray | None = None

    @classmethod
    def empty(cls, backend: str = "", numeric: str = "int") -> RunTotals:
        return cls(backend, numeric, {}, {}, np.zeros((0, 0)), {})

    def add(self, result: RunResult, graph, x=None) -> None:
        """Add one chunk's ``result`` (a run of ``graph`` on the raw inputs ``x``)."""
        if self.logits.size == 0:
            self.backend, self.numeric = result.backend, result.numeric
            self.logits = np.asarray(result.logits, dtype=np.float64)
        else:
            self.logits = np.concatenate([self.logits, result.logits])
        for pop, s in result.spikes.items():
            total = s.sum(axis=1, keepdims=True, dtype=np.int64)
            self.spikes[pop] = self.spikes[pop] + total if pop in self.spikes else total
        for layer in graph.layers:
            key = tuple(layer.populations)
            if not all(p in result.spikes for p in key):
                continue
            count = _any_fired(result.spikes, key).sum(axis=1, dtype=np.int64)
            self.fired[key] = self.fired[key] + count if key in self.fired else count
        for layer, n in result.overflow.items():
            self.overflow[layer] = self.overflow.get(layer, 0) + n
        if graph.input.encoding == "events" and x is not None:
            events = np.abs(prepare_input(graph, x)).sum(axis=1)
            self.input_events = events if self.input_events is None else self.input_events + events


    def prefix(self, steps: int, logits: np.ndarray) -> RunTotals:
        """The totals of the first ``steps`` timesteps (views, no copy) with that shorter run's
        ``logits``: exact because the dynamics are causal and start from rest (as
        :func:`mlf_deploy.hardware.sweep.truncate`); overflow counts stay this run's."""
        cut = lambda d: {k: v[:steps] for k, v in d.items()}
        return RunTotals(self.backend, self.numeric, cut(self.spikes), {}, logits,
                         dict(self.overflow), cut(self.fired),
                         None if self.input_events is None else self.input_events[:steps])


def _any_fired(spikes: dict, pops) -> np.ndarray:
    """``(T, B, C, H, W)`` bool: any of ``pops`` fired."""
    out = None
    for p in pops:
        s = spikes[p] != 0
        out = s if out is None else out | s
    return out


def fired_samples(result: RunResult, pops) -> np.ndarray:
    """``(T, C, H, W)`` int64: samples of ``result`` in which any of ``pops`` fired, per step and
    position (from a raster, or the totals of a streamed run)."""
    if isinstance(result, RunTotals):
        key = tuple(pops)
        if key not in result.fired:
            raise UserError(f"the streamed run kept no totals for {', '.join(key)}; it does not "
                            "match this graph")
        return result.fired[key]
    return _any_fired(result.spikes, pops).sum(axis=1, dtype=np.int64)


def input_event_counts(graph, x) -> tuple[np.ndarray, int]:
    """``(absolute events per position summed over frames and samples, samples)`` of an event
    graph's input ``x``: raw frames, or the :class:`RunTotals` of a streamed run."""
    if isinstance(x, RunTotals):
        if x.input_events is None:
            raise UserError("counting the input ACs of an event graph needs the input frames")
        return x.input_events.sum(axis=0), x.batch
    # raw counts are integers; the int graph keeps them as they are
    frames = prepare_input(graph, x)
    return np.abs(frames).sum(axis=(0, 1)), frames.shape[1]
