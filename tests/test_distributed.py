"""Data-parallel training under torchrun: two gloo ranks end with identical weights."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlf_deploy.checkpoint import load_model
from mlf_deploy.training_files import weights_sha256

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_ranks_agree_and_rank0_checkpoints(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--standalone", str(ROOT / "cli.py"), "train", "--epochs", "1", "--depth", "8",
           "--widths", "4,8,8", "--max-samples", "128", "--batch-size", "16", "--no-progress",
           "--rank-hashes", "--json", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    rank0, rank1 = (out / "rank0.sha").read_text(), (out / "rank1.sha").read_text()
    assert rank0 == rank1 and len(rank0.strip()) == 64
    model, ckpt = load_model(out / "checkpoint.pt")
    assert weights_sha256(model) == rank0.strip()  # the checkpoint is the weights both ranks hold
    assert ckpt["epoch"] == 1
    assert res.stdout.count('"test_accuracy"') == 1  # only rank 0 reports
