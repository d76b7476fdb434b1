"""The NIR graph as the importer walks it: its edges both ways, its node kinds (refusing any our
graph cannot express), the MLF hints mlf-deploy writes into node metadata, the discretisation of
the simulator the file was written for, and the timesteps of a sample."""

from __future__ import annotations

import json

import numpy as np

from mlf_deploy import limits
from mlf_deploy.errors import UserError, option
from mlf_deploy.exporters.nir.export import PROFILES

WEIGHTS = ("Conv2d", "Linear", "Affine")
NEURONS = ("LIF", "IF")
ACCEPTED = ("Input", "Output", "Flatten", *WEIGHTS, *NEURONS)


def mlf_hint(node) -> dict:
    """The MLF hint of a node's metadata; {} for anything that is not one (a list, bad JSON)."""
    meta = getattr(node, "metadata", None)
    raw = meta.get("mlf") if isinstance(meta, dict) else None
    try:
        hint = json.loads(raw) if isinstance(raw, (str, bytes)) else {}
    except (TypeError, ValueError, RecursionError):
        return {}
    return hint if isinstance(hint, dict) else {}


def uniform(node, nid: str, field: str) -> float:
    """The one value of a per-neuron ``field`` (our populations have one per population)."""
    values = np.unique(np.asarray(getattr(node, field), np.float64))
    if values.size != 1:
        raise UserError(f"NIR node {nid!r} ({type(node).__name__}): {field} differs between "
                        "neurons; an mlf-deploy population has one value per population")
    return float(values[0])


def shape3(shape) -> tuple:
    """A NIR shape as our ``(C, H, W)``: a flat one becomes ``(n, 1, 1)``."""
    shape = tuple(int(d) for d in np.asarray(shape).ravel())
    return shape if len(shape) == 3 else (int(np.prod(shape)), 1, 1)


class NirReader:
    """``g`` (a ``nir.NIRGraph``) checked and indexed; ``names`` collects the NIR node id ->
    population (or input) name mapping as the importer names them."""

    def __init__(self, g, source: str | None, timesteps: int | None):
        self.g, self.meta = g, mlf_hint(g)
        self.source = self._written_for(source)
        self.profile = PROFILES[self.source]
        gm = self.meta.get("graph_metadata")
        self.meta["graph_metadata"] = gm if isinstance(gm, dict) else {}
        self.steps = self._timesteps(timesteps)
        self.preds: dict = {n: [] for n in g.nodes}
        self.succs: dict = {n: [] for n in g.nodes}
        for a, b in g.edges:
            self.preds[b].append(a)
            self.succs[a].append(b)
        for nid in g.nodes:
            if self.kind(nid) not in ACCEPTED:
                raise UserError(f"NIR node {nid!r} is a {self.kind(nid)}; mlf-deploy graphs "
                                f"express only {', '.join(ACCEPTED)}")
        self.names: dict = {}  # NIR node id -> our population (or input) name

    def _written_for(self, source: str | None) -> str:
        """The simulator whose discretisation applies: the file's own target, else ``source``."""
        written_for = self.meta.get("target")
        if source and written_for and source != written_for:
            raise UserError(f"this NIR file was written for {written_for}, not {source}; drop "
                            f"{option('nir_source')} or export it again for that target")
        chosen = written_for or source or "snntorch"
        if chosen not in PROFILES:
            raise UserError(f"unknown NIR source {chosen!r}; choose one of {', '.join(PROFILES)}")
        return chosen

    def _timesteps(self, timesteps: int | None) -> int:
        steps = self.meta["graph_metadata"].get("timesteps") or timesteps
        if steps is None:
            raise UserError("this NIR file does not say how many timesteps a sample has; pass "
                            f"{option('timesteps', 'N')}")
        if isinstance(steps, bool) or not isinstance(steps, int) \
                or not 1 <= steps <= limits.MAX_TIMESTEPS:
            raise UserError(f"the NIR file's timesteps is {str(steps)[:40]!r}; expected an "
                            f"integer in 1..{limits.MAX_TIMESTEPS}")
        return steps

    def kind(self, nid: str) -> str:
        return type(self.g.nodes[nid]).__name__

    def hint(self, nid: str) -> dict:
        return mlf_hint(self.g.nodes[nid])

    def sources(self, wid: str) -> list[str]:
        """Spike sources of a weight node, looking through a Flatten."""
        out = []
        for p in self.preds[wid]:
            out += self.preds[p] if self.kind(p) == "Flatten" else [p]
        for s in out:
            if self.kind(s) not in ("Input", *NEURONS):
                raise UserError(f"NIR node {wid!r} reads {s!r} ({self.kind(s)}); a projection's "
                                "source must be the Input or a LIF/IF population")
        return out

    def neuron_shape(self, nid: str) -> tuple:
        return shape3(self.g.nodes[nid].v_threshold.shape)
