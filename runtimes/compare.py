"""Comparisons of one backend's run against another's: spikes per population, membrane states,
and the report that :mod:`runtimes.verify` fills and judges."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlf_deploy.ir.semantics import parse_population
from mlf_deploy.results import RunResult

FLOAT_STATE_ATOL = 1e-4  # torch computes in float32, the graph backends in float64


@dataclass
class BackendReport:
    name: str
    reference: str | None
    accuracy: float
    top1_agreement: float
    logits_max_abs_diff: float
    logits_vs_ref: float = 0.0  # max |logits - reference's logits|
    samples: int = 0
    top1_disagreements_vs_ref: int = 0  # paired: samples whose class differs from the reference's
    tolerance: str = ""  # the rule this backend is judged by, in words
    weight_bits: int | None = None  # int graphs: the weight width the graph was quantized to
    statistics: dict | None = None  # the statistical test behind the verdict, where there is one
    spike_mismatches: int = 0
    spike_total: int = 0
    state_mismatches: int | None = None
    first_mismatch: dict | None = None
    populations: list = field(default_factory=list)
    overflow: dict = field(default_factory=dict)
    seconds: float = 0.0
    within_tolerance: bool = True
    reason: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def compare_spikes(result: RunResult, ref: RunResult) -> tuple[int, int, dict | None, list]:
    mism = total = 0
    first, per_pop = None, []
    for pop, s_ref in ref.spikes.items():
        s = result.spikes[pop]
        diff = s != s_ref
        n = int(diff.sum())
        if n and first is None:
            t, *idx = (int(i) for i in np.argwhere(diff)[0])
            layer, level = parse_population(pop)
            first = {"layer": layer, "level": level, "timestep": t, "index": idx}
        per_pop.append({"population": pop, "mismatches": n, "total": int(s.size),
                        "agreement": 1 - n / s.size, "firing_rate": float(s.mean())})
        mism, total = mism + n, total + int(s.size)
    return mism, total, first, per_pop


def compare_states(result: RunResult, ref: RunResult) -> int | None:
    """Count membrane values that differ; None when the two are not comparable."""
    if not result.states or not ref.states or result.numeric != ref.numeric:
        return None
    count = 0
    for pop, v_ref in ref.states.items():
        v = result.states[pop]
        if result.numeric == "int":
            count += int((v != v_ref).sum())
        else:
            count += int((np.abs(v.astype(np.float64) - v_ref) > FLOAT_STATE_ATOL).sum())
    return count
