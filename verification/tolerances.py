"""Tolerances as data: each backend's limits are numbers, and both the check and the sentence that
states it (the ``rule`` written beside every verdict) are derived from those numbers, so the two
cannot disagree.

Three kinds: :class:`Limits` (the exact and near-exact backends: how many spike mismatches, how far
membranes and logits may differ, or a minimum spike agreement), :class:`GroundTruth` (torch) and
:class:`Statistical` (the quantized graph, judged by the two questions of docs/verdict.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlf_deploy.verification.agreement import DEFAULT_TOLERANCE, accuracy_verdict
from mlf_deploy.verification.backend_report import FLOAT_STATE_ATOL, BackendReport
from mlf_deploy.verification.layer_check import CHANNEL_FACTOR, FLOOR_FACTOR
from mlf_deploy.verification.verdict_text import verdict_reasons


def _amount(x: float) -> str:
    """1e-05 -> "1e-5"; other values as ``:g``."""
    exp = math.log10(x) if x > 0 else None
    return f"1e{round(exp)}" if exp is not None and abs(exp - round(exp)) < 1e-9 else f"{x:g}"


@dataclass(frozen=True)
class Limits:
    """``states``: None (membranes not compared), 0 (identical integers) or the float atol that
    :func:`~mlf_deploy.verification.backend_report.compare_states` applies; ``logits``: None, 0.0
    (identical) or a maximum absolute difference; ``agreement``/``top1``: minimum fractions, in
    place of exactness (the float graph against float32 torch)."""

    states: float | None = 0
    logits: float | None = 0.0
    agreement: float | None = None
    top1: float | None = None
    scope: str = ""  # words before the rule, e.g. "per layer"; the rest is generated
    note: str = ""  # words after the reference's name, e.g. "(float64)"
    require_states: bool = True  # False: a run without recorded membranes is not failed for it

    @property
    def exact(self) -> bool:
        return self.agreement is None and self.states in (None, 0) and self.logits in (None, 0.0)

    def rule(self, reference: str) -> str:
        if self.agreement is not None:
            spikes = f">= {self.agreement * 100:g} % spike agreement in every population"
        else:
            spikes = "zero spike and membrane mismatches" if self.states == 0 else \
                "zero spike mismatches"
        words = spikes + (f" and {self.top1 * 100:g} % top-1 agreement" if self.top1 else "")
        words += f" with {reference}" + (f" {self.note}" if self.note else "")
        if self.states:
            words += f", membranes within {_amount(self.states)}"
        if self.logits == 0.0:
            words += ", identical logits"
        elif self.logits is not None:
            words += f", logits within {_amount(self.logits)}"
        head = "exact" if self.exact else ""
        head = ", ".join(p for p in (head, self.scope) if p)
        return f"{head}: {words}" if head else words

    def __call__(self, rep: BackendReport, torch_accuracy: float) -> tuple[bool, str]:
        broken = []
        if self.agreement is not None:
            low = [p for p in rep.populations if p["agreement"] < self.agreement]
            if low:
                broken.append(f"spike agreement below {self.agreement * 100:g} % in {len(low)} "
                              "population(s)")
        elif rep.spike_mismatches:
            broken.append(f"{rep.spike_mismatches} spike mismatch(es)")
        if self.states is not None and rep.state_mismatches:
            broken.append(f"{rep.state_mismatches} membrane mismatch(es)")
        elif self.states is not None and rep.state_mismatches is None and self.require_states:
            broken.append("membranes not recorded")
        if self.top1 is not None and rep.top1_agreement < self.top1:
            broken.append(f"top-1 agreement {rep.top1_agreement:.4f}")
        if self.logits is not None and rep.logits_vs_ref > self.logits:
            broken.append(f"logits differ by {rep.logits_vs_ref:.3g}")
        return not broken, "; ".join(broken) + (f" against {rep.reference}" if broken else "")


@dataclass(frozen=True)
class GroundTruth:
    def rule(self, reference) -> str:
        return "ground truth: always within tolerance"

    def __call__(self, rep, torch_accuracy):
        return True, ""


@dataclass(frozen=True)
class Statistical:
    """The quantized graph: a correct deployment (the per-layer check) and good enough (the
    paired accuracy drop within ``verify``'s tolerance); both answers are reported."""

    def rule(self, reference: str) -> str:
        return (f"deployment: every population, fed {reference}'s spikes, deviates from "
                f"{reference} no more than {FLOOR_FACTOR:g}x (each channel {CHANNEL_FACTOR:g}x) a "
                "rounding-sized perturbation of the float graph does (Poisson tests, 95 %); task: "
                f"its accuracy drop against {reference} not shown above the tolerance (exact "
                "paired 95 % bound)")

    def __call__(self, rep: BackendReport, torch_accuracy: float) -> tuple[bool, str]:
        tolerance = DEFAULT_TOLERANCE if rep.accuracy_tolerance is None else rep.accuracy_tolerance
        task = accuracy_verdict(rep.ref_only_correct, rep.only_correct, rep.samples, tolerance)
        layers = rep.layer_check
        rep.statistics = {"task": task, "deployment": None if layers is None else {
            k: layers[k] for k in ("passed", "failed", "failed_layers", "worst", "draws", "factor",
                                   "alpha")}}
        return task["passed"] and (layers is None or layers["passed"]), "; ".join(
            verdict_reasons(rep.reference, task, layers))


EXACT = Limits()  # zero spike and membrane mismatches, identical logits
# an ONNX model exported for its logits only records no membranes
EXACT_ONNX = Limits(require_states=False)
SPIKES_ONLY = Limits(states=None, logits=None)
MEMBRANES_EXACT = Limits(logits=None)  # Lava: the readout runs on the host from the spikes
FLOAT_ONNX = Limits(states=FLOAT_STATE_ATOL, logits=1e-5, require_states=False)  # float32 ONNX
FLOAT_VS_TORCH = Limits(states=None, logits=None, agreement=0.9999, top1=1.0, note="(float64)")
GRADED_FLOAT = Limits(states=FLOAT_STATE_ATOL, logits=1e-9)  # same float64 sums, another order
