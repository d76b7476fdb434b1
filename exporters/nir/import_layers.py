"""NIR neurons and weight nodes -> our layers: the K neuron nodes that share input nodes become one
layer's level populations (lowest threshold first), their weight nodes its projections and bias."""

from __future__ import annotations

import numpy as np

from mlf_deploy.errors import UserError
from mlf_deploy.exporters.nir.export import lif_params
from mlf_deploy.exporters.nir.reader import NEURONS, WEIGHTS, NirReader, uniform
from mlf_deploy.ir import Layer, Population, Projection
from mlf_deploy.ir.semantics import population_name


def neuron_params(r: NirReader, nid: str) -> tuple[float, float]:
    """``(rho, threshold)`` of a neuron node under the source's discretisation."""
    node, hint = r.g.nodes[nid], r.hint(nid)
    for f in ("v_leak", "v_reset"):
        if f in node.__dataclass_fields__ and np.any(np.asarray(getattr(node, f)) != 0):
            raise UserError(f"NIR node {nid!r} ({r.kind(nid)}): {f} != 0 is not expressible "
                            "(mlf-deploy neurons leak to 0 and reset to 0)")
    if r.kind(nid) == "IF":
        return 1.0, uniform(node, nid, "v_threshold") / uniform(node, nid, "r")
    tau, gain_r = uniform(node, nid, "tau"), uniform(node, nid, "r")
    th = uniform(node, nid, "v_threshold")
    rho = 1.0 - r.profile.dt / tau
    if "threshold" in hint and "rho" in hint:  # the hint, where it gives the node's arrays back
        again = lif_params(hint["rho"], hint["threshold"], r.profile)
        if again == {"tau": tau, "r": gain_r, "v_threshold": th}:
            return float(hint["rho"]), float(hint["threshold"])
    if not r.profile.uses_r:
        return rho, th / (1.0 - rho)
    gain = gain_r * r.profile.dt / tau  # snnTorch divides the threshold by it unless it is ~1
    return rho, th if np.isclose(gain, 1.0) else th / gain


def layer_groups(r: NirReader) -> dict:
    """frozenset of weight node ids -> the neuron ids they drive (one layer each)."""
    groups: dict = {}
    for nid in r.g.nodes:
        if r.kind(nid) in NEURONS:
            pre = r.preds[nid]
            bad = [p for p in pre if r.kind(p) not in WEIGHTS]
            if bad or not pre:
                raise UserError(f"NIR node {nid!r} ({r.kind(nid)}) reads "
                                f"{bad[0] if bad else 'nothing'!r}; a population's current must "
                                "come from Conv2d/Linear/Affine nodes")
            groups.setdefault(frozenset(pre), []).append(nid)
    return groups


def import_layer(r: NirReader, weights: list[str], neurons: list[str]):
    """``(layer, populations, projections)`` of the neuron nodes ``neurons`` fed by ``weights``."""
    hints = [r.hint(n) for n in neurons]
    params = [neuron_params(r, n) for n in neurons]
    order = sorted(range(len(neurons)), key=lambda i: (hints[i].get("level", 0), params[i][1]))
    shape = r.neuron_shape(neurons[order[0]])
    name = hints[order[0]].get("layer", neurons[order[0]])
    pops = []
    for k, i in enumerate(order):
        pop_name = hints[i].get("node", population_name(name, k))
        r.names[neurons[i]] = pop_name
        pops.append(Population(pop_name, name, k, shape, params[i][1], params[i][0]))
    bias, projections = None, []
    for wid in weights:
        b = np.asarray(getattr(r.g.nodes[wid], "bias", np.zeros(shape[0])), np.float64)
        if np.any(b):
            bias = b if bias is None else bias + b
        projections += import_projections(r, wid, name)
    bias = np.zeros(shape[0]) if bias is None else bias
    return Layer(name, shape, bias, tuple(p.name for p in pops)), pops, projections


def import_projections(r: NirReader, wid: str, layer: str) -> list:
    """One projection per spike source of the weight node ``wid`` (fan-in edges sum)."""
    node, hint = r.g.nodes[wid], r.hint(wid)
    srcs = r.sources(wid)
    names = dict(zip(hint.get("sources", []), hint.get("projections", [])))
    out = []
    for s in srcs:
        src = r.names.get(s) or r.hint(s).get("node") or s
        name = names.get(src, f"{layer}.{wid}<-{src}")
        if r.kind(wid) != "Conv2d":
            out.append(Projection(name, src, layer, "dense", np.asarray(node.weight, np.float64)))
            continue
        if node.groups != 1 or tuple(node.dilation) != (1, 1) or isinstance(node.padding, str):
            raise UserError(f"NIR node {wid!r} (Conv2d): only ungrouped, undilated convolutions "
                            "with numeric padding are expressible")
        out.append(Projection(name, src, layer, "conv2d", np.asarray(node.weight, np.float64),
                              tuple(int(v) for v in node.stride),
                              tuple(int(v) for v in node.padding)))
    return out
