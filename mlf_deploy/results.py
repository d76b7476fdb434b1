"""The result of running a deployment graph (or the torch model) on a batch: what every backend
returns, what verification compares and what the energy estimator counts."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RunResult:
    """Spikes and states per population and model timestep, and the readout.

    Attributes:
        backend: the backend's name ("torch", "ir-float", "ir-int", "lava-fixed", ...).
        numeric: "float" or "int" (int states are membrane integers, 1/64 current unit).
        spikes: population -> ``(T, B, C, H, W)`` uint8 (0/1).
        states: population -> ``(T, B, C, H, W)`` membrane after the step's reset; may be empty
            when a backend cannot read states.
        logits: ``(B, num_classes)`` float64.
        overflow: layer -> number of (neuron, step) events where a 24-bit limit was hit (int only).
    """

    backend: str
    numeric: str
    spikes: dict
    states: dict
    logits: np.ndarray
    overflow: dict = field(default_factory=dict)

    @property
    def timesteps(self) -> int:
        return next(iter(self.spikes.values())).shape[0]

    @property
    def batch(self) -> int:
        return self.logits.shape[0]

    @staticmethod
    def concat(results: list[RunResult]) -> RunResult:
        """Join results of consecutive batches along the batch axis."""
        first = results[0]
        cat = lambda key, attr: np.concatenate([getattr(r, attr)[key] for r in results], axis=1)
        overflow = {}
        for r in results:
            for k, v in r.overflow.items():
                overflow[k] = overflow.get(k, 0) + v
        return RunResult(first.backend, first.numeric,
                         {k: cat(k, "spikes") for k in first.spikes},
                         {k: cat(k, "states") for k in first.states},
                         np.concatenate([r.logits for r in results]), overflow)
