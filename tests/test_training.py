"""Training: config resolution, checkpoint contents, exact resume, Ctrl-C, bad input."""

import json

import pytest
import torch

from mlf_deploy.checkpoint import load_model, read_checkpoint
from mlf_deploy.data import load_split
from mlf_deploy.data.ranges import tensor_range
from mlf_deploy.errors import UserError
from mlf_deploy.ownership import LEDGER
from mlf_deploy.training import TrainConfig, resolve, train

TINY = dict(depth=8, widths=(4, 8, 8), max_samples=96, batch_size=32, seed=5)


def _quiet(*_):
    pass


def test_defaults_resolve_per_dataset():
    cfg = resolve(TrainConfig())
    assert (cfg.preset, cfg.epochs, cfg.weight_decay, cfg.momentum) == ("digits", 15, 1e-4, 0.9)
    assert resolve(TrainConfig(dataset="cifar10-dvs")).weight_decay == 1e-3
    assert resolve(TrainConfig(epochs=3)).epochs == 3
    with pytest.raises(UserError, match="unknown dataset"):
        resolve(TrainConfig(dataset="imagenet"))
    with pytest.raises(UserError, match="epochs"):
        resolve(TrainConfig(epochs=0))


def test_checkpoint_holds_everything_and_loads(tmp_path):
    result = train(TrainConfig(epochs=2, out_dir=str(tmp_path), **TINY), progress=False, log=_quiet)
    assert result["epochs"] == 2 and 0 <= result["test_accuracy"] <= 1
    model, ckpt = load_model(result["checkpoint"])
    assert ckpt["model_args"]["widths"] == (4, 8, 8) and ckpt["model_args"]["in_channels"] == 1
    assert ckpt["config"]["epochs"] == 2 and ckpt["dataset"]["name"] == "digits"
    assert ckpt["metrics"]["test_accuracy"] == result["test_accuracy"] and ckpt["epoch"] == 2
    assert {"optimizer", "scheduler", "rng"} <= set(ckpt)
    # the whole training split's range, not only the max_samples trained on
    assert ckpt["input"] == tensor_range(load_split(ckpt["dataset"], "train")[0])
    lines = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2] and "samples_per_s" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [LEDGER, "checkpoint.pt", "metrics.jsonl"]
    assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_resume_is_bit_identical(tmp_path):
    straight = train(TrainConfig(epochs=2, out_dir=str(tmp_path / "a"), **TINY), progress=False,
                     log=_quiet)
    train(TrainConfig(epochs=1, out_dir=str(tmp_path / "b"), **TINY), progress=False, log=_quiet)
    resumed = train(TrainConfig(epochs=2, resume=True, out_dir=str(tmp_path / "b"), **TINY),
                    progress=False, log=_quiet)
    a, b = read_checkpoint(straight["checkpoint"]), read_checkpoint(resumed["checkpoint"])
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert a["history"][1]["loss"] == b["history"][1]["loss"]
    # A different seed really gives other weights, so the equality above is not vacuous.
    other = train(TrainConfig(epochs=1, out_dir=str(tmp_path / "c"), **{**TINY, "seed": 6}),
                  progress=False, log=_quiet)
    c = read_checkpoint(other["checkpoint"])["state_dict"]
    assert not torch.equal(c["fc.weight"], b["state_dict"]["fc.weight"])


def test_ctrl_c_saves_the_last_complete_epoch(tmp_path):
    seen = []

    def log(msg):
        seen.append(msg)
        if msg.startswith("epoch 1/"):
            raise KeyboardInterrupt  # arrives right after epoch 1, before its checkpoint interval
    cfg = TrainConfig(epochs=3, checkpoint_every=5, out_dir=str(tmp_path), **TINY)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, log=log)
    assert read_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1
    as_flags = [UserError(m).render(lambda name, value: f"--{name}") for m in seen]
    assert any(f"{tmp_path / 'checkpoint.pt'} keeps epoch 1 of 3; continue with the same command "
               "and --resume" in m for m in as_flags), seen


def test_digits_events_trains_with_two_input_channels(tmp_path):
    result = train(TrainConfig(dataset="digits-events", epochs=1, out_dir=str(tmp_path), **TINY),
                   progress=False, log=_quiet)
    model, ckpt = load_model(result["checkpoint"])
    assert ckpt["model_args"]["in_channels"] == 2 and ckpt["dataset"]["timesteps"] == 4
    assert ckpt["input"]["timesteps"] == 4 and ckpt["input"]["shape"] == [2, 8, 8]


@pytest.mark.parametrize("change,match", [
    (dict(preset="resnet50"), "unknown preset"),
    (dict(depth=10), "6n\\+2"),
    (dict(dataset="cifar10"), "data_dir=DIR"),
])
def test_bad_settings_fail_before_writing(tmp_path, change, match):
    out = tmp_path / "run"
    with pytest.raises(UserError, match=match):
        train(TrainConfig(**{**TINY, "epochs": 1, "out_dir": str(out), **change}), progress=False,
              log=_quiet)
    assert not out.exists()


def test_resume_refuses_foreign_or_mismatched_checkpoints(tmp_path):
    with pytest.raises(UserError, match="nothing to resume"):
        train(TrainConfig(resume=True, out_dir=str(tmp_path), **TINY), log=_quiet)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "checkpoint.pt")
    with pytest.raises(UserError, match="not an mlf-deploy checkpoint"):
        train(TrainConfig(resume=True, out_dir=str(tmp_path), **TINY), log=_quiet)
    with pytest.raises(UserError, match="did not write it"):  # --force: only our own run
        train(TrainConfig(epochs=1, force=True, out_dir=str(tmp_path), **TINY), log=_quiet)
    (tmp_path / "checkpoint.pt").unlink()
    train(TrainConfig(epochs=1, out_dir=str(tmp_path), **TINY), progress=False, log=_quiet)
    with pytest.raises(UserError, match="depth"):
        train(TrainConfig(resume=True, epochs=2, out_dir=str(tmp_path), **{**TINY, "depth": 14}),
              log=_quiet)


def test_init_continues_a_checkpoint_in_float(tmp_path):
    base = train(TrainConfig(epochs=1, out_dir=str(tmp_path / "base"), **TINY), progress=False,
                 log=_quiet)
    warm = train(TrainConfig(init=base["checkpoint"], epochs=1, lr=0.01, max_samples=96,
                             out_dir=str(tmp_path / "warm")), progress=False, log=_quiet)
    cold = train(TrainConfig(epochs=1, lr=0.01, out_dir=str(tmp_path / "cold"), **TINY),
                 progress=False, log=_quiet)
    b, w, c = (read_checkpoint(r["checkpoint"]) for r in (base, warm, cold))
    assert w["model_args"] == b["model_args"] and w["dataset"] == b["dataset"]
    assert "finetune" not in w and w["config"]["init"] == base["checkpoint"]
    assert w["config"]["batch_size"] == 32 and w["config"]["lr_schedule"] == "step"
    # it started from the base's weights: not the base's, not those of a fresh start
    assert not torch.equal(w["state_dict"]["fc.weight"], b["state_dict"]["fc.weight"])
    assert not torch.equal(w["state_dict"]["fc.weight"], c["state_dict"]["fc.weight"])
    # and trained in float: BN statistics moved
    assert not torch.equal(w["state_dict"]["stem.bn.running_mean"],
                           b["state_dict"]["stem.bn.running_mean"])
