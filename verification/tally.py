"""One backend's comparison summed over the chunks of a verify run.

``verify`` runs its samples chunk by chunk and drops each chunk's recordings once compared, so its
memory does not grow with the number of samples. What it reports must not depend on the chunking:
every count adds (mismatches, totals, correct and agreeing samples, paired disagreements, spikes
fired per population, overflow events), every maximum takes the maximum, and the first mismatch is
the least one in the order an unchunked comparison scans (population, timestep, sample, neuron), so
a chunked report equals the unchunked one field for field. Rates and the statistical verdict
(:mod:`mlf_deploy.verification.agreement`) are computed from the totals, at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from mlf_deploy.ir.semantics import parse_population
from mlf_deploy.results import RunResult
from mlf_deploy.verification.backend_report import BackendReport, compare_states


class FirstMismatch(NamedTuple):
    """Where a run first differs from its reference, with the key that orders such places."""

    key: tuple  # (population rank, timestep, sample, *neuron index): the order of a full scan
    where: dict  # layer, level, timestep and index (sample, *neuron) as the report shows it


@dataclass
class PopulationCount:
    """One population's spike comparison, summed over the chunks."""

    mismatches: int = 0
    total: int = 0  # spikes compared (neurons x timesteps x samples)
    fired: int = 0  # spikes the backend fired


def _first_mismatch(result: RunResult, ref: RunResult, offset: int) -> FirstMismatch | None:
    """The first mismatch of this chunk, or None: the first population (in the reference's order)
    with a mismatch, its first timestep, then sample (``offset`` + index in the chunk), then
    neuron."""
    for rank, (pop, s_ref) in enumerate(ref.spikes.items()):
        diff = result.spikes[pop] != s_ref
        if diff.any():
            t, b, *idx = (int(i) for i in np.argwhere(diff)[0])
            layer, level = parse_population(pop)
            key = (rank, t, b + offset, *idx)
            return FirstMismatch(key, {"layer": layer, "level": level, "timestep": t,
                                       "index": [b + offset, *idx]})
    return None


class Tally:
    """Running totals of backend ``name`` against ``reference`` (None: torch, against labels)."""

    def __init__(self, name: str, reference: str | None, weight_bits: int | None):
        self.name, self.reference, self.weight_bits = name, reference, weight_bits
        self.samples = self.correct = self.agree = self.disagree_ref = 0
        self.ref_only_correct = self.only_correct = 0
        self.logit_diff = self.logit_vs_ref = 0.0
        self.unreferenced_total = 0  # torch's spikes, which nothing is compared with
        self.states: int | None = None
        self.first: FirstMismatch | None = None
        self.pops: dict[str, PopulationCount] = {}
        self.overflow: dict = {}
        self.seconds = 0.0

    def add(self, result: RunResult, results: dict, labels: np.ndarray, offset: int,
            seconds: float) -> None:
        """Add one chunk: ``results`` holds this chunk's runs of torch and of the reference,
        ``offset`` is the index of the chunk's first sample in the whole run."""
        torch_res, pred = results["torch"], result.logits.argmax(1)
        self.samples += len(labels)
        self.correct += int((pred == labels).sum())
        self.agree += int((pred == torch_res.logits.argmax(1)).sum())
        self.logit_diff = max(self.logit_diff,
                              float(np.abs(result.logits - torch_res.logits).max()))
        for layer, count in result.overflow.items():
            self.overflow[layer] = self.overflow.get(layer, 0) + count
        self.seconds += seconds
        if self.reference is None:
            self.unreferenced_total += sum(int(s.size) for s in result.spikes.values())
            return
        ref = results[self.reference]
        for pop, s_ref in ref.spikes.items():
            s = result.spikes[pop]
            count = self.pops.setdefault(pop, PopulationCount())
            count.mismatches += int((s != s_ref).sum())
            count.total += int(s.size)
            count.fired += int(s.sum(dtype=np.int64))
        first = _first_mismatch(result, ref, offset)
        if first is not None and (self.first is None or first.key < self.first.key):
            self.first = first
        states = compare_states(result, ref)
        if states is not None:
            self.states = (self.states or 0) + states
        self.logit_vs_ref = max(self.logit_vs_ref, float(np.abs(result.logits - ref.logits).max()))
        ref_right, right = ref.logits.argmax(1) == labels, pred == labels
        self.disagree_ref += int((pred != ref.logits.argmax(1)).sum())
        self.ref_only_correct += int((ref_right & ~right).sum())
        self.only_correct += int((right & ~ref_right).sum())

    def report(self) -> BackendReport:
        """The report an unchunked comparison of all samples gives (not yet judged)."""
        n = max(self.samples, 1)
        mismatches = sum(c.mismatches for c in self.pops.values())
        total = sum(c.total for c in self.pops.values()) if self.pops else \
            self.unreferenced_total
        pops = [{"population": p, "mismatches": c.mismatches, "total": c.total,
                 "agreement": 1 - c.mismatches / c.total, "firing_rate": c.fired / c.total}
                for p, c in self.pops.items()]
        return BackendReport(
            self.name, self.reference, accuracy=self.correct / n, top1_agreement=self.agree / n,
            logits_max_abs_diff=self.logit_diff, logits_vs_ref=self.logit_vs_ref,
            samples=self.samples, top1_disagreements_vs_ref=self.disagree_ref,
            ref_only_correct=self.ref_only_correct, only_correct=self.only_correct,
            weight_bits=self.weight_bits, spike_mismatches=mismatches,
            spike_total=total, state_mismatches=self.states,
            first_mismatch=self.first.where if self.first else None, populations=pops,
            overflow=dict(self.overflow), seconds=self.seconds)
