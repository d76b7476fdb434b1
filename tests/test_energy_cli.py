"""`mlf-deploy energy` and `mlf-deploy evaluate` on a tiny digits checkpoint: tables agree with the
JSON of the same run, plots are written, bad input is one line and a non-zero exit."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mlf_deploy.commands.app import main


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _rows(text, first_word_set):
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] in first_word_set:
            out[parts[0]] = parts[1:]
    return out


def test_energy_table_matches_json(ckpt, tmp_path):
    plot = tmp_path / "plots" / "energy.png"
    res = _invoke("energy", ckpt, "--samples", 12, "--json", "--plot", plot)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout.strip().splitlines()[-1])
    for key in ("synops_per_inference", "input_macs_per_inference", "ann_macs_per_inference",
                "energy_pj", "layers"):
        assert key in data
    assert set(data["energy_pj"]) >= {"45nm-fp32", "45nm-int8", "loihi1-proxy"}
    assert data["samples"] == 12 and data["input_kind"] == "mac"
    names = {layer["name"] for layer in data["layers"]}
    rows = _rows(res.stdout, names | {"total", "readout"})
    assert set(rows) == names | {"total", "readout"}
    for layer in data["layers"]:
        synops, ann, rate, dormant, pj = map(float, rows[layer["name"]])
        assert synops == pytest.approx(layer["synops"], abs=0.06)
        assert ann == pytest.approx(layer["ann_macs"], abs=0.06)
        assert rate == pytest.approx(layer["firing_rate"], abs=6e-5)
        assert dormant == pytest.approx(layer["dormant_fraction"], abs=6e-5)
        assert pj == pytest.approx(layer["energy_pj"]["45nm-fp32"], abs=0.06)
    total = rows["total"]
    assert float(total[0]) == pytest.approx(data["synops_per_inference"], abs=0.06)
    assert float(total[1]) == pytest.approx(data["ann_macs_per_inference"], abs=0.06)
    assert float(total[-1]) == pytest.approx(data["energy_pj"]["45nm-fp32"], abs=0.06)
    assert f"input MACs/inference: {data['input_macs_per_inference']:.1f}" in res.stdout
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_evaluate_table_matches_json(ckpt, tmp_path):
    res = _invoke("evaluate", ckpt, "--weight-bits", "8,4", "--timesteps", "1,4", "--samples", 10,
                  "--json", "--plot", tmp_path / "eval")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout.strip().splitlines()[-1])
    points = data["points"]
    assert [(p["weight_bits"], p["timesteps"]) for p in points] == [(8, 1), (8, 4), (4, 1), (4, 4)]
    lines = [ln.split() for ln in res.stdout.splitlines()]
    table = [ln for ln in lines if len(ln) == 9 and ln[0] in ("8", "4")]
    assert len(table) == 4
    for row, p in zip(table, points):
        assert (int(row[0]), int(row[1])) == (p["weight_bits"], p["timesteps"])
        assert float(row[2]) == pytest.approx(p["accuracy"], abs=6e-5)
        assert float(row[3]) == pytest.approx(p["synops_per_inference"], abs=0.06)
        assert float(row[4]) == pytest.approx(p["energy_pj"]["45nm-fp32"], abs=0.06)
        assert int(row[5]) == p["latency_steps"] \
            == p["timesteps"] * data["mapping"]["pipeline_depth"]
    mapping = data["mapping"]
    assert f"{mapping['cores']} cores on {mapping['chips_needed']} chip(s)" in res.stdout
    for layer in mapping["layers"]:
        row = _rows(res.stdout, {layer["name"]})[layer["name"]]
        assert int(row[1]) == layer["cores"] and int(row[0]) == layer["neurons"]
    for name in ("accuracy_energy.png", "layers.png"):
        assert (tmp_path / "eval" / name).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("cmd,args,word", [
    ("energy", ["--samples", "0"], "--samples"),
    ("energy", ["--weight-bits", "0"], "--weight-bits"),
    ("energy", ["--weight-bits", "33"], "--weight-bits"),
    ("energy", ["--model", "nope"], "energy model"),
    ("evaluate", ["--weight-bits", "8,33"], "--weight-bits"),
    ("evaluate", ["--samples", "0"], "--samples"),
    ("evaluate", ["--timesteps", "0,2"], "--timesteps"),
])
def test_bad_input_is_one_line(ckpt, cmd, args, word):
    res = _invoke(cmd, ckpt, *args)
    assert res.exit_code == 2
    assert word in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.output


@pytest.mark.parametrize("cmd,opt", [("energy", "p.png"), ("evaluate", "dir")])
def test_unwritable_plot_path_leaves_no_file(ckpt, tmp_path, cmd, opt):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    res = _invoke(cmd, ckpt, "--samples", 2, "--plot", blocker / opt)
    assert res.exit_code == 2 and res.stderr.startswith("error:")
    assert len(res.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_missing_checkpoint(tmp_path):
    res = _invoke("energy", tmp_path / "none.pt")
    assert res.exit_code == 2 and "does not exist" in res.stderr
