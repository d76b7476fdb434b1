"""ONNX export and ONNX Runtime against the reference simulator: spikes of every population with
``np.array_equal``, states equal (int) or within 1e-12 (float: float64 products of float64 weights
round, so a different summation order inside a convolution moves the last bit), logits identical
(int) or within 1e-5 (float)."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import onnx
import pytest
from conftest import make_graphs, make_model, sample_input
from onnx import helper

from mlf_deploy.errors import UserError
from mlf_deploy.exporters.onnx.export import export_onnx, save_onnx
from mlf_deploy.exporters.onnx.int32 import plan
from mlf_deploy.exporters.onnx.ops import EXACT, Builder, int_bounds
from mlf_deploy.exporters.onnx.projections import dense
from mlf_deploy.ir import Graph
from mlf_deploy.ir.nodes import Projection
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.ir.semantics import prepare_input
from mlf_deploy.ownership import LEDGER
from mlf_deploy.runtimes.onnx import OnnxRunner, run_onnx, run_onnx_file

ort = pytest.importorskip("onnxruntime")

CASES = {"d8-static": dict(depth=8, events=False), "d14-events": dict(depth=14, events=True)}


@pytest.fixture(scope="module")
def nets():
    """case -> (float graph, int graph, input of 16 samples); K = 3 levels."""
    out = {}
    for name, kw in CASES.items():
        model = make_model(depth=kw["depth"], widths=(4, 8, 8), levels=3, events=kw["events"])
        out[name] = (*make_graphs(model, events=kw["events"]),
                     sample_input(16, events=kw["events"]))
    return out


def _batch(x, n):
    return x[:, :n] if x.dim() == 5 else x[:n]


def assert_same(res, ref, numeric):
    assert res.backend == f"onnx-{numeric}"
    for p in ref.spikes:
        bad = res.spikes[p] != ref.spikes[p]
        assert not bad.any(), f"{p}: {int(bad.sum())} spike mismatches at {np.argwhere(bad)[:5]}"
        same = np.array_equal(res.states[p], ref.states[p]) if numeric == "int" else \
            np.allclose(res.states[p], ref.states[p], rtol=0, atol=1e-12)
        assert same, f"{p}: states differ by up to {np.abs(res.states[p] - ref.states[p]).max()}"
    if numeric == "int":
        assert np.array_equal(res.logits, ref.logits)
    else:
        np.testing.assert_allclose(res.logits, ref.logits, rtol=0, atol=1e-5)
    assert res.overflow == ref.overflow


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("numeric", ["float", "int"])
@pytest.mark.parametrize("mode", ["sequence", "step"])
@pytest.mark.parametrize("batch", [1, 16])
def test_matches_reference(nets, case, numeric, mode, batch):
    g_float, g_int, x = nets[case]
    graph = g_float if numeric == "float" else g_int
    x = _batch(x, 2 if batch == 1 else 16)  # batch 1: two calls, joined
    ref = run_reference(graph, x)
    assert sum(int(s.sum()) for s in ref.spikes.values()) > 0
    assert_same(run_onnx(graph, x, mode=mode, batch_size=batch), ref, numeric)


@pytest.mark.parametrize("numeric", ["float", "int"])
@pytest.mark.parametrize("mode", ["sequence", "step"])
def test_model_structure(nets, numeric, mode):
    g_float, g_int, _ = nets["d8-static"]
    graph = g_float if numeric == "float" else g_int
    model = export_onnx(graph, mode)
    onnx.checker.check_model(model, full_check=True)
    assert model.producer_name == "mlf-deploy" and model.opset_import[0].version >= 17
    meta = {p.key: p.value for p in model.metadata_props}
    for key in ("levels", "timesteps", "thresholds", "scales", "graph_checksum", "mode", "numeric"):
        assert meta[key], key
    assert meta["levels"] == "3" and meta["mode"] == mode and meta["numeric"] == numeric
    names = {n.name: n.op_type for n in model.graph.node}
    tag = "step" if mode == "step" else "t0"
    for pop in graph.populations:  # K single-threshold populations, each its own compare/reset
        assert names[f"{pop.name}/{tag}/fire"] == "Greater"
        assert names[f"{pop.name}/{tag}/reset"] == "Mul"  # by its not-fired mask
    if mode == "step":
        ins = {i.name for i in model.graph.input}
        assert ins == {"input", *(f"v/{p.name}" for p in graph.populations)}


def _with_all_outputs(model):
    """The model with every float64, float32 and int32 intermediate exposed as an output."""
    inferred = onnx.shape_inference.infer_shapes(model)
    kinds = (onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT, onnx.TensorProto.INT32)
    extra = [v for v in inferred.graph.value_info if v.type.tensor_type.elem_type in kinds]
    model = onnx.ModelProto()
    model.CopyFrom(inferred)
    model.graph.output.extend(extra)
    return model, [v.name for v in extra]


def test_int_intermediates_are_exact_integers(nets):
    _, g_int, x = nets["d14-events"]
    model, names = _with_all_outputs(export_onnx(g_int, "sequence"))
    assert len(names) > 500
    # the event stem's bias is too large for int32, so both arithmetics are covered
    narrow = [layer.name for layer in g_int.layers if plan(g_int, layer).int32]
    assert 0 < len(narrow) < len(g_int.layers)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    run = sess.run(None, {"input": prepare_input(g_int, x)})
    out = dict(zip([o.name for o in sess.get_outputs()], run))
    bound = max(int_bounds(g_int).values())
    assert bound < EXACT
    scale = 2.0 ** max(12, *(-layer.weight_exp for layer in g_int.layers))
    for name in names:
        if name.startswith("readout/"):
            continue  # scale and bias are applied in float after the exact accumulator
        v = out[name]
        # the decay product and a right shift are exact dyadic fractions right before trunc/floor
        v = v * scale if name.split(":")[0].endswith(("/decay", "/abs", "/shr")) else v
        assert np.array_equal(v, np.trunc(v)), f"{name} holds non-integers"
        assert np.abs(v).max(initial=0) <= max(bound, 2.0 ** 47), name
        if v.dtype == np.float32:  # projections run in float32 only where sums stay below 2^24
            assert np.abs(v).max(initial=0) < 2 ** 24, name
    assert {out[n].dtype for n in names} == {np.dtype(np.float64), np.dtype(np.float32),
                                              np.dtype(np.int32)}


def _scaled(graph: Graph, exp_shift: int, bias_shift: int) -> Graph:
    """``graph`` with larger weight and bias exponents, so that currents wrap and membranes
    saturate."""
    nodes = dict(graph.nodes)
    for layer in graph.layers:
        nodes[layer.name] = dataclasses.replace(layer, weight_exp=layer.weight_exp + exp_shift,
                                                bias_exp=layer.bias_exp + bias_shift)
    return Graph(nodes, graph.numeric, graph.metadata)


@pytest.mark.parametrize("mode", ["sequence", "step"])
def test_int_wrap_and_saturation(nets, mode):
    _, g_int, x = nets["d8-static"]
    graph = _scaled(g_int, 9, 8)
    ref = run_reference(graph, _batch(x, 4))
    assert sum(ref.overflow.values()) > 100
    assert_same(run_onnx(graph, _batch(x, 4), mode=mode), ref, "int")


def test_save_and_run_file(nets, tmp_path):
    _, g_int, x = nets["d8-static"]
    path = save_onnx(export_onnx(g_int, "step"), tmp_path / "m.onnx")
    assert sorted(os.listdir(tmp_path)) == [LEDGER, "m.onnx"]  # no temporary left behind
    assert_same(run_onnx_file(path, g_int, _batch(x, 3)), run_reference(g_int, _batch(x, 3)), "int")


def test_step_feed_errors(nets):
    g_float, g_int, _ = nets["d8-static"]
    runner = OnnxRunner(g_int, mode="step")
    state = runner.initial_state(2)
    frame = np.zeros((2, 1, 8, 8))
    pop = g_int.populations[1].name
    with pytest.raises(UserError, match=r"'input'.*shape \(2, 1, 7, 8\)"):
        runner({"input": np.zeros((2, 1, 7, 8)), **state})
    with pytest.raises(UserError, match=rf"'v/{pop}'.*dtype float64, expected int64"):
        runner({"input": frame, **state, f"v/{pop}": state[f"v/{pop}"].astype(np.float64)})
    with pytest.raises(UserError, match=rf"'v/{pop}'.*shape \(3, "):
        runner({"input": frame, **state, f"v/{pop}": np.zeros((3, 4, 8, 8), np.int64)})
    with pytest.raises(UserError, match="missing input 'v/"):
        runner({"input": frame})
    with pytest.raises(UserError, match="'input'.*dtype float32"):
        runner({"input": frame.astype(np.float32), **state})
    with pytest.raises(UserError, match="'input'"):
        OnnxRunner(g_float).run(np.zeros((2, 3, 8, 8)))


def test_foreign_files(nets, tmp_path):
    g_float, g_int, x = nets["d8-static"]
    other = save_onnx(export_onnx(nets["d14-events"][1]), tmp_path / "other.onnx")
    with pytest.raises(UserError, match="exported from another graph"):
        run_onnx_file(other, g_int, x)
    with pytest.raises(UserError, match="is a int model but the graph is float"):
        OnnxRunner(g_float, other)
    plain = helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["input"], ["logits"])], "g",
        [helper.make_tensor_value_info("input", onnx.TensorProto.DOUBLE, [1])],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.DOUBLE, [1])]))
    with pytest.raises(UserError, match="not an mlf-deploy ONNX export"):
        OnnxRunner(g_int, save_onnx(plain, tmp_path / "plain.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"\x00not a protobuf\xff" * 10)
    with pytest.raises(UserError, match="not a readable ONNX model"):
        OnnxRunner(g_int, tmp_path / "junk.onnx")
    with pytest.raises(UserError, match="no such ONNX file"):
        OnnxRunner(g_int, tmp_path / "missing.onnx")


def test_unsupported_node(nets):
    g_float, _, _ = nets["d8-static"]
    p = g_float.projections[3]
    nodes = {**g_float.nodes, p.name: dataclasses.replace(p, kind="depthwise")}
    with pytest.raises(UserError, match=rf"projection '{p.name}'.*'depthwise'"):
        export_onnx(Graph(nodes, "float", g_float.metadata))
    with pytest.raises(UserError, match="mode"):
        export_onnx(g_float, "loop")


def test_float32_fast_export(nets):
    g_float, g_int, x = nets["d14-events"]
    model = export_onnx(g_float, "sequence", precision="float32")
    onnx.checker.check_model(model, full_check=True)
    assert "Conv" in {n.op_type for n in model.graph.node}
    ref = run_reference(g_float, x)
    res = OnnxRunner(g_float, model).run(x)
    flips = sum(int((res.spikes[p] != ref.spikes[p]).sum()) for p in ref.spikes)
    assert flips <= 1e-4 * sum(s.size for s in ref.spikes.values())  # inexact: near-threshold only
    np.testing.assert_allclose(res.logits, ref.logits, atol=1e-3)
    with pytest.raises(UserError, match="int graphs export in float64 only"):
        export_onnx(g_int, precision="float32")


@pytest.mark.parametrize("nhwc", [False, True])
def test_dense_projection_in_both_layouts(nhwc):
    """A dense projection reads frames flattened in ONNX's order (C, H, W) or, in float64 models,
    channels last; both must equal ``flatten(x) @ W.T`` of the NCHW frame."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, (5, 4, 3, 2)).astype(np.float64)
    p = Projection("d", "src", "dst", "dense", rng.normal(size=(7, 24)))
    b = Builder()
    b.nhwc = nhwc
    y = dense(b, p, "x", (4, 3, 2))
    b.emit("Identity", [y], ["y"], "out")
    model = helper.make_model(helper.make_graph(
        b.nodes, "dense", [helper.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, None)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.DOUBLE, None)], b.inits),
        opset_imports=[helper.make_opsetid("", 21)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": x.transpose(0, 2, 3, 1).copy() if nhwc else x})[0]
    want = x.reshape(5, -1) @ p.weight.T
    np.testing.assert_allclose(got.reshape(5, 7), want, rtol=1e-13, atol=0)
    assert got.shape == ((5, 1, 1, 7) if nhwc else (5, 7, 1, 1))
