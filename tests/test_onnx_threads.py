"""Every ONNX Runtime session the tool opens uses the command's thread count (``--threads``, else
the fixed default) for intra- and inter-op work: verify's onnx backends as well as `run`."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from mlf_deploy.commands.app import main
from mlf_deploy.data.static import digits_arrays
from mlf_deploy.workflows.pipeline import load_pipeline


@pytest.fixture
def sessions(monkeypatch):
    """The (intra, inter) thread counts of every real session opened while the test runs."""
    opened, real = [], ort.InferenceSession

    def spy(*args, **kwargs):
        session = real(*args, **kwargs)
        opts = session.get_session_options()
        opened.append((opts.intra_op_num_threads, opts.inter_op_num_threads))
        return session

    monkeypatch.setattr(ort, "InferenceSession", spy)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    yield opened
    torch.set_num_threads(before)


def _invoke(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


@pytest.mark.parametrize("threads", [1, 2])
def test_verify_onnx_backends_use_the_chosen_threads(ckpt, sessions, threads):
    _invoke("verify", ckpt, "--backends", "onnx-int,onnx-float", "--samples", "4",
            "--threads", threads)
    assert len(sessions) >= 2
    assert set(sessions) == {(threads, threads)}


def test_verify_onnx_backends_follow_the_fixed_default(ckpt, sessions):
    _invoke("verify", ckpt, "--backends", "onnx-int", "--samples", "4")
    assert sessions and set(sessions) == {(1, 1)}


def test_run_of_an_onnx_export_uses_the_chosen_threads(ckpt, sessions, tmp_path):
    _invoke("export", ckpt, "--to", "onnx", "-o", tmp_path / "m.onnx")
    raw, _ = digits_arrays(load_pipeline(ckpt).spec, "test")
    np.save(tmp_path / "x.npy", raw[:4, None].astype(np.float64))
    sessions.clear()
    _invoke("run", tmp_path / "m.onnx", "--input", tmp_path / "x.npy", "--threads", 2)
    assert sessions and set(sessions) == {(2, 2)}
