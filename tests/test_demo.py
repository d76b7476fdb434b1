"""The first hour of a user: `mlf-deploy demo --quick` end to end (slow: trains a model)."""

import json

import pytest
from click.testing import CliRunner
from conftest import write_checkpoint

from mlf_deploy.commands.app import main
from mlf_deploy.errors import UserError


@pytest.mark.slow
def test_quick_demo_writes_everything_and_every_backend_agrees(tmp_path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(main,
                             ["demo", "--out", str(out), "--quick", "--no-progress", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.splitlines()[-1])
    assert summary["passed"] is True
    for rel in ["report.md", "summary.json", "verify.json", "energy.json", "energy.png",
                "evaluate.json", "evaluate/accuracy_energy.png", "evaluate/lowerings.png",
                "energy_lowerings.png", "train/checkpoint.pt", "drift.png",
                "exports/graph-int.mlfg", "exports/model-int-step.onnx",
                "exports/model-float-sequence.onnx", "exports/graph-int-graded.mlfg",
                "exports/model-int-graded-sequence.onnx"]:
        assert (out / rel).is_file(), rel
    verify = json.loads((out / "verify.json").read_text())
    assert verify["backends"]["onnx-int"]["spike_mismatches"] == 0
    for graded in ("ir-int-graded", "onnx-int-graded"):  # against the binary ir-int, per level
        b = verify["backends"][graded]
        assert b["reference"] == "ir-int"
        assert b["spike_mismatches"] == 0 and b["state_mismatches"] == 0
    assert verify["backends"]["ir-float"]["top1_agreement"] == 1.0
    assert summary["lava"] == "ran"  # lava-nc is installed wherever the tests run (make venv)
    for name in ("lava-fixed", "lava-fixed-graded"):
        lava = json.loads((out / "verify-lava.json").read_text())["backends"][name]
        assert lava["spike_mismatches"] == 0 and lava["state_mismatches"] == 0
    report = (out / "report.md").read_text()
    assert "every backend agreed" in report and "onnx-int" in report
    # summary.json keeps each verification run apart and matches verify*.json and the report
    saved = json.loads((out / "summary.json").read_text())
    assert saved["verify"]["samples"] == verify["samples"] == 64
    for name, b in verify["backends"].items():
        row = saved["verify"]["backends"][name]
        assert row["accuracy"] == b["accuracy"] and row["samples"] == 64
        assert row["spike_mismatches"] == b["spike_mismatches"] and row["tolerance"] in report
        assert f"| {name} | 64 | {b['reference'] or 'labels'} | {b['accuracy']:.4f} |" in report
    assert saved["verify_lava"]["samples"] == 8
    assert all(r["samples"] == 8 for r in saved["verify_lava"]["backends"].values())
    st = saved["verify"]["backends"]["ir-int"]["statistics"]
    assert st["deployment"]["passed"] and st["task"]["passed"]
    assert "correct deployment? yes" in report and "good enough? yes" in report
    assert "| stem_mlf |" in report and (out / "drift.png").is_file()
    assert "pre-silicon minimum" in report and "design-rule check" in report
    for table in ("binary (one LIF per level) against graded", "Loihi 1 per-event bill (SANA-FE"):
        assert report.count(table) == 1, table  # the energy section's, not again in evaluate's
    assert (out / "evaluate" / "layers.png").read_bytes() != (out / "energy.png").read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # no staging folder left behind


def test_a_broken_lava_step_fails_the_demo(tmp_path, monkeypatch):
    # Anything but a missing lava-nc in the Lava step must end the demo, not skip Lava.
    from mlf_deploy.workflows import demo
    from mlf_deploy.workflows.options import DemoOptions

    def broken(*args, **kwargs):
        raise UserError("lava export broke")
    monkeypatch.setattr(demo, "train", lambda config, **kw: {"checkpoint": write_checkpoint(
        tmp_path / "ckpt.pt"), "test_accuracy": 0.1, "epochs": 0})
    monkeypatch.setattr("mlf_deploy.exporters.lava.export.export_lava", broken)
    with pytest.raises(UserError, match="lava export broke"):
        demo.run_demo(tmp_path / "demo", DemoOptions(quick=True, progress=False),
                      log=lambda *a: None)
    assert not (tmp_path / "demo").exists()


def test_demo_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    res = CliRunner().invoke(main, ["demo", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "not empty" in res.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
