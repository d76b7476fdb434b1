"""Every field a validator accepts is honoured by every backend or refused: graph files, checkpoint
fields, event data, ONNX models given to ``run``, and the environment. Each case is one ``error:``
line and no traceback."""

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_checkpoint
from tamper import node, one_error, reseal, run

from mlf_deploy.errors import UserError
from mlf_deploy.ir import save_graph


@pytest.fixture(scope="module")
def graph_file(ckpt, tmp_path_factory):
    path = tmp_path_factory.mktemp("g") / "int.mlfg"
    assert run("export", ckpt, "--to", "ir", "-o", path).exit_code == 0
    return path


@pytest.fixture(scope="module")
def raw_input(tmp_path_factory):
    path = tmp_path_factory.mktemp("x") / "x.npy"
    np.save(path, np.random.default_rng(0).integers(0, 17, (2, 1, 8, 8)).astype(np.float64))
    return path


def _normalise(**fields):
    def edit(graph, arrays):
        node(graph, "Input").update({"raw_divide": 16.0, "raw_mean": [0.0], "raw_std": [1.0],
                                     **fields})
    return edit


@pytest.mark.parametrize("edit,fragment", [
    (lambda g, a: node(g, "Population").update(v_reset=0.5), "v_reset"),
    (_normalise(raw_divide=0), "raw_divide"),
    (_normalise(raw_std=[0.0]), "raw_std"),
    (_normalise(raw_std=[]), "raw_std"),
    (_normalise(raw_mean=[], raw_std=[]), "raw_divide"),
    (lambda g, a: node(g, "Input").update(gain=[1.0]), "offset"),
    (lambda g, a: g["metadata"]["input_pipeline"].update(
        normalise={"divide": 1.0, "mean": [0.0], "std": [1.0]}), "Input node"),
    (lambda g, a: g["metadata"].update(input_gain=[1.0]), "Input node"),
    (lambda g, a: g["metadata"].update(levels=1), "levels"),
    (lambda g, a: g["metadata"].update(timesteps=3), "timesteps"),
    (lambda g, a: g["metadata"].update(input_pipeline=[1, 2]), "input_pipeline"),
    (lambda g, a: g["metadata"].update(input_pipeline={"normalise": {"divide": "x"}}),
     "input_pipeline"),
])
def test_graph_fields_every_backend_cannot_honour_are_refused(graph_file, raw_input, tmp_path,
                                                              edit, fragment):
    bad = reseal(graph_file, tmp_path / "bad.mlfg", edit=edit)
    one_error(run("run", bad, "--input", raw_input), fragment)


def test_a_layer_no_projection_drives_is_refused(graph_file, raw_input, tmp_path):
    def edit(graph, arrays):
        layer = node(graph, "Layer", 1)["name"]
        gone = [n for n in graph["nodes"] if n["type"] == "Projection" and n["target"] == layer]
        graph["nodes"] = [n for n in graph["nodes"] if n not in gone]
        for n in gone:
            arrays.pop(n["weight"]["$array"], None)
    bad = reseal(graph_file, tmp_path / "bad.mlfg", edit=edit)
    one_error(run("run", bad, "--input", raw_input), "a layer some projection drives")


def test_a_dense_projection_into_a_map_is_refused(graph_file, raw_input, tmp_path):
    def edit(graph, arrays):
        p = node(graph, "Projection", 0)
        target = next(n for n in graph["nodes"] if n["name"] == p["target"])
        src_n = 64  # the 1x8x8 input
        key = p["weight"]["$array"]
        arrays[key] = np.zeros((int(np.prod(target["shape"])), src_n), arrays[key].dtype)
        p.update(kind="dense", stride=[1, 1], padding=[0, 0])
    bad = reseal(graph_file, tmp_path / "bad.mlfg", edit=edit)
    one_error(run("run", bad, "--input", raw_input), "dense projection")


def test_an_encrypted_member_is_one_error(graph_file, raw_input, tmp_path):
    data = graph_file.read_bytes().split(b"\n", 2)[2]
    # set the "encrypted" bit of every local and central header (the bytes stay as they are)
    raw = bytearray(data)
    for sig, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = raw.find(sig)
        while i >= 0:
            raw[i + offset] |= 1
            i = raw.find(sig, i + 4)
    import hashlib

    from mlf_deploy.ir.serialize import MAGIC
    bad = tmp_path / "enc.mlfg"
    bad.write_bytes(MAGIC + b"sha256:" + hashlib.sha256(raw).hexdigest().encode() + b"\n" + raw)
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
        assert zf.infolist()[0].flag_bits & 1
    one_error(run("run", bad, "--input", raw_input), "encrypted")


def test_save_graph_never_writes_what_load_graph_refuses(small_graphs, tmp_path):
    import dataclasses
    graph = small_graphs[0]
    pop = graph.populations[0]
    nodes = dict(graph.nodes)
    nodes[pop.name] = dataclasses.replace(pop, v_threshold=float("nan"))
    from mlf_deploy.ir import Graph
    with pytest.raises(UserError, match="would not read"):
        save_graph(Graph(nodes, graph.numeric, graph.metadata), tmp_path / "nan.mlfg")
    assert not (tmp_path / "nan.mlfg").exists()


@pytest.mark.parametrize("changes,fragment", [
    ({"finetune": "abc"}, "finetune"),
    ({"config": {"batch_size": "abc"}}, "batch_size"),
    ({"config": {"batch_size": -4}}, "batch_size"),
])
def test_checkpoint_fields_are_checked(tmp_path, changes, fragment):
    path = write_checkpoint(tmp_path / "c.pt", **changes)
    one_error(run("finetune", path, "--weight-bits", "4", "--epochs", "1", "--out",
                  tmp_path / "o", "--no-progress"), fragment)


def test_a_negative_bn_variance_is_refused(tmp_path):
    from conftest import make_model
    state = make_model().state_dict()
    key = next(k for k in state if k.endswith("running_var"))
    state[key] = -torch.ones_like(state[key])
    path = write_checkpoint(tmp_path / "c.pt", state_dict=state)
    for args in (["export", path, "--to", "onnx", "--float", "-o", tmp_path / "m.onnx"],
                 ["export", path, "--to", "ir", "--float", "-o", tmp_path / "g.mlfg"]):
        one_error(run(*args), "negative variance")
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "g.mlfg").exists()


def test_train_refuses_model_arguments_no_command_reads(tmp_path):
    one_error(run("train", "--out", tmp_path / "t", "--levels", "100", "--no-progress"), "levels")
    assert not (tmp_path / "t" / "checkpoint.pt").exists()


@pytest.mark.parametrize("field,value", [
    ("optimizer", {"state": {0: {"momentum_buffer": torch.zeros(3)}},
                   "param_groups": [{"lr": 0.1, "params": [0]}]}),
    ("optimizer", "abc"),
    ("scheduler", {"last_epoch": "abc", "step_size": 0}),
    ("rng", {"torch": torch.zeros(3)}),
    ("history", "abc"),
])
def test_resume_with_a_bad_training_state_is_one_error(tmp_path, field, value):
    out = tmp_path / "run"
    common = ["--epochs", "1", "--max-samples", "32", "--depth", "8", "--widths", "4,8,8",
              "--no-progress"]
    assert run("train", "--out", out, *common).exit_code == 0
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    ckpt[field] = value
    os.unlink(out / "checkpoint.pt")
    torch.save(ckpt, out / "checkpoint.pt")
    one_error(run("train", "--out", out, "--resume", *common[:-1], "--epochs", "2",
                  "--no-progress"), "cannot be resumed")


def test_nan_and_infinite_timestamps_are_refused(tmp_path):
    from mlf_deploy.data.tonic_sets import read_events
    events = np.array([[1, 1, 0, 5.0], [2, 2, 1, np.nan]])
    np.save(tmp_path / "r.npy", events)
    with pytest.raises(UserError, match="NaN"):
        read_events("dvs-gesture", tmp_path / "r.npy")
    np.save(tmp_path / "r.npy", np.array([[1, 1, 0, 5.0], [2, 2, 1, np.inf]]))
    with pytest.raises(UserError, match="NaN"):
        read_events("dvs-gesture", tmp_path / "r.npy")


@pytest.mark.parametrize("env,fragment", [
    ({"WORLD_SIZE": "abc"}, "WORLD_SIZE"),
    ({"WORLD_SIZE": "2", "RANK": ""}, "RANK is not set"),
])
def test_torchrun_variables_are_checked(tmp_path, monkeypatch, env, fragment):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    one_error(run("train", "--out", tmp_path / "t", "--epochs", "1", "--no-progress"), fragment)


def test_cache_variable_pointing_at_a_file(tmp_path, monkeypatch):
    from mlf_deploy.data.streaming import cache_root
    (tmp_path / "cache").write_text("x")
    monkeypatch.setenv("MLF_DEPLOY_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="is a file"):
        cache_root(str(tmp_path))


@pytest.mark.parametrize("args,fragment", [
    (["train", "--seed", "-1"], "seed"),
    (["finetune", "CKPT", "--weight-bits", "4", "--lr", "inf"], "finite lr"),
])
def test_numbers_out_of_range_are_one_error(tmp_path, ckpt, args, fragment):
    args = [ckpt if a == "CKPT" else a for a in args]
    one_error(run(*args, "--out", tmp_path / "o", "--no-progress"), fragment)


def test_run_onnx_applies_the_onnx_checks(ckpt, tmp_path, raw_input):
    import onnx
    from onnx import numpy_helper
    path = tmp_path / "m.onnx"
    assert run("export", ckpt, "--to", "onnx", "--float", "-o", path).exit_code == 0
    model = onnx.load(str(path))
    init = next(i for i in model.graph.initializer if i.data_type == onnx.TensorProto.DOUBLE
                and np.prod(i.dims) > 1)
    arr = numpy_helper.to_array(init).copy()
    arr.flat[0] = np.nan
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    onnx.save(model, str(tmp_path / "nan.onnx"))
    one_error(run("run", tmp_path / "nan.onnx", "--input", raw_input), "NaN")
    model = onnx.load(str(path))
    meta = next(p for p in model.metadata_props if p.key == "input_pipeline")
    pipe = json.loads(meta.value)
    pipe["normalise"] = {"divide": 0, "mean": [0.0], "std": [1.0]}
    meta.value = json.dumps(pipe)
    onnx.save(model, str(tmp_path / "div0.onnx"))
    one_error(run("run", tmp_path / "div0.onnx", "--input", raw_input), "divide")
    model = onnx.load(str(path))
    first = model.graph.node[0].output[0]
    model.graph.node.append(onnx.helper.make_node("Expand", [first, first], ["expanded"]))
    model.graph.node.append(onnx.helper.make_node("Identity", ["expanded"], ["foreign"]))
    onnx.save(model, str(tmp_path / "foreign.onnx"))
    one_error(run("run", tmp_path / "foreign.onnx", "--input", raw_input), "Expand")


def test_an_empty_pythonpath_entry_never_imports_from_the_current_directory(tmp_path):
    (tmp_path / "signal.py").write_text("raise SystemExit('signal.py from the current folder')\n")
    exe = Path(sys.executable).with_name("mlf-deploy")
    done = subprocess.run([str(exe), "--version"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep}, timeout=120)
    assert done.returncode == 0 and "version" in done.stdout, done.stderr
