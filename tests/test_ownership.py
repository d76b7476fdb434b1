"""Ownership by content hash: a command replaces only files it wrote, at any depth, plots included,
and ``--force`` never touches a file whose bytes no ledger of ours records."""

import h5py
import pytest
from tamper import one_error, run

from mlf_deploy.errors import UserError
from mlf_deploy.outputs import check_output_dir, staged_output
from mlf_deploy.ownership import LEDGER, foreign_files, owned


def _staged_folder(out, kind="demo"):
    with staged_output(out, kind) as stage:
        (stage / "exports").mkdir()
        (stage / "exports" / "graph.mlfg").write_bytes(b"graph")
        (stage / "report.md").write_text("report")
    return out


def test_force_refuses_a_user_file_in_a_nested_folder(tmp_path):
    out = _staged_folder(tmp_path / "d")
    assert check_output_dir(out, force=True) == out  # all ours: replaceable
    (out / "exports" / "my_notes.md").write_text("mine")
    with pytest.raises(UserError, match="my_notes.md"):
        check_output_dir(out, force=True)
    (out / "exports" / "my_notes.md").unlink()
    (out / "exports" / "graph.mlfg").write_bytes(b"edited by hand")  # same name, other bytes
    with pytest.raises(UserError, match="changed since"):
        check_output_dir(out, force=True)
    assert foreign_files(out) == ["exports/graph.mlfg"]


def test_a_ledger_lists_nested_files_by_hash(tmp_path):
    out = _staged_folder(tmp_path / "d")
    assert (out / LEDGER).is_file()
    assert owned(out / "exports" / "graph.mlfg") and owned(out / "report.md")
    (out / "report.md").write_text("report, edited")
    assert not owned(out / "report.md")


def test_plot_never_replaces_an_input_or_a_foreign_file(tmp_path, ckpt):
    target = tmp_path / "c.pt"
    target.write_bytes(ckpt.read_bytes())
    for force in ([], ["--force"]):
        one_error(run("energy", target, "--samples", "4", "--plot", target, *force),
                  "did not write it")
    assert target.read_bytes() == ckpt.read_bytes()
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "layers.png").write_bytes(b"my own figure")
    for force in ([], ["--force"]):
        one_error(run("evaluate", ckpt, "--weight-bits", "8", "--timesteps", "1", "--samples", "4",
                      "--plot", plots, *force), "did not write it")
    assert (plots / "layers.png").read_bytes() == b"my own figure"


def test_plot_replaces_its_own_plot_only_with_force(tmp_path, ckpt):
    png = tmp_path / "e.png"
    assert run("energy", ckpt, "--samples", "4", "--plot", png).exit_code == 0
    one_error(run("energy", ckpt, "--samples", "4", "--plot", png), "--force")
    res = run("energy", ckpt, "--samples", "4", "--plot", png, "--force")
    assert res.exit_code == 0, res.output


def test_export_force_ignores_marker_text(tmp_path, ckpt):
    notes = tmp_path / "notes.md"
    notes.write_text("see mlf-deploy-onnx/ and MLFG for the formats\n")
    one_error(run("export", ckpt, "--to", "onnx", "-o", notes, "--force"), "did not write it")
    one_error(run("export", ckpt, "--to", "ir", "-o", notes, "--force"), "did not write it")
    h5 = tmp_path / "other.nir"
    with h5py.File(h5, "w") as f:
        f.attrs["note"] = '"mlf"'
    before = h5.read_bytes()
    one_error(run("export", ckpt, "--to", "nir", "-o", h5, "--force"), "did not write it")
    assert notes.read_text().startswith("see mlf-deploy-onnx/") and h5.read_bytes() == before
    onnx = tmp_path / "m.onnx"
    assert run("export", ckpt, "--to", "onnx", "-o", onnx).exit_code == 0
    one_error(run("export", ckpt, "--to", "onnx", "-o", onnx), "--force")
    assert run("export", ckpt, "--to", "onnx", "-o", onnx, "--force").exit_code == 0


def test_train_force_keeps_a_foreign_run(tmp_path, ckpt):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(ckpt.read_bytes())  # copied in, not written here
    (out / "metrics.jsonl").write_text('{"theirs": 1}\n')
    one_error(run("train", "--out", out, "--epochs", "1", "--force", "--no-progress"),
              "did not write it")
    assert (out / "checkpoint.pt").read_bytes() == ckpt.read_bytes()
    assert (out / "metrics.jsonl").read_text() == '{"theirs": 1}\n'


def test_finetune_never_replaces_a_foreign_metrics_file(tmp_path, ckpt):
    out = tmp_path / "ft"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"theirs": 1}\n')
    for force in ([], ["--force"]):
        res = run("finetune", ckpt, "--weight-bits", "4", "--epochs", "1", "--out", out,
                  "--no-progress", *force)
        one_error(res, "metrics.jsonl")
    assert (out / "metrics.jsonl").read_text() == '{"theirs": 1}\n'
    assert not (out / "checkpoint.pt").exists()
