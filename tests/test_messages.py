"""Errors name the real problem: the kind of file given as a checkpoint, never torch's advice to
load with weights_only=False, and a wrong input shape blamed on the input, not on the model."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mlf_deploy.commands.app import flag_spelling, main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error(res, fragment):
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert fragment in lines[0], lines[0]
    assert "weights_only" not in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def exports(ckpt, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exports")
    assert run("export", ckpt, "--to", "ir", "-o", folder / "g.mlfg").exit_code == 0
    assert run("export", ckpt, "--to", "onnx", "-o", folder / "m.onnx").exit_code == 0
    (folder / "cfg.json").write_text(json.dumps({"lr": 0.1}))
    (folder / "notes.txt").write_text("hello\n")
    np.save(folder / "x.npy", np.zeros((2, 1, 8, 8)))
    return folder


@pytest.mark.parametrize("name,fragment", [
    ("g.mlfg", "it is a deployment graph file (`export --to ir`"),
    ("m.onnx", "it is an ONNX model (run it with `mlf-deploy run"),
    ("cfg.json", "it is a JSON file"),
    ("notes.txt", "it is a text file"),
    ("x.npy", "it is a numpy array"),
])
@pytest.mark.parametrize("command", ["verify", "energy"])
def test_foreign_files_as_checkpoints_are_named(exports, name, fragment, command):
    one_error(run(command, exports / name), fragment)


def test_a_folder_as_checkpoint_names_the_file_inside(ckpt):
    from mlf_deploy.checkpoint import read_checkpoint
    from mlf_deploy.errors import UserError
    with pytest.raises(UserError, match=f"give the checkpoint file {ckpt}"):
        read_checkpoint(ckpt.parent)


def test_a_pickled_object_is_refused_without_torchs_paragraph(tmp_path):
    path = tmp_path / "objects.pt"
    torch.save({"format": "mlf-deploy-checkpoint", "when": __import__("datetime").date.today()},
               path)
    one_error(run("verify", path), "holds Python objects other than tensors")


def test_wrong_input_shape_is_blamed_on_the_input(exports, tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((4, 64)))
    line = one_error(run("run", exports / "m.onnx", "--input", tmp_path / "flat.npy"),
                     "has shape (4, 64); this model takes (B, 1, 8, 8)")
    assert "not a readable ONNX model" not in line
    assert line.startswith(f"error: --input {tmp_path / 'flat.npy'} has shape")  # the flag


def test_a_moved_data_folder_names_data_dir(tmp_path):
    from mlf_deploy.data import dataset_spec, open_split
    from mlf_deploy.data.layouts import make_cifar10_batches
    from mlf_deploy.errors import UserError

    make_cifar10_batches(tmp_path / "old")
    spec = dataset_spec("cifar10", 0, data_dir=str(tmp_path / "old"))
    assert len(open_split(spec, "test")) > 0
    (tmp_path / "old").rename(tmp_path / "new")
    with pytest.raises(UserError, match="if the data moved, pass data_dir=DIR") as info:
        open_split(spec, "test")
    # the library names its option; the command line names the flag
    assert "if the data moved, pass --data-dir DIR" in info.value.render(flag_spelling())
    assert len(open_split(spec, "test", str(tmp_path / "new"))) > 0


def test_float_with_weight_bits_is_refused(ckpt, tmp_path):
    one_error(run("export", ckpt, "--float", "--weight-bits", "4", "-o", tmp_path / "f.mlfg"),
              "drop one of them")
    assert not (tmp_path / "f.mlfg").exists()


def test_evaluate_sweeps_a_finetuned_checkpoint_at_its_own_width_first(tmp_path):
    from conftest import write_checkpoint
    path = write_checkpoint(tmp_path / "c4.pt", finetune={"weight_bits": 4})
    res = run("evaluate", path, "--samples", "4", "--timesteps", "4", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.splitlines()[-1])
    assert [p["weight_bits"] for p in out["points"]] == [4, 8, 6]
    assert {str(b) for b in out["cores_by_weight_bits"]} == {"4", "8", "6"}


def test_verify_at_chunk_one_does_not_print_lines_per_sample(ckpt):
    res = run("verify", ckpt, "--samples", "12", "--chunk", "1", "--backends", "torch,ir-int")
    assert res.exit_code in (0, 1), res.output
    running = [line for line in res.stderr.splitlines() if line.startswith("running")]
    assert 2 <= len(running) < 12, running  # the first chunk's backends, then at most one per 10 s


def test_mapping_states_one_chip_count_and_one_verdict():
    from conftest import make_graphs, make_model

    from mlf_deploy.hardware import Target, map_graph
    _, g_int = make_graphs(make_model())
    roomy = map_graph(g_int, Target())
    assert not roomy.violations and roomy.table().splitlines()[-1].endswith("fits the target")
    tight = map_graph(g_int, Target(cores_per_chip=4))
    lines = tight.table().splitlines()
    summary = next(line for line in lines if " cores on " in line)
    assert f"{tight.cores} cores on {tight.chips_needed} chip(s)" in summary
    assert "does NOT fit the target (1 chip(s))" in summary
    drc = next(line for line in lines if "cores_fit_chips" in line)
    assert f"{tight.cores} cores need {tight.chips_needed} chip(s); the target has 1 chip(s)" in drc


def test_energy_table_says_why_the_input_layer_has_no_synops(ckpt):
    res = run("energy", ckpt, "--samples", "4")
    assert res.exit_code == 0, res.output
    stem = next(line for line in res.stdout.splitlines() if line.startswith("stem_mlf "))
    assert float(stem.split()[1]) == 0.0 and float(stem.split()[-1]) > 0
    assert "stem_mlf: fed by the input, so SynOps (from spikes) can be 0" in res.stdout
    assert "synaptic energies only" in res.stdout


@pytest.mark.parametrize("target,suffix", [("onnx", "model.onnx"), ("ir", "model.mlfg")])
def test_export_to_a_folder_name_asks_for_a_file_name(ckpt, tmp_path, target, suffix):
    one_error(run("export", ckpt, "--to", target, "-o", f"{tmp_path / 'newdir'}/"),
              f"names a folder; --to {target} writes one file: give its name, e.g. -o "
              f"{tmp_path / 'newdir' / suffix}")
    assert not (tmp_path / "newdir").exists()
