"""`--spikes graded` end to end on a tiny digits checkpoint (export, energy, evaluate), and the
side-by-side resource accounting against counts recomputed here by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_graphs, make_model, sample_input

from mlf_deploy.commands.app import main
from mlf_deploy.graded_lowering import to_graded
from mlf_deploy.hardware.resources import compare_forms, form_resources
from mlf_deploy.ir import load_graph
from mlf_deploy.ir.reference import run_reference


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_export_graded_ir_and_onnx(ckpt, tmp_path):
    res = _invoke("export", ckpt, "--to", "ir", "--spikes", "graded", "-o", tmp_path / "g.mlfg",
                  "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["spikes"] == "graded" and info["populations"] == info["layers"]
    graph = load_graph(tmp_path / "g.mlfg")
    assert graph.graded and graph.numeric == "int"
    res = _invoke("export", ckpt, "--to", "onnx", "--spikes", "graded", "--mode", "step",
                  "-o", tmp_path / "g.onnx")
    assert res.exit_code == 0 and "int graded graph" in res.stdout


def test_bad_spikes_value_is_one_line(ckpt, tmp_path):
    res = CliRunner().invoke(main,
                             ["export", str(ckpt), "--spikes", "ternary", "-o",
                              str(tmp_path / "x")])
    assert res.exit_code == 2 and "ternary" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x").exists()


def test_energy_graded_reports_both_forms(ckpt):
    res = _invoke("energy", ckpt, "--samples", 6, "--spikes", "graded", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout.strip().splitlines()[-1])
    assert data["backend"] == "ir-int-graded" and data["spikes"] == "graded"
    forms = data["forms"]
    assert forms["binary"]["neurons"] == 3 * forms["graded"]["neurons"]
    assert "costs <" in res.stdout
    assert f"{forms['binary']['spike_messages']:,.0f}" in res.stdout
    assert f"{forms['graded']['synaptic_ops']:,.0f}" in res.stdout
    binary = _invoke("energy", ckpt, "--samples", 6, "--json")
    same = json.loads(binary.stdout.strip().splitlines()[-1])
    assert same["synops_per_inference"] == data["synops_per_inference"]  # same level spikes
    assert same["forms"] == forms


def test_evaluate_maps_the_chosen_form(ckpt):
    res = _invoke("evaluate", ckpt, "--weight-bits", "8", "--timesteps", "4", "--samples", 4,
                  "--spikes", "graded", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout.strip().splitlines()[-1])
    assert data["spikes"] == "graded" and "mapping of the graded lowering" in res.stdout
    assert sum(layer["neurons"]
               for layer in data["mapping"]["layers"]) == data["forms"]["graded"]["neurons"]


def test_resources_match_counts_by_hand():
    _, q = make_graphs(make_model())
    graded = to_graded(q)
    run = run_reference(graded, sample_input(3))
    b, g = form_resources(q, run), form_resources(graded, run)
    classes = q.readout.weight.shape[0]
    spikes = sum(int(s.sum()) for s in run.spikes.values())
    assert b.spike_messages * 3 == spikes
    by_layer = {}
    for name, s in run.spikes.items():
        layer = name.rsplit("/L", 1)[0]
        by_layer[layer] = by_layer.get(layer, 0) + s.astype(np.int64)
    assert g.spike_messages * 3 == sum(int((c > 0).sum()) for c in by_layer.values())
    assert g.spike_messages < b.spike_messages and g.synaptic_ops < b.synaptic_ops
    assert g.weights_stored * 2 < b.weights_stored
    readout_b = sum(int(run.spikes[s].sum()) for s in q.readout.sources) * classes
    assert b.synaptic_ops * 3 > readout_b
    assert b.registers == 2 * b.neurons and g.registers == 4 * g.neurons
    cmp = compare_forms(q, graded, run)
    assert cmp["break_even_graded_op_ratio"] == pytest.approx(b.synaptic_ops / g.synaptic_ops)
    assert cmp["graded"]["violations"] == []


def test_verify_graded_backends_against_binary(ckpt):
    res = _invoke("verify", ckpt, "--backends", "ir-float,ir-int,onnx-int", "--spikes", "graded",
                  "--samples", 4, "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout.strip().splitlines()[-1])
    assert data["passed"]
    backends = data["backends"]
    assert {"ir-float-graded", "ir-int-graded", "onnx-int-graded"} <= set(backends)
    for name, ref in (("ir-int-graded", "ir-int"), ("onnx-int-graded", "ir-int"),
                      ("ir-float-graded", "ir-float")):
        b = backends[name]
        assert b["reference"] == ref and b["spike_mismatches"] == 0 and b["state_mismatches"] == 0
        assert b["spike_total"] == backends[ref]["spike_total"] > 0
        assert {p["population"] for p in b["populations"]} == \
            {p["population"] for p in backends[ref]["populations"]}
