"""The int32 arithmetic of int ONNX models: the decay's two forms against numpy's int64
``trunc(v r / 4096)`` over the whole 24-bit membrane range, whole networks with retentions that
take each form against the reference simulator, and the bound that sends a layer back to float64."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from onnx import TensorProto, helper
from test_onnx import _scaled, assert_same
from test_onnx import nets as nets  # the shared module fixture

from mlf_deploy.exporters.onnx.int32 import LIMIT32, decay, decay_terms, plan
from mlf_deploy.exporters.onnx.ops import Builder
from mlf_deploy.ir import Graph
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.ir.semantics import V_MAX, retention_mant
from mlf_deploy.runtimes.onnx import run_onnx

ort = pytest.importorskip("onnxruntime")

# 0.25: v / 4; 0.75: 3 v / 4; 2/3: r = 2731, too large to multiply first; 1 and 0: no arithmetic
RETENTIONS = (0.25, 0.75, 2 / 3, 1.0, 0.0)


def _decay_model(retention):
    b = Builder()
    d = decay(b, "v", retention, "pop/t1")
    if d is None:  # r = 0: the reference's term is 0
        d = b.op("Mul", ["v", b.const(0, np.int32)], "zero")
    b.emit("Identity", [d], ["d"], "out")
    graph = helper.make_graph(b.nodes, "decay",
                              [helper.make_tensor_value_info("v", TensorProto.INT32, [None])],
                              [helper.make_tensor_value_info("d", TensorProto.INT32, [None])],
                              b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("retention", RETENTIONS)
def test_decay_is_trunc_over_the_state_range(retention):
    rng = np.random.default_rng(0)
    edges = np.array([0, 1, -1, 4095, -4095, 4096, -4096, 4097, -4097, V_MAX, -V_MAX, V_MAX - 1,
                      -V_MAX + 1])
    v = np.concatenate([edges, rng.integers(-V_MAX, V_MAX + 1, 20000)]).astype(np.int32)
    product = v.astype(np.int64) * retention_mant(retention)
    want = np.sign(product) * (np.abs(product) // 4096)  # trunc toward zero, in int64
    got = _decay_model(retention).run(None, {"v": v})[0]
    assert got.dtype == np.int32
    bad = got != want
    assert not bad.any(), f"v = {v[bad][:5]}: {got[bad][:5]} != {want[bad][:5]}"


def test_both_decay_forms_are_covered():
    direct = [r for r in RETENTIONS if decay_terms(r)[0] * V_MAX < LIMIT32]
    assert 0 < len(direct) < len(RETENTIONS)  # 2/3 takes the quotient-remainder form


def _with_retention(graph: Graph, retention: float) -> Graph:
    nodes = dict(graph.nodes)
    for pop in graph.populations:
        nodes[pop.name] = dataclasses.replace(pop, v_retention=retention)
    return Graph(nodes, graph.numeric, graph.metadata)


@pytest.mark.parametrize("retention,mode",
                         [(0.75, "sequence"), (2 / 3, "sequence"), (2 / 3, "step")])
def test_networks_with_each_decay_form_are_exact(nets, retention, mode):
    _, g_int, x = nets["d8-static"]
    graph = _with_retention(g_int, retention)
    assert all(plan(graph, layer).int32 for layer in graph.layers)
    ref = run_reference(graph, x[:6])
    assert sum(int(s.sum()) for s in ref.spikes.values()) > 0
    assert_same(run_onnx(graph, x[:6], mode=mode), ref, "int")


def test_layers_past_the_int32_bound_keep_float64(nets):
    _, g_int, _ = nets["d8-static"]
    assert all(plan(g_int, layer).int32 for layer in g_int.layers)
    # exponents that make 64 a pass 2^31: those layers fall back (test_int_wrap_and_saturation
    # runs this graph against the reference, bit for bit)
    scaled = _scaled(g_int, 9, 8)
    assert not all(plan(scaled, layer).int32 for layer in scaled.layers)
    big_bias = _scaled(g_int, 0, 24)
    assert not any(plan(big_bias, layer).int32 for layer in big_bias.layers if np.any(layer.bias))


@pytest.mark.parametrize("mode", ["sequence", "step"])
def test_int32_wrap_and_saturation(nets, mode):
    _, g_int, x = nets["d8-static"]
    graph = _scaled(g_int, 5, 0)  # 64 a passes 2^23 but stays far inside int32
    assert all(plan(graph, layer) == (True, True, True) for layer in graph.layers)
    ref = run_reference(graph, x[:4])
    assert sum(ref.overflow.values()) > 1000
    assert_same(run_onnx(graph, x[:4], mode=mode), ref, "int")


def test_plans_without_wrap_or_saturation_are_used(nets):
    _, g_int, _ = nets["d8-static"]
    plans = [plan(g_int, layer) for layer in g_int.layers]  # test_onnx runs it bit for bit
    assert any(not p.wraps and not p.saturates for p in plans)
