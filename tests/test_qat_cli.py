"""`mlf-deploy finetune` (the alias of `train --init CKPT --weight-bits N`) end to end on a tiny
digits run, and the commands that take its checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from mlf_deploy.checkpoint import read_checkpoint
from mlf_deploy.commands.app import main
from mlf_deploy.training import TrainConfig, train

pytestmark = pytest.mark.slow  # trains, fine-tunes and verifies on the whole digits test split


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    train(TrainConfig(dataset="digits", depth=8, widths=(4, 8, 8), epochs=2, max_samples=96,
                      out_dir=str(out)), progress=False, log=lambda *_: None)
    return out / "checkpoint.pt"


def _last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def finetuned(base_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft")
    res = CliRunner().invoke(main, ["finetune", str(base_checkpoint), "--weight-bits", "3",
                                    "--out", str(out), "--epochs", "1", "--max-samples", "64",
                                    "--no-progress", "--json"])
    assert res.exit_code == 0, res.output
    return out / "checkpoint.pt", _last_json(res.output)


def test_finetune_writes_an_ordinary_checkpoint(base_checkpoint, finetuned):
    path, result = finetuned
    ckpt, base = read_checkpoint(path), read_checkpoint(base_checkpoint)
    assert ckpt["finetune"]["weight_bits"] == 3 and result["weight_bits"] == 3
    assert ckpt["metrics"]["test_accuracy"] == result["test_accuracy"]
    assert ckpt["model_args"] == base["model_args"]
    assert ckpt["input"] == base["input"] and ckpt["input"] is not None
    changed = [k for k, v in ckpt["state_dict"].items()
               if not torch.equal(v, base["state_dict"][k])]
    assert any(k.endswith("conv.weight") for k in changed)
    # BN statistics are frozen: the fold trained through is the fold deployed
    assert not any(k.endswith(("running_mean", "running_var")) for k in changed)


def test_verify_takes_the_finetuned_width_and_torch_int_equals_ir_int(finetuned):
    path, result = finetuned
    # --max-samples 64 trained on the first 64 training and tested on the first 64 test samples
    res = CliRunner().invoke(main, ["verify", str(path), "--backends", "torch-int,ir-int",
                                    "--samples", "64", "--json"])
    summary = _last_json(res.output)
    assert summary["weight_bits"] == 3
    row = summary["backends"]["torch-int"]
    assert row["reference"] == "ir-int" and row["within_tolerance"], row
    assert row["spike_mismatches"] == 0 and row["state_mismatches"] == 0 and row["spike_total"] > 0
    # the accuracy fine-tuning reported is the int graph's on the same samples
    assert summary["backends"]["ir-int"]["accuracy"] == pytest.approx(result["test_accuracy"])


def test_evaluate_plots_finetuned_points_and_cores_by_width(base_checkpoint, finetuned, tmp_path):
    path, _ = finetuned
    res = CliRunner().invoke(main, ["evaluate", str(base_checkpoint), "--weight-bits", "8,3",
                                    "--timesteps", "2,4", "--samples", "32", "--finetuned",
                                    str(path), "--plot", str(tmp_path / "eval"), "--json"])
    assert res.exit_code == 0, res.output
    out = _last_json(res.output)
    (tuned,) = out["finetuned"]
    assert tuned["weight_bits"] == 3 and [p["timesteps"] for p in tuned["points"]] == [2, 4]
    assert set(out["cores_by_weight_bits"]) == {"8", "3"}
    assert out["cores_by_weight_bits"]["3"] <= out["cores_by_weight_bits"]["8"]
    assert "fine-tuned for 3-bit weights" in res.output
    assert (tmp_path / "eval" / "accuracy_energy.png").stat().st_size > 0


@pytest.mark.parametrize("args, message", [
    (["--weight-bits", "1"], "--weight-bits"),
    (["--weight-bits", "4", "--epochs", "0"], "--epochs"),
])
def test_finetune_bad_options(base_checkpoint, tmp_path, args, message):
    res = CliRunner().invoke(main, ["finetune", str(base_checkpoint), "--out", str(tmp_path / "o"),
                                    *args])
    assert res.exit_code == 2 and message in res.output
    assert not (tmp_path / "o").exists()


def test_finetune_refuses_to_replace_a_checkpoint(base_checkpoint):
    res = CliRunner().invoke(main, ["finetune", str(base_checkpoint), "--weight-bits", "4",
                                    "--out", str(base_checkpoint.parent)])
    assert res.exit_code == 2 and res.output.startswith("error:")
    assert "input checkpoint" in res.output


def test_finetune_refuses_a_folder_another_command_is_writing(base_checkpoint, tmp_path):
    from mlf_deploy.outputs import output_lock

    out = tmp_path / "ft"
    with output_lock(out):  # as another command writing the folder would hold it
        res = CliRunner().invoke(main, ["finetune", str(base_checkpoint), "--weight-bits", "4",
                                        "--out", str(out), "--epochs", "1", "--max-samples", "8"])
    assert res.exit_code == 2 and res.output.startswith("error:") and "another" in res.output
    assert not (out / "checkpoint.pt").exists()
