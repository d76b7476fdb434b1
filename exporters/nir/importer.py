"""NIR import: a NIR graph made of primitives our deployment graph expresses becomes a float Graph.

Accepted: ``Input``, ``Output``, ``Conv2d``/``Linear``/``Affine`` into ``LIF`` or ``IF`` neurons with
``v_leak = 0`` and reset to 0, fan-in (several edges into one node sum), ``Flatten`` before a dense
node, and a readout: a whole-map ``Conv2d`` or an ``Affine``/``Linear`` into the ``Output``, or the
neurons' spikes themselves (logits = spike counts). Anything else is refused naming the node and its
primitive. Neurons sharing the same input nodes form one layer (its levels, lowest threshold first).

NIR's LIF is continuous; the discretisation is the one of the importer the file was written for
(``source``: snntorch or norse, as in :mod:`mlf_deploy.exporters.nir.export`). Files written by
mlf-deploy carry their
MLF origin in ``metadata["mlf"]``; the importer uses it only where it is *consistent* with the node's
parameters (re-exporting the hint gives the node's arrays bit for bit), so export -> import returns
the identical graph and a hand-edited file still imports by its parameters.
"""

from __future__ import annotations

import json

import numpy as np

from mlf_deploy import limits
from mlf_deploy.errors import UserError, option
from mlf_deploy.exporters.nir.export import PROFILES, lif_params, nir_module
from mlf_deploy.exporters.nir.file_checks import check_nir_file, check_nir_values
from mlf_deploy.exporters.nir.schedule import schedule as _schedule
from mlf_deploy.ir import Graph, Input, Layer, Population, Projection, Readout
from mlf_deploy.ir.semantics import population_name

WEIGHTS = ("Conv2d", "Linear", "Affine")
NEURONS = ("LIF", "IF")
ACCEPTED = ("Input", "Output", "Flatten", *WEIGHTS, *NEURONS)


def _mlf(node) -> dict:
    """The MLF hint of a node's metadata; {} for anything that is not one (a list, bad JSON)."""
    meta = getattr(node, "metadata", None)
    raw = meta.get("mlf") if isinstance(meta, dict) else None
    try:
        hint = json.loads(raw) if isinstance(raw, (str, bytes)) else {}
    except (TypeError, ValueError, RecursionError):
        return {}
    return hint if isinstance(hint, dict) else {}


def _uniform(node, nid: str, field: str) -> float:
    values = np.unique(np.asarray(getattr(node, field), np.float64))
    if values.size != 1:
        raise UserError(f"NIR node {nid!r} ({type(node).__name__}): {field} differs between neurons; "
                        "an mlf-deploy population has one value per population")
    return float(values[0])


def _shape3(shape) -> tuple:
    shape = tuple(int(d) for d in np.asarray(shape).ravel())
    return shape if len(shape) == 3 else (int(np.prod(shape)), 1, 1)


class _Importer:
    def __init__(self, g, source: str | None, timesteps: int | None):
        self.g, self.meta = g, _mlf(g)
        written_for = self.meta.get("target")
        if source and written_for and source != written_for:
            raise UserError(f"this NIR file was written for {written_for}, not {source}; drop "
                            f"{option('nir_source')} or export it again for that target")
        self.source = written_for or source or "snntorch"
        if self.source not in PROFILES:
            raise UserError(f"unknown NIR source {self.source!r}; choose one of {', '.join(PROFILES)}")
        self.profile = PROFILES[self.source]
        gm = self.meta.get("graph_metadata")
        gm = gm if isinstance(gm, dict) else {}
        self.meta["graph_metadata"] = gm
        steps = gm.get("timesteps") or timesteps
        if steps is None:
            raise UserError("this NIR file does not say how many timesteps a sample has; pass "
                            f"{option('timesteps', 'N')}")
        if isinstance(steps, bool) or not isinstance(steps, int) \
                or not 1 <= steps <= limits.MAX_TIMESTEPS:
            raise UserError(f"the NIR file's timesteps is {str(steps)[:40]!r}; expected an integer "
                            f"in 1..{limits.MAX_TIMESTEPS}")
        self.steps = steps
        self.preds: dict = {n: [] for n in g.nodes}
        self.succs: dict = {n: [] for n in g.nodes}
        for a, b in g.edges:
            self.preds[b].append(a)
            self.succs[a].append(b)
        for nid, node in g.nodes.items():
            kind = type(node).__name__
            if kind not in ACCEPTED:
                raise UserError(f"NIR node {nid!r} is a {kind}; mlf-deploy graphs express only "
                                f"{', '.join(ACCEPTED)}")
        self.names: dict = {}  # NIR node id -> our population (or input) name

    def kind(self, nid: str) -> str:
        return type(self.g.nodes[nid]).__name__

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

    def neuron(self, nid: str) -> tuple[float, float]:
        """``(rho, threshold)`` of a neuron node under the source's discretisation."""
        node, hint = self.g.nodes[nid], _mlf(self.g.nodes[nid])
        for f in ("v_leak", "v_reset"):
            if f in node.__dataclass_fields__ and np.any(np.asarray(getattr(node, f)) != 0):
                raise UserError(f"NIR node {nid!r} ({self.kind(nid)}): {f} != 0 is not expressible "
                                "(mlf-deploy neurons leak to 0 and reset to 0)")
        if self.kind(nid) == "IF":
            return 1.0, _uniform(node, nid, "v_threshold") / _uniform(node, nid, "r")
        tau, r = _uniform(node, nid, "tau"), _uniform(node, nid, "r")
        th = _uniform(node, nid, "v_threshold")
        rho = 1.0 - self.profile.dt / tau
        if "threshold" in hint and "rho" in hint:
            again = lif_params(hint["rho"], hint["threshold"], self.profile)
            if again == {"tau": tau, "r": r, "v_threshold": th}:
                return float(hint["rho"]), float(hint["threshold"])
        if not self.profile.uses_r:
            return rho, th / (1.0 - rho)
        gain = r * self.profile.dt / tau  # snnTorch divides the threshold by it unless it is ~1
        return rho, th if np.isclose(gain, 1.0) else th / gain

    def run(self) -> Graph:
        g = self.g
        inputs = [n for n in g.nodes if self.kind(n) == "Input"]
        outputs = [n for n in g.nodes if self.kind(n) == "Output"]
        if len(inputs) != 1 or len(outputs) != 1:
            raise UserError(f"a NIR graph to import needs one Input and one Output, found "
                            f"{len(inputs)} and {len(outputs)}")
        gm = self.meta.get("graph_metadata", {})
        in_hint = _mlf(g.nodes[inputs[0]])
        inp = Input(in_hint.get("node", "input"), _shape3(g.nodes[inputs[0]].input_type["input"]),
                    in_hint.get("encoding", "events"), self.steps)
        self.names[inputs[0]] = inp.name
        nodes = {inp.name: inp}
        readout_from = self.preds[outputs[0]]
        groups: dict = {}  # frozenset of weight nodes -> neuron ids
        for nid in g.nodes:
            if self.kind(nid) in NEURONS:
                pre = self.preds[nid]
                bad = [p for p in pre if self.kind(p) not in WEIGHTS]
                if bad or not pre:
                    raise UserError(f"NIR node {nid!r} ({self.kind(nid)}) reads "
                                    f"{bad[0] if bad else 'nothing'!r}; a population's current must "
                                    "come from Conv2d/Linear/Affine nodes")
                groups.setdefault(frozenset(pre), []).append(nid)
        layers = []
        for weights, neurons in groups.items():
            layers.append(self.layer(sorted(weights), neurons))
        readout = self.readout(readout_from, outputs[0])
        for layer, pops, projections in layers:
            nodes.update({p.name: p for p in projections})
            nodes[layer.name] = layer
            nodes.update({p.name: p for p in pops})
        nodes[readout.name] = readout
        order = self.meta.get("order")
        if not (isinstance(order, list) and sorted(order) == sorted(nodes)):
            order = _schedule(nodes)
        metadata = gm or {"levels": max(len(p) for _, p, _ in layers), "timesteps": self.steps,
                          "source": "nir"}
        try:
            return Graph({n: nodes[n] for n in order}, "float", metadata)
        except ValueError as exc:
            raise UserError(f"the NIR graph has no mlf-deploy schedule: {exc}") from exc

    def layer(self, weights: list[str], neurons: list[str]):
        hints = [_mlf(self.g.nodes[n]) for n in neurons]
        params = [self.neuron(n) for n in neurons]
        order = sorted(range(len(neurons)), key=lambda i: (hints[i].get("level", 0), params[i][1]))
        first = self.g.nodes[neurons[order[0]]]
        shape = _shape3(first.v_threshold.shape)
        name = hints[order[0]].get("layer", neurons[order[0]])
        pops = []
        for k, i in enumerate(order):
            pop_name = hints[i].get("node", population_name(name, k))
            self.names[neurons[i]] = pop_name
            pops.append(Population(pop_name, name, k, shape, params[i][1], params[i][0]))
        bias, projections = None, []
        for wid in weights:
            node = self.g.nodes[wid]
            b = np.asarray(getattr(node, "bias", np.zeros(shape[0])), np.float64)
            if np.any(b):
                bias = b if bias is None else bias + b
            projections += self.projections(wid, name)
        bias = np.zeros(shape[0]) if bias is None else bias
        return Layer(name, shape, bias, tuple(p.name for p in pops)), pops, projections

    def projections(self, wid: str, layer: str) -> list:
        node, hint = self.g.nodes[wid], _mlf(self.g.nodes[wid])
        srcs = self.sources(wid)
        names = dict(zip(hint.get("sources", []), hint.get("projections", [])))
        out = []
        for s in srcs:
            src = self.names.get(s) or _mlf(self.g.nodes[s]).get("node") or s
            name = names.get(src, f"{layer}.{wid}<-{src}")
            if self.kind(wid) == "Conv2d":
                if node.groups != 1 or tuple(node.dilation) != (1, 1) or isinstance(node.padding, str):
                    raise UserError(f"NIR node {wid!r} (Conv2d): only ungrouped, undilated convolutions "
                                    "with numeric padding are expressible")
                out.append(Projection(name, src, layer, "conv2d", np.asarray(node.weight, np.float64),
                                      tuple(int(v) for v in node.stride),
                                      tuple(int(v) for v in node.padding)))
            else:
                out.append(Projection(name, src, layer, "dense", np.asarray(node.weight, np.float64)))
        return out

    def readout(self, preds: list[str], out_id: str) -> Readout:
        if len(preds) == 1 and self.kind(preds[0]) in WEIGHTS:
            wid = preds[0]
            return self.weighted_readout(wid, [self.names.get(s, s) for s in self.sources(wid)])
        if preds and all(self.kind(p) in NEURONS for p in preds):
            # the spikes are the output: logits are spike counts summed over time
            shape = _shape3(self.g.nodes[preds[0]].v_threshold.shape)
            if shape[1:] != (1, 1):
                raise UserError(f"NIR Output {out_id!r} reads spatial spike maps; only a whole-map "
                                "Conv2d or an Affine readout can pool them")
            return Readout("readout", tuple(self.names[p] for p in preds), np.eye(shape[0]),
                           np.zeros(shape[0]), float(self.steps))
        raise UserError(f"NIR Output {out_id!r} reads {preds}; expected one Conv2d/Affine/Linear "
                        "readout or the populations' spikes")

    def weighted_readout(self, wid: str, sources: list[str]) -> Readout:
        node, hint = self.g.nodes[wid], _mlf(self.g.nodes[wid])
        w = np.asarray(node.weight, np.float64)
        b = np.asarray(getattr(node, "bias", np.zeros(w.shape[0])), np.float64)
        name = hint.get("node", "readout")
        if w.ndim == 2:  # per-step W s + b over (C,) spikes: logits = W counts + T b
            src = _shape3(self.g.nodes[self.sources(wid)[0]].v_threshold.shape)
            if src[1:] != (1, 1) or w.shape[1] != src[0]:
                raise UserError(f"NIR node {wid!r} ({self.kind(wid)}) reads spatial spike maps into "
                                "the Output; the mlf-deploy readout pools a map (use a whole-map Conv2d)")
            return Readout(name, tuple(sources), w, b * self.steps, float(self.steps))
        h, wd = w.shape[2:]
        src_shape = _shape3(self.g.nodes[self.sources(wid)[0]].v_threshold.shape)
        if (h, wd) != src_shape[1:] or np.any(np.asarray(node.padding) != 0):
            raise UserError(f"NIR node {wid!r} (Conv2d) feeds the Output but is not a whole-map readout")
        if np.any(w != w[:, :, :1, :1]):
            raise UserError(f"NIR node {wid!r} (Conv2d readout) weighs positions differently; the "
                            "mlf-deploy readout averages over the map")
        k = self.steps * h * wd
        if "weight" in hint and "bias" in hint:
            hw, hb, scale = (np.asarray(hint["weight"], np.float64), np.asarray(hint["bias"], np.float64),
                             float(hint.get("scale", 1.0)))
            if (hw.shape == w.shape[:2] and np.array_equal(hw * scale / k, w[:, :, 0, 0])
                    and np.array_equal(hb / self.steps, b)):
                return Readout(name, tuple(sources), hw, hb, scale)
        return Readout(name, tuple(sources), w[:, :, 0, 0] * k, b * self.steps)


def from_nir(g, source: str | None = None, timesteps: int | None = None) -> Graph:
    """The float deployment graph of the ``nir.NIRGraph`` ``g``."""
    check_nir_values(g)
    try:
        return _Importer(g, source, timesteps).run()
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, ZeroDivisionError,
            AssertionError, OverflowError) as exc:  # a node our checks let through, misshapen
        raise UserError(f"the NIR graph cannot be imported: {type(exc).__name__}: "
                        f"{str(exc)[:160]}") from exc


def population_ids(g, source: str | None = None, timesteps: int | None = None) -> dict:
    """NIR neuron node id -> the population name :func:`from_nir` gives it."""
    imp = _Importer(g, source, timesteps)
    imp.run()
    return {k: v for k, v in imp.names.items() if imp.kind(k) in NEURONS}


def read_nir(path, source: str | None = None, timesteps: int | None = None) -> Graph:
    nir = nir_module()
    check_nir_file(path)  # links, external storage, declared sizes, depth: before nir reads it
    try:
        g = nir.read(str(path))
    except Exception as exc:  # noqa: BLE001 - nir's reader raises any kind on a malformed file
        raise UserError(f"{path} is not a readable NIR file ({type(exc).__name__}: "
                        f"{str(exc)[:160]})") from exc
    return from_nir(g, source, timesteps)
