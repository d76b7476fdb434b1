"""Export a deployment graph (float or int) to ONNX: a streaming step model or a whole-run sequence
model, with every MLF level a single-threshold population (binary graphs) or the K levels of a
graded population summed into its payload, the level count (graded graphs). Both compute in float64 (int
graphs: exact integers; projections in float32 where that is exact too); ``precision="float32"`` is
a faster, inexact variant for float graphs.

Same-timestep semantics let the sequence model compute each layer's current for all ``T * B``
frames at once (one im2col ``MatMul``) and unroll only the cheap membrane recurrence over ``T``, as
the reference simulator does. The exactness argument for int graphs is in
:mod:`mlf_deploy.exporters.onnx.ops`.

Names (``<pop>`` is a population name such as ``blocks.0.mlf1/L2``):
    step inputs: ``input`` ``(B, C, H, W)``, ``v/<pop>`` ``(B, C, H, W)`` (membrane after the last
    step's reset; zeros at the start). step outputs: ``s/<pop>`` uint8, ``v_next/<pop>``,
    ``readout_increment`` ``(B, classes)``. sequence input ``input`` ``(T, B, C, H, W)``; outputs
    ``logits`` ``(B, classes)``, and with ``record=True`` ``s/<pop>``, ``v/<pop>``
    ``(T, B, C, H, W)``.
    A graded graph records its levels under the same names. Membranes are float64 (float graphs)
    or int64 in 1/64 current units (int graphs); int models also output ``overflow``
    ``(layers,)`` int64, the 24-bit wrap and saturation events per layer.
"""

from __future__ import annotations

import json
from importlib import metadata as _md

import numpy as np
import onnx
from onnx import helper

from mlf_deploy.errors import UserError
from mlf_deploy.exporters.onnx import int32 as onnx_int32
from mlf_deploy.exporters.onnx.ops import (
    DOUBLE,
    INT64,
    NCHW,
    NHWC,
    UINT8,
    Builder,
    check_exact,
    population_step,
    shift,
    wrap24,
)
from mlf_deploy.exporters.onnx.projections import project
from mlf_deploy.fileio import atomic_path
from mlf_deploy.ir import Graph
from mlf_deploy.ir import semantics as sem
from mlf_deploy.ir.serialize import graph_checksum

FORMAT = "mlf-deploy-onnx/1"
OPSET = 21  # ONNX Runtime 1.17+ runs it; Split's num_outputs needs 18+
PRODUCER = "mlf-deploy"


def _version() -> str:
    try:
        return _md.version("mlf-deploy")
    except _md.PackageNotFoundError:
        return "0+unknown"


def _current(b: Builder, graph: Graph, layer, values: dict, integer: bool, narrow: bool) -> str:
    """The layer's input current ``a`` (shifted, in int graphs): float64, or int32 if ``narrow``."""
    terms = []
    for i, (p, sources) in enumerate(sem.projection_groups(graph, layer)):
        src = b.add([values[s] for s in sources], f"{layer.name}/fanin{i}")
        src_max = onnx_int32.source_limits(graph, sources) if integer else None
        a = project(b, p, src, graph.nodes[sources[0]].shape, src_max, float32_out=narrow)
        if integer:
            a = shift(b, a, layer.weight_exp, p.name, np.float32 if narrow else None)
        terms.append(b.op("Cast", [a], f"{p.name}/to_i32", to=onnx_int32.INT32) if narrow else a)
    return b.add(terms, f"{layer.name}/sum")


def _count(b: Builder, masks: list, name: str) -> str:
    """``(1,)`` int64: the number of true values in ``masks``. Each is summed on its own while it
    is in cache (float64 sums of 0/1 are exact below 2^53); one concatenation is far slower."""
    if not masks:  # the bounds rule every event out
        return b.const([0], np.int64)
    parts = [b.op("ReduceSum", [b.op("Cast", [m], f"{name}/cast{i}", to=DOUBLE)], f"{name}/sum{i}",
                  keepdims=0) for i, m in enumerate(masks)]
    n = b.add(parts, f"{name}/total")
    return b.op("Cast", [b.op("Unsqueeze", [n, b.ints([0])], f"{name}/1d")], f"{name}/i64", to=INT64)


def _per_neuron(b: Builder, layer) -> np.ndarray:
    """The layer's bias per neuron of a frame: ONNX Runtime adds a ``(C, 1, 1)`` one in
    ``H W``-long runs, several times slower on small maps than one ``C H W`` run per frame."""
    bias = np.broadcast_to(np.asarray(layer.bias, np.float64).reshape(-1, 1, 1), tuple(layer.shape))
    return np.ascontiguousarray(bias.transpose(1, 2, 0) if b.nhwc else bias)


def _layout(b: Builder, x: str, name: str, perm) -> str:
    """``x`` moved between ONNX's ``(N, C, H, W)`` and the model's frame layout."""
    return b.op("Transpose", [x], name, perm=perm) if b.nhwc else x


def _drive(b: Builder, graph: Graph, layer, values: dict, plan):
    """The layer's membrane input and its wrap mask: ``a`` (float), or ``wrap(64 a) + (bias << e)``
    (int; the float bias is added per population, in the reference's order)."""
    drive = _current(b, graph, layer, values, plan is not None, plan is not None and plan.int32)
    if plan is None:
        return drive, None
    dtype = np.int32 if plan.int32 else b.np
    u = b.op("Mul", [drive, b.const(sem.MEMBRANE_GAIN, dtype)], f"{layer.name}/u")
    u, wrapped = wrap24(b, u, layer.name, dtype) if plan.wraps else (u, None)
    bias = sem.shift(_per_neuron(b, layer), layer.bias_exp)
    return b.op("Add", [u, b.const(bias, dtype)], f"{layer.name}/bias"), wrapped


def _build(graph: Graph, mode: str, record: bool, precision: str):
    integer, steps, seq = graph.numeric == "int", graph.timesteps, mode == "sequence"
    b, inp = Builder(precision), graph.input
    b.nhwc = not integer and b.np is np.float64
    lead = [steps, "B"] if seq else ["B"]
    inputs = [helper.make_tensor_value_info("input", b.ftype, [*lead, *inp.shape])]
    x = b.op("Reshape", ["input", b.ints([-1, *inp.shape])], "input/fold_time") if seq else "input"
    values = {inp.name: _layout(b, x, "input/layout", NHWC)}
    b.types[values[inp.name]] = b.np
    state_type = INT64 if integer else b.ftype
    outputs, overflow = [], []
    for layer in graph.layers:
        plan = onnx_int32.plan(graph, layer) if integer else None
        narrow = integer and plan.int32
        drive, wrapped = _drive(b, graph, layer, values, plan)
        masks = [wrapped]
        bias = None if integer else b.const(_per_neuron(b, layer))
        per_t = [drive]
        if seq and steps > 1:  # same-timestep semantics: only the membrane recurrence is unrolled
            per_t = [f"{layer.name}/t{t}" for t in range(steps)]
            b.emit("Split", [drive], per_t, f"{layer.name}/split_time", axis=0, num_outputs=steps)
        if seq and not integer:  # from v = 0 every level's first membrane is a + b
            per_t[0] = b.op("Add", [per_t[0], bias], f"{layer.name}/t0/bias")
        shape = [*lead, *layer.shape]
        level_spikes = []
        for pop in graph.levels_of(layer.name):
            v = None  # the sequence starts from v = 0
            if not seq:
                inputs.append(helper.make_tensor_value_info(f"v/{pop.name}", state_type, shape))
                v = b.op("Cast", [f"v/{pop.name}"], f"{pop.name}/v_in",
                         to=onnx_int32.INT32 if narrow else b.ftype) if integer \
                    else _layout(b, f"v/{pop.name}", f"{pop.name}/v_layout", NHWC)
            ss, vs = [], []
            for t, d in enumerate(per_t):
                tag = f"t{t}" if seq else "step"
                # from v = 0 the bounds may rule saturation out; a step model's v is the caller's
                s, v, sat = onnx_int32.population_step(b, pop, v, d, tag, plan.saturates or not seq) \
                    if narrow else population_step(b, pop, v, d, None if v is None else bias,
                                                   integer, tag)
                ss, vs, masks = ss + [s], vs + [v], masks + [sat]
            spikes = b.concat(ss, f"{pop.name}/spikes")
            # spikes and their sums are small integers, exact in float32 (half the bytes)
            level_spikes.append(b.cast(spikes, np.float32, f"{pop.name}/spikes_f", np.bool_))
            if not graph.graded:
                values[pop.name] = level_spikes[-1]
            if record or not seq:
                states = _layout(b, b.concat(vs, f"{pop.name}/states"), f"{pop.name}/v_nchw", NCHW)
                if integer:
                    states = b.op("Cast", [states], f"{pop.name}/states_i64", to=INT64)
                unfold = b.ints([*lead[:-1], -1, *layer.shape])
                s_out, v_out = f"s/{pop.name}", f"v/{pop.name}" if seq else f"v_next/{pop.name}"
                s8 = _layout(b, b.op("Cast", [spikes], f"{pop.name}/spikes_u8", to=UINT8),
                             f"{pop.name}/s_nchw", NCHW)
                b.emit("Reshape", [s8, unfold], [s_out], f"{pop.name}/s_out")
                b.emit("Reshape", [states, unfold], [v_out], f"{pop.name}/v_out")
                outputs += [helper.make_tensor_value_info(s_out, UINT8, shape),
                            helper.make_tensor_value_info(v_out, state_type, shape)]
        if graph.graded:  # the one sender's payload: its level count
            sender = graph.populations_of(layer.name)[0].name
            values[sender] = b.add(level_spikes, f"{sender}/count")
        if integer and (record or not seq):  # a logits-only model skips the event counts too
            overflow.append(_count(b, [m for m in masks if m], f"{layer.name}/overflow"))
    outputs.insert(0, _readout(b, graph, values, mode))
    if overflow:
        b.emit("Concat", overflow, ["overflow"], "overflow", axis=0)
        outputs.append(helper.make_tensor_value_info("overflow", INT64, [len(overflow)]))
    return b, inputs, outputs


def _readout(b: Builder, graph: Graph, values: dict, mode: str):
    ro, steps = graph.readout, graph.timesteps
    src = b.add([values[s] for s in ro.sources], f"{ro.name}/sum_sources")
    src = b.cast(src, b.np, f"{ro.name}/to_model_type")
    counts = b.op("ReduceSum", [src, b.ints([1, 2] if b.nhwc else [2, 3])], f"{ro.name}/sum_hw",
                  keepdims=0)
    w_t = b.const(np.asarray(ro.weight, np.float64).T)
    classes = len(ro.weight)
    if mode == "step":
        b.emit("MatMul", [counts, w_t], ["readout_increment"], f"{ro.name}/increment")
        return helper.make_tensor_value_info("readout_increment", b.ftype, ["B", classes])
    counts = b.op("Reshape", [counts, b.ints([steps, -1, counts_c(graph)])], f"{ro.name}/unfold")
    counts = b.op("ReduceSum", [counts, b.ints([0])], f"{ro.name}/sum_time", keepdims=0)
    acc = b.op("MatMul", [counts, w_t], f"{ro.name}/accumulate")
    # the reference's order: acc * scale / (T H W) + bias, so int logits agree bit for bit
    scaled = b.op("Div", [b.op("Mul", [acc, b.const(ro.scale)], f"{ro.name}/scale"),
                          b.const(float(sem.readout_norm(graph)))], f"{ro.name}/mean")
    b.emit("Add", [scaled, b.const(np.asarray(ro.bias, np.float64))], ["logits"], f"{ro.name}/bias")
    return helper.make_tensor_value_info("logits", b.ftype, ["B", classes])


def counts_c(graph: Graph) -> int:
    return int(graph.nodes[graph.readout.sources[0]].shape[0])


def model_metadata(graph: Graph, mode: str, record: bool = True) -> dict:
    pops, ro = graph.level_populations, graph.readout
    return {
        "format": FORMAT, "mode": mode, "numeric": graph.numeric, "spikes": graph.spikes,
        "recorded": "true" if record or mode == "step" else "false",
        "graph_checksum": graph_checksum(graph),
        "levels": str(graph.levels), "timesteps": str(graph.timesteps),
        "input_encoding": graph.input.encoding, "input_shape": json.dumps(list(graph.input.shape)),
        "populations": json.dumps([p.name for p in pops]),
        "thresholds": json.dumps({p.name: float(p.v_threshold) for p in pops}),
        "retention": json.dumps({p.name: float(p.v_retention) for p in pops}),
        "scales": json.dumps({"input": graph.input.scale, "readout": ro.scale,
                              **{layer.name: layer.scale for layer in graph.layers}}),
        "state_unit": "1/64 current unit (int64)" if graph.numeric == "int" else "current unit",
        "readout_scale": repr(float(ro.scale)), "readout_norm": str(sem.readout_norm(graph)),
        "readout_bias": json.dumps([float(v) for v in np.asarray(ro.bias, np.float64)]),
        "overflow_layers": json.dumps([layer.name for layer in graph.layers]),
        "input_pipeline": json.dumps(sem.describe_input(graph)),
        "input_value_bits": str(graph.input.value_bits),
        "class_names": json.dumps((graph.metadata.get("input_pipeline") or {}).get("class_names")
                                  or [str(i) for i in range(num_classes(graph))]),
    }


def num_classes(graph: Graph) -> int:
    return int(np.asarray(graph.readout.weight).shape[0])


def export_onnx(graph: Graph, mode: str = "sequence", record: bool = True,
                precision: str = "float64") -> onnx.ModelProto:
    """The ONNX model of ``graph``.

    Args:
        mode: "step" (one timestep, states in and out) or "sequence" (all ``T`` steps).
        record: sequence model only: also output every population's spikes and states (and, for
            int graphs, the overflow counts). Without them the model computes the logits only,
            about twice as fast at real sizes; ``verify`` refuses such a model (nothing to compare).
        precision: "float64" (exact: verified against the reference) or, for float graphs only,
            "float32" (ONNX ``Conv``; faster, but spikes near a threshold may differ).
    """
    if mode not in ("step", "sequence"):
        raise UserError(f"ONNX export mode must be 'step' or 'sequence', got {mode!r}")
    if precision not in ("float64", "float32"):
        raise UserError(f"ONNX precision must be 'float64' or 'float32', got {precision!r}")
    if graph.numeric == "int":
        if precision != "float64":
            raise UserError("int graphs export in float64 only: float32 cannot hold 24-bit "
                            "membranes times the decay exactly")
        check_exact(graph)
    b, inputs, outputs = _build(graph, mode, record, precision)
    b.prune([o.name for o in outputs])
    g = helper.make_graph(b.nodes, f"mlf-deploy-{graph.numeric}-{mode}", inputs, outputs, b.inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name=PRODUCER, producer_version=_version(),
                              doc_string=__doc__.split("\n\n")[0])
    helper.set_model_props(model, {**model_metadata(graph, mode, record), "precision": precision})
    return model


def save_onnx(model: onnx.ModelProto, path) -> str:
    """Write ``model`` atomically: a complete file under ``path`` or nothing."""
    with atomic_path(path) as tmp:
        onnx.save_model(model, str(tmp))
    return str(path)
