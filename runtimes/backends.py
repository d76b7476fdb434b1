"""The backends by name, and a verification run over several of them.

Lava and ONNX Runtime are imported only when their backend is asked for, so a missing optional
backend never breaks the others.
"""

from __future__ import annotations

import time

import numpy as np

from mlf_deploy.errors import UserError
from mlf_deploy.results import RunResult
from runtimes.pipeline import Pipeline
from runtimes.reference import run_reference
from runtimes.torch_backend import run_torch
from runtimes.verify import REFERENCE, build_report

BACKENDS = tuple(REFERENCE)
DEFAULT_BACKENDS = ("torch", "ir-float", "ir-int")


def parse_backends(text: str) -> list[str]:
    names = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in names if b not in REFERENCE]
    if unknown or not names:
        raise UserError(f"unknown backend(s) {', '.join(unknown) or '(none given)'}; "
                        f"choose from {', '.join(BACKENDS)}")
    return names


def with_references(names) -> list[str]:
    """``names`` plus every reference they are compared with, references first, torch always."""
    out: list[str] = []

    def add(name):
        ref = REFERENCE[name]
        if ref is not None:
            add(ref)
        if name not in out:
            out.append(name)

    for n in ["torch", *names]:
        add(n)
    return out


def run_backend(name: str, pipe: Pipeline, x, lava_timeout: float | None = None) -> RunResult:
    if name == "torch":
        return run_torch(pipe.model, x)
    graph = pipe.graph_int if name.endswith(("-int", "-fixed")) else pipe.graph_float
    if name.startswith("ir-"):
        return run_reference(graph, x)
    if name.startswith("lava-"):
        from runtimes.lava import run_lava
        return run_lava(graph, x, timeout=lava_timeout)
    if name.startswith("onnx-"):
        from runtimes.onnx import run_onnx, run_onnx_file
        if pipe.onnx_file is not None and pipe.onnx_file[1] == graph.numeric:
            return run_onnx_file(pipe.onnx_file[0], graph, x)
        return run_onnx(graph, x, mode="sequence")
    raise UserError(f"unknown backend {name!r}")


def verify(pipe: Pipeline, backends, samples: int | None = 16, split: str = "test",
           progress=None, lava_timeout: float | None = None) -> dict:
    """Run ``backends`` (plus their references) on the first ``samples`` of a split and compare;
    ``lava_timeout``: seconds per Lava run (default: derived from the network)."""
    x, y = pipe.data(split, samples)
    labels = y.numpy()
    results, reports = {}, {}
    for name in with_references(backends):
        if progress:
            progress(name)
        start = time.perf_counter()
        results[name] = run_backend(name, pipe, x, lava_timeout)
        reports[name] = build_report(name, results[name], results, labels,
                                     time.perf_counter() - start)
    return {"passed": all(r.within_tolerance for r in reports.values()),
            "samples": int(len(labels)), "split": split, "checkpoint": pipe.path,
            "weight_bits": pipe.weight_bits,
            "backends": {n: r.to_dict() for n, r in reports.items()}}


def format_verify_table(summary: dict) -> str:
    rows = [f"{'backend':<11} {'reference':<9} {'acc':>6} {'top1':>6} {'spike mism':>14} "
            f"{'state mism':>10} {'|dlogit|':>9}  ok"]
    for name, r in summary["backends"].items():
        state = "-" if r["state_mismatches"] is None else str(r["state_mismatches"])
        rows.append(f"{name:<11} {r['reference'] or '-':<9} {r['accuracy']:>6.3f} "
                    f"{r['top1_agreement']:>6.3f} {r['spike_mismatches']:>6}/{r['spike_total']:<7} "
                    f"{state:>10} {r['logits_max_abs_diff']:>9.2e}  "
                    f"{'yes' if r['within_tolerance'] else 'NO: ' + r['reason']}")
        if r["first_mismatch"]:
            fm = r["first_mismatch"]
            rows.append(f"{'':<11} first mismatch: layer {fm['layer']} level {fm['level']} "
                        f"step {fm['timestep']} index {fm['index']}")
    worst = []
    for name, r in summary["backends"].items():
        if r["populations"]:
            p = min(r["populations"], key=lambda p: p["agreement"])
            worst.append(f"{name}: lowest population agreement {p['agreement']:.6f} ({p['population']})")
    rows += worst
    rows.append(f"{'PASSED' if summary['passed'] else 'FAILED'} on {summary['samples']} samples")
    return "\n".join(rows)
