"""Every backend in one table: what it runs, what it must match, and when it is within tolerance.

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

Every backend but torch also runs the graded lowering (``--spikes graded``, docs/graded.md) as
``<name>-graded``, compared with the *binary* graph's reference run level by level: ``ir-float-
graded`` and ``ir-int-graded`` with ``ir-float`` / ``ir-int`` (zero spike mismatches, membranes
within the float state tolerance / exactly equal, same logits), the others with their binary
counterpart's reference and tolerance (``lava-fixed-graded``: zero spike and membrane mismatches
against ir-int).

``verify``, ``demo`` and the CLI read this table. Lava and ONNX Runtime are imported only when
their backend runs, so a missing optional backend never breaks the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlf_deploy.errors import UserError
from mlf_deploy.results import RunResult
from runtimes.compare import BackendReport
from runtimes.pipeline import Pipeline
from runtimes.reference import run_reference
from runtimes.torch_backend import run_torch, run_torch_int

Tolerance = Callable[[BackendReport, float], "tuple[bool, str]"]  # (report, torch accuracy)


@dataclass(frozen=True)
class Backend:
    name: str
    reference: str | None  # the backend whose spikes (and states) this one must reproduce
    numeric: str  # the graph it runs: "float" or "int"
    kind: str  # "torch", "torch-int", "reference", "lava" or "onnx"
    tolerance: Tolerance
    demo: str | None = None  # the demo's verification run it belongs to: "main" or "lava"
    spikes: str = "binary"  # the lowering it runs: "binary" or "graded"


def _run_torch(pipe: Pipeline, graph, x) -> RunResult:
    return run_torch(pipe.model, x)


def _run_reference(pipe: Pipeline, graph, x) -> RunResult:
    return run_reference(graph, x)


def _run_lava(pipe: Pipeline, graph, x) -> RunResult:
    from runtimes.lava import run_lava
    return run_lava(graph, x, timeout=pipe.lava_timeout)


def _run_onnx(pipe: Pipeline, graph, x) -> RunResult:
    from runtimes.onnx import run_onnx, run_onnx_file
    if pipe.onnx_file is not None and pipe.onnx_file[1:] == (graph.numeric, graph.spikes):
        return run_onnx_file(pipe.onnx_file[0], graph, x)
    return run_onnx(graph, x, mode="sequence")


def _run_torch_int(pipe: Pipeline, graph, x) -> RunResult:
    from mlf_deploy.qat import IntGrid
    q = graph.metadata["quantization"]  # the grid of the very graph ir-int runs
    grid = IntGrid.of(pipe.model, q["weight_bits"], graph.input.encoding, q["input_max"])
    return run_torch_int(pipe.model, grid, x)


RUNNERS = {"torch": _run_torch, "torch-int": _run_torch_int, "reference": _run_reference,
           "lava": _run_lava, "onnx": _run_onnx}


def _always(rep, torch_accuracy):
    return True, ""


def _ir_float(rep, torch_accuracy):
    rate_ok = all(p["agreement"] >= 0.9999 for p in rep.populations)
    return (rate_ok and rep.top1_agreement == 1.0,
            "spike agreement below 99.99 % in a population or top-1 disagreement")


def _ir_int(rep, torch_accuracy):
    return (torch_accuracy - rep.accuracy <= 0.005 + 1e-12,
            f"accuracy {rep.accuracy:.4f} more than 0.5 points below torch {torch_accuracy:.4f}")


def _lava_float(rep, torch_accuracy):
    return rep.spike_mismatches == 0, "spike mismatches against ir-float"


def _lava_fixed(rep, torch_accuracy):
    return (rep.spike_mismatches == 0 and rep.state_mismatches == 0,
            "spike or membrane mismatches against ir-int")


def _onnx_float(rep, torch_accuracy):
    return (rep.spike_mismatches == 0 and rep.logits_vs_ref <= 1e-5,
            "spike mismatches or logits beyond 1e-5 against ir-float")


def _onnx_int(rep, torch_accuracy):
    return (rep.spike_mismatches == 0 and not rep.state_mismatches and rep.logits_vs_ref == 0.0,
            "mismatches against ir-int")


def _torch_int(rep, torch_accuracy):
    return (rep.spike_mismatches == 0 and rep.state_mismatches == 0 and rep.logits_vs_ref == 0.0,
            "mismatches against ir-int")


def _graded_float(rep, torch_accuracy):
    return (rep.spike_mismatches == 0 and rep.state_mismatches == 0 and rep.logits_vs_ref <= 1e-9,
            "spike or membrane mismatches against the binary float graph")


def _graded_int(rep, torch_accuracy):
    return (rep.spike_mismatches == 0 and rep.state_mismatches == 0 and rep.logits_vs_ref == 0.0,
            "spike or membrane mismatches against the binary int graph")


BACKENDS = {b.name: b for b in (
    Backend("torch", None, "float", "torch", _always, "main"),
    Backend("ir-float", "torch", "float", "reference", _ir_float, "main"),
    Backend("ir-int", "ir-float", "int", "reference", _ir_int, "main"),
    Backend("lava-float", "ir-float", "float", "lava", _lava_float, "lava"),
    Backend("lava-fixed", "ir-int", "int", "lava", _lava_fixed, "lava"),
    Backend("onnx-float", "ir-float", "float", "onnx", _onnx_float, "main"),
    Backend("onnx-int", "ir-int", "int", "onnx", _onnx_int, "main"),
    Backend("torch-int", "ir-int", "int", "torch-int", _torch_int),
    Backend("ir-float-graded", "ir-float", "float", "reference", _graded_float, None, "graded"),
    Backend("ir-int-graded", "ir-int", "int", "reference", _graded_int, "main", "graded"),
    Backend("lava-float-graded", "ir-float", "float", "lava", _lava_float, None, "graded"),
    Backend("lava-fixed-graded", "ir-int", "int", "lava", _lava_fixed, "lava", "graded"),
    Backend("onnx-float-graded", "ir-float", "float", "onnx", _onnx_float, None, "graded"),
    Backend("onnx-int-graded", "ir-int", "int", "onnx", _onnx_int, "main", "graded"),
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


def run_backend(name: str, pipe: Pipeline, x) -> RunResult:
    backend = BACKENDS.get(name)
    if backend is None:
        raise UserError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    return RUNNERS[backend.kind](pipe, pipe.graph(backend.numeric, backend.spikes), x)
