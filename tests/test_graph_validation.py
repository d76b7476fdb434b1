"""Resealed graph files (valid hashes, hostile content): each is one `error:` line naming the node
and field, exit 2, before anything is allocated; and verify --graph names every difference from the
checkpoint's own lowering."""

import json

import numpy as np
import pytest
from conftest import write_checkpoint
from tamper import node, one_error, read_members, reseal, run

from mlf_deploy.errors import UserError
from mlf_deploy.ir import load_graph


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("graphs")
    ckpt = write_checkpoint(d / "checkpoint.pt")
    for numeric in ("int", "float"):
        extra = ["--float"] if numeric == "float" else []
        assert run("export", ckpt, "--to", "ir", "-o", d / f"{numeric}.mlfg", *extra).exit_code == 0
    return d, ckpt


def setter(type_name, field, value, index=0):
    def edit(graph, arrays):
        node(graph, type_name, index)[field] = value
    return edit


def array_edit(key_part, fn):
    def edit(graph, arrays):
        key = next(k for k in arrays if key_part in k)
        arrays[key] = fn(arrays[key])
    return edit


def huge_shape(members):  # a header declaring 10^12 elements over a few bytes of data
    name = next(n for n in members if n.endswith("bias.npy"))
    header = "{'descr': '<i4', 'fortran_order': False, 'shape': (1000000000000,), }"
    header = header.ljust(117) + "\n"
    members[name] = (b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
                     + b"\0" * 12)


CASES = {  # name: (numeric, reseal keyword arguments, fragment of the error)
    "array shape 10^12": ("int", dict(members_edit=huge_shape), "needs 4000000000000 bytes"),
    "zip bomb member": ("int", dict(bomb=3 * 2 ** 20), "over the limit"),
    "deep JSON": ("int", dict(raw_json=b"[" * 100000 + b"]" * 100000), "nests deeper"),
    "conv weight channels": ("int", dict(edit=array_edit("blocks.0.mlf1.conv1<-stem_mlf/L0",
                                                         lambda a: a[:, :2])), "field 'weight'"),
    "readout weight": ("float", dict(edit=array_edit("readout.weight", lambda a: a[:, :3])),
                       "field 'weight'"),
    "stride 0": ("int", dict(edit=setter("Projection", "stride", [0, 1])), "field 'stride'"),
    "negative padding": ("int", dict(edit=setter("Projection", "padding", [-1, 1])), "'padding'"),
    "timesteps 10^9": ("int", dict(edit=setter("Input", "timesteps", 10 ** 9)), "'timesteps'"),
    "negative timesteps": ("float", dict(edit=setter("Input", "timesteps", -4)), "'timesteps'"),
    "value_bits huge": ("int", dict(edit=setter("Input", "value_bits", 10 ** 6)), "'value_bits'"),
    "weight_exp huge": ("int", dict(edit=setter("Layer", "weight_exp", 10 ** 6)), "'weight_exp'"),
    "threshold string": ("int", dict(edit=setter("Population", "v_threshold", "752")),
                         "'v_threshold'"),
    "threshold null": ("float", dict(edit=setter("Population", "v_threshold", None)),
                       "'v_threshold'"),
    "threshold list": ("int", dict(edit=setter("Population", "v_threshold", [1, 2])),
                       "'v_threshold'"),
    "threshold over 17 bits": ("int", dict(edit=setter("Population", "v_threshold", 2 ** 20)),
                               "'v_threshold'"),
    "weights as strings": ("int", dict(edit=array_edit("stem_mlf.conv", lambda a: a.astype(str))),
                           "not a plain number type"),
    "weight beyond its bits": ("int", dict(edit=array_edit("stem_mlf.conv", lambda a: a * 1000)),
                               "8 bits"),
    "NaN bias": ("float", dict(edit=array_edit("stem_mlf.bias", lambda a: a * np.nan)), "finite"),
    "unknown node type": ("int", dict(edit=setter("Layer", "type", "Exec")), "expected an object"),
    "population of another layer": ("int", dict(edit=setter("Population", "layer", "readout")),
                                    "'populations'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_resealed_graph_is_one_error(files, tmp_path, case, monkeypatch):
    d, ckpt = files
    monkeypatch.setattr("mlf_deploy.limits.MAX_MEMBER_BYTES", 2 ** 20)  # a bomb of test size
    numeric, kwargs, fragment = CASES[case]
    bad = reseal(d / f"{numeric}.mlfg", tmp_path / "bad.mlfg", **kwargs)
    with pytest.raises(UserError, match="bad.mlfg") as err:
        load_graph(bad)
    assert fragment in str(err.value), str(err.value)


def test_resealed_graph_on_the_command_line(files, tmp_path):
    d, ckpt = files
    bad = reseal(d / "int.mlfg", tmp_path / "bad.mlfg", edit=setter("Projection", "stride", [0, 1]))
    one_error(run("verify", ckpt, "--graph", bad, "--samples", "2"), "field 'stride'")


def test_unchanged_resealed_graph_still_loads(files, tmp_path):
    d, _ = files
    good = reseal(d / "int.mlfg", tmp_path / "same.mlfg")
    assert load_graph(good).summary() == load_graph(d / "int.mlfg").summary()


def test_verify_graph_names_a_threshold_raised_by_one(files, tmp_path):
    d, ckpt = files

    def raise_one(graph, arrays):
        node(graph, "Population", 4)["v_threshold"] += 1
    bad = reseal(d / "int.mlfg", tmp_path / "plus1.mlfg", edit=raise_one)
    res = run("verify", ckpt, "--graph", bad, "--samples", "4", "--json")
    assert res.exit_code == 1, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    diffs = summary["graph_file"]["differences"]
    name = node(read_members(d / "int.mlfg")[0]["graph"], "Population", 4)["name"]
    assert len(diffs) == 1 and diffs[0].startswith(f"{name}.v_threshold: "), diffs
    assert "DIFFERS" in res.stdout
    same = run("verify", ckpt, "--graph", d / "int.mlfg", "--samples", "4", "--json")
    assert same.exit_code == 0, same.output
    assert json.loads(same.stdout.strip().splitlines()[-1])["graph_file"]["identical"] is True


def test_verify_takes_a_graded_graph_file_and_names_its_difference(files, tmp_path):
    d, ckpt = files
    graded = tmp_path / "graded.mlfg"
    assert run("export", ckpt, "--to", "ir", "--spikes", "graded", "-o", graded).exit_code == 0
    same = run("verify", ckpt, "--graph", graded, "--spikes", "graded", "--backends", "ir-int",
               "--samples", "4", "--json")
    assert same.exit_code == 0, same.output
    summary = json.loads(same.stdout.strip().splitlines()[-1])
    assert summary["graph_file"]["identical"] and summary["graph_file"]["spikes"] == "graded"
    assert summary["backends"]["ir-int-graded"]["spike_mismatches"] == 0

    def raise_one(graph, arrays):
        node(graph, "GradedPopulation", 2)["v_thresholds"][1] += 1
    bad = reseal(graded, tmp_path / "graded-plus1.mlfg", edit=raise_one)
    res = run("verify", ckpt, "--graph", bad, "--spikes", "graded", "--backends", "ir-int",
              "--samples", "4", "--json")
    assert res.exit_code == 1, res.output
    diffs = json.loads(res.stdout.strip().splitlines()[-1])["graph_file"]["differences"]
    assert len(diffs) == 1 and ".v_thresholds" in diffs[0], diffs

    one_error(run("verify", ckpt, "--graph", graded, "--samples", "4"), "--spikes graded")
