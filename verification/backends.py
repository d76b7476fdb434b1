"""Every backend in one table: what it runs, what it must match, and when it is within tolerance.

=============  ==========  ===============================================================
backend        reference   within tolerance when
=============  ==========  ===============================================================
torch          (labels)    always (it is the ground truth)
ir-float       torch       >= 99.99 % spike agreement in every population, 100 % top-1
ir-int         ir-float    deployment: each layer, teacher-forced with ir-float's spikes,
                           within 4x a measured rounding floor (:mod:`runtimes.layer_check`);
                           task: accuracy drop not shown above ``--tolerance``
                           (:mod:`runtimes.agreement`)
lava-float     ir-float    zero spike mismatches
lava-fixed     ir-int      zero spike and zero membrane mismatches
onnx-float     ir-float    zero spike mismatches, logits within 1e-5
onnx-int       ir-int      zero spike and state mismatches, identical logits
torch-int      ir-int      zero spike and state mismatches, identical logits (the torch
                           model on the integer grid, as fine-tuning trains it)
sanafe         ir-int      zero spike mismatches: SANA-FE's Loihi LIFs, each layer fed ir-int's
                           input spikes (the input layer's spikes are ir-int's; docs/energy.md)
=============  ==========  ===============================================================

Every backend but torch also runs the graded lowering (``--spikes graded``, docs/graded.md) as
``<name>-graded``, compared with the *binary* graph's reference run level by level: ``ir-float-
graded`` and ``ir-int-graded`` with ``ir-float`` / ``ir-int`` (zero spike mismatches, membranes
within the float state tolerance / exactly equal, same logits), the others with their binary
counterpart's reference and tolerance (``lava-fixed-graded``: zero spike and membrane mismatches
against ir-int).

``verify``, ``demo`` and the CLI read this table; each row's ``rule`` is the sentence above, and it
is written beside the verdict in verify's JSON and table and in the demo report. Exact backends
must be exact at any sample count; only the quantized graph, which is lossy by design, is judged by
a statistical rule, so no verdict depends on how many samples were run. Lava and ONNX Runtime are imported only when
their backend runs, so a missing optional backend never breaks the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlf_deploy.errors import UserError
from mlf_deploy.verification.agreement import DEFAULT_TOLERANCE, accuracy_verdict
from mlf_deploy.verification.backend_report import BackendReport
from mlf_deploy.verification.layer_check import CHANNEL_FACTOR, FLOOR_FACTOR
from mlf_deploy.verification.verdict_text import verdict_reasons

Tolerance = Callable[[BackendReport, float], "tuple[bool, str]"]  # (report, torch accuracy)


@dataclass(frozen=True)
class Backend:
    name: str
    reference: str | None  # the backend whose spikes (and states) this one must reproduce
    numeric: str  # the graph it runs: "float" or "int"
    kind: str  # "torch", "torch-int", "reference", "lava" or "onnx"
    tolerance: Tolerance
    rule: str  # the tolerance in words, as reported beside every verdict
    demo: str | None = None  # the demo's verification run it belongs to: "main" or "lava"
    spikes: str = "binary"  # the lowering it runs: "binary" or "graded"


def _always(rep, torch_accuracy):
    return True, ""


def _ir_float(rep, torch_accuracy):
    rate_ok = all(p["agreement"] >= 0.9999 for p in rep.populations)
    return (rate_ok and rep.top1_agreement == 1.0,
            "spike agreement below 99.99 % in a population or top-1 disagreement")


def _ir_int(rep, torch_accuracy):
    """Two questions, both reported (docs/verdict.md): is the int graph a correct deployment
    (the per-layer check), and is it good enough (the paired accuracy drop)."""
    tolerance = DEFAULT_TOLERANCE if rep.accuracy_tolerance is None else rep.accuracy_tolerance
    task = accuracy_verdict(rep.ref_only_correct, rep.only_correct, rep.samples, tolerance)
    layers = rep.layer_check
    rep.statistics = {"task": task, "deployment": None if layers is None else {
        k: layers[k] for k in ("passed", "failed", "failed_layers", "worst", "draws", "factor",
                               "alpha")}}
    return task["passed"] and (layers is None or layers["passed"]), "; ".join(
        verdict_reasons(rep.reference, task, layers))


def _lava_float(rep, torch_accuracy):
    return rep.spike_mismatches == 0, "spike mismatches against ir-float"


def _lava_fixed(rep, torch_accuracy):
    return (rep.spike_mismatches == 0 and rep.state_mismatches == 0,
            "spike or membrane mismatches against ir-int")


def _onnx_float(rep, torch_accuracy):
    return (rep.spike_mismatches == 0 and not rep.state_mismatches and rep.logits_vs_ref <= 1e-5,
            "spike or membrane mismatches, or logits beyond 1e-5 against ir-float")


def _onnx_int(rep, torch_accuracy):
    return (rep.spike_mismatches == 0 and not rep.state_mismatches and rep.logits_vs_ref == 0.0,
            "mismatches against ir-int")


def _torch_int(rep, torch_accuracy):
    return (rep.spike_mismatches == 0 and rep.state_mismatches == 0 and rep.logits_vs_ref == 0.0,
            "mismatches against ir-int")


def _sanafe(rep, torch_accuracy):
    return rep.spike_mismatches == 0, "spike mismatches against ir-int"


def _graded_float(rep, torch_accuracy):
    return (rep.spike_mismatches == 0 and rep.state_mismatches == 0 and rep.logits_vs_ref <= 1e-9,
            "spike or membrane mismatches against the binary float graph")


def _graded_int(rep, torch_accuracy):
    return (rep.spike_mismatches == 0 and rep.state_mismatches == 0 and rep.logits_vs_ref == 0.0,
            "spike or membrane mismatches against the binary int graph")


BACKENDS = {b.name: b for b in (
    Backend("torch", None, "float", "torch", _always,
            "ground truth: always within tolerance", "main"),
    Backend("ir-float", "torch", "float", "reference", _ir_float,
            ">= 99.99 % spike agreement in every population and 100 % top-1 agreement with "
            "torch (float64)", "main"),
    Backend("ir-int", "ir-float", "int", "reference", _ir_int,
            f"deployment: every population, fed ir-float's spikes, deviates from ir-float no "
            f"more than {FLOOR_FACTOR:g}x (each channel {CHANNEL_FACTOR:g}x) a rounding-sized "
            "perturbation of the float graph does (Poisson tests, 95 %); task: its accuracy drop "
            "against ir-float not shown above the tolerance (exact paired 95 % bound)", "main"),
    Backend("lava-float", "ir-float", "float", "lava", _lava_float,
            "exact: zero spike mismatches with ir-float", "lava"),
    Backend("lava-fixed", "ir-int", "int", "lava", _lava_fixed,
            "exact: zero spike and zero membrane mismatches with ir-int", "lava"),
    Backend("onnx-float", "ir-float", "float", "onnx", _onnx_float,
            "zero spike mismatches with ir-float, membranes within 1e-4, logits within 1e-5",
            "main"),
    Backend("onnx-int", "ir-int", "int", "onnx", _onnx_int,
            "exact: zero spike and membrane mismatches with ir-int, identical logits", "main"),
    Backend("torch-int", "ir-int", "int", "torch-int", _torch_int,
            "exact: zero spike and membrane mismatches with ir-int, identical logits"),
    Backend("sanafe", "ir-int", "int", "sanafe", _sanafe,
            "exact per layer: SANA-FE's LIFs, fed ir-int's input spikes, fire as ir-int's "
            "(input layer fed from ir-int)"),
    Backend("ir-float-graded", "ir-float", "float", "reference", _graded_float,
            "exact: the graded float graph's level spikes equal ir-float's, membranes and logits "
            "within 1e-9", None, "graded"),
    Backend("ir-int-graded", "ir-int", "int", "reference", _graded_int,
            "exact: zero spike and membrane mismatches with ir-int, identical logits", "main",
            "graded"),
    Backend("lava-float-graded", "ir-float", "float", "lava", _lava_float,
            "exact: zero spike mismatches with ir-float", None, "graded"),
    Backend("lava-fixed-graded", "ir-int", "int", "lava", _lava_fixed,
            "exact: zero spike and zero membrane mismatches with ir-int", "lava", "graded"),
    Backend("onnx-float-graded", "ir-float", "float", "onnx", _onnx_float,
            "zero spike mismatches with ir-float, membranes within 1e-4, logits within 1e-5", None,
            "graded"),
    Backend("onnx-int-graded", "ir-int", "int", "onnx", _onnx_int,
            "exact: zero spike and membrane mismatches with ir-int, identical logits", "main",
            "graded"),
)}
DEFAULT_BACKENDS = ("torch", "ir-float", "ir-int")


def demo_backends(run: str) -> list[str]:
    return [b.name for b in BACKENDS.values() if b.demo == run]


def parse_backends(text: str) -> list[str]:
    names = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in names if b not in BACKENDS]
    if unknown or not names:
        raise UserError(f"unknown backend(s) {', '.join(unknown) or '(none given)'}; "
                        f"choose from {', '.join(BACKENDS)}")
    return names


def with_references(names) -> list[str]:
    """``names`` plus every reference they are compared with, references first, torch always."""
    out: list[str] = []

    def add(name):
        ref = BACKENDS[name].reference
        if ref is not None:
            add(ref)
        if name not in out:
            out.append(name)

    for n in ["torch", *names]:
        add(n)
    return out


def names_for_spikes(names, spikes: str) -> list[str]:
    """``--spikes graded``: each named graph backend as its graded counterpart (torch and
    torch-int run the torch model, which has no lowering)."""
    if spikes == "binary":
        return list(names)
    return [n if f"{n}-graded" not in BACKENDS else f"{n}-graded" for n in names]
