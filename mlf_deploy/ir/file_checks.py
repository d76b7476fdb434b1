"""Checks of a graph file beyond one node's fields: the JSON depth and ``.npy`` headers (before
anything is parsed or allocated), the array table (sizes known before any array is widened), the
wiring every backend relies on, and the metadata (which must agree with the nodes it restates).

Each raises ValueError naming what is wrong; :mod:`mlf_deploy.ir.graph_reader` and
:mod:`mlf_deploy.ir.validate` call them before a node is built.
"""

from __future__ import annotations

import math
import numbers
import re

import numpy as np

from mlf_deploy import limits
from mlf_deploy.errors import UserError

# The dtypes a node field holds in memory (integer mantissas, float values); a table naming any
# other type asks for a conversion this tool never makes.
TABLE_DTYPES = {"<i4", "<i8", "<f8", "<f4", "|i1", "<i2", "|b1"}


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def json_depth(text: bytes) -> int:
    """Deepest nesting of ``[``/``{`` outside strings, counted without parsing."""
    body = np.frombuffer(_STRING.sub(b'""', text), dtype=np.uint8)
    step = (body == ord("[")).astype(np.int64) + (body == ord("{")) - (body == ord("]")) \
        - (body == ord("}"))
    return int(np.cumsum(step).max()) if body.size else 0


def check_npy_header(shape, dtype: np.dtype, payload: int, key: str) -> None:
    """A .npy member must be a plain numeric array whose data is exactly what its header says."""
    if dtype.hasobject:  # only pickle could rebuild it, and unpickling can run code
        raise ValueError(f"array {key} holds pickled objects, which are refused; export the "
                         "graph again with mlf-deploy")
    if dtype.kind not in "biuf" or dtype.itemsize > 8:
        raise ValueError(f"array {key}: dtype {dtype} is not a plain number type")
    if any(not isinstance(d, int) or d < 0 for d in shape):
        raise ValueError(f"array {key}: invalid shape {shape}")
    if math.prod(shape) * dtype.itemsize != payload:
        raise ValueError(f"array {key}: shape {shape} of {dtype} needs "
                         f"{math.prod(shape) * dtype.itemsize} bytes, the member holds {payload}")


def check_array_table(refs, stored: dict, budget: int) -> None:
    """``refs``: ``{field key: [stored key, dtype]}``. The arrays the table makes, each distinct
    (stored array, dtype) once, must fit in ``budget`` bytes; counted from shapes, nothing built."""
    if not isinstance(refs, dict):
        raise ValueError(f"the array table is a {type(refs).__name__}, expected an object")
    made, total = set(), 0
    for key, ref in refs.items():
        if not (isinstance(ref, list) and len(ref) == 2 and all(isinstance(r, str) for r in ref)):
            raise ValueError(f"array table entry {str(key)[:60]!r}: expected [stored name, dtype]")
        name, dtype = ref
        if dtype not in TABLE_DTYPES:
            raise ValueError(f"array {key}: dtype {dtype!r} is not one of {sorted(TABLE_DTYPES)}")
        if name not in stored:
            raise ValueError(f"array {key} refers to {name!r}, which the file does not hold")
        if (name, dtype) not in made:
            made.add((name, dtype))
            total += stored[name].size * np.dtype(dtype).itemsize
    if total > budget:
        raise ValueError(f"the array table widens the stored arrays to {total} bytes, over the "
                         f"limit of {budget} (a quarter of the available memory)")


def check_wiring(nodes: dict, fail) -> None:
    """Every layer is driven by at least one projection, and a dense projection's target is a
    vector layer ``(C, 1, 1)`` (every backend lays a dense current out that way)."""
    driven = {n.get("target") for n in nodes.values() if n["type"] == "Projection"}
    for name, n in nodes.items():
        if n["type"] == "Layer" and name not in driven:
            fail(n, "name", "a layer some projection drives", name)
        if n["type"] == "Projection" and n.get("kind") == "dense" \
                and list(nodes[n["target"]]["shape"][1:]) != [1, 1]:
            fail(n, "target", "a (C, 1, 1) layer for a dense projection",
                 f"shape {nodes[n['target']]['shape']}")


def _finite(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _numbers(v, channels: int) -> bool:
    """A number, or a list of 1 or ``channels`` numbers, all finite."""
    values = v if isinstance(v, list) else [v]
    return len(values) in (1, channels) and all(_finite(x) for x in values)


def check_input_pipeline(pipe, channels: int) -> None:
    """``metadata.input_pipeline``: None, or an object whose ``normalise`` (when given) divides by a
    finite positive number and a finite, non-zero std, and whose other entries are plain values."""
    if pipe is None:
        return
    if not isinstance(pipe, dict):
        raise ValueError("metadata input_pipeline: expected an object")
    norm = pipe.get("normalise")
    if norm is not None:
        if not isinstance(norm, dict) or set(norm) != {"divide", "mean", "std"}:
            raise ValueError("metadata input_pipeline normalise: expected divide, mean and std")
        if not _finite(norm["divide"]) or norm["divide"] <= 0:
            raise ValueError("metadata input_pipeline normalise divide: expected a finite number "
                             "> 0")
        if not _numbers(norm["mean"], channels) or not _numbers(norm["std"], channels):
            raise ValueError(f"metadata input_pipeline normalise: mean and std must be 1 or "
                             f"{channels} finite numbers")
        std = norm["std"] if isinstance(norm["std"], list) else [norm["std"]]
        if any(s == 0 for s in std):
            raise ValueError("metadata input_pipeline normalise std: a 0 would divide by zero")
    names = pipe.get("class_names")
    if names is not None and (not isinstance(names, list) or len(names) > limits.MAX_DIM
                              or not all(isinstance(c, str) for c in names)):
        raise ValueError("metadata input_pipeline class_names: expected a list of names")
    for key, v in pipe.items():
        if key not in ("normalise", "class_names") and not _plain(v):
            raise ValueError(f"metadata input_pipeline {str(key)[:40]}: expected a plain value")


def check_metadata(meta: dict, nodes: dict) -> None:
    """The metadata describes; what the graph computes is in its nodes (``nodes``: name -> node
    dict, already checked), so a metadata entry that restates a node must agree with it."""
    inp = next(n for n in nodes.values() if n["type"] == "Input")
    for key in ("input_gain", "input_offset"):
        if key in meta:
            raise ValueError(f"metadata {key}: a folded input normalisation is the Input "
                             "node's gain and offset")
    levels = {len(nodes[n["populations"][0]].get("v_thresholds", n["populations"]))
              for n in nodes.values() if n["type"] == "Layer"}
    if "levels" in meta and (isinstance(meta["levels"], bool)
                             or [meta["levels"]] != list(levels)):
        raise ValueError(f"metadata levels: {str(meta['levels'])[:20]!r}, but the layers "
                         f"have {' and '.join(map(str, sorted(levels)))} levels")
    if "timesteps" in meta and (isinstance(meta["timesteps"], bool)
                                or meta["timesteps"] != inp["timesteps"]):
        raise ValueError(f"metadata timesteps: {str(meta['timesteps'])[:20]!r}, but the Input "
                         f"has {inp['timesteps']}")
    pipe = meta.get("input_pipeline")
    if isinstance(pipe, dict) and "normalise" in pipe:
        raise ValueError("metadata input_pipeline normalise: the data set normalisation is "
                         "the Input node's raw_divide, raw_mean and raw_std")
    check_input_pipeline(pipe, inp["shape"][0])


def _plain(v) -> bool:
    if v is None or isinstance(v, (str, bool)) or _finite(v):
        return True
    return isinstance(v, list) and len(v) <= limits.MAX_DIM and all(
        x is None or isinstance(x, (str, bool)) or _finite(x) for x in v)


def check_readable(body: dict, arrays: dict, graph, path) -> None:
    """Write only what the loader reads back: the same schema and the same fixed-point rules."""
    import json

    from mlf_deploy.ir.validate import validate_graph_dict
    try:
        validate_graph_dict(json.loads(json.dumps(body)), arrays)
        if body["numeric"] == "int":
            from mlf_deploy.quantization.rules import REPRESENTABILITY_RULES, check_rules
            check_rules(graph, REPRESENTABILITY_RULES)
    except (ValueError, UserError) as exc:
        raise UserError(f"refusing to write {path}: it holds a graph this tool would not read "
                        f"back ({exc})") from exc
