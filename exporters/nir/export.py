r"""NIR export: a deployment graph as a ``nir.NIRGraph`` built from NIR's own node classes.

NIR's LIF is the continuous ODE :math:`\tau \dot v = (v_{leak} - v) + R I` and NIR leaves the
discretisation to each importer, so a file is written for one *target profile*: the ``tau``, ``r``
and ``v_threshold`` that make that importer's discrete update equal our
:math:`v[t] = \rho v[t-1] + a[t]` (equations and sources in docs/nir.md):

* ``snntorch``: forward Euler with ``dt = 1e-4``, :math:`\beta = 1 - dt/\tau`, threshold divided by
  :math:`R\,dt/\tau`. We pick :math:`\tau` so that ``1 - dt/tau == rho`` holds exactly in float64
  and :math:`R = \tau / dt`, so the threshold is unchanged.
* ``norse``: forward Euler with ``dt = 1e-3`` that ignores ``R``:
  :math:`v \leftarrow v + (dt/\tau)(I - v)`
  is our membrane times :math:`1 - \rho`, so the threshold is scaled by :math:`1 - \rho`.

Mapping: each level population -> one ``nir.LIF`` of shape ``(C, H, W)``; each distinct weight
tensor into a layer -> one ``nir.Conv2d`` (or ``nir.Linear`` after a ``nir.Flatten``) with one edge
per source population (NIR sums the inputs of a node); that node feeds every level of the layer; the
layer bias sits on its first weight node. The readout is a ``nir.Conv2d`` whose kernel covers the
whole map, scaled so that the *sum of the Output over the timesteps* is our logits. Every node's
``metadata["mlf"]`` (a JSON string) names its MLF origin: layer, level, projections, sources.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

from mlf_deploy.errors import UserError
from mlf_deploy.ir import Graph
from mlf_deploy.ir.normalisation import NORMALISATION_FIELDS
from mlf_deploy.ir.semantics import readout_norm, weight_key


@dataclass(frozen=True)
class Profile:
    """How one importer discretises NIR's LIF (see the module docstring)."""

    dt: float  # the importer's fixed Euler step (s)
    uses_r: bool  # False: the importer ignores R, so the threshold carries the 1/(1-rho) gain


PROFILES = {"snntorch": Profile(dt=1e-4, uses_r=True), "norse": Profile(dt=1e-3, uses_r=False)}


def nir_module():
    """The optional ``nir`` package, or one clear error saying how to install it."""
    try:
        import nir
    except ImportError as exc:
        raise UserError("NIR export/import needs the optional 'nir' package: "
                        "pip install 'mlf-deploy[nir]' (make venv installs it)") from exc
    return nir


def node_id(name: str) -> str:
    """A NIR node name that torch importers accept as a module name (no dots or slashes)."""
    return re.sub(r"[^0-9A-Za-z_]", "_", name)


def tau_for(rho: float, dt: float) -> float:
    """The float64 ``tau`` nearest ``dt / (1 - rho)`` for which ``1 - dt / tau == rho`` exactly."""
    tau = dt / (1.0 - rho)
    for _ in range(64):
        got = 1.0 - dt / tau
        if got == rho:
            return tau
        tau = np.nextafter(tau, np.inf if got < rho else -np.inf)
    return dt / (1.0 - rho)


def lif_params(rho: float, threshold: float, profile: Profile) -> dict:
    """Scalars ``tau, r, v_threshold`` of one population for ``profile``."""
    if not 0.0 <= rho < 1.0:
        raise UserError(f"retention {rho} has no NIR LIF form (needs 0 <= rho < 1)")
    tau = tau_for(rho, profile.dt)
    if profile.uses_r:
        return {"tau": tau, "r": tau / profile.dt, "v_threshold": threshold}
    return {"tau": tau, "r": 1.0, "v_threshold": threshold * (1.0 - rho)}


def _meta(**mlf) -> dict:
    return {"mlf": json.dumps(mlf, sort_keys=True)}


def to_nir(graph: Graph, target: str = "snntorch"):
    """``graph`` (float) as a ``nir.NIRGraph`` for the importer ``target``."""
    nir = nir_module()

    if target not in PROFILES:
        raise UserError(f"unknown NIR target {target!r}; choose one of {', '.join(PROFILES)}")
    if graph.graded:
        raise UserError("NIR has no graded-spike neuron: export the binary lowering")
    if graph.numeric != "float":
        raise UserError("NIR has no fixed-point fields: export the float graph, or dequantise the "
                        "int graph first (export --nir-dequantised)")
    profile = PROFILES[target]
    inp = graph.input
    ids = {inp.name: "input"}
    # NIR has no host-side step: its input is what our Input delivers, and the normalisation
    # before it travels as the Input's metadata (the importer reads it back)
    normal = {f: getattr(inp, f) for f in NORMALISATION_FIELDS}
    nodes = {"input": nir.Input(input_type={"input": np.array(inp.shape)},
                                metadata=_meta(node=inp.name, encoding=inp.encoding, **normal))}
    edges = []
    for layer in graph.layers:
        pops = graph.populations_of(layer.name)
        for pop in pops:
            ids[pop.name] = node_id(pop.name)
            p = lif_params(pop.v_retention, pop.v_threshold, profile)
            full = {k: np.full(pop.shape, v, dtype=np.float64) for k, v in p.items()}
            nodes[ids[pop.name]] = nir.LIF(
                **full, v_leak=np.zeros(pop.shape), v_reset=np.zeros(pop.shape),
                metadata=_meta(node=pop.name, layer=layer.name, level=pop.level,
                               rho=pop.v_retention, threshold=pop.v_threshold, target=target))
        for i, group in enumerate(_weight_groups(graph, layer.name)):
            first = group[0]
            wid = node_id(f"{layer.name}.{first.name.split('<-')[0].rsplit('.', 1)[-1]}_w{i}")
            bias = layer.bias if i == 0 else np.zeros_like(layer.bias)
            src = graph.nodes[first.source]
            meta = _meta(layer=layer.name, projections=[p.name for p in group],
                         sources=[p.source for p in group])
            if first.kind == "conv2d":
                nodes[wid] = nir.Conv2d(input_shape=tuple(src.shape[1:]), weight=first.weight,
                                        stride=tuple(first.stride), padding=tuple(first.padding),
                                        dilation=(1, 1), groups=1,
                                        bias=np.asarray(bias, np.float64), metadata=meta)
                feeds = wid
            else:  # dense: NIR's Affine takes a flat vector, so a Flatten comes first
                feeds = f"{wid}_flatten"
                nodes[feeds] = nir.Flatten(input_type={"input": np.array(src.shape)}, start_dim=0,
                                           end_dim=-1, metadata=_meta(layer=layer.name))
                nodes[wid] = nir.Affine(weight=first.weight, bias=np.asarray(bias, np.float64),
                                        metadata=meta)
                edges.append((feeds, wid))
            edges += [(ids[p.source], feeds) for p in group]
            edges += [(wid, ids[pop.name]) for pop in pops]
    _readout(graph, nodes, edges, ids)
    edges.append(("readout", "output"))
    _check_unique(edges, graph)
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=_graph_meta(graph, target))


def _weight_groups(graph: Graph, layer: str) -> list[list]:
    """Projections into ``layer`` sharing one weight tensor, stride and padding (a fan-in)."""
    groups: dict = {}
    for p in graph.projections_into(layer):
        groups.setdefault(weight_key(p), []).append(p)
    return list(groups.values())


def _readout(graph: Graph, nodes: dict, edges: list, ids: dict) -> None:
    nir = nir_module()

    ro = graph.readout
    steps, (h, w) = graph.timesteps, graph.nodes[ro.sources[0]].shape[1:]
    # the per-step share of logits = acc * scale / (T H W) + bias, so that the T steps sum to it
    per_step = np.asarray(ro.weight, np.float64) * ro.scale / readout_norm(graph)
    weight = np.broadcast_to(per_step[:, :, None, None], (*per_step.shape, h, w)).copy()
    nodes["readout"] = nir.Conv2d(
        input_shape=(h, w), weight=weight, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
        bias=np.asarray(ro.bias, np.float64) / steps,
        metadata=_meta(node=ro.name, sources=list(ro.sources),
                       weight=np.asarray(ro.weight).tolist(),
                       bias=np.asarray(ro.bias).tolist(), scale=ro.scale,
                       meaning="logits = sum over timesteps of this node's output"))
    nodes["output"] = nir.Output(output_type={"output": np.array([per_step.shape[0], 1, 1])})
    edges += [(ids[s], "readout") for s in ro.sources]


def _check_unique(edges: list, graph: Graph) -> None:
    seen = set()
    for e in edges:
        if e in seen:
            raise UserError(f"edge {e[0]} -> {e[1]} appears twice; NIR graphs cannot repeat an "
                            "edge")
        seen.add(e)


def _graph_meta(graph: Graph, target: str) -> dict:
    return {"mlf": json.dumps({"producer": "mlf-deploy", "target": target,
                               "numeric": graph.metadata.get("nir_numeric", graph.numeric),
                               "graph_metadata": graph.metadata, "order": list(graph.nodes)},
                              sort_keys=True, default=float)}


def write_nir(graph: Graph, path, target: str = "snntorch") -> None:
    """Write ``graph`` as a NIR file readable by ``nir.read`` (HDF5), atomically."""
    nir = nir_module()

    from mlf_deploy.fileio import atomic_path
    g = to_nir(graph, target)
    with atomic_path(path) as tmp:
        nir.write(tmp, g)
