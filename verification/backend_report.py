"""The report :mod:`mlf_deploy.workflows.verify` fills (from :mod:`mlf_deploy.verification.tally`)
and judges, and the
comparison of membrane states."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
    ref_only_correct: int = 0  # paired: samples the reference classifies right and this one wrong
    only_correct: int = 0  # paired: samples this one classifies right and the reference wrong
    accuracy_tolerance: float | None = None  # the accuracy drop a lossy backend may show
    layer_check: dict | None = None  # ir-int: the per-layer check (runtimes.layer_check)
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
