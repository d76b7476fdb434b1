"""``mlf-deploy verify``: run backends on the same samples and compare each with its reference
(spikes and states per population, level and timestep), top-1 agreement and logits with torch,
accuracy with the labels. The references and tolerances are the table in
:mod:`mlf_deploy.verification.backends`.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from mlf_deploy.errors import UserError
from mlf_deploy.results import RunResult
from mlf_deploy.runtimes.lava_guard import SAMPLES_PER_RUN
from mlf_deploy.verification.backend_report import BackendReport
from mlf_deploy.verification.backends import BACKENDS, with_references
from mlf_deploy.verification.layer_check import LayerCheck
from mlf_deploy.verification.layer_check import applies as layer_check_applies
from mlf_deploy.verification.tally import Tally
from mlf_deploy.verification.verdict_text import layer_rows, verdict_lines
from mlf_deploy.workflows.options import VerifyOptions
from mlf_deploy.workflows.pipeline import Pipeline
from mlf_deploy.workflows.runners import prepare_backend

CHUNK_BYTES = 128 * 2 ** 20  # one backend's record of one chunk: spikes and states
RECORD_BYTES = 1 + 8  # per neuron and step: a uint8 spike and a (at most) 8-byte membrane
CHUNK_ENV = "MLF_DEPLOY_VERIFY_CHUNK"  # samples per chunk, overriding the default (tests, tuning)


def judge(rep: BackendReport, torch_accuracy: float) -> None:
    """Apply the backend's tolerance (the table in :mod:`mlf_deploy.verification.backends`)."""
    rep.tolerance = BACKENDS[rep.name].rule
    ok, why = BACKENDS[rep.name].tolerance(rep, torch_accuracy)
    rep.within_tolerance, rep.reason = bool(ok), "" if ok else why


def int_weight_bits(pipe: Pipeline) -> int | None:
    """The weight width of the int graph actually run (a graph file may differ from the
    pipeline's ``weight_bits``)."""
    return (pipe.graph_int.metadata.get("quantization") or {}).get("weight_bits", pipe.weight_bits)


def chunk_size(graph, backends=(), forced: int | None = None, budget: int = CHUNK_BYTES) -> int:
    """Samples per chunk: ``forced``, else as many as keep one backend's record of a chunk (every
    population at every step) within ``budget``, at least 1. With a Lava backend, rounded up to a
    multiple of the samples one Lava run takes (``SAMPLES_PER_RUN``): chunking then starts no more
    Lava runs (each compiles the network and forks its processes) than an unchunked verify."""
    per_sample = RECORD_BYTES * graph.timesteps * sum(int(np.prod(p.shape))
                                                      for p in graph.populations)
    chunk = forced or max(1, budget // per_sample)
    if any(BACKENDS[n].kind == "lava" for n in backends):
        chunk = SAMPLES_PER_RUN * math.ceil(chunk / SAMPLES_PER_RUN)
    return int(chunk)


def _env_chunk() -> int | None:
    text = os.environ.get(CHUNK_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"{CHUNK_ENV}={text[:20]!r} is not a positive number of samples; "
                        "unset it or set a whole number such as 8")
    return int(text)


def _logits_only(result: RunResult) -> RunResult:
    return RunResult(result.backend, result.numeric, {}, {}, result.logits, result.overflow)


class _Comparison:
    """What verify runs on every chunk and what it sums: each backend's runner and tally, and
    ir-int's per-layer check (None where it does not apply)."""

    def __init__(self, pipe: Pipeline, backends):
        self.names = with_references(backends)
        bits = int_weight_bits(pipe) if any(BACKENDS[n].numeric == "int" for n in self.names) \
            else None
        self.runners = {n: prepare_backend(n, pipe) for n in self.names}
        self.tallies = {n: Tally(n, BACKENDS[n].reference,
                                 bits if BACKENDS[n].numeric == "int" else None)
                        for n in self.names}
        self.check = LayerCheck(pipe.graph_float, pipe.graph_int) if "ir-int" in self.names \
            and layer_check_applies(pipe.graph_float, pipe.graph_int) else None

    def add(self, x, labels: np.ndarray, done: int, chunk: int, progress=None) -> None:
        """Run every backend on one chunk (``done`` samples before it) and add it to the totals."""
        results = {}
        for i, name in enumerate(self.names):
            if progress:
                one_chunk = done == 0 and len(labels) < chunk
                progress(name if one_chunk else f"{name} (samples {done + 1}-{done + len(labels)})")
            start = time.perf_counter()
            results[name] = self.runners[name](x)
            self.tallies[name].add(results[name], results, labels, done,
                                   time.perf_counter() - start)
            if name == "ir-int" and self.check is not None:
                self.check.add(x, results["ir-float"], done)
            # Keep a chunk's full records only while a later backend is compared with them.
            needed = {BACKENDS[n].reference for n in self.names[i + 1:]}
            results = {n: r if n in needed else _logits_only(r) for n, r in results.items()}

    def reports(self, tolerance: float) -> dict[str, BackendReport]:
        """Each backend's report over every chunk, judged against its tolerance."""
        reports = {n: t.report() for n, t in self.tallies.items()}
        torch_accuracy = reports["torch"].accuracy
        if self.check is not None:
            reports["ir-int"].layer_check = self.check.report()
        for rep in reports.values():
            rep.accuracy_tolerance = tolerance
            judge(rep, torch_accuracy)
        return reports


def verify(pipe: Pipeline, backends, options: VerifyOptions | None = None,
           progress=None) -> dict:
    """Run ``backends`` (plus their references) on the first ``options.samples`` of a split and
    compare; ``progress(name)`` is told each backend before it runs.

    The samples go through every backend in chunks of ``options.chunk`` (default
    :func:`chunk_size`, or the environment's ``MLF_DEPLOY_VERIFY_CHUNK``): each chunk's
    recordings are compared, added to running totals
    (:class:`~mlf_deploy.verification.tally.Tally`) and dropped, so memory does not grow with the
    samples, and the report equals an unchunked run's. A Lava backend rounds the chunk up to
    whole Lava runs. ir-int is also run layer by layer on ir-float's spikes
    (:mod:`mlf_deploy.verification.layer_check`) and may lose at most ``options.tolerance`` of
    accuracy (a fraction)."""
    options = options or VerifyOptions()
    comparison = _Comparison(pipe, backends)
    chunk = chunk_size(pipe.graph_float, comparison.names, options.chunk or _env_chunk())
    done = 0
    for x, y in pipe.batches(options.split, options.samples, chunk):
        comparison.add(x, y.numpy(), done, chunk, progress)
        done += len(y)
    if done == 0:
        raise UserError(f"the {options.split} split of {pipe.path} holds no samples to verify")
    reports = comparison.reports(options.tolerance)
    # A reference added only to compare a requested backend with is reported, but the verdict
    # answers what was asked: asking for lava-fixed alone judges lava-fixed against ir-int.
    asked = {"torch", *backends}
    summary = {"passed": all(r.within_tolerance for n, r in reports.items() if n in asked),
               "references_only": [n for n in comparison.names if n not in asked],
               "samples": done, "split": options.split, "checkpoint": pipe.path,
               "weight_bits": pipe.weight_bits, "chunk": chunk, "tolerance": options.tolerance,
               "backends": {n: r.to_dict() for n, r in reports.items()}}
    if pipe.graph_file is not None:  # a supplied graph must be this checkpoint's own lowering
        summary["graph_file"] = pipe.graph_file
        summary["passed"] = summary["passed"] and pipe.graph_file["identical"]
    return summary


def format_verify_table(summary: dict, backends_option: str = "the backends") -> str:
    """verify's table; ``backends_option``: what the caller calls the backends it asked for."""
    rows = [f"{'backend':<17} {'reference':<9} {'acc':>6} {'top1':>6} {'spike mism':>14} "
            f"{'state mism':>10} {'|dlogit|':>9}  ok"]
    for name, r in summary["backends"].items():
        state = "-" if r["state_mismatches"] is None else str(r["state_mismatches"])
        rows.append(f"{name:<17} {r['reference'] or '-':<9} {r['accuracy']:>6.3f} "
                    f"{r['top1_agreement']:>6.3f} {r['spike_mismatches']:>6}/{r['spike_total']:<7} "
                    f"{state:>10} {r['logits_max_abs_diff']:>9.2e}  "
                    f"{'yes' if r['within_tolerance'] else 'NO: ' + r['reason']}")
        rows += [f"{'':<17} {line}" for line in verdict_lines(r)]
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
    for name, r in summary["backends"].items():
        if r.get("layer_check"):
            rows += [f"{name} per layer, % of ir-float's spikes that differ: own (fed ir-float's "
                     "spikes), its rounding floor, free-running:", *layer_rows(r)]
    rows.append("tolerances:")
    rows += [f"  {name}: {r['tolerance']}" for name, r in summary["backends"].items()]
    supplied = summary.get("graph_file")
    if supplied:
        rows.append(f"graph file {supplied['path']}: " + (
            "identical to this checkpoint's own lowering" if supplied["identical"] else
            f"DIFFERS from this checkpoint's own lowering in {len(supplied['differences'])} "
            "place(s):"))
        rows += [f"  {line}" for line in supplied["differences"]]
    extra = summary.get("references_only")
    if extra:
        rows.append("run as reference only, shown but not deciding the verdict: "
                    f"{', '.join(extra)} (name it in {backends_option} to have it judged)")
    rows.append(f"{'PASSED' if summary['passed'] else 'FAILED'} on {summary['samples']} samples"
                + (f" (in chunks of {summary['chunk']})"
                   if summary.get("chunk", summary["samples"]) < summary["samples"] else ""))
    return "\n".join(rows)
