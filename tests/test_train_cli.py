"""`mlf-deploy train`: options, --json, and one 'error:' line per bad input with nothing left
behind."""

import json

import pytest
from click.testing import CliRunner

from mlf_deploy.checkpoint import load_model
from mlf_deploy.commands.app import main

TINY = ["--depth", "8", "--widths", "4,8,8", "--max-samples", "64", "--batch-size", "32",
        "--no-progress"]


def _run(*args):
    return CliRunner().invoke(main, ["train", *args])


def test_train_json_result_is_last_stdout_line(tmp_path):
    out = tmp_path / "run"
    res = _run("--epochs", "2", "--seed", "1", "--lr", "0.05", "--lr-step", "1", "--out", str(out),
               "--json", *TINY)
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert {"test_accuracy", "checkpoint", "epochs", "seconds"} <= set(result)
    assert result["epochs"] == 2 and result["checkpoint"] == str(out / "checkpoint.pt")
    model, ckpt = load_model(result["checkpoint"])
    assert ckpt["config"]["lr"] == 0.05 and ckpt["config"]["lr_step"] == 1
    assert ckpt["history"][1]["lr"] == pytest.approx(0.005)  # StepLR x0.1 after epoch 1
    assert ckpt["model_args"]["widths"] == (4, 8, 8)


def test_variant_levels_timesteps_reach_the_model(tmp_path):
    res = _run("--epochs", "1", "--variant", "plain", "--levels", "2", "--timesteps", "3",
               "--out", str(tmp_path), *TINY)
    assert res.exit_code == 0, res.output
    args = load_model(tmp_path / "checkpoint.pt")[1]["model_args"]
    assert (args["variant"], args["levels"], args["timesteps"]) == ("plain", 2, 3)


@pytest.mark.parametrize("args", [["--epochs", "two"], ["--widths", "4,8"], ["--bogus", "1"],
                                  ["--device", "tpu"], ["--variant", "wide"]])
def test_ill_typed_or_unknown_options_are_click_errors(tmp_path, args):
    res = _run("--out", str(tmp_path / "run"), *args)
    assert res.exit_code == 2 and _one_error_line(res), res.output  # click's own errors too
    assert not (tmp_path / "run").exists()


def _one_error_line(res):
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    return len(lines) == 1 and lines[0].startswith("error: ")


@pytest.mark.parametrize("args,fragment", [
    (["--preset", "nope"], "unknown preset"),
    (["--dataset", "nope"], "unknown dataset"),
    (["--depth", "12"], "6n+2"),
    (["--dataset", "dvs-gesture"], "--data-dir"),
    (["--dataset", "cifar10", "--data-dir", "EMPTY"], "data_batch_1"),
])
def test_bad_input_is_one_error_line_and_writes_nothing(tmp_path, args, fragment):
    (tmp_path / "EMPTY").mkdir()
    args = [str(tmp_path / a) if a == "EMPTY" else a for a in args]
    res = _run("--epochs", "1", "--out", str(tmp_path / "run"), *args)
    assert res.exit_code == 2 and _one_error_line(res) and fragment in res.stderr, res.stderr
    assert not (tmp_path / "run").exists() and list((tmp_path / "EMPTY").iterdir()) == []


def test_unwritable_output_is_an_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    res = _run("--epochs", "1", "--out", str(blocker / "run"), *TINY)
    assert res.exit_code == 2 and _one_error_line(res) and "file.txt" in res.stderr
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("content", [b"", b"\x80\x02garbage", b"PK\x03\x04truncated zip"])
def test_corrupt_checkpoint_for_resume(tmp_path, content):
    (tmp_path / "checkpoint.pt").write_bytes(content)
    res = _run("--resume", "--epochs", "2", "--out", str(tmp_path), *TINY)
    assert res.exit_code == 2 and _one_error_line(res) and "checkpoint.pt" in res.stderr, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert (tmp_path / "checkpoint.pt").read_bytes() == content


def test_resume_of_a_finished_run_says_so(tmp_path):
    out = tmp_path / "run"
    assert _run("--epochs", "1", "--out", str(out), *TINY).exit_code == 0
    before = (out / "checkpoint.pt").read_bytes()
    res = _run("--resume", "--epochs", "1", "--out", str(out), "--json", *TINY)
    assert res.exit_code == 0, res.output
    assert "nothing to do" in res.stderr and "already finished all 1 epochs" in res.stderr
    assert json.loads(res.stdout.splitlines()[-1])["already_finished"] is True
    assert (out / "checkpoint.pt").read_bytes() == before
