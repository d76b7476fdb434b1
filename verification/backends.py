"""Every backend in one table: what it runs, what it must match, and when it is within tolerance.

Each row names the backend, the graph it runs, the backend it must reproduce and its tolerance,
given as numbers (:mod:`mlf_deploy.verification.tolerances`) from which both the check and the
sentence reported beside every verdict (``rule``) are derived; docs/verdict.md shows the table
:func:`rules_table` prints (a test keeps the two equal). Exact backends must be exact at any
sample count; only the quantized graph, which is lossy by design, is judged by a statistical rule,
so no verdict depends on how many samples were run.

Every backend but torch also runs the graded lowering (``--spikes graded``, docs/graded.md) as
``<name>-graded``, compared level by level with the *binary* graph's reference run.

Lava and ONNX Runtime are imported only when their backend runs, so a missing optional backend
never breaks the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlf_deploy.errors import UserError
from mlf_deploy.verification.tolerances import (
    EXACT,
    EXACT_ONNX,
    FLOAT_ONNX,
    FLOAT_VS_TORCH,
    GRADED_FLOAT,
    MEMBRANES_EXACT,
    SPIKES_ONLY,
    GroundTruth,
    Limits,
    Statistical,
)


@dataclass(frozen=True)
class Backend:
    name: str
    reference: str | None  # the backend whose spikes (and states) this one must reproduce
    numeric: str  # the graph it runs: "float" or "int"
    kind: str  # "torch", "torch-int", "reference", "lava", "onnx" or "sanafe"
    tolerance: Limits | GroundTruth | Statistical  # called on a report: (within, why not)
    demo: str | None = None  # the demo's verification run it belongs to: "main" or "lava"
    spikes: str = "binary"  # the lowering it runs: "binary" or "graded"

    @property
    def rule(self) -> str:
        """The tolerance in words, as reported beside every verdict."""
        return self.tolerance.rule(self.reference)


SANAFE = Limits(states=None, logits=None, scope="per layer",
                note="(SANA-FE's LIFs fed ir-int's input spikes; the input layer from ir-int)")

BACKENDS = {b.name: b for b in (
    Backend("torch", None, "float", "torch", GroundTruth(), "main"),
    Backend("ir-float", "torch", "float", "reference", FLOAT_VS_TORCH, "main"),
    Backend("ir-int", "ir-float", "int", "reference", Statistical(), "main"),
    Backend("lava-float", "ir-float", "float", "lava", SPIKES_ONLY, "lava"),
    Backend("lava-fixed", "ir-int", "int", "lava", MEMBRANES_EXACT, "lava"),
    Backend("onnx-float", "ir-float", "float", "onnx", FLOAT_ONNX, "main"),
    Backend("onnx-int", "ir-int", "int", "onnx", EXACT_ONNX, "main"),
    Backend("torch-int", "ir-int", "int", "torch-int", EXACT),
    Backend("sanafe", "ir-int", "int", "sanafe", SANAFE),
    Backend("ir-float-graded", "ir-float", "float", "reference", GRADED_FLOAT, None, "graded"),
    Backend("ir-int-graded", "ir-int", "int", "reference", EXACT, "main", "graded"),
    Backend("lava-float-graded", "ir-float", "float", "lava", SPIKES_ONLY, None, "graded"),
    Backend("lava-fixed-graded", "ir-int", "int", "lava", MEMBRANES_EXACT, "lava", "graded"),
    Backend("onnx-float-graded", "ir-float", "float", "onnx", FLOAT_ONNX, None, "graded"),
    Backend("onnx-int-graded", "ir-int", "int", "onnx", EXACT_ONNX, "main", "graded"),
)}
def rules_table() -> str:
    """The table as markdown: backend, reference, rule."""
    rows = [f"| `{b.name}` | {b.reference or '(labels)'} | {b.rule} |" for b in BACKENDS.values()]
    return "\n".join(["| backend | reference | within tolerance when |", "|---|---|---|", *rows])


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
