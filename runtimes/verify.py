"""``mlf-deploy verify``: run backends on the same samples and compare each with its reference
(spikes and states per population, level and timestep), top-1 agreement and logits with torch,
accuracy with the labels. The references and tolerances are the table in :mod:`runtimes.backends`.
"""

from __future__ import annotations

import time

import numpy as np

from mlf_deploy.results import RunResult
from mlf_deploy.runtimes.backends import BACKENDS, run_backend, with_references
from mlf_deploy.runtimes.compare import BackendReport, compare_spikes, compare_states
from mlf_deploy.runtimes.pipeline import Pipeline


def judge(rep: BackendReport, torch_accuracy: float) -> None:
    """Apply the backend's tolerance (the table in :mod:`runtimes.backends`)."""
    rep.tolerance = BACKENDS[rep.name].rule
    ok, why = BACKENDS[rep.name].tolerance(rep, torch_accuracy)
    rep.within_tolerance, rep.reason = bool(ok), "" if ok else why


def build_report(name: str, result: RunResult, results: dict, labels: np.ndarray,
                 seconds: float, weight_bits: int | None = None) -> BackendReport:
    torch_res = results["torch"]
    ref_name = BACKENDS[name].reference
    rep = BackendReport(
        name, ref_name, accuracy=float((result.logits.argmax(1) == labels).mean()),
        top1_agreement=float((result.logits.argmax(1) == torch_res.logits.argmax(1)).mean()),
        logits_max_abs_diff=float(np.abs(result.logits - torch_res.logits).max()),
        overflow=dict(result.overflow), seconds=seconds, samples=int(len(labels)),
        weight_bits=weight_bits if result.numeric == "int" else None)
    if ref_name is not None:
        ref = results[ref_name]
        rep.spike_mismatches, rep.spike_total, rep.first_mismatch, rep.populations = \
            compare_spikes(result, ref)
        rep.state_mismatches = compare_states(result, ref)
        rep.logits_vs_ref = float(np.abs(result.logits - ref.logits).max())
        rep.top1_disagreements_vs_ref = int((result.logits.argmax(1) != ref.logits.argmax(1)).sum())
    else:
        rep.spike_total = sum(int(s.size) for s in result.spikes.values())
    judge(rep, float((torch_res.logits.argmax(1) == labels).mean()))
    return rep


def int_weight_bits(pipe: Pipeline) -> int | None:
    """The weight width of the int graph actually run (a graph file may differ from --weight-bits)."""
    return (pipe.graph_int.metadata.get("quantization") or {}).get("weight_bits", pipe.weight_bits)


def verify(pipe: Pipeline, backends, samples: int | None = 16, split: str = "test",
           progress=None) -> dict:
    """Run ``backends`` (plus their references) on the first ``samples`` of a split and compare."""
    x, y = pipe.data(split, samples)
    labels = y.numpy()
    results, reports = {}, {}
    for name in with_references(backends):
        if progress:
            progress(name)
        start = time.perf_counter()
        results[name] = run_backend(name, pipe, x)
        reports[name] = build_report(name, results[name], results, labels,
                                     time.perf_counter() - start, int_weight_bits(pipe))
    summary = {"passed": all(r.within_tolerance for r in reports.values()),
               "samples": int(len(labels)), "split": split, "checkpoint": pipe.path,
               "weight_bits": pipe.weight_bits,
               "backends": {n: r.to_dict() for n, r in reports.items()}}
    if pipe.graph_file is not None:  # a supplied graph must be this checkpoint's own lowering
        summary["graph_file"] = pipe.graph_file
        summary["passed"] = summary["passed"] and pipe.graph_file["identical"]
    return summary


def format_verify_table(summary: dict) -> str:
    rows = [f"{'backend':<17} {'reference':<9} {'acc':>6} {'top1':>6} {'spike mism':>14} "
            f"{'state mism':>10} {'|dlogit|':>9}  ok"]
    for name, r in summary["backends"].items():
        state = "-" if r["state_mismatches"] is None else str(r["state_mismatches"])
        rows.append(f"{name:<17} {r['reference'] or '-':<9} {r['accuracy']:>6.3f} "
                    f"{r['top1_agreement']:>6.3f} {r['spike_mismatches']:>6}/{r['spike_total']:<7} "
                    f"{state:>10} {r['logits_max_abs_diff']:>9.2e}  "
                    f"{'yes' if r['within_tolerance'] else 'NO: ' + r['reason']}")
        if r.get("statistics"):
            st = r["statistics"]
            rows.append(f"{'':<11} top-1 differs from {r['reference']} on {st['disagreements']} of "
                        f"{st['samples']} samples, 95 % CI {st['ci95'][0]:.2%}..{st['ci95'][1]:.2%}; "
                        f"{st['spike_mismatch_rate']:.2%} of spikes differ")
        if r["first_mismatch"]:
            fm = r["first_mismatch"]
            rows.append(f"{'':<17} first mismatch: layer {fm['layer']} level {fm['level']} "
                        f"step {fm['timestep']} index {fm['index']}")
    worst = []
    for name, r in summary["backends"].items():
        if r["populations"]:
            p = min(r["populations"], key=lambda p: p["agreement"])
            worst.append(f"{name}: lowest population agreement {p['agreement']:.6f} "
                         f"({p['population']})")
    rows += worst
    rows.append("tolerances:")
    rows += [f"  {name}: {r['tolerance']}" for name, r in summary["backends"].items()]
    supplied = summary.get("graph_file")
    if supplied:
        rows.append(f"graph file {supplied['path']}: " + (
            "identical to this checkpoint's own lowering" if supplied["identical"] else
            f"DIFFERS from this checkpoint's own lowering in {len(supplied['differences'])} "
            "place(s):"))
        rows += [f"  {line}" for line in supplied["differences"]]
    rows.append(f"{'PASSED' if summary['passed'] else 'FAILED'} on {summary['samples']} samples")
    return "\n".join(rows)
