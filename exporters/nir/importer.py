"""NIR import: a NIR graph made of primitives our deployment graph expresses becomes a float Graph.

Accepted: ``Input``, ``Output``, ``Conv2d``/``Linear``/``Affine`` into ``LIF`` or ``IF`` neurons
with ``v_leak = 0`` and reset to 0, fan-in (several edges into one node sum), ``Flatten`` before a
dense node, and a readout: a whole-map ``Conv2d`` or an ``Affine``/``Linear`` into the ``Output``,
or the neurons' spikes themselves (logits = spike counts). Anything else is refused naming the node
and its primitive. Neurons sharing the same input nodes form one layer (its levels, lowest threshold
first).

NIR's LIF is continuous; the discretisation is the one of the importer the file was written for
(``source``: snntorch or norse, as in :mod:`mlf_deploy.exporters.nir.export`). Files written by
mlf-deploy carry their
MLF origin in ``metadata["mlf"]``; the importer uses it only where it is *consistent* with the
node's parameters (re-exporting the hint gives the node's arrays bit for bit), so export -> import
returns the identical graph and a hand-edited file still imports by its parameters.
"""

from __future__ import annotations

from mlf_deploy.errors import UserError
from mlf_deploy.exporters.nir.export import nir_module
from mlf_deploy.exporters.nir.file_checks import check_nir_file, check_nir_values
from mlf_deploy.exporters.nir.import_layers import import_layer, layer_groups
from mlf_deploy.exporters.nir.import_readout import import_readout
from mlf_deploy.exporters.nir.reader import NEURONS, NirReader, shape3
from mlf_deploy.exporters.nir.schedule import schedule
from mlf_deploy.ir import Graph, Input
from mlf_deploy.ir.normalisation import NORMALISATION_FIELDS, normalisation_from_metadata


def _end_nodes(r: NirReader) -> tuple[str, str]:
    """The ids of the graph's one Input and one Output node."""
    inputs = [n for n in r.g.nodes if r.kind(n) == "Input"]
    outputs = [n for n in r.g.nodes if r.kind(n) == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise UserError(f"a NIR graph to import needs one Input and one Output, found "
                        f"{len(inputs)} and {len(outputs)}")
    return inputs[0], outputs[0]


def _import_input(r: NirReader, nid: str) -> Input:
    """The Input with its normalisation: from the node's hint, or from the graph metadata of a file
    written before the normalisation was the Input's (taken out of ``r``'s graph metadata)."""
    hint = r.hint(nid)
    shape = shape3(r.g.nodes[nid].input_type["input"])
    normal, r.meta["graph_metadata"] = normalisation_from_metadata(r.meta["graph_metadata"],
                                                                   shape[0])
    normal.update({k: hint[k] for k in NORMALISATION_FIELDS if k in hint})
    inp = Input(hint.get("node", "input"), shape, hint.get("encoding", "events"), r.steps,
                **{k: tuple(float(x) for x in v) if isinstance(v, list) else float(v)
                   for k, v in normal.items()})
    r.names[nid] = inp.name
    return inp


def _import_graph(r: NirReader) -> Graph:
    """Our graph of the checked NIR graph: input, layers, readout, in the file's schedule where
    it gives a complete one, else in ours."""
    in_id, out_id = _end_nodes(r)
    inp = _import_input(r, in_id)
    nodes = {inp.name: inp}
    layers = [import_layer(r, sorted(weights), neurons)
              for weights, neurons in layer_groups(r).items()]
    readout = import_readout(r, r.preds[out_id], out_id)
    for layer, pops, projections in layers:
        nodes.update({p.name: p for p in projections})
        nodes[layer.name] = layer
        nodes.update({p.name: p for p in pops})
    nodes[readout.name] = readout
    order = r.meta.get("order")
    if not (isinstance(order, list) and sorted(order) == sorted(nodes)):
        order = schedule(nodes)
    metadata = r.meta["graph_metadata"] or {
        "levels": max(len(p) for _, p, _ in layers), "timesteps": r.steps, "source": "nir"}
    try:
        return Graph({n: nodes[n] for n in order}, "float", metadata)
    except ValueError as exc:
        raise UserError(f"the NIR graph has no mlf-deploy schedule: {exc}") from exc


def from_nir(g, source: str | None = None, timesteps: int | None = None) -> Graph:
    """The float deployment graph of the ``nir.NIRGraph`` ``g``."""
    check_nir_values(g)
    try:
        return _import_graph(NirReader(g, source, timesteps))
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, ZeroDivisionError,
            AssertionError, OverflowError) as exc:  # a node our checks let through, misshapen
        raise UserError(f"the NIR graph cannot be imported: {type(exc).__name__}: "
                        f"{str(exc)[:160]}") from exc


def population_ids(g, source: str | None = None, timesteps: int | None = None) -> dict:
    """NIR neuron node id -> the population name :func:`from_nir` gives it."""
    reader = NirReader(g, source, timesteps)
    _import_graph(reader)
    return {k: v for k, v in reader.names.items() if reader.kind(k) in NEURONS}


def read_nir(path, source: str | None = None, timesteps: int | None = None) -> Graph:
    nir = nir_module()
    check_nir_file(path)  # links, external storage, declared sizes, depth: before nir reads it
    try:
        g = nir.read(str(path))
    except Exception as exc:  # noqa: BLE001 - nir's reader raises any kind on a malformed file
        raise UserError(f"{path} is not a readable NIR file ({type(exc).__name__}: "
                        f"{str(exc)[:160]})") from exc
    return from_nir(g, source, timesteps)
