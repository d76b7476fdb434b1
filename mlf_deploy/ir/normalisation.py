"""Putting a data set's input normalisation on a graph's Input node, where it has one meaning.

The data set's pipeline (:func:`mlf_deploy.data.input_pipeline`) is a JSON description: its
``normalise`` step (``divide``, ``mean``, ``std``) is part of what the graph computes and becomes
the Input's ``raw_*`` fields; the rest (data set name, layouts, units, class names) describes and
stays in ``metadata["input_pipeline"]``. Graph files of schema versions 1 and 2 kept the
normalisation (and the folded ``input_gain``/``input_offset``) in the metadata; :func:`upgrade_body`
moves it when such a file is read.
"""

from __future__ import annotations

import dataclasses

from mlf_deploy.ir.graph import Graph


def _per_channel(v, channels: int) -> list:
    """``mean`` or ``std`` as one value per channel (one value applies to every channel)."""
    values = v if isinstance(v, list) else [v]
    return values * channels if len(values) == 1 else list(values)


def normalisation_fields(norm, channels: int) -> dict:
    """The Input fields of a ``normalise`` step (None: none)."""
    if not norm:
        return {}
    return {"raw_divide": float(norm["divide"]),
            "raw_mean": tuple(float(x) for x in _per_channel(norm["mean"], channels)),
            "raw_std": tuple(float(x) for x in _per_channel(norm["std"], channels))}


def with_input_pipeline(graph: Graph, pipe: dict) -> Graph:
    """``graph`` whose Input applies ``pipe``'s normalisation and whose metadata describes the
    rest of the pipeline."""
    inp = graph.input
    node = dataclasses.replace(inp, **normalisation_fields(pipe.get("normalise"), inp.shape[0]))
    described = {k: v for k, v in pipe.items() if k != "normalise"}
    nodes = {name: node if name == inp.name else n for name, n in graph.nodes.items()}
    return Graph(nodes, graph.numeric, {**graph.metadata, "input_pipeline": described},
                 graph.spikes)


NORMALISATION_FIELDS = ("raw_divide", "raw_mean", "raw_std", "gain", "offset")


def normalisation_from_metadata(meta: dict, channels: int) -> tuple[dict, dict]:
    """``(Input fields, the rest of the metadata)`` of a schema version 1 or 2 metadata dict, which
    held the folded ``input_gain``/``input_offset`` and ``input_pipeline["normalise"]``. Values as
    stored (lists; the validator or the Input node checks them)."""
    meta = dict(meta)
    fields = {"raw_divide": 1.0, "raw_mean": [], "raw_std": [], "gain": [], "offset": []}
    if "input_gain" in meta or "input_offset" in meta:
        fields["gain"], fields["offset"] = meta.pop("input_gain", []), meta.pop("input_offset", [])
    pipe = meta.get("input_pipeline")
    if isinstance(pipe, dict) and "normalise" in pipe:
        norm = pipe["normalise"]
        meta["input_pipeline"] = {k: v for k, v in pipe.items() if k != "normalise"}
        if isinstance(norm, dict):
            fields.update(raw_divide=norm.get("divide"),
                          raw_mean=_per_channel(norm.get("mean"), channels),
                          raw_std=_per_channel(norm.get("std"), channels))
        elif norm is not None:
            fields["raw_mean"] = norm  # for the validator to name
    return fields, meta


def upgrade_body(body):
    """A version 1 or 2 ``graph.json`` body in the version 3 layout (anything else unchanged:
    the validator says what is wrong with it)."""
    if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict) \
            or not isinstance(body.get("nodes"), list):
        return body
    inputs = [n for n in body["nodes"] if isinstance(n, dict) and n.get("type") == "Input"]
    shape = inputs[0].get("shape") if len(inputs) == 1 else None
    if not (isinstance(shape, list) and shape and isinstance(shape[0], int)):
        return body
    fields, meta = normalisation_from_metadata(body["metadata"], shape[0])
    nodes = [{**n, **fields} if n is inputs[0] else n for n in body["nodes"]]
    return {**body, "metadata": meta, "nodes": nodes}
