"""The body of an exported ONNX model: its inputs, every layer's populations step by step, the
recorded spikes and membranes, the overflow counts and the readout (names and shapes: the
docstring of :mod:`mlf_deploy.exporters.onnx.export`)."""

from __future__ import annotations

import numpy as np
from onnx import helper

from mlf_deploy.exporters.onnx import int32 as onnx_int32
from mlf_deploy.exporters.onnx.drive import layer_drive, per_neuron_bias, to_layout
from mlf_deploy.exporters.onnx.ops import DOUBLE, INT64, NCHW, NHWC, UINT8, Builder, population_step
from mlf_deploy.exporters.onnx.readout import readout
from mlf_deploy.ir import Graph


def overflow_count(b: Builder, masks: list, name: str) -> str:
    """``(1,)`` int64: the number of true values in ``masks``. Each is summed on its own while it
    is in cache (float64 sums of 0/1 are exact below 2^53); one concatenation is far slower."""
    if not masks:  # the bounds rule every event out
        return b.const([0], np.int64)
    parts = [b.op("ReduceSum", [b.op("Cast", [m], f"{name}/cast{i}", to=DOUBLE)], f"{name}/sum{i}",
                  keepdims=0) for i, m in enumerate(masks)]
    n = b.add(parts, f"{name}/total")
    return b.op("Cast", [b.op("Unsqueeze", [n, b.ints([0])], f"{name}/1d")], f"{name}/i64",
                to=INT64)


class NetworkBuilder:
    """Builds the model of ``graph`` into a :class:`Builder`: ``values`` maps each spike source
    (the input, a population) to its ONNX value as the layers are added in schedule order."""

    def __init__(self, graph: Graph, mode: str, record: bool, precision: str):
        self.graph, self.mode, self.record = graph, mode, record
        self.integer, self.seq = graph.numeric == "int", mode == "sequence"
        self.steps = graph.timesteps
        self.b = Builder(precision)
        self.b.nhwc = not self.integer and self.b.np is np.float64
        self.lead = [self.steps, "B"] if self.seq else ["B"]  # dims before a frame's (C, H, W)
        self.state_type = INT64 if self.integer else self.b.ftype
        self.values, self.inputs, self.outputs, self.overflow = {}, [], [], []

    def build(self):
        """``(builder, inputs, outputs)``: the whole model, the readout its first output."""
        self.add_input()
        for layer in self.graph.layers:
            self.add_layer(layer)
        self.outputs.insert(0, readout(self.b, self.graph, self.values, self.mode))
        if self.overflow:
            self.b.emit("Concat", self.overflow, ["overflow"], "overflow", axis=0)
            self.outputs.append(helper.make_tensor_value_info("overflow", INT64,
                                                              [len(self.overflow)]))
        return self.b, self.inputs, self.outputs

    def add_input(self) -> None:
        b, inp = self.b, self.graph.input
        self.inputs.append(helper.make_tensor_value_info("input", b.ftype,
                                                         [*self.lead, *inp.shape]))
        x = b.op("Reshape", ["input", b.ints([-1, *inp.shape])], "input/fold_time") \
            if self.seq else "input"
        self.values[inp.name] = to_layout(b, x, "input/layout", NHWC)
        b.types[self.values[inp.name]] = b.np

    def add_layer(self, layer) -> None:
        """The layer's drive, then each level population over every step; a graded layer's
        payload is its level count."""
        b, graph = self.b, self.graph
        plan = onnx_int32.plan(graph, layer) if self.integer else None
        drive, wrapped = layer_drive(b, graph, layer, self.values, plan)
        masks = [wrapped]
        bias = None if self.integer else b.const(per_neuron_bias(b, layer))
        per_t = self.split_time(layer, drive, bias)
        level_spikes = [self.add_population(layer, pop, per_t, bias, plan, masks)
                        for pop in graph.levels_of(layer.name)]
        if graph.graded:  # the one sender's payload: its level count
            sender = graph.populations_of(layer.name)[0].name
            self.values[sender] = b.add(level_spikes, f"{sender}/count")
        if self.integer and (self.record or not self.seq):  # a logits-only model skips them too
            self.overflow.append(overflow_count(b, [m for m in masks if m],
                                                f"{layer.name}/overflow"))

    def split_time(self, layer, drive: str, bias: str | None) -> list:
        """The drive of each step: same-timestep semantics unroll only the membrane recurrence."""
        b, per_t = self.b, [drive]
        if self.seq and self.steps > 1:
            per_t = [f"{layer.name}/t{t}" for t in range(self.steps)]
            b.emit("Split", [drive], per_t, f"{layer.name}/split_time", axis=0,
                   num_outputs=self.steps)
        if self.seq and not self.integer:  # from v = 0 every level's first membrane is a + b
            per_t[0] = b.op("Add", [per_t[0], bias], f"{layer.name}/t0/bias")
        return per_t

    def add_population(self, layer, pop, per_t: list, bias, plan, masks: list) -> str:
        """Every step of one level population; returns its spikes as float32 (0/1 and their sums
        are small integers, exact in float32 at half the bytes). Appends saturation masks."""
        b, narrow = self.b, self.integer and plan.int32
        v = None if self.seq else self.state_input(layer, pop, narrow)  # a sequence starts at 0
        ss, vs = [], []
        for t, d in enumerate(per_t):
            tag = f"t{t}" if self.seq else "step"
            # from v = 0 the bounds may rule saturation out; a step model's v is the caller's
            if narrow:
                s, v, sat = onnx_int32.population_step(b, pop, v, d, tag,
                                                       plan.saturates or not self.seq)
            else:
                s, v, sat = population_step(b, pop, v, d, None if v is None else bias,
                                            self.integer, tag)
            ss, vs = ss + [s], vs + [v]
            masks.append(sat)
        spikes = b.concat(ss, f"{pop.name}/spikes")
        level = b.cast(spikes, np.float32, f"{pop.name}/spikes_f", np.bool_)
        if not self.graph.graded:
            self.values[pop.name] = level
        if self.record or not self.seq:
            self.add_recorded(layer, pop, spikes, vs)
        return level

    def state_input(self, layer, pop, narrow: bool) -> str:
        """A step model's ``v/<pop>`` input, in the type and layout its arithmetic uses."""
        b, name = self.b, f"v/{pop.name}"
        shape = [*self.lead, *layer.shape]
        self.inputs.append(helper.make_tensor_value_info(name, self.state_type, shape))
        if self.integer:
            return b.op("Cast", [name], f"{pop.name}/v_in",
                        to=onnx_int32.INT32 if narrow else b.ftype)
        return to_layout(b, name, f"{pop.name}/v_layout", NHWC)

    def add_recorded(self, layer, pop, spikes: str, vs: list) -> None:
        """The population's spikes ``s/<pop>`` (uint8) and membranes as graph outputs."""
        b, shape = self.b, [*self.lead, *layer.shape]
        states = to_layout(b, b.concat(vs, f"{pop.name}/states"), f"{pop.name}/v_nchw", NCHW)
        if self.integer:
            states = b.op("Cast", [states], f"{pop.name}/states_i64", to=INT64)
        unfold = b.ints([*self.lead[:-1], -1, *layer.shape])
        s_out, v_out = f"s/{pop.name}", f"v/{pop.name}" if self.seq else f"v_next/{pop.name}"
        s8 = to_layout(b, b.op("Cast", [spikes], f"{pop.name}/spikes_u8", to=UINT8),
                       f"{pop.name}/s_nchw", NCHW)
        b.emit("Reshape", [s8, unfold], [s_out], f"{pop.name}/s_out")
        b.emit("Reshape", [states, unfold], [v_out], f"{pop.name}/v_out")
        self.outputs += [helper.make_tensor_value_info(s_out, UINT8, shape),
                         helper.make_tensor_value_info(v_out, self.state_type, shape)]
