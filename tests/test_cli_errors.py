"""Every command fed bad input: one clear 'error:' line, a non-zero exit, no partial file."""

import json
import os

import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_ARGS, write_checkpoint

from mlf_deploy.commands.app import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error(res, fragment):
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code != 0, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in res.output


def test_version_and_help_with_examples():
    res = run("--version")
    assert res.exit_code == 0 and "mlf-deploy, version" in res.output
    for cmd in ("train", "export", "verify", "run", "energy", "evaluate", "demo"):
        res = run(cmd, "--help")
        assert res.exit_code == 0 and "Example" in res.output, cmd


@pytest.mark.parametrize("cmd", [["verify"], ["export", "-o", "{tmp}/o.mlfg"]])
def test_bad_checkpoints(tmp_path, ckpt, cmd):
    cmd = [c.format(tmp=tmp_path) for c in cmd]
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(ckpt.read_bytes()[:1000])
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    mismatched = write_checkpoint(tmp_path / "mismatch.pt",
                                  model_args={**TINY_ARGS, "widths": (8, 8, 8)})
    (tmp_path / "text.pt").write_text("not a checkpoint")
    for path, fragment in [(truncated, "not a readable"), (foreign, "not an mlf-deploy checkpoint"),
                           (mismatched, "do not match the stored weights"),
                           (tmp_path / "text.pt", "not a readable"), (tmp_path / "none.pt",
                                                                      "does not exist")]:
        one_error(run(cmd[0], path, *cmd[1:]), fragment)
    assert not (tmp_path / "o.mlfg").exists()


def test_checkpoint_loading_never_runs_code(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path}/pwned",))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"format": "mlf-deploy-checkpoint", "x": Evil()}, f)
    one_error(run("verify", tmp_path / "evil.pt"), "not a readable")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("args,fragment", [
    (["--weight-bits", "0"], "--weight-bits"), (["--weight-bits", "33"], "--weight-bits"),
    (["--samples", "0"], "--samples"), (["--backends", "torch,gpu"], "unknown backend"),
])
def test_bad_verify_options(ckpt, args, fragment):
    one_error(run("verify", ckpt, *args), fragment)


def test_export_refuses_existing_or_unwritable_output(tmp_path, ckpt):
    existing = tmp_path / "exists.mlfg"
    existing.write_text("keep me")
    one_error(run("export", ckpt, "-o", existing), "already exists")
    assert existing.read_text() == "keep me"
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions; use a path under a file instead
            target = existing / "sub" / "g.mlfg"
        else:
            target = locked / "g.mlfg"
        one_error(run("export", ckpt, "-o", target), "cannot")
    finally:
        locked.chmod(0o700)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.mlfg", "locked"]
    assert list(locked.iterdir()) == []


def test_tampered_truncated_and_foreign_graph_files(tmp_path, ckpt):
    good = tmp_path / "g.mlfg"
    assert run("export", ckpt, "-o", good).exit_code == 0
    raw = good.read_bytes()
    (tmp_path / "trunc.mlfg").write_bytes(raw[: len(raw) // 2])
    tampered = bytearray(raw)
    tampered[len(raw) // 2] ^= 0xFF
    (tmp_path / "tampered.mlfg").write_bytes(bytes(tampered))
    other = write_checkpoint(tmp_path / "other.pt", seed=5)
    assert run("export", other, "-o", tmp_path / "other.mlfg").exit_code == 0
    for name, fragment in [("trunc.mlfg", "checksum"), ("tampered.mlfg", "checksum"),
                           ("other.mlfg", "another model")]:
        one_error(run("verify", ckpt, "--graph", tmp_path / name, "--samples", "2"), fragment)
    res = run("verify", ckpt, "--graph", good, "--samples", "2", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout.splitlines()[-1])["passed"]


def test_onnx_file_from_another_model(tmp_path, ckpt):
    other = write_checkpoint(tmp_path / "other.pt", seed=5)
    assert run("export", other, "--to", "onnx", "-o", tmp_path / "other.onnx").exit_code == 0
    one_error(run("verify", ckpt, "--onnx", tmp_path / "other.onnx", "--samples", "2"),
              "another graph")
    (tmp_path / "junk.onnx").write_bytes(b"\x00\x01junk")
    one_error(run("verify", ckpt, "--onnx", tmp_path / "junk.onnx", "--samples", "2"), "junk.onnx")


def test_verify_json_schema_and_exit_status(ckpt):
    res = run("verify", ckpt, "--samples", "4", "--json")
    assert res.exit_code == 0
    out = json.loads(res.stdout.splitlines()[-1])
    assert out["samples"] == 4 and out["passed"] is True
    for name in ("torch", "ir-float", "ir-int"):
        b = out["backends"][name]
        assert {"reference", "accuracy", "top1_agreement", "spike_mismatches", "spike_total",
                "state_mismatches", "logits_max_abs_diff", "within_tolerance"} <= set(b)
    assert out["backends"]["ir-float"]["reference"] == "torch"
    assert out["backends"]["ir-int"]["reference"] == "ir-float"
    assert out["backends"]["ir-float"]["state_mismatches"] == 0
