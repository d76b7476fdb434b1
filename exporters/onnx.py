"""Export a deployment graph (float or int) to ONNX: a streaming step model or a whole-run sequence
model, both in float64, with every MLF level a separate single-threshold population.

Same-timestep semantics let the sequence model compute each layer's current for all ``T * B``
frames at once (one im2col ``MatMul``) and unroll only the cheap membrane recurrence over ``T``, as
the reference simulator does. The exactness argument for int graphs is in :mod:`exporters.onnx_ops`.

Names (``<pop>`` is a population name such as ``blocks.0.mlf1/L2``):
    step inputs: ``input`` ``(B, C, H, W)``, ``v/<pop>`` ``(B, C, H, W)`` (membrane after the last
    step's reset; zeros at the start). step outputs: ``s/<pop>`` uint8, ``v_next/<pop>``,
    ``readout_increment`` ``(B, classes)``. sequence input ``input`` ``(T, B, C, H, W)``; outputs
    ``logits`` ``(B, classes)``, and with ``record=True`` ``s/<pop>``, ``v/<pop>`` ``(T, B, C, H, W)``.
    Membranes are float64 (float graphs) or int64 in 1/64 current units (int graphs); int models
    also output ``overflow`` ``(layers,)`` int64, the 24-bit wrap and saturation events per layer.
"""

from __future__ import annotations

import json
from importlib import metadata as _md

import numpy as np
import onnx
from onnx import helper

from exporters.onnx_ops import INT64, UINT8, Builder, check_exact, population_step, \
    project, shift, wrap24
from mlf_deploy.errors import UserError
from mlf_deploy.fileio import atomic_path
from mlf_deploy.ir import Graph
from mlf_deploy.ir.serialize import graph_checksum

FORMAT = "mlf-deploy-onnx/1"
OPSET = 21  # ONNX Runtime 1.17+ runs it; Split's num_outputs needs 18+
PRODUCER = "mlf-deploy"


def _version() -> str:
    try:
        return _md.version("mlf-deploy")
    except _md.PackageNotFoundError:
        return "0+unknown"


def _groups(graph: Graph, layer, integer: bool):
    """Projections sharing weights, as the reference groups them: sum the sources, project once.

    Matches the reference's order of float additions; int graphs with a negative weight exponent
    must floor each projection separately."""
    groups: dict = {}
    for p in graph.projections_into(layer.name):
        key = (p.kind, np.shape(p.weight), np.asarray(p.weight).tobytes(), tuple(p.stride),
               tuple(p.padding))
        if integer and layer.weight_exp < 0:
            key = (p.name,)
        groups.setdefault(key, (p, []))[1].append(p.source)
    return groups.values()


def _current(b: Builder, graph: Graph, layer, values: dict, integer: bool) -> str:
    current = None
    for i, (p, sources) in enumerate(_groups(graph, layer, integer)):
        src = values[sources[0]]
        for other in sources[1:]:
            src = b.op("Add", [src, values[other]], f"{layer.name}/fanin{i}")
        a = project(b, p, src, graph.nodes[sources[0]].shape)
        if integer:
            a = shift(b, a, layer.weight_exp, p.name)
        current = a if current is None else b.op("Add", [current, a], f"{layer.name}/sum{i}")
    return current


def _count(b: Builder, masks: list, name: str) -> str:
    mask = masks[0] if len(masks) == 1 else b.op("Concat", masks, f"{name}/cat", axis=0)
    n = b.op("ReduceSum", [b.op("Cast", [mask], f"{name}/cast", to=INT64)], name, keepdims=0)
    return b.op("Unsqueeze", [n, b.ints([0])], f"{name}/1d")


def _build(graph: Graph, mode: str, record: bool, precision: str):
    integer, steps = graph.numeric == "int", graph.timesteps
    b, inp = Builder(precision), graph.input
    c, h, w = inp.shape
    if mode == "sequence":
        inputs = [helper.make_tensor_value_info("input", b.ftype, [steps, "B", c, h, w])]
        values = {inp.name: b.op("Reshape", ["input", b.ints([-1, c, h, w])], "input/fold_time")}
    else:
        inputs = [helper.make_tensor_value_info("input", b.ftype, ["B", c, h, w])]
        values = {inp.name: "input"}
    state_type = INT64 if integer else b.ftype
    outputs, overflow = [], []
    for layer in graph.layers:
        pops = graph.populations_of(layer.name)
        drive = _current(b, graph, layer, values, integer)
        bias = np.asarray(layer.bias, np.float64).reshape(-1, 1, 1)
        masks = []
        if integer:
            u, wrapped = wrap24(b, b.op("Mul", [drive, b.const(64.0)], f"{layer.name}/u"), layer.name)
            drive = b.op("Add", [u, b.const(bias * 2.0 ** layer.bias_exp)], f"{layer.name}/bias")
            masks.append(wrapped)
        bias = None if integer else b.const(bias)
        if mode == "sequence":
            per_t = [drive] if steps == 1 else [
                f"{layer.name}/t{t}" for t in range(steps)]
            if steps > 1:
                b.nodes.append(helper.make_node("Split", [drive], per_t, f"{layer.name}/split_time",
                                                axis=0, num_outputs=steps))
        shape = ["B", *layer.shape] if mode == "step" else [steps, "B", *layer.shape]
        for pop in pops:
            if mode == "step":
                v_in = f"v/{pop.name}"
                inputs.append(helper.make_tensor_value_info(v_in, state_type, shape))
                v0 = b.op("Cast", [v_in], f"{pop.name}/v_in", to=b.ftype) if integer else v_in
                s, v, sat = population_step(b, pop, v0, drive, bias, integer, "step")
                spikes, states, masks = s, v, masks + [sat] * integer
            else:
                v, ss, vs = None, [], []
                for t in range(steps):
                    s, v, sat = population_step(b, pop, v, per_t[t], bias, integer, f"t{t}")
                    ss, vs, masks = ss + [s], vs + [v], masks + [sat] * integer
                spikes = ss[0] if steps == 1 else b.op("Concat", ss, f"{pop.name}/spikes", axis=0)
                states = vs[0] if steps == 1 else b.op("Concat", vs, f"{pop.name}/states", axis=0)
            values[pop.name] = b.op("Cast", [spikes], f"{pop.name}/spikes_f", to=b.ftype)
            if record or mode == "step":
                unfold = b.ints([steps, -1, *layer.shape] if mode == "sequence" else [-1, *layer.shape])
                s_out, v_out = f"s/{pop.name}", f"v_next/{pop.name}" if mode == "step" else f"v/{pop.name}"
                s8 = b.op("Cast", [spikes], f"{pop.name}/spikes_u8", to=UINT8)
                if integer:
                    states = b.op("Cast", [states], f"{pop.name}/states_i64", to=INT64)
                b.nodes += [helper.make_node("Reshape", [s8, unfold], [s_out], f"{pop.name}/s_out"),
                            helper.make_node("Reshape", [states, unfold], [v_out], f"{pop.name}/v_out")]
                outputs += [helper.make_tensor_value_info(s_out, UINT8, shape),
                            helper.make_tensor_value_info(v_out, state_type, shape)]
        if integer:
            overflow.append(_count(b, masks, f"{layer.name}/overflow"))
    outputs.insert(0, _readout(b, graph, values, mode))
    if integer:
        b.nodes.append(helper.make_node("Concat", overflow, ["overflow"], "overflow", axis=0))
        outputs.append(helper.make_tensor_value_info("overflow", INT64, [len(overflow)]))
    return b, inputs, outputs


def _readout(b: Builder, graph: Graph, values: dict, mode: str):
    ro, steps = graph.readout, graph.timesteps
    src = values[ro.sources[0]]
    for other in ro.sources[1:]:
        src = b.op("Add", [src, values[other]], f"{ro.name}/sum_sources")
    counts = b.op("ReduceSum", [src, b.ints([2, 3])], f"{ro.name}/sum_hw", keepdims=0)
    w_t = b.const(np.asarray(ro.weight, np.float64).T)
    classes = len(ro.weight)
    if mode == "step":
        b.nodes.append(helper.make_node("MatMul", [counts, w_t], ["readout_increment"],
                                        f"{ro.name}/increment"))
        return helper.make_tensor_value_info("readout_increment", b.ftype, ["B", classes])
    counts = b.op("Reshape", [counts, b.ints([steps, -1, counts_c(graph)])], f"{ro.name}/unfold")
    counts = b.op("ReduceSum", [counts, b.ints([0])], f"{ro.name}/sum_time", keepdims=0)
    acc = b.op("MatMul", [counts, w_t], f"{ro.name}/accumulate")
    # the reference's order: acc * scale / (T H W) + bias, so int logits agree bit for bit
    scaled = b.op("Div", [b.op("Mul", [acc, b.const(ro.scale)], f"{ro.name}/scale"),
                          b.const(float(_norm(graph)))], f"{ro.name}/mean")
    b.nodes.append(helper.make_node("Add", [scaled, b.const(np.asarray(ro.bias, np.float64))],
                                    ["logits"], f"{ro.name}/bias"))
    return helper.make_tensor_value_info("logits", b.ftype, ["B", classes])


def counts_c(graph: Graph) -> int:
    return int(graph.nodes[graph.readout.sources[0]].shape[0])


def _norm(graph: Graph) -> int:
    h, w = graph.nodes[graph.readout.sources[0]].shape[1:]
    return graph.timesteps * int(h) * int(w)


def model_metadata(graph: Graph, mode: str) -> dict:
    pops, ro = graph.populations, graph.readout
    return {
        "format": FORMAT, "mode": mode, "numeric": graph.numeric,
        "graph_checksum": graph_checksum(graph),
        "levels": str(graph.levels), "timesteps": str(graph.timesteps),
        "input_encoding": graph.input.encoding, "input_shape": json.dumps(list(graph.input.shape)),
        "populations": json.dumps([p.name for p in pops]),
        "thresholds": json.dumps({p.name: float(p.v_threshold) for p in pops}),
        "retention": json.dumps({p.name: float(p.v_retention) for p in pops}),
        "scales": json.dumps({"input": graph.input.scale, "readout": ro.scale,
                              **{layer.name: layer.scale for layer in graph.layers}}),
        "state_unit": "1/64 current unit (int64)" if graph.numeric == "int" else "current unit",
        "readout_scale": repr(float(ro.scale)), "readout_norm": str(_norm(graph)),
        "readout_bias": json.dumps([float(v) for v in np.asarray(ro.bias, np.float64)]),
        "overflow_layers": json.dumps([layer.name for layer in graph.layers]),
    }


def export_onnx(graph: Graph, mode: str = "sequence", record: bool = True,
                precision: str = "float64") -> onnx.ModelProto:
    """The ONNX model of ``graph``.

    Args:
        mode: "step" (one timestep, states in and out) or "sequence" (all ``T`` steps).
        record: sequence model only: also output every population's spikes and states.
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
    g = helper.make_graph(b.nodes, f"mlf-deploy-{graph.numeric}-{mode}", inputs, outputs, b.inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name=PRODUCER, producer_version=_version(),
                              doc_string=__doc__.split("\n\n")[0])
    helper.set_model_props(model, {**model_metadata(graph, mode), "precision": precision})
    return model


def save_onnx(model: onnx.ModelProto, path) -> str:
    """Write ``model`` atomically: a complete file under ``path`` or nothing."""
    with atomic_path(path) as tmp:
        onnx.save_model(model, str(tmp))
    return str(path)
