"""What an ONNX file must be before a session is built from it: one of our own exports.

ONNX Runtime would load any opset, any custom-domain op and any metadata; a file a user is handed is
held to what :mod:`mlf_deploy.exporters.onnx.export` writes: the default domain at our opset, the
operators our
exporter emits (a test checks this list against real exports), and our metadata, well formed.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import onnx
from onnx import numpy_helper

from mlf_deploy import limits
from mlf_deploy.errors import UserError, option
from mlf_deploy.exporters.onnx.export import FORMAT, OPSET
from mlf_deploy.ir.file_checks import check_input_pipeline

OPS = frozenset({"Abs", "Add", "Cast", "Clip", "Concat", "Conv", "Div", "Flatten", "Floor",
                 "Gather", "Greater", "LessOrEqual", "MatMul", "Mul", "Neg", "Not", "Or", "Pad",
                 "ReduceSum", "Reshape", "Sign", "Slice", "Split", "Sub", "Transpose", "Unsqueeze",
                 "Where"})
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _json(meta: dict, key: str, kind):
    try:
        value = json.loads(meta[key])
    except (KeyError, ValueError, TypeError):
        raise ValueError(f"metadata '{key}' is missing or not JSON") from None
    if not isinstance(value, kind):
        raise ValueError(f"metadata '{key}' is not a JSON {kind.__name__}")
    return value


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_metadata(meta: dict) -> None:
    if meta.get("format") != FORMAT:
        raise ValueError(f"metadata 'format' is {meta.get('format')!r}, expected {FORMAT!r}")
    for key, allowed in (("mode", ("sequence", "step")), ("numeric", ("float", "int")),
                         ("precision", ("float64", "float32")),
                         ("input_encoding", ("static", "events"))):
        if meta.get(key) not in allowed:
            raise ValueError(f"metadata '{key}' is {str(meta.get(key))[:40]!r}, expected one of "
                             f"{', '.join(allowed)}")
    if not _HEX64.fullmatch(meta.get("graph_checksum", "")):
        raise ValueError("metadata 'graph_checksum' is not a SHA-256 hex digest")
    pops = _json(meta, "populations", list)
    if not pops or not all(isinstance(p, str) for p in pops):
        raise ValueError("metadata 'populations' is not a list of names")
    if not all(isinstance(n, str) for n in _json(meta, "overflow_layers", list)):
        raise ValueError("metadata 'overflow_layers' is not a list of names")
    if not all(_finite(v) for v in _json(meta, "readout_bias", list)):
        raise ValueError("metadata 'readout_bias' holds a value that is not a finite number")
    try:
        scale, norm = float(meta["readout_scale"]), int(meta["readout_norm"])
    except (KeyError, ValueError, TypeError):
        raise ValueError("metadata 'readout_scale' / 'readout_norm' are not numbers") from None
    if not math.isfinite(scale) or norm < 1:
        raise ValueError("metadata 'readout_scale' must be finite and 'readout_norm' >= 1")
    pipe = _json(meta, "input_pipeline", dict)
    shape = pipe.get("shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(
            isinstance(d, int) and 1 <= d <= limits.MAX_DIM for d in shape)):
        raise ValueError("metadata 'input_pipeline' has no (C, H, W) shape")
    check_input_pipeline(pipe, shape[0])  # a std or divide of 0 would feed NaN silently


def check_initializer(init: onnx.TensorProto) -> None:
    """Dims within bounds and matching the data held; values finite."""
    if any(d < 0 for d in init.dims) or math.prod(init.dims) > limits.MAX_WEIGHTS:
        raise ValueError(f"initializer {init.name!r}: dims {list(init.dims)} out of range")
    try:
        value = numpy_helper.to_array(init)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"initializer {init.name!r}: {exc}") from None
    if value.shape != tuple(init.dims):
        raise ValueError(f"initializer {init.name!r}: holds {value.shape}, declares "
                         f"{list(init.dims)}")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise ValueError(f"initializer {init.name!r} holds NaN or infinite values")


def check_onnx_model(model: onnx.ModelProto, where: str) -> None:
    """One UserError naming ``where`` and what is wrong, unless ``model`` is an export of ours."""
    try:
        opsets = {(o.domain or "ai.onnx"): o.version for o in model.opset_import}
        if opsets != {"ai.onnx": OPSET}:
            raise ValueError(f"opsets {opsets}; mlf-deploy exports the default domain at opset "
                             f"{OPSET} only")
        for node in model.graph.node:
            if node.domain not in ("", "ai.onnx") or node.op_type not in OPS:
                raise ValueError(f"node {node.name!r}: operator {node.domain or 'ai.onnx'}."
                                 f"{node.op_type} is not one mlf-deploy exports")
            if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                   for a in node.attribute):
                raise ValueError(f"node {node.name!r} holds a subgraph; our exports have none")
        if model.functions:
            raise ValueError("the model defines local functions; our exports have none")
        for init in model.graph.initializer:
            check_initializer(init)
        check_metadata({p.key: p.value for p in model.metadata_props})
        onnx.checker.check_model(model)
    except (ValueError, onnx.checker.ValidationError) as exc:
        raise UserError(f"{where} is not an mlf-deploy ONNX export: {str(exc).splitlines()[0]}"
                        f"; export it with `mlf-deploy export {option('target', 'onnx')}`") from exc
