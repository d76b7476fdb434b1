"""Quantization-aware training is `train --init CKPT --weight-bits N`: it streams the data, resumes
bit for bit, runs under DDP, holds the output lock and records its files in the ledger, and the
`finetune` alias gives the very same weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from mlf_deploy import training_loop
from mlf_deploy.checkpoint import load_model, read_checkpoint
from mlf_deploy.commands.app import main
from mlf_deploy.data.layouts import make_event_set
from mlf_deploy.data.streaming import RecordingFrames
from mlf_deploy.outputs import output_lock
from mlf_deploy.ownership import read_ledger, sha256_file
from mlf_deploy.training import TrainConfig, train
from mlf_deploy.training_files import weights_sha256

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(depth=8, widths=(4, 8, 8), max_samples=64, batch_size=16, seed=5)


def _quiet(*_):
    pass


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    train(TrainConfig(epochs=1, out_dir=str(out), **TINY), progress=False, log=_quiet)
    return out / "checkpoint.pt"


def _qat(base, out, **changes):
    cfg = TrainConfig(init=str(base), weight_bits=4, out_dir=str(out),
                      **{"epochs": 2, "max_samples": 64, "batch_size": 16, **changes})
    return train(cfg, progress=False, log=_quiet)


def _assert_same_weights(a, b):
    a, b = read_checkpoint(a)["state_dict"], read_checkpoint(b)["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_after_an_interrupt_equals_an_uninterrupted_run(base, tmp_path):
    straight = _qat(base, tmp_path / "a")

    def interrupt(msg):
        if msg.startswith("epoch 1/"):
            raise KeyboardInterrupt  # right after epoch 1, before its checkpoint interval
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(init=str(base), weight_bits=4, out_dir=str(tmp_path / "b"), epochs=2,
                          max_samples=64, batch_size=16, checkpoint_every=5),
              progress=False, log=interrupt)
    assert read_checkpoint(tmp_path / "b" / "checkpoint.pt")["epoch"] == 1
    resumed = _qat(base, tmp_path / "b", resume=True)
    _assert_same_weights(straight["checkpoint"], resumed["checkpoint"])
    a, b = read_checkpoint(straight["checkpoint"]), read_checkpoint(resumed["checkpoint"])
    assert a["history"] == [{**r, "samples_per_s": a["history"][i]["samples_per_s"]}
                            for i, r in enumerate(b["history"])]
    assert a["finetune"] == b["finetune"] and a["finetune"]["weight_bits"] == 4
    # the cosine schedule stepped per batch reached zero at the end of both
    assert a["scheduler"] == b["scheduler"] and a["history"][1]["lr"] < a["history"][0]["lr"]
    # QAT really moved the weights, so the equality above is not vacuous
    start = read_checkpoint(base)["state_dict"]
    assert not torch.equal(start["stem.conv.weight"], a["state_dict"]["stem.conv.weight"])
    # BN statistics stay frozen: the fold trained through is the fold deployed
    assert torch.equal(start["stem.bn.running_mean"], a["state_dict"]["stem.bn.running_mean"])


def test_resume_refuses_another_width(base, tmp_path):
    _qat(base, tmp_path, epochs=1)
    res = CliRunner().invoke(main, ["train", "--init", str(base), "--weight-bits", "6", "--out",
                                    str(tmp_path), "--resume", "--epochs", "2", "--no-progress"])
    assert res.exit_code == 2 and "weight_bits" in res.output, res.output


def test_finetune_alias_equals_the_train_form(base, tmp_path):
    common = ["--weight-bits", "4", "--epochs", "1", "--max-samples", "64", "--seed", "3",
              "--no-progress", "--json"]
    res_train = CliRunner().invoke(main, ["train", "--init", str(base), "--out",
                                          str(tmp_path / "t"), *common])
    res_alias = CliRunner().invoke(main, ["finetune", str(base), "--out", str(tmp_path / "f"),
                                          *common])
    assert res_train.exit_code == 0 and res_alias.exit_code == 0, res_alias.output
    _assert_same_weights(tmp_path / "t" / "checkpoint.pt", tmp_path / "f" / "checkpoint.pt")
    t, f = (json.loads(r.stdout.strip().splitlines()[-1]) for r in (res_train, res_alias))
    for key in ("test_accuracy", "post_training_accuracy", "float_accuracy", "loss", "weight_bits"):
        assert t[key] == f[key], key
    ct, cf = read_checkpoint(t["checkpoint"]), read_checkpoint(f["checkpoint"])
    assert {**ct["config"], "out_dir": None} == {**cf["config"], "out_dir": None}
    assert ct["config"]["lr"] == 0.01 and ct["config"]["lr_schedule"] == "cosine"
    assert ct["finetune"] == cf["finetune"]


def test_outputs_are_in_the_ledger_and_the_lock_is_held(base, tmp_path):
    out = tmp_path / "q"
    _qat(base, out, epochs=1)
    ledger = read_ledger(out)
    for name in ("checkpoint.pt", "metrics.jsonl"):
        assert ledger[name] == sha256_file(out / name), name
    with output_lock(out):  # as another command writing the folder would hold it
        res = CliRunner().invoke(main, ["train", "--init", str(base), "--weight-bits", "4",
                                        "--out", str(out), "--force", "--no-progress"])
    assert res.exit_code == 2 and res.output.startswith("error:") and "another" in res.output
    assert ledger == read_ledger(out)


def test_weight_bits_needs_init_and_init_takes_no_model_option(base, tmp_path):
    for args, fragment in ((["--weight-bits", "4"], "--init"),
                           (["--init", str(base), "--depth", "14"], "drop --depth"),
                           (["--init", str(base), "--dataset", "nmnist"], "drop --dataset")):
        res = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "o"), *args])
        assert res.exit_code == 2 and fragment in res.output, res.output
    assert not (tmp_path / "o").exists()


def test_qat_streams_a_disk_event_set_in_batches(tmp_path, monkeypatch):
    """Through the same reader as train: batches of a disk-streamed split, never the whole."""
    make_event_set("nmnist", tmp_path / "data", per_class=3, classes=3, events=200)
    common = dict(data_dir=str(tmp_path / "data"), batch_size=2, threads=1)
    train(TrainConfig(dataset="nmnist", depth=8, widths=(2, 4, 4), timesteps=2, epochs=1,
                      out_dir=str(tmp_path / "base"), **common), progress=False, log=_quiet)
    read, real_batches = [], training_loop.batches

    def spy(dataset, order, batch_size, workers=0):
        for xb, yb in real_batches(dataset, order, batch_size, workers):
            read.append((type(dataset), len(dataset), batch_size, len(yb)))
            yield xb, yb
    monkeypatch.setattr(training_loop, "batches", spy)
    result = train(TrainConfig(init=str(tmp_path / "base" / "checkpoint.pt"), weight_bits=4,
                               epochs=1, out_dir=str(tmp_path / "qat"), **common),
                   progress=False, log=_quiet)
    assert result["epochs"] == 1 and result["weight_bits"] == 4
    assert read and all(kind is RecordingFrames for kind, *_ in read)
    assert all(n <= batch for *_, batch, n in read)
    assert any(size > batch == 2 for _, size, batch, _ in read)  # a split larger than one batch


@pytest.mark.slow
def test_two_ranks_train_the_same_integer_weights(base, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--standalone", str(ROOT / "cli.py"), "train", "--init", str(base), "--weight-bits",
           "4", "--epochs", "1", "--max-samples", "64", "--batch-size", "16", "--no-progress",
           "--rank-hashes", "--json", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    rank0, rank1 = (out / "rank0.sha").read_text(), (out / "rank1.sha").read_text()
    assert rank0 == rank1 and len(rank0.strip()) == 64  # the ranks' gradients were averaged
    model, ckpt = load_model(out / "checkpoint.pt")
    assert weights_sha256(model) == rank0.strip() and ckpt["finetune"]["weight_bits"] == 4
    assert rank0.strip() != weights_sha256(load_model(base)[0])
