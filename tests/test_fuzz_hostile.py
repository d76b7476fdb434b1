"""Seeded generators of hostile files beyond byte damage: graph array tables, NIR trees, checkpoint
fields and AEDAT4 bytes. Each generated file is refused with one UserError or loads to something
that runs; any other exception (a traceback, a panic, a MemoryError) is a bug."""

import copy
import json
import random
import shutil

import numpy as np
import pytest
import torch
from conftest import make_graphs, make_model, sample_input, write_checkpoint
from tamper import read_members, run, write_container

from mlf_deploy.checkpoint import build_model, read_checkpoint
from mlf_deploy.errors import UserError
from mlf_deploy.ir import load_graph, save_graph
from mlf_deploy.ir.reference import run_reference

TABLE_VALUES = [[], {}, "x", None, ["w"], ["w", "<f8", 1], ["nope", "<f8"], ["w", "<U4"],
                ["w", "|O"], ["w", "<c16"], ["w", "<f8"], ["w", "<i8"], ["w", "|b1"], [1, 2]]


def test_fuzz_graph_array_tables(tmp_path):
    rng = random.Random(3)
    source = tmp_path / "g.mlfg"
    save_graph(make_graphs(make_model())[1], source)
    header, members = read_members(source)
    stored = sorted(n[7:-4] for n in members)
    x, outcomes = sample_input(1), {"refused": 0, "ran": 0}
    for _ in range(80):
        h = copy.deepcopy(header)
        table = h["arrays"]
        for _ in range(rng.randint(1, 3)):
            choice = rng.random()
            key = rng.choice(sorted(table)) if isinstance(table, dict) and table else None
            if choice < 0.15:
                h["arrays"] = table = copy.deepcopy(rng.choice(TABLE_VALUES))
            elif key is not None and choice < 0.7:
                value = copy.deepcopy(rng.choice(TABLE_VALUES))
                if value and isinstance(value, list) and value[0] == "w":
                    value[0] = rng.choice(stored)
                table[key] = value
            elif key is not None:
                table[f"extra{rng.randrange(99)}"] = [rng.choice(stored), "<f8"]
        flag = 1 if rng.random() < 0.05 else 0
        bad = write_container(h, members, tmp_path / "bad.mlfg", flag)
        try:
            run_reference(load_graph(bad), x)
            outcomes["ran"] += 1
        except UserError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 60, outcomes


def _nir_edit(rng: random.Random, f, h5py):
    datasets = []
    f.visititems(lambda n, o: datasets.append(n) if isinstance(o, h5py.Dataset) else None)
    name = rng.choice(datasets)
    kind = rng.randrange(8)
    del f[name]
    if kind == 0:
        return  # a missing field
    if kind == 1:
        f[name] = "x" * rng.randint(1, 20)
    elif kind == 2:
        f[name] = np.full(rng.randint(1, 4), rng.choice([np.nan, np.inf, 0.0, -1.0, 1e308]))
    elif kind == 3:
        f.create_dataset(name, (2 ** rng.randint(30, 40),), "<f8", chunks=(1024,),
                         compression="gzip")
    elif kind == 4:
        f[name] = h5py.SoftLink("/" + rng.choice(datasets))
    elif kind == 5:
        g = f.require_group(name)
        for _ in range(rng.randint(30, 200)):
            g = g.create_group("g")
    elif kind == 6:
        f[name] = json.dumps(rng.choice([[], {"mlf": 1}, "abc", {"graph_metadata": []}]))
    else:
        f[name] = np.array(rng.choice([[1, 2], [[1]], [-5], [0]]))


def test_fuzz_nir_trees(ckpt, tmp_path):
    h5py = pytest.importorskip("h5py")
    pytest.importorskip("nir")
    from mlf_deploy.exporters.nir.importer import read_nir
    source = tmp_path / "m.nir"
    assert run("export", ckpt, "--to", "nir", "-o", source).exit_code == 0
    rng, refused = random.Random(4), 0
    for i in range(40):
        bad = tmp_path / f"bad{i}.nir"
        shutil.copyfile(source, bad)
        with h5py.File(bad, "r+") as f:
            for _ in range(rng.randint(1, 3)):
                _nir_edit(rng, f, h5py)
        try:
            graph = read_nir(bad)
            save_graph(graph, tmp_path / f"out{i}.mlfg")  # refuses what load_graph would refuse
            load_graph(tmp_path / f"out{i}.mlfg")
        except UserError:
            refused += 1
    assert refused > 25, refused


CKPT_FIELDS = {
    "config": lambda r: {"batch_size": r.choice(["abc", -4, 0, 2 ** 40, 1.5, None, 32])},
    "finetune": lambda r: r.choice(["abc", {}, {"weight_bits": 99}, {"weight_bits": "4"}, None]),
    "model_args": lambda r: {"widths": [r.choice([1, 64, 2048, 4096])] * 3,
                             "depth": r.choice([8, 20, 38, 998])},
    "epoch": lambda r: r.choice([-1, "1", 1.5, 10 ** 9]),
    "input": lambda r: r.choice([{}, {"shape": [1, 8, 8], "timesteps": None, "min": [0.0],
                                      "max": [float("nan")]}, None]),
}


def test_fuzz_checkpoint_fields(tmp_path):
    rng = random.Random(5)
    base = read_checkpoint(write_checkpoint(tmp_path / "base.pt"))
    refused = 0
    for _ in range(40):
        ckpt = copy.deepcopy(base)
        for field in rng.sample(sorted(CKPT_FIELDS), rng.randint(1, 2)):
            value = CKPT_FIELDS[field](rng)
            ckpt[field] = {**ckpt["model_args"], **value} if field == "model_args" else value
        if rng.random() < 0.3:
            key = rng.choice([k for k in ckpt["state_dict"] if k.endswith("running_var")])
            ckpt["state_dict"][key] = -ckpt["state_dict"][key] - 1
        torch.save(ckpt, tmp_path / "bad.pt")
        try:
            build_model(read_checkpoint(tmp_path / "bad.pt"), "bad.pt")
        except UserError:
            refused += 1
    assert refused > 25, refused


def test_fuzz_aedat4_bytes(tmp_path):
    pytest.importorskip("aedat")
    from mlf_deploy.data.layouts import write_aedat4
    from mlf_deploy.data.tonic_sets import read_events
    rng = random.Random(6)
    n = 200
    gen = np.random.default_rng(6)
    ev = {"x": gen.integers(0, 128, n), "y": gen.integers(0, 128, n),
          "t": np.sort(gen.integers(0, 100_000, n)), "p": gen.integers(0, 2, n)}
    good = tmp_path / "good.aedat4"
    write_aedat4(good, ev)
    assert len(read_events("cifar10-dvs", good)) == n
    raw, refused = good.read_bytes(), 0
    for _ in range(150):
        data = bytearray(raw)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.2:
            data = data[:rng.randrange(len(data))]
        bad = tmp_path / "bad.aedat4"
        bad.write_bytes(bytes(data))
        try:
            read_events("cifar10-dvs", bad)
        except UserError:
            refused += 1
    assert refused > 30, refused
