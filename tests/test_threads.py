"""The thread count is an explicit, fixed choice: never the machine's load, printed, and kept in
the checkpoint, so the same train command gives the same weights on a busy and an idle machine."""

from __future__ import annotations

import os

import pytest
import torch
from click.testing import CliRunner

from mlf_deploy.checkpoint import load_model
from mlf_deploy.commands.app import main
from mlf_deploy.errors import UserError
from mlf_deploy.threads import RUN_THREADS, TRAIN_THREADS, choose
from mlf_deploy.training_files import weights_sha256

TINY = ["--depth", "8", "--widths", "4,8,8", "--max-samples", "48", "--batch-size", "16",
        "--epochs", "1", "--no-progress"]


@pytest.fixture(autouse=True)
def keep_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_choice_order_flag_then_environment_then_fixed_default(monkeypatch):
    assert choose(None, TRAIN_THREADS) == (TRAIN_THREADS, "default")
    assert choose(3, TRAIN_THREADS) == (3, "threads")
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert choose(None, RUN_THREADS) == (5, "OMP_NUM_THREADS")
    assert choose(1, RUN_THREADS) == (1, "threads")
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    with pytest.raises(UserError, match="OMP_NUM_THREADS"):
        choose(None, RUN_THREADS)


def _train(out, *extra):
    res = CliRunner().invoke(main, ["train", "--out", str(out), *TINY, *extra])
    assert res.exit_code == 0, res.output
    return res.output, load_model(out / "checkpoint.pt")


def test_train_ignores_the_load_and_records_its_threads(tmp_path, monkeypatch):
    out_idle, (model_idle, ckpt_idle) = _train(tmp_path / "idle")
    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 64.0, 64.0))  # a machine far overloaded
    out_busy, (model_busy, ckpt_busy) = _train(tmp_path / "busy")
    assert f"{TRAIN_THREADS} torch thread(s) (the fixed default" in out_busy
    assert ckpt_idle["config"]["threads"] == ckpt_busy["config"]["threads"] == TRAIN_THREADS
    assert weights_sha256(model_idle) == weights_sha256(model_busy)


def test_every_command_takes_threads():
    for name in ("train", "finetune", "export", "verify", "energy", "evaluate", "run", "import",
                 "demo"):
        options = {o for p in main.commands[name].params for o in getattr(p, "opts", [])}
        assert "--threads" in options, name


def test_run_commands_print_their_count(ckpt, tmp_path):
    res = CliRunner().invoke(main, ["energy", str(ckpt), "--samples", "4", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "1 torch thread(s) (from --threads)" in res.output
