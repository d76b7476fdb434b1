"""Seeded mutation fuzzing of the three loaders a user's files reach: graph, checkpoint, ONNX.

Each mutated file must either be refused with a UserError or load to something that runs (the
reference simulator, lowering and quantization, an ONNX Runtime session) raising at most a
UserError; any other exception is a bug. Mutations keep the hashes valid (resealed graphs), so
they reach the schema, not only the checksum.
"""

import copy
import random

import numpy as np
import onnx
import pytest
import torch
from conftest import make_graphs, make_model, sample_input, write_checkpoint
from tamper import reseal

from mlf_deploy.checkpoint import build_model, read_checkpoint
from mlf_deploy.errors import UserError
from mlf_deploy.exporters.onnx.export import export_onnx, save_onnx
from mlf_deploy.ir import load_graph, save_graph
from mlf_deploy.ir.reference import run_reference
from mlf_deploy.lowering import lower
from mlf_deploy.quantization import quantize
from mlf_deploy.runtimes.onnx import OnnxRunner, load_onnx

HOSTILE = [None, True, -1, 0, 1, 2 ** 31, 10 ** 12, -(10 ** 12), 0.5, -0.0, 1e308, float("nan"),
           float("inf"), "", "x" * 300, [], [0], [1, 1], [-1, 1], [[1]], {}, {"$array": "nope"}]


def _mutate_value(rng: random.Random, value):
    if isinstance(value, (int, float)) and not isinstance(value, bool) and rng.random() < 0.5:
        return value + rng.choice([-1, 1, 2 ** 16]) if isinstance(value, int) else value * 1.5
    return copy.deepcopy(rng.choice(HOSTILE))


ARRAY_MUTATIONS = [
    lambda a: a[..., :-1] if a.ndim and a.shape[-1] > 1 else a.reshape(-1, 1),
    lambda a: a.astype(np.float64) * np.nan,
    lambda a: a.astype(np.int64) * 1000,
    lambda a: a.astype(np.int8),
    lambda a: np.zeros((0,), a.dtype),
    lambda a: a.astype(np.float32) + 0.5,
]
TENSOR_MUTATIONS = [
    lambda t: t.float() * float("nan"),
    lambda t: t.flatten()[:-1] if t.numel() > 1 else t,
    lambda t: t.float() * 1e30,
    lambda t: torch.zeros(0),
]


def _graph_edit(rng: random.Random):
    def edit(graph, arrays):
        for _ in range(rng.randint(1, 3)):
            if arrays and rng.random() < 0.35:
                key = rng.choice(sorted(arrays))
                arrays[key] = rng.choice(ARRAY_MUTATIONS)(arrays[key])
            elif rng.random() < 0.1:
                graph["metadata"][rng.choice(["input_gain", "levels", "timesteps"])] = \
                    _mutate_value(rng, 1)
            else:
                node = rng.choice(graph["nodes"])
                field = rng.choice(sorted(node))
                node[field] = _mutate_value(rng, node[field])
    return edit


def test_fuzz_graph_loader(tmp_path):
    rng = random.Random(0)
    originals = []
    for i, graph in enumerate(make_graphs(make_model())):
        originals.append(tmp_path / f"g{i}.mlfg")
        save_graph(graph, originals[-1])
    x = sample_input(1)
    outcomes = {"refused": 0, "ran": 0}
    for _ in range(120):
        bad = reseal(rng.choice(originals), tmp_path / "bad.mlfg", edit=_graph_edit(rng))
        try:
            graph = load_graph(bad)
            run_reference(graph, x)
            outcomes["ran"] += 1
        except UserError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 80, outcomes  # the mutations do reach the schema


def _ckpt_changes(rng: random.Random, base: dict) -> dict:
    ckpt = copy.deepcopy(base)
    for _ in range(rng.randint(1, 2)):
        section = rng.choice(["model_args", "dataset", "state_dict", "top"])
        if section == "top":
            ckpt[rng.choice(["model_args", "dataset", "state_dict", "epoch", "config"])] = \
                _mutate_value(rng, 0)
        elif section == "state_dict" and isinstance(ckpt["state_dict"], dict):
            key = rng.choice(sorted(ckpt["state_dict"]))
            ckpt["state_dict"][key] = rng.choice(TENSOR_MUTATIONS)(ckpt["state_dict"][key])
        elif isinstance(ckpt[section], dict):
            key = rng.choice(sorted(ckpt[section]))
            ckpt[section][key] = _mutate_value(rng, ckpt[section][key])
    return ckpt


def test_fuzz_checkpoint_loader(tmp_path):
    rng = random.Random(1)
    base = read_checkpoint(write_checkpoint(tmp_path / "base.pt"))
    raw = (tmp_path / "base.pt").read_bytes()
    refused = 0
    for i in range(60):
        path = tmp_path / "bad.pt"
        if i % 5 == 0:  # raw byte damage
            data = bytearray(raw)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            path.write_bytes(bytes(data))
        else:
            torch.save(_ckpt_changes(rng, base), path)
        try:
            ckpt = read_checkpoint(path)
            model = build_model(ckpt, path)
            shape = (ckpt["dataset"]["channels"], 8, 8)
            quantize(lower(model, shape, "static"), 8, input_max=2.0)
        except UserError:
            refused += 1
    assert refused > 35, refused


def test_fuzz_onnx_loader(tmp_path):
    rng = random.Random(2)
    _, graph = make_graphs(make_model())
    good = export_onnx(graph, "sequence")
    x = sample_input(1)
    refused = 0
    for _ in range(40):
        model = copy.deepcopy(good)
        kind = rng.randrange(5)
        if kind == 0:
            model.opset_import[0].version = rng.choice([1, 7, 20, 22, 99])
        elif kind == 1:
            node = rng.choice(model.graph.node)
            node.op_type, node.domain = rng.choice([("Loop", ""), ("Custom", "com.x"),
                                                    (node.op_type, "com.x"), ("Gemm", "")])
        elif kind == 2:
            prop = rng.choice(model.metadata_props)
            prop.value = rng.choice(["", "nan", "[1", "{}", "x" * 100, "int", "-1"])
        elif kind == 3:
            init = rng.choice([i for i in model.graph.initializer if i.dims])
            init.dims[0] = init.dims[0] + rng.choice([-1, 1, 10 ** 9])
        else:
            data = bytearray(model.SerializeToString())
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            (tmp_path / "bad.onnx").write_bytes(bytes(data))
        if kind != 4:
            (tmp_path / "bad.onnx").unlink(missing_ok=True)  # never replaced: not ours any more
            save_onnx(model, tmp_path / "bad.onnx")
        try:
            runner = OnnxRunner(graph, str(tmp_path / "bad.onnx"))
            runner.run(x)
        except UserError:
            refused += 1
        except onnx.checker.ValidationError as exc:  # pragma: no cover - must not happen
            pytest.fail(f"unwrapped ONNX validation error: {exc}")
    assert refused > 25, refused
    assert load_onnx(save_onnx(good, tmp_path / "good.onnx")) is not None
