"""Run every backend on the same samples and compare: spikes and states against each backend's
reference, top-1 agreement and logits against torch, accuracy against the labels.

Each backend names its reference (the comparison that must be exact or near-exact for it):

=============  ==========  ===============================================================
backend        reference   within tolerance when
=============  ==========  ===============================================================
torch          (labels)    always (it is the ground truth)
ir-float       torch       >= 99.99 % spike agreement in every population, 100 % top-1
ir-int         ir-float    accuracy at most 0.5 points below torch
lava-float     ir-float    zero spike mismatches
lava-fixed     ir-int      zero spike and zero membrane mismatches
onnx-float     ir-float    zero spike mismatches, logits within 1e-5
onnx-int       ir-int      zero spike and state mismatches, identical logits
torch-int      ir-int      zero spike and state mismatches, identical logits (the torch
                           model on the integer grid, as fine-tuning trains it)
=============  ==========  ===============================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlf_deploy.results import RunResult

REFERENCE = {"torch": None, "ir-float": "torch", "ir-int": "ir-float", "lava-float": "ir-float",
             "lava-fixed": "ir-int", "onnx-float": "ir-float", "onnx-int": "ir-int", "torch-int": "ir-int"}
FLOAT_STATE_ATOL = 1e-4  # torch computes in float32, the graph backends in float64


@dataclass
class BackendReport:
    name: str
    reference: str | None
    accuracy: float
    top1_agreement: float
    logits_max_abs_diff: float
    logits_vs_ref: float = 0.0  # max |logits - reference's logits|
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
            layer, level = pop.rsplit("/L", 1)
            first = {"layer": layer, "level": int(level), "timestep": t, "index": idx}
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


def judge(rep: BackendReport, torch_accuracy: float) -> None:
    """Apply the tolerance table of the module docstring."""
    rate_ok = all(p["agreement"] >= 0.9999 for p in rep.populations)
    rules = {
        "torch": (True, ""),
        "ir-float": (rate_ok and rep.top1_agreement == 1.0,
                     "spike agreement below 99.99 % in a population or top-1 disagreement"),
        "ir-int": (torch_accuracy - rep.accuracy <= 0.005 + 1e-12,
                   f"accuracy {rep.accuracy:.4f} more than 0.5 points below torch {torch_accuracy:.4f}"),
        "lava-float": (rep.spike_mismatches == 0, "spike mismatches against ir-float"),
        "lava-fixed": (rep.spike_mismatches == 0 and rep.state_mismatches == 0,
                       "spike or membrane mismatches against ir-int"),
        "onnx-float": (rep.spike_mismatches == 0 and rep.logits_vs_ref <= 1e-5,
                       "spike mismatches or logits beyond 1e-5 against ir-float"),
        "onnx-int": (rep.spike_mismatches == 0 and not rep.state_mismatches
                     and rep.logits_vs_ref == 0.0, "mismatches against ir-int"),
        "torch-int": (rep.spike_mismatches == 0 and rep.state_mismatches == 0
                      and rep.logits_vs_ref == 0.0, "mismatches against ir-int"),
    }
    ok, why = rules.get(rep.name, (rep.spike_mismatches == 0, "spike mismatches"))
    rep.within_tolerance, rep.reason = bool(ok), "" if ok else why


def build_report(name: str, result: RunResult, results: dict, labels: np.ndarray,
                 seconds: float) -> BackendReport:
    torch_res = results["torch"]
    ref_name = REFERENCE.get(name)
    rep = BackendReport(
        name, ref_name, accuracy=float((result.logits.argmax(1) == labels).mean()),
        top1_agreement=float((result.logits.argmax(1) == torch_res.logits.argmax(1)).mean()),
        logits_max_abs_diff=float(np.abs(result.logits - torch_res.logits).max()),
        overflow=dict(result.overflow), seconds=seconds)
    if ref_name is not None:
        ref = results[ref_name]
        rep.spike_mismatches, rep.spike_total, rep.first_mismatch, rep.populations = \
            compare_spikes(result, ref)
        rep.state_mismatches = compare_states(result, ref)
        rep.logits_vs_ref = float(np.abs(result.logits - ref.logits).max())
    else:
        rep.spike_total = sum(int(s.size) for s in result.spikes.values())
    judge(rep, float((torch_res.logits.argmax(1) == labels).mean()))
    return rep
